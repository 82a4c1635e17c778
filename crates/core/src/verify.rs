//! `verify`: compare a snapshot with the files on disk (Duplicity's `verify`), by
//! metadata and, with `compare_data`, by content.
//!
//! The live tree is walked through directory descriptors, never following a symlink,
//! in step with the snapshot's trees, depth first with an explicit stack. Content is
//! compared without reading the repository: the live file is cut into chunks as a
//! backup would and the chunks' keyed ids compared with the snapshot's list.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use arca_repo::{Node, NodeKind};

use crate::backup::is_cache_dir_at;
use crate::browse::snapshot_components;
use crate::bundle_cache::BundleCache;
use crate::dir_handle::DirHandle;
use crate::metadata::{OwnerPolicy, Owners, changed_attributes, kind_of, node_from_stat};
use crate::progress::CancelToken;
use crate::repository::SnapshotInfo;
use crate::selection::Selector;
use crate::{Error, ErrorKind, Repository, Result};

/// Settings for [`Repository::verify`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct VerifyOptions {
    /// Compare only this path of the snapshot (absolute; default: all its backed-up
    /// paths). A directory above the backed-up paths compares those below it.
    pub path: Option<PathBuf>,
    /// Where the snapshot's `/` lies on disk (default `/`: the backed-up files
    /// themselves). Point it at a restore target to check a restore.
    pub target: Option<PathBuf>,
    /// Read every file and compare its content (otherwise size and times stand for it).
    pub compare_data: bool,
    /// Expect the recorded numeric owners, not those the recorded names have here (as
    /// restore's `numeric_owner`).
    pub numeric_owner: bool,
    /// Cancels the comparison.
    pub cancel: CancelToken,
}

/// How a live entry differs from the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Difference {
    /// In the snapshot, not on disk.
    Missing,
    /// On disk, not in the snapshot (and not left out by the backup's selection).
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
    /// Size of those files.
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

/// A directory being compared: its snapshot path, the live directory, the names on
/// either side still to compare, the snapshot's entries, and the backed-up path it
/// belongs to (for the selection rules).
struct Frame {
    path: PathBuf,
    dir: DirHandle,
    names: std::vec::IntoIter<Vec<u8>>,
    nodes: Vec<Node>,
    source: PathBuf,
    /// Entries on disk that the snapshot lacks are not reported here: the backup left
    /// the contents out (a cache directory, another file system).
    contents_excluded: bool,
    /// The file system of the source, for `--one-file-system`.
    device: u64,
}

struct Verifier<'a> {
    repo: &'a Repository,
    options: &'a VerifyOptions,
    selector: Selector,
    owners: Owners,
    policy: OwnerPolicy,
    report: VerifyReport,
    visit: &'a mut dyn FnMut(&Path, &Path, &Difference) -> Result<()>,
    /// The bundles read last: a directory's small files share them.
    bundles: BundleCache,
}

impl Repository {
    /// Compares `snapshot` with the files on disk; `visit` gets the path in the
    /// snapshot, the path on disk and each difference, in path order.
    ///
    /// Entries the backup left out by its selection (rules, caches, marker files, size
    /// limit, other file systems, as the snapshot records them) are not reported as
    /// extra. Owners are expected as restore would set them.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] if `options.path` is not in the snapshot;
    /// `InvalidInput` if it is not absolute or has `..`; `Corrupt` for damaged trees;
    /// `Interrupted` if cancelled; any error `visit` returns. Differences are not
    /// errors.
    pub fn verify(
        &self,
        snapshot: &SnapshotInfo,
        options: &VerifyOptions,
        visit: &mut dyn FnMut(&Path, &Path, &Difference) -> Result<()>,
    ) -> Result<VerifyReport> {
        let sources: Vec<PathBuf> = snapshot
            .snapshot
            .paths
            .iter()
            .map(|p| PathBuf::from(OsStr::from_bytes(p)))
            .collect();
        // (where to start, the backed-up path it belongs to)
        let starts: Vec<(PathBuf, PathBuf)> = match &options.path {
            None => sources.iter().map(|s| (s.clone(), s.clone())).collect(),
            Some(p) => {
                snapshot_components(p)?;
                let p = crate::backup::normalize(p);
                match sources.iter().find(|s| p.starts_with(s)) {
                    Some(s) => vec![(p.clone(), s.clone())],
                    None => sources
                        .iter()
                        .filter(|s| s.starts_with(&p))
                        .map(|s| (s.clone(), s.clone()))
                        .collect(),
                }
            }
        };
        if starts.is_empty() {
            let p = options.path.as_deref().unwrap_or(Path::new("/"));
            return Err(Error::new(
                ErrorKind::NotFound,
                format!(
                    "{} is not in snapshot {}, which holds {}",
                    p.display(),
                    snapshot.id.short(),
                    snapshot.paths_lossy().join(", ")
                ),
            ));
        }
        // One open directory per level of the tree being compared.
        crate::dir_handle::raise_open_file_limit();
        let mut v = Verifier {
            repo: self,
            options,
            selector: Selector::from_lines(&snapshot.snapshot.excludes),
            owners: Owners::default(),
            policy: OwnerPolicy::new(options.numeric_owner),
            report: VerifyReport::default(),
            visit,
            bundles: BundleCache::default(),
        };
        for (start, source) in starts {
            v.start(snapshot, &start, &source)?;
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

    /// Compares snapshot path `path` (of backed-up path `source`) and what is below it.
    fn start(&mut self, snapshot: &SnapshotInfo, path: &Path, source: &Path) -> Result<()> {
        let Some(name) = path.file_name() else {
            // The whole file system was backed up: compare `/` entry by entry.
            let live = self.live(path);
            let dir =
                DirHandle::open_path(&live).map_err(|e| Error::io("cannot open", &live, e))?;
            let device = dir.stat().map(|st| st.st_dev).unwrap_or(0);
            let tree = self.repo.load_tree(&snapshot.snapshot.tree)?;
            let frame = self.frame(path, dir, tree.into_nodes(), source, false, device)?;
            return self.walk(frame.into_iter().collect());
        };
        let node = self.repo.node_in(snapshot, path)?;
        let live_parent = self.live(path.parent().unwrap_or(Path::new("/")));
        let parent = match DirHandle::open_path(&live_parent) {
            Ok(p) => p,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.report.entries += 1;
                return self.found(path, Difference::Missing);
            }
            Err(e) => return Err(Error::io("cannot open", &live_parent, e)),
        };
        // The source's file system, for --one-file-system (its parent's if the source
        // itself is gone).
        let live_source = self.live(source);
        let device = std::fs::symlink_metadata(&live_source)
            .map(|m| std::os::unix::fs::MetadataExt::dev(&m))
            .unwrap_or(0);
        let stack = self
            .entry(path, &parent, name.as_bytes(), &node, source, device)?
            .into_iter()
            .collect();
        self.walk(stack)
    }

    /// Compares directories until the stack is empty.
    fn walk(&mut self, mut stack: Vec<Frame>) -> Result<()> {
        while let Some(top) = stack.last_mut() {
            if self.options.cancel.is_cancelled() {
                return Err(Error::interrupted());
            }
            let Some(name) = top.names.next() else {
                stack.pop();
                continue;
            };
            let child = top.path.join(OsStr::from_bytes(&name));
            let found = top
                .nodes
                .binary_search_by(|n| n.name.as_slice().cmp(&name))
                .ok()
                .and_then(|i| top.nodes.get(i).cloned());
            let next = match found {
                Some(node) => {
                    self.entry(&child, &top.dir, &name, &node, &top.source, top.device)?
                }
                None => {
                    if !top.contents_excluded
                        && !self.left_out(&top.dir, &name, &child, &top.source)
                    {
                        self.found(&child, Difference::Extra)?;
                    }
                    None
                }
            };
            stack.extend(next);
        }
        Ok(())
    }

    /// Whether entry `name` of live directory `dir` (snapshot path `path`) is one the
    /// backup's selection leaves out.
    fn left_out(&self, dir: &DirHandle, name: &[u8], path: &Path, source: &Path) -> bool {
        let Ok(st) = dir.lstat(name) else {
            return false;
        };
        let kind = kind_of(&st);
        if self
            .selector
            .filter
            .excludes(path, kind == NodeKind::Dir, source)
        {
            return true;
        }
        match kind {
            NodeKind::File => self.selector.too_large(st.st_size.max(0) as u64),
            NodeKind::Dir if !self.selector.exclude_if_present.is_empty() => dir
                .child(name)
                .and_then(|d| d.names())
                .is_ok_and(|names| self.selector.has_marker(names.iter().map(Vec::as_slice))),
            _ => false,
        }
    }

    /// A frame for directory `dir` (snapshot path `path`) holding `nodes`.
    fn frame(
        &mut self,
        path: &Path,
        dir: DirHandle,
        nodes: Vec<Node>,
        source: &Path,
        contents_excluded: bool,
        device: u64,
    ) -> Result<Option<Frame>> {
        let live = match dir.names() {
            Ok(n) => n,
            Err(e) => {
                self.found(path, Difference::Unreadable(format!("cannot list: {e}")))?;
                return Ok(None);
            }
        };
        // Both sides in name order (tree nodes are sorted by name).
        let mut names: BTreeSet<Vec<u8>> = live.into_iter().collect();
        names.extend(nodes.iter().map(|n| n.name.clone()));
        Ok(Some(Frame {
            path: path.to_path_buf(),
            dir,
            names: names.into_iter().collect::<Vec<_>>().into_iter(),
            nodes,
            source: source.to_path_buf(),
            contents_excluded,
            device,
        }))
    }

    /// Compares one snapshot entry with entry `name` of live directory `parent`;
    /// returns the frame to descend into if both are directories.
    fn entry(
        &mut self,
        path: &Path,
        parent: &DirHandle,
        name: &[u8],
        node: &Node,
        source: &Path,
        device: u64,
    ) -> Result<Option<Frame>> {
        self.report.entries += 1;
        let stat = match parent.lstat(name) {
            Ok(st) => st,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.found(path, Difference::Missing)?;
                return Ok(None);
            }
            Err(e) => {
                let why = format!("cannot read metadata: {e}");
                self.found(path, Difference::Unreadable(why))?;
                return Ok(None);
            }
        };
        let mut live = node_from_stat(name, &stat, &mut self.owners);
        if live.kind == NodeKind::Symlink {
            live.target = parent.read_link(name).unwrap_or_default();
        }
        // Backup records extended attributes of every kind of entry, symlinks included.
        if let Ok(x) = parent.xattrs(name) {
            live.xattrs = x;
        }
        // Owners as restore sets them: by name where the name exists here.
        let mut expected = node.clone();
        (expected.uid, expected.gid) = self.policy.ids(node);
        let mut attributes = changed_attributes(&expected, &live, false);
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
                    return Ok(None);
                }
            }
        }
        if !attributes.is_empty() {
            self.found(path, Difference::Changed(attributes))?;
        }
        if node.kind != NodeKind::Dir || live.kind != NodeKind::Dir {
            return Ok(None);
        }
        let tree = match node.subtree {
            Some(id) => self.repo.load_tree(&id)?,
            None => Default::default(),
        };
        let dir = match parent.child(name) {
            Ok(d) => d,
            Err(e) => {
                self.found(path, Difference::Unreadable(format!("cannot open: {e}")))?;
                return Ok(None);
            }
        };
        let other_fs = self
            .selector
            .other_file_system((device != 0).then_some(device), stat.st_dev);
        let cache = self.selector.exclude_caches && is_cache_dir_at(&dir);
        self.frame(
            path,
            dir,
            tree.into_nodes(),
            source,
            other_fs || cache,
            device,
        )
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
            .holds_content(file, node, &self.bundles)
            .map_err(|e| e.to_string())
    }
}
