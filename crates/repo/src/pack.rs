//! Pack files: a 40-byte header followed by self-describing blob entries.
//!
//! A pack holds blobs of one type only. Because every entry carries its type, id and
//! length, the index can be rebuilt from the packs alone: [`crate::PackReader`] lists a
//! stored pack's entries a window at a time; [`scan_pack`] lists them from bytes in
//! memory (the fuzz target, and the reference the reader is tested against).

use arca_backends::{ObjectId, ObjectWriter};
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

impl PackEntry {
    /// Where this entry of pack `pack` is, as the index records it.
    pub fn location(&self, pack: ObjectId) -> crate::BlobLocation {
        crate::BlobLocation {
            pack,
            blob_type: self.blob_type,
            offset: self.offset,
            length: self.length,
            raw_len: self.raw_len,
        }
    }
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

/// The header every pack named `id` starts with, in memory or streamed.
fn pack_header(id: &ObjectId) -> [u8; HEADER_LEN] {
    Header::new(ObjectType::Pack, *id.as_bytes()).encode()
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
        bytes.extend_from_slice(&pack_header(&id));
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
        fits(self.bytes.len(), blob)
    }

    /// Appends a blob and returns its entry.
    ///
    /// # Errors
    /// [`RepoError::InvalidInput`] if the blob's type differs from the pack's or it does
    /// not [`fit`](Self::fits).
    pub fn push(&mut self, blob: &EncodedBlob) -> Result<PackEntry, RepoError> {
        let entry = next_entry(&self.id, self.blob_type, self.bytes.len(), blob)?;
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

fn fits(len: usize, blob: &EncodedBlob) -> bool {
    len + blob.bytes.len() <= PackBuilder::MAX_LEN
}

/// The entry `blob` gets when appended to pack `id` of `pack_type`, now `len` bytes long.
///
/// # Errors
/// [`RepoError::InvalidInput`] if the blob's type differs from the pack's or it does not
/// fit.
fn next_entry(
    id: &ObjectId,
    pack_type: BlobType,
    len: usize,
    blob: &EncodedBlob,
) -> Result<PackEntry, RepoError> {
    if blob.blob_type != pack_type {
        return Err(RepoError::InvalidInput(format!(
            "{} blob {} pushed into a {pack_type} pack",
            blob.blob_type, blob.id
        )));
    }
    if !fits(len, blob) {
        return Err(RepoError::InvalidInput(format!(
            "pack {id} would exceed 4 GiB"
        )));
    }
    Ok(PackEntry {
        blob_type: blob.blob_type,
        id: blob.id,
        // Both fit: checked against MAX_LEN (u32::MAX) just above.
        offset: len as u32,
        length: blob.bytes.len() as u32,
        raw_len: blob.raw_len,
    })
}

/// Writes a pack straight to storage, entry by entry, for backends that can take an
/// object piece by piece ([`crate::Repo::start_pack`]): a pack being filled costs no
/// memory of its size. Its file is what [`PackBuilder`] would have assembled.
pub struct PackWriter {
    id: ObjectId,
    blob_type: BlobType,
    writer: Box<dyn ObjectWriter>,
    len: usize,
    entries: Vec<PackEntry>,
    /// An append failed: the file may hold part of an entry, so it must never be
    /// committed.
    broken: bool,
}

impl std::fmt::Debug for PackWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackWriter")
            .field("id", &self.id)
            .field("blob_type", &self.blob_type)
            .field("len", &self.len)
            .field("entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl PackWriter {
    /// Starts pack `id` for blobs of `blob_type` in `writer`.
    ///
    /// # Errors
    /// Storage errors writing the header.
    pub(crate) fn start(
        id: ObjectId,
        blob_type: BlobType,
        mut writer: Box<dyn ObjectWriter>,
    ) -> Result<Self, RepoError> {
        writer.append(&pack_header(&id))?;
        Ok(Self {
            id,
            blob_type,
            writer,
            len: HEADER_LEN,
            entries: Vec::new(),
            broken: false,
        })
    }

    /// The pack's id.
    pub fn id(&self) -> &ObjectId {
        &self.id
    }

    /// Current size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if no blob was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `blob` still fits under [`PackBuilder::MAX_LEN`].
    pub fn fits(&self, blob: &EncodedBlob) -> bool {
        fits(self.len, blob)
    }

    /// Appends a blob and returns its entry.
    ///
    /// # Errors
    /// [`RepoError::InvalidInput`] as [`PackBuilder::push`]; storage errors, after which
    /// the pack can no longer be finished.
    pub fn push(&mut self, blob: &EncodedBlob) -> Result<PackEntry, RepoError> {
        if self.broken {
            return Err(self.broken_error());
        }
        let entry = next_entry(&self.id, self.blob_type, self.len, blob)?;
        if let Err(e) = self.writer.append(&blob.bytes) {
            self.broken = true;
            return Err(e.into());
        }
        self.len += blob.bytes.len();
        self.entries.push(entry);
        Ok(entry)
    }

    /// Stores the pack, durably, and returns its entries in file order.
    ///
    /// # Errors
    /// Storage errors, or an earlier failed [`PackWriter::push`]; nothing is stored then.
    pub fn finish(self) -> Result<Vec<PackEntry>, RepoError> {
        if self.broken {
            return Err(self.broken_error());
        }
        self.writer.commit()?;
        Ok(self.entries)
    }

    fn broken_error(&self) -> RepoError {
        RepoError::InvalidInput(format!(
            "pack {} was not written whole after a storage error",
            self.id
        ))
    }
}

/// Checks that `data`, the start of the pack `object` (at least [`HEADER_LEN`] bytes,
/// or all of it), is the header of a pack named `id`.
pub(crate) fn check_pack_header(data: &[u8], id: &ObjectId, object: &str) -> Result<(), RepoError> {
    let h = Header::decode(data, ObjectType::Pack, object)?;
    if h.id != *id.as_bytes() {
        return Err(RepoError::corrupt(
            object,
            "the id in its header differs from its name",
        ));
    }
    Ok(())
}

/// Frames the entry at offset `pos` of the pack `object`, `pack_len` bytes long, from
/// `data`, its bytes from `pos` on (at least [`crate::ENTRY_HEADER_LEN`] of them, or up
/// to the end): the entry must be a blob, fit in the pack, and be long enough to be
/// sealed.
pub(crate) fn frame_entry(
    data: &[u8],
    pos: u64,
    pack_len: u64,
    object: &str,
) -> Result<PackEntry, RepoError> {
    let header = EntryHeader::parse(data, &format!("{object} at offset {pos}"))?;
    let end = pos + header.entry_len();
    if end > pack_len || end > u64::from(u32::MAX) {
        return Err(RepoError::corrupt(
            object,
            format!(
                "entry at offset {pos} claims {} bytes, past the end of the {pack_len}-byte pack",
                header.entry_len(),
            ),
        ));
    }
    if (header.body_len as usize) < MIN_BODY_LEN {
        return Err(RepoError::corrupt(
            object,
            format!("entry at offset {pos} is too short to be sealed"),
        ));
    }
    Ok(PackEntry {
        blob_type: header.blob_type,
        id: header.id,
        // Both fit: `end` is at most `u32::MAX`.
        offset: pos as u32,
        length: header.entry_len() as u32,
        // Unknown without decrypting; filled in by callers that decrypt.
        raw_len: 0,
    })
}

/// Lists a pack's entries from its bytes, without decrypting them.
///
/// Returns every well-framed entry up to the first damage, and the damage if any, so a
/// damaged pack still yields what can be salvaged. [`crate::PackReader`] does the same
/// from storage, a window at a time.
pub fn scan_pack(data: &[u8], id: &ObjectId) -> (Vec<PackEntry>, Option<RepoError>) {
    let object = format!("pack {id}");
    let mut entries = Vec::new();
    if let Err(e) = check_pack_header(data, id, &object) {
        return (entries, Some(e));
    }
    let mut pos = HEADER_LEN;
    while pos < data.len() {
        match frame_entry(&data[pos..], pos as u64, data.len() as u64, &object) {
            Ok(entry) => {
                pos += entry.length as usize;
                entries.push(entry);
            }
            Err(e) => return (entries, Some(e)),
        }
    }
    (entries, None)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use arca_backends::{BackendError, ErrorKind};

    use super::*;

    /// Storage seen through an [`ObjectWriter`]: what was appended, whether it was
    /// committed, and the append (counted from 0) that fails, if any.
    #[derive(Default)]
    struct Seen {
        bytes: Vec<u8>,
        committed: bool,
        fail_at: Option<usize>,
        appends: usize,
    }

    struct FakeWriter(Arc<Mutex<Seen>>);

    impl ObjectWriter for FakeWriter {
        fn append(&mut self, data: &[u8]) -> Result<(), BackendError> {
            let mut seen = self.0.lock().unwrap();
            let n = seen.appends;
            seen.appends += 1;
            if seen.fail_at == Some(n) {
                // Part of the piece reaches storage before the failure.
                seen.bytes.extend_from_slice(&data[..data.len() / 2]);
                return Err(BackendError::new(
                    ErrorKind::Permanent,
                    "write",
                    "fake",
                    "disk full",
                ));
            }
            seen.bytes.extend_from_slice(data);
            Ok(())
        }

        fn commit(self: Box<Self>) -> Result<(), BackendError> {
            self.0.lock().unwrap().committed = true;
            Ok(())
        }
    }

    fn blob(n: u8, len: usize) -> EncodedBlob {
        EncodedBlob {
            blob_type: BlobType::Data,
            id: BlobId([n; 32]),
            raw_len: len as u32 * 2,
            bytes: vec![n; len],
        }
    }

    fn writer(fail_at: Option<usize>) -> (PackWriter, Arc<Mutex<Seen>>) {
        let seen = Arc::new(Mutex::new(Seen {
            fail_at,
            ..Seen::default()
        }));
        let id = ObjectId::from_bytes([9; 32]);
        let w = PackWriter::start(id, BlobType::Data, Box::new(FakeWriter(seen.clone()))).unwrap();
        (w, seen)
    }

    #[test]
    fn a_written_pack_is_the_pack_a_builder_assembles() {
        let blobs = [blob(1, 100), blob(2, 70_000), blob(3, 1)];
        let (mut w, seen) = writer(None);
        let mut b = PackBuilder::new(ObjectId::from_bytes([9; 32]), BlobType::Data, 0);
        for blob in &blobs {
            assert_eq!(w.push(blob).unwrap(), b.push(blob).unwrap());
            assert_eq!(w.len(), b.len());
        }
        let entries = w.finish().unwrap();
        let pack = b.finish();
        let seen = seen.lock().unwrap();
        assert!(seen.committed);
        assert_eq!(seen.bytes, pack.bytes);
        assert_eq!(entries, pack.entries);
    }

    /// After a failed append the file may end in part of an entry: the pack is never
    /// committed, and nothing more is appended.
    #[test]
    fn a_pack_whose_append_failed_is_never_committed() {
        // Append 0 is the header; append 2 is the second blob.
        let (mut w, seen) = writer(Some(2));
        w.push(&blob(1, 100)).unwrap();
        assert!(w.push(&blob(2, 100)).is_err());
        assert!(w.push(&blob(3, 100)).is_err());
        assert_eq!(seen.lock().unwrap().appends, 3);
        assert!(w.finish().is_err());
        assert!(!seen.lock().unwrap().committed);
    }

    #[test]
    fn a_blob_of_another_type_is_refused_before_it_is_written() {
        let (mut w, seen) = writer(None);
        let mut tree = blob(1, 10);
        tree.blob_type = BlobType::Tree;
        assert!(matches!(w.push(&tree), Err(RepoError::InvalidInput(_))));
        assert_eq!(seen.lock().unwrap().appends, 1);
        assert!(w.is_empty());
        w.push(&blob(2, 10)).unwrap();
        assert_eq!(w.finish().unwrap().len(), 1);
    }
}
