//! arca-core: encrypted, deduplicated, compressed backups as a library.
//!
//! This is the API the `arca` command-line tool is built on, and the one other tools
//! embed. A [`Repository`] is obtained only by opening (or creating) one with its
//! passphrase; everything else is a method on it:
//!
//! - [`Repository::backup`] turns directories into a snapshot, reading only files that
//!   changed since the previous snapshot of the same paths;
//! - [`Repository::snapshots`], [`Repository::find_snapshot`] and [`Repository::walk`]
//!   list what is stored;
//! - [`Repository::restore`] recreates a snapshot or part of it, byte for byte with its
//!   metadata;
//! - [`Repository::check`] verifies the structure and, optionally, every stored byte;
//! - [`Repository::keys`], [`Repository::export_key`] and [`Repository::import_key`]
//!   manage passphrases, key files and exported keys.
//!
//! Options are plain values with defaults ([`BackupOptions`], [`RestoreOptions`], ...);
//! progress goes through small traits the caller implements ([`BackupProgress`], ...), or
//! [`NoProgress`]. Every fallible call returns [`Error`], whose [`Error::kind`] says what
//! went wrong.
//!
//! ```
//! use arca_core::{BackupOptions, InitOptions, Location, NoProgress, Repository, RestoreOptions};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let source = dir.path().join("documents");
//! std::fs::create_dir(&source)?;
//! std::fs::write(source.join("notes.txt"), b"remember the milk")?;
//!
//! let backend = Location::parse(dir.path().join("repo").to_str().unwrap())?.backend()?;
//! let mut init = InitOptions::default();
//! init.kdf = arca_core::KdfParams { memory_kib: 1024, iterations: 1, parallelism: 1 }; // fast, for the example
//! Repository::init(backend.clone(), b"passphrase", &init)?;
//!
//! let mut repo = Repository::open(backend, b"passphrase")?;
//! let summary = repo.backup(&[source.clone()], &BackupOptions::default(), &NoProgress)?;
//! assert_eq!(summary.snapshot.summary.files_new, 1);
//!
//! let latest = repo.find_snapshot("latest")?;
//! let target = dir.path().join("restored");
//! repo.restore(&latest, &target, &RestoreOptions::default(), &NoProgress)?;
//! let restored = target.join(source.strip_prefix("/")?).join("notes.txt");
//! assert_eq!(std::fs::read(restored)?, b"remember the milk");
//! # Ok(()) }
//! ```
//!
//! Crate boundaries: this crate orchestrates `arca-repo` (the format), `arca-chunker`,
//! `arca-crypto` and `arca-backends`; it never prints and never exits.

mod backup;
mod browse;
mod bundle_cache;
mod check;
mod content;
mod diff;
mod dir_handle;
mod dump;
mod error;
mod find;
mod forget;
mod key_export;
mod key_file;
mod keys;
mod location;
mod locking;
mod metadata;
mod progress;
mod prune;
mod repair;
mod repository;
mod restore;
mod retention;
mod select;
mod selection;
mod sync;
mod system;
#[cfg(test)]
mod testing;
mod verify;

pub use backup::{BackupOptions, BackupSummary};
pub use check::{CheckOptions, CheckReport, DataSubset, Problem};
pub use content::FileReader;
pub use diff::{Change, ChangeCounts, DiffEntry, DiffSummary};
pub use dump::{ArchiveFormat, DumpSummary};
pub use error::{Error, ErrorKind, Result};
pub use find::FindSummary;
pub use key_export::{ImportedKey, KeyDestination, KeyImport, parse_exported_key};
pub use key_file::check_new_key_file;
pub use keys::KeyEntry;
pub use location::{BackendOptions, Location};
pub use locking::{LockGuard, LockInfo, Locks, REFRESH_EVERY, STALE_AFTER, Unlocked};
pub use progress::{
    BackupProgress, CancelToken, CheckProgress, FileStatus, NoProgress, RestoreProgress,
};
pub use prune::{PruneOptions, PruneReport};
pub use repair::{RepairIndexReport, RepairedSnapshot};
pub use repository::{
    InitOptions, OpenOptions, Repository, RepositoryStats, SnapshotInfo, SnapshotList,
};
pub use restore::{Overwrite, RestoreOptions, RestoreSummary};
pub use retention::{
    Decision, GroupBy, GroupDecisions, GroupKey, KeepCount, KeepPolicy, KeepSpan,
    apply as apply_policy,
};
pub use select::{
    SnapshotFilter, absolute, parse_interval, parse_time, parse_time_at, parse_time_start,
};
pub use selection::{Filter, FilterRule, PatternSet, read_files_from, read_filter_file};
pub use verify::{Difference, VerifyOptions, VerifyReport};

pub use arca_backends::{
    BackendError, FaultPlan, Limits, ObjectId, ReadBackend, RetryHook, RetryPolicy, WriteBackend,
};
pub use arca_chunker::ChunkerParams;
pub use arca_crypto::{GeneratedSecret, IdAlgorithm, KdfParams};
pub use arca_repo::{
    BlobId, CacheStats, Compression, Config, DeletionPlan, ExportedKey, Holder, KeyTextFormat,
    Node, NodeKind, PaperKeyReader, SlotKdf, Snapshot, SnapshotSummary, Timestamp, Xattr,
};
