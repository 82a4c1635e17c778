//! Retention policies: which snapshots `forget` keeps, and why.
//!
//! The rules follow restic's semantics, applied per group of snapshots (by default the
//! same host and paths), newest first:
//!
//! - every rule looks at every snapshot on its own: a snapshot kept by one rule still
//!   counts for the others (Borg, by contrast, applies rules one after another and does
//!   not count what an earlier rule kept);
//! - `last N` keeps the N newest; `hourly`, `daily`, `weekly` (ISO weeks), `monthly` and
//!   `yearly N` keep the newest snapshot of each of the N newest hours, days, ... that
//!   have snapshots; "all" instead of N keeps one per period without limit;
//! - `within D` keeps everything taken within D before the group's newest snapshot;
//!   `within_daily D` (hourly, weekly, ...) keeps the newest of each day within D;
//! - `tags` keeps snapshots carrying a tag list;
//! - `older_than T` keeps everything taken at or after T: only older snapshots can go;
//! - a snapshot no rule keeps is removed;
//! - checkpoint snapshots (written during a backup that had not finished) are not
//!   counted by any rule: a checkpoint newer than every complete snapshot of its group
//!   is kept (`checkpoint not yet superseded`), any other is removed, whatever the
//!   rules say.
//!
//! Periods are taken in the time zone the snapshot was taken in (its recorded UTC
//! offset), so the result does not depend on where `forget` runs.

use std::collections::BTreeMap;

use arca_repo::Timestamp;

use crate::{Error, Result, SnapshotInfo};

/// How many periods a rule keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepCount {
    /// The newest N periods that have snapshots.
    Last(u32),
    /// Every period (`-1` on the command line, as Borg users write `--keep-yearly=-1`).
    All,
}

impl KeepCount {
    /// `-1` is [`KeepCount::All`], other numbers [`KeepCount::Last`].
    ///
    /// # Errors
    /// [`crate::ErrorKind::InvalidInput`] for other negative numbers and non-numbers.
    pub fn parse(text: &str) -> Result<Self> {
        match text.trim() {
            "-1" => Ok(Self::All),
            t => t.parse::<u32>().map(Self::Last).map_err(|_| {
                Error::invalid(format!(
                    "invalid count {text:?}: a number, or -1 for unlimited"
                ))
            }),
        }
    }
}

/// A calendar span back from the newest snapshot: `2y`, `6m` (months), `10d`, `2w`,
/// `24h`, or combined (`1y6m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeepSpan {
    /// Years.
    pub years: i64,
    /// Months.
    pub months: i64,
    /// Days (weeks count 7).
    pub days: i64,
    /// Hours.
    pub hours: i64,
}

impl KeepSpan {
    /// Parses `NyNmNwNdNh` (any subset, in any order; `H` and `D`, `W`, `M`, `Y` are
    /// accepted too, `m`/`M` meaning months as in restic and Borg).
    ///
    /// # Errors
    /// [`crate::ErrorKind::InvalidInput`] naming the text.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = || {
            Error::invalid(format!(
                "invalid duration {text:?}: use e.g. 24h, 10d, 2w, 6m (months), 2y or 1y6m"
            ))
        };
        let mut span = Self::default();
        let mut number = String::new();
        let mut any = false;
        for c in text.trim().chars() {
            if c.is_ascii_digit() {
                number.push(c);
                continue;
            }
            let n: i64 = number.parse().map_err(|_| bad())?;
            number.clear();
            let field = match c {
                'y' | 'Y' => &mut span.years,
                'm' | 'M' => &mut span.months,
                'w' | 'W' => {
                    span.days = span
                        .days
                        .checked_add(n.checked_mul(7).ok_or_else(bad)?)
                        .ok_or_else(bad)?;
                    any = true;
                    continue;
                }
                'd' | 'D' => &mut span.days,
                'h' | 'H' => &mut span.hours,
                _ => return Err(bad()),
            };
            *field = field.checked_add(n).ok_or_else(bad)?;
            any = true;
        }
        if !any || !number.is_empty() || span.years > 10_000 || span.months > 120_000 {
            return Err(bad());
        }
        Ok(span)
    }

    /// The moment `self` before `t` (in `t`'s time zone, calendar arithmetic).
    fn before(&self, t: &jiff::Zoned) -> Option<jiff::Timestamp> {
        let span = jiff::Span::new()
            .try_years(self.years)
            .ok()?
            .try_months(self.months)
            .ok()?
            .try_days(self.days)
            .ok()?
            .try_hours(self.hours)
            .ok()?;
        t.checked_sub(span).ok().map(|z| z.timestamp())
    }
}

/// Which snapshots `forget` keeps. Rules left at `None` (or empty) do not keep anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeepPolicy {
    /// The newest N.
    pub last: Option<KeepCount>,
    /// The newest of each hour.
    pub hourly: Option<KeepCount>,
    /// The newest of each day.
    pub daily: Option<KeepCount>,
    /// The newest of each ISO week.
    pub weekly: Option<KeepCount>,
    /// The newest of each month.
    pub monthly: Option<KeepCount>,
    /// The newest of each year.
    pub yearly: Option<KeepCount>,
    /// Everything within this span before the group's newest snapshot.
    pub within: Option<KeepSpan>,
    /// The newest of each hour within this span.
    pub within_hourly: Option<KeepSpan>,
    /// The newest of each day within this span.
    pub within_daily: Option<KeepSpan>,
    /// The newest of each week within this span.
    pub within_weekly: Option<KeepSpan>,
    /// The newest of each month within this span.
    pub within_monthly: Option<KeepSpan>,
    /// The newest of each year within this span.
    pub within_yearly: Option<KeepSpan>,
    /// Snapshots with all tags of any of these lists.
    pub tags: Vec<Vec<String>>,
    /// Snapshots taken at or after this moment (Duplicity's `remove-older-than`).
    pub older_than: Option<Timestamp>,
}

impl KeepPolicy {
    /// True if no rule is set (such a policy would remove everything).
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Which snapshots form one group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupBy {
    /// Same host.
    pub host: bool,
    /// Same paths.
    pub paths: bool,
    /// Same tags.
    pub tags: bool,
}

impl Default for GroupBy {
    /// Host and paths, as restic.
    fn default() -> Self {
        Self {
            host: true,
            paths: true,
            tags: false,
        }
    }
}

impl GroupBy {
    /// Parses `host,paths,tags` (any subset; empty: one group of everything).
    ///
    /// # Errors
    /// [`crate::ErrorKind::InvalidInput`] for other words.
    pub fn parse(text: &str) -> Result<Self> {
        let mut g = Self {
            host: false,
            paths: false,
            tags: false,
        };
        for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match word {
                "host" => g.host = true,
                "paths" | "path" => g.paths = true,
                "tags" | "tag" => g.tags = true,
                _ => {
                    return Err(Error::invalid(format!(
                        "invalid --group-by {text:?}: use host, paths and tags, comma-separated"
                    )));
                }
            }
        }
        Ok(g)
    }
}

/// What a group shares: the values of the grouping fields (`None` where not grouped).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct GroupKey {
    /// The host, if grouped by host.
    pub host: Option<String>,
    /// The paths, if grouped by paths.
    pub paths: Option<Vec<String>>,
    /// The tags, if grouped by tags.
    pub tags: Option<Vec<String>>,
}

/// The verdict on one snapshot.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The snapshot.
    pub snapshot: SnapshotInfo,
    /// Whether it stays.
    pub keep: bool,
    /// The rules that keep it (`last snapshot`, `daily snapshot`, `within 10d`, `tag
    /// a,b`, `newer than --older-than`); empty when it goes.
    pub reasons: Vec<String>,
}

/// One group's verdicts, newest snapshot first.
#[derive(Debug, Clone)]
pub struct GroupDecisions {
    /// What the group shares.
    pub key: GroupKey,
    /// The verdict on each of its snapshots, newest first.
    pub decisions: Vec<Decision>,
}

fn zoned(t: Timestamp, offset: i32) -> Option<jiff::Zoned> {
    let ts = jiff::Timestamp::new(t.secs, i32::try_from(t.nanos).ok()?).ok()?;
    let tz = jiff::tz::TimeZone::fixed(jiff::tz::Offset::from_seconds(offset).ok()?);
    Some(ts.to_zoned(tz))
}

/// A period a snapshot falls in, comparable within one rule.
type Period = (i32, i32, i32, i32);

#[derive(Clone, Copy)]
enum Unit {
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Self::Hour => "hourly",
            Self::Day => "daily",
            Self::Week => "weekly",
            Self::Month => "monthly",
            Self::Year => "yearly",
        }
    }

    fn period(self, z: &jiff::Zoned) -> Period {
        let (y, m, d, h) = (
            i32::from(z.year()),
            i32::from(z.month()),
            i32::from(z.day()),
            i32::from(z.hour()),
        );
        match self {
            Self::Hour => (y, m, d, h),
            Self::Day => (y, m, d, 0),
            Self::Week => {
                let w = z.date().iso_week_date();
                (i32::from(w.year()), i32::from(w.week()), 0, 0)
            }
            Self::Month => (y, m, 0, 0),
            Self::Year => (y, 0, 0, 0),
        }
    }
}

/// One counting rule while a group is walked: its unit, what is left of its count, the
/// last period it kept, and (for `within_*`) the oldest moment it covers (`None`: no
/// limit, also when the span reaches before the calendar's start).
struct Bucket {
    label: String,
    unit: Unit,
    left: Option<u32>,
    last: Option<Period>,
    since: Option<jiff::Timestamp>,
}

/// Groups `snapshots` and decides, per group, which `policy` keeps.
pub fn apply(
    snapshots: Vec<SnapshotInfo>,
    policy: &KeepPolicy,
    group_by: GroupBy,
) -> Vec<GroupDecisions> {
    let mut groups: BTreeMap<GroupKey, Vec<SnapshotInfo>> = BTreeMap::new();
    for s in snapshots {
        let key = GroupKey {
            host: group_by.host.then(|| s.snapshot.hostname.clone()),
            paths: group_by.paths.then(|| s.paths_lossy()),
            tags: group_by.tags.then(|| s.snapshot.tags.clone()),
        };
        groups.entry(key).or_default().push(s);
    }
    groups
        .into_iter()
        .map(|(key, mut list)| {
            list.sort_by_key(|s| std::cmp::Reverse((s.snapshot.time, s.id)));
            let (checkpoints, complete): (Vec<_>, Vec<_>) =
                list.into_iter().partition(|s| s.snapshot.checkpoint);
            let newest_complete = complete.first().map(|s| s.snapshot.time);
            let mut decisions = decide(complete, policy);
            decisions.extend(checkpoints.into_iter().map(|snapshot| {
                let current = newest_complete.is_none_or(|t| snapshot.snapshot.time > t);
                Decision {
                    keep: current,
                    reasons: if current {
                        vec!["checkpoint not yet superseded".to_owned()]
                    } else {
                        Vec::new()
                    },
                    snapshot,
                }
            }));
            decisions.sort_by_key(|d| std::cmp::Reverse((d.snapshot.snapshot.time, d.snapshot.id)));
            GroupDecisions { key, decisions }
        })
        .collect()
}

fn decide(newest_first: Vec<SnapshotInfo>, policy: &KeepPolicy) -> Vec<Decision> {
    let Some(newest) = newest_first
        .first()
        .and_then(|s| zoned(s.snapshot.time, s.snapshot.utc_offset))
    else {
        return newest_first
            .into_iter()
            .map(|snapshot| Decision {
                snapshot,
                keep: true,
                reasons: vec!["time out of range".to_owned()],
            })
            .collect();
    };
    let counted = |count: Option<KeepCount>, unit: Unit| {
        count.map(|c| Bucket {
            label: format!("{} snapshot", unit.name()),
            unit,
            left: match c {
                KeepCount::Last(n) => Some(n),
                KeepCount::All => None,
            },
            last: None,
            since: None,
        })
    };
    let within = |span: Option<KeepSpan>, unit: Unit| {
        span.map(|span| Bucket {
            label: format!("{} within {}", unit.name(), describe(&span)),
            unit,
            left: None,
            last: None,
            since: span.before(&newest),
        })
    };
    let mut buckets: Vec<Bucket> = [
        counted(policy.hourly, Unit::Hour),
        counted(policy.daily, Unit::Day),
        counted(policy.weekly, Unit::Week),
        counted(policy.monthly, Unit::Month),
        counted(policy.yearly, Unit::Year),
        within(policy.within_hourly, Unit::Hour),
        within(policy.within_daily, Unit::Day),
        within(policy.within_weekly, Unit::Week),
        within(policy.within_monthly, Unit::Month),
        within(policy.within_yearly, Unit::Year),
    ]
    .into_iter()
    .flatten()
    .collect();
    let within_since = policy.within.map(|span| (span, span.before(&newest)));
    let mut last_left = policy.last.map(|c| match c {
        KeepCount::Last(n) => Some(n),
        KeepCount::All => None,
    });
    newest_first
        .into_iter()
        .map(|snapshot| {
            let mut reasons = Vec::new();
            let s = &snapshot.snapshot;
            let Some(z) = zoned(s.time, s.utc_offset) else {
                return Decision {
                    snapshot,
                    keep: true,
                    reasons: vec!["time out of range".to_owned()],
                };
            };
            if policy.older_than.is_some_and(|t| s.time >= t) {
                reasons.push("newer than --older-than".to_owned());
            }
            for list in &policy.tags {
                if list.iter().all(|t| s.tags.contains(t)) {
                    reasons.push(format!("tag {}", list.join(",")));
                }
            }
            match &mut last_left {
                Some(Some(0)) | None => {}
                Some(Some(n)) => {
                    *n -= 1;
                    reasons.push("last snapshot".to_owned());
                }
                Some(None) => reasons.push("last snapshot".to_owned()),
            }
            for b in &mut buckets {
                if b.left == Some(0) || b.since.is_some_and(|since| z.timestamp() < since) {
                    continue;
                }
                let period = b.unit.period(&z);
                if b.last != Some(period) {
                    b.last = Some(period);
                    if let Some(n) = &mut b.left {
                        *n -= 1;
                    }
                    reasons.push(b.label.clone());
                }
            }
            if let Some((span, since)) = within_since
                && since.is_none_or(|since| z.timestamp() >= since)
            {
                reasons.push(format!("within {}", describe(&span)));
            }
            Decision {
                keep: !reasons.is_empty(),
                snapshot,
                reasons,
            }
        })
        .collect()
}

fn describe(span: &KeepSpan) -> String {
    let mut out = String::new();
    for (n, unit) in [
        (span.years, "y"),
        (span.months, "m"),
        (span.days, "d"),
        (span.hours, "h"),
    ] {
        if n != 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    if out.is_empty() {
        out.push_str("0h");
    }
    out
}

#[cfg(test)]
#[path = "retention_tests.rs"]
mod tests;
