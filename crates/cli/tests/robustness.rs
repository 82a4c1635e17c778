//! Trees that break naive backup tools round-trip through the `arca` binary: depth
//! 1,000 with paths far beyond PATH_MAX, 255-byte names, 100,000 entries in one
//! directory, files of exactly chunk-boundary sizes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;

use common::*;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{Mode, mkdirat};

const DEPTH: usize = 1000;

fn level_name(i: usize) -> String {
    format!("level-{i:04}-{}", "x".repeat(12))
}

fn open_dir(dir: &OwnedFd, name: &str) -> OwnedFd {
    openat(
        dir,
        OsStr::new(name),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW,
        Mode::empty(),
    )
    .unwrap()
}

/// Builds `root/level-0000-…/level-0001-…/…` DEPTH levels deep (about 22 KB of path),
/// with a file at the bottom and one halfway, using descriptors (path-based calls fail
/// beyond 4096 bytes).
fn make_deep(root: &std::path::Path) {
    make_deep_to(root, DEPTH, level_name);
}

/// Builds `depth` levels named by `name`.
fn make_deep_to(root: &std::path::Path, depth: usize, name: fn(usize) -> String) {
    fs::create_dir_all(root).unwrap();
    let mut dir: OwnedFd = std::fs::File::open(root).unwrap().into();
    for i in 0..depth {
        let name = name(i);
        mkdirat(&dir, OsStr::new(&name), Mode::from_bits_truncate(0o755)).unwrap();
        dir = open_dir(&dir, &name);
        if i == depth / 2 || i == depth - 1 {
            let fd = openat(
                &dir,
                OsStr::new("file.txt"),
                OFlag::O_WRONLY | OFlag::O_CREAT,
                Mode::from_bits_truncate(0o644),
            )
            .unwrap();
            std::fs::File::from(fd)
                .write_all(format!("at depth {i}").as_bytes())
                .unwrap();
        }
        if i == depth - 1 {
            nix::unistd::symlinkat("file.txt", &dir, "link").unwrap();
        }
    }
}

/// Rewrites the file at the bottom of a tree from `make_deep_to`.
fn touch_bottom(root: &std::path::Path, depth: usize, name: fn(usize) -> String) {
    let mut dir: OwnedFd = std::fs::File::open(root).unwrap().into();
    for i in 0..depth {
        dir = open_dir(&dir, &name(i));
    }
    let fd = openat(
        &dir,
        OsStr::new("file.txt"),
        OFlag::O_WRONLY | OFlag::O_TRUNC,
        Mode::empty(),
    )
    .unwrap();
    std::fs::File::from(fd)
        .write_all(b"changed at the bottom")
        .unwrap();
}

/// Walks the copy down through its levels, checking names and the two files.
fn check_deep(root: &std::path::Path) {
    let mut dir: OwnedFd = std::fs::File::open(root).unwrap().into();
    for i in 0..DEPTH {
        dir = open_dir(&dir, &level_name(i));
        if i == DEPTH / 2 || i == DEPTH - 1 {
            let fd = openat(&dir, OsStr::new("file.txt"), OFlag::O_RDONLY, Mode::empty()).unwrap();
            let mut s = String::new();
            std::fs::File::from(fd).read_to_string(&mut s).unwrap();
            assert_eq!(s, format!("at depth {i}"));
        }
    }
}

#[test]
fn a_thousand_levels_deep_and_long_names() {
    let env = Env::new();
    let src = env.path("src");
    make_deep(&src.join("deep"));
    let long = "n".repeat(255);
    write(&src.join(&long), b"a 255-byte name");
    write(
        &src.join(OsStr::from_bytes(&[b'\xff'; 200])),
        b"not UTF-8 either",
    );
    env.init();
    let s = env.backup(&[&src]);
    assert_eq!(s["errors"], 0, "{s}");
    assert_eq!(s["files_new"], 4);
    assert_eq!(
        s["dirs_new"].as_u64().unwrap() as usize,
        DEPTH + 1 + src.components().count() - 1
    );
    let out = env.path("out");
    env.ok(&["restore", "latest", "--target", out.to_str().unwrap()]);
    let root = restored(&out, &src);
    check_deep(&root.join("deep"));
    assert_eq!(fs::read(root.join(&long)).unwrap(), b"a 255-byte name");
    assert_eq!(
        fs::read(root.join(OsStr::from_bytes(&[b'\xff'; 200]))).unwrap(),
        b"not UTF-8 either"
    );
    // ls reaches the bottom too.
    let listing = env.ok(&["ls", "latest"]);
    assert!(
        listing
            .lines()
            .any(|l| l.contains(&level_name(DEPTH - 1)) && l.ends_with("file.txt"))
    );
    env.ok(&["check", "--read-data"]);
}

#[test]
fn a_hundred_thousand_files_in_one_directory() {
    let env = Env::new();
    let src = env.path("src");
    let many = src.join("many");
    fs::create_dir_all(&many).unwrap();
    for i in 0..100_000u32 {
        fs::write(
            many.join(format!("f{i:06}")),
            if i % 1000 == 0 {
                i.to_le_bytes().to_vec()
            } else {
                Vec::new()
            },
        )
        .unwrap();
    }
    env.init();
    let s = env.backup(&[&src]);
    assert_eq!(s["files_new"], 100_000);
    assert_eq!(s["errors"], 0);
    let out = env.path("out");
    env.ok(&["restore", "latest", "--target", out.to_str().unwrap()]);
    let copy = restored(&out, &src).join("many");
    assert_eq!(fs::read_dir(&copy).unwrap().count(), 100_000);
    for i in (0..100_000u32).step_by(997) {
        let want = if i % 1000 == 0 {
            i.to_le_bytes().to_vec()
        } else {
            Vec::new()
        };
        assert_eq!(fs::read(copy.join(format!("f{i:06}"))).unwrap(), want);
    }
}

#[test]
fn files_of_exactly_chunk_boundary_sizes() {
    let env = Env::new();
    let src = env.path("src");
    let (min, avg, max) = (64 << 10, 256 << 10, 1 << 20);
    let sizes = [
        0,
        1,
        min - 1,
        min,
        min + 1,
        avg,
        max - 1,
        max,
        max + 1,
        2 * max,
        3 * max + 7,
    ];
    for (i, size) in sizes.iter().enumerate() {
        write(
            &src.join(format!("random-{size}")),
            &bytes(*size, i as u64 + 1),
        );
        write(&src.join(format!("zeros-{size}")), &vec![0u8; *size]);
    }
    env.init();
    let s = env.backup(&[&src]);
    assert_eq!(s["files_new"].as_u64().unwrap() as usize, 2 * sizes.len());
    let out = env.path("out");
    env.ok(&[
        "restore",
        "latest",
        "--target",
        out.to_str().unwrap(),
        "--verify",
    ]);
    assert_same(&manifest(&src), &manifest(&restored(&out, &src)));
}

#[test]
fn deep_trees_back_up_incrementally() {
    let env = Env::new();
    let src = env.path("src");
    make_deep(&src.join("deep"));
    settle();
    env.init();
    // Within 64 open files, with the estimate scanner on (`--json`): the walker and the
    // scanner hold a descriptor only for levels with something left to walk, and the
    // archiver keeps only the directories it reads files in (here levels 500 and 999),
    // not the ones it passes through to open them.
    let backup = || {
        let out = env.ok_with_64_open_files(&["backup", src.to_str().unwrap(), "--json"]);
        let summary = json_of(&String::from_utf8(out.stdout).unwrap());
        assert_eq!(summary["errors"], 0, "{summary}");
        summary
    };
    let first = backup();
    assert_eq!(first["files_new"], 2, "{first}");
    // An unchanged backup opens no directory to read from (the walker reads symlinks
    // too).
    let again = backup();
    assert_eq!(again["files_unchanged"], 2);
    assert_eq!(again["bytes_read"], 0);
    assert_eq!(again["dirs_changed"], 0);
    // At most the root tree, which records the directories above the source (their
    // times change as other tests use the temporary directory).
    assert!(again["tree_blobs_added"].as_u64().unwrap() <= 1, "{again}");
    // The file at the bottom changed: read through 1,000 levels, one kept open.
    touch_bottom(&src.join("deep"), DEPTH, level_name);
    let changed = backup();
    assert_eq!(changed["files_changed"], 1, "{changed}");
}

/// diff, find and verify walk trees far deeper than recursion would survive (each
/// directory level is a loop iteration, not a stack frame).
#[test]
fn ten_thousand_levels_for_diff_find_and_verify() {
    const VERY_DEEP: usize = 10_000;
    // One-letter names keep paths (which grow with depth) short enough for a quick test.
    let short = |_| "d".to_owned();
    let env = Env::new();
    let src = env.path("src");
    make_deep_to(&src, VERY_DEEP, short);
    settle();
    env.init();
    let first = env.backup(&[&src])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ok = env.json(&["verify", "latest", "--compare-data"]);
    assert_eq!(ok["ok"], true, "{ok}");
    assert_eq!(ok["files_compared"], 2);
    touch_bottom(&src, VERY_DEEP, short);
    let out = env.run(&["verify", "latest", "--compare-data", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("\"status\":\"changed\""),
        "{}",
        &text[..text.len().min(500)]
    );
    env.backup(&[&src]);
    let diff = env.ok(&["diff", &first, "latest"]);
    assert!(
        diff.lines()
            .any(|l| l.starts_with("M ") && l.ends_with("/file.txt  (content, size, mtime)")),
        "{}",
        &diff[diff.len().saturating_sub(500)..]
    );
    let found = env.ok(&["find", "file.txt"]);
    assert_eq!(found.lines().count(), 1 + 4, "{found}");
}
