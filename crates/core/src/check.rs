//! `check`: verify the repository's structure and, optionally, every stored byte.
//!
//! Structure: every index and snapshot file authenticates and decodes; every pack the
//! index names exists and is long enough; every tree of every snapshot is present and
//! decodes; every chunk a file references is indexed. With `read_data`, every indexed
//! pack is read in full, every entry authenticated and decompressed, its id recomputed
//! from the plaintext, and compared with the index. Problems name the object and, where
//! a snapshot depends on it, the snapshot and path.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use arca_backends::{FileKind, ObjectId};
use arca_repo::{
    BlobId, BlobLocation, BlobType, BuildBlobIdHasher, NodeKind, PACK_READ_WINDOW, PackEntry,
    PackReader, RepoError,
};

use crate::content::bundle_slice;
use crate::progress::{CancelToken, CheckProgress};
use crate::sync::lock;
use crate::{Error, Repository, Result};

/// Which packs `check` reads in full.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DataSubset {
    /// Part `n` of `of` (1-based): packs whose id, as a number, is `n - 1` modulo
    /// `of`. Running parts 1 to `of` reads every pack once.
    Part {
        /// Which part.
        n: u32,
        /// Of how many.
        of: u32,
    },
    /// This fraction of the packs (0 to 1), the next ones in id order after where the
    /// previous run stopped ([`CheckOptions::rotation`]).
    Fraction(f64),
    /// Packs totalling about this many bytes, rotating likewise.
    Bytes(u64),
}

impl DataSubset {
    /// Parses `1/5`, `10%` or a size such as `2G` (binary units).
    ///
    /// # Errors
    /// [`crate::ErrorKind::InvalidInput`] naming the text.
    pub fn parse(text: &str, parse_size: impl Fn(&str) -> Option<u64>) -> Result<Self> {
        let bad = || {
            Error::invalid(format!(
                "invalid subset {text:?}: use n/m (e.g. 1/5), a percentage (10%) or a size (2G)"
            ))
        };
        let t = text.trim();
        if let Some((n, of)) = t.split_once('/') {
            let (n, of): (u32, u32) = (
                n.parse().map_err(|_| bad())?,
                of.parse().map_err(|_| bad())?,
            );
            if n == 0 || of == 0 || n > of {
                return Err(bad());
            }
            return Ok(Self::Part { n, of });
        }
        if let Some(p) = t.strip_suffix('%') {
            let p: f64 = p.parse().map_err(|_| bad())?;
            if !(p > 0.0 && p <= 100.0) {
                return Err(bad());
            }
            return Ok(Self::Fraction(p / 100.0));
        }
        parse_size(t)
            .filter(|b| *b > 0)
            .map(Self::Bytes)
            .ok_or_else(bad)
    }
}

/// Settings for [`Repository::check`].
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// Read, authenticate, decompress and re-hash every blob.
    pub read_data: bool,
    /// Read only this subset of the packs (implies reading data).
    pub read_data_subset: Option<DataSubset>,
    /// Where a rotating subset starts (the previous report's `next_rotation`).
    pub rotation: u64,
    /// Worker threads for reading data; 0 means one per CPU.
    pub threads: usize,
    /// Set to stop early.
    pub cancel: CancelToken,
}

/// One problem found by `check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The object concerned, e.g. `pack 1a2b…` or `snapshot 3c4d… /home/x/file`.
    pub object: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.object, self.message)
    }
}

/// What `check` found.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    /// Damage: the repository is not fully restorable while any is present.
    pub errors: Vec<Problem>,
    /// Harmless findings, e.g. packs left by an interrupted backup.
    pub notes: Vec<String>,
    /// Snapshots checked.
    pub snapshots: u64,
    /// Distinct trees checked.
    pub trees: u64,
    /// Blobs in the index.
    pub blobs: u64,
    /// Packs in the index.
    pub packs: u64,
    /// Packs read in full (with `read_data`).
    pub packs_read: u64,
    /// Bytes read in full (with `read_data`).
    pub bytes_read: u64,
    /// Where the next rotating subset starts (pass it back as [`CheckOptions::rotation`]).
    pub next_rotation: u64,
}

/// A directory met by [`Repository::walk_trees`].
enum TreeVisit<'t> {
    /// Its tree, by id.
    Read(BlobId, &'t arca_repo::Tree),
    /// Its tree's id and why it could not be read.
    Unreadable(BlobId, Error),
}

/// At most this many files are named per check; the rest are counted.
const MAX_FILES_NAMED: usize = 1000;

/// The index's entries of one pack, by offset.
type EntriesAt = HashMap<u32, PackEntry>;

/// What reading packs found: problems, damaged blobs, packs and bytes read.
#[derive(Default)]
struct PackFindings {
    problems: Vec<Problem>,
    damaged: Vec<(BlobId, String)>,
    packs: u64,
    bytes: u64,
}

impl CheckReport {
    /// True if no damage was found.
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }

    fn error(&mut self, object: impl Into<String>, message: impl Into<String>) {
        self.errors.push(Problem {
            object: object.into(),
            message: message.into(),
        });
    }
}

impl Repository {
    /// Checks the repository; see the module documentation.
    ///
    /// # Errors
    /// Only failures that stop the check itself (listing the storage, cancellation);
    /// damage is reported in the [`CheckReport`].
    pub fn check(
        &self,
        options: &CheckOptions,
        progress: &dyn CheckProgress,
    ) -> Result<CheckReport> {
        let mut report = CheckReport {
            blobs: self.index.len() as u64,
            packs: self.index.packs().len() as u64,
            ..Default::default()
        };
        for (id, e) in &self.index_errors {
            report.error(format!("index {id}"), e.to_string());
        }

        // Packs named by the index must exist and hold every indexed entry.
        let stored: HashMap<ObjectId, u64> = self.repo.list(FileKind::Pack)?.into_iter().collect();
        let mut needed: HashMap<ObjectId, u64> = HashMap::new();
        for (_, loc) in self.index.iter() {
            let end = u64::from(loc.offset) + u64::from(loc.length);
            let e = needed.entry(loc.pack).or_default();
            *e = (*e).max(end);
        }
        let mut missing_packs = HashSet::new();
        for (pack, end) in &needed {
            match stored.get(pack) {
                None => {
                    report.error(
                        format!("pack {pack}"),
                        "missing: the index lists blobs in it",
                    );
                    missing_packs.insert(*pack);
                }
                Some(&size) if size < *end => {
                    report.error(
                        format!("pack {pack}"),
                        format!("truncated: {size} bytes, the index needs {end}"),
                    );
                }
                Some(_) => {}
            }
        }
        let indexed: HashSet<ObjectId> = self.index.packs().iter().copied().collect();
        let unindexed = stored.keys().filter(|p| !indexed.contains(p)).count();
        if unindexed > 0 {
            report.notes.push(format!(
                "{unindexed} pack(s) are not in any index (left by an interrupted backup); they hold no data any snapshot needs"
            ));
        }
        let redundant_missing = indexed
            .iter()
            .filter(|p| !needed.contains_key(p) && !stored.contains_key(p))
            .count();
        if redundant_missing > 0 {
            report.notes.push(format!(
                "{redundant_missing} indexed pack(s) are missing but held only copies of blobs stored elsewhere"
            ));
        }

        let mut damaged: HashMap<BlobId, String, BuildBlobIdHasher> = HashMap::default();
        if options.read_data || options.read_data_subset.is_some() {
            let needed = match options.read_data_subset {
                Some(subset) => {
                    let (chosen, next) = choose_subset(&needed, subset, options.rotation);
                    report.next_rotation = next;
                    chosen
                }
                None => needed,
            };
            self.read_all_packs(
                &needed,
                &stored,
                options,
                progress,
                &mut report,
                &mut damaged,
            )?;
        }

        let list = self.snapshots_lenient()?;
        let snapshots = list.snapshots;
        for (id, e) in list.damaged {
            report.error(format!("snapshot {id}"), e.to_string());
        }
        report.snapshots = snapshots.len() as u64;
        // `loc`: where the index puts chunk `id`.
        let chunk_problem = |id: &BlobId, loc: Option<&BlobLocation>| -> Option<String> {
            match loc {
                None => Some("is missing".to_owned()),
                Some(loc) if missing_packs.contains(&loc.pack) => {
                    Some(format!("is in missing pack {}", loc.pack))
                }
                Some(_) => damaged.get(id).map(|why| format!("is damaged: {why}")),
            }
        };

        // First pass: every tree once, to find unreadable trees and bad chunks.
        let mut seen_trees: HashSet<BlobId, BuildBlobIdHasher> = HashSet::default();
        let mut bad_chunks: HashMap<BlobId, String, BuildBlobIdHasher> = HashMap::default();
        for info in &snapshots {
            let snap = format!("snapshot {}", info.id.short());
            self.walk_trees(
                info.snapshot.tree,
                &options.cancel,
                &mut |path, tree| match tree {
                    TreeVisit::Unreadable(tree_id, e) => {
                        if seen_trees.insert(tree_id) {
                            report.error(
                                format!("{snap} {}", path.display()),
                                format!(
                                    "directory listing (tree {}) unreadable: {e}",
                                    tree_id.short()
                                ),
                            );
                        }
                        false
                    }
                    TreeVisit::Read(tree_id, tree) => {
                        if !seen_trees.insert(tree_id) {
                            return false;
                        }
                        report.trees += 1;
                        for node in tree.nodes().iter().filter(|n| n.kind == NodeKind::File) {
                            for id in &node.content {
                                let loc = self.index.get(BlobType::Data, id);
                                if let Some(why) = chunk_problem(id, loc.as_ref()) {
                                    bad_chunks.insert(*id, why);
                                }
                                // A bundled file's slice must lie in its bundle (a missing
                                // bundle is a bad chunk, above).
                                let slice = node.bundle_offset.zip(loc).map(|(offset, loc)| {
                                    bundle_slice(offset, node.size, loc.raw_len as usize)
                                });
                                if let Some(Err(why)) = slice {
                                    report.error(
                                        format!(
                                            "{snap} {}",
                                            path.join(OsStr::from_bytes(&node.name)).display()
                                        ),
                                        format!("cannot be restored: bundle {}: {why}", id.short()),
                                    );
                                }
                            }
                        }
                        true
                    }
                },
            )?;
        }

        // Second pass, only if something is bad: name every file in every snapshot that
        // needs a bad chunk (shared trees are walked again, once per place they occur).
        if !bad_chunks.is_empty() {
            let mut named = 0usize;
            let mut unnamed = 0usize;
            for info in &snapshots {
                let snap = format!("snapshot {}", info.id.short());
                self.walk_trees(info.snapshot.tree, &options.cancel, &mut |path, tree| {
                    let TreeVisit::Read(_, tree) = tree else {
                        return false;
                    };
                    for node in tree.nodes().iter().filter(|n| n.kind == NodeKind::File) {
                        let Some((id, why)) = node
                            .content
                            .iter()
                            .find_map(|id| bad_chunks.get(id).map(|w| (id, w)))
                        else {
                            continue;
                        };
                        if named < MAX_FILES_NAMED {
                            named += 1;
                            report.error(
                                format!(
                                    "{snap} {}",
                                    path.join(OsStr::from_bytes(&node.name)).display()
                                ),
                                format!("cannot be restored: chunk {} {why}", id.short()),
                            );
                        } else {
                            unnamed += 1;
                        }
                    }
                    true
                })?;
            }
            if unnamed > 0 {
                report.error(
                    "snapshots",
                    format!("{unnamed} more files need missing or damaged chunks"),
                );
            }
        }
        Ok(report)
    }

    /// Walks the trees below `root` depth first. `visit` gets each directory's path and
    /// its tree (or the tree's id and why it could not be read) and returns whether to
    /// descend into its subdirectories.
    fn walk_trees(
        &self,
        root: BlobId,
        cancel: &crate::CancelToken,
        visit: &mut dyn FnMut(&std::path::Path, TreeVisit<'_>) -> bool,
    ) -> Result<()> {
        let mut stack = vec![(PathBuf::from("/"), root)];
        while let Some((path, tree_id)) = stack.pop() {
            if cancel.is_cancelled() {
                return Err(Error::interrupted());
            }
            match self.load_tree(&tree_id) {
                Err(e) => {
                    visit(&path, TreeVisit::Unreadable(tree_id, e));
                }
                Ok(tree) => {
                    if visit(&path, TreeVisit::Read(tree_id, &tree)) {
                        for node in tree.nodes() {
                            if let (NodeKind::Dir, Some(sub)) = (node.kind, node.subtree) {
                                stack.push((path.join(OsStr::from_bytes(&node.name)), sub));
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Reads the packs of `needed` that storage lists in `stored` (id -> listed size),
    /// each to its listed end, and checks every entry.
    fn read_all_packs(
        &self,
        needed: &HashMap<ObjectId, u64>,
        stored: &HashMap<ObjectId, u64>,
        options: &CheckOptions,
        progress: &dyn CheckProgress,
        report: &mut CheckReport,
        damaged: &mut HashMap<BlobId, String, BuildBlobIdHasher>,
    ) -> Result<()> {
        // The index's view of each pack, by offset.
        let mut expected: HashMap<ObjectId, EntriesAt> = HashMap::new();
        for (id, loc) in self.index.iter() {
            let entry = PackEntry {
                blob_type: loc.blob_type,
                id,
                offset: loc.offset,
                length: loc.length,
                raw_len: loc.raw_len,
            };
            expected
                .entry(loc.pack)
                .or_default()
                .insert(loc.offset, entry);
        }
        // A pack is read to its listed end: past its last indexed entry too, and a
        // truncated one as far as it goes.
        let mut packs: Vec<(ObjectId, u64)> = needed
            .keys()
            .filter_map(|p| stored.get(p).map(|&len| (*p, len)))
            .collect();
        packs.sort();
        progress.packs_total(packs.len() as u64, packs.iter().map(|(_, len)| len).sum());
        let threads = crate::system::worker_threads(options.threads);
        let next = AtomicUsize::new(0);
        let found = Mutex::new(PackFindings::default());
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some((pack, len)) = packs.get(i) else {
                            break;
                        };
                        if options.cancel.is_cancelled() {
                            break;
                        }
                        let empty = HashMap::new();
                        let (problems, bad, bytes) =
                            self.check_pack(pack, *len, expected.get(pack).unwrap_or(&empty));
                        progress.pack_done(bytes);
                        let mut f = lock(&found);
                        f.problems.extend(problems);
                        f.damaged.extend(bad);
                        f.packs += 1;
                        f.bytes += bytes;
                    }
                });
            }
        });
        if options.cancel.is_cancelled() {
            return Err(Error::interrupted());
        }
        let found = found.into_inner().unwrap_or_else(|e| e.into_inner());
        report.errors.extend(found.problems);
        damaged.extend(found.damaged);
        report.packs_read = found.packs;
        report.bytes_read = found.bytes;
        Ok(())
    }

    /// Reads pack `pack` (`len` bytes, as listed) a window at a time, and checks every
    /// entry against the index. Returns the problems, the blobs they concern and the
    /// bytes read.
    fn check_pack(
        &self,
        pack: &ObjectId,
        len: u64,
        expected: &EntriesAt,
    ) -> (Vec<Problem>, Vec<(BlobId, String)>, u64) {
        let mut problems = Vec::new();
        let mut bad = Vec::new();
        let mut seen = HashSet::new();
        let mut reader = PackReader::new(&**self.repo.backend(), *pack, len, PACK_READ_WINDOW);
        let mut ended = None;
        // The entries stop at the first error.
        for next in &mut reader {
            match next {
                Ok((entry, bytes)) => {
                    seen.insert(entry.offset);
                    if let Some((problem, blob)) = self.check_entry(pack, &entry, &bytes, expected)
                    {
                        problems.push(problem);
                        bad.push(blob);
                    }
                }
                Err(e) => ended = Some(e),
            }
        }
        let bytes_read = reader.bytes_read();
        let unseen = expected
            .iter()
            .filter(|(offset, _)| !seen.contains(*offset));
        if let Some(RepoError::Backend(e)) = ended {
            problems.push(Problem {
                object: format!("pack {pack}"),
                message: format!("unreadable: {e}"),
            });
            bad.extend(unseen.map(|(_, want)| (want.id, "its pack is unreadable".to_owned())));
            return (problems, bad, bytes_read);
        }
        if let Some(e) = ended {
            problems.push(Problem {
                object: format!("pack {pack}"),
                message: e.to_string(),
            });
        }
        for (offset, want) in unseen {
            problems.push(Problem {
                object: format!("blob {} in pack {pack}", want.id),
                message: format!("not found at offset {offset} where the index places it"),
            });
            bad.push((want.id, "not where the index says".to_owned()));
        }
        (problems, bad, bytes_read)
    }

    /// Checks one entry of `pack` (`bytes`, as framed) against its id and the index: the
    /// problem and the blob it concerns, if any.
    fn check_entry(
        &self,
        pack: &ObjectId,
        entry: &PackEntry,
        bytes: &[u8],
        expected: &EntriesAt,
    ) -> Option<(Problem, (BlobId, String))> {
        let object = format!("blob {} in pack {pack}", entry.id);
        let problem = |message: String| Problem {
            object: object.clone(),
            message,
        };
        match self.repo.decode_entry(bytes, None, &object) {
            Ok((header, plain)) => {
                let actual = self.repo.blob_id(&plain);
                if actual != header.id {
                    let message = format!("content hashes to {}, not to its id", actual.short());
                    return Some((
                        problem(message),
                        (header.id, "content does not match its id".to_owned()),
                    ));
                }
                let want = expected.get(&entry.offset)?;
                (want.id != header.id
                    || want.blob_type != header.blob_type
                    || want.length != entry.length
                    || want.raw_len as usize != plain.len())
                .then(|| {
                    (
                        problem("differs from its index entry".to_owned()),
                        (want.id, "its index entry is wrong".to_owned()),
                    )
                })
            }
            Err(e) => {
                // The entry's header is not authenticated: attribute the damage to the
                // blob the index places here, if any.
                let id = expected.get(&entry.offset).map_or(entry.id, |want| want.id);
                Some((
                    problem(e.to_string()),
                    (id, "failed authentication".to_owned()),
                ))
            }
        }
    }
}

/// The packs of `subset` among `packs` (id -> size), and where the next rotating
/// subset starts.
fn choose_subset(
    packs: &HashMap<ObjectId, u64>,
    subset: DataSubset,
    rotation: u64,
) -> (HashMap<ObjectId, u64>, u64) {
    let mut ids: Vec<(ObjectId, u64)> = packs.iter().map(|(id, size)| (*id, *size)).collect();
    ids.sort();
    let len = ids.len() as u64;
    if len == 0 {
        return (HashMap::new(), 0);
    }
    let start = rotation % len;
    let rotated = ids.iter().cycle().skip(start as usize).take(ids.len());
    let mut chosen = HashMap::new();
    let mut taken = 0u64;
    match subset {
        DataSubset::Part { n, of } => {
            for (id, size) in &ids {
                let number = u64::from_be_bytes(id.as_bytes()[..8].try_into().unwrap_or([0; 8]));
                if number % u64::from(of) == u64::from(n - 1) {
                    chosen.insert(*id, *size);
                }
            }
            return (chosen, rotation);
        }
        DataSubset::Fraction(f) => {
            let want = ((f * len as f64).ceil() as u64).clamp(1, len);
            for (id, size) in rotated.take(want as usize) {
                chosen.insert(*id, *size);
                taken += 1;
            }
        }
        DataSubset::Bytes(limit) => {
            let mut bytes = 0u64;
            for (id, size) in rotated {
                if bytes >= limit {
                    break;
                }
                chosen.insert(*id, *size);
                bytes += size;
                taken += 1;
            }
        }
    }
    (chosen, (start + taken) % len)
}

#[cfg(test)]
mod subset_tests {
    use super::*;

    fn packs(n: u8) -> HashMap<ObjectId, u64> {
        (0..n)
            .map(|i| (ObjectId::from_bytes([i; 32]), 100))
            .collect()
    }

    #[test]
    fn parts_cover_every_pack_once() {
        let all = packs(50);
        let mut seen = HashSet::new();
        for n in 1..=5 {
            let (part, _) = choose_subset(&all, DataSubset::Part { n, of: 5 }, 0);
            for id in part.keys() {
                assert!(seen.insert(*id), "read twice");
            }
        }
        assert_eq!(seen.len(), 50);
    }

    #[test]
    fn rotating_subsets_cover_everything_in_turn() {
        let all = packs(10);
        let mut seen = HashSet::new();
        let mut rotation = 0;
        for _ in 0..4 {
            let (part, next) = choose_subset(&all, DataSubset::Fraction(0.25), rotation);
            assert_eq!(part.len(), 3);
            seen.extend(part.keys().copied());
            rotation = next;
        }
        assert_eq!(seen.len(), 10);
        let (part, next) = choose_subset(&all, DataSubset::Bytes(250), 9);
        assert_eq!((part.len(), next), (3, 2));
    }

    #[test]
    fn subsets_parse() {
        let size = |t: &str| {
            t.strip_suffix('G')
                .and_then(|n| n.parse::<u64>().ok())
                .map(|n| n << 30)
        };
        assert_eq!(
            DataSubset::parse("1/5", size).unwrap(),
            DataSubset::Part { n: 1, of: 5 }
        );
        assert_eq!(
            DataSubset::parse("10%", size).unwrap(),
            DataSubset::Fraction(0.1)
        );
        assert_eq!(
            DataSubset::parse("2G", size).unwrap(),
            DataSubset::Bytes(2 << 30)
        );
        for bad in ["0/5", "6/5", "1/0", "0%", "101%", "x", "0G"] {
            assert!(DataSubset::parse(bad, size).is_err(), "{bad}");
        }
    }
}
