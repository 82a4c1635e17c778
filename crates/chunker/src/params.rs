//! Chunking parameters and the gear table.

use fastcdc::v2020;

/// Chunk size bounds and normalization for FastCDC 2020.
///
/// These are stored in the repository configuration: changing them for an existing
/// repository moves every cut point and defeats deduplication against older snapshots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkerParams {
    /// No chunk is shorter than this, except the last one of a stream.
    pub min_size: u32,
    /// The target average chunk size.
    pub avg_size: u32,
    /// No chunk is longer than this.
    pub max_size: u32,
    /// FastCDC normalization level, 0..=3 (higher = sizes closer to the average).
    pub normalization: u8,
}

impl Default for ChunkerParams {
    /// 64 KiB / 256 KiB / 1 MiB, normalization level 1: the smallest setting measured
    /// that keeps the storage cost of a one-byte insertion under 0.2 MiB. The figures
    /// behind this choice are in docs/design.md ("Chunking").
    fn default() -> Self {
        Self {
            min_size: 64 * 1024,
            avg_size: 256 * 1024,
            max_size: 1024 * 1024,
            normalization: 1,
        }
    }
}

/// Chunking parameters that FastCDC cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParamsError {
    /// A size is outside FastCDC's supported range.
    #[error("chunk {name} size {value} is outside {lo}..={hi}")]
    OutOfRange {
        /// Which size (`min`, `avg` or `max`).
        name: &'static str,
        /// The rejected value.
        value: u32,
        /// Smallest allowed value.
        lo: u32,
        /// Largest allowed value.
        hi: u32,
    },
    /// A size is odd; FastCDC 2020 tests cut points two bytes at a time.
    #[error("chunk {name} size {value} must be even")]
    Odd {
        /// Which size.
        name: &'static str,
        /// The rejected value.
        value: u32,
    },
    /// The sizes are not ordered `min < avg < max`.
    #[error("chunk sizes must satisfy min < avg < max (got {min} / {avg} / {max})")]
    Order {
        /// Minimum size.
        min: u32,
        /// Average size.
        avg: u32,
        /// Maximum size.
        max: u32,
    },
    /// The normalization level is above 3.
    #[error("chunk normalization level {0} is above 3")]
    Normalization(u8),
}

fn bound(name: &'static str, value: u32, lo: usize, hi: usize) -> Result<(), ParamsError> {
    let v = value as usize;
    if v < lo || v > hi {
        return Err(ParamsError::OutOfRange {
            name,
            value,
            lo: lo as u32,
            hi: hi as u32,
        });
    }
    if !value.is_multiple_of(2) {
        return Err(ParamsError::Odd { name, value });
    }
    Ok(())
}

impl ChunkerParams {
    /// Checks the parameters against FastCDC's supported ranges.
    ///
    /// # Errors
    /// [`ParamsError`] describing the first problem found.
    pub fn validate(&self) -> Result<(), ParamsError> {
        bound("min", self.min_size, v2020::MINIMUM_MIN, v2020::MINIMUM_MAX)?;
        // The mask table covers averages whose rounded log2 is within 2^8 .. 2^22, and
        // normalization shifts the index by up to 3 each way; stay inside it.
        bound("avg", self.avg_size, v2020::AVERAGE_MIN, v2020::AVERAGE_MAX)?;
        bound("max", self.max_size, v2020::MAXIMUM_MIN, v2020::MAXIMUM_MAX)?;
        if !(self.min_size < self.avg_size && self.avg_size < self.max_size) {
            return Err(ParamsError::Order {
                min: self.min_size,
                avg: self.avg_size,
                max: self.max_size,
            });
        }
        if self.normalization > 3 {
            return Err(ParamsError::Normalization(self.normalization));
        }
        Ok(())
    }
}

/// The 256-entry gear table that drives the rolling hash.
///
/// arca derives it from a per-repository secret, so cut points (and with them the sizes
/// of stored chunks) cannot be predicted by someone who knows the content.
#[derive(Clone, PartialEq, Eq)]
pub struct GearTable(pub(crate) [u64; 256]);

impl std::fmt::Debug for GearTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GearTable(..)")
    }
}

impl GearTable {
    /// Number of bytes [`GearTable::from_bytes`] takes: 256 little-endian `u64`s.
    pub const BYTES: usize = 2048;

    /// Builds a table from 2048 bytes of key material (256 little-endian `u64`s).
    pub fn from_bytes(bytes: &[u8; Self::BYTES]) -> Self {
        let mut table = [0u64; 256];
        for (entry, chunk) in table.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            *entry = u64::from_le_bytes(word);
        }
        Self(table)
    }
}
