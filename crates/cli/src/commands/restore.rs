//! `arca restore`.

use std::path::PathBuf;
use std::time::Instant;

use arca_core::{CancelToken, RestoreOptions};
use serde::Serialize;

use crate::app::GlobalArgs;
use crate::progress::Bar;
use crate::{exit, output};

/// Restore a snapshot, or the parts selected by --include/--exclude, into a directory.
/// Paths are recreated below the target as they were in the snapshot.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  arca restore latest --target /tmp/restore
  arca restore 1a2b3c4d --target /srv/old --include '/home/me/documents/**'
  arca restore latest --target . --exclude '*.iso'")]
pub struct Args {
    /// Snapshot: full id, unique id prefix, or \"latest\"
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

    /// Worker threads (default: one per CPU)
    #[arg(long, value_name = "N", default_value_t = 0)]
    threads: usize,

    /// Print the summary as one JSON object
    #[arg(long)]
    json: bool,
}

/// The `--json` summary. Field names are a stable contract (see README).
#[derive(Serialize)]
struct RestoreJson {
    snapshot_id: String,
    target: String,
    files: u64,
    dirs: u64,
    other: u64,
    bytes: u64,
    duration_seconds: f64,
    warnings: Vec<String>,
}

pub fn run(g: &GlobalArgs, a: &Args, cancel: &CancelToken) -> anyhow::Result<u8> {
    let started = Instant::now();
    let repo = g.open()?;
    let snapshot = repo.find_snapshot(&a.snapshot)?;
    let options = RestoreOptions {
        includes: a.include.clone(),
        excludes: a.exclude.clone(),
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
            files: summary.files,
            dirs: summary.dirs,
            other: summary.other,
            bytes: summary.bytes,
            duration_seconds: secs,
            warnings: summary.warnings,
        })?;
    } else if !g.quiet {
        output::line(format!(
            "restored snapshot {} to {}: {} files ({}), {} directories, {} other entries in {secs:.2} s",
            snapshot.id.short(),
            a.target.display(),
            output::count(summary.files),
            output::size(summary.bytes),
            output::count(summary.dirs),
            output::count(summary.other),
        ))?;
    }
    Ok(exit::OK)
}
