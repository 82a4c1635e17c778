//! Key management: several passphrases for one repository, each a key slot that wraps
//! the same master key, kept in the repository's `keys/` or outside it in key files
//! (docs/design.md §5.6); and generated secrets, which take a passphrase's place for
//! unattended jobs and open their slot without the cost of Argon2id (§5.3).
//!
//! The rule that keeps a repository readable: an operation never leaves it without a
//! way to open it that this process has seen work. The slot in use cannot be removed;
//! the last slot in `keys/` can be removed only when the repository was opened with a
//! key file (which stays); a key file is replaced only by a new one that has been read
//! back and opened.

use std::path::{Path, PathBuf};

use arca_backends::{FileKind, ObjectId};
use arca_crypto::{GeneratedSecret, KdfParams};
use arca_repo::{KeyInfo, KeySlot, Repo, SlotKdf, SlotLock};

use crate::{Error, ErrorKind, Repository, Result};

/// A key slot of the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyEntry {
    /// The slot's id.
    pub id: ObjectId,
    /// Its key derivation: Argon2id at some cost, or a generated secret.
    pub kdf: SlotKdf,
    /// Whether the passphrase in use opened this slot.
    pub current: bool,
    /// Where the slot is kept: `None` for the repository's `keys/`, else the key file
    /// the repository was opened with (other key files are unknown to the repository).
    pub key_file: Option<PathBuf>,
}

impl Repository {
    /// The id of the key slot that opened the repository.
    pub fn key_id(&self) -> ObjectId {
        self.repo.key_id()
    }

    /// The key file the repository was opened with, if its key came from one.
    pub fn key_file(&self) -> Option<&Path> {
        self.key_file.as_deref()
    }

    /// Every key slot in `keys/`, sorted by id, then the key file's slot if the
    /// repository was opened with one; a damaged slot is an error naming it.
    ///
    /// # Errors
    /// Storage errors; `Corrupt` for a damaged slot.
    pub fn keys(&self) -> Result<Vec<KeyEntry>> {
        let mut keys = self
            .key_ids()?
            .into_iter()
            .map(|id| {
                let slot = self.repo.load_key_slot(&id)?;
                Ok(KeyEntry {
                    id,
                    kdf: slot.kdf,
                    current: self.key_file.is_none() && id == self.repo.key_id(),
                    key_file: None,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if let Some(path) = &self.key_file {
            keys.push(KeyEntry {
                id: self.repo.key_id(),
                kdf: self.repo.key_slot().kdf,
                current: true,
                key_file: Some(path.clone()),
            });
        }
        Ok(keys)
    }

    /// A new slot for `passphrase`, not yet stored.
    fn new_slot(&self, passphrase: &[u8], kdf: KdfParams) -> Result<KeySlot> {
        if passphrase.is_empty() {
            return Err(Error::invalid("the new password is empty"));
        }
        kdf.validate()
            .map_err(|e| Error::invalid(format!("invalid key derivation settings: {e}")))?;
        self.new_locked_slot(SlotLock::Passphrase(passphrase, kdf))
    }

    /// A new slot locked by `lock`, not yet stored.
    fn new_locked_slot(&self, lock: SlotLock<'_>) -> Result<KeySlot> {
        let info = KeyInfo {
            repository_id: self.repo.config().repository_id,
            created: crate::system::now(),
            hostname: crate::system::hostname(),
            username: crate::system::username(),
        };
        Ok(self.repo.create_key_slot(lock, &info)?)
    }

    /// The ids of the slots in `keys/`, sorted (nothing is read but the listing, so a
    /// damaged slot is listed too).
    ///
    /// # Errors
    /// Storage errors.
    pub fn key_ids(&self) -> Result<Vec<ObjectId>> {
        let mut ids: Vec<ObjectId> = self
            .repo
            .list(FileKind::Key)?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Whether `keys/` holds no slot: the repository opens only with key files.
    ///
    /// # Errors
    /// Storage errors.
    pub fn keys_outside_only(&self) -> Result<bool> {
        Ok(self.repo.list(FileKind::Key)?.is_empty())
    }

    /// Whether [`Repository::add_key`] may add a slot to `keys/`: not to a repository
    /// whose keys are all in key files, which the passphrase alone would then open.
    /// Cheap (a listing): a tool checks it before asking for a new password.
    ///
    /// # Errors
    /// `InvalidInput` for a repository whose keys are all in key files; storage errors.
    pub fn check_keys_may_grow(&self) -> Result<()> {
        self.check_keys_may_grow_by("a password")
    }

    /// [`Repository::check_keys_may_grow`] for a new way in, `what`.
    fn check_keys_may_grow_by(&self, what: &str) -> Result<()> {
        if self.keys_outside_only()? {
            return Err(Error::invalid(format!(
                "the repository keeps its keys outside it, in key files: {what} stored in the repository would open it without a key file; add a key file instead"
            )));
        }
        Ok(())
    }

    /// Adds a key slot for `passphrase` (derived with `kdf`) to `keys/`; returns its id.
    ///
    /// # Errors
    /// `InvalidInput` for an empty passphrase or invalid KDF settings, and for a
    /// repository whose keys are all in key files: a slot in `keys/` would let the
    /// passphrase alone open it (use [`Repository::add_key_file`]); storage errors.
    pub fn add_key(&self, passphrase: &[u8], kdf: KdfParams) -> Result<ObjectId> {
        self.check_keys_may_grow()?;
        let slot = self.new_slot(passphrase, kdf)?;
        self.repo.store_key_slot(&slot)?;
        Ok(slot.id)
    }

    /// Writes a key slot for `passphrase` (derived with `kdf`) to the new key file
    /// `path` (mode 0600, written atomically, never over an existing file); returns its
    /// id. The repository itself is not changed.
    ///
    /// # Errors
    /// As [`Repository::add_key`]; `AlreadyExists` if `path` exists; I/O errors naming
    /// it.
    pub fn add_key_file(&self, path: &Path, passphrase: &[u8], kdf: KdfParams) -> Result<ObjectId> {
        // Before the key derivation: a path that cannot take the file fails at once.
        crate::key_file::check_new(path, "key file")?;
        let slot = self.new_slot(passphrase, kdf)?;
        crate::key_file::write_new(path, &slot.encode(), "key file")?;
        Ok(slot.id)
    }

    /// Generates a secret, writes its text form to the new file `path` (mode 0600,
    /// written atomically, never over an existing file), then adds a slot it opens to
    /// `keys/`; returns the slot's id. Given where a passphrase goes (a password file,
    /// `ARCA_PASSWORD`), the secret opens the repository without Argon2id's time and
    /// memory, for unattended jobs. Whoever can read the file can read the repository,
    /// as with a password file; from the repository alone it cannot be guessed.
    ///
    /// The file is written first: a failure after it leaves a file that opens nothing.
    /// If the slot is then known not to be stored, the file is removed again.
    ///
    /// # Errors
    /// `InvalidInput` for a repository whose keys are all in key files (the secret alone
    /// would then open it); `AlreadyExists` if `path` exists; I/O errors naming it;
    /// storage errors.
    pub fn add_secret(&self, path: &Path) -> Result<ObjectId> {
        self.check_keys_may_grow_by("a generated secret")?;
        crate::key_file::check_new(path, "secret file")?;
        let secret = GeneratedSecret::generate()
            .map_err(|e| Error::new(ErrorKind::Io, format!("cannot generate a secret: {e}")))?;
        let slot = self.new_locked_slot(SlotLock::Secret(&secret))?;
        let mut text = secret.to_text();
        text.push('\n');
        crate::key_file::write_new(path, text.as_bytes(), "secret file")?;
        if let Err(e) = self.repo.store_key_slot(&slot) {
            let e = Error::from(e);
            let stored = self.key_ids().map(|ids| ids.contains(&slot.id));
            let outcome = match stored {
                Ok(false) => match std::fs::remove_file(path) {
                    Ok(()) => "removed".to_owned(),
                    Err(r) => format!("opens nothing and could not be removed ({r}): delete it"),
                },
                Ok(true) => format!("opens key {} after all", slot.id),
                Err(_) => format!(
                    "opens nothing unless `arca key list` shows key {}: delete it if not",
                    slot.id
                ),
            };
            return Err(Error::new(
                e.kind(),
                format!("{e} (secret file {}: {outcome})", path.display()),
            ));
        }
        Ok(slot.id)
    }

    /// Removes key slot `id` from `keys/`. Refused when no other way to open the
    /// repository would be left (the last slot, unless the repository was opened with
    /// a key file, which stays), when only generated secrets would be left (the last
    /// password: a secret lives in one file on one machine), for the slot in use
    /// (change its passphrase with [`Repository::change_passphrase`] instead), and for a
    /// key file's slot (arca does not delete files it did not create: delete the file).
    ///
    /// A damaged slot can be removed too (it counts as no password).
    ///
    /// # Errors
    /// `InvalidInput` in the cases above; `NotFound` for an unknown id; storage errors.
    pub fn remove_key(&self, id: &ObjectId) -> Result<()> {
        let ids = self.key_ids()?;
        if !ids.contains(id) {
            if let Some(path) = self.key_file.as_ref().filter(|_| *id == self.repo.key_id()) {
                return Err(Error::invalid(format!(
                    "key {id} is in key file {}, not in the repository: delete the file to remove it",
                    path.display()
                )));
            }
            return Err(Error::new(ErrorKind::NotFound, format!("no key {id}")));
        }
        if ids.len() + usize::from(self.key_file.is_some()) == 1 {
            return Err(Error::invalid(format!(
                "key {id} is the repository's only key: removing it would make every backup unreadable"
            )));
        }
        if self.key_file.is_none() && *id == self.repo.key_id() {
            let advice = if self.repo.key_slot().kdf == SlotKdf::Secret {
                "open the repository with a password or another secret to remove it"
            } else {
                "use another password to remove it, or change this one with `arca key passwd`"
            };
            return Err(Error::invalid(format!(
                "key {id} is the one in use: {advice}"
            )));
        }
        if self.is_password(id) && !self.other_password_than(id, &ids) {
            return Err(Error::invalid(format!(
                "key {id} is the last password: only generated secrets would open the repository, and losing their files would lose every backup; add another password first (`arca key add`)"
            )));
        }
        self.repo.backend().remove(FileKind::Key, id)?;
        Ok(())
    }

    /// Whether slot `id` of `keys/` is a passphrase's (a damaged one is not).
    fn is_password(&self, id: &ObjectId) -> bool {
        matches!(
            self.repo.load_key_slot(id).map(|s| s.kdf),
            Ok(SlotKdf::Argon2id(_))
        )
    }

    /// Whether a passphrase opens the repository without slot `id`: another slot of
    /// `keys/` (listed in `ids`), or the key file in use.
    fn other_password_than(&self, id: &ObjectId, ids: &[ObjectId]) -> bool {
        let key_file =
            self.key_file.is_some() && matches!(self.repo.key_slot().kdf, SlotKdf::Argon2id(_));
        key_file || ids.iter().any(|k| k != id && self.is_password(k))
    }

    /// Whether [`Repository::change_passphrase`] may run: not when a generated secret
    /// opened the repository, as there is no passphrase to change. Cheap: a tool checks
    /// it before asking for a new password.
    ///
    /// # Errors
    /// `InvalidInput` naming the secret's slot.
    pub fn check_passphrase_may_change(&self) -> Result<()> {
        if self.repo.key_slot().kdf == SlotKdf::Secret {
            return Err(Error::invalid(format!(
                "key {} is a generated secret, not a password: add a password with `arca key add`, then remove this key",
                self.repo.key_id()
            )));
        }
        Ok(())
    }

    /// Replaces the passphrase in use; returns the new slot's id. The old slot stops
    /// opening the repository only where it was: copies of it (exports, copies of a key
    /// file) still open it with the old passphrase.
    ///
    /// - Opened from `keys/`: adds a slot for `passphrase`, then removes the old one
    ///   (a failure in between leaves both).
    /// - Opened with a key file: writes the new slot to a temporary file beside it,
    ///   reads it back and opens the repository with it, then renames it over the key
    ///   file; at any moment the file holds the old slot or the new one, whole.
    ///
    /// This handle keeps using the key it was opened with.
    ///
    /// # Errors
    /// As [`Repository::add_key`], and `InvalidInput` when a generated secret opened the
    /// repository (it has no passphrase to change); I/O errors naming the key file;
    /// storage errors removing the old slot (both then work).
    pub fn change_passphrase(&self, passphrase: &[u8], kdf: KdfParams) -> Result<ObjectId> {
        self.check_passphrase_may_change()?;
        if let Some(path) = &self.key_file {
            let slot = self.new_slot(passphrase, kdf)?;
            let object = crate::key_file::object(path);
            crate::key_file::replace(path, &slot.encode(), "key file", |written| {
                let back = KeySlot::decode_unnamed(written, &object)?;
                Repo::open_with_slot(self.repo.backend().clone(), passphrase, back, &object)?;
                Ok(())
            })?;
            return Ok(slot.id);
        }
        // Opened from keys/, which holds at least the slot in use: it may grow.
        let slot = self.new_slot(passphrase, kdf)?;
        self.repo.store_key_slot(&slot)?;
        self.repo
            .backend()
            .remove(FileKind::Key, &self.repo.key_id())?;
        Ok(slot.id)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::InitOptions;
    use crate::testing::FAST_KDF as FAST;
    use crate::testing::{memory_repository_keyed, open_with_key_file as open_with};

    #[test]
    fn passphrases_come_and_go_but_never_the_last() {
        let (backend, repo) = memory_repository_keyed(b"first", None);
        let keys = repo.keys().unwrap();
        assert_eq!(keys.len(), 1);
        assert!(keys[0].current);
        let err = repo.remove_key(&keys[0].id).unwrap_err();
        assert!(err.to_string().contains("only key"), "{err}");

        let second = repo.add_key(b"second", FAST).unwrap();
        assert!(repo.add_key(b"", FAST).is_err());
        let opened = Repository::open(backend.clone(), b"second").unwrap();
        assert!(
            opened
                .keys()
                .unwrap()
                .iter()
                .any(|k| k.id == second && k.current)
        );
        // The current key cannot be removed; another can.
        assert!(opened.remove_key(&second).is_err());
        opened.remove_key(&keys[0].id).unwrap();
        let err = Repository::open(backend.clone(), b"first").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WrongPassword);

        let third = opened.change_passphrase(b"third", FAST).unwrap();
        let err = Repository::open(backend.clone(), b"second").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WrongPassword);
        let last = Repository::open(backend, b"third").unwrap();
        assert_eq!(last.keys().unwrap().len(), 1);
        assert_eq!(last.keys().unwrap()[0].id, third);
        assert!(last.remove_key(&ObjectId::from_bytes([9; 32])).is_err());
    }

    #[test]
    fn a_generated_secret_opens_the_repository_from_its_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        let (backend, repo) = memory_repository_keyed(b"pw", None);
        let id = repo.add_secret(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("arca-secret-v1:") && text.ends_with('\n'),
            "{text}"
        );
        // As a password file gives it: with its newline.
        let opened = Repository::open(backend.clone(), text.as_bytes()).unwrap();
        assert_eq!(opened.key_id(), id);
        assert_eq!(opened.config(), repo.config());
        let keys = opened.keys().unwrap();
        let kinds: Vec<_> = keys
            .iter()
            .map(|k| (k.kdf == SlotKdf::Secret, k.current))
            .collect();
        assert_eq!(
            kinds.iter().filter(|k| **k == (true, true)).count(),
            1,
            "{keys:?}"
        );
        assert_eq!(kinds.iter().filter(|k| k.0).count(), 1);

        // There is no passphrase to change; a password can be added, then the secret
        // removed with it.
        let err = opened.change_passphrase(b"new", FAST).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.to_string().contains("generated secret"), "{err}");
        // An existing file is never overwritten, and nothing is added.
        let before = opened.key_ids().unwrap();
        let err = opened.add_secret(&path).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        assert_eq!(opened.key_ids().unwrap(), before);
        // An export of the secret's slot would open nothing without the file.
        let err = opened
            .export_key(arca_repo::KeyTextFormat::Plain)
            .unwrap_err();
        assert!(err.to_string().contains("generated secret"), "{err}");
        // The last password stays: secrets alone are one file on one machine.
        let password = keys.iter().find(|k| k.kdf != SlotKdf::Secret).unwrap().id;
        let err = opened.remove_key(&password).unwrap_err();
        assert!(err.to_string().contains("last password"), "{err}");
        let err = opened.remove_key(&id).unwrap_err();
        assert!(err.to_string().contains("another secret"), "{err}");
        let second = opened.add_key(b"second", FAST).unwrap();
        opened.remove_key(&password).unwrap();
        let with_password = Repository::open(backend.clone(), b"second").unwrap();
        assert_eq!(with_password.key_id(), second);
        with_password.remove_key(&id).unwrap();
        assert_eq!(
            Repository::open(backend, text.as_bytes())
                .unwrap_err()
                .kind(),
            ErrorKind::WrongPassword
        );
    }

    #[test]
    fn a_key_file_repository_gets_no_secret_in_keys() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("repo.key");
        let (backend, _) = memory_repository_keyed(b"pw", Some(&file));
        let repo = open_with(&backend, b"pw", &file).unwrap();
        let secret = dir.path().join("secret");
        let err = repo.add_secret(&secret).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(!secret.exists());
        assert!(backend.list(FileKind::Key).unwrap().is_empty());
    }

    #[test]
    fn a_secret_whose_slot_was_not_stored_leaves_no_file() {
        use arca_backends::{BackendError, Call, Intercept, WriteBackend};
        let dir = tempfile::tempdir().unwrap();
        let inner: Arc<dyn WriteBackend> = Arc::new(arca_backends::MemoryBackend::new());
        let init = InitOptions {
            kdf: FAST,
            ..InitOptions::default()
        };
        Repository::init(inner.clone(), b"pw", &init).unwrap();
        let backend: Arc<dyn WriteBackend> = Arc::new(Intercept::new(
            inner,
            Box::new(|call| match call {
                Call::Write(FileKind::Key, ..) => Err(BackendError::new(
                    arca_backends::ErrorKind::Permanent,
                    "write",
                    "keys/x",
                    "read-only",
                )),
                _ => Ok(()),
            }),
        ));
        let repo = Repository::open(backend, b"pw").unwrap();
        let path = dir.path().join("secret");
        assert!(repo.add_secret(&path).is_err());
        assert!(!path.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn init_keeps_the_key_file_when_the_config_was_written_after_all() {
        use arca_backends::{BackendError, Call, Intercept, WriteBackend};
        let dir = tempfile::tempdir().unwrap();
        for stored in [true, false] {
            let file = dir.path().join(format!("repo-{stored}.key"));
            let inner: Arc<dyn WriteBackend> = Arc::new(arca_backends::MemoryBackend::new());
            let target = inner.clone();
            let backend: Arc<dyn WriteBackend> = Arc::new(Intercept::new(
                inner.clone(),
                Box::new(move |call| match call {
                    Call::Write(FileKind::Config, id, data) => {
                        if stored {
                            target.write(FileKind::Config, id, (*data).clone())?;
                        }
                        Err(BackendError::new(
                            arca_backends::ErrorKind::Transient,
                            "write",
                            "config",
                            "connection reset",
                        ))
                    }
                    _ => Ok(()),
                }),
            ));
            let init = InitOptions {
                kdf: FAST,
                key_file: Some(file.clone()),
                ..InitOptions::default()
            };
            assert!(Repository::init(backend, b"pw", &init).is_err());
            assert_eq!(file.exists(), stored);
            if stored {
                open_with(&inner, b"pw", &file).unwrap();
            }
        }
    }

    #[test]
    fn a_key_file_repository_keeps_needing_a_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("repo.key");
        let backend: Arc<dyn arca_backends::WriteBackend> =
            Arc::new(arca_backends::MemoryBackend::new());
        let init = InitOptions {
            kdf: FAST,
            key_file: Some(file.clone()),
            ..InitOptions::default()
        };
        let repo = Repository::init(backend.clone(), b"pw", &init).unwrap();
        assert_eq!(repo.key_file(), Some(file.as_path()));
        assert!(backend.list(FileKind::Key).unwrap().is_empty());
        let err = Repository::open(backend.clone(), b"pw").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::KeyFileRequired);
        let err = Repository::init(backend.clone(), b"pw", &init).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
        // A key file written for a location that then turns out not empty is removed.
        let unused = dir.path().join("unused.key");
        let again = InitOptions {
            key_file: Some(unused.clone()),
            ..init.clone()
        };
        let err = Repository::init(backend.clone(), b"pw", &again).unwrap_err();
        assert!(err.to_string().contains("not empty"), "{err}");
        assert!(!unused.exists());

        let repo = open_with(&backend, b"pw", &file).unwrap();
        let keys = repo.keys().unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].key_file.as_deref(), Some(file.as_path()));
        // Nothing may weaken it or leave it without a key.
        let err = repo.add_key(b"other", FAST).unwrap_err();
        assert!(err.to_string().contains("key file"), "{err}");
        assert!(backend.list(FileKind::Key).unwrap().is_empty());
        let err = repo.remove_key(&keys[0].id).unwrap_err();
        assert!(err.to_string().contains("delete the file"), "{err}");

        // A second key file with its own passphrase.
        let second = dir.path().join("second.key");
        let id = repo.add_key_file(&second, b"two", FAST).unwrap();
        assert!(repo.add_key_file(&second, b"three", FAST).is_err());
        assert_eq!(
            open_with(&backend, b"two", &second)
                .unwrap()
                .keys()
                .unwrap()[0]
                .id,
            id
        );
        assert_eq!(
            open_with(&backend, b"pw", &second).unwrap_err().kind(),
            ErrorKind::WrongPassword
        );

        // passwd rewrites the file in place.
        let new = repo.change_passphrase(b"new", FAST).unwrap();
        assert_eq!(
            open_with(&backend, b"pw", &file).unwrap_err().kind(),
            ErrorKind::WrongPassword
        );
        let again = open_with(&backend, b"new", &file).unwrap();
        assert_eq!(again.keys().unwrap()[0].id, new);
        assert_eq!(again.config(), repo.config());
    }

    #[test]
    fn the_last_slot_in_keys_goes_only_when_a_key_file_opened_the_repository() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("k");
        let (backend, repo) = memory_repository_keyed(b"pw", None);
        let slot = repo.keys().unwrap()[0].id;
        repo.add_key_file(&file, b"pw", FAST).unwrap();
        let with_file = open_with(&backend, b"pw", &file).unwrap();
        let keys = with_file.keys().unwrap();
        assert_eq!(keys.len(), 2);
        assert!(!keys[0].current && keys[1].current);
        with_file.remove_key(&slot).unwrap();
        // Now only the key file opens it.
        assert_eq!(
            Repository::open(backend.clone(), b"pw").unwrap_err().kind(),
            ErrorKind::KeyFileRequired
        );
        assert!(open_with(&backend, b"pw", &file).is_ok());
    }

    #[test]
    fn a_key_file_of_another_repository_or_damaged_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let (file_a, file_b) = (dir.path().join("a"), dir.path().join("b"));
        let (a, _) = memory_repository_keyed(b"pw", Some(&file_a));
        memory_repository_keyed(b"pw", Some(&file_b));
        let err = open_with(&a, b"pw", &file_b).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        let text = err.to_string();
        assert!(
            text.contains(&format!("key file {}", file_b.display())),
            "{text}"
        );
        assert!(text.contains("belongs to another repository"), "{text}");
        let err = open_with(&a, b"wrong", &file_a).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WrongPassword);
        assert!(
            err.to_string().contains(&file_a.display().to_string()),
            "{err}"
        );
        std::fs::write(&file_b, b"garbage").unwrap();
        let err = open_with(&a, b"pw", &file_b).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt);
        assert!(
            err.to_string().contains(&file_b.display().to_string()),
            "{err}"
        );
        // An existing file is never overwritten by init, and no repository appears.
        let fresh: Arc<dyn arca_backends::WriteBackend> =
            Arc::new(arca_backends::MemoryBackend::new());
        let init = InitOptions {
            kdf: FAST,
            key_file: Some(file_b.clone()),
            ..InitOptions::default()
        };
        let err = Repository::init(fresh.clone(), b"pw", &init).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&file_b).unwrap(), b"garbage");
        assert!(!Repository::exists(fresh.as_ref()).unwrap());
    }
}
