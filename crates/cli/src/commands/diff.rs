//! `arca diff`.

use std::path::PathBuf;

use arca_core::{CancelToken, Change, ChangeCounts, DiffEntry, DiffSummary};
use serde::Serialize;

use crate::app::GlobalArgs;
use crate::{exit, output};

/// Show what changed between two snapshots
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  arca diff 1a2b3c4d latest
  arca diff 1a2b3c4d 5e6f7a8b /home/me/documents
  arca diff 1a2b3c4d latest --json | jq -r 'select(.modifier == \"+\") | .path'

Each line starts with what happened: + added, - removed, M modified content (with
the attributes that changed), U metadata changed, T type changed. Everything below
an added or removed directory is listed.")]
pub struct Args {
    /// The older snapshot: id, unique prefix, or \"latest\"
    #[arg(value_name = "SNAPSHOT1")]
    old: String,

    /// The newer snapshot
    #[arg(value_name = "SNAPSHOT2")]
    new: String,

    /// Compare only this path (default: everything)
    #[arg(value_name = "PATH", default_value = "/")]
    path: PathBuf,

    #[command(flatten)]
    select: super::SnapshotArgs,

    /// Print one JSON object per change, then the statistics (JSON lines)
    #[arg(long)]
    json: bool,
}

/// One change in `--json` output. Field names are a stable contract (see README).
#[derive(Serialize)]
struct ChangeJson<'a> {
    message_type: &'static str,
    path: String,
    modifier: String,
    #[serde(rename = "type")]
    kind: &'static str,
    changes: &'a [&'static str],
    size: u64,
}

#[derive(Serialize)]
struct CountsJson {
    added: u64,
    removed: u64,
    changed: u64,
}

impl From<ChangeCounts> for CountsJson {
    fn from(c: ChangeCounts) -> Self {
        Self {
            added: c.added,
            removed: c.removed,
            changed: c.changed,
        }
    }
}

/// The final `--json` line.
#[derive(Serialize)]
struct StatisticsJson {
    message_type: &'static str,
    old_snapshot: String,
    new_snapshot: String,
    files: CountsJson,
    dirs: CountsJson,
    others: CountsJson,
    bytes_added: u64,
    bytes_removed: u64,
}

fn print(e: &DiffEntry<'_>, json: bool) -> anyhow::Result<()> {
    let node = e.new.or(e.old);
    if json {
        return output::json(&ChangeJson {
            message_type: "change",
            path: e.path.display().to_string(),
            modifier: e.change.marker().to_string(),
            kind: node.map_or("unknown", |n| output::kind_name(n.kind)),
            changes: &e.attributes,
            size: node.map_or(0, |n| n.size),
        });
    }
    let mut line = format!("{}    {}", e.change.marker(), e.path.display());
    if e.change == Change::TypeChanged {
        let kind = |n: Option<&arca_core::Node>| n.map_or("?", |n| output::kind_name(n.kind));
        line.push_str(&format!("  ({} -> {})", kind(e.old), kind(e.new)));
    } else if !e.attributes.is_empty() {
        line.push_str(&format!("  ({})", e.attributes.join(", ")));
    }
    output::line(line)
}

pub fn run(g: &GlobalArgs, a: &Args, cancel: &CancelToken) -> anyhow::Result<u8> {
    let repo = g.open()?;
    let filter = a.select.filter()?;
    let old = repo.find_snapshot_filtered(&a.old, &filter)?;
    let new = repo.find_snapshot_filtered(&a.new, &filter)?;
    let mut printing = Ok(());
    let path = arca_core::absolute(&a.path)?;
    let summary = repo.diff(&old, &new, &path, cancel, &mut |e| {
        output::carry(&mut printing, print(e, a.json))
    });
    printing?;
    let summary: DiffSummary = summary?;
    if a.json {
        output::json(&StatisticsJson {
            message_type: "statistics",
            old_snapshot: old.id.to_string(),
            new_snapshot: new.id.to_string(),
            files: summary.files.into(),
            dirs: summary.dirs.into(),
            others: summary.others.into(),
            bytes_added: summary.bytes_added,
            bytes_removed: summary.bytes_removed,
        })?;
        return Ok(exit::OK);
    }
    let row = |what: &str, c: ChangeCounts| {
        format!(
            "{what:<8} {} new, {} removed, {} changed",
            output::count(c.added),
            output::count(c.removed),
            output::count(c.changed)
        )
    };
    output::line("")?;
    output::line(row("Files:", summary.files))?;
    output::line(row("Dirs:", summary.dirs))?;
    output::line(row("Others:", summary.others))?;
    output::line(format!("Added:   {}", output::size(summary.bytes_added)))?;
    output::line(format!("Removed: {}", output::size(summary.bytes_removed)))?;
    Ok(exit::OK)
}
