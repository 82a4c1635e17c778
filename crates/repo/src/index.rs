//! Index files (which blob is where) and the in-memory index built from them.
//!
//! Index payload (inside a sealed file of type 3), all integers little endian:
//!
//! ```text
//! version (u16) = 1 | pack count (u32)
//! per pack:  pack id (32) | entry count (u32)
//! per entry: object type (1) | blob id (32) | offset (u32) | length (u32) | plaintext length (u32)
//! ```

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use arca_backends::ObjectId;

use crate::RepoError;
use crate::blob::{BlobId, BlobType, BuildBlobIdHasher, ENTRY_HEADER_LEN, MIN_BODY_LEN};
use crate::header::HEADER_LEN;
use crate::pack::PackEntry;
use crate::wire::{Reader, expect_version, split_version};

const INDEX_VERSION: u16 = 1;
const ENTRY_LEN: usize = 1 + 32 + 4 + 4 + 4;

/// The packs described by one index file and the entries of each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexFile {
    /// Packs and their entries.
    pub packs: Vec<IndexedPack>,
}

/// One pack's entries in an index file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedPack {
    /// The pack.
    pub id: ObjectId,
    /// Its blobs.
    pub entries: Vec<PackEntry>,
}

impl IndexFile {
    /// Number of blob entries in the file.
    pub fn blob_count(&self) -> usize {
        self.packs.iter().map(|p| p.entries.len()).sum()
    }

    /// Encodes the payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(6 + self.packs.len() * 36 + self.blob_count() * ENTRY_LEN);
        out.extend_from_slice(&INDEX_VERSION.to_le_bytes());
        out.extend_from_slice(&(self.packs.len() as u32).to_le_bytes());
        for pack in &self.packs {
            out.extend_from_slice(pack.id.as_bytes());
            out.extend_from_slice(&(pack.entries.len() as u32).to_le_bytes());
            for e in &pack.entries {
                out.push(e.blob_type.code());
                out.extend_from_slice(&e.id.0);
                out.extend_from_slice(&e.offset.to_le_bytes());
                out.extend_from_slice(&e.length.to_le_bytes());
                out.extend_from_slice(&e.raw_len.to_le_bytes());
            }
        }
        out
    }

    /// Decodes a payload, checking every entry is plausible.
    ///
    /// # Errors
    /// [`RepoError::Corrupt`] naming `object`, or [`RepoError::UnsupportedVersion`].
    pub fn decode(payload: &[u8], object: &str) -> Result<Self, RepoError> {
        let (version, body) = split_version(payload, object)?;
        expect_version(version, INDEX_VERSION, object)?;
        let mut r = Reader::new(body, object);
        let pack_count = r.u32()? as usize;
        if pack_count > r.remaining() / 36 {
            return Err(RepoError::corrupt(
                object,
                format!("claims {pack_count} packs, too many for its size"),
            ));
        }
        let mut packs = Vec::with_capacity(pack_count);
        for _ in 0..pack_count {
            let id = ObjectId::from_bytes(r.array()?);
            let n = r.u32()? as usize;
            if n > r.remaining() / ENTRY_LEN {
                return Err(RepoError::corrupt(
                    object,
                    format!("pack {id} claims {n} entries, too many for the file's size"),
                ));
            }
            let mut entries = Vec::with_capacity(n);
            for _ in 0..n {
                let code = r.u8()?;
                let blob_type = BlobType::from_code(code).ok_or_else(|| {
                    RepoError::corrupt(
                        object,
                        format!("entry with object type {code} in pack {id}"),
                    )
                })?;
                let entry = PackEntry {
                    blob_type,
                    id: BlobId(r.array()?),
                    offset: r.u32()?,
                    length: r.u32()?,
                    raw_len: r.u32()?,
                };
                let plausible = entry.offset as usize >= HEADER_LEN
                    && entry.length as usize >= ENTRY_HEADER_LEN + MIN_BODY_LEN
                    && entry.offset.checked_add(entry.length).is_some();
                if !plausible {
                    return Err(RepoError::corrupt(
                        object,
                        format!(
                            "entry for blob {} in pack {id} has impossible offset {} / length {}",
                            entry.id.short(),
                            entry.offset,
                            entry.length
                        ),
                    ));
                }
                entries.push(entry);
            }
            packs.push(IndexedPack { id, entries });
        }
        r.finish()?;
        Ok(Self { packs })
    }
}

/// Where a blob is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLocation {
    /// The pack that holds it.
    pub pack: ObjectId,
    /// The blob's type.
    pub blob_type: BlobType,
    /// Offset of its entry in the pack.
    pub offset: u32,
    /// Length of its entry.
    pub length: u32,
    /// Length of its plaintext.
    pub raw_len: u32,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    pack: u32,
    offset: u32,
    length: u32,
    raw_len: u32,
    blob_type: BlobType,
}

/// The in-memory index: blob id -> location, with pack ids stored once.
#[derive(Debug, Default, Clone)]
pub struct Index {
    packs: Vec<ObjectId>,
    pack_numbers: HashMap<ObjectId, u32>,
    blobs: HashMap<BlobId, Slot, BuildBlobIdHasher>,
    duplicates: u64,
}

impl Index {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    fn pack_number(&mut self, pack: ObjectId) -> u32 {
        if let Some(n) = self.pack_numbers.get(&pack) {
            return *n;
        }
        let n = self.packs.len() as u32;
        self.packs.push(pack);
        self.pack_numbers.insert(pack, n);
        n
    }

    /// Records the entries of `pack`. A blob already indexed keeps its first location
    /// (the other copy is redundant and left for prune).
    pub fn add_pack(&mut self, pack: ObjectId, entries: &[PackEntry]) {
        let number = self.pack_number(pack);
        self.blobs.reserve(entries.len());
        for e in entries {
            let slot = Slot {
                pack: number,
                offset: e.offset,
                length: e.length,
                raw_len: e.raw_len,
                blob_type: e.blob_type,
            };
            match self.blobs.entry(e.id) {
                Entry::Occupied(_) => self.duplicates += 1,
                Entry::Vacant(v) => {
                    v.insert(slot);
                }
            }
        }
    }

    /// Records every pack of an index file.
    pub fn add_file(&mut self, file: &IndexFile) {
        for p in &file.packs {
            self.add_pack(p.id, &p.entries);
        }
    }

    /// The location of a blob.
    pub fn get(&self, id: &BlobId) -> Option<BlobLocation> {
        let s = self.blobs.get(id)?;
        Some(BlobLocation {
            pack: *self.packs.get(s.pack as usize)?,
            blob_type: s.blob_type,
            offset: s.offset,
            length: s.length,
            raw_len: s.raw_len,
        })
    }

    /// Whether a blob is indexed.
    pub fn contains(&self, id: &BlobId) -> bool {
        self.blobs.contains_key(id)
    }

    /// Number of distinct blobs.
    pub fn len(&self) -> usize {
        self.blobs.len()
    }

    /// True if no blob is indexed.
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// Number of entries that named an already indexed blob.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Every pack that holds at least one indexed blob.
    pub fn packs(&self) -> &[ObjectId] {
        &self.packs
    }

    /// Every indexed blob and its location, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (BlobId, BlobLocation)> + '_ {
        self.blobs.iter().filter_map(|(id, s)| {
            Some((
                *id,
                BlobLocation {
                    pack: *self.packs.get(s.pack as usize)?,
                    blob_type: s.blob_type,
                    offset: s.offset,
                    length: s.length,
                    raw_len: s.raw_len,
                },
            ))
        })
    }
}
