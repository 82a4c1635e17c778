//! Key slots: the master key wrapped under a key derived from a passphrase (Argon2id)
//! or from a generated secret (HKDF).
//!
//! File layout:
//!
//! ```text
//! header (40: type 2, id = slot id)
//! kdf algorithm (1) = 1 (Argon2id v0x13) | memory KiB (u32) | iterations (u32) | lanes (u32) | salt (32)
//!                   = 2 (generated secret, HKDF-SHA-256) | 0 (u32) | 0 (u32) | 0 (u32) | salt (32)
//! nonce (12) | ciphertext | tag (16)          associated data = the 85 bytes before the nonce
//! ```
//!
//! Plaintext: `version (u16) = 1 | master key (64) | repository id (32) | created secs (i64)
//! | created nanos (u32) | hostname (u16 length + UTF-8) | username (u16 length + UTF-8)`.

use arca_backends::ObjectId;
use arca_crypto::{
    CryptoError, GeneratedSecret, KdfParams, MasterKey, SecretKey, derive_wrapping_key,
    random_array, unwrap_key, wrap_key,
};
use zeroize::Zeroizing;

use crate::RepoError;
use crate::header::{HEADER_LEN, Header, ObjectType};
use crate::tree::Timestamp;
use crate::wire::Reader;

const KDF_ARGON2ID: u8 = 1;
const KDF_SECRET: u8 = 2;
const KEY_PAYLOAD_VERSION: u16 = 1;
const KDF_SECTION_LEN: usize = 1 + 4 + 4 + 4 + 32;

/// Who made a key slot and when (stored encrypted inside the slot).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    /// The repository the slot belongs to.
    pub repository_id: ObjectId,
    /// Creation time.
    pub created: Timestamp,
    /// Host it was created on.
    pub hostname: String,
    /// User who created it.
    pub username: String,
}

/// How a key slot's wrapping key is derived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotKdf {
    /// Argon2id over a passphrase, at these costs.
    Argon2id(KdfParams),
    /// HKDF over a [`GeneratedSecret`], given in the passphrase's place in its text
    /// form: no cost, as 256 random bits cannot be guessed.
    Secret,
}

impl SlotKdf {
    /// The algorithm byte and the three cost fields, as stored.
    fn fields(&self) -> (u8, [u32; 3]) {
        match self {
            Self::Argon2id(p) => (KDF_ARGON2ID, [p.memory_kib, p.iterations, p.parallelism]),
            Self::Secret => (KDF_SECRET, [0; 3]),
        }
    }
}

/// What a new key slot is locked with. `Debug` shows neither passphrase nor secret.
#[derive(Clone, Copy)]
pub enum SlotLock<'a> {
    /// A passphrase, derived with Argon2id at these costs.
    Passphrase(&'a [u8], KdfParams),
    /// A generated secret.
    Secret(&'a GeneratedSecret),
}

impl std::fmt::Debug for SlotLock<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Passphrase(_, kdf) => write!(f, "Passphrase(.., {kdf:?})"),
            Self::Secret(_) => f.write_str("Secret(..)"),
        }
    }
}

/// One key slot, as stored.
#[derive(Clone, Debug)]
pub struct KeySlot {
    /// The slot's id (its file name).
    pub id: ObjectId,
    /// How its wrapping key is derived.
    pub kdf: SlotKdf,
    salt: [u8; 32],
    wrapped: Vec<u8>,
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let bytes = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
    out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn get_str(r: &mut Reader<'_>) -> Result<String, RepoError> {
    let len = r.u16()? as usize;
    Ok(String::from_utf8_lossy(r.bytes(len)?).into_owned())
}

impl KeySlot {
    /// Wraps `master` under `lock` in a new slot with a random id and salt.
    ///
    /// # Errors
    /// Invalid KDF parameters or a failing random generator.
    pub fn create(
        master: &MasterKey,
        lock: SlotLock<'_>,
        info: &KeyInfo,
    ) -> Result<Self, RepoError> {
        let rng = |e| RepoError::crypto("creating a key slot", e);
        let id = ObjectId::from_bytes(random_array().map_err(rng)?);
        let salt: [u8; 32] = random_array().map_err(rng)?;
        let (kdf, key) = match lock {
            SlotLock::Passphrase(passphrase, _) if GeneratedSecret::parse(passphrase).is_some() => {
                return Err(RepoError::InvalidInput(
                    "a generated secret's text cannot be a password: it opens only secret slots"
                        .to_owned(),
                ));
            }
            SlotLock::Passphrase(passphrase, params) => (
                SlotKdf::Argon2id(params),
                derive_wrapping_key(passphrase, &salt, &params).map_err(rng)?,
            ),
            SlotLock::Secret(secret) => (SlotKdf::Secret, secret.wrapping_key(&salt).map_err(rng)?),
        };

        let mut plain = Zeroizing::new(Vec::with_capacity(160));
        plain.extend_from_slice(&KEY_PAYLOAD_VERSION.to_le_bytes());
        plain.extend_from_slice(&master.to_bytes()[..]);
        plain.extend_from_slice(info.repository_id.as_bytes());
        plain.extend_from_slice(&info.created.secs.to_le_bytes());
        plain.extend_from_slice(&info.created.nanos.to_le_bytes());
        put_str(&mut plain, &info.hostname);
        put_str(&mut plain, &info.username);

        let mut slot = Self {
            id,
            kdf,
            salt,
            wrapped: Vec::new(),
        };
        slot.wrapped = wrap_key(&key, &slot.prefix(), &plain).map_err(rng)?;
        Ok(slot)
    }

    /// Header and KDF section: the associated data of the wrapped key.
    fn prefix(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + KDF_SECTION_LEN);
        out.extend_from_slice(&Header::new(ObjectType::Key, *self.id.as_bytes()).encode());
        let (algorithm, costs) = self.kdf.fields();
        out.push(algorithm);
        for cost in costs {
            out.extend_from_slice(&cost.to_le_bytes());
        }
        out.extend_from_slice(&self.salt);
        out
    }

    /// The file's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.prefix();
        out.extend_from_slice(&self.wrapped);
        out
    }

    /// Parses a key file named `id` (in `keys/`).
    ///
    /// # Errors
    /// [`RepoError::Corrupt`] or [`RepoError::UnsupportedVersion`] naming the slot.
    pub fn decode(data: &[u8], id: &ObjectId) -> Result<Self, RepoError> {
        let object = format!("key {id}");
        let slot = Self::decode_unnamed(data, &object)?;
        if slot.id != *id {
            return Err(RepoError::corrupt(
                &object,
                "the id in its header differs from its name",
            ));
        }
        Ok(slot)
    }

    /// Parses a key slot kept outside `keys/` (a key file, an exported key), whose id is
    /// the one in its header; `object` names it in errors (e.g. `key file /a/b`).
    ///
    /// # Errors
    /// [`RepoError::Corrupt`] or [`RepoError::UnsupportedVersion`] naming `object`.
    pub fn decode_unnamed(data: &[u8], object: &str) -> Result<Self, RepoError> {
        let header = Header::decode(data, ObjectType::Key, object)?;
        let mut r = Reader::new(&data[HEADER_LEN..], object);
        let algorithm = r.u8()?;
        let costs = [r.u32()?, r.u32()?, r.u32()?];
        let kdf = match algorithm {
            KDF_ARGON2ID => {
                let params = KdfParams {
                    memory_kib: costs[0],
                    iterations: costs[1],
                    parallelism: costs[2],
                };
                params
                    .validate()
                    .map_err(|e| RepoError::corrupt(object, e.to_string()))?;
                SlotKdf::Argon2id(params)
            }
            KDF_SECRET if costs == [0; 3] => SlotKdf::Secret,
            KDF_SECRET => {
                return Err(RepoError::corrupt(
                    object,
                    "a generated secret's slot has nonzero cost fields",
                ));
            }
            _ => {
                return Err(RepoError::corrupt(
                    object,
                    format!("unknown key derivation {algorithm}"),
                ));
            }
        };
        let salt = r.array()?;
        let wrapped = r.rest().to_vec();
        Ok(Self {
            id: ObjectId::from_bytes(header.id),
            kdf,
            salt,
            wrapped,
        })
    }

    /// Unwraps the master key with `passphrase`. A generated secret's text opens only a
    /// secret slot, and any other passphrase only an Argon2id slot: the other kind is
    /// refused without any work, so a secret never pays for Argon2id.
    ///
    /// # Errors
    /// [`RepoError::WrongPassword`] if the passphrase does not open this slot (or the slot
    /// was altered, which is indistinguishable); [`RepoError::Corrupt`] if it opens but
    /// its content is malformed.
    pub fn open(&self, passphrase: &[u8]) -> Result<(MasterKey, KeyInfo), RepoError> {
        let object = format!("key {}", self.id);
        let key = self.wrapping_key(passphrase, &object)?;
        let plain = unwrap_key(&key, &self.prefix(), &self.wrapped).map_err(|e| match e {
            CryptoError::Authentication | CryptoError::Truncated { .. } => RepoError::WrongPassword,
            other => RepoError::crypto(format!("opening {object}"), other),
        })?;
        let mut r = Reader::new(&plain, &object);
        let version = r.u16()?;
        crate::wire::expect_version(version, KEY_PAYLOAD_VERSION, &object)?;
        let master = MasterKey::from_bytes(r.bytes(MasterKey::LEN)?)
            .map_err(|e| RepoError::corrupt(&object, e.to_string()))?;
        let info = KeyInfo {
            repository_id: ObjectId::from_bytes(r.array()?),
            created: Timestamp {
                secs: r.i64()?,
                nanos: r.u32()?,
            },
            hostname: get_str(&mut r)?,
            username: get_str(&mut r)?,
        };
        r.finish()?;
        Ok((master, info))
    }

    fn wrapping_key(&self, passphrase: &[u8], object: &str) -> Result<SecretKey, RepoError> {
        match &self.kdf {
            SlotKdf::Argon2id(_) if GeneratedSecret::parse(passphrase).is_some() => {
                return Err(RepoError::WrongPassword);
            }
            SlotKdf::Argon2id(params) => derive_wrapping_key(passphrase, &self.salt, params),
            SlotKdf::Secret => match GeneratedSecret::parse(passphrase) {
                Some(secret) => secret.wrapping_key(&self.salt),
                None => return Err(RepoError::WrongPassword),
            },
        }
        .map_err(|e| RepoError::crypto(format!("deriving the key of {object}"), e))
    }
}
