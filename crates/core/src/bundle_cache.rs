//! The bundles an operation read last, and the ones its threads are reading now.
//!
//! A bundled small file (design.md §12) is a slice of one chunk, its *bundle*, shared
//! with the files backed up next to it. An operation that reads many files (restore, an
//! archive dump, diff, verify) owns one [`BundleCache`]: it keeps the last few bundles
//! decoded, and it lets one thread at a time read a given bundle, so two threads that
//! need the same bundle at once read it once (a restore hands neighbouring files to
//! different workers, and a bundle holds a hundred of them).
//!
//! A thread that [claims](BundleCache::claim) a bundle gets it kept, or the duty to read
//! it ([`Reading`]), or word that another thread reads it now. Waiting is for a thread
//! that holds no `Reading` of its own: then every wait ends, because the thread it waits
//! for never waits while it reads.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use arca_repo::BlobId;

use crate::Repository;
use crate::sync::lock;

/// How many decoded bundles [`BundleCache`] keeps (each at most about 2.25 MiB with the
/// default chunk sizes).
pub(crate) const CACHED_BUNDLES: usize = 4;

/// The bundles one operation read last, most recent first, and the ones being read
/// (shared by its threads).
#[derive(Debug, Default)]
pub(crate) struct BundleCache {
    state: Mutex<Bundles>,
    /// Signalled whenever a bundle stops being read.
    read: Condvar,
}

#[derive(Debug, Default)]
struct Bundles {
    recent: VecDeque<(BlobId, Arc<Vec<u8>>)>,
    /// Bundles a thread holds a [`Reading`] of (a few: one batch's worth per thread).
    reading: Vec<BlobId>,
}

impl Bundles {
    /// Bundle `id`, if kept; it becomes the most recent.
    fn take_recent(&mut self, id: &BlobId) -> Option<Arc<Vec<u8>>> {
        let i = self.recent.iter().position(|(b, _)| b == id)?;
        let hit = self.recent.remove(i)?;
        let bytes = Arc::clone(&hit.1);
        self.recent.push_front(hit);
        Some(bytes)
    }

    fn keep(&mut self, id: BlobId, bytes: Arc<Vec<u8>>) {
        if self.recent.front().is_some_and(|(b, _)| *b == id) {
            return;
        }
        self.recent.retain(|(b, _)| *b != id);
        self.recent.push_front((id, bytes));
        self.recent.truncate(CACHED_BUNDLES);
    }
}

/// What [`BundleCache::claim`] found.
#[derive(Debug)]
pub(crate) enum Claim<'a> {
    /// The bundle's plaintext, read lately.
    Kept(Arc<Vec<u8>>),
    /// Nobody reads it: the caller does, and keeps it through this.
    Mine(Reading<'a>),
    /// Another thread reads it now.
    Elsewhere,
}

/// The duty to read one bundle. Dropped without [`keep`](Reading::keep) (the read
/// failed, or the holder did not need the bundle after all), the bundle is free to be
/// claimed again; either way the threads waiting for it wake.
#[derive(Debug)]
pub(crate) struct Reading<'a> {
    cache: &'a BundleCache,
    id: BlobId,
}

impl Reading<'_> {
    /// Keeps the bundle's authenticated plaintext and ends the reading.
    pub(crate) fn keep(self, bytes: Arc<Vec<u8>>) {
        self.cache.state().keep(self.id, bytes);
        // Drop ends the reading and wakes the waiters.
    }
}

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        let mut state = self.cache.state();
        state.reading.retain(|b| *b != self.id);
        drop(state);
        self.cache.read.notify_all();
    }
}

impl BundleCache {
    fn state(&self) -> MutexGuard<'_, Bundles> {
        lock(&self.state)
    }

    /// Bundle `id`: kept, to be read by the caller, or being read by another thread.
    pub(crate) fn claim(&self, id: &BlobId) -> Claim<'_> {
        let mut state = self.state();
        if let Some(bytes) = state.take_recent(id) {
            return Claim::Kept(bytes);
        }
        if state.reading.contains(id) {
            return Claim::Elsewhere;
        }
        state.reading.push(*id);
        Claim::Mine(Reading {
            cache: self,
            id: *id,
        })
    }

    /// Waits until no thread reads bundle `id`, then gives it if it is kept (it is not
    /// if that read failed, or if later bundles pushed it out). The caller must hold no
    /// [`Reading`].
    pub(crate) fn wait(&self, id: &BlobId) -> Option<Arc<Vec<u8>>> {
        let mut state = self.state();
        while state.reading.contains(id) {
            state = self.read.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        state.take_recent(id)
    }

    /// Bundle `id`'s plaintext: kept, read by another thread meanwhile, or read,
    /// authenticated and kept. The caller must hold no [`Reading`].
    ///
    /// # Errors
    /// As [`Repository::load_data_blob`].
    pub(crate) fn load(&self, repo: &Repository, id: &BlobId) -> crate::Result<Arc<Vec<u8>>> {
        loop {
            match self.claim(id) {
                Claim::Kept(bytes) => return Ok(bytes),
                Claim::Mine(reading) => {
                    let bytes = Arc::new(repo.load_data_blob(id)?);
                    reading.keep(Arc::clone(&bytes));
                    return Ok(bytes);
                }
                Claim::Elsewhere => {
                    if let Some(bytes) = self.wait(id) {
                        return Ok(bytes);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn id(n: u8) -> BlobId {
        BlobId([n; 32])
    }

    /// The claim of bundle `n`, which must be the caller's to read.
    fn mine(cache: &BundleCache, n: u8) -> Reading<'_> {
        match cache.claim(&id(n)) {
            Claim::Mine(reading) => reading,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_bundle_is_kept_until_later_ones_push_it_out() {
        let cache = BundleCache::default();
        for n in 0..5 {
            mine(&cache, n).keep(Arc::new(vec![n]));
        }
        // Four are kept, the oldest went.
        assert!(matches!(cache.claim(&id(0)), Claim::Mine(_)));
        for n in 1..5 {
            let Claim::Kept(bytes) = cache.claim(&id(n)) else {
                panic!("bundle {n} was not kept");
            };
            assert_eq!(*bytes, vec![n]);
        }
    }

    #[test]
    fn a_bundle_being_read_is_read_once_and_a_failed_read_frees_it() {
        let cache = BundleCache::default();
        let reading = mine(&cache, 1);
        assert!(matches!(cache.claim(&id(1)), Claim::Elsewhere));
        // Another bundle is not held up by it.
        assert!(matches!(cache.claim(&id(2)), Claim::Mine(_)));
        drop(reading);
        assert!(cache.wait(&id(1)).is_none());
        assert!(matches!(cache.claim(&id(1)), Claim::Mine(_)));
    }

    /// Threads that wait for a bundle another thread is reading get that thread's bytes.
    #[test]
    fn waiting_threads_get_the_bytes_the_reader_kept() {
        let cache = BundleCache::default();
        let reading = mine(&cache, 7);
        let (claimed, woken) = (AtomicUsize::new(0), AtomicUsize::new(0));
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    assert!(matches!(cache.claim(&id(7)), Claim::Elsewhere));
                    claimed.fetch_add(1, Ordering::SeqCst);
                    assert_eq!(cache.wait(&id(7)).as_deref(), Some(&vec![7u8; 3]));
                    woken.fetch_add(1, Ordering::SeqCst);
                });
            }
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while claimed.load(Ordering::SeqCst) < 4 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "a waiter never claimed"
                );
                std::thread::yield_now();
            }
            assert_eq!(woken.load(Ordering::SeqCst), 0, "a waiter did not wait");
            reading.keep(Arc::new(vec![7; 3]));
        });
        assert_eq!(woken.load(Ordering::SeqCst), 4);
    }
}
