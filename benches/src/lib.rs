//! Shared inputs for arca's benchmarks and the `choose-defaults` measurement tool.
//!
//! The criterion benches live in `benches/`; `src/bin/choose_defaults.rs` measures the
//! figures behind the repository defaults on real data (see docs/design.md);
//! `src/bin/index_memory.rs` the in-memory index's size and speed.

/// Deterministic incompressible bytes (xorshift64*), the stand-in for encrypted or
/// already-compressed content.
pub fn noise(len: usize, mut state: u64) -> Vec<u8> {
    state |= 1;
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

/// Deterministic compressible text-like bytes: words drawn from a small vocabulary.
pub fn text(len: usize, seed: u64) -> Vec<u8> {
    const WORDS: [&str; 16] = [
        "static ",
        "int ",
        "return ",
        "struct ",
        "(void) ",
        "if ",
        "else ",
        "{\n",
        "}\n",
        "/* ",
        "*/ ",
        "const ",
        "unsigned ",
        "long ",
        "buffer",
        "->next;\n",
    ];
    let picks = noise(len, seed);
    let mut out = Vec::with_capacity(len + 16);
    let mut i = 0;
    while out.len() < len {
        out.extend_from_slice(WORDS[usize::from(picks[i % picks.len()] & 15)].as_bytes());
        i += 1;
    }
    out.truncate(len);
    out
}

/// A 2048-byte gear table seed for benchmarks.
pub fn gear_material() -> [u8; arca_chunker::GearTable::BYTES] {
    let mut out = [0u8; arca_chunker::GearTable::BYTES];
    out.copy_from_slice(&noise(arca_chunker::GearTable::BYTES, 77));
    out
}

/// A uniformly spread 32-byte id for `n` (splitmix64 per 8 bytes), as keyed blob ids
/// are: distinct for distinct `n`.
pub fn spread_id(n: u64) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut x = n;
    for chunk in out.chunks_mut(8) {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out
}

/// Synthetic blobs per pack in [`synthetic_index`].
pub const SYNTHETIC_PER_PACK: u64 = 1000;

/// The type of synthetic blob `n`: every `tree_every`-th is a tree (0: none is).
pub fn synthetic_type(n: u64, tree_every: u64) -> arca_repo::BlobType {
    if tree_every > 0 && n.is_multiple_of(tree_every) {
        arca_repo::BlobType::Tree
    } else {
        arca_repo::BlobType::Data
    }
}

/// An index of `blobs` synthetic blobs (blob `n` has id [`spread_id`]`(n)` and type
/// [`synthetic_type`]) in packs of [`SYNTHETIC_PER_PACK`], built as opening a repository
/// builds it; blob `n` for `n >= blobs` is absent.
pub fn synthetic_index(blobs: u64, tree_every: u64) -> arca_repo::Index {
    use arca_repo::{BlobId, IndexBuilder, ObjectId, PackEntry};
    let mut index = IndexBuilder::new();
    let mut entries = Vec::with_capacity(SYNTHETIC_PER_PACK as usize);
    for pack in 0..blobs.div_ceil(SYNTHETIC_PER_PACK) {
        entries.clear();
        for i in 0..SYNTHETIC_PER_PACK.min(blobs - pack * SYNTHETIC_PER_PACK) {
            let n = pack * SYNTHETIC_PER_PACK + i;
            entries.push(PackEntry {
                blob_type: synthetic_type(n, tree_every),
                id: BlobId(spread_id(n)),
                offset: 40 + (i as u32) * 4096,
                length: 4000,
                raw_len: 9000,
            });
        }
        index.add_pack(ObjectId::from_bytes(spread_id(u64::MAX - pack)), &entries);
    }
    index.finish()
}
