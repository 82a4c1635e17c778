//! `arca verify`.

use std::path::{Path, PathBuf};

use arca_core::{CancelToken, Difference, VerifyOptions};
use serde::Serialize;

use crate::app::GlobalArgs;
use crate::{exit, output};

/// Compare a snapshot with the files on disk: missing, extra and changed entries
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  arca verify latest
  arca verify latest --path /home/me/documents --compare-data
  arca verify 1a2b3c4d --target /tmp/restore --compare-data   # check a restore

Without --compare-data, files are compared by type, size, mode, owner, modification
time, symlink target and extended attributes; with it, every file's content too (read
from disk and compared with the snapshot's chunk ids; the repository's data is not
read). Access and change times are not compared. Entries excluded by the snapshot's
--exclude rules are not reported as extra.

Exit codes: 0 the disk matches the snapshot, 1 differences found (or an error).")]
pub struct Args {
    /// Snapshot: full id, unique id prefix, or \"latest\" (the newest matching
    /// --host/--tag/--time)
    #[arg(value_name = "SNAPSHOT")]
    snapshot: String,

    /// Compare only DIR (a path in the snapshot; default: all backed-up paths)
    #[arg(long, value_name = "DIR")]
    path: Option<PathBuf>,

    /// Compare with the tree under DIR (e.g. a restore target) instead of the original
    /// location
    #[arg(long, value_name = "DIR")]
    target: Option<PathBuf>,

    /// Also compare every file's content
    #[arg(long)]
    compare_data: bool,

    /// Expect the recorded numeric owners (as restore --numeric-owner sets them), not
    /// those the recorded user and group names have on this system
    #[arg(long)]
    numeric_owner: bool,

    #[command(flatten)]
    select: super::HostTagTimeArgs,

    /// Print one JSON object per difference, then a summary (JSON lines)
    #[arg(long)]
    json: bool,
}

/// One difference in `--json` output. Field names are a stable contract (see README).
#[derive(Serialize)]
struct DifferenceJson<'a> {
    message_type: &'static str,
    path: String,
    live_path: String,
    status: &'static str,
    changes: &'a [&'static str],
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

#[derive(Serialize)]
struct SummaryJson {
    message_type: &'static str,
    snapshot: String,
    ok: bool,
    entries: u64,
    files_compared: u64,
    bytes_compared: u64,
    missing: u64,
    extra: u64,
    changed: u64,
    unreadable: u64,
}

fn print(path: &Path, live: &Path, d: &Difference, json: bool) -> anyhow::Result<()> {
    let (status, changes, error): (&str, &[&'static str], Option<&str>) = match d {
        Difference::Missing => ("missing", &[], None),
        Difference::Extra => ("extra", &[], None),
        Difference::Changed(c) => ("changed", c, None),
        Difference::Unreadable(e) => ("unreadable", &[], Some(e)),
        _ => ("unknown", &[], None),
    };
    if json {
        return output::json(&DifferenceJson {
            message_type: "difference",
            path: path.display().to_string(),
            live_path: live.display().to_string(),
            status,
            changes,
            error,
        });
    }
    let mut line = format!("{status:<10} {}", live.display());
    if !changes.is_empty() {
        line.push_str(&format!("  ({})", changes.join(", ")));
    }
    if let Some(e) = error {
        line.push_str(&format!(": {e}"));
    }
    output::line(line)
}

pub fn run(g: &GlobalArgs, a: &Args, cancel: &CancelToken) -> anyhow::Result<u8> {
    let repo = g.open()?;
    let snapshot = repo.find_snapshot_filtered(&a.snapshot, &a.select.filter()?)?;
    let mut options = VerifyOptions::default();
    options.path = a.path.as_deref().map(arca_core::absolute).transpose()?;
    options.numeric_owner = a.numeric_owner;
    options.target = a.target.clone();
    options.compare_data = a.compare_data;
    options.cancel = cancel.clone();
    let mut printing = Ok(());
    let report = repo.verify(&snapshot, &options, &mut |path, live, d| {
        output::carry(&mut printing, print(path, live, d, a.json))
    });
    printing?;
    let report = report?;
    if a.json {
        output::json(&SummaryJson {
            message_type: "summary",
            snapshot: snapshot.id.to_string(),
            ok: report.is_ok(),
            entries: report.entries,
            files_compared: report.files_compared,
            bytes_compared: report.bytes_compared,
            missing: report.missing,
            extra: report.extra,
            changed: report.changed,
            unreadable: report.unreadable,
        })?;
    } else if !g.quiet {
        output::message(format!(
            "{} entries compared{}: {} missing, {} extra, {} changed, {} unreadable",
            output::count(report.entries),
            if a.compare_data {
                format!(
                    " ({} files, {} read)",
                    output::count(report.files_compared),
                    output::size(report.bytes_compared)
                )
            } else {
                String::new()
            },
            output::count(report.missing),
            output::count(report.extra),
            output::count(report.changed),
            output::count(report.unreadable),
        ));
    }
    Ok(if report.is_ok() {
        exit::OK
    } else {
        exit::FATAL
    })
}
