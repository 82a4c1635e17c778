//! `arca prune` and `arca unlock`.

use arca_core::{CancelToken, PruneOptions, PruneReport};
use serde::Serialize;

use crate::app::GlobalArgs;
use crate::{exit, output};

/// Remove data that no snapshot needs any more
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  arca prune --dry-run
  arca prune --max-unused 10% --max-repack-size 2G
  arca forget --keep-daily 7 --keep-weekly 4 --prune

Packs holding only data no snapshot needs are deleted; partly used packs are repacked
(their used data copied into new packs) until unused data is at most --max-unused of
the total. Backups may run meanwhile: packs condemned while backups run are deleted by
a later prune, once those backups have ended. A killed prune leaves a valid repository;
the next run finishes its work.")]
pub struct Args {
    #[command(flatten)]
    pub options: PruneArgs,

    /// Report what would be deleted and repacked; change nothing
    #[arg(short = 'n', long)]
    dry_run: bool,

    /// Print the report as JSON
    #[arg(long)]
    json: bool,
}

/// The options `prune` and `forget --prune` share.
#[derive(Debug, Clone, clap::Args)]
pub struct PruneArgs {
    /// Repack until unused data is at most this share of all data (e.g. 5%, 0%)
    #[arg(long, value_name = "PERCENT", default_value = "5%")]
    max_unused: String,

    /// Read at most SIZE of packs to repack in this run (e.g. 2G)
    #[arg(long, value_name = "SIZE")]
    max_repack_size: Option<String>,

    /// Wait up to DURATION (e.g. 30s, 10m, 1h) for another prune to finish
    #[arg(long, value_name = "DURATION")]
    retry_lock: Option<String>,
}

impl PruneArgs {
    pub fn options(&self, dry_run: bool, cancel: &CancelToken) -> anyhow::Result<PruneOptions> {
        let share = self.max_unused.trim().trim_end_matches('%');
        let max_unused: f64 = share
            .parse::<f64>()
            .ok()
            .filter(|v| (0.0..=100.0).contains(v))
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "invalid --max-unused {:?}: a percentage from 0% to 100%",
                    self.max_unused
                )
            })?;
        let mut options = PruneOptions::default();
        options.max_unused = max_unused / 100.0;
        options.max_repack_size = self
            .max_repack_size
            .as_deref()
            .map(super::parse_size)
            .transpose()?;
        options.dry_run = dry_run;
        options.cancel = cancel.clone();
        if let Some(wait) = &self.retry_lock {
            options.lock_wait = arca_core::parse_interval(wait)?;
        }
        Ok(options)
    }
}

#[derive(Serialize)]
struct ReportJson {
    dry_run: bool,
    snapshots: u64,
    packs_total: u64,
    bytes_total: u64,
    used_blobs: u64,
    used_bytes: u64,
    unused_blobs: u64,
    unused_bytes: u64,
    packs_to_delete: u64,
    bytes_to_delete: u64,
    packs_to_repack: u64,
    bytes_to_repack: u64,
    bytes_repacked: u64,
    packs_written: u64,
    packs_deleted: u64,
    bytes_freed: u64,
    packs_waiting: u64,
    bytes_waiting: u64,
    waiting_for: Vec<String>,
    packs_rescued: u64,
    temporaries_removed: u64,
    warnings: Vec<String>,
}

pub fn print_report(r: &PruneReport, json: bool, quiet: bool) -> anyhow::Result<()> {
    for w in &r.warnings {
        output::message(format!("warning: {w}"));
    }
    if json {
        return output::json(&ReportJson {
            dry_run: r.dry_run,
            snapshots: r.snapshots,
            packs_total: r.packs_total,
            bytes_total: r.bytes_total,
            used_blobs: r.used_blobs,
            used_bytes: r.used_bytes,
            unused_blobs: r.unused_blobs,
            unused_bytes: r.unused_bytes,
            packs_to_delete: r.packs_to_delete,
            bytes_to_delete: r.bytes_to_delete,
            packs_to_repack: r.packs_to_repack,
            bytes_to_repack: r.bytes_to_repack,
            bytes_repacked: r.bytes_repacked,
            packs_written: r.packs_written,
            packs_deleted: r.packs_deleted,
            bytes_freed: r.bytes_freed,
            packs_waiting: r.packs_waiting,
            bytes_waiting: r.bytes_waiting,
            waiting_for: r.waiting_for.clone(),
            packs_rescued: r.packs_rescued,
            temporaries_removed: r.temporaries_removed,
            warnings: r.warnings.clone(),
        });
    }
    if quiet {
        return Ok(());
    }
    let n = |v: u64| output::count(v);
    let b = |v: u64| output::size(v);
    let lines = [
        format!(
            "{} snapshots; {} packs, {}",
            n(r.snapshots),
            n(r.packs_total),
            b(r.bytes_total)
        ),
        format!(
            "used:   {} blobs, {}; unused: {} blobs, {}",
            n(r.used_blobs),
            b(r.used_bytes),
            n(r.unused_blobs),
            b(r.unused_bytes)
        ),
        format!(
            "{} {} packs ({}), repack {} packs ({}, {} of it kept)",
            if r.dry_run {
                "would delete"
            } else {
                "to delete:"
            },
            n(r.packs_to_delete),
            b(r.bytes_to_delete),
            n(r.packs_to_repack),
            b(r.bytes_to_repack),
            b(r.bytes_repacked)
        ),
    ];
    for l in lines {
        output::line(l)?;
    }
    if !r.dry_run {
        output::line(format!(
            "deleted {} packs, freed {}; wrote {} packs",
            n(r.packs_deleted),
            b(r.bytes_freed),
            n(r.packs_written)
        ))?;
    }
    if r.packs_waiting > 0 {
        output::line(format!(
            "{} packs ({}) wait for running backups before a later prune deletes them: {}",
            n(r.packs_waiting),
            b(r.bytes_waiting),
            if r.waiting_for.is_empty() {
                "(ended meanwhile)".to_owned()
            } else {
                r.waiting_for.join("; ")
            }
        ))?;
    }
    if r.packs_rescued > 0 {
        output::line(format!(
            "{} condemned packs were kept: snapshots written meanwhile need them",
            n(r.packs_rescued)
        ))?;
    }
    if r.temporaries_removed > 0 {
        output::line(format!(
            "removed {} temporary files left by interrupted writes",
            n(r.temporaries_removed)
        ))?;
    }
    Ok(())
}

pub fn run(g: &GlobalArgs, a: &Args, cancel: &CancelToken) -> anyhow::Result<u8> {
    let options = a.options.options(a.dry_run, cancel)?;
    let mut repo = g.open()?;
    let report = repo.prune(&options)?;
    print_report(&report, a.json, g.quiet)?;
    Ok(exit::OK)
}

/// Remove lock and session records of arca processes that are gone
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  arca unlock            # records of dead processes, or not refreshed for 30 minutes
  arca unlock --all      # every record, also unreadable ones: only when no arca
                         # process uses the repository

A record is stale when its process is gone (on this host) or it was not refreshed for
30 minutes. Removing the record of a backup that still runs makes that backup fail
instead of committing.")]
pub struct UnlockArgs {
    /// Remove all lock and session records, not only stale ones
    #[arg(long)]
    all: bool,
}

pub fn unlock(g: &GlobalArgs, a: &UnlockArgs) -> anyhow::Result<u8> {
    let repo = g.open()?;
    let removed = repo.unlock(a.all)?;
    for l in &removed.holders {
        output::line(format!(
            "removed {} {}{}",
            if l.exclusive { "lock of" } else { "session of" },
            l.describe(),
            l.stale
                .as_deref()
                .map(|s| format!(": {s}"))
                .unwrap_or_default()
        ))?;
    }
    // Records that cannot be read count as live sessions of unknown identity: only
    // --all removes them.
    for (id, why) in &removed.unreadable {
        output::line(format!("removed unreadable record {id}: {why}"))?;
    }
    if !g.quiet {
        output::message(format!(
            "removed {} record(s)",
            removed.holders.len() + removed.unreadable.len()
        ));
    }
    Ok(exit::OK)
}
