//! `arca check`.

use arca_core::{CancelToken, CheckOptions, DataSubset};
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
  arca check --read-data --json
  arca check --read-data-subset 1/7      # part n of 7: run n = 1..7 on seven days
  arca check --read-data-subset 10%      # the next tenth of the packs each run")]
pub struct Args {
    /// Also read, authenticate, decompress and re-hash all data
    #[arg(long)]
    read_data: bool,

    /// Read only part of the data: n/m (part n of m), a percentage or a size (e.g.
    /// 1/5, 10%, 2G); percentages and sizes continue where the previous run stopped
    #[arg(long, value_name = "SUBSET", conflicts_with = "read_data")]
    read_data_subset: Option<String>,

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
    let subset = a
        .read_data_subset
        .as_deref()
        .map(|t| DataSubset::parse(t, |s| super::parse_size(s).ok()))
        .transpose()?;
    let repo = g.open_cached(false)?;
    // Where the previous rotating subset stopped, kept on this host.
    let state = g.storage.state_dir().map(|d| {
        d.join(repo.config().repository_id.to_string())
            .join("check-rotation")
    });
    let rotation = state
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0);
    let bar = Bar::new(g.progress());
    let options = CheckOptions {
        read_data: a.read_data,
        read_data_subset: subset,
        rotation,
        cancel: cancel.clone(),
        ..CheckOptions::default()
    };
    let result = repo.check(&options, &bar);
    bar.finish();
    let report = result?;
    if let (Some(path), Some(DataSubset::Fraction(_) | DataSubset::Bytes(_))) = (&state, subset) {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = std::fs::write(path, report.next_rotation.to_string());
    }
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
