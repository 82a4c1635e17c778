//! Looking into snapshots through the `arca` binary: `diff`, `find` and `verify`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::*;
use serde_json::Value;

/// The JSON lines of `arca ARGS --json`.
fn json_lines(env: &Env, args: &[&str]) -> Vec<Value> {
    json_lines_code(env, 0, args)
}

fn json_lines_code(env: &Env, code: i32, args: &[&str]) -> Vec<Value> {
    let mut all = args.to_vec();
    all.push("--json");
    let out = env.expect(code, &all);
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn snapshot_id(v: &Value) -> String {
    v["snapshot_id"].as_str().unwrap().to_owned()
}

#[test]
fn diff_lists_every_change_with_what_changed() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("same.txt"), b"unchanged");
    write(&src.join("edit.txt"), b"first version");
    write(&src.join("mode.txt"), b"mode only");
    write(&src.join("gone/a.txt"), b"a");
    write(&src.join("gone/deeper/b.txt"), b"bb");
    write(&src.join("kind"), b"a file that becomes a directory");
    std::os::unix::fs::symlink("same.txt", src.join("link")).unwrap();
    settle();
    env.init();
    let first = snapshot_id(&env.backup(&[&src]));

    write(&src.join("edit.txt"), b"second version, longer");
    fs::set_permissions(src.join("mode.txt"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::remove_dir_all(src.join("gone")).unwrap();
    write(&src.join("new/c.txt"), b"ccc");
    fs::remove_file(src.join("kind")).unwrap();
    write(&src.join("kind/inside"), b"i");
    fs::remove_file(src.join("link")).unwrap();
    std::os::unix::fs::symlink("edit.txt", src.join("link")).unwrap();
    let second = snapshot_id(&env.backup(&[&src]));

    let lines = json_lines(&env, &["diff", &first, &second]);
    let (changes, stats) = lines.split_at(lines.len() - 1);
    let p = |rel: &str| format!("{}/{rel}", src.display());
    // Only what lies below the source: `/tmp` itself changes whenever a test running
    // beside this one creates or removes its directory.
    let below = |c: &&Value| c["path"].as_str().unwrap().starts_with(&p(""));
    let got: BTreeSet<(String, String, Vec<String>)> = changes
        .iter()
        .filter(below)
        .map(|c| {
            assert_eq!(c["message_type"], "change");
            let changes = c["changes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_owned())
                .collect();
            (
                c["modifier"].as_str().unwrap().to_owned(),
                c["path"].as_str().unwrap().to_owned(),
                changes,
            )
        })
        .collect();
    let want: BTreeSet<(String, String, Vec<String>)> = [
        ("M", p("edit.txt"), vec!["content", "size", "mtime"]),
        ("U", p("mode.txt"), vec!["mode"]),
        ("-", p("gone"), vec![]),
        ("-", p("gone/a.txt"), vec![]),
        ("-", p("gone/deeper"), vec![]),
        ("-", p("gone/deeper/b.txt"), vec![]),
        ("+", p("new"), vec![]),
        ("+", p("new/c.txt"), vec![]),
        ("T", p("kind"), vec!["type"]),
        ("+", p("kind/inside"), vec![]),
        ("M", p("link"), vec!["mtime", "target"]),
    ]
    .into_iter()
    .map(|(m, path, c)| {
        (
            m.to_owned(),
            path,
            c.into_iter().map(str::to_owned).collect(),
        )
    })
    .collect();
    assert_eq!(got, want);
    let stats = &stats[0];
    assert_eq!(stats["message_type"], "statistics");
    assert_eq!(stats["files"]["added"], 2);
    assert_eq!(stats["files"]["removed"], 2);
    assert_eq!(stats["dirs"]["added"], 1);
    assert_eq!(stats["dirs"]["removed"], 2);
    // "first version" -> "second version, longer" grew by 9; kind (31 bytes) went away
    // as a file, c.txt (3) and inside (1) came.
    assert_eq!(stats["bytes_added"], 9 + 3 + 1);
    assert_eq!(stats["bytes_removed"], 1 + 2 + 31);

    // Restricted to one path; text output.
    let text = env.ok(&["diff", &first, &second, &p("gone")]);
    assert!(text.starts_with(&format!("-    {}\n", p("gone"))), "{text}");
    assert!(
        text.contains("Files:   0 new, 2 removed, 0 changed"),
        "{text}"
    );
    let text = env.ok(&["diff", &first, &second]);
    assert!(text.contains(&format!("M    {}  (content, size, mtime)", p("edit.txt"))));
    assert!(text.contains(&format!("T    {}  (file -> dir)", p("kind"))));
    // A snapshot compared with itself has no changes.
    let same = json_lines(&env, &["diff", &first, &first]);
    assert_eq!(same.len(), 1);
}

#[test]
fn find_searches_every_snapshot() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("docs/Report.md"), b"v1");
    write(&src.join("docs/notes.txt"), b"n");
    env.init();
    let a = snapshot_id(&env.json(&["backup", src.to_str().unwrap(), "--host", "laptop"]));
    write(&src.join("photos/report.md"), b"another");
    let b = snapshot_id(&env.json(&["backup", src.to_str().unwrap(), "--host", "server"]));

    let matches = |args: &[&str]| -> Vec<(String, String)> {
        let mut all = vec!["find"];
        all.extend_from_slice(args);
        let lines = json_lines(&env, &all);
        let (found, summary) = lines.split_at(lines.len() - 1);
        assert_eq!(summary[0]["message_type"], "summary");
        assert_eq!(summary[0]["matches"], found.len());
        found
            .iter()
            .map(|m| {
                assert_eq!(m["message_type"], "match");
                for field in [
                    "short_id",
                    "snapshot_time",
                    "type",
                    "size",
                    "mtime",
                    "permissions",
                ] {
                    assert!(m.get(field).is_some(), "{field} missing: {m}");
                }
                (
                    m["snapshot"].as_str().unwrap().to_owned(),
                    m["path"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let p = |rel: &str| format!("{}/{rel}", src.display());
    assert_eq!(
        matches(&["Report.md"]),
        [
            (a.clone(), p("docs/Report.md")),
            (b.clone(), p("docs/Report.md"))
        ]
    );
    assert_eq!(
        matches(&["-i", "report.md"]),
        [
            (a.clone(), p("docs/Report.md")),
            (b.clone(), p("docs/Report.md")),
            (b.clone(), p("photos/report.md"))
        ]
    );
    assert_eq!(
        matches(&["-i", "report.md", "--host", "laptop"]),
        [(a.clone(), p("docs/Report.md"))]
    );
    assert_eq!(
        matches(&["*.txt", "photos", "--snapshot", &b[..8]]),
        [(b.clone(), p("docs/notes.txt")), (b.clone(), p("photos"))]
    );
    let anchored = format!("{}/*/*.md", src.display());
    assert_eq!(matches(&[&anchored, "--snapshot", "latest"]).len(), 2);
    assert!(matches(&["nothing-like-this"]).is_empty());

    let text = env.ok(&["find", "notes.txt"]);
    assert!(
        text.lines().next().unwrap().starts_with("snapshot"),
        "{text}"
    );
    assert!(text.contains(&format!("{}  ", &a[..8])) && text.contains(&p("docs/notes.txt")));
    let out = env.expect(1, &["find", "[unclosed"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid pattern"));
}

#[test]
fn verify_reports_missing_extra_and_changed_entries() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("keep.txt"), b"same size A");
    write(&src.join("remove.txt"), b"r");
    write(&src.join("sub/chmod.txt"), b"c");
    write(&src.join("sub/deep/file"), b"deep");
    settle();
    env.init();
    env.ok(&["backup", src.to_str().unwrap(), "--exclude", "*.tmp"]);
    let summary = json_lines(&env, &["verify", "latest", "--compare-data"]);
    assert_eq!(summary.len(), 1, "{summary:?}");
    assert_eq!(summary[0]["ok"], true);
    assert_eq!(summary[0]["files_compared"], 4);

    // Same size and times, different bytes: only --compare-data sees it.
    let keep = src.join("keep.txt");
    rewrite_keeping_mtime(&keep, b"same size B");
    env.expect(0, &["verify", "latest"]);
    let lines = json_lines_code(&env, 1, &["verify", "latest", "--compare-data"]);
    assert_eq!(lines[0]["path"], keep.to_str().unwrap());
    assert_eq!(lines[0]["status"], "changed");
    assert_eq!(lines[0]["changes"], serde_json::json!(["content"]));
    assert_eq!(lines.last().unwrap()["changed"], 1);

    fs::remove_file(src.join("remove.txt")).unwrap();
    write(&src.join("sub/extra.txt"), b"x");
    write(
        &src.join("sub/ignored.tmp"),
        b"excluded at backup, so not extra",
    );
    fs::set_permissions(src.join("sub/chmod.txt"), fs::Permissions::from_mode(0o600)).unwrap();
    let lines = json_lines_code(&env, 1, &["verify", "latest"]);
    let status: Vec<(String, String)> = lines[..lines.len() - 1]
        .iter()
        .map(|l| {
            (
                l["status"].as_str().unwrap().to_owned(),
                l["path"].as_str().unwrap().to_owned(),
            )
        })
        .filter(|(_, p)| !p.ends_with("/src") && !p.ends_with("/sub"))
        .collect();
    let p = |rel: &str| format!("{}/{rel}", src.display());
    assert_eq!(
        status,
        [
            ("missing".to_owned(), p("remove.txt")),
            ("changed".to_owned(), p("sub/chmod.txt")),
            ("extra".to_owned(), p("sub/extra.txt")),
        ]
    );
    // --path narrows the comparison to one directory.
    env.expect(
        0,
        &[
            "verify",
            "latest",
            "--path",
            src.join("sub/deep").to_str().unwrap(),
        ],
    );
    let out = env.expect(1, &["verify", "latest", "--path", &p("nowhere")]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not in snapshot"));

    // A restore checks out against its snapshot; damage to it is found.
    let target = env.path("restored");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    let t = target.to_str().unwrap();
    env.expect(0, &["verify", "latest", "--target", t, "--compare-data"]);
    let restored_file = restored(&target, &src).join("sub/deep/file");
    rewrite_keeping_mtime(&restored_file, b"DEEP");
    let out = env.expect(1, &["verify", "latest", "--target", t, "--compare-data"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "changed    {}  (content)",
            restored_file.display()
        )),
        "{text}"
    );
}

#[test]
fn verify_follows_the_backups_selection_and_paths() {
    let env = Env::new();
    let src = env.path("top/src");
    write(&src.join("keep/a.txt"), b"a");
    write(&src.join("keep/sub/b.txt"), b"b");
    write(&src.join("other/c.txt"), b"not backed up");
    write(&src.join("big.bin"), &bytes(4096, 1));
    write(&src.join("marked/.nobackup"), b"");
    write(&src.join("marked/d.txt"), b"d");
    write(
        &src.join("cache/CACHEDIR.TAG"),
        b"Signature: 8a477f597d28d172789f06886806bc55",
    );
    write(&src.join("cache/blob"), b"cached");
    std::os::unix::fs::symlink("keep/a.txt", src.join("link")).unwrap();
    // Extended attributes on a symlink need the trusted namespace (root).
    let link_xattr = xattr::set(src.join("link"), "trusted.arca", b"x").is_ok();
    let rules = env.path("rules");
    write(
        &rules,
        format!(
            "+ {}/keep\n+ {}/link\n+ {}/cache\n- {}/*\n",
            src.display(),
            src.display(),
            src.display(),
            src.display()
        )
        .as_bytes(),
    );
    settle();
    env.init();
    let s = src.to_str().unwrap();
    env.ok(&[
        "backup",
        s,
        "--exclude-from",
        rules.to_str().unwrap(),
        "--exclude-if-present",
        ".nobackup",
        "--exclude-larger-than",
        "1K",
        "--exclude-caches",
    ]);
    // Right after the backup nothing differs: what the selection left out is not extra,
    // and a symlink's extended attributes are compared like the backup recorded them.
    let top = env.path("top");
    for args in [
        vec!["verify", "latest"],
        vec!["verify", "latest", "--path", "/"],
        vec!["verify", "latest", "--path", top.to_str().unwrap()],
        vec!["verify", "latest", "--path", &format!("{s}/keep/sub")],
    ] {
        let lines = json_lines_code(&env, 0, &args);
        assert_eq!(lines.last().unwrap()["ok"], true, "{args:?}: {lines:?}");
    }
    if link_xattr {
        xattr::set(src.join("link"), "trusted.arca", b"y").unwrap();
        let lines = json_lines_code(&env, 1, &["verify", "latest"]);
        assert_eq!(
            lines[0]["changes"],
            serde_json::json!(["xattrs"]),
            "{lines:?}"
        );
        xattr::set(src.join("link"), "trusted.arca", b"x").unwrap();
    }
    // Below a source, the include rules still decide what counts as extra.
    write(&src.join("keep/sub/new.txt"), b"new");
    let lines = json_lines_code(
        &env,
        1,
        &["verify", "latest", "--path", &format!("{s}/keep/sub")],
    );
    let status: Vec<(&str, &str)> = lines[..lines.len() - 1]
        .iter()
        .map(|l| (l["status"].as_str().unwrap(), l["path"].as_str().unwrap()))
        .collect();
    let (sub, new) = (format!("{s}/keep/sub"), format!("{s}/keep/sub/new.txt"));
    assert_eq!(status, [("changed", sub.as_str()), ("extra", new.as_str())]);
    // Elsewhere, nothing in the snapshot.
    let out = env.expect(
        1,
        &[
            "verify",
            "latest",
            "--path",
            env.path("elsewhere").to_str().unwrap(),
        ],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not in snapshot"));
    // A restore target without the source: reported missing, not an error.
    let empty = env.path("empty-target");
    fs::create_dir(&empty).unwrap();
    let lines = json_lines_code(
        &env,
        1,
        &["verify", "latest", "--target", empty.to_str().unwrap()],
    );
    assert_eq!(lines[0]["status"], "missing");
    assert_eq!(lines[0]["path"], s);
}

/// Small files are bundled, so a file read again lands in a new bundle even when its
/// bytes did not change: `diff` compares the bytes, and reports only what changed.
#[test]
fn diff_compares_bundled_files_by_their_bytes() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("touched.txt"), b"same bytes, new mtime");
    write(&src.join("rewritten.txt"), b"version A");
    write(&src.join("still.txt"), b"not touched");
    settle();
    env.init();
    let first = snapshot_id(&env.backup(&[&src]));
    let touched = src.join("touched.txt");
    let mtime = filetime::FileTime::from_unix_time(1_600_000_000, 0);
    filetime::set_file_mtime(&touched, mtime).unwrap();
    let rewritten = src.join("rewritten.txt");
    rewrite_keeping_mtime(&rewritten, b"version B");
    let second = snapshot_id(&env.backup(&[&src]));

    let lines = json_lines(&env, &["diff", &first, &second]);
    // Only what lies below the source (see diff_lists_every_change_with_what_changed).
    let below = format!("{}/", src.display());
    let changes: Vec<(String, String, Value)> = lines[..lines.len() - 1]
        .iter()
        .filter(|c| c["path"].as_str().unwrap().starts_with(&below))
        .map(|c| {
            (
                c["modifier"].as_str().unwrap().to_owned(),
                c["path"].as_str().unwrap().to_owned(),
                c["changes"].clone(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            (
                "M".to_owned(),
                rewritten.to_str().unwrap().to_owned(),
                serde_json::json!(["content"])
            ),
            (
                "U".to_owned(),
                touched.to_str().unwrap().to_owned(),
                serde_json::json!(["mtime"])
            ),
        ]
    );
}
