//! Several writers at once: backups from different processes (here: threads with their
//! own repository handles) into one repository all succeed, and the result checks clean.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;

use arca_core::{BackupOptions, Location, NoProgress, Repository, RestoreOptions};

#[test]
fn concurrent_backups_into_one_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let location = Location::parse(tmp.path().join("repo").to_str().unwrap()).unwrap();
    let options = common::fast_init();
    Repository::init(location.backend().unwrap(), b"pw", &options).unwrap();
    // Shared content across hosts, so the writers race to store the same chunks.
    let shared: Vec<u8> = (0..2_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let sources: Vec<_> = (0..4)
        .map(|h| {
            let dir = tmp.path().join(format!("host{h}"));
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join("shared.bin"), &shared).unwrap();
            fs::write(dir.join("own.txt"), format!("host {h}\n").repeat(1000)).unwrap();
            dir
        })
        .collect();
    std::thread::scope(|s| {
        for (h, dir) in sources.iter().enumerate() {
            let location = &location;
            s.spawn(move || {
                let mut repo = Repository::open(location.backend().unwrap(), b"pw").unwrap();
                let opts = BackupOptions {
                    host: Some(format!("host{h}")),
                    threads: 1,
                    ..Default::default()
                };
                repo.backup(std::slice::from_ref(dir), &opts, &NoProgress)
                    .unwrap();
            });
        }
    });
    let repo = Repository::open(location.backend().unwrap(), b"pw").unwrap();
    let snaps = repo.snapshots().unwrap();
    assert_eq!(snaps.len(), 4);
    common::assert_checks_clean(&repo);
    for snap in &snaps {
        let out = tmp.path().join(format!("out-{}", snap.id.short()));
        repo.restore(snap, &out, &RestoreOptions::default(), &NoProgress)
            .unwrap();
        let root = out.join(snap.paths_lossy()[0].trim_start_matches('/'));
        assert_eq!(fs::read(root.join("shared.bin")).unwrap(), shared);
    }
}
