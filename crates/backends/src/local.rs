//! A repository in a local directory.
//!
//! Layout: `config`, `keys/<id>`, `data/<first 2 hex digits>/<id>`, `index/<id>`,
//! `snapshots/<id>`, `locks/<id>`. Directories are created mode 0700 and files 0600.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use bytes::Bytes;

use crate::{
    BackendError, ErrorKind, FileKind, ObjectId, ObjectWriter, ReadBackend, TEMP_PREFIX,
    WriteBackend, is_temporary, temporary_dirs,
};

/// A repository stored in a directory on a local (or locally mounted) filesystem.
///
/// Writes are atomic and durable: data goes to a temporary file in the target
/// directory, is fsynced, hard-linked to its final name (which fails if the name exists,
/// making writes write-once), and the directory is fsynced.
#[derive(Debug, Clone)]
pub struct LocalBackend {
    root: PathBuf,
}

fn mkdir(path: &Path) -> io::Result<()> {
    fs::DirBuilder::new().mode(0o700).create(path)
}

fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

impl LocalBackend {
    /// A backend rooted at `root` (which need not exist until [`WriteBackend::create`]).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The repository directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, kind: FileKind, id: &ObjectId) -> PathBuf {
        self.root.join(kind.object_path(id))
    }

    /// The directory `path(kind, id)` is in.
    fn dir(&self, kind: FileKind, id: &ObjectId) -> PathBuf {
        let path = self.path(kind, id);
        path.parent()
            .map_or_else(|| self.root.clone(), Path::to_path_buf)
    }

    fn err(&self, op: &'static str, path: &Path, e: io::Error) -> BackendError {
        BackendError::from_io(op, path.display().to_string(), e)
    }

    /// Creates `dir` and any missing parents below the repository root, never the root
    /// itself: a vanished repository must fail, not be silently recreated.
    fn ensure_dir(&self, dir: &Path) -> io::Result<()> {
        if dir == self.root || dir.is_dir() {
            return Ok(());
        }
        if let Some(parent) = dir.parent() {
            if parent != self.root {
                self.ensure_dir(parent)?;
            } else if !self.root.is_dir() {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    "repository directory is missing",
                ));
            }
        }
        match mkdir(dir) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
            // A new directory exists durably only once its parent is synced.
            Ok(()) => dir.parent().map_or(Ok(()), sync_dir),
            Err(_) => Ok(()),
        }
    }

    /// Creates a new temporary file in `dir` (and `dir` if it is missing), mode 0600.
    fn create_temp(&self, dir: &Path) -> io::Result<(File, PathBuf)> {
        let mut suffix = [0u8; 12];
        getrandom::fill(&mut suffix).map_err(io::Error::other)?;
        let tmp = dir.join(format!("{TEMP_PREFIX}{}", hex::encode(suffix)));
        let open = || {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
        };
        let file = match open() {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.ensure_dir(dir)?;
                open()?
            }
            other => other?,
        };
        Ok((file, tmp))
    }

    /// Links `tmp` to `path` unless `path` exists (the caller removes `tmp`).
    fn publish(tmp: &Path, path: &Path) -> io::Result<()> {
        match fs::hard_link(tmp, path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(e),
            // Filesystems without hard links (FAT, some FUSE mounts): check, then rename.
            // Not race-free against a concurrent writer of the same id, but ids are
            // random or content-derived, so two writers of one id write the same bytes.
            Err(_) if path.exists() => Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "object already exists",
            )),
            Err(_) => fs::rename(tmp, path),
        }
    }

    /// The `data/XX` directories (none if `data` is missing).
    fn pack_dirs(&self, op: &'static str) -> Result<Vec<PathBuf>, BackendError> {
        let data = self.root.join(FileKind::Pack.dir_name());
        let subdirs = match fs::read_dir(&data) {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.err(op, &data, e)),
        };
        let mut dirs = Vec::new();
        for sub in subdirs {
            let sub = sub.map_err(|e| self.err(op, &data, e))?;
            if FileKind::is_pack_dir_name(&sub.file_name()) && sub.path().is_dir() {
                dirs.push(sub.path());
            }
        }
        Ok(dirs)
    }

    /// Removes the temporary files (`.tmp-*`) in `dir` last modified before `before`.
    fn remove_temporaries_in(&self, dir: &Path, before: SystemTime) -> Result<u64, BackendError> {
        const OP: &str = "remove temporary files";
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(self.err(OP, dir, e)),
        };
        let mut removed = 0;
        for entry in entries {
            let entry = entry.map_err(|e| self.err(OP, dir, e))?;
            if !is_temporary(&entry.file_name()) {
                continue;
            }
            let path = entry.path();
            let stale = match entry.metadata() {
                Ok(m) => m.is_file() && m.modified().is_ok_and(|t| t < before),
                Err(e) if e.kind() == io::ErrorKind::NotFound => false,
                Err(e) => return Err(self.err(OP, &path, e)),
            };
            if stale {
                match fs::remove_file(&path) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(self.err(OP, &path, e)),
                }
            }
        }
        Ok(removed)
    }

    /// Starts object `(kind, id)` in a new temporary file beside it.
    fn writer(&self, kind: FileKind, id: &ObjectId) -> Result<LocalWriter, BackendError> {
        let path = self.path(kind, id);
        let (file, tmp) = self
            .create_temp(&self.dir(kind, id))
            .map_err(|e| self.err("write", &path, e))?;
        Ok(LocalWriter {
            file: BufWriter::with_capacity(WRITE_BUFFER, file),
            temp: Temp(tmp),
            path,
        })
    }

    fn list_dir(&self, dir: &Path, out: &mut Vec<(ObjectId, u64)>) -> Result<(), BackendError> {
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            // A kind directory removed by a sync tool that drops empty directories.
            Err(e) if e.kind() == io::ErrorKind::NotFound && self.root.is_dir() => return Ok(()),
            Err(e) => return Err(self.err("list", dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| self.err("list", dir, e))?;
            let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<ObjectId>().ok())
            else {
                continue; // temporary files and foreign names are not objects
            };
            let meta = match entry.metadata() {
                Ok(m) => m,
                // Removed between the directory read and this look: not there any more,
                // as if the listing had come a moment later (lock records come and go).
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(self.err("list", &entry.path(), e)),
            };
            if meta.is_file() {
                out.push((id, meta.len()));
            }
        }
        Ok(())
    }
}

impl ReadBackend for LocalBackend {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn list(&self, kind: FileKind) -> Result<Vec<(ObjectId, u64)>, BackendError> {
        if !self.root.is_dir() {
            return Err(BackendError::new(
                ErrorKind::NotFound,
                "list",
                self.location(),
                "repository directory does not exist",
            ));
        }
        let mut out = Vec::new();
        match kind {
            FileKind::Config => {
                let path = self.path(kind, &ObjectId::ZERO);
                match fs::metadata(&path) {
                    Ok(m) => out.push((ObjectId::ZERO, m.len())),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(self.err("list", &path, e)),
                }
            }
            FileKind::Pack => {
                for sub in self.pack_dirs("list")? {
                    self.list_dir(&sub, &mut out)?;
                }
            }
            _ => self.list_dir(&self.root.join(kind.dir_name()), &mut out)?,
        }
        Ok(out)
    }

    fn read_full(&self, kind: FileKind, id: &ObjectId) -> Result<Bytes, BackendError> {
        let path = self.path(kind, id);
        fs::read(&path)
            .map(Bytes::from)
            .map_err(|e| self.err("read", &path, e))
    }

    fn read_range(
        &self,
        kind: FileKind,
        id: &ObjectId,
        offset: u64,
        length: u64,
    ) -> Result<Bytes, BackendError> {
        let path = self.path(kind, id);
        let file = File::open(&path).map_err(|e| self.err("read", &path, e))?;
        let size = file
            .metadata()
            .map_err(|e| self.err("read", &path, e))?
            .len();
        let end = offset.checked_add(length);
        if end.is_none_or(|end| end > size) {
            return Err(BackendError::new(
                ErrorKind::Permanent,
                "read",
                path.display().to_string(),
                format!("range {offset}+{length} passes the end of the {size}-byte object"),
            ));
        }
        let len = usize::try_from(length).map_err(|_| {
            BackendError::new(
                ErrorKind::Permanent,
                "read",
                path.display().to_string(),
                "range too large for memory",
            )
        })?;
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, offset)
            .map_err(|e| self.err("read", &path, e))?;
        Ok(Bytes::from(buf))
    }
}

impl WriteBackend for LocalBackend {
    fn create(&self) -> Result<(), BackendError> {
        let root = &self.root;
        match fs::read_dir(root) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(BackendError::new(
                        ErrorKind::AlreadyExists,
                        "create",
                        self.location(),
                        "directory is not empty",
                    ));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::DirBuilder::new()
                    .mode(0o700)
                    .recursive(true)
                    .create(root)
                    .map_err(|e| self.err("create", root, e))?;
                if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
                    sync_dir(parent).map_err(|e| self.err("create", parent, e))?;
                }
            }
            Err(e) => return Err(self.err("create", root, e)),
        }
        for kind in FileKind::ALL {
            if kind == FileKind::Config {
                continue;
            }
            let dir = root.join(kind.dir_name());
            mkdir(&dir).map_err(|e| self.err("create", &dir, e))?;
            if kind == FileKind::Pack {
                for prefix in 0..=255u8 {
                    let sub = dir.join(hex::encode([prefix]));
                    mkdir(&sub).map_err(|e| self.err("create", &sub, e))?;
                }
                sync_dir(&dir).map_err(|e| self.err("create", &dir, e))?;
            }
        }
        sync_dir(root).map_err(|e| self.err("create", root, e))
    }

    fn remove_stale_temporaries(&self, before: SystemTime) -> Result<u64, BackendError> {
        let pack_dirs = self.pack_dirs("remove temporary files")?;
        let mut removed = 0;
        for dir in temporary_dirs(&self.root, pack_dirs) {
            removed += self.remove_temporaries_in(&dir, before)?;
        }
        Ok(removed)
    }

    fn write(&self, kind: FileKind, id: &ObjectId, data: Bytes) -> Result<(), BackendError> {
        let mut writer = self.writer(kind, id)?;
        writer.append(&data)?;
        writer.finish()
    }

    fn remove(&self, kind: FileKind, id: &ObjectId) -> Result<(), BackendError> {
        let path = self.path(kind, id);
        fs::remove_file(&path).map_err(|e| self.err("remove", &path, e))?;
        let dir = self.dir(kind, id);
        sync_dir(&dir).map_err(|e| self.err("remove", &dir, e))
    }

    /// Writes into a temporary file beside the object, which [`ObjectWriter::commit`]
    /// fsyncs and links into place as [`WriteBackend::write`] does: a pack costs no
    /// memory of its size.
    fn start_write(
        &self,
        kind: FileKind,
        id: &ObjectId,
    ) -> Result<Option<Box<dyn ObjectWriter>>, BackendError> {
        Ok(Some(Box::new(self.writer(kind, id)?)))
    }
}

/// Appends smaller than this are gathered before they reach the file: a pack's header
/// and tree entries (a few hundred bytes each), and whole small objects (snapshots,
/// locks, keys), which then take one `write`. Larger appends, such as data entries, go
/// straight through.
const WRITE_BUFFER: usize = 64 * 1024;

/// A temporary file, removed when dropped: after it was linked to its object's name,
/// or when the object is abandoned (a renamed one is no longer there to remove).
struct Temp(PathBuf);

impl Drop for Temp {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// An object being written to a temporary file beside it: [`WriteBackend::write`] in
/// one piece, or [`LocalBackend::start_write`] in many. Dropped without
/// [`LocalWriter::finish`], it leaves nothing.
struct LocalWriter {
    file: BufWriter<File>,
    temp: Temp,
    path: PathBuf,
}

impl LocalWriter {
    fn err(&self, e: io::Error) -> BackendError {
        BackendError::from_io("write", self.path.display().to_string(), e)
    }

    /// Makes the object durable under its name, write-once: fsyncs the temporary file,
    /// links it into place and fsyncs the directory.
    fn finish(mut self) -> Result<(), BackendError> {
        self.file
            .flush()
            .and_then(|()| self.file.get_ref().sync_all())
            .map_err(|e| self.err(e))?;
        LocalBackend::publish(&self.temp.0, &self.path).map_err(|e| self.err(e))?;
        let Self { temp, path, .. } = self;
        // The temporary name goes (once, by its guard) before the directory is synced,
        // so a crash cannot bring it back.
        drop(temp);
        let dir = path.parent().unwrap_or(Path::new("/"));
        sync_dir(dir).map_err(|e| BackendError::from_io("write", dir.display().to_string(), e))
    }
}

impl ObjectWriter for LocalWriter {
    fn append(&mut self, data: &[u8]) -> Result<(), BackendError> {
        self.file.write_all(data).map_err(|e| self.err(e))
    }

    fn commit(self: Box<Self>) -> Result<(), BackendError> {
        (*self).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// A created repository in a temporary directory (removed when the first is dropped).
    fn created() -> (tempfile::TempDir, LocalBackend) {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path().join("repo"));
        b.create().unwrap();
        (dir, b)
    }

    #[test]
    fn files_and_directories_are_private() {
        let (_dir, b) = created();
        let id = ObjectId::from_bytes([0xab; 32]);
        b.write(FileKind::Key, &id, Bytes::from_static(b"k"))
            .unwrap();
        b.write(FileKind::Pack, &id, Bytes::from_static(b"p"))
            .unwrap();
        let mode = |p: PathBuf| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(b.root().to_path_buf()), 0o700);
        assert_eq!(mode(b.root().join("keys")), 0o700);
        assert_eq!(mode(b.root().join("keys").join(id.to_string())), 0o600);
        assert_eq!(mode(b.root().join("data/ab").join(id.to_string())), 0o600);
    }

    /// Names in `dir`, sorted.
    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// A streamed object is written to a private temporary file beside it, which the
    /// commit turns into the object and a dropped writer removes.
    #[test]
    fn streamed_objects_use_a_private_temporary_file_and_leave_none() {
        let (_dir, b) = created();
        let id = ObjectId::from_bytes([0xcd; 32]);
        let sub = b.root().join("data/cd");
        let mut writer = b.start_write(FileKind::Pack, &id).unwrap().unwrap();
        writer.append(&[7; 100_000]).unwrap();
        let during = names(&sub);
        assert_eq!(during.len(), 1);
        assert!(during[0].starts_with(".tmp-"), "{during:?}");
        let mode = fs::metadata(sub.join(&during[0]))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        writer.commit().unwrap();
        assert_eq!(names(&sub), vec![id.to_string()]);
        // A refused write leaves no temporary file either.
        let again = b.write(FileKind::Pack, &id, Bytes::from_static(b"other"));
        assert_eq!(again.unwrap_err().kind(), ErrorKind::AlreadyExists);
        assert_eq!(names(&sub), vec![id.to_string()]);
        assert_eq!(b.read_full(FileKind::Pack, &id).unwrap(), &[7; 100_000][..]);

        let mut other = [0xcd; 32];
        other[31] = 0;
        let other = ObjectId::from_bytes(other);
        let mut dropped = b.start_write(FileKind::Pack, &other).unwrap().unwrap();
        dropped.append(b"partial").unwrap();
        drop(dropped);
        assert_eq!(names(&sub), vec![id.to_string()]);
    }

    /// What prune's removal of a temporary file does to a write still at work (one
    /// that registered no session, or whose clock is an hour off): it fails, and no
    /// object appears.
    #[test]
    fn a_write_whose_temporary_file_was_removed_fails_to_commit() {
        let (_dir, b) = created();
        let id = ObjectId::from_bytes([0x42; 32]);
        let mut writer = b.start_write(FileKind::Pack, &id).unwrap().unwrap();
        writer.append(b"partial").unwrap();
        let later = SystemTime::now() + std::time::Duration::from_secs(3600);
        assert_eq!(b.remove_stale_temporaries(later).unwrap(), 1);
        writer.append(b" and more").unwrap();
        assert!(writer.commit().is_err());
        assert!(b.list(FileKind::Pack).unwrap().is_empty());
        assert_eq!(names(&b.root().join("data/42")), Vec::<String>::new());
    }

    #[test]
    fn temporary_and_foreign_files_are_not_objects() {
        let (_dir, b) = created();
        fs::write(b.root().join("index/.tmp-123"), b"partial").unwrap();
        fs::write(b.root().join("index/README"), b"x").unwrap();
        fs::write(b.root().join("data/00/notes.txt"), b"x").unwrap();
        assert!(b.list(FileKind::Index).unwrap().is_empty());
        assert!(b.list(FileKind::Pack).unwrap().is_empty());
        // Removing stale temporaries leaves foreign files alone.
        fs::write(b.root().join("data/00/.tmp-456"), b"partial").unwrap();
        fs::write(b.root().join(".tmp-789"), b"partial").unwrap();
        let later = SystemTime::now() + std::time::Duration::from_secs(3600);
        assert_eq!(b.remove_stale_temporaries(later).unwrap(), 3);
        let left = |dir: &str| names(&b.root().join(dir));
        assert_eq!(left("index"), vec!["README"]);
        assert_eq!(left("data/00"), vec!["notes.txt"]);
        assert!(!b.root().join(".tmp-789").exists());
    }

    #[test]
    fn a_missing_repository_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path().join("nope"));
        assert_eq!(
            b.list(FileKind::Snapshot).unwrap_err().kind(),
            ErrorKind::NotFound
        );
        assert_eq!(
            b.read_full(FileKind::Config, &ObjectId::ZERO)
                .unwrap_err()
                .kind(),
            ErrorKind::NotFound
        );
        // Writing into a vanished repository fails instead of recreating it.
        let err = b
            .write(
                FileKind::Index,
                &ObjectId::from_bytes([1; 32]),
                Bytes::new(),
            )
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(!dir.path().join("nope").exists());
    }

    #[test]
    fn removed_subdirectories_are_recreated_inside_the_repository() {
        let (_dir, b) = created();
        fs::remove_dir(b.root().join("data/ab")).unwrap();
        fs::remove_dir(b.root().join("snapshots")).unwrap();
        let id = ObjectId::from_bytes([0xab; 32]);
        assert!(b.list(FileKind::Snapshot).unwrap().is_empty());
        b.write(FileKind::Pack, &id, Bytes::from_static(b"p"))
            .unwrap();
        b.write(FileKind::Snapshot, &id, Bytes::from_static(b"s"))
            .unwrap();
        assert_eq!(b.list(FileKind::Pack).unwrap(), vec![(id, 1)]);
    }

    #[test]
    fn create_refuses_a_file_and_accepts_an_empty_directory() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        fs::write(&file, b"x").unwrap();
        assert!(LocalBackend::new(&file).create().is_err());
        let empty = dir.path().join("empty");
        fs::create_dir(&empty).unwrap();
        LocalBackend::new(&empty).create().unwrap();
        assert!(empty.join("data/ff").is_dir());
    }

    #[test]
    fn errors_name_the_object() {
        let (_dir, b) = created();
        let id = ObjectId::from_bytes([0x42; 32]);
        let msg = b
            .read_full(FileKind::Snapshot, &id)
            .unwrap_err()
            .to_string();
        assert!(msg.contains(&format!("snapshots/{id}")), "{msg}");
    }
}
