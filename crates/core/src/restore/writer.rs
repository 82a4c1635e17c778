//! Writing restored entries: file content (sparse where the content is zeros), symlinks,
//! FIFOs, devices and sockets.

use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use arca_repo::{Node, NodeKind};
use nix::sys::stat::{Mode, SFlag, mknod};

use super::Ctx;

/// A regular file to restore.
#[derive(Debug)]
pub(crate) struct FileJob {
    pub(crate) path: PathBuf,
    pub(crate) node: Node,
}

/// Removes whatever non-directory entry occupies `path`, so the restore creates a new
/// file instead of writing through an existing symlink or hard link.
fn clear(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "a directory is in the way",
        )),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Restores one file; returns the bytes written, or `None` after recording an error.
pub(crate) fn restore_file(ctx: &Ctx<'_>, job: &FileJob) -> Option<u64> {
    match write_file(ctx, job) {
        Ok(n) => {
            ctx.progress.file_done(&job.path);
            Some(n)
        }
        Err(message) => {
            // Never leave wrong or partial content behind under the file's name.
            if fs::symlink_metadata(&job.path).is_ok_and(|m| m.is_file()) {
                let _ = fs::remove_file(&job.path);
            }
            ctx.fail(&job.path, message);
            None
        }
    }
}

fn write_file(ctx: &Ctx<'_>, job: &FileJob) -> Result<u64, String> {
    let path = &job.path;
    clear(path).map_err(|e| format!("cannot replace the existing entry: {e}"))?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| format!("cannot create: {e}"))?;
    let mut written = 0u64;
    let mut hole = false;
    for id in &job.node.content {
        if ctx.cancel.is_cancelled() {
            return Err("restore stopped".to_owned());
        }
        let data = ctx.repo.load_data_blob(id).map_err(|e| e.to_string())?;
        if data.iter().all(|&b| b == 0) {
            // Leave a hole: the filesystem reads it back as zeros without storing them.
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
    if written != job.node.size {
        return Err(format!(
            "the snapshot's content is {written} bytes but its metadata says {}",
            job.node.size
        ));
    }
    drop(file);
    ctx.apply_metadata(path, &job.node)
        .map_err(|e| format!("cannot set metadata: {e}"))?;
    Ok(written)
}

/// Creates a symlink; true on success (failures are recorded).
pub(crate) fn write_symlink(ctx: &Ctx<'_>, path: &Path, node: &Node) -> bool {
    let result = clear(path)
        .and_then(|()| std::os::unix::fs::symlink(OsStr::from_bytes(&node.target), path))
        .map_err(|e| format!("cannot create symlink: {e}"))
        .and_then(|()| {
            ctx.apply_metadata(path, node)
                .map_err(|e| format!("cannot set metadata: {e}"))
        });
    match result {
        Ok(()) => true,
        Err(message) => {
            ctx.fail(path, message);
            false
        }
    }
}

/// Creates a FIFO, device or socket node; true on success. Devices need privileges;
/// without them the entry is skipped with a warning.
pub(crate) fn create_special(ctx: &Ctx<'_>, path: &Path, node: &Node) -> bool {
    let kind = match node.kind {
        NodeKind::Fifo => SFlag::S_IFIFO,
        NodeKind::BlockDevice => SFlag::S_IFBLK,
        NodeKind::CharDevice => SFlag::S_IFCHR,
        NodeKind::Socket => SFlag::S_IFSOCK,
        _ => {
            ctx.fail(path, "unknown entry type".to_owned());
            return false;
        }
    };
    if let Err(e) = clear(path) {
        ctx.fail(path, format!("cannot replace the existing entry: {e}"));
        return false;
    }
    let mode = Mode::from_bits_truncate((node.mode & 0o7777) as nix::libc::mode_t);
    match mknod(path, kind, mode, node.rdev as nix::libc::dev_t) {
        Ok(()) => {}
        Err(nix::errno::Errno::EPERM) if !ctx.is_root => {
            ctx.warn(path, "skipped: creating devices requires root".to_owned());
            return false;
        }
        Err(e) => {
            ctx.fail(path, format!("cannot create: {e}"));
            return false;
        }
    }
    if let Err(e) = ctx.apply_metadata(path, node) {
        ctx.fail(path, format!("cannot set metadata: {e}"));
        return false;
    }
    true
}
