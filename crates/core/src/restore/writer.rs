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

/// Whether `file`, read from its start, chunks to exactly the snapshot's chunk ids.
fn holds(ctx: &Ctx<'_>, mut file: &File, node: &Node) -> Result<bool, String> {
    file.seek(SeekFrom::Start(0))
        .map_err(|e| format!("cannot seek: {e}"))?;
    let mut ids = node.content.iter();
    for chunk in ctx.repo.chunker.chunks(file, node.size) {
        let chunk = chunk.map_err(|e| format!("cannot read: {e}"))?;
        if ids.next() != Some(&ctx.repo.repo.blob_id(&chunk)) {
            return Ok(false);
        }
    }
    Ok(ids.next().is_none())
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
        if ctx.options.sparse && data.iter().all(|&b| b == 0) {
            // Leave a hole: the file system reads it back as zeros without storing them.
            file.seek(SeekFrom::Current(data.len() as i64))
                .map_err(|e| format!("cannot seek: {e}"))?;
            hole = true;
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
