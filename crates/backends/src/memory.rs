//! An in-memory repository, for tests and for embedding.

use std::collections::HashMap;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::Bytes;

use crate::{BackendError, ErrorKind, FileKind, ObjectId, ReadBackend, WriteBackend};

type Objects = HashMap<(FileKind, ObjectId), Bytes>;

/// A repository held in memory. Cloning is not supported; share it with `Arc`.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    /// `None` until [`WriteBackend::create`].
    objects: RwLock<Option<Objects>>,
}

impl MemoryBackend {
    /// A backend with no repository yet.
    pub fn new() -> Self {
        Self::default()
    }

    // Writers replace whole entries, so a poisoned lock still guards consistent data.
    fn read(&self) -> RwLockReadGuard<'_, Option<Objects>> {
        self.objects.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_lock(&self) -> RwLockWriteGuard<'_, Option<Objects>> {
        self.objects.write().unwrap_or_else(|e| e.into_inner())
    }

    fn name(kind: FileKind, id: &ObjectId) -> String {
        format!("memory:{}/{id}", kind.dir_name())
    }

    fn missing_repo(op: &'static str) -> BackendError {
        BackendError::new(
            ErrorKind::NotFound,
            op,
            "memory:",
            "repository does not exist",
        )
    }

    fn get(&self, kind: FileKind, id: &ObjectId) -> Result<Bytes, BackendError> {
        let guard = self.read();
        let objects = guard.as_ref().ok_or_else(|| Self::missing_repo("read"))?;
        objects
            .get(&(kind, *id))
            .cloned()
            .ok_or_else(|| BackendError::not_found("read", Self::name(kind, id)))
    }
}

impl ReadBackend for MemoryBackend {
    fn location(&self) -> String {
        "memory:".to_owned()
    }

    fn list(&self, kind: FileKind) -> Result<Vec<(ObjectId, u64)>, BackendError> {
        let guard = self.read();
        let objects = guard.as_ref().ok_or_else(|| Self::missing_repo("list"))?;
        Ok(objects
            .iter()
            .filter(|((k, _), _)| *k == kind)
            .map(|((_, id), data)| (*id, data.len() as u64))
            .collect())
    }

    fn read_full(&self, kind: FileKind, id: &ObjectId) -> Result<Bytes, BackendError> {
        self.get(kind, id)
    }

    fn read_range(
        &self,
        kind: FileKind,
        id: &ObjectId,
        offset: u64,
        length: u64,
    ) -> Result<Bytes, BackendError> {
        let data = self.get(kind, id)?;
        let size = data.len() as u64;
        match offset.checked_add(length) {
            Some(end) if end <= size => Ok(data.slice(offset as usize..end as usize)),
            _ => Err(BackendError::new(
                ErrorKind::Permanent,
                "read",
                Self::name(kind, id),
                format!("range {offset}+{length} passes the end of the {size}-byte object"),
            )),
        }
    }
}

impl WriteBackend for MemoryBackend {
    fn create(&self) -> Result<(), BackendError> {
        let mut guard = self.write_lock();
        if guard.as_ref().is_some_and(|o| !o.is_empty()) {
            return Err(BackendError::new(
                ErrorKind::AlreadyExists,
                "create",
                "memory:",
                "repository is not empty",
            ));
        }
        *guard = Some(HashMap::new());
        Ok(())
    }

    fn write(&self, kind: FileKind, id: &ObjectId, data: Bytes) -> Result<(), BackendError> {
        let mut guard = self.write_lock();
        let objects = guard.as_mut().ok_or_else(|| Self::missing_repo("write"))?;
        if objects.contains_key(&(kind, *id)) {
            return Err(BackendError::already_exists("write", Self::name(kind, id)));
        }
        objects.insert((kind, *id), data);
        Ok(())
    }

    fn remove(&self, kind: FileKind, id: &ObjectId) -> Result<(), BackendError> {
        let mut guard = self.write_lock();
        let objects = guard.as_mut().ok_or_else(|| Self::missing_repo("remove"))?;
        objects
            .remove(&(kind, *id))
            .map(|_| ())
            .ok_or_else(|| BackendError::not_found("remove", Self::name(kind, id)))
    }
}
