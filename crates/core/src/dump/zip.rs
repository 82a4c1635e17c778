//! Zip output, streamed (sizes follow each entry in a data descriptor, so nothing is
//! seeked back): deflate, ZIP64 for files near 4 GiB or larger, Unix permissions, the
//! modification time as local DOS time plus an extended-timestamp field in UTC.

use std::io::{self, Write};

use arca_repo::{Node, NodeKind};
use zip::write::{FullFileOptions, StreamWriter};
use zip::{CompressionMethod, DateTime};

use super::{Added, ArchiveWriter, write_error};
use crate::{Error, Repository, Result};

/// Files at least this large are written with ZIP64 sizes (deflate can grow
/// incompressible data slightly, so the switch comes before 4 GiB).
const ZIP64_FROM: u64 = 0xF000_0000;

/// The extended-timestamp extra field ("UT"): Unix modification time in UTC.
const EXTENDED_TIMESTAMP: u16 = 0x5455;

pub(crate) struct ZipWriter<'w> {
    zip: zip::ZipWriter<StreamWriter<&'w mut dyn Write>>,
}

impl<'w> ZipWriter<'w> {
    pub(crate) fn new(out: &'w mut dyn Write) -> Self {
        Self {
            zip: zip::ZipWriter::new_stream(out),
        }
    }
}

/// The entry options for `node`: permissions and times.
fn options(node: &Node) -> FullFileOptions<'static, 'static> {
    let local = jiff::Timestamp::new(node.mtime.secs, 0)
        .ok()
        .map(|t| t.to_zoned(jiff::tz::TimeZone::system()).datetime());
    let dos = local
        .and_then(|dt| DateTime::try_from(dt).ok())
        .unwrap_or_default();
    let mut opts = FullFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .unix_permissions(node.mode & 0o777)
        .last_modified_time(dos)
        .large_file(node.kind == NodeKind::File && node.size >= ZIP64_FROM);
    if let Ok(secs) = i32::try_from(node.mtime.secs)
        && secs >= 0
    {
        let mut field = vec![1u8];
        field.extend_from_slice(&secs.to_le_bytes());
        // The field is well-formed; were it refused, the DOS time would still be there.
        let _ = opts.add_extra_field(EXTENDED_TIMESTAMP, field, false);
    }
    opts
}

impl ArchiveWriter for ZipWriter<'_> {
    fn add(
        &mut self,
        repo: &Repository,
        name: &[u8],
        node: &Node,
        _first_name: Option<&[u8]>,
    ) -> Result<Added> {
        let (text, renamed) = match std::str::from_utf8(name) {
            Ok(s) => (s.to_owned(), None),
            Err(_) => {
                let lossy = String::from_utf8_lossy(name).into_owned();
                let why = format!("the name is not UTF-8; stored as {lossy:?}");
                (lossy, Some(why))
            }
        };
        let opts = options(node);
        let bytes = match node.kind {
            NodeKind::Dir => {
                self.zip.add_directory(text, opts).map_err(write_error)?;
                0
            }
            NodeKind::Symlink => {
                let target = String::from_utf8_lossy(&node.target).into_owned();
                self.zip
                    .add_symlink(text, target, opts)
                    .map_err(write_error)?;
                0
            }
            NodeKind::File => {
                self.zip.start_file(text, opts).map_err(write_error)?;
                let mut reader = repo.file_reader(node);
                io::copy(&mut reader, &mut self.zip).map_err(|e| {
                    if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
                        Error::from_io(e, &format!("/{}", String::from_utf8_lossy(name)))
                    } else {
                        write_error(e)
                    }
                })?
            }
            _ => {
                return Ok(Added::Approximated(
                    None,
                    "devices, FIFOs and sockets cannot be stored in a zip archive; left out"
                        .to_owned(),
                ));
            }
        };
        Ok(match renamed {
            Some(why) => Added::Approximated(Some(bytes), why),
            None => Added::Written(bytes),
        })
    }

    fn finish(self: Box<Self>) -> Result<()> {
        let mut out = self.zip.finish().map_err(write_error)?;
        out.flush().map_err(write_error)
    }
}
