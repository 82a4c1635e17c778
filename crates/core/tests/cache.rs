//! The metadata cache: a second opening reads no index, snapshot or tree from the
//! repository; a damaged cached copy is replaced, never reported as damage; objects
//! the repository lost leave the cache. Restore and archive dumps read a bundle of many
//! small files once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::fs;
use std::sync::{Arc, Mutex};

use arca_backends::{Call, FileKind, Intercept, MemoryBackend, ReadBackend, WriteBackend};
use arca_core::{
    ArchiveFormat, BackupOptions, CancelToken, NoProgress, NodeKind, OpenOptions, Repository,
    RestoreOptions,
};

type ReadCounts = Arc<Mutex<HashMap<FileKind, u64>>>;

/// A backend in memory that counts reads per kind.
fn counting() -> (Intercept<MemoryBackend>, ReadCounts) {
    let counts = ReadCounts::default();
    let counted = counts.clone();
    let backend = Intercept::new(
        MemoryBackend::new(),
        Box::new(move |call| {
            if let Call::Read(kind, _) = call {
                *counted.lock().unwrap().entry(kind).or_default() += 1;
            }
            Ok(())
        }),
    );
    (backend, counts)
}

/// Loads every snapshot and every tree of each; returns the number of files seen.
fn read_all_metadata(repo: &Repository) -> usize {
    let mut files = 0;
    for info in repo.snapshots().unwrap() {
        let mut stack = vec![info.snapshot.tree];
        while let Some(id) = stack.pop() {
            for node in repo.load_tree(&id).unwrap().into_nodes() {
                match (node.kind, node.subtree) {
                    (NodeKind::Dir, Some(sub)) => stack.push(sub),
                    (NodeKind::File, _) => files += 1,
                    _ => {}
                }
            }
        }
    }
    files
}

#[test]
fn the_cache_spares_downloads_and_is_never_trusted() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    for d in 0..5 {
        for f in 0..4 {
            let p = src.join(format!("d{d}/sub/f{f}.txt"));
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, format!("file {d} {f}\n").repeat(100)).unwrap();
        }
    }
    let (backend, counts) = counting();
    let backend = Arc::new(backend);
    Repository::init(backend.clone(), b"pw", &common::fast_init()).unwrap();
    let mut repo = Repository::open(backend.clone(), b"pw").unwrap();
    repo.backup(
        std::slice::from_ref(&src),
        &BackupOptions::default(),
        &NoProgress,
    )
    .unwrap();
    fs::write(src.join("d0/new.txt"), b"new").unwrap();
    repo.backup(
        std::slice::from_ref(&src),
        &BackupOptions::default(),
        &NoProgress,
    )
    .unwrap();

    let cache_dir = tmp.path().join("cache");
    let mut options = OpenOptions::default();
    options.cache_dir = Some(cache_dir.clone());
    let open = || Repository::open_with(backend.clone(), b"pw", &options).unwrap();

    // First opening: everything comes from the repository and fills the cache.
    let first = open();
    let files = read_all_metadata(&first);
    assert_eq!(files, 41);
    let reads = |k| counts.lock().unwrap().get(&k).copied().unwrap_or(0);
    let before = (
        reads(FileKind::Index),
        reads(FileKind::Snapshot),
        reads(FileKind::Pack),
    );
    assert!(before.0 > 0 && before.1 > 0 && before.2 > 0, "{before:?}");
    assert_eq!(
        first.cache_dir().unwrap().parent(),
        Some(cache_dir.as_path())
    );

    // Second opening: nothing but keys and config is read from the repository.
    let second = open();
    assert_eq!(read_all_metadata(&second), files);
    let after = (
        reads(FileKind::Index),
        reads(FileKind::Snapshot),
        reads(FileKind::Pack),
    );
    assert_eq!(after, before);
    assert!(second.cache_stats().hits > 0);

    // Damaged cached copies are fetched again, and nothing is reported damaged.
    let dir = second.cache_dir().unwrap().to_path_buf();
    for kind in ["index", "snapshots", "data"] {
        for entry in fs::read_dir(dir.join(kind)).unwrap() {
            let path = entry.unwrap().path();
            let mut data = fs::read(&path).unwrap();
            let middle = data.len() / 2;
            data[middle] ^= 1;
            fs::write(&path, data).unwrap();
        }
    }
    let third = open();
    assert!(third.index_problems().is_empty());
    assert_eq!(read_all_metadata(&third), files);
    assert!(
        third.cache_stats().rejected >= 3,
        "{:?}",
        third.cache_stats()
    );
    assert!(reads(FileKind::Pack) > before.2);
    // ... and the cache holds good copies again.
    let fourth = open();
    let again = (
        reads(FileKind::Index),
        reads(FileKind::Snapshot),
        reads(FileKind::Pack),
    );
    read_all_metadata(&fourth);
    assert_eq!(
        again,
        (
            reads(FileKind::Index),
            reads(FileKind::Snapshot),
            reads(FileKind::Pack)
        )
    );

    // A snapshot removed from the repository leaves the cache.
    let (gone, _) = backend.list(FileKind::Snapshot).unwrap()[0];
    backend.remove(FileKind::Snapshot, &gone).unwrap();
    let fifth = open();
    assert_eq!(fifth.snapshots().unwrap().len(), 1);
    assert!(!dir.join("snapshots").join(gone.to_string()).exists());
}

/// 200 files of 5,000 random bytes share one bundle. Restore (one thread, batches of 64 files)
/// and a tar dump (file by file) each read the pack holding it once: the operation's
/// bundle cache serves the other files.
#[test]
fn a_bundle_of_many_files_is_read_once_per_operation() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    // Incompressible, so the data pack is the larger one.
    for f in 0..200u64 {
        fs::write(
            src.join(format!("f{f:03}.bin")),
            common::noise(5000, (f + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        )
        .unwrap();
    }
    let reads = Arc::new(Mutex::new(HashMap::new()));
    let counted = reads.clone();
    let backend = Arc::new(Intercept::new(
        MemoryBackend::new(),
        Box::new(move |call| {
            if let Call::Read(FileKind::Pack, id) = call {
                *counted.lock().unwrap().entry(*id).or_insert(0u32) += 1;
            }
            Ok(())
        }),
    ));
    Repository::init(backend.clone(), b"pw", &common::fast_init()).unwrap();
    let mut repo = Repository::open(backend.clone(), b"pw").unwrap();
    let summary = repo
        .backup(
            std::slice::from_ref(&src),
            &BackupOptions::default(),
            &NoProgress,
        )
        .unwrap();
    assert_eq!(summary.snapshot.summary.files_new, 200);
    // The data pack is the large one; the other holds the trees.
    let data_pack = backend
        .list(FileKind::Pack)
        .unwrap()
        .into_iter()
        .max_by_key(|(_, size)| *size)
        .unwrap()
        .0;
    let snapshot = repo.find_snapshot("latest").unwrap();
    let data_reads = || reads.lock().unwrap().get(&data_pack).copied().unwrap_or(0);

    let options = RestoreOptions {
        threads: 1,
        ..RestoreOptions::default()
    };
    let target = tmp.path().join("restored");
    repo.restore(&snapshot, &target, &options, &NoProgress)
        .unwrap();
    assert_eq!(data_reads(), 1);

    let mut tar = Vec::new();
    repo.dump_archive(
        &snapshot,
        &src,
        ArchiveFormat::Tar,
        &mut tar,
        &CancelToken::new(),
    )
    .unwrap();
    assert!(tar.len() > 200 * 5000);
    assert_eq!(data_reads(), 2);
}
