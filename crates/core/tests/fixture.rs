//! A repository written by arca 0.1 (format version 1) is committed under
//! `tests/fixtures/repo-v1`. Every later version must open it, list it, restore it byte
//! for byte and find it intact: this pins the whole format, not just single structures.
//!
//! Regenerate only when the format version changes on purpose:
//! `cargo test -p arca-core --test fixture -- --ignored generate_fixture`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use arca_core::{BackupOptions, IdAlgorithm, Location, NoProgress, Repository, RestoreOptions};

const PASSWORD: &[u8] = b"fixture password";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/repo-v1")
}

/// The tree the fixture holds: (relative path, content).
fn files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("readme.txt", b"arca fixture\n".to_vec()),
        ("empty", Vec::new()),
        ("dir/text.md", b"line\n".repeat(5000)),
        (
            "dir/sub/random.bin",
            (0..300_000u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
        ),
    ]
}

#[test]
fn the_v1_fixture_opens_restores_and_checks() {
    // Copy it: opening and checking must not need write access, but restore writes
    // nothing into the repository either way; the copy keeps the source pristine.
    let tmp = tempfile::tempdir().unwrap();
    let repo_dir = tmp.path().join("repo");
    copy_dir(&fixture(), &repo_dir);
    let repo = Repository::open(
        Location::parse(repo_dir.to_str().unwrap())
            .unwrap()
            .backend()
            .unwrap(),
        PASSWORD,
    )
    .unwrap();
    assert_eq!(repo.config().id_algorithm, IdAlgorithm::Blake3);
    let snaps = repo.snapshots().unwrap();
    assert_eq!(snaps.len(), 1);
    let snap = &snaps[0];
    assert_eq!(snap.snapshot.hostname, "fixture-host");
    assert_eq!(snap.snapshot.tags, vec!["fixture".to_owned()]);
    let target = tmp.path().join("out");
    repo.restore(snap, &target, &RestoreOptions::default(), &NoProgress)
        .unwrap();
    let root = target.join(snap.paths_lossy()[0].trim_start_matches('/'));
    for (rel, content) in files() {
        assert_eq!(fs::read(root.join(rel)).unwrap(), content, "{rel}");
    }
    common::assert_checks_clean(&repo);
    // The wrong password is still refused.
    let err = Repository::open(
        Location::parse(repo_dir.to_str().unwrap())
            .unwrap()
            .backend()
            .unwrap(),
        b"nope",
    )
    .unwrap_err();
    assert_eq!(err.kind(), arca_core::ErrorKind::WrongPassword);
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            fs::copy(e.path(), &dest).unwrap();
        }
    }
}

#[test]
#[ignore = "writes the committed fixture; run by hand when the format version changes"]
fn generate_fixture() {
    let out = fixture();
    assert!(!out.exists(), "remove {} first", out.display());
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("fixture-src");
    for (rel, content) in files() {
        let p = src.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, content).unwrap();
    }
    let options = common::fast_init();
    let backend = Location::parse(out.to_str().unwrap())
        .unwrap()
        .backend()
        .unwrap();
    let mut repo = Repository::init(backend, PASSWORD, &options).unwrap();
    let backup = BackupOptions {
        tags: vec!["fixture".into()],
        host: Some("fixture-host".into()),
        ..Default::default()
    };
    repo.backup(&[src], &backup, &NoProgress).unwrap();
}
