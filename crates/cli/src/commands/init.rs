//! `arca init`.

use anyhow::{Context, bail};
use arca_core::{ChunkerParams, Compression, IdAlgorithm, InitOptions, Repository};
use serde::Serialize;

use super::{KdfArgs, parse_size};
use crate::app::GlobalArgs;
use crate::{exit, output};

/// Create a new, empty repository. The location must not exist or be an empty directory.
///
/// With the global --key-file FILE, the key is written to FILE (which must not exist)
/// instead of into the repository: every command then needs both the password and FILE.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  arca -r /srv/backup init
  arca -r /mnt/usb/repo init --compression zstd,6 --id-hash sha256
  arca -r sftp:nas:/backup/laptop init --key-file ~/.config/arca/laptop.key")]
pub struct Args {
    #[arg(
        long,
        value_name = "C",
        default_value = "zstd,3",
        help = "Compression of new data: zstd[,LEVEL], lz4, auto[,LEVEL] or none"
    )]
    compression: String,

    /// Chunk id hash: blake3, sha256 (HMAC-SHA-256) or blake2b
    #[arg(long = "id-hash", value_name = "H", default_value = "blake3")]
    id_hash: String,

    /// Content-defined chunk sizes MIN,AVG,MAX
    #[arg(long, value_name = "MIN,AVG,MAX", default_value = "64K,256K,1M")]
    chunk_size: String,

    /// Target size of pack files
    #[arg(long, value_name = "SIZE", default_value = "16M")]
    pack_size: String,

    #[command(flatten)]
    kdf: KdfArgs,

    /// Print the result as JSON
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct InitJson {
    repository_id: String,
    location: String,
    compression: String,
    id_hash: String,
    chunk_min: u32,
    chunk_avg: u32,
    chunk_max: u32,
    pack_size: u32,
    key_file: Option<String>,
}

fn chunker(text: &str) -> anyhow::Result<ChunkerParams> {
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    let [min, avg, max] = parts.as_slice() else {
        bail!("invalid --chunk-size {text:?}: expected MIN,AVG,MAX such as 64K,256K,1M");
    };
    let size = |s: &str| -> anyhow::Result<u32> {
        u32::try_from(parse_size(s)?).context("chunk size too large")
    };
    let params = ChunkerParams {
        min_size: size(min)?,
        avg_size: size(avg)?,
        max_size: size(max)?,
        normalization: 1,
    };
    params
        .validate()
        .with_context(|| format!("invalid --chunk-size {text:?}"))?;
    Ok(params)
}

pub fn run(g: &GlobalArgs, a: &Args) -> anyhow::Result<u8> {
    let compression: Compression = a.compression.parse()?;
    let id_algorithm = IdAlgorithm::from_name(&a.id_hash).with_context(|| {
        format!(
            "unknown --id-hash {:?}: expected blake3, sha256 or blake2b",
            a.id_hash
        )
    })?;
    let pack_size = u32::try_from(parse_size(&a.pack_size)?).context("--pack-size is too large")?;
    let kdf = a.kdf.params()?;
    let options = InitOptions {
        compression,
        id_algorithm,
        chunker: chunker(&a.chunk_size)?,
        pack_size,
        kdf,
        key_file: g.key_file.clone(),
    };
    let backend = g.backend()?;
    if Repository::exists(backend.as_ref())? {
        bail!("a repository already exists at {}", backend.location());
    }
    // Before the password is asked for: init never overwrites a file.
    if let Some(path) = &g.key_file {
        arca_core::check_new_key_file(path)?;
    }
    let password = crate::password::obtain(g, true)?;
    let repo = Repository::init(backend, password.as_bytes(), &options)?;
    let config = repo.config();
    if a.json {
        output::json(&InitJson {
            repository_id: config.repository_id.to_string(),
            location: repo.location(),
            compression: config.compression.to_string(),
            id_hash: config.id_algorithm.name().to_owned(),
            chunk_min: config.chunker.min_size,
            chunk_avg: config.chunker.avg_size,
            chunk_max: config.chunker.max_size,
            pack_size: config.pack_size,
            key_file: repo.key_file().map(|p| p.display().to_string()),
        })?;
    } else if !g.quiet {
        output::line(format!(
            "created repository {} at {}",
            config.repository_id.short(),
            repo.location()
        ))?;
        match repo.key_file() {
            Some(path) => {
                output::line(format!(
                    "The key is in {}, not in the repository: every command needs --key-file.",
                    path.display()
                ))?;
                output::line(
                    "Keep the password and a copy of that file safe (arca key export --paper): without both no backup in this repository can be read.",
                )?;
            }
            None => output::line(
                "Keep the password safe: without it no backup in this repository can be read.",
            )?,
        }
    }
    Ok(exit::OK)
}
