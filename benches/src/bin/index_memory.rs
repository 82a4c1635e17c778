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

use arca_benches::{spread_id, synthetic_index, synthetic_type};
use arca_repo::BlobId;

/// One blob in 50 is a tree, about as in a backup of a source tree.
const TREE_EVERY: u64 = 50;

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
    let before = rss();
    let started = Instant::now();
    let index = synthetic_index(blobs, TREE_EVERY);
    let built = started.elapsed();
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
        if index
            .get(synthetic_type(n, TREE_EVERY), &BlobId(spread_id(n)))
            .is_some()
        {
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
