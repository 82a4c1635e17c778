//! `find`: entries whose path matches patterns, across many snapshots.
//!
//! Consecutive snapshots share most of their trees. A directory tree found to hold no
//! match at some path is remembered (by tree id and path, since anchored patterns
//! depend on where a tree sits), so each later snapshot skips it without reading it.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use arca_repo::{BlobId, Node, NodeKind};

use crate::progress::CancelToken;
use crate::repository::SnapshotInfo;
use crate::selection::PatternSet;
use crate::{Error, Repository, Result};

/// Totals of a search.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FindSummary {
    /// Snapshots searched.
    pub snapshots: u64,
    /// Entries that matched, over all snapshots.
    pub matches: u64,
    /// Trees that could not be read, each with its snapshot and directory; everything
    /// else was searched.
    pub errors: Vec<String>,
}

struct Search<'a> {
    repo: &'a Repository,
    patterns: &'a PatternSet,
    cancel: &'a CancelToken,
    /// (tree, directory path) pairs known to hold no match.
    barren: HashSet<(BlobId, PathBuf)>,
    matches: u64,
}

/// A directory being searched: its path and tree, the entries left, and whether it
/// may not be remembered as barren (something in it matched, or could not be read).
struct Frame {
    path: PathBuf,
    id: BlobId,
    nodes: std::vec::IntoIter<Node>,
    keep: bool,
}

/// What opening a directory gave.
enum Opened {
    Frame(Frame),
    /// Known to hold no match.
    Barren,
    /// Its tree could not be read (reported).
    Damaged,
}

impl Repository {
    /// Calls `visit` for every entry of each of `snapshots` whose absolute path matches
    /// `patterns` (see [`PatternSet`]: `*.jpg` matches that name anywhere, `/home/**`
    /// is anchored), snapshot by snapshot in the order given, in path order within each.
    ///
    /// # Errors
    /// Any error `visit` returns; `Interrupted` if `cancel` fires. Damaged trees do not
    /// stop the search: they are listed in [`FindSummary::errors`] and the rest of the
    /// snapshot is searched.
    pub fn find(
        &self,
        snapshots: &[SnapshotInfo],
        patterns: &PatternSet,
        cancel: &CancelToken,
        visit: &mut dyn FnMut(&SnapshotInfo, &Path, &Node) -> Result<()>,
    ) -> Result<FindSummary> {
        let mut search = Search {
            repo: self,
            patterns,
            cancel,
            barren: HashSet::new(),
            matches: 0,
        };
        let mut summary = FindSummary::default();
        for snapshot in snapshots {
            summary.snapshots += 1;
            let mut on_match = |path: &Path, node: &Node| visit(snapshot, path, node);
            let mut damaged = |path: &Path, e: Error| {
                summary.errors.push(format!(
                    "snapshot {}: {}: {e}",
                    snapshot.id.short(),
                    path.display()
                ));
            };
            search.snapshot(snapshot.snapshot.tree, &mut on_match, &mut damaged)?;
        }
        summary.matches = search.matches;
        Ok(summary)
    }
}

impl Search<'_> {
    /// Loads a directory's tree, unless it is known to be barren or is damaged.
    fn open(&self, path: PathBuf, id: BlobId, damaged: &mut dyn FnMut(&Path, Error)) -> Opened {
        if self.barren.contains(&(id, path.clone())) {
            return Opened::Barren;
        }
        match self.repo.load_tree(&id) {
            Ok(tree) => Opened::Frame(Frame {
                path,
                id,
                nodes: tree.into_nodes().into_iter(),
                keep: false,
            }),
            Err(e) => {
                damaged(&path, e);
                Opened::Damaged
            }
        }
    }

    /// Searches the tree `root` depth first, with an explicit stack (trees may be
    /// deeper than the thread's stack allows recursion).
    fn snapshot(
        &mut self,
        root: BlobId,
        visit: &mut dyn FnMut(&Path, &Node) -> Result<()>,
        damaged: &mut dyn FnMut(&Path, Error),
    ) -> Result<()> {
        let mut stack: Vec<Frame> = match self.open(PathBuf::from("/"), root, damaged) {
            Opened::Frame(f) => vec![f],
            _ => return Ok(()),
        };
        while let Some(frame) = stack.last_mut() {
            if self.cancel.is_cancelled() {
                return Err(Error::interrupted());
            }
            let Some(node) = frame.nodes.next() else {
                let Some(done) = stack.pop() else { break };
                if done.keep {
                    if let Some(parent) = stack.last_mut() {
                        parent.keep = true;
                    }
                } else {
                    self.barren.insert((done.id, done.path));
                }
                continue;
            };
            let path = frame.path.join(OsStr::from_bytes(&node.name));
            if self.patterns.matches(&path) {
                self.matches += 1;
                frame.keep = true;
                visit(&path, &node)?;
            }
            if let (NodeKind::Dir, Some(sub)) = (node.kind, node.subtree) {
                match self.open(path, sub, &mut *damaged) {
                    Opened::Frame(child) => stack.push(child),
                    Opened::Barren => {}
                    Opened::Damaged => {
                        if let Some(f) = stack.last_mut() {
                            f.keep = true;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
