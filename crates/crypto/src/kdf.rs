//! Passphrase-derived wrapping keys (Argon2id) and key wrapping (AES-256-GCM).

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Tag};
use argon2::{Algorithm, Argon2, Params, Version};
use zeroize::Zeroizing;

use crate::random::random_array;
use crate::{CryptoError, SecretKey};

/// Bytes [`wrap_key`] adds: a 12-byte random nonce and a 16-byte tag.
pub const WRAP_OVERHEAD: usize = 12 + 16;

/// Argon2id cost parameters, stored in each key slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory cost in KiB.
    pub memory_kib: u32,
    /// Number of passes.
    pub iterations: u32,
    /// Number of lanes.
    pub parallelism: u32,
}

impl Default for KdfParams {
    /// 32 MiB, 12 passes, 4 lanes: about 0.2 s of CPU on the reference machine, computed
    /// on up to 4 cores at once, and below the memory a whole backup is allowed (figures
    /// in docs/design.md, "Key slots").
    fn default() -> Self {
        Self {
            memory_kib: 32 * 1024,
            iterations: 12,
            parallelism: 4,
        }
    }
}

impl KdfParams {
    /// Largest memory cost accepted (4 GiB), also when reading a key slot: a damaged or
    /// hostile slot must not make the client allocate without bound.
    pub const MAX_MEMORY_KIB: u32 = 4 * 1024 * 1024;
    /// Largest number of passes accepted.
    pub const MAX_ITERATIONS: u32 = 64;
    /// Largest number of lanes accepted.
    pub const MAX_PARALLELISM: u32 = 16;

    /// Checks the parameters are within the supported range.
    ///
    /// # Errors
    /// [`CryptoError::KdfParams`] naming the parameter out of range.
    pub fn validate(&self) -> Result<(), CryptoError> {
        if self.parallelism == 0 || self.parallelism > Self::MAX_PARALLELISM {
            return Err(CryptoError::KdfParams(format!(
                "parallelism {} is outside 1..={}",
                self.parallelism,
                Self::MAX_PARALLELISM
            )));
        }
        if self.iterations == 0 || self.iterations > Self::MAX_ITERATIONS {
            return Err(CryptoError::KdfParams(format!(
                "iterations {} is outside 1..={}",
                self.iterations,
                Self::MAX_ITERATIONS
            )));
        }
        let min_memory = 8 * self.parallelism;
        if self.memory_kib < min_memory || self.memory_kib > Self::MAX_MEMORY_KIB {
            return Err(CryptoError::KdfParams(format!(
                "memory {} KiB is outside {min_memory}..={} KiB",
                self.memory_kib,
                Self::MAX_MEMORY_KIB
            )));
        }
        Ok(())
    }
}

/// Derives a 256-bit wrapping key from a passphrase with Argon2id (version 0x13).
///
/// # Errors
/// [`CryptoError::KdfParams`] if `params` are out of range.
pub fn derive_wrapping_key(
    passphrase: &[u8],
    salt: &[u8; 32],
    params: &KdfParams,
) -> Result<SecretKey, CryptoError> {
    params.validate()?;
    let p = Params::new(
        params.memory_kib,
        params.iterations,
        params.parallelism,
        Some(32),
    )
    .map_err(|e| CryptoError::KdfParams(e.to_string()))?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, p);
    let mut out = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase, salt, &mut out[..])
        .map_err(|e| CryptoError::KdfParams(e.to_string()))?;
    Ok(SecretKey::from_bytes(*out))
}

/// Encrypts `plaintext` under a single-use key: `nonce (12, random) || ciphertext || tag`.
///
/// Wrapping keys are derived with a fresh random salt for every key slot, so each key
/// seals exactly one message and a random nonce is safe.
///
/// # Errors
/// [`CryptoError::Random`] if no nonce can be drawn.
pub fn wrap_key(key: &SecretKey, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let cipher = Aes256Gcm::new(key.expose().into());
    let nonce: [u8; 12] = random_array()?;
    let mut out = Vec::with_capacity(plaintext.len() + WRAP_OVERHEAD);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let tag = cipher
        .encrypt_inout_detached(&nonce.into(), aad, (&mut out[12..]).into())
        .map_err(|_| CryptoError::TooLong)?;
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Reverses [`wrap_key`].
///
/// # Errors
/// [`CryptoError::Truncated`] if `wrapped` is too short; [`CryptoError::Authentication`]
/// if the key (the passphrase) is wrong or the data was altered.
pub fn unwrap_key(
    key: &SecretKey,
    aad: &[u8],
    wrapped: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if wrapped.len() < WRAP_OVERHEAD {
        return Err(CryptoError::Truncated {
            len: wrapped.len(),
            min: WRAP_OVERHEAD,
        });
    }
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&wrapped[..12]);
    let (ciphertext, tag) = wrapped[12..].split_at(wrapped.len() - WRAP_OVERHEAD);
    let tag = Tag::try_from(tag).map_err(|_| CryptoError::Authentication)?;
    let mut plaintext = Zeroizing::new(ciphertext.to_vec());
    Aes256Gcm::new(key.expose().into())
        .decrypt_inout_detached(&nonce.into(), aad, (&mut plaintext[..]).into(), &tag)
        .map_err(|_| CryptoError::Authentication)?;
    Ok(plaintext)
}
