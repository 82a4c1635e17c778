//! The backup hot path on 64 MiB buffers: chunking, id hashing, compression, encryption,
//! and their combination as a backup performs it (throughput in bytes/s); and lookups
//! in the in-memory index, which dedup does once per chunk (lookups/s).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use arca_benches::{gear_material, noise, spread_id, text};
use arca_chunker::{Chunker, ChunkerParams, GearTable};
use arca_crypto::{IdAlgorithm, IdHasher, MasterKey, Sealer};
use arca_repo::{BlobId, BlobType, Compression, IndexBuilder, ObjectId, PackEntry, encode_blob};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const LEN: usize = 64 << 20;
const BLOB: usize = 1 << 20;

fn chunking(c: &mut Criterion) {
    let data = noise(LEN, 1);
    let chunker = Chunker::new(
        ChunkerParams::default(),
        GearTable::from_bytes(&gear_material()),
    )
    .unwrap();
    let mut g = c.benchmark_group("chunking");
    g.throughput(Throughput::Bytes(LEN as u64)).sample_size(10);
    g.bench_function("fastcdc2020-default", |b| {
        b.iter(|| chunker.chunk_lengths(&data).count())
    });
    g.bench_function("fastcdc2020-stream", |b| {
        b.iter(|| {
            chunker
                .chunks(&data[..], LEN as u64)
                .map(|c| c.unwrap().len())
                .sum::<usize>()
        })
    });
    g.finish();
}

fn id_hashing(c: &mut Criterion) {
    let data = noise(LEN, 2);
    let key = MasterKey::generate().unwrap();
    let mut g = c.benchmark_group("id-hash-1MiB-blobs");
    g.throughput(Throughput::Bytes(LEN as u64)).sample_size(10);
    for alg in IdAlgorithm::ALL {
        let h = IdHasher::new(alg, key.id_key()).unwrap();
        g.bench_function(BenchmarkId::from_parameter(alg.name()), |b| {
            b.iter(|| {
                data.chunks(BLOB)
                    .map(|c| h.id(c)[0])
                    .fold(0u8, |a, x| a ^ x)
            })
        });
    }
    g.finish();
    let small = noise(16 << 20, 3);
    let mut g = c.benchmark_group("id-hash-4KiB-blobs");
    g.throughput(Throughput::Bytes(small.len() as u64))
        .sample_size(10);
    for alg in IdAlgorithm::ALL {
        let h = IdHasher::new(alg, key.id_key()).unwrap();
        g.bench_function(BenchmarkId::from_parameter(alg.name()), |b| {
            b.iter(|| {
                small
                    .chunks(4096)
                    .map(|c| h.id(c)[0])
                    .fold(0u8, |a, x| a ^ x)
            })
        });
    }
    g.finish();
}

fn compression(c: &mut Criterion) {
    let inputs = [("text", text(LEN, 4)), ("noise", noise(LEN, 5))];
    let settings = [
        Compression::Zstd { level: 1 },
        Compression::Zstd { level: 3 },
        Compression::Lz4,
        Compression::Auto { level: 3 },
    ];
    for (name, data) in &inputs {
        let mut g = c.benchmark_group(format!("compress-{name}"));
        g.throughput(Throughput::Bytes(LEN as u64)).sample_size(10);
        for s in settings {
            g.bench_function(BenchmarkId::from_parameter(s), |b| {
                b.iter(|| {
                    data.chunks(BLOB)
                        .map(|c| arca_repo::compress(s, c).1.map_or(0, |o| o.len()))
                        .sum::<usize>()
                })
            });
        }
        g.finish();
    }
}

fn encryption(c: &mut Criterion) {
    let data = noise(LEN, 6);
    let key = MasterKey::generate().unwrap();
    let sealer = Sealer::new(key.encryption_key()).unwrap();
    let mut g = c.benchmark_group("encrypt-1MiB-blobs");
    g.throughput(Throughput::Bytes(LEN as u64)).sample_size(10);
    g.bench_function("aes-256-gcm", |b| {
        b.iter(|| {
            data.chunks(BLOB)
                .map(|c| sealer.seal(b"aad", c).unwrap().len())
                .sum::<usize>()
        })
    });
    g.finish();
}

/// What one core does per byte of new data in a backup: chunk, id, compress, seal.
fn backup_path(c: &mut Criterion) {
    let key = MasterKey::generate().unwrap();
    let sealer = Sealer::new(key.encryption_key()).unwrap();
    let ids = IdHasher::new(IdAlgorithm::Blake3, key.id_key()).unwrap();
    let chunker = Chunker::new(
        ChunkerParams::default(),
        GearTable::from_bytes(&gear_material()),
    )
    .unwrap();
    let mut g = c.benchmark_group("backup-path");
    g.throughput(Throughput::Bytes(LEN as u64)).sample_size(10);
    for (name, data) in [("text", text(LEN, 7)), ("noise", noise(LEN, 8))] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut stored = 0;
                for chunk in chunker.chunks(&data[..], LEN as u64) {
                    let chunk = chunk.unwrap();
                    let id = arca_repo::BlobId(ids.id(&chunk));
                    stored +=
                        encode_blob(&sealer, BlobType::Data, id, &chunk, Compression::default())
                            .unwrap()
                            .bytes
                            .len();
                }
                stored
            })
        });
    }
    g.finish();
}

/// Lookups in an index of one million blobs: half present, half absent (a backup of
/// new data asks mostly for absent ones).
fn index_lookup(c: &mut Criterion) {
    const BLOBS: u32 = 1_000_000;
    let id = |n: u32| BlobId(spread_id(u64::from(n)));
    // Built as opening a repository builds it (all blobs in the sorted table).
    let mut index = IndexBuilder::new();
    for pack in 0..BLOBS / 1000 {
        let entries: Vec<PackEntry> = (0..1000)
            .map(|i| PackEntry {
                blob_type: BlobType::Data,
                id: id(pack * 1000 + i),
                offset: 40 + i * 4096,
                length: 4000,
                raw_len: 9000,
            })
            .collect();
        index.add_pack(ObjectId::from_bytes(id(u32::MAX - pack).0), &entries);
    }
    let index = index.finish();
    let queries: Vec<BlobId> = (0..10_000u32)
        .map(|q| {
            if q % 2 == 0 {
                id(q.wrapping_mul(2_654_435_761) % BLOBS)
            } else {
                id(BLOBS + q)
            }
        })
        .collect();
    let mut g = c.benchmark_group("index-1M-blobs");
    g.throughput(Throughput::Elements(queries.len() as u64));
    g.bench_function("lookup", |b| {
        b.iter(|| {
            queries
                .iter()
                .filter(|q| index.contains(BlobType::Data, q))
                .count()
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    index_lookup,
    chunking,
    id_hashing,
    compression,
    encryption,
    backup_path
);
criterion_main!(benches);
