//! `arca repair`.

use arca_core::CancelToken;
use serde::Serialize;

use crate::app::GlobalArgs;
use crate::{exit, output};

/// Repair a damaged repository
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  arca check --read-data                 # what is damaged, and which files it affects
  arca repair index                      # an index of exactly the intact data
  arca repair snapshots --dry-run        # which files each snapshot would lose
  arca repair snapshots --forget         # repaired copies replace the damaged snapshots")]
pub struct Args {
    #[command(subcommand)]
    command: RepairCommand,
}

#[derive(Debug, clap::Subcommand)]
enum RepairCommand {
    /// Rebuild the index from the packs (after damaged or lost index files)
    #[command(after_help = "\
Reads every pack, authenticates every entry, and writes an index of exactly the intact
entries; the old index files are removed. Data that only damaged entries held stays
missing: `arca check` names the files that need it, and the next backup of those files
stores it again.")]
    Index {
        /// Wait up to DURATION (e.g. 10m) for a running prune to finish
        #[arg(long, value_name = "DURATION")]
        retry_lock: Option<String>,

        /// Print the report as JSON
        #[arg(long)]
        json: bool,
    },
    /// Write copies of snapshots without the files whose data is gone
    #[command(after_help = "\
Every snapshot that needs data the index lacks is written anew without the files whose
content is gone (and with empty directories where a directory's tree is gone), tagged
`repaired`; each file left out is named. Run `arca repair index` first, so that
damaged data counts as gone. The next backup stores the lost files again if they still
exist on disk.")]
    Snapshots {
        /// Remove the damaged originals
        #[arg(long)]
        forget: bool,

        /// Show what would be left out; write nothing
        #[arg(short = 'n', long)]
        dry_run: bool,

        /// Print the report as JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Serialize)]
struct RepairedJson {
    old: String,
    new: Option<String>,
    lost: Vec<String>,
}

#[derive(Serialize)]
struct IndexJson {
    packs: u64,
    blobs: u64,
    damaged_packs: Vec<String>,
    index_files_written: u64,
    index_files_removed: u64,
}

pub fn run(g: &GlobalArgs, a: &Args, cancel: &CancelToken) -> anyhow::Result<u8> {
    match &a.command {
        RepairCommand::Index { retry_lock, json } => {
            let wait = retry_lock
                .as_deref()
                .map(arca_core::parse_interval)
                .transpose()?
                .unwrap_or_default();
            let mut repo = g.open_cached(false)?;
            let r = repo.repair_index(wait, cancel)?;
            if *json {
                output::json(&IndexJson {
                    packs: r.packs,
                    blobs: r.blobs,
                    damaged_packs: r.damaged_packs.clone(),
                    index_files_written: r.index_files_written,
                    index_files_removed: r.index_files_removed,
                })?;
            } else {
                output::line(format!(
                    "indexed {} blobs in {} packs; wrote {} index files, removed {}",
                    output::count(r.blobs),
                    output::count(r.packs),
                    r.index_files_written,
                    r.index_files_removed
                ))?;
                for p in &r.damaged_packs {
                    output::line(format!(
                        "pack {p} is damaged: only its intact entries are indexed"
                    ))?;
                }
            }
            Ok(exit::OK)
        }
        RepairCommand::Snapshots {
            forget,
            dry_run,
            json,
        } => {
            let mut repo = g.open_cached(false)?;
            let repaired = repo.repair_snapshots(*forget, *dry_run)?;
            if *json {
                let list: Vec<RepairedJson> = repaired
                    .iter()
                    .map(|r| RepairedJson {
                        old: r.old.to_string(),
                        new: r.new.map(|n| n.to_string()),
                        lost: r.lost.clone(),
                    })
                    .collect();
                output::json(&list)?;
            } else {
                for r in &repaired {
                    let new = r.new.map_or_else(|| "(dry run)".to_owned(), |n| n.short());
                    output::line(format!(
                        "snapshot {} -> {new}: {} paths left out",
                        r.old.short(),
                        r.lost.len()
                    ))?;
                    for path in &r.lost {
                        output::line(format!("  lost {path}"))?;
                    }
                }
                if !g.quiet {
                    output::message(format!("{} snapshot(s) needed repair", repaired.len()));
                }
            }
            Ok(exit::OK)
        }
    }
}
