//! `arca dump`.

use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use arca_core::{ArchiveFormat, CancelToken};

use crate::app::GlobalArgs;
use crate::{exit, output};

/// Write a file from a snapshot to standard output, or a directory as a tar or zip
/// archive that standard tools unpack
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  arca dump latest /etc/fstab
  arca dump latest /var/backups/db.sql | psql mydb
  arca dump latest /home/me/documents --archive tar | tar -x -C /tmp/restore
  arca dump 1a2b3c4d /home/me --archive zip --target /tmp/home.zip

Archive entries are named by their path in the snapshot without the leading /
(home/me/documents/...). Tar keeps owners, modes, times with nanoseconds, hard
links, symlinks, devices, FIFOs and extended attributes (PAX SCHILY.xattr; unpack
with `tar --xattrs`); zip keeps modes, times and symlinks, stores hard links as
copies and leaves out devices, FIFOs and sockets with a warning.")]
pub struct Args {
    /// Snapshot: full id, unique id prefix, or \"latest\" (the newest matching
    /// --host/--tag/--path/--time)
    #[arg(value_name = "SNAPSHOT")]
    snapshot: String,

    /// The file to write, or with --archive the directory (/ for the whole snapshot)
    #[arg(value_name = "PATH")]
    path: PathBuf,

    /// Write PATH and everything below it as an archive: tar or zip
    #[arg(long, value_name = "FORMAT", value_parser = ["tar", "zip"])]
    archive: Option<String>,

    /// Write to FILE instead of standard output (a new file of mode 0600, put in place
    /// when complete; an existing regular file is replaced)
    #[arg(long, value_name = "FILE")]
    target: Option<PathBuf>,

    #[command(flatten)]
    select: super::SnapshotArgs,
}

pub fn run(g: &GlobalArgs, a: &Args, cancel: &CancelToken) -> anyhow::Result<u8> {
    let format: Option<ArchiveFormat> = a.archive.as_deref().map(str::parse).transpose()?;
    if format.is_some() && a.target.is_none() && io::stdout().is_terminal() {
        anyhow::bail!(
            "refusing to write an archive to a terminal: redirect standard output or use --target FILE"
        );
    }
    let repo = g.open()?;
    let snapshot = repo.find_snapshot_filtered(&a.snapshot, &a.select.filter()?)?;
    let warnings = match &a.target {
        Some(path) => dump_to_file(&repo, &snapshot, a, format, path, cancel)?,
        None => {
            let mut w = BufWriter::with_capacity(1 << 20, io::stdout().lock());
            dump_into(&repo, &snapshot, a, format, &mut w, cancel).map_err(broken_pipe_is_quiet)?
        }
    };
    for w in &warnings {
        output::message(format!("warning: {w}"));
    }
    Ok(exit::OK)
}

/// Dumps into a new private file beside `path` and renames it to `path` once complete:
/// a failed or interrupted dump leaves nothing under `path` (nor changes what was
/// there), and only a regular file is ever replaced.
fn dump_to_file(
    repo: &arca_core::Repository,
    snapshot: &arca_core::SnapshotInfo,
    a: &Args,
    format: Option<ArchiveFormat>,
    path: &Path,
    cancel: &CancelToken,
) -> anyhow::Result<Vec<String>> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_file() => anyhow::bail!(
            "{} exists and is not a regular file; choose another --target",
            path.display()
        ),
        _ => {}
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // Created with mode 0600, removed when dropped unless persisted.
    let temp = tempfile::Builder::new()
        .prefix(".arca-dump-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, temp);
    let warnings = dump_into(repo, snapshot, a, format, &mut w, cancel)?;
    let temp = w.into_inner().map_err(|e| e.into_error())?;
    temp.as_file()
        .sync_all()
        .with_context(|| format!("cannot write {}", path.display()))?;
    temp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(warnings)
}

/// Dumps into `out` and flushes it; returns the warnings.
fn dump_into(
    repo: &arca_core::Repository,
    snapshot: &arca_core::SnapshotInfo,
    a: &Args,
    format: Option<ArchiveFormat>,
    out: &mut impl Write,
    cancel: &CancelToken,
) -> anyhow::Result<Vec<String>> {
    let warnings = match format {
        None => {
            repo.dump(snapshot, &arca_core::absolute(&a.path)?, out, cancel)?;
            Vec::new()
        }
        Some(format) => {
            repo.dump_archive(
                snapshot,
                &arca_core::absolute(&a.path)?,
                format,
                out,
                cancel,
            )?
            .warnings
        }
    };
    out.flush().context("cannot write the output")?;
    Ok(warnings)
}

/// A reader that closed the pipe (`arca dump ... | head`) is not a failure.
fn broken_pipe_is_quiet(e: anyhow::Error) -> anyhow::Error {
    let closed = e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    });
    if closed { output::ClosedPipe.into() } else { e }
}
