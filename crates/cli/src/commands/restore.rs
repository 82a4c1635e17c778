//! `arca restore`.

use std::path::PathBuf;
use std::time::Instant;

use arca_core::{CancelToken, Overwrite, RestoreOptions};
use serde::Serialize;

use crate::app::GlobalArgs;
use crate::progress::Bar;
use crate::{exit, output};

/// Restore a snapshot, or the parts selected by --include/--exclude, into a directory.
/// Paths are recreated below the target as they were in the snapshot. Existing files
/// whose content already matches are left in place, so an interrupted restore resumes.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  arca restore latest --target /tmp/restore
  arca restore 1a2b3c4d --target /srv/old --include '/home/me/documents/**'
  arca restore latest --target . --exclude '*.iso'
  arca restore latest --file-to-restore /home/me/notes.txt --target /tmp/notes.txt
  arca restore latest --target /srv/www --delete --verify")]
pub struct Args {
    /// Snapshot: full id, unique id prefix, or \"latest\" (the newest matching
    /// --host/--tag/--path/--time)
    #[arg(value_name = "SNAPSHOT")]
    snapshot: String,

    /// Directory to restore into (created if missing)
    #[arg(short, long, value_name = "DIR")]
    target: PathBuf,

    /// Restore only paths matching GLOB, and everything below them (repeatable)
    #[arg(long, value_name = "GLOB")]
    include: Vec<String>,

    /// Do not restore paths matching GLOB (repeatable)
    #[arg(long, value_name = "GLOB")]
    exclude: Vec<String>,

    /// Restore only PATH of the snapshot (a file or a directory), as the target itself
    #[arg(long, value_name = "PATH")]
    file_to_restore: Option<PathBuf>,

    /// What to do with existing files: always, if-changed (keep files whose content
    /// already matches), if-newer, never
    #[arg(
        long,
        value_name = "MODE",
        default_value = "if-changed",
        value_parser = ["always", "if-changed", "if-newer", "never"]
    )]
    overwrite: String,

    /// Remove files and directories in the target that the snapshot does not have
    #[arg(long)]
    delete: bool,

    /// Re-read every restored file and compare it with the snapshot
    #[arg(long)]
    verify: bool,

    /// Show what would be restored; change nothing
    #[arg(long)]
    dry_run: bool,

    /// Restore runs of zeros as holes (the default)
    #[arg(long, overrides_with = "no_sparse")]
    sparse: bool,

    /// Write runs of zeros as data instead of holes
    #[arg(long, overrides_with = "sparse")]
    no_sparse: bool,

    /// Restore owners by the recorded numeric ids, not by user and group names
    #[arg(long)]
    numeric_owner: bool,

    /// Worker threads (default: one per CPU)
    #[arg(long, value_name = "N", default_value_t = 0)]
    threads: usize,

    #[command(flatten)]
    select: super::SnapshotArgs,

    /// Print the summary as one JSON object
    #[arg(long)]
    json: bool,
}

/// The `--json` summary. Field names are a stable contract (see README).
#[derive(Serialize)]
struct RestoreJson {
    snapshot_id: String,
    target: String,
    dry_run: bool,
    files: u64,
    files_skipped: u64,
    hardlinks: u64,
    dirs: u64,
    other: u64,
    bytes: u64,
    files_verified: u64,
    deleted: u64,
    duration_seconds: f64,
    warnings: Vec<String>,
}

pub fn run(g: &GlobalArgs, a: &Args, cancel: &CancelToken) -> anyhow::Result<u8> {
    let started = Instant::now();
    let repo = g.open()?;
    let snapshot = repo.find_snapshot_filtered(&a.snapshot, &a.select.filter()?)?;
    let options = RestoreOptions {
        includes: a.include.clone(),
        excludes: a.exclude.clone(),
        path: a
            .file_to_restore
            .as_deref()
            .map(arca_core::absolute)
            .transpose()?,
        overwrite: a.overwrite.parse::<Overwrite>()?,
        delete: a.delete,
        verify: a.verify,
        sparse: !a.no_sparse,
        numeric_owner: a.numeric_owner,
        dry_run: a.dry_run,
        threads: a.threads,
        cancel: cancel.clone(),
    };
    let bar = Bar::new(g.progress());
    let result = repo.restore(&snapshot, &a.target, &options, &bar);
    bar.finish();
    let summary = result?;
    let secs = started.elapsed().as_secs_f64();
    if a.json {
        output::json(&RestoreJson {
            snapshot_id: snapshot.id.to_string(),
            target: a.target.display().to_string(),
            dry_run: a.dry_run,
            files: summary.files,
            files_skipped: summary.files_skipped,
            hardlinks: summary.hardlinks,
            dirs: summary.dirs,
            other: summary.other,
            bytes: summary.bytes,
            files_verified: summary.files_verified,
            deleted: summary.deleted,
            duration_seconds: secs,
            warnings: summary.warnings,
        })?;
    } else if !g.quiet {
        let verb = if a.dry_run {
            "would restore"
        } else {
            "restored"
        };
        let mut line = format!(
            "{verb} snapshot {} to {}: {} files ({}), {} directories, {} other entries",
            snapshot.id.short(),
            a.target.display(),
            output::count(summary.files),
            output::size(summary.bytes),
            output::count(summary.dirs),
            output::count(summary.other),
        );
        if summary.files_skipped > 0 {
            line.push_str(&format!(
                ", {} files already in place",
                output::count(summary.files_skipped)
            ));
        }
        if summary.hardlinks > 0 {
            line.push_str(&format!(
                ", {} hard links",
                output::count(summary.hardlinks)
            ));
        }
        if summary.deleted > 0 {
            line.push_str(&format!(
                ", {} entries deleted",
                output::count(summary.deleted)
            ));
        }
        if a.verify {
            line.push_str(&format!(
                ", {} files verified",
                output::count(summary.files_verified)
            ));
        }
        output::line(format!("{line} in {secs:.2} s"))?;
    }
    Ok(exit::OK)
}
