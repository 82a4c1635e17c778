//! Restore workers: fill an opened file with the snapshot's content (holes for runs of
//! zeros), or confirm that an existing file already holds it; optionally re-read what
//! was written; set the file's metadata through its descriptor.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arca_repo::Node;

use super::batch::write_at;
use super::{Ctx, WorkerCounts};
use crate::dir_handle::DirHandle;
use crate::metadata::Target;
use crate::sync::lock;

/// A regular file to fill: created empty by the walk, or an existing file of the right
/// size whose content may already be correct.
#[derive(Debug)]
pub(crate) struct FileJob {
    pub(crate) file: File,
    /// The directory holding it, to remove it if it cannot be restored.
    pub(crate) dir: Arc<DirHandle>,
    /// For messages.
    pub(crate) path: PathBuf,
    pub(crate) node: Node,
    pub(crate) existing: bool,
}

enum Outcome {
    Written(u64),
    AlreadyCorrect,
}

/// Restores one file, recording the outcome in `counts` or an error in `ctx`.
pub(crate) fn restore_file(ctx: &Ctx<'_>, job: FileJob, counts: &Mutex<WorkerCounts>) {
    let outcome = write_file(ctx, &job);
    record(ctx, job, outcome, counts);
}

/// Records how a file ended: counted and reported done, or, on error, removed (never
/// leave wrong or partial content behind under the file's name) and reported.
fn record(
    ctx: &Ctx<'_>,
    job: FileJob,
    outcome: Result<Outcome, String>,
    counts: &Mutex<WorkerCounts>,
) {
    match outcome {
        Ok(outcome) => {
            let mut c = lock(counts);
            match outcome {
                Outcome::Written(bytes) => {
                    c.files += 1;
                    c.bytes += bytes;
                }
                Outcome::AlreadyCorrect => c.skipped += 1,
            }
            if ctx.options.verify {
                c.verified += 1;
            }
            drop(c);
            ctx.progress.file_done(&job.path);
        }
        Err(message) => {
            drop(job.file);
            let _ = job.dir.unlink(&job.node.name);
            ctx.fail(&job.path, message);
        }
    }
}

/// Whether `file`, read from its start, holds exactly the snapshot's content.
fn holds(ctx: &Ctx<'_>, mut file: &File, node: &Node) -> Result<bool, String> {
    file.seek(SeekFrom::Start(0))
        .map_err(|e| format!("cannot seek: {e}"))?;
    ctx.repo
        .holds_content(file, node)
        .map_err(|e| format!("cannot read: {e}"))
}

fn write_file(ctx: &Ctx<'_>, job: &FileJob) -> Result<Outcome, String> {
    let node = &job.node;
    let file = &job.file;
    if job.existing {
        if holds(ctx, file, node)? {
            ctx.progress.bytes_written(node.size);
            ctx.apply_metadata(Target::File(file), &job.path, node)
                .map_err(|e| format!("cannot set metadata: {e}"))?;
            return Ok(Outcome::AlreadyCorrect);
        }
        // Content is written at its offsets (no file position involved).
        file.set_len(0)
            .map_err(|e| format!("cannot truncate: {e}"))?;
    }
    let mut written = 0u64;
    let mut hole = false;
    for id in &node.content {
        if ctx.cancelled() {
            return Err("restore stopped".to_owned());
        }
        let data = ctx.repo.load_data_blob(id).map_err(|e| e.to_string())?;
        hole |= write_at(file, &data, written, ctx.options.sparse)
            .map_err(|e| format!("cannot write: {e}"))?;
        written += data.len() as u64;
        ctx.progress.bytes_written(data.len() as u64);
    }
    complete(ctx, job, hole, written)?;
    Ok(Outcome::Written(written))
}

/// Finishes a file whose content is written: its length (a trailing hole has no bytes
/// written after it), the size check, the optional read-back, the metadata.
fn complete(ctx: &Ctx<'_>, job: &FileJob, hole: bool, written: u64) -> Result<(), String> {
    let (file, node) = (&job.file, &job.node);
    if hole {
        file.set_len(written)
            .map_err(|e| format!("cannot set length: {e}"))?;
    }
    if written != node.size {
        return Err(format!(
            "the snapshot's content is {written} bytes but its metadata says {}",
            node.size
        ));
    }
    if ctx.options.verify && !holds(ctx, file, node)? {
        return Err(
            "verification failed: the file reads back differently from the snapshot".to_owned(),
        );
    }
    ctx.apply_metadata(Target::File(file), &job.path, node)
        .map_err(|e| format!("cannot set metadata: {e}"))
}

/// Records a file filled by a batch (see `batch`): completes it, or on `error` removes
/// it.
pub(crate) fn finish_file(
    ctx: &Ctx<'_>,
    job: FileJob,
    error: Option<String>,
    hole: bool,
    written: u64,
    counts: &Mutex<WorkerCounts>,
) {
    let outcome = match error {
        Some(message) => Err(message),
        None => complete(ctx, &job, hole, written).map(|()| Outcome::Written(written)),
    };
    record(ctx, job, outcome, counts);
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn zero_blocks_become_holes_and_read_back_as_zeros() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = File::create(&path).unwrap();
        let block = 4096;
        let mut data = vec![0u8; 64 * block + 100];
        data[5] = 1;
        data[block * 40 + 7] = 2;
        // Written in two pieces at their offsets, the second first.
        let half = 32 * block + 10;
        assert!(write_at(&file, &data[half..], half as u64, true).unwrap());
        assert!(write_at(&file, &data[..half], 0, true).unwrap());
        file.set_len(data.len() as u64).unwrap();
        let mut back = Vec::new();
        File::open(&path).unwrap().read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
        assert!(std::fs::metadata(&path).unwrap().blocks() * 512 < 16 * block as u64);
        // Data only: no hole; without `sparse`, zeros are written.
        let other = File::create(dir.path().join("g")).unwrap();
        assert!(!write_at(&other, &[1u8; 10_000], 0, true).unwrap());
        let dense = File::create(dir.path().join("h")).unwrap();
        assert!(!write_at(&dense, &vec![0u8; 64 * block], 0, false).unwrap());
    }
}
