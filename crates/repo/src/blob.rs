//! Blobs: ids, types, and the self-describing pack entry that stores one blob.
//!
//! Entry layout:
//!
//! ```text
//! body length n (u32 LE) | object type (1: 7 data, 8 tree) | blob id (32) | body (n)
//! body = envelope( method (1) | plaintext length (u32 LE) | stored bytes )
//! associated data = Header { object type, blob id } (40 bytes)
//! ```

use std::fmt;

use arca_crypto::{CryptoError, Opener, Sealer};
use serde::{Deserialize, Serialize};

use crate::RepoError;
use crate::compression::{self, Compression, Method};
use crate::header::{Header, ObjectType};
use crate::wire::Reader;

/// Length of the plaintext part of a pack entry: body length, type, id.
pub const ENTRY_HEADER_LEN: usize = 4 + 1 + 32;

/// Length of the header inside a blob's envelope: method and plaintext length.
const INNER_HEADER_LEN: usize = 1 + 4;

/// Smallest valid entry body: an envelope around the inner header.
pub const MIN_BODY_LEN: usize = INNER_HEADER_LEN + arca_crypto::ENVELOPE_OVERHEAD;

/// Bytes a stored blob adds to its (compressed) content.
pub const ENTRY_OVERHEAD: usize =
    ENTRY_HEADER_LEN + INNER_HEADER_LEN + arca_crypto::ENVELOPE_OVERHEAD;

/// Largest blob plaintext (lengths are stored as `u32`).
pub const MAX_BLOB_LEN: usize = u32::MAX as usize;

/// A blob's id: the keyed hash of its plaintext.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
pub struct BlobId(pub [u8; 32]);

impl std::hash::Hash for BlobId {
    // One write of the raw bytes, so BlobIdHasher can take the first eight.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write(&self.0);
    }
}

/// A `Hasher` for maps keyed by ids that are already uniformly random (keyed MACs):
/// it uses the first eight bytes as the hash instead of hashing again.
#[derive(Default, Clone, Copy)]
pub struct BlobIdHasher(u64);

impl std::hash::Hasher for BlobIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut word = [0u8; 8];
        let n = bytes.len().min(8);
        word[..n].copy_from_slice(&bytes[..n]);
        self.0 ^= u64::from_le_bytes(word);
    }
}

/// Builds [`BlobIdHasher`]s.
pub type BuildBlobIdHasher = std::hash::BuildHasherDefault<BlobIdHasher>;

impl BlobId {
    /// The first 8 hex digits.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }
}

impl fmt::Display for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobId({})", self.short())
    }
}

/// Data blobs hold file content; tree blobs describe directories. They are kept in
/// separate packs, so metadata can be read without touching content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BlobType {
    /// File content.
    Data,
    /// A directory listing.
    Tree,
}

impl BlobType {
    /// The object type used in entries, the index and associated data.
    pub fn object_type(self) -> ObjectType {
        match self {
            Self::Data => ObjectType::DataBlob,
            Self::Tree => ObjectType::TreeBlob,
        }
    }

    /// The blob type of an object type code, if it is one.
    pub fn from_code(code: u8) -> Option<Self> {
        match ObjectType::from_code(code)? {
            ObjectType::DataBlob => Some(Self::Data),
            ObjectType::TreeBlob => Some(Self::Tree),
            _ => None,
        }
    }

    /// The on-disk code (the object type's).
    pub fn code(self) -> u8 {
        self.object_type().code()
    }
}

impl fmt::Display for BlobType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Data => "data",
            Self::Tree => "tree",
        })
    }
}

/// One blob, compressed, sealed and framed as a pack entry.
#[derive(Debug, Clone)]
pub struct EncodedBlob {
    /// The blob's type.
    pub blob_type: BlobType,
    /// The blob's id.
    pub id: BlobId,
    /// The plaintext length.
    pub raw_len: u32,
    /// The whole entry: header and sealed body.
    pub bytes: Vec<u8>,
}

fn aad(blob_type: BlobType, id: &BlobId) -> [u8; crate::header::HEADER_LEN] {
    Header::new(blob_type.object_type(), id.0).encode()
}

/// Compresses and seals `plaintext` as a pack entry.
///
/// # Errors
/// [`RepoError::InvalidInput`] for blobs of 4 GiB or more; crypto failures.
pub fn encode_blob(
    sealer: &Sealer,
    blob_type: BlobType,
    id: BlobId,
    plaintext: &[u8],
    compression: Compression,
) -> Result<EncodedBlob, RepoError> {
    let raw_len = u32::try_from(plaintext.len())
        .map_err(|_| RepoError::InvalidInput(format!("blob {id} is larger than 4 GiB")))?;
    let (method, stored) = compression::compress(compression, plaintext);
    let stored = stored.as_deref().unwrap_or(plaintext);
    let mut inner = Vec::with_capacity(INNER_HEADER_LEN + stored.len());
    inner.push(method.code());
    inner.extend_from_slice(&raw_len.to_le_bytes());
    inner.extend_from_slice(stored);

    let mut bytes =
        Vec::with_capacity(ENTRY_HEADER_LEN + inner.len() + arca_crypto::ENVELOPE_OVERHEAD);
    bytes.extend_from_slice(&[0; 4]);
    bytes.push(blob_type.code());
    bytes.extend_from_slice(&id.0);
    sealer
        .seal_into(&aad(blob_type, &id), &inner, &mut bytes)
        .map_err(|e| RepoError::crypto(format!("encrypting blob {id}"), e))?;
    let body_len = u32::try_from(bytes.len() - ENTRY_HEADER_LEN)
        .map_err(|_| RepoError::InvalidInput(format!("blob {id} is larger than 4 GiB")))?;
    bytes[..4].copy_from_slice(&body_len.to_le_bytes());
    Ok(EncodedBlob {
        blob_type,
        id,
        raw_len,
        bytes,
    })
}

/// The plaintext framing of a pack entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryHeader {
    /// The blob's type.
    pub blob_type: BlobType,
    /// The blob's id.
    pub id: BlobId,
    /// Length of the sealed body that follows the header.
    pub body_len: u32,
}

impl EntryHeader {
    /// Parses the first [`ENTRY_HEADER_LEN`] bytes of `data`.
    ///
    /// # Errors
    /// [`RepoError::Corrupt`] naming `object` if the bytes are short or the type is not a
    /// blob type.
    pub fn parse(data: &[u8], object: &str) -> Result<Self, RepoError> {
        let mut r = Reader::new(data, object);
        let body_len = r.u32()?;
        let code = r.u8()?;
        let blob_type = BlobType::from_code(code).ok_or_else(|| {
            RepoError::corrupt(
                object,
                format!("entry has object type {code}, not a blob type"),
            )
        })?;
        Ok(Self {
            blob_type,
            id: BlobId(r.array()?),
            body_len,
        })
    }

    /// Length of the whole entry.
    pub fn entry_len(&self) -> u64 {
        ENTRY_HEADER_LEN as u64 + u64::from(self.body_len)
    }
}

/// Authenticates, decrypts and decompresses one pack entry (`entry` is exactly the
/// entry's bytes). If `expected` is given, the entry must be that blob.
///
/// The content is not re-hashed here: the id is bound into the authentication, so an
/// authentic entry holds what its writer stored under that id. `check --read-data`
/// re-hashes to catch a writer that stored wrong content.
///
/// # Errors
/// [`RepoError::Corrupt`] naming `object` for any damage.
pub fn decode_entry(
    opener: &Opener,
    entry: &[u8],
    expected: Option<(BlobType, BlobId)>,
    object: &str,
) -> Result<(EntryHeader, Vec<u8>), RepoError> {
    let header = EntryHeader::parse(entry, object)?;
    if let Some((t, id)) = expected
        && (header.blob_type != t || header.id != id)
    {
        return Err(RepoError::corrupt(
            object,
            format!(
                "entry holds {} blob {}, not the indexed {t} blob {}",
                header.blob_type,
                header.id.short(),
                id.short()
            ),
        ));
    }
    if entry.len() as u64 != header.entry_len() {
        return Err(RepoError::corrupt(
            object,
            format!(
                "entry is {} bytes, its header says {}",
                entry.len(),
                header.entry_len()
            ),
        ));
    }
    let inner = opener
        .open(
            &aad(header.blob_type, &header.id),
            &entry[ENTRY_HEADER_LEN..],
        )
        .map_err(|e| match e {
            CryptoError::Authentication => RepoError::corrupt(object, "authentication failed"),
            other => RepoError::corrupt(object, other.to_string()),
        })?;
    let mut r = Reader::new(&inner, object);
    let code = r.u8()?;
    let method = Method::from_code(code)
        .ok_or_else(|| RepoError::corrupt(object, format!("unknown compression method {code}")))?;
    let raw_len = r.u32()? as usize;
    let plain = compression::decompress(method, r.rest(), raw_len, object)?;
    Ok((header, plain))
}
