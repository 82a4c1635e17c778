//! Repository locations: from the string a user types to a backend, with the shared
//! decorators (retries, connection and rate limits) around it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arca_backends::{
    B2Backend, B2Config, FaultPlan, Faults, HttpOptions, Limits, LocalBackend, MemoryBackend,
    Retry, RetryHook, RetryPolicy, S3Backend, S3Config, SftpBackend, SftpConfig, Throttle,
    WriteBackend,
};

use crate::{Error, Result};

/// Where a repository lives, parsed from a user-given string.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Location {
    /// A directory: a plain path, or `local:PATH`.
    Local(PathBuf),
    /// `memory:`, a repository that lives as long as the process (tests, demos).
    Memory,
    /// `s3://HOST[:PORT]/BUCKET[/PREFIX]`, `s3:https://...`, `s3:http://...`.
    S3(Box<S3Config>),
    /// `sftp://[USER@]HOST[:PORT]/PATH` or `sftp:[USER@]HOST:PATH`.
    Sftp(Box<SftpConfig>),
    /// `b2:BUCKET[:/PREFIX]`: Backblaze B2's native API.
    B2(Box<B2Config>),
}

/// How to reach remote storage: the decorators every backend gets, and transport
/// settings. The defaults suit a backup over the internet.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct BackendOptions {
    /// Concurrent calls (`None`: 8 for remote backends, unlimited for local ones),
    /// upload and download rates in bytes per second.
    pub limits: Limits,
    /// Retries of transient failures (remote backends only).
    pub retry: RetryPolicy,
    /// Called before each retry, to report it.
    pub on_retry: Option<RetryHook>,
    /// A request's time limit (`None`: 10 minutes).
    pub timeout: Option<Duration>,
    /// S3: the storage class of new objects.
    pub s3_storage_class: Option<String>,
    /// SFTP: a private key file to log in with (else the agent and `~/.ssh/id_*`).
    pub sftp_key: Option<PathBuf>,
    /// SFTP: the known-hosts file (else `~/.ssh/known_hosts`).
    pub sftp_known_hosts: Option<PathBuf>,
    /// Injected failures, for tests of everything above the backend.
    pub faults: Option<FaultPlan>,
}

impl std::fmt::Debug for BackendOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendOptions")
            .field("limits", &self.limits)
            .field("retry", &self.retry)
            .field("timeout", &self.timeout)
            .field("s3_storage_class", &self.s3_storage_class)
            .field("sftp_key", &self.sftp_key)
            .field("sftp_known_hosts", &self.sftp_known_hosts)
            .field("faults", &self.faults)
            .finish_non_exhaustive()
    }
}

/// Concurrent calls to a remote backend when not set.
const DEFAULT_CONNECTIONS: usize = 8;

fn lookup_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

impl Location {
    /// Parses a location string. Remote locations read their credentials and region
    /// from the environment now.
    ///
    /// # Errors
    /// [`crate::ErrorKind::InvalidInput`] for an empty string, a malformed remote location
    /// or a scheme arca does not support.
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
        if let Some(rest) = text.strip_prefix("s3:") {
            let config =
                S3Config::parse(rest, &lookup_env).map_err(|e| Error::invalid(e.to_string()))?;
            return Ok(Self::S3(Box::new(config)));
        }
        if let Some(rest) = text.strip_prefix("b2:") {
            let config =
                B2Config::parse(rest, &lookup_env).map_err(|e| Error::invalid(e.to_string()))?;
            return Ok(Self::B2(Box::new(config)));
        }
        if let Some(rest) = text.strip_prefix("sftp:") {
            let config =
                SftpConfig::parse(rest, &lookup_env).map_err(|e| Error::invalid(e.to_string()))?;
            return Ok(Self::Sftp(Box::new(config)));
        }
        if let Some((scheme, _)) = text.split_once(':')
            && !scheme.contains('/')
            && scheme.len() > 1
            && scheme.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(Error::invalid(format!(
                "unsupported repository location {text:?}: scheme {scheme:?} is not available in this version (local paths, s3:, sftp: and b2: are)"
            )));
        }
        Ok(Self::Local(PathBuf::from(text)))
    }

    /// True for storage reached over a network.
    pub fn is_remote(&self) -> bool {
        matches!(self, Self::S3(_) | Self::Sftp(_) | Self::B2(_))
    }

    /// The backend with default options (nothing is read or created yet).
    ///
    /// # Errors
    /// As [`Location::open`].
    pub fn backend(&self) -> Result<Arc<dyn WriteBackend>> {
        self.open(&BackendOptions::default())
    }

    /// The backend for this location, wrapped in the decorators `options` ask for:
    /// `Retry(Throttle(Faults(backend)))`. Nothing is read or created yet.
    ///
    /// # Errors
    /// [`crate::ErrorKind::InvalidInput`] if the location cannot be addressed (an S3
    /// bucket name that cannot be part of a URL).
    pub fn open(&self, options: &BackendOptions) -> Result<Arc<dyn WriteBackend>> {
        let http = HttpOptions {
            timeout: options.timeout.unwrap_or(HttpOptions::default().timeout),
            pool: options
                .limits
                .connections
                .unwrap_or(DEFAULT_CONNECTIONS)
                .max(HttpOptions::default().pool),
        };
        let raw: Arc<dyn WriteBackend> = match self {
            Self::Local(p) => Arc::new(LocalBackend::new(p.clone())),
            Self::Memory => Arc::new(MemoryBackend::new()),
            Self::S3(config) => {
                let mut config = (**config).clone();
                config.http = http;
                if let Some(class) = &options.s3_storage_class {
                    config.storage_class = Some(class.clone());
                }
                Arc::new(S3Backend::new(config).map_err(|e| Error::invalid(e.to_string()))?)
            }
            Self::Sftp(config) => {
                let mut config = (**config).clone();
                config.timeout = http.timeout;
                if let Some(key) = &options.sftp_key {
                    config.key_file = Some(key.clone());
                }
                if let Some(file) = &options.sftp_known_hosts {
                    config.known_hosts = file.clone();
                }
                Arc::new(SftpBackend::new(config))
            }
            Self::B2(config) => {
                let mut config = (**config).clone();
                config.http = http;
                Arc::new(B2Backend::new(config))
            }
        };
        let raw: Arc<dyn WriteBackend> = match options.faults {
            Some(plan) => Arc::new(Faults::new(raw, plan)),
            None => raw,
        };
        let mut limits = options.limits;
        if self.is_remote() && limits.connections.is_none() {
            limits.connections = Some(DEFAULT_CONNECTIONS);
        }
        let throttled: Arc<dyn WriteBackend> = if limits == Limits::default() {
            raw
        } else {
            Arc::new(Throttle::new(raw, limits))
        };
        if !self.is_remote() && options.faults.is_none() {
            return Ok(throttled);
        }
        let retry = Retry::new(throttled, options.retry);
        Ok(match &options.on_retry {
            Some(hook) => Arc::new(retry.on_retry(hook.clone())),
            None => Arc::new(retry),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(text: &str) -> PathBuf {
        match Location::parse(text).unwrap() {
            Location::Local(p) => p,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn locations_parse() {
        assert_eq!(local("/srv/repo"), PathBuf::from("/srv/repo"));
        assert_eq!(local("rel/dir"), PathBuf::from("rel/dir"));
        assert_eq!(local("local:/a:b"), PathBuf::from("/a:b"));
        assert_eq!(local("./x:y"), PathBuf::from("./x:y"));
        assert!(matches!(
            Location::parse("memory:").unwrap(),
            Location::Memory
        ));
        assert!(Location::parse("").is_err());
        match Location::parse("s3:http://127.0.0.1:9000/bucket/pre").unwrap() {
            Location::S3(c) => {
                assert_eq!(c.location(), "s3:http://127.0.0.1:9000/bucket/pre");
            }
            other => panic!("{other:?}"),
        }
        match Location::parse("sftp://backup@host:2222/srv/repo").unwrap() {
            Location::Sftp(c) => assert_eq!(c.location(), "sftp://backup@host:2222/srv/repo"),
            other => panic!("{other:?}"),
        }
        let err = Location::parse("s3://host").unwrap_err();
        assert!(err.to_string().contains("bucket"), "{err}");
        let err = Location::parse("ftp:host/dir").unwrap_err();
        assert!(err.to_string().contains("ftp"), "{err}");
    }

    #[test]
    fn injected_faults_are_retried() {
        let options = BackendOptions {
            faults: Some("transient=0.5,seed=4".parse().unwrap()),
            retry: RetryPolicy {
                retries: 30,
                initial_delay: Duration::from_micros(1),
                max_delay: Duration::from_micros(10),
            },
            ..BackendOptions::default()
        };
        let backend = Location::Memory.open(&options).unwrap();
        backend.create().unwrap();
        for kind in arca_backends::FileKind::ALL {
            assert!(backend.list(kind).unwrap().is_empty());
        }
    }
}
