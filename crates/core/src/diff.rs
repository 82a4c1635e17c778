//! `diff`: what changed between two snapshots, entry by entry.
//!
//! Trees are compared name by name; a directory whose tree id is the same in both is
//! identical all the way down and is not read, so the cost follows the size of the
//! change, not of the snapshots.

use std::ffi::OsStr;
use std::iter::Peekable;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use arca_repo::{BlobId, Node, NodeKind, Tree};

use crate::bundle_cache::BundleCache;
use crate::metadata::changed_attributes;
use crate::progress::CancelToken;
use crate::repository::SnapshotInfo;
use crate::{Error, ErrorKind, Repository, Result};

/// How an entry differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// Only in the second snapshot.
    Added,
    /// Only in the first snapshot.
    Removed,
    /// In both, with different content (file data or symlink target) and perhaps
    /// metadata.
    Modified,
    /// In both, same content, different metadata.
    MetadataChanged,
    /// In both, of a different type (e.g. a file became a directory).
    TypeChanged,
}

impl Change {
    /// The one-character marker used in listings: `+`, `-`, `M`, `U`, `T`.
    pub fn marker(self) -> char {
        match self {
            Self::Added => '+',
            Self::Removed => '-',
            Self::Modified => 'M',
            Self::MetadataChanged => 'U',
            Self::TypeChanged => 'T',
        }
    }
}

/// One difference between two snapshots.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DiffEntry<'a> {
    /// The path in the snapshots.
    pub path: &'a Path,
    /// What changed.
    pub change: Change,
    /// The entry in the first snapshot (`None` if added).
    pub old: Option<&'a Node>,
    /// The entry in the second snapshot (`None` if removed).
    pub new: Option<&'a Node>,
    /// For modified entries, the attributes that differ (see the README: `content`,
    /// `type`, `size`, `mode`, `uid`, `gid`, `mtime`, `target`, `rdev`, `xattrs`).
    pub attributes: Vec<&'static str>,
}

/// Counts for one kind of entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChangeCounts {
    /// Entries added.
    pub added: u64,
    /// Entries removed.
    pub removed: u64,
    /// Entries changed in content, metadata or type.
    pub changed: u64,
}

/// Totals of a diff.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiffSummary {
    /// Regular files.
    pub files: ChangeCounts,
    /// Directories.
    pub dirs: ChangeCounts,
    /// Symlinks, devices, FIFOs and sockets.
    pub others: ChangeCounts,
    /// Size of the files added, plus growth of modified files.
    pub bytes_added: u64,
    /// Size of the files removed, plus shrinkage of modified files.
    pub bytes_removed: u64,
}

impl DiffSummary {
    fn count(&mut self, node: &Node) -> &mut ChangeCounts {
        match node.kind {
            NodeKind::File => &mut self.files,
            NodeKind::Dir => &mut self.dirs,
            _ => &mut self.others,
        }
    }
}

struct Differ<'r, 'v> {
    repo: &'r Repository,
    cancel: &'r CancelToken,
    visit: &'v mut dyn FnMut(&DiffEntry<'_>) -> Result<()>,
    summary: DiffSummary,
    /// The bundles read last, for bundled files whose chunk lists differ.
    bundles: BundleCache,
}

/// A pair of directories still to compare: their path and each side's tree.
type Subtrees = Option<(PathBuf, Option<BlobId>, Option<BlobId>)>;

/// Two directories being compared: the path and each side's entries not yet compared.
struct Frame {
    dir: PathBuf,
    old: Peekable<std::vec::IntoIter<Node>>,
    new: Peekable<std::vec::IntoIter<Node>>,
}

impl Repository {
    /// Compares `path` (`/` for everything) in snapshot `old` with the same path in
    /// `new`, calling `visit` for each entry that differs, in path order (everything
    /// below an added or removed directory is reported too).
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] if `path` is in neither snapshot; `InvalidInput` if it is
    /// not absolute or has `..`; `Corrupt` for missing or damaged trees, or bundles of
    /// bundled files compared by their bytes; `Interrupted`
    /// if `cancel` fires; any error `visit` returns.
    pub fn diff(
        &self,
        old: &SnapshotInfo,
        new: &SnapshotInfo,
        path: &Path,
        cancel: &CancelToken,
        visit: &mut dyn FnMut(&DiffEntry<'_>) -> Result<()>,
    ) -> Result<DiffSummary> {
        let mut d = Differ {
            repo: self,
            cancel,
            visit,
            summary: DiffSummary::default(),
            bundles: BundleCache::default(),
        };
        if crate::browse::is_root(path)? {
            d.trees(
                PathBuf::from("/"),
                Some(old.snapshot.tree),
                Some(new.snapshot.tree),
            )?;
            return Ok(d.summary);
        }
        let a = self.node_at(&old.snapshot.tree, path)?;
        let b = self.node_at(&new.snapshot.tree, path)?;
        if a.is_none() && b.is_none() {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!(
                    "{} is in neither snapshot {} nor {}",
                    path.display(),
                    old.id.short(),
                    new.id.short()
                ),
            ));
        }
        let parent = path.parent().unwrap_or(Path::new("/"));
        if let Some((dir, old, new)) = d.pair(parent, a.as_ref(), b.as_ref())? {
            d.trees(dir, old, new)?;
        }
        Ok(d.summary)
    }
}

impl Differ<'_, '_> {
    fn load(&self, id: Option<BlobId>) -> Result<Tree> {
        match id {
            Some(id) => self.repo.load_tree(&id),
            None => Ok(Tree::default()),
        }
    }

    /// Compares two directories and everything below them, merging entries by name,
    /// depth first with an explicit stack (trees may be deeper than recursion allows).
    fn trees(&mut self, dir: PathBuf, old: Option<BlobId>, new: Option<BlobId>) -> Result<()> {
        let mut stack: Vec<Frame> = Vec::new();
        stack.extend(self.frame(dir, old, new)?);
        while let Some(top) = stack.last_mut() {
            if self.cancel.is_cancelled() {
                return Err(Error::interrupted());
            }
            let (x, y) = match (top.old.peek(), top.new.peek()) {
                (None, None) => {
                    stack.pop();
                    continue;
                }
                (Some(x), Some(y)) if x.name == y.name => (top.old.next(), top.new.next()),
                (Some(x), Some(y)) if x.name < y.name => (top.old.next(), None),
                (Some(_), None) => (top.old.next(), None),
                _ => (None, top.new.next()),
            };
            let dir = top.dir.clone();
            if let Some((sub, a, b)) = self.pair(&dir, x.as_ref(), y.as_ref())? {
                stack.extend(self.frame(sub, a, b)?);
            }
        }
        Ok(())
    }

    /// The comparison of two directories' trees, unless they are the same tree.
    fn frame(
        &self,
        dir: PathBuf,
        old: Option<BlobId>,
        new: Option<BlobId>,
    ) -> Result<Option<Frame>> {
        if old.is_some() && old == new {
            return Ok(None);
        }
        Ok(Some(Frame {
            dir,
            old: self.load(old)?.into_nodes().into_iter().peekable(),
            new: self.load(new)?.into_nodes().into_iter().peekable(),
        }))
    }

    /// Compares the entries named alike in directory `dir` of each snapshot. Returns the
    /// two subtrees to compare next if both are directories.
    fn pair(&mut self, dir: &Path, old: Option<&Node>, new: Option<&Node>) -> Result<Subtrees> {
        let name = old.or(new).map(|n| OsStr::from_bytes(&n.name));
        let path = dir.join(name.unwrap_or_default());
        match (old, new) {
            (None, None) => Ok(None),
            (Some(a), None) => self.whole(a, dir, Change::Removed).map(|()| None),
            (None, Some(b)) => self.whole(b, dir, Change::Added).map(|()| None),
            (Some(a), Some(b)) => {
                let mut attributes = changed_attributes(a, b, true);
                if attributes.contains(&"content")
                    && self.repo.same_stored_content(a, b, &path, &self.bundles)?
                {
                    attributes.retain(|a| *a != "content");
                }
                if attributes.is_empty() && a.subtree == b.subtree {
                    return Ok(None);
                }
                if attributes.first() == Some(&"type") {
                    // Report the type change, then what went away and what came in
                    // below it.
                    if a.kind == NodeKind::File {
                        self.summary.bytes_removed += a.size;
                    }
                    if b.kind == NodeKind::File {
                        self.summary.bytes_added += b.size;
                    }
                    self.emit(&path, Change::TypeChanged, Some(a), Some(b), attributes)?;
                    self.below(a, &path, Change::Removed)?;
                    self.below(b, &path, Change::Added)?;
                    return Ok(None);
                }
                if !attributes.is_empty() {
                    let content = attributes.iter().any(|a| *a == "content" || *a == "target");
                    let change = if content {
                        Change::Modified
                    } else {
                        Change::MetadataChanged
                    };
                    if a.kind == NodeKind::File {
                        self.summary.bytes_added += b.size.saturating_sub(a.size);
                        self.summary.bytes_removed += a.size.saturating_sub(b.size);
                    }
                    self.emit(&path, change, Some(a), Some(b), attributes)?;
                }
                Ok((a.kind == NodeKind::Dir).then_some((path, a.subtree, b.subtree)))
            }
        }
    }

    /// Reports `node` in `dir` and everything below it as added or removed.
    fn whole(&mut self, node: &Node, dir: &Path, change: Change) -> Result<()> {
        let repo = self.repo;
        repo.walk_node(dir, node, &mut |path, n| self.report(path, n, change))
    }

    /// Reports everything below directory `node` (at `path`) as added or removed.
    fn below(&mut self, node: &Node, path: &Path, change: Change) -> Result<()> {
        match (node.kind, node.subtree) {
            (NodeKind::Dir, Some(sub)) => {
                let tree = self.repo.load_tree(&sub)?;
                for child in tree.nodes() {
                    self.whole(child, path, change)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn report(&mut self, path: &Path, node: &Node, change: Change) -> Result<()> {
        if self.cancel.is_cancelled() {
            return Err(Error::interrupted());
        }
        let (old, new) = match change {
            Change::Removed => (Some(node), None),
            _ => (None, Some(node)),
        };
        self.emit(path, change, old, new, Vec::new())
    }

    fn emit(
        &mut self,
        path: &Path,
        change: Change,
        old: Option<&Node>,
        new: Option<&Node>,
        attributes: Vec<&'static str>,
    ) -> Result<()> {
        if let Some(node) = new.or(old) {
            let counts = self.summary.count(node);
            match change {
                Change::Added => counts.added += 1,
                Change::Removed => counts.removed += 1,
                _ => counts.changed += 1,
            }
            if node.kind == NodeKind::File {
                match change {
                    Change::Added => self.summary.bytes_added += node.size,
                    Change::Removed => self.summary.bytes_removed += node.size,
                    _ => {}
                }
            }
        }
        (self.visit)(&DiffEntry {
            path,
            change,
            old,
            new,
            attributes,
        })
    }
}
