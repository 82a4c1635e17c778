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

/// The tree flag in [`Entry::pack`]: pack numbers stay below it.
const TREE_BIT: u32 = 1 << 31;

/// One blob of the sorted table: 48 bytes.
#[derive(Clone, Copy)]
struct Entry {
    id: [u8; 32],
    /// The pack's number, with [`TREE_BIT`] set for tree blobs.
    pack: u32,
    offset: u32,
    length: u32,
    raw_len: u32,
}

impl Entry {
    fn new(blob_type: BlobType, id: &BlobId, s: &Slot) -> Self {
        Self {
            id: id.0,
            pack: s.pack | type_bit(blob_type),
            offset: s.offset,
            length: s.length,
            raw_len: s.raw_len,
        }
    }

    fn is_tree(&self) -> bool {
        self.pack & TREE_BIT != 0
    }

    /// The table's order: id, then type (data before tree). The first eight bytes are
    /// compared as one number: they differ for all but the rarest neighbours.
    fn cmp_key(&self, id: &[u8; 32], tree: bool) -> std::cmp::Ordering {
        prefix(&self.id)
            .cmp(&prefix(id))
            .then_with(|| self.id[8..].cmp(&id[8..]))
            .then(self.is_tree().cmp(&tree))
    }

    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.cmp_key(&other.id, other.is_tree())
    }

    fn blob_type(&self) -> BlobType {
        if self.is_tree() {
            BlobType::Tree
        } else {
            BlobType::Data
        }
    }

    fn slot(&self) -> Slot {
        Slot {
            pack: self.pack & !TREE_BIT,
            offset: self.offset,
            length: self.length,
            raw_len: self.raw_len,
        }
    }
}

/// The first eight bytes of an id, as a number ordered like the bytes.
fn prefix(id: &[u8; 32]) -> u64 {
    u64::from_be_bytes([id[0], id[1], id[2], id[3], id[4], id[5], id[6], id[7]])
}

fn type_bit(blob_type: BlobType) -> u32 {
    match blob_type {
        BlobType::Data => 0,
        BlobType::Tree => TREE_BIT,
    }
}

/// The bucket of `id` in a fan-out table of `bits` bits: its first bits.
fn bucket(id: &[u8; 32], bits: u32) -> usize {
    if bits == 0 {
        return 0;
    }
    (u32::from_be_bytes([id[0], id[1], id[2], id[3]]) >> (32 - bits)) as usize
}

/// Blobs added since the last merge are merged into the sorted table once they number
/// this many, or half the table if more.
const MERGE_AT_LEAST: usize = 1 << 14;

/// The in-memory index: (blob type, blob id) -> location, with pack ids stored once.
///
/// Blobs are identified by type *and* id: a data blob and a tree blob with the same
/// plaintext have the same id but are different objects (a file whose content happens
/// to equal an encoded tree must not be mistaken for that tree, nor the reverse).
///
/// Most blobs sit in a table sorted by id, 48 bytes each, found through a fan-out table
/// of the ids' first bits (ids are keyed hashes, so buckets stay even). Blobs added
/// since are kept in a hash map and merged into the table in batches (and by
/// [`Index::compact`]), so adding stays cheap.
#[derive(Default, Clone)]
pub struct Index {
    packs: Vec<ObjectId>,
    pack_numbers: HashMap<ObjectId, u32>,
    sorted: Vec<Entry>,
    /// `fanout[b]` is the first position in `sorted` of bucket `b`; one more at the end.
    fanout: Vec<u32>,
    fanout_bits: u32,
    recent: HashMap<(BlobType, BlobId), Slot, BuildBlobIdHasher>,
}

/// Builds an [`Index`] from many index files at once, as opening a repository does:
/// entries are collected, then sorted once, which is cheaper than adding them one by
/// one. The first location of a blob wins, as with [`Index::add_pack`].
#[derive(Default)]
pub struct IndexBuilder {
    index: Index,
    entries: Vec<Entry>,
}

impl std::fmt::Debug for IndexBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexBuilder")
            .field("entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl IndexBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the entries of `pack`.
    pub fn add_pack(&mut self, pack: ObjectId, entries: &[PackEntry]) {
        let number = self.index.pack_number(pack);
        if number & TREE_BIT != 0 {
            // Beyond 2^31 packs: the slow path keeps them in the hash map.
            self.index.add_pack(pack, entries);
            return;
        }
        self.entries.extend(entries.iter().map(|e| {
            let slot = Slot {
                pack: number,
                offset: e.offset,
                length: e.length,
                raw_len: e.raw_len,
            };
            Entry::new(e.blob_type, &e.id, &slot)
        }));
    }

    /// Adds every pack of an index file.
    pub fn add_file(&mut self, file: &IndexFile) {
        for p in &file.packs {
            self.add_pack(p.id, &p.entries);
        }
    }

    /// The index.
    pub fn finish(self) -> Index {
        let Self {
            mut index,
            mut entries,
        } = self;
        // Stable: of equal blobs, the one added first stays first, and is kept.
        entries.sort_by(Entry::cmp);
        entries.dedup_by(|later, first| later.cmp(first).is_eq());
        entries.shrink_to_fit();
        // (Beyond 2^31 packs only.) A blob also in the table keeps the table's location.
        index.recent.retain(|(t, id), _| {
            let tree = *t == BlobType::Tree;
            entries
                .binary_search_by(|e| e.cmp_key(&id.0, tree))
                .is_err()
        });
        index.sorted = entries;
        index.build_fanout();
        index
    }
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("packs", &self.packs.len())
            .field("blobs", &self.len())
            .finish_non_exhaustive()
    }
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
        self.recent.reserve(entries.len());
        for e in entries {
            if self.find_sorted(e.blob_type, &e.id).is_some() {
                continue;
            }
            let slot = Slot {
                pack: number,
                offset: e.offset,
                length: e.length,
                raw_len: e.raw_len,
            };
            self.recent.entry((e.blob_type, e.id)).or_insert(slot);
        }
        if self.recent.len() >= MERGE_AT_LEAST.max(self.sorted.len() / 2) {
            self.compact();
        }
    }

    /// Records every pack of an index file.
    pub fn add_file(&mut self, file: &IndexFile) {
        for p in &file.packs {
            self.add_pack(p.id, &p.entries);
        }
    }

    /// Moves the blobs added since the last merge into the sorted table, where each
    /// costs 48 bytes instead of a hash map entry's 80 or more. [`Index::add_pack`]
    /// does it by itself once enough blobs wait; lookups work either way.
    pub fn compact(&mut self) {
        if self.recent.is_empty() {
            return;
        }
        // A pack number that reaches the tree flag (over 2^31 packs) cannot be packed
        // into an entry: such blobs stay in the hash map.
        let mut added: Vec<Entry> = Vec::with_capacity(self.recent.len());
        self.recent.retain(|(t, id), s| {
            if s.pack & TREE_BIT != 0 {
                return true;
            }
            added.push(Entry::new(*t, id, s));
            false
        });
        self.recent.shrink_to_fit();
        added.sort_unstable_by(Entry::cmp);
        // Merge from the back, in place: the table grows by the added entries and each
        // step fills the highest free position with the larger of the two candidates.
        let (m, r) = (self.sorted.len(), added.len());
        self.sorted.reserve_exact(r);
        self.sorted.extend_from_slice(&added);
        let (mut i, mut j) = (m, r);
        while j > 0 {
            let k = i + j - 1;
            if i > 0 && self.sorted[i - 1].cmp(&added[j - 1]).is_gt() {
                self.sorted[k] = self.sorted[i - 1];
                i -= 1;
            } else {
                self.sorted[k] = added[j - 1];
                j -= 1;
            }
        }
        self.build_fanout();
    }

    /// Four to eight entries per bucket on average, at most 2^24 buckets.
    fn build_fanout(&mut self) {
        let n = self.sorted.len();
        let bits = (usize::BITS - (n / 8).leading_zeros()).min(24);
        let buckets = 1usize << bits;
        let mut fanout = Vec::with_capacity(buckets + 1);
        let mut pos = 0usize;
        for b in 0..buckets {
            while pos < n && bucket(&self.sorted[pos].id, bits) < b {
                pos += 1;
            }
            fanout.push(pos as u32);
        }
        fanout.push(n as u32);
        self.fanout = fanout;
        self.fanout_bits = bits;
    }

    fn find_sorted(&self, blob_type: BlobType, id: &BlobId) -> Option<&Entry> {
        let b = bucket(&id.0, self.fanout_bits);
        let lo = *self.fanout.get(b)? as usize;
        let hi = *self.fanout.get(b + 1)? as usize;
        let tree = blob_type == BlobType::Tree;
        // A bucket holds a few entries: a scan beats a binary search.
        self.sorted
            .get(lo..hi)?
            .iter()
            .find(|e| e.cmp_key(&id.0, tree).is_ge())
            .filter(|e| e.cmp_key(&id.0, tree).is_eq())
    }

    fn slot(&self, blob_type: BlobType, id: &BlobId) -> Option<Slot> {
        match self.find_sorted(blob_type, id) {
            Some(e) => Some(e.slot()),
            None if self.recent.is_empty() => None,
            None => self.recent.get(&(blob_type, *id)).copied(),
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
        self.location(blob_type, &self.slot(blob_type, id)?)
    }

    /// Whether a blob is indexed.
    pub fn contains(&self, blob_type: BlobType, id: &BlobId) -> bool {
        self.slot(blob_type, id).is_some()
    }

    /// Records every pack of `other` (an index of packs written since this one was
    /// loaded), in `other`'s order, with the blobs `other` locates in it.
    pub fn extend_from(&mut self, other: &Index) {
        for pack in other.indexed_packs() {
            self.add_pack(pack.id, &pack.entries);
        }
    }

    /// Every pack, in [`Index::packs`] order, with the entries this index locates in it
    /// sorted by offset (none for a pack whose blobs are all located elsewhere).
    pub fn indexed_packs(&self) -> Vec<IndexedPack> {
        let mut by_pack: HashMap<ObjectId, Vec<PackEntry>> = HashMap::new();
        for (id, loc) in self.iter() {
            by_pack.entry(loc.pack).or_default().push(PackEntry {
                blob_type: loc.blob_type,
                id,
                offset: loc.offset,
                length: loc.length,
                raw_len: loc.raw_len,
            });
        }
        self.packs
            .iter()
            .map(|id| {
                let mut entries = by_pack.remove(id).unwrap_or_default();
                entries.sort_by_key(|e| e.offset);
                IndexedPack { id: *id, entries }
            })
            .collect()
    }

    /// Number of distinct blobs.
    pub fn len(&self) -> usize {
        self.sorted.len() + self.recent.len()
    }

    /// True if no blob is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every pack an index file named, including packs whose blobs are all indexed
    /// elsewhere too.
    pub fn packs(&self) -> &[ObjectId] {
        &self.packs
    }

    /// Every indexed blob and its location, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (BlobId, BlobLocation)> + '_ {
        let sorted = self
            .sorted
            .iter()
            .filter_map(|e| Some((BlobId(e.id), self.location(e.blob_type(), &e.slot())?)));
        let recent = self
            .recent
            .iter()
            .filter_map(|((t, id), s)| Some((*id, self.location(*t, s)?)));
        sorted.chain(recent)
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
    fn an_index_extended_from_another_finds_what_that_one_finds() {
        let (p1, p2, p3) = (
            ObjectId::from_bytes([1; 32]),
            ObjectId::from_bytes([2; 32]),
            ObjectId::from_bytes([3; 32]),
        );
        let mut index = Index::new();
        index.add_pack(p1, &[entry(BlobType::Data, 1, 40)]);
        let mut session = Index::new();
        session.add_pack(
            p2,
            &[entry(BlobType::Data, 2, 40), entry(BlobType::Tree, 3, 140)],
        );
        // A blob also in `index` keeps its first location there.
        session.add_pack(p3, &[entry(BlobType::Data, 1, 80)]);
        index.extend_from(&session);
        assert_eq!(index.packs(), &[p1, p2, p3]);
        assert_eq!(index.len(), 3);
        let loc = index.get(BlobType::Tree, &BlobId([3; 32])).unwrap();
        assert_eq!((loc.pack, loc.offset), (p2, 140));
        assert_eq!(
            index.get(BlobType::Data, &BlobId([2; 32])).unwrap().pack,
            p2
        );
        assert_eq!(
            index.get(BlobType::Data, &BlobId([1; 32])).unwrap().pack,
            p1
        );
    }

    #[test]
    fn indexed_packs_group_entries_by_pack_in_pack_order() {
        let (p1, p2) = (ObjectId::from_bytes([2; 32]), ObjectId::from_bytes([1; 32]));
        let mut index = Index::new();
        index.add_pack(
            p1,
            &[entry(BlobType::Data, 7, 300), entry(BlobType::Tree, 8, 40)],
        );
        // Every blob of p2 is located in p1 already.
        index.add_pack(p2, &[entry(BlobType::Data, 7, 40)]);
        let packs = index.indexed_packs();
        assert_eq!(packs.len(), 2);
        assert_eq!((packs[0].id, packs[1].id), (p1, p2));
        let offsets: Vec<u32> = packs[0].entries.iter().map(|e| e.offset).collect();
        assert_eq!(offsets, [40, 300]);
        assert!(packs[1].entries.is_empty());
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
        // The same once merged into the sorted table.
        index.compact();
        index.add_pack(p2, &[entry(BlobType::Data, 5, 80)]);
        let loc = index.get(BlobType::Data, &BlobId([5; 32])).unwrap();
        assert_eq!((loc.pack, loc.offset), (p1, 40));
        assert_eq!(index.len(), 1);
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// The index answers like a map where the first location of each (type, id)
        /// wins, whatever the mix of adds and merges: ids drawn from a small space so
        /// that repeats, shared first bytes and both types of one id all occur.
        #[test]
        fn behaves_like_a_first_wins_map(
            ops in proptest::collection::vec(
                (proptest::collection::vec((any::<bool>(), 0u16..600, 40u32..1000), 0..300), any::<bool>()),
                1..12,
            ),
        ) {
            let mut index = Index::new();
            let mut model: HashMap<(BlobType, [u8; 32]), (ObjectId, u32)> = HashMap::new();
            let id_of = |n: u16| {
                let mut id = [0u8; 32];
                // Few distinct first bytes: buckets hold many entries.
                id[0] = (n % 3) as u8;
                id[1..3].copy_from_slice(&n.to_be_bytes());
                id[31] = (n % 7) as u8;
                id
            };
            for (k, (entries, compact)) in ops.into_iter().enumerate() {
                let pack = ObjectId::from_bytes([k as u8 + 1; 32]);
                let entries: Vec<PackEntry> = entries
                    .into_iter()
                    .map(|(tree, n, offset)| PackEntry {
                        blob_type: if tree { BlobType::Tree } else { BlobType::Data },
                        id: BlobId(id_of(n)),
                        offset,
                        length: 100,
                        raw_len: u32::from(n),
                    })
                    .collect();
                for e in &entries {
                    model.entry((e.blob_type, e.id.0)).or_insert((pack, e.offset));
                }
                index.add_pack(pack, &entries);
                if compact {
                    index.compact();
                }
                prop_assert_eq!(index.len(), model.len());
            }
            for n in 0..600u16 {
                for t in [BlobType::Data, BlobType::Tree] {
                    let id = BlobId(id_of(n));
                    let got = index.get(t, &id).map(|l| (l.pack, l.offset));
                    prop_assert_eq!(got, model.get(&(t, id.0)).copied());
                    prop_assert_eq!(index.contains(t, &id), got.is_some());
                }
            }
            let mut listed: Vec<(BlobType, [u8; 32], ObjectId, u32)> = index
                .iter()
                .map(|(id, l)| (l.blob_type, id.0, l.pack, l.offset))
                .collect();
            listed.sort_by_key(|e| (e.1, e.0 == BlobType::Tree));
            let mut expected: Vec<(BlobType, [u8; 32], ObjectId, u32)> = model
                .iter()
                .map(|((t, id), (p, o))| (*t, *id, *p, *o))
                .collect();
            expected.sort_by_key(|e| (e.1, e.0 == BlobType::Tree));
            prop_assert_eq!(listed, expected);
        }
    }
}
