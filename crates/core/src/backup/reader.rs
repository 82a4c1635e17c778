//! File workers: open a source file, stream it through the chunker, name each chunk, and
//! hand chunks the repository lacks to the blob workers.

use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use arca_chunker::Chunker;
use arca_repo::{BlobId, BlobType, Repo};
use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender};
use nix::sys::stat::{FileStat, SFlag, fstat};

use super::bundle::{Bundler, Sealed, Slurped, Ticket};
use super::saver::BlobSaver;
use crate::dir_handle::DirHandle;
use crate::progress::{BackupProgress, CancelToken, FileStatus};
use crate::sync::lock;
use crate::{Error, Result};

/// Stops the pipeline on the first fatal error, on an internal stop, or when the
/// caller cancels. The caller's token is only read, never set: an error in one backup
/// must not leave the caller's token cancelled for the next operation.
#[derive(Debug, Default)]
pub(crate) struct Abort {
    failed: AtomicBool,
    stopped: AtomicBool,
    error: Mutex<Option<Error>>,
    cancel: CancelToken,
}

impl Abort {
    pub(crate) fn new(cancel: CancelToken) -> Self {
        Self {
            cancel,
            ..Self::default()
        }
    }

    /// Records a fatal error (the first one wins) and stops the pipeline.
    pub(crate) fn fail(&self, e: Error) {
        let mut slot = lock(&self.error);
        if slot.is_none() {
            *slot = Some(e);
        }
        self.failed.store(true, Ordering::SeqCst);
    }

    /// Stops the pipeline without an error of its own (the caller has one).
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
    }

    pub(crate) fn should_stop(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
            || self.stopped.load(Ordering::Relaxed)
            || self.cancel.is_cancelled()
    }

    /// The error to return for a stopped pipeline.
    pub(crate) fn take_error(&self) -> Error {
        lock(&self.error).take().unwrap_or_else(Error::interrupted)
    }
}

/// A file to read: entry `name` of the open directory `handle`.
#[derive(Debug)]
pub(crate) struct FileJob {
    pub(crate) dir: u64,
    pub(crate) slot: usize,
    pub(crate) handle: Arc<DirHandle>,
    pub(crate) name: Vec<u8>,
    /// For messages.
    pub(crate) path: PathBuf,
    pub(crate) status: FileStatus,
}

/// A chunk to compress, encrypt and pack.
#[derive(Debug)]
pub(crate) struct BlobJob {
    pub(crate) blob_type: BlobType,
    pub(crate) id: BlobId,
    pub(crate) data: Bytes,
}

/// Where a read file's content went.
#[derive(Debug)]
pub(crate) enum ReadContent {
    /// Chunks of its own.
    Chunks(Vec<BlobId>),
    /// A place in a bundle, whose id the archiver learns from a [`Done::Bundle`].
    Bundled(Ticket),
}

/// What reading a file produced.
#[derive(Debug)]
pub(crate) struct ReadFile {
    pub(crate) content: ReadContent,
    pub(crate) bytes: u64,
    /// Metadata of the opened file before it was read.
    pub(crate) before: FileStat,
    /// Size, modification or change time differed after reading.
    pub(crate) changed: bool,
}

/// What the file workers report to the archiver.
#[derive(Debug)]
pub(crate) enum Done {
    File(Box<FileDone>),
    /// Bundle `seq`, holding `members` files, is sealed and named `id`.
    Bundle {
        seq: u64,
        id: BlobId,
        members: u64,
    },
}

/// The outcome of a [`FileJob`]: the content, or why the file could not be read.
#[derive(Debug)]
pub(crate) struct FileDone {
    pub(crate) dir: u64,
    pub(crate) slot: usize,
    pub(crate) path: PathBuf,
    pub(crate) status: FileStatus,
    pub(crate) outcome: std::result::Result<ReadFile, String>,
}

fn same_state(a: &FileStat, b: &FileStat) -> bool {
    a.st_size == b.st_size
        && (a.st_mtime, a.st_mtime_nsec) == (b.st_mtime, b.st_mtime_nsec)
        && (a.st_ctime, a.st_ctime_nsec) == (b.st_ctime, b.st_ctime_nsec)
}

fn is_regular(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFREG
}

pub(crate) struct FileWorker<'a> {
    pub(crate) repo: &'a Repo,
    pub(crate) chunker: &'a Chunker,
    pub(crate) bundler: &'a Bundler,
    pub(crate) saver: &'a BlobSaver<'a>,
    pub(crate) blobs: Sender<BlobJob>,
    pub(crate) progress: &'a dyn BackupProgress,
    pub(crate) abort: &'a Abort,
}

impl FileWorker<'_> {
    pub(crate) fn run(&self, jobs: Receiver<FileJob>, done: Sender<Done>) {
        for job in jobs {
            let outcome = if self.abort.should_stop() {
                Err("backup stopped".to_owned())
            } else {
                self.read(&job, &done)
            };
            let result = FileDone {
                dir: job.dir,
                slot: job.slot,
                path: job.path,
                status: job.status,
                outcome,
            };
            if done.send(Done::File(Box::new(result))).is_err() {
                return;
            }
        }
    }

    fn read(&self, job: &FileJob, done: &Sender<Done>) -> std::result::Result<ReadFile, String> {
        let file = job
            .handle
            .open_read(&job.name)
            .map_err(|e| format!("cannot open: {e}"))?;
        let before = fstat(&file).map_err(|e| format!("cannot stat: {e}"))?;
        if !is_regular(&before) {
            return Err("is no longer a regular file".to_owned());
        }
        let size = before.st_size.max(0) as u64;
        if self.bundler.takes(size) {
            return self.read_small(&file, before, size, done);
        }
        self.read_chunked(&file, before, size, Vec::new())
    }

    /// Reads a small file whole and adds it to the open bundle; one that has grown to
    /// the bundling limit is chunked instead, from the bytes already read on.
    fn read_small(
        &self,
        file: &std::fs::File,
        before: FileStat,
        size: u64,
        done: &Sender<Done>,
    ) -> std::result::Result<ReadFile, String> {
        let read = self.bundler.slurp(file, size);
        let data = match read.map_err(|e| format!("read failed: {e}"))? {
            Slurped::Whole(data) => data,
            Slurped::Head(head) => return self.read_chunked(file, before, size, head),
        };
        let after = fstat(file).map_err(|e| format!("cannot stat: {e}"))?;
        if self.abort.should_stop() {
            return Err("backup stopped".to_owned());
        }
        let bytes = data.len() as u64;
        // After the add the file reports its place whatever happens: the bundle counts
        // it among its members, and the archiver waits for every member.
        let (ticket, sealed) = self.bundler.add(&data);
        self.progress.bytes_processed(bytes);
        if let Some(sealed) = sealed {
            let announced = queue_bundle(self.repo, self.saver, &self.blobs, sealed)
                .and_then(|a| done.send(a).map_err(|_| Error::interrupted()));
            if let Err(e) = announced {
                // The pipeline is coming down; the archiver returns its error.
                self.abort.fail(e);
            }
        }
        Ok(ReadFile {
            content: ReadContent::Bundled(ticket),
            bytes,
            changed: !same_state(&before, &after) || bytes != size,
            before,
        })
    }

    /// Chunks a file from its current position, `head` (bytes already read) first.
    fn read_chunked(
        &self,
        file: &std::fs::File,
        before: FileStat,
        size: u64,
        head: Vec<u8>,
    ) -> std::result::Result<ReadFile, String> {
        // Sized for the expected chunk count, but a huge sparse file must not make this
        // allocate gigabytes up front.
        let expected = size / u64::from(self.chunker.params().avg_size) + 1;
        let mut content = Vec::with_capacity(expected.min(1 << 16) as usize);
        let mut bytes = 0u64;
        let input = std::io::Cursor::new(head).chain(file);
        for chunk in self.chunker.chunks(input, size) {
            if self.abort.should_stop() {
                return Err("backup stopped".to_owned());
            }
            let chunk = chunk.map_err(|e| format!("read failed after {bytes} bytes: {e}"))?;
            let id = self.repo.blob_id(&chunk);
            bytes += chunk.len() as u64;
            let len = chunk.len() as u64;
            queue_blob(self.saver, &self.blobs, BlobType::Data, id, chunk)
                .map_err(|_| "backup stopped".to_owned())?;
            content.push(id);
            self.progress.bytes_processed(len);
        }
        let after = fstat(file).map_err(|e| format!("cannot stat: {e}"))?;
        Ok(ReadFile {
            content: ReadContent::Chunks(content),
            bytes,
            changed: !same_state(&before, &after) || bytes != size,
            before,
        })
    }
}

/// Compresses, encrypts and packs blobs until the channel closes.
pub(crate) fn blob_worker(jobs: Receiver<BlobJob>, saver: &BlobSaver<'_>, abort: &Abort) {
    for job in jobs {
        if abort.should_stop() {
            continue; // drain, so senders never block on a stopped pipeline
        }
        if let Err(e) = saver.store(job.blob_type, job.id, &job.data) {
            abort.fail(e);
        }
    }
}

/// Names a sealed bundle and queues it for storing (unless the repository has it);
/// returns the announcement of its id for the archiver.
pub(crate) fn queue_bundle(
    repo: &Repo,
    saver: &BlobSaver<'_>,
    blobs: &Sender<BlobJob>,
    sealed: Sealed,
) -> Result<Done> {
    let id = repo.blob_id(&sealed.data);
    queue_blob(saver, blobs, BlobType::Data, id, Bytes::from(sealed.data))?;
    Ok(Done::Bundle {
        seq: sealed.seq,
        id,
        members: sealed.members,
    })
}

/// Queues a blob for storing if this session claims it (the repository lacks it and no
/// one else is storing it).
pub(crate) fn queue_blob(
    saver: &BlobSaver<'_>,
    blobs: &Sender<BlobJob>,
    blob_type: BlobType,
    id: BlobId,
    data: Bytes,
) -> Result<()> {
    if saver.claim(blob_type, &id) {
        blobs
            .send(BlobJob {
                blob_type,
                id,
                data,
            })
            .map_err(|_| Error::interrupted())?;
    }
    Ok(())
}
