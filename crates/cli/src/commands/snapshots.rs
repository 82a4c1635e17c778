//! `arca snapshots`.

use arca_core::SnapshotInfo;
use serde::Serialize;

use crate::app::GlobalArgs;
use crate::{exit, output};

/// List the snapshots in the repository, oldest first.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  arca snapshots
  arca snapshots --host web1 --tag daily --time 2W
  arca snapshots --json | jq -r '.[].id'")]
pub struct Args {
    #[command(flatten)]
    select: super::SnapshotArgs,

    /// Print a JSON array of snapshots
    #[arg(long)]
    json: bool,
}

/// One snapshot in `--json` output. Field names are a stable contract (see README).
#[derive(Serialize)]
pub struct SnapshotJson {
    id: String,
    short_id: String,
    time: String,
    host: String,
    username: String,
    paths: Vec<String>,
    tags: Vec<String>,
    parent: Option<String>,
    tree: String,
    size: u64,
    partial: bool,
    checkpoint: bool,
    files: u64,
    changed_during_read: u64,
    notes: Vec<String>,
    program_version: String,
}

pub fn to_json(info: &SnapshotInfo) -> SnapshotJson {
    let s = &info.snapshot;
    let sum = &s.summary;
    SnapshotJson {
        id: info.id.to_string(),
        short_id: info.id.short(),
        time: output::rfc3339(s.time, s.utc_offset),
        host: s.hostname.clone(),
        username: s.username.clone(),
        paths: info.paths_lossy(),
        tags: s.tags.clone(),
        parent: s.parent.map(hex_id),
        tree: s.tree.to_string(),
        size: sum.bytes_total,
        partial: s.is_partial(),
        checkpoint: s.checkpoint,
        files: sum.files_new + sum.files_changed + sum.files_unchanged,
        changed_during_read: sum.changed_during_read,
        notes: s.notes.clone(),
        program_version: s.program_version.clone(),
    }
}

fn hex_id(bytes: [u8; 32]) -> String {
    arca_core::ObjectId::from_bytes(bytes).to_string()
}

pub fn run(g: &GlobalArgs, a: &Args) -> anyhow::Result<u8> {
    let repo = g.open()?;
    let arca_core::SnapshotList {
        snapshots: list,
        damaged,
        ..
    } = repo.snapshots_lenient()?;
    let filter = a.select.filter()?.absolute()?;
    let list: Vec<_> = list
        .into_iter()
        .filter(|s| filter.matches(&s.snapshot))
        .collect();
    for (_, e) in &damaged {
        output::message(format!("warning: {e}"));
    }
    if a.json {
        let items: Vec<SnapshotJson> = list.iter().map(to_json).collect();
        output::line(serde_json::to_string_pretty(&items)?)?;
    } else {
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|info| {
                let s = &info.snapshot;
                let mut size = output::size(s.summary.bytes_total);
                if s.is_partial() {
                    size.push_str(" (partial)");
                }
                if s.checkpoint {
                    size.push_str(" (checkpoint)");
                }
                vec![
                    info.id.short(),
                    output::local_time(s.time),
                    s.hostname.clone(),
                    s.tags.join(","),
                    info.paths_lossy().join(" "),
                    size,
                    info.id.to_string(),
                ]
            })
            .collect();
        for row in output::table(
            &["ID", "Time", "Host", "Tags", "Paths", "Size", "Full ID"],
            &rows,
        ) {
            output::line(row)?;
        }
        if !g.quiet {
            output::line(format!("{} snapshot(s)", list.len()))?;
        }
    }
    Ok(if damaged.is_empty() {
        exit::OK
    } else {
        exit::FATAL
    })
}
