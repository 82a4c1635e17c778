//! The repository format's error type.

use arca_backends::BackendError;
use arca_crypto::CryptoError;

/// Errors from reading, writing or decoding repository objects.
///
/// Every variant that concerns a stored object names it (kind and id), so a message
/// tells the user which file is damaged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RepoError {
    /// The storage failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// No repository exists at the location.
    #[error("no repository at {location}")]
    NotFound {
        /// The location.
        location: String,
    },
    /// No key slot opens with the given passphrase.
    #[error("wrong password: no key slot of the repository opens with it")]
    WrongPassword,
    /// The repository has no key slot in `keys/`: its key is kept outside it, in a key
    /// file (docs/design.md §5.6), which must be given to open it.
    #[error("the repository at {location} keeps its key outside the repository (in a key file)")]
    NoKeySlots {
        /// The repository's location.
        location: String,
    },
    /// A key slot opened, but it wraps the key of another repository.
    #[error("{object} belongs to another repository ({repository})")]
    ForeignKey {
        /// The slot, e.g. `key 1a2b…` or `key file /media/usb/arca.key`.
        object: String,
        /// The short id of the repository it belongs to.
        repository: String,
    },
    /// Exported key text (`arca key export`) that cannot be read back; `line` is the
    /// line of the text (plain format) or the printed line number (paper format).
    #[error("line {line}: {reason}")]
    KeyText {
        /// Where the problem is.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A stored object failed to authenticate or decode.
    #[error("{object} is damaged: {reason}")]
    Corrupt {
        /// The object, e.g. `pack 1a2b3c4d…` or `blob 5e6f7a8b… in pack 1a2b3c4d…`.
        object: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A stored object uses a format version this program does not know.
    #[error("{object} uses format version {found}; this arca reads version {supported}")]
    UnsupportedVersion {
        /// The object.
        object: String,
        /// The version found.
        found: u32,
        /// The highest version supported.
        supported: u32,
    },
    /// A blob the index does not know was requested.
    #[error("blob {0} is not in the index")]
    BlobNotFound(String),
    /// A cryptographic operation failed for a reason other than authentication.
    #[error("{context}: {source}")]
    Crypto {
        /// What was being done.
        context: String,
        /// The failure.
        #[source]
        source: CryptoError,
    },
    /// Invalid settings or arguments (e.g. an unknown compression name).
    #[error("{0}")]
    InvalidInput(String),
}

impl RepoError {
    /// A [`RepoError::Corrupt`] for `object`.
    pub fn corrupt(object: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Corrupt {
            object: object.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn crypto(context: impl Into<String>, source: CryptoError) -> Self {
        Self::Crypto {
            context: context.into(),
            source,
        }
    }
}
