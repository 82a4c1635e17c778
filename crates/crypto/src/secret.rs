//! Generated secrets: 256 random bits that open a key slot in place of a passphrase.
//!
//! A passphrase needs a costly key derivation (Argon2id) because people choose guessable
//! ones. A generated secret has 256 bits of entropy, so nothing is gained by making each
//! guess expensive: its slot's wrapping key is one HKDF away, and opening it costs no
//! time and no memory. It is meant for unattended jobs, which keep their secret in a
//! file anyway.
//!
//! The text form, which is what users store and pass where a passphrase goes, is
//! `arca-secret-v1:` followed by the 32 bytes as 64 hex digits.

use zeroize::Zeroizing;

use crate::random::{expand_key, random_array};
use crate::{CryptoError, SecretKey};

/// What starts the text form of a generated secret.
pub const SECRET_TEXT_PREFIX: &str = "arca-secret-v1:";

/// The HKDF salt (domain label) of a secret slot's wrapping key.
const SECRET_SLOT_LABEL: &[u8] = b"arca-v1 secret key slot";

/// A generated 256-bit secret. Zeroized on drop; `Debug` never shows it.
#[derive(Clone, Debug)]
pub struct GeneratedSecret(SecretKey);

impl GeneratedSecret {
    /// Draws a fresh secret from the operating system's generator.
    ///
    /// # Errors
    /// [`CryptoError::Random`] if the system generator fails.
    pub fn generate() -> Result<Self, CryptoError> {
        Ok(Self(SecretKey::from_bytes(random_array()?)))
    }

    /// Wraps existing secret bytes (tests, golden vectors).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(SecretKey::from_bytes(bytes))
    }

    /// Reads the text form (surrounding ASCII whitespace ignored, hex digits in either
    /// case). `None` if `text` is not a generated secret: then it is a passphrase.
    pub fn parse(text: &[u8]) -> Option<Self> {
        let rest = text
            .trim_ascii()
            .strip_prefix(SECRET_TEXT_PREFIX.as_bytes())?;
        let mut bytes = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(rest, &mut bytes[..]).ok()?;
        Some(Self(SecretKey::from_bytes(*bytes)))
    }

    /// The text form, `arca-secret-v1:` and 64 lowercase hex digits, without a newline
    /// (room for one is reserved, so pushing it does not leave a copy behind in freed
    /// memory).
    pub fn to_text(&self) -> Zeroizing<String> {
        let mut digits = Zeroizing::new([0u8; 64]);
        // 32 bytes always fit 64 digits.
        let _ = hex::encode_to_slice(self.0.expose(), &mut digits[..]);
        let mut text = Zeroizing::new(String::with_capacity(SECRET_TEXT_PREFIX.len() + 64 + 1));
        text.push_str(SECRET_TEXT_PREFIX);
        text.extend(digits.iter().map(|&d| char::from(d)));
        text
    }

    /// The wrapping key of the key slot with `salt`: HKDF-SHA-256 with salt =
    /// `"arca-v1 secret key slot"`, IKM = the secret, info = the slot's salt.
    ///
    /// # Errors
    /// None in practice (HKDF cannot fail for a 32-byte output).
    pub fn wrapping_key(&self, salt: &[u8; 32]) -> Result<SecretKey, CryptoError> {
        let mut out = Zeroizing::new([0u8; 32]);
        expand_key(&self.0, SECRET_SLOT_LABEL, salt, &mut out[..])?;
        Ok(SecretKey::from_bytes(*out))
    }
}
