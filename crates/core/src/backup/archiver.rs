//! The archiver walks the sources depth-first in sorted order, reuses the content of
//! files unchanged since the parent snapshot, sends the others to the file workers, and
//! writes each directory's tree once all its entries are known (bottom-up).
//!
//! Directories are tracked in a table keyed by a number. A directory is complete when
//! its walk is done and no entry is pending (a file being read or a subdirectory not yet
//! complete); completing it encodes its tree, queues the tree blob, and fills in its
//! node in the parent, which may complete the parent in turn. Memory is bounded by the
//! walk depth plus the files in flight, not by the size of the tree.

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arca_repo::{BlobId, BlobType, Index, Node, NodeKind, Repo, Timestamp, Tree};
use crossbeam_channel::{Receiver, Sender};

use super::bundle::Bundler;
use super::checkpoint::Checkpoints;
use super::reader::{Abort, BlobJob, Done, FileDone, FileJob, queue_bundle, queue_tree};
use super::saver::BlobSaver;
use super::sources::{Entry, is_cache_dir};
use crate::dir_handle::DirHandle;
use crate::metadata::{Owners, node_from_stat, same_inode_state, unchanged};
use crate::progress::{BackupProgress, FileStatus};
use crate::selection::Selector;
use crate::{Error, ErrorKind, LockGuard, Result};

/// What the walk counted.
#[derive(Debug, Default, Clone)]
pub(crate) struct Counts {
    pub(crate) files_new: u64,
    pub(crate) files_changed: u64,
    pub(crate) files_unchanged: u64,
    pub(crate) dirs_new: u64,
    pub(crate) dirs_changed: u64,
    pub(crate) dirs_unchanged: u64,
    pub(crate) other: u64,
    pub(crate) bytes_total: u64,
    pub(crate) bytes_read: u64,
    pub(crate) chunks_total: u64,
    pub(crate) errors: u64,
    pub(crate) changed_during_read: u64,
    /// Stored size of the blobs (chunks and trees) the snapshot references, as far as
    /// already indexed; the rest is resolved when the backup ends.
    pub(crate) stored_known: u64,
}

/// What a finished walk produced.
#[derive(Debug)]
pub(crate) struct Walked {
    pub(crate) root: BlobId,
    pub(crate) counts: Counts,
    pub(crate) warnings: Vec<String>,
    pub(crate) unresolved: HashMap<(BlobType, BlobId), super::Refs>,
    /// The nodes of the entries right below the directories above the sources (the
    /// sources among them), with their paths: what `--skip-if-unchanged` compares, so
    /// a change to `/home` itself does not count as a change to `/home/me/docs`.
    pub(crate) top: Vec<(PathBuf, Node)>,
}

pub(super) struct DirState {
    pub(super) path: PathBuf,
    /// The open directory its entries are reached through; `None` if it could not be
    /// opened (it is then recorded empty).
    handle: Option<Arc<DirHandle>>,
    /// The file system of the source it belongs to (`None` above the sources).
    device: Option<u64>,
    /// The backed-up path it belongs to (`None` above the sources).
    source: Option<Arc<PathBuf>>,
    pub(super) nodes: Vec<Option<Node>>,
    pending: usize,
    walk_done: bool,
    /// Where this directory's node sits in its parent; `None` for the root.
    pub(super) parent: Option<(u64, usize)>,
    /// This directory's tree in the parent snapshot.
    previous: Option<Tree>,
    previous_id: Option<BlobId>,
}

/// A file with several hard links, by (device, inode): being read, with the other links
/// met meanwhile waiting for its content; or read, with its content.
enum Link {
    Reading(Vec<Waiter>),
    Done(Content, u64),
}

/// A file's content as a node records it: its chunks, and its offset if bundled.
#[derive(Clone)]
struct Content {
    chunks: Vec<BlobId>,
    bundle_offset: Option<u64>,
}

impl Content {
    fn of(node: &Node) -> Self {
        Self {
            chunks: node.content.clone(),
            bundle_offset: node.bundle_offset,
        }
    }
}

/// A bundle whose files have been read: its files waiting for its id, or its id.
#[derive(Default)]
struct BundleWait {
    id: Option<BlobId>,
    /// How many files it holds (known once it is sealed), and how many have reported.
    members: Option<u64>,
    reported: u64,
    parked: Vec<Waiter>,
}

/// A file waiting for another's content (a hard link for its first link's, a bundled
/// file for its bundle's id): its place and path.
struct Waiter {
    dir: u64,
    slot: usize,
    path: PathBuf,
    status: FileStatus,
}

struct Frame {
    dir: u64,
    entries: std::vec::IntoIter<Entry>,
}

pub(crate) struct Archiver<'a> {
    pub(crate) repo: &'a Repo,
    pub(crate) index: &'a Index,
    pub(crate) saver: &'a BlobSaver<'a>,
    bundler: &'a Bundler,
    pub(crate) selector: &'a Selector,
    pub(crate) progress: &'a dyn BackupProgress,
    pub(crate) abort: &'a Abort,
    pub(crate) jobs: Option<Sender<FileJob>>,
    pub(crate) blobs: Sender<BlobJob>,
    pub(crate) done: Receiver<Done>,
    /// Bundles with files read but not all placed, by number.
    bundles: HashMap<u64, BundleWait>,
    /// Checkpoints to write, if the backup writes them, and the session they check.
    pub(super) checkpoints: Option<&'a mut Checkpoints>,
    pub(super) session: Option<&'a LockGuard>,
    /// Files sent to the workers whose result has not arrived.
    in_flight: usize,
    pub(super) counts: Counts,
    pub(super) warnings: Vec<String>,
    /// Referenced blobs not yet in the index (stored in this session) -> references.
    pub(super) unresolved: HashMap<(BlobType, BlobId), super::Refs>,
    /// Files whose ctime is at or after this are not trusted as unchanged (see
    /// [`Archiver::set_parent_time`]).
    racy_limit: Option<Timestamp>,
    pub(super) dirs: HashMap<u64, DirState>,
    next_dir: u64,
    owners: Owners,
    /// Multiply linked files, so each is read once however many names it has.
    links: HashMap<(u64, u64), Link>,
    root: Option<BlobId>,
    top: Vec<(PathBuf, Node)>,
}

impl<'a> Archiver<'a> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        repo: &'a Repo,
        index: &'a Index,
        saver: &'a BlobSaver<'a>,
        bundler: &'a Bundler,
        selector: &'a Selector,
        progress: &'a dyn BackupProgress,
        abort: &'a Abort,
        jobs: Sender<FileJob>,
        blobs: Sender<BlobJob>,
        done: Receiver<Done>,
    ) -> Self {
        Self {
            repo,
            index,
            saver,
            bundler,
            bundles: HashMap::new(),
            selector,
            progress,
            abort,
            jobs: Some(jobs),
            blobs,
            done,
            checkpoints: None,
            session: None,
            in_flight: 0,
            counts: Counts::default(),
            warnings: Vec::new(),
            unresolved: HashMap::new(),
            dirs: HashMap::new(),
            next_dir: 0,
            owners: Owners::default(),
            links: HashMap::new(),
            root: None,
            top: Vec::new(),
            racy_limit: None,
        }
    }

    /// Sets the parent snapshot's start time. A file changed while the parent backup
    /// was reading it can keep its size and timestamps (timestamps advance in coarse
    /// ticks), so the parent's chunk list of a file whose ctime is less than a second
    /// before that backup started, or later, is not trusted: the file is read again.
    pub(crate) fn set_parent_time(&mut self, started: Timestamp) {
        self.racy_limit = Some(Timestamp {
            secs: started.secs.saturating_sub(1),
            nanos: started.nanos,
        });
    }

    fn warn(&mut self, path: &Path, message: impl Into<String>) {
        let message = message.into();
        self.progress.warning(path, &message);
        self.warnings.push(format!("{}: {message}", path.display()));
    }

    /// An entry left out of the snapshot because it could not be read.
    fn error(&mut self, path: &Path, message: impl Into<String>) {
        let message = message.into();
        self.counts.errors += 1;
        self.progress.entry_error(path, &message);
        self.warnings.push(format!("{}: {message}", path.display()));
    }

    fn new_dir(
        &mut self,
        path: PathBuf,
        handle: Option<Arc<DirHandle>>,
        parent: Option<(u64, usize)>,
        previous_id: Option<BlobId>,
    ) -> u64 {
        let previous = previous_id.and_then(|id| match self.repo.load_tree(self.index, &id) {
            Ok(t) => Some(t),
            Err(e) => {
                // Without the parent's tree every file is read again; nothing is lost.
                self.warn(&path, format!("cannot use the parent snapshot's tree: {e}"));
                None
            }
        });
        let id = self.next_dir;
        self.next_dir += 1;
        self.dirs.insert(
            id,
            DirState {
                path,
                handle,
                device: None,
                source: None,
                nodes: Vec::new(),
                pending: 0,
                walk_done: false,
                parent,
                previous,
                previous_id,
            },
        );
        id
    }

    pub(super) fn dir_mut(&mut self, id: u64) -> Result<&mut DirState> {
        self.dirs.get_mut(&id).ok_or_else(|| {
            Error::new(
                ErrorKind::Io,
                format!("internal error: directory {id} is not being archived"),
            )
        })
    }

    fn push_node(&mut self, dir: u64, node: Node) -> Result<usize> {
        let st = self.dir_mut(dir)?;
        st.nodes.push(Some(node));
        Ok(st.nodes.len() - 1)
    }

    /// Lists a directory's entries sorted by name; unreadable directories are recorded
    /// empty with an error.
    fn list_dir(&mut self, dir: &DirHandle) -> Vec<Entry> {
        match dir.names() {
            Ok(names) => {
                let mut entries: Vec<Entry> = names
                    .into_iter()
                    .map(|name| Entry {
                        path: dir.join(&name),
                        name,
                        children: None,
                    })
                    .collect();
                entries.sort_unstable_by(|a, b| a.name.cmp(&b.name));
                entries
            }
            Err(e) => {
                self.error(dir.path(), format!("cannot read directory: {e}"));
                Vec::new()
            }
        }
    }

    /// Archives the sources into the snapshot's root tree and returns its id.
    pub(crate) fn run(
        mut self,
        root_entries: Option<Vec<Entry>>,
        previous_root: Option<BlobId>,
    ) -> Result<Walked> {
        let root_dir = Path::new("/");
        let handle =
            DirHandle::open_path(root_dir).map_err(|e| Error::io("cannot open", root_dir, e))?;
        // Backing up `/` itself: the root is the source (its file system, its rules).
        let root_is_source = root_entries.is_none();
        let device = if root_is_source {
            let st = handle
                .stat()
                .map_err(|e| Error::io("cannot read metadata of", root_dir, e))?;
            Some(st.st_dev)
        } else {
            None
        };
        let entries = match root_entries {
            Some(e) => e,
            None => self.list_dir(&handle),
        };
        let root = self.new_dir(
            root_dir.to_path_buf(),
            Some(Arc::new(handle)),
            None,
            previous_root,
        );
        if root_is_source {
            let st = self.dir_mut(root)?;
            st.device = device;
            st.source = Some(Arc::new(root_dir.to_path_buf()));
        }
        let mut stack = vec![Frame {
            dir: root,
            entries: entries.into_iter(),
        }];
        while let Some(frame) = stack.last_mut() {
            if self.abort.should_stop() {
                return Err(self.abort.take_error());
            }
            let dir = frame.dir;
            match frame.entries.next() {
                Some(entry) => {
                    if let Some(child) = self.process(dir, entry)? {
                        stack.push(child);
                    }
                }
                None => {
                    stack.pop();
                    self.dir_mut(dir)?.walk_done = true;
                    self.complete(dir)?;
                }
            }
            while let Ok(done) = self.done.try_recv() {
                self.received(done)?;
            }
            if !stack.is_empty() {
                self.checkpoint_if_due()?;
            }
        }
        // No more files to read: let the workers finish and collect their results.
        self.jobs = None;
        // The last file done completes the last directories, and the root.
        self.drain_files()?;
        if self.abort.should_stop() {
            return Err(self.abort.take_error());
        }
        match self.root {
            Some(root) => Ok(Walked {
                root,
                counts: self.counts,
                warnings: self.warnings,
                unresolved: self.unresolved,
                top: self.top,
            }),
            None => Err(Error::new(
                ErrorKind::Io,
                "internal error: the root directory was never completed",
            )),
        }
    }

    fn process(&mut self, dir: u64, entry: Entry) -> Result<Option<Frame>> {
        let path = entry.path;
        let parent = self.dir_mut(dir)?.handle.clone();
        // Entries right below a virtual directory are sources themselves.
        let source_root = self.dir_mut(dir)?.source.clone();
        // Path components above a backed-up path are followed if they are symlinks, so
        // the snapshot shows the directory structure the user named; they are opened by
        // path. Everything else is reached by name through its open parent.
        let own_handle = match entry.children {
            Some(_) => match DirHandle::open_path(&path) {
                Ok(h) => Some(h),
                Err(e) => {
                    self.error(&path, format!("cannot open: {e}"));
                    return Ok(None);
                }
            },
            None => None,
        };
        let stat = match (&own_handle, &parent) {
            (Some(h), _) => h.stat(),
            (None, Some(p)) => p.lstat(&entry.name),
            (None, None) => return Ok(None),
        };
        let stat = match stat {
            Ok(s) => s,
            Err(e) => {
                self.error(&path, format!("cannot read metadata: {e}"));
                return Ok(None);
            }
        };
        let mut node = node_from_stat(&entry.name, &stat, &mut self.owners);
        // Path components above a source are not subject to the rules: the user named
        // what lies below them.
        let virtual_dir = entry.children.is_some();
        if !virtual_dir
            && (self.selector.filter.excludes(
                &path,
                node.kind == NodeKind::Dir,
                source_root.as_deref().map_or(&path, |p| p.as_path()),
            ) || (node.kind == NodeKind::File && self.selector.too_large(node.size)))
        {
            return Ok(None);
        }
        let previous = self
            .dir_mut(dir)?
            .previous
            .as_ref()
            .and_then(|t| t.find(&entry.name))
            .cloned();
        // Setting or removing an attribute changes the change time: an entry whose
        // inode and change time are those of the parent snapshot's, settled before that
        // snapshot began, has the attributes recorded there (listing them by path was a
        // third of an unchanged backup's time).
        let racy_limit = self.racy_limit;
        let settled = |p: &Node| racy_limit.is_some_and(|limit| p.ctime < limit);
        let same_attributes = previous
            .as_ref()
            .filter(|p| same_inode_state(p, &node) && settled(p));
        if let Some(p) = same_attributes {
            node.xattrs = p.xattrs.clone();
        } else {
            let xattrs = match (&own_handle, &parent) {
                (Some(h), _) => h.own_xattrs(),
                (None, Some(p)) => p.xattrs(&entry.name),
                (None, None) => Ok(Vec::new()),
            };
            match xattrs {
                Ok(x) => node.xattrs = x,
                Err(e) => self.warn(&path, format!("cannot read extended attributes: {e}")),
            }
        }
        match node.kind {
            NodeKind::File => {
                let reusable = previous.as_ref().filter(|p| {
                    unchanged(p, &node)
                        && settled(p)
                        && p.content
                            .iter()
                            .all(|id| self.index.contains(BlobType::Data, id))
                });
                let status = match &previous {
                    Some(p) if p.kind == NodeKind::File => FileStatus::Changed,
                    _ => FileStatus::New,
                };
                let key = (node.device, node.inode);
                if let Some(prev) = reusable {
                    node.content = prev.content.clone();
                    node.bundle_offset = prev.bundle_offset;
                    if node.links > 1 {
                        self.links
                            .insert(key, Link::Done(Content::of(&node), node.size));
                    }
                    self.counts.files_unchanged += 1;
                    self.count_file(&node);
                    self.progress
                        .file_done(&path, FileStatus::Unchanged, node.size);
                    self.push_node(dir, node)?;
                } else if node.links > 1 && self.links.contains_key(&key) {
                    // Another name of a file already met: share its content, read once.
                    let size = node.size;
                    let slot = self.push_node(dir, node)?;
                    match self.links.get_mut(&key) {
                        Some(Link::Done(content, done_size)) if *done_size == size => {
                            let content = content.clone();
                            self.link_done(dir, slot, &path, status, content)?;
                        }
                        Some(Link::Reading(waiters)) => {
                            waiters.push(Waiter {
                                dir,
                                slot,
                                path,
                                status,
                            });
                            self.dir_mut(dir)?.pending += 1;
                        }
                        _ => {
                            // Changed size since: not the same content any more.
                            self.links.remove(&key);
                            self.send_file(dir, slot, parent, entry.name, path, status)?;
                        }
                    }
                } else if let Some(handle) = parent {
                    if node.links > 1 {
                        self.links.insert(key, Link::Reading(Vec::new()));
                    }
                    let slot = self.push_node(dir, node)?;
                    self.send_file(dir, slot, Some(handle), entry.name, path, status)?;
                }
                Ok(None)
            }
            NodeKind::Dir => {
                let previous_id = previous
                    .filter(|p| p.kind == NodeKind::Dir)
                    .and_then(|p| p.subtree);
                let handle = match (own_handle, &parent) {
                    (Some(h), _) => Some(h),
                    (None, Some(p)) => match p.child(&entry.name) {
                        Ok(h) => Some(h),
                        Err(e) => {
                            self.error(&path, format!("cannot open directory: {e}"));
                            None
                        }
                    },
                    (None, None) => None,
                };
                // The file system a source lives on: set by the source itself, inherited.
                let parent_device = self.dir_mut(dir)?.device;
                let crosses = self.selector.one_file_system
                    && parent_device.is_some_and(|d| d != node.device);
                let device = if virtual_dir {
                    None
                } else {
                    Some(parent_device.unwrap_or(node.device))
                };
                let mut entries = match (entry.children, &handle) {
                    (Some(children), _) => children,
                    // A mount point is recorded, empty (as Borg does).
                    (None, Some(_)) if crosses => Vec::new(),
                    (None, Some(h)) => self.list_dir(h),
                    (None, None) => Vec::new(),
                };
                if !virtual_dir {
                    if self
                        .selector
                        .has_marker(entries.iter().map(|e| e.name.as_slice()))
                    {
                        return Ok(None);
                    }
                    if self.selector.exclude_caches
                        && let Some(h) = &handle
                        && is_cache_dir(h, &entries)
                    {
                        entries.retain(|e| e.name == b"CACHEDIR.TAG");
                    }
                }
                let slot = self.push_node(dir, node)?;
                self.dir_mut(dir)?.pending += 1;
                let source = if virtual_dir {
                    None
                } else {
                    Some(source_root.unwrap_or_else(|| Arc::new(path.clone())))
                };
                let child =
                    self.new_dir(path, handle.map(Arc::new), Some((dir, slot)), previous_id);
                let st = self.dir_mut(child)?;
                st.device = device;
                st.source = source;
                Ok(Some(Frame {
                    dir: child,
                    entries: entries.into_iter(),
                }))
            }
            NodeKind::Symlink => {
                let target = match &parent {
                    Some(p) => p.read_link(&entry.name),
                    None => return Ok(None),
                };
                match target {
                    Ok(target) => {
                        node.target = target;
                        self.counts.other += 1;
                        self.push_node(dir, node)?;
                    }
                    Err(e) => self.error(&path, format!("cannot read symlink: {e}")),
                }
                Ok(None)
            }
            _ => {
                self.counts.other += 1;
                self.push_node(dir, node)?;
                Ok(None)
            }
        }
    }

    /// Waits for the result of every file sent to the workers, then seals the open
    /// bundle: afterwards every file node placed is complete.
    pub(super) fn drain_files(&mut self) -> Result<()> {
        while self.in_flight > 0 {
            if self.abort.should_stop() {
                return Err(self.abort.take_error());
            }
            match self.done.recv() {
                Ok(done) => self.received(done)?,
                Err(_) => return Err(self.abort.take_error()),
            }
        }
        // Every bundle the workers sealed was announced before the result of the file
        // that sealed it; only the open one is left.
        if let Some(sealed) = self.bundler.seal() {
            let announce = queue_bundle(self.repo, self.saver, &self.blobs, sealed)
                .map_err(|_| self.abort.take_error())?;
            self.received(announce)?;
        }
        if !self.bundles.is_empty() {
            return Err(Error::new(
                ErrorKind::Io,
                "internal error: bundled files were left without their bundle",
            ));
        }
        Ok(())
    }

    fn received(&mut self, done: Done) -> Result<()> {
        match done {
            Done::File(file) => self.file_done(*file),
            Done::Bundle { seq, id, members } => {
                let wait = self.bundles.entry(seq).or_default();
                wait.id = Some(id);
                wait.members = Some(members);
                let parked = std::mem::take(&mut wait.parked);
                self.forget_bundle_if_done(seq);
                for w in parked {
                    let node = self
                        .dir_mut(w.dir)?
                        .nodes
                        .get_mut(w.slot)
                        .and_then(Option::take);
                    if let Some(mut node) = node {
                        node.content = vec![id];
                        self.place_file(w.dir, w.slot, &w.path, w.status, node)?;
                    }
                }
                Ok(())
            }
        }
    }

    /// Drops the record of bundle `seq` once it is named and all its files reported.
    fn forget_bundle_if_done(&mut self, seq: u64) {
        if self
            .bundles
            .get(&seq)
            .is_some_and(|w| w.id.is_some() && w.members == Some(w.reported))
        {
            self.bundles.remove(&seq);
        }
    }

    fn send_file(
        &mut self,
        dir: u64,
        slot: usize,
        handle: Option<Arc<DirHandle>>,
        name: Vec<u8>,
        path: PathBuf,
        status: FileStatus,
    ) -> Result<()> {
        let Some(handle) = handle else {
            return Ok(());
        };
        self.dir_mut(dir)?.pending += 1;
        self.in_flight += 1;
        let job = FileJob {
            dir,
            slot,
            handle,
            name,
            path,
            status,
        };
        match self.jobs.as_ref().map(|j| j.send(job)) {
            Some(Ok(())) => Ok(()),
            _ => Err(self.abort.take_error()),
        }
    }

    /// Gives a hard link (already placed, not pending) the content of its first link.
    fn link_done(
        &mut self,
        dir: u64,
        slot: usize,
        path: &Path,
        status: FileStatus,
        content: Content,
    ) -> Result<()> {
        let node = {
            let st = self.dir_mut(dir)?;
            let Some(Some(node)) = st.nodes.get_mut(slot) else {
                return Ok(());
            };
            node.content = content.chunks;
            node.bundle_offset = content.bundle_offset;
            node.clone()
        };
        match status {
            FileStatus::Changed => self.counts.files_changed += 1,
            _ => self.counts.files_new += 1,
        }
        self.count_file(&node);
        self.progress.file_done(path, status, node.size);
        Ok(())
    }

    fn count_file(&mut self, node: &Node) {
        self.counts.bytes_total += node.size;
        self.counts.chunks_total += node.content.len() as u64;
        let refs = match node.bundle_offset {
            Some(_) => super::Refs {
                whole: 0,
                slice_bytes: node.size,
            },
            None => super::Refs {
                whole: 1,
                slice_bytes: 0,
            },
        };
        for id in &node.content {
            self.count_stored(BlobType::Data, id, refs);
        }
    }

    /// Adds a referenced blob's stored size (a bundled file's share of it) to the
    /// snapshot's "compressed" total, now if it is indexed, at the end of the backup if
    /// this session stores it.
    fn count_stored(&mut self, blob_type: BlobType, id: &BlobId, refs: super::Refs) {
        match self.index.get(blob_type, id) {
            Some(loc) => self.counts.stored_known += super::stored_share(&loc, refs),
            None => {
                let r = self.unresolved.entry((blob_type, *id)).or_default();
                r.whole += refs.whole;
                r.slice_bytes += refs.slice_bytes;
            }
        }
    }

    fn file_done(&mut self, done: FileDone) -> Result<()> {
        let FileDone {
            dir,
            slot,
            path,
            status,
            outcome,
        } = done;
        self.in_flight = self.in_flight.saturating_sub(1);
        let taken = self
            .dir_mut(dir)?
            .nodes
            .get_mut(slot)
            .and_then(Option::take);
        match (outcome, taken) {
            (Ok(read), Some(old)) => {
                let mut node = node_from_stat(&old.name, &read.before, &mut self.owners);
                node.xattrs = old.xattrs;
                node.content = read.content;
                node.size = read.bytes;
                self.counts.bytes_read += read.bytes;
                match status {
                    FileStatus::Changed => self.counts.files_changed += 1,
                    _ => self.counts.files_new += 1,
                }
                if read.changed {
                    self.counts.changed_during_read += 1;
                    self.warn(
                        &path,
                        "changed while it was being read; the snapshot holds the content as read",
                    );
                }
                let Some(ticket) = read.bundled else {
                    return self.place_file(dir, slot, &path, status, node);
                };
                node.bundle_offset = Some(ticket.offset);
                let wait = self.bundles.entry(ticket.seq).or_default();
                wait.reported += 1;
                match wait.id {
                    Some(id) => {
                        node.content = vec![id];
                        self.forget_bundle_if_done(ticket.seq);
                        return self.place_file(dir, slot, &path, status, node);
                    }
                    None => {
                        // Still pending: placed once the bundle's id is known.
                        wait.parked.push(Waiter {
                            dir,
                            slot,
                            path,
                            status,
                        });
                        if let Some(s) = self.dir_mut(dir)?.nodes.get_mut(slot) {
                            *s = Some(node);
                        }
                        return Ok(());
                    }
                }
            }
            (Err(message), old) => {
                if self.abort.should_stop() {
                    return Err(self.abort.take_error());
                }
                self.error(&path, message.clone());
                // Other names of this file were waiting for its content: they fail too.
                if let Some(old) = old.filter(|n| n.links > 1)
                    && let Some(Link::Reading(waiters)) =
                        self.links.remove(&(old.device, old.inode))
                {
                    for w in waiters {
                        if let Some(s) = self.dir_mut(w.dir)?.nodes.get_mut(w.slot) {
                            *s = None;
                        }
                        self.error(&w.path, message.clone());
                        self.dir_mut(w.dir)?.pending -= 1;
                        self.complete(w.dir)?;
                    }
                }
            }
            (Ok(_), None) => {
                return Err(Error::new(
                    ErrorKind::Io,
                    "internal error: a file result arrived twice",
                ));
            }
        }
        self.dir_mut(dir)?.pending -= 1;
        self.complete(dir)
    }

    /// Puts a read file's complete node in its place (no longer pending), gives its
    /// content to the other names of the file waiting for it, and completes what that
    /// completes.
    fn place_file(
        &mut self,
        dir: u64,
        slot: usize,
        path: &Path,
        status: FileStatus,
        node: Node,
    ) -> Result<()> {
        self.count_file(&node);
        self.progress.file_done(path, status, node.size);
        let content = Content::of(&node);
        let waiters = if node.links > 1 {
            let key = (node.device, node.inode);
            match self
                .links
                .insert(key, Link::Done(content.clone(), node.size))
            {
                Some(Link::Reading(w)) => w,
                _ => Vec::new(),
            }
        } else {
            Vec::new()
        };
        if let Some(s) = self.dir_mut(dir)?.nodes.get_mut(slot) {
            *s = Some(node);
        }
        for w in waiters {
            self.link_done(w.dir, w.slot, &w.path, w.status, content.clone())?;
            self.dir_mut(w.dir)?.pending -= 1;
            self.complete(w.dir)?;
        }
        self.dir_mut(dir)?.pending -= 1;
        self.complete(dir)
    }

    /// Encodes the tree of directory `path` holding `nodes`, queues it for storing, and
    /// returns its id.
    pub(super) fn queue_dir_tree(&mut self, path: &Path, nodes: Vec<Node>) -> Result<BlobId> {
        let tree = Tree::new(nodes)
            .map_err(|e| Error::new(ErrorKind::Io, format!("{}: {e}", path.display())))?;
        let bytes = tree.encode()?;
        let id = self.repo.blob_id(&bytes);
        queue_tree(self.saver, &self.blobs, id, bytes).map_err(|_| self.abort.take_error())?;
        Ok(id)
    }

    /// Writes the tree of `dir` if it is complete, then of each ancestor that becomes
    /// complete in turn.
    fn complete(&mut self, mut dir: u64) -> Result<()> {
        loop {
            let st = self.dir_mut(dir)?;
            if !st.walk_done || st.pending > 0 {
                return Ok(());
            }
            let Some(st) = self.dirs.remove(&dir) else {
                return Ok(());
            };
            if st.source.is_none() {
                self.top.extend(st.nodes.iter().flatten().map(|n| {
                    (
                        st.path.join(std::ffi::OsStr::from_bytes(&n.name)),
                        n.clone(),
                    )
                }));
            }
            let id = self.queue_dir_tree(&st.path, st.nodes.into_iter().flatten().collect())?;
            self.count_stored(
                BlobType::Tree,
                &id,
                super::Refs {
                    whole: 1,
                    slice_bytes: 0,
                },
            );
            let Some((parent, slot)) = st.parent else {
                self.root = Some(id);
                return Ok(());
            };
            match st.previous_id {
                Some(prev) if prev == id => self.counts.dirs_unchanged += 1,
                Some(_) => self.counts.dirs_changed += 1,
                None => self.counts.dirs_new += 1,
            }
            let p = self.dir_mut(parent)?;
            if let Some(Some(node)) = p.nodes.get_mut(slot) {
                node.subtree = Some(id);
            }
            p.pending -= 1;
            dir = parent;
        }
    }
}
