//! The library's one public error type.

use std::fmt;
use std::path::Path;

use arca_backends::{BackendError, ErrorKind as BackendErrorKind};
use arca_repo::RepoError;

/// What went wrong, for callers that branch on it (the CLI maps it to exit codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No repository at the given location.
    RepositoryNotFound,
    /// The passphrase opens no key slot.
    WrongPassword,
    /// The location already holds something (e.g. `init` on a non-empty directory).
    AlreadyExists,
    /// A repository object is damaged or has been tampered with.
    Corrupt,
    /// A repository object uses a format version this version of arca cannot read.
    UnsupportedVersion,
    /// A snapshot, path or object asked for does not exist.
    NotFound,
    /// Arguments or settings are invalid.
    InvalidInput,
    /// The storage backend failed.
    Backend,
    /// A local file operation failed.
    Io,
    /// The operation was cancelled.
    Interrupted,
    /// Another process holds the lock this operation needs (the message names it).
    Locked,
    /// The repository keeps its key outside it, in a key file (docs/design.md §5.6),
    /// and none was given ([`crate::OpenOptions::key_file`]).
    KeyFileRequired,
}

/// An error from the arca library: a kind to match on and a one-line message that
/// names the object or path concerned. Messages never contain secrets.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    /// A new error.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// The kind, for branching.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message without the kind.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }

    pub(crate) fn io(action: &str, path: &Path, err: std::io::Error) -> Self {
        let kind = if err.kind() == std::io::ErrorKind::NotFound {
            ErrorKind::NotFound
        } else {
            ErrorKind::Io
        };
        Self::new(kind, format!("{action} {}: {err}", path.display())).with_source(err)
    }

    /// Turns an I/O error into an `Error` whose message starts with `context` (e.g. a
    /// path): the library error inside it if a reader of this crate (such as
    /// [`crate::FileReader`]) produced it, else an `Io` error.
    pub fn from_io(err: std::io::Error, context: &str) -> Self {
        if err.get_ref().is_some_and(|e| e.is::<Error>()) {
            if let Some(inner) = err.into_inner()
                && let Ok(e) = inner.downcast::<Error>()
            {
                let mut e = *e;
                e.message = format!("{context}: {}", e.message);
                return e;
            }
            return Self::new(ErrorKind::Io, context.to_owned());
        }
        Self::new(ErrorKind::Io, format!("{context}: {err}")).with_source(err)
    }

    /// The error for a cancelled operation ([`ErrorKind::Interrupted`]).
    pub fn interrupted() -> Self {
        Self::new(ErrorKind::Interrupted, "interrupted")
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|s| s.as_ref() as &(dyn std::error::Error + 'static))
    }
}

impl From<BackendError> for Error {
    fn from(e: BackendError) -> Self {
        let kind = match e.kind() {
            BackendErrorKind::NotFound => ErrorKind::NotFound,
            BackendErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
            _ => ErrorKind::Backend,
        };
        Self::new(kind, e.to_string()).with_source(e)
    }
}

impl From<RepoError> for Error {
    fn from(e: RepoError) -> Self {
        match e {
            RepoError::Backend(b) => {
                let mut err = Error::from(b);
                // A missing object inside a repository is damage, not a user typo.
                if err.kind == ErrorKind::NotFound {
                    err.kind = ErrorKind::Corrupt;
                    err.message = format!("repository object missing: {}", err.message);
                }
                err
            }
            other => {
                let kind = match &other {
                    RepoError::NotFound { .. } => ErrorKind::RepositoryNotFound,
                    RepoError::WrongPassword => ErrorKind::WrongPassword,
                    RepoError::NoKeySlots { .. } => ErrorKind::KeyFileRequired,
                    RepoError::Corrupt { .. } | RepoError::BlobNotFound(_) => ErrorKind::Corrupt,
                    RepoError::KeyText { .. } | RepoError::ForeignKey { .. } => {
                        ErrorKind::InvalidInput
                    }
                    RepoError::UnsupportedVersion { .. } => ErrorKind::UnsupportedVersion,
                    RepoError::InvalidInput(_) => ErrorKind::InvalidInput,
                    _ => ErrorKind::Io,
                };
                Self::new(kind, other.to_string()).with_source(other)
            }
        }
    }
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
