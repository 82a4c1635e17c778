//! `arca stats`.

use serde::Serialize;

use crate::app::GlobalArgs;
use crate::{exit, output};

/// Show how much the repository stores and how well it deduplicates
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  arca stats
  arca stats --json | jq .dedup_ratio")]
pub struct StatsArgs {
    /// Print the figures as JSON
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct StatsJson {
    snapshots: u64,
    bytes_original: u64,
    bytes_stored_referenced: u64,
    bytes_stored: u64,
    bytes_raw: u64,
    unique_chunks: u64,
    total_chunks: u64,
    packs: u64,
    dedup_ratio: f64,
    compression_ratio: f64,
}

pub fn run(g: &GlobalArgs, a: &StatsArgs) -> anyhow::Result<u8> {
    let repo = g.open()?;
    let s = repo.stats()?;
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let j = StatsJson {
        snapshots: s.snapshots,
        bytes_original: s.bytes_total,
        bytes_stored_referenced: s.bytes_stored_total,
        bytes_stored: s.bytes_stored_unique,
        bytes_raw: s.bytes_raw_unique,
        unique_chunks: s.unique_chunks,
        total_chunks: s.total_chunks,
        packs: s.packs,
        dedup_ratio: ratio(s.bytes_total, s.bytes_raw_unique),
        compression_ratio: ratio(s.bytes_raw_unique, s.bytes_stored_unique),
    };
    if a.json {
        return output::json(&j).map(|()| exit::OK);
    }
    for line in [
        format!("snapshots:            {}", output::count(j.snapshots)),
        format!("original size:        {}", output::size(j.bytes_original)),
        format!(
            "unique data:          {} ({:.2}x deduplication)",
            output::size(j.bytes_raw),
            j.dedup_ratio
        ),
        format!(
            "stored:               {} ({:.2}x compression) in {} packs",
            output::size(j.bytes_stored),
            j.compression_ratio,
            output::count(j.packs)
        ),
        format!(
            "chunks:               {} unique of {} referenced",
            output::count(j.unique_chunks),
            output::count(j.total_chunks)
        ),
    ] {
        output::line(line)?;
    }
    Ok(exit::OK)
}
