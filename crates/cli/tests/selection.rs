//! What a backup selects, through the `arca` binary: excludes with and without case,
//! Duplicity-style +/- filter files, caches, marker files, size limits, file lists and
//! file system boundaries.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;

use common::*;

/// The paths of the latest snapshot, relative to `src`.
fn listed(env: &Env, src: &std::path::Path) -> BTreeSet<String> {
    env.ok(&["ls", "latest"])
        .lines()
        .filter_map(|l| {
            l.strip_prefix(&format!("{}/", src.display()))
                .map(str::to_owned)
        })
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn exclude_and_case_insensitive_exclude() {
    let env = Env::new();
    let src = env.path("src");
    for f in [
        "keep.txt",
        "UPPER.TMP",
        "lower.tmp",
        "Photo.JPG",
        "photo.jpg",
        "dir/.cache/x",
        "dir/y",
    ] {
        write(&src.join(f), b"x");
    }
    env.init();
    env.ok(&[
        "backup",
        src.to_str().unwrap(),
        "--exclude",
        "*.tmp",
        "--iexclude",
        "*.jpg",
        "--exclude",
        "**/.cache",
    ]);
    assert_eq!(
        listed(&env, &src),
        set(&["UPPER.TMP", "dir", "dir/y", "keep.txt"])
    );
}

#[test]
fn duplicity_filelists_first_match_wins() {
    let env = Env::new();
    let src = env.path("src");
    for f in [
        "docs/a.txt",
        "docs/tmp/scratch",
        "docs/sub/b.txt",
        "music/song.mp3",
        "notes.txt",
        "etc/app.conf",
        "etc/app.log",
    ] {
        write(&src.join(f), b"x");
    }
    let rules = env.path("filelist");
    let s = src.display();
    write(
        &rules,
        format!("# what to keep\n- {s}/docs/tmp\n+ {s}/docs\n+ {s}/etc/*.conf\n- **\n").as_bytes(),
    );
    env.init();
    env.ok(&[
        "backup",
        src.to_str().unwrap(),
        "--exclude-from",
        rules.to_str().unwrap(),
    ]);
    assert_eq!(
        listed(&env, &src),
        set(&[
            "docs",
            "docs/a.txt",
            "docs/sub",
            "docs/sub/b.txt",
            "etc",
            "etc/app.conf"
        ])
    );
    // The rules are recorded in the snapshot.
    let list = env.json(&["snapshots"]);
    assert!(list[0]["id"].is_string());
}

#[test]
fn caches_markers_and_size_limits() {
    let env = Env::new();
    let src = env.path("src");
    write(
        &src.join("cache/CACHEDIR.TAG"),
        b"Signature: 8a477f597d28d172789f06886806bc55\n# a cache\n",
    );
    write(&src.join("cache/blob"), b"cached");
    write(&src.join("fake-cache/CACHEDIR.TAG"), b"not a real tag");
    write(&src.join("fake-cache/blob"), b"kept");
    write(&src.join("private/.nobackup"), b"");
    write(&src.join("private/secret"), b"s");
    write(&src.join("big.iso"), &vec![7u8; 300_000]);
    write(&src.join("small.txt"), b"s");
    env.init();
    let s = env.json(&[
        "backup",
        src.to_str().unwrap(),
        "--exclude-caches",
        "--exclude-if-present",
        ".nobackup",
        "--exclude-larger-than",
        "200K",
    ]);
    assert_eq!(s["errors"], 0);
    assert_eq!(
        listed(&env, &src),
        set(&[
            "cache",
            "cache/CACHEDIR.TAG",
            "fake-cache",
            "fake-cache/CACHEDIR.TAG",
            "fake-cache/blob",
            "small.txt"
        ])
    );
    let out = env.expect(
        1,
        &[
            "backup",
            src.to_str().unwrap(),
            "--exclude-larger-than",
            "huge",
        ],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("huge"));
}

#[test]
fn files_from_lists_paths() {
    let env = Env::new();
    let a = env.path("a");
    let b = env.path("b");
    write(&a.join("x"), b"x");
    write(&b.join("y"), b"y");
    write(&env.path("c/z"), b"z");
    let list = env.path("paths");
    write(
        &list,
        format!("# sources\n{}\n\n{}\n", a.display(), b.display()).as_bytes(),
    );
    env.init();
    let s = env.json(&["backup", "--files-from", list.to_str().unwrap()]);
    assert_eq!(s["files_new"], 2);
    assert_eq!(s["paths"].as_array().unwrap().len(), 2);
    let out = env.expect(1, &["backup", "--files-from", "/no/such/list"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/list"));
}

#[test]
fn one_file_system_stays_on_the_source_file_system() {
    // /proc and /dev are other file systems on every Linux machine.
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("f"), b"x");
    env.init();
    // A source tree containing a mount point: the root file system's view of /dev
    // through a bind of the machine's root is not available unprivileged, so use the
    // real root with everything but /dev excluded.
    let root_dev = std::fs::metadata("/").unwrap();
    let dev_dev = std::fs::metadata("/dev").unwrap();
    use std::os::unix::fs::MetadataExt;
    if root_dev.dev() == dev_dev.dev() {
        eprintln!("/dev is not a separate file system here; skipping");
        return;
    }
    let s = env.json(&["backup", "/", "--one-file-system", "--exclude-from", &{
        let rules = env.path("rules");
        write(&rules, b"+ /dev\n- /*\n");
        rules.to_str().unwrap().to_owned()
    }]);
    assert_eq!(s["errors"], 0, "{s}");
    let listing = env.ok(&["ls", "latest"]);
    assert!(listing.lines().any(|l| l == "/dev"), "{listing}");
    assert!(
        !listing.lines().any(|l| l.starts_with("/dev/")),
        "descended into /dev:\n{listing}"
    );
}
