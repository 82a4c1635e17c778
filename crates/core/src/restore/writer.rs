//! Restore workers: fill an opened file with the snapshot's content (holes for runs of
//! zeros), or confirm that an existing file already holds it; optionally re-read what
//! was written; set the file's metadata through its descriptor.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arca_repo::Node;

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
    match write_file(ctx, &job) {
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
            // Never leave wrong or partial content behind under the file's name.
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

/// Block size for finding holes: the usual file-system block.
const HOLE_BLOCK: usize = 4096;

/// Writes `data` at the current offset, seeking over every aligned run of all-zero
/// blocks instead of writing it, so the file system leaves a hole there. Returns whether
/// it left any hole (the caller must then set the file's length).
fn write_sparse(mut file: &File, data: &[u8]) -> std::io::Result<bool> {
    let mut hole = false;
    let mut rest = data;
    while !rest.is_empty() {
        let zeros = rest
            .chunks(HOLE_BLOCK)
            .take_while(|b| b.len() == HOLE_BLOCK && b.iter().all(|&x| x == 0))
            .count()
            * HOLE_BLOCK;
        if zeros > 0 {
            file.seek(SeekFrom::Current(zeros as i64))?;
            hole = true;
            rest = &rest[zeros..];
            continue;
        }
        let data_len = rest
            .chunks(HOLE_BLOCK)
            .take_while(|b| b.len() < HOLE_BLOCK || b.iter().any(|&x| x != 0))
            .map(<[u8]>::len)
            .sum::<usize>();
        file.write_all(&rest[..data_len])?;
        rest = &rest[data_len..];
    }
    Ok(hole)
}

fn write_file(ctx: &Ctx<'_>, job: &FileJob) -> Result<Outcome, String> {
    let node = &job.node;
    let mut file = &job.file;
    if job.existing {
        if holds(ctx, file, node)? {
            ctx.progress.bytes_written(node.size);
            ctx.apply_metadata(Target::File(file), &job.path, node)
                .map_err(|e| format!("cannot set metadata: {e}"))?;
            return Ok(Outcome::AlreadyCorrect);
        }
        file.set_len(0)
            .map_err(|e| format!("cannot truncate: {e}"))?;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| format!("cannot seek: {e}"))?;
    }
    let mut written = 0u64;
    let mut hole = false;
    for id in &node.content {
        if ctx.cancelled() {
            return Err("restore stopped".to_owned());
        }
        let data = ctx.repo.load_data_blob(id).map_err(|e| e.to_string())?;
        if ctx.options.sparse {
            hole |= write_sparse(file, &data).map_err(|e| format!("cannot write: {e}"))?;
        } else {
            file.write_all(&data)
                .map_err(|e| format!("cannot write: {e}"))?;
        }
        written += data.len() as u64;
        ctx.progress.bytes_written(data.len() as u64);
    }
    if hole {
        // A trailing hole has no bytes written after it; setting the length makes it.
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
        .map_err(|e| format!("cannot set metadata: {e}"))?;
    Ok(Outcome::Written(written))
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
        let mut data = vec![0u8; 64 * HOLE_BLOCK + 100];
        data[5] = 1;
        data[HOLE_BLOCK * 40 + 7] = 2;
        assert!(write_sparse(&file, &data).unwrap());
        file.set_len(data.len() as u64).unwrap();
        let mut back = Vec::new();
        File::open(&path).unwrap().read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
        assert!(std::fs::metadata(&path).unwrap().blocks() * 512 < 16 * HOLE_BLOCK as u64);
        // Data only: no hole.
        let other = File::create(dir.path().join("g")).unwrap();
        assert!(!write_sparse(&other, &[1u8; 10_000]).unwrap());
    }
}
