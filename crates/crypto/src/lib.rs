//! arca's cryptography, and nothing else: secret key types, keyed chunk ids, the
//! AES-256-GCM envelope with per-session keys, and Argon2id key wrapping.
//!
//! Main types:
//! - [`MasterKey`]: the repository's random master key (an encryption key and a separate
//!   id key). Secret types zeroize on drop and print as `..` in `Debug`.
//! - [`IdHasher`]: keyed chunk ids ([`IdAlgorithm`]: keyed BLAKE2b-256, HMAC-SHA-256 or
//!   keyed BLAKE3). Ids are MACs, so they reveal nothing about content without the key.
//! - [`Sealer`] / [`Opener`]: authenticated encryption of objects. Each `Sealer` is a
//!   *session*: a random 128-bit session id, a key derived from the master encryption key
//!   and that id, and a 64-bit message counter as the nonce. A nonce can only repeat if
//!   two sessions draw the same 128-bit id; the bounds are in docs/design.md.
//! - [`KdfParams`], [`wrap_key`] / [`unwrap_key`]: key slots, which wrap the master key
//!   under a key derived from a passphrase with Argon2id.
//! - [`GeneratedSecret`]: 256 random bits that take a passphrase's place for unattended
//!   jobs; a slot wrapped under one needs no costly derivation.
//!
//! ```
//! use arca_crypto::{IdAlgorithm, IdHasher, MasterKey, Opener, Sealer};
//!
//! let master = MasterKey::generate()?;
//! let ids = IdHasher::new(IdAlgorithm::Blake3, master.id_key())?;
//! let chunk = b"some file content";
//! let id = ids.id(chunk);
//!
//! let sealer = Sealer::new(master.encryption_key())?;
//! let envelope = sealer.seal(&id, chunk)?; // the id is bound as associated data
//! let opener = Opener::new(master.encryption_key());
//! assert_eq!(opener.open(&id, &envelope)?, chunk);
//! assert!(opener.open(b"another id", &envelope).is_err());
//! # Ok::<(), arca_crypto::CryptoError>(())
//! ```
//!
//! This crate depends on nothing else in the workspace.

mod aead;
mod error;
mod id;
mod kdf;
mod keys;
mod random;
mod secret;

pub use aead::{ENVELOPE_OVERHEAD, Opener, SESSION_MAX_BYTES, SESSION_MAX_MESSAGES, Sealer};
pub use error::CryptoError;
pub use id::{IdAlgorithm, IdHasher};
pub use kdf::{KdfParams, WRAP_OVERHEAD, derive_wrapping_key, unwrap_key, wrap_key};
pub use keys::{MasterKey, SecretKey};
pub use random::{expand_key, random_array, random_bytes};
pub use secret::{GeneratedSecret, SECRET_TEXT_PREFIX};

#[cfg(test)]
mod tests;
