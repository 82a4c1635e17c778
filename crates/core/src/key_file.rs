//! Local files that hold a key: key files (a key slot kept outside the repository,
//! docs/design.md §5.6) and exported key text. Reading names the path in every error;
//! writing is atomic, mode 0600, and either refuses an existing file or replaces it in
//! one rename.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use arca_repo::KeySlot;

use crate::{Error, ErrorKind, Result};

/// Larger files are not key files (a slot is a few hundred bytes): reading stops here.
const MAX_KEY_FILE: u64 = 1 << 20;

/// How a key file is named in messages.
pub(crate) fn object(path: &Path) -> String {
    format!("key file {}", path.display())
}

/// Reads and decodes the key slot in `path`.
///
/// # Errors
/// As [`read_bytes`]; `Corrupt` if it holds no key slot.
pub(crate) fn read(path: &Path) -> Result<KeySlot> {
    Ok(KeySlot::decode_unnamed(&read_bytes(path)?, &object(path))?)
}

/// The bytes of the key file `path`.
///
/// # Errors
/// `NotFound` or `Io` if it cannot be read; `Corrupt` if it is too large to be one.
pub(crate) fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    let mut data = Vec::new();
    fs::File::open(path)
        .and_then(|f| f.take(MAX_KEY_FILE + 1).read_to_end(&mut data))
        .map_err(|e| Error::io("cannot read key file", path, e))?;
    if data.len() as u64 > MAX_KEY_FILE {
        return Err(Error::new(
            ErrorKind::Corrupt,
            format!(
                "{} is not a key file: it is larger than {MAX_KEY_FILE} bytes",
                object(path)
            ),
        ));
    }
    Ok(data)
}

fn directory_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("cannot sync directory", dir, e))
}

/// A temporary file (mode 0600) beside `path` holding `bytes`, flushed to disk. Dropped
/// unpersisted, it is removed.
fn temp_beside(path: &Path, bytes: &[u8], what: &str) -> Result<tempfile::NamedTempFile> {
    let dir = directory_of(path);
    let fail = |e: std::io::Error| {
        Error::new(
            if e.kind() == std::io::ErrorKind::NotFound {
                ErrorKind::NotFound
            } else {
                ErrorKind::Io
            },
            format!("cannot write {what} {}: {e}", path.display()),
        )
        .with_source(e)
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".arca-")
        .suffix(".tmp")
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(&dir)
        .map_err(fail)?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(fail)?;
    Ok(tmp)
}

fn exists_error(path: &Path, what: &str) -> Error {
    Error::new(
        ErrorKind::AlreadyExists,
        format!(
            "{what} {} already exists: arca never overwrites it",
            path.display()
        ),
    )
}

/// Whether `path` can become a new key file: refuses early (before a password is asked
/// for, before anything is created) a path that exists or whose directory does not.
///
/// # Errors
/// `AlreadyExists`, `NotFound`, naming the path.
pub fn check_new_key_file(path: &Path) -> Result<()> {
    check_new(path, "key file")
}

/// Refuses early, before anything is created, a `path` that exists or whose directory
/// does not.
///
/// # Errors
/// `AlreadyExists`, `NotFound`.
pub(crate) fn check_new(path: &Path, what: &str) -> Result<()> {
    if path.symlink_metadata().is_ok() {
        return Err(exists_error(path, what));
    }
    let dir = directory_of(path);
    if !dir.is_dir() {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!(
                "cannot write {what} {}: directory {} does not exist",
                path.display(),
                dir.display()
            ),
        ));
    }
    Ok(())
}

/// Writes `bytes` to a new file `path`, mode 0600: a temporary file in the same
/// directory, flushed, then renamed to `path` only if nothing is there, then the
/// directory flushed. `path` never exists half-written, and an existing file (or
/// symlink) is never replaced.
///
/// # Errors
/// `AlreadyExists` if `path` exists; `NotFound` or `Io` naming it.
pub(crate) fn write_new(path: &Path, bytes: &[u8], what: &str) -> Result<()> {
    let tmp = temp_beside(path, bytes, what)?;
    tmp.persist_noclobber(path).map_err(|e| {
        if e.error.kind() == std::io::ErrorKind::AlreadyExists {
            exists_error(path, what)
        } else {
            Error::io(&format!("cannot write {what}"), path, e.error)
        }
    })?;
    sync_dir(&directory_of(path))
}

/// Replaces the file `path` (following symlinks to the file itself) with `bytes`: a
/// temporary file in the same directory is written and flushed, read back and handed
/// to `verify`, and only then renamed over the old file, and the directory flushed.
/// Whenever the process stops, the file is whole: the old one until the rename, the
/// new one after it. If `verify` fails, the old file stays and the error is returned.
///
/// # Errors
/// `NotFound` or `Io` naming the path; whatever `verify` returns.
pub(crate) fn replace(
    path: &Path,
    bytes: &[u8],
    what: &str,
    verify: impl FnOnce(&[u8]) -> Result<()>,
) -> Result<()> {
    let target =
        fs::canonicalize(path).map_err(|e| Error::io(&format!("cannot read {what}"), path, e))?;
    let tmp = temp_beside(&target, bytes, what)?;
    let written = fs::read(tmp.path()).map_err(|e| Error::io("cannot read back", tmp.path(), e))?;
    verify(&written)?;
    tmp.persist(&target)
        .map_err(|e| Error::io(&format!("cannot replace {what}"), &target, e.error))?;
    sync_dir(&directory_of(&target))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    fn leftovers(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".arca-"))
            .collect()
    }

    #[test]
    fn new_files_are_private_and_never_replace_anything() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        check_new(&path, "key file").unwrap();
        write_new(&path, b"one", "key file").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"one");
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        let err = write_new(&path, b"two", "key file").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        assert!(check_new(&path, "key file").is_err());
        assert_eq!(fs::read(&path).unwrap(), b"one");
        // A dangling symlink is something too.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &link).unwrap();
        assert!(check_new(&link, "key file").is_err());
        assert!(write_new(&link, b"x", "key file").is_err());
        assert!(!dir.path().join("nowhere").exists());
        let missing = dir.path().join("no/such/dir/k");
        assert_eq!(
            check_new(&missing, "key file").unwrap_err().kind(),
            ErrorKind::NotFound
        );
        assert!(write_new(&missing, b"x", "key file").is_err());
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn replacing_verifies_first_and_follows_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        write_new(&path, b"old", "key file").unwrap();
        let err = replace(&path, b"new", "key file", |written| {
            assert_eq!(written, b"new");
            Err(Error::invalid("refused"))
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "refused");
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert!(leftovers(dir.path()).is_empty());

        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        replace(&link, b"new", "key file", |_| Ok(())).unwrap();
        assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert!(replace(&dir.path().join("absent"), b"x", "key file", |_| Ok(())).is_err());
    }

    #[test]
    fn reading_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let err = read(&path).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(
            err.to_string().starts_with("cannot read key file "),
            "{err}"
        );
        fs::write(&path, b"not a key").unwrap();
        let err = read(&path).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt);
        assert!(
            err.to_string()
                .starts_with(&format!("key file {} is damaged", path.display())),
            "{err}"
        );
        fs::write(&path, vec![0u8; (MAX_KEY_FILE + 1) as usize]).unwrap();
        assert!(read(&path).unwrap_err().to_string().contains("larger than"));
    }
}
