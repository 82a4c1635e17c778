//! Browsing a snapshot's trees: resolving a path and walking everything below it.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use arca_repo::{BlobId, Node, NodeKind, Tree};

use crate::repository::SnapshotInfo;
use crate::{Error, ErrorKind, Repository, Result};

/// The error for a path a snapshot does not hold.
pub(crate) fn not_in_snapshot(path: &Path, snapshot: &SnapshotInfo) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!(
            "{} is not in snapshot {}",
            path.display(),
            snapshot.id.short()
        ),
    )
}

/// The names along `path`, a path inside a snapshot: absolute, without `..` (`.` and
/// repeated slashes are ignored). `/` has none.
///
/// # Errors
/// [`ErrorKind::InvalidInput`] for a relative path or one with `..`.
pub(crate) fn snapshot_components(path: &Path) -> Result<Vec<&OsStr>> {
    if !path.has_root() || path.components().any(|c| c == Component::ParentDir) {
        return Err(Error::invalid(format!(
            "{}: a path in a snapshot must be absolute and without ..",
            path.display()
        )));
    }
    Ok(path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect())
}

/// Whether `path` (see [`snapshot_components`]) is the snapshot's root.
///
/// # Errors
/// As [`snapshot_components`].
pub(crate) fn is_root(path: &Path) -> Result<bool> {
    Ok(snapshot_components(path)?.is_empty())
}

impl Repository {
    /// The node at absolute `path` in `snapshot`.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] naming the path and snapshot; `Corrupt` for missing or
    /// damaged trees.
    pub(crate) fn node_in(&self, snapshot: &SnapshotInfo, path: &Path) -> Result<Node> {
        self.node_at(&snapshot.snapshot.tree, path)?
            .ok_or_else(|| not_in_snapshot(path, snapshot))
    }

    /// The node at absolute `path` below root tree `root`, or `None` if there is none.
    ///
    /// # Errors
    /// `Corrupt` for missing or damaged trees.
    pub(crate) fn node_at(&self, root: &BlobId, path: &Path) -> Result<Option<Node>> {
        let parts = snapshot_components(path)?;
        let mut names = parts.into_iter();
        let mut tree = self.load_tree(root)?;
        let Some(mut name) = names.next() else {
            return Ok(None);
        };
        loop {
            let Some(node) = tree.find(name.as_bytes()) else {
                return Ok(None);
            };
            let Some(next) = names.next() else {
                return Ok(Some(node.clone()));
            };
            match (node.kind, node.subtree) {
                (NodeKind::Dir, Some(sub)) => tree = self.load_tree(&sub)?,
                _ => return Ok(None),
            }
            name = next;
        }
    }

    /// Visits `path` in `snapshot` and, if it is a directory, everything below it:
    /// depth first, in name order, each directory before its entries. `visit` gets the
    /// absolute path inside the snapshot and the node. `path` `/` visits the whole
    /// snapshot (the root itself has no node).
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] if `path` is not in the snapshot; `Corrupt` for missing
    /// or damaged trees; any error `visit` returns (which stops the walk).
    pub fn walk(
        &self,
        snapshot: &SnapshotInfo,
        path: &Path,
        visit: &mut dyn FnMut(&Path, &Node) -> Result<()>,
    ) -> Result<()> {
        let components = snapshot_components(path)?;
        let mut tree = self.load_tree(&snapshot.snapshot.tree)?;
        let mut prefix = PathBuf::from("/");
        let mut start: Option<Node> = None;
        for (i, name) in components.iter().enumerate() {
            let node = tree
                .find(name.as_bytes())
                .cloned()
                .ok_or_else(|| not_in_snapshot(path, snapshot))?;
            if i + 1 < components.len() {
                match (node.kind, node.subtree) {
                    (NodeKind::Dir, Some(sub)) => tree = self.load_tree(&sub)?,
                    _ => {
                        return Err(Error::new(
                            ErrorKind::NotFound,
                            format!(
                                "{} is not in snapshot {}: {} is not a directory",
                                path.display(),
                                snapshot.id.short(),
                                prefix.join(name).display()
                            ),
                        ));
                    }
                }
                prefix.push(name);
            } else {
                start = Some(node);
            }
        }
        match start {
            None => self.walk_below(prefix, tree, visit),
            Some(node) => self.walk_node(&prefix, &node, visit),
        }
    }

    /// Visits `node` (in directory `dir`) and, if it is a directory, everything below it.
    pub(crate) fn walk_node(
        &self,
        dir: &Path,
        node: &Node,
        visit: &mut dyn FnMut(&Path, &Node) -> Result<()>,
    ) -> Result<()> {
        let here = dir.join(OsStr::from_bytes(&node.name));
        visit(&here, node)?;
        match (node.kind, node.subtree) {
            (NodeKind::Dir, Some(sub)) => self.walk_below(here, self.load_tree(&sub)?, visit),
            _ => Ok(()),
        }
    }

    /// Visits everything in `tree` (the directory `dir`) and below it.
    pub(crate) fn walk_below(
        &self,
        dir: PathBuf,
        tree: Tree,
        visit: &mut dyn FnMut(&Path, &Node) -> Result<()>,
    ) -> Result<()> {
        let mut stack: Vec<(PathBuf, std::vec::IntoIter<Node>)> =
            vec![(dir, tree.into_nodes().into_iter())];
        while let Some((dir, nodes)) = stack.last_mut() {
            let Some(node) = nodes.next() else {
                stack.pop();
                continue;
            };
            let here = dir.join(OsStr::from_bytes(&node.name));
            visit(&here, &node)?;
            if let (NodeKind::Dir, Some(sub)) = (node.kind, node.subtree) {
                let children = self.load_tree(&sub)?.into_nodes().into_iter();
                stack.push((here, children));
            }
        }
        Ok(())
    }
}
