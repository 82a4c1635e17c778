//! Pack files: a 40-byte header followed by self-describing blob entries.
//!
//! A pack holds blobs of one type only. Because every entry carries its type, id and
//! length, the index can be rebuilt from the packs alone ([`scan_pack`]).

use arca_backends::ObjectId;
use bytes::Bytes;

use crate::RepoError;
use crate::blob::{BlobId, BlobType, EncodedBlob, EntryHeader, MIN_BODY_LEN};
use crate::header::{HEADER_LEN, Header, ObjectType};

/// Where one blob sits in a pack, as recorded in the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackEntry {
    /// The blob's type.
    pub blob_type: BlobType,
    /// The blob's id.
    pub id: BlobId,
    /// Offset of the entry (its header) in the pack.
    pub offset: u32,
    /// Length of the whole entry, header included.
    pub length: u32,
    /// Length of the blob's plaintext.
    pub raw_len: u32,
}

/// A finished pack, ready to upload.
#[derive(Debug, Clone)]
pub struct Pack {
    /// The pack's id (its file name).
    pub id: ObjectId,
    /// The type of every blob in it.
    pub blob_type: BlobType,
    /// The file's bytes.
    pub bytes: Bytes,
    /// Its entries, in file order.
    pub entries: Vec<PackEntry>,
}

/// Assembles a pack in memory.
#[derive(Debug)]
pub struct PackBuilder {
    id: ObjectId,
    blob_type: BlobType,
    bytes: Vec<u8>,
    entries: Vec<PackEntry>,
}

impl PackBuilder {
    /// Largest pack size: entry offsets are `u32`.
    pub const MAX_LEN: usize = u32::MAX as usize;

    /// Starts a pack named `id` for blobs of `blob_type`, with room for `capacity` bytes.
    pub fn new(id: ObjectId, blob_type: BlobType, capacity: usize) -> Self {
        Self::reusing(id, blob_type, Vec::with_capacity(capacity))
    }

    /// Starts a pack as [`PackBuilder::new`] does, in `buffer` (emptied first): a
    /// writer of many packs reuses the buffers of the packs it has uploaded.
    pub fn reusing(id: ObjectId, blob_type: BlobType, mut bytes: Vec<u8>) -> Self {
        bytes.clear();
        bytes.extend_from_slice(&Header::new(ObjectType::Pack, *id.as_bytes()).encode());
        Self {
            id,
            blob_type,
            bytes,
            entries: Vec::new(),
        }
    }

    /// Current size in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True if no blob was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `blob` still fits under [`PackBuilder::MAX_LEN`].
    pub fn fits(&self, blob: &EncodedBlob) -> bool {
        self.bytes.len() + blob.bytes.len() <= Self::MAX_LEN
    }

    /// Appends a blob and returns its entry.
    ///
    /// # Errors
    /// [`RepoError::InvalidInput`] if the blob's type differs from the pack's or it does
    /// not [`fit`](Self::fits).
    pub fn push(&mut self, blob: &EncodedBlob) -> Result<PackEntry, RepoError> {
        if blob.blob_type != self.blob_type {
            return Err(RepoError::InvalidInput(format!(
                "{} blob {} pushed into a {} pack",
                blob.blob_type, blob.id, self.blob_type
            )));
        }
        if !self.fits(blob) {
            return Err(RepoError::InvalidInput(format!(
                "pack {} would exceed 4 GiB",
                self.id
            )));
        }
        let entry = PackEntry {
            blob_type: blob.blob_type,
            id: blob.id,
            // Both fit: checked against MAX_LEN (u32::MAX) just above.
            offset: self.bytes.len() as u32,
            length: blob.bytes.len() as u32,
            raw_len: blob.raw_len,
        };
        self.bytes.extend_from_slice(&blob.bytes);
        self.entries.push(entry);
        Ok(entry)
    }

    /// Completes the pack.
    pub fn finish(self) -> Pack {
        Pack {
            id: self.id,
            blob_type: self.blob_type,
            bytes: Bytes::from(self.bytes),
            entries: self.entries,
        }
    }
}

/// Lists a pack's entries from its bytes, without decrypting them.
///
/// Returns every well-framed entry up to the first damage, and the damage if any, so a
/// damaged pack still yields what can be salvaged.
pub fn scan_pack(data: &[u8], id: &ObjectId) -> (Vec<PackEntry>, Option<RepoError>) {
    let object = format!("pack {id}");
    let mut entries = Vec::new();
    match Header::decode(data, ObjectType::Pack, &object) {
        Ok(h) if h.id == *id.as_bytes() => {}
        Ok(_) => {
            let e = RepoError::corrupt(&object, "the id in its header differs from its name");
            return (entries, Some(e));
        }
        Err(e) => return (entries, Some(e)),
    }
    let mut pos = HEADER_LEN;
    while pos < data.len() {
        let header = match EntryHeader::parse(&data[pos..], &format!("{object} at offset {pos}")) {
            Ok(h) => h,
            Err(e) => return (entries, Some(e)),
        };
        let end = pos as u64 + header.entry_len();
        if end > data.len() as u64 || end > u64::from(u32::MAX) {
            let e = RepoError::corrupt(
                &object,
                format!(
                    "entry at offset {pos} claims {} bytes, past the end of the {}-byte pack",
                    header.entry_len(),
                    data.len()
                ),
            );
            return (entries, Some(e));
        }
        if (header.body_len as usize) < MIN_BODY_LEN {
            let e = RepoError::corrupt(
                &object,
                format!("entry at offset {pos} is too short to be sealed"),
            );
            return (entries, Some(e));
        }
        entries.push(PackEntry {
            blob_type: header.blob_type,
            id: header.id,
            offset: pos as u32,
            length: header.entry_len() as u32,
            // Unknown without decrypting; filled in by callers that decrypt.
            raw_len: 0,
        });
        pos = end as usize;
    }
    (entries, None)
}
