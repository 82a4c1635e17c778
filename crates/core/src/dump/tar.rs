//! Tar output: GNU headers (long names and link targets, large sizes and ids) with PAX
//! records for what a header cannot hold: sub-second times, access times and extended
//! attributes (`SCHILY.xattr.NAME`, which GNU tar and bsdtar restore with `--xattrs`).

use std::io::{self, Write};

use arca_repo::{Node, NodeKind};
use tar::{Builder, EntryType, Header};

use super::{Added, ArchiveWriter, as_path, write_error};
use crate::{Error, FileReader, Result};

pub(crate) struct TarWriter<'w> {
    builder: Builder<&'w mut dyn Write>,
}

impl<'w> TarWriter<'w> {
    pub(crate) fn new(out: &'w mut dyn Write) -> Self {
        Self {
            builder: Builder::new(out),
        }
    }
}

/// An error from appending `name`: the library error inside it if reading the content
/// failed, else a write error.
fn append_error(e: io::Error, name: &[u8]) -> Error {
    if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
        Error::from_io(e, &format!("/{}", String::from_utf8_lossy(name)))
    } else {
        write_error(e)
    }
}

/// PAX records for what the GNU header cannot hold, and what could not be carried.
fn pax_records(node: &Node) -> (Vec<(String, Vec<u8>)>, Option<String>) {
    let mut records = Vec::new();
    let mut lost = Vec::new();
    // The header holds names of up to 32 bytes.
    if node.user.len() > 32 {
        records.push(("uname".to_owned(), node.user.as_bytes().to_vec()));
    }
    if node.group.len() > 32 {
        records.push(("gname".to_owned(), node.group.as_bytes().to_vec()));
    }
    if node.mtime.nanos != 0 || node.mtime.secs < 0 {
        records.push((
            "mtime".to_owned(),
            pax_time(node.mtime.secs, node.mtime.nanos).into_bytes(),
        ));
    }
    if node.kind == NodeKind::File {
        records.push((
            "atime".to_owned(),
            pax_time(node.atime.secs, node.atime.nanos).into_bytes(),
        ));
    }
    for x in &node.xattrs {
        // A PAX keyword is text; a name that is not cannot be carried.
        match std::str::from_utf8(&x.name) {
            Ok(name) if !name.contains(['=', '\n']) => {
                records.push((format!("SCHILY.xattr.{name}"), x.value.clone()));
            }
            _ => lost.push(String::from_utf8_lossy(&x.name).into_owned()),
        }
    }
    let lost = (!lost.is_empty()).then(|| {
        format!(
            "extended attributes whose names tar cannot hold were left out: {}",
            lost.join(", ")
        )
    });
    (records, lost)
}

/// A PAX time: seconds with a decimal fraction, e.g. `1700000000.25` or `-1.5`.
fn pax_time(secs: i64, nanos: u32) -> String {
    if nanos == 0 {
        return secs.to_string();
    }
    // Negative times count the fraction down from the whole seconds.
    let (whole, frac) = if secs < 0 {
        (secs + 1, 1_000_000_000 - nanos)
    } else {
        (secs, nanos)
    };
    let sign = if secs < 0 && whole == 0 { "-" } else { "" };
    let frac = format!("{frac:09}");
    format!("{sign}{whole}.{}", frac.trim_end_matches('0'))
}

impl ArchiveWriter for TarWriter<'_> {
    fn add(
        &mut self,
        name: &[u8],
        node: &Node,
        first_name: Option<&[u8]>,
        content: FileReader<'_>,
    ) -> Result<Added> {
        let entry_type = match node.kind {
            NodeKind::File if first_name.is_some() => EntryType::Link,
            NodeKind::File => EntryType::Regular,
            NodeKind::Dir => EntryType::Directory,
            NodeKind::Symlink => EntryType::Symlink,
            NodeKind::CharDevice => EntryType::Char,
            NodeKind::BlockDevice => EntryType::Block,
            NodeKind::Fifo => EntryType::Fifo,
            _ => {
                return Ok(Added::Approximated(
                    None,
                    "sockets cannot be stored in a tar archive; left out".to_owned(),
                ));
            }
        };
        let mut h = Header::new_gnu();
        h.set_entry_type(entry_type);
        h.set_mode(node.mode & 0o7777);
        h.set_uid(u64::from(node.uid));
        h.set_gid(u64::from(node.gid));
        h.set_mtime(u64::try_from(node.mtime.secs).unwrap_or(0));
        // Names longer than the header's 32 bytes are left out; the ids remain.
        let _ = h.set_username(&node.user);
        let _ = h.set_groupname(&node.group);
        if matches!(node.kind, NodeKind::CharDevice | NodeKind::BlockDevice) {
            let (major, minor) = (libc::major(node.rdev), libc::minor(node.rdev));
            h.set_device_major(major).map_err(write_error)?;
            h.set_device_minor(minor).map_err(write_error)?;
        }
        let (records, lost) = pax_records(node);
        if !records.is_empty() {
            self.builder
                .append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .map_err(write_error)?;
        }
        let path = as_path(name);
        let bytes = match (node.kind, first_name) {
            (NodeKind::File, Some(first)) => {
                h.set_size(0);
                self.builder
                    .append_link(&mut h, path, as_path(first))
                    .map_err(|e| append_error(e, name))?;
                0
            }
            (NodeKind::File, None) => {
                h.set_size(node.size);
                self.builder
                    .append_data(&mut h, path, content)
                    .map_err(|e| append_error(e, name))?;
                node.size
            }
            (NodeKind::Symlink, _) => {
                h.set_size(0);
                self.builder
                    .append_link(&mut h, path, as_path(&node.target))
                    .map_err(|e| append_error(e, name))?;
                0
            }
            _ => {
                h.set_size(0);
                self.builder
                    .append_data(&mut h, path, io::empty())
                    .map_err(|e| append_error(e, name))?;
                0
            }
        };
        Ok(match lost {
            Some(why) => Added::Approximated(Some(bytes), why),
            None => Added::Written(bytes),
        })
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        self.builder.finish().map_err(write_error)
    }
}

#[cfg(test)]
mod tests {
    use super::pax_time;

    #[test]
    fn pax_times_are_decimal_seconds() {
        assert_eq!(pax_time(1_700_000_000, 0), "1700000000");
        assert_eq!(pax_time(1_700_000_000, 250_000_000), "1700000000.25");
        assert_eq!(pax_time(5, 1), "5.000000001");
        // -1.5 s is stored as secs -2, nanos 500_000_000.
        assert_eq!(pax_time(-2, 500_000_000), "-1.5");
        // -0.25 s is secs -1, nanos 750_000_000.
        assert_eq!(pax_time(-1, 750_000_000), "-0.25");
        assert_eq!(pax_time(-3, 0), "-3");
    }
}
