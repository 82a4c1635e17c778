//! Repositories on an SSH server, over SFTP (libssh2 through the `ssh2` crate).
//!
//! The layout is the local one (`config`, `keys/ID`, `data/XX/ID`, ...). A write goes to
//! a temporary name in the target directory, is fsynced where the server supports
//! OpenSSH's `fsync@openssh.com`, and is renamed to its final name; SFTP's rename (as
//! OpenSSH's server does it, with a hard link) fails if the name exists, so writes are
//! atomic and write-once. Connections are pooled: each call takes one, so the
//! decorators' connection limit bounds how many are open.

mod config;
mod session;

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use ssh2::{OpenFlags, OpenType, RenameFlags, Sftp};

pub use config::{SftpConfig, SftpConfigError};

use session::{Channel, Fail, Pool, sftp_status};

use crate::{
    BackendError, ErrorKind, FileKind, ObjectId, ReadBackend, TEMP_PREFIX, WriteBackend,
    is_temporary, temporary_dirs,
};

/// A repository in a directory on an SFTP server.
pub struct SftpBackend {
    pool: Pool,
    root: PathBuf,
}

impl std::fmt::Debug for SftpBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SftpBackend")
            .field("location", &self.location())
            .finish_non_exhaustive()
    }
}

/// Is `e` the server saying "no such file"?
fn is_missing(e: &ssh2::Error) -> bool {
    matches!(sftp_status(e), Some(2 | 10))
}

impl SftpBackend {
    /// A backend for `config`; nothing is connected until the first call.
    pub fn new(config: SftpConfig) -> Self {
        let root = PathBuf::from(&config.path);
        Self {
            pool: Pool::new(config),
            root,
        }
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

    /// How an object is named in messages: `sftp://USER@HOST:PORT/PATH`.
    fn name(&self, path: &Path) -> String {
        let location = self.pool.config().location();
        let relative = path.strip_prefix(&self.root).unwrap_or(path);
        format!("{location}/{}", relative.display())
    }

    fn missing_repository(&self, operation: &'static str) -> BackendError {
        BackendError::new(
            ErrorKind::NotFound,
            operation,
            self.location(),
            "repository directory does not exist",
        )
    }

    /// The files of one directory with their sizes (none if it does not exist).
    fn list_dir(sftp: &Sftp, dir: &Path, out: &mut Vec<(ObjectId, u64)>) -> Result<(), Fail> {
        let entries = match sftp.readdir(dir) {
            Ok(entries) => entries,
            Err(e) if is_missing(&e) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        for (path, stat) in entries {
            if !stat.is_file() {
                continue;
            }
            if let Some(id) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse().ok())
            {
                out.push((id, stat.size.unwrap_or(0)));
            }
        }
        Ok(())
    }

    /// The `data/XX` directories below `root` (none if `data` is missing).
    fn pack_dirs(sftp: &Sftp, root: &Path) -> Result<Vec<PathBuf>, Fail> {
        let data = root.join(FileKind::Pack.dir_name());
        let subdirs = match sftp.readdir(&data) {
            Ok(entries) => entries,
            Err(e) if is_missing(&e) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        Ok(subdirs
            .into_iter()
            .filter(|(dir, stat)| {
                stat.is_dir() && dir.file_name().is_some_and(FileKind::is_pack_dir_name)
            })
            .map(|(dir, _)| dir)
            .collect())
    }

    /// Removes the temporary files (`.tmp-*`) in `dir` last modified before `before`
    /// (seconds since the epoch by the client's clock, compared with the server's
    /// modification times: [`crate::WriteBackend::remove_stale_temporaries`] callers
    /// leave a margin for the difference).
    fn remove_temporaries_in(sftp: &Sftp, dir: &Path, before: u64) -> Result<u64, Fail> {
        let entries = match sftp.readdir(dir) {
            Ok(entries) => entries,
            Err(e) if is_missing(&e) => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        let mut removed = 0;
        for (path, stat) in entries {
            let temporary = path.file_name().is_some_and(is_temporary);
            if temporary && stat.is_file() && stat.mtime.is_some_and(|t| t < before) {
                match sftp.unlink(&path) {
                    Ok(()) => removed += 1,
                    Err(e) if is_missing(&e) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(removed)
    }

    /// Creates `dir` (one level below an existing directory); an existing one is fine.
    fn ensure_dir(sftp: &Sftp, dir: &Path) -> Result<(), Fail> {
        match sftp.mkdir(dir, 0o700) {
            Ok(()) => Ok(()),
            Err(e) => match sftp.stat(dir) {
                Ok(stat) if stat.is_dir() => Ok(()),
                _ => Err(e.into()),
            },
        }
    }

    fn write_in(
        &self,
        sftp: &Channel<'_>,
        kind: FileKind,
        id: &ObjectId,
        data: &[u8],
    ) -> Result<(), Fail> {
        let path = self.path(kind, id);
        let dir = self.dir(kind, id);
        let exists = || Fail::Backend(BackendError::already_exists("write", self.name(&path)));
        match sftp.stat(&path) {
            Ok(_) => return Err(exists()),
            Err(e) if is_missing(&e) => {}
            Err(e) => return Err(e.into()),
        }
        if kind == FileKind::Pack {
            Self::ensure_dir(sftp, &dir)?;
        }
        let mut suffix = [0u8; 8];
        getrandom::fill(&mut suffix).map_err(|e| {
            BackendError::new(
                ErrorKind::Permanent,
                "write",
                self.name(&path),
                e.to_string(),
            )
        })?;
        let tmp = dir.join(format!("{TEMP_PREFIX}{}", hex::encode(suffix)));
        let written = (|| -> Result<(), Fail> {
            let mut file = sftp.open_mode(
                &tmp,
                OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::EXCLUSIVE,
                0o600,
                OpenType::File,
            )?;
            file.write_all(data).map_err(|e| sftp.io_failure(e))?;
            match file.fsync() {
                // Servers without fsync@openssh.com answer "operation unsupported" (8).
                Err(e) if sftp_status(&e) != Some(8) => return Err(e.into()),
                _ => {}
            }
            file.close()?;
            sftp.rename(&tmp, &path, Some(RenameFlags::ATOMIC | RenameFlags::NATIVE))?;
            Ok(())
        })();
        if let Err(fail) = written {
            let _ = sftp.unlink(&tmp);
            if sftp.stat(&path).is_ok() {
                return Err(exists());
            }
            return Err(fail);
        }
        Ok(())
    }

    fn read_in(
        &self,
        sftp: &Channel<'_>,
        path: &Path,
        range: Option<(u64, u64)>,
    ) -> Result<Bytes, Fail> {
        let mut file = sftp.open(path)?;
        let size = file.stat()?.size.unwrap_or(0);
        let (offset, length) = range.unwrap_or((0, size));
        if offset.checked_add(length).is_none_or(|end| end > size) {
            return Err(Fail::Backend(BackendError::new(
                ErrorKind::Permanent,
                "read",
                self.name(path),
                format!("the object ends before the {length} bytes asked for at offset {offset}"),
            )));
        }
        let length = usize::try_from(length).map_err(|_| {
            BackendError::new(
                ErrorKind::Permanent,
                "read",
                self.name(path),
                "range too large",
            )
        })?;
        if offset > 0 {
            file.seek(SeekFrom::Start(offset))
                .map_err(|e| sftp.io_failure(e))?;
        }
        let mut buf = vec![0u8; length];
        file.read_exact(&mut buf).map_err(|e| sftp.io_failure(e))?;
        Ok(Bytes::from(buf))
    }
}

impl ReadBackend for SftpBackend {
    fn location(&self) -> String {
        self.pool.config().location()
    }

    fn list(&self, kind: FileKind) -> Result<Vec<(ObjectId, u64)>, BackendError> {
        let name = || self.name(&self.root.join(kind.dir_name()));
        self.pool.with("list", &name, |sftp| {
            if let Err(e) = sftp.stat(&self.root) {
                return Err(if is_missing(&e) {
                    Fail::Backend(self.missing_repository("list"))
                } else {
                    e.into()
                });
            }
            let mut out = Vec::new();
            match kind {
                FileKind::Config => match sftp.stat(&self.path(kind, &ObjectId::ZERO)) {
                    Ok(stat) => out.push((ObjectId::ZERO, stat.size.unwrap_or(0))),
                    Err(e) if is_missing(&e) => {}
                    Err(e) => return Err(e.into()),
                },
                FileKind::Pack => {
                    for dir in Self::pack_dirs(sftp, &self.root)? {
                        Self::list_dir(sftp, &dir, &mut out)?;
                    }
                }
                _ => Self::list_dir(sftp, &self.root.join(kind.dir_name()), &mut out)?,
            }
            Ok(out)
        })
    }

    fn read_full(&self, kind: FileKind, id: &ObjectId) -> Result<Bytes, BackendError> {
        let path = self.path(kind, id);
        self.pool.with("read", &|| self.name(&path), |sftp| {
            self.read_in(sftp, &path, None)
        })
    }

    fn read_range(
        &self,
        kind: FileKind,
        id: &ObjectId,
        offset: u64,
        length: u64,
    ) -> Result<Bytes, BackendError> {
        let path = self.path(kind, id);
        self.pool.with("read", &|| self.name(&path), |sftp| {
            self.read_in(sftp, &path, Some((offset, length)))
        })
    }
}

impl WriteBackend for SftpBackend {
    fn create(&self) -> Result<(), BackendError> {
        self.pool.with("create", &|| self.location(), |sftp| {
            let layout = ["keys", "data", "index", "snapshots", "locks"];
            // What an earlier, interrupted create left (empty layout directories) does
            // not count: creating again finishes the job.
            let leftover = |(path, stat): &(PathBuf, ssh2::FileStat)| {
                stat.is_dir()
                    && path
                        .file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| layout.contains(&n))
                    && sftp.readdir(path).is_ok_and(|inner| inner.is_empty())
            };
            match sftp.readdir(&self.root) {
                Ok(entries) if !entries.iter().all(leftover) => {
                    return Err(Fail::Backend(BackendError::new(
                        ErrorKind::AlreadyExists,
                        "create",
                        self.location(),
                        "the directory is not empty",
                    )));
                }
                Ok(_) => {}
                Err(e) if is_missing(&e) => {
                    // mkdir -p: each missing ancestor, then the root.
                    let mut at = PathBuf::new();
                    for part in self.root.components() {
                        at.push(part);
                        if at.parent().is_some() {
                            Self::ensure_dir(sftp, &at)?;
                        }
                    }
                }
                Err(e) => return Err(e.into()),
            }
            for kind in [
                FileKind::Key,
                FileKind::Pack,
                FileKind::Index,
                FileKind::Snapshot,
                FileKind::Lock,
            ] {
                Self::ensure_dir(sftp, &self.root.join(kind.dir_name()))?;
            }
            Ok(())
        })
    }

    fn write(&self, kind: FileKind, id: &ObjectId, data: Bytes) -> Result<(), BackendError> {
        let path = self.path(kind, id);
        self.pool.with("write", &|| self.name(&path), |sftp| {
            if let Err(e) = sftp.stat(&self.root) {
                return Err(if is_missing(&e) {
                    Fail::Backend(self.missing_repository("write"))
                } else {
                    e.into()
                });
            }
            self.write_in(sftp, kind, id, &data)
        })
    }

    fn remove_stale_temporaries(&self, before: SystemTime) -> Result<u64, BackendError> {
        let before = before.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.pool
            .with("remove temporary files", &|| self.location(), |sftp| {
                let pack_dirs = Self::pack_dirs(sftp, &self.root)?;
                let mut removed = 0;
                for dir in temporary_dirs(&self.root, pack_dirs) {
                    removed += Self::remove_temporaries_in(sftp, &dir, before)?;
                }
                Ok(removed)
            })
    }

    fn remove(&self, kind: FileKind, id: &ObjectId) -> Result<(), BackendError> {
        let path = self.path(kind, id);
        self.pool.with("remove", &|| self.name(&path), |sftp| {
            Ok(sftp.unlink(&path)?)
        })
    }
}
