//! The backup hot path on 64 MiB buffers: chunking, id hashing, compression, encryption,
//! and their combination as a backup performs it (throughput in bytes/s); lookups in the
//! in-memory index, which dedup does once per chunk (lookups/s); tree encoding and
//! decoding (nodes/s); pack assembly (bytes/s); and compression of small files on their
//! own against the same files as one stream (why backups bundle small files:
//! docs/design.md §9).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use arca_benches::{gear_material, noise, spread_id, synthetic_index, text};
use arca_chunker::{Chunker, ChunkerParams, GearTable};
use arca_crypto::{IdAlgorithm, IdHasher, MasterKey, Sealer};
use arca_repo::{
    BlobId, BlobType, Compression, Node, NodeKind, ObjectId, PackBuilder, Timestamp, Tree,
    encode_blob,
};
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
    let index = synthetic_index(u64::from(BLOBS), 0);
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

/// A directory of 1,000 files of one chunk each, as a backup encodes it and as restore,
/// ls and the next backup decode it.
fn tree_encoding(c: &mut Criterion) {
    const NODES: u32 = 1000;
    let nodes: Vec<Node> = (0..NODES)
        .map(|i| {
            let mut n = Node::new(format!("file-{i:05}.c"), NodeKind::File);
            n.mode = 0o644;
            n.uid = 1000;
            n.gid = 1000;
            n.user = "builder".into();
            n.group = "builder".into();
            n.size = 16_000 + u64::from(i);
            n.mtime = Timestamp {
                secs: 1_700_000_000 + i64::from(i),
                nanos: i * 7919,
            };
            n.atime = n.mtime;
            n.ctime = n.mtime;
            n.inode = 4_000_000 + u64::from(i);
            n.device = 2049;
            n.links = 1;
            n.content = vec![BlobId(spread_id(u64::from(i)))];
            n
        })
        .collect();
    let tree = Tree::new(nodes).unwrap();
    let encoded = tree.encode().unwrap();
    let mut g = c.benchmark_group("tree-1000-nodes");
    g.throughput(Throughput::Elements(u64::from(NODES)));
    g.bench_function("encode", |b| b.iter(|| tree.encode().unwrap().len()));
    g.bench_function("decode", |b| {
        b.iter(|| Tree::decode(&encoded, "bench").unwrap().nodes().len())
    });
    g.finish();
}

/// Appending sealed blobs to a 16 MiB pack and finishing it (the pack's bytes and its
/// entry list), as the blob workers do under the pack lock.
fn pack_assembly(c: &mut Criterion) {
    let key = MasterKey::generate().unwrap();
    let sealer = Sealer::new(key.encryption_key()).unwrap();
    let blobs: Vec<_> = (0..64u64)
        .map(|i| {
            let data = noise(256 << 10, i + 20);
            encode_blob(
                &sealer,
                BlobType::Data,
                BlobId(spread_id(i)),
                &data,
                Compression::None,
            )
            .unwrap()
        })
        .collect();
    let total: usize = blobs.iter().map(|b| b.bytes.len()).sum();
    let mut g = c.benchmark_group("pack-assembly");
    g.throughput(Throughput::Bytes(total as u64))
        .sample_size(20);
    g.bench_function("64x256KiB", |b| {
        b.iter(|| {
            let mut pack = PackBuilder::new(
                ObjectId::from_bytes(spread_id(u64::MAX)),
                BlobType::Data,
                total + 4096,
            );
            for blob in &blobs {
                pack.push(blob).unwrap();
            }
            pack.finish().entries.len()
        })
    });
    g.finish();
}

/// 4 MiB of source-like text in 16 KiB files: compressed file by file (as backups did
/// before bundling, and still do for files from the average chunk size up) and as one
/// stream cut in 1 MiB pieces (as bundles are).
/// Reports throughput; the stored sizes print once to stderr.
#[allow(clippy::print_stderr)] // the sizes are the point of this bench
fn small_files(c: &mut Criterion) {
    const FILE: usize = 16 << 10;
    let data = text(4 << 20, 9);
    let setting = Compression::default();
    let stored = |piece: usize| -> usize {
        data.chunks(piece)
            .map(|p| {
                arca_repo::compress(setting, p)
                    .1
                    .map_or(p.len(), |c| c.len())
            })
            .sum()
    };
    eprintln!(
        "small files: 4 MiB of text stored as {} bytes file by file, {} bytes as 1 MiB pieces",
        stored(FILE),
        stored(1 << 20)
    );
    let mut g = c.benchmark_group("compress-small-files");
    g.throughput(Throughput::Bytes(data.len() as u64))
        .sample_size(10);
    g.bench_function("16KiB-each", |b| b.iter(|| stored(FILE)));
    g.bench_function("1MiB-pieces", |b| b.iter(|| stored(1 << 20)));
    g.finish();
}

criterion_group!(
    benches,
    tree_encoding,
    pack_assembly,
    small_files,
    index_lookup,
    chunking,
    id_hashing,
    compression,
    encryption,
    backup_path
);
criterion_main!(benches);
