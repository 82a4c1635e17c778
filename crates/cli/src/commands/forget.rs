//! `arca forget`.

use arca_core::{GroupBy, KeepCount, KeepPolicy, KeepSpan, ObjectId, SnapshotInfo, parse_time};
use serde::Serialize;

use crate::app::GlobalArgs;
use crate::{exit, output};

/// Remove snapshots: the ones named, or those a retention policy does not keep
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  arca forget --keep-within 24h --keep-daily 7 --keep-weekly 4 --keep-monthly 6 --keep-yearly 2
  arca forget --keep-daily 7 --keep-yearly -1 --host laptop --dry-run
  arca forget --older-than 6M              # Duplicity's remove-older-than
  arca forget 1a2b3c4d 5e6f7a8b

Rules are applied per group of snapshots (by default: same host and paths), newest
first, each on its own as in restic: a snapshot kept by one rule still counts for the
others. --keep-within* count back from the group's newest snapshot. A snapshot no rule
keeps is removed. Counts of -1 mean unlimited. Durations: 24h, 10d, 2w, 6m (months), 2y.
forget removes snapshot files only; the data they alone used stays until `arca prune`.")]
pub struct Args {
    /// Snapshots to remove (id, prefix or \"latest\"); no policy applies then
    #[arg(value_name = "SNAPSHOT")]
    snapshots: Vec<String>,

    /// Keep the N newest snapshots
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    keep_last: Option<String>,
    /// Keep the newest snapshot of each of the N newest hours (-1: all)
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    keep_hourly: Option<String>,
    /// Keep the newest snapshot of each of the N newest days (-1: all)
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    keep_daily: Option<String>,
    /// Keep the newest snapshot of each of the N newest ISO weeks (-1: all)
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    keep_weekly: Option<String>,
    /// Keep the newest snapshot of each of the N newest months (-1: all)
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    keep_monthly: Option<String>,
    /// Keep the newest snapshot of each of the N newest years (-1: all)
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    keep_yearly: Option<String>,
    /// Keep every snapshot taken within DURATION before the newest one
    #[arg(long, value_name = "DURATION")]
    keep_within: Option<String>,
    /// Keep the newest snapshot of each hour within DURATION
    #[arg(long, value_name = "DURATION")]
    keep_within_hourly: Option<String>,
    /// Keep the newest snapshot of each day within DURATION
    #[arg(long, value_name = "DURATION")]
    keep_within_daily: Option<String>,
    /// Keep the newest snapshot of each week within DURATION
    #[arg(long, value_name = "DURATION")]
    keep_within_weekly: Option<String>,
    /// Keep the newest snapshot of each month within DURATION
    #[arg(long, value_name = "DURATION")]
    keep_within_monthly: Option<String>,
    /// Keep the newest snapshot of each year within DURATION
    #[arg(long, value_name = "DURATION")]
    keep_within_yearly: Option<String>,
    /// Keep snapshots with tag T; `a,b` needs both (repeatable: any)
    #[arg(long, value_name = "T")]
    keep_tag: Vec<String>,
    /// Remove only snapshots older than WHEN (3D, 2W, 6M, 1Y, 2026-01-10, ...)
    #[arg(long, value_name = "WHEN")]
    older_than: Option<String>,

    /// Decide per group of snapshots with the same host, paths and/or tags
    #[arg(long, value_name = "FIELDS", default_value = "host,paths")]
    group_by: String,

    #[command(flatten)]
    select: super::SnapshotArgs,

    /// Show what would be removed; remove nothing
    #[arg(short = 'n', long)]
    dry_run: bool,

    /// Print the decisions as JSON
    #[arg(long)]
    json: bool,

    /// Run prune afterwards (with the options below)
    #[arg(long)]
    prune: bool,

    #[command(flatten)]
    prune_options: super::prune::PruneArgs,
}

#[derive(Serialize)]
struct SnapshotDecisionJson {
    id: String,
    short_id: String,
    time: String,
    #[serde(skip)]
    local_time: String,
    action: &'static str,
    reasons: Vec<String>,
    checkpoint: bool,
}

#[derive(Serialize)]
struct GroupJson {
    host: Option<String>,
    paths: Option<Vec<String>>,
    tags: Option<Vec<String>>,
    snapshots: Vec<SnapshotDecisionJson>,
}

#[derive(Serialize)]
struct ForgetJson {
    dry_run: bool,
    groups: Vec<GroupJson>,
    removed: usize,
}

fn count(v: &Option<String>) -> anyhow::Result<Option<KeepCount>> {
    Ok(v.as_deref().map(KeepCount::parse).transpose()?)
}

fn span(v: &Option<String>) -> anyhow::Result<Option<KeepSpan>> {
    Ok(v.as_deref().map(KeepSpan::parse).transpose()?)
}

impl Args {
    fn policy(&self) -> anyhow::Result<KeepPolicy> {
        let mut p = KeepPolicy::default();
        p.last = count(&self.keep_last)?;
        p.hourly = count(&self.keep_hourly)?;
        p.daily = count(&self.keep_daily)?;
        p.weekly = count(&self.keep_weekly)?;
        p.monthly = count(&self.keep_monthly)?;
        p.yearly = count(&self.keep_yearly)?;
        p.within = span(&self.keep_within)?;
        p.within_hourly = span(&self.keep_within_hourly)?;
        p.within_daily = span(&self.keep_within_daily)?;
        p.within_weekly = span(&self.keep_within_weekly)?;
        p.within_monthly = span(&self.keep_within_monthly)?;
        p.within_yearly = span(&self.keep_within_yearly)?;
        p.tags = self
            .keep_tag
            .iter()
            .map(|l| l.split(',').map(str::trim).map(str::to_owned).collect())
            .collect();
        p.older_than = self.older_than.as_deref().map(parse_time).transpose()?;
        Ok(p)
    }
}

fn decision_json(s: &SnapshotInfo, keep: bool, reasons: &[String]) -> SnapshotDecisionJson {
    SnapshotDecisionJson {
        id: s.id.to_string(),
        short_id: s.id.short(),
        time: output::rfc3339(s.snapshot.time, s.snapshot.utc_offset),
        local_time: output::local_time(s.snapshot.time),
        action: if keep { "keep" } else { "remove" },
        reasons: reasons.to_vec(),
        checkpoint: s.snapshot.checkpoint,
    }
}

fn print_text(groups: &[GroupJson]) -> anyhow::Result<()> {
    for g in groups {
        let mut what = Vec::new();
        if let Some(h) = &g.host {
            what.push(format!("host {h}"));
        }
        if let Some(p) = &g.paths {
            what.push(format!("paths {}", p.join(", ")));
        }
        if let Some(t) = &g.tags {
            what.push(format!("tags [{}]", t.join(",")));
        }
        let title = if what.is_empty() {
            "all snapshots".to_owned()
        } else {
            what.join(", ")
        };
        output::line(format!("{title}:"))?;
        for s in &g.snapshots {
            let why = if s.checkpoint && s.reasons.is_empty() {
                "checkpoint superseded by a complete snapshot".to_owned()
            } else {
                s.reasons.join(", ")
            };
            output::line(format!(
                "  {:<6}  {}  {}  {why}",
                s.action, s.short_id, s.local_time,
            ))?;
        }
    }
    Ok(())
}

pub fn run(g: &GlobalArgs, a: &Args, cancel: &arca_core::CancelToken) -> anyhow::Result<u8> {
    let policy = a.policy()?;
    let group_by = GroupBy::parse(&a.group_by)?;
    let filter = a.select.filter()?;
    if a.snapshots.is_empty() && policy.is_empty() {
        output::message(
            "arca: error: nothing to decide with: name snapshots to forget, or give --keep-* rules or --older-than",
        );
        return Ok(exit::USAGE);
    }
    let prune_options = a.prune_options.options(a.dry_run, cancel)?;
    let mut repo = g.open()?;
    let (groups, doomed): (Vec<GroupJson>, Vec<ObjectId>) = if a.snapshots.is_empty() {
        let plan = repo.forget_plan(&policy, group_by, &filter)?;
        let mut doomed = Vec::new();
        let groups = plan
            .into_iter()
            .map(|group| GroupJson {
                host: group.key.host,
                paths: group.key.paths,
                tags: group.key.tags,
                snapshots: group
                    .decisions
                    .iter()
                    .map(|d| {
                        if !d.keep {
                            doomed.push(d.snapshot.id);
                        }
                        decision_json(&d.snapshot, d.keep, &d.reasons)
                    })
                    .collect(),
            })
            .collect();
        (groups, doomed)
    } else {
        if !policy.is_empty() {
            anyhow::bail!("give snapshots to forget or a retention policy, not both");
        }
        let named = repo.find_snapshots(&a.snapshots, &filter)?;
        let group = GroupJson {
            host: None,
            paths: None,
            tags: None,
            snapshots: named.iter().map(|s| decision_json(s, false, &[])).collect(),
        };
        (vec![group], named.iter().map(|s| s.id).collect())
    };
    let removed = if a.dry_run {
        0
    } else {
        repo.forget_snapshots(&doomed)?
    };
    let pruned = if a.prune {
        Some(repo.prune(&prune_options)?)
    } else {
        None
    };
    if a.json {
        output::json(&ForgetJson {
            dry_run: a.dry_run,
            groups,
            removed,
        })?;
        if let Some(report) = &pruned {
            super::prune::print_report(report, true, g.quiet)?;
        }
    } else {
        print_text(&groups)?;
        if !g.quiet {
            output::message(if a.dry_run {
                format!("would remove {} snapshot(s)", doomed.len())
            } else {
                format!("removed {removed} snapshot(s)")
            });
        }
        if let Some(report) = &pruned {
            super::prune::print_report(report, false, g.quiet)?;
        }
    }
    Ok(exit::OK)
}
