//! An opened repository at the format level: keys, config, and typed reads and writes
//! of every stored structure through a backend.

use std::sync::Arc;

use arca_backends::{FileKind, ObjectId, WriteBackend};
use arca_crypto::{
    IdAlgorithm, IdHasher, KdfParams, MasterKey, Opener, Sealer, SecretKey, expand_key,
    random_array,
};
use bytes::Bytes;
use zeroize::Zeroizing;

use crate::RepoError;
use crate::blob::{self, BlobId, BlobType, EncodedBlob, EntryHeader};
use crate::cache::Cache;
use crate::compression::Compression;
use crate::config::{ChunkerSettings, Config, MAX_PACK_SIZE, MIN_PACK_SIZE};
use crate::header::{Header, ObjectType, open_file, seal_file};
use crate::index::{BlobLocation, Index, IndexFile};
use crate::keyfile::{KeyInfo, KeySlot, SlotLock};
use crate::lock::LockRecord;
use crate::pack::{Pack, PackEntry, PackWriter};
use crate::pack_reader::{PACK_READ_WINDOW, PackReader};
use crate::recent_packs::RecentPacks;
use crate::snapshot::Snapshot;
use crate::tree::{Timestamp, Tree};

/// Bytes of key material for the chunker's gear table.
pub const GEAR_TABLE_BYTES: usize = 2048;

/// Settings for a new repository.
#[derive(Clone, Debug)]
pub struct InitParams {
    /// Argon2id cost for the first key slot.
    pub kdf: KdfParams,
    /// The chunk id algorithm.
    pub id_algorithm: IdAlgorithm,
    /// Minimum chunk size.
    pub chunk_min: u32,
    /// Average chunk size.
    pub chunk_avg: u32,
    /// Maximum chunk size.
    pub chunk_max: u32,
    /// Chunk size normalization level.
    pub chunk_normalization: u8,
    /// Default compression.
    pub compression: Compression,
    /// Target pack size.
    pub pack_size: u32,
    /// Creation time.
    pub now: Timestamp,
    /// Host creating the repository (recorded in the key slot).
    pub hostname: String,
    /// User creating the repository (recorded in the key slot).
    pub username: String,
}

/// An opened repository: the master key, the config, and typed access to storage.
pub struct Repo {
    backend: Arc<dyn WriteBackend>,
    config: Config,
    sealer: Sealer,
    opener: Opener,
    ids: IdHasher,
    /// Where tree packs read whole are kept.
    kept: KeptPacks,
    /// Kept to wrap it in new key slots (`key add`, `key passwd`).
    master: MasterKey,
    /// The key slot the passphrase opened (for `key export`).
    key: KeySlot,
}

/// Where a reader keeps the tree packs it read whole ([`Repo::read_blob`]).
enum KeptPacks {
    /// In the metadata cache, on disk.
    Cache(Cache),
    /// The last two in memory, for a reader without a cache.
    Memory(RecentPacks),
}

impl std::fmt::Debug for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repo")
            .field("location", &self.backend.location())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn crypto_err(context: &str) -> impl Fn(arca_crypto::CryptoError) -> RepoError + '_ {
    move |e| RepoError::crypto(context, e)
}

impl Repo {
    fn from_parts(
        backend: Arc<dyn WriteBackend>,
        config: Config,
        master: &MasterKey,
        key: KeySlot,
    ) -> Result<Self, RepoError> {
        let ids = IdHasher::new(config.id_algorithm, master.id_key())
            .map_err(crypto_err("preparing ids"))?;
        Ok(Self {
            sealer: Sealer::new(master.encryption_key())
                .map_err(crypto_err("starting a session"))?,
            opener: Opener::new(master.encryption_key()),
            ids,
            backend,
            config,
            kept: KeptPacks::Memory(RecentPacks::default()),
            master: master.clone(),
            key,
        })
    }

    /// Creates a repository: a fresh master key, one key slot for `passphrase` in
    /// `keys/`, and the config (written last, so a location without a config is not a
    /// repository). [`Repo::prepare`] and [`NewRepo::commit`] in one step.
    ///
    /// # Errors
    /// The backend refuses (e.g. the location is not empty); invalid parameters.
    pub fn init(
        backend: Arc<dyn WriteBackend>,
        passphrase: &[u8],
        p: &InitParams,
    ) -> Result<Self, RepoError> {
        Self::prepare(backend, passphrase, p)?.commit(true)
    }

    /// The first step of creating a repository: checks the parameters and draws the
    /// master key, the repository id and the first key slot. Nothing is written until
    /// [`NewRepo::commit`]; in between, the caller may store the slot elsewhere (a key
    /// file, docs/design.md §5.6).
    ///
    /// # Errors
    /// Invalid parameters; a failing random generator.
    pub fn prepare(
        backend: Arc<dyn WriteBackend>,
        passphrase: &[u8],
        p: &InitParams,
    ) -> Result<NewRepo, RepoError> {
        if !(MIN_PACK_SIZE..=MAX_PACK_SIZE).contains(&p.pack_size) {
            return Err(RepoError::InvalidInput(format!(
                "pack size {} is outside {MIN_PACK_SIZE}..={MAX_PACK_SIZE} bytes",
                p.pack_size
            )));
        }
        p.kdf
            .validate()
            .map_err(|e| RepoError::InvalidInput(e.to_string()))?;
        let master = MasterKey::generate().map_err(crypto_err("generating the master key"))?;
        let repository_id = ObjectId::from_bytes(
            random_array().map_err(crypto_err("generating the repository id"))?,
        );
        let config = Config {
            repository_id,
            created: p.now,
            id_algorithm: p.id_algorithm,
            chunker: ChunkerSettings {
                min_size: p.chunk_min,
                avg_size: p.chunk_avg,
                max_size: p.chunk_max,
                normalization: p.chunk_normalization,
                gear_seed: random_array().map_err(crypto_err("generating the chunker seed"))?,
            },
            compression: p.compression,
            pack_size: p.pack_size,
        };
        let info = KeyInfo {
            repository_id,
            created: p.now,
            hostname: p.hostname.clone(),
            username: p.username.clone(),
        };
        let slot = KeySlot::create(&master, SlotLock::Passphrase(passphrase, p.kdf), &info)?;
        Ok(NewRepo {
            backend,
            config,
            master,
            slot,
        })
    }

    /// Reads the repository id from the config's plaintext header (no key needed).
    ///
    /// # Errors
    /// [`RepoError::NotFound`] if there is no config; [`RepoError::Corrupt`] if it is not
    /// an arca config.
    pub fn peek_id(backend: &dyn WriteBackend) -> Result<ObjectId, RepoError> {
        let data = read_config(backend)?;
        Ok(ObjectId::from_bytes(
            Header::decode(&data, ObjectType::Config, "config")?.id,
        ))
    }

    /// Opens a repository with `passphrase`, trying each key slot in `keys/` in the
    /// order of its id (a generated secret's text is tried only against secret slots,
    /// which cost nothing; any other passphrase only against Argon2id slots).
    ///
    /// # Errors
    /// [`RepoError::NotFound`] if no repository is there; [`RepoError::NoKeySlots`] if
    /// `keys/` is empty (the key is kept in a key file: use [`Repo::open_with_slot`]);
    /// [`RepoError::WrongPassword`] if no slot opens; [`RepoError::Corrupt`] for damaged
    /// config or keys.
    pub fn open(backend: Arc<dyn WriteBackend>, passphrase: &[u8]) -> Result<Self, RepoError> {
        let data = read_config(backend.as_ref())?;
        let header = Header::decode(&data, ObjectType::Config, "config")?;
        let repository_id = ObjectId::from_bytes(header.id);
        let mut slots = backend.list(FileKind::Key)?;
        if slots.is_empty() {
            return Err(RepoError::NoKeySlots {
                location: backend.location(),
            });
        }
        slots.sort();
        let mut damaged = None;
        for (id, _) in slots {
            let slot = match backend
                .read_full(FileKind::Key, &id)
                .map_err(RepoError::from)
                .and_then(|b| KeySlot::decode(&b, &id))
            {
                Ok(s) => s,
                Err(e) => {
                    damaged = Some(e);
                    continue;
                }
            };
            match slot.open(passphrase) {
                Ok((master, info)) => {
                    let object = format!("key {id}");
                    return Self::unlock(
                        backend,
                        &data,
                        repository_id,
                        slot,
                        &master,
                        &info,
                        &object,
                    );
                }
                Err(RepoError::WrongPassword) => {}
                Err(e) => return Err(e),
            }
        }
        // Every readable slot rejected the passphrase. If some slot was unreadable, say
        // so: the passphrase may belong to it.
        match damaged {
            Some(e) => Err(e),
            None => Err(RepoError::WrongPassword),
        }
    }

    /// Opens a repository with `passphrase` and `slot`, a key slot kept outside `keys/`
    /// (a key file, or an exported key being imported); the slots in `keys/` are not
    /// tried. `object` names the slot in errors (e.g. `key file /media/usb/arca.key`).
    ///
    /// # Errors
    /// [`RepoError::NotFound`] if no repository is there; [`RepoError::WrongPassword`] if
    /// the passphrase does not open the slot; [`RepoError::ForeignKey`] if the slot is
    /// another repository's; [`RepoError::Corrupt`] for a damaged config or slot.
    pub fn open_with_slot(
        backend: Arc<dyn WriteBackend>,
        passphrase: &[u8],
        slot: KeySlot,
        object: &str,
    ) -> Result<Self, RepoError> {
        let data = read_config(backend.as_ref())?;
        let header = Header::decode(&data, ObjectType::Config, "config")?;
        let repository_id = ObjectId::from_bytes(header.id);
        let (master, info) = slot.open(passphrase)?;
        Self::unlock(backend, &data, repository_id, slot, &master, &info, object)
    }

    /// The end of every opening: the slot that opened must be this repository's, and
    /// its key must open the config.
    fn unlock(
        backend: Arc<dyn WriteBackend>,
        config: &[u8],
        repository_id: ObjectId,
        slot: KeySlot,
        master: &MasterKey,
        info: &KeyInfo,
        object: &str,
    ) -> Result<Self, RepoError> {
        if info.repository_id != repository_id {
            return Err(RepoError::ForeignKey {
                object: object.to_owned(),
                repository: info.repository_id.short(),
            });
        }
        let (_, payload) = open_file(
            &Opener::new(master.encryption_key()),
            ObjectType::Config,
            None,
            config,
            "config",
        )?;
        let config = Config::decode(&payload)?;
        if config.repository_id != repository_id {
            return Err(RepoError::corrupt(
                "config",
                "its sealed id differs from its header",
            ));
        }
        Self::from_parts(backend, config, master, slot)
    }

    /// Keeps index files, snapshot files and tree packs in `cache` from now on.
    pub fn set_cache(&mut self, cache: Cache) {
        self.kept = KeptPacks::Cache(cache);
    }

    /// The metadata cache, if one is in use.
    pub fn cache(&self) -> Option<&Cache> {
        match &self.kept {
            KeptPacks::Cache(cache) => Some(cache),
            KeptPacks::Memory(_) => None,
        }
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<dyn WriteBackend> {
        &self.backend
    }

    /// The config.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The keyed id of `data`.
    pub fn blob_id(&self, data: &[u8]) -> BlobId {
        BlobId(self.ids.id(data))
    }

    /// Key material for the chunker's gear table, derived from the config's secret seed.
    ///
    /// # Errors
    /// Never in practice (HKDF output length is fixed and valid).
    pub fn gear_table_material(&self) -> Result<Zeroizing<[u8; GEAR_TABLE_BYTES]>, RepoError> {
        let mut out = Zeroizing::new([0u8; GEAR_TABLE_BYTES]);
        let seed = SecretKey::from_bytes(self.config.chunker.gear_seed);
        expand_key(&seed, b"arca-v1 gear table", b"", &mut out[..])
            .map_err(crypto_err("deriving the gear table"))?;
        Ok(out)
    }

    /// Compresses and seals a blob.
    ///
    /// # Errors
    /// As [`blob::encode_blob`].
    pub fn encode_blob(
        &self,
        blob_type: BlobType,
        id: BlobId,
        data: &[u8],
        compression: Compression,
    ) -> Result<EncodedBlob, RepoError> {
        blob::encode_blob(&self.sealer, blob_type, id, data, compression)
    }

    /// Authenticates and decodes one pack entry.
    ///
    /// # Errors
    /// As [`blob::decode_entry`].
    pub fn decode_entry(
        &self,
        entry: &[u8],
        expected: Option<(BlobType, BlobId)>,
        object: &str,
    ) -> Result<(EntryHeader, Vec<u8>), RepoError> {
        blob::decode_entry(&self.opener, entry, expected, object)
    }

    /// Removes object `id` of `kind`; one already gone (removed by a concurrent
    /// command) is not an error. Returns whether this call removed it.
    ///
    /// # Errors
    /// Storage errors other than not-found.
    pub fn remove_if_present(&self, kind: FileKind, id: &ObjectId) -> Result<bool, RepoError> {
        match self.backend.remove(kind, id) {
            Ok(()) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Authenticates and decodes the pack entry `bytes` of blob `id` stored at `loc`,
    /// checking its plaintext length against the index.
    ///
    /// # Errors
    /// [`RepoError::Corrupt`] naming the blob and pack.
    pub fn decode_blob(
        &self,
        bytes: &[u8],
        blob_type: BlobType,
        id: &BlobId,
        loc: &BlobLocation,
    ) -> Result<Vec<u8>, RepoError> {
        let object = format!("{blob_type} blob {id} in pack {}", loc.pack);
        let (_, plain) = self.decode_entry(bytes, Some((blob_type, *id)), &object)?;
        if plain.len() != loc.raw_len as usize {
            return Err(RepoError::corrupt(
                &object,
                format!("{} bytes, the index says {}", plain.len(), loc.raw_len),
            ));
        }
        Ok(plain)
    }

    /// Reads one blob from its pack. Tree blobs come from the cache when there is one:
    /// their (small) pack is fetched whole once and kept.
    ///
    /// # Errors
    /// Backend errors; [`RepoError::Corrupt`] naming the blob and pack.
    pub fn read_blob(
        &self,
        blob_type: BlobType,
        id: &BlobId,
        loc: &BlobLocation,
    ) -> Result<Vec<u8>, RepoError> {
        let decode = |bytes: &[u8]| self.decode_blob(bytes, blob_type, id, loc);
        let (offset, length) = (u64::from(loc.offset), u64::from(loc.length));
        if blob_type == BlobType::Tree {
            return self.read_tree_blob(id, loc, decode);
        }
        let bytes = self
            .backend
            .read_range(FileKind::Pack, &loc.pack, offset, length)?;
        decode(&bytes)
    }

    /// A tree blob, from its pack read whole and kept: directory trees are read in runs
    /// from the same few packs, and a request per tree made `check` of a remote
    /// repository (which uses no cache) take minutes.
    ///
    /// - In the metadata cache: a kept copy that does not decode may be damaged on this
    ///   disk, so it is dropped and the pack read again; a pack is kept once a tree of
    ///   it decodes.
    /// - In memory (no cache): the copy is the bytes storage gave, kept before decoding,
    ///   and a tree that does not decode is an error at once (reading it again would
    ///   give the same bytes).
    fn read_tree_blob(
        &self,
        id: &BlobId,
        loc: &BlobLocation,
        decode: impl Fn(&[u8]) -> Result<Vec<u8>, RepoError>,
    ) -> Result<Vec<u8>, RepoError> {
        let (start, len) = (loc.offset as usize, loc.length as usize);
        let tree_of = |pack: &Bytes| match start.checked_add(len) {
            Some(end) if end <= pack.len() => Ok(pack.slice(start..end)),
            _ => Err(RepoError::corrupt(
                format!("tree blob {id} in pack {}", loc.pack),
                format!("pack {} is too short", loc.pack),
            )),
        };
        match &self.kept {
            KeptPacks::Cache(cache) => {
                if let Some(bytes) = cache.get_range(FileKind::Pack, &loc.pack, start as u64, len) {
                    match decode(&bytes) {
                        Ok(plain) => return Ok(plain),
                        Err(_) => cache.reject(FileKind::Pack, &loc.pack),
                    }
                }
                let pack = self.backend.read_full(FileKind::Pack, &loc.pack)?;
                let plain = decode(&tree_of(&pack)?)?;
                cache.put(FileKind::Pack, &loc.pack, &pack);
                Ok(plain)
            }
            KeptPacks::Memory(recent) => {
                let bytes = match recent.get(&loc.pack, start, len) {
                    Some(bytes) => bytes,
                    None => {
                        let pack = self.backend.read_full(FileKind::Pack, &loc.pack)?;
                        recent.put(loc.pack, pack.clone());
                        tree_of(&pack)?
                    }
                };
                decode(&bytes)
            }
        }
    }

    /// Reads pack `id` (`len` bytes, as listed), a window at a time, and lists its
    /// intact entries, each authenticated and with its plaintext length (which framing
    /// alone does not give), and whether anything in the pack is damaged. `None` if the
    /// pack does not exist. For rebuilding index entries from packs (`repair index`,
    /// prune's rescue of unindexed packs).
    ///
    /// # Errors
    /// Storage errors other than not-found.
    pub fn read_pack_entries(
        &self,
        id: &ObjectId,
        len: u64,
    ) -> Result<Option<(Vec<PackEntry>, bool)>, RepoError> {
        let mut damaged = false;
        let mut entries = Vec::new();
        for next in PackReader::new(&*self.backend, *id, len, PACK_READ_WINDOW) {
            let (mut e, bytes) = match next {
                Ok(found) => found,
                // Missing, or removed while it was being read: as if it had not been.
                Err(RepoError::Backend(e)) if e.is_not_found() => return Ok(None),
                Err(e @ RepoError::Backend(_)) => return Err(e),
                // Damage ends the entries.
                Err(_) => {
                    damaged = true;
                    break;
                }
            };
            let object = format!("{} blob {} in pack {id}", e.blob_type, e.id);
            let plain = self
                .decode_entry(&bytes, Some((e.blob_type, e.id)), &object)
                .ok()
                .and_then(|(_, plain)| u32::try_from(plain.len()).ok());
            match plain {
                Some(raw_len) => {
                    e.raw_len = raw_len;
                    entries.push(e);
                }
                None => damaged = true,
            }
        }
        Ok(Some((entries, damaged)))
    }

    /// Reads and decodes a tree blob.
    ///
    /// # Errors
    /// [`RepoError::BlobNotFound`] if the index lacks it; read and decode errors.
    pub fn load_tree(&self, index: &Index, id: &BlobId) -> Result<Tree, RepoError> {
        let loc = index
            .get(BlobType::Tree, id)
            .ok_or_else(|| RepoError::BlobNotFound(format!("tree {id}")))?;
        let data = self.read_blob(BlobType::Tree, id, &loc)?;
        Tree::decode(&data, &format!("tree blob {id}"))
    }

    /// Uploads a finished pack.
    ///
    /// # Errors
    /// Backend errors.
    pub fn write_pack(&self, pack: &Pack) -> Result<(), RepoError> {
        self.backend
            .write(FileKind::Pack, &pack.id, pack.bytes.clone())?;
        Ok(())
    }

    /// Starts pack `id` written straight to storage, if the backend can take it piece
    /// by piece ([`WriteBackend::start_write`]); `None` if it cannot, and the caller
    /// assembles the pack with a [`crate::PackBuilder`] and calls [`Repo::write_pack`].
    ///
    /// # Errors
    /// Storage errors.
    pub fn start_pack(
        &self,
        id: ObjectId,
        blob_type: BlobType,
    ) -> Result<Option<PackWriter>, RepoError> {
        match self.backend.start_write(FileKind::Pack, &id)? {
            Some(writer) => PackWriter::start(id, blob_type, writer).map(Some),
            None => Ok(None),
        }
    }

    fn save_sealed(
        &self,
        kind: FileKind,
        object_type: ObjectType,
        payload: &[u8],
    ) -> Result<ObjectId, RepoError> {
        let id = ObjectId::from_bytes(random_array().map_err(crypto_err("naming a file"))?);
        let file = seal_file(&self.sealer, object_type, *id.as_bytes(), payload)?;
        self.backend.write(kind, &id, Bytes::from(file))?;
        Ok(id)
    }

    fn load_sealed(
        &self,
        kind: FileKind,
        object_type: ObjectType,
        id: &ObjectId,
    ) -> Result<Vec<u8>, RepoError> {
        let object = format!("{} {id}", object_type.name());
        let open = |data: &[u8]| {
            open_file(
                &self.opener,
                object_type,
                Some(*id.as_bytes()),
                data,
                &object,
            )
            .map(|(_, payload)| payload)
        };
        let cache = self
            .cache()
            .filter(|_| matches!(kind, FileKind::Index | FileKind::Snapshot));
        if let Some(cache) = cache
            && let Some(data) = cache.get(kind, id)
        {
            match open(&data) {
                Ok(payload) => return Ok(payload),
                Err(_) => cache.reject(kind, id),
            }
        }
        let data = self.backend.read_full(kind, id)?;
        let payload = open(&data)?;
        if let Some(cache) = cache {
            cache.put(kind, id, &data);
        }
        Ok(payload)
    }

    /// Writes an index file; returns its id.
    ///
    /// # Errors
    /// Backend or crypto errors.
    pub fn save_index(&self, file: &IndexFile) -> Result<ObjectId, RepoError> {
        self.save_sealed(FileKind::Index, ObjectType::Index, &file.encode())
    }

    /// Reads an index file.
    ///
    /// # Errors
    /// Backend errors; [`RepoError::Corrupt`] naming it.
    pub fn load_index(&self, id: &ObjectId) -> Result<IndexFile, RepoError> {
        let payload = self.load_sealed(FileKind::Index, ObjectType::Index, id)?;
        IndexFile::decode(&payload, &format!("index {id}"))
    }

    /// Writes a snapshot file; returns its id.
    ///
    /// # Errors
    /// Backend or crypto errors.
    pub fn save_snapshot(&self, snapshot: &Snapshot) -> Result<ObjectId, RepoError> {
        self.save_sealed(
            FileKind::Snapshot,
            ObjectType::Snapshot,
            &snapshot.encode()?,
        )
    }

    /// Reads a snapshot file.
    ///
    /// # Errors
    /// Backend errors; [`RepoError::Corrupt`] naming it.
    pub fn load_snapshot(&self, id: &ObjectId) -> Result<Snapshot, RepoError> {
        let payload = self.load_sealed(FileKind::Snapshot, ObjectType::Snapshot, id)?;
        Snapshot::decode(&payload, &format!("snapshot {id}"))
    }

    /// The id of the key slot the passphrase opened.
    pub fn key_id(&self) -> ObjectId {
        self.key.id
    }

    /// The key slot the passphrase opened (still wrapped by it).
    pub fn key_slot(&self) -> &KeySlot {
        &self.key
    }

    /// Wraps the master key under `lock` in a new key slot, without storing it.
    ///
    /// # Errors
    /// Invalid KDF parameters.
    pub fn create_key_slot(
        &self,
        lock: SlotLock<'_>,
        info: &KeyInfo,
    ) -> Result<KeySlot, RepoError> {
        KeySlot::create(&self.master, lock, info)
    }

    /// Writes `slot` into `keys/` (under its id; an existing file is never replaced).
    ///
    /// # Errors
    /// Storage errors, among them already-exists.
    pub fn store_key_slot(&self, slot: &KeySlot) -> Result<(), RepoError> {
        self.backend
            .write(FileKind::Key, &slot.id, Bytes::from(slot.encode()))?;
        Ok(())
    }

    /// Reads a key slot's public part (id and KDF settings).
    ///
    /// # Errors
    /// Storage errors; [`RepoError::Corrupt`] for a damaged slot.
    pub fn load_key_slot(&self, id: &ObjectId) -> Result<KeySlot, RepoError> {
        let data = self.backend.read_full(FileKind::Key, id)?;
        KeySlot::decode(&data, id)
    }

    /// Writes a record in `locks/`; returns its id.
    ///
    /// # Errors
    /// Backend or crypto errors.
    pub fn save_lock(&self, record: &LockRecord) -> Result<ObjectId, RepoError> {
        self.save_sealed(FileKind::Lock, ObjectType::Lock, &record.encode()?)
    }

    /// Reads a record in `locks/`.
    ///
    /// # Errors
    /// Backend errors ([`RepoError::NotFound`]-like backend errors when it was removed
    /// meanwhile); [`RepoError::Corrupt`] naming it.
    pub fn load_lock(&self, id: &ObjectId) -> Result<LockRecord, RepoError> {
        let payload = self.load_sealed(FileKind::Lock, ObjectType::Lock, id)?;
        LockRecord::decode(&payload, &format!("lock {id}"))
    }

    /// Lists stored objects of `kind` with their sizes.
    ///
    /// # Errors
    /// Backend errors.
    pub fn list(&self, kind: FileKind) -> Result<Vec<(ObjectId, u64)>, RepoError> {
        Ok(self.backend.list(kind)?)
    }
}

/// A repository being created: keys drawn, config not yet written (see
/// [`Repo::prepare`]).
pub struct NewRepo {
    backend: Arc<dyn WriteBackend>,
    config: Config,
    master: MasterKey,
    slot: KeySlot,
}

impl std::fmt::Debug for NewRepo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewRepo")
            .field("location", &self.backend.location())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl NewRepo {
    /// The first key slot, wrapping the master key under the passphrase given.
    pub fn slot(&self) -> &KeySlot {
        &self.slot
    }

    /// The new repository's id.
    pub fn repository_id(&self) -> ObjectId {
        self.config.repository_id
    }

    /// Creates the location (which must be empty), writes the first key slot into
    /// `keys/` if `slot_in_repository` (else the caller stored it elsewhere first), then
    /// the config: from then on the location is a repository.
    ///
    /// # Errors
    /// The backend refuses (e.g. the location is not empty); storage and crypto errors.
    pub fn commit(self, slot_in_repository: bool) -> Result<Repo, RepoError> {
        let Self {
            backend,
            config,
            master,
            slot,
        } = self;
        backend.create()?;
        let repository_id = config.repository_id;
        let repo = Repo::from_parts(backend, config, &master, slot)?;
        if slot_in_repository {
            repo.store_key_slot(repo.key_slot())?;
        }
        let file = seal_file(
            &repo.sealer,
            ObjectType::Config,
            *repository_id.as_bytes(),
            &repo.config.encode()?,
        )?;
        repo.backend
            .write(FileKind::Config, &ObjectId::ZERO, Bytes::from(file))?;
        Ok(repo)
    }
}

fn read_config(backend: &dyn WriteBackend) -> Result<Bytes, RepoError> {
    match backend.read_full(FileKind::Config, &ObjectId::ZERO) {
        Ok(d) => Ok(d),
        Err(e) if e.is_not_found() => Err(RepoError::NotFound {
            location: backend.location(),
        }),
        Err(e) => Err(e.into()),
    }
}
