//! One module per subcommand: parse its arguments, build the library's options, call
//! the library, print the outcome.

pub mod backup;
pub mod check;
pub mod diff;
pub mod dump;
pub mod find;
pub mod forget;
pub mod init;
pub mod key;
pub mod ls;
pub mod prune;
pub mod repair;
pub mod restore;
pub mod snapshots;
pub mod stats;
pub mod tag;
pub mod verify;

use std::path::PathBuf;

use anyhow::Context;
use arca_core::{KdfParams, SnapshotFilter, parse_time};

/// Options that narrow which snapshots a command considers.
#[derive(Debug, Clone, clap::Args)]
pub struct SnapshotArgs {
    #[command(flatten)]
    pub base: HostTagTimeArgs,

    /// Only snapshots that backed up PATH (repeatable)
    #[arg(long = "path", value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

/// The snapshot filters other than `--path`, for commands where `--path` means
/// something else.
#[derive(Debug, Clone, clap::Args)]
pub struct HostTagTimeArgs {
    /// Only snapshots of host H (repeatable)
    #[arg(long = "host", value_name = "H")]
    pub hosts: Vec<String>,

    /// Only snapshots with tag T; `a,b` needs both, repeating means either (repeatable)
    #[arg(long = "tag", value_name = "T")]
    pub tags: Vec<String>,

    /// The newest snapshot at or before WHEN: 3D, 2W, 1h30m, 2026-01-10, "2026-01-10 14:00"
    #[arg(long, value_name = "WHEN")]
    pub time: Option<String>,
}

impl SnapshotArgs {
    pub fn filter(&self) -> anyhow::Result<SnapshotFilter> {
        let mut f = self.base.filter()?;
        f.paths = self.paths.clone();
        Ok(f)
    }
}

impl HostTagTimeArgs {
    pub fn filter(&self) -> anyhow::Result<SnapshotFilter> {
        Ok(SnapshotFilter {
            hosts: self.hosts.clone(),
            tags: self
                .tags
                .iter()
                .map(|g| {
                    g.split(',')
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .collect(),
            paths: Vec::new(),
            before: self.time.as_deref().map(parse_time).transpose()?,
        })
    }
}

/// Parses a size such as `16M`, `64K`, `1.5G` or `1048576` (binary units: K = 1024).
pub fn parse_size(text: &str) -> anyhow::Result<u64> {
    parse_size::Config::new()
        .with_binary()
        .parse_size(text)
        .with_context(|| format!("invalid size {text:?} (examples: 512K, 16M, 1G)"))
}

/// The Argon2id cost of a new key slot (`init`, `key add`, `key passwd`).
#[derive(Debug, clap::Args)]
pub(crate) struct KdfArgs {
    /// Argon2id memory for the key slot, in MiB
    #[arg(long, value_name = "MIB", default_value_t = KdfParams::default().memory_kib / 1024)]
    kdf_memory: u32,

    /// Argon2id passes for the key slot
    #[arg(long, value_name = "N", default_value_t = KdfParams::default().iterations)]
    kdf_iterations: u32,

    /// Argon2id lanes for the key slot: computed on that many cores at once, so more
    /// lanes unlock sooner at the same cost to an attacker
    // The range check here makes a bad count a usage error (exit 2); `params` checks
    // all three against the library's limits.
    #[arg(long, value_name = "N", default_value_t = KdfParams::default().parallelism,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(KdfParams::MAX_PARALLELISM)))]
    kdf_lanes: u32,
}

impl KdfArgs {
    /// The settings, checked: a bad value is refused before any password is asked for.
    pub(crate) fn params(&self) -> anyhow::Result<KdfParams> {
        let kdf = KdfParams {
            memory_kib: self.kdf_memory.saturating_mul(1024),
            iterations: self.kdf_iterations,
            parallelism: self.kdf_lanes,
        };
        kdf.validate().context("invalid key derivation settings")?;
        Ok(kdf)
    }
}
