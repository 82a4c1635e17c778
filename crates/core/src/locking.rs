//! Sessions and locks (docs/design.md §19): every command that adds data to the
//! repository registers a session for as long as it runs; maintenance commands that
//! must run alone take an exclusive lock. Both are records in `locks/` that the holder
//! refreshes while it runs and removes when it ends.
//!
//! Deleting data never depends on clocks: `prune` deletes a pack only once every
//! session that was registered when it condemned the pack is gone. Staleness (a dead
//! process on this host, or a record not refreshed for [`STALE_AFTER`]) is only
//! reported, and acted on by `arca unlock`: nothing removes a record automatically.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use arca_backends::{FileKind, ObjectId};
use arca_repo::{DeletionPlan, Holder, LockRecord, Repo, Timestamp};

use crate::{Error, ErrorKind, Repository, Result};

/// How often a holder rewrites its record.
pub const REFRESH_EVERY: Duration = Duration::from_secs(5 * 60);
/// A record not refreshed for this long is reported as stale.
pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);

/// A session or lock record found in the repository.
#[derive(Debug, Clone)]
pub struct LockInfo {
    /// The record's file id.
    pub id: ObjectId,
    /// An exclusive lock (else a session).
    pub exclusive: bool,
    /// Who holds it.
    pub holder: Holder,
    /// Why it looks abandoned, if it does.
    pub stale: Option<String>,
}

impl LockInfo {
    /// `prune (pid 42 on host, user me, since 2026-01-10 14:00:00 UTC)`.
    pub fn describe(&self) -> String {
        let h = &self.holder;
        format!(
            "{} (pid {} on {}, user {}, since {})",
            h.command,
            h.pid,
            h.hostname,
            h.username,
            format_time(h.started)
        )
    }
}

fn format_time(t: Timestamp) -> String {
    jiff::Timestamp::from_second(t.secs)
        .map(|ts| ts.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|_| t.secs.to_string())
}

/// Everything in `locks/`.
#[derive(Debug, Default)]
pub struct Locks {
    /// Sessions and exclusive locks.
    pub holders: Vec<LockInfo>,
    /// Deletion plans of `prune`, with their file ids.
    pub plans: Vec<(ObjectId, DeletionPlan)>,
    /// Records that could not be read (damaged), with the reason.
    pub unreadable: Vec<(ObjectId, String)>,
}

impl Locks {
    /// The sessions of the holders, but `own`.
    pub(crate) fn sessions_except(&self, own: Option<[u8; 16]>) -> Vec<[u8; 16]> {
        self.holders
            .iter()
            .map(|l| l.holder.session)
            .filter(|s| Some(*s) != own)
            .collect()
    }

    /// Why deletions wait: each holder of one of `sessions` (with what makes it look
    /// stale, if anything, and how to remove it), and each record that cannot be read
    /// (which counts as a live session of unknown identity).
    pub(crate) fn blockers(&self, sessions: &[[u8; 16]]) -> Vec<String> {
        let holders = self
            .holders
            .iter()
            .filter(|l| sessions.contains(&l.holder.session))
            .map(|l| match &l.stale {
                Some(why) => format!(
                    "{} (looks stale: {why}; `arca unlock` removes it)",
                    l.describe()
                ),
                None => l.describe(),
            });
        let unreadable = self.unreadable.iter().map(|(id, why)| {
            format!("record {id} that cannot be read ({why}; `arca unlock --all` removes it)")
        });
        holders.chain(unreadable).collect()
    }
}

/// Why `holder` looks abandoned, judged from this host.
fn staleness(holder: &Holder, now: Timestamp) -> Option<String> {
    // A pid means the same process only on the same host, since the same boot, in the
    // same pid namespace (containers often share a host name).
    let here = holder.hostname == crate::system::hostname()
        && holder.boot_id == boot_id()
        && holder.pid_namespace == pid_namespace();
    if here
        && holder.pid != std::process::id()
        && let Ok(pid) = i32::try_from(holder.pid)
        && matches!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
            Err(nix::errno::Errno::ESRCH)
        )
    {
        return Some(format!("process {} on this host is gone", holder.pid));
    }
    let age = now.secs.saturating_sub(holder.refreshed.secs);
    (age > STALE_AFTER.as_secs() as i64).then(|| {
        format!(
            "not refreshed since {} ({} minutes)",
            format_time(holder.refreshed),
            age / 60
        )
    })
}

pub(crate) fn read_locks(repo: &Repo) -> Result<Locks> {
    let now = crate::system::now();
    let mut out = Locks::default();
    for (id, _) in repo.list(FileKind::Lock)? {
        match repo.load_lock(&id) {
            Ok(LockRecord::Session(holder)) => out.holders.push(LockInfo {
                id,
                exclusive: false,
                stale: staleness(&holder, now),
                holder,
            }),
            Ok(LockRecord::Exclusive(holder)) => out.holders.push(LockInfo {
                id,
                exclusive: true,
                stale: staleness(&holder, now),
                holder,
            }),
            Ok(LockRecord::Deletion(plan)) => out.plans.push((id, plan)),
            // Removed between listing and reading: it ended.
            Err(arca_repo::RepoError::Backend(e)) if e.is_not_found() => {}
            Err(e) => out.unreadable.push((id, e.to_string())),
        }
    }
    Ok(out)
}

/// This boot's id (Linux), so that pids from before a reboot are not taken for ours.
fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// The inode of this process's pid namespace (Linux), 0 if unknown.
fn pid_namespace() -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/pid").map_or(0, |m| m.ino())
}

fn new_holder(command: &str) -> Result<Holder> {
    let now = crate::system::now();
    Ok(Holder {
        session: arca_crypto::random_array()
            .map_err(|e| Error::new(ErrorKind::Io, format!("cannot make a session id: {e}")))?,
        hostname: crate::system::hostname(),
        username: crate::system::username(),
        pid: std::process::id(),
        command: command.to_owned(),
        started: now,
        refreshed: now,
        boot_id: boot_id(),
        pid_namespace: pid_namespace(),
    })
}

struct Shared {
    repo: Arc<Repo>,
    exclusive: bool,
    holder: Mutex<(Holder, ObjectId)>,
    stop: Mutex<bool>,
    wake: Condvar,
    lost: AtomicBool,
}

impl Shared {
    fn record(&self, holder: Holder) -> LockRecord {
        if self.exclusive {
            LockRecord::Exclusive(holder)
        } else {
            LockRecord::Session(holder)
        }
    }

    /// Writes a fresh record and removes the previous one. If the previous one was
    /// removed by someone else (`arca unlock`), the holder has lost its protection.
    fn refresh(&self) {
        // Held throughout, so that `check` never looks for a record just replaced.
        let mut current = self.holder.lock().unwrap_or_else(|e| e.into_inner());
        let (mut holder, old) = current.clone();
        holder.refreshed = crate::system::now();
        let Ok(new) = self.repo.save_lock(&self.record(holder.clone())) else {
            return; // Try again at the next refresh.
        };
        match self.repo.backend().remove(FileKind::Lock, &old) {
            Err(e) if e.is_not_found() => self.lost.store(true, Ordering::SeqCst),
            _ => {}
        }
        *current = (holder, new);
    }
}

/// A registered session or held lock. Refreshed by a background thread; removed when
/// dropped.
pub struct LockGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard")
            .field("exclusive", &self.shared.exclusive)
            .finish_non_exhaustive()
    }
}

impl LockGuard {
    fn start(repo: Arc<Repo>, exclusive: bool, holder: Holder) -> Result<Self> {
        let record = if exclusive {
            LockRecord::Exclusive(holder.clone())
        } else {
            LockRecord::Session(holder.clone())
        };
        let id = repo.save_lock(&record)?;
        let shared = Arc::new(Shared {
            repo,
            exclusive,
            holder: Mutex::new((holder, id)),
            stop: Mutex::new(false),
            wake: Condvar::new(),
            lost: AtomicBool::new(false),
        });
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name("arca-lock-refresh".into())
            .spawn(move || {
                let mut stopped = worker.stop.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    if *stopped {
                        return;
                    }
                    let (guard, timeout) = worker
                        .wake
                        .wait_timeout(stopped, REFRESH_EVERY)
                        .unwrap_or_else(|e| e.into_inner());
                    stopped = guard;
                    if *stopped {
                        return;
                    }
                    if timeout.timed_out() {
                        drop(stopped);
                        worker.refresh();
                        stopped = worker.stop.lock().unwrap_or_else(|e| e.into_inner());
                    }
                }
            })
            .map_err(|e| Error::new(ErrorKind::Io, format!("cannot start a thread: {e}")))?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// This session's id (listed in deletion plans made while it runs).
    pub fn session(&self) -> [u8; 16] {
        self.shared
            .holder
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .session
    }

    /// Fails if the record was removed by someone else (`arca unlock --all`): what this
    /// session wrote is then no longer protected from a concurrent prune.
    ///
    /// # Errors
    /// [`ErrorKind::Locked`] if the record is gone; storage errors.
    pub fn check(&self) -> Result<()> {
        let current = self.shared.holder.lock().unwrap_or_else(|e| e.into_inner());
        let present = self
            .shared
            .repo
            .list(FileKind::Lock)?
            .iter()
            .any(|(l, _)| *l == current.1);
        drop(current);
        if present && !self.shared.lost.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::Locked,
                "this command's session record was removed from the repository (arca unlock?) while it ran; nothing was committed, run it again",
            ))
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        *self.shared.stop.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let id = self
            .shared
            .holder
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .1;
        let _ = self.shared.repo.backend().remove(FileKind::Lock, &id);
    }
}

impl Repository {
    /// Registers a session of `command` (a backup, or anything else that adds data):
    /// deletion plans made while it runs wait for it. Ends when the guard is dropped.
    ///
    /// # Errors
    /// Storage errors writing the record.
    pub fn begin_session(&self, command: &str) -> Result<LockGuard> {
        LockGuard::start(self.repo.clone(), false, new_holder(command)?)
    }

    /// Takes the exclusive lock for `command`, waiting up to `wait` for another holder
    /// to release it (checking every few seconds). The lock also counts as a session.
    ///
    /// # Errors
    /// [`ErrorKind::Locked`] naming the holder if it is still held after `wait`;
    /// storage errors.
    pub fn lock_exclusive(&self, command: &str, wait: Duration) -> Result<LockGuard> {
        let deadline = std::time::Instant::now() + wait;
        loop {
            let holder = new_holder(command)?;
            let blocking = |locks: &Locks, mine: Option<&ObjectId>| {
                locks
                    .holders
                    .iter()
                    .filter(|l| l.exclusive && Some(&l.id) != mine && l.stale.is_none())
                    .min_by_key(|l| (l.holder.started, l.id))
                    .cloned()
            };
            let before = read_locks(&self.repo)?;
            let mut held_by = blocking(&before, None);
            if held_by.is_none() {
                let guard = LockGuard::start(self.repo.clone(), true, holder.clone())?;
                let mine = guard
                    .shared
                    .holder
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .1;
                // Two that wrote at once both see each other: the earlier one wins.
                let after = read_locks(&self.repo)?;
                match blocking(&after, Some(&mine)) {
                    Some(other) if (other.holder.started, other.id) < (holder.started, mine) => {
                        held_by = Some(other);
                        drop(guard);
                    }
                    _ => return Ok(guard),
                }
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                let other = held_by.map(|l| l.describe()).unwrap_or_default();
                return Err(Error::new(
                    ErrorKind::Locked,
                    format!(
                        "the repository is locked by {other}; wait for it (--retry-lock) or, if it is gone, run arca unlock"
                    ),
                ));
            }
            std::thread::sleep((deadline - now).min(Duration::from_secs(5)));
        }
    }

    /// Sessions, locks and deletion plans in the repository.
    ///
    /// # Errors
    /// Storage errors listing them.
    pub fn locks(&self) -> Result<Locks> {
        read_locks(&self.repo)
    }

    /// Removes stale session and lock records; with `all`, every record, also those
    /// that cannot be read (damaged, or written by a newer arca: each counts as a live
    /// session and keeps prune from deleting), so only when no other arca process uses
    /// the repository. Deletion plans stay. Returns what was removed.
    ///
    /// # Errors
    /// Storage errors.
    pub fn unlock(&self, all: bool) -> Result<Unlocked> {
        let locks = read_locks(&self.repo)?;
        let mut removed = Unlocked::default();
        for l in locks.holders {
            if (all || l.stale.is_some()) && self.repo.remove_if_present(FileKind::Lock, &l.id)? {
                removed.holders.push(l);
            }
        }
        if all {
            for (id, why) in locks.unreadable {
                if self.repo.remove_if_present(FileKind::Lock, &id)? {
                    removed.unreadable.push((id, why));
                }
            }
        }
        Ok(removed)
    }
}

/// What [`Repository::unlock`] removed.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Unlocked {
    /// Session and lock records, as they were.
    pub holders: Vec<LockInfo>,
    /// Records that could not be read: their ids and why.
    pub unreadable: Vec<(ObjectId, String)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> Repository {
        crate::testing::memory_repository().1
    }

    #[test]
    fn sessions_and_locks_are_listed_while_held_and_gone_after() {
        let repo = repo();
        let session = repo.begin_session("backup").unwrap();
        let lock = repo.lock_exclusive("prune", Duration::ZERO).unwrap();
        let locks = repo.locks().unwrap();
        assert_eq!(locks.holders.len(), 2);
        assert!(locks.holders.iter().all(|l| l.stale.is_none()));
        let held = locks.holders.iter().find(|l| l.exclusive).unwrap();
        assert_eq!(held.holder.pid, std::process::id());
        assert!(held.describe().starts_with("prune (pid "));
        // A second exclusive lock is refused, naming the holder.
        let err = repo.lock_exclusive("prune", Duration::ZERO).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Locked);
        assert!(err.to_string().contains("locked by prune (pid"), "{err}");
        // A session does not block, nor is blocked.
        let other = repo.begin_session("backup").unwrap();
        assert!(session.check().is_ok());
        drop((session, other, lock));
        assert!(repo.locks().unwrap().holders.is_empty());
        drop(repo.lock_exclusive("prune", Duration::ZERO).unwrap());
    }

    #[test]
    fn unlock_removes_stale_records_and_a_removed_session_notices() {
        let repo = repo();
        // A record of a process on this host that no longer runs.
        let mut dead = new_holder("backup").unwrap();
        dead.pid = i32::MAX as u32 - 7;
        repo.repo.save_lock(&LockRecord::Exclusive(dead)).unwrap();
        // One not refreshed for a day.
        let mut old = new_holder("prune").unwrap();
        old.hostname = "elsewhere".into();
        old.refreshed.secs -= 86_400;
        repo.repo.save_lock(&LockRecord::Session(old)).unwrap();
        let live = repo.begin_session("backup").unwrap();
        let locks = repo.locks().unwrap();
        let stale: Vec<_> = locks
            .holders
            .iter()
            .filter_map(|l| l.stale.clone())
            .collect();
        assert_eq!(stale.len(), 2, "{stale:?}");
        assert!(stale.iter().any(|s| s.contains("is gone")));
        assert!(stale.iter().any(|s| s.contains("not refreshed since")));
        // Stale exclusive locks do not block.
        drop(repo.lock_exclusive("prune", Duration::ZERO).unwrap());
        assert_eq!(repo.unlock(false).unwrap().holders.len(), 2);
        assert!(live.check().is_ok());
        assert_eq!(repo.unlock(true).unwrap().holders.len(), 1);
        let err = live.check().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Locked);
    }
}
