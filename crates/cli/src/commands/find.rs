//! `arca find`.

use std::path::Path;

use arca_core::{CancelToken, Node, PatternSet, SnapshotInfo};
use serde::Serialize;

use crate::app::GlobalArgs;
use crate::{exit, output};

/// Find files and directories by name across snapshots
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  arca find '*.odt'
  arca find -i 'invoice*.pdf' --host laptop
  arca find '/home/*/.ssh/**' --snapshot 1a2b3c4d
  arca find report.md --json | jq -r '.snapshot + \" \" + .path'

Patterns are those of --exclude: a pattern without a leading / matches a name (or
path ending) anywhere, `/home/**` is anchored, `**` spans directories. Every matching
entry of every snapshot is printed, oldest snapshot first.")]
pub struct Args {
    /// What to look for (repeatable: any pattern may match)
    #[arg(value_name = "PATTERN", required = true)]
    patterns: Vec<String>,

    /// Match without regard to case
    #[arg(short, long)]
    ignore_case: bool,

    /// Search only snapshot ID (id, prefix or \"latest\"; repeatable)
    #[arg(short, long = "snapshot", value_name = "ID")]
    snapshots: Vec<String>,

    #[command(flatten)]
    select: super::SnapshotArgs,

    /// Print one JSON object per match, then a summary (JSON lines)
    #[arg(long)]
    json: bool,
}

/// One match in `--json` output. Field names are a stable contract (see README).
#[derive(Serialize)]
struct MatchJson<'a> {
    message_type: &'static str,
    snapshot: String,
    short_id: String,
    snapshot_time: String,
    path: String,
    #[serde(rename = "type")]
    kind: &'static str,
    size: u64,
    mtime: String,
    permissions: String,
    user: &'a str,
    group: &'a str,
}

#[derive(Serialize)]
struct SummaryJson<'a> {
    message_type: &'static str,
    snapshots: u64,
    matches: u64,
    errors: &'a [String],
}

fn print(s: &SnapshotInfo, path: &Path, node: &Node, json: bool) -> anyhow::Result<()> {
    if json {
        return output::json(&MatchJson {
            message_type: "match",
            snapshot: s.id.to_string(),
            short_id: s.id.short(),
            snapshot_time: output::rfc3339(s.snapshot.time, s.snapshot.utc_offset),
            path: path.display().to_string(),
            kind: output::kind_name(node.kind),
            size: node.size,
            mtime: output::rfc3339(node.mtime, s.snapshot.utc_offset),
            permissions: super::ls::permissions(node),
            user: &node.user,
            group: &node.group,
        });
    }
    output::line(format!(
        "{}  {}  {:>10}  {}",
        s.id.short(),
        output::local_time(node.mtime),
        output::size(node.size),
        path.display()
    ))
}

pub fn run(g: &GlobalArgs, a: &Args, cancel: &CancelToken) -> anyhow::Result<u8> {
    let patterns = PatternSet::with_case(&a.patterns, a.ignore_case)?;
    let repo = g.open()?;
    let filter = a.select.filter()?;
    let snapshots = repo.find_snapshots(&a.snapshots, &filter)?;
    if !a.json {
        output::line(format!(
            "{:<8}  {:<19}  {:>10}  path",
            "snapshot", "modified", "size"
        ))?;
    }
    let mut printing = Ok(());
    let summary = repo.find(&snapshots, &patterns, cancel, &mut |s, path, node| {
        output::carry(&mut printing, print(s, path, node, a.json))
    });
    printing?;
    let summary = summary?;
    for e in &summary.errors {
        output::message(format!("warning: {e}"));
    }
    if a.json {
        output::json(&SummaryJson {
            message_type: "summary",
            snapshots: summary.snapshots,
            matches: summary.matches,
            errors: &summary.errors,
        })?;
    } else if !g.quiet {
        output::message(format!(
            "{} matches in {} snapshots",
            output::count(summary.matches),
            output::count(summary.snapshots)
        ));
    }
    Ok(if summary.errors.is_empty() {
        exit::OK
    } else {
        exit::FATAL
    })
}
