//! The 40-byte header that starts every repository file and forms the associated data of
//! every encrypted object, and the sealed-file layout built on it.

use arca_crypto::{CryptoError, Opener, Sealer};

use crate::RepoError;
use crate::wire::Reader;

/// The first four bytes of every repository file.
pub const MAGIC: [u8; 4] = *b"ARCA";

/// The repository format version this crate reads and writes.
pub const FORMAT_VERSION: u8 = 1;

/// Length of [`Header`] on disk.
pub const HEADER_LEN: usize = 40;

/// What an object is. The numeric codes are on disk (in headers, pack entries, index
/// entries and associated data) and never change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ObjectType {
    /// The repository config.
    Config,
    /// A key slot.
    Key,
    /// An index file.
    Index,
    /// A snapshot file.
    Snapshot,
    /// A lock file.
    Lock,
    /// A pack file.
    Pack,
    /// A blob of file content (a chunk).
    DataBlob,
    /// A blob describing a directory.
    TreeBlob,
}

impl ObjectType {
    /// The on-disk code.
    pub fn code(self) -> u8 {
        match self {
            Self::Config => 1,
            Self::Key => 2,
            Self::Index => 3,
            Self::Snapshot => 4,
            Self::Lock => 5,
            Self::Pack => 6,
            Self::DataBlob => 7,
            Self::TreeBlob => 8,
        }
    }

    /// Parses an on-disk code.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => Self::Config,
            2 => Self::Key,
            3 => Self::Index,
            4 => Self::Snapshot,
            5 => Self::Lock,
            6 => Self::Pack,
            7 => Self::DataBlob,
            8 => Self::TreeBlob,
            _ => return None,
        })
    }

    /// A lowercase name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Key => "key",
            Self::Index => "index",
            Self::Snapshot => "snapshot",
            Self::Lock => "lock",
            Self::Pack => "pack",
            Self::DataBlob => "data blob",
            Self::TreeBlob => "tree blob",
        }
    }
}

/// `magic (4) | format version (1) | object type (1) | reserved, zero (2) | id (32)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// What the object is.
    pub object_type: ObjectType,
    /// The object's id (its file name; the repository id for the config).
    pub id: [u8; 32],
}

impl Header {
    /// A header for an object of `object_type` named `id`.
    pub fn new(object_type: ObjectType, id: [u8; 32]) -> Self {
        Self { object_type, id }
    }

    /// The 40 header bytes, which double as associated data.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..4].copy_from_slice(&MAGIC);
        out[4] = FORMAT_VERSION;
        out[5] = self.object_type.code();
        out[8..].copy_from_slice(&self.id);
        out
    }

    /// Parses and checks a header that must be of type `expected`.
    ///
    /// # Errors
    /// [`RepoError::Corrupt`] for a wrong magic, type or reserved field;
    /// [`RepoError::UnsupportedVersion`] for a version other than [`FORMAT_VERSION`].
    pub fn decode(data: &[u8], expected: ObjectType, object: &str) -> Result<Self, RepoError> {
        let mut r = Reader::new(data, object);
        if r.array::<4>()? != MAGIC {
            return Err(RepoError::corrupt(
                object,
                "not an arca repository file (bad magic)",
            ));
        }
        let version = r.u8()?;
        if version != FORMAT_VERSION {
            return Err(RepoError::UnsupportedVersion {
                object: object.to_owned(),
                found: u32::from(version),
                supported: u32::from(FORMAT_VERSION),
            });
        }
        let code = r.u8()?;
        if ObjectType::from_code(code) != Some(expected) {
            return Err(RepoError::corrupt(
                object,
                format!(
                    "object type {code} where {} ({}) was expected",
                    expected.name(),
                    expected.code()
                ),
            ));
        }
        if r.u16()? != 0 {
            return Err(RepoError::corrupt(
                object,
                "reserved header bytes are not zero",
            ));
        }
        Ok(Self {
            object_type: expected,
            id: r.array()?,
        })
    }
}

/// Builds a sealed file: `header || envelope`, the header being the associated data.
pub(crate) fn seal_file(
    sealer: &Sealer,
    object_type: ObjectType,
    id: [u8; 32],
    payload: &[u8],
) -> Result<Vec<u8>, RepoError> {
    let header = Header::new(object_type, id).encode();
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len() + arca_crypto::ENVELOPE_OVERHEAD);
    out.extend_from_slice(&header);
    sealer.seal_into(&header, payload, &mut out).map_err(|e| {
        RepoError::crypto(
            format!("encrypting {} {}", object_type.name(), hex::encode(id)),
            e,
        )
    })?;
    Ok(out)
}

/// Opens a sealed file of `object_type`. When `expected_id` is given (the file's name),
/// the header must carry it, so a file cannot be renamed to pass as another.
pub(crate) fn open_file(
    opener: &Opener,
    object_type: ObjectType,
    expected_id: Option<[u8; 32]>,
    data: &[u8],
    object: &str,
) -> Result<(Header, Vec<u8>), RepoError> {
    let header = Header::decode(data, object_type, object)?;
    if expected_id.is_some_and(|id| id != header.id) {
        return Err(RepoError::corrupt(
            object,
            "the id in its header differs from its name",
        ));
    }
    let plain = opener
        .open(&data[..HEADER_LEN], &data[HEADER_LEN..])
        .map_err(|e| match e {
            CryptoError::Authentication => RepoError::corrupt(object, "authentication failed"),
            CryptoError::Truncated { .. } => RepoError::corrupt(object, "truncated"),
            other => RepoError::crypto(format!("decrypting {object}"), other),
        })?;
    Ok((header, plain))
}
