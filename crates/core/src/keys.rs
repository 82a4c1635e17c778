//! Key management: several passphrases for one repository, each a key slot that wraps
//! the same master key.

use arca_backends::{FileKind, ObjectId};
use arca_crypto::KdfParams;
use arca_repo::KeyInfo;

use crate::{Error, ErrorKind, Repository, Result};

/// A key slot of the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyEntry {
    /// The slot's id.
    pub id: ObjectId,
    /// Its key derivation settings.
    pub kdf: KdfParams,
    /// Whether the passphrase in use opened this slot.
    pub current: bool,
}

impl Repository {
    /// Every key slot, sorted by id; a damaged one is an error naming it.
    ///
    /// # Errors
    /// Storage errors; `Corrupt` for a damaged slot.
    pub fn keys(&self) -> Result<Vec<KeyEntry>> {
        let mut ids: Vec<ObjectId> = self
            .repo
            .list(FileKind::Key)?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        ids.sort();
        ids.into_iter()
            .map(|id| {
                let slot = self.repo.load_key_slot(&id)?;
                Ok(KeyEntry {
                    id,
                    kdf: slot.kdf,
                    current: id == self.repo.key_id(),
                })
            })
            .collect()
    }

    /// Adds a key slot for `passphrase` (derived with `kdf`); returns its id.
    ///
    /// # Errors
    /// `InvalidInput` for an empty passphrase or invalid KDF settings; storage errors.
    pub fn add_key(&self, passphrase: &[u8], kdf: KdfParams) -> Result<ObjectId> {
        if passphrase.is_empty() {
            return Err(Error::invalid("the new password is empty"));
        }
        kdf.validate()
            .map_err(|e| Error::invalid(format!("invalid key derivation settings: {e}")))?;
        let info = KeyInfo {
            repository_id: self.repo.config().repository_id,
            created: crate::system::now(),
            hostname: crate::system::hostname(),
            username: crate::system::username(),
        };
        Ok(self.repo.add_key(passphrase, kdf, &info)?)
    }

    /// Removes key slot `id`. The last slot cannot be removed (the repository would be
    /// unreadable), nor the one in use (change its passphrase with
    /// [`Repository::change_passphrase`] instead).
    ///
    /// # Errors
    /// `InvalidInput` for the last or the current slot; `NotFound` for an unknown id;
    /// storage errors.
    pub fn remove_key(&self, id: &ObjectId) -> Result<()> {
        let keys = self.keys()?;
        if !keys.iter().any(|k| k.id == *id) {
            return Err(Error::new(ErrorKind::NotFound, format!("no key {id}")));
        }
        if keys.len() == 1 {
            return Err(Error::invalid(format!(
                "key {id} is the repository's only key: removing it would make every backup unreadable"
            )));
        }
        if *id == self.repo.key_id() {
            return Err(Error::invalid(format!(
                "key {id} is the one in use: use another password to remove it, or change this one with `arca key passwd`"
            )));
        }
        self.repo.backend().remove(FileKind::Key, id)?;
        Ok(())
    }

    /// Replaces the passphrase in use: adds a slot for `passphrase`, then removes the
    /// slot the old one opened. Returns the new slot's id.
    ///
    /// # Errors
    /// As [`Repository::add_key`]; storage errors removing the old slot (both then
    /// work).
    pub fn change_passphrase(&self, passphrase: &[u8], kdf: KdfParams) -> Result<ObjectId> {
        let new = self.add_key(passphrase, kdf)?;
        self.repo
            .backend()
            .remove(FileKind::Key, &self.repo.key_id())?;
        Ok(new)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::InitOptions;
    use crate::testing::FAST_KDF as FAST;

    #[test]
    fn passphrases_come_and_go_but_never_the_last() {
        let backend: Arc<dyn arca_backends::WriteBackend> =
            Arc::new(arca_backends::MemoryBackend::new());
        let init = InitOptions {
            kdf: FAST,
            ..InitOptions::default()
        };
        let repo = Repository::init(backend.clone(), b"first", &init).unwrap();
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
}
