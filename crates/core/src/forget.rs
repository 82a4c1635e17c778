//! `forget`: deciding with a [`KeepPolicy`] which snapshots go, and removing snapshot
//! files. Data stays in the repository until `prune` removes what no snapshot needs.

use arca_backends::{FileKind, ObjectId};

use crate::retention::{GroupBy, GroupDecisions, KeepPolicy, apply};
use crate::select::SnapshotFilter;
use crate::{Error, Repository, Result};

impl Repository {
    /// Groups the snapshots that pass `filter` and decides which `policy` keeps. Nothing
    /// is removed: pass the ids of the decisions that do not keep to
    /// [`Repository::forget_snapshots`].
    ///
    /// # Errors
    /// [`crate::ErrorKind::InvalidInput`] for an empty policy (it would remove every
    /// snapshot); storage errors and damaged snapshot files.
    pub fn forget_plan(
        &self,
        policy: &KeepPolicy,
        group_by: GroupBy,
        filter: &SnapshotFilter,
    ) -> Result<Vec<GroupDecisions>> {
        if policy.is_empty() {
            return Err(Error::invalid(
                "no retention rule given: it would remove every snapshot (name snapshots to forget, or give --keep-* or --older-than)",
            ));
        }
        let snapshots = self.find_snapshots(&[], filter)?;
        Ok(apply(snapshots, policy, group_by))
    }

    /// Removes the snapshot files `ids`. One already gone (forgotten by a concurrent
    /// `forget`) is not an error. Returns how many this call removed.
    ///
    /// # Errors
    /// Storage errors, naming the snapshot; the snapshots before it are removed.
    pub fn forget_snapshots(&self, ids: &[ObjectId]) -> Result<usize> {
        let mut removed = 0;
        for id in ids {
            if self.repo.remove_if_present(FileKind::Snapshot, id)? {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

impl Repository {
    /// Changes the tags of `snapshot`: `set` replaces them all (if given), then `add`
    /// and `remove` apply. Snapshot files are write-once, so the snapshot is written
    /// anew with the new tags (a new id) and the old file removed. Returns the new id,
    /// or `None` if the tags were already so.
    ///
    /// # Errors
    /// [`crate::ErrorKind::InvalidInput`] for an empty tag; storage errors. If the
    /// removal fails, both files remain (two snapshots of the same data).
    pub fn retag(
        &self,
        snapshot: &crate::SnapshotInfo,
        set: Option<&[String]>,
        add: &[String],
        remove: &[String],
    ) -> Result<Option<ObjectId>> {
        if set
            .into_iter()
            .flatten()
            .chain(add)
            .any(|t| t.trim().is_empty())
        {
            return Err(Error::invalid("a tag may not be empty"));
        }
        let mut tags: Vec<String> = match set {
            Some(tags) => tags.to_vec(),
            None => snapshot.snapshot.tags.clone(),
        };
        tags.extend(add.iter().cloned());
        tags.retain(|t| !remove.contains(t));
        tags.sort();
        tags.dedup();
        if tags == snapshot.snapshot.tags {
            return Ok(None);
        }
        let mut changed = snapshot.snapshot.clone();
        changed.tags = tags;
        let id = self.repo.save_snapshot(&changed)?;
        self.repo
            .remove_if_present(FileKind::Snapshot, &snapshot.id)?;
        Ok(Some(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retention::KeepCount;
    use crate::{BackupOptions, NoProgress};

    #[test]
    fn forget_removes_only_what_the_policy_lets_go() {
        let (_dir, src) = crate::testing::source_dir();
        let (_, mut repo) = crate::testing::memory_repository();
        for i in 0..4 {
            std::fs::write(src.join("f"), format!("{i}")).unwrap();
            let options = BackupOptions {
                time: Some(arca_repo::Timestamp {
                    secs: 1_767_225_600 + i * 86_400,
                    nanos: 0,
                }),
                ..BackupOptions::default()
            };
            repo.backup(std::slice::from_ref(&src), &options, &NoProgress)
                .unwrap();
        }
        assert!(
            repo.forget_plan(
                &KeepPolicy::default(),
                GroupBy::default(),
                &SnapshotFilter::default()
            )
            .is_err()
        );
        let policy = KeepPolicy {
            last: Some(KeepCount::Last(2)),
            ..KeepPolicy::default()
        };
        let plan = repo
            .forget_plan(&policy, GroupBy::default(), &SnapshotFilter::default())
            .unwrap();
        let gone: Vec<ObjectId> = plan[0]
            .decisions
            .iter()
            .filter(|d| !d.keep)
            .map(|d| d.snapshot.id)
            .collect();
        assert_eq!(gone.len(), 2);
        assert_eq!(repo.forget_snapshots(&gone).unwrap(), 2);
        assert_eq!(repo.forget_snapshots(&gone).unwrap(), 0);
        let left = repo.snapshots().unwrap();
        assert_eq!(left.len(), 2);
        assert_eq!(left[0].snapshot.time.secs, 1_767_225_600 + 2 * 86_400);
    }
}
