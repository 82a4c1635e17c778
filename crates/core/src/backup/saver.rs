//! Saving blobs during a backup: deduplication against the index and the session,
//! compression and encryption, and packing into pack files that are uploaded as they
//! fill. Used from many threads at once.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arca_backends::ObjectId;
use arca_repo::{
    BlobId, BlobType, BuildBlobIdHasher, Compression, EncodedBlob, Index, IndexedPack, PackBuilder,
    PackWriter, Repo,
};

use super::reader::Abort;
use crate::sync::lock;
use crate::{Error, Result};

/// Figures about what this session stored.
#[derive(Debug, Default)]
pub(crate) struct SaverStats {
    pub(crate) raw_bytes: AtomicU64,
    pub(crate) stored_bytes: AtomicU64,
    pub(crate) data_blobs: AtomicU64,
    pub(crate) tree_blobs: AtomicU64,
}

/// A pack being filled: written straight to storage where the backend can take it
/// piece by piece (a backend whose `start_write` gives a writer, through layers that
/// pass it on: see `Layer::start_stream`), so it costs no memory of its size;
/// assembled in memory otherwise, and in a dry run.
#[derive(Debug)]
enum OpenPack {
    Streamed(PackWriter),
    Memory(PackBuilder),
}

impl OpenPack {
    fn len(&self) -> usize {
        match self {
            Self::Streamed(p) => p.len(),
            Self::Memory(p) => p.len(),
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Self::Streamed(p) => p.is_empty(),
            Self::Memory(p) => p.is_empty(),
        }
    }

    fn fits(&self, blob: &EncodedBlob) -> bool {
        match self {
            Self::Streamed(p) => p.fits(blob),
            Self::Memory(p) => p.fits(blob),
        }
    }

    fn push(&mut self, blob: &EncodedBlob) -> Result<()> {
        match self {
            Self::Streamed(p) => p.push(blob)?,
            Self::Memory(p) => p.push(blob)?,
        };
        Ok(())
    }
}

/// Saves blobs into packs; see the module docs.
pub(crate) struct BlobSaver<'r> {
    repo: &'r Repo,
    index: &'r Index,
    compression: Compression,
    pack_size: usize,
    /// Blobs this session has taken responsibility for storing.
    claimed: Mutex<HashSet<(BlobType, BlobId), BuildBlobIdHasher>>,
    data_pack: Mutex<Option<OpenPack>>,
    tree_pack: Mutex<Option<OpenPack>>,
    /// Packs uploaded in this session, durable, in upload order.
    written: Mutex<Vec<IndexedPack>>,
    /// Buffers of uploaded data packs, for the next ones (see [`BlobSaver::recycle`]).
    spare: Mutex<Vec<Vec<u8>>>,
    /// Assemble packs (so sizes are exact) but upload nothing.
    dry_run: bool,
    pub(crate) stats: SaverStats,
    /// Blobs claimed, and claimed blobs whose [`BlobSaver::store`] has returned: equal
    /// when no claimed blob is still on its way into a pack.
    claims: AtomicU64,
    settled: AtomicU64,
}

impl<'r> BlobSaver<'r> {
    pub(crate) fn new(
        repo: &'r Repo,
        index: &'r Index,
        compression: Compression,
        dry_run: bool,
    ) -> Self {
        Self {
            repo,
            index,
            compression,
            pack_size: repo.config().pack_size as usize,
            claimed: Mutex::new(HashSet::default()),
            data_pack: Mutex::new(None),
            tree_pack: Mutex::new(None),
            written: Mutex::new(Vec::new()),
            spare: Mutex::new(Vec::new()),
            dry_run,
            stats: SaverStats::default(),
            claims: AtomicU64::new(0),
            settled: AtomicU64::new(0),
        }
    }

    /// Returns true if the caller must store the blob: it is neither in the repository
    /// nor already claimed by this session. A `true` answer obliges the caller to call
    /// [`BlobSaver::store`] or [`BlobSaver::store_encoded`] (or fail the backup).
    pub(crate) fn claim(&self, blob_type: BlobType, id: &BlobId) -> bool {
        let mine =
            !self.index.contains(blob_type, id) && lock(&self.claimed).insert((blob_type, *id));
        if mine {
            self.claims.fetch_add(1, Ordering::SeqCst);
        }
        mine
    }

    /// Waits until every blob claimed so far has been packed (or failed). Only
    /// meaningful while nothing else claims blobs: the caller has stopped the file
    /// workers' intake and waited for the files in flight.
    ///
    /// # Errors
    /// The pipeline's error if it stops meanwhile (a failed store stops it).
    pub(crate) fn wait_settled(&self, abort: &Abort) -> Result<()> {
        while self.settled.load(Ordering::SeqCst) < self.claims.load(Ordering::SeqCst) {
            if abort.should_stop() {
                return Err(abort.take_error());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    fn packer(&self, blob_type: BlobType) -> &Mutex<Option<OpenPack>> {
        match blob_type {
            BlobType::Data => &self.data_pack,
            BlobType::Tree => &self.tree_pack,
        }
    }

    /// Compresses, encrypts and packs a claimed blob; uploads the pack when it is full.
    pub(crate) fn store(&self, blob_type: BlobType, id: BlobId, data: &[u8]) -> Result<()> {
        let compression = match blob_type {
            BlobType::Data => self.compression,
            // Trees are small, repetitive and read often: always zstd.
            BlobType::Tree => Compression::Zstd { level: 3 },
        };
        let result = self
            .repo
            .encode_blob(blob_type, id, data, compression)
            .map_err(Error::from)
            .and_then(|blob| self.pack(blob));
        self.settled.fetch_add(1, Ordering::SeqCst);
        result
    }

    /// Packs a claimed blob already compressed and encrypted (an entry copied from
    /// another pack, after authenticating it: prune's repacking); uploads the pack
    /// when it is full.
    pub(crate) fn store_encoded(&self, blob: EncodedBlob) -> Result<()> {
        let result = self.pack(blob);
        self.settled.fetch_add(1, Ordering::SeqCst);
        result
    }

    fn pack(&self, blob: EncodedBlob) -> Result<()> {
        let blob_type = blob.blob_type;
        self.stats
            .raw_bytes
            .fetch_add(u64::from(blob.raw_len), Ordering::Relaxed);
        self.stats
            .stored_bytes
            .fetch_add(blob.bytes.len() as u64, Ordering::Relaxed);
        match blob_type {
            BlobType::Data => &self.stats.data_blobs,
            BlobType::Tree => &self.stats.tree_blobs,
        }
        .fetch_add(1, Ordering::Relaxed);

        let (full, pushed) = {
            let mut slot = lock(self.packer(blob_type));
            let mut full = None;
            if slot.as_ref().is_some_and(|p| !p.fits(&blob)) {
                full = slot.take();
            }
            let pushed = self.push_into(&mut slot, &blob);
            if pushed.is_ok()
                && full.is_none()
                && slot.as_ref().is_some_and(|p| p.len() >= self.pack_size)
            {
                full = slot.take();
            }
            (full, pushed)
        };
        // Upload outside the lock so other workers keep packing meanwhile; a full pack
        // is uploaded even if this blob failed, so the packs finished stay usable.
        if let Some(pack) = full {
            self.upload(pack)?;
        }
        pushed
    }

    /// Appends `blob` to the open pack in `slot`, starting one if there is none.
    fn push_into(&self, slot: &mut Option<OpenPack>, blob: &EncodedBlob) -> Result<()> {
        let pack = match slot.as_mut() {
            Some(p) => p,
            None => slot.insert(self.open_pack(blob.blob_type)?),
        };
        if let Err(e) = pack.push(blob) {
            // A pack written straight to storage may now end in part of this entry: it
            // goes (with its temporary file), and the session fails.
            *slot = None;
            return Err(e);
        }
        Ok(())
    }

    /// Starts a pack: in storage if the backend takes objects piece by piece, in
    /// memory otherwise.
    fn open_pack(&self, blob_type: BlobType) -> Result<OpenPack> {
        let id = ObjectId::random().map_err(|e| {
            Error::new(
                crate::ErrorKind::Io,
                format!("cannot name a new pack file: random generator failed: {e}"),
            )
        })?;
        if !self.dry_run
            && let Some(writer) = self.repo.start_pack(id, blob_type)?
        {
            return Ok(OpenPack::Streamed(writer));
        }
        // Data packs fill up; tree packs of a small backup stay small.
        Ok(OpenPack::Memory(match blob_type {
            BlobType::Data => match lock(&self.spare).pop() {
                Some(buffer) => PackBuilder::reusing(id, blob_type, buffer),
                None => PackBuilder::new(id, blob_type, self.pack_size + self.pack_size / 8),
            },
            BlobType::Tree => PackBuilder::new(id, blob_type, self.pack_size.min(1 << 20)),
        }))
    }

    fn upload(&self, pack: OpenPack) -> Result<()> {
        let written = match pack {
            OpenPack::Streamed(writer) => {
                let id = *writer.id();
                IndexedPack {
                    id,
                    entries: writer.finish()?,
                }
            }
            OpenPack::Memory(builder) => {
                let pack = builder.finish();
                if !self.dry_run {
                    self.repo.write_pack(&pack)?;
                }
                let written = IndexedPack {
                    id: pack.id,
                    entries: pack.entries,
                };
                if pack.blob_type == BlobType::Data {
                    self.recycle(pack.bytes);
                }
                written
            }
        };
        lock(&self.written).push(written);
        Ok(())
    }

    /// Keeps an uploaded data pack's buffer for a later pack, if nothing else holds it
    /// (packs assembled in memory only).
    ///
    /// Besides saving the allocation, this keeps the allocator's behaviour in check:
    /// glibc raises its threshold for serving allocations from fresh mappings to the
    /// size of the largest mapping freed, so once a pack buffer was freed, every
    /// buffer up to a pack's size came from the threads' heaps, which fragment. Peak
    /// RSS of a backup of the Linux tree (`/usr/bin/time`, release build, 3 runs each)
    /// was 80-112 MB with packs freed, 70-72 MB with them kept, the same as with the
    /// threshold pinned at 4 MiB (`MALLOC_MMAP_THRESHOLD_`). A backend that keeps the
    /// bytes it was given (the in-memory one) gets no buffer back.
    fn recycle(&self, bytes: bytes::Bytes) {
        let Ok(buffer) = bytes.try_into_mut() else {
            return;
        };
        let buffer = Vec::from(buffer);
        let mut spare = lock(&self.spare);
        // Several workers may upload at once and need more; two kept bound what stays
        // allocated between packs.
        if spare.len() < 2 && buffer.capacity() >= self.pack_size {
            spare.push(buffer);
        }
    }

    /// Uploads the partly filled packs.
    pub(crate) fn flush(&self) -> Result<()> {
        for blob_type in [BlobType::Data, BlobType::Tree] {
            let pack = lock(self.packer(blob_type)).take();
            if let Some(p) = pack.filter(|p| !p.is_empty()) {
                self.upload(p)?;
            }
        }
        Ok(())
    }

    /// The packs uploaded so far (all durable), or in a dry run the packs assembled.
    pub(crate) fn take_written(&self) -> Vec<IndexedPack> {
        std::mem::take(&mut *lock(&self.written))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arca_backends::{FileKind, Intercept, LocalBackend, ReadBackend};
    use arca_repo::PackEntry;

    use super::*;
    use crate::Repository;
    use crate::testing::{fast_init, random_bytes};

    /// Stores twelve 300 kB blobs through a saver on `repo` (1 MiB packs) and returns
    /// it, flushed, with the packs it wrote.
    fn fill(repo: &Repository) -> (BlobSaver<'_>, Vec<IndexedPack>) {
        let saver = BlobSaver::new(&repo.repo, &repo.index, Compression::None, false);
        for i in 0..12u64 {
            let data = random_bytes(300_000, i);
            let id = repo.repo.blob_id(&data);
            assert!(saver.claim(BlobType::Data, &id));
            saver.store(BlobType::Data, id, &data).unwrap();
        }
        saver.flush().unwrap();
        let written = saver.take_written();
        assert!(written.len() >= 3);
        (saver, written)
    }

    /// A local repository takes packs entry by entry: no pack is assembled in memory,
    /// and every blob reads back from the pack and the place its entry names.
    #[test]
    fn local_packs_are_written_straight_to_storage() {
        let dir = tempfile::tempdir().unwrap();
        let backend = Arc::new(LocalBackend::new(dir.path().to_path_buf()));
        Repository::init(backend.clone(), b"pw", &fast_init(1 << 20)).unwrap();
        let repo = Repository::open(backend.clone(), b"pw").unwrap();
        let (saver, written) = fill(&repo);
        assert!(lock(&saver.spare).is_empty());
        let mut blobs = 0;
        for pack in &written {
            let bytes = backend.read_full(FileKind::Pack, &pack.id).unwrap();
            let (scanned, damage) = arca_repo::scan_pack(&bytes, &pack.id);
            assert!(damage.is_none());
            // A scan cannot see plaintext lengths (they are encrypted).
            let framing = |e: &PackEntry| (e.blob_type, e.id, e.offset, e.length);
            assert!(
                scanned
                    .iter()
                    .map(framing)
                    .eq(pack.entries.iter().map(framing))
            );
            for entry in &pack.entries {
                let range = entry.offset as usize..(entry.offset + entry.length) as usize;
                let loc = entry.location(pack.id);
                let plain = repo
                    .repo
                    .decode_blob(&bytes[range], BlobType::Data, &entry.id, &loc)
                    .unwrap();
                assert_eq!(repo.repo.blob_id(&plain), entry.id);
                blobs += 1;
            }
        }
        assert_eq!(blobs, 12);
    }

    /// A pack uploaded to storage that keeps no reference to its bytes gives its buffer
    /// to the next pack.
    #[test]
    fn uploaded_pack_buffers_are_kept_for_the_next_packs() {
        let dir = tempfile::tempdir().unwrap();
        // Intercept takes whole objects only, so packs are assembled in memory.
        let backend = Arc::new(Intercept::new(
            LocalBackend::new(dir.path().to_path_buf()),
            Box::new(|_| Ok(())),
        ));
        Repository::init(backend.clone(), b"pw", &fast_init(1 << 20)).unwrap();
        let repo = Repository::open(backend, b"pw").unwrap();
        let (saver, _) = fill(&repo);
        let spare = lock(&saver.spare);
        assert!(!spare.is_empty());
        assert!(spare.iter().all(|b| b.capacity() >= 1 << 20));
    }
}
