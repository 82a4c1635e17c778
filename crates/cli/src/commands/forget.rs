//! `arca forget`.

use arca_core::{GroupBy, KeepCount, KeepPolicy, KeepSpan, ObjectId, SnapshotInfo};
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
#[command(group(clap::ArgGroup::new("policy").multiple(true).args([
    "keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly",
    "keep_within", "keep_within_hourly", "keep_within_daily", "keep_within_weekly",
    "keep_within_monthly", "keep_within_yearly", "keep_tag", "older_than",
])))]
pub struct Args {
    /// Snapshots to remove (id, prefix or \"latest\"); no policy applies then
    #[arg(value_name = "SNAPSHOT", conflicts_with = "policy")]
    snapshots: Vec<String>,

    /// Keep the N newest snapshots
    #[arg(long, value_name = "N", allow_hyphen_values = true, value_parser = parse_count)]
    keep_last: Option<KeepCount>,
    /// Keep the newest snapshot of each of the N newest hours (-1: all)
    #[arg(long, value_name = "N", allow_hyphen_values = true, value_parser = parse_count)]
    keep_hourly: Option<KeepCount>,
    /// Keep the newest snapshot of each of the N newest days (-1: all)
    #[arg(long, value_name = "N", allow_hyphen_values = true, value_parser = parse_count)]
    keep_daily: Option<KeepCount>,
    /// Keep the newest snapshot of each of the N newest ISO weeks (-1: all)
    #[arg(long, value_name = "N", allow_hyphen_values = true, value_parser = parse_count)]
    keep_weekly: Option<KeepCount>,
    /// Keep the newest snapshot of each of the N newest months (-1: all)
    #[arg(long, value_name = "N", allow_hyphen_values = true, value_parser = parse_count)]
    keep_monthly: Option<KeepCount>,
    /// Keep the newest snapshot of each of the N newest years (-1: all)
    #[arg(long, value_name = "N", allow_hyphen_values = true, value_parser = parse_count)]
    keep_yearly: Option<KeepCount>,
    /// Keep every snapshot taken within DURATION before the newest one
    #[arg(long, value_name = "DURATION", value_parser = parse_span)]
    keep_within: Option<KeepSpan>,
    /// Keep the newest snapshot of each hour within DURATION
    #[arg(long, value_name = "DURATION", value_parser = parse_span)]
    keep_within_hourly: Option<KeepSpan>,
    /// Keep the newest snapshot of each day within DURATION
    #[arg(long, value_name = "DURATION", value_parser = parse_span)]
    keep_within_daily: Option<KeepSpan>,
    /// Keep the newest snapshot of each week within DURATION
    #[arg(long, value_name = "DURATION", value_parser = parse_span)]
    keep_within_weekly: Option<KeepSpan>,
    /// Keep the newest snapshot of each month within DURATION
    #[arg(long, value_name = "DURATION", value_parser = parse_span)]
    keep_within_monthly: Option<KeepSpan>,
    /// Keep the newest snapshot of each year within DURATION
    #[arg(long, value_name = "DURATION", value_parser = parse_span)]
    keep_within_yearly: Option<KeepSpan>,
    /// Keep snapshots with tag T; `a,b` needs both (repeatable: any)
    #[arg(long, value_name = "T", value_parser = parse_tag_list)]
    keep_tag: Vec<Vec<String>>,
    /// Remove only snapshots older than WHEN (3D, 2W, 6M, 1Y, 2026-01-10, ...)
    #[arg(long, value_name = "WHEN", value_parser = parse_when)]
    older_than: Option<arca_core::Timestamp>,

    /// Decide per group of snapshots with the same host, paths and/or tags
    #[arg(long, value_name = "FIELDS", default_value = "host,paths", value_parser = parse_group_by)]
    group_by: GroupBy,

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

// Value parsers: a bad value is a usage error (exit 2), found before the repository
// is opened.
fn parse_count(text: &str) -> Result<KeepCount, String> {
    KeepCount::parse(text).map_err(|e| e.to_string())
}

fn parse_span(text: &str) -> Result<KeepSpan, String> {
    KeepSpan::parse(text).map_err(|e| e.to_string())
}

fn parse_group_by(text: &str) -> Result<GroupBy, String> {
    GroupBy::parse(text).map_err(|e| e.to_string())
}

/// A time to the second means its start: a snapshot taken within that second is "at or
/// after" it and stays.
fn parse_when(text: &str) -> Result<arca_core::Timestamp, String> {
    arca_core::parse_time_start(text).map_err(|e| e.to_string())
}

/// `a,b`: snapshots with both tags. An empty tag (an unset variable, a stray comma)
/// would keep nothing while looking like a rule, so it is refused.
fn parse_tag_list(text: &str) -> Result<Vec<String>, String> {
    let tags: Vec<String> = text.split(',').map(|t| t.trim().to_owned()).collect();
    if tags.iter().any(String::is_empty) {
        return Err(format!("{text:?} has an empty tag"));
    }
    Ok(tags)
}

impl Args {
    fn policy(&self) -> KeepPolicy {
        let mut p = KeepPolicy::default();
        p.last = self.keep_last;
        p.hourly = self.keep_hourly;
        p.daily = self.keep_daily;
        p.weekly = self.keep_weekly;
        p.monthly = self.keep_monthly;
        p.yearly = self.keep_yearly;
        p.within = self.keep_within;
        p.within_hourly = self.keep_within_hourly;
        p.within_daily = self.keep_within_daily;
        p.within_weekly = self.keep_within_weekly;
        p.within_monthly = self.keep_within_monthly;
        p.within_yearly = self.keep_within_yearly;
        p.tags = self.keep_tag.clone();
        p.older_than = self.older_than;
        p
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

/// `by_policy`: the decisions come from retention rules (else from snapshots named on
/// the command line, which give no reasons).
fn print_text(groups: &[GroupJson], by_policy: bool) -> anyhow::Result<()> {
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
            // The rules remove a checkpoint only once a newer complete snapshot exists.
            let why = if by_policy && s.checkpoint && s.reasons.is_empty() {
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
    let policy = a.policy();
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
        let plan = repo.forget_plan(&policy, a.group_by, &filter)?;
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
        let mut prune_options = prune_options;
        // A dry run removed nothing: let the prune plan count the doomed as gone.
        prune_options.dry_run_without = doomed.clone();
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
        print_text(&groups, a.snapshots.is_empty())?;
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
