use std::collections::BTreeSet;

use arca_repo::{BlobId, Snapshot, SnapshotSummary};

use super::*;
use crate::ObjectId;

const HOUR: i64 = 3600;
const DAY: i64 = 86_400;
/// 2026-01-01T00:00:00Z, a Thursday.
const T0: i64 = 1_767_225_600;

fn snap(n: u32, secs: i64, offset: i32, host: &str, tags: &[&str]) -> SnapshotInfo {
    let mut id = [0u8; 32];
    id[..4].copy_from_slice(&n.to_be_bytes());
    SnapshotInfo {
        id: ObjectId::from_bytes(id),
        snapshot: Snapshot {
            time: Timestamp { secs, nanos: 0 },
            utc_offset: offset,
            tree: BlobId([0; 32]),
            paths: vec![b"/home".to_vec()],
            hostname: host.to_owned(),
            username: "me".to_owned(),
            uid: 1000,
            gid: 1000,
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            parent: None,
            excludes: Vec::new(),
            program_version: String::new(),
            summary: SnapshotSummary::default(),
            notes: Vec::new(),
            checkpoint: false,
        },
    }
}

/// Snapshots at `T0 + times[i]` (UTC), numbered by index.
fn series(times: &[i64]) -> Vec<SnapshotInfo> {
    times
        .iter()
        .enumerate()
        .map(|(i, t)| snap(i as u32, T0 + t, 0, "h", &[]))
        .collect()
}

/// The numbers of the kept snapshots (all groups).
fn kept(list: Vec<SnapshotInfo>, policy: &KeepPolicy) -> BTreeSet<u32> {
    apply(list, policy, GroupBy::default())
        .into_iter()
        .flat_map(|g| g.decisions)
        .filter(|d| d.keep)
        .map(|d| u32::from_be_bytes(d.snapshot.id.as_bytes()[..4].try_into().unwrap()))
        .collect()
}

fn policy(f: impl FnOnce(&mut KeepPolicy)) -> KeepPolicy {
    let mut p = KeepPolicy::default();
    f(&mut p);
    p
}

#[test]
fn last_keeps_the_newest() {
    let list = series(&(0..10).map(|i| i * HOUR).collect::<Vec<_>>());
    let p = policy(|p| p.last = Some(KeepCount::Last(3)));
    assert_eq!(kept(list.clone(), &p), BTreeSet::from([7, 8, 9]));
    let p = policy(|p| p.last = Some(KeepCount::All));
    assert_eq!(kept(list, &p).len(), 10);
}

#[test]
fn daily_keeps_the_newest_of_each_of_the_newest_days() {
    // Two snapshots a day (01:00 and 13:00) for five days.
    let times: Vec<i64> = (0..5)
        .flat_map(|d| [d * DAY + HOUR, d * DAY + 13 * HOUR])
        .collect();
    let p = policy(|p| p.daily = Some(KeepCount::Last(3)));
    assert_eq!(kept(series(&times), &p), BTreeSet::from([5, 7, 9]));
    let p = policy(|p| p.daily = Some(KeepCount::All));
    assert_eq!(kept(series(&times), &p), BTreeSet::from([1, 3, 5, 7, 9]));
}

#[test]
fn rules_count_independently_as_in_restic() {
    // One snapshot a day for ten days: last 2 and daily 3 overlap on the newest two, and
    // daily still reaches three days back (Borg would keep four distinct snapshots).
    let list = series(&(0..10).map(|d| d * DAY).collect::<Vec<_>>());
    let p = policy(|p| {
        p.last = Some(KeepCount::Last(2));
        p.daily = Some(KeepCount::Last(3));
    });
    let groups = apply(list.clone(), &p, GroupBy::default());
    let newest = &groups[0].decisions[0];
    assert_eq!(newest.reasons, ["last snapshot", "daily snapshot"]);
    assert_eq!(kept(list, &p), BTreeSet::from([7, 8, 9]));
}

#[test]
fn weeks_months_and_years_follow_the_calendar() {
    // Daily for 800 days from 2026-01-01 (Thursday).
    let list = series(&(0..800).map(|d| d * DAY).collect::<Vec<_>>());
    let p = policy(|p| p.weekly = Some(KeepCount::Last(2)));
    // The newest is day 799 = 2028-03-10 (Friday); ISO weeks start on Monday:
    // the newest of the previous week is Sunday 2028-03-05 = day 794.
    assert_eq!(kept(list.clone(), &p), BTreeSet::from([794, 799]));
    let p = policy(|p| p.monthly = Some(KeepCount::Last(3)));
    // Last days of January (day 760 = 2028-01-31) and February (2028-02-29 = day 789,
    // a leap year), and the newest.
    assert_eq!(kept(list.clone(), &p), BTreeSet::from([760, 789, 799]));
    let p = policy(|p| p.yearly = Some(KeepCount::All));
    // 2026-12-31 = day 364, 2027-12-31 = day 729.
    assert_eq!(kept(list, &p), BTreeSet::from([364, 729, 799]));
}

#[test]
fn periods_are_local_to_where_the_snapshot_was_taken() {
    // 22:30 and 23:30 UTC on one day; at +02:00 the second is already the next day.
    let list = vec![
        snap(0, T0 + 22 * HOUR + 1800, 7200, "h", &[]),
        snap(1, T0 + 23 * HOUR + 1800, 7200, "h", &[]),
    ];
    let p = policy(|p| p.daily = Some(KeepCount::All));
    // 00:30 and 01:30 local on the same local day: only the newer is kept.
    assert_eq!(kept(list, &p), BTreeSet::from([1]));
    let list = vec![
        snap(0, T0 + 21 * HOUR + 1800, 7200, "h", &[]),
        snap(1, T0 + 22 * HOUR + 1800, 7200, "h", &[]),
    ];
    // 23:30 and 00:30 local: two days.
    assert_eq!(kept(list, &p), BTreeSet::from([0, 1]));
}

#[test]
fn within_counts_back_from_the_newest_snapshot() {
    let list = series(&(0..48).map(|h| h * HOUR).collect::<Vec<_>>());
    let p = policy(|p| p.within = Some(KeepSpan::parse("10h").unwrap()));
    // The newest is hour 47; within 10 hours: hours 37..=47.
    assert_eq!(kept(list.clone(), &p), (37..48).collect());
    let p = policy(|p| p.within_daily = Some(KeepSpan::parse("1d").unwrap()));
    // Days with snapshots within a day of hour 47 (from hour 23): day 0's newest is hour
    // 23, day 1's is 47.
    assert_eq!(kept(list, &p), BTreeSet::from([23, 47]));
}

#[test]
fn the_seed_policy_is_expressible() {
    // "everything of the last 24 hours, last of the day for 7 days, of the week for 4
    // weeks, of the month for 6 months, of the year for 2 years", on hourly snapshots
    // over three years.
    let list = series(&(0..3 * 365 * 24).map(|h| h * HOUR).collect::<Vec<_>>());
    let p = policy(|p| {
        p.within = Some(KeepSpan::parse("24h").unwrap());
        p.daily = Some(KeepCount::Last(7));
        p.weekly = Some(KeepCount::Last(4));
        p.monthly = Some(KeepCount::Last(6));
        p.yearly = Some(KeepCount::Last(2));
    });
    let groups = apply(list, &p, GroupBy::default());
    let decisions = &groups[0].decisions;
    let reasons = |r: &str| {
        decisions
            .iter()
            .filter(|d| d.reasons.iter().any(|x| x == r))
            .count()
    };
    assert_eq!(reasons("within 24h"), 25);
    assert_eq!(reasons("daily snapshot"), 7);
    assert_eq!(reasons("weekly snapshot"), 4);
    assert_eq!(reasons("monthly snapshot"), 6);
    assert_eq!(reasons("yearly snapshot"), 2);
    let kept = decisions.iter().filter(|d| d.keep).count();
    // 25 within the day; 6 more dailies; weeklies, monthlies and yearlies are the last
    // hour of their period, mostly distinct.
    assert!((25 + 6 + 3..=25 + 6 + 3 + 5 + 1).contains(&kept), "{kept}");
    // Everything else goes.
    assert_eq!(decisions.len() - kept, 3 * 365 * 24 - kept);
}

#[test]
fn older_than_keeps_the_newer_and_lets_rules_keep_older_ones() {
    let list = series(&(0..10).map(|d| d * DAY).collect::<Vec<_>>());
    let cutoff = Timestamp {
        secs: T0 + 7 * DAY,
        nanos: 0,
    };
    let p = policy(|p| p.older_than = Some(cutoff));
    assert_eq!(kept(list.clone(), &p), BTreeSet::from([7, 8, 9]));
    let p = policy(|p| {
        p.older_than = Some(cutoff);
        p.tags = vec![vec!["keep".to_owned()]];
    });
    let mut tagged = list;
    tagged[2] = snap(2, T0 + 2 * DAY, 0, "h", &["keep", "x"]);
    assert_eq!(kept(tagged, &p), BTreeSet::from([2, 7, 8, 9]));
}

#[test]
fn groups_are_decided_separately() {
    let list = vec![
        snap(0, T0, 0, "a", &[]),
        snap(1, T0 + HOUR, 0, "a", &[]),
        snap(2, T0, 0, "b", &["t"]),
        snap(3, T0 + HOUR, 0, "b", &[]),
    ];
    let p = policy(|p| p.last = Some(KeepCount::Last(1)));
    assert_eq!(kept(list.clone(), &p), BTreeSet::from([1, 3]));
    let by_tags = GroupBy::parse("host,tags").unwrap();
    let groups = apply(list.clone(), &p, by_tags);
    assert_eq!(groups.len(), 3);
    let none = GroupBy::parse("").unwrap();
    let groups = apply(list, &p, none);
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].decisions.iter().filter(|d| d.keep).count(), 1);
}

#[test]
fn checkpoints_are_not_counted_and_go_once_superseded() {
    let checkpoint = |n: u32, secs: i64, host: &str| {
        let mut s = snap(n, secs, 0, host, &[]);
        s.snapshot.checkpoint = true;
        s
    };
    let list = vec![
        snap(0, T0, 0, "a", &[]),
        checkpoint(1, T0 + HOUR, "a"),
        snap(2, T0 + 2 * HOUR, 0, "a", &[]),
        checkpoint(3, T0 + 3 * HOUR, "a"),
        checkpoint(4, T0 + 4 * HOUR, "a"),
        // A group with only a checkpoint keeps it.
        checkpoint(5, T0, "b"),
    ];
    // `last 2` keeps the two newest complete snapshots: the checkpoints in between do
    // not use up the count. The checkpoint older than snapshot 2 goes; the two newer
    // than every complete snapshot stay.
    let p = policy(|p| p.last = Some(KeepCount::Last(2)));
    assert_eq!(kept(list.clone(), &p), BTreeSet::from([0, 2, 3, 4, 5]));
    // A rule that would keep everything does not keep a superseded checkpoint.
    let p = policy(|p| p.last = Some(KeepCount::All));
    assert_eq!(kept(list.clone(), &p), BTreeSet::from([0, 2, 3, 4, 5]));
    let groups = apply(list, &p, GroupBy::default());
    let a = &groups[0].decisions;
    let order: Vec<u8> = a.iter().map(|d| d.snapshot.id.as_bytes()[3]).collect();
    assert_eq!(
        order,
        vec![4, 3, 2, 1, 0],
        "newest first, checkpoints in place"
    );
    assert_eq!(
        a[0].reasons,
        vec!["checkpoint not yet superseded".to_owned()]
    );
    assert!(a[3].reasons.is_empty() && !a[3].keep);
}

#[test]
fn counts_spans_and_groupings_parse() {
    assert_eq!(KeepCount::parse("-1").unwrap(), KeepCount::All);
    assert_eq!(KeepCount::parse("7").unwrap(), KeepCount::Last(7));
    for bad in ["-2", "x", ""] {
        assert!(KeepCount::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(
        KeepSpan::parse("1y6m2w3d4h").unwrap(),
        KeepSpan {
            years: 1,
            months: 6,
            days: 17,
            hours: 4
        }
    );
    assert_eq!(KeepSpan::parse("24H").unwrap().hours, 24);
    for bad in ["", "10", "d", "10x", "5s", "99999999999999999999d"] {
        assert!(KeepSpan::parse(bad).is_err(), "{bad}");
    }
    assert!(GroupBy::parse("host,color").is_err());
    assert_eq!(
        GroupBy::parse("paths").unwrap(),
        GroupBy {
            host: false,
            paths: true,
            tags: false
        }
    );
}
