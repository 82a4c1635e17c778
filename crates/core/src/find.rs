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

use crate::repository::SnapshotInfo;
use crate::selection::PatternSet;
use crate::{ErrorKind, Repository, Result};

/// Totals of a search.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FindSummary {
    /// Snapshots searched.
    pub snapshots: u64,
    /// Entries that matched, over all snapshots.
    pub matches: u64,
    /// Snapshots that could not be searched completely (damaged trees), with why. The
    /// matches found in their readable parts were reported.
    pub errors: Vec<String>,
}

struct Search<'a> {
    repo: &'a Repository,
    patterns: &'a PatternSet,
    /// (tree, directory path) pairs known to hold no match.
    barren: HashSet<(BlobId, PathBuf)>,
    matches: u64,
}

impl Repository {
    /// Calls `visit` for every entry of each of `snapshots` whose absolute path matches
    /// `patterns` (see [`PatternSet`]: `*.jpg` matches that name anywhere, `/home/**`
    /// is anchored), snapshot by snapshot in the order given, in path order within each.
    ///
    /// # Errors
    /// Any error `visit` returns. Damaged trees do not stop the search; they are listed
    /// in [`FindSummary::errors`].
    pub fn find(
        &self,
        snapshots: &[SnapshotInfo],
        patterns: &PatternSet,
        visit: &mut dyn FnMut(&SnapshotInfo, &Path, &Node) -> Result<()>,
    ) -> Result<FindSummary> {
        let mut search = Search {
            repo: self,
            patterns,
            barren: HashSet::new(),
            matches: 0,
        };
        let mut summary = FindSummary::default();
        for snapshot in snapshots {
            summary.snapshots += 1;
            let mut on_match = |path: &Path, node: &Node| visit(snapshot, path, node);
            match search.dir(Path::new("/"), snapshot.snapshot.tree, &mut on_match) {
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::Backend) => summary
                    .errors
                    .push(format!("snapshot {}: {e}", snapshot.id.short())),
                Err(e) => return Err(e),
            }
        }
        summary.matches = search.matches;
        Ok(summary)
    }
}

impl Search<'_> {
    /// Searches directory `dir` (tree `id`); returns whether anything in it matched.
    fn dir(
        &mut self,
        dir: &Path,
        id: BlobId,
        visit: &mut dyn FnMut(&Path, &Node) -> Result<()>,
    ) -> Result<bool> {
        let key = (id, dir.to_path_buf());
        if self.barren.contains(&key) {
            return Ok(false);
        }
        let tree = self.repo.load_tree(&id)?;
        let mut found = false;
        for node in tree.nodes() {
            let path = dir.join(OsStr::from_bytes(&node.name));
            if self.patterns.matches(&path) {
                self.matches += 1;
                found = true;
                visit(&path, node)?;
            }
            if let (NodeKind::Dir, Some(sub)) = (node.kind, node.subtree) {
                found |= self.dir(&path, sub, visit)?;
            }
        }
        if !found {
            self.barren.insert(key);
        }
        Ok(found)
    }
}
