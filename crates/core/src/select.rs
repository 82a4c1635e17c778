//! Choosing snapshots: by id, prefix or `latest`, narrowed by host, tags, paths and a
//! point in time given the way Duplicity users write it.

use std::path::{Path, PathBuf};

use arca_repo::{Snapshot, Timestamp};

use crate::repository::SnapshotInfo;
use crate::{Error, ErrorKind, Result};

/// Narrows the snapshots a command considers. Empty fields do not narrow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotFilter {
    /// The snapshot's host is one of these.
    pub hosts: Vec<String>,
    /// The snapshot has every tag of at least one of these groups (`--tag a,b --tag c`
    /// means "a and b, or c"). An empty group matches snapshots without tags.
    pub tags: Vec<Vec<String>>,
    /// The snapshot backed up every one of these paths.
    pub paths: Vec<PathBuf>,
    /// The snapshot was taken at or before this moment.
    pub before: Option<Timestamp>,
}

impl SnapshotFilter {
    /// Whether `s` passes the filter.
    pub fn matches(&self, s: &Snapshot) -> bool {
        use std::os::unix::ffi::OsStrExt;
        (self.hosts.is_empty() || self.hosts.contains(&s.hostname))
            && (self.tags.is_empty()
                || self.tags.iter().any(|group| match group.is_empty() {
                    true => s.tags.is_empty(),
                    false => group.iter().all(|t| s.tags.contains(t)),
                }))
            && self.paths.iter().all(|p| {
                s.paths
                    .iter()
                    .any(|sp| sp.as_slice() == p.as_os_str().as_bytes())
            })
            && self.before.is_none_or(|b| s.time <= b)
    }

    /// The filter with relative paths made absolute (as backup sources are).
    ///
    /// # Errors
    /// `Io` if the current directory cannot be read.
    pub fn absolute(&self) -> Result<Self> {
        let mut out = self.clone();
        out.paths = self
            .paths
            .iter()
            .map(|p| absolute(p))
            .collect::<Result<_>>()?;
        Ok(out)
    }

    /// True if it narrows nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Picks the snapshot `spec` names among those of `list` (sorted oldest first) that pass
/// `filter`: `latest` is the newest of them that is not a checkpoint, otherwise a full id
/// or unique id prefix.
pub(crate) fn select(
    list: &[SnapshotInfo],
    spec: &str,
    filter: &SnapshotFilter,
) -> Result<SnapshotInfo> {
    let narrowed = !filter.is_empty();
    let filter = &filter.absolute()?;
    let candidates: Vec<&SnapshotInfo> = list
        .iter()
        .filter(|s| filter.matches(&s.snapshot))
        .collect();
    if spec == "latest" {
        // The newest complete snapshot: a checkpoint is taken only by id.
        let checkpoints = candidates.iter().filter(|s| s.snapshot.checkpoint).count();
        return candidates
            .into_iter()
            .rfind(|s| !s.snapshot.checkpoint)
            .cloned()
            .ok_or_else(|| {
                let message = match (checkpoints, narrowed) {
                    (0, true) => "no snapshot matches the given host, tags, paths and time".into(),
                    (0, false) => "the repository has no snapshots".into(),
                    (n, _) => format!(
                        "no complete snapshot{}, only {n} checkpoint{}: name one by id",
                        if narrowed { " matches" } else { " yet" },
                        if n == 1 { "" } else { "s" }
                    ),
                };
                Error::new(ErrorKind::NotFound, message)
            });
    }
    let prefix = spec.to_ascii_lowercase();
    if prefix.is_empty() || prefix.len() > 64 || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::invalid(format!(
            "invalid snapshot {spec:?}: expected an id, a unique id prefix, or \"latest\""
        )));
    }
    let mut matches: Vec<SnapshotInfo> = candidates
        .into_iter()
        .filter(|s| s.id.to_string().starts_with(&prefix))
        .cloned()
        .collect();
    match matches.len() {
        0 => Err(Error::new(
            ErrorKind::NotFound,
            format!("no snapshot matches {spec:?}"),
        )),
        1 => Ok(matches.remove(0)),
        n => Err(Error::invalid(format!(
            "snapshot prefix {spec:?} is ambiguous: it matches {n} snapshots"
        ))),
    }
}

/// Parses a point in time as Duplicity accepts it (see [`parse_time_at`]), relative to
/// the current time.
///
/// # Errors
/// [`ErrorKind::InvalidInput`] naming the text.
pub fn parse_time(text: &str) -> Result<Timestamp> {
    parse_time_at(text, crate::system::now())
}

/// Parses a point in time as Duplicity accepts it, relative to `now`:
/// - `now`;
/// - an interval back from now: numbers with units `s`, `m`, `h`, `D`, `W`, `M` (30
///   days), `Y` (365 days), e.g. `3D`, `2W`, `1h30m`;
/// - a local date or date and time: `2026-01-10` (midnight at its start),
///   `2026-01-10 14:00`, `2026-01-10T14:00:05`; also `2026/01/10`;
/// - an RFC 3339 time with offset, or seconds since the Unix epoch.
///
/// A time written to the second stands for that whole second, so the time `arca
/// snapshots` shows for a snapshot selects that snapshot.
///
/// # Errors
/// [`ErrorKind::InvalidInput`] naming the text.
pub fn parse_time_at(text: &str, now: Timestamp) -> Result<Timestamp> {
    parse_time_in(text, now, 999_999_999)
}

/// As [`parse_time`], but a time written to the second stands for that second's start:
/// for limits that keep what is taken at or after it (`forget --older-than`), and for
/// setting a snapshot's time (`backup --time`).
///
/// # Errors
/// [`ErrorKind::InvalidInput`] naming the text.
pub fn parse_time_start(text: &str) -> Result<Timestamp> {
    parse_time_in(text, crate::system::now(), 0)
}

/// [`parse_time_at`], with `nanos` for a time written to the second.
fn parse_time_in(text: &str, now: Timestamp, nanos: u32) -> Result<Timestamp> {
    let t = text.trim();
    let bad = || {
        Error::invalid(format!(
            "invalid time {text:?}: use e.g. 3D, 2W, 1h30m, 2026-01-10, \"2026-01-10 14:00\" or now"
        ))
    };
    if t == "now" {
        return Ok(now);
    }
    if let Some(secs) = interval_seconds(t) {
        return Ok(Timestamp {
            secs: now.secs.saturating_sub(secs),
            nanos: now.nanos,
        });
    }
    let whole_second = |ts: Timestamp| {
        if t.contains('.') {
            ts
        } else {
            Timestamp {
                secs: ts.secs,
                nanos,
            }
        }
    };
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t
            .parse::<i64>()
            .map(|secs| whole_second(Timestamp { secs, nanos: 0 }))
            .map_err(|_| bad());
    }
    if let Ok(ts) = t.parse::<jiff::Timestamp>() {
        return Ok(whole_second(to_timestamp(ts)));
    }
    let civil = t.replace('/', "-").replacen('T', " ", 1);
    let datetime = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|f| jiff::civil::DateTime::strptime(f, &civil).ok())
        .or_else(|| {
            jiff::civil::Date::strptime("%Y-%m-%d", &civil)
                .ok()
                .map(|d| d.to_datetime(jiff::civil::Time::midnight()))
        })
        .ok_or_else(bad)?;
    let zoned = datetime
        .to_zoned(jiff::tz::TimeZone::system())
        .map_err(|_| bad())?;
    Ok(whole_second(to_timestamp(zoned.timestamp())))
}

/// jiff counts a negative time's fraction below zero (-1.5 s is -1 s and -0.5 s); a
/// [`Timestamp`]'s nanoseconds count up from its seconds (-2 s and 0.5 s).
fn to_timestamp(ts: jiff::Timestamp) -> Timestamp {
    let (mut secs, mut nanos) = (ts.as_second(), ts.subsec_nanosecond());
    if nanos < 0 {
        secs -= 1;
        nanos += 1_000_000_000;
    }
    Timestamp {
        secs,
        nanos: nanos.clamp(0, 999_999_999) as u32,
    }
}

/// Parses a length of time as Duplicity writes intervals (`30s`, `10m`, `1h30m`, `2D`),
/// or a bare number of seconds (`600`, as Borg's options take it).
///
/// # Errors
/// [`ErrorKind::InvalidInput`] naming the text.
pub fn parse_interval(text: &str) -> Result<std::time::Duration> {
    let t = text.trim();
    let seconds = if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        t.parse::<u64>().ok()
    } else {
        interval_seconds(t).and_then(|s| u64::try_from(s).ok())
    };
    seconds.map(std::time::Duration::from_secs).ok_or_else(|| {
        Error::invalid(format!(
            "invalid duration {text:?}: use e.g. 600 (seconds), 30s, 10m, 1h30m or 2D"
        ))
    })
}

/// `3D`, `2W`, `1h30m`: the total seconds, or `None` if `t` is not an interval.
fn interval_seconds(t: &str) -> Option<i64> {
    let mut total: i64 = 0;
    let mut number = String::new();
    let mut any = false;
    for c in t.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit: i64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'D' => 86_400,
            'W' => 7 * 86_400,
            'M' => 30 * 86_400,
            'Y' => 365 * 86_400,
            _ => return None,
        };
        let n: i64 = number.parse().ok()?;
        total = total.checked_add(n.checked_mul(unit)?)?;
        number.clear();
        any = true;
    }
    (any && number.is_empty()).then_some(total)
}

/// Makes `path` absolute the way backup sources are: relative to the current
/// directory, `.` and `..` resolved lexically (symlinks are not followed). Use it for
/// paths users give for places inside snapshots.
///
/// # Errors
/// `Io` if the current directory cannot be read.
pub fn absolute(path: &Path) -> Result<PathBuf> {
    let cwd = std::env::current_dir()
        .map_err(|e| Error::io("cannot read the current directory", Path::new("."), e))?;
    let mut out = PathBuf::from("/");
    for c in cwd.join(path).components() {
        match c {
            std::path::Component::Normal(n) => out.push(n),
            std::path::Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp {
        secs: 1_800_000_000,
        nanos: 0,
    };

    #[test]
    fn a_time_to_the_second_means_its_end_or_its_start() {
        let end = parse_time_in("1700000000", NOW, 999_999_999).unwrap();
        let start = parse_time_in("1700000000", NOW, 0).unwrap();
        assert_eq!((end.secs, end.nanos), (1_700_000_000, 999_999_999));
        assert_eq!((start.secs, start.nanos), (1_700_000_000, 0));
        // A fraction is taken as written either way; intervals count from now.
        let exact = parse_time_in("2023-11-14T22:13:20.5Z", NOW, 0).unwrap();
        assert_eq!((exact.secs, exact.nanos), (1_700_000_000, 500_000_000));
        assert_eq!(parse_time_in("1h", NOW, 0).unwrap().secs, NOW.secs - 3600);
    }

    #[test]
    fn durations_parse_with_units_or_as_seconds() {
        let secs = |t: &str| parse_interval(t).unwrap().as_secs();
        assert_eq!(secs("600"), 600);
        assert_eq!(secs(" 0 "), 0);
        assert_eq!(secs("10m"), 600);
        assert_eq!(secs("1h30m"), 5400);
        assert_eq!(secs("2D"), 172_800);
        for bad in ["", "ten", "10x", "-5", "99999999999999999999999"] {
            assert!(parse_interval(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn intervals_and_dates_parse() {
        let ago = |s: i64| Timestamp {
            secs: NOW.secs - s,
            nanos: 0,
        };
        assert_eq!(parse_time_at("now", NOW).unwrap(), NOW);
        assert_eq!(parse_time_at("3D", NOW).unwrap(), ago(3 * 86_400));
        assert_eq!(parse_time_at("2W", NOW).unwrap(), ago(14 * 86_400));
        assert_eq!(parse_time_at("1h30m", NOW).unwrap(), ago(5400));
        assert_eq!(parse_time_at("1Y2M", NOW).unwrap(), ago(425 * 86_400));
        assert_eq!(parse_time_at("45s", NOW).unwrap(), ago(45));
        assert_eq!(
            parse_time_at("1735689600", NOW).unwrap().secs,
            1_735_689_600
        );
        assert_eq!(
            parse_time_at("2025-01-01T00:00:00Z", NOW).unwrap().secs,
            1_735_689_600
        );
        // To the second means the whole second; a fraction is taken as written.
        let nanos = |t: &str| parse_time_at(t, NOW).unwrap().nanos;
        assert_eq!(nanos("2025-01-01T00:00:00Z"), 999_999_999);
        assert_eq!(nanos("2025-01-01T00:00:00.25Z"), 250_000_000);
        assert_eq!(nanos("2026-01-10 14:00"), 999_999_999);
        assert_eq!(nanos("3D"), 0);
        let before_1970 = parse_time_at("1969-12-31T23:59:58.5Z", NOW).unwrap();
        assert_eq!((before_1970.secs, before_1970.nanos), (-2, 500_000_000));
        // Local times: compare with jiff's own reading of the same local time.
        let local = |s: &str| {
            jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M:%S", s)
                .unwrap()
                .to_zoned(jiff::tz::TimeZone::system())
                .unwrap()
                .timestamp()
                .as_second()
        };
        assert_eq!(
            parse_time_at("2026-01-10", NOW).unwrap().secs,
            local("2026-01-10 00:00:00")
        );
        assert_eq!(
            parse_time_at("2026/01/10", NOW).unwrap().secs,
            local("2026-01-10 00:00:00")
        );
        assert_eq!(
            parse_time_at("2026-01-10 14:00", NOW).unwrap().secs,
            local("2026-01-10 14:00:00")
        );
        assert_eq!(
            parse_time_at("2026-01-10T14:00:05", NOW).unwrap().secs,
            local("2026-01-10 14:00:05")
        );
        for bad in ["", "yesterday", "3X", "D", "2026-13-01", "3D4", "-3D"] {
            assert!(parse_time_at(bad, NOW).is_err(), "{bad}");
        }
    }

    fn snap(host: &str, tags: &[&str], paths: &[&str], secs: i64) -> Snapshot {
        Snapshot {
            time: Timestamp { secs, nanos: 0 },
            utc_offset: 0,
            tree: arca_repo::BlobId([0; 32]),
            paths: paths.iter().map(|p| p.as_bytes().to_vec()).collect(),
            hostname: host.into(),
            username: String::new(),
            uid: 0,
            gid: 0,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            parent: None,
            excludes: vec![],
            program_version: String::new(),
            summary: Default::default(),
            notes: vec![],
            checkpoint: false,
        }
    }

    #[test]
    fn filters_combine_as_documented() {
        let s = snap("box", &["daily", "home"], &["/home", "/etc"], 100);
        let f = |hosts: &[&str], tags: &[&[&str]], paths: &[&str], before: Option<i64>| {
            SnapshotFilter {
                hosts: hosts.iter().map(|h| h.to_string()).collect(),
                tags: tags
                    .iter()
                    .map(|g| g.iter().map(|t| t.to_string()).collect())
                    .collect(),
                paths: paths.iter().map(PathBuf::from).collect(),
                before: before.map(|secs| Timestamp { secs, nanos: 0 }),
            }
        };
        assert!(f(&[], &[], &[], None).matches(&s));
        assert!(f(&["other", "box"], &[], &[], None).matches(&s));
        assert!(!f(&["other"], &[], &[], None).matches(&s));
        assert!(f(&[], &[&["daily", "home"]], &[], None).matches(&s));
        assert!(!f(&[], &[&["daily", "weekly"]], &[], None).matches(&s));
        assert!(f(&[], &[&["weekly"], &["home"]], &[], None).matches(&s));
        // `--tag ""`: snapshots without tags.
        assert!(!f(&[], &[&[]], &[], None).matches(&s));
        assert!(f(&[], &[&[]], &[], None).matches(&snap("box", &[], &["/etc"], 100)));
        assert!(f(&[], &[], &["/etc"], None).matches(&s));
        assert!(!f(&[], &[], &["/etc", "/srv"], None).matches(&s));
        assert!(f(&[], &[], &[], Some(100)).matches(&s));
        assert!(!f(&[], &[], &[], Some(99)).matches(&s));
    }
}
