//! `arca forget`: retention policies, dry runs, explicit ids, and `backup --time`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;

fn ids(env: &Env) -> Vec<(String, String)> {
    let list = env.json(&["snapshots"]);
    list.as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["short_id"].as_str().unwrap().to_owned(),
                s["time"].as_str().unwrap()[..10].to_owned(),
            )
        })
        .collect()
}

/// Snapshots of `src` on each of `dates` (at noon), as host `host`.
fn backups(env: &Env, src: &std::path::Path, host: &str, dates: &[&str]) {
    for d in dates {
        let when = format!("{d} 12:00:00");
        env.ok(&[
            "backup",
            "-q",
            src.to_str().unwrap(),
            "--host",
            host,
            "--time",
            &when,
        ]);
    }
}

#[test]
fn a_policy_keeps_per_group_and_dry_run_changes_nothing() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("f"), b"data");
    env.init();
    let dates = [
        "2024-06-01",
        "2025-03-01",
        "2025-12-30",
        "2026-01-01",
        "2026-01-02",
        "2026-01-03",
    ];
    backups(&env, &src, "a", &dates);
    backups(&env, &src, "b", &["2026-01-01", "2026-01-02"]);
    assert_eq!(ids(&env).len(), 8);

    let args = [
        "forget",
        "--keep-daily",
        "2",
        "--keep-yearly=-1",
        "--dry-run",
    ];
    let plan = env.json(&args);
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["removed"], 0);
    let groups = plan["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    let a = groups.iter().find(|g| g["host"] == "a").unwrap();
    let decided: Vec<(String, String, Vec<String>)> = a["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["time"].as_str().unwrap()[..10].to_owned(),
                s["action"].as_str().unwrap().to_owned(),
                s["reasons"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r.as_str().unwrap().to_owned())
                    .collect(),
            )
        })
        .collect();
    let r = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        decided,
        [
            (
                "2026-01-03".into(),
                "keep".into(),
                r(&["daily snapshot", "yearly snapshot"])
            ),
            ("2026-01-02".into(), "keep".into(), r(&["daily snapshot"])),
            ("2026-01-01".into(), "remove".into(), r(&[])),
            ("2025-12-30".into(), "keep".into(), r(&["yearly snapshot"])),
            ("2025-03-01".into(), "remove".into(), r(&[])),
            ("2024-06-01".into(), "keep".into(), r(&["yearly snapshot"])),
        ]
    );
    assert_eq!(ids(&env).len(), 8, "a dry run removed something");
    let text = env.ok(&[
        "forget",
        "--keep-daily",
        "2",
        "--keep-yearly=-1",
        "--dry-run",
    ]);
    assert!(
        text.contains("host a, paths") && text.contains("remove"),
        "{text}"
    );

    env.ok(&["forget", "--keep-daily", "2", "--keep-yearly", "-1"]);
    let left: Vec<String> = ids(&env).into_iter().map(|(_, d)| d).collect();
    assert_eq!(
        left,
        [
            "2024-06-01",
            "2025-12-30",
            "2026-01-01",
            "2026-01-02",
            "2026-01-02",
            "2026-01-03"
        ]
    );
    // What is left restores.
    let out = env.path("out");
    env.ok(&[
        "restore",
        "latest",
        "--host",
        "a",
        "--target",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read(restored(&out, &src).join("f")).unwrap(),
        b"data"
    );
}

#[test]
fn older_than_tags_and_explicit_ids() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("f"), b"x");
    env.init();
    backups(&env, &src, "h", &["2025-01-01", "2025-06-01"]);
    env.ok(&[
        "backup",
        "-q",
        src.to_str().unwrap(),
        "--host",
        "h",
        "--tag",
        "precious",
        "--time",
        "2025-02-01 00:00",
    ]);
    env.ok(&["backup", "-q", src.to_str().unwrap(), "--host", "h"]);
    // Duplicity's remove-older-than 1Y: the year-old ones go unless tagged precious.
    env.ok(&[
        "forget",
        "--older-than",
        "2026-01-01",
        "--keep-tag",
        "precious",
    ]);
    let left: Vec<String> = ids(&env).into_iter().map(|(_, d)| d).collect();
    assert_eq!(left.len(), 2);
    assert_eq!(left[0], "2025-02-01");
    // A limit written to the second means that second's start: the snapshot taken at
    // 2025-02-01 00:00:00 is "at or after" it, and stays.
    let plan = env.json(&["forget", "--older-than", "2025-02-01 00:00:00", "--dry-run"]);
    let decisions = plan["groups"][0]["snapshots"].as_array().unwrap();
    assert!(
        decisions.iter().all(|d| d["action"] == "keep"),
        "{decisions:?}"
    );
    // Named snapshots go, whatever they are.
    let (first, _) = ids(&env)[0].clone();
    env.ok(&["forget", &first]);
    assert_eq!(ids(&env).len(), 1);
    // A policy and names together are refused; so is no policy at all (exit 2).
    let (last, _) = ids(&env)[0].clone();
    // Usage errors all (exit 2), found before the repository is opened.
    env.expect(2, &["forget", &last, "--keep-last", "1"]);
    let out = env.expect(2, &["forget"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--keep"));
    env.expect(2, &["forget", "--keep-daily", "-2"]);
    env.expect(2, &["forget", "--keep-within", "10x"]);
    env.expect(2, &["forget", "--group-by", "colour"]);
    // An empty tag would keep nothing while looking like a rule.
    for tags in ["", "a,", ",a"] {
        let out = env.expect(2, &["forget", "--keep-tag", tags]);
        assert!(String::from_utf8_lossy(&out.stderr).contains("empty tag"));
    }
    assert_eq!(ids(&env).len(), 1);
}

#[test]
fn backup_time_sets_the_snapshot_time_and_refuses_the_future() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("f"), b"x");
    env.init();
    let s = env.json(&[
        "backup",
        src.to_str().unwrap(),
        "--time",
        "2020-02-29 23:59:58",
    ]);
    assert!(
        s["time"]
            .as_str()
            .unwrap()
            .starts_with("2020-02-29T23:59:58"),
        "{s}"
    );
    let out = env.expect(
        1,
        &["backup", src.to_str().unwrap(), "--time", "2999-01-01"],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("future"));
}

#[test]
fn tag_changes_tags_under_a_new_id_and_stats_reports_deduplication() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("f"), &bytes(300_000, 5));
    write(&src.join("copy"), &bytes(300_000, 5));
    env.init();
    let first = env.backup(&[&src])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let changed = env.json(&["tag", &first[..8], "--add", "a,b"]);
    let new = changed[0]["new"].as_str().unwrap().to_owned();
    assert_eq!(changed[0]["old"], first.as_str());
    let list = env.json(&["snapshots"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], new.as_str());
    assert_eq!(list[0]["tags"], serde_json::json!(["a", "b"]));
    env.ok(&["tag", "--tag", "a", "--remove", "a", "--add", "c"]);
    assert_eq!(
        env.json(&["snapshots"])[0]["tags"],
        serde_json::json!(["b", "c"])
    );
    env.ok(&["tag", "latest", "--set", ""]);
    assert_eq!(env.json(&["snapshots"])[0]["tags"], serde_json::json!([]));
    env.expect(2, &["tag", "latest"]);
    // The data is untouched.
    assert_eq!(env.json(&["check", "--read-data"])["ok"], true);

    env.backup(&[&src]);
    let stats = env.json(&["stats"]);
    assert_eq!(stats["snapshots"], 2);
    assert_eq!(stats["bytes_original"], 1_200_000);
    // Two identical files in two snapshots: four copies stored once.
    assert!(stats["dedup_ratio"].as_f64().unwrap() > 3.9, "{stats}");
    for field in [
        "bytes_stored",
        "bytes_raw",
        "unique_chunks",
        "total_chunks",
        "packs",
        "compression_ratio",
    ] {
        assert!(stats.get(field).is_some(), "{field}: {stats}");
    }
}

#[test]
fn several_passwords_open_the_repository_and_the_last_cannot_go() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("f"), b"secret");
    env.init();
    env.backup(&[&src]);
    let first = env.json(&["key", "list"])[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = env.expect(1, &["key", "remove", &first[..8]]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("only key"));

    assert!(env.add_password("second password", &[]).status.success());
    let keys = env.json(&["key", "list"]);
    assert_eq!(keys.as_array().unwrap().len(), 2);
    // The second password opens the repository too.
    let mut with_second = env.cmd();
    with_second
        .args(["ls", "latest"])
        .env("ARCA_PASSWORD", "second password");
    let out = with_second.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The one in use cannot be removed; the other can.
    env.expect(1, &["key", "remove", &first[..8]]);
    let second = env.other_key_id();
    env.ok(&["key", "remove", &second]);
    let mut with_second = env.cmd();
    with_second
        .args(["ls", "latest"])
        .env("ARCA_PASSWORD", "second password");
    assert_eq!(with_second.output().unwrap().status.code(), Some(12));

    // passwd: the old password stops working, the new one works.
    let pw_file = env.path("new-pw");
    std::fs::write(&pw_file, "third password\n").unwrap();
    let mut passwd = vec![
        "key",
        "passwd",
        "--new-password-file",
        pw_file.to_str().unwrap(),
    ];
    passwd.extend(FAST_KDF);
    env.ok(&passwd);
    env.expect(12, &["snapshots"]);
    let mut with_third = env.cmd();
    with_third
        .args(["key", "list", "--json"])
        .env("ARCA_PASSWORD", "third password");
    let out = with_third.output().unwrap();
    assert!(out.status.success());
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
}
