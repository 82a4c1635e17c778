//! Measures the in-memory index: resident bytes per blob and lookups per second, for an
//! index of N blobs (default 10 million) in packs of 1,000 entries, as a large
//! repository's index loads.
//!
//! ```sh
//! cargo run --release -p arca-benches --bin index-memory [-- BLOBS]
//! ```
//!
//! Memory is the growth of the process's resident set while the index is built (large
//! allocations come straight from the kernel and go back to it when freed, so the
//! figure is what the index holds, not what its growth discarded).

#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::time::Instant;

use arca_benches::spread_id as id;
use arca_repo::{BlobId, BlobType, IndexBuilder, ObjectId, PackEntry};

/// Resident set size in bytes (Linux).
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// Peak resident set size in bytes (Linux).
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

fn main() {
    let blobs: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("BLOBS must be a number"))
        .unwrap_or(10_000_000);
    const PER_PACK: u64 = 1000;
    let before = rss();
    let started = Instant::now();
    let mut index = IndexBuilder::new();
    let mut entries = Vec::with_capacity(PER_PACK as usize);
    for pack in 0..blobs.div_ceil(PER_PACK) {
        entries.clear();
        for i in 0..PER_PACK.min(blobs - pack * PER_PACK) {
            let n = pack * PER_PACK + i;
            entries.push(PackEntry {
                blob_type: if n.is_multiple_of(50) {
                    BlobType::Tree
                } else {
                    BlobType::Data
                },
                id: BlobId(id(n)),
                offset: 40 + (i as u32) * 4096,
                length: 4000,
                raw_len: 9000,
            });
        }
        let pack_id = ObjectId::from_bytes(id(u64::MAX - pack));
        index.add_pack(pack_id, &entries);
    }
    let index = index.finish();
    let built = started.elapsed();
    drop(entries);
    let bytes = rss().saturating_sub(before);
    let peak = peak_rss().saturating_sub(before);
    assert_eq!(index.len() as u64, blobs);

    let lookups = 5_000_000u64.min(blobs * 2);
    let started = Instant::now();
    let mut found = 0u64;
    for q in 0..lookups {
        // Half present (spread over the whole index), half absent.
        let n = if q % 2 == 0 {
            (q.wrapping_mul(0x2545_f491_4f6c_dd1d)) % blobs
        } else {
            blobs + q
        };
        let t = if n.is_multiple_of(50) {
            BlobType::Tree
        } else {
            BlobType::Data
        };
        if index.get(t, &BlobId(id(n))).is_some() {
            found += 1;
        }
    }
    let looked = started.elapsed();
    assert_eq!(found, lookups / 2);
    println!(
        "index of {blobs} blobs: {:.1} bytes per blob ({} MiB resident, {:.1} bytes per blob at the peak of building), built in {:.2} s; {:.2} M lookups/s (one core, half absent)",
        bytes as f64 / blobs as f64,
        bytes >> 20,
        peak as f64 / blobs as f64,
        built.as_secs_f64(),
        lookups as f64 / looked.as_secs_f64() / 1e6
    );
}
