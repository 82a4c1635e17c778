//! Repository locations: from the string a user types to a backend.

use std::path::PathBuf;
use std::sync::Arc;

use arca_backends::{LocalBackend, MemoryBackend, WriteBackend};

use crate::{Error, Result};

/// Where a repository lives, parsed from a user-given string.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Location {
    /// A directory: a plain path, or `local:PATH`.
    Local(PathBuf),
    /// `memory:`, a repository that lives as long as the process (tests, demos).
    Memory,
}

impl Location {
    /// Parses a location string.
    ///
    /// # Errors
    /// [`crate::ErrorKind::InvalidInput`] for an empty string or a scheme arca does not
    /// support yet.
    pub fn parse(text: &str) -> Result<Self> {
        if text.is_empty() {
            return Err(Error::invalid("the repository location is empty"));
        }
        if let Some(path) = text.strip_prefix("local:") {
            return Ok(Self::Local(PathBuf::from(path)));
        }
        if text == "memory:" {
            return Ok(Self::Memory);
        }
        if let Some((scheme, _)) = text.split_once(':')
            && !scheme.contains('/')
            && scheme.len() > 1
            && scheme.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(Error::invalid(format!(
                "unsupported repository location {text:?}: scheme {scheme:?} is not available in this version (use a local path)"
            )));
        }
        Ok(Self::Local(PathBuf::from(text)))
    }

    /// Opens the backend for this location (nothing is read or created yet).
    pub fn backend(&self) -> Arc<dyn WriteBackend> {
        match self {
            Self::Local(p) => Arc::new(LocalBackend::new(p.clone())),
            Self::Memory => Arc::new(MemoryBackend::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse() {
        assert_eq!(
            Location::parse("/srv/repo").unwrap(),
            Location::Local("/srv/repo".into())
        );
        assert_eq!(
            Location::parse("rel/dir").unwrap(),
            Location::Local("rel/dir".into())
        );
        assert_eq!(
            Location::parse("local:/a:b").unwrap(),
            Location::Local("/a:b".into())
        );
        assert_eq!(
            Location::parse("./x:y").unwrap(),
            Location::Local("./x:y".into())
        );
        assert_eq!(Location::parse("memory:").unwrap(), Location::Memory);
        assert!(Location::parse("").is_err());
        let err = Location::parse("s3:https://host/bucket").unwrap_err();
        assert!(err.to_string().contains("s3"), "{err}");
    }
}
