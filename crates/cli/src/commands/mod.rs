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
use arca_core::{SnapshotFilter, parse_time};

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
