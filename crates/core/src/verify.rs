//! `verify`: compare a snapshot with the files on disk (Duplicity's `verify`), by
//! metadata and, with `compare_data`, by content.
//!
//! The live tree is walked through directory descriptors, never following a symlink,
//! in step with the snapshot's trees. Content is compared without reading the
//! repository: the live file is cut into chunks as a backup would and the chunks' keyed
//! ids compared with the snapshot's list.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use arca_repo::{Node, NodeKind};

use crate::dir_handle::DirHandle;
use crate::metadata::{Owners, changed_attributes, node_from_stat};
use crate::progress::CancelToken;
use crate::repository::SnapshotInfo;
use crate::selection::{Filter, FilterRule};
use crate::{Error, Repository, Result};

/// Settings for [`Repository::verify`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct VerifyOptions {
    /// Compare only this path of the snapshot (default: all its backed-up paths).
    pub path: Option<PathBuf>,
    /// Where the snapshot's `/` lies on disk (default `/`: the backed-up files
    /// themselves). Point it at a restore target to check a restore.
    pub target: Option<PathBuf>,
    /// Read every file and compare its content (otherwise size and times stand for it).
    pub compare_data: bool,
    /// Cancels the comparison.
    pub cancel: CancelToken,
}

/// How a live entry differs from the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Difference {
    /// In the snapshot, not on disk.
    Missing,
    /// On disk, not in the snapshot (and not excluded by the snapshot's rules).
    Extra,
    /// On both, differing in these attributes (names as for `diff`: `content`, `type`,
    /// `size`, `mode`, `uid`, `gid`, `mtime`, `target`, `rdev`, `xattrs`).
    Changed(Vec<&'static str>),
    /// On disk but could not be read, with why.
    Unreadable(String),
}

/// The outcome of a [`Repository::verify`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Snapshot entries compared with the disk.
    pub entries: u64,
    /// Files whose content was read and compared.
    pub files_compared: u64,
    /// Bytes read for that.
    pub bytes_compared: u64,
    /// Entries of the snapshot missing on disk.
    pub missing: u64,
    /// Entries on disk the snapshot lacks.
    pub extra: u64,
    /// Entries that differ.
    pub changed: u64,
    /// Entries that could not be read.
    pub unreadable: u64,
}

impl VerifyReport {
    /// True if the disk matches the snapshot.
    pub fn is_ok(&self) -> bool {
        self.missing + self.extra + self.changed + self.unreadable == 0
    }
}

struct Verifier<'a> {
    repo: &'a Repository,
    options: &'a VerifyOptions,
    filter: Filter,
    owners: Owners,
    report: VerifyReport,
    visit: &'a mut dyn FnMut(&Path, &Path, &Difference) -> Result<()>,
}

impl Repository {
    /// Compares `snapshot` with the files on disk; `visit` gets the path in the
    /// snapshot, the path on disk and each difference, in path order.
    ///
    /// # Errors
    /// [`crate::ErrorKind::NotFound`] if `options.path` is not in the snapshot or the directory
    /// above a compared path cannot be opened; `Corrupt` for damaged trees;
    /// `Interrupted` if cancelled; any error `visit` returns. Differences are not
    /// errors.
    pub fn verify(
        &self,
        snapshot: &SnapshotInfo,
        options: &VerifyOptions,
        visit: &mut dyn FnMut(&Path, &Path, &Difference) -> Result<()>,
    ) -> Result<VerifyReport> {
        let rules: Vec<FilterRule> = snapshot
            .snapshot
            .excludes
            .iter()
            .filter_map(|l| FilterRule::from_line(l))
            .collect();
        let starts: Vec<PathBuf> = match &options.path {
            Some(p) => vec![crate::select::absolute(p)?],
            None => snapshot
                .snapshot
                .paths
                .iter()
                .map(|p| PathBuf::from(OsStr::from_bytes(p)))
                .collect(),
        };
        let mut v = Verifier {
            repo: self,
            options,
            filter: Filter::new(&rules).unwrap_or_default(),
            owners: Owners::default(),
            report: VerifyReport::default(),
            visit,
        };
        for start in starts {
            v.start(snapshot, &start)?;
        }
        Ok(v.report)
    }
}

impl Verifier<'_> {
    /// Where snapshot path `path` lies on disk.
    fn live(&self, path: &Path) -> PathBuf {
        let root = self.options.target.as_deref().unwrap_or(Path::new("/"));
        let rel: PathBuf = path
            .components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .collect();
        root.join(rel)
    }

    fn found(&mut self, path: &Path, difference: Difference) -> Result<()> {
        match &difference {
            Difference::Missing => self.report.missing += 1,
            Difference::Extra => self.report.extra += 1,
            Difference::Changed(_) => self.report.changed += 1,
            Difference::Unreadable(_) => self.report.unreadable += 1,
        }
        let live = self.live(path);
        (self.visit)(path, &live, &difference)
    }

    fn start(&mut self, snapshot: &SnapshotInfo, path: &Path) -> Result<()> {
        let tree_root = snapshot.snapshot.tree;
        let Some(name) = path.file_name() else {
            // The whole file system was backed up: compare `/` entry by entry.
            let live = self.live(path);
            let dir =
                DirHandle::open_path(&live).map_err(|e| Error::io("cannot open", &live, e))?;
            let tree = self.repo.load_tree(&tree_root)?;
            return self.entries(path, &dir, tree.nodes(), path);
        };
        let node = self.repo.node_in(snapshot, path)?;
        let parent_path = path.parent().unwrap_or(Path::new("/"));
        let live_parent = self.live(parent_path);
        let parent = DirHandle::open_path(&live_parent)
            .map_err(|e| Error::io("cannot open", &live_parent, e))?;
        self.entry(path, &parent, name.as_bytes(), &node, path)
    }

    /// Compares the entries of a directory (`dir`, at snapshot path `path`) with the
    /// snapshot's `nodes`; `source` is the backed-up path it belongs to.
    fn entries(
        &mut self,
        path: &Path,
        dir: &DirHandle,
        nodes: &[Node],
        source: &Path,
    ) -> Result<()> {
        let live = match dir.names() {
            Ok(n) => n,
            Err(e) => {
                self.found(path, Difference::Unreadable(format!("cannot list: {e}")))?;
                return Ok(());
            }
        };
        // Both sides in name order (tree nodes are sorted by name).
        let mut names: BTreeSet<&[u8]> = live.iter().map(Vec::as_slice).collect();
        names.extend(nodes.iter().map(|n| n.name.as_slice()));
        for name in names {
            let child = path.join(OsStr::from_bytes(name));
            match nodes.binary_search_by(|n| n.name.as_slice().cmp(name)) {
                Ok(i) => self.entry(&child, dir, name, &nodes[i], source)?,
                Err(_) => {
                    let is_dir = dir
                        .lstat(name)
                        .is_ok_and(|st| crate::metadata::kind_of(&st) == NodeKind::Dir);
                    if !self.filter.excludes(&child, is_dir, source) {
                        self.found(&child, Difference::Extra)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Compares one snapshot entry with entry `name` of live directory `parent`.
    fn entry(
        &mut self,
        path: &Path,
        parent: &DirHandle,
        name: &[u8],
        node: &Node,
        source: &Path,
    ) -> Result<()> {
        if self.options.cancel.is_cancelled() {
            return Err(Error::interrupted());
        }
        self.report.entries += 1;
        let stat = match parent.lstat(name) {
            Ok(st) => st,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.found(path, Difference::Missing)?;
                return Ok(());
            }
            Err(e) => {
                self.found(
                    path,
                    Difference::Unreadable(format!("cannot read metadata: {e}")),
                )?;
                return Ok(());
            }
        };
        let mut live = node_from_stat(name, &stat, &mut self.owners);
        if live.kind == NodeKind::Symlink {
            live.target = parent.read_link(name).unwrap_or_default();
        } else if let Ok(x) = parent.xattrs(name) {
            live.xattrs = x;
        }
        let mut attributes = changed_attributes(node, &live, false);
        if node.kind == NodeKind::File
            && live.kind == NodeKind::File
            && self.options.compare_data
            && !attributes.contains(&"size")
        {
            match self.same_content(parent, name, node) {
                Ok(true) => {}
                Ok(false) => attributes.insert(0, "content"),
                Err(message) => {
                    self.found(path, Difference::Unreadable(message))?;
                    return Ok(());
                }
            }
        }
        if !attributes.is_empty() {
            self.found(path, Difference::Changed(attributes))?;
        }
        if node.kind == NodeKind::Dir && live.kind == NodeKind::Dir {
            let tree = match node.subtree {
                Some(id) => self.repo.load_tree(&id)?,
                None => Default::default(),
            };
            match parent.child(name) {
                Ok(dir) => self.entries(path, &dir, tree.nodes(), source)?,
                Err(e) => self.found(path, Difference::Unreadable(format!("cannot open: {e}")))?,
            }
        }
        Ok(())
    }

    /// Whether live file `name` holds `node`'s content.
    fn same_content(
        &mut self,
        parent: &DirHandle,
        name: &[u8],
        node: &Node,
    ) -> std::result::Result<bool, String> {
        let file = parent
            .open_read(name)
            .map_err(|e| format!("cannot open: {e}"))?;
        self.report.files_compared += 1;
        self.report.bytes_compared += node.size;
        self.repo
            .holds_content(file, node)
            .map_err(|e| format!("cannot read: {e}"))
    }
}
