//! A file's content as the repository holds it: streaming it out blob by blob (each
//! authenticated as it is read), and telling whether a file on disk holds exactly it.
//!
//! A bundled small file (design.md §12) is a slice of one chunk that it shares with the
//! files backed up next to it. An operation that reads many files (restore, an archive
//! dump, diff, verify) owns a [`BundleCache`] of the last few bundles it read, so the
//! files of a directory, read one by one, seldom decrypt their bundle again.

use std::io::{self, Read};
use std::sync::Arc;

use arca_repo::{BlobId, Node};

use crate::bundle_cache::BundleCache;
use crate::progress::CancelToken;
use crate::{Error, ErrorKind, Repository};

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
    /// The operation's recent bundles, if it keeps them.
    bundles: Option<&'a BundleCache>,
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
                    self.chunk = match self.bundles {
                        Some(cache) => cache.load(self.repo, id),
                        None => self.repo.load_data_blob(id).map(Arc::new),
                    }
                    .map_err(io::Error::other)?;
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

/// Why [`Repository::holds_content`] could not tell: the file being checked could not
/// be read, or the snapshot's content could not (then the file may well be right).
#[derive(Debug)]
pub(crate) enum Unchecked {
    Live(io::Error),
    Stored(Error),
}

impl std::fmt::Display for Unchecked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Live(e) => write!(f, "cannot read: {e}"),
            Self::Stored(e) => write!(f, "cannot read the snapshot's content: {e}"),
        }
    }
}

impl Repository {
    /// A reader of `node`'s content (empty for anything but a regular file).
    pub fn file_reader<'a>(&'a self, node: &'a Node) -> FileReader<'a> {
        FileReader {
            repo: self,
            bundles: None,
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

    /// [`Repository::file_reader`] that takes bundles from, and keeps them in, an
    /// operation's `bundles`.
    pub(crate) fn file_reader_in<'a>(
        &'a self,
        node: &'a Node,
        bundles: &'a BundleCache,
    ) -> FileReader<'a> {
        FileReader {
            bundles: Some(bundles),
            ..self.file_reader(node)
        }
    }

    /// A bundled file's bytes: its bundle and its slice of it.
    fn bundled_slice(
        &self,
        node: &Node,
        offset: u64,
        bundles: &BundleCache,
    ) -> crate::Result<(Arc<Vec<u8>>, std::ops::Range<usize>)> {
        let Some(id) = node.content.first() else {
            return Err(Error::new(
                ErrorKind::Corrupt,
                "a bundled file has no chunk",
            ));
        };
        let bundle = bundles.load(self, id)?;
        let range = bundle_slice(offset, node.size, bundle.len())
            .map_err(|why| Error::new(ErrorKind::Corrupt, format!("bundle {id}: {why}")))?;
        Ok((bundle, range))
    }

    /// Whether files `a` and `b` of two snapshots, whose chunk lists differ, hold the
    /// same content: never if neither is bundled (the chunker is deterministic); else
    /// their bytes decide, since a file read again (touched, or renamed) lands in a new
    /// bundle with the same bytes. A bundled file against a chunked one is cut into
    /// chunks and compared by id, reading only the bundle.
    ///
    /// # Errors
    /// A missing or damaged bundle, naming `path`.
    pub(crate) fn same_stored_content(
        &self,
        a: &Node,
        b: &Node,
        path: &std::path::Path,
        bundles: &BundleCache,
    ) -> crate::Result<bool> {
        if a.size != b.size {
            return Ok(false);
        }
        let named = |e: Error| Error::new(e.kind(), format!("{}: {e}", path.display()));
        match (a.bundle_offset, b.bundle_offset) {
            (None, None) => Ok(false),
            (Some(x), Some(y)) => self.bundled_slice(a, x, bundles).and_then(|(one, r1)| {
                let (two, r2) = self.bundled_slice(b, y, bundles)?;
                Ok(one[r1] == two[r2])
            }),
            (Some(offset), None) => self.slice_matches_chunks(a, offset, b, bundles),
            (None, Some(offset)) => self.slice_matches_chunks(b, offset, a, bundles),
        }
        .map_err(named)
    }

    /// Whether bundled file `bundled` (at `offset` of its bundle) holds the content of
    /// `chunked`, a file stored as chunks of its own.
    fn slice_matches_chunks(
        &self,
        bundled: &Node,
        offset: u64,
        chunked: &Node,
        bundles: &BundleCache,
    ) -> crate::Result<bool> {
        let (bundle, range) = self.bundled_slice(bundled, offset, bundles)?;
        // Reading from memory cannot fail.
        self.chunks_match(&bundle[range], chunked)
            .map_err(|e| Error::new(ErrorKind::Io, e.to_string()))
    }

    /// Whether `reader` yields exactly `node`'s content: it is cut into chunks as a
    /// backup would and each chunk's keyed id compared with the snapshot's list,
    /// stopping at the first difference; a bundled file's bytes are compared with its
    /// slice of its bundle (taken from `bundles`).
    ///
    /// # Errors
    /// [`Unchecked::Live`] for read errors of `reader`; [`Unchecked::Stored`] if a
    /// bundled file's bundle cannot be read.
    pub(crate) fn holds_content(
        &self,
        reader: impl Read,
        node: &Node,
        bundles: &BundleCache,
    ) -> std::result::Result<bool, Unchecked> {
        if let Some(offset) = node.bundle_offset {
            let (bundle, range) = self
                .bundled_slice(node, offset, bundles)
                .map_err(Unchecked::Stored)?;
            let mut live = Vec::with_capacity(range.len());
            reader
                .take(node.size.saturating_add(1))
                .read_to_end(&mut live)
                .map_err(Unchecked::Live)?;
            return Ok(live == bundle[range]);
        }
        self.chunks_match(reader, node).map_err(Unchecked::Live)
    }

    /// Whether `reader`, cut into chunks as a backup would, yields `node`'s chunk ids,
    /// stopping at the first difference.
    fn chunks_match(&self, reader: impl Read, node: &Node) -> io::Result<bool> {
        let mut ids = node.content.iter();
        for chunk in self.chunker.chunks(reader, node.size) {
            if ids.next() != Some(&self.repo.blob_id(&chunk?)) {
                return Ok(false);
            }
        }
        Ok(ids.next().is_none())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::testing::random_bytes;
    use crate::{BackupOptions, NoProgress};

    /// A bundled file's content is compared by its bytes: with another bundled file, and
    /// with a file stored as chunks of its own (a stream backup, or a tree written
    /// before bundling), whose chunks are compared by id; a difference of one byte
    /// counts.
    #[test]
    fn bundled_content_compares_by_bytes_with_bundled_and_chunked_files() {
        let (_dir, src) = crate::testing::source_dir();
        let data = random_bytes(30_000, 7);
        let mut other = data.clone();
        other[29_999] ^= 1;
        std::fs::write(src.join("a"), &data).unwrap();
        std::fs::write(src.join("b"), &data).unwrap();
        std::fs::write(src.join("c"), &other).unwrap();
        let (_, mut repo) = crate::testing::memory_repository();
        let options = BackupOptions::default();
        repo.backup(std::slice::from_ref(&src), &options, &NoProgress)
            .unwrap();
        let tree = crate::testing::latest_tree_of(&repo, &src);
        let node = |name: &[u8]| tree.find(name).unwrap().clone();
        let (a, b, c) = (node(b"a"), node(b"b"), node(b"c"));
        assert!(a.bundle_offset.is_some() && a.bundle_offset != b.bundle_offset);
        repo.backup_stream("s", &mut &data[..], &options, &NoProgress)
            .unwrap();
        let latest = repo.find_snapshot("latest").unwrap();
        let chunked = repo.node_in(&latest, Path::new("/s")).unwrap();
        assert!(chunked.bundle_offset.is_none());

        let cache = BundleCache::default();
        let same = |x: &Node, y: &Node| {
            repo.same_stored_content(x, y, Path::new("/x"), &cache)
                .unwrap()
        };
        assert!(same(&a, &b));
        assert!(!same(&a, &c));
        assert!(same(&a, &chunked) && same(&chunked, &a));
        assert!(!same(&c, &chunked));
        let mut shorter = c.clone();
        shorter.size -= 1;
        assert!(!same(&a, &shorter));
    }
}
