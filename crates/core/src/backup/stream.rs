//! Backing up a stream (standard input, a command's output) as one file.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;

use arca_chunker::Chunker;
use arca_repo::{BlobId, BlobType, Index, Node, NodeKind, Repo, Timestamp, Tree, is_valid_name};
use crossbeam_channel::Sender;

use super::archiver::{Counts, Walked};
use super::reader::{Abort, BlobJob, queue_blob};
use super::saver::BlobSaver;
use crate::metadata::Owners;
use crate::progress::{BackupProgress, FileStatus};
use crate::{Error, ErrorKind, Result};

/// The components of a stream's file name (`db/dump.sql` -> `db`, `dump.sql`).
///
/// # Errors
/// `InvalidInput` for an empty name or a component that is `.`, `..` or has NUL.
pub(crate) fn name_parts(name: &str) -> Result<Vec<Vec<u8>>> {
    let parts: Vec<Vec<u8>> = name
        .split('/')
        .filter(|p| !p.is_empty())
        .map(|p| p.as_bytes().to_vec())
        .collect();
    if parts.is_empty() || !parts.iter().all(|p| is_valid_name(p)) {
        return Err(Error::invalid(format!(
            "invalid file name {name:?} for the stream: it needs at least one component, none of them . or .."
        )));
    }
    Ok(parts)
}

pub(crate) struct Stream<'a> {
    pub(crate) repo: &'a Repo,
    pub(crate) index: &'a Index,
    pub(crate) chunker: &'a Chunker,
    pub(crate) saver: &'a BlobSaver<'a>,
    pub(crate) blobs: Sender<BlobJob>,
    pub(crate) progress: &'a dyn BackupProgress,
    pub(crate) abort: &'a Abort,
    /// The time given to the file and its directories.
    pub(crate) now: Timestamp,
}

impl Stream<'_> {
    fn node(&self, name: &[u8], kind: NodeKind, owners: &mut Owners) -> Node {
        let mut n = Node::new(name.to_vec(), kind);
        n.mode = if kind == NodeKind::Dir { 0o700 } else { 0o600 };
        n.uid = nix::unistd::geteuid().as_raw();
        n.gid = nix::unistd::getegid().as_raw();
        n.user = owners.user(n.uid);
        n.group = owners.group(n.gid);
        n.mtime = self.now;
        n.atime = self.now;
        n.ctime = self.now;
        n.links = 1;
        n
    }

    fn count(
        &self,
        counts: &mut Counts,
        unresolved: &mut HashMap<(BlobType, BlobId), super::Refs>,
        t: BlobType,
        id: BlobId,
    ) {
        let known = &mut counts.stored_known;
        super::count_refs(self.index, known, unresolved, (t, id), super::Refs::WHOLE);
    }

    /// Stores `reader`'s content as the file `parts` (the last is the file's name, the
    /// others directories) and returns the snapshot's root tree.
    pub(crate) fn archive(self, parts: &[Vec<u8>], reader: &mut dyn Read) -> Result<Walked> {
        let (Some(file_name), dirs) = (parts.last(), &parts[..parts.len().saturating_sub(1)])
        else {
            return Err(Error::invalid("the stream needs a file name"));
        };
        let path: PathBuf = std::iter::once("/".to_owned())
            .chain(
                parts
                    .iter()
                    .map(|p| String::from_utf8_lossy(p).into_owned()),
            )
            .collect();
        let mut counts = Counts::default();
        let mut unresolved = HashMap::new();
        let mut content = Vec::new();
        for chunk in self.chunker.chunks(reader, 0) {
            if self.abort.should_stop() {
                return Err(self.abort.take_error());
            }
            let chunk = chunk.map_err(|e| {
                Error::new(
                    ErrorKind::Io,
                    format!("cannot read the input for {}: {e}", path.display()),
                )
                .with_source(e)
            })?;
            let id = self.repo.blob_id(&chunk);
            let len = chunk.len() as u64;
            queue_blob(self.saver, &self.blobs, BlobType::Data, id, chunk)
                .map_err(|_| self.abort.take_error())?;
            self.count(&mut counts, &mut unresolved, BlobType::Data, id);
            content.push(id);
            counts.bytes_read += len;
            self.progress.bytes_processed(len);
        }
        let mut owners = Owners::default();
        let mut file = self.node(file_name, NodeKind::File, &mut owners);
        file.size = counts.bytes_read;
        counts.bytes_total = file.size;
        counts.chunks_total = content.len() as u64;
        counts.files_new = 1;
        file.content = content;
        self.progress.file_done(&path, FileStatus::New, file.size);
        // Trees bottom-up: the file's directory first, the root last.
        let mut nodes = vec![file];
        for dir in dirs.iter().rev() {
            let id = self.save_tree(nodes, &mut counts, &mut unresolved)?;
            let mut d = self.node(dir, NodeKind::Dir, &mut owners);
            d.subtree = Some(id);
            nodes = vec![d];
            counts.dirs_new += 1;
        }
        let root = self.save_tree(nodes, &mut counts, &mut unresolved)?;
        Ok(Walked {
            root,
            counts,
            warnings: Vec::new(),
            unresolved,
            top: Vec::new(),
        })
    }

    fn save_tree(
        &self,
        nodes: Vec<Node>,
        counts: &mut Counts,
        unresolved: &mut HashMap<(BlobType, BlobId), super::Refs>,
    ) -> Result<BlobId> {
        let bytes = Tree::new(nodes)?.encode()?;
        let id = self.repo.blob_id(&bytes);
        queue_blob(self.saver, &self.blobs, BlobType::Tree, id, bytes.into())
            .map_err(|_| self.abort.take_error())?;
        self.count(counts, unresolved, BlobType::Tree, id);
        Ok(id)
    }
}
