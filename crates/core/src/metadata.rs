//! File metadata: reading it into tree nodes at backup, applying it at restore.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use arca_repo::{Node, NodeKind, Timestamp, Xattr};
use filetime::FileTime;

/// Caches uid/gid -> name lookups for one operation.
#[derive(Debug, Default)]
pub(crate) struct Owners {
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
}

impl Owners {
    fn user(&mut self, uid: u32) -> String {
        self.users
            .entry(uid)
            .or_insert_with(|| {
                nix::unistd::User::from_uid(uid.into())
                    .ok()
                    .flatten()
                    .map(|u| u.name)
                    .unwrap_or_default()
            })
            .clone()
    }

    fn group(&mut self, gid: u32) -> String {
        self.groups
            .entry(gid)
            .or_insert_with(|| {
                nix::unistd::Group::from_gid(gid.into())
                    .ok()
                    .flatten()
                    .map(|g| g.name)
                    .unwrap_or_default()
            })
            .clone()
    }
}

pub(crate) fn kind_of(meta: &Metadata) -> NodeKind {
    let t = meta.file_type();
    if t.is_dir() {
        NodeKind::Dir
    } else if t.is_symlink() {
        NodeKind::Symlink
    } else if t.is_block_device() {
        NodeKind::BlockDevice
    } else if t.is_char_device() {
        NodeKind::CharDevice
    } else if t.is_fifo() {
        NodeKind::Fifo
    } else if t.is_socket() {
        NodeKind::Socket
    } else {
        NodeKind::File
    }
}

fn ts(secs: i64, nanos: i64) -> Timestamp {
    Timestamp {
        secs,
        nanos: nanos.clamp(0, 999_999_999) as u32,
    }
}

/// A node for `name` from `lstat` metadata. Content, subtree, symlink target and
/// extended attributes are filled in by the caller.
pub(crate) fn node_from_metadata(name: &[u8], meta: &Metadata, owners: &mut Owners) -> Node {
    let mut n = Node::new(name.to_vec(), kind_of(meta));
    n.mode = meta.mode() & 0o7777;
    n.uid = meta.uid();
    n.gid = meta.gid();
    n.user = owners.user(n.uid);
    n.group = owners.group(n.gid);
    n.size = if n.kind == NodeKind::File {
        meta.size()
    } else {
        0
    };
    n.mtime = ts(meta.mtime(), meta.mtime_nsec());
    n.atime = ts(meta.atime(), meta.atime_nsec());
    n.ctime = ts(meta.ctime(), meta.ctime_nsec());
    n.inode = meta.ino();
    n.device = meta.dev();
    n.links = meta.nlink();
    if matches!(n.kind, NodeKind::BlockDevice | NodeKind::CharDevice) {
        n.rdev = meta.rdev();
    }
    if n.kind == NodeKind::Symlink {
        // Reading a link (to back it up) sets its access time, which would make every
        // later snapshot differ; a symlink's access time is recorded as its mtime.
        n.atime = n.mtime;
    }
    n
}

/// The names in directory `path`, unsorted. The directory is opened with `O_NOATIME`
/// where permitted (as owner or root), so backing it up does not change its access time
/// and with it the next snapshot's tree; and with `O_NOFOLLOW`, so a directory swapped
/// for a symlink since it was examined is not followed.
pub(crate) fn read_dir_names(path: &Path) -> io::Result<Vec<Vec<u8>>> {
    use nix::fcntl::OFlag;
    let base = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut dir =
        match nix::dir::Dir::open(path, base | OFlag::O_NOATIME, nix::sys::stat::Mode::empty()) {
            Err(nix::errno::Errno::EPERM) => {
                nix::dir::Dir::open(path, base, nix::sys::stat::Mode::empty())
            }
            other => other,
        }
        .map_err(io::Error::from)?;
    let mut names = Vec::new();
    for entry in dir.iter() {
        let entry = entry.map_err(io::Error::from)?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    }
    Ok(names)
}

/// The extended attributes of `path` (not following symlinks), sorted by name.
/// A filesystem without xattr support yields none.
pub(crate) fn read_xattrs(path: &Path) -> io::Result<Vec<Xattr>> {
    let names = match xattr::list(path) {
        Ok(names) => names,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for name in names {
        if let Some(value) = xattr::get(path, &name)? {
            out.push(Xattr {
                name: name.as_bytes().to_vec(),
                value,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Whether `node` still describes the file `meta` describes, so its content can be
/// reused without reading: same kind, size, modification and change time, and inode.
pub(crate) fn unchanged(previous: &Node, current: &Node) -> bool {
    previous.kind == NodeKind::File
        && current.kind == NodeKind::File
        && previous.size == current.size
        && previous.mtime == current.mtime
        && previous.ctime == current.ctime
        && previous.inode == current.inode
}

fn filetime(t: Timestamp) -> FileTime {
    FileTime::from_unix_time(t.secs, t.nanos)
}

/// What [`apply`] could not restore.
#[derive(Debug, Default)]
pub(crate) struct ApplyWarnings(pub Vec<String>);

/// Applies ownership, mode, extended attributes and times of `node` to `path`, in the
/// order that keeps each step from undoing another: owner (which clears setuid bits),
/// then mode, then xattrs, then times (which every other change would touch).
///
/// Ownership is restored when running as root, or when it is the current user's and
/// group's own; failures to restore ownership or xattrs are warnings, failures to set
/// mode or times are errors.
pub(crate) fn apply(
    path: &Path,
    node: &Node,
    is_root: bool,
    warnings: &mut ApplyWarnings,
) -> io::Result<()> {
    let is_link = node.kind == NodeKind::Symlink;
    if is_root {
        if let Err(e) = std::os::unix::fs::lchown(path, Some(node.uid), Some(node.gid)) {
            warnings
                .0
                .push(format!("cannot set owner {}:{}: {e}", node.uid, node.gid));
        }
    } else if node.gid != nix::unistd::getegid().as_raw() {
        // An unprivileged user may give a file to any group they belong to.
        let _ = std::os::unix::fs::lchown(path, None, Some(node.gid));
    }
    if !is_link {
        fs::set_permissions(path, fs::Permissions::from_mode(node.mode & 0o7777))?;
    }
    for x in &node.xattrs {
        if let Err(e) = xattr::set(path, OsStr::from_bytes(&x.name), &x.value) {
            warnings.0.push(format!(
                "cannot set extended attribute {}: {e}",
                String::from_utf8_lossy(&x.name)
            ));
        }
    }
    // utimensat(AT_SYMLINK_NOFOLLOW) for every type: it never opens the path, so it
    // cannot block on a FIFO, needs no read permission, and never follows a link.
    filetime::set_symlink_file_times(path, filetime(node.atime), filetime(node.mtime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_capture_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        fs::write(&file, b"hello").unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o4751)).unwrap();
        filetime::set_file_times(
            &file,
            FileTime::from_unix_time(1_600_000_000, 5),
            FileTime::from_unix_time(1_500_000_000, 123_456_789),
        )
        .unwrap();
        let meta = fs::symlink_metadata(&file).unwrap();
        let n = node_from_metadata(b"f", &meta, &mut Owners::default());
        assert_eq!(n.kind, NodeKind::File);
        assert_eq!(n.mode, 0o4751);
        assert_eq!(n.size, 5);
        assert_eq!(
            n.mtime,
            Timestamp {
                secs: 1_500_000_000,
                nanos: 123_456_789
            }
        );
        assert_eq!(
            n.atime,
            Timestamp {
                secs: 1_600_000_000,
                nanos: 5
            }
        );
        assert_eq!(n.uid, meta.uid());
        assert_eq!(n.inode, meta.ino());

        std::os::unix::fs::symlink("f", dir.path().join("l")).unwrap();
        let l = node_from_metadata(
            b"l",
            &fs::symlink_metadata(dir.path().join("l")).unwrap(),
            &mut Owners::default(),
        );
        assert_eq!(l.kind, NodeKind::Symlink);
        assert_eq!(l.size, 0);
    }

    #[test]
    fn symlink_atime_is_its_mtime() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("target", dir.path().join("l")).unwrap();
        let meta = fs::symlink_metadata(dir.path().join("l")).unwrap();
        let l = node_from_metadata(b"l", &meta, &mut Owners::default());
        assert_eq!(l.kind, NodeKind::Symlink);
        assert_eq!(l.size, 0);
        assert_eq!(l.atime, l.mtime);
    }

    #[test]
    fn listing_a_directory_keeps_its_access_time() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("d");
        fs::create_dir(&sub).unwrap();
        fs::write(sub.join("x"), b"").unwrap();
        // An access time older than the mtime: relatime would update it on a plain read.
        filetime::set_file_atime(&sub, FileTime::from_unix_time(1_000_000_000, 0)).unwrap();
        let names = read_dir_names(&sub).unwrap();
        assert_eq!(names, vec![b"x".to_vec()]);
        assert_eq!(fs::metadata(&sub).unwrap().atime(), 1_000_000_000);
        assert!(read_dir_names(&dir.path().join("missing")).is_err());
        std::os::unix::fs::symlink(&sub, dir.path().join("link")).unwrap();
        assert!(
            read_dir_names(&dir.path().join("link")).is_err(),
            "a symlink must not be followed"
        );
    }

    #[test]
    fn apply_restores_mode_and_times() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        fs::write(&file, b"x").unwrap();
        let mut node = Node::new("f", NodeKind::File);
        node.mode = 0o640;
        node.uid = nix::unistd::geteuid().as_raw();
        node.gid = nix::unistd::getegid().as_raw();
        node.mtime = Timestamp {
            secs: 1_234_567_890,
            nanos: 987_654_321,
        };
        node.atime = Timestamp {
            secs: 1_234_567_000,
            nanos: 1,
        };
        let mut w = ApplyWarnings::default();
        apply(&file, &node, nix::unistd::geteuid().is_root(), &mut w).unwrap();
        let meta = fs::metadata(&file).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o640);
        assert_eq!(
            (meta.mtime(), meta.mtime_nsec()),
            (1_234_567_890, 987_654_321)
        );
        assert_eq!((meta.atime(), meta.atime_nsec()), (1_234_567_000, 1));
        assert!(w.0.is_empty(), "{:?}", w.0);
    }
}
