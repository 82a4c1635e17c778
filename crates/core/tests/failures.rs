//! Storage failures during a backup: a clear error naming the object, a repository that
//! stays valid, and the caller's cancellation token left alone. During a check: the
//! pack named, and what was read before the failure still verified.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use arca_backends::{
    BackendError, Call, ErrorKind as BackendKind, FileKind, Intercept, MemoryBackend,
};
use arca_backends::{ReadBackend, WriteBackend};
use arca_core::{
    BackupOptions, CancelToken, CheckOptions, ErrorKind, InitOptions, NoProgress, Repository,
};

/// A backend whose pack writes fail while `broken` is set.
fn breakable(broken: Arc<AtomicBool>) -> Intercept<MemoryBackend> {
    Intercept::new(
        MemoryBackend::new(),
        Box::new(move |call| match call {
            Call::Write(FileKind::Pack, id, _) if broken.load(Ordering::SeqCst) => {
                Err(BackendError::new(
                    BackendKind::Permanent,
                    "write",
                    format!("memory:data/{id}"),
                    "disk full",
                ))
            }
            _ => Ok(()),
        }),
    )
}

#[test]
fn a_failing_backend_stops_the_backup_cleanly() {
    let broken = Arc::new(AtomicBool::new(false));
    let backend = Arc::new(breakable(broken.clone()));
    // Small packs, so that packs fill and upload inside the worker threads.
    let init = InitOptions {
        pack_size: 1 << 20,
        ..common::fast_init()
    };
    let mut repo = Repository::init(backend.clone(), b"pw", &init).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a"), vec![7u8; 3 << 20]).unwrap();
    let paths = [dir.path().to_path_buf()];
    repo.backup(&paths, &BackupOptions::default(), &NoProgress)
        .unwrap();

    let noise = common::noise(8_000_000, 0x2545_f491_4f6c_dd1d);
    std::fs::write(dir.path().join("b"), noise).unwrap();
    broken.store(true, Ordering::SeqCst);
    let cancel = CancelToken::new();
    let options = BackupOptions {
        cancel: cancel.clone(),
        ..Default::default()
    };
    let err = repo.backup(&paths, &options, &NoProgress).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Backend, "{err}");
    assert!(err.to_string().contains("memory:data/"), "{err}");
    assert!(
        !cancel.is_cancelled(),
        "a failed backup cancelled the caller's token"
    );

    // The repository is still valid and still has exactly the first snapshot.
    broken.store(false, Ordering::SeqCst);
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    assert_eq!(repo.snapshots().unwrap().len(), 1);
    common::assert_checks_clean(&repo);
}

#[test]
fn a_pack_unreadable_partway_is_named_by_check_and_its_start_still_verified() {
    let memory = Arc::new(MemoryBackend::new());
    let mut repo = Repository::init(memory.clone(), b"pw", &common::fast_init()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("big"), common::noise(12 << 20, 7)).unwrap();
    repo.backup(
        &[dir.path().to_path_buf()],
        &BackupOptions::default(),
        &NoProgress,
    )
    .unwrap();
    let packs = memory.list(FileKind::Pack).unwrap();
    let (big, big_len) = packs.iter().copied().max_by_key(|(_, len)| *len).unwrap();
    assert!(big_len > 8 << 20, "one pack holds the file: {packs:?}");

    // The big pack's first read (its first window) succeeds, the next fails.
    let reads = AtomicU32::new(0);
    let backend: Arc<dyn WriteBackend> = Arc::new(Intercept::new(
        memory.clone(),
        Box::new(move |call| match call {
            Call::Read(FileKind::Pack, id) if *id == big => {
                if reads.fetch_add(1, Ordering::SeqCst) == 0 {
                    return Ok(());
                }
                Err(BackendError::new(
                    BackendKind::Transient,
                    "read",
                    format!("memory:data/{id}"),
                    "connection reset",
                ))
            }
            _ => Ok(()),
        }),
    ));
    let repo = Repository::open(backend, b"pw").unwrap();
    let options = CheckOptions {
        read_data: true,
        ..Default::default()
    };
    let report = repo.check(&options, &NoProgress).unwrap();
    let about_pack: Vec<_> = report
        .errors
        .iter()
        .filter(|p| p.object == format!("pack {big}"))
        .collect();
    assert_eq!(about_pack.len(), 1, "{:?}", report.errors);
    assert!(
        about_pack[0].message.starts_with("unreadable: ")
            && about_pack[0].message.contains("connection reset"),
        "{:?}",
        about_pack[0]
    );
    // The first window was read and verified; nothing in it is reported.
    let others: u64 = packs
        .iter()
        .filter(|(id, _)| *id != big)
        .map(|(_, l)| l)
        .sum();
    assert!(report.bytes_read > others && report.bytes_read < others + big_len);
    assert!(
        report
            .errors
            .iter()
            .all(|p| !p.message.contains("authentic")),
        "{:?}",
        report.errors
    );
    assert!(
        report
            .errors
            .iter()
            .any(|p| p.object.ends_with("/big") && p.message.contains("its pack is unreadable")),
        "the file that needs the unread chunks is named: {:?}",
        report.errors
    );
}
