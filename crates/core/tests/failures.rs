//! Storage failures during a backup: a clear error naming the object, a repository that
//! stays valid, and the caller's cancellation token left alone.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arca_backends::{
    BackendError, Call, ErrorKind as BackendKind, FileKind, Intercept, MemoryBackend,
};
use arca_core::{BackupOptions, CancelToken, ErrorKind, InitOptions, NoProgress, Repository};

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
