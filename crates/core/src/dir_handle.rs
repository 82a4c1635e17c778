//! Directories held open as file descriptors. Backup and restore make every file-system
//! call relative to one (`openat`, `fstatat`, `mkdirat`, `utimensat`, ...), which gives
//! two guarantees path-based calls cannot:
//!
//! - paths of any length and depth work: the kernel resolves one name at a time, never a
//!   path longer than `PATH_MAX`;
//! - no name is followed as a symlink (`O_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`), so a restore
//!   cannot be steered outside its target by a symlink in the way, and a backup cannot
//!   be steered outside its sources by a directory swapped for a symlink.
//!
//! Extended attributes have no `*at` calls; they go through `/proc/self/fd/N/NAME`, which
//! the kernel resolves through the open descriptor, so they get the same guarantees.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use arca_repo::{Timestamp, Xattr};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{FileStat, Mode, SFlag, UtimensatFlags, fstatat, mkdirat, mknodat, utimensat};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchownat, linkat, symlinkat, unlinkat};

fn name_os(name: &[u8]) -> &OsStr {
    OsStr::from_bytes(name)
}

fn io_err(e: Errno) -> io::Error {
    io::Error::from(e)
}

/// Opens with `O_NOATIME` where the kernel permits it (as owner or root), so reading
/// does not change access times; falls back without it.
fn open_noatime(dir: impl AsFd + Copy, name: &OsStr, flags: OFlag) -> io::Result<OwnedFd> {
    match openat(dir, name, flags | OFlag::O_NOATIME, Mode::empty()) {
        Err(Errno::EPERM) => openat(dir, name, flags, Mode::empty()).map_err(io_err),
        other => other.map_err(io_err),
    }
}

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

/// An open directory; see the module documentation.
#[derive(Debug)]
pub(crate) struct DirHandle {
    fd: OwnedFd,
    /// Where it was opened: the path of messages, and of the walker's listings (which
    /// the archiver matches against its own); never used to reach the file system.
    path: PathBuf,
}

impl DirHandle {
    /// Opens a directory by path, following symlinks in it (used for roots the user
    /// named: backup sources' parents and restore targets).
    pub(crate) fn open_path(path: &Path) -> io::Result<Self> {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let fd = match openat(
            nix::fcntl::AT_FDCWD,
            path,
            flags | OFlag::O_NOATIME,
            Mode::empty(),
        ) {
            Err(Errno::EPERM) => openat(nix::fcntl::AT_FDCWD, path, flags, Mode::empty()),
            other => other,
        }
        .map_err(io_err)?;
        Ok(Self {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// Opens the subdirectory `name`, refusing a symlink.
    pub(crate) fn child(&self, name: &[u8]) -> io::Result<Self> {
        Ok(Self {
            fd: open_noatime(&self.fd, name_os(name), DIR_FLAGS)?,
            path: self.join(name),
        })
    }

    /// This directory's path, for messages.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The path of entry `name`, for messages.
    pub(crate) fn join(&self, name: &[u8]) -> PathBuf {
        self.path.join(name_os(name))
    }

    /// A short path that reaches entry `name` through this descriptor (for calls that
    /// have no `*at` form). The final name is not followed by `l*` calls.
    fn proc_path(&self, name: &[u8]) -> PathBuf {
        let mut p = PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()));
        p.push(name_os(name));
        p
    }

    /// The names in this directory, unsorted, without `.` and `..`. Read through a new
    /// descriptor (also `O_NOATIME`), so it can be called more than once, and straight
    /// with `getdents64` into one 32 KiB buffer: `opendir` would add an `fstat`, two
    /// `fcntl`s and a rewinding `lseek` per directory, a sixth of an unchanged backup's
    /// system calls.
    pub(crate) fn names(&self) -> io::Result<Vec<Vec<u8>>> {
        let fd = open_noatime(&self.fd, OsStr::new("."), DIR_FLAGS)?;
        let mut buf = Vec::with_capacity(32 * 1024);
        let mut dir = rustix::fs::RawDir::new(&fd, buf.spare_capacity_mut());
        let mut names = Vec::new();
        while let Some(entry) = dir.next() {
            let entry = entry.map_err(io::Error::from)?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push(name.to_vec());
            }
        }
        Ok(names)
    }

    /// `lstat` of entry `name`.
    pub(crate) fn lstat(&self, name: &[u8]) -> io::Result<FileStat> {
        fstatat(&self.fd, name_os(name), AtFlags::AT_SYMLINK_NOFOLLOW).map_err(io_err)
    }

    /// `stat` of this directory itself.
    pub(crate) fn stat(&self) -> io::Result<FileStat> {
        nix::sys::stat::fstat(&self.fd).map_err(io_err)
    }

    /// Opens regular file `name` for reading: not following a symlink, not blocking on a
    /// FIFO swapped in meanwhile, not updating its access time where permitted.
    pub(crate) fn open_read(&self, name: &[u8]) -> io::Result<File> {
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
        Ok(File::from(open_noatime(&self.fd, name_os(name), flags)?))
    }

    /// Opens existing regular file `name` for reading and writing, not following a symlink.
    pub(crate) fn open_rw(&self, name: &[u8]) -> io::Result<File> {
        let flags = OFlag::O_RDWR | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
        Ok(File::from(
            openat(&self.fd, name_os(name), flags, Mode::empty()).map_err(io_err)?,
        ))
    }

    /// The target of symlink `name`.
    pub(crate) fn read_link(&self, name: &[u8]) -> io::Result<Vec<u8>> {
        nix::fcntl::readlinkat(&self.fd, name_os(name))
            .map(OsString::into_vec)
            .map_err(io_err)
    }

    /// The extended attributes of entry `name` (not following a symlink), sorted by name.
    /// A file system without xattr support yields none.
    pub(crate) fn xattrs(&self, name: &[u8]) -> io::Result<Vec<Xattr>> {
        read_xattrs(&self.proc_path(name), false)
    }

    /// The extended attributes of this directory itself.
    pub(crate) fn own_xattrs(&self) -> io::Result<Vec<Xattr>> {
        // The descriptor's /proc entry is a link to the directory: follow it.
        read_xattrs(
            Path::new(&format!("/proc/self/fd/{}", self.fd.as_raw_fd())),
            true,
        )
    }

    /// Creates subdirectory `name` with `mode` (before umask).
    pub(crate) fn mkdir(&self, name: &[u8], mode: u32) -> io::Result<()> {
        mkdirat(
            &self.fd,
            name_os(name),
            Mode::from_bits_truncate(mode as libc::mode_t),
        )
        .map_err(io_err)
    }

    /// Creates regular file `name` (it must not exist), mode 0600 until its metadata is
    /// applied.
    pub(crate) fn create_file(&self, name: &[u8]) -> io::Result<File> {
        // Readable too: `restore --verify` reads the content back through it.
        let flags =
            OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        Ok(File::from(
            openat(
                &self.fd,
                name_os(name),
                flags,
                Mode::from_bits_truncate(0o600),
            )
            .map_err(io_err)?,
        ))
    }

    /// Removes non-directory entry `name`.
    pub(crate) fn unlink(&self, name: &[u8]) -> io::Result<()> {
        unlinkat(&self.fd, name_os(name), UnlinkatFlags::NoRemoveDir).map_err(io_err)
    }

    /// Removes entry `name`, recursively if it is a directory (without following
    /// symlinks anywhere below).
    pub(crate) fn remove_all(&self, name: &[u8]) -> io::Result<()> {
        let st = self.lstat(name)?;
        if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFDIR {
            let child = self.child(name)?;
            for n in child.names()? {
                child.remove_all(&n)?;
            }
            unlinkat(&self.fd, name_os(name), UnlinkatFlags::RemoveDir).map_err(io_err)
        } else {
            self.unlink(name)
        }
    }

    /// Creates symlink `name` pointing to `target`.
    pub(crate) fn symlink(&self, target: &[u8], name: &[u8]) -> io::Result<()> {
        symlinkat(name_os(target), &self.fd, name_os(name)).map_err(io_err)
    }

    /// Creates a device node, FIFO or socket `name`.
    pub(crate) fn mknod(&self, name: &[u8], kind: SFlag, mode: u32, rdev: u64) -> io::Result<()> {
        mknodat(
            &self.fd,
            name_os(name),
            kind,
            Mode::from_bits_truncate(mode as libc::mode_t),
            rdev as libc::dev_t,
        )
        .map_err(io_err)
    }

    /// Creates `name` as a hard link to `from_name` in `from`.
    pub(crate) fn hard_link(
        &self,
        from: &DirHandle,
        from_name: &[u8],
        name: &[u8],
    ) -> io::Result<()> {
        linkat(
            &from.fd,
            name_os(from_name),
            &self.fd,
            name_os(name),
            AtFlags::empty(),
        )
        .map_err(io_err)
    }

    /// Sets the owner of entry `name` (not following a symlink).
    pub(crate) fn set_owner(
        &self,
        name: &[u8],
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> io::Result<()> {
        fchownat(
            &self.fd,
            name_os(name),
            uid.map(Uid::from_raw),
            gid.map(Gid::from_raw),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(io_err)
    }

    /// Sets the mode of non-symlink entry `name` (refusing to follow a symlink).
    pub(crate) fn set_mode(&self, name: &[u8], mode: u32) -> io::Result<()> {
        nix::sys::stat::fchmodat(
            &self.fd,
            name_os(name),
            Mode::from_bits_truncate(mode as libc::mode_t),
            nix::sys::stat::FchmodatFlags::NoFollowSymlink,
        )
        .map_err(io_err)
    }

    /// Sets access and modification times of entry `name` (not following a symlink).
    pub(crate) fn set_times(
        &self,
        name: &[u8],
        atime: Timestamp,
        mtime: Timestamp,
    ) -> io::Result<()> {
        utimensat(
            &self.fd,
            name_os(name),
            &timespec(atime),
            &timespec(mtime),
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(io_err)
    }

    /// Sets an extended attribute of entry `name` (not following a symlink).
    pub(crate) fn set_xattr(&self, name: &[u8], key: &[u8], value: &[u8]) -> io::Result<()> {
        xattr::set(self.proc_path(name), name_os(key), value)
    }
}

fn read_xattrs(path: &Path, deref: bool) -> io::Result<Vec<Xattr>> {
    let names = match if deref {
        xattr::list_deref(path)
    } else {
        xattr::list(path)
    } {
        Ok(names) => names,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for key in names {
        let value = if deref {
            xattr::get_deref(path, &key)?
        } else {
            xattr::get(path, &key)?
        };
        if let Some(value) = value {
            out.push(Xattr {
                name: key.as_bytes().to_vec(),
                value,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

pub(crate) fn timespec(t: Timestamp) -> TimeSpec {
    TimeSpec::new(t.secs, i64::from(t.nanos))
}

/// Raises this process's soft limit on open files to its hard limit (at most 2^20), once:
/// walking a tree keeps one descriptor per directory level open, and trees can be
/// thousands of levels deep. Failure is ignored: the walk then reports `EMFILE` clearly.
pub(crate) fn raise_open_file_limit() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use nix::sys::resource::{Resource, getrlimit, setrlimit};
        if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
            let want = hard.min(1 << 20);
            if soft < want {
                let _ = setrlimit(Resource::RLIMIT_NOFILE, want, hard);
            }
        }
    });
}

/// The process's limit of open files (after [`raise_open_file_limit`]); 1024 if it
/// cannot be read.
pub(crate) fn open_file_limit() -> u64 {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(1024, |(soft, _)| soft)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn paths_longer_than_path_max_work() {
        let tmp = tempfile::tempdir().unwrap();
        let mut dir = DirHandle::open_path(tmp.path()).unwrap();
        let name = vec![b'd'; 200];
        for _ in 0..30 {
            dir.mkdir(&name, 0o755).unwrap();
            dir = dir.child(&name).unwrap();
        }
        assert!(dir.path().as_os_str().len() > 6000);
        let mut f = dir.create_file(b"deep.txt").unwrap();
        std::io::Write::write_all(&mut f, b"bottom").unwrap();
        drop(f);
        let st = dir.lstat(b"deep.txt").unwrap();
        assert_eq!(st.st_size, 6);
        dir.set_times(
            b"deep.txt",
            Timestamp { secs: 5, nanos: 6 },
            Timestamp { secs: 7, nanos: 8 },
        )
        .unwrap();
        assert_eq!(
            (
                dir.lstat(b"deep.txt").unwrap().st_mtime,
                dir.lstat(b"deep.txt").unwrap().st_mtime_nsec
            ),
            (7, 8)
        );
        assert_eq!(dir.names().unwrap(), vec![b"deep.txt".to_vec()]);
        let mut content = String::new();
        std::io::Read::read_to_string(&mut dir.open_read(b"deep.txt").unwrap(), &mut content)
            .unwrap();
        assert_eq!(content, "bottom");
        let top = DirHandle::open_path(tmp.path()).unwrap();
        top.remove_all(&name).unwrap();
        assert!(top.names().unwrap().is_empty());
    }

    #[test]
    fn symlinks_are_never_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("victim"), b"keep").unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir(&root).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        std::os::unix::fs::symlink(outside.join("victim"), root.join("filelink")).unwrap();
        let dir = DirHandle::open_path(&root).unwrap();
        assert!(dir.child(b"link").is_err(), "descended through a symlink");
        assert!(
            dir.open_read(b"filelink").is_err(),
            "opened through a symlink"
        );
        assert!(dir.open_rw(b"filelink").is_err());
        assert!(dir.set_mode(b"filelink", 0o777).is_err());
        dir.set_times(
            b"filelink",
            Timestamp { secs: 1, nanos: 0 },
            Timestamp { secs: 1, nanos: 0 },
        )
        .unwrap();
        let victim = std::fs::metadata(outside.join("victim")).unwrap();
        assert_ne!(victim.mtime(), 1, "times were set through the symlink");
        assert_eq!(victim.mode() & 0o777 & 0o777, victim.mode() & 0o777);
        assert_ne!(
            victim.mode() & 0o777,
            0o777,
            "mode was set through the symlink"
        );
        assert_eq!(
            dir.read_link(b"link").unwrap(),
            outside.as_os_str().as_bytes()
        );
        dir.remove_all(b"link").unwrap();
        assert!(
            outside.join("victim").exists(),
            "remove_all followed a symlink"
        );
    }

    #[test]
    fn hard_links_and_special_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DirHandle::open_path(tmp.path()).unwrap();
        drop(dir.create_file(b"a").unwrap());
        dir.hard_link(&dir, b"a", b"b").unwrap();
        assert_eq!(dir.lstat(b"a").unwrap().st_nlink, 2);
        dir.mknod(b"fifo", SFlag::S_IFIFO, 0o640, 0).unwrap();
        let st = dir.lstat(b"fifo").unwrap();
        assert_eq!(
            SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()),
            SFlag::S_IFIFO
        );
        assert!(
            dir.create_file(b"a").is_err(),
            "create_file overwrote an existing file"
        );
    }
}
