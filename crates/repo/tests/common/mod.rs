//! What the format tests share: a repository with a cheap key derivation.

#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;

use arca_backends::MemoryBackend;
use arca_crypto::{IdAlgorithm, KdfParams};
use arca_repo::{Compression, DEFAULT_PACK_SIZE, InitParams, Repo, Timestamp};

/// Argon2id at its least: 64 KiB, one pass, one lane.
pub const FAST_KDF: KdfParams = KdfParams {
    memory_kib: 64,
    iterations: 1,
    parallelism: 1,
};

/// Init settings with [`FAST_KDF`] and BLAKE3 ids, created by user@host.
pub fn params() -> InitParams {
    InitParams {
        kdf: FAST_KDF,
        id_algorithm: IdAlgorithm::Blake3,
        chunk_min: 256 << 10,
        chunk_avg: 1 << 20,
        chunk_max: 4 << 20,
        chunk_normalization: 1,
        compression: Compression::default(),
        pack_size: DEFAULT_PACK_SIZE,
        now: Timestamp {
            secs: 1_700_000_000,
            nanos: 0,
        },
        hostname: "host".into(),
        username: "user".into(),
    }
}

/// A new repository in memory, password `pw`.
pub fn new_repo() -> (Arc<MemoryBackend>, Repo) {
    let backend = Arc::new(MemoryBackend::new());
    let repo = Repo::init(backend.clone(), b"pw", &params()).unwrap();
    (backend, repo)
}
