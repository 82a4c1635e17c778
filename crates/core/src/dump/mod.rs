//! `dump`: one file's content, or a directory as a tar or zip archive, written to any
//! writer. The archives are the emergency exit: standard tools unpack them without arca.
//!
//! Entries are named by their path in the snapshot without the leading `/` (as `tar`
//! names what it archives), directories before their contents. Every byte comes from
//! authenticated blobs; an unreadable blob stops the dump with an error naming the file
//! (an archive is never silently padded or truncated).

mod tar;
mod zip;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use arca_repo::{Node, NodeKind};

use crate::bundle_cache::BundleCache;
use crate::content::FileReader;
use crate::progress::CancelToken;
use crate::repository::SnapshotInfo;
use crate::{Error, ErrorKind, Repository, Result};

/// The archive formats `dump` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ArchiveFormat {
    /// POSIX tar with GNU long names and PAX records for extended attributes and
    /// sub-second times: hard links, symlinks, devices and FIFOs are kept.
    Tar,
    /// Zip (deflate, ZIP64 for large files) with Unix modes and UTC modification times:
    /// symlinks are kept, hard links become copies; devices, FIFOs and sockets cannot be
    /// represented and are left out with a warning.
    Zip,
}

impl std::str::FromStr for ArchiveFormat {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "tar" => Ok(Self::Tar),
            "zip" => Ok(Self::Zip),
            other => Err(Error::invalid(format!(
                "unknown archive format {other:?}: use tar or zip"
            ))),
        }
    }
}

/// What an archive dump wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DumpSummary {
    /// Entries written (files, directories, links, special files).
    pub entries: u64,
    /// Regular files among them.
    pub files: u64,
    /// Bytes of file content written (before archive framing and compression).
    pub bytes: u64,
    /// Entries the format could not hold, or held only approximately, with why.
    pub warnings: Vec<String>,
}

/// What an archive writer did with one entry.
pub(crate) enum Added {
    /// Written; for files, with this many content bytes.
    Written(u64),
    /// Left out or changed, with why.
    Approximated(Option<u64>, String),
}

/// One archive format's writer.
pub(crate) trait ArchiveWriter {
    /// Adds `node` under archive name `name` (no leading `/`). `first_name` is the
    /// archive name of an earlier name of the same hard-linked file, if any.
    /// `content` reads a file's content (nothing for other nodes).
    fn add(
        &mut self,
        name: &[u8],
        node: &Node,
        first_name: Option<&[u8]>,
        content: FileReader<'_>,
    ) -> Result<Added>;

    /// Writes the archive's trailer.
    fn finish(self: Box<Self>) -> Result<()>;
}

impl Repository {
    /// Writes the content of the file at `path` in `snapshot` to `out` and returns its
    /// length.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] if there is no such path; `InvalidInput` if it is not a
    /// regular file (a directory needs [`Repository::dump_archive`]); `Corrupt` for
    /// missing or damaged data; `Io` if `out` fails; `Interrupted` if `cancel` fires.
    pub fn dump(
        &self,
        snapshot: &SnapshotInfo,
        path: &Path,
        out: &mut dyn Write,
        cancel: &CancelToken,
    ) -> Result<u64> {
        if crate::browse::is_root(path)? {
            return Err(Error::invalid(
                "/ is the whole snapshot: dump it as an archive (--archive tar or zip)",
            ));
        }
        let node = self.node_in(snapshot, path)?;
        match node.kind {
            NodeKind::File => {}
            NodeKind::Dir => {
                return Err(Error::invalid(format!(
                    "{} is a directory: dump it as an archive (--archive tar or zip)",
                    path.display()
                )));
            }
            NodeKind::Symlink => {
                return Err(Error::invalid(format!(
                    "{} is a symbolic link to {}, not a file",
                    path.display(),
                    String::from_utf8_lossy(&node.target)
                )));
            }
            _ => {
                return Err(Error::invalid(format!(
                    "{} is not a regular file",
                    path.display()
                )));
            }
        }
        copy_content(self, &node, out, path, cancel)
    }

    /// Writes `path` in `snapshot` (a directory with everything below it, or a single
    /// entry; `/` for the whole snapshot) to `out` as an archive of `format`.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] if there is no such path; `Corrupt` for missing or damaged
    /// trees or data; `Io` if `out` fails; `Interrupted` if `cancel` fires.
    pub fn dump_archive(
        &self,
        snapshot: &SnapshotInfo,
        path: &Path,
        format: ArchiveFormat,
        out: &mut dyn Write,
        cancel: &CancelToken,
    ) -> Result<DumpSummary> {
        let mut writer: Box<dyn ArchiveWriter + '_> = match format {
            ArchiveFormat::Tar => Box::new(tar::TarWriter::new(out)),
            ArchiveFormat::Zip => Box::new(zip::ZipWriter::new(out)),
        };
        // The bundles read last: a directory's small files share them.
        let bundles = BundleCache::default();
        let mut summary = DumpSummary::default();
        // Hard-linked files by (device, inode): the archive name of the first name met.
        let mut links: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
        self.walk(snapshot, path, &mut |entry_path, node| {
            if cancel.is_cancelled() {
                return Err(Error::interrupted());
            }
            let name = archive_name(entry_path);
            let linked = node.kind == NodeKind::File && node.links > 1;
            let first = if linked {
                links.get(&(node.device, node.inode)).cloned()
            } else {
                None
            };
            let content = self.file_reader_in(node, &bundles).cancel_on(cancel);
            let added = writer.add(&name, node, first.as_deref(), content)?;
            if linked && first.is_none() {
                links.insert((node.device, node.inode), name);
            }
            let bytes = match added {
                Added::Written(bytes) => Some(bytes),
                Added::Approximated(bytes, why) => {
                    summary
                        .warnings
                        .push(format!("{}: {why}", entry_path.display()));
                    bytes
                }
            };
            if let Some(bytes) = bytes {
                summary.entries += 1;
                if node.kind == NodeKind::File {
                    summary.files += 1;
                    summary.bytes += bytes;
                }
            }
            Ok(())
        })?;
        writer.finish()?;
        Ok(summary)
    }
}

/// A snapshot path as an archive entry name: without the leading `/`.
fn archive_name(path: &Path) -> Vec<u8> {
    let bytes = path.as_os_str().as_bytes();
    bytes.strip_prefix(b"/").unwrap_or(bytes).to_vec()
}

/// Copies `node`'s content to `out`, naming `path` in errors.
pub(crate) fn copy_content(
    repo: &Repository,
    node: &Node,
    out: &mut dyn Write,
    path: &Path,
    cancel: &CancelToken,
) -> Result<u64> {
    let mut reader = repo.file_reader(node).cancel_on(cancel);
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = match io::Read::read(&mut reader, &mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::from_io(e, &path.display().to_string())),
        };
        out.write_all(&buf[..n]).map_err(|e| {
            Error::new(ErrorKind::Io, format!("cannot write the output: {e}")).with_source(e)
        })?;
        total += n as u64;
    }
}

/// An error writing the archive itself.
pub(crate) fn write_error(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::new(ErrorKind::Io, format!("cannot write the archive: {e}")).with_source(e)
}

/// `name` as a path, for the tar crate.
pub(crate) fn as_path(name: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(name))
}
