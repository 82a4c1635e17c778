use std::io::{self, Read};

use bytes::Bytes;
use proptest::prelude::*;

use super::*;

/// Deterministic pseudo-random bytes (xorshift64*), so golden values do not depend on
/// any external generator's version.
fn pseudo_random(len: usize, mut state: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn table(seed: u8) -> GearTable {
    let bytes = pseudo_random(GearTable::BYTES, 0x9e37_79b9_7f4a_7c15 ^ u64::from(seed));
    let mut arr = [0u8; GearTable::BYTES];
    arr.copy_from_slice(&bytes);
    GearTable::from_bytes(&arr)
}

fn small_params() -> ChunkerParams {
    ChunkerParams {
        min_size: 2 * 1024,
        avg_size: 8 * 1024,
        max_size: 32 * 1024,
        normalization: 1,
    }
}

/// A reader that returns at most `step` bytes per call, to exercise buffer refills.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.step.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// Pins the cut points for a fixed table and input. If this test fails, chunk boundaries
/// moved: every existing repository would stop deduplicating against new backups.
#[test]
fn golden_boundaries_large_params() {
    let params = ChunkerParams {
        min_size: 256 * 1024,
        avg_size: 1024 * 1024,
        max_size: 4 * 1024 * 1024,
        normalization: 1,
    };
    let chunker = Chunker::new(params, table(1)).unwrap();
    let data = pseudo_random(12 << 20, 42);
    let lengths: Vec<usize> = chunker.chunk_lengths(&data).collect();
    assert_eq!(lengths, GOLDEN_DEFAULT);
}

#[test]
fn golden_boundaries_default_params() {
    let chunker = Chunker::new(ChunkerParams::default(), table(3)).unwrap();
    let data = pseudo_random(4 << 20, 11);
    let lengths: Vec<usize> = chunker.chunk_lengths(&data).collect();
    assert_eq!(lengths, GOLDEN_DEFAULT_PARAMS);
}

const GOLDEN_DEFAULT_PARAMS: &[usize] = &[
    502350, 151856, 557744, 189902, 347911, 163557, 352985, 210319, 298323, 117249, 106328, 182841,
    119710, 338052, 357012, 198165,
];

#[test]
fn golden_boundaries_small_params() {
    let chunker = Chunker::new(small_params(), table(2)).unwrap();
    let data = pseudo_random(128 << 10, 7);
    let lengths: Vec<usize> = chunker.chunk_lengths(&data).collect();
    assert_eq!(lengths, GOLDEN_SMALL);
}

const GOLDEN_DEFAULT: &[usize] = &[
    719613, 3561086, 636438, 1727536, 1096843, 1178585, 989236, 815499, 1251193, 606883,
];
const GOLDEN_SMALL: &[usize] = &[
    8381, 9247, 11127, 6948, 9817, 8209, 4883, 24201, 9797, 4568, 13698, 11223, 8973,
];

#[test]
fn the_secret_table_moves_boundaries() {
    let data = pseudo_random(1 << 20, 3);
    let a: Vec<usize> = Chunker::new(small_params(), table(1))
        .unwrap()
        .chunk_lengths(&data)
        .collect();
    let b: Vec<usize> = Chunker::new(small_params(), table(2))
        .unwrap()
        .chunk_lengths(&data)
        .collect();
    assert_ne!(a, b);
}

#[test]
fn an_insertion_moves_only_nearby_boundaries() {
    let chunker = Chunker::new(small_params(), table(1)).unwrap();
    let data = pseudo_random(1 << 20, 9);
    let mut shifted = data.clone();
    shifted.insert(1000, 0xAB);
    let ends = |d: &[u8]| -> Vec<usize> {
        let mut pos = 0;
        chunker
            .chunk_lengths(d)
            .map(|l| {
                pos += l;
                pos
            })
            .collect()
    };
    let original: std::collections::HashSet<usize> = ends(&data).into_iter().collect();
    let moved = ends(&shifted);
    let kept = moved
        .iter()
        .filter(|e| original.contains(&(**e - 1)))
        .count();
    // All but the boundaries of the first one or two chunks realign.
    assert!(kept + 2 >= moved.len(), "kept {kept} of {}", moved.len());
}

#[test]
fn empty_input_has_no_chunks() {
    let chunker = Chunker::new(small_params(), table(1)).unwrap();
    assert_eq!(chunker.chunk_lengths(&[]).count(), 0);
    assert_eq!(chunker.chunks(&[][..], 0).count(), 0);
}

#[test]
fn zeros_cut_at_max_size() {
    let chunker = Chunker::new(small_params(), table(1)).unwrap();
    let data = vec![0u8; 100 * 1024];
    let lengths: Vec<usize> = chunker.chunk_lengths(&data).collect();
    assert_eq!(lengths, vec![32768, 32768, 32768, 4096]);
}

#[test]
fn invalid_params_are_rejected() {
    let bad = [
        ChunkerParams {
            min_size: 10,
            ..small_params()
        },
        ChunkerParams {
            avg_size: 8 * 1024 + 1,
            ..small_params()
        },
        ChunkerParams {
            max_size: 1 << 30,
            ..small_params()
        },
        ChunkerParams {
            min_size: 16 * 1024,
            avg_size: 8 * 1024,
            ..small_params()
        },
        ChunkerParams {
            normalization: 4,
            ..small_params()
        },
    ];
    for params in bad {
        assert!(Chunker::new(params, table(0)).is_err(), "{params:?}");
    }
}

#[test]
fn read_errors_end_the_stream() {
    struct Failing;
    impl Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::other("disk on fire"))
        }
    }
    let chunker = Chunker::new(small_params(), table(0)).unwrap();
    let mut it = chunker.chunks(Failing, 100);
    assert!(it.next().unwrap().is_err());
    assert!(it.next().is_none());
}

/// A small file must not cost a maximum-size (zeroed) buffer per read: reads stay within
/// the size hint plus one byte until the hint is used up, then grow for a file that grew.
#[test]
fn reads_are_sized_by_the_hint() {
    struct Recording<'a> {
        data: &'a [u8],
        largest: usize,
    }
    impl Read for Recording<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.largest = self.largest.max(buf.len());
            self.data.read(buf)
        }
    }
    let chunker = Chunker::new(ChunkerParams::default(), table(0)).unwrap();
    // (bytes chunked, largest read) for `len` bytes streamed with a hint of 16,000.
    let stream = |len: usize, seed: u64| {
        let data = pseudo_random(len, seed);
        let mut reader = Recording {
            data: &data,
            largest: 0,
        };
        let total: usize = chunker
            .chunks(&mut reader, 16_000)
            .map(|c| c.unwrap().len())
            .sum();
        (total, reader.largest)
    };
    assert_eq!(stream(16_000, 5), (16_000, 16_001));
    // The file grew past its hint: everything is still read, in reads larger than the hint.
    let (total, largest) = stream(3_000_000, 6);
    assert_eq!(total, 3_000_000);
    assert!(largest > 16_001, "{largest}");
}

#[test]
fn debug_does_not_print_the_table() {
    let chunker = Chunker::new(small_params(), table(0)).unwrap();
    let text = format!("{chunker:?} {:?}", table(0));
    assert!(!text.contains(&table(0).0[0].to_string()));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Chunk, then reassemble: the stream splits into in-bounds pieces that concatenate
    /// back to the input, whatever the read sizes of the source.
    #[test]
    fn chunk_and_reassemble(len in 0usize..300_000, seed: u64, step in 1usize..70_000, hint in 0u64..400_000) {
        let chunker = Chunker::new(small_params(), table(5)).unwrap();
        let data = pseudo_random(len, seed | 1);
        let chunks: Vec<Bytes> = chunker
            .chunks(Trickle { data: &data, step }, hint)
            .collect::<Result<_, _>>()
            .unwrap();
        let joined: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        prop_assert_eq!(&joined, &data);
        let p = small_params();
        for (i, c) in chunks.iter().enumerate() {
            prop_assert!(c.len() <= p.max_size as usize);
            prop_assert!(!c.is_empty());
            if i + 1 < chunks.len() {
                prop_assert!(c.len() >= p.min_size as usize);
            }
        }
        // Streaming cuts exactly where the in-memory cutter does.
        let lengths: Vec<usize> = chunker.chunk_lengths(&data).collect();
        let streamed: Vec<usize> = chunks.iter().map(|c| c.len()).collect();
        prop_assert_eq!(lengths, streamed);
    }
}
