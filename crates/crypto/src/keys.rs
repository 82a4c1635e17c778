//! Secret key types.

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::CryptoError;
use crate::random::random_array;

/// A 256-bit secret key. Zeroized on drop; `Debug` never shows it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretKey([u8; 32]);

impl SecretKey {
    /// Length of a key in bytes.
    pub const LEN: usize = 32;

    /// Wraps existing key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Builds a key from a slice of exactly 32 bytes.
    ///
    /// # Errors
    /// [`CryptoError::KeyLength`] if `bytes` is not 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, CryptoError> {
        let arr: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::KeyLength {
            len: bytes.len(),
            expected: 32,
        })?;
        Ok(Self(arr))
    }

    /// Draws a fresh random key from the operating system.
    ///
    /// # Errors
    /// [`CryptoError::Random`] if the system generator fails.
    pub fn generate() -> Result<Self, CryptoError> {
        Ok(Self(random_array()?))
    }

    /// The raw key bytes. Handle with care: copies are not zeroized automatically.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

/// The repository master key: a key for encryption and a separate key for chunk ids.
///
/// Random at `init`, never derived from a passphrase; key slots store it wrapped.
#[derive(Clone)]
pub struct MasterKey {
    encryption: SecretKey,
    id: SecretKey,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// Length of [`MasterKey::to_bytes`].
    pub const LEN: usize = 64;

    /// Draws a fresh random master key.
    ///
    /// # Errors
    /// [`CryptoError::Random`] if the system generator fails.
    pub fn generate() -> Result<Self, CryptoError> {
        Ok(Self {
            encryption: SecretKey::generate()?,
            id: SecretKey::generate()?,
        })
    }

    /// Builds a master key from its two parts.
    pub fn from_parts(encryption: SecretKey, id: SecretKey) -> Self {
        Self { encryption, id }
    }

    /// Serializes as `encryption key || id key` (64 bytes), zeroized when dropped.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 64]> {
        let mut out = Zeroizing::new([0u8; 64]);
        out[..32].copy_from_slice(self.encryption.expose());
        out[32..].copy_from_slice(self.id.expose());
        out
    }

    /// Parses the 64-byte form written by [`MasterKey::to_bytes`].
    ///
    /// # Errors
    /// [`CryptoError::KeyLength`] if `bytes` is not 64 bytes long.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        if bytes.len() != Self::LEN {
            return Err(CryptoError::KeyLength {
                len: bytes.len(),
                expected: Self::LEN,
            });
        }
        Ok(Self {
            encryption: SecretKey::from_slice(&bytes[..32])?,
            id: SecretKey::from_slice(&bytes[32..])?,
        })
    }

    /// The key that encrypts every object (sessions derive their keys from it).
    pub fn encryption_key(&self) -> &SecretKey {
        &self.encryption
    }

    /// The key for chunk ids and other keyed derivations.
    pub fn id_key(&self) -> &SecretKey {
        &self.id
    }
}
