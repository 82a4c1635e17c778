//! Backup run options through the `arca` binary: --dry-run, --list, --json status
//! lines, --skip-if-unchanged, and files that change while they are read.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;

#[test]
fn dry_run_writes_nothing_and_reports_what_it_would_store() {
    let env = Env::new();
    let src = env.path("src");
    make_tree(&src);
    env.init();
    let before = files_in(&env.repo);
    let dry = env.json(&["backup", src.to_str().unwrap(), "--dry-run"]);
    assert_eq!(dry["dry_run"], true);
    assert!(dry["snapshot_id"].is_null());
    assert_eq!(dry["files_new"], 9);
    assert!(dry["bytes_deduplicated"].as_u64().unwrap() > 0);
    assert_eq!(
        files_in(&env.repo),
        before,
        "a dry run wrote to the repository"
    );
    // The real backup stores what the dry run announced.
    let real = env.backup(&[&src]);
    assert_eq!(real["bytes_added_raw"], dry["bytes_added_raw"]);
    assert_eq!(real["data_blobs_added"], dry["data_blobs_added"]);
    let text = env.ok(&["backup", src.to_str().unwrap(), "--dry-run"]);
    assert!(text.contains("dry run: nothing was written"), "{text}");
}

#[test]
fn list_prints_one_line_per_file() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("a"), b"1");
    write(&src.join("b"), b"2");
    settle();
    env.init();
    let out = env.ok(&["backup", src.to_str().unwrap(), "--list", "-q"]);
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        vec![
            format!("A {}/a", src.display()),
            format!("A {}/b", src.display())
        ]
    );
    write(&src.join("b"), b"changed");
    write(&src.join("c"), b"new");
    let out = env.ok(&["backup", src.to_str().unwrap(), "--list", "-q"]);
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        vec![
            format!("A {}/c", src.display()),
            format!("M {}/b", src.display()),
            format!("U {}/a", src.display())
        ]
    );
    // JSON: file lines, then the summary last. (Wait until the files written just before
    // the last backup are old enough to be trusted as unchanged.)
    settle();
    env.ok(&["backup", src.to_str().unwrap(), "-q"]);
    let out = env.ok(&["backup", src.to_str().unwrap(), "--list", "--json"]);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let files: Vec<_> = lines
        .iter()
        .filter(|l| l["message_type"] == "file")
        .collect();
    assert_eq!(files.len(), 3);
    assert!(
        files
            .iter()
            .all(|f| f["status"] == "U" && f["path"].is_string())
    );
    assert_eq!(lines.last().unwrap()["message_type"], "summary");
}

#[test]
fn json_prints_status_lines_while_running() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    {
        use std::io::Write;
        let mut f = fs::File::create(src.join("big")).unwrap();
        for i in 0..40 {
            f.write_all(&bytes(8 << 20, 200 + i)).unwrap();
        }
    }
    env.init();
    let out = env.ok(&["backup", src.to_str().unwrap(), "--json", "--threads", "1"]);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary = lines.last().unwrap();
    assert_eq!(summary["message_type"], "summary");
    let status: Vec<_> = lines
        .iter()
        .filter(|l| l["message_type"] == "status")
        .collect();
    let took = summary["duration_seconds"].as_f64().unwrap();
    // One line per full second of running (measured by the backup itself).
    assert!(
        status.len() as f64 >= took.floor() - 1.0,
        "{} status lines in {took} s",
        status.len()
    );
    for s in &status {
        for field in [
            "seconds_elapsed",
            "files_done",
            "bytes_done",
            "total_files",
            "total_bytes",
            "percent_done",
            "errors",
        ] {
            assert!(s.get(field).is_some(), "status line lacks {field}: {s}");
        }
    }
}

#[test]
fn skip_if_unchanged() {
    let env = Env::new();
    let src = env.path("top/src");
    write(&src.join("a"), b"1");
    settle();
    env.init();
    let first = env.json(&["backup", src.to_str().unwrap(), "--skip-if-unchanged"]);
    assert!(
        first["snapshot_id"].is_string(),
        "the first backup must be saved"
    );
    // A change beside the backed-up path changes the directory above it, which the
    // snapshot records but which is not what the user backs up.
    write(&env.path("top/sibling"), b"x");
    let same = env.json(&["backup", src.to_str().unwrap(), "--skip-if-unchanged"]);
    assert_eq!(same["skipped"], true);
    assert!(same["snapshot_id"].is_null());
    assert_eq!(env.json(&["snapshots"]).as_array().unwrap().len(), 1);
    write(&src.join("a"), b"2");
    let changed = env.json(&["backup", src.to_str().unwrap(), "--skip-if-unchanged"]);
    assert_eq!(changed["skipped"], false);
    assert_eq!(env.json(&["snapshots"]).as_array().unwrap().len(), 2);
}

#[test]
fn a_file_changing_while_read_is_reported_and_recorded() {
    let env = Env::new();
    let src = env.path("src");
    let busy = src.join("busy.log");
    write(&busy, &bytes(64 << 20, 9));
    env.init();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, busy) = (stop.clone(), busy.clone());
        std::thread::spawn(move || {
            use std::os::unix::fs::FileExt;
            let f = fs::OpenOptions::new().write(true).open(&busy).unwrap();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                f.write_at(&[i as u8], (i * 4096) % (64 << 20)).unwrap();
                i += 1;
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
        })
    };
    let out = env.run(&["backup", src.to_str().unwrap(), "--json"]);
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("busy.log") && stderr.contains("changed while"),
        "{stderr}"
    );
    let summary: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(summary["changed_during_read"], 1);
    let snaps = env.json(&["snapshots"]);
    assert_eq!(snaps[0]["changed_during_read"], 1);
    assert!(snaps[0]["notes"][0].as_str().unwrap().contains("busy.log"));
}

#[test]
fn stdin_and_command_output_become_one_file() {
    use std::io::Write;
    let env = Env::new();
    env.init();
    let dump = bytes(3 << 20, 77);
    let mut child = env
        .cmd()
        .args([
            "backup",
            "--stdin",
            "--stdin-filename",
            "db/mydb.sql",
            "--json",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&dump).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(s["paths"], serde_json::json!(["/db/mydb.sql"]));
    assert_eq!(s["bytes_original"], 3 << 20);
    let target = env.path("out");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_eq!(fs::read(target.join("db/mydb.sql")).unwrap(), dump);

    // From a command: its output is the file.
    env.ok(&[
        "backup",
        "--stdin-filename",
        "listing.txt",
        "--stdin-from-command",
        "--",
        "sh",
        "-c",
        "printf 'line one\\nline two\\n'",
    ]);
    let target = env.path("out2");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_eq!(
        fs::read(target.join("listing.txt")).unwrap(),
        b"line one\nline two\n"
    );

    // A failing command: no snapshot, exit 1, the command named.
    let snapshots = env.json(&["snapshots"]).as_array().unwrap().len();
    let out = env.expect(
        1,
        &[
            "backup",
            "--stdin-filename",
            "x",
            "--stdin-from-command",
            "--",
            "sh",
            "-c",
            "echo partial; exit 3",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sh") && err.contains("no snapshot"), "{err}");
    assert_eq!(
        env.json(&["snapshots"]).as_array().unwrap().len(),
        snapshots
    );
    env.ok(&["check", "--read-data"]);
    // A command that cannot be started, an invalid name.
    env.expect(
        1,
        &["backup", "--stdin-from-command", "--", "/no/such/program"],
    );
    env.expect(1, &["backup", "--stdin", "--stdin-filename", "../escape"]);
    env.expect(2, &["backup", "--stdin", "/some/path"]);
}
