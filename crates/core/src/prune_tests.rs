use std::path::{Path, PathBuf};
use std::sync::Arc;

use arca_backends::{BackendError, Call, Intercept, MemoryBackend, WriteBackend};

use super::*;
use crate::testing::random_bytes;
use crate::{BackupOptions, NoProgress, RestoreOptions, SnapshotInfo};

struct Fixture {
    _dir: tempfile::TempDir,
    src: PathBuf,
    backend: Arc<dyn WriteBackend>,
}

impl Fixture {
    fn new() -> Self {
        let (dir, src) = crate::testing::source_dir();
        let backend: Arc<dyn WriteBackend> = Arc::new(MemoryBackend::new());
        Repository::init(backend.clone(), b"pw", &crate::testing::fast_init(1 << 20)).unwrap();
        Self {
            _dir: dir,
            src,
            backend,
        }
    }

    fn open(&self) -> Repository {
        Repository::open(self.backend.clone(), b"pw").unwrap()
    }

    fn backup(&self) -> SnapshotInfo {
        let mut repo = self.open();
        let summary = repo
            .backup(
                std::slice::from_ref(&self.src),
                &BackupOptions::default(),
                &NoProgress,
            )
            .unwrap();
        repo.find_snapshot(&summary.snapshot_id.unwrap().to_string())
            .unwrap()
    }

    fn check(&self) {
        crate::testing::assert_checks_clean(&self.open());
    }

    fn restores(&self, snapshot: &SnapshotInfo, files: &[(&str, &[u8])]) {
        let out = tempfile::tempdir().unwrap();
        let repo = self.open();
        repo.restore(
            snapshot,
            out.path(),
            &RestoreOptions::default(),
            &NoProgress,
        )
        .unwrap();
        let base = out.path().join(self.src.strip_prefix("/").unwrap());
        for (name, data) in files {
            assert_eq!(&std::fs::read(base.join(name)).unwrap(), data, "{name}");
        }
    }
}

fn write(dir: &Path, name: &str, data: &[u8]) {
    std::fs::write(dir.join(name), data).unwrap();
}

#[test]
fn prune_frees_what_forgotten_snapshots_alone_used() {
    let f = Fixture::new();
    let (a, b, c) = (
        random_bytes(3 << 20, 1),
        random_bytes(2 << 20, 2),
        random_bytes(1 << 20, 3),
    );
    write(&f.src, "a", &a);
    write(&f.src, "b", &b);
    let first = f.backup();
    std::fs::remove_file(f.src.join("a")).unwrap();
    write(&f.src, "c", &c);
    let second = f.backup();
    let repo = f.open();
    repo.forget_snapshots(&[first.id]).unwrap();

    let mut repo = f.open();
    let dry = repo
        .prune(&PruneOptions {
            dry_run: true,
            ..PruneOptions::default()
        })
        .unwrap();
    assert!(dry.packs_to_delete + dry.packs_to_repack > 0, "{dry:?}");
    assert_eq!(dry.packs_deleted, 0);
    let before = f.backend.list(FileKind::Pack).unwrap().len();
    assert_eq!(before as u64, dry.packs_total);

    // With --max-unused 0% everything unused goes, so that a second run has nothing
    // left to do (with 5%, what is left may exceed 5% of the smaller repository).
    let all = PruneOptions {
        max_unused: 0.0,
        ..PruneOptions::default()
    };
    let report = repo.prune(&all).unwrap();
    assert_eq!(report.packs_waiting, 0, "{report:?}");
    assert!(report.bytes_freed >= 3 << 20, "{report:?}");
    assert!(repo.locks().unwrap().holders.is_empty());
    assert!(repo.locks().unwrap().plans.is_empty());
    f.check();
    f.restores(&second, &[("b", &b), ("c", &c)]);
    // A second run has nothing to do.
    let again = f.open().prune(&all).unwrap();
    assert_eq!(
        (again.packs_to_delete, again.packs_to_repack),
        (0, 0),
        "{again:?}"
    );
}

#[test]
fn packs_condemned_beside_a_running_backup_wait_and_are_rescued_if_needed() {
    let f = Fixture::new();
    let old = random_bytes(2 << 20, 7);
    write(&f.src, "old", &old);
    let first = f.backup();
    std::fs::remove_file(f.src.join("old")).unwrap();
    write(&f.src, "new", b"new");
    let second = f.backup();
    let repo = f.open();
    repo.forget_snapshots(&[first.id]).unwrap();

    // A backup is running (its session is registered) while prune condemns "old".
    let running = repo.begin_session("backup").unwrap();
    let report = f.open().prune(&PruneOptions::default()).unwrap();
    assert!(report.packs_waiting > 0, "{report:?}");
    assert_eq!(report.packs_deleted, 0, "{report:?}");
    assert_eq!(report.waiting_for.len(), 1);
    assert!(report.waiting_for[0].starts_with("backup (pid"));
    // While it runs, a later prune deletes nothing either.
    let report = f.open().prune(&PruneOptions::default()).unwrap();
    assert_eq!(report.packs_deleted, 0, "{report:?}");

    // That backup had loaded the index before the prune: it deduplicated against the
    // condemned data and commits a snapshot that needs it (as the forgotten one did).
    let resurrected = repo.repo.save_snapshot(&first.snapshot).unwrap();
    drop(running);

    // The next prune finds the snapshot, keeps the data and indexes it again.
    let report = f.open().prune(&PruneOptions::default()).unwrap();
    assert!(report.packs_rescued > 0, "{report:?}");
    assert_eq!(report.packs_waiting, 0);
    f.check();
    let back = f.open().find_snapshot(&resurrected.to_string()).unwrap();
    f.restores(&back, &[("old", &old)]);
    f.restores(&second, &[("new", b"new")]);
}

#[test]
fn a_killed_prune_leaves_work_the_next_run_finishes() {
    let f = Fixture::new();
    let data = random_bytes(2 << 20, 9);
    write(&f.src, "x", &data);
    let first = f.backup();
    write(&f.src, "x", b"small now");
    let second = f.backup();
    f.open().forget_snapshots(&[first.id]).unwrap();
    // What a prune killed after rewriting the index and before recording its plan
    // leaves: packs no index names. And a stray pack of a crashed backup.
    let stray = ObjectId::from_bytes([0xee; 32]);
    f.backend
        .write(
            FileKind::Pack,
            &stray,
            bytes::Bytes::from_static(b"partial upload"),
        )
        .unwrap();
    let report = f.open().prune(&PruneOptions::default()).unwrap();
    assert!(report.packs_deleted > 0, "{report:?}");
    assert!(f.backend.read_full(FileKind::Pack, &stray).is_err());
    f.check();
    f.restores(&second, &[("x", b"small now")]);
}

#[test]
fn damaged_snapshots_stop_prune() {
    let f = Fixture::new();
    write(&f.src, "x", b"x");
    let first = f.backup();
    let damaged = f.backend.read_full(FileKind::Snapshot, &first.id).unwrap();
    let mut bytes = damaged.to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    f.backend.remove(FileKind::Snapshot, &first.id).unwrap();
    f.backend
        .write(FileKind::Snapshot, &first.id, bytes::Bytes::from(bytes))
        .unwrap();
    let err = f.open().prune(&PruneOptions::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert!(err.to_string().contains(&first.id.to_string()), "{err}");
    assert_eq!(f.backend.list(FileKind::Lock).unwrap().len(), 0);
}

/// `backend`, running `hook` once, at the first listing of `locks/` after `snapshots/`
/// was listed: in a prune, during or right after its survey.
fn hooked(backend: Arc<dyn WriteBackend>, hook: Box<dyn FnOnce() + Send>) -> Arc<dyn WriteBackend> {
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    let seen_snapshots = AtomicBool::new(false);
    let hook = std::sync::Mutex::new(Some(hook));
    Arc::new(Intercept::new(
        backend,
        Box::new(move |call| {
            match call {
                Call::List(FileKind::Snapshot) => seen_snapshots.store(true, SeqCst),
                Call::List(FileKind::Lock) if seen_snapshots.load(SeqCst) => {
                    let once = hook.lock().unwrap_or_else(|e| e.into_inner()).take();
                    if let Some(h) = once {
                        h();
                    }
                }
                _ => {}
            }
            Ok(())
        }),
    ))
}

#[test]
fn a_backup_ending_while_prune_surveys_loses_nothing() {
    // Found in review: a prune that decided which plans were ready after its survey
    // deleted data a backup committed during the survey.
    let f = Fixture::new();
    let old = random_bytes(2 << 20, 7);
    write(&f.src, "old", &old);
    let first = f.backup();
    std::fs::remove_file(f.src.join("old")).unwrap();
    write(&f.src, "new", b"new");
    f.backup();
    let repo = f.open();
    repo.forget_snapshots(&[first.id]).unwrap();
    // A backup runs while prune 1 condemns "old": plan 1 waits for it.
    let running = repo.begin_session("backup").unwrap();
    let report = f.open().prune(&PruneOptions::default()).unwrap();
    assert!(report.packs_waiting > 0, "{report:?}");
    // During prune 2, the backup commits a snapshot that needs "old" and ends.
    let inner = f.backend.clone();
    let snapshot = first.snapshot.clone();
    let hooked = hooked(
        f.backend.clone(),
        Box::new(move || {
            let r = Repository::open(inner, b"pw").unwrap();
            r.repo.save_snapshot(&snapshot).unwrap();
            drop(running);
        }),
    );
    Repository::open(hooked, b"pw")
        .unwrap()
        .prune(&PruneOptions::default())
        .unwrap();
    f.check();
    // And a third prune, with every session gone, keeps it too.
    let report = f.open().prune(&PruneOptions::default()).unwrap();
    assert_eq!(report.packs_waiting, 0, "{report:?}");
    f.check();
}

#[test]
fn a_long_lived_handle_reloads_an_index_prune_rewrote() {
    // Found in review: a handle made by init knew no index file, so it never noticed
    // a prune and deduplicated against deleted packs.
    let f = Fixture::new();
    let mut handle = f.open();
    let data = random_bytes(2 << 20, 11);
    write(&f.src, "a", &data);
    let first = handle
        .backup(
            std::slice::from_ref(&f.src),
            &BackupOptions::default(),
            &NoProgress,
        )
        .unwrap();
    f.open()
        .forget_snapshots(&[first.snapshot_id.unwrap()])
        .unwrap();
    f.open().prune(&PruneOptions::default()).unwrap();
    let second = handle
        .backup(
            std::slice::from_ref(&f.src),
            &BackupOptions::default(),
            &NoProgress,
        )
        .unwrap();
    assert!(second.snapshot.summary.bytes_added_raw >= 2 << 20);
    f.check();
}

/// How many index entries name each pack, over every index file.
fn index_entries_per_pack(repo: &Repository) -> std::collections::HashMap<ObjectId, usize> {
    let mut count = std::collections::HashMap::new();
    for (id, _) in repo.repo.list(FileKind::Index).unwrap() {
        for p in repo.repo.load_index(&id).unwrap().packs {
            *count.entry(p.id).or_default() += p.entries.len();
        }
    }
    count
}

/// A prune that rescues packs and also deletes others replaces the index files it
/// wrote for the rescue along with the ones it loaded: no pack is indexed twice.
#[test]
fn a_rescue_and_a_deletion_in_one_prune_leave_each_pack_indexed_once() {
    let f = Fixture::new();
    let old = random_bytes(2 << 20, 11);
    write(&f.src, "old", &old);
    let first = f.backup();
    std::fs::remove_file(f.src.join("old")).unwrap();
    let gone = random_bytes(2 << 20, 12);
    write(&f.src, "gone", &gone);
    let second = f.backup();
    std::fs::remove_file(f.src.join("gone")).unwrap();
    write(&f.src, "new", b"new");
    let third = f.backup();
    let repo = f.open();
    repo.forget_snapshots(&[first.id]).unwrap();
    // "old" is condemned beside a running backup that then brings it back.
    let running = repo.begin_session("backup").unwrap();
    f.open().prune(&PruneOptions::default()).unwrap();
    repo.repo.save_snapshot(&first.snapshot).unwrap();
    drop(running);
    // Now "gone" goes while "old" is rescued, in one run.
    repo.forget_snapshots(&[second.id]).unwrap();
    let report = f.open().prune(&PruneOptions::default()).unwrap();
    assert!(report.packs_rescued > 0, "{report:?}");
    assert!(report.packs_deleted > 0, "{report:?}");
    let repo = f.open();
    let entries: usize = repo.index.iter().count();
    let per_pack = index_entries_per_pack(&repo);
    assert_eq!(per_pack.values().sum::<usize>(), entries, "{per_pack:?}");
    f.check();
    f.restores(&third, &[("new", b"new")]);
}

/// A snapshot rewritten by `tag` while prune reads the snapshots (the old file gone
/// before it is read, the new one not in the listing) is still seen: prune lists again.
#[test]
fn a_snapshot_retagged_during_the_survey_keeps_its_data() {
    let f = Fixture::new();
    let data = random_bytes(2 << 20, 21);
    write(&f.src, "data", &data);
    let first = f.backup();
    let inner = f.backend.clone();
    let target = first.id;
    let once = std::sync::Mutex::new(Some(first.clone()));
    let hooked: Arc<dyn WriteBackend> = Arc::new(Intercept::new(
        f.backend.clone(),
        Box::new(move |call| {
            if let Call::Read(FileKind::Snapshot, id) = call
                && *id == target
                && let Some(snapshot) = once.lock().unwrap_or_else(|e| e.into_inner()).take()
            {
                let r = Repository::open(inner.clone(), b"pw").unwrap();
                r.retag(&snapshot, None, &["kept".to_owned()], &[]).unwrap();
            }
            Ok(())
        }),
    ));
    let report = Repository::open(hooked, b"pw")
        .unwrap()
        .prune(&PruneOptions {
            max_unused: 0.0,
            ..PruneOptions::default()
        })
        .unwrap();
    assert_eq!(report.snapshots, 1, "{report:?}");
    assert_eq!(report.packs_deleted, 0, "{report:?}");
    f.check();
    let retagged = f.open().find_snapshot("latest").unwrap();
    assert_eq!(retagged.snapshot.tags, vec!["kept".to_owned()]);
    f.restores(&retagged, &[("data", &data)]);
}

/// A snapshot that is listed but vanishes at every read (a rewrite that keeps racing
/// the survey) stops prune before it deletes anything: an incomplete list of snapshots
/// could condemn the rewritten snapshot's data.
#[test]
fn prune_gives_up_when_snapshots_keep_vanishing() {
    let f = Fixture::new();
    let data = random_bytes(1 << 20, 22);
    write(&f.src, "data", &data);
    let first = f.backup();
    let target = first.id;
    let vanishing: Arc<dyn WriteBackend> = Arc::new(Intercept::new(
        f.backend.clone(),
        Box::new(move |call| match call {
            Call::Read(FileKind::Snapshot, id) if *id == target => Err(
                arca_backends::BackendError::not_found("read", format!("snapshots/{id}")),
            ),
            _ => Ok(()),
        }),
    ));
    let packs_before = f.backend.list(FileKind::Pack).unwrap().len();
    let err = Repository::open(vanishing, b"pw")
        .unwrap()
        .prune(&PruneOptions::default())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Interrupted, "{err}");
    assert!(err.to_string().contains("kept vanishing"), "{err}");
    assert_eq!(f.backend.list(FileKind::Pack).unwrap().len(), packs_before);
    assert_eq!(f.backend.list(FileKind::Lock).unwrap().len(), 0);
    f.check();
    f.restores(&first, &[("data", &data)]);
}

/// Partly used packs are repacked: within --max-repack-size only, into new packs
/// holding each used blob once, and the data restores.
#[test]
fn partly_used_packs_are_repacked_within_the_budget() {
    let f = Fixture::new();
    // Files above the bundling limit (256 KiB), so each is a chunk of its own.
    let files: Vec<(String, Vec<u8>)> = (0..20)
        .map(|i| (format!("f{i:02}"), random_bytes(300_000, 100 + i)))
        .collect();
    for (name, data) in &files {
        write(&f.src, name, data);
    }
    let first = f.backup();
    // Half of the files go: their packs are half used.
    for (name, _) in files.iter().step_by(2) {
        std::fs::remove_file(f.src.join(name)).unwrap();
    }
    let second = f.backup();
    f.open().forget_snapshots(&[first.id]).unwrap();
    let all = |max_repack_size| PruneOptions {
        max_unused: 0.0,
        max_repack_size,
        dry_run: true,
        ..PruneOptions::default()
    };
    let within = f.open().prune(&all(Some(1))).unwrap();
    assert_eq!(within.packs_to_repack, 0, "{within:?}");
    let plan = f.open().prune(&all(None)).unwrap();
    assert!(plan.packs_to_repack > 0, "{plan:?}");
    let report = f
        .open()
        .prune(&PruneOptions {
            dry_run: false,
            ..all(None)
        })
        .unwrap();
    assert!(report.packs_written > 0, "{report:?}");
    assert_eq!(report.packs_waiting, 0, "{report:?}");
    // Each kept blob is in exactly one pack, and nothing unused is left.
    let repo = f.open();
    let per_pack = index_entries_per_pack(&repo);
    assert_eq!(per_pack.values().sum::<usize>(), repo.index.iter().count());
    let again = f.open().prune(&all(None)).unwrap();
    assert_eq!(again.unused_bytes, 0, "{again:?}");
    f.check();
    let kept: Vec<(&str, &[u8])> = files
        .iter()
        .skip(1)
        .step_by(2)
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    f.restores(&second, &kept);
}

#[test]
fn prune_removes_temporaries_of_dead_writes_when_no_session_is_registered() {
    let (_dir, src) = crate::testing::source_dir();
    write(&src, "a", b"a");
    let repo_dir = tempfile::tempdir().unwrap();
    let backend: Arc<dyn WriteBackend> =
        Arc::new(arca_backends::LocalBackend::new(repo_dir.path().join("r")));
    Repository::init(backend.clone(), b"pw", &crate::testing::fast_init(1 << 20)).unwrap();
    let mut repo = Repository::open(backend, b"pw").unwrap();
    repo.backup(&[src], &BackupOptions::default(), &NoProgress)
        .unwrap();
    // What a killed backup leaves: a pack's temporary file, two hours old; and one a
    // write begun a moment ago has.
    let dead = repo_dir.path().join("r/data/00/.tmp-dead");
    let young = repo_dir.path().join("r/index/.tmp-young");
    std::fs::write(&dead, b"partial").unwrap();
    std::fs::write(&young, b"partial").unwrap();
    let two_hours_ago = SystemTime::now() - Duration::from_secs(2 * 3600);
    std::fs::File::options()
        .write(true)
        .open(&dead)
        .unwrap()
        .set_modified(two_hours_ago)
        .unwrap();

    let running = repo.begin_session("backup").unwrap();
    let report = repo.prune(&PruneOptions::default()).unwrap();
    assert_eq!(report.temporaries_removed, 0, "a session is registered");
    drop(running);
    let dry_run = PruneOptions {
        dry_run: true,
        ..Default::default()
    };
    assert_eq!(repo.prune(&dry_run).unwrap().temporaries_removed, 0);
    assert!(dead.exists() && young.exists());

    let report = repo.prune(&PruneOptions::default()).unwrap();
    assert_eq!(report.temporaries_removed, 1);
    assert!(!dead.exists() && young.exists());
    crate::testing::assert_checks_clean(&repo);
}

#[test]
fn a_failure_to_remove_temporaries_is_a_warning_not_a_failed_prune() {
    let f = Fixture::new();
    write(&f.src, "a", b"a");
    let first = f.backup();
    f.open().forget_snapshots(&[first.id]).unwrap();
    let backend: Arc<dyn WriteBackend> = Arc::new(Intercept::new(
        f.backend.clone(),
        Box::new(|call| match call {
            Call::RemoveTemporaries => Err(BackendError::new(
                arca_backends::ErrorKind::Transient,
                call.operation(),
                "sftp://host/repo",
                "connection reset",
            )),
            _ => Ok(()),
        }),
    ));
    let mut repo = Repository::open(backend, b"pw").unwrap();
    let report = repo.prune(&PruneOptions::default()).unwrap();
    assert_eq!(report.warnings.len(), 1, "{report:?}");
    assert!(
        report.warnings[0].contains("connection reset"),
        "{:?}",
        report.warnings
    );
    assert!(
        report.packs_deleted > 0,
        "the prune did its work: {report:?}"
    );
}
