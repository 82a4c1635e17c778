//! Exported keys: the key slot in use as text to keep, print and type back (formats in
//! docs/design.md §5.6), and storing such a slot again, also into a repository whose
//! key is lost.
//!
//! An export is the slot as stored, still wrapped by its passphrase: never the master
//! key. It stays valid for the life of the repository, so a passphrase changed or
//! removed later still opens the repository together with an export made before.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arca_backends::{FileKind, ObjectId, WriteBackend};
use arca_repo::{ExportedKey, KeyTextFormat, Repo, encode_key_text};

use crate::{Error, ErrorKind, Repository, Result};

/// Where [`Repository::import_key`] stores a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyDestination {
    /// The repository's `keys/`.
    Repository,
    /// A key file (key-file mode): a new file, mode 0600, written atomically.
    File(PathBuf),
}

/// What [`Repository::import_key`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportedKey {
    /// The slot's id.
    pub id: ObjectId,
    /// Where it is now.
    pub destination: KeyDestination,
    /// The same slot was there already; nothing was written.
    pub already_present: bool,
}

/// Reads exported key text (see [`ExportedKey::parse`]): in `format`, or in the format
/// its first line shows.
///
/// # Errors
/// `InvalidInput` naming the first bad line (`line 7: checksum mismatch: check this
/// line`); `Corrupt` if the checksums hold but the text holds no key slot.
pub fn parse_exported_key(text: &str, format: Option<KeyTextFormat>) -> Result<ExportedKey> {
    Ok(ExportedKey::parse(text, format)?)
}

impl Repository {
    /// The key slot the passphrase in use opened (from `keys/` or the key file), as
    /// text in `format`: still wrapped by that passphrase.
    ///
    /// # Errors
    /// `InvalidInput` when a generated secret opened the repository: its slot opens
    /// nothing without the secret's file, so an export of it would be a useless copy
    /// (export with a password instead); a slot too large for the paper format is
    /// `InvalidInput` too.
    pub fn export_key(&self, format: KeyTextFormat) -> Result<String> {
        if self.repo.key_slot().kdf == arca_repo::SlotKdf::Secret {
            return Err(Error::invalid(format!(
                "key {} is a generated secret: an export of it would open nothing without the secret's file; open the repository with a password to export that password's key",
                self.repo.key_id()
            )));
        }
        Ok(encode_key_text(
            format,
            self.repo.key_slot(),
            &self.config().repository_id,
        )?)
    }

    /// [`Repository::export_key`] into the new file `path` (mode 0600, written
    /// atomically; an existing file is never overwritten, for it may be the key file
    /// itself).
    ///
    /// # Errors
    /// `AlreadyExists` if `path` exists; I/O errors naming it.
    pub fn export_key_to(&self, path: &Path, format: KeyTextFormat) -> Result<()> {
        let text = self.export_key(format)?;
        crate::key_file::check_new(path, "export file")?;
        crate::key_file::write_new(path, text.as_bytes(), "export file")
    }

    /// Stores an exported key slot at `destination`, with nothing but the repository's
    /// config and `passphrase`: no other key is needed, so this restores a lost key
    /// file. [`Repository::plan_key_import`] (every check that needs no passphrase),
    /// then [`KeyImport::import`].
    ///
    /// # Errors
    /// As those two.
    pub fn import_key(
        backend: Arc<dyn WriteBackend>,
        passphrase: &[u8],
        key: &ExportedKey,
        destination: &KeyDestination,
    ) -> Result<ImportedKey> {
        Self::plan_key_import(backend, key, destination)?.import(passphrase)
    }

    /// The checks of a key import that need no passphrase, so that a tool can make them
    /// before asking for one:
    ///
    /// 1. the config's plaintext header must carry the repository id the text names;
    /// 2. the destination must be possible: `keys/` only if it already holds a slot (a
    ///    repository that keeps its keys in key files would otherwise open with the
    ///    passphrase alone), a key file only if it does not exist (or holds this very
    ///    slot).
    ///
    /// # Errors
    /// `RepositoryNotFound`; `InvalidInput` if the key is another repository's;
    /// `KeyFileRequired` for `keys/` of a key-file repository; `AlreadyExists` if the
    /// destination holds another slot; storage and I/O errors.
    pub fn plan_key_import(
        backend: Arc<dyn WriteBackend>,
        key: &ExportedKey,
        destination: &KeyDestination,
    ) -> Result<KeyImport> {
        let location = backend.location();
        let id = Repo::peek_id(backend.as_ref())?;
        if !key.names_repository(&id) {
            return Err(Error::invalid(format!(
                "the key is for repository {}, and so not of the one at {location} ({id})",
                key.repository_hint()
            )));
        }
        let slot = key.slot();
        let bytes = slot.encode();
        let existing = match destination {
            KeyDestination::Repository => {
                let listed = backend.list(FileKind::Key)?;
                if listed.is_empty() {
                    return Err(Error::new(
                        ErrorKind::KeyFileRequired,
                        format!(
                            "the repository at {location} keeps its key outside the repository: import the key into a key file"
                        ),
                    ));
                }
                match listed.iter().any(|(i, _)| *i == slot.id) {
                    true => Some(backend.read_full(FileKind::Key, &slot.id)?.to_vec()),
                    false => None,
                }
            }
            KeyDestination::File(path) => match crate::key_file::read_bytes(path) {
                Ok(existing) => Some(existing),
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    crate::key_file::check_new(path, "key file")?;
                    None
                }
                Err(e) => return Err(e),
            },
        };
        if existing.as_ref().is_some_and(|e| *e != bytes) {
            let place = match destination {
                KeyDestination::Repository => format!("the repository's key {}", slot.id),
                KeyDestination::File(path) => format!("key file {}", path.display()),
            };
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("{place} already exists and holds another key: arca never overwrites it"),
            ));
        }
        Ok(KeyImport {
            backend,
            slot: slot.clone(),
            destination: destination.clone(),
            already_present: existing.is_some(),
        })
    }
}

/// A key import whose checks passed ([`Repository::plan_key_import`]); the passphrase
/// is all it still needs.
pub struct KeyImport {
    backend: Arc<dyn WriteBackend>,
    slot: arca_repo::KeySlot,
    destination: KeyDestination,
    already_present: bool,
}

impl std::fmt::Debug for KeyImport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyImport")
            .field("location", &self.backend.location())
            .field("slot", &self.slot.id)
            .field("destination", &self.destination)
            .field("already_present", &self.already_present)
            .finish()
    }
}

impl KeyImport {
    /// Opens the slot with `passphrase` (the repository id inside it must be the
    /// config's, and the key must open the config), then writes it unless it is there
    /// already.
    ///
    /// # Errors
    /// `WrongPassword`; `Corrupt` for a slot that is not the repository's; storage and
    /// I/O errors.
    pub fn import(self, passphrase: &[u8]) -> Result<ImportedKey> {
        let Self {
            backend,
            slot,
            destination,
            already_present,
        } = self;
        let location = backend.location();
        let object = "the imported key";
        let repo = Repo::open_with_slot(backend, passphrase, slot.clone(), object)
            .map_err(|e| crate::repository::slot_error(e, object, &location))?;
        if !already_present {
            match &destination {
                KeyDestination::Repository => repo.store_key_slot(&slot)?,
                KeyDestination::File(path) => {
                    crate::key_file::write_new(path, &slot.encode(), "key file")?;
                }
            }
        }
        Ok(ImportedKey {
            id: slot.id,
            destination,
            already_present,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FAST_KDF as FAST;
    use crate::testing::{memory_repository_keyed, open_with_key_file};

    #[test]
    fn a_lost_key_file_is_restored_from_an_export() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("k");
        let (backend, repo) = memory_repository_keyed(b"pw", Some(&file));
        for format in [KeyTextFormat::Plain, KeyTextFormat::Paper] {
            let text = repo.export_key(format).unwrap();
            std::fs::remove_file(&file).unwrap();
            let key = parse_exported_key(&text, None).unwrap();
            // Not into keys/: that would make the passphrase enough.
            let err =
                Repository::import_key(backend.clone(), b"pw", &key, &KeyDestination::Repository)
                    .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::KeyFileRequired);
            let err = Repository::import_key(
                backend.clone(),
                b"wrong",
                &key,
                &KeyDestination::File(file.clone()),
            )
            .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::WrongPassword);
            assert!(!file.exists());
            let done = Repository::import_key(
                backend.clone(),
                b"pw",
                &key,
                &KeyDestination::File(file.clone()),
            )
            .unwrap();
            assert!(!done.already_present);
            assert_eq!(done.id, repo.keys().unwrap()[0].id);
            let again = open_with_key_file(&backend, b"pw", &file).unwrap();
            assert_eq!(again.config(), repo.config());
            // A second import of the same key changes nothing.
            let twice = Repository::import_key(
                backend.clone(),
                b"pw",
                &key,
                &KeyDestination::File(file.clone()),
            )
            .unwrap();
            assert!(twice.already_present);
        }
        assert!(backend.list(FileKind::Key).unwrap().is_empty());
    }

    #[test]
    fn an_export_goes_back_into_keys_and_only_into_its_own_repository() {
        let (backend, repo) = memory_repository_keyed(b"pw", None);
        let first = repo.keys().unwrap()[0].id;
        let text = repo.export_key(KeyTextFormat::Plain).unwrap();
        let key = parse_exported_key(&text, Some(KeyTextFormat::Plain)).unwrap();
        assert_eq!(key.slot().encode(), repo.repo.key_slot().encode());
        // Another passphrase, then the exported slot removed and imported again.
        repo.add_key(b"second", FAST).unwrap();
        let second = Repository::open(backend.clone(), b"second").unwrap();
        second.remove_key(&first).unwrap();
        assert_eq!(
            Repository::open(backend.clone(), b"pw").unwrap_err().kind(),
            ErrorKind::WrongPassword
        );
        let done =
            Repository::import_key(backend.clone(), b"pw", &key, &KeyDestination::Repository)
                .unwrap();
        assert_eq!(done.id, first);
        assert!(Repository::open(backend.clone(), b"pw").is_ok());

        // Another repository refuses it before any passphrase is tried...
        let (other, _) = memory_repository_keyed(b"pw", None);
        let err = Repository::import_key(other.clone(), b"pw", &key, &KeyDestination::Repository)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(
            err.to_string().contains("the key is for repository"),
            "{err}"
        );
        // ...and also when the text names it: the id inside the slot counts.
        let other_id = Repository::peek_id(other.as_ref()).unwrap();
        let forged =
            arca_repo::encode_key_text(KeyTextFormat::Plain, repo.repo.key_slot(), &other_id)
                .unwrap();
        let key = parse_exported_key(&forged, None).unwrap();
        let err =
            Repository::import_key(other, b"pw", &key, &KeyDestination::Repository).unwrap_err();
        assert!(
            err.to_string().contains("belongs to another repository"),
            "{err}"
        );
    }

    #[test]
    fn exports_to_a_file_never_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let (_, repo) = memory_repository_keyed(b"pw", None);
        let path = dir.path().join("export.txt");
        repo.export_key_to(&path, KeyTextFormat::Paper).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            repo.export_key(KeyTextFormat::Paper).unwrap()
        );
        let err = repo.export_key_to(&path, KeyTextFormat::Plain).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
        let err = parse_exported_key("line one\n", None).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }
}
