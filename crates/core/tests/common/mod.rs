//! Helpers shared by the library's integration tests.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use arca_core::{CheckOptions, InitOptions, KdfParams, NoProgress, Repository};

/// Repository settings with a cheap key derivation (tests open repositories often).
pub fn fast_init() -> InitOptions {
    InitOptions {
        kdf: KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        },
        ..InitOptions::default()
    }
}

/// Runs `check --read-data` and asserts it finds nothing wrong.
pub fn assert_checks_clean(repo: &Repository) {
    let options = CheckOptions {
        read_data: true,
        ..Default::default()
    };
    let report = repo.check(&options, &NoProgress).unwrap();
    assert!(report.is_ok(), "{:?}", report.errors);
    assert!(report.packs_read > 0);
}

/// `len` incompressible bytes (xorshift64) from `seed`.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}
