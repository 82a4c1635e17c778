//! `arca prune`, `forget --prune` and `unlock` end to end, with backups running in
//! other processes at the same time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use arca_core::{Location, Repository};
use common::*;

fn snapshot_count(env: &Env) -> usize {
    env.json(&["snapshots"]).as_array().unwrap().len()
}

#[test]
fn forget_prune_frees_space_and_keeps_what_is_left_intact() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("big"), &bytes(4 << 20, 1));
    write(&src.join("keep"), &bytes(1 << 20, 2));
    env.init();
    env.ok(&[
        "backup",
        "-q",
        src.to_str().unwrap(),
        "--time",
        "2026-01-01 00:00:00",
    ]);
    std::fs::remove_file(src.join("big")).unwrap();
    write(&src.join("new"), &bytes(100_000, 3));
    env.ok(&[
        "backup",
        "-q",
        src.to_str().unwrap(),
        "--time",
        "2026-01-02 00:00:00",
    ]);

    let plan = env.json(&["prune", "--dry-run"]);
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["packs_to_delete"], 0, "{plan}");
    // The prune plan after a dry-run forget counts the snapshot forget would remove
    // as gone: the big file's packs would be deleted (the last JSON line is prune's).
    let dry = env.json(&["forget", "--keep-last", "1", "--prune", "--dry-run"]);
    assert_eq!(dry["dry_run"], true);
    assert!(dry["packs_to_delete"].as_u64().unwrap() > 0, "{dry}");
    assert_eq!(snapshot_count(&env), 2);

    let out = env.ok(&[
        "forget",
        "--keep-last",
        "1",
        "--prune",
        "--max-unused",
        "0%",
    ]);
    assert!(out.contains("deleted") && out.contains("freed"), "{out}");
    let report = env.json(&["prune", "--dry-run"]);
    for field in [
        "snapshots",
        "packs_total",
        "bytes_total",
        "used_bytes",
        "unused_bytes",
        "packs_to_delete",
        "bytes_to_delete",
        "packs_to_repack",
        "bytes_to_repack",
        "packs_waiting",
        "waiting_for",
    ] {
        assert!(report.get(field).is_some(), "{field} missing: {report}");
    }
    assert_eq!(report["unused_bytes"], 0, "{report}");
    assert!(
        report["bytes_total"].as_u64().unwrap() < 2 << 20,
        "{report}"
    );
    assert_eq!(env.json(&["check", "--read-data"])["ok"], true);
    let out_dir = env.path("out");
    env.ok(&["restore", "latest", "--target", out_dir.to_str().unwrap()]);
    assert_same(&manifest(&src), &manifest(&restored(&out_dir, &src)));
}

#[test]
fn a_held_lock_is_exit_11_naming_its_holder_and_unlock_removes_only_stale_ones() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("f"), b"x");
    env.init();
    env.backup(&[&src]);
    let location = Location::parse(env.repo.to_str().unwrap()).unwrap();
    let repo = Repository::open(location.backend().unwrap(), PASSWORD.as_bytes()).unwrap();
    let lock = repo.lock_exclusive("prune", Duration::ZERO).unwrap();

    let out = env.expect(11, &["prune"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("locked by prune (pid {}", std::process::id())),
        "{err}"
    );
    // It waits with --retry-lock, then gives up the same way.
    env.expect(11, &["prune", "--retry-lock", "1s"]);
    // Backups are not blocked by it.
    env.backup(&[&src]);
    // The holder runs: it is not stale.
    let out = env.ok(&["unlock"]);
    assert!(!out.contains("removed lock"), "{out}");
    env.expect(11, &["prune"]);
    env.ok(&["unlock", "--all"]);
    env.ok(&["prune"]);
    drop(lock);
}

#[test]
fn backups_in_other_processes_survive_concurrent_prunes() {
    let env = Arc::new(Env::new());
    env.init();
    let hosts = ["h1", "h2", "h3"];
    let sources: Vec<_> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let src = env.path(&format!("src-{h}"));
            write(&src.join("shared"), &bytes(3 << 20, 99));
            write(&src.join("own"), &bytes(12 << 20, i as u64));
            src
        })
        .collect();
    // Some history to prune.
    for (h, src) in hosts.iter().zip(&sources) {
        env.ok(&["backup", "-q", src.to_str().unwrap(), "--host", h]);
    }
    for round in 0..3u64 {
        // Every host changes its data and backs up while prunes run.
        for (i, src) in sources.iter().enumerate() {
            write(&src.join("own"), &bytes(12 << 20, 100 * round + i as u64));
        }
        let backups: Vec<_> = hosts
            .iter()
            .zip(&sources)
            .map(|(h, src)| {
                env.cmd()
                    .args(["backup", "-q", src.to_str().unwrap(), "--host", h])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for _ in 0..2 {
            let out = env.run(&["forget", "--keep-last", "1", "--prune", "-q"]);
            // Two prunes at once: one may find the other's lock (exit 11).
            assert!(
                matches!(out.status.code(), Some(0) | Some(11)),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        for b in backups {
            let out = b.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    // Once the backups are done, another prune deletes what waited for them.
    env.ok(&["forget", "--keep-last", "1", "--prune"]);
    let last = env.json(&["prune"]);
    assert_eq!(last["packs_waiting"], 0, "{last}");
    assert_eq!(env.json(&["check", "--read-data"])["ok"], true);
    for (h, src) in hosts.iter().zip(&sources) {
        let out = env.path(&format!("out-{h}"));
        env.ok(&[
            "restore",
            "latest",
            "--host",
            h,
            "--target",
            out.to_str().unwrap(),
        ]);
        assert_same(&manifest(src), &manifest(&restored(&out, src)));
    }
}

/// A record in `locks/` that cannot be read counts as a live session: prune deletes
/// nothing and says why; plain `unlock` keeps it; `unlock --all` removes it, and the
/// next prune deletes what waited.
#[test]
fn an_unreadable_lock_record_is_named_and_removed_by_unlock_all() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("big"), &bytes(300_000, 1));
    env.init();
    env.backup(&[&src]);
    std::fs::remove_file(src.join("big")).unwrap();
    write(&src.join("small"), b"x");
    env.backup(&[&src]);
    let garbage = "ab".repeat(32);
    std::fs::write(env.repo.join("locks").join(&garbage), b"not a record").unwrap();
    let report = env.json(&["forget", "--keep-last", "1", "--prune"]);
    assert_eq!(report["packs_deleted"], 0, "{report}");
    assert!(report["packs_waiting"].as_u64().unwrap() > 0, "{report}");
    let why = report["waiting_for"].to_string();
    assert!(
        why.contains(&garbage) && why.contains("cannot be read") && why.contains("unlock --all"),
        "{why}"
    );
    env.ok(&["unlock"]);
    assert!(env.repo.join("locks").join(&garbage).exists());
    let out = env.ok(&["unlock", "--all"]);
    assert!(
        out.contains(&format!("removed unreadable record {garbage}")),
        "{out}"
    );
    let report = env.json(&["prune"]);
    assert!(report["packs_deleted"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(env.json(&["check", "--read-data"])["ok"], true);
}

#[test]
fn prune_removes_what_killed_writes_left_and_says_so() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("a"), b"a");
    env.init();
    env.ok(&["backup", "-q", src.to_str().unwrap()]);
    // What a backup killed a day ago left: a pack's temporary file.
    let dead = env.repo.join("data/00/.tmp-0123456789abcdef01234567");
    let plant = || {
        write(&dead, &bytes(100_000, 4));
        let yesterday = std::time::SystemTime::now() - Duration::from_secs(24 * 3600);
        std::fs::File::options()
            .write(true)
            .open(&dead)
            .unwrap()
            .set_modified(yesterday)
            .unwrap();
    };
    plant();
    let report = env.json(&["prune"]);
    assert_eq!(report["temporaries_removed"], 1, "{report}");
    assert!(!dead.exists());
    plant();
    let out = env.ok(&["prune"]);
    assert!(
        out.contains("removed 1 temporary files left by interrupted writes"),
        "{out}"
    );
    assert!(!dead.exists());
    env.ok(&["check", "--read-data"]);
}
