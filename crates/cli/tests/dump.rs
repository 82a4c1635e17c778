//! `arca dump` through the binary: one file to stdout, and directories as tar and zip
//! archives unpacked by the system's own `tar` and `unzip`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use common::*;

/// Runs a system tool, asserting success.
fn tool(program: &str, args: &[&str], dir: &Path) {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (scripts/test-deps.sh installs it): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_file_goes_to_stdout_byte_for_byte() {
    let env = Env::new();
    let src = env.path("src");
    let big = bytes(3 * 1024 * 1024 + 5, 7);
    write(&src.join("big.bin"), &big);
    write(&src.join("empty"), b"");
    fs::create_dir_all(src.join("dir")).unwrap();
    std::os::unix::fs::symlink("big.bin", src.join("link")).unwrap();
    env.init();
    env.backup(&[&src]);
    let path = |name: &str| src.join(name).to_str().unwrap().to_owned();
    assert_eq!(
        env.expect(0, &["dump", "latest", &path("big.bin")]).stdout,
        big
    );
    assert!(
        env.expect(0, &["dump", "latest", &path("empty")])
            .stdout
            .is_empty()
    );

    // Directories need an archive; links and missing paths are named in the error.
    for (name, says) in [
        ("dir", "is a directory: dump it as an archive"),
        ("link", "is a symbolic link to big.bin"),
        ("missing", "is not in snapshot"),
    ] {
        let out = env.expect(1, &["dump", "latest", &path(name)]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says) && err.contains(&path(name)), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    let out = env.expect(2, &["dump", "latest", &path("dir"), "--archive", "rar"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("rar"));

    // --target writes a private file; a failed dump leaves none behind.
    let target = env.path("out.bin");
    env.ok(&[
        "dump",
        "latest",
        &path("big.bin"),
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_eq!(fs::read(&target).unwrap(), big);
    assert_eq!(fs::metadata(&target).unwrap().mode() & 0o777, 0o600);
    let failed = env.path("failed.bin");
    env.expect(
        1,
        &[
            "dump",
            "latest",
            &path("dir"),
            "--target",
            failed.to_str().unwrap(),
        ],
    );
    assert!(!failed.exists());
}

#[test]
fn a_tar_archive_unpacks_with_tar_to_the_same_tree() {
    let env = Env::new();
    let src = env.path("src");
    make_tree(&src);
    // Hard links, a FIFO and an extended attribute, which tar carries too.
    fs::hard_link(src.join("hello.txt"), src.join("docs/hello-again.txt")).unwrap();
    nix::unistd::mkfifo(
        &src.join("pipe"),
        nix::sys::stat::Mode::from_bits_truncate(0o640),
    )
    .unwrap();
    let xattrs = xattr::set(src.join("docs/report.md"), "user.arca.note", b"kept").is_ok();
    settle();
    env.init();
    env.backup(&[&src]);
    let expected = manifest(&src);

    let archive = env.path("src.tar");
    env.dump_archive(0, &src, "tar", &archive);
    let out = env.path("untarred");
    fs::create_dir(&out).unwrap();
    tool(
        "tar",
        &[
            "--xattrs",
            "--xattrs-include=*",
            "--numeric-owner",
            "-xpf",
            archive.to_str().unwrap(),
        ],
        &out,
    );
    let unpacked = restored(&out, &src);
    // GNU tar sets access times to the time of extraction whatever the archive says.
    let no_atime = |mut m: std::collections::BTreeMap<_, Entry>| {
        m.values_mut().for_each(|e| e.atime = None);
        m
    };
    assert_same(&no_atime(expected), &no_atime(manifest(&unpacked)));
    let a = fs::metadata(unpacked.join("hello.txt")).unwrap();
    let b = fs::metadata(unpacked.join("docs/hello-again.txt")).unwrap();
    assert_eq!((a.ino(), a.nlink()), (b.ino(), 2), "hard link not kept");
    if xattrs {
        assert_eq!(
            xattr::get(unpacked.join("docs/report.md"), "user.arca.note").unwrap(),
            Some(b"kept".to_vec())
        );
    }

    // The same archive on stdout, piped.
    let piped = env.expect(
        0,
        &["dump", "latest", src.to_str().unwrap(), "--archive", "tar"],
    );
    assert_eq!(piped.stdout, fs::read(&archive).unwrap());
}

#[test]
fn a_zip_archive_unpacks_with_unzip() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("hello.txt"), b"hello, world\n");
    write(&src.join("docs/big.bin"), &bytes(2 * 1024 * 1024 + 3, 4));
    write(&src.join("docs/text.md"), &b"some text\n".repeat(5000));
    fs::set_permissions(src.join("hello.txt"), fs::Permissions::from_mode(0o640)).unwrap();
    fs::create_dir_all(src.join("empty-dir")).unwrap();
    std::os::unix::fs::symlink("hello.txt", src.join("link")).unwrap();
    nix::unistd::mkfifo(
        &src.join("pipe"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    set_times(
        &src.join("docs/text.md"),
        (1_600_000_000, 0),
        (1_500_000_000, 0),
    );
    settle();
    env.init();
    env.backup(&[&src]);

    let archive = env.path("src.zip");
    let out = env.dump_archive(0, &src, "zip", &archive);
    let warnings = String::from_utf8_lossy(&out.stderr);
    assert!(
        warnings.contains("pipe: devices, FIFOs and sockets cannot be stored in a zip"),
        "{warnings}"
    );
    let dir = env.path("unzipped");
    fs::create_dir(&dir).unwrap();
    tool("unzip", &["-q", archive.to_str().unwrap()], &dir);
    let unpacked = restored(&dir, &src);
    for name in ["hello.txt", "docs/big.bin", "docs/text.md"] {
        assert_eq!(
            fs::read(unpacked.join(name)).unwrap(),
            fs::read(src.join(name)).unwrap(),
            "{name}"
        );
    }
    assert_eq!(
        fs::metadata(unpacked.join("hello.txt")).unwrap().mode() & 0o777,
        0o640
    );
    assert_eq!(
        fs::metadata(unpacked.join("docs/text.md")).unwrap().mtime(),
        1_500_000_000
    );
    assert_eq!(
        fs::read_link(unpacked.join("link")).unwrap(),
        Path::new("hello.txt")
    );
    assert!(unpacked.join("empty-dir").is_dir());
    assert!(!unpacked.join("pipe").exists());
}

#[test]
fn target_files_are_replaced_only_by_a_complete_dump() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("a.txt"), b"from the snapshot");
    env.init();
    env.backup(&[&src]);
    let a = src.join("a.txt");

    // A failed dump leaves an existing file as it was.
    let target = env.path("existing.txt");
    write(&target, b"important");
    let missing = src.join("missing");
    let t = target.to_str().unwrap();
    env.expect(
        1,
        &["dump", "latest", missing.to_str().unwrap(), "--target", t],
    );
    assert_eq!(fs::read(&target).unwrap(), b"important");
    // A complete one replaces it, privately.
    env.ok(&["dump", "latest", a.to_str().unwrap(), "--target", t]);
    assert_eq!(fs::read(&target).unwrap(), b"from the snapshot");
    assert_eq!(fs::metadata(&target).unwrap().mode() & 0o777, 0o600);

    // Anything but a regular file is refused and left alone.
    let other = env.path("other.txt");
    write(&other, b"kept");
    let link = env.path("link");
    std::os::unix::fs::symlink(&other, &link).unwrap();
    let dir = env.path("a-directory");
    fs::create_dir(&dir).unwrap();
    for refused in [&link, &dir] {
        let out = env.expect(
            1,
            &[
                "dump",
                "latest",
                a.to_str().unwrap(),
                "--target",
                refused.to_str().unwrap(),
            ],
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("is not a regular file"));
    }
    assert_eq!(fs::read(&other).unwrap(), b"kept");
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    // No temporary files are left behind.
    let leftovers: Vec<_> = fs::read_dir(env.path(""))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with(".arca-dump-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Paths inside the snapshot: relative ones are taken from the current directory,
    // `..` resolved; `/` is the whole snapshot and needs an archive.
    let out = env
        .cmd()
        .current_dir(&src)
        .args(["dump", "latest", "../src/./a.txt"])
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"from the snapshot");
    let out = env.expect(1, &["dump", "latest", "/"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("/ is the whole snapshot"));
}

#[test]
fn zip_keeps_names_that_are_not_utf8_apart() {
    use std::os::unix::ffi::OsStrExt;
    let env = Env::new();
    let src = env.path("src");
    write(&src.join(std::ffi::OsStr::from_bytes(b"n\xff")), b"ff");
    write(&src.join(std::ffi::OsStr::from_bytes(b"n\xfe")), b"fe");
    write(&src.join("n%FF"), b"a real percent name");
    env.init();
    env.backup(&[&src]);
    let archive = env.path("names.zip");
    let out = env.dump_archive(0, &src, "zip", &archive);
    let warnings = String::from_utf8_lossy(&out.stderr);
    assert!(warnings.contains("is not UTF-8"), "{warnings}");
    let dir = env.path("unzipped");
    fs::create_dir(&dir).unwrap();
    tool("unzip", &["-q", archive.to_str().unwrap()], &dir);
    let unpacked = restored(&dir, &src);
    let mut names: Vec<(String, Vec<u8>)> = fs::read_dir(&unpacked)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    names.sort();
    let contents: BTreeSet<Vec<u8>> = names.iter().map(|(_, c)| c.clone()).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert_eq!(
        contents,
        [
            b"ff".to_vec(),
            b"fe".to_vec(),
            b"a real percent name".to_vec()
        ]
        .into()
    );
}

/// The first Ctrl-C stops a dump at the next chunk, exit code 130.
#[test]
fn an_interrupted_dump_stops_and_exits_130() {
    use std::io::Read;
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("big.bin"), &bytes(64 << 20, 3));
    env.init();
    env.backup(&[&src]);
    let mut child = env
        .cmd()
        .args(["dump", "latest", src.join("big.bin").to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    // Let it fill the pipe and block, then interrupt it and drain what it wrote.
    let mut first = [0u8; 1];
    stdout.read_exact(&mut first).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(rest.len() + 1 < 64 << 20, "the whole file was written");
}
