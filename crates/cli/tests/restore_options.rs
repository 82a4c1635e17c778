//! Restore options through the `arca` binary: a single file or directory to a chosen
//! path, overwrite modes and resuming, --delete, --verify, --dry-run, hard links,
//! sparse or not, owners by name or number, and safety against symlinks in the target.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;

use common::*;

fn setup() -> (Env, std::path::PathBuf) {
    let env = Env::new();
    let src = env.path("src");
    make_tree(&src);
    env.init();
    env.backup(&[&src]);
    (env, src)
}

#[test]
fn one_file_or_one_directory_to_a_chosen_path() {
    let (env, src) = setup();
    let file = src.join("docs/report.md");
    let dest = env.path("elsewhere/report-restored.md");
    env.ok(&[
        "restore",
        "latest",
        "--file-to-restore",
        file.to_str().unwrap(),
        "--target",
        dest.to_str().unwrap(),
    ]);
    assert_eq!(fs::read(&dest).unwrap(), read_noatime(&file));
    assert_eq!(
        fs::metadata(&dest).unwrap().mtime(),
        fs::metadata(&file).unwrap().mtime()
    );

    let dir = src.join("docs");
    let dest = env.path("docs-copy");
    env.ok(&[
        "restore",
        "latest",
        "--file-to-restore",
        dir.to_str().unwrap(),
        "--target",
        dest.to_str().unwrap(),
    ]);
    assert_same(&manifest(&dir), &manifest(&dest));
    assert_eq!(
        fs::metadata(&dest).unwrap().mtime(),
        fs::metadata(&dir).unwrap().mtime()
    );

    let out = env.expect(
        1,
        &[
            "restore",
            "latest",
            "--file-to-restore",
            "/no/such/file",
            "--target",
            "/tmp/x",
        ],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/file"));
}

#[test]
fn overwrite_modes_and_resume() {
    let (env, src) = setup();
    let out = env.path("out");
    let t = out.to_str().unwrap();
    env.ok(&["restore", "latest", "--target", t]);
    let hello = restored(&out, &src).join("hello.txt");
    let big = restored(&out, &src).join("data/big.bin");

    // A rerun rewrites nothing: every file is already correct (the resume case).
    let again = env.json(&["restore", "latest", "--target", t]);
    assert_eq!(again["files"], 0);
    assert_eq!(again["files_skipped"], 9);

    // A damaged file of the same size is detected and rewritten; a changed size too.
    let mut data = fs::read(&big).unwrap();
    data[1000] ^= 1;
    fs::write(&big, &data).unwrap();
    fs::write(&hello, b"changed locally").unwrap();
    let fixed = env.json(&["restore", "latest", "--target", t]);
    assert_eq!(fixed["files"], 2);
    assert_same(&manifest(&src), &manifest(&restored(&out, &src)));

    // never: local changes survive.
    fs::write(&hello, b"mine").unwrap();
    env.ok(&["restore", "latest", "--target", t, "--overwrite", "never"]);
    assert_eq!(fs::read(&hello).unwrap(), b"mine");
    // if-newer: the local file is newer than the snapshot's, so it stays.
    env.ok(&[
        "restore",
        "latest",
        "--target",
        t,
        "--overwrite",
        "if-newer",
    ]);
    assert_eq!(fs::read(&hello).unwrap(), b"mine");
    // always: replaced.
    env.ok(&["restore", "latest", "--target", t, "--overwrite", "always"]);
    assert_eq!(fs::read(&hello).unwrap(), b"hello, world\n");
    // A bad mode is a usage error.
    let out = env.expect(
        2,
        &[
            "restore",
            "latest",
            "--target",
            t,
            "--overwrite",
            "sometimes",
        ],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("sometimes"));
}

#[test]
fn delete_verify_and_dry_run() {
    let (env, src) = setup();
    let out = env.path("out");
    let t = out.to_str().unwrap();
    // A dry run writes nothing and says what it would do.
    let dry = env.json(&["restore", "latest", "--target", t, "--dry-run"]);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["files"], 9);
    assert!(!out.exists(), "a dry run created the target");

    env.ok(&["restore", "latest", "--target", t]);
    let root = restored(&out, &src);
    write(&root.join("extra.txt"), b"not in the snapshot");
    write(&root.join("docs/extra-dir/x"), b"nor this");
    // The target mirrors the snapshot from its root: this is extra too.
    let at_root = out.join("outside.txt");
    write(&at_root, b"not in the snapshot either");
    let deleted = env.json(&["restore", "latest", "--target", t, "--delete", "--verify"]);
    assert_eq!(deleted["deleted"], 3, "{deleted}");
    assert!(!root.join("extra.txt").exists());
    assert!(!root.join("docs/extra-dir").exists());
    assert!(!at_root.exists());
    assert_eq!(deleted["files_verified"], 9);
    assert_same(&manifest(&src), &manifest(&root));
}

#[test]
fn hard_links_are_stored_once_and_restored_as_links() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("a/original"), &bytes(500_000, 5));
    fs::create_dir_all(src.join("b")).unwrap();
    fs::hard_link(src.join("a/original"), src.join("a/second")).unwrap();
    fs::hard_link(src.join("a/original"), src.join("b/third")).unwrap();
    env.init();
    let s = env.backup(&[&src]);
    assert_eq!(s["bytes_original"], 1_500_000);
    assert_eq!(
        s["bytes_read"], 500_000,
        "a hard-linked file was read more than once"
    );
    assert!(s["bytes_added_raw"].as_u64().unwrap() < 600_000, "{s}");
    let out = env.path("out");
    let r = env.json(&["restore", "latest", "--target", out.to_str().unwrap()]);
    assert_eq!(r["hardlinks"], 2);
    let root = restored(&out, &src);
    let ino = fs::metadata(root.join("a/original")).unwrap().ino();
    for p in ["a/second", "b/third"] {
        assert_eq!(
            fs::metadata(root.join(p)).unwrap().ino(),
            ino,
            "{p} is not a hard link"
        );
    }
    assert_eq!(fs::metadata(root.join("a/original")).unwrap().nlink(), 3);
    assert_eq!(fs::read(root.join("b/third")).unwrap(), bytes(500_000, 5));
}

#[test]
fn sparse_by_default_and_dense_on_request() {
    let env = Env::new();
    let src = env.path("src");
    let mut data = vec![0u8; 8 << 20];
    data[..100].copy_from_slice(&bytes(100, 1));
    write(&src.join("disk.img"), &data);
    env.init();
    env.backup(&[&src]);
    let allocated = |out: &str| {
        let f = restored(&env.path(out), &src).join("disk.img");
        assert_eq!(fs::read(&f).unwrap(), data);
        fs::metadata(&f).unwrap().blocks() * 512
    };
    env.ok(&[
        "restore",
        "latest",
        "--target",
        env.path("sparse").to_str().unwrap(),
        "--sparse",
    ]);
    env.ok(&[
        "restore",
        "latest",
        "--target",
        env.path("dense").to_str().unwrap(),
        "--no-sparse",
    ]);
    assert!(
        allocated("sparse") < 1 << 20,
        "sparse restore allocated {}",
        allocated("sparse")
    );
    assert!(
        allocated("dense") >= 8 << 20,
        "dense restore allocated {}",
        allocated("dense")
    );
}

#[test]
fn symlinks_in_the_target_are_never_followed() {
    let (env, src) = setup();
    let out = env.path("out");
    let victim = env.path("victim");
    fs::create_dir_all(&victim).unwrap();
    write(&victim.join("report.md"), b"precious");
    // The target already has a symlink where the snapshot has a directory.
    let docs = restored(&out, &src).join("docs");
    fs::create_dir_all(docs.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&victim, &docs).unwrap();
    let res = env.run(&["restore", "latest", "--target", out.to_str().unwrap()]);
    assert_eq!(res.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&res.stderr).contains("docs"),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert_eq!(fs::read(victim.join("report.md")).unwrap(), b"precious");
    assert_eq!(
        fs::read_dir(&victim).unwrap().count(),
        1,
        "something was written through the symlink"
    );
    // The rest of the snapshot was restored.
    assert_eq!(
        fs::read(restored(&out, &src).join("hello.txt")).unwrap(),
        b"hello, world\n"
    );

    // A symlink where the snapshot has a file is replaced, not written through.
    let out2 = env.path("out2");
    let hello = restored(&out2, &src).join("hello.txt");
    fs::create_dir_all(hello.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(victim.join("report.md"), &hello).unwrap();
    env.ok(&[
        "restore",
        "latest",
        "--target",
        out2.to_str().unwrap(),
        "--overwrite",
        "always",
    ]);
    assert_eq!(fs::read(victim.join("report.md")).unwrap(), b"precious");
    assert!(
        !fs::symlink_metadata(&hello)
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[test]
fn devices_fifos_and_sockets_are_recreated() {
    use std::os::unix::fs::FileTypeExt;
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    let _listener = std::os::unix::net::UnixListener::bind(src.join("socket")).unwrap();
    nix::unistd::mkfifo(
        &src.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let root = nix::unistd::geteuid().is_root();
    if root {
        use nix::sys::stat::{Mode, SFlag, makedev, mknod};
        mknod(
            &src.join("null"),
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            makedev(1, 3),
        )
        .unwrap();
        mknod(
            &src.join("loop"),
            SFlag::S_IFBLK,
            Mode::from_bits_truncate(0o660),
            makedev(7, 200),
        )
        .unwrap();
    } else {
        eprintln!("not root: device nodes are not tested");
    }
    env.init();
    let s = env.backup(&[&src]);
    assert_eq!(s["other_entries"], if root { 4 } else { 2 });
    let out = env.path("out");
    env.ok(&["restore", "latest", "--target", out.to_str().unwrap()]);
    let r = restored(&out, &src);
    assert!(
        fs::symlink_metadata(r.join("socket"))
            .unwrap()
            .file_type()
            .is_socket()
    );
    assert!(
        fs::symlink_metadata(r.join("fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    if root {
        let null = fs::symlink_metadata(r.join("null")).unwrap();
        assert!(null.file_type().is_char_device());
        assert_eq!(null.rdev(), nix::sys::stat::makedev(1, 3));
        let lp = fs::symlink_metadata(r.join("loop")).unwrap();
        assert!(lp.file_type().is_block_device());
        assert_eq!(lp.rdev(), nix::sys::stat::makedev(7, 200));
    }
}

/// Owners come back by name where the name exists here, by number otherwise, and by
/// number only with --numeric-owner (the name-over-number choice itself, with a user
/// whose id differs between machines, is unit-tested in arca-core's metadata module).
#[test]
fn owners_by_name_or_number() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: setting other owners needs root");
        return;
    }
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("named"), b"owned by a user that has a name here");
    write(&src.join("numbered"), b"owned by ids with no name");
    let daemon = nix::unistd::User::from_name("daemon").unwrap().unwrap();
    std::os::unix::fs::chown(
        src.join("named"),
        Some(daemon.uid.as_raw()),
        Some(daemon.gid.as_raw()),
    )
    .unwrap();
    std::os::unix::fs::chown(src.join("numbered"), Some(4242), Some(4343)).unwrap();
    env.init();
    env.backup(&[&src]);
    let listing = env.ok(&["ls", "latest", src.to_str().unwrap(), "-l"]);
    assert!(listing.contains(" daemon "), "{listing}");
    assert!(
        listing.contains(" 4242 ") && listing.contains(" 4343 "),
        "{listing}"
    );
    for numeric in [false, true] {
        let out = env.path(&format!("out-{numeric}"));
        let mut args = vec!["restore", "latest", "--target", out.to_str().unwrap()];
        if numeric {
            args.push("--numeric-owner");
        }
        env.ok(&args);
        let named = fs::metadata(restored(&out, &src).join("named")).unwrap();
        assert_eq!(
            (named.uid(), named.gid()),
            (daemon.uid.as_raw(), daemon.gid.as_raw())
        );
        let numbered = fs::metadata(restored(&out, &src).join("numbered")).unwrap();
        assert_eq!((numbered.uid(), numbered.gid()), (4242, 4343));
    }
}

/// Restore keeps its open files within a small limit of open files (each file waiting
/// for content is an open descriptor): 400 files under `ulimit -n 64`, with one worker
/// so that the walk, which only creates files, runs ahead of it.
#[test]
fn restore_fits_a_small_open_file_limit() {
    let env = Env::new();
    let src = env.path("src");
    for i in 0..400 {
        write(
            &src.join(format!("d{}/f{i:03}", i % 3)),
            &bytes(60_000 + i, i as u64),
        );
    }
    env.init();
    env.backup(&[&src]);
    let target = env.path("out");
    let t = target.to_str().unwrap();
    env.ok_with_64_open_files(&["restore", "latest", "--threads", "1", "--target", t]);
    assert_same(&manifest(&src), &manifest(&restored(&target, &src)));
}

/// Backup keeps its open directories within a small limit too, although small files
/// wait for their bundle: 300 directories of one tiny file each (one bundle, sealed when
/// the walk ends) under `ulimit -n 64`. Each directory walked used to keep its
/// descriptor until its file was placed.
#[test]
fn backup_of_many_directories_of_small_files_fits_a_small_open_file_limit() {
    let env = Env::new();
    let src = env.path("src");
    for i in 0..300 {
        write(
            &src.join(format!("d{i:03}/f")),
            format!("file {i}").as_bytes(),
        );
    }
    env.init();
    env.ok_with_64_open_files(&["backup", src.to_str().unwrap()]);
    let target = env.path("out");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_same(&manifest(&src), &manifest(&restored(&target, &src)));
}
