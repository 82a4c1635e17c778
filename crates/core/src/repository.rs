//! The opened repository handle and snapshot selection.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arca_backends::{FileKind, ObjectId, WriteBackend};
use arca_chunker::{Chunker, ChunkerParams, GearTable};
use arca_crypto::{IdAlgorithm, KdfParams};
use arca_repo::{
    BlobId, BlobType, Cache, CacheStats, Compression, Config, DEFAULT_PACK_SIZE, Index,
    IndexBuilder, InitParams, Repo, RepoError, Snapshot, Tree,
};

use crate::select::SnapshotFilter;
use crate::{Error, ErrorKind, Result};

/// Settings for [`Repository::init`].
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Default compression of new blobs.
    pub compression: Compression,
    /// The chunk id algorithm.
    pub id_algorithm: IdAlgorithm,
    /// Chunk sizes.
    pub chunker: ChunkerParams,
    /// Target pack file size in bytes.
    pub pack_size: u32,
    /// Argon2id cost of the first key slot.
    pub kdf: KdfParams,
    /// Key-file mode (docs/design.md §5.6): write the first key slot to this new file
    /// (mode 0600; an existing file is refused) and none into the repository, so that
    /// opening it needs both the passphrase and the file. `None`: the slot goes into
    /// the repository's `keys/`.
    pub key_file: Option<PathBuf>,
}

impl Default for InitOptions {
    fn default() -> Self {
        Self {
            compression: Compression::default(),
            id_algorithm: IdAlgorithm::Blake3,
            chunker: ChunkerParams::default(),
            pack_size: DEFAULT_PACK_SIZE,
            kdf: KdfParams::default(),
            key_file: None,
        }
    }
}

/// A snapshot and its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The snapshot's id.
    pub id: ObjectId,
    /// Its content.
    pub snapshot: Snapshot,
}

impl SnapshotInfo {
    /// The backed-up paths, lossily converted to UTF-8 for display.
    pub fn paths_lossy(&self) -> Vec<String> {
        self.snapshot
            .paths
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect()
    }
}

/// The readable snapshots and the damaged snapshot files of a repository.
#[derive(Debug)]
pub struct SnapshotList {
    /// Readable snapshots, oldest first.
    pub snapshots: Vec<SnapshotInfo>,
    /// Snapshot files that could not be read, with why.
    pub damaged: Vec<(ObjectId, Error)>,
    /// Some listed snapshot was removed before it was read (a concurrent `forget`, or
    /// `tag`, which writes the new file first): a new listing may show its successor.
    pub(crate) vanished: bool,
}

/// Totals over the whole repository.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepositoryStats {
    /// Number of snapshots.
    pub snapshots: u64,
    /// Sum of the snapshots' original sizes.
    pub bytes_total: u64,
    /// Sum of the snapshots' stored sizes, counting shared chunks once per reference.
    pub bytes_stored_total: u64,
    /// Bytes actually stored for blobs (each once).
    pub bytes_stored_unique: u64,
    /// Plaintext bytes of the blobs stored (each once).
    pub bytes_raw_unique: u64,
    /// Distinct data chunks stored.
    pub unique_chunks: u64,
    /// Chunk references over all snapshots.
    pub total_chunks: u64,
    /// Pack files referenced by the index.
    pub packs: u64,
}

/// How to open a repository.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct OpenOptions {
    /// Keep copies of index files, snapshot files and tree packs under this directory
    /// (in a subdirectory named by the repository id), so that a remote repository's
    /// metadata is downloaded once. Cached copies are authenticated like downloads;
    /// one that fails is fetched again. `None`: no cache.
    pub cache_dir: Option<std::path::PathBuf>,
    /// Open with the key slot in this key file (docs/design.md §5.6) instead of those in
    /// the repository's `keys/`, which are then not tried. Needed for a repository that
    /// keeps no key slot in `keys/`.
    pub key_file: Option<PathBuf>,
}

/// An opened repository. Obtain one with [`Repository::init`] or [`Repository::open`];
/// no repository operation is possible before the passphrase opened it.
pub struct Repository {
    pub(crate) repo: Arc<Repo>,
    pub(crate) index: Index,
    pub(crate) chunker: Chunker,
    /// Index files that could not be read when the repository was opened.
    pub(crate) index_errors: Vec<(ObjectId, Error)>,
    /// The index files `index` was loaded from.
    pub(crate) index_files: Vec<ObjectId>,
    /// The key file the repository was opened with, if its key came from one.
    pub(crate) key_file: Option<PathBuf>,
}

pub(crate) struct LoadedIndex {
    pub index: Index,
    pub files: Vec<ObjectId>,
    pub errors: Vec<(ObjectId, Error)>,
}

/// Reads every index file (a damaged one is skipped and reported in `errors`) and
/// trims the metadata cache to what the repository still has.
///
/// Only damage (a file that fails authentication or decoding) is skipped: storage
/// errors fail the load, since an index missing for a transient reason would make a
/// backup upload everything again. A file removed while it was being loaded (a
/// concurrent prune rewrote the index) makes the load start over.
pub(crate) fn load_index(repo: &Repo) -> Result<LoadedIndex> {
    let mut attempt = 0;
    let (index, files, errors) = 'load: loop {
        attempt += 1;
        let mut files: Vec<ObjectId> = repo
            .list(FileKind::Index)?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        files.sort();
        let mut index = IndexBuilder::new();
        let mut errors = Vec::new();
        for id in &files {
            match repo.load_index(id) {
                Ok(file) => index.add_file(&file),
                Err(RepoError::Backend(e)) if e.is_not_found() && attempt < 5 => continue 'load,
                Err(e @ (RepoError::Corrupt { .. } | RepoError::UnsupportedVersion { .. })) => {
                    errors.push((*id, Error::from(e)));
                }
                Err(e) => return Err(e.into()),
            }
        }
        break (index.finish(), files, errors);
    };
    if let Some(cache) = repo.cache() {
        // Drop what the repository no longer has (after prune).
        cache.retain(FileKind::Index, &files.iter().copied().collect());
        let tree_packs: HashSet<ObjectId> = index
            .iter()
            .filter(|(_, loc)| loc.blob_type == BlobType::Tree)
            .map(|(_, loc)| loc.pack)
            .collect();
        cache.retain(FileKind::Pack, &tree_packs);
    }
    Ok(LoadedIndex {
        index,
        files,
        errors,
    })
}

/// Opens the repository with the key slot in the key file `path`, with errors that
/// name the file.
fn open_with_key_file(
    backend: Arc<dyn WriteBackend>,
    passphrase: &[u8],
    path: &Path,
) -> Result<Repo> {
    let location = backend.location();
    let slot = match crate::key_file::read(path) {
        Ok(slot) => slot,
        Err(e) => {
            // A missing repository is reported as such, not as a key file problem.
            Repo::peek_id(backend.as_ref())?;
            return Err(e);
        }
    };
    let object = crate::key_file::object(path);
    Repo::open_with_slot(backend, passphrase, slot, &object).map_err(|e| {
        slot_error(
            e,
            &format!("{object} (or that file is not this repository's key)"),
            &location,
        )
    })
}

/// The error of opening the repository at `location` with a key slot `object` (a key
/// file, an imported key): each message names them.
pub(crate) fn slot_error(e: RepoError, object: &str, location: &str) -> Error {
    match e {
        RepoError::WrongPassword => Error::new(
            ErrorKind::WrongPassword,
            format!("wrong password: it does not open {object}"),
        ),
        RepoError::ForeignKey { object, repository } => Error::invalid(format!(
            "{object} belongs to another repository ({repository}), not to the one at {location}"
        )),
        other => other.into(),
    }
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("location", &self.location())
            .field("blobs", &self.index.len())
            .finish_non_exhaustive()
    }
}

impl Repository {
    /// Creates a new repository at `backend` protected by `passphrase` (and, with
    /// [`InitOptions::key_file`], by a key file).
    ///
    /// # Errors
    /// [`ErrorKind::AlreadyExists`] if the location is not empty or the key file
    /// exists; `NotFound` if the key file's directory does not exist; `InvalidInput` for
    /// bad options; storage errors.
    pub fn init(
        backend: Arc<dyn WriteBackend>,
        passphrase: &[u8],
        options: &InitOptions,
    ) -> Result<Self> {
        options
            .chunker
            .validate()
            .map_err(|e| Error::invalid(format!("invalid chunker parameters: {e}")))?;
        let now = crate::system::now();
        let params = InitParams {
            kdf: options.kdf,
            id_algorithm: options.id_algorithm,
            chunk_min: options.chunker.min_size,
            chunk_avg: options.chunker.avg_size,
            chunk_max: options.chunker.max_size,
            chunk_normalization: options.chunker.normalization,
            compression: options.compression,
            pack_size: options.pack_size,
            now,
            hostname: crate::system::hostname(),
            username: crate::system::username(),
        };
        if let Some(path) = &options.key_file {
            crate::key_file::check_new(path, "key file")?;
        }
        let location = backend.location();
        let probe = backend.clone();
        let new = Repo::prepare(backend, passphrase, &params)?;
        let new_id = new.repository_id();
        // Key-file mode: the file first, then the config, so that a repository never
        // exists without a way to open it.
        if let Some(path) = &options.key_file {
            crate::key_file::write_new(path, &new.slot().encode(), "key file")?;
        }
        let repo = new.commit(options.key_file.is_none()).map_err(|e| {
            // The key file of a repository that was not created opens nothing: remove
            // it, unless this config was written after all (a lost reply).
            if let Some(path) = &options.key_file
                && !Repo::peek_id(probe.as_ref()).is_ok_and(|id| id == new_id)
            {
                let _ = std::fs::remove_file(path);
            }
            let err = Error::from(e);
            if err.kind() == ErrorKind::AlreadyExists {
                Error::new(
                    ErrorKind::AlreadyExists,
                    format!("cannot create a repository at {location}: it is not empty"),
                )
            } else {
                err
            }
        })?;
        let mut this = Self::from_repo(repo, Index::new())?;
        this.key_file = options.key_file.clone();
        Ok(this)
    }

    /// The repository id, read from the config's plaintext header: no passphrase or
    /// key needed (e.g. to check that an exported key is this repository's before
    /// asking for its passphrase).
    ///
    /// # Errors
    /// [`ErrorKind::RepositoryNotFound`]; `Corrupt` if the config is not an arca
    /// config; storage errors.
    pub fn peek_id(backend: &dyn WriteBackend) -> Result<ObjectId> {
        Ok(Repo::peek_id(backend)?)
    }

    /// Whether `backend` holds a repository (its config exists). Needs no passphrase.
    ///
    /// # Errors
    /// `Corrupt` if a config exists but is not an arca config; storage errors.
    pub fn exists(backend: &dyn WriteBackend) -> Result<bool> {
        match Repo::peek_id(backend) {
            Ok(_) => Ok(true),
            Err(arca_repo::RepoError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Opens the repository at `backend` with `passphrase` and loads its index.
    ///
    /// # Errors
    /// [`ErrorKind::RepositoryNotFound`], [`ErrorKind::WrongPassword`],
    /// [`ErrorKind::KeyFileRequired`] if the repository keeps its key in a key file
    /// (open it with [`Repository::open_with`] and [`OpenOptions::key_file`]), `Corrupt`
    /// for a damaged config, key or index file (named in the message), storage errors.
    ///
    /// A damaged index file does not stop the opening: its blobs are treated as absent
    /// (a backup stores them again, a restore that needs them fails naming them), and
    /// [`Repository::index_problems`] reports it.
    pub fn open(backend: Arc<dyn WriteBackend>, passphrase: &[u8]) -> Result<Self> {
        Self::open_with(backend, passphrase, &OpenOptions::default())
    }

    /// [`Repository::open`] with options: a metadata cache, a key file.
    ///
    /// # Errors
    /// As [`Repository::open`]; with a key file, errors naming it: it cannot be read
    /// (`NotFound`, `Io`), holds no key slot (`Corrupt`), is another repository's key
    /// (`InvalidInput`), or the passphrase does not open it (`WrongPassword`). A cache
    /// directory that cannot be created is not an error: the repository is used
    /// without a cache, and [`Repository::cache_dir`] says so.
    pub fn open_with(
        backend: Arc<dyn WriteBackend>,
        passphrase: &[u8],
        options: &OpenOptions,
    ) -> Result<Self> {
        let mut repo = match &options.key_file {
            Some(path) => open_with_key_file(backend, passphrase, path)?,
            None => Repo::open(backend, passphrase)?,
        };
        if let Some(base) = &options.cache_dir
            && let Ok(cache) = Cache::open(base, &repo.config().repository_id)
        {
            repo.set_cache(cache);
        }
        let loaded = load_index(&repo)?;
        let mut this = Self::from_repo(repo, loaded.index)?;
        this.index_errors = loaded.errors;
        this.index_files = loaded.files;
        this.key_file = options.key_file.clone();
        Ok(this)
    }

    /// Loads the index again if an index file it was loaded from (or this handle
    /// wrote) has been removed: `prune` rewrote the index since. A backup calls this
    /// once its session is registered, so that it never deduplicates against a pack
    /// condemned before. A handle that knows no index file (a new repository) reloads
    /// whenever index files exist that it does not know.
    ///
    /// # Errors
    /// Storage errors listing or reading index files.
    pub(crate) fn reload_index_if_rewritten(&mut self) -> Result<bool> {
        let present: HashSet<ObjectId> = self
            .repo
            .list(FileKind::Index)?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let unchanged = if self.index_files.is_empty() {
            present.is_empty()
        } else {
            self.index_files.iter().all(|id| present.contains(id))
        };
        if unchanged {
            return Ok(false);
        }
        let loaded = load_index(&self.repo)?;
        self.install_index(loaded);
        Ok(true)
    }

    /// Makes `loaded` the index this handle uses.
    pub(crate) fn install_index(&mut self, loaded: LoadedIndex) {
        self.index = loaded.index;
        self.index_errors = loaded.errors;
        self.index_files = loaded.files;
    }

    /// The metadata cache's directory, if one is in use.
    pub fn cache_dir(&self) -> Option<&std::path::Path> {
        self.repo.cache().map(Cache::dir)
    }

    /// What the metadata cache did so far (all zero without one).
    pub fn cache_stats(&self) -> CacheStats {
        self.repo.cache().map(Cache::stats).unwrap_or_default()
    }

    /// Index files that could not be read when the repository was opened.
    pub fn index_problems(&self) -> &[(ObjectId, Error)] {
        &self.index_errors
    }

    fn from_repo(repo: Repo, index: Index) -> Result<Self> {
        let c = &repo.config().chunker;
        let params = ChunkerParams {
            min_size: c.min_size,
            avg_size: c.avg_size,
            max_size: c.max_size,
            normalization: c.normalization,
        };
        let table = GearTable::from_bytes(&*repo.gear_table_material()?);
        let chunker = Chunker::new(params, table).map_err(|e| {
            Error::new(
                ErrorKind::Corrupt,
                format!("config has invalid chunker parameters: {e}"),
            )
        })?;
        Ok(Self {
            repo: Arc::new(repo),
            index,
            chunker,
            index_errors: Vec::new(),
            index_files: Vec::new(),
            key_file: None,
        })
    }

    /// Where the repository lives.
    pub fn location(&self) -> String {
        self.repo.backend().location()
    }

    /// The repository's settings.
    pub fn config(&self) -> &Config {
        self.repo.config()
    }

    /// Every snapshot, oldest first.
    ///
    /// # Errors
    /// The first snapshot file that cannot be read or authenticated (named), or storage
    /// errors. Use [`Repository::snapshots_lenient`] to skip damaged ones.
    pub fn snapshots(&self) -> Result<Vec<SnapshotInfo>> {
        let list = self.snapshots_lenient()?;
        match list.damaged.into_iter().next() {
            Some((_, e)) => Err(e),
            None => Ok(list.snapshots),
        }
    }

    /// Every readable snapshot, oldest first, and each damaged snapshot file's id with
    /// its error.
    ///
    /// # Errors
    /// Storage errors listing the snapshots.
    pub fn snapshots_lenient(&self) -> Result<SnapshotList> {
        let mut ids = self.repo.list(FileKind::Snapshot)?;
        ids.sort();
        if let Some(cache) = self.repo.cache() {
            cache.retain(FileKind::Snapshot, &ids.iter().map(|(id, _)| *id).collect());
        }
        let mut out = Vec::with_capacity(ids.len());
        let mut damaged = Vec::new();
        let mut vanished = false;
        for (id, _) in ids {
            match self.repo.load_snapshot(&id) {
                Ok(snapshot) => out.push(SnapshotInfo { id, snapshot }),
                // Removed between listing and reading (a concurrent forget or tag).
                Err(RepoError::Backend(e)) if e.is_not_found() => vanished = true,
                Err(e) => damaged.push((id, e.into())),
            }
        }
        out.sort_by(|a, b| a.snapshot.time.cmp(&b.snapshot.time).then(a.id.cmp(&b.id)));
        Ok(SnapshotList {
            snapshots: out,
            damaged,
            vanished,
        })
    }

    /// Finds a snapshot by full id, unique id prefix, or `latest`.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] if none matches; `InvalidInput` if a prefix is ambiguous.
    pub fn find_snapshot(&self, spec: &str) -> Result<SnapshotInfo> {
        self.find_snapshot_filtered(spec, &SnapshotFilter::default())
    }

    /// Finds a snapshot among those passing `filter`: `latest` is the newest of them
    /// (with `filter.before`, the newest at or before that moment), otherwise a full id
    /// or unique id prefix.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] if none matches; `InvalidInput` if a prefix is ambiguous.
    pub fn find_snapshot_filtered(
        &self,
        spec: &str,
        filter: &SnapshotFilter,
    ) -> Result<SnapshotInfo> {
        crate::select::select(&self.snapshots()?, spec, filter)
    }

    /// The snapshots `specs` name (ids, unique prefixes, `latest`) among those that
    /// pass `filter`, in the order given; with no specs, every snapshot that passes,
    /// oldest first. The snapshot files are read once, however many specs there are.
    ///
    /// # Errors
    /// As [`Repository::find_snapshot_filtered`] for each spec.
    pub fn find_snapshots(
        &self,
        specs: &[String],
        filter: &SnapshotFilter,
    ) -> Result<Vec<SnapshotInfo>> {
        let list = self.snapshots()?;
        if specs.is_empty() {
            let filter = filter.absolute()?;
            return Ok(list
                .into_iter()
                .filter(|s| filter.matches(&s.snapshot))
                .collect());
        }
        specs
            .iter()
            .map(|spec| crate::select::select(&list, spec, filter))
            .collect()
    }

    /// Reads a tree blob.
    ///
    /// # Errors
    /// `Corrupt` if the tree is missing or damaged.
    pub fn load_tree(&self, id: &BlobId) -> Result<Tree> {
        Ok(self.repo.load_tree(&self.index, id)?)
    }

    /// Reads a data blob (a chunk of file content).
    ///
    /// # Errors
    /// `Corrupt` if the blob is missing or damaged.
    pub fn load_data_blob(&self, id: &BlobId) -> Result<Vec<u8>> {
        let loc = self.index.get(BlobType::Data, id).ok_or_else(|| {
            Error::new(
                ErrorKind::Corrupt,
                format!("data blob {id} is not in the index"),
            )
        })?;
        Ok(self.repo.read_blob(BlobType::Data, id, &loc)?)
    }

    /// Totals over the whole repository.
    ///
    /// # Errors
    /// As [`Repository::snapshots`].
    pub fn stats(&self) -> Result<RepositoryStats> {
        let snapshots = self.snapshots()?;
        Ok(self.stats_for(&snapshots))
    }

    pub(crate) fn stats_for(&self, snapshots: &[SnapshotInfo]) -> RepositoryStats {
        let mut s = RepositoryStats {
            snapshots: snapshots.len() as u64,
            packs: self.index.packs().len() as u64,
            ..Default::default()
        };
        for info in snapshots {
            s.bytes_total += info.snapshot.summary.bytes_total;
            s.bytes_stored_total += info.snapshot.summary.bytes_stored_total;
            s.total_chunks += info.snapshot.summary.chunks_total;
        }
        for (_, loc) in self.index.iter() {
            s.bytes_stored_unique += u64::from(loc.length);
            s.bytes_raw_unique += u64::from(loc.raw_len);
            if loc.blob_type == BlobType::Data {
                s.unique_chunks += 1;
            }
        }
        s
    }
}
