//! The crypto crate's error type.

/// Errors from key handling, encryption and decryption.
///
/// Messages never contain key material or plaintext.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// Authentication failed: the data was altered, belongs to another object, or was
    /// sealed under another key (for a key slot: the passphrase is wrong).
    #[error("authentication failed (data altered, misplaced, or wrong key)")]
    Authentication,
    /// An encrypted envelope is too short to hold its header and tag.
    #[error("encrypted data is truncated ({len} bytes, at least {min} expected)")]
    Truncated {
        /// Length found.
        len: usize,
        /// Minimum length of a valid envelope.
        min: usize,
    },
    /// Key material has the wrong length.
    #[error("key material has the wrong length ({len} bytes, {expected} expected)")]
    KeyLength {
        /// Length found.
        len: usize,
        /// Length expected.
        expected: usize,
    },
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed: {0}")]
    Random(String),
    /// Argon2id parameters are outside the supported range.
    #[error("invalid key derivation parameters: {0}")]
    KdfParams(String),
    /// A message is too long for AES-GCM.
    #[error("message too long to encrypt")]
    TooLong,
}
