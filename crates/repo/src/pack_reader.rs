//! Reading a stored pack entry by entry, a bounded window at a time.

use arca_backends::{FileKind, ObjectId, ReadBackend};
use bytes::Bytes;

use crate::RepoError;
use crate::blob::ENTRY_HEADER_LEN;
use crate::header::HEADER_LEN;
use crate::pack::{PackEntry, check_pack_header, frame_entry};

/// The window of [`PackReader::new`] for callers that have no reason to choose: twice
/// the largest data blob the default chunker and bundler make.
pub const PACK_READ_WINDOW: u64 = 4 << 20;

/// Reads the entries of a stored pack in order, without decrypting them, as
/// [`crate::scan_pack`] lists them from a pack in memory.
///
/// The pack is read in ranges of `window` bytes (one entry's length when an entry is
/// longer), so a reader holds about one window however large the pack (two for a
/// moment when a new window starts inside an entry, whose start it keeps): a 16 MiB
/// pack read whole by each of several workers cost `check` more memory than all else
/// it keeps.
/// The pack's header is checked first, as the first step of the iteration. The first
/// damage ends the entries; a storage error ends them too and is returned as
/// [`RepoError::Backend`] (not-found included), so a caller can tell a pack it could
/// not read from a damaged one.
pub struct PackReader<'a, B: ReadBackend + ?Sized> {
    backend: &'a B,
    id: ObjectId,
    object: String,
    len: u64,
    window: u64,
    buf: Bytes,
    buf_start: u64,
    pos: u64,
    header_checked: bool,
    stopped: bool,
    bytes_read: u64,
}

impl<'a, B: ReadBackend + ?Sized> PackReader<'a, B> {
    /// A reader of pack `id`, `len` bytes long (as listed), in windows of `window`
    /// bytes. Nothing is read until the first [`Iterator::next`], which checks the
    /// header: a pack that does not start with the header of pack `id` gives
    /// [`RepoError::Corrupt`] or [`RepoError::UnsupportedVersion`] as its one item.
    pub fn new(backend: &'a B, id: ObjectId, len: u64, window: u64) -> Self {
        Self {
            backend,
            id,
            object: format!("pack {id}"),
            len,
            window: window.max(HEADER_LEN as u64),
            buf: Bytes::new(),
            buf_start: 0,
            pos: HEADER_LEN as u64,
            header_checked: false,
            stopped: false,
            bytes_read: 0,
        }
    }

    fn check_header(&mut self) -> Result<(), RepoError> {
        let head = self.bytes(0, self.len.min(HEADER_LEN as u64))?;
        check_pack_header(&head, &self.id, &self.object)
    }

    /// Bytes read from storage so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// `len` bytes at `pos` (within the pack, at or after the window's start), from the
    /// window or a new one. A new window starts at `pos` and keeps what the old one held
    /// from there, so no byte is read from storage twice.
    fn bytes(&mut self, pos: u64, len: u64) -> Result<Bytes, RepoError> {
        let buf_end = self.buf_start + self.buf.len() as u64;
        if pos < self.buf_start || pos + len > buf_end {
            let want = len.max(self.window).min(self.len - pos);
            let kept = if (self.buf_start..buf_end).contains(&pos) {
                self.buf.slice((pos - self.buf_start) as usize..)
            } else {
                Bytes::new()
            };
            let fetch_at = pos + kept.len() as u64;
            let fetch = want - kept.len() as u64;
            let mut joined = Vec::new();
            if !kept.is_empty() {
                joined.reserve_exact(want as usize);
                joined.extend_from_slice(&kept);
            }
            // The old window goes before the read: two would be held during it.
            drop(kept);
            self.buf = Bytes::new();
            let fresh = self
                .backend
                .read_range(FileKind::Pack, &self.id, fetch_at, fetch)?;
            self.bytes_read += fresh.len() as u64;
            if (fresh.len() as u64) != fetch {
                return Err(RepoError::corrupt(
                    &self.object,
                    format!(
                        "storage returned {} bytes of {fetch} at offset {fetch_at}",
                        fresh.len()
                    ),
                ));
            }
            self.buf = if joined.is_empty() {
                fresh
            } else {
                joined.extend_from_slice(&fresh);
                Bytes::from(joined)
            };
            self.buf_start = pos;
        }
        let at = (pos - self.buf_start) as usize;
        Ok(self.buf.slice(at..at + len as usize))
    }
}

impl<B: ReadBackend + ?Sized> Iterator for PackReader<'_, B> {
    type Item = Result<(PackEntry, Bytes), RepoError>;

    /// The next entry and its bytes (exactly `entry.length` of them), `None` after the
    /// last, or the error that ends the entries (`None` after it).
    fn next(&mut self) -> Option<Self::Item> {
        if self.stopped {
            return None;
        }
        if !self.header_checked {
            self.header_checked = true;
            if let Err(e) = self.check_header() {
                self.stopped = true;
                return Some(Err(e));
            }
        }
        if self.pos >= self.len {
            return None;
        }
        let pos = self.pos;
        let entry = self
            .bytes(pos, (self.len - pos).min(ENTRY_HEADER_LEN as u64))
            .and_then(|head| frame_entry(&head, pos, self.len, &self.object))
            .and_then(|entry| Ok((entry, self.bytes(pos, u64::from(entry.length))?)));
        match &entry {
            Ok((e, _)) => self.pos += u64::from(e.length),
            Err(_) => self.stopped = true,
        }
        Some(entry)
    }
}
