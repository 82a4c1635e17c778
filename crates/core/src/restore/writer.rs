//! Restoring one file: confirm that an existing file already holds the snapshot's
//! content (or empty it for `batch` to fill); write content at its offset (holes for
//! runs of zeros); finish a filled file (length, optional read-back, metadata set
//! through its descriptor) or remove it on error.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arca_repo::Node;

use super::{Ctx, WorkerCounts};
use crate::content::Unchecked;
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
fn holds(ctx: &Ctx<'_>, mut file: &File, node: &Node) -> Result<bool, Unchecked> {
    file.seek(SeekFrom::Start(0)).map_err(Unchecked::Live)?;
    ctx.repo.holds_content(file, node, &ctx.bundles)
}

/// An existing file of the snapshot's size: if it holds the snapshot's content, its
/// metadata is set and it is recorded as already correct; else it is emptied and given
/// back to be filled (`None` when recorded, also on error). If the snapshot's content
/// cannot be read to compare, the file is left as it is (it may well be right) and the
/// failure reported.
pub(crate) fn settle_existing(
    ctx: &Ctx<'_>,
    job: FileJob,
    counts: &Mutex<WorkerCounts>,
) -> Option<FileJob> {
    let outcome = match holds(ctx, &job.file, &job.node) {
        Err(e @ Unchecked::Stored(_)) => {
            ctx.fail(&job.path, format!("left as it was: {e}"));
            return None;
        }
        Err(e) => Err(e.to_string()),
        Ok(true) => {
            ctx.progress.bytes_written(job.node.size);
            ctx.apply_metadata(Target::File(&job.file), &job.path, &job.node)
                .map(|()| Outcome::AlreadyCorrect)
                .map_err(|e| format!("cannot set metadata: {e}"))
        }
        // Content is written at its offsets (no file position involved).
        Ok(false) => match job.file.set_len(0) {
            Ok(()) => return Some(job),
            Err(e) => Err(format!("cannot truncate: {e}")),
        },
    };
    record(ctx, job, outcome, counts);
    None
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
    if ctx.options.verify && !holds(ctx, file, node).map_err(|e| e.to_string())? {
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

/// Block size for finding holes: the usual file-system block.
const HOLE_BLOCK: usize = 4096;

/// Writes `data` at `offset`, leaving every aligned run of all-zero blocks unwritten
/// when `sparse` (a hole). Returns whether it left a hole (the caller must then set
/// the file's length).
pub(crate) fn write_at(
    file: &File,
    data: &[u8],
    offset: u64,
    sparse: bool,
) -> std::io::Result<bool> {
    if !sparse {
        file.write_all_at(data, offset)?;
        return Ok(false);
    }
    let mut hole = false;
    let mut pos = 0usize;
    while pos < data.len() {
        let rest = &data[pos..];
        let zeros = rest
            .chunks(HOLE_BLOCK)
            .take_while(|b| b.len() == HOLE_BLOCK && b.iter().all(|&x| x == 0))
            .count()
            * HOLE_BLOCK;
        if zeros > 0 {
            hole = true;
            pos += zeros;
            continue;
        }
        let len = rest
            .chunks(HOLE_BLOCK)
            .take_while(|b| b.len() < HOLE_BLOCK || b.iter().any(|&x| x != 0))
            .map(<[u8]>::len)
            .sum::<usize>();
        file.write_all_at(&rest[..len], offset + pos as u64)?;
        pos += len;
    }
    Ok(hole)
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
