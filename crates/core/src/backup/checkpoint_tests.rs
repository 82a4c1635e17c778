use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use arca_backends::FileKind;

use crate::progress::{BackupProgress, CancelToken, FileStatus};
use crate::testing::random_bytes;
use crate::{BackupOptions, ErrorKind, NoProgress, Repository, RestoreOptions, SnapshotInfo};

/// 60 small files of distinct content in three directories (one nested).
fn source(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for (d, dir) in ["a", "b", "c/d"].iter().enumerate() {
        std::fs::create_dir_all(root.join(dir)).unwrap();
        for i in 0..20 {
            let rel = PathBuf::from(dir).join(format!("f{i:02}"));
            let data = random_bytes(20_000 + i * 100, (d * 100 + i) as u64 + 1);
            std::fs::write(root.join(&rel), &data).unwrap();
            files.push((rel, data));
        }
    }
    files
}

/// Cancels the backup once `after` files are done.
struct CancelAfter {
    after: usize,
    done: AtomicUsize,
    token: CancelToken,
}

impl BackupProgress for CancelAfter {
    fn file_done(&self, _path: &Path, _status: FileStatus, _size: u64) {
        if self.done.fetch_add(1, Ordering::SeqCst) + 1 == self.after {
            self.token.cancel();
        }
    }
}

/// Over every data entry of every pack: how many repeat an entry of another (or the
/// same) pack, and the plaintext bytes of them all. No content was stored twice when the
/// first is 0 and the second the sum of the files' sizes (a file's bytes in two
/// bundles would not repeat an id).
fn data_stored(repo: &Repository) -> (usize, u64) {
    let mut seen = std::collections::HashSet::new();
    let (mut twice, mut bytes) = (0, 0);
    for (id, len) in repo.repo.list(FileKind::Pack).unwrap() {
        let (entries, _) = repo.repo.read_pack_entries(&id, len).unwrap().unwrap();
        for e in entries
            .iter()
            .filter(|e| e.blob_type == arca_repo::BlobType::Data)
        {
            bytes += u64::from(e.raw_len);
            if !seen.insert(e.id) {
                twice += 1;
            }
        }
    }
    assert!(!seen.is_empty());
    (twice, bytes)
}

fn total_size(files: &[(PathBuf, Vec<u8>)]) -> u64 {
    files.iter().map(|(_, d)| d.len() as u64).sum()
}

/// Restores `snapshot` and returns the files it holds below `src`, each compared with
/// the source.
fn restored_files(
    repo: &Repository,
    snapshot: &SnapshotInfo,
    src: &Path,
    files: &[(PathBuf, Vec<u8>)],
) -> usize {
    let target = tempfile::tempdir().unwrap();
    repo.restore(
        snapshot,
        target.path(),
        &RestoreOptions::default(),
        &NoProgress,
    )
    .unwrap();
    let base = target.path().join(src.strip_prefix("/").unwrap());
    let mut found = 0;
    for (rel, data) in files {
        if let Ok(restored) = std::fs::read(base.join(rel)) {
            assert_eq!(&restored, data, "{}", rel.display());
            found += 1;
        }
    }
    found
}

#[test]
fn a_finished_backup_replaces_its_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let files = source(&src);
    let (_, mut repo) = crate::testing::memory_repository_with(1 << 20);
    let options = BackupOptions {
        checkpoint_interval: Some(std::time::Duration::ZERO),
        threads: 2,
        ..BackupOptions::default()
    };
    let summary = repo
        .backup(std::slice::from_ref(&src), &options, &NoProgress)
        .unwrap();
    // One checkpoint between entries of the walk: at least one per file.
    assert!(summary.checkpoints >= 60, "{}", summary.checkpoints);
    let snapshots = repo.snapshots().unwrap();
    assert_eq!(snapshots.len(), 1, "every checkpoint was replaced");
    assert!(!snapshots[0].snapshot.checkpoint);
    assert_eq!(snapshots[0].snapshot.summary.files_new, 60);
    assert_eq!(restored_files(&repo, &snapshots[0], &src, &files), 60);
    assert_eq!(data_stored(&repo), (0, total_size(&files)));
    crate::testing::assert_checks_clean(&repo);
}

#[test]
fn an_interrupted_backup_leaves_a_checkpoint_the_next_one_resumes_from() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let files = source(&src);
    // Files changed less than a second before a backup started are read again by the
    // next one (design.md §15): let them settle.
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let (backend, mut repo) = crate::testing::memory_repository_with(1 << 20);
    let token = CancelToken::new();
    let progress = CancelAfter {
        after: 30,
        done: AtomicUsize::new(0),
        token: token.clone(),
    };
    let options = BackupOptions {
        checkpoint_interval: Some(std::time::Duration::ZERO),
        cancel: token,
        threads: 2,
        ..BackupOptions::default()
    };
    let err = repo
        .backup(std::slice::from_ref(&src), &options, &progress)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Interrupted, "{err}");

    // A fresh handle, as after a crash: the checkpoint is there and restorable.
    let mut repo = Repository::open(backend.clone(), b"pw").unwrap();
    let snapshots = repo.snapshots().unwrap();
    assert_eq!(snapshots.len(), 1);
    let checkpoint = snapshots[0].clone();
    assert!(checkpoint.snapshot.checkpoint);
    let held = restored_files(&repo, &checkpoint, &src, &files);
    assert!(
        (25..60).contains(&held),
        "the checkpoint holds {held} files"
    );
    assert_eq!(checkpoint.snapshot.summary.files_new, held as u64);
    crate::testing::assert_checks_clean(&repo);
    // `latest` names complete snapshots only.
    let err = repo.find_snapshot("latest").unwrap_err().to_string();
    assert!(err.contains("only 1 checkpoint"), "{err}");

    // The next backup takes the checkpoint as its parent: what it holds is neither
    // read nor uploaded again.
    let summary = repo
        .backup(
            std::slice::from_ref(&src),
            &BackupOptions::default(),
            &NoProgress,
        )
        .unwrap();
    assert_eq!(summary.parent, Some(checkpoint.id));
    let s = &summary.snapshot.summary;
    assert_eq!(s.files_unchanged, held as u64);
    assert_eq!(s.files_new + s.files_changed, 60 - held as u64);
    let held_bytes: u64 = files.iter().take(held).map(|(_, d)| d.len() as u64).sum();
    let all_bytes = total_size(&files);
    assert_eq!(s.bytes_read, all_bytes - held_bytes);
    assert_eq!(data_stored(&repo), (0, all_bytes));
    let latest = repo.find_snapshot("latest").unwrap();
    assert_eq!(restored_files(&repo, &latest, &src, &files), 60);
    crate::testing::assert_checks_clean(&repo);

    // forget lets the superseded checkpoint go, whatever the rules keep.
    let policy = crate::KeepPolicy {
        last: Some(crate::KeepCount::All),
        ..crate::KeepPolicy::default()
    };
    let plan = repo
        .forget_plan(
            &policy,
            crate::GroupBy::default(),
            &crate::SnapshotFilter::default(),
        )
        .unwrap();
    let gone: Vec<_> = plan
        .iter()
        .flat_map(|g| &g.decisions)
        .filter(|d| !d.keep)
        .map(|d| d.snapshot.id)
        .collect();
    assert_eq!(gone, vec![checkpoint.id]);
}
