//! Randomness and key expansion.

use hkdf::Hkdf;
use sha2::Sha256;

use crate::{CryptoError, SecretKey};

/// Fills `buf` from the operating system's CSPRNG.
///
/// # Errors
/// [`CryptoError::Random`] if the system generator fails.
pub fn random_bytes(buf: &mut [u8]) -> Result<(), CryptoError> {
    getrandom::fill(buf).map_err(|e| CryptoError::Random(e.to_string()))
}

/// Returns `N` random bytes from the operating system's CSPRNG.
///
/// # Errors
/// [`CryptoError::Random`] if the system generator fails.
pub fn random_array<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut out = [0u8; N];
    random_bytes(&mut out)?;
    Ok(out)
}

/// Derives `out.len()` bytes of key material from `key`, domain-separated by `label`
/// and `context`: HKDF-SHA-256 with salt = `label`, IKM = `key`, info = `context`.
///
/// # Errors
/// [`CryptoError::KeyLength`] if more than 8160 bytes are asked for (HKDF's limit).
pub fn expand_key(
    key: &SecretKey,
    label: &[u8],
    context: &[u8],
    out: &mut [u8],
) -> Result<(), CryptoError> {
    let hk = Hkdf::<Sha256>::new(Some(label), key.expose());
    hk.expand(context, out).map_err(|_| CryptoError::KeyLength {
        len: out.len(),
        expected: 255 * 32,
    })
}
