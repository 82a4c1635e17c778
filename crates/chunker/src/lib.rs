//! Content-defined chunking for arca: FastCDC (the 2020 algorithm) over byte streams,
//! with a gear table derived from a per-repository secret.
//!
//! The chunker owns *where* a stream is cut, nothing else: it does not hash, compress or
//! store chunks. Cut points depend only on the bytes, the [`ChunkerParams`] and the
//! [`GearTable`], so the same content always splits the same way and deduplicates.
//! Because the gear table is secret, the sizes of stored chunks do not reveal which known
//! content a repository holds.
//!
//! Main types: [`Chunker`] (validated parameters plus table), [`Chunks`] (a streaming
//! iterator over any [`std::io::Read`] that yields owned [`bytes::Bytes`] chunks while
//! holding at most about twice the maximum chunk size in memory).
//!
//! ```
//! use arca_chunker::{Chunker, ChunkerParams, GearTable};
//!
//! let chunker = Chunker::new(ChunkerParams::default(), GearTable::from_bytes(&[7u8; 2048]))?;
//! let data = vec![1u8; 3 << 20];
//! let mut total = 0;
//! for chunk in chunker.chunks(&data[..], data.len() as u64) {
//!     total += chunk?.len();
//! }
//! assert_eq!(total, data.len());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! This crate depends on nothing else in the workspace; the repository stores the
//! parameters as plain data and the caller derives the gear table from its own secret.

mod params;
mod stream;

pub use params::{ChunkerParams, GearTable, ParamsError};
pub use stream::Chunks;

use fastcdc::v2020;

/// Validated chunking parameters and gear table, ready to cut streams.
///
/// A `Chunker` is immutable and cheap to share between threads.
#[derive(Clone)]
pub struct Chunker {
    params: ChunkerParams,
    gear: Box<[u64; 256]>,
    gear_ls: Box<[u64; 256]>,
    mask_s: u64,
    mask_l: u64,
}

impl std::fmt::Debug for Chunker {
    // The gear table is derived from a repository secret: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chunker")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl Chunker {
    /// Builds a chunker from parameters and a gear table.
    ///
    /// # Errors
    /// [`ParamsError`] when the sizes are out of FastCDC's supported ranges, odd, or not
    /// ordered `min < avg < max`, or the normalization level is above 3.
    pub fn new(params: ChunkerParams, table: GearTable) -> Result<Self, ParamsError> {
        params.validate()?;
        let level = match params.normalization {
            0 => v2020::Normalization::Level0,
            1 => v2020::Normalization::Level1,
            2 => v2020::Normalization::Level2,
            _ => v2020::Normalization::Level3,
        };
        let (mask_s, mask_l) = v2020::select_masks(params.avg_size as usize, level);
        let gear = Box::new(table.0);
        // The 2020 algorithm rolls two bytes per step; its second table is the first
        // shifted left by one (as fastcdc's own GEAR_LS is).
        let mut gear_ls = Box::new([0u64; 256]);
        for (ls, g) in gear_ls.iter_mut().zip(gear.iter()) {
            *ls = g << 1;
        }
        Ok(Self {
            params,
            gear,
            gear_ls,
            mask_s,
            mask_l,
        })
    }

    /// The parameters this chunker was built with.
    pub fn params(&self) -> ChunkerParams {
        self.params
    }

    /// Length of the first chunk of `data`, treating `data` as the rest of the stream.
    ///
    /// The result is in `1..=data.len()` for non-empty input and 0 for empty input. It is
    /// at most `max_size`; it is shorter than `min_size` only at the end of the data.
    pub fn next_cut(&self, data: &[u8]) -> usize {
        if data.is_empty() {
            return 0;
        }
        let (_, cut) = v2020::cut_gear(
            data,
            self.params.min_size as usize,
            self.params.avg_size as usize,
            self.params.max_size as usize,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
            &self.gear[..],
            &self.gear_ls[..],
        );
        cut
    }

    /// Chunk lengths of an in-memory buffer, in order; they sum to `data.len()`.
    pub fn chunk_lengths<'a>(&'a self, mut data: &'a [u8]) -> impl Iterator<Item = usize> + 'a {
        std::iter::from_fn(move || {
            let cut = self.next_cut(data);
            if cut == 0 {
                return None;
            }
            data = &data[cut..];
            Some(cut)
        })
    }

    /// Streams `reader` as chunks. `size_hint` (the expected length, e.g. the file size)
    /// sizes the read buffer so that small files do not allocate maximum-size buffers.
    pub fn chunks<R: std::io::Read>(&self, reader: R, size_hint: u64) -> Chunks<'_, R> {
        Chunks::new(self, reader, size_hint)
    }
}

#[cfg(test)]
mod tests;
