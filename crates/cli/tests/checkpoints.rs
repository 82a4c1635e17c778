//! `backup --checkpoint-interval`: a backup killed with SIGKILL leaves a checkpoint
//! snapshot that restores what it holds; the next backup resumes from it; `forget`
//! removes it once a complete snapshot supersedes it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

/// 240 files of distinct content in twelve directories.
fn source(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for d in 0..12 {
        for i in 0..20 {
            let rel = PathBuf::from(format!("d{d:02}/f{i:02}"));
            let data = bytes(16_000 + i * 10, (d * 100 + i + 1) as u64);
            write(&root.join(&rel), &data);
            files.push((rel, data));
        }
    }
    files
}

fn snapshot_files(repo: &Path) -> usize {
    std::fs::read_dir(repo.join("snapshots"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn a_killed_backup_resumes_from_its_checkpoint() {
    let env = Env::new();
    let src = env.path("src");
    let files = source(&src);
    settle();
    env.init();
    let src_arg = src.to_str().unwrap();

    // Slowed down so that it is still running after its first checkpoints.
    let mut child = env
        .cmd()
        .args([
            "backup",
            "-q",
            "--checkpoint-interval",
            "0",
            "--limit-upload",
            "1024",
            src_arg,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while snapshot_files(&env.repo) == 0 {
        assert!(child.try_wait().unwrap().is_none(), "finished too early");
        assert!(started.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the backup finished before it could be killed"
    );
    child.kill().unwrap();
    child.wait().unwrap();

    // Checkpoints only (two if the kill came between writing one and removing the one
    // before): listed as such, restorable by id, not `latest`.
    let list = env.json(&["snapshots"]);
    let list = list.as_array().unwrap();
    assert!((1..=2).contains(&list.len()), "{list:?}");
    assert!(list.iter().all(|s| s["checkpoint"] == true), "{list:?}");
    let newest = list.iter().max_by_key(|s| s["files"].as_u64()).unwrap();
    let id = newest["id"].as_str().unwrap().to_owned();
    assert!(env.ok(&["snapshots"]).contains("(checkpoint)"));
    let nowhere = env.path("nowhere");
    let out = env.expect(
        1,
        &["restore", "latest", "--target", nowhere.to_str().unwrap()],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("only") && err.contains("checkpoint"), "{err}");
    let target = env.path("restored");
    env.ok(&["restore", &id, "--target", target.to_str().unwrap()]);
    let base = restored(&target, &src);
    let held: Vec<&(PathBuf, Vec<u8>)> = files
        .iter()
        .filter(|(rel, data)| match std::fs::read(base.join(rel)) {
            Ok(restored) => {
                assert_eq!(&restored, data, "{}", rel.display());
                true
            }
            Err(_) => false,
        })
        .collect();
    assert!(
        !held.is_empty() && held.len() < files.len(),
        "the checkpoint holds {} of {} files",
        held.len(),
        files.len()
    );
    let report = env.json(&["check", "--read-data"]);
    assert_eq!(report["ok"], true, "{report}");

    // The next backup takes the checkpoint as its parent: the files it holds are not
    // read again.
    let summary = env.backup(&[&src]);
    assert_eq!(summary["parent"], id.as_str());
    assert_eq!(summary["files_unchanged"], held.len());
    let held_bytes: usize = held.iter().map(|(_, d)| d.len()).sum();
    let all_bytes: usize = files.iter().map(|(_, d)| d.len()).sum();
    assert_eq!(summary["bytes_read"], all_bytes - held_bytes);
    let target = env.path("restored-latest");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    for (rel, data) in &files {
        assert_eq!(
            &std::fs::read(restored(&target, &src).join(rel)).unwrap(),
            data
        );
    }

    // forget removes the superseded checkpoint, whatever the rules keep.
    let plan = env.json(&["forget", "--keep-last", "10", "--dry-run"]);
    let decisions = plan["groups"][0]["snapshots"].as_array().unwrap();
    for d in decisions.iter().filter(|d| d["checkpoint"] == true) {
        assert_eq!(d["action"], "remove", "{d}");
    }
    assert!(decisions.iter().any(|d| d["id"] == id.as_str()));
    let text = env.ok(&["forget", "--keep-last", "10", "--dry-run"]);
    assert!(
        text.contains("checkpoint superseded by a complete snapshot"),
        "{text}"
    );
    // Named on the command line, the checkpoint goes for that reason alone.
    let text = env.ok(&["forget", &id, "--dry-run"]);
    assert!(text.contains(&id[..8]) && text.contains("remove"), "{text}");
    assert!(!text.contains("superseded"), "{text}");
    // The killed backup's session record is stale (its process is gone): plain
    // `unlock` removes it, so that prune may delete what it condemns.
    let out = env.ok(&["unlock"]);
    assert!(out.contains("removed session of backup"), "{out}");
    env.ok(&["forget", "-q", "--keep-last", "10", "--prune"]);
    let list = env.json(&["snapshots"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["checkpoint"], false);
    let report = env.json(&["check", "--read-data"]);
    assert_eq!(report["ok"], true, "{report}");
}

#[test]
fn a_finished_backup_leaves_no_checkpoint() {
    let env = Env::new();
    let src = env.path("src");
    source(&src);
    env.init();
    let summary = env.json(&[
        "backup",
        "--checkpoint-interval",
        "0s",
        src.to_str().unwrap(),
    ]);
    assert!(summary["checkpoints"].as_u64().unwrap() >= 240, "{summary}");
    let list = env.json(&["snapshots"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["checkpoint"], false);
    // Bad intervals are refused before anything is written.
    let out = env.expect(2, &["backup", "--checkpoint-interval", "soon", "x"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--checkpoint-interval"), "{err}");
}
