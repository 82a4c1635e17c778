//! How many storage requests reading a repository takes: a remote one answers each
//! after a round trip, so a request per directory tree made `check` take minutes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arca_backends::{Call, FileKind, Intercept, MemoryBackend, ReadBackend, WriteBackend};
use arca_core::{BackupOptions, CheckOptions, NoProgress, Repository};

#[test]
fn check_reads_each_tree_pack_once_not_each_tree() {
    let memory = Arc::new(MemoryBackend::new());
    let mut repo = Repository::init(memory.clone(), b"pw", &common::fast_init()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for i in 0..300 {
        let sub = dir.path().join(format!("d{i}")).join("e");
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join("f"), format!("file {i}")).unwrap();
    }
    repo.backup(
        &[dir.path().to_path_buf()],
        &BackupOptions::default(),
        &NoProgress,
    )
    .unwrap();
    let packs = memory.list(FileKind::Pack).unwrap().len() as u64;

    let reads = Arc::new(AtomicU64::new(0));
    let counted = reads.clone();
    let backend: Arc<dyn WriteBackend> = Arc::new(Intercept::new(
        memory,
        Box::new(move |call| {
            if let Call::Read(FileKind::Pack, _) = call {
                counted.fetch_add(1, Ordering::SeqCst);
            }
            Ok(())
        }),
    ));
    let repo = Repository::open(backend, b"pw").unwrap();
    let report = repo.check(&CheckOptions::default(), &NoProgress).unwrap();
    assert!(report.is_ok(), "{:?}", report.errors);
    assert!(report.trees > 600, "{}", report.trees);
    let reads = reads.load(Ordering::SeqCst);
    assert!(
        reads <= packs,
        "{reads} pack reads for {} trees in {packs} packs",
        report.trees
    );
}
