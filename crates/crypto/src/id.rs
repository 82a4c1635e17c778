//! Keyed content ids.

use blake2::Blake2bMac;
use blake2::digest::consts::U32;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::{CryptoError, SecretKey};

/// The keyed hash that names chunks and trees. Chosen at `init`, recorded in the
/// repository config, never changed afterwards (ids would stop matching).
///
/// The numeric codes are part of the on-disk format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IdAlgorithm {
    /// BLAKE2b in keyed mode (RFC 7693), 256-bit output.
    Blake2b256,
    /// HMAC-SHA-256 (RFC 2104); fast where the CPU has SHA extensions.
    HmacSha256,
    /// BLAKE3 in keyed mode, 256-bit output.
    Blake3,
}

impl IdAlgorithm {
    /// Every algorithm, in code order.
    pub const ALL: [IdAlgorithm; 3] = [Self::Blake2b256, Self::HmacSha256, Self::Blake3];

    /// The on-disk code.
    pub fn code(self) -> u8 {
        match self {
            Self::Blake2b256 => 1,
            Self::HmacSha256 => 2,
            Self::Blake3 => 3,
        }
    }

    /// Parses an on-disk code.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::Blake2b256),
            2 => Some(Self::HmacSha256),
            3 => Some(Self::Blake3),
            _ => None,
        }
    }

    /// The user-facing name (`blake2b`, `sha256`, `blake3`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Blake2b256 => "blake2b",
            Self::HmacSha256 => "sha256",
            Self::Blake3 => "blake3",
        }
    }

    /// Parses a user-facing name; also accepts `blake2b-256` and `hmac-sha256`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "blake2b" | "blake2b-256" | "blake2b256" => Some(Self::Blake2b256),
            "sha256" | "hmac-sha256" | "sha-256" => Some(Self::HmacSha256),
            "blake3" => Some(Self::Blake3),
            _ => None,
        }
    }
}

impl std::fmt::Display for IdAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Computes keyed 256-bit ids of content. Cheap to clone and share between threads.
#[derive(Clone)]
pub struct IdHasher {
    inner: Inner,
}

// Keyed states are prepared once and cloned per id, which saves re-keying work
// (two compression calls for HMAC) on every small blob.
#[derive(Clone)]
enum Inner {
    Blake2b(Blake2bMac<U32>),
    Sha256(Hmac<Sha256>),
    // BLAKE3 keying is free (the key is the IV); keep the key, not a 1.9 KB state.
    Blake3(SecretKey),
}

impl std::fmt::Debug for IdHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("IdHasher")
            .field(&self.algorithm().name())
            .finish()
    }
}

impl IdHasher {
    /// Prepares a hasher for `algorithm` keyed with `key`.
    ///
    /// # Errors
    /// [`CryptoError::KeyLength`] only if the hash rejected a 32-byte key, which none of
    /// the supported ones does.
    pub fn new(algorithm: IdAlgorithm, key: &SecretKey) -> Result<Self, CryptoError> {
        let bad_key = |_| CryptoError::KeyLength {
            len: SecretKey::LEN,
            expected: SecretKey::LEN,
        };
        let inner = match algorithm {
            IdAlgorithm::Blake2b256 => Inner::Blake2b(
                <Blake2bMac<U32> as KeyInit>::new_from_slice(key.expose()).map_err(bad_key)?,
            ),
            IdAlgorithm::HmacSha256 => Inner::Sha256(
                <Hmac<Sha256> as KeyInit>::new_from_slice(key.expose()).map_err(bad_key)?,
            ),
            IdAlgorithm::Blake3 => Inner::Blake3(key.clone()),
        };
        Ok(Self { inner })
    }

    /// The algorithm in use.
    pub fn algorithm(&self) -> IdAlgorithm {
        match self.inner {
            Inner::Blake2b(_) => IdAlgorithm::Blake2b256,
            Inner::Sha256(_) => IdAlgorithm::HmacSha256,
            Inner::Blake3(_) => IdAlgorithm::Blake3,
        }
    }

    /// The id of `data`.
    pub fn id(&self, data: &[u8]) -> [u8; 32] {
        match &self.inner {
            Inner::Blake2b(state) => {
                let mut mac = state.clone();
                mac.update(data);
                mac.finalize().into_bytes().into()
            }
            Inner::Sha256(state) => {
                let mut mac = state.clone();
                mac.update(data);
                mac.finalize().into_bytes().into()
            }
            Inner::Blake3(key) => *blake3::keyed_hash(key.expose(), data).as_bytes(),
        }
    }
}
