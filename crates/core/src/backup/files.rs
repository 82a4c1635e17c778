//! Placing read files: the file workers' results, and the ids of sealed bundles, become
//! complete file nodes in their directories; hard links get their first name's content;
//! each placed file counts towards the snapshot's figures and may complete its
//! directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arca_repo::{BlobId, BlobType, Node};

use super::archiver::Archiver;
use super::reader::{Done, FileDone, FileJob, ReadContent, queue_bundle};
use crate::dir_handle::DirHandle;
use crate::metadata::node_from_stat;
use crate::progress::FileStatus;
use crate::{Error, ErrorKind, Result};

/// A file with several hard links, by (device, inode): being read, with the other links
/// met meanwhile waiting for its content; or read, with its content.
pub(super) enum Link {
    Reading(Vec<Waiter>),
    Done(Content, u64),
}

/// A file's content as a node records it: its chunks, and its offset if bundled.
#[derive(Clone)]
pub(super) struct Content {
    pub(super) chunks: Vec<BlobId>,
    pub(super) bundle_offset: Option<u64>,
}

impl Content {
    pub(super) fn of(node: &Node) -> Self {
        Self {
            chunks: node.content.clone(),
            bundle_offset: node.bundle_offset,
        }
    }
}

/// A bundle whose files have been read: its files waiting for its id, or its id.
#[derive(Default)]
pub(super) struct BundleWait {
    pub(super) id: Option<BlobId>,
    /// How many files it holds: known once it is announced (with its id).
    pub(super) members: u64,
    /// How many of its files have reported to the archiver (before or after the
    /// announcement).
    pub(super) reported: u64,
    pub(super) parked: Vec<Waiter>,
}

/// A file waiting for another's content (a hard link for its first link's, a bundled
/// file for its bundle's id): its place and path.
pub(super) struct Waiter {
    pub(super) dir: u64,
    pub(super) slot: usize,
    pub(super) path: PathBuf,
    pub(super) status: FileStatus,
}

impl Archiver<'_> {
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

    pub(super) fn received(&mut self, done: Done) -> Result<()> {
        match done {
            Done::File(file) => self.file_done(*file),
            Done::Bundle { seq, id, members } => {
                let wait = self.bundles.entry(seq).or_default();
                wait.id = Some(id);
                wait.members = members;
                let parked = std::mem::take(&mut wait.parked);
                self.forget_bundle_if_done(seq);
                for w in parked {
                    let node = self
                        .dir_mut(w.dir)?
                        .nodes
                        .get_mut(w.slot)
                        .and_then(Option::take);
                    let Some(mut node) = node else {
                        return Err(Error::new(
                            ErrorKind::Io,
                            "internal error: a bundled file left its place",
                        ));
                    };
                    node.content = vec![id];
                    self.place_file(w.dir, w.slot, &w.path, w.status, node)?;
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
            .is_some_and(|w| w.id.is_some() && w.reported == w.members)
        {
            self.bundles.remove(&seq);
        }
    }

    pub(super) fn send_file(
        &mut self,
        dir: u64,
        slot: usize,
        handle: Arc<DirHandle>,
        name: Vec<u8>,
        path: PathBuf,
        status: FileStatus,
    ) -> Result<()> {
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
    pub(super) fn link_done(
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

    pub(super) fn count_file(&mut self, node: &Node) {
        self.counts.bytes_total += node.size;
        self.counts.chunks_total += node.content.len() as u64;
        let refs = match node.bundle_offset {
            Some(_) => super::Refs::slice(node.size),
            None => super::Refs::WHOLE,
        };
        for id in &node.content {
            self.count_stored(BlobType::Data, id, refs);
        }
    }

    /// Adds a referenced blob's stored size (a bundled file's share of it) to the
    /// snapshot's "compressed" total, now if it is indexed, at the end of the backup if
    /// this session stores it.
    pub(super) fn count_stored(&mut self, blob_type: BlobType, id: &BlobId, refs: super::Refs) {
        let known = &mut self.counts.stored_known;
        super::count_refs(
            self.index,
            known,
            &mut self.unresolved,
            (blob_type, *id),
            refs,
        );
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
                let ticket = match read.content {
                    ReadContent::Chunks(chunks) => {
                        node.content = chunks;
                        return self.place_file(dir, slot, &path, status, node);
                    }
                    ReadContent::Bundled(ticket) => ticket,
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
        // Only a file with other names keeps a copy of its content for them.
        let waiters = if node.links > 1 {
            let done = Link::Done(Content::of(&node), node.size);
            match self.links.insert((node.device, node.inode), done) {
                Some(Link::Reading(w)) => w,
                _ => Vec::new(),
            }
        } else {
            Vec::new()
        };
        let content = (!waiters.is_empty()).then(|| Content::of(&node));
        if let Some(s) = self.dir_mut(dir)?.nodes.get_mut(slot) {
            *s = Some(node);
        }
        if let Some(content) = content {
            for w in waiters {
                self.link_done(w.dir, w.slot, &w.path, w.status, content.clone())?;
                self.dir_mut(w.dir)?.pending -= 1;
                self.complete(w.dir)?;
            }
        }
        self.dir_mut(dir)?.pending -= 1;
        self.complete(dir)
    }
}
