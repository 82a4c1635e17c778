//! Checkpoints: during a long backup (`checkpoint_interval`), the archiver pauses at
//! regular intervals, lets everything in flight reach durable packs, indexes them, and
//! writes a *checkpoint snapshot* of the entries backed up so far (design.md §15.1).
//!
//! A checkpoint's tree holds every entry already complete; a directory still being
//! walked gets a tree of the entries done so far. Each new checkpoint replaces the
//! previous one of the same backup, and the finished snapshot replaces the last. If the
//! backup is killed, the checkpoint remains: it restores what it holds, and the next
//! backup takes it as its parent, so what it holds is neither read nor uploaded again.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use arca_backends::{FileKind, ObjectId};
use arca_repo::{BlobId, Index, IndexedPack, Node, NodeKind, Repo, Snapshot};

use super::archiver::Archiver;
use crate::{Error, ErrorKind, LockGuard, Result};

/// What checkpoints need and what they did; shared between the archiver (which writes
/// them) and the backup's commit (which takes over their packs and replaces the last).
#[derive(Debug)]
pub(crate) struct Checkpoints {
    interval: Duration,
    /// When the backup started, and when the last checkpoint was written.
    started: Instant,
    last: Instant,
    /// The snapshot every checkpoint starts from (time, host, paths, tags, parent).
    template: Snapshot,
    /// The latest checkpoint this backup wrote and has not replaced yet.
    pub(crate) current: Option<ObjectId>,
    /// How many checkpoints this backup wrote.
    pub(crate) written: u64,
    /// Index files the checkpoints wrote, and the packs they name as an index (to look
    /// up what the checkpoints reference; the backup's commit adds it to the loaded
    /// index).
    pub(crate) index_files: Vec<ObjectId>,
    pub(crate) session: Index,
    /// Checkpoints this backup replaced but could not remove (left for `forget`).
    pub(crate) warnings: Vec<String>,
}

impl Checkpoints {
    pub(crate) fn new(interval: Duration, started: Instant, mut template: Snapshot) -> Self {
        template.checkpoint = true;
        Self {
            interval,
            started,
            last: started,
            template,
            current: None,
            written: 0,
            index_files: Vec::new(),
            session: Index::new(),
            warnings: Vec::new(),
        }
    }

    pub(crate) fn due(&self) -> bool {
        self.last.elapsed() >= self.interval
    }

    /// Removes the checkpoint this backup wrote last (a newer checkpoint or the finished
    /// snapshot holds everything it held). A failure is recorded, not returned: the
    /// stale checkpoint is harmless and `forget` removes it.
    pub(crate) fn retire_current(&mut self, repo: &Repo) {
        let Some(id) = self.current.take() else {
            return;
        };
        if let Err(e) = repo.remove_if_present(FileKind::Snapshot, &id) {
            self.warnings.push(format!(
                "checkpoint snapshot {id} could not be removed ({e}); `arca forget` removes it"
            ));
        }
    }

    /// Writes the index of `packs` (durable, already in `self.session`), then
    /// `snapshot`, and retires the previous checkpoint.
    fn record(
        &mut self,
        repo: &Repo,
        session: Option<&LockGuard>,
        packs: &[IndexedPack],
        snapshot: Snapshot,
    ) -> Result<()> {
        // The same order as a finished backup (§13, §19): packs; session still valid,
        // index; session still valid, snapshot. A backup whose record is gone writes
        // neither: a prune may have deleted its unindexed packs.
        if let Some(session) = session {
            session.check()?;
        }
        self.index_files.extend(super::write_index(repo, packs)?);
        if let Some(session) = session {
            session.check()?;
        }
        let id = repo.save_snapshot(&snapshot)?;
        self.retire_current(repo);
        self.current = Some(id);
        self.written += 1;
        self.last = Instant::now();
        Ok(())
    }
}

impl Archiver<'_> {
    /// Writes a checkpoint if one is due. Called between entries of the walk.
    pub(super) fn checkpoint_if_due(&mut self) -> Result<()> {
        let Some(cp) = self.checkpoints.take() else {
            return Ok(());
        };
        let result = if cp.due() {
            self.write_checkpoint(cp)
        } else {
            Ok(())
        };
        self.checkpoints = Some(cp);
        result
    }

    fn write_checkpoint(&mut self, cp: &mut Checkpoints) -> Result<()> {
        // 1. Let every file in flight finish, so that each node placed so far is
        //    complete.
        self.drain_files()?;
        // 2. Trees of what is done so far in the directories still being walked; then
        //    every blob claimed so far (data and trees) reaches a pack.
        let root = self.partial_trees()?;
        self.saver.wait_settled(self.abort)?;
        self.saver.flush()?;
        let packs = self.saver.take_written();
        // 3. The snapshot. Every blob referenced so far is stored now: one that is not
        //    would make the checkpoint unrestorable, and fails the backup instead.
        //    What is resolved is counted once and for all.
        for p in &packs {
            cp.session.add_pack(p.id, &p.entries);
        }
        self.counts.stored_known +=
            super::resolve_stored(&self.unresolved, &cp.session, self.index)?;
        self.unresolved.clear();
        let snapshot = super::snapshot_from(
            &cp.template,
            root,
            &self.counts,
            super::added(&self.saver.stats),
            cp.started.elapsed(),
            &self.warnings,
        );
        cp.record(self.repo, self.session, &packs, snapshot)
    }

    /// Encodes and queues a tree for every directory not yet complete, holding its
    /// complete entries and its incomplete subdirectories' partial trees; returns the
    /// root's. Called with no file in flight, so every file node placed is complete.
    fn partial_trees(&mut self) -> Result<BlobId> {
        // A directory is created after its parent, so its number is larger: in
        // descending order every subdirectory comes before its parent.
        let mut open: Vec<u64> = self.dirs.keys().copied().collect();
        open.sort_unstable_by(|a, b| b.cmp(a));
        let mut trees: HashMap<(u64, usize), BlobId> = HashMap::new();
        let mut root = None;
        for dir in open {
            let st = self.dir_mut(dir)?;
            let nodes: Vec<Node> = st
                .nodes
                .iter()
                .enumerate()
                .filter_map(|(slot, node)| {
                    let node = node.as_ref()?;
                    if node.kind == NodeKind::Dir && node.subtree.is_none() {
                        let mut node = node.clone();
                        node.subtree = Some(*trees.get(&(dir, slot))?);
                        Some(node)
                    } else {
                        Some(node.clone())
                    }
                })
                .collect();
            let (path, parent) = (st.path.clone(), st.parent);
            let id = self.queue_dir_tree(&path, nodes)?;
            match parent {
                Some(at) => {
                    trees.insert(at, id);
                }
                None => root = Some(id),
            }
        }
        root.ok_or_else(|| {
            Error::new(
                ErrorKind::Io,
                "internal error: a checkpoint found no root directory",
            )
        })
    }
}

#[cfg(test)]
#[path = "checkpoint_tests.rs"]
mod tests;
