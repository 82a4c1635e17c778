//! The repository config: settings fixed at `init`.
//!
//! File: a 40-byte header (type 1, id = repository id), readable without a key, then a
//! sealed payload `version (u16 LE) = 1 || postcard(ConfigWire)`.

use arca_backends::ObjectId;
use arca_crypto::IdAlgorithm;
use serde::{Deserialize, Serialize};

use crate::RepoError;
use crate::compression::Compression;
use crate::tree::Timestamp;
use crate::wire::{decode_postcard, encode_versioned, expect_version, split_version};

const CONFIG_VERSION: u16 = 1;
const CHUNKER_FASTCDC_2020: u8 = 1;

/// Default target size of a pack file.
pub const DEFAULT_PACK_SIZE: u32 = 16 * 1024 * 1024;
/// Smallest allowed target pack size.
pub const MIN_PACK_SIZE: u32 = 1024 * 1024;
/// Largest allowed target pack size.
pub const MAX_PACK_SIZE: u32 = 1024 * 1024 * 1024;

/// Content-defined chunking settings: FastCDC 2020 sizes and the secret gear seed.
#[derive(Clone, PartialEq, Eq)]
pub struct ChunkerSettings {
    /// Minimum chunk size.
    pub min_size: u32,
    /// Average chunk size.
    pub avg_size: u32,
    /// Maximum chunk size.
    pub max_size: u32,
    /// Normalization level (0..=3).
    pub normalization: u8,
    /// Secret from which the gear table is derived.
    pub gear_seed: [u8; 32],
}

impl std::fmt::Debug for ChunkerSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkerSettings")
            .field("min_size", &self.min_size)
            .field("avg_size", &self.avg_size)
            .field("max_size", &self.max_size)
            .field("normalization", &self.normalization)
            .finish_non_exhaustive()
    }
}

/// The repository's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The repository's random id.
    pub repository_id: ObjectId,
    /// When it was created.
    pub created: Timestamp,
    /// The keyed hash naming blobs.
    pub id_algorithm: IdAlgorithm,
    /// Chunking settings.
    pub chunker: ChunkerSettings,
    /// The default compression of new blobs.
    pub compression: Compression,
    /// Target pack file size in bytes.
    pub pack_size: u32,
}

#[derive(Serialize, Deserialize)]
struct ConfigWire {
    repository_id: [u8; 32],
    created: Timestamp,
    id_algorithm: u8,
    chunker_algorithm: u8,
    chunk_min: u32,
    chunk_avg: u32,
    chunk_max: u32,
    chunk_normalization: u8,
    gear_seed: [u8; 32],
    compression: u8,
    compression_level: i32,
    pack_size: u32,
}

fn compression_code(c: Compression) -> (u8, i32) {
    match c {
        Compression::None => (0, 0),
        Compression::Zstd { level } => (1, level),
        Compression::Lz4 => (2, 0),
        Compression::Auto { level } => (3, level),
    }
}

fn compression_from_code(code: u8, level: i32) -> Option<Compression> {
    Some(match code {
        0 => Compression::None,
        1 => Compression::Zstd { level },
        2 => Compression::Lz4,
        3 => Compression::Auto { level },
        _ => return None,
    })
}

impl Config {
    /// Encodes the (to be sealed) payload.
    ///
    /// # Errors
    /// Only if serialization fails.
    pub fn encode(&self) -> Result<Vec<u8>, RepoError> {
        let (compression, compression_level) = compression_code(self.compression);
        encode_versioned(
            CONFIG_VERSION,
            &ConfigWire {
                repository_id: *self.repository_id.as_bytes(),
                created: self.created,
                id_algorithm: self.id_algorithm.code(),
                chunker_algorithm: CHUNKER_FASTCDC_2020,
                chunk_min: self.chunker.min_size,
                chunk_avg: self.chunker.avg_size,
                chunk_max: self.chunker.max_size,
                chunk_normalization: self.chunker.normalization,
                gear_seed: self.chunker.gear_seed,
                compression,
                compression_level,
                pack_size: self.pack_size,
            },
        )
    }

    /// Decodes a payload.
    ///
    /// # Errors
    /// [`RepoError::Corrupt`] for undecodable bytes or unknown algorithm codes;
    /// [`RepoError::UnsupportedVersion`].
    pub fn decode(payload: &[u8]) -> Result<Self, RepoError> {
        let object = "config";
        let (version, body) = split_version(payload, object)?;
        expect_version(version, CONFIG_VERSION, object)?;
        let w: ConfigWire = decode_postcard(body, object)?;
        let id_algorithm = IdAlgorithm::from_code(w.id_algorithm).ok_or_else(|| {
            RepoError::corrupt(object, format!("unknown id algorithm {}", w.id_algorithm))
        })?;
        if w.chunker_algorithm != CHUNKER_FASTCDC_2020 {
            return Err(RepoError::corrupt(
                object,
                format!("unknown chunker {}", w.chunker_algorithm),
            ));
        }
        let compression =
            compression_from_code(w.compression, w.compression_level).ok_or_else(|| {
                RepoError::corrupt(object, format!("unknown compression {}", w.compression))
            })?;
        if !(MIN_PACK_SIZE..=MAX_PACK_SIZE).contains(&w.pack_size) {
            return Err(RepoError::corrupt(
                object,
                format!("pack size {} out of range", w.pack_size),
            ));
        }
        Ok(Self {
            repository_id: ObjectId::from_bytes(w.repository_id),
            created: w.created,
            id_algorithm,
            chunker: ChunkerSettings {
                min_size: w.chunk_min,
                avg_size: w.chunk_avg,
                max_size: w.chunk_max,
                normalization: w.chunk_normalization,
                gear_seed: w.gear_seed,
            },
            compression,
            pack_size: w.pack_size,
        })
    }
}
