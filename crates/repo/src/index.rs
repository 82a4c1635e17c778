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
}

/// The in-memory index: (blob type, blob id) -> location, with pack ids stored once.
///
/// Blobs are identified by type *and* id: a data blob and a tree blob with the same
/// plaintext have the same id but are different objects (a file whose content happens
/// to equal an encoded tree must not be mistaken for that tree, nor the reverse).
#[derive(Debug, Default, Clone)]
pub struct Index {
    packs: Vec<ObjectId>,
    pack_numbers: HashMap<ObjectId, u32>,
    blobs: HashMap<(BlobType, BlobId), Slot, BuildBlobIdHasher>,
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
            };
            self.blobs.entry((e.blob_type, e.id)).or_insert(slot);
        }
    }

    /// Records every pack of an index file.
    pub fn add_file(&mut self, file: &IndexFile) {
        for p in &file.packs {
            self.add_pack(p.id, &p.entries);
        }
    }

    fn location(&self, blob_type: BlobType, s: &Slot) -> Option<BlobLocation> {
        Some(BlobLocation {
            pack: *self.packs.get(s.pack as usize)?,
            blob_type,
            offset: s.offset,
            length: s.length,
            raw_len: s.raw_len,
        })
    }

    /// The location of a blob.
    pub fn get(&self, blob_type: BlobType, id: &BlobId) -> Option<BlobLocation> {
        self.location(blob_type, self.blobs.get(&(blob_type, *id))?)
    }

    /// Whether a blob is indexed.
    pub fn contains(&self, blob_type: BlobType, id: &BlobId) -> bool {
        self.blobs.contains_key(&(blob_type, *id))
    }

    /// Number of distinct blobs.
    pub fn len(&self) -> usize {
        self.blobs.len()
    }

    /// True if no blob is indexed.
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// Every pack an index file named, including packs whose blobs are all indexed
    /// elsewhere too.
    pub fn packs(&self) -> &[ObjectId] {
        &self.packs
    }

    /// Every indexed blob and its location, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (BlobId, BlobLocation)> + '_ {
        self.blobs
            .iter()
            .filter_map(|((t, id), s)| Some((*id, self.location(*t, s)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(blob_type: BlobType, id: u8, offset: u32) -> PackEntry {
        PackEntry {
            blob_type,
            id: BlobId([id; 32]),
            offset,
            length: 100,
            raw_len: 10,
        }
    }

    #[test]
    fn data_and_tree_blobs_with_one_id_are_different_blobs() {
        let mut index = Index::new();
        let (p1, p2) = (ObjectId::from_bytes([1; 32]), ObjectId::from_bytes([2; 32]));
        index.add_pack(p1, &[entry(BlobType::Data, 9, 40)]);
        assert!(index.contains(BlobType::Data, &BlobId([9; 32])));
        assert!(!index.contains(BlobType::Tree, &BlobId([9; 32])));
        index.add_pack(p2, &[entry(BlobType::Tree, 9, 40)]);
        assert_eq!(
            index.get(BlobType::Data, &BlobId([9; 32])).unwrap().pack,
            p1
        );
        assert_eq!(
            index.get(BlobType::Tree, &BlobId([9; 32])).unwrap().pack,
            p2
        );
        assert_eq!(index.len(), 2);
    }

    #[test]
    fn the_first_location_wins_and_every_pack_is_listed() {
        let mut index = Index::new();
        let (p1, p2) = (ObjectId::from_bytes([1; 32]), ObjectId::from_bytes([2; 32]));
        index.add_pack(p1, &[entry(BlobType::Data, 5, 40)]);
        index.add_pack(p2, &[entry(BlobType::Data, 5, 40)]);
        assert_eq!(
            index.get(BlobType::Data, &BlobId([5; 32])).unwrap().pack,
            p1
        );
        assert_eq!(index.packs(), &[p1, p2]);
        assert_eq!(index.iter().count(), 1);
    }
}
