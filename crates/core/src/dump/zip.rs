//! Zip output, streamed (sizes follow each entry in a data descriptor, so nothing is
//! seeked back): deflate, ZIP64 for files near 4 GiB or larger, Unix permissions, the
//! modification time as local DOS time plus an extended-timestamp field in UTC.

use std::collections::HashSet;
use std::io::{self, Write};

use arca_repo::{Node, NodeKind};
use zip::write::{FullFileOptions, StreamWriter};
use zip::{CompressionMethod, DateTime};

use super::{Added, ArchiveWriter};
use crate::{Error, ErrorKind, FileReader, Result};

/// Files at least this large are written with ZIP64 sizes (deflate can grow
/// incompressible data slightly, so the switch comes before 4 GiB).
const ZIP64_FROM: u64 = 0xF000_0000;

/// The extended-timestamp extra field ("UT"): Unix modification time in UTC.
const EXTENDED_TIMESTAMP: u16 = 0x5455;

pub(crate) struct ZipWriter<'w> {
    zip: zip::ZipWriter<StreamWriter<&'w mut dyn Write>>,
    /// Entry names used so far (zip refuses duplicates).
    names: HashSet<String>,
}

impl<'w> ZipWriter<'w> {
    pub(crate) fn new(out: &'w mut dyn Write) -> Self {
        Self {
            zip: zip::ZipWriter::new_stream(out),
            names: HashSet::new(),
        }
    }

    /// A unique UTF-8 entry name for `name`, and why it differs if it does: bytes that
    /// are not UTF-8 become `%XX`; a name taken already gets a `~N` suffix.
    fn entry_name(&mut self, name: &[u8]) -> (String, Option<String>) {
        let mut text = String::new();
        let mut rest = name;
        while !rest.is_empty() {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    text.push_str(s);
                    break;
                }
                Err(e) => {
                    let (valid, bad) = rest.split_at(e.valid_up_to());
                    text.push_str(std::str::from_utf8(valid).unwrap_or_default());
                    let n = e.error_len().unwrap_or(bad.len());
                    for b in &bad[..n] {
                        text.push_str(&format!("%{b:02X}"));
                    }
                    rest = &bad[n..];
                }
            }
        }
        let mut why =
            (text.as_bytes() != name).then(|| format!("the name is not UTF-8; stored as {text:?}"));
        if self.names.contains(&text) {
            let unique = (1..)
                .map(|i| format!("{text}~{i}"))
                .find(|n| !self.names.contains(n))
                .unwrap_or_default();
            why = Some(format!(
                "{:?} is taken in the archive; stored as {unique:?}",
                text
            ));
            text = unique;
        }
        self.names.insert(text.clone());
        (text, why)
    }
}

/// The entry options for `node` (permissions and times), and whether its modification
/// time could be recorded.
fn options(node: &Node) -> (FullFileOptions<'static, 'static>, bool) {
    let local = jiff::Timestamp::new(node.mtime.secs, 0)
        .ok()
        .map(|t| t.to_zoned(jiff::tz::TimeZone::system()).datetime());
    let dos = local.and_then(|dt| DateTime::try_from(dt).ok());
    let mut recorded = dos.is_some();
    let dos = dos.unwrap_or_default();
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
        recorded |= opts
            .add_extra_field(EXTENDED_TIMESTAMP, field, false)
            .is_ok();
    }
    (opts, recorded)
}

impl ArchiveWriter for ZipWriter<'_> {
    fn add(
        &mut self,
        name: &[u8],
        node: &Node,
        _first_name: Option<&[u8]>,
        mut content: FileReader<'_>,
    ) -> Result<Added> {
        if !matches!(
            node.kind,
            NodeKind::Dir | NodeKind::Symlink | NodeKind::File
        ) {
            return Ok(Added::Approximated(
                None,
                "devices, FIFOs and sockets cannot be stored in a zip archive; left out".to_owned(),
            ));
        }
        let (text, mut why) = self.entry_name(name);
        let failed = |e: &dyn std::fmt::Display| {
            Error::new(
                ErrorKind::Io,
                format!(
                    "cannot add /{} to the zip archive: {e}",
                    String::from_utf8_lossy(name)
                ),
            )
        };
        let (opts, time_recorded) = options(node);
        let bytes = match node.kind {
            NodeKind::Dir => {
                self.zip.add_directory(text, opts).map_err(|e| failed(&e))?;
                0
            }
            NodeKind::Symlink => {
                let target = String::from_utf8_lossy(&node.target).into_owned();
                self.zip
                    .add_symlink(text, target, opts)
                    .map_err(|e| failed(&e))?;
                0
            }
            _ => {
                self.zip.start_file(text, opts).map_err(|e| failed(&e))?;
                io::copy(&mut content, &mut self.zip).map_err(|e| {
                    if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
                        Error::from_io(e, &format!("/{}", String::from_utf8_lossy(name)))
                    } else {
                        failed(&e)
                    }
                })?
            }
        };
        if !time_recorded && why.is_none() {
            why = Some("zip cannot record its modification time; stored as 1980-01-01".into());
        }
        Ok(match why {
            Some(why) => Added::Approximated(Some(bytes), why),
            None => Added::Written(bytes),
        })
    }

    fn finish(self: Box<Self>) -> Result<()> {
        let mut out = self.zip.finish().map_err(super::write_error)?;
        out.flush().map_err(super::write_error)
    }
}
