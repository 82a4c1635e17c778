//! What unit tests of several modules share: a repository in memory, cheap to open.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arca_backends::{MemoryBackend, WriteBackend};
use arca_crypto::KdfParams;

use crate::{InitOptions, OpenOptions, Repository, Result};

/// A key derivation cheap enough to run in every test.
pub(crate) const FAST_KDF: KdfParams = KdfParams {
    memory_kib: 1024,
    iterations: 1,
    parallelism: 1,
};

/// Init options with [`FAST_KDF`] and `pack_size`.
pub(crate) fn fast_init(pack_size: u32) -> InitOptions {
    InitOptions {
        kdf: FAST_KDF,
        pack_size,
        ..InitOptions::default()
    }
}

/// A new repository in memory with passphrase `pw`, and its backend (to open it again
/// or to damage it).
pub(crate) fn memory_repository() -> (Arc<dyn WriteBackend>, Repository) {
    memory_repository_with(InitOptions::default().pack_size)
}

/// [`memory_repository`] with packs of `pack_size` bytes.
pub(crate) fn memory_repository_with(pack_size: u32) -> (Arc<dyn WriteBackend>, Repository) {
    let backend: Arc<dyn WriteBackend> = Arc::new(MemoryBackend::new());
    Repository::init(backend.clone(), b"pw", &fast_init(pack_size))
        .unwrap_or_else(|e| panic!("{e}"));
    let repo = Repository::open(backend.clone(), b"pw").unwrap_or_else(|e| panic!("{e}"));
    (backend, repo)
}

/// A new repository in memory with passphrase `pw` and [`FAST_KDF`], its key in the key
/// file `key_file` if given (else in `keys/`); and its backend. The repository is the
/// one `init` returns (not opened again, unlike [`memory_repository_with`]'s).
pub(crate) fn memory_repository_keyed(
    pw: &[u8],
    key_file: Option<&Path>,
) -> (Arc<dyn WriteBackend>, Repository) {
    let backend: Arc<dyn WriteBackend> = Arc::new(MemoryBackend::new());
    let options = InitOptions {
        key_file: key_file.map(Path::to_path_buf),
        ..fast_init(InitOptions::default().pack_size)
    };
    let repo = Repository::init(backend.clone(), pw, &options).unwrap_or_else(|e| panic!("{e}"));
    (backend, repo)
}

/// Opens the repository at `backend` with `pw` and the key file `key_file`.
pub(crate) fn open_with_key_file(
    backend: &Arc<dyn WriteBackend>,
    pw: &[u8],
    key_file: &Path,
) -> Result<Repository> {
    let options = OpenOptions {
        key_file: Some(key_file.to_path_buf()),
        ..OpenOptions::default()
    };
    Repository::open_with(backend.clone(), pw, &options)
}

/// Asserts that `check --read-data` finds nothing wrong with `repo`.
pub(crate) fn assert_checks_clean(repo: &Repository) {
    let options = crate::CheckOptions {
        read_data: true,
        ..crate::CheckOptions::default()
    };
    let report = repo
        .check(&options, &crate::NoProgress)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(report.is_ok(), "{report:?}");
}

/// A temporary directory holding an empty directory `src`, for a test's source files.
pub(crate) fn source_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap_or_else(|e| panic!("{e}"));
    (dir, src)
}

/// Deterministic incompressible bytes (xorshift64) for `seed`: distinct content per seed.
pub(crate) fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The tree of directory `dir` (absolute) in the latest snapshot.
pub(crate) fn latest_tree_of(repo: &Repository, dir: &Path) -> arca_repo::Tree {
    let snapshot = repo.find_snapshot("latest").unwrap();
    let mut tree = repo.load_tree(&snapshot.snapshot.tree).unwrap();
    for part in dir.strip_prefix("/").unwrap().components() {
        let node = tree.find(part.as_os_str().as_encoded_bytes()).unwrap();
        tree = repo.load_tree(&node.subtree.unwrap()).unwrap();
    }
    tree
}
