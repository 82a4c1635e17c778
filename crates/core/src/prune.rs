//! `prune`: removing data no snapshot needs, safely beside running backups
//! (docs/design.md §19).
//!
//! A run (1) deletes the packs of earlier deletion plans whose backup sessions have
//! all ended, after checking again that no snapshot needs them; (2) condemns packs
//! that hold only unused blobs, packs no index names, and packs it repacks (their
//! used blobs copied into new packs first); (3) writes the index without the condemned
//! packs and removes the old index files; (4) records a deletion plan naming the
//! sessions running at that moment. Packs are deleted when those sessions are gone:
//! at once if there were none, else by a later run. Before (1), if no session is
//! registered, it removes the temporary files that writes left when their process died.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use arca_backends::{FileKind, ObjectId};
use arca_repo::{
    BlobId, BlobType, DeletionPlan, EncodedBlob, Index, IndexedPack, LockRecord, NodeKind,
    PackEntry,
};

use crate::backup::{BlobSaver, write_index};
use crate::locking::read_locks;
use crate::repository::{LoadedIndex, load_index};
use crate::{CancelToken, Error, ErrorKind, Repository, Result};

/// How often prune lists the snapshots while one keeps vanishing between listing and
/// reading (a rewrite by `tag`) before it gives up.
const SNAPSHOT_LISTINGS: usize = 6;

/// A temporary file younger than this is spared by prune even when no session is
/// registered: it may be a write begun since, or one made by a command that registers no
/// session. An hour also covers that much difference between the clocks of client and
/// storage server.
const TEMPORARY_AGE: Duration = Duration::from_secs(60 * 60);

/// How `prune` works.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PruneOptions {
    /// Repack partly used packs until unused data is at most this fraction of all
    /// data (restic's `--max-unused`; default 5%).
    pub max_unused: f64,
    /// Read at most this many bytes of packs to repack (`None`: no limit).
    pub max_repack_size: Option<u64>,
    /// Compute and report the plan; change nothing.
    pub dry_run: bool,
    /// How long to wait for another prune's exclusive lock.
    pub lock_wait: Duration,
    /// Set to stop early (the repository stays valid).
    pub cancel: CancelToken,
    /// With `dry_run`: snapshots to count as removed, so that the plan shows what
    /// forgetting them would free (`forget --prune --dry-run`). Ignored otherwise: a
    /// prune that changes anything sees every snapshot.
    pub dry_run_without: Vec<ObjectId>,
}

impl Default for PruneOptions {
    fn default() -> Self {
        Self {
            max_unused: 0.05,
            max_repack_size: None,
            dry_run: false,
            lock_wait: Duration::ZERO,
            cancel: CancelToken::new(),
            dry_run_without: Vec::new(),
        }
    }
}

/// What `prune` found and did.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct PruneReport {
    /// Snapshots whose data was kept.
    pub snapshots: u64,
    /// Packs and their bytes in the repository at the start.
    pub packs_total: u64,
    /// Bytes of all packs at the start.
    pub bytes_total: u64,
    /// Blobs (and their stored bytes) some snapshot needs.
    pub used_blobs: u64,
    /// Stored bytes of used blobs.
    pub used_bytes: u64,
    /// Indexed blobs no snapshot needs, each counted once where the index locates it;
    /// extra copies of a blob in other packs are counted in none of these figures.
    pub unused_blobs: u64,
    /// Their stored bytes.
    pub unused_bytes: u64,
    /// Packs holding nothing used, or named by no index: condemned whole.
    pub packs_to_delete: u64,
    /// Their bytes.
    pub bytes_to_delete: u64,
    /// Partly used packs to repack.
    pub packs_to_repack: u64,
    /// Their bytes.
    pub bytes_to_repack: u64,
    /// Used bytes copied (or, in a dry run, to copy) out of repacked packs.
    pub bytes_repacked: u64,
    /// Packs written by repacking.
    pub packs_written: u64,
    /// Packs deleted by this run (from earlier plans or from its own).
    pub packs_deleted: u64,
    /// Bytes they held.
    pub bytes_freed: u64,
    /// Condemned packs still waiting for backup sessions to end.
    pub packs_waiting: u64,
    /// Their bytes.
    pub bytes_waiting: u64,
    /// What they wait for: each running session (a stale-looking one with how to remove
    /// it), and each record in `locks/` that cannot be read.
    pub waiting_for: Vec<String>,
    /// Condemned packs kept after all because a snapshot written meanwhile needs them.
    pub packs_rescued: u64,
    /// Temporary files of writes whose process died, removed (docs/design.md §19).
    pub temporaries_removed: u64,
    /// What went wrong without stopping the run (removing temporary files), one line each.
    pub warnings: Vec<String>,
    /// Nothing was changed.
    pub dry_run: bool,
}

impl Repository {
    /// Removes data no snapshot needs (see the module documentation).
    ///
    /// # Errors
    /// [`ErrorKind::Locked`] if another prune holds the lock; `Corrupt` if an index
    /// file, a snapshot or a tree is damaged or missing (pruning would then lose
    /// data): check and repair first; storage errors. The repository stays valid
    /// whenever it stops.
    pub fn prune(&mut self, options: &PruneOptions) -> Result<PruneReport> {
        let lock = if options.dry_run {
            None
        } else {
            Some(self.lock_exclusive("prune", options.lock_wait)?)
        };
        let own = lock.as_ref().map(crate::LockGuard::session);
        let mut report = PruneReport {
            dry_run: options.dry_run,
            ..PruneReport::default()
        };
        // 1. Earlier plans whose sessions have all ended: decided before the survey, so
        // that the survey sees every snapshot those sessions wrote (§19). A record that
        // cannot be read may be a live session: then no plan is ready.
        let mut locks = read_locks(&self.repo)?;
        let live: HashSet<[u8; 16]> = locks.sessions_except(own).into_iter().collect();
        let unknown_sessions = !locks.unreadable.is_empty();
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut locks.plans)
            .into_iter()
            .partition(|(_, plan)| {
                !unknown_sessions && plan.sessions.iter().all(|s| !live.contains(s))
            });
        if !options.dry_run && live.is_empty() && !unknown_sessions {
            // Housekeeping: a failure leaves garbage for the next run, nothing worse.
            match self.remove_stale_temporaries() {
                Ok(n) => report.temporaries_removed = n,
                Err(e) => report
                    .warnings
                    .push(format!("temporary files were not removed: {e}")),
            }
        }
        let (index, index_file_ids, used) = self.survey(options, &mut report)?;
        let sizes: HashMap<ObjectId, u64> = self.repo.list(FileKind::Pack)?.into_iter().collect();
        report.packs_total = sizes.len() as u64;
        report.bytes_total = sizes.values().sum();
        let in_plans: HashSet<ObjectId> = ready
            .iter()
            .chain(&waiting)
            .flat_map(|(_, p)| p.pack_ids())
            .collect();
        for (_, plan) in &waiting {
            for pack in plan.pack_ids() {
                report.packs_waiting += 1;
                report.bytes_waiting += sizes.get(&pack).copied().unwrap_or(0);
            }
        }
        let waited_for: Vec<[u8; 16]> = waiting
            .iter()
            .flat_map(|(_, p)| p.sessions.iter().copied())
            .collect();
        report.waiting_for = locks.blockers(&waited_for);
        if !options.dry_run && !ready.is_empty() {
            check_lock(lock.as_ref())?;
            self.execute_plans(&ready, &index, &sizes, &mut report)?;
        }

        // 2. What to condemn now.
        let packs = packs_of(&index);
        let plan = classify(&packs, &used, &sizes, &in_plans, options, &mut report);
        if options.cancel.is_cancelled() {
            return Err(Error::interrupted());
        }
        if options.dry_run {
            return Ok(report);
        }
        if plan.delete.is_empty() && plan.repack.is_empty() {
            self.install_index(LoadedIndex {
                index,
                files: index_file_ids,
                errors: Vec::new(),
            });
            return Ok(report);
        }
        let new_packs = self.repack(&plan.repack, &packs, &used, &options.cancel, &mut report)?;

        // 3. The index without the condemned packs, then the old index files go.
        check_lock(lock.as_ref())?;
        let condemned: HashSet<ObjectId> =
            plan.delete.iter().chain(&plan.repack).copied().collect();
        let mut kept: Vec<IndexedPack> = packs
            .into_iter()
            .filter(|p| !condemned.contains(&p.id))
            .collect();
        kept.extend(new_packs);
        write_index(&self.repo, &kept)?;
        for id in &index_file_ids {
            self.repo.remove_if_present(FileKind::Index, id)?;
        }

        // 4. The plan, naming the sessions running now.
        let now = read_locks(&self.repo)?;
        let sessions = now.sessions_except(own);
        let record = DeletionPlan {
            created: crate::system::now(),
            sessions: sessions.clone(),
            packs: condemned.iter().map(|p| *p.as_bytes()).collect(),
        };
        let plan_id = self.repo.save_lock(&LockRecord::Deletion(record.clone()))?;
        if sessions.is_empty() && now.unreadable.is_empty() {
            check_lock(lock.as_ref())?;
            // Snapshots written since the start may need condemned blobs: look again.
            let mut again = PruneReport::default();
            let (index, _, _) = self.survey(options, &mut again)?;
            report.packs_rescued += again.packs_rescued;
            self.execute_plans(&[(plan_id, record)], &index, &sizes, &mut report)?;
        } else {
            report.packs_waiting += condemned.len() as u64;
            report.bytes_waiting += condemned
                .iter()
                .map(|p| sizes.get(p).copied().unwrap_or(0))
                .sum::<u64>();
            report.waiting_for = now.blockers(&sessions);
        }
        let loaded = self.fresh_index()?;
        self.install_index(loaded);
        drop(lock);
        Ok(report)
    }

    /// Removes the temporary files of writes whose process died. Called with no session
    /// registered: every writer of data registers one first, so a temporary file is a
    /// dead write's unless it is younger than [`TEMPORARY_AGE`] (a write begun since the
    /// sessions were read, or by a command that registers none, such as `key add`).
    fn remove_stale_temporaries(&self) -> Result<u64> {
        let before = SystemTime::now()
            .checked_sub(TEMPORARY_AGE)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        Ok(self.repo.backend().remove_stale_temporaries(before)?)
    }

    /// The index as the repository holds it now, and the files it came from. Damaged
    /// index files make pruning unsafe (their packs would look unindexed).
    fn fresh_index(&self) -> Result<LoadedIndex> {
        let loaded = load_index(&self.repo)?;
        if let Some((id, e)) = loaded.errors.first() {
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!(
                    "index {id} is damaged ({e}); prune would lose the data it lists: run arca check and repair the index first"
                ),
            ));
        }
        Ok(loaded)
    }

    /// The index as the repository holds it, the files it came from, and every blob
    /// some snapshot needs. Packs outside the index (condemned, or left by a crash)
    /// that hold needed blobs are indexed again (unless dry run): a backup that loaded
    /// the index before a prune condemned them may have committed a snapshot using
    /// them.
    fn survey(&self, options: &PruneOptions, report: &mut PruneReport) -> Result<Survey> {
        let LoadedIndex {
            mut index,
            mut files,
            ..
        } = self.fresh_index()?;
        let mut orphans: Option<(Index, Vec<IndexedPack>)> = None;
        let used = self.used_blobs(&index, &mut orphans, options, report)?;
        let missing: HashSet<&(BlobType, BlobId)> = used
            .iter()
            .filter(|(t, id)| !index.contains(*t, id))
            .collect();
        if missing.is_empty() {
            return Ok((index, files, used));
        }
        if orphans.is_none() {
            orphans = Some(self.scan_orphans(&index)?);
        }
        let (found, packs) = orphans.unwrap_or_default();
        let rescued: Vec<IndexedPack> = packs
            .into_iter()
            .filter(|p| {
                p.entries
                    .iter()
                    .any(|e| missing.contains(&(e.blob_type, e.id)))
            })
            .collect();
        if let Some((t, id)) = missing.iter().find(|(t, id)| !found.contains(*t, id)) {
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!(
                    "{t} blob {id} that a snapshot needs is in no pack; prune stops so that nothing more is lost: run arca check"
                ),
            ));
        }
        report.packs_rescued += rescued.len() as u64;
        if !options.dry_run {
            // Loaded index files from now on: step 3 replaces them with the rest.
            files.extend(write_index(&self.repo, &rescued)?);
        }
        for p in &rescued {
            index.add_pack(p.id, &p.entries);
        }
        Ok((index, files, used))
    }

    /// Packs in the repository that `index` does not name, read and listed.
    fn scan_orphans(&self, index: &Index) -> Result<(Index, Vec<IndexedPack>)> {
        let indexed: HashSet<ObjectId> = index.packs().iter().copied().collect();
        let mut found = Index::new();
        let mut packs = Vec::new();
        for (id, len) in self.repo.list(FileKind::Pack)? {
            if indexed.contains(&id) {
                continue;
            }
            let Some((entries, _)) = self.repo.read_pack_entries(&id, len)? else {
                continue;
            };
            found.add_pack(id, &entries);
            packs.push(IndexedPack { id, entries });
        }
        Ok((found, packs))
    }

    /// Every blob some snapshot needs: its trees and the chunks of its files. Trees the
    /// index lacks are looked for in packs outside it (`orphans`, scanned on demand).
    fn used_blobs(
        &self,
        index: &Index,
        orphans: &mut Option<(Index, Vec<IndexedPack>)>,
        options: &PruneOptions,
        report: &mut PruneReport,
    ) -> Result<HashSet<(BlobType, BlobId)>> {
        let cancel = &options.cancel;
        // A snapshot that vanished between listing and reading may have been rewritten
        // (`tag` writes the new file, then removes the old): list again, so that the
        // survey sees one of them.
        let mut list = self.snapshots_lenient()?;
        let mut tries = 1;
        while list.vanished {
            if tries == SNAPSHOT_LISTINGS {
                // Surveying an incomplete list could condemn a rewritten snapshot's data.
                return Err(Error::new(
                    ErrorKind::Interrupted,
                    format!(
                        "snapshots kept vanishing while prune read them ({SNAPSHOT_LISTINGS} listings); nothing was deleted: run it again"
                    ),
                ));
            }
            list = self.snapshots_lenient()?;
            tries += 1;
        }
        if options.dry_run {
            list.snapshots
                .retain(|s| !options.dry_run_without.contains(&s.id));
        }
        if let Some((id, e)) = list.damaged.first() {
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!(
                    "snapshot {id} is damaged ({e}); prune cannot know what it needs: forget it or repair it first"
                ),
            ));
        }
        report.snapshots = list.snapshots.len() as u64;
        let mut used = HashSet::new();
        let mut stack: Vec<BlobId> = list.snapshots.iter().map(|s| s.snapshot.tree).collect();
        while let Some(tree_id) = stack.pop() {
            if !used.insert((BlobType::Tree, tree_id)) {
                continue;
            }
            if cancel.is_cancelled() {
                return Err(Error::interrupted());
            }
            let source = if index.contains(BlobType::Tree, &tree_id) {
                index
            } else {
                if orphans.is_none() {
                    *orphans = Some(self.scan_orphans(index)?);
                }
                orphans.as_ref().map_or(index, |(found, _)| found)
            };
            let tree = self.repo.load_tree(source, &tree_id).map_err(|e| {
                // Damage needs `arca check`; a storage failure keeps its own kind (and
                // exit code): the prune can simply run again.
                let e = Error::from(e);
                if e.kind() == ErrorKind::Corrupt {
                    Error::new(
                        ErrorKind::Corrupt,
                        format!("cannot read tree {tree_id} ({e}); prune would lose data: run arca check first"),
                    )
                } else {
                    e
                }
            })?;
            for node in tree.into_nodes() {
                if let Some(sub) = node.subtree
                    && node.kind == NodeKind::Dir
                {
                    stack.push(sub);
                }
                used.extend(node.content.into_iter().map(|c| (BlobType::Data, c)));
            }
        }
        Ok(used)
    }

    /// Deletes the packs of `plans` and removes the plans. `index` comes from a survey
    /// made after the plans' sessions ended: packs it names (rescued because a snapshot
    /// needs them) stay.
    fn execute_plans(
        &self,
        plans: &[(ObjectId, DeletionPlan)],
        index: &Index,
        sizes: &HashMap<ObjectId, u64>,
        report: &mut PruneReport,
    ) -> Result<()> {
        let indexed: HashSet<ObjectId> = index.packs().iter().copied().collect();
        for (_, plan) in plans {
            for pack in plan.pack_ids().filter(|p| !indexed.contains(p)) {
                if self.repo.remove_if_present(FileKind::Pack, &pack)? {
                    report.packs_deleted += 1;
                    report.bytes_freed += sizes.get(&pack).copied().unwrap_or(0);
                }
            }
        }
        for (id, _) in plans {
            self.repo.remove_if_present(FileKind::Lock, id)?;
        }
        Ok(())
    }

    /// Copies the used blobs of the packs `repack` names (entries from `indexed`) into
    /// new packs, each entry authenticated first, and uploads them; returns their index
    /// entries.
    fn repack(
        &self,
        repack: &[ObjectId],
        indexed: &[IndexedPack],
        used: &HashSet<(BlobType, BlobId)>,
        cancel: &CancelToken,
        report: &mut PruneReport,
    ) -> Result<Vec<IndexedPack>> {
        let wanted: HashMap<ObjectId, &[PackEntry]> = indexed
            .iter()
            .filter(|p| repack.contains(&p.id))
            .map(|p| (p.id, p.entries.as_slice()))
            .collect();
        // The backup's saver packs the copies: against an empty index, so that its
        // claims only keep one copy of each blob.
        let none = Index::new();
        let saver = BlobSaver::new(&self.repo, &none, self.repo.config().compression, false);
        for pack in repack {
            if cancel.is_cancelled() {
                return Err(Error::interrupted());
            }
            let bytes = self.repo.backend().read_full(FileKind::Pack, pack)?;
            for e in wanted.get(pack).copied().unwrap_or_default() {
                if !used.contains(&(e.blob_type, e.id)) || !saver.claim(e.blob_type, &e.id) {
                    continue;
                }
                let start = e.offset as usize;
                let entry = bytes.get(start..start + e.length as usize).ok_or_else(|| {
                    Error::new(
                        ErrorKind::Corrupt,
                        format!("pack {pack} is shorter than its index says"),
                    )
                })?;
                // Authenticated (and its length checked, as the new index repeats it)
                // before it is copied: a damaged entry stops the prune.
                self.repo
                    .decode_blob(entry, e.blob_type, &e.id, &e.location(*pack))?;
                saver.store_encoded(EncodedBlob {
                    blob_type: e.blob_type,
                    id: e.id,
                    raw_len: e.raw_len,
                    bytes: entry.to_vec(),
                })?;
            }
        }
        saver.flush()?;
        let written = saver.take_written();
        report.packs_written += written.len() as u64;
        Ok(written)
    }
}

/// Fails if this prune's lock record was removed (`arca unlock`) while it ran: what it
/// would write next might name packs another prune deleted meanwhile.
fn check_lock(lock: Option<&crate::LockGuard>) -> Result<()> {
    lock.map_or(Ok(()), crate::LockGuard::check)
}

/// The index, the files it came from, and the blobs some snapshot needs.
type Survey = (Index, Vec<ObjectId>, HashSet<(BlobType, BlobId)>);

/// What this run condemns.
struct Plan {
    delete: Vec<ObjectId>,
    repack: Vec<ObjectId>,
}

/// Every pack the index locates a blob in, with its entries (by offset), in pack-id
/// order.
fn packs_of(index: &Index) -> Vec<IndexedPack> {
    let mut packs = index.indexed_packs();
    packs.retain(|p| !p.entries.is_empty());
    packs.sort_by_key(|p| p.id);
    packs
}

fn classify(
    packs: &[IndexedPack],
    used: &HashSet<(BlobType, BlobId)>,
    sizes: &HashMap<ObjectId, u64>,
    in_plans: &HashSet<ObjectId>,
    options: &PruneOptions,
    report: &mut PruneReport,
) -> Plan {
    let indexed: HashSet<ObjectId> = packs.iter().map(|p| p.id).collect();
    // `packs` holds each blob once, where the index locates it (the first location
    // loaded); other copies are not listed, so their bytes count in no pack's figures.
    let mut delete = Vec::new();
    let mut partial: Vec<(ObjectId, u64, u64)> = Vec::new();
    for p in packs {
        if in_plans.contains(&p.id) {
            continue;
        }
        let (mut used_bytes, mut unused_bytes) = (0u64, 0u64);
        for e in &p.entries {
            let key = (e.blob_type, e.id);
            if used.contains(&key) {
                used_bytes += u64::from(e.length);
                report.used_blobs += 1;
            } else {
                unused_bytes += u64::from(e.length);
                report.unused_blobs += 1;
            }
        }
        report.used_bytes += used_bytes;
        report.unused_bytes += unused_bytes;
        let size = sizes
            .get(&p.id)
            .copied()
            .unwrap_or(used_bytes + unused_bytes);
        if used_bytes == 0 {
            delete.push(p.id);
            report.packs_to_delete += 1;
            report.bytes_to_delete += size;
        } else if unused_bytes > 0 {
            partial.push((p.id, used_bytes, unused_bytes));
        }
    }
    // Packs no index names and no plan holds: an interrupted writer's, or left by a
    // crash. Condemned like the others, so a writer still running keeps them.
    for (id, size) in sizes {
        if !indexed.contains(id) && !in_plans.contains(id) {
            delete.push(*id);
            report.packs_to_delete += 1;
            report.bytes_to_delete += size;
        }
    }
    // Repack the emptiest packs first until the unused share is small enough.
    partial.sort_by(|a, b| {
        let share =
            |(_, used, unused): &(ObjectId, u64, u64)| *unused as f64 / (*used + *unused) as f64;
        share(b).total_cmp(&share(a)).then(a.0.cmp(&b.0))
    });
    let total = report.used_bytes + report.unused_bytes;
    let allowed = (options.max_unused.clamp(0.0, 1.0) * total as f64) as u64;
    let mut unused_left: u64 = partial.iter().map(|(_, _, u)| u).sum();
    let mut repack = Vec::new();
    let mut budget = options.max_repack_size.unwrap_or(u64::MAX);
    for (id, used_bytes, unused_bytes) in partial {
        if unused_left <= allowed {
            break;
        }
        let size = sizes.get(&id).copied().unwrap_or(used_bytes + unused_bytes);
        if size > budget {
            continue;
        }
        budget -= size;
        unused_left -= unused_bytes;
        repack.push(id);
        report.packs_to_repack += 1;
        report.bytes_to_repack += size;
        report.bytes_repacked += used_bytes;
    }
    Plan { delete, repack }
}

#[cfg(test)]
#[path = "prune_tests.rs"]
mod tests;
