//! Progress reporting and cancellation. The library never prints: callers implement
//! these traits (the CLI draws progress bars) or pass [`NoProgress`].

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// How a file was handled by a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileStatus {
    /// Not in the parent snapshot.
    New,
    /// In the parent snapshot but changed: re-read.
    Changed,
    /// Unchanged since the parent snapshot: not read.
    Unchanged,
}

/// Receives backup progress. Called from several threads; every method has a default
/// that does nothing.
pub trait BackupProgress: Send + Sync {
    /// The estimate of what the backup will go through, from a concurrent scan; may be
    /// called several times with growing figures.
    fn total(&self, _files: u64, _bytes: u64) {}
    /// A file was finished (read or reused).
    fn file_done(&self, _path: &Path, _status: FileStatus, _size: u64) {}
    /// `bytes` more of file content were processed.
    fn bytes_processed(&self, _bytes: u64) {}
    /// Something about a source entry is worth knowing (it changed while read, its
    /// extended attributes could not be read, ...); it is in the snapshot.
    fn warning(&self, _path: &Path, _message: &str) {}
    /// A source entry could not be read and is left out of the snapshot (which is then
    /// partial). By default reported like a warning.
    fn entry_error(&self, path: &Path, message: &str) {
        self.warning(path, message);
    }
}

/// Receives restore progress. Called from several threads.
pub trait RestoreProgress: Send + Sync {
    /// What the restore will write.
    fn total(&self, _files: u64, _bytes: u64) {}
    /// `bytes` more of file content were written.
    fn bytes_written(&self, _bytes: u64) {}
    /// A file was restored.
    fn file_done(&self, _path: &Path) {}
    /// Something could not be restored exactly (e.g. ownership without privileges).
    fn warning(&self, _path: &Path, _message: &str) {}
}

/// Receives check progress.
pub trait CheckProgress: Send + Sync {
    /// Packs to be read by `--read-data`.
    fn packs_total(&self, _packs: u64, _bytes: u64) {}
    /// One more pack was read.
    fn pack_done(&self, _bytes: u64) {}
}

/// A progress receiver that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl BackupProgress for NoProgress {}
impl RestoreProgress for NoProgress {}
impl CheckProgress for NoProgress {}

/// A flag to ask a running operation to stop. Clones share the flag; the CLI sets it
/// from its SIGINT handler. An interrupted backup leaves the repository valid and
/// records what it had finished uploading in an index, so nothing is uploaded twice.
#[derive(Debug, Default, Clone)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests cancellation.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether cancellation was requested.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}
