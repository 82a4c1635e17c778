//! `restore`: recreate a snapshot, or part of it, under a target directory.
//!
//! The calling thread walks the snapshot's trees, creates directories, symlinks and
//! special files, and hands regular files to worker threads that read, authenticate and
//! write their content. Directory metadata is applied last, deepest first, so writing
//! into a directory does not disturb its restored times and permissions.
//!
//! Names come from trees whose decoder refuses `/`, `.`, `..` and NUL, and every path is
//! built below the target by joining such names; an existing symlink where a directory
//! is expected is refused rather than followed, so nothing is written outside the target.

mod writer;

use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use arca_repo::{Node, NodeKind};
use crossbeam_channel::bounded;

use self::writer::{FileJob, create_special, restore_file, write_symlink};
use crate::metadata::{ApplyWarnings, apply};
use crate::patterns::PatternSet;
use crate::progress::{CancelToken, RestoreProgress};
use crate::repository::SnapshotInfo;
use crate::sync::lock;
use crate::{Error, ErrorKind, Repository, Result};

/// Settings for [`Repository::restore`].
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// If not empty, only paths matching one of these patterns (and everything below a
    /// matching directory) are restored.
    pub includes: Vec<String>,
    /// Paths matching these patterns (and everything below them) are not restored.
    pub excludes: Vec<String>,
    /// Worker threads; 0 means one per CPU.
    pub threads: usize,
    /// Set to stop the restore early.
    pub cancel: CancelToken,
}

/// The outcome of a restore.
#[derive(Debug, Clone, Default)]
pub struct RestoreSummary {
    /// Regular files restored.
    pub files: u64,
    /// Directories restored.
    pub dirs: u64,
    /// Symlinks and special files restored.
    pub other: u64,
    /// Bytes of file content restored.
    pub bytes: u64,
    /// Metadata that could not be restored exactly (e.g. ownership without privileges).
    pub warnings: Vec<String>,
}

/// Shared state of one restore.
pub(crate) struct Ctx<'a> {
    pub(crate) repo: &'a Repository,
    pub(crate) progress: &'a dyn RestoreProgress,
    pub(crate) is_root: bool,
    pub(crate) warnings: Mutex<Vec<String>>,
    pub(crate) errors: Mutex<Vec<String>>,
    pub(crate) cancel: CancelToken,
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

    pub(crate) fn apply_metadata(&self, path: &Path, node: &Node) -> io::Result<()> {
        let mut w = ApplyWarnings::default();
        let result = apply(path, node, self.is_root, &mut w);
        for message in w.0 {
            self.warn(path, message);
        }
        result
    }
}

/// A directory on the walk stack.
struct Frame {
    nodes: std::vec::IntoIter<Node>,
    /// The directory's path inside the snapshot (for pattern matching).
    snapshot_path: PathBuf,
    target: PathBuf,
    /// Everything below is restored (an include pattern matched an ancestor).
    included: bool,
    /// The directory's node (`None` for the snapshot root) and whether it was created.
    node: Option<Node>,
    created: bool,
}

/// Creates `path` as a directory, or accepts an existing directory (never a symlink).
fn make_dir(path: &Path) -> io::Result<()> {
    match fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            if fs::symlink_metadata(path)?.is_dir() {
                Ok(())
            } else {
                Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "exists and is not a directory (refusing to restore through it)",
                ))
            }
        }
        Err(e) => Err(e),
    }
}

impl Repository {
    /// Restores `snapshot` (or the parts selected by `options`) under `target`.
    ///
    /// Content is authenticated blob by blob before it is written; a file whose content
    /// cannot be read is removed rather than left partly written.
    ///
    /// # Errors
    /// `InvalidInput` for bad patterns; `Io` if the target cannot be created;
    /// `Interrupted` if cancelled; and, after restoring everything else, an error naming
    /// how many entries failed and the first of them (each is also reported through
    /// `progress`).
    pub fn restore(
        &self,
        snapshot: &SnapshotInfo,
        target: &Path,
        options: &RestoreOptions,
        progress: &dyn RestoreProgress,
    ) -> Result<RestoreSummary> {
        let includes = PatternSet::new(&options.includes)?;
        let excludes = PatternSet::new(&options.excludes)?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(target)
            .map_err(|e| Error::io("cannot create restore target", target, e))?;
        if includes.is_empty() && excludes.is_empty() {
            let s = &snapshot.snapshot.summary;
            progress.total(
                s.files_new + s.files_changed + s.files_unchanged,
                s.bytes_total,
            );
        }
        let ctx = Ctx {
            repo: self,
            progress,
            is_root: nix::unistd::geteuid().is_root(),
            warnings: Mutex::new(Vec::new()),
            errors: Mutex::new(Vec::new()),
            cancel: options.cancel.clone(),
        };
        let threads = crate::system::worker_threads(options.threads);
        let root = self.load_tree(&snapshot.snapshot.tree)?;
        let mut summary = RestoreSummary::default();
        let walked: Result<Vec<(PathBuf, Node)>> = std::thread::scope(|s| {
            let (tx, rx) = bounded::<FileJob>(threads * 4);
            let results: Vec<_> = (0..threads)
                .map(|_| {
                    let rx = rx.clone();
                    let ctx = &ctx;
                    s.spawn(move || {
                        let (mut files, mut bytes) = (0u64, 0u64);
                        for job in rx {
                            if ctx.cancel.is_cancelled() {
                                continue;
                            }
                            if let Some(n) = restore_file(ctx, &job) {
                                files += 1;
                                bytes += n;
                            }
                        }
                        (files, bytes)
                    })
                })
                .collect();
            drop(rx);
            let mut stack = vec![Frame {
                nodes: root.into_nodes().into_iter(),
                snapshot_path: PathBuf::from("/"),
                target: target.to_path_buf(),
                included: includes.is_empty(),
                node: None,
                created: true,
            }];
            let mut dirs = Vec::new();
            let walk = walk(
                &ctx,
                &mut stack,
                &mut dirs,
                &includes,
                &excludes,
                &mut summary,
                |job| tx.send(job).map_err(|_| Error::interrupted()),
            );
            drop(tx);
            for handle in results {
                match handle.join() {
                    Ok((files, bytes)) => {
                        summary.files += files;
                        summary.bytes += bytes;
                    }
                    Err(_) => ctx.fail(target, "a restore worker crashed".to_owned()),
                }
            }
            walk.map(|()| dirs)
        });
        let dirs = walked?;
        if ctx.cancel.is_cancelled() {
            return Err(Error::interrupted());
        }
        // Directory metadata last, children before parents.
        for (path, node) in dirs.iter().rev() {
            if let Err(e) = ctx.apply_metadata(path, node) {
                ctx.fail(path, format!("cannot set metadata: {e}"));
            }
        }
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
}

/// Walks the snapshot depth-first, creating directories lazily (only when something
/// below them is restored) and dispatching files through `send`.
fn walk(
    ctx: &Ctx<'_>,
    stack: &mut Vec<Frame>,
    dirs: &mut Vec<(PathBuf, Node)>,
    includes: &PatternSet,
    excludes: &PatternSet,
    summary: &mut RestoreSummary,
    mut send: impl FnMut(FileJob) -> Result<()>,
) -> Result<()> {
    while let Some(frame) = stack.last_mut() {
        if ctx.cancel.is_cancelled() {
            return Err(Error::interrupted());
        }
        let Some(node) = frame.nodes.next() else {
            stack.pop();
            continue;
        };
        let name = std::ffi::OsStr::from_bytes(&node.name);
        let snapshot_path = frame.snapshot_path.join(name);
        let target = frame.target.join(name);
        if excludes.matches(&snapshot_path) {
            continue;
        }
        let included = frame.included || includes.matches(&snapshot_path);
        if let (NodeKind::Dir, Some(subtree)) = (node.kind, node.subtree) {
            let tree = match ctx.repo.load_tree(&subtree) {
                Ok(t) => t,
                Err(e) => {
                    ctx.fail(&target, format!("cannot read directory listing: {e}"));
                    continue;
                }
            };
            stack.push(Frame {
                nodes: tree.into_nodes().into_iter(),
                snapshot_path,
                target,
                included,
                node: Some(node),
                created: false,
            });
            if included && !ensure_dirs(ctx, stack, dirs, summary) {
                stack.pop();
            }
            continue;
        }
        if !included {
            continue;
        }
        if !ensure_dirs(ctx, stack, dirs, summary) {
            continue;
        }
        match node.kind {
            NodeKind::File => send(FileJob { path: target, node })?,
            NodeKind::Symlink => {
                if write_symlink(ctx, &target, &node) {
                    summary.other += 1;
                }
            }
            _ => {
                if create_special(ctx, &target, &node) {
                    summary.other += 1;
                }
            }
        }
    }
    Ok(())
}

/// Creates every not yet created directory on the stack; false if one failed (the
/// failure is recorded and the entry skipped).
fn ensure_dirs(
    ctx: &Ctx<'_>,
    stack: &mut [Frame],
    dirs: &mut Vec<(PathBuf, Node)>,
    summary: &mut RestoreSummary,
) -> bool {
    for frame in stack.iter_mut().filter(|f| !f.created) {
        if let Err(e) = make_dir(&frame.target) {
            ctx.fail(&frame.target, format!("cannot create directory: {e}"));
            return false;
        }
        frame.created = true;
        summary.dirs += 1;
        if let Some(node) = &frame.node {
            dirs.push((frame.target.clone(), node.clone()));
        }
    }
    true
}
