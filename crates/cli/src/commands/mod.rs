//! One module per subcommand: parse its arguments, build the library's options, call
//! the library, print the outcome.

pub mod backup;
pub mod check;
pub mod init;
pub mod ls;
pub mod restore;
pub mod snapshots;

use anyhow::Context;

/// Parses a size such as `16M`, `64K`, `1.5G` or `1048576` (binary units: K = 1024).
pub fn parse_size(text: &str) -> anyhow::Result<u64> {
    parse_size::Config::new()
        .with_binary()
        .parse_size(text)
        .with_context(|| format!("invalid size {text:?} (examples: 512K, 16M, 1G)"))
}
