//! A local cache of a repository's metadata: index files, snapshot files and tree packs,
//! so that a remote repository's metadata is downloaded once.
//!
//! The cache holds the sealed objects exactly as stored. It is never trusted: whatever
//! is read from it is authenticated like a download, and a cached copy that fails is
//! deleted and fetched again, so a damaged cache costs a download, never a false
//! report of damage or wrong data. Every failure to use the cache (full disk,
//! permissions) only means going to the repository. Files are written to a temporary
//! name and renamed, so processes sharing the cache never see partial files.
//!
//! Layout: `BASE/CACHEDIR.TAG`, `BASE/<repository id>/{index,snapshots,data}/<id>`;
//! directories mode 0700, files 0600.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use arca_backends::{FileKind, ObjectId};

const TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
# This file is a cache directory tag created by arca.\n\
# For information about cache directory tags see https://bford.info/cachedir/\n";

/// Counters of what the cache saved and cost, for reports and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    /// Reads answered from the cache.
    pub hits: u64,
    /// Reads that went to the repository (and were then cached).
    pub misses: u64,
    /// Cached copies that failed authentication and were replaced.
    pub rejected: u64,
}

/// The metadata cache of one repository.
#[derive(Debug)]
pub struct Cache {
    dir: PathBuf,
    hits: AtomicU64,
    misses: AtomicU64,
    rejected: AtomicU64,
}

fn mkdir(path: &Path) -> io::Result<()> {
    match fs::DirBuilder::new().mode(0o700).create(path) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}

impl Cache {
    /// The cache of repository `repository_id` under `base` (created if missing, with
    /// a `CACHEDIR.TAG` so that backup tools skip it).
    ///
    /// # Errors
    /// The directories cannot be created.
    pub fn open(base: &Path, repository_id: &ObjectId) -> io::Result<Self> {
        fs::DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(base)?;
        let tag = base.join("CACHEDIR.TAG");
        if !tag.exists() {
            // Best effort: a missing tag only means other tools may back the cache up.
            let _ = write_atomically(&tag, TAG.as_bytes());
        }
        let dir = base.join(repository_id.to_string());
        mkdir(&dir)?;
        for kind in [FileKind::Index, FileKind::Snapshot, FileKind::Pack] {
            mkdir(&dir.join(kind.dir_name()))?;
        }
        Ok(Self {
            dir,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        })
    }

    /// The directory of this repository's cache.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, kind: FileKind, id: &ObjectId) -> PathBuf {
        self.dir.join(kind.dir_name()).join(id.to_string())
    }

    /// A whole cached object.
    pub fn get(&self, kind: FileKind, id: &ObjectId) -> Option<Vec<u8>> {
        let found = fs::read(self.path(kind, id)).ok();
        self.count(found.is_some());
        found
    }

    /// `length` bytes at `offset` of a cached object, if it is cached and long enough.
    pub fn get_range(
        &self,
        kind: FileKind,
        id: &ObjectId,
        offset: u64,
        length: usize,
    ) -> Option<Vec<u8>> {
        let found = (|| {
            let file = File::open(self.path(kind, id)).ok()?;
            let mut buf = vec![0u8; length];
            file.read_exact_at(&mut buf, offset).ok()?;
            Some(buf)
        })();
        self.count(found.is_some());
        found
    }

    fn count(&self, hit: bool) {
        let counter = if hit { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Stores an object (best effort: failures are ignored).
    pub fn put(&self, kind: FileKind, id: &ObjectId, data: &[u8]) {
        let _ = write_atomically(&self.path(kind, id), data);
    }

    /// Drops a cached copy that failed authentication.
    pub fn reject(&self, kind: FileKind, id: &ObjectId) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        let _ = fs::remove_file(self.path(kind, id));
    }

    /// Removes cached objects of `kind` that are not in `keep` (deleted from the
    /// repository meanwhile). Temporary files of crashed writers go too.
    pub fn retain(&self, kind: FileKind, keep: &HashSet<ObjectId>) {
        let Ok(entries) = fs::read_dir(self.dir.join(kind.dir_name())) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let id = name.to_str().and_then(|n| n.parse::<ObjectId>().ok());
            if id.is_none_or(|id| !keep.contains(&id)) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    /// What the cache did so far.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
        }
    }
}

fn write_atomically(path: &Path, data: &[u8]) -> io::Result<()> {
    let suffix: [u8; 8] = arca_crypto::random_array().map_err(io::Error::other)?;
    let tmp = path.with_file_name(format!(".tmp-{}", hex::encode(suffix)));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(data)?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn objects_round_trip_privately_and_retain_prunes() {
        let base = tempfile::tempdir().unwrap();
        let repo = ObjectId::from_bytes([1; 32]);
        let cache = Cache::open(&base.path().join("arca"), &repo).unwrap();
        let (a, b) = (ObjectId::from_bytes([2; 32]), ObjectId::from_bytes([3; 32]));
        assert_eq!(cache.get(FileKind::Index, &a), None);
        cache.put(FileKind::Index, &a, b"index a");
        cache.put(FileKind::Index, &b, b"index b");
        cache.put(FileKind::Pack, &a, b"0123456789");
        assert_eq!(cache.get(FileKind::Index, &a).unwrap(), b"index a");
        assert_eq!(cache.get_range(FileKind::Pack, &a, 3, 4).unwrap(), b"3456");
        assert_eq!(cache.get_range(FileKind::Pack, &a, 8, 4), None);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(cache.dir()), 0o700);
        assert_eq!(mode(&cache.path(FileKind::Index, &a)), 0o600);
        assert!(base.path().join("arca/CACHEDIR.TAG").exists());

        fs::write(cache.dir().join("index/.tmp-0011"), b"junk").unwrap();
        cache.retain(FileKind::Index, &HashSet::from([b]));
        assert_eq!(cache.get(FileKind::Index, &a), None);
        assert!(cache.get(FileKind::Index, &b).is_some());
        assert_eq!(fs::read_dir(cache.dir().join("index")).unwrap().count(), 1);

        cache.reject(FileKind::Index, &b);
        assert_eq!(cache.get(FileKind::Index, &b), None);
        let stats = cache.stats();
        assert_eq!((stats.rejected, stats.hits), (1, 3));
    }
}
