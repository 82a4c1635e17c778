//! Damaged repositories are detected and named; unreadable sources make a partial
//! snapshot (exit 3); an interrupted backup exits 130 and leaves the repository valid.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

fn flip_byte(path: &Path, offset: usize) {
    let mut data = fs::read(path).unwrap();
    data[offset] ^= 0x40;
    fs::write(path, data).unwrap();
}

/// The largest pack file of `env`'s repository: a backup's data pack (tree packs are
/// small).
fn largest_pack(env: &Env) -> PathBuf {
    files_in(&env.repo.join("data"))
        .into_iter()
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .unwrap()
}

/// The smallest pack file of `env`'s repository: after one small backup, its trees.
fn smallest_pack(env: &Env) -> PathBuf {
    files_in(&env.repo.join("data"))
        .into_iter()
        .min_by_key(|p| fs::metadata(p).unwrap().len())
        .unwrap()
}

/// A repository with one snapshot of a small tree whose data packs hold file content.
fn backed_up() -> (Env, PathBuf) {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("a.bin"), &bytes(700_000, 11));
    write(&src.join("copy/a-copy.bin"), &bytes(700_000, 11));
    write(&src.join("b.txt"), &b"some text ".repeat(10_000));
    env.init();
    env.backup(&[&src]);
    (env, src)
}

#[test]
fn a_corrupted_pack_is_found_by_check_read_data_and_by_restore() {
    let (env, src) = backed_up();
    env.ok(&["check", "--read-data"]);
    // Damage the largest pack (file content) in the middle.
    let pack = largest_pack(&env);
    let pack_id = pack.file_name().unwrap().to_str().unwrap().to_owned();
    let len = fs::metadata(&pack).unwrap().len() as usize;
    flip_byte(&pack, len / 2);

    let out = env.expect(1, &["check", "--read-data"]);
    let report = stdout(&out);
    assert!(
        report.contains(&pack_id),
        "check does not name the damaged pack:\n{report}"
    );
    assert!(
        report.contains("/a.bin"),
        "check does not name the affected file:\n{report}"
    );
    assert!(
        report.contains("/copy/a-copy.bin"),
        "check does not name every affected file:\n{report}"
    );

    let json = env.run(&["check", "--read-data", "--json"]);
    assert_eq!(json.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert!(!v["errors"].as_array().unwrap().is_empty());

    // A restore reads the damaged blob, refuses to write it, and names the file.
    let out_dir = env.path("out");
    let out = env.expect(
        1,
        &["restore", "latest", "--target", out_dir.to_str().unwrap()],
    );
    let err = stderr(&out);
    assert!(err.contains("a.bin"), "{err}");
    assert!(
        !restored(&out_dir, &src).join("a.bin").exists(),
        "a damaged file was left in place"
    );
    // The undamaged file was restored.
    assert_eq!(
        fs::read(restored(&out_dir, &src).join("b.txt")).unwrap(),
        b"some text ".repeat(10_000)
    );

    // dump stops at the damaged blob, naming the file, and leaves no partial output.
    let a = src.join("a.bin");
    let out = env.expect(1, &["dump", "latest", a.to_str().unwrap()]);
    let err = stderr(&out);
    assert!(
        err.contains(a.to_str().unwrap()) && err.lines().count() == 1,
        "{err}"
    );
    let archive = env.path("src.tar");
    let out = env.dump_archive(1, &src, "tar", &archive);
    assert!(stderr(&out).contains("a.bin"), "{}", stderr(&out));
    assert!(!archive.exists(), "a truncated archive was left behind");
}

#[test]
fn truncated_and_damaged_metadata_files_are_named() {
    // Snapshot file truncated.
    let (env, _src) = backed_up();
    let snap = files_in(&env.repo.join("snapshots")).pop().unwrap();
    let id = snap.file_name().unwrap().to_str().unwrap().to_owned();
    let data = fs::read(&snap).unwrap();
    fs::write(&snap, &data[..data.len() / 2]).unwrap();
    let out = env.expect(1, &["snapshots"]);
    assert!(stderr(&out).contains(&id), "{}", stderr(&out));
    let out = env.expect(1, &["check"]);
    assert!(stdout(&out).contains(&id), "{}", stdout(&out));

    // Index file damaged: commands still open the repository and warn; check fails.
    let (env, _src) = backed_up();
    let index = files_in(&env.repo.join("index")).pop().unwrap();
    let id = index.file_name().unwrap().to_str().unwrap().to_owned();
    flip_byte(&index, 60);
    let out = env.expect(0, &["snapshots"]);
    assert!(stderr(&out).contains(&id), "{}", stderr(&out));
    let out = env.expect(1, &["check"]);
    assert!(stdout(&out).contains(&id), "{}", stdout(&out));

    // Config damaged or truncated.
    for cut in [true, false] {
        let (env, _src) = backed_up();
        let config = env.repo.join("config");
        if cut {
            let data = fs::read(&config).unwrap();
            fs::write(&config, &data[..20]).unwrap();
        } else {
            flip_byte(&config, 50);
        }
        let out = env.expect(1, &["snapshots"]);
        let err = stderr(&out);
        assert!(err.contains("config"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }

    // Key slot damaged: indistinguishable from a wrong password, and said so.
    let (env, _src) = backed_up();
    let key = files_in(&env.repo.join("keys")).pop().unwrap();
    let len = fs::metadata(&key).unwrap().len() as usize;
    flip_byte(&key, len - 3);
    env.expect(12, &["snapshots"]);
}

#[test]
fn pack_missing_is_reported_with_the_files_it_breaks() {
    let (env, _src) = backed_up();
    // The largest pack holds file content (the tree pack is small).
    fs::remove_file(largest_pack(&env)).unwrap();
    let out = env.expect(1, &["check"]);
    let report = stdout(&out);
    assert!(report.contains("missing"), "{report}");
    assert!(report.contains("a.bin"), "{report}");
}

/// Runs the binary as an unprivileged user when the tests run as root, so that file
/// permissions can make a source unreadable.
fn as_nobody(env: &Env, cmd: &mut std::process::Command) {
    if nix::unistd::geteuid().is_root() {
        let mut stack = vec![env.dir.path().to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                let m = fs::symlink_metadata(&p).unwrap();
                if m.is_dir() {
                    stack.push(p.clone());
                }
                if !m.file_type().is_symlink() {
                    std::os::unix::fs::chown(&p, Some(65534), Some(65534)).unwrap();
                }
            }
        }
        std::os::unix::fs::chown(env.dir.path(), Some(65534), Some(65534)).unwrap();
        cmd.uid(65534).gid(65534);
    }
}

#[test]
fn unreadable_sources_make_a_partial_snapshot_and_exit_3() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("ok.txt"), b"fine");
    write(&src.join("locked.txt"), b"no access");
    write(&src.join("closed/inner.txt"), b"hidden");
    env.init();
    let mut cmd = env.cmd();
    as_nobody(&env, &mut cmd);
    fs::set_permissions(src.join("locked.txt"), fs::Permissions::from_mode(0o000)).unwrap();
    fs::set_permissions(src.join("closed"), fs::Permissions::from_mode(0o000)).unwrap();
    let out = cmd
        .args(["backup", src.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("locked.txt"), "{err}");
    assert!(err.contains("closed"), "{err}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["partial"], true);
    assert_eq!(summary["errors"], 2);
    assert_eq!(summary["files_new"], 1);
    fs::set_permissions(src.join("closed"), fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = env.cmd();
    as_nobody(&env, &mut cmd);
    let list = cmd.args(["snapshots", "--json"]).output().unwrap();
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(list[0]["partial"], true);
}

#[test]
fn an_interrupted_backup_exits_130_and_leaves_a_valid_repository() {
    let env = Env::new();
    let src = env.path("src");
    let big = src.join("big.bin");
    fs::create_dir_all(&src).unwrap();
    {
        use std::io::Write;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&big)
            .unwrap();
        for i in 0..48 {
            f.write_all(&bytes(8 << 20, 100 + i)).unwrap();
        }
    }
    write(&src.join("small.txt"), b"small");
    env.init();
    let mut child = env
        .cmd()
        .args(["backup", src.to_str().unwrap(), "--threads", "1"])
        .spawn()
        .unwrap();
    // Interrupt once the backup has uploaded something: a pack, not the temporary
    // file the next one is written to.
    let is_temporary = |p: &PathBuf| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(".tmp-"))
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while files_in(&env.repo.join("data")).iter().all(is_temporary) {
        assert!(Instant::now() < deadline, "the backup never wrote a pack");
        if child.try_wait().unwrap().is_some() {
            panic!("the backup finished before it could be interrupted");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(
        files_in(&env.repo.join("snapshots")).is_empty(),
        "an interrupted backup wrote a snapshot"
    );
    let left: Vec<_> = files_in(&env.repo)
        .into_iter()
        .filter(is_temporary)
        .collect();
    assert!(left.is_empty(), "temporary files left behind: {left:?}");
    env.ok(&["check", "--read-data"]);
    // What was uploaded is indexed: the next backup does not store it again.
    let done = env.backup(&[&src]);
    let total = fs::metadata(&big).unwrap().len() + 5;
    assert_eq!(done["bytes_original"], total);
    assert!(
        done["bytes_added_raw"].as_u64().unwrap() < total,
        "everything was uploaded twice"
    );
    let out = env.path("out");
    env.ok(&["restore", "latest", "--target", out.to_str().unwrap()]);
    assert!(read_noatime(&restored(&out, &src).join("big.bin")) == read_noatime(&big));
}

#[test]
fn find_reports_an_unreadable_tree_and_searches_on() {
    let env = Env::new();
    let first = env.path("first");
    let second = env.path("second");
    write(&first.join("one/wanted.txt"), &bytes(200_000, 1));
    write(&second.join("two/wanted.txt"), &bytes(200_000, 2));
    env.init();
    let a = env.backup(&[&first])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = files_in(&env.repo.join("data"));
    env.backup(&[&second]);
    // The first backup wrote a data pack and a (smaller) tree pack: damage the trees.
    let tree_pack = before
        .iter()
        .min_by_key(|p| fs::metadata(p).unwrap().len())
        .unwrap();
    let len = fs::metadata(tree_pack).unwrap().len() as usize;
    flip_byte(tree_pack, len / 2);

    let out = env.expect(1, &["find", "wanted.txt"]);
    let text = stdout(&out);
    let wanted = second.join("two/wanted.txt");
    assert!(text.contains(wanted.to_str().unwrap()), "{text}");
    assert!(!text.contains("one/wanted.txt"), "{text}");
    let err = stderr(&out);
    assert!(
        err.contains(&a[..8]),
        "the damaged snapshot is not named: {err}"
    );

    let out = env.run(&["find", "wanted.txt", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let last: serde_json::Value =
        serde_json::from_str(stdout(&out).lines().last().unwrap()).unwrap();
    assert_eq!(last["matches"], 1);
    assert_eq!(last["errors"].as_array().unwrap().len(), 1, "{last}");
}

#[test]
fn data_subsets_together_read_everything_and_find_the_damage() {
    let env = Env::new();
    let src = env.path("src");
    for i in 0..6 {
        write(&src.join(format!("f{i}")), &bytes(700_000, 40 + i));
    }
    env.ok(&init_args(&["--pack-size", "1M"]));
    env.backup(&[&src]);
    let total = env.json(&["check"])["packs"].as_u64().unwrap();
    assert!(total >= 4, "{total} packs");
    // Parts 1/3, 2/3, 3/3 read every pack once.
    let read: u64 = (1..=3)
        .map(|n| {
            env.json(&["check", "--read-data-subset", &format!("{n}/3")])["packs_read"]
                .as_u64()
                .unwrap()
        })
        .sum();
    assert_eq!(read, total);
    // Rotating percentages continue where the last run stopped: within as many runs as
    // it takes to go round once, every pack is read, so the damaged one is found (once,
    // or twice if the last run wrapped around to it).
    let pack = largest_pack(&env);
    let len = fs::metadata(&pack).unwrap().len() as usize;
    flip_byte(&pack, len / 2);
    let per_run = total.div_ceil(2);
    let runs = total.div_ceil(per_run);
    let mut failures = 0;
    for _ in 0..runs {
        let out = env.run(&["check", "--read-data-subset", "50%"]);
        if out.status.code() == Some(1) {
            failures += 1;
        }
    }
    // Twice only if the runs read more packs than there are (an odd count): the
    // pack read again is the first, which may be the damaged one.
    let wrapped = per_run * runs > total;
    assert!(
        failures == 1 || (failures == 2 && wrapped),
        "the damaged pack was read {failures} times in {runs} runs of {per_run} of {total}"
    );
    env.expect(1, &["check", "--read-data-subset", "0/3"]);
    env.expect(1, &["check", "--read-data-subset", "7/3"]);
}

#[test]
fn repair_index_rebuilds_a_lost_or_damaged_index_from_the_packs() {
    let (env, src) = backed_up();
    // Every index file lost: the repository opens, but nothing restores.
    for f in files_in(&env.repo.join("index")) {
        fs::remove_file(f).unwrap();
    }
    env.expect(1, &["check"]);
    let report = env.json(&["repair", "index"]);
    assert!(report["blobs"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["damaged_packs"], serde_json::json!([]));
    assert_eq!(env.json(&["check", "--read-data"])["ok"], true);
    let out = env.path("out");
    env.ok(&["restore", "latest", "--target", out.to_str().unwrap()]);
    assert_same(&manifest(&src), &manifest(&restored(&out, &src)));

    // A damaged index file and a damaged pack: the intact entries are indexed, and
    // the damaged pack is named.
    flip_byte(&files_in(&env.repo.join("index"))[0], 60);
    let pack = largest_pack(&env);
    let len = fs::metadata(&pack).unwrap().len() as usize;
    flip_byte(&pack, len / 2);
    let report = env.json(&["repair", "index"]);
    let damaged = report["damaged_packs"].as_array().unwrap();
    assert_eq!(damaged.len(), 1, "{report}");
    assert!(pack.ends_with(damaged[0].as_str().unwrap()), "{report}");
    // check now reports only the lost blob, with the files that need it.
    let out = env.expect(1, &["check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("a.bin"), "{text}");
}

/// Copies a directory tree (a pristine repository) over `to`.
fn copy_tree(from: &Path, to: &Path) {
    let _ = fs::remove_dir_all(to);
    let status = std::process::Command::new("cp")
        .args(["-a", from.to_str().unwrap(), to.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_flipped_byte_anywhere_is_detected_by_check_and_never_restored_silently() {
    let (env, src) = backed_up();
    let pristine = env.path("pristine");
    copy_tree(&env.repo, &pristine);
    let files = files_in(&pristine);
    let mut state: u64 = 0x0dd_ba11;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let expected = manifest(&src);
    for round in 0..40 {
        copy_tree(&pristine, &env.repo);
        let file = &files[(next() % files.len() as u64) as usize];
        let target = env.repo.join(file.strip_prefix(&pristine).unwrap());
        let len = fs::metadata(&target).unwrap().len();
        let offset = (next() % len) as usize;
        flip_byte(&target, offset);
        let what = format!("round {round}: byte {offset} of {}", target.display());
        let check = env.run(&["check", "--read-data"]);
        assert_ne!(check.status.code(), Some(0), "undetected by check: {what}");
        // A restore either fails, naming what it could not restore, or restores
        // everything exactly: never wrong bytes.
        let out = env.path("out");
        let _ = fs::remove_dir_all(&out);
        let restore = env.run(&["restore", "latest", "--target", out.to_str().unwrap()]);
        if restore.status.success() {
            assert_same(&expected, &manifest(&restored(&out, &src)));
        } else {
            assert!(
                !restore.stderr.is_empty(),
                "{what}: failed without a message"
            );
            let root = restored(&out, &src);
            if !root.exists() {
                continue;
            }
            for (path, entry) in manifest(&root) {
                if let Some(want) = expected.get(&path) {
                    assert_eq!(
                        want.content,
                        entry.content,
                        "{what}: wrong bytes in {}",
                        path.display()
                    );
                }
            }
        }
    }
}

#[test]
fn repair_snapshots_leaves_out_lost_files_and_names_them() {
    let (env, src) = backed_up();
    // The data pack (every file's content: one pack at the default size) is lost.
    let pack = largest_pack(&env);
    fs::remove_file(&pack).unwrap();
    env.ok(&["repair", "index"]);
    env.expect(1, &["check"]);
    let dry = env.json(&["repair", "snapshots", "--dry-run"]);
    assert_eq!(dry[0]["new"], serde_json::Value::Null);
    let repaired = env.json(&["repair", "snapshots", "--forget"]);
    let lost: Vec<&str> = repaired[0]["lost"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(lost.iter().any(|l| l.ends_with("/a.bin")), "{lost:?}");
    assert!(
        lost.iter().any(|l| l.ends_with("/copy/a-copy.bin")),
        "{lost:?}"
    );
    assert!(lost.iter().any(|l| l.ends_with("/b.txt")), "{lost:?}");
    // The repository checks clean again; the repaired snapshot restores what is left.
    assert_eq!(env.json(&["check", "--read-data"])["ok"], true);
    let list = env.json(&["snapshots"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["tags"], serde_json::json!(["repaired"]));
    let out = env.path("out");
    env.ok(&["restore", "latest", "--target", out.to_str().unwrap()]);
    assert!(restored(&out, &src).join("copy").is_dir());
    assert!(!restored(&out, &src).join("a.bin").exists());
    // The next backup stores the lost file again.
    let next = env.backup(&[&src]);
    assert!(next["data_blobs_added"].as_u64().unwrap() > 0, "{next}");
    assert_eq!(env.json(&["check", "--read-data"])["ok"], true);
}

#[test]
fn repair_snapshots_empties_directories_whose_tree_is_lost() {
    let (env, _src) = backed_up();
    // The tree pack (the smaller of the two) is lost.
    let pack = smallest_pack(&env);
    fs::remove_file(&pack).unwrap();
    env.ok(&["repair", "index"]);
    env.expect(1, &["check"]);
    let repaired = env.json(&["repair", "snapshots", "--forget"]);
    let lost = repaired[0]["lost"].as_array().unwrap();
    assert!(
        lost.iter()
            .any(|l| l.as_str().unwrap().contains("(directory unreadable")),
        "{repaired}"
    );
    assert_eq!(env.json(&["check", "--read-data"])["ok"], true);
    let out = env.path("out");
    env.ok(&["restore", "latest", "--target", out.to_str().unwrap()]);
}
