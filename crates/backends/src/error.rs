//! Backend errors.

use std::io;

/// What kind of failure a backend reports; callers and retry decorators branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The object (or the repository) does not exist.
    NotFound,
    /// The object already exists (writes are write-once).
    AlreadyExists,
    /// A failure that may go away if retried (timeout, connection reset, throttling).
    Transient,
    /// A failure that will not go away by retrying (permissions, damage, bad request).
    Permanent,
}

/// A failed backend operation, naming the operation and the object or location.
#[derive(Debug, thiserror::Error)]
#[error("{operation} {object}: {message}")]
pub struct BackendError {
    kind: ErrorKind,
    operation: &'static str,
    object: String,
    message: String,
    #[source]
    source: Option<io::Error>,
}

impl BackendError {
    /// A new error of `kind` for `operation` (e.g. "read") on `object` (a path or name).
    pub fn new(
        kind: ErrorKind,
        operation: &'static str,
        object: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            operation,
            object: object.into(),
            message: message.into(),
            source: None,
        }
    }

    /// [`ErrorKind::NotFound`]: `object` does not exist.
    pub fn not_found(operation: &'static str, object: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, operation, object, "no such object")
    }

    /// [`ErrorKind::AlreadyExists`]: `object` exists (writes are write-once).
    pub fn already_exists(operation: &'static str, object: impl Into<String>) -> Self {
        Self::new(
            ErrorKind::AlreadyExists,
            operation,
            object,
            "object already exists",
        )
    }

    /// Wraps an I/O error, classifying it by its kind.
    pub fn from_io(operation: &'static str, object: impl Into<String>, err: io::Error) -> Self {
        let kind = match err.kind() {
            io::ErrorKind::NotFound => ErrorKind::NotFound,
            io::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
            io::ErrorKind::Interrupted
            | io::ErrorKind::TimedOut
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => ErrorKind::Transient,
            _ => ErrorKind::Permanent,
        };
        Self {
            kind,
            operation,
            object: object.into(),
            message: err.to_string(),
            source: Some(err),
        }
    }

    /// The same error with `note` added to its message.
    #[must_use]
    pub fn context(mut self, note: impl std::fmt::Display) -> Self {
        self.message = format!("{} ({note})", self.message);
        self
    }

    /// The failure's kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The object or location concerned.
    pub fn object(&self) -> &str {
        &self.object
    }

    /// True for [`ErrorKind::NotFound`].
    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }
}
