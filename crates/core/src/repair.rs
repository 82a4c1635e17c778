//! `repair index`: rebuilding the index from the packs themselves.

use std::time::Duration;

use arca_backends::{FileKind, ObjectId};
use arca_repo::IndexedPack;

use crate::backup::write_index;
use crate::repository::load_index;
use crate::{CancelToken, Error, Repository, Result};

/// What `repair index` found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RepairIndexReport {
    /// Packs read.
    pub packs: u64,
    /// Blobs indexed.
    pub blobs: u64,
    /// Packs with damaged entries (the intact ones are indexed).
    pub damaged_packs: Vec<String>,
    /// Index files written.
    pub index_files_written: u64,
    /// Old index files removed.
    pub index_files_removed: u64,
}

impl Repository {
    /// Reads every pack, authenticates every entry, and replaces the index with one
    /// that lists exactly the intact entries found. Damaged or unreadable index files
    /// are gone afterwards; blobs that only damaged entries held stay missing (`check`
    /// names the files that need them; the next backup stores them again). Takes the
    /// exclusive lock and registers as a session while it runs.
    ///
    /// # Errors
    /// [`crate::ErrorKind::Locked`] if a prune runs; storage errors.
    pub fn repair_index(
        &mut self,
        lock_wait: Duration,
        cancel: &CancelToken,
    ) -> Result<RepairIndexReport> {
        let lock = self.lock_exclusive("repair index", lock_wait)?;
        let mut report = RepairIndexReport::default();
        let old_files: Vec<ObjectId> = self
            .repo
            .list(FileKind::Index)?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let mut packs = self.repo.list(FileKind::Pack)?;
        packs.sort_unstable();
        let mut indexed = Vec::new();
        for (id, len) in packs {
            if cancel.is_cancelled() {
                return Err(Error::interrupted());
            }
            let Some((entries, bad)) = self.repo.read_pack_entries(&id, len)? else {
                continue;
            };
            report.packs += 1;
            if bad {
                report.damaged_packs.push(id.to_string());
            }
            report.blobs += entries.len() as u64;
            if !entries.is_empty() {
                indexed.push(IndexedPack { id, entries });
            }
        }
        lock.check()?;
        report.index_files_written += write_index(&self.repo, &indexed)?.len() as u64;
        for id in &old_files {
            if self.repo.remove_if_present(FileKind::Index, id)? {
                report.index_files_removed += 1;
            }
        }
        let loaded = load_index(&self.repo)?;
        self.install_index(loaded);
        drop(lock);
        Ok(report)
    }
}

/// One snapshot `repair snapshots` rewrote.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RepairedSnapshot {
    /// The damaged snapshot.
    pub old: ObjectId,
    /// Its repaired copy (`None` in a dry run).
    pub new: Option<ObjectId>,
    /// Paths left out: files whose content is gone, directories that cannot be read.
    pub lost: Vec<String>,
}

/// A directory being rebuilt: its path, its nodes, which of them are left out, the
/// next node to look at, and whether anything in it changed.
struct Frame {
    old: arca_repo::BlobId,
    path: String,
    nodes: Vec<arca_repo::Node>,
    left_out: Vec<bool>,
    next: usize,
    changed: bool,
}

impl Repository {
    /// Writes, for every snapshot that needs data the index lacks, a copy that leaves
    /// out the files whose content is gone and empties directories whose tree is gone,
    /// tagged `repaired`; with `forget`, the original is removed. Run `repair index`
    /// first so that damaged entries count as gone. Registers a session while it runs.
    ///
    /// # Errors
    /// Storage errors; the snapshots repaired before the error stay.
    pub fn repair_snapshots(
        &mut self,
        forget: bool,
        dry_run: bool,
    ) -> Result<Vec<RepairedSnapshot>> {
        let session = if dry_run {
            None
        } else {
            let s = self.begin_session("repair snapshots")?;
            self.reload_index_if_rewritten()?;
            Some(s)
        };
        let compression = self.repo.config().compression;
        let saver = crate::backup::BlobSaver::new(&self.repo, &self.index, compression, dry_run);
        let mut memo: std::collections::HashMap<arca_repo::BlobId, arca_repo::BlobId> =
            std::collections::HashMap::new();
        let mut out = Vec::new();
        for info in self.snapshots()? {
            let mut lost = Vec::new();
            let root = self.repair_tree(info.snapshot.tree, &saver, &mut memo, &mut lost)?;
            if root == info.snapshot.tree {
                continue;
            }
            out.push(RepairedSnapshot {
                old: info.id,
                new: None,
                lost,
            });
            let mut snapshot = info.snapshot.clone();
            snapshot.tree = root;
            if !snapshot.tags.iter().any(|t| t == "repaired") {
                snapshot.tags.push("repaired".to_owned());
                snapshot.tags.sort();
            }
            if let Some(last) = out.last_mut()
                && !dry_run
            {
                saver.flush()?;
                let written = saver.take_written();
                if let Some(s) = &session {
                    s.check()?;
                }
                write_index(&self.repo, &written)?;
                let id = self.repo.save_snapshot(&snapshot)?;
                last.new = Some(id);
                if forget {
                    // A concurrent forget may have removed it already.
                    self.repo.remove_if_present(FileKind::Snapshot, &info.id)?;
                }
            }
        }
        Ok(out)
    }

    /// The id of `root` rebuilt without what is gone (the same id if nothing is).
    fn repair_tree(
        &self,
        root: arca_repo::BlobId,
        saver: &crate::backup::BlobSaver<'_>,
        memo: &mut std::collections::HashMap<arca_repo::BlobId, arca_repo::BlobId>,
        lost: &mut Vec<String>,
    ) -> Result<arca_repo::BlobId> {
        use arca_repo::{BlobType, NodeKind, Tree};
        // Only damage (a damaged or missing tree or pack) loses a directory; any other
        // failure (the storage unreachable, a timeout) stops the repair, which must not
        // write a snapshot without data that is merely out of reach.
        let open = |id: arca_repo::BlobId, path: String, lost: &mut Vec<String>| {
            let (nodes, changed) = match self.load_tree(&id) {
                Ok(tree) => (tree.into_nodes(), false),
                Err(e) if e.kind() == crate::ErrorKind::Corrupt => {
                    lost.push(format!("{path}/ (directory unreadable: {e})"));
                    (Vec::new(), true)
                }
                Err(e) => return Err(e),
            };
            Ok(Frame {
                old: id,
                path,
                left_out: vec![false; nodes.len()],
                nodes,
                next: 0,
                changed,
            })
        };
        let mut stack = vec![open(root, String::new(), lost)?];
        loop {
            let Some(frame) = stack.last_mut() else {
                return Ok(root);
            };
            if frame.next < frame.nodes.len() {
                let i = frame.next;
                frame.next += 1;
                let node = &frame.nodes[i];
                let path = format!("{}/{}", frame.path, String::from_utf8_lossy(&node.name));
                if node.kind == NodeKind::Dir
                    && let Some(sub) = node.subtree
                {
                    if let Some(new) = memo.get(&sub) {
                        if *new != sub {
                            frame.nodes[i].subtree = Some(*new);
                            frame.changed = true;
                        }
                    } else {
                        let child = open(sub, path, lost)?;
                        stack.push(child);
                    }
                } else if node
                    .content
                    .iter()
                    .any(|c| !self.index.contains(BlobType::Data, c))
                {
                    lost.push(path);
                    frame.left_out[i] = true;
                    frame.changed = true;
                }
                continue;
            }
            let Some(done) = stack.pop() else {
                return Ok(root);
            };
            let new = if done.changed {
                let nodes: Vec<_> = done
                    .nodes
                    .into_iter()
                    .zip(done.left_out)
                    .filter_map(|(node, out)| (!out).then_some(node))
                    .collect();
                let bytes = Tree::new(nodes)?.encode()?;
                let id = self.repo.blob_id(&bytes);
                if saver.claim(BlobType::Tree, &id) {
                    saver.store(BlobType::Tree, id, &bytes)?;
                }
                id
            } else {
                done.old
            };
            memo.insert(done.old, new);
            match stack.last_mut() {
                None => return Ok(new),
                Some(parent) => {
                    let i = parent.next - 1;
                    if new != done.old {
                        parent.nodes[i].subtree = Some(new);
                        parent.changed = true;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use arca_backends::{
        BackendError, Call, ErrorKind as StorageErrorKind, Intercept, WriteBackend,
    };

    use super::*;
    use crate::{BackupOptions, NoProgress};

    /// A tree that cannot be read because the storage is unreachable is not lost:
    /// `repair snapshots --forget` stops with the error and keeps the snapshot.
    #[test]
    fn unreachable_trees_are_not_repaired_away() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("sub/a"), crate::testing::random_bytes(5000, 1)).unwrap();
        std::fs::write(src.join("b"), crate::testing::random_bytes(5000, 2)).unwrap();
        let (memory, mut repo) = crate::testing::memory_repository_with(1 << 20);
        repo.backup(
            std::slice::from_ref(&src),
            &BackupOptions::default(),
            &NoProgress,
        )
        .unwrap();
        // Lose the data packs, so that the snapshot needs repair.
        let trees: Vec<ObjectId> = repo
            .index
            .iter()
            .filter(|(_, l)| l.blob_type == arca_repo::BlobType::Tree)
            .map(|(_, l)| l.pack)
            .collect();
        for (id, _) in memory.list(FileKind::Pack).unwrap() {
            if !trees.contains(&id) {
                memory.remove(FileKind::Pack, &id).unwrap();
            }
        }
        let unreachable = Arc::new(AtomicBool::new(false));
        let flag = unreachable.clone();
        let backend: Arc<dyn WriteBackend> = Arc::new(Intercept::new(
            memory.clone(),
            Box::new(move |call| match call {
                Call::Read(FileKind::Pack, _) if flag.load(Ordering::SeqCst) => Err(
                    BackendError::new(StorageErrorKind::Transient, "read", "pack", "timed out"),
                ),
                _ => Ok(()),
            }),
        ));
        let mut repo = Repository::open(backend, b"pw").unwrap();
        repo.repair_index(std::time::Duration::ZERO, &crate::CancelToken::new())
            .unwrap();
        let before = repo.snapshots().unwrap();
        unreachable.store(true, Ordering::SeqCst);
        let err = repo.repair_snapshots(true, false).unwrap_err();
        assert!(err.to_string().contains("timed out"), "{err}");
        unreachable.store(false, Ordering::SeqCst);
        let after = repo.snapshots().unwrap();
        assert_eq!(
            after.iter().map(|s| s.id).collect::<Vec<_>>(),
            before.iter().map(|s| s.id).collect::<Vec<_>>(),
            "nothing written, nothing forgotten"
        );
        // Reachable again, the repair leaves out the lost files only.
        let repaired = repo.repair_snapshots(true, false).unwrap();
        assert_eq!(repaired.len(), 1);
        let lost = &repaired[0].lost;
        assert_eq!(lost.len(), 2, "{lost:?}");
        assert!(lost.iter().all(|l| !l.contains("unreadable")), "{lost:?}");
    }
}
