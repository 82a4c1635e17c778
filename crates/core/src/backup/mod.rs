//! `backup`: turn source paths into a snapshot.
//!
//! Threads: a walker lists directories and reads metadata ([`walk`]); the calling
//! thread compares with the parent snapshot and builds trees ([`archiver`]); file
//! workers read, chunk and name content ([`reader`]); blob workers compress, encrypt and
//! pack ([`saver`]); an optional scanner estimates the totals for progress. Bounded
//! channels between them keep memory bounded (the archiver's module documentation
//! gives the bound). The snapshot is written only after every pack it
//! needs and the index naming those packs are durable.

mod archiver;
mod bundle;
mod checkpoint;
mod files;
mod reader;
mod saver;
mod scan;
mod sources;
mod stream;
mod walk;

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arca_backends::ObjectId;
use arca_repo::{Compression, Index, IndexFile, IndexedPack, Snapshot, SnapshotSummary};
use crossbeam_channel::{bounded, unbounded};

use self::archiver::{Archiver, Counts, Walked};
use self::bundle::Bundler;
use self::checkpoint::Checkpoints;
use self::reader::{Abort, FileWorker, blob_worker};
pub(crate) use self::saver::BlobSaver;
use self::saver::SaverStats;
pub(crate) use self::sources::{is_cache_dir_at, normalize};
use self::sources::{normalize_sources, path_bytes, source_entries};
use self::walk::{Root, Walker};
use crate::dir_handle::raise_open_file_limit;
use crate::progress::{BackupProgress, CancelToken};
use crate::repository::{RepositoryStats, SnapshotInfo};
use crate::selection::{Filter, FilterRule, Selector};
use crate::{Error, ErrorKind, Repository, Result};

/// Index files are split so that none holds more than this many blobs.
pub(crate) const INDEX_FILE_MAX_BLOBS: usize = 200_000;

/// Settings for [`Repository::backup`].
#[derive(Debug, Clone, Default)]
pub struct BackupOptions {
    /// Exclude patterns (see [`crate::PatternSet`] for the language). They are checked
    /// before `filter_rules`, so they always exclude.
    pub excludes: Vec<String>,
    /// Exclude patterns matched without regard to case.
    pub iexcludes: Vec<String>,
    /// Ordered include/exclude rules, e.g. from a filter file; the first match decides
    /// (see [`crate::Filter`]).
    pub filter_rules: Vec<FilterRule>,
    /// Keep only the `CACHEDIR.TAG` file of directories tagged as caches.
    pub exclude_caches: bool,
    /// Skip directories that contain a file of one of these names.
    pub exclude_if_present: Vec<String>,
    /// Skip files larger than this many bytes.
    pub exclude_larger_than: Option<u64>,
    /// Stay on the file system of each source: do not descend into mount points.
    pub one_file_system: bool,
    /// Tags to record.
    pub tags: Vec<String>,
    /// Host name to record instead of this machine's.
    pub host: Option<String>,
    /// Compression for this backup instead of the repository default.
    pub compression: Option<Compression>,
    /// Worker threads per stage; 0 means one per CPU.
    pub threads: usize,
    /// Estimate the totals with a concurrent scan, for progress display.
    pub estimate: bool,
    /// Go through everything, report what would be stored, write nothing.
    pub dry_run: bool,
    /// Write no snapshot if nothing backed up changed since the parent snapshot (the
    /// same nodes, with the same contents, at every source path; no unreadable files).
    /// The directories above the sources are not compared.
    pub skip_if_unchanged: bool,
    /// Set to stop the backup early.
    pub cancel: CancelToken,
    /// The snapshot's time instead of the current time (imports of old backups,
    /// tests). It may not be in the future: the next backup trusts unchanged files by
    /// comparing their change times with it.
    pub time: Option<arca_repo::Timestamp>,
    /// Write a checkpoint snapshot this often during the backup (Borg users pass 600
    /// seconds): the entries backed up so far, restorable, marked as a checkpoint. If
    /// the backup is interrupted, the next one takes the checkpoint as its parent and
    /// neither reads nor uploads again what it holds. Each checkpoint replaces the
    /// previous one; the finished snapshot replaces the last. A checkpoint waits for
    /// the files being read to finish. Ignored for dry runs and stream backups.
    pub checkpoint_interval: Option<Duration>,
}

impl BackupOptions {
    /// Every include/exclude rule in the order they are checked: `excludes`,
    /// `iexcludes`, then `filter_rules`.
    fn all_rules(&self) -> Vec<FilterRule> {
        let mut rules: Vec<FilterRule> = self.excludes.iter().map(FilterRule::exclude).collect();
        rules.extend(self.iexcludes.iter().map(|p| FilterRule {
            pattern: p.clone(),
            include: false,
            case_insensitive: true,
        }));
        rules.extend(self.filter_rules.iter().cloned());
        rules
    }
}

/// The outcome of a backup.
#[derive(Debug, Clone)]
pub struct BackupSummary {
    /// The new snapshot's id; `None` for a dry run or a skipped unchanged snapshot.
    pub snapshot_id: Option<ObjectId>,
    /// The snapshot (its `summary` holds this backup's figures); not saved if
    /// `snapshot_id` is `None`.
    pub snapshot: Snapshot,
    /// Nothing changed since the parent and `skip_if_unchanged` was set: no snapshot.
    pub skipped: bool,
    /// This was a dry run: nothing was written.
    pub dry_run: bool,
    /// The snapshot whose metadata was used to skip unchanged files.
    pub parent: Option<ObjectId>,
    /// One line per source path that could not be (fully) read.
    pub warnings: Vec<String>,
    /// Totals over the repository after this backup.
    pub repository: RepositoryStats,
    /// Checkpoint snapshots written during the backup (each replaced by the next, the
    /// last by the finished snapshot).
    pub checkpoints: u64,
}

/// The parent snapshot: its id, root tree and start time, and whether it is a
/// checkpoint.
#[derive(Clone, Copy)]
struct Parent {
    id: ObjectId,
    tree: arca_repo::BlobId,
    time: arca_repo::Timestamp,
    checkpoint: bool,
}

/// What every kind of backup settles before it reads anything.
struct Prepared {
    started: Instant,
    /// The repository's snapshots when the backup started (for the totals).
    snapshots: Vec<SnapshotInfo>,
    parent: Option<Parent>,
    /// The backup's session (none for a dry run): registered before anything is
    /// uploaded, checked before the snapshot is written, ended when dropped.
    session: Option<crate::LockGuard>,
    /// The snapshot as far as settled before the walk: time, host, paths, user, tags,
    /// parent and selection (tree, summary and notes are filled in at the end).
    template: Snapshot,
}

/// What the blob pipeline produced, taken from the saver once every worker is done.
struct Stored {
    written: Vec<IndexedPack>,
    added: [u64; 4],
}

/// Flushes the saver if the walk succeeded, and takes what it stored.
fn drain(saver: BlobSaver<'_>, walked: Result<Walked>, abort: &Abort) -> (Result<Walked>, Stored) {
    let walked = walked.and_then(|w| {
        if abort.should_stop() {
            Err(abort.take_error())
        } else {
            saver.flush().map(|()| w)
        }
    });
    let added = added(&saver.stats);
    let written = saver.take_written();
    (walked, Stored { written, added })
}

/// What the saver added so far: raw bytes, stored bytes, data blobs, tree blobs.
fn added(stats: &SaverStats) -> [u64; 4] {
    [
        &stats.raw_bytes,
        &stats.stored_bytes,
        &stats.data_blobs,
        &stats.tree_blobs,
    ]
    .map(|c| c.load(Ordering::Relaxed))
}

/// A snapshot's figures from the walk's counts and what the saver added.
fn summary(counts: &Counts, added: [u64; 4], duration: Duration) -> SnapshotSummary {
    SnapshotSummary {
        duration_ms: duration.as_millis() as u64,
        files_new: counts.files_new,
        files_changed: counts.files_changed,
        files_unchanged: counts.files_unchanged,
        dirs_new: counts.dirs_new,
        dirs_changed: counts.dirs_changed,
        dirs_unchanged: counts.dirs_unchanged,
        other_entries: counts.other,
        bytes_total: counts.bytes_total,
        bytes_read: counts.bytes_read,
        bytes_stored_total: counts.stored_known,
        bytes_added_raw: added[0],
        bytes_added_stored: added[1],
        data_blobs_added: added[2],
        tree_blobs_added: added[3],
        chunks_total: counts.chunks_total,
        errors: counts.errors,
        changed_during_read: counts.changed_during_read,
    }
}

impl Repository {
    /// Backs up `paths` into a new snapshot.
    ///
    /// Files whose size, modification time, change time and inode match the parent
    /// snapshot (the latest with the same host and paths) are not read again. Files that
    /// cannot be read are skipped with a warning, and the snapshot records the number of
    /// such errors (it is then partial).
    ///
    /// # Errors
    /// `InvalidInput` for bad paths or patterns, `Interrupted` if cancelled, storage and
    /// repository errors. On error no snapshot is written; packs already uploaded are
    /// recorded in an index so a later backup does not upload them again.
    pub fn backup(
        &mut self,
        paths: &[PathBuf],
        options: &BackupOptions,
        progress: &dyn BackupProgress,
    ) -> Result<BackupSummary> {
        raise_open_file_limit();
        let sources = normalize_sources(paths)?;
        let rules = options.all_rules();
        let selector = Selector {
            filter: Filter::new(&rules)?,
            exclude_caches: options.exclude_caches,
            exclude_if_present: options
                .exclude_if_present
                .iter()
                .map(|n| n.as_bytes().to_vec())
                .collect(),
            larger_than: options.exclude_larger_than,
            one_file_system: options.one_file_system,
        };
        let prep = self.prepare(
            sources.iter().map(|p| path_bytes(p)).collect(),
            selector.to_lines(&rules),
            options,
        )?;
        let previous_root = prep.parent.map(|p| p.tree);
        let parent_time = prep.parent.map(|p| p.time);
        let threads = crate::system::worker_threads(options.threads);
        let abort = Abort::new(options.cancel.clone());
        let scan_done = AtomicBool::new(false);
        let saver = self.saver(options);
        let mut checkpoints = options
            .checkpoint_interval
            .filter(|_| !options.dry_run)
            .map(|every| Checkpoints::new(every, prep.started, prep.template.clone()));
        let root = Root::open(if sources.len() == 1 && sources[0] == Path::new("/") {
            None
        } else {
            Some(source_entries(&sources))
        })?;
        let root_is_source = root.is_source();
        let bundler = Bundler::for_chunks(&self.chunker.params());
        let walked = std::thread::scope(|s| {
            let (job_tx, job_rx) = bounded(threads * 4);
            let (blob_tx, blob_rx) = bounded(threads * 4);
            let (done_tx, done_rx) = unbounded();
            for _ in 0..threads {
                let worker = FileWorker {
                    repo: &self.repo,
                    chunker: &self.chunker,
                    bundler: &bundler,
                    saver: &saver,
                    blobs: blob_tx.clone(),
                    progress,
                    abort: &abort,
                };
                let (jobs, done) = (job_rx.clone(), done_tx.clone());
                s.spawn(move || worker.run(jobs, done));
                let blobs = blob_rx.clone();
                let (saver, abort) = (&saver, &abort);
                s.spawn(move || blob_worker(blobs, saver, abort));
            }
            drop((job_rx, blob_rx, done_tx));
            let (listing_tx, listing_rx) = bounded(walk::AHEAD);
            let walker = Walker {
                selector: &selector,
                abort: &abort,
            };
            s.spawn(move || walker.run(root, &listing_tx));
            let listings = walk::Listings::new(listing_rx);
            if options.estimate {
                let (sources, selector, abort, done) = (&sources, &selector, &abort, &scan_done);
                s.spawn(move || scan::estimate(sources, selector, progress, abort, done));
            }
            let mut archiver = Archiver::new(
                &self.repo,
                &self.index,
                &saver,
                &bundler,
                progress,
                &abort,
                job_tx,
                blob_tx,
                done_rx,
            );
            if let Some(t) = parent_time {
                archiver.set_parent_time(t);
            }
            archiver.checkpoints = checkpoints.as_mut();
            archiver.session = prep.session.as_ref();
            let result = archiver
                .run(root_is_source, listings, previous_root)
                .map(|mut w| {
                    w.top.retain(|(path, _)| sources.contains(path));
                    w
                });
            // The estimate is moot now; do not wait for it to finish its walk.
            scan_done.store(true, Ordering::SeqCst);
            if result.is_err() {
                // Stop the workers before the scope joins them.
                abort.stop();
            }
            result
        });
        let (walked, stored) = drain(saver, walked, &abort);
        self.commit(prep, walked, stored, options, checkpoints)
    }

    /// Whether the parent snapshot (root tree `parent`) holds exactly the nodes `top`
    /// at their paths. Only the backed-up paths count: the directories above them
    /// (their times change whenever a sibling does) do not. An unreadable parent tree
    /// counts as a difference.
    fn same_sources(&self, parent: &arca_repo::BlobId, top: &[(PathBuf, arca_repo::Node)]) -> bool {
        !top.is_empty()
            && top.iter().all(
                |(path, node)| matches!(self.node_at(parent, path), Ok(Some(old)) if old == *node),
            )
    }

    /// Backs up what `reader` yields as one file named `name` (which may contain `/`
    /// to place it in directories), e.g. a database dump piped in. The snapshot's path is
    /// `/NAME`; the file gets mode 0600 and the current time.
    ///
    /// # Errors
    /// As [`Repository::backup`]; `InvalidInput` for an empty or invalid name; `Io` if
    /// the reader fails (no snapshot is written).
    pub fn backup_stream(
        &mut self,
        name: &str,
        reader: &mut dyn Read,
        options: &BackupOptions,
        progress: &dyn BackupProgress,
    ) -> Result<BackupSummary> {
        self.backup_stream_then(name, reader, options, progress, || Ok(()))
    }

    /// Runs `program` with `args` and backs up its standard output as one file named
    /// `name`, like [`Repository::backup_stream`]. Its standard input and error are the
    /// caller's.
    ///
    /// # Errors
    /// As [`Repository::backup_stream`]; `Io` if the command cannot be started or exits
    /// unsuccessfully, in which case no snapshot is written.
    pub fn backup_command(
        &mut self,
        name: &str,
        program: &OsStr,
        args: &[OsString],
        options: &BackupOptions,
        progress: &dyn BackupProgress,
    ) -> Result<BackupSummary> {
        let shown = program.to_string_lossy().into_owned();
        let mut child = std::process::Command::new(program)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| {
                Error::new(ErrorKind::Io, format!("cannot run {shown}: {e}")).with_source(e)
            })?;
        let Some(mut stdout) = child.stdout.take() else {
            return Err(Error::new(
                ErrorKind::Io,
                format!("cannot read the output of {shown}"),
            ));
        };
        // The stream is read to its end before `confirm` runs, so waiting cannot block.
        let result = self.backup_stream_then(name, &mut stdout, options, progress, || {
            let status = child
                .wait()
                .map_err(|e| Error::new(ErrorKind::Io, format!("cannot wait for {shown}: {e}")))?;
            if status.success() {
                Ok(())
            } else {
                Err(Error::new(
                    ErrorKind::Io,
                    format!("{shown} failed ({status}); no snapshot was written"),
                ))
            }
        });
        if result.is_err() {
            let _ = child.kill();
            let _ = child.wait();
        }
        result
    }

    /// The stream backup; `confirm` runs after the stream ended and before anything is
    /// committed, and can veto the snapshot.
    fn backup_stream_then(
        &mut self,
        name: &str,
        reader: &mut dyn Read,
        options: &BackupOptions,
        progress: &dyn BackupProgress,
        confirm: impl FnOnce() -> Result<()>,
    ) -> Result<BackupSummary> {
        let parts = stream::name_parts(name)?;
        let path = [b"/".as_slice(), name.trim_start_matches('/').as_bytes()].concat();
        let prep = self.prepare(vec![path], Vec::new(), options)?;
        let threads = crate::system::worker_threads(options.threads);
        let abort = Abort::new(options.cancel.clone());
        let saver = self.saver(options);
        let walked = std::thread::scope(|s| {
            let (blob_tx, blob_rx) = bounded(threads * 4);
            for _ in 0..threads {
                let (blobs, saver, abort) = (blob_rx.clone(), &saver, &abort);
                s.spawn(move || blob_worker(blobs, saver, abort));
            }
            drop(blob_rx);
            let stream = stream::Stream {
                repo: &self.repo,
                index: &self.index,
                chunker: &self.chunker,
                saver: &saver,
                blobs: blob_tx,
                progress,
                abort: &abort,
                now: prep.template.time,
            };
            let result = stream
                .archive(&parts, reader)
                .and_then(|w| confirm().map(|()| w));
            if result.is_err() {
                abort.stop();
            }
            result
        });
        let (walked, stored) = drain(saver, walked, &abort);
        self.commit(prep, walked, stored, options, None)
    }

    fn saver(&self, options: &BackupOptions) -> BlobSaver<'_> {
        let compression = options
            .compression
            .unwrap_or(self.repo.config().compression);
        BlobSaver::new(&self.repo, &self.index, compression, options.dry_run)
    }

    /// Settles time, host and parent (the latest snapshot of the same host and paths).
    fn prepare(
        &mut self,
        paths: Vec<Vec<u8>>,
        excludes: Vec<String>,
        options: &BackupOptions,
    ) -> Result<Prepared> {
        let started = Instant::now();
        let now = crate::system::now();
        let time = match options.time {
            Some(t) if t > now => {
                return Err(Error::invalid(
                    "the snapshot time is in the future: --time may only set an earlier time",
                ));
            }
            Some(t) => t,
            None => now,
        };
        let host = options.host.clone().unwrap_or_else(crate::system::hostname);
        let session = if options.dry_run {
            None
        } else {
            let session = self.begin_session("backup")?;
            // The index may predate a prune that condemned packs before this session
            // was registered: reload it, so nothing refers to them (§19).
            self.reload_index_if_rewritten()?;
            Some(session)
        };
        let snapshots = self.snapshots_lenient()?.snapshots;
        // The newest; at equal times (a backup killed between writing a checkpoint or
        // its final snapshot and removing the checkpoint before), the complete one, else
        // the checkpoint written last.
        let parent = snapshots
            .iter()
            .filter(|s| s.snapshot.hostname == host && s.snapshot.paths == paths)
            .max_by_key(|s| {
                let s = &s.snapshot;
                (s.time, !s.checkpoint, s.summary.duration_ms)
            })
            .map(|s| Parent {
                id: s.id,
                tree: s.snapshot.tree,
                time: s.snapshot.time,
                checkpoint: s.snapshot.checkpoint,
            });
        let mut tags = options.tags.clone();
        tags.sort();
        tags.dedup();
        let template = Snapshot {
            time,
            utc_offset: crate::system::utc_offset(time),
            tree: arca_repo::BlobId([0; 32]),
            paths,
            hostname: host,
            username: crate::system::username(),
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            tags,
            parent: parent.map(|p| *p.id.as_bytes()),
            excludes,
            program_version: env!("CARGO_PKG_VERSION").to_owned(),
            summary: SnapshotSummary::default(),
            notes: Vec::new(),
            checkpoint: false,
        };
        Ok(Prepared {
            started,
            snapshots,
            parent,
            session,
            template,
        })
    }

    /// Records what was stored (index) and the snapshot, in that order; on a failed
    /// walk records only the index, so nothing uploaded is uploaded again. The packs
    /// `checkpoints` indexed join the loaded index either way; a finished snapshot
    /// replaces the last checkpoint.
    fn commit(
        &mut self,
        prep: Prepared,
        walked: Result<Walked>,
        stored: Stored,
        options: &BackupOptions,
        checkpoints: Option<Checkpoints>,
    ) -> Result<BackupSummary> {
        let Stored { written, added } = stored;
        let mut checkpoints = checkpoints;
        if let Some(cp) = &mut checkpoints {
            self.index_files.append(&mut cp.index_files);
            self.index.extend_from(&std::mem::take(&mut cp.session));
        }
        let walked = match walked {
            Ok(w) => w,
            Err(e) => {
                // Keep what was uploaded usable for the next backup; the error that
                // stopped this one is what the caller needs to see.
                // Only while the session holds: a prune may have deleted unindexed packs
                // of a session whose record was removed.
                if !options.dry_run && prep.session.as_ref().is_some_and(|s| s.check().is_ok()) {
                    let _ = self.save_index(&written);
                }
                return Err(e);
            }
        };
        if !options.dry_run {
            if let Some(session) = &prep.session {
                session.check()?;
            }
            self.save_index(&written)?;
        }
        let mut counts = walked.counts;
        // What this session stored: in the index from now on, or (a dry run, which
        // stored nothing) looked up apart.
        let mut session = Index::new();
        let stored_in = if options.dry_run {
            &mut session
        } else {
            &mut self.index
        };
        for p in &written {
            stored_in.add_pack(p.id, &p.entries);
        }
        counts.stored_known += resolve_stored(&walked.unresolved, &session, &self.index)?;
        let snapshot = snapshot_from(
            &prep.template,
            walked.root,
            &counts,
            added,
            prep.started.elapsed(),
            &walked.warnings,
        );
        // A checkpoint parent is not a complete backup: never skip after one.
        let skipped = options.skip_if_unchanged
            && counts.errors == 0
            && match prep.parent {
                Some(p) if !p.checkpoint => {
                    p.tree == walked.root || self.same_sources(&p.tree, &walked.top)
                }
                _ => false,
            };
        let snapshot_id = if options.dry_run || skipped {
            None
        } else {
            if let Some(session) = &prep.session {
                session.check()?;
            }
            Some(self.repo.save_snapshot(&snapshot)?)
        };
        let mut warnings = walked.warnings;
        let mut checkpoint_count = 0;
        if let Some(mut cp) = checkpoints {
            // The finished snapshot (or the unchanged parent) holds everything the last
            // checkpoint held.
            cp.retire_current(&self.repo);
            warnings.append(&mut cp.warnings);
            checkpoint_count = cp.written;
        }
        drop(prep.session);
        let mut all = prep.snapshots;
        if let Some(id) = snapshot_id {
            all.push(SnapshotInfo {
                id,
                snapshot: snapshot.clone(),
            });
        }
        Ok(BackupSummary {
            snapshot_id,
            snapshot,
            skipped,
            dry_run: options.dry_run,
            parent: prep.parent.map(|p| p.id),
            warnings,
            repository: self.stats_for(&all),
            checkpoints: checkpoint_count,
        })
    }

    /// Writes index files for `packs` (already durable) and remembers them as part of
    /// the loaded index (see [`Repository::reload_index_if_rewritten`]).
    fn save_index(&mut self, packs: &[IndexedPack]) -> Result<()> {
        let ids = write_index(&self.repo, packs)?;
        self.index_files.extend(ids);
        Ok(())
    }
}

/// Writes index files naming `packs` (already durable), at most
/// [`INDEX_FILE_MAX_BLOBS`] entries each; returns their ids.
pub(crate) fn write_index(repo: &arca_repo::Repo, packs: &[IndexedPack]) -> Result<Vec<ObjectId>> {
    index_files(packs, INDEX_FILE_MAX_BLOBS)
        .iter()
        .map(|file| Ok(repo.save_index(file)?))
        .collect()
}

/// Groups the entries of `packs` into index files of at most `max` entries each, in
/// order; a pack's entries may be split across two files.
pub(crate) fn index_files(packs: &[IndexedPack], max: usize) -> Vec<IndexFile> {
    let mut files = Vec::new();
    let mut file = IndexFile::default();
    let mut blobs = 0;
    for p in packs {
        let mut rest = &p.entries[..];
        while !rest.is_empty() {
            let (take, more) = rest.split_at(rest.len().min(max - blobs));
            file.packs.push(IndexedPack {
                id: p.id,
                entries: take.to_vec(),
            });
            blobs += take.len();
            rest = more;
            if blobs == max {
                files.push(std::mem::take(&mut file));
                blobs = 0;
            }
        }
    }
    if !file.packs.is_empty() {
        files.push(file);
    }
    files
}

/// `template` (time, host, paths, tags, parent, ...) completed with the tree, the
/// figures and the first warnings: a finished snapshot or a checkpoint.
fn snapshot_from(
    template: &Snapshot,
    tree: arca_repo::BlobId,
    counts: &Counts,
    added: [u64; 4],
    elapsed: Duration,
    warnings: &[String],
) -> Snapshot {
    let mut snapshot = template.clone();
    snapshot.tree = tree;
    snapshot.summary = summary(counts, added, elapsed);
    snapshot.notes = warnings
        .iter()
        .take(arca_repo::MAX_NOTES)
        .cloned()
        .collect();
    snapshot
}

/// References to one blob that the backup has not found in the index yet: whole, and
/// as slices of a bundle, so many bytes in all.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Refs {
    pub(crate) whole: u64,
    pub(crate) slice_bytes: u64,
}

impl Refs {
    /// One reference to the whole blob.
    pub(crate) const WHOLE: Self = Self {
        whole: 1,
        slice_bytes: 0,
    };

    /// One reference to `bytes` of a bundle.
    pub(crate) fn slice(bytes: u64) -> Self {
        Self {
            whole: 0,
            slice_bytes: bytes,
        }
    }
}

/// Counts `refs` to a blob in the snapshot's stored total: now if the blob is indexed,
/// else in `unresolved`, resolved once this session's packs are indexed.
pub(crate) fn count_refs(
    index: &Index,
    stored_known: &mut u64,
    unresolved: &mut HashMap<(arca_repo::BlobType, arca_repo::BlobId), Refs>,
    blob: (arca_repo::BlobType, arca_repo::BlobId),
    refs: Refs,
) {
    match index.get(blob.0, &blob.1) {
        Some(loc) => *stored_known += stored_share(&loc, refs),
        None => {
            let r = unresolved.entry(blob).or_default();
            r.whole += refs.whole;
            r.slice_bytes += refs.slice_bytes;
        }
    }
}

/// The stored size that `refs` to the blob at `loc` account for: the whole stored size
/// per whole reference, and a bundle's stored size in proportion to each slice.
pub(crate) fn stored_share(loc: &arca_repo::BlobLocation, refs: Refs) -> u64 {
    let length = u64::from(loc.length);
    let share = u128::from(length) * u128::from(refs.slice_bytes) / u128::from(loc.raw_len.max(1));
    length * refs.whole + u64::try_from(share).unwrap_or(u64::MAX)
}

/// Stored size of blobs referenced during the backup that were not yet indexed.
fn resolve_stored(
    unresolved: &HashMap<(arca_repo::BlobType, arca_repo::BlobId), Refs>,
    session: &Index,
    index: &Index,
) -> Result<u64> {
    let mut total = 0;
    for ((blob_type, id), refs) in unresolved {
        let found = session
            .get(*blob_type, id)
            .or_else(|| index.get(*blob_type, id));
        let loc = found.ok_or_else(|| {
            Error::new(
                ErrorKind::Corrupt,
                format!("internal error: blob {id} was referenced but not stored"),
            )
        })?;
        total += stored_share(&loc, *refs);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use arca_repo::{BlobId, BlobType, PackEntry};

    use super::*;
    use crate::NoProgress;

    fn pack(id: u8, n: usize) -> IndexedPack {
        IndexedPack {
            id: ObjectId::from_bytes([id; 32]),
            entries: (0..n)
                .map(|i| PackEntry {
                    blob_type: BlobType::Data,
                    id: BlobId([i as u8; 32]),
                    offset: 40 + i as u32,
                    length: 100,
                    raw_len: 1,
                })
                .collect(),
        }
    }

    #[test]
    fn a_directory_listed_in_parts_is_archived_whole() {
        let (_tmp, src) = crate::testing::source_dir();
        let files = walk::CHUNK * 2 + 7;
        for i in 0..files {
            std::fs::write(src.join(format!("f{i:04}")), i.to_string()).unwrap();
        }
        // Directories sorted into the first part, between the parts, and last.
        for d in ["a/deep", "f0600d/deep", "z"] {
            std::fs::create_dir_all(src.join(d)).unwrap();
            std::fs::write(src.join(d).join("x"), d).unwrap();
        }
        // Files changed less than a second before a backup are read again by the next.
        std::thread::sleep(Duration::from_millis(1200));
        let (_, mut repo) = crate::testing::memory_repository();
        let options = BackupOptions::default();
        let first = repo
            .backup(std::slice::from_ref(&src), &options, &NoProgress)
            .unwrap();
        let tree = crate::testing::latest_tree_of(&repo, &src);
        assert_eq!(tree.nodes().len(), files + 3);
        for d in ["a/deep", "f0600d/deep", "z"] {
            let inner = crate::testing::latest_tree_of(&repo, &src.join(d));
            assert_eq!(inner.nodes().len(), 1, "{d}");
        }
        assert_eq!(first.snapshot.summary.files_new, files as u64 + 3);
        let second = repo
            .backup(std::slice::from_ref(&src), &options, &NoProgress)
            .unwrap();
        assert_eq!(second.snapshot.summary.files_unchanged, files as u64 + 3);
        let again = crate::testing::latest_tree_of(&repo, &src);
        assert_eq!(again.nodes(), tree.nodes());
        crate::testing::assert_checks_clean(&repo);
    }

    /// Renames a directory away once the archiver has taken `trigger`. In a tree this
    /// small the walker's last batch holds every listing below the source, so it was
    /// sent, and the walker is done, before the archiver takes its first entry.
    struct RenameAfter {
        trigger: PathBuf,
        from: PathBuf,
        to: PathBuf,
    }

    impl crate::BackupProgress for RenameAfter {
        fn file_done(&self, path: &Path, _status: crate::FileStatus, _size: u64) {
            if path == self.trigger {
                std::fs::rename(&self.from, &self.to).unwrap();
            }
        }
    }

    #[test]
    fn a_directory_gone_before_the_archiver_reads_in_it_leaves_its_files_out_with_an_error() {
        let (tmp, src) = crate::testing::source_dir();
        std::fs::create_dir_all(src.join("a")).unwrap();
        std::fs::create_dir_all(src.join("b")).unwrap();
        std::fs::write(src.join("a/x"), b"unchanged").unwrap();
        std::fs::write(src.join("b/f"), b"first").unwrap();
        std::thread::sleep(Duration::from_millis(1200));
        let (_, mut repo) = crate::testing::memory_repository();
        let options = BackupOptions::default();
        repo.backup(std::slice::from_ref(&src), &options, &NoProgress)
            .unwrap();
        // b/f changes, so the second backup must read it; a/x is unchanged, so the
        // archiver reports it at once, before it reaches b.
        std::fs::write(src.join("b/f"), b"second, longer").unwrap();
        let progress = RenameAfter {
            trigger: src.join("a/x"),
            from: src.join("b"),
            to: tmp.path().join("moved"),
        };
        let second = repo
            .backup(std::slice::from_ref(&src), &options, &progress)
            .unwrap();
        let summary = &second.snapshot.summary;
        assert_eq!(summary.errors, 1, "{:?}", second.warnings);
        let wanted = format!("{}: cannot open its directory: ", src.join("b/f").display());
        // (Its attributes could not be read either, which comes first, as a warning.)
        assert!(
            second.warnings.iter().any(|w| w.starts_with(&wanted)),
            "{:?}",
            second.warnings
        );
        // b was listed with f in it; f could not be read, so it is left out (no entry
        // without content).
        let b = crate::testing::latest_tree_of(&repo, &src.join("b"));
        assert!(b.find(b"f").is_none(), "{:?}", b.nodes());
        crate::testing::assert_checks_clean(&repo);
    }

    #[test]
    fn index_files_hold_at_most_max_entries_and_lose_none() {
        let packs = vec![pack(1, 7), pack(2, 2), pack(3, 11)];
        let files = index_files(&packs, 5);
        let sizes: Vec<usize> = files.iter().map(IndexFile::blob_count).collect();
        assert_eq!(sizes, vec![5, 5, 5, 5]);
        let mut index = Index::new();
        for f in &files {
            index.add_file(f);
        }
        assert_eq!(index.packs().len(), 3);
        let total: usize = files
            .iter()
            .flat_map(|f| &f.packs)
            .map(|p| p.entries.len())
            .sum();
        assert_eq!(total, 20);
        assert!(index_files(&[], 5).is_empty());
        assert_eq!(index_files(&[pack(4, 3)], 5).len(), 1);
    }
}
