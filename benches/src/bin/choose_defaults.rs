//! Measures the figures behind arca's repository defaults on real data and prints them as
//! markdown tables (docs/design.md quotes them).
//!
//! ```text
//! cargo run --release -p arca-benches --bin choose-defaults -- TEXT_DIR BINARY_FILE
//! ```
//!
//! TEXT_DIR is a source tree (the reference run uses the Linux 6.1 source); BINARY_FILE a
//! large file of real binaries (the reference run concatenates ELF files from /usr and
//! the Rust toolchain to 1 GiB). Single-threaded throughout, so figures are per core.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use arca_benches::gear_material;
use arca_chunker::{Chunker, ChunkerParams, GearTable};
use arca_crypto::{IdAlgorithm, IdHasher, KdfParams, MasterKey, derive_wrapping_key};
use arca_repo::Compression;

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let t = e.file_type().unwrap();
        if t.is_dir() {
            files_under(&e.path(), out);
        } else if t.is_file() {
            out.push(e.path());
        }
    }
}

fn mb_per_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs
}

/// Chunks each input separately, as a backup chunks each file.
fn chunk_all(chunker: &Chunker, inputs: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for data in inputs {
        let mut rest = &data[..];
        while !rest.is_empty() {
            let n = chunker.next_cut(rest);
            out.push(rest[..n].to_vec());
            rest = &rest[n..];
        }
    }
    out
}

fn compression_table(name: &str, chunks: &[Vec<u8>]) {
    let total: u64 = chunks.iter().map(|c| c.len() as u64).sum();
    println!(
        "\n### Compression, {name}: {} chunks, {:.1} MiB\n",
        chunks.len(),
        total as f64 / 1048576.0
    );
    println!("| setting | stored MiB | ratio | MB/s (1 core) |");
    println!("|---|---|---|---|");
    for setting in [
        Compression::None,
        Compression::Lz4,
        Compression::Zstd { level: 1 },
        Compression::Zstd { level: 3 },
        Compression::Zstd { level: 6 },
        Compression::Auto { level: 3 },
    ] {
        let start = Instant::now();
        let stored: u64 = chunks
            .iter()
            .map(|c| {
                arca_repo::compress(setting, c)
                    .1
                    .map_or(c.len(), |o| o.len()) as u64
            })
            .sum();
        let secs = start.elapsed().as_secs_f64();
        let speed = match setting {
            Compression::None => "-".to_owned(),
            _ => format!("{:.0}", mb_per_s(total, secs)),
        };
        println!(
            "| {setting} | {:.1} | {:.3} | {speed} |",
            stored as f64 / 1048576.0,
            stored as f64 / total as f64,
        );
    }
}

/// Stored growth (zstd-3 compressed bytes of chunks not already present) when one byte
/// is inserted at `at`: re-chunks from the chunk boundary before `at` until a cut point
/// realigns with an old boundary, which is exactly what a backup would store anew.
fn insertion_growth(chunker: &Chunker, data: &[u8], ends: &[usize], at: usize) -> usize {
    let first = ends.partition_point(|&e| e <= at);
    let start = if first == 0 { 0 } else { ends[first - 1] };
    let mut shifted = data[start..at].to_vec();
    shifted.push(0x5a);
    let old: HashSet<usize> = ends.iter().copied().collect();
    let mut stored = 0;
    let mut pos = 0; // in `shifted`, which is data[start..] with the insertion
    let mut src = at; // next byte of `data` to append
    loop {
        while shifted.len() - pos < (chunker.params().max_size as usize) && src < data.len() {
            let take = (src + (1 << 20)).min(data.len());
            shifted.extend_from_slice(&data[src..take]);
            src = take;
        }
        if pos >= shifted.len() {
            return stored;
        }
        let n = chunker.next_cut(&shifted[pos..]);
        let chunk = &shifted[pos..pos + n];
        stored += arca_repo::compress(Compression::Zstd { level: 3 }, chunk)
            .1
            .map_or(n, |o| o.len());
        pos += n;
        // End of this chunk in original coordinates (the insertion adds one byte).
        if old.contains(&(start + pos - 1)) {
            return stored;
        }
    }
}

fn chunker_table(binary: &[u8]) {
    let trials = 200;
    println!(
        "\n### Chunk sizes: one byte inserted at {trials} random positions in {:.0} MiB of binaries\n",
        binary.len() as f64 / 1048576.0
    );
    println!(
        "| min / avg / max | chunks | mean KiB | new MiB per insertion, mean (p90) | at 1 KiB into a file, mean (p90) | index MiB per TiB (48 B/entry) | MB/s |"
    );
    println!("|---|---|---|---|---|---|---|");
    let positions = arca_benches::noise(trials * 8, 99)
        .chunks(8)
        .map(|b| (u64::from_le_bytes(b.try_into().unwrap()) % binary.len() as u64) as usize)
        .collect::<Vec<_>>();
    for (min, avg, max) in [
        (64 << 10, 256 << 10, 1 << 20),
        (64 << 10, 384 << 10, 2 << 20),
        (128 << 10, 512 << 10, 2 << 20),
        (256 << 10, 1 << 20, 4 << 20),
        (512 << 10, 2 << 20, 8 << 20),
    ] {
        let params = ChunkerParams {
            min_size: min,
            avg_size: avg,
            max_size: max,
            normalization: 1,
        };
        let chunker = Chunker::new(params, GearTable::from_bytes(&gear_material())).unwrap();
        let start = Instant::now();
        let mut ends = Vec::new();
        let mut pos = 0;
        for n in chunker.chunk_lengths(binary) {
            pos += n;
            ends.push(pos);
        }
        let secs = start.elapsed().as_secs_f64();
        let mut growth: Vec<f64> = positions
            .iter()
            .map(|&at| insertion_growth(&chunker, binary, &ends, at) as f64 / 1048576.0)
            .collect();
        growth.sort_by(|a, b| a.total_cmp(b));
        let mean = growth.iter().sum::<f64>() / growth.len() as f64;
        let p90 = growth[growth.len() * 9 / 10];
        // "Near the start of a file": 50 files of 16 MiB cut from the corpus, one byte
        // inserted 1 KiB into each.
        let file_len = 16 << 20;
        let mut near: Vec<f64> = binary
            .chunks_exact(file_len)
            .take(50)
            .map(|file| {
                let mut ends = Vec::new();
                let mut pos = 0;
                for n in chunker.chunk_lengths(file) {
                    pos += n;
                    ends.push(pos);
                }
                insertion_growth(&chunker, file, &ends, 1024) as f64 / 1048576.0
            })
            .collect();
        near.sort_by(|a, b| a.total_cmp(b));
        let near_mean = near.iter().sum::<f64>() / near.len() as f64;
        let near_p90 = near[near.len() * 9 / 10];
        let per_tib =
            (1u64 << 40) as f64 / (binary.len() as f64 / ends.len() as f64) * 48.0 / 1048576.0;
        println!(
            "| {} / {} / {} KiB | {} | {:.0} | {mean:.2} ({p90:.2}) | {near_mean:.2} ({near_p90:.2}) | {per_tib:.0} | {:.0} |",
            min >> 10,
            avg >> 10,
            max >> 10,
            ends.len(),
            binary.len() as f64 / ends.len() as f64 / 1024.0,
            mb_per_s(binary.len() as u64, secs)
        );
    }
}

fn hash_table(binary: &[u8]) {
    let key = MasterKey::generate().unwrap();
    let data = &binary[..binary.len().min(256 << 20)];
    println!(
        "\n### Chunk id algorithms, {} MiB in 1 MiB pieces\n",
        data.len() >> 20
    );
    println!("| algorithm | MB/s (1 core) |");
    println!("|---|---|");
    for alg in IdAlgorithm::ALL {
        let h = IdHasher::new(alg, key.id_key()).unwrap();
        let start = Instant::now();
        let x = data
            .chunks(1 << 20)
            .map(|c| h.id(c)[0])
            .fold(0u8, |a, b| a ^ b);
        let secs = start.elapsed().as_secs_f64();
        std::hint::black_box(x);
        println!("| {alg} | {:.0} |", mb_per_s(data.len() as u64, secs));
    }
}

fn kdf_table() {
    println!("\n### Argon2id cost\n");
    println!("| memory | passes | lanes | seconds |");
    println!("|---|---|---|---|");
    for (m, t) in [
        (19 * 1024, 2),
        (32 * 1024, 8),
        (32 * 1024, 12),
        (64 * 1024, 3),
        (256 * 1024, 3),
    ] {
        let p = KdfParams {
            memory_kib: m,
            iterations: t,
            parallelism: 1,
        };
        let start = Instant::now();
        derive_wrapping_key(b"benchmark passphrase", &[7; 32], &p).unwrap();
        println!(
            "| {} MiB | {t} | 1 | {:.2} |",
            m / 1024,
            start.elapsed().as_secs_f64()
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: choose-defaults TEXT_DIR BINARY_FILE");
        std::process::exit(2);
    }
    let mut paths = Vec::new();
    files_under(Path::new(&args[1]), &mut paths);
    let texts: Vec<Vec<u8>> = paths.iter().map(|p| std::fs::read(p).unwrap()).collect();
    let binary = std::fs::read(&args[2]).unwrap();

    hash_table(&binary);
    let chunker = Chunker::new(
        ChunkerParams::default(),
        GearTable::from_bytes(&gear_material()),
    )
    .unwrap();
    compression_table(
        &format!("source tree ({} files)", texts.len()),
        &chunk_all(&chunker, &texts),
    );
    compression_table(
        "binaries",
        &chunk_all(&chunker, std::slice::from_ref(&binary)),
    );
    chunker_table(&binary);
    kdf_table();
}
