//! `arca check`.

use arca_core::{CancelToken, CheckOptions};
use serde::Serialize;

use crate::app::GlobalArgs;
use crate::progress::Bar;
use crate::{exit, output};

/// Verify the repository: every index, snapshot and tree readable and consistent, every
/// referenced chunk present. With --read-data, read and authenticate every stored byte
/// and recompute every chunk id. Exit code 1 if any problem is found.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  arca check
  arca check --read-data --json")]
pub struct Args {
    /// Also read, authenticate, decompress and re-hash all data
    #[arg(long)]
    read_data: bool,

    /// Print the report as one JSON object
    #[arg(long)]
    json: bool,
}

/// The `--json` report. Field names are a stable contract (see README).
#[derive(Serialize)]
struct CheckJson {
    ok: bool,
    errors: Vec<ProblemJson>,
    notes: Vec<String>,
    snapshots: u64,
    trees: u64,
    blobs: u64,
    packs: u64,
    packs_read: u64,
    bytes_read: u64,
}

#[derive(Serialize)]
struct ProblemJson {
    object: String,
    message: String,
}

pub fn run(g: &GlobalArgs, a: &Args, cancel: &CancelToken) -> anyhow::Result<u8> {
    let repo = g.open_cached(false)?;
    let bar = Bar::new(g.progress());
    let options = CheckOptions {
        read_data: a.read_data,
        threads: 0,
        cancel: cancel.clone(),
    };
    let result = repo.check(&options, &bar);
    bar.finish();
    let report = result?;
    if a.json {
        output::json(&CheckJson {
            ok: report.is_ok(),
            errors: report
                .errors
                .iter()
                .map(|p| ProblemJson {
                    object: p.object.clone(),
                    message: p.message.clone(),
                })
                .collect(),
            notes: report.notes.clone(),
            snapshots: report.snapshots,
            trees: report.trees,
            blobs: report.blobs,
            packs: report.packs,
            packs_read: report.packs_read,
            bytes_read: report.bytes_read,
        })?;
    } else {
        for p in &report.errors {
            output::line(format!("error: {p}"))?;
        }
        for n in &report.notes {
            output::line(format!("note: {n}"))?;
        }
        if !g.quiet {
            let data = if a.read_data {
                format!(
                    ", read {} in {} packs",
                    output::size(report.bytes_read),
                    report.packs_read
                )
            } else {
                String::new()
            };
            output::line(format!(
                "checked {} snapshots, {} trees, {} blobs in {} packs{data}: {}",
                report.snapshots,
                report.trees,
                report.blobs,
                report.packs,
                if report.is_ok() {
                    "no errors".to_owned()
                } else {
                    format!("{} error(s)", report.errors.len())
                }
            ))?;
        }
    }
    Ok(if report.is_ok() {
        exit::OK
    } else {
        exit::FATAL
    })
}
