//! The arca repository format, version 1: how every stored structure is laid out,
//! encrypted, named and checked. `docs/design.md` is the normative description; this
//! crate is its implementation.
//!
//! What it owns:
//! - [`Header`] and [`ObjectType`]: the 40-byte header of every file, which is also the
//!   associated data that binds an encrypted object to its type and id.
//! - [`Config`] and [`KeySlot`]: settings fixed at `init`, and the master key wrapped
//!   under Argon2id-derived passphrase keys; [`ExportedKey`] and [`encode_key_text`]:
//!   a key slot as text to print and type back (plain and paper formats).
//! - Blobs and packs ([`encode_blob`], [`PackBuilder`], [`scan_pack`], [`PackReader`]):
//!   compressed, sealed, self-describing entries grouped into pack files.
//! - [`IndexFile`] and the in-memory [`Index`]; [`Snapshot`]; [`Tree`] and [`Node`].
//! - [`Repo`]: an opened repository that reads and writes all of the above through an
//!   [`arca_backends::WriteBackend`].
//!
//! Every decoder takes untrusted bytes and returns [`RepoError::Corrupt`] naming the
//! object rather than panicking; every structure starts with a version number.
//!
//! ```
//! use std::sync::Arc;
//! use arca_backends::MemoryBackend;
//! use arca_repo::{BlobType, Compression, InitParams, Node, NodeKind, Repo, Tree};
//!
//! # fn main() -> Result<(), arca_repo::RepoError> {
//! let params = InitParams {
//!     kdf: arca_crypto::KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 },
//!     id_algorithm: arca_crypto::IdAlgorithm::Blake3,
//!     chunk_min: 256 << 10, chunk_avg: 1 << 20, chunk_max: 4 << 20, chunk_normalization: 1,
//!     compression: Compression::default(),
//!     pack_size: 16 << 20,
//!     now: Default::default(),
//!     hostname: "host".into(),
//!     username: "user".into(),
//! };
//! let repo = Repo::init(Arc::new(MemoryBackend::new()), b"secret", &params)?;
//! let tree = Tree::new(vec![Node::new("a.txt", NodeKind::File)])?;
//! let bytes = tree.encode()?;
//! let blob = repo.encode_blob(BlobType::Tree, repo.blob_id(&bytes), &bytes, Compression::default())?;
//! assert!(blob.bytes.len() > bytes.len());
//! # Ok(()) }
//! ```
//!
//! This crate knows nothing of chunking or of backup policy; it depends only on
//! `arca-crypto` and the backend traits of `arca-backends`.

mod blob;
mod cache;
mod compression;
mod config;
mod error;
mod header;
mod index;
mod key_text;
mod keyfile;
mod lock;
mod pack;
mod pack_reader;
mod recent_packs;
mod repo;
mod snapshot;
mod tree;
mod wire;

pub use blob::{
    BlobId, BlobIdHasher, BlobType, BuildBlobIdHasher, ENTRY_HEADER_LEN, ENTRY_OVERHEAD,
    EncodedBlob, EntryHeader, MAX_BLOB_LEN, decode_entry, encode_blob,
};
pub use cache::{Cache, CacheStats};
pub use compression::{
    AUTO_MIN_SAVING_PERCENT, Compression, DEFAULT_ZSTD_LEVEL, Method, compress, decompress,
};
pub use config::{ChunkerSettings, Config, DEFAULT_PACK_SIZE, MAX_PACK_SIZE, MIN_PACK_SIZE};
pub use error::RepoError;
pub use header::{FORMAT_VERSION, HEADER_LEN, Header, MAGIC, ObjectType};
pub use index::{BlobLocation, Index, IndexBuilder, IndexFile, IndexedPack};
pub use key_text::{ExportedKey, KeyTextFormat, PAPER_LINE_BYTES, PaperKeyReader, encode_key_text};
pub use keyfile::{KeyInfo, KeySlot, SlotKdf, SlotLock};
pub use lock::{DeletionPlan, Holder, LockRecord};
pub use pack::{Pack, PackBuilder, PackEntry, PackWriter, scan_pack};
pub use pack_reader::{PACK_READ_WINDOW, PackReader};
pub use repo::{GEAR_TABLE_BYTES, InitParams, NewRepo, Repo};
pub use snapshot::{MAX_NOTES, Snapshot, SnapshotSummary};
pub use tree::{Node, NodeKind, Timestamp, Tree, UnknownNodeKind, Xattr, is_valid_name};

pub use arca_backends::ObjectId;
pub use arca_crypto::{IdAlgorithm, KdfParams};
