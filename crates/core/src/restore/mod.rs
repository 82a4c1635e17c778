//! `restore`: recreate a snapshot, or part of it, under a target directory.
//!
//! The calling thread walks the snapshot's trees and creates every directory entry:
//! directories, files (opened, empty), hard links, symlinks and special files. Worker
//! threads take the opened files in batches, fill them with content read pack by pack
//! (see `batch`; every entry authenticated), and set their metadata through the
//! descriptor. Because workers never create or remove entries, a
//! directory's own metadata (times, mode) is applied as soon as the walk leaves it.
//!
//! Every file-system call is relative to an open directory and never follows a symlink
//! (see `dir_handle`); names come from trees whose decoder refuses `/`, `.`, `..` and
//! NUL. Nothing can be written outside the target.

mod batch;
mod entries;
mod writer;

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arca_repo::{Node, NodeKind};
use crossbeam_channel::bounded;

use self::batch::{BATCH_BYTES, file_budget, restore_batch};
use self::entries::Walker;
use self::writer::FileJob;
use crate::bundle_cache::BundleCache;
use crate::dir_handle::{DirHandle, open_file_limit, raise_open_file_limit};
use crate::metadata::{ApplyWarnings, OwnerPolicy, Target, apply};
use crate::progress::{CancelToken, RestoreProgress};
use crate::repository::SnapshotInfo;
use crate::selection::PatternSet;
use crate::sync::lock;
use crate::{Error, ErrorKind, Repository, Result};

/// What to do with a file that already exists in the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Overwrite {
    /// Replace it.
    Always,
    /// Keep it if its content already equals the snapshot's (checked by reading it and
    /// comparing chunk ids), otherwise rewrite it. Metadata is restored either way. This
    /// makes an interrupted restore resumable: a rerun skips what is already correct.
    #[default]
    IfChanged,
    /// Replace it only if the snapshot's version is newer (by modification time).
    IfNewer,
    /// Keep it.
    Never,
}

impl std::str::FromStr for Overwrite {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "always" => Ok(Self::Always),
            "if-changed" => Ok(Self::IfChanged),
            "if-newer" => Ok(Self::IfNewer),
            "never" => Ok(Self::Never),
            _ => Err(Error::invalid(format!(
                "unknown overwrite mode {s:?}: expected always, if-changed, if-newer or never"
            ))),
        }
    }
}

/// Settings for [`Repository::restore`].
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// If not empty, only paths matching one of these patterns (and everything below a
    /// matching directory) are restored.
    pub includes: Vec<String>,
    /// Paths matching these patterns (and everything below them) are not restored.
    pub excludes: Vec<String>,
    /// Restore only this path of the snapshot, as the target itself (a file becomes the
    /// file named by the target; a directory's contents go into the target directory).
    pub path: Option<PathBuf>,
    /// What to do with files that already exist in the target.
    pub overwrite: Overwrite,
    /// Remove entries of restored directories that the snapshot does not have.
    pub delete: bool,
    /// Re-read every restored file and compare its content with the snapshot's.
    pub verify: bool,
    /// Restore runs of zeros as holes (sparse files).
    pub sparse: bool,
    /// Give files the recorded numeric owner ids instead of mapping the recorded names.
    pub numeric_owner: bool,
    /// Report what would be done; change nothing.
    pub dry_run: bool,
    /// Worker threads; 0 means one per CPU.
    pub threads: usize,
    /// Set to stop the restore early.
    pub cancel: CancelToken,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        Self {
            includes: Vec::new(),
            excludes: Vec::new(),
            path: None,
            overwrite: Overwrite::default(),
            delete: false,
            verify: false,
            sparse: true,
            numeric_owner: false,
            dry_run: false,
            threads: 0,
            cancel: CancelToken::default(),
        }
    }
}

/// The outcome of a restore.
#[derive(Debug, Clone, Default)]
pub struct RestoreSummary {
    /// Regular files written (or, with `dry_run`, to be written).
    pub files: u64,
    /// Existing files left as they were (already correct, or kept by the overwrite mode).
    pub files_skipped: u64,
    /// Extra hard links created to files restored once.
    pub hardlinks: u64,
    /// Directories restored.
    pub dirs: u64,
    /// Symlinks and special files restored.
    pub other: u64,
    /// Bytes of file content written.
    pub bytes: u64,
    /// Files re-read and found equal to the snapshot (with `verify`).
    pub files_verified: u64,
    /// Entries removed from the target (with `delete`).
    pub deleted: u64,
    /// Metadata that could not be restored exactly (e.g. ownership without privileges).
    pub warnings: Vec<String>,
}

/// Counters the workers update.
#[derive(Debug, Default)]
pub(crate) struct WorkerCounts {
    pub(crate) files: u64,
    pub(crate) skipped: u64,
    pub(crate) bytes: u64,
    pub(crate) verified: u64,
}

/// Shared state of one restore.
pub(crate) struct Ctx<'a> {
    pub(crate) repo: &'a Repository,
    pub(crate) progress: &'a dyn RestoreProgress,
    pub(crate) owners: OwnerPolicy,
    pub(crate) options: &'a RestoreOptions,
    pub(crate) warnings: Mutex<Vec<String>>,
    pub(crate) errors: Mutex<Vec<String>>,
    /// The bundles read last, by any worker: the files of one bundle may be spread
    /// over consecutive batches.
    pub(crate) bundles: BundleCache,
}

impl Ctx<'_> {
    pub(crate) fn warn(&self, path: &Path, message: String) {
        self.progress.warning(path, &message);
        lock(&self.warnings).push(format!("{}: {message}", path.display()));
    }

    pub(crate) fn fail(&self, path: &Path, message: String) {
        self.progress.warning(path, &message);
        lock(&self.errors).push(format!("{}: {message}", path.display()));
    }

    pub(crate) fn cancelled(&self) -> bool {
        self.options.cancel.is_cancelled()
    }

    pub(crate) fn apply_metadata(
        &self,
        target: Target<'_>,
        path: &Path,
        node: &Node,
    ) -> io::Result<()> {
        let mut w = ApplyWarnings::default();
        let result = apply(target, node, &self.owners, &mut w);
        for message in w.0 {
            self.warn(path, message);
        }
        result
    }
}

/// Where the walk starts: nodes to place into a directory, with their snapshot path.
pub(crate) struct Start {
    pub(crate) nodes: Vec<Node>,
    pub(crate) snapshot_dir: PathBuf,
    pub(crate) target_dir: PathBuf,
    /// With `path` naming a directory: its node, applied to the target directory last.
    pub(crate) target_node: Option<Node>,
}

impl Repository {
    /// Restores `snapshot` (or the parts selected by `options`) under `target`.
    ///
    /// Content is authenticated blob by blob before it is written; a file whose content
    /// cannot be read is removed rather than left partly written.
    ///
    /// # Errors
    /// `InvalidInput` for bad patterns; `NotFound` if `options.path` is not in the
    /// snapshot; `Io` if the target cannot be created; `Interrupted` if cancelled; and,
    /// after restoring everything else, an error naming how many entries failed and the
    /// first of them (each is also reported through `progress`).
    pub fn restore(
        &self,
        snapshot: &SnapshotInfo,
        target: &Path,
        options: &RestoreOptions,
        progress: &dyn RestoreProgress,
    ) -> Result<RestoreSummary> {
        raise_open_file_limit();
        let includes = PatternSet::new(&options.includes)?;
        let excludes = PatternSet::new(&options.excludes)?;
        let start = self.restore_start(snapshot, target, options)?;
        if !options.dry_run {
            std::fs::DirBuilder::new()
                .recursive(true)
                .create(&start.target_dir)
                .map_err(|e| Error::io("cannot create restore target", &start.target_dir, e))?;
        }
        let root = match DirHandle::open_path(&start.target_dir) {
            Ok(h) => Some(Arc::new(h)),
            Err(_) if options.dry_run => None,
            Err(e) => {
                return Err(Error::io(
                    "cannot open restore target",
                    &start.target_dir,
                    e,
                ));
            }
        };
        if options.path.is_none() && includes.is_empty() && excludes.is_empty() {
            let s = &snapshot.snapshot.summary;
            progress.total(
                s.files_new + s.files_changed + s.files_unchanged,
                s.bytes_total,
            );
        }
        let ctx = Ctx {
            repo: self,
            progress,
            owners: OwnerPolicy::new(options.numeric_owner),
            options,
            warnings: Mutex::new(Vec::new()),
            errors: Mutex::new(Vec::new()),
            bundles: BundleCache::default(),
        };
        let threads = crate::system::worker_threads(options.threads);
        let counts = Mutex::new(WorkerCounts::default());
        let mut summary = RestoreSummary::default();
        let walked: Result<()> = std::thread::scope(|s| {
            let (queued, batch) = file_budget(open_file_limit(), threads);
            let (tx, rx) = bounded::<FileJob>(queued);
            for _ in 0..threads {
                let (rx, ctx, counts) = (rx.clone(), &ctx, &counts);
                s.spawn(move || {
                    // Whatever files are queued, up to a batch, go together (see `batch`).
                    while let Ok(first) = rx.recv() {
                        let mut bytes = first.node.size;
                        let mut jobs = vec![first];
                        while jobs.len() < batch && bytes < BATCH_BYTES {
                            match rx.try_recv() {
                                Ok(job) => {
                                    bytes += job.node.size;
                                    jobs.push(job);
                                }
                                Err(_) => break,
                            }
                        }
                        if !ctx.cancelled() {
                            restore_batch(ctx, jobs, counts);
                        }
                    }
                });
            }
            drop(rx);
            let mut walker = Walker {
                ctx: &ctx,
                includes: &includes,
                excludes: &excludes,
                summary: &mut summary,
                hardlinks: HashMap::new(),
                send: &|job| tx.send(job).map_err(|_| Error::interrupted()),
            };
            let result = walker.run(root.clone(), start.nodes, start.snapshot_dir.clone());
            drop(tx);
            result
        });
        walked?;
        if ctx.cancelled() {
            return Err(Error::interrupted());
        }
        if let (Some(node), Some(root), false) = (&start.target_node, &root, options.dry_run) {
            // A single restored directory: its own metadata goes to the target itself.
            if let (Some(parent), Some(name)) =
                (start.target_dir.parent(), start.target_dir.file_name())
            {
                match DirHandle::open_path(parent) {
                    Ok(p) => {
                        if let Err(e) = ctx.apply_metadata(
                            Target::Entry(&p, name.as_bytes()),
                            root.path(),
                            node,
                        ) {
                            ctx.fail(root.path(), format!("cannot set metadata: {e}"));
                        }
                    }
                    Err(e) => ctx.fail(parent, format!("cannot open: {e}")),
                }
            }
        }
        let counts = counts.into_inner().unwrap_or_else(|e| e.into_inner());
        summary.files += counts.files;
        summary.files_skipped += counts.skipped;
        summary.bytes += counts.bytes;
        summary.files_verified += counts.verified;
        summary.warnings = ctx.warnings.into_inner().unwrap_or_else(|e| e.into_inner());
        let errors = ctx.errors.into_inner().unwrap_or_else(|e| e.into_inner());
        if let Some(first) = errors.first() {
            return Err(Error::new(
                ErrorKind::Io,
                format!(
                    "{} entries could not be restored; first: {first}",
                    errors.len()
                ),
            ));
        }
        Ok(summary)
    }

    /// Resolves where the walk starts: the whole snapshot into `target`, or (with
    /// `options.path`) one file or directory of it as `target` itself.
    fn restore_start(
        &self,
        snapshot: &SnapshotInfo,
        target: &Path,
        options: &RestoreOptions,
    ) -> Result<Start> {
        let root = self.load_tree(&snapshot.snapshot.tree)?;
        let Some(path) = &options.path else {
            return Ok(Start {
                nodes: root.into_nodes(),
                snapshot_dir: PathBuf::from("/"),
                target_dir: target.to_path_buf(),
                target_node: None,
            });
        };
        let not_found = || crate::browse::not_in_snapshot(path, snapshot);
        let parts = crate::browse::snapshot_components(path)?;
        let (last, dirs) = parts.split_last().ok_or_else(not_found)?;
        let mut tree = root;
        let mut snapshot_dir = PathBuf::from("/");
        for part in dirs {
            let node = tree.find(part.as_bytes()).ok_or_else(not_found)?;
            match (node.kind, node.subtree) {
                (NodeKind::Dir, Some(sub)) => tree = self.load_tree(&sub)?,
                _ => return Err(not_found()),
            }
            snapshot_dir.push(part);
        }
        let mut node = tree.find(last.as_bytes()).cloned().ok_or_else(not_found)?;
        match (node.kind, node.subtree) {
            (NodeKind::Dir, Some(sub)) => Ok(Start {
                nodes: self.load_tree(&sub)?.into_nodes(),
                snapshot_dir: snapshot_dir.join(last),
                target_dir: target.to_path_buf(),
                target_node: Some(node),
            }),
            _ => {
                let name = target.file_name().ok_or_else(|| {
                    Error::invalid(format!("restore target {} names no file", target.display()))
                })?;
                let parent = target
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                // The node keeps its snapshot path for patterns, but takes the target's name.
                node.name = name.as_bytes().to_vec();
                Ok(Start {
                    nodes: vec![node],
                    snapshot_dir,
                    target_dir: parent.to_path_buf(),
                    target_node: None,
                })
            }
        }
    }
}

/// Names in a tree, to find what `delete` removes.
pub(crate) fn names_of(nodes: &[Node]) -> HashSet<Vec<u8>> {
    nodes.iter().map(|n| n.name.clone()).collect()
}
