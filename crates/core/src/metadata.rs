//! File metadata: reading it into tree nodes at backup, applying it at restore.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::sync::Mutex;

use arca_repo::{Node, NodeKind, Timestamp};
use nix::sys::stat::{FileStat, Mode, SFlag};
use xattr::FileExt;

use crate::dir_handle::{DirHandle, timespec};
use crate::sync::lock;

/// Caches uid/gid -> name lookups for one backup.
#[derive(Debug, Default)]
pub(crate) struct Owners {
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
}

impl Owners {
    pub(crate) fn user(&mut self, uid: u32) -> String {
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

    pub(crate) fn group(&mut self, gid: u32) -> String {
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

pub(crate) fn kind_of(st: &FileStat) -> NodeKind {
    match SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFDIR => NodeKind::Dir,
        SFlag::S_IFLNK => NodeKind::Symlink,
        SFlag::S_IFBLK => NodeKind::BlockDevice,
        SFlag::S_IFCHR => NodeKind::CharDevice,
        SFlag::S_IFIFO => NodeKind::Fifo,
        SFlag::S_IFSOCK => NodeKind::Socket,
        _ => NodeKind::File,
    }
}

fn ts(secs: i64, nanos: i64) -> Timestamp {
    Timestamp {
        secs,
        nanos: nanos.clamp(0, 999_999_999) as u32,
    }
}

/// A node for `name` from `lstat` data. Content, subtree, symlink target and extended
/// attributes are filled in by the caller.
pub(crate) fn node_from_stat(name: &[u8], st: &FileStat, owners: &mut Owners) -> Node {
    let mut n = Node::new(name.to_vec(), kind_of(st));
    n.mode = st.st_mode & 0o7777;
    n.uid = st.st_uid;
    n.gid = st.st_gid;
    n.user = owners.user(n.uid);
    n.group = owners.group(n.gid);
    n.size = if n.kind == NodeKind::File {
        st.st_size.max(0) as u64
    } else {
        0
    };
    n.mtime = ts(st.st_mtime, st.st_mtime_nsec);
    n.atime = ts(st.st_atime, st.st_atime_nsec);
    n.ctime = ts(st.st_ctime, st.st_ctime_nsec);
    n.inode = st.st_ino;
    n.device = st.st_dev;
    n.links = st.st_nlink;
    if matches!(n.kind, NodeKind::BlockDevice | NodeKind::CharDevice) {
        n.rdev = st.st_rdev;
    }
    if n.kind == NodeKind::Symlink {
        // Reading a link (to back it up) sets its access time, which would make every
        // later snapshot differ; a symlink's access time is recorded as its mtime.
        n.atime = n.mtime;
    }
    n
}

/// Whether `previous` and `current` are the same inode with no status change between
/// them (same kind, inode and change time): its extended attributes are those recorded.
pub(crate) fn same_inode_state(previous: &Node, current: &Node) -> bool {
    previous.kind == current.kind
        && previous.inode == current.inode
        && previous.ctime == current.ctime
}

/// Whether `previous` still describes the file `current` describes, so its content can
/// be reused without reading: same kind, size, modification and change time, and inode.
pub(crate) fn unchanged(previous: &Node, current: &Node) -> bool {
    current.kind == NodeKind::File
        && same_inode_state(previous, current)
        && previous.size == current.size
        && previous.mtime == current.mtime
}

/// The attributes in which `old` and `new` differ, by the names `diff` and `verify`
/// report (a contract of their JSON output): `type`, `content` (files whose chunk lists
/// differ, only if `content` is set), `size`, `mode`, `uid`, `gid`, `mtime`, `target`
/// (symlinks), `rdev` (devices) and `xattrs`. Access and change times, inode numbers
/// and link counts are not compared: they change without the file changing.
pub(crate) fn changed_attributes(old: &Node, new: &Node, content: bool) -> Vec<&'static str> {
    if old.kind != new.kind {
        return vec!["type"];
    }
    let mut out = Vec::new();
    let checks = [
        (
            "content",
            content
                && old.kind == NodeKind::File
                && (old.content != new.content || old.bundle_offset != new.bundle_offset),
        ),
        ("size", old.size != new.size),
        ("mode", old.mode != new.mode),
        ("uid", old.uid != new.uid),
        ("gid", old.gid != new.gid),
        ("mtime", old.mtime != new.mtime),
        ("target", old.target != new.target),
        ("rdev", old.rdev != new.rdev),
        ("xattrs", old.xattrs != new.xattrs),
    ];
    for (name, differs) in checks {
        if differs {
            out.push(name);
        }
    }
    out
}

/// How a restore sets owners, shared by its threads.
#[derive(Debug)]
pub(crate) struct OwnerPolicy {
    /// Set any owner (root); otherwise only groups the user belongs to are tried.
    is_root: bool,
    /// Use the recorded numeric ids, not the recorded names.
    numeric: bool,
    users: Mutex<HashMap<String, Option<u32>>>,
    groups: Mutex<HashMap<String, Option<u32>>>,
}

impl OwnerPolicy {
    pub(crate) fn new(numeric: bool) -> Self {
        Self {
            is_root: nix::unistd::geteuid().is_root(),
            numeric,
            users: Mutex::default(),
            groups: Mutex::default(),
        }
    }

    /// The ids to give `node`: by default the local ids of the recorded user and group
    /// names when those exist here (like tar and rsync), else the recorded ids.
    pub(crate) fn ids(&self, node: &Node) -> (u32, u32) {
        if self.numeric {
            return (node.uid, node.gid);
        }
        let uid = if node.user.is_empty() {
            None
        } else {
            *lock(&self.users)
                .entry(node.user.clone())
                .or_insert_with(|| {
                    nix::unistd::User::from_name(&node.user)
                        .ok()
                        .flatten()
                        .map(|u| u.uid.as_raw())
                })
        };
        let gid = if node.group.is_empty() {
            None
        } else {
            *lock(&self.groups)
                .entry(node.group.clone())
                .or_insert_with(|| {
                    nix::unistd::Group::from_name(&node.group)
                        .ok()
                        .flatten()
                        .map(|g| g.gid.as_raw())
                })
        };
        (uid.unwrap_or(node.uid), gid.unwrap_or(node.gid))
    }
}

/// What could not be restored exactly; the restore goes on.
#[derive(Debug, Default)]
pub(crate) struct ApplyWarnings(pub Vec<String>);

/// Where to apply metadata: an open regular file, or an entry in an open directory.
pub(crate) enum Target<'a> {
    File(&'a File),
    Entry(&'a DirHandle, &'a [u8]),
}

/// Applies ownership, mode, extended attributes and times of `node`, in the order that
/// keeps each step from undoing another: owner (which clears setuid/setgid bits and
/// file capabilities), then mode, then xattrs, then times (which every other change
/// would touch). Nothing is followed as a symlink.
///
/// Owners are set when running as root; otherwise only the group is tried (a user may
/// give a file to a group they belong to). Failures to set owners or xattrs are
/// warnings; failures to set mode or times are errors.
pub(crate) fn apply(
    target: Target<'_>,
    node: &Node,
    owners: &OwnerPolicy,
    warnings: &mut ApplyWarnings,
) -> io::Result<()> {
    let is_link = node.kind == NodeKind::Symlink;
    let (uid, gid) = owners.ids(node);
    let chown = |uid: Option<u32>, gid: Option<u32>| match target {
        Target::File(f) => nix::unistd::fchown(f, uid.map(Into::into), gid.map(Into::into))
            .map_err(io::Error::from),
        Target::Entry(dir, name) => dir.set_owner(name, uid, gid),
    };
    if owners.is_root {
        if let Err(e) = chown(Some(uid), Some(gid)) {
            warnings
                .0
                .push(format!("cannot set owner {uid}:{gid}: {e}"));
        }
    } else if gid != nix::unistd::getegid().as_raw() {
        let _ = chown(None, Some(gid));
    }
    if !is_link {
        match target {
            Target::File(f) => nix::sys::stat::fchmod(
                f,
                Mode::from_bits_truncate((node.mode & 0o7777) as libc::mode_t),
            )
            .map_err(io::Error::from)?,
            Target::Entry(dir, name) => dir.set_mode(name, node.mode & 0o7777)?,
        }
    }
    for x in &node.xattrs {
        let set = match target {
            Target::File(f) => f.set_xattr(OsStr::from_bytes(&x.name), &x.value),
            Target::Entry(dir, name) => dir.set_xattr(name, &x.name, &x.value),
        };
        if let Err(e) = set {
            warnings.0.push(format!(
                "cannot set extended attribute {}: {e}",
                String::from_utf8_lossy(&x.name)
            ));
        }
    }
    match target {
        Target::File(f) => {
            nix::sys::stat::futimens(f, &timespec(node.atime), &timespec(node.mtime))
                .map_err(io::Error::from)
        }
        Target::Entry(dir, name) => dir.set_times(name, node.atime, node.mtime),
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use filetime::FileTime;

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
        let handle = DirHandle::open_path(dir.path()).unwrap();
        let n = node_from_stat(b"f", &handle.lstat(b"f").unwrap(), &mut Owners::default());
        let meta = fs::symlink_metadata(&file).unwrap();
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
    }

    #[test]
    fn symlink_atime_is_its_mtime() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("target", dir.path().join("l")).unwrap();
        let handle = DirHandle::open_path(dir.path()).unwrap();
        let l = node_from_stat(b"l", &handle.lstat(b"l").unwrap(), &mut Owners::default());
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
        let handle = DirHandle::open_path(dir.path())
            .unwrap()
            .child(b"d")
            .unwrap();
        assert_eq!(handle.names().unwrap(), vec![b"x".to_vec()]);
        assert_eq!(fs::metadata(&sub).unwrap().atime(), 1_000_000_000);
    }

    #[test]
    fn apply_restores_mode_and_times_through_a_file_and_an_entry() {
        let dir = tempfile::tempdir().unwrap();
        let handle = DirHandle::open_path(dir.path()).unwrap();
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
        let owners = OwnerPolicy::new(true);
        let mut w = ApplyWarnings::default();
        let file = handle.create_file(b"f").unwrap();
        apply(Target::File(&file), &node, &owners, &mut w).unwrap();
        handle.mkdir(b"d", 0o700).unwrap();
        node.kind = NodeKind::Dir;
        node.mode = 0o751;
        apply(Target::Entry(&handle, b"d"), &node, &owners, &mut w).unwrap();
        for (name, mode) in [("f", 0o640), ("d", 0o751)] {
            let meta = fs::symlink_metadata(dir.path().join(name)).unwrap();
            assert_eq!(meta.mode() & 0o7777, mode, "{name}");
            assert_eq!(
                (meta.mtime(), meta.mtime_nsec()),
                (1_234_567_890, 987_654_321),
                "{name}"
            );
            assert_eq!(
                (meta.atime(), meta.atime_nsec()),
                (1_234_567_000, 1),
                "{name}"
            );
        }
        assert!(w.0.is_empty(), "{:?}", w.0);
    }

    #[test]
    fn owners_map_by_name_unless_numeric() {
        let mut node = Node::new("f", NodeKind::File);
        node.user = "root".into();
        node.group = "root".into();
        node.uid = 4242;
        node.gid = 4343;
        assert_eq!(OwnerPolicy::new(false).ids(&node), (0, 0));
        assert_eq!(OwnerPolicy::new(true).ids(&node), (4242, 4343));
        node.user = "no-such-user-arca".into();
        node.group = String::new();
        assert_eq!(OwnerPolicy::new(false).ids(&node), (4242, 4343));
    }
}
