//! The plumbing shared by decorators: a backend that wraps another and runs each call
//! through one hook ([`Layer::around`]), which sees what the call is ([`Call`]) and how
//! many bytes it moved ([`Transfer`]).

use bytes::Bytes;

use crate::{BackendError, FileKind, ObjectId};

/// One backend call, as a decorator sees it.
#[derive(Debug, Clone, Copy)]
pub enum Call<'a> {
    /// [`crate::WriteBackend::create`].
    Create,
    /// [`crate::ReadBackend::list`].
    List(FileKind),
    /// [`crate::ReadBackend::read_full`] or [`crate::ReadBackend::read_range`].
    Read(FileKind, &'a ObjectId),
    /// [`crate::WriteBackend::write`], with the data being written.
    Write(FileKind, &'a ObjectId, &'a Bytes),
    /// [`crate::WriteBackend::remove`].
    Remove(FileKind, &'a ObjectId),
    /// [`crate::WriteBackend::remove_stale_temporaries`].
    RemoveTemporaries,
}

impl Call<'_> {
    /// The operation's name, as in error messages.
    pub fn operation(&self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::List(_) => "list",
            Self::Read(..) => "read",
            Self::Write(..) => "write",
            Self::Remove(..) => "remove",
            Self::RemoveTemporaries => "remove temporary files",
        }
    }

    /// The object concerned, `kind/id` (or the kind's directory for a listing).
    pub fn object(&self) -> String {
        match self {
            Self::Create | Self::RemoveTemporaries => "repository".to_owned(),
            Self::List(kind) => kind.dir_name().to_owned(),
            Self::Read(kind, id) | Self::Write(kind, id, _) | Self::Remove(kind, id) => {
                format!("{}/{id}", kind.dir_name())
            }
        }
    }
}

/// Bytes a call's result carries from the storage (for download rate limits).
pub trait Transfer {
    /// Bytes received.
    fn received(&self) -> u64 {
        0
    }

    /// The result of a write or removal that a retry finds already done (an earlier
    /// attempt succeeded but its reply was lost). Only those calls' `()` has one.
    fn already_done() -> Option<Self>
    where
        Self: Sized,
    {
        None
    }
}

impl Transfer for () {
    fn already_done() -> Option<Self> {
        Some(())
    }
}
impl Transfer for Vec<(ObjectId, u64)> {}
impl Transfer for u64 {}
impl Transfer for Bytes {
    fn received(&self) -> u64 {
        self.len() as u64
    }
}

/// A decorator: wraps `inner` and runs every call through [`Layer::around`].
pub(crate) trait Layer {
    type Inner: crate::WriteBackend + ?Sized;

    fn inner(&self) -> &Self::Inner;

    /// Runs `f` (the call to the inner backend; it may be run more than once).
    fn around<T: Transfer>(
        &self,
        call: Call<'_>,
        f: &mut dyn FnMut() -> Result<T, BackendError>,
    ) -> Result<T, BackendError>;

    /// [`crate::WriteBackend::start_write`] through this layer. By default a layer does
    /// not stream: its policy applies to whole calls, which a writer's pieces are not.
    fn start_stream(
        &self,
        kind: FileKind,
        id: &ObjectId,
    ) -> Result<Option<Box<dyn crate::ObjectWriter>>, BackendError> {
        let _ = (kind, id);
        Ok(None)
    }
}

/// Implements `ReadBackend` and `WriteBackend` for decorators through [`Layer`].
macro_rules! layer_backend {
    ($($ty:ident),*) => {$(
        impl<B: $crate::WriteBackend> $crate::ReadBackend for $ty<B> {
            fn location(&self) -> String {
                $crate::layer::Layer::inner(self).location()
            }
            fn list(&self, kind: $crate::FileKind)
                -> Result<Vec<($crate::ObjectId, u64)>, $crate::BackendError> {
                $crate::layer::Layer::around(self, $crate::Call::List(kind), &mut || {
                    $crate::layer::Layer::inner(self).list(kind)
                })
            }
            fn read_full(&self, kind: $crate::FileKind, id: &$crate::ObjectId)
                -> Result<bytes::Bytes, $crate::BackendError> {
                $crate::layer::Layer::around(self, $crate::Call::Read(kind, id), &mut || {
                    $crate::layer::Layer::inner(self).read_full(kind, id)
                })
            }
            fn read_range(
                &self,
                kind: $crate::FileKind,
                id: &$crate::ObjectId,
                offset: u64,
                length: u64,
            ) -> Result<bytes::Bytes, $crate::BackendError> {
                $crate::layer::Layer::around(self, $crate::Call::Read(kind, id), &mut || {
                    $crate::layer::Layer::inner(self).read_range(kind, id, offset, length)
                })
            }
        }
        impl<B: $crate::WriteBackend> $crate::WriteBackend for $ty<B> {
            fn create(&self) -> Result<(), $crate::BackendError> {
                $crate::layer::Layer::around(self, $crate::Call::Create, &mut || {
                    $crate::layer::Layer::inner(self).create()
                })
            }
            fn write(
                &self,
                kind: $crate::FileKind,
                id: &$crate::ObjectId,
                data: bytes::Bytes,
            ) -> Result<(), $crate::BackendError> {
                $crate::layer::Layer::around(self, $crate::Call::Write(kind, id, &data), &mut || {
                    $crate::layer::Layer::inner(self).write(kind, id, data.clone())
                })
            }
            fn remove(&self, kind: $crate::FileKind, id: &$crate::ObjectId)
                -> Result<(), $crate::BackendError> {
                $crate::layer::Layer::around(self, $crate::Call::Remove(kind, id), &mut || {
                    $crate::layer::Layer::inner(self).remove(kind, id)
                })
            }
            fn start_write(&self, kind: $crate::FileKind, id: &$crate::ObjectId)
                -> Result<Option<Box<dyn $crate::ObjectWriter>>, $crate::BackendError> {
                $crate::layer::Layer::start_stream(self, kind, id)
            }
            fn remove_stale_temporaries(&self, before: std::time::SystemTime)
                -> Result<u64, $crate::BackendError> {
                $crate::layer::Layer::around(self, $crate::Call::RemoveTemporaries, &mut || {
                    $crate::layer::Layer::inner(self).remove_stale_temporaries(before)
                })
            }
        }
    )*};
}

pub(crate) use layer_backend;
