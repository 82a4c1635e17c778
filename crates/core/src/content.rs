//! A file's content as the repository holds it: streaming it out blob by blob (each
//! authenticated as it is read), and telling whether a file on disk holds exactly it.

use std::io::{self, Read};

use arca_repo::{BlobId, Node};

use crate::progress::CancelToken;
use crate::{Error, ErrorKind, Repository};

/// Reads a file's content from the repository, one authenticated chunk at a time. Made
/// by [`Repository::file_reader`].
///
/// A read fails with an [`io::Error`] wrapping an [`Error`] (see [`Error::from_io`])
/// if a chunk is missing or damaged, or if the chunks do not add up to the node's size.
pub struct FileReader<'a> {
    repo: &'a Repository,
    ids: std::slice::Iter<'a, BlobId>,
    chunk: Vec<u8>,
    pos: usize,
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
        while self.pos == self.chunk.len() {
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
            self.chunk = self.repo.load_data_blob(id).map_err(io::Error::other)?;
            self.pos = 0;
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
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

impl Repository {
    /// A reader of `node`'s content (empty for anything but a regular file).
    pub fn file_reader<'a>(&'a self, node: &'a Node) -> FileReader<'a> {
        FileReader {
            repo: self,
            ids: node.content.iter(),
            chunk: Vec::new(),
            pos: 0,
            expected: if node.kind == arca_repo::NodeKind::File {
                node.size
            } else {
                0
            },
            delivered: 0,
            cancel: None,
        }
    }

    /// Whether `reader` yields exactly `node`'s content: it is cut into chunks as a
    /// backup would and each chunk's keyed id compared with the snapshot's list. Stops at
    /// the first difference.
    ///
    /// # Errors
    /// Read errors of `reader`.
    pub(crate) fn holds_content(&self, reader: impl Read, node: &Node) -> io::Result<bool> {
        let mut ids = node.content.iter();
        for chunk in self.chunker.chunks(reader, node.size) {
            if ids.next() != Some(&self.repo.blob_id(&chunk?)) {
                return Ok(false);
            }
        }
        Ok(ids.next().is_none())
    }
}
