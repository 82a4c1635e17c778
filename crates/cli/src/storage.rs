//! Options for reaching the repository's storage: connections, rate limits, timeouts,
//! and the S3 settings that are not part of a location.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use arca_core::{BackendOptions, FaultPlan, Limits, Location, OpenOptions, WriteBackend};

use crate::output;

/// Storage options every command takes.
#[derive(Debug, Clone, clap::Args)]
pub struct StorageArgs {
    /// At most N requests to the storage at once (default: 8 for remote repositories)
    #[arg(long, global = true, env = "ARCA_CONNECTIONS", value_name = "N")]
    pub connections: Option<usize>,

    /// Limit uploads to RATE KiB/s
    #[arg(long, global = true, env = "ARCA_LIMIT_UPLOAD", value_name = "RATE")]
    pub limit_upload: Option<u64>,

    /// Limit downloads to RATE KiB/s
    #[arg(long, global = true, env = "ARCA_LIMIT_DOWNLOAD", value_name = "RATE")]
    pub limit_download: Option<u64>,

    /// Give up on a storage request after SECONDS (it is then retried)
    #[arg(
        long,
        global = true,
        env = "ARCA_TIMEOUT",
        value_name = "SECONDS",
        default_value_t = 600
    )]
    pub timeout: u64,

    /// Retry a failing storage request N times, waiting longer each time
    #[arg(
        long,
        global = true,
        env = "ARCA_RETRIES",
        value_name = "N",
        default_value_t = 8
    )]
    pub retries: u32,

    /// S3: storage class of new objects (STANDARD_IA, INTELLIGENT_TIERING, ...)
    #[arg(
        long,
        global = true,
        env = "ARCA_S3_STORAGE_CLASS",
        value_name = "CLASS"
    )]
    pub s3_storage_class: Option<String>,

    /// SFTP: log in with this private key (else the SSH agent and ~/.ssh/id_*)
    #[arg(long, global = true, env = "ARCA_SFTP_KEY", value_name = "FILE")]
    pub sftp_key: Option<std::path::PathBuf>,

    /// SFTP: the known_hosts file the server's key must be in (default ~/.ssh/known_hosts)
    #[arg(
        long,
        global = true,
        env = "ARCA_SFTP_KNOWN_HOSTS",
        value_name = "FILE"
    )]
    pub sftp_known_hosts: Option<std::path::PathBuf>,

    /// Keep the metadata cache of remote repositories under DIR (default:
    /// $XDG_CACHE_HOME/arca or ~/.cache/arca)
    #[arg(long, global = true, env = "ARCA_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<std::path::PathBuf>,

    /// Do not use or fill the metadata cache
    #[arg(long, global = true)]
    pub no_cache: bool,

    /// Inject storage failures (for testing arca itself)
    #[arg(
        long,
        global = true,
        env = "ARCA_TEST_FAULTS",
        hide = true,
        value_name = "PLAN"
    )]
    pub test_faults: Option<String>,
}

impl StorageArgs {
    /// The options these flags ask for; retries are reported on stderr.
    pub fn options(&self) -> anyhow::Result<BackendOptions> {
        let kib = |v: Option<u64>, flag: &str| -> anyhow::Result<Option<u64>> {
            match v {
                Some(0) => anyhow::bail!("{flag} must be at least 1 (KiB/s)"),
                Some(n) => Ok(Some(
                    n.checked_mul(1024)
                        .context(format!("{flag} is too large"))?,
                )),
                None => Ok(None),
            }
        };
        if self.connections == Some(0) {
            anyhow::bail!("--connections must be at least 1");
        }
        if self.timeout == 0 {
            anyhow::bail!("--timeout must be at least 1 second");
        }
        let mut options = BackendOptions::default();
        options.limits = Limits {
            connections: self.connections,
            upload: kib(self.limit_upload, "--limit-upload")?,
            download: kib(self.limit_download, "--limit-download")?,
        };
        options.retry.retries = self.retries;
        options.timeout = Some(Duration::from_secs(self.timeout));
        options.s3_storage_class = self.s3_storage_class.clone();
        options.sftp_key = self.sftp_key.clone();
        options.sftp_known_hosts = self.sftp_known_hosts.clone();
        options.faults = match &self.test_faults {
            Some(plan) => Some(plan.parse::<FaultPlan>()?),
            None => None,
        };
        options.on_retry = Some(Arc::new(|e, n, delay| {
            output::message(format!(
                "warning: {e}; retry {n} in {:.1} s",
                delay.as_secs_f64()
            ));
        }));
        Ok(options)
    }

    /// Where the metadata cache of `location` goes: remote repositories only (a local
    /// one is as fast to read as a cache), unless `--cache-dir` asks for it.
    pub fn open_options(&self, location: &Location) -> OpenOptions {
        let mut options = OpenOptions::default();
        if self.no_cache {
            return options;
        }
        options.cache_dir = self.cache_dir.clone().or_else(|| {
            location
                .is_remote()
                .then(Self::default_cache_base)
                .flatten()
        });
        options
    }

    /// Where this host keeps arca's local state (cache, check rotation): `--cache-dir`,
    /// else `$XDG_CACHE_HOME/arca` or `~/.cache/arca`; none with `--no-cache`.
    pub fn state_dir(&self) -> Option<std::path::PathBuf> {
        if self.no_cache {
            return None;
        }
        self.cache_dir.clone().or_else(Self::default_cache_base)
    }

    fn default_cache_base() -> Option<std::path::PathBuf> {
        let xdg = std::env::var_os("XDG_CACHE_HOME")
            .map(std::path::PathBuf::from)
            .filter(|p| p.is_absolute());
        let home = std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache"));
        xdg.or(home).map(|base| base.join("arca"))
    }

    /// Opens `location` with these options.
    pub fn open(&self, location: &Location) -> anyhow::Result<Arc<dyn WriteBackend>> {
        Ok(location.open(&self.options()?)?)
    }
}
