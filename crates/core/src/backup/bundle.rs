//! Bundling small files (design.md §15): the content of each file smaller than the
//! chunker's average chunk size is appended, as the file workers finish reading it, to
//! one open *bundle*; a bundle that reaches twice the chunker's maximum chunk size is
//! sealed and stored as one data chunk, and each of its files records its slice of it.
//!
//! Compressed together, the small files of the Linux source tree took a fifth less space
//! than compressed one by one (design.md §9), and the repository holds one chunk per bundle
//! instead of one per file. A file's slice is known as soon as it is added; the bundle's
//! id only once it is sealed, so the archiver parks such files until then.

use std::io::{self, Read};
use std::sync::Mutex;

use crate::sync::lock;

/// A bundle is also sealed once it holds this many files, whatever their size: the
/// archiver keeps each of them (its node, path and directory) until the bundle is
/// sealed, so a tree of many tiny files must not park millions at once. Files of 256
/// bytes and more fill the default 1 MiB bundle first.
const MAX_MEMBERS: u64 = 4096;

/// Where a file's content went: bundle number `seq`, from byte `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ticket {
    pub(crate) seq: u64,
    pub(crate) offset: u64,
}

/// What reading a file that looked small gave.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Slurped {
    /// All of it: it is bundled.
    Whole(Vec<u8>),
    /// It has grown to the bundling limit (or is empty now): the bytes read so far, to
    /// be chunked with the rest.
    Head(Vec<u8>),
}

/// A bundle closed for additions: to be named, stored, and announced to the archiver.
#[derive(Debug)]
pub(crate) struct Sealed {
    pub(crate) seq: u64,
    pub(crate) data: Vec<u8>,
    /// How many files it holds.
    pub(crate) members: u64,
}

#[derive(Debug, Default)]
struct Open {
    seq: u64,
    data: Vec<u8>,
    members: u64,
}

/// The open bundle, shared by the file workers.
#[derive(Debug)]
pub(crate) struct Bundler {
    /// Files of fewer bytes than this are bundled.
    limit: u64,
    /// A bundle is sealed once it holds this many bytes.
    target: usize,
    open: Mutex<Open>,
}

impl Bundler {
    /// The bundler for chunks cut by `params`: files smaller than the average chunk are
    /// bundled, and a bundle is sealed at twice the maximum chunk (2 MiB by default;
    /// design.md §9 gives what 1, 2 and 4 MiB stored and cost).
    pub(crate) fn for_chunks(params: &arca_chunker::ChunkerParams) -> Self {
        Self::new(u64::from(params.avg_size), 2 * params.max_size as usize)
    }

    pub(crate) fn new(limit: u64, target: usize) -> Self {
        Self {
            limit,
            target,
            open: Mutex::new(Open::default()),
        }
    }

    /// Whether a file of `size` bytes is bundled. Empty files have no content at all.
    pub(crate) fn takes(&self, size: u64) -> bool {
        size > 0 && size < self.limit
    }

    /// Reads a file that was smaller than the bundling limit when it was opened (`size`
    /// bytes): to its end if it still is, else up to the limit.
    pub(crate) fn slurp(&self, reader: impl Read, size: u64) -> io::Result<Slurped> {
        let mut data = Vec::with_capacity(size.min(self.limit) as usize);
        reader.take(self.limit).read_to_end(&mut data)?;
        Ok(if self.takes(data.len() as u64) {
            Slurped::Whole(data)
        } else {
            Slurped::Head(data)
        })
    }

    /// Appends a file's content; returns its place and, if the bundle is now full, the
    /// sealed bundle, which the caller must store and announce.
    pub(crate) fn add(&self, content: &[u8]) -> (Ticket, Option<Sealed>) {
        let mut open = lock(&self.open);
        if open.data.capacity() == 0 {
            open.data.reserve_exact(self.target + self.limit as usize);
        }
        let ticket = Ticket {
            seq: open.seq,
            offset: open.data.len() as u64,
        };
        open.data.extend_from_slice(content);
        open.members += 1;
        let full = open.data.len() >= self.target || open.members >= MAX_MEMBERS;
        let sealed = full.then(|| take(&mut open));
        (ticket, sealed)
    }

    /// Seals the open bundle, if it holds anything.
    pub(crate) fn seal(&self) -> Option<Sealed> {
        let mut open = lock(&self.open);
        (open.members > 0).then(|| take(&mut open))
    }
}

fn take(open: &mut Open) -> Sealed {
    let sealed = Sealed {
        seq: open.seq,
        data: std::mem::take(&mut open.data),
        members: open.members,
    };
    open.seq += 1;
    open.members = 0;
    sealed
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use arca_repo::{BlobId, BlobType};

    use super::*;
    use crate::testing::random_bytes;
    use crate::{BackupOptions, NoProgress, RestoreOptions};

    /// Small files share bundles, each with its own non-overlapping slice; empty files
    /// and files from the average chunk size up are not bundled; hard links share a
    /// slice; everything restores exactly; the snapshot counts each bundle's stored size
    /// once over its files.
    #[test]
    fn small_files_share_bundles_and_restore_exactly() {
        let (dir, src) = crate::testing::source_dir();
        let mut files = BTreeMap::new();
        for i in 0..200u64 {
            files.insert(format!("s{i:03}"), random_bytes(20_000 + i as usize, i + 1));
        }
        files.insert("empty".to_owned(), Vec::new());
        files.insert("limit".to_owned(), random_bytes(256 << 10, 500));
        files.insert("below".to_owned(), random_bytes((256 << 10) - 1, 501));
        for (name, data) in &files {
            std::fs::write(src.join(name), data).unwrap();
        }
        std::fs::hard_link(src.join("s005"), src.join("s005-link")).unwrap();
        let (_, mut repo) = crate::testing::memory_repository();
        let options = BackupOptions {
            threads: 2,
            ..BackupOptions::default()
        };
        let summary = repo
            .backup(std::slice::from_ref(&src), &options, &NoProgress)
            .unwrap();

        let tree = crate::testing::latest_tree_of(&repo, &src);
        let node = |name: &str| tree.find(name.as_bytes()).unwrap();
        assert!(node("empty").content.is_empty() && node("empty").bundle_offset.is_none());
        assert!(node("limit").bundle_offset.is_none());
        let mut slices: BTreeMap<BlobId, Vec<(u64, u64)>> = BTreeMap::new();
        for name in files.keys().filter(|n| *n != "empty" && *n != "limit") {
            let n = node(name);
            assert_eq!(n.content.len(), 1, "{name}");
            let offset = n
                .bundle_offset
                .unwrap_or_else(|| panic!("{name} not bundled"));
            slices
                .entry(n.content[0])
                .or_default()
                .push((offset, n.size));
        }
        assert_eq!(node("s005-link").content, node("s005").content);
        assert_eq!(node("s005-link").bundle_offset, node("s005").bundle_offset);
        // 4.3 MB of small files: two or three bundles of at least 2 MiB but the last.
        assert!((2..=3).contains(&slices.len()), "{}", slices.len());
        for (id, mut s) in slices {
            s.sort_unstable();
            let end = s.windows(2).all(|w| w[0].0 + w[0].1 <= w[1].0);
            assert!(end, "slices of one bundle overlap: {s:?}");
            let loc = repo.index.get(BlobType::Data, &id).unwrap();
            let (last, size) = s[s.len() - 1];
            assert!(last + size <= u64::from(loc.raw_len));
        }

        let target = dir.path().join("out");
        let latest = repo.find_snapshot("latest").unwrap();
        repo.restore(&latest, &target, &RestoreOptions::default(), &NoProgress)
            .unwrap();
        let base = target.join(src.strip_prefix("/").unwrap());
        for (name, data) in &files {
            assert_eq!(&std::fs::read(base.join(name)).unwrap(), data, "{name}");
        }
        assert_eq!(
            std::fs::read(base.join("s005-link")).unwrap(),
            files["s005"]
        );

        // Every blob is referenced by this one snapshot, each bundle byte once (the
        // hard link's second name, read once, counts its share again).
        let counted = summary.snapshot.summary.bytes_stored_total;
        let stored: u64 = repo
            .index
            .iter()
            .map(|(_, loc)| u64::from(loc.length))
            .sum();
        assert!(
            counted >= stored && counted < stored + stored / 50,
            "{counted} counted for {stored} stored"
        );
        crate::testing::assert_checks_clean(&repo);
    }

    /// A hard link met while its first name waits for its bundle (sealed only when the
    /// walk ends) gets the same slice once the bundle is named.
    #[test]
    fn a_link_to_a_file_waiting_for_its_bundle_gets_its_slice() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("a")).unwrap();
        std::fs::create_dir_all(src.join("b")).unwrap();
        std::fs::write(src.join("a/f"), b"linked small file").unwrap();
        std::fs::hard_link(src.join("a/f"), src.join("b/link")).unwrap();
        let (_, mut repo) = crate::testing::memory_repository();
        repo.backup(
            std::slice::from_ref(&src),
            &BackupOptions::default(),
            &NoProgress,
        )
        .unwrap();
        let first = crate::testing::latest_tree_of(&repo, &src.join("a"));
        let second = crate::testing::latest_tree_of(&repo, &src.join("b"));
        let (f, link) = (first.find(b"f").unwrap(), second.find(b"link").unwrap());
        assert!(f.bundle_offset.is_some());
        assert_eq!(
            (&link.content, link.bundle_offset),
            (&f.content, f.bundle_offset)
        );
        let out = dir.path().join("out");
        let latest = repo.find_snapshot("latest").unwrap();
        repo.restore(&latest, &out, &RestoreOptions::default(), &NoProgress)
            .unwrap();
        let base = out.join(src.strip_prefix("/").unwrap());
        assert_eq!(
            std::fs::read(base.join("b/link")).unwrap(),
            b"linked small file"
        );
    }

    /// A file read whole is bundled whatever its size was at opening, as long as it
    /// stays below the limit; one that reached the limit is handed back for chunking.
    #[test]
    fn a_file_that_grew_is_read_to_its_end_or_chunked() {
        let b = Bundler::new(100, 250);
        let grown = vec![7u8; 60];
        assert_eq!(b.slurp(&grown[..], 10).unwrap(), Slurped::Whole(grown));
        let shrunk = vec![8u8; 5];
        assert_eq!(b.slurp(&shrunk[..], 50).unwrap(), Slurped::Whole(shrunk));
        let big = [9u8; 150];
        assert_eq!(
            b.slurp(&big[..], 10).unwrap(),
            Slurped::Head(big[..100].to_vec())
        );
        assert_eq!(b.slurp(&[][..], 10).unwrap(), Slurped::Head(Vec::new()));
    }

    #[test]
    fn files_fill_bundles_in_order_and_seal_at_the_target() {
        let b = Bundler::new(100, 250);
        assert!(!b.takes(0) && b.takes(1) && b.takes(99) && !b.takes(100));
        let (t, s) = b.add(&[1; 99]);
        assert_eq!((t, s.is_none()), (Ticket { seq: 0, offset: 0 }, true));
        let (t, s) = b.add(&[2; 99]);
        assert_eq!((t, s.is_none()), (Ticket { seq: 0, offset: 99 }, true));
        let (t, s) = b.add(&[3; 60]);
        assert_eq!(
            t,
            Ticket {
                seq: 0,
                offset: 198
            }
        );
        let s = s.unwrap();
        assert_eq!((s.seq, s.data.len(), s.members), (0, 258, 3));
        assert_eq!(&s.data[198..], &[3; 60]);
        assert!(b.seal().is_none(), "nothing open after a seal");
        let (t, _) = b.add(&[4; 5]);
        assert_eq!(t, Ticket { seq: 1, offset: 0 });
        let s = b.seal().unwrap();
        assert_eq!((s.seq, s.data, s.members), (1, vec![4; 5], 1));
        assert_eq!(b.add(&[5]).0, Ticket { seq: 2, offset: 0 });
    }

    /// However small its files, a bundle holds at most MAX_MEMBERS of them.
    #[test]
    fn a_bundle_of_tiny_files_is_sealed_at_the_member_cap() {
        let b = Bundler::new(100, 1 << 20);
        for i in 1..MAX_MEMBERS {
            assert!(b.add(&[1]).1.is_none(), "sealed after {i} files");
        }
        let (t, sealed) = b.add(&[2]);
        assert_eq!(t.offset, MAX_MEMBERS - 1);
        let sealed = sealed.unwrap();
        assert_eq!(
            (sealed.members, sealed.data.len() as u64),
            (MAX_MEMBERS, MAX_MEMBERS)
        );
        assert_eq!(b.add(&[3]).0, Ticket { seq: 1, offset: 0 });
    }
}
