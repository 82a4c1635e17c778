//! Backup and restore through the `arca` binary, compared byte for byte and attribute
//! for attribute with the source.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;

use common::*;

#[test]
fn init_backup_modify_backup_restore_both() {
    let env = Env::new();
    let src = env.path("src");
    make_tree(&src);
    settle();
    env.init();

    let before = manifest(&src);
    let first = env.backup(&[&src]);
    assert_eq!(first["files_new"], 9);
    assert_eq!(first["files_unchanged"], 0);
    assert_eq!(first["errors"], 0);
    assert_eq!(first["partial"], false);
    let snap1 = first["snapshot_id"].as_str().unwrap().to_owned();

    // Change one file, append to another, add one, delete one.
    write(&src.join("hello.txt"), b"hello, changed world\n");
    let mut report = fs::read(src.join("docs/report.md")).unwrap();
    report.extend_from_slice(b"appended line\n");
    write(&src.join("docs/report.md"), &report);
    write(&src.join("new/file.txt"), b"brand new");
    fs::remove_file(src.join("empty")).unwrap();
    let after = manifest(&src);

    let second = env.backup(&[&src]);
    assert_eq!(second["parent"], snap1.as_str());
    assert_eq!(second["files_new"], 1);
    assert_eq!(second["files_changed"], 2);
    assert_eq!(second["files_unchanged"], 6);
    // Only the two changed files and the new one were read.
    let read_expected =
        (b"hello, changed world\n".len() + report.len() + b"brand new".len()) as u64;
    assert_eq!(second["bytes_read"], read_expected);
    let snap2 = second["snapshot_id"].as_str().unwrap().to_owned();

    let out1 = env.path("out1");
    env.ok(&["restore", &snap1, "--target", out1.to_str().unwrap()]);
    assert_same(&before, &manifest(&restored(&out1, &src)));

    let out2 = env.path("out2");
    env.ok(&["restore", &snap2[..10], "--target", out2.to_str().unwrap()]);
    assert_same(&after, &manifest(&restored(&out2, &src)));

    env.ok(&["check", "--read-data"]);
}

#[test]
fn unchanged_rebackup_reads_nothing_and_stores_nothing() {
    let env = Env::new();
    let src = env.path("src");
    make_tree(&src);
    settle();
    env.init();
    let first = env.backup(&[&src]);
    let second = env.backup(&[&src]);
    assert_eq!(second["files_unchanged"], first["files_new"]);
    assert_eq!(second["files_new"], 0);
    assert_eq!(second["files_changed"], 0);
    assert_eq!(second["bytes_read"], 0);
    assert_eq!(second["data_blobs_added"], 0);
    // Directory listings did not change either: no tree of the backed-up directories
    // was stored again. (The root tree records the directories above the source; it
    // changes when other tests create files in the system's temporary directory.)
    assert!(
        second["tree_blobs_added"].as_u64().unwrap() <= 1,
        "{second}"
    );
    assert_eq!(second["dirs_changed"], 0);
    // Nothing stored but that root tree, if it changed.
    if second["tree_blobs_added"] == 0 {
        assert_eq!(second["bytes_deduplicated"], 0, "{second}");
    } else {
        assert!(
            second["bytes_deduplicated"].as_u64().unwrap() < 4096,
            "{second}"
        );
    }
    assert_eq!(second["bytes_original"], first["bytes_original"]);
}

/// Files changed less than a second before a backup started are read again by the next
/// backup even if their metadata did not change: a write during the read may have left
/// size and timestamps as they were (timestamps advance in coarse ticks).
#[test]
fn recently_changed_files_are_not_trusted_as_unchanged() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("fresh.txt"), b"just written");
    env.init();
    env.backup(&[&src]);
    let second = env.backup(&[&src]);
    assert_eq!(
        second["files_unchanged"], 0,
        "a file changed just before the parent backup was trusted"
    );
    assert_eq!(second["bytes_read"], 12);
    settle();
    env.backup(&[&src]);
    let fourth = env.backup(&[&src]);
    assert_eq!(fourth["files_unchanged"], 1);
    assert_eq!(fourth["bytes_read"], 0);
}

/// A file whose content equals an encoded tree (here: an empty directory's) is a data
/// blob with the same id as that tree blob; the two must not be confused.
#[test]
fn a_file_that_looks_like_a_tree() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("imposter"), &[1, 0, 0]);
    std::fs::create_dir_all(src.join("empty1/empty2")).unwrap();
    env.init();
    env.backup(&[&src]);
    // Again with the tree already stored first.
    let src2 = env.path("src2");
    std::fs::create_dir_all(src2.join("empty")).unwrap();
    env.backup(&[&src2]);
    write(&src2.join("imposter"), &[1, 0, 0]);
    env.backup(&[&src2]);
    for (dir, snap) in [(&src, 0usize), (&src2, 2)] {
        let id = env.json(&["snapshots"])[snap]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let out = env.path(&format!("out{snap}"));
        env.ok(&["restore", &id, "--target", out.to_str().unwrap()]);
        assert_eq!(
            std::fs::read(restored(&out, dir).join("imposter")).unwrap(),
            [1, 0, 0]
        );
    }
    assert!(
        restored(&env.path("out0"), &src)
            .join("empty1/empty2")
            .is_dir()
    );
    env.ok(&["check", "--read-data"]);
}

#[test]
fn a_changed_file_stores_only_its_new_chunks() {
    let env = Env::new();
    let src = env.path("src");
    let mut data = bytes(8 * 1024 * 1024, 7);
    write(&src.join("big"), &data);
    env.init();
    let first = env.backup(&[&src]);
    let chunks = first["chunks_total"].as_u64().unwrap();
    assert!(chunks >= 8, "8 MiB in {chunks} chunks");
    // Insert one byte near the middle: only the chunks around it change.
    data.insert(4 * 1024 * 1024, 0x42);
    write(&src.join("big"), &data);
    let second = env.backup(&[&src]);
    assert_eq!(second["files_changed"], 1);
    let added = second["data_blobs_added"].as_u64().unwrap();
    assert!(
        (1..=3).contains(&added),
        "{added} new chunks for a one-byte insertion"
    );
    assert!(second["bytes_added_raw"].as_u64().unwrap() < 3 * 1024 * 1024);
    let out = env.path("out");
    env.ok(&["restore", "latest", "--target", out.to_str().unwrap()]);
    assert_eq!(fs::read(restored(&out, &src).join("big")).unwrap(), data);
}

#[test]
fn several_paths_and_nested_paths() {
    let env = Env::new();
    let a = env.path("a");
    let b = env.path("b");
    write(&a.join("x"), b"x");
    write(&a.join("inner/y"), b"y");
    write(&b.join("z"), b"z");
    env.init();
    let inner = a.join("inner");
    let s = env.backup(&[&b, &a, &inner]);
    // The nested path is part of `a` and stored once.
    assert_eq!(s["files_new"], 3);
    assert_eq!(s["paths"].as_array().unwrap().len(), 2);
    let listing = env.ok(&["ls", "latest"]);
    for p in [&a.join("x"), &inner.join("y"), &b.join("z")] {
        assert!(
            listing.lines().any(|l| l == p.to_str().unwrap()),
            "{} not in\n{listing}",
            p.display()
        );
    }
    // Backing up a single file works too.
    let s = env.backup(&[&a.join("x")]);
    assert_eq!(s["files_new"], 1);
}

#[test]
fn excludes_and_exclude_files() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("keep.txt"), b"k");
    write(&src.join("skip.tmp"), b"s");
    write(&src.join("a/.cache/blob"), b"c");
    write(&src.join("a/node_modules/m.js"), b"m");
    write(&src.join("a/b/keep.rs"), b"k");
    write(&src.join("var/lib/mysql/db"), b"d");
    let ex = env.path("excludes");
    write(
        &ex,
        format!(
            "# comment\n- **/node_modules\n{}/var/lib/mysql\n",
            src.display()
        )
        .as_bytes(),
    );
    env.init();
    let s = env.json(&[
        "backup",
        src.to_str().unwrap(),
        "--exclude",
        "*.tmp",
        "--exclude",
        "**/.cache",
        "--exclude-from",
        ex.to_str().unwrap(),
    ]);
    assert_eq!(s["files_new"], 2);
    let listing = env.ok(&["ls", "latest"]);
    for gone in ["skip.tmp", ".cache", "node_modules", "mysql"] {
        assert!(
            !listing.contains(gone),
            "{gone} was not excluded:\n{listing}"
        );
    }
    assert!(listing.contains("keep.rs"));
    // A bad pattern is a clear usage error.
    let out = env.expect(1, &["backup", src.to_str().unwrap(), "--exclude", "a["]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("a["));
}

#[test]
fn restore_include_and_exclude() {
    let env = Env::new();
    let src = env.path("src");
    make_tree(&src);
    env.init();
    env.backup(&[&src]);
    let out = env.path("out");
    let docs = format!("{}/docs", src.display());
    env.ok(&[
        "restore",
        "latest",
        "--target",
        out.to_str().unwrap(),
        "--include",
        &docs,
        "--exclude",
        "*.bin",
    ]);
    let got = manifest(&restored(&out, &src));
    let names: Vec<String> = got.keys().map(|p| p.display().to_string()).collect();
    assert!(names.contains(&"docs/report.md".to_owned()), "{names:?}");
    assert!(!names.iter().any(|n| n.ends_with(".bin")), "{names:?}");
    assert!(!names.contains(&"hello.txt".to_owned()), "{names:?}");
    assert_eq!(
        fs::read(restored(&out, &src).join("docs/report.md")).unwrap(),
        fs::read(src.join("docs/report.md")).unwrap()
    );
}

/// Extended attributes (user namespace: settable unprivileged on ext4, tmpfs, xfs, btrfs)
/// and FIFOs round-trip; the FIFO is recreated, never opened for reading by the backup.
#[test]
fn xattrs_and_fifos_round_trip() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("tagged.txt"), b"with attributes");
    if let Err(e) = xattr::set(src.join("tagged.txt"), "user.arca.comment", b"hello xattr") {
        eprintln!("skipping: this filesystem does not take user xattrs ({e})");
        return;
    }
    xattr::set(src.join("tagged.txt"), "user.arca.binary", &[0, 1, 2, 255]).unwrap();
    nix::unistd::mkfifo(
        &src.join("pipe"),
        nix::sys::stat::Mode::from_bits_truncate(0o640),
    )
    .unwrap();
    settle();
    env.init();
    let s = env.backup(&[&src]);
    assert_eq!(s["other_entries"], 1);
    let out = env.path("out");
    env.ok(&["restore", "latest", "--target", out.to_str().unwrap()]);
    let file = restored(&out, &src).join("tagged.txt");
    assert_eq!(
        xattr::get(&file, "user.arca.comment").unwrap().unwrap(),
        b"hello xattr"
    );
    assert_eq!(
        xattr::get(&file, "user.arca.binary").unwrap().unwrap(),
        [0, 1, 2, 255]
    );
    let pipe = std::fs::symlink_metadata(restored(&out, &src).join("pipe")).unwrap();
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    assert!(pipe.file_type().is_fifo());
    assert_eq!(pipe.permissions().mode() & 0o777, 0o640);

    // An unchanged file keeps its attributes without their being listed again; a changed
    // attribute changes the change time, and the next backup reads it.
    let restored_comment = |name: &str| {
        let out = env.path(name);
        env.ok(&["restore", "latest", "--target", out.to_str().unwrap()]);
        xattr::get(restored(&out, &src).join("tagged.txt"), "user.arca.comment").unwrap()
    };
    assert_eq!(env.backup(&[&src])["files_unchanged"], 1);
    assert_eq!(restored_comment("out2").unwrap(), b"hello xattr");
    xattr::set(src.join("tagged.txt"), "user.arca.comment", b"changed").unwrap();
    env.backup(&[&src]);
    assert_eq!(restored_comment("out3").unwrap(), b"changed");
    xattr::remove(src.join("tagged.txt"), "user.arca.comment").unwrap();
    env.backup(&[&src]);
    assert_eq!(restored_comment("out4"), None);
}

#[test]
fn zero_runs_are_restored_sparse() {
    let env = Env::new();
    let src = env.path("src");
    let mut data = vec![0u8; 8 * 1024 * 1024];
    data[..4096].copy_from_slice(&bytes(4096, 3));
    write(&src.join("sparse"), &data);
    env.init();
    env.backup(&[&src]);
    let out = env.path("out");
    env.ok(&["restore", "latest", "--target", out.to_str().unwrap()]);
    let file = restored(&out, &src).join("sparse");
    assert_eq!(fs::read(&file).unwrap(), data);
    let m = fs::metadata(&file).unwrap();
    // Allocated blocks (512 B each) far below the 8 MiB logical size.
    assert!(
        m.blocks() * 512 < 4 * 1024 * 1024,
        "{} bytes allocated",
        m.blocks() * 512
    );
}

#[test]
fn snapshots_ls_and_selection() {
    let env = Env::new();
    let src = env.path("src");
    make_tree(&src);
    env.init();
    let a = env.json(&[
        "backup",
        src.to_str().unwrap(),
        "--tag",
        "daily,home",
        "--host",
        "box1",
    ]);
    let b = env.backup(&[&src]);
    let list = env.json(&["snapshots"]);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["id"], a["snapshot_id"]);
    assert_eq!(list[0]["host"], "box1");
    assert_eq!(list[0]["tags"], serde_json::json!(["daily", "home"]));
    assert_eq!(list[1]["id"], b["snapshot_id"]);
    for field in [
        "short_id", "time", "paths", "size", "tree", "username", "partial",
    ] {
        assert!(
            list[0].get(field).is_some(),
            "snapshots --json lacks {field}"
        );
    }
    let text = env.ok(&["snapshots"]);
    assert!(
        text.contains(a["short_id"].as_str().unwrap())
            && text.contains(a["snapshot_id"].as_str().unwrap())
    );

    // ls: plain, long and JSON lines, from a path inside the snapshot.
    let docs = src.join("docs");
    let plain = env.ok(&["ls", "latest", docs.to_str().unwrap()]);
    assert_eq!(plain.lines().next().unwrap(), docs.to_str().unwrap());
    assert!(
        plain
            .lines()
            .any(|l| l.ends_with("docs/deep/er/still/file.bin"))
    );
    let long = env.ok(&["ls", "latest", src.to_str().unwrap(), "-l"]);
    assert!(
        long.lines()
            .any(|l| l.starts_with("-rwsr-xr-x") && l.ends_with("bin/tool")),
        "{long}"
    );
    assert!(
        long.lines()
            .any(|l| l.starts_with('l') && l.ends_with("link -> hello.txt")),
        "{long}"
    );
    let json = env.ok(&["ls", "latest", "--json"]);
    let entries: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let hello = entries
        .iter()
        .find(|e| e["path"].as_str().unwrap().ends_with("/hello.txt"))
        .unwrap();
    assert_eq!(hello["type"], "file");
    assert_eq!(hello["size"], 13);
    // RFC 3339 with nanoseconds (the offset is the machine's at backup time).
    assert!(
        hello["mtime"].as_str().unwrap().contains(":00.123456789"),
        "{}",
        hello["mtime"]
    );

    // Selection by prefix, by full id, by "latest"; errors are clear.
    let short = &a["snapshot_id"].as_str().unwrap()[..8];
    env.ok(&["ls", short]);
    env.ok(&["ls", a["snapshot_id"].as_str().unwrap()]);
    let out = env.expect(1, &["ls", "ffffffffffff"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no snapshot matches"));
    let out = env.expect(1, &["ls", "not-an-id"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid snapshot"));
    let out = env.expect(1, &["ls", "latest", "/no/such/path"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/path"));
}

#[test]
fn a_closed_stdout_is_not_an_error() {
    let env = Env::new();
    let src = env.path("src");
    for i in 0..3000 {
        write(&src.join(format!("f{i:05}")), b"x");
    }
    env.init();
    env.backup(&[&src]);
    let mut child = env
        .cmd()
        .args(["ls", "latest"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 16];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    drop(stdout);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}
