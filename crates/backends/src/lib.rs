//! Storage for arca repositories: two small synchronous traits and their implementations.
//!
//! A backend stores opaque, already-encrypted objects addressed by a [`FileKind`] and an
//! [`ObjectId`]; it never sees plaintext or keys. [`ReadBackend`] lists and reads,
//! [`WriteBackend`] adds atomic write-once creation and removal. Errors say whether an
//! object was not found, already exists, or the failure is transient or permanent
//! ([`ErrorKind`]), which is what retry decorators and callers branch on.
//!
//! Implementations: [`LocalBackend`] (a directory; writes go to a temporary file that is
//! fsynced and then linked into place, so an object is never partly visible) and
//! [`MemoryBackend`] (for tests and embedding); [`S3Backend`] and [`B2Backend`] (Backblaze
//! B2's native API) keep objects in a bucket over HTTP. With the `conformance` feature,
//! `conformance::run` checks any backend against the contract.
//!
//! Decorators wrap any backend and implement the same traits: [`Retry`] (transient
//! failures, exponential backoff with jitter), [`Throttle`] (concurrent calls, upload
//! and download rates), [`Faults`] (injected failures, for tests) and [`Intercept`] (a
//! hook before every call). Stack them as
//! `Retry(Throttle(backend))`, so that waiting between retries holds no connection.
//!
//! ```
//! use arca_backends::{FileKind, MemoryBackend, ObjectId, ReadBackend, WriteBackend};
//!
//! let backend = MemoryBackend::new();
//! backend.create()?;
//! let id = ObjectId::from_bytes([7; 32]);
//! backend.write(FileKind::Snapshot, &id, bytes::Bytes::from_static(b"sealed bytes"))?;
//! assert_eq!(backend.read_range(FileKind::Snapshot, &id, 7, 5)?, &b"bytes"[..]);
//! assert_eq!(backend.list(FileKind::Snapshot)?, vec![(id, 12)]);
//! # Ok::<(), arca_backends::BackendError>(())
//! ```
//!
//! This crate depends on nothing else in the workspace.

#[cfg(feature = "b2")]
mod b2;
mod error;
mod faults;
#[cfg(any(feature = "s3", feature = "b2"))]
mod http;
mod kind;
mod layer;
mod local;
mod memory;
mod retry;
#[cfg(feature = "s3")]
mod s3;
#[cfg(feature = "sftp")]
mod sftp;
mod throttle;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

#[cfg(feature = "b2")]
pub use b2::{B2Backend, B2Config, B2ConfigError};
pub use error::{BackendError, ErrorKind};
pub use faults::{FaultPlan, Faults, Intercept, InterceptHook, ParseFaultPlanError, ReceivedHook};
#[cfg(any(feature = "s3", feature = "b2"))]
pub use http::HttpOptions;
pub use kind::{FileKind, ObjectId, ParseIdError};
pub use layer::{Call, Transfer};
pub use local::LocalBackend;
pub use memory::MemoryBackend;
pub use retry::{Retry, RetryHook, RetryPolicy};
#[cfg(feature = "s3")]
pub use s3::{S3Backend, S3Config, S3ConfigError};
#[cfg(feature = "sftp")]
pub use sftp::{SftpBackend, SftpConfig, SftpConfigError};
pub use throttle::{Limits, Throttle};

/// How the names of the temporary files that local and SFTP writes make start; no
/// object's name does.
pub(crate) const TEMP_PREFIX: &str = ".tmp-";

/// Whether a file named `name` is a temporary file of a write ([`TEMP_PREFIX`]).
pub(crate) fn is_temporary(name: &std::ffi::OsStr) -> bool {
    name.as_encoded_bytes().starts_with(TEMP_PREFIX.as_bytes())
}

/// Where writes leave their temporary files, beside their objects: the root (for
/// `config`), each kind's directory but `data`, and `pack_dirs` (the `data/XX`).
pub(crate) fn temporary_dirs(
    root: &std::path::Path,
    pack_dirs: Vec<std::path::PathBuf>,
) -> Vec<std::path::PathBuf> {
    let mut dirs = vec![root.to_path_buf()];
    dirs.extend(
        FileKind::ALL
            .into_iter()
            .filter(|kind| !matches!(kind, FileKind::Config | FileKind::Pack))
            .map(|kind| root.join(kind.dir_name())),
    );
    dirs.extend(pack_dirs);
    dirs
}

/// Where a backend's configuration looks up environment variables (`std::env::var` in
/// production; a map in tests).
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Read access to a repository's storage. Implementations are `Send + Sync` and may be
/// called from many threads at once.
pub trait ReadBackend: Send + Sync {
    /// Where the repository lives, for messages. Never contains credentials.
    fn location(&self) -> String;

    /// Every object of `kind` with its size in bytes, in no particular order.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] if the repository itself does not exist; otherwise
    /// transient or permanent storage errors.
    fn list(&self, kind: FileKind) -> Result<Vec<(ObjectId, u64)>, BackendError>;

    /// The whole object.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] if it does not exist; storage errors otherwise.
    fn read_full(&self, kind: FileKind, id: &ObjectId) -> Result<Bytes, BackendError>;

    /// Exactly `length` bytes starting at `offset`.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] if the object does not exist; [`ErrorKind::Permanent`] if
    /// the range extends past its end (a short object is damage, not a short read).
    fn read_range(
        &self,
        kind: FileKind,
        id: &ObjectId,
        offset: u64,
        length: u64,
    ) -> Result<Bytes, BackendError>;
}

/// Write access. Objects are write-once: they are created whole and never modified.
pub trait WriteBackend: ReadBackend {
    /// Creates an empty repository location.
    ///
    /// # Errors
    /// [`ErrorKind::AlreadyExists`] if the location already holds anything.
    fn create(&self) -> Result<(), BackendError>;

    /// Stores an object atomically: readers see either nothing or all of `data`, also
    /// across a crash. Durable when this returns.
    ///
    /// # Errors
    /// [`ErrorKind::AlreadyExists`] if an object with this kind and id exists (it is left
    /// unchanged); storage errors otherwise.
    fn write(&self, kind: FileKind, id: &ObjectId, data: Bytes) -> Result<(), BackendError>;

    /// Deletes an object.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] if it does not exist; storage errors otherwise.
    fn remove(&self, kind: FileKind, id: &ObjectId) -> Result<(), BackendError>;

    /// Starts an object that the caller hands over piece by piece, for backends that can
    /// store it without holding it whole in memory; `None` from the others (the caller
    /// then assembles the object and calls [`WriteBackend::write`]).
    ///
    /// The object appears only at [`ObjectWriter::commit`], atomically and durably, as
    /// with `write`. A writer dropped without committing leaves no object (after a crash
    /// a temporary file may stay behind, which listings and reads ignore).
    ///
    /// # Errors
    /// Storage errors while preparing the temporary storage.
    fn start_write(
        &self,
        kind: FileKind,
        id: &ObjectId,
    ) -> Result<Option<Box<dyn ObjectWriter>>, BackendError> {
        let _ = (kind, id);
        Ok(None)
    }

    /// Removes the temporary files of writes that never finished (their process died
    /// before committing or cleaning up) last modified before `before`, and returns how
    /// many it removed. Listings and reads never see such files, so nothing else frees
    /// their space. Backends whose writes leave nothing behind keep this default, which
    /// removes nothing.
    ///
    /// A temporary file of a write in progress looks the same: callers must know that
    /// no writer is at work (`prune` calls this when no session is registered) or pass
    /// a `before` no running write can predate.
    ///
    /// # Errors
    /// Storage errors while listing or removing.
    fn remove_stale_temporaries(&self, before: SystemTime) -> Result<u64, BackendError> {
        let _ = before;
        Ok(0)
    }
}

/// An object being written piece by piece; see [`WriteBackend::start_write`].
pub trait ObjectWriter: Send {
    /// Appends `data` to the object.
    ///
    /// # Errors
    /// Storage errors; the object can then only be dropped.
    fn append(&mut self, data: &[u8]) -> Result<(), BackendError>;

    /// Stores the object: atomic and durable when this returns, as with
    /// [`WriteBackend::write`].
    ///
    /// # Errors
    /// [`ErrorKind::AlreadyExists`] if an object with this kind and id exists (it is left
    /// unchanged); storage errors otherwise. Either way nothing of this object is kept.
    fn commit(self: Box<Self>) -> Result<(), BackendError>;
}

macro_rules! forward_backend {
    ($($ty:ty),*) => {$(
        impl<T: ReadBackend + ?Sized> ReadBackend for $ty {
            fn location(&self) -> String {
                (**self).location()
            }
            fn list(&self, kind: FileKind) -> Result<Vec<(ObjectId, u64)>, BackendError> {
                (**self).list(kind)
            }
            fn read_full(&self, kind: FileKind, id: &ObjectId) -> Result<Bytes, BackendError> {
                (**self).read_full(kind, id)
            }
            fn read_range(
                &self,
                kind: FileKind,
                id: &ObjectId,
                offset: u64,
                length: u64,
            ) -> Result<Bytes, BackendError> {
                (**self).read_range(kind, id, offset, length)
            }
        }
        impl<T: WriteBackend + ?Sized> WriteBackend for $ty {
            fn create(&self) -> Result<(), BackendError> {
                (**self).create()
            }
            fn write(&self, kind: FileKind, id: &ObjectId, data: Bytes) -> Result<(), BackendError> {
                (**self).write(kind, id, data)
            }
            fn remove(&self, kind: FileKind, id: &ObjectId) -> Result<(), BackendError> {
                (**self).remove(kind, id)
            }
            fn start_write(
                &self,
                kind: FileKind,
                id: &ObjectId,
            ) -> Result<Option<Box<dyn ObjectWriter>>, BackendError> {
                (**self).start_write(kind, id)
            }
            fn remove_stale_temporaries(&self, before: SystemTime) -> Result<u64, BackendError> {
                (**self).remove_stale_temporaries(before)
            }
        }
    )*};
}

forward_backend!(Arc<T>, Box<T>, &T);
