//! A file's content as the repository holds it: streaming it out blob by blob (each
//! authenticated as it is read), and telling whether a file on disk holds exactly it.
//!
//! A bundled small file (design.md §12) is a slice of one chunk that it shares with the
//! files backed up next to it; the last few bundles read are kept, so that reading the
//! files of a directory one by one decrypts each bundle once.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::sync::{Arc, Mutex};

use arca_repo::{BlobId, Node};

use crate::progress::CancelToken;
use crate::sync::lock;
use crate::{Error, ErrorKind, Repository};

/// How many decoded bundles [`BundleCache`] keeps (each at most about 1.25 MiB with the
/// default chunk sizes).
const CACHED_BUNDLES: usize = 4;

/// The bundles read last, most recent first.
#[derive(Debug, Default)]
pub(crate) struct BundleCache {
    recent: Mutex<VecDeque<(BlobId, Arc<Vec<u8>>)>>,
}

/// Empties a [`BundleCache`] when an operation begins and when it ends, so that a
/// repository handle holds no bundle between operations.
pub(crate) struct BundleScope<'a>(&'a BundleCache);

impl Drop for BundleScope<'_> {
    fn drop(&mut self) {
        lock(&self.0.recent).clear();
    }
}

impl BundleCache {
    /// Starts an operation that reads bundles; see [`BundleScope`].
    pub(crate) fn scope(&self) -> BundleScope<'_> {
        lock(&self.recent).clear();
        BundleScope(self)
    }

    /// Bundle `id`'s plaintext, if it was read lately.
    pub(crate) fn cached(&self, id: &BlobId) -> Option<Arc<Vec<u8>>> {
        let mut recent = lock(&self.recent);
        let i = recent.iter().position(|(b, _)| b == id)?;
        let hit = recent.remove(i)?;
        let bytes = Arc::clone(&hit.1);
        recent.push_front(hit);
        Some(bytes)
    }

    /// Keeps bundle `id`'s authenticated plaintext, dropping the least recent.
    pub(crate) fn keep(&self, id: BlobId, bytes: Arc<Vec<u8>>) {
        let mut recent = lock(&self.recent);
        if recent.front().is_some_and(|(b, _)| *b == id) {
            return;
        }
        recent.retain(|(b, _)| *b != id);
        recent.push_front((id, bytes));
        recent.truncate(CACHED_BUNDLES);
    }
}

/// The bytes `[offset, offset + size)` of a bundle holding `len` bytes, or why they are
/// not there.
pub(crate) fn bundle_slice(
    offset: u64,
    size: u64,
    len: usize,
) -> std::result::Result<std::ops::Range<usize>, String> {
    offset
        .checked_add(size)
        .filter(|end| *end <= len as u64)
        .map(|end| offset as usize..end as usize)
        .ok_or_else(|| {
            format!("the file's {size} bytes at offset {offset} lie beyond its bundle of {len}")
        })
}

/// Reads a file's content from the repository, one authenticated chunk at a time. Made
/// by [`Repository::file_reader`].
///
/// A read fails with an [`io::Error`] wrapping an [`Error`] (see [`Error::from_io`])
/// if a chunk is missing or damaged, or if the chunks do not add up to the node's size.
pub struct FileReader<'a> {
    repo: &'a Repository,
    ids: std::slice::Iter<'a, BlobId>,
    /// Bundled files: where the content starts in the one chunk.
    bundle_offset: Option<u64>,
    chunk: Arc<Vec<u8>>,
    pos: usize,
    /// Where the current chunk's useful bytes end.
    end: usize,
    expected: u64,
    delivered: u64,
    cancel: Option<CancelToken>,
}

impl std::fmt::Debug for FileReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileReader")
            .field("expected", &self.expected)
            .field("delivered", &self.delivered)
            .finish_non_exhaustive()
    }
}

impl FileReader<'_> {
    /// Makes reads fail with [`ErrorKind::Interrupted`] once `cancel` fires.
    #[must_use]
    pub fn cancel_on(mut self, cancel: &CancelToken) -> Self {
        self.cancel = Some(cancel.clone());
        self
    }
}

impl Read for FileReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancel.as_ref().is_some_and(CancelToken::is_cancelled) {
            return Err(io::Error::other(Error::interrupted()));
        }
        while self.pos == self.end {
            let Some(id) = self.ids.next() else {
                if self.delivered != self.expected {
                    return Err(io::Error::other(Error::new(
                        ErrorKind::Corrupt,
                        format!(
                            "the content holds {} bytes, the file's size is {}",
                            self.delivered, self.expected
                        ),
                    )));
                }
                return Ok(0);
            };
            match self.bundle_offset {
                Some(offset) => {
                    self.chunk = self.repo.load_bundle(id).map_err(io::Error::other)?;
                    let range =
                        bundle_slice(offset, self.expected, self.chunk.len()).map_err(|why| {
                            io::Error::other(Error::new(
                                ErrorKind::Corrupt,
                                format!("bundle {id}: {why}"),
                            ))
                        })?;
                    (self.pos, self.end) = (range.start, range.end);
                }
                None => {
                    self.chunk = Arc::new(self.repo.load_data_blob(id).map_err(io::Error::other)?);
                    (self.pos, self.end) = (0, self.chunk.len());
                }
            }
        }
        let n = buf.len().min(self.end - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        self.delivered += n as u64;
        if self.delivered > self.expected {
            return Err(io::Error::other(Error::new(
                ErrorKind::Corrupt,
                format!(
                    "the content is longer than the file's size ({} bytes)",
                    self.expected
                ),
            )));
        }
        Ok(n)
    }
}

/// Whether `live` holds exactly the `size` bytes `stored` yields. Errors of either side
/// are returned (a damaged bundle is not a difference).
fn same_bytes(live: impl Read, mut stored: impl Read, size: u64) -> io::Result<bool> {
    let mut live = live.take(size.saturating_add(1));
    let (mut a, mut b) = (vec![0u8; 64 << 10], vec![0u8; 64 << 10]);
    loop {
        let n = read_full(&mut stored, &mut a)?;
        let m = read_full(&mut live, &mut b[..n.max(1)])?;
        if n == 0 {
            return Ok(m == 0);
        }
        if m != n || a[..n] != b[..n] {
            return Ok(false);
        }
    }
}

/// Reads until `buf` is full or the input ends; returns how much it read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl Repository {
    /// A bundle's plaintext: from the cache of recent bundles, or read, authenticated
    /// and cached.
    ///
    /// # Errors
    /// As [`Repository::load_data_blob`].
    pub(crate) fn load_bundle(&self, id: &BlobId) -> crate::Result<Arc<Vec<u8>>> {
        if let Some(bytes) = self.bundles.cached(id) {
            return Ok(bytes);
        }
        let bytes = Arc::new(self.load_data_blob(id)?);
        self.bundles.keep(*id, Arc::clone(&bytes));
        Ok(bytes)
    }

    /// A reader of `node`'s content (empty for anything but a regular file).
    pub fn file_reader<'a>(&'a self, node: &'a Node) -> FileReader<'a> {
        FileReader {
            repo: self,
            ids: node.content.iter(),
            bundle_offset: node.bundle_offset,
            chunk: Arc::new(Vec::new()),
            pos: 0,
            end: 0,
            expected: if node.kind == arca_repo::NodeKind::File {
                node.size
            } else {
                0
            },
            delivered: 0,
            cancel: None,
        }
    }

    /// Whether files `a` and `b` of two snapshots hold the same content. Chunk lists
    /// decide, except when a bundled file is involved: a file read again (touched, or
    /// renamed) lands in a new bundle with the same bytes, so the bytes are compared.
    ///
    /// # Errors
    /// A missing or damaged chunk of either file, naming `path`.
    pub(crate) fn same_stored_content(
        &self,
        a: &Node,
        b: &Node,
        path: &std::path::Path,
    ) -> crate::Result<bool> {
        if a.content == b.content && a.bundle_offset == b.bundle_offset {
            return Ok(a.size == b.size);
        }
        if a.size != b.size || (a.bundle_offset.is_none() && b.bundle_offset.is_none()) {
            return Ok(false);
        }
        same_bytes(self.file_reader(a), self.file_reader(b), a.size)
            .map_err(|e| Error::from_io(e, &path.display().to_string()))
    }

    /// Whether `reader` yields exactly `node`'s content: it is cut into chunks as a
    /// backup would and each chunk's keyed id compared with the snapshot's list. Stops at
    /// the first difference.
    ///
    /// # Errors
    /// Read errors of `reader`.
    pub(crate) fn holds_content(&self, reader: impl Read, node: &Node) -> io::Result<bool> {
        if node.bundle_offset.is_some() {
            // A slice of a bundle has no chunk id of its own: compare the bytes.
            return same_bytes(reader, self.file_reader(node), node.size);
        }
        let mut ids = node.content.iter();
        for chunk in self.chunker.chunks(reader, node.size) {
            if ids.next() != Some(&self.repo.blob_id(&chunk?)) {
                return Ok(false);
            }
        }
        Ok(ids.next().is_none())
    }
}
