//! `repair index`: rebuilding the index from the packs themselves.

use std::time::Duration;

use arca_backends::{FileKind, ObjectId};
use arca_repo::{IndexedPack, PackEntry, scan_pack};

use crate::backup::{INDEX_FILE_MAX_BLOBS, index_files};
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
        let mut packs: Vec<ObjectId> = self
            .repo
            .list(FileKind::Pack)?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        packs.sort();
        let mut indexed = Vec::new();
        for id in packs {
            if cancel.is_cancelled() {
                return Err(Error::interrupted());
            }
            let bytes = match self.repo.backend().read_full(FileKind::Pack, &id) {
                Ok(b) => b,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            };
            report.packs += 1;
            let (scanned, damage) = scan_pack(&bytes, &id);
            let mut bad = damage.is_some();
            let entries: Vec<PackEntry> = scanned
                .into_iter()
                .filter_map(|mut e| {
                    let start = e.offset as usize;
                    let entry = bytes.get(start..start.checked_add(e.length as usize)?)?;
                    let object = format!("{} blob {} in pack {id}", e.blob_type, e.id);
                    match self
                        .repo
                        .decode_entry(entry, Some((e.blob_type, e.id)), &object)
                    {
                        Ok((_, plain)) => {
                            e.raw_len = u32::try_from(plain.len()).ok()?;
                            Some(e)
                        }
                        Err(_) => {
                            bad = true;
                            None
                        }
                    }
                })
                .collect();
            if bad {
                report.damaged_packs.push(id.to_string());
            }
            report.blobs += entries.len() as u64;
            if !entries.is_empty() {
                indexed.push(IndexedPack { id, entries });
            }
        }
        lock.check()?;
        for file in index_files(&indexed, INDEX_FILE_MAX_BLOBS) {
            self.repo.save_index(&file)?;
            report.index_files_written += 1;
        }
        for id in &old_files {
            match self.repo.backend().remove(FileKind::Index, id) {
                Ok(()) => report.index_files_removed += 1,
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        let loaded = load_index(&self.repo)?;
        self.index = loaded.index;
        self.index_errors = loaded.errors;
        self.index_files = loaded.files;
        drop(lock);
        Ok(report)
    }
}
