//! The archiver takes the walker's listings ([`super::walk`]) depth-first in sorted
//! order, reuses the content of files unchanged since the parent snapshot, sends the
//! others to the file workers, and writes each directory's tree once all its entries are
//! known (bottom-up).
//!
//! Directories are tracked in a table keyed by a number. A directory is complete when
//! its walk is done and no entry is pending (a file being read or a subdirectory not yet
//! complete); completing it encodes its tree, queues the tree blob, and fills in its
//! node in the parent, which may complete the parent in turn. Memory is bounded by the
//! walk depth (with each directory's remaining names at each level, in the walker),
//! the walker's lead (at most [`super::walk::AHEAD`] batches of at most
//! [`super::walk::CHUNK`] entries), the files in flight and the directories of the files
//! waiting for the open bundle (at most one per file of it, and a bundle holds at most
//! 4,096 files), not by the size of the tree. Open descriptors: the archiver opens a
//! directory only to read a file or attributes in it ([`Archiver::dir_handle`]), so an
//! unchanged backup opens none below the sources; it keeps one per such directory whose
//! walk is not done, except that a directory with only its last subdirectory left hands
//! its descriptor down ([`Archiver::hand_down`]), and the files in flight hold theirs.

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arca_repo::{BlobId, BlobType, Index, Node, NodeKind, Repo, Timestamp, Tree};
use crossbeam_channel::{Receiver, Sender};

use super::bundle::Bundler;
use super::checkpoint::Checkpoints;
use super::files::{BundleWait, Content, Link, Waiter};
use super::reader::{Abort, BlobJob, Done, FileJob, queue_blob};
use super::saver::BlobSaver;
use super::walk::{Item, Listing, Listings};
use crate::dir_handle::DirHandle;
use crate::metadata::{Owners, node_from_stat, same_inode_state, unchanged};
use crate::progress::{BackupProgress, FileStatus};
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
    /// The open directory its entries are reached through, once the archiver needs it
    /// (see [`Archiver::dir_handle`]); dropped when its walk is done.
    handle: Option<Arc<DirHandle>>,
    /// A directory above the sources (`/`, unless it is the source, and the path
    /// components leading to the sources).
    above_sources: bool,
    pub(super) nodes: Vec<Option<Node>>,
    pub(super) pending: usize,
    walk_done: bool,
    /// Where this directory's node sits in its parent; `None` for the root.
    pub(super) parent: Option<(u64, usize)>,
    /// This directory's tree in the parent snapshot.
    previous: Option<Tree>,
    previous_id: Option<BlobId>,
}

struct Frame {
    dir: u64,
    entries: std::vec::IntoIter<Item>,
    /// More listings of this directory will come.
    more: bool,
}

pub(crate) struct Archiver<'a> {
    pub(crate) repo: &'a Repo,
    pub(crate) index: &'a Index,
    pub(crate) saver: &'a BlobSaver<'a>,
    pub(super) bundler: &'a Bundler,
    pub(crate) progress: &'a dyn BackupProgress,
    pub(crate) abort: &'a Abort,
    pub(crate) jobs: Option<Sender<FileJob>>,
    pub(crate) blobs: Sender<BlobJob>,
    pub(crate) done: Receiver<Done>,
    /// Bundles with files read but not all placed, by number.
    pub(super) bundles: HashMap<u64, BundleWait>,
    /// Checkpoints to write, if the backup writes them, and the session they check.
    pub(super) checkpoints: Option<&'a mut Checkpoints>,
    pub(super) session: Option<&'a LockGuard>,
    /// Files sent to the workers whose result has not arrived.
    pub(super) in_flight: usize,
    pub(super) counts: Counts,
    pub(super) warnings: Vec<String>,
    /// Referenced blobs not yet in the index (stored in this session) -> references.
    pub(super) unresolved: HashMap<(BlobType, BlobId), super::Refs>,
    /// Files whose ctime is at or after this are not trusted as unchanged (see
    /// [`Archiver::set_parent_time`]).
    racy_limit: Option<Timestamp>,
    pub(super) dirs: HashMap<u64, DirState>,
    next_dir: u64,
    pub(super) owners: Owners,
    /// Multiply linked files, so each is read once however many names it has.
    pub(super) links: HashMap<(u64, u64), Link>,
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

    pub(super) fn warn(&mut self, path: &Path, message: impl Into<String>) {
        let message = message.into();
        self.progress.warning(path, &message);
        self.warnings.push(format!("{}: {message}", path.display()));
    }

    /// An entry left out of the snapshot because it could not be read.
    pub(super) fn error(&mut self, path: &Path, message: impl Into<String>) {
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
        above_sources: bool,
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
                above_sources,
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

    pub(super) fn push_node(&mut self, dir: u64, node: Node) -> Result<usize> {
        let st = self.dir_mut(dir)?;
        st.nodes.push(Some(node));
        Ok(st.nodes.len() - 1)
    }

    /// The open directory `dir`, opened now if the archiver has not needed it yet: by
    /// name through its nearest open ancestor (the directories between are opened in
    /// turn and closed again), or by path for `/`; it is kept until its walk is done.
    /// The outer error is an internal one; the inner is the file system's.
    pub(super) fn dir_handle(&mut self, dir: u64) -> Result<std::io::Result<Arc<DirHandle>>> {
        // The directories to open by name, innermost first, below one that is open or
        // is opened by path.
        let mut chain = Vec::new();
        let mut at = dir;
        let mut handle = loop {
            let st = self.dir_mut(at)?;
            if let Some(h) = &st.handle {
                break h.clone();
            }
            match st.parent {
                Some((parent, _)) if !st.above_sources => {
                    chain.push(at);
                    at = parent;
                }
                _ => match DirHandle::open_path(&st.path) {
                    Ok(h) => break st.handle.insert(Arc::new(h)).clone(),
                    Err(e) => return Ok(Err(e)),
                },
            }
        };
        while let Some(id) = chain.pop() {
            let st = self.dir_mut(id)?;
            let name = st
                .path
                .file_name()
                .map(OsStrExt::as_bytes)
                .unwrap_or_default();
            match handle.child(name) {
                // Only `dir` is kept: the directories passed through close again, so a
                // file deep below directories without files of their own costs one
                // descriptor, not one per level.
                Ok(h) if chain.is_empty() => handle = st.handle.insert(Arc::new(h)).clone(),
                Ok(h) => handle = Arc::new(h),
                Err(e) => return Ok(Err(e)),
            }
        }
        Ok(Ok(handle))
    }

    /// Directory `dir` has nothing left to take but its last subdirectory `child`: if
    /// `dir` is open, `child` is opened through it and `dir` closed, as the walker
    /// does, so a chain of single subdirectories holds one descriptor, not one per
    /// level. (Opened later instead, `child` would need its ancestors opened again.)
    /// Only a directory the archiver opened to read in hands down (one above the sources
    /// came open from the walker, and an unchanged backup opens none below them), and
    /// only to a child with entries to take (not an empty directory, nor a mount point
    /// left out by `--one-file-system`, which must not be opened).
    fn hand_down(&mut self, dir: u64, child: &Frame) -> Result<()> {
        if child.entries.len() == 0 && !child.more {
            return Ok(());
        }
        let st = self.dir_mut(dir)?;
        let Some(handle) = st.handle.clone().filter(|_| !st.above_sources) else {
            return Ok(());
        };
        let st = self.dir_mut(child.dir)?;
        if st.handle.is_none() {
            let name = st
                .path
                .file_name()
                .map(OsStrExt::as_bytes)
                .unwrap_or_default();
            // If it cannot be opened, `dir_handle` tries again when it is needed, and
            // reports why.
            let Ok(opened) = handle.child(name) else {
                return Ok(());
            };
            st.handle = Some(Arc::new(opened));
        }
        self.dir_mut(dir)?.handle = None;
        Ok(())
    }

    /// The open directory `dir` to read the file at `path` through; if it cannot be
    /// opened, the file is left out with an error.
    fn file_dir(&mut self, dir: u64, path: &Path) -> Result<Option<Arc<DirHandle>>> {
        Ok(match self.dir_handle(dir)? {
            Ok(h) => Some(h),
            Err(e) => {
                self.error(path, format!("cannot open its directory: {e}"));
                None
            }
        })
    }

    /// The walker's next listing, which must be of the directory at `path`.
    fn listing(&mut self, listings: &mut Listings, path: &Path) -> Result<Listing> {
        let Some(mut listing) = listings.next() else {
            if self.abort.should_stop() {
                return Err(self.abort.take_error());
            }
            return Err(Error::new(
                ErrorKind::Io,
                format!("internal error: the walk ended before {}", path.display()),
            ));
        };
        if listing.path != path {
            return Err(Error::new(
                ErrorKind::Io,
                format!(
                    "internal error: the walk listed {} where {} was expected",
                    listing.path.display(),
                    path.display()
                ),
            ));
        }
        if let Some(message) = listing.error.take() {
            self.error(path, message);
        }
        Ok(listing)
    }

    /// Archives the sources into the snapshot's root tree and returns its id, taking
    /// the directories' listings from the walker (`/` first; it is the source itself if
    /// `root_is_source`).
    pub(crate) fn run(
        mut self,
        root_is_source: bool,
        mut listings: Listings,
        previous_root: Option<BlobId>,
    ) -> Result<Walked> {
        let root_dir = Path::new("/");
        let listing = self.listing(&mut listings, root_dir)?;
        let root = self.new_dir(
            root_dir.to_path_buf(),
            None,
            None,
            previous_root,
            !root_is_source,
        );
        let mut stack = vec![Frame {
            dir: root,
            entries: listing.items.into_iter(),
            more: listing.more,
        }];
        while let Some(frame) = stack.last_mut() {
            if self.abort.should_stop() {
                return Err(self.abort.take_error());
            }
            let dir = frame.dir;
            match frame.entries.next() {
                Some(item) => {
                    if let Some(child) = self.process(&mut listings, dir, item)? {
                        if frame.entries.len() == 0 && !frame.more {
                            self.hand_down(dir, &child)?;
                        }
                        stack.push(child);
                    }
                }
                None if frame.more => {
                    let path = self.dir_mut(dir)?.path.clone();
                    let next = self.listing(&mut listings, &path)?;
                    frame.entries = next.items.into_iter();
                    frame.more = next.more;
                }
                None => {
                    stack.pop();
                    let st = self.dir_mut(dir)?;
                    st.walk_done = true;
                    // Its files in flight hold the handle they need; a directory kept
                    // open only by a file waiting for its bundle must not hold a
                    // descriptor.
                    st.handle = None;
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
        if let Some(extra) = listings.next() {
            return Err(Error::new(
                ErrorKind::Io,
                format!(
                    "internal error: the walk listed {} after the last directory",
                    extra.path.display()
                ),
            ));
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

    fn process(&mut self, listings: &mut Listings, dir: u64, item: Item) -> Result<Option<Frame>> {
        // A path component above the sources comes with its listing and the directory
        // it was read through, which also gives its metadata and attributes.
        let (name, path, stat, target, mut above) = match item {
            Item::Entry(s) => (s.name, s.path, s.stat, s.target, None),
            Item::Above(name, path) => {
                let mut listing = self.listing(listings, &path)?;
                match listing.stat.take() {
                    Some(stat) if !listing.excluded => (name, path, *stat, None, Some(listing)),
                    _ => return Ok(None),
                }
            }
            Item::Error(path, message) => {
                self.error(&path, message);
                return Ok(None);
            }
        };
        let above_sources = above.is_some();
        let own = above.as_mut().and_then(|l| l.handle.take());
        let mut node = node_from_stat(&name, &stat, &mut self.owners);
        let previous = self
            .dir_mut(dir)?
            .previous
            .as_ref()
            .and_then(|t| t.find(&name))
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
            let xattrs = match &own {
                Some(h) => h.own_xattrs(),
                None => self.dir_handle(dir)?.and_then(|p| p.xattrs(&name)),
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
                            match self.file_dir(dir, &path)? {
                                Some(h) => self.send_file(dir, slot, h, name, path, status)?,
                                // Not read: no entry rather than one without content.
                                None => {
                                    if let Some(n) = self.dir_mut(dir)?.nodes.get_mut(slot) {
                                        *n = None;
                                    }
                                }
                            }
                        }
                    }
                } else if let Some(handle) = self.file_dir(dir, &path)? {
                    if node.links > 1 {
                        self.links.insert(key, Link::Reading(Vec::new()));
                    }
                    let slot = self.push_node(dir, node)?;
                    self.send_file(dir, slot, handle, name, path, status)?;
                }
                Ok(None)
            }
            NodeKind::Dir => {
                let previous_id = previous
                    .filter(|p| p.kind == NodeKind::Dir)
                    .and_then(|p| p.subtree);
                let listing = match above.take() {
                    Some(listing) => listing,
                    None => self.listing(listings, &path)?,
                };
                if listing.excluded {
                    return Ok(None);
                }
                let slot = self.push_node(dir, node)?;
                self.dir_mut(dir)?.pending += 1;
                let child = self.new_dir(path, own, Some((dir, slot)), previous_id, above_sources);
                Ok(Some(Frame {
                    dir: child,
                    entries: listing.items.into_iter(),
                    more: listing.more,
                }))
            }
            NodeKind::Symlink => {
                // The walker read the target (or left the symlink out with an error).
                node.target = target.unwrap_or_default();
                self.counts.other += 1;
                self.push_node(dir, node)?;
                Ok(None)
            }
            _ => {
                self.counts.other += 1;
                self.push_node(dir, node)?;
                Ok(None)
            }
        }
    }

    /// Encodes the tree of directory `path` holding `nodes`, queues it for storing, and
    /// returns its id.
    pub(super) fn queue_dir_tree(&mut self, path: &Path, nodes: Vec<Node>) -> Result<BlobId> {
        let tree = Tree::new(nodes)
            .map_err(|e| Error::new(ErrorKind::Io, format!("{}: {e}", path.display())))?;
        let bytes = tree.encode()?;
        let id = self.repo.blob_id(&bytes);
        queue_blob(self.saver, &self.blobs, BlobType::Tree, id, bytes.into())
            .map_err(|_| self.abort.take_error())?;
        Ok(id)
    }

    /// Writes the tree of `dir` if it is complete, then of each ancestor that becomes
    /// complete in turn.
    pub(super) fn complete(&mut self, mut dir: u64) -> Result<()> {
        loop {
            let st = self.dir_mut(dir)?;
            if !st.walk_done || st.pending > 0 {
                return Ok(());
            }
            let Some(st) = self.dirs.remove(&dir) else {
                return Ok(());
            };
            if st.above_sources {
                self.top.extend(st.nodes.iter().flatten().map(|n| {
                    (
                        st.path.join(std::ffi::OsStr::from_bytes(&n.name)),
                        n.clone(),
                    )
                }));
            }
            let id = self.queue_dir_tree(&st.path, st.nodes.into_iter().flatten().collect())?;
            self.count_stored(BlobType::Tree, &id, super::Refs::WHOLE);
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
