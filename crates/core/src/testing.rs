//! What unit tests of several modules share: a repository in memory, cheap to open.

use std::sync::Arc;

use arca_backends::{MemoryBackend, WriteBackend};
use arca_crypto::KdfParams;

use crate::{InitOptions, Repository};

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
    let backend: Arc<dyn WriteBackend> = Arc::new(MemoryBackend::new());
    let init = fast_init(InitOptions::default().pack_size);
    Repository::init(backend.clone(), b"pw", &init).unwrap_or_else(|e| panic!("{e}"));
    let repo = Repository::open(backend.clone(), b"pw").unwrap_or_else(|e| panic!("{e}"));
    (backend, repo)
}
