//! The last tree packs read whole, kept in memory for a reader without a metadata
//! cache: directory trees are read in runs from the same few packs, and one request
//! per tree made `check` of a remote repository take minutes.

use std::sync::{Mutex, MutexGuard};

use arca_backends::ObjectId;
use bytes::Bytes;

/// How many packs are kept: the one being read and the one before.
const KEPT: usize = 2;

/// Packs kept by id, most recently used first.
#[derive(Debug, Default)]
pub(crate) struct RecentPacks {
    packs: Mutex<Vec<(ObjectId, Bytes)>>,
}

impl RecentPacks {
    fn lock(&self) -> MutexGuard<'_, Vec<(ObjectId, Bytes)>> {
        self.packs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `len` bytes at `offset` of pack `id`, if it is kept and that long.
    pub(crate) fn get(&self, id: &ObjectId, offset: usize, len: usize) -> Option<Bytes> {
        let mut packs = self.lock();
        let at = packs.iter().position(|(p, _)| p == id)?;
        // Now the most recently used.
        packs[..=at].rotate_right(1);
        let bytes = &packs[0].1;
        let end = offset.checked_add(len).filter(|end| *end <= bytes.len())?;
        Some(bytes.slice(offset..end))
    }

    /// Keeps `bytes` as pack `id`, forgetting the least recently used beyond [`KEPT`].
    pub(crate) fn put(&self, id: ObjectId, bytes: Bytes) {
        let mut packs = self.lock();
        packs.retain(|(p, _)| *p != id);
        packs.insert(0, (id, bytes));
        packs.truncate(KEPT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> ObjectId {
        ObjectId::from_bytes([n; 32])
    }

    #[test]
    fn keeps_the_two_most_recently_used() {
        let recent = RecentPacks::default();
        recent.put(id(1), Bytes::from_static(b"one"));
        recent.put(id(2), Bytes::from_static(b"two"));
        assert_eq!(recent.get(&id(1), 1, 2).unwrap(), &b"ne"[..]);
        recent.put(id(3), Bytes::from_static(b"three"));
        assert!(
            recent.get(&id(2), 0, 1).is_none(),
            "2 was the least recently used"
        );
        assert_eq!(recent.get(&id(1), 0, 3).unwrap(), &b"one"[..]);
        assert!(recent.get(&id(3), 3, 3).is_none(), "past the end");
        assert!(recent.get(&id(3), usize::MAX, 2).is_none());
        // A range it does not hold leaves the pack kept.
        assert_eq!(recent.get(&id(3), 0, 5).unwrap(), &b"three"[..]);
    }
}
