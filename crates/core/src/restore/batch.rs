//! Restoring files in batches: the chunks of several new files are looked up together,
//! sorted by pack and offset, and read with one ranged read per run of neighbouring
//! entries, so that the small files a backup packed side by side come back in a few
//! requests instead of one per chunk (which dominates on remote storage). Each entry is
//! authenticated before its bytes are written at their place in their file.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use arca_backends::FileKind;
use arca_repo::{BlobId, BlobLocation, BlobType};

use super::writer::{FileJob, finish_file, settle_existing, write_at};
use super::{Ctx, WorkerCounts};
use crate::bundle_cache::{Claim, Reading};
use crate::content::bundle_slice;

/// Entries closer than this in one pack are read together (the gap is read and
/// discarded: cheaper than another request).
const MAX_GAP: u64 = 256 << 10;
/// A run of entries is not stretched past this to take in another entry; one entry
/// larger than this is read whole, once, for all its pieces.
const MAX_READ: u64 = 8 << 20;
/// A batch holds at most this many files, or this much content.
const BATCH_FILES: usize = 64;
pub(crate) const BATCH_BYTES: u64 = 32 << 20;

/// How many opened files may wait for the workers, and how many each worker takes at
/// once. Every such file is an open descriptor: together they take at most a quarter of
/// the process's limit of open files (`limit`), leaving the rest to directories, the
/// storage and everything else.
pub(crate) fn file_budget(limit: u64, threads: usize) -> (usize, usize) {
    let budget = usize::try_from(limit / 4)
        .unwrap_or(usize::MAX)
        .clamp(8, 1024);
    let queued = budget / 2;
    let batch = (budget / 2 / threads.max(1)).clamp(1, BATCH_FILES);
    (queued, batch)
}

/// One chunk to place: where it is stored, and where it goes; for a bundled file, the
/// slice of the chunk that is its content.
struct Piece {
    loc: BlobLocation,
    id: BlobId,
    job: usize,
    at: u64,
    /// Bundled files: their bytes in the chunk's plaintext (whose length, `raw_len`,
    /// decoding enforces).
    slice: Option<Range<usize>>,
}

impl Piece {
    fn offset(&self) -> u64 {
        u64::from(self.loc.offset)
    }

    fn end(&self) -> u64 {
        self.offset() + u64::from(self.loc.length)
    }
}

/// A file being filled: its job, whether it failed, and whether it has holes.
struct Filling {
    job: FileJob,
    error: Option<String>,
    hole: bool,
    written: u64,
}

/// Restores `jobs`: a file that existed already and holds the snapshot's content is
/// only checked; every other file is filled from coalesced pack reads.
pub(crate) fn restore_batch(ctx: &Ctx<'_>, jobs: Vec<FileJob>, counts: &Mutex<WorkerCounts>) {
    let mut files = Vec::with_capacity(jobs.len());
    for job in jobs {
        let job = if job.existing {
            match settle_existing(ctx, job, counts) {
                Some(job) => job,
                None => continue,
            }
        } else {
            job
        };
        files.push(Filling {
            job,
            error: None,
            hole: false,
            written: 0,
        });
    }
    let pieces = pieces_of(ctx, &mut files);
    // Each bundle is read by one worker at a time: one kept from a recent batch (its
    // files straddle batches) is placed now, one another worker is reading now is
    // waited for once this batch's own reads are done (holding none of its own, so
    // every wait ends); the rest is read below. (A bundle lying between this batch's
    // entries may still be read as part of a gap, but is not decoded.)
    let mut reading = HashMap::new();
    let mut waiting = Vec::new();
    let mut to_read = Vec::with_capacity(pieces.len());
    for p in pieces {
        if p.slice.is_none() || reading.contains_key(&p.id) {
            to_read.push(p);
            continue;
        }
        match ctx.bundles.claim(&p.id) {
            Claim::Kept(plain) => {
                let f = &mut files[p.job];
                if f.error.is_none() {
                    place_piece(ctx, f, &p, &plain);
                }
            }
            Claim::Mine(r) => {
                reading.insert(p.id, r);
                to_read.push(p);
            }
            Claim::Elsewhere => waiting.push(p),
        }
    }
    to_read.sort_unstable_by_key(|p| (p.loc.pack, p.loc.offset, p.job, p.at));
    let mut rest = &to_read[..];
    while !rest.is_empty() && !stopped(ctx, &mut files) {
        let run = run_len(rest);
        let (now, later) = rest.split_at(run);
        rest = later;
        place_run(ctx, now, &mut files, &mut reading);
        // A bundle of this run that was not kept (its read failed, or all its files had
        // failed before) is free now for the workers waiting for it.
        for p in now {
            reading.remove(&p.id);
        }
    }
    drop(reading);
    place_waited(ctx, waiting, &mut files);
    for f in files {
        finish_file(ctx, f.job, f.error, f.hole, f.written, counts);
    }
}

/// The chunks of `files`, each with where it is stored and where it goes; a file whose
/// chunk is not indexed, or whose slice does not fit its bundle, fails here.
fn pieces_of(ctx: &Ctx<'_>, files: &mut [Filling]) -> Vec<Piece> {
    let mut pieces = Vec::new();
    for (n, f) in files.iter_mut().enumerate() {
        let mut at = 0u64;
        let node = &f.job.node;
        for id in &node.content {
            let Some(loc) = ctx.repo.index.get(BlobType::Data, id) else {
                f.error = Some(format!("data blob {id} is not in the index"));
                break;
            };
            let slice = node
                .bundle_offset
                .map(|offset| bundle_slice(offset, node.size, loc.raw_len as usize))
                .transpose();
            let slice = match slice {
                Ok(slice) => slice,
                Err(why) => {
                    f.error = Some(format!("bundle {id}: {why}"));
                    break;
                }
            };
            pieces.push(Piece {
                loc,
                id: *id,
                job: n,
                at,
                slice,
            });
            at += u64::from(loc.raw_len);
        }
    }
    pieces
}

/// Places the pieces of bundles other workers were reading, once this worker holds no
/// bundle of its own. Each bundle is taken once: if its reader failed, this worker
/// reads it (once), and its files fail alike if that fails too.
fn place_waited(ctx: &Ctx<'_>, waiting: Vec<Piece>, files: &mut [Filling]) {
    let mut waited: HashMap<BlobId, Result<Arc<Vec<u8>>, String>> = HashMap::new();
    for p in waiting {
        if stopped(ctx, files) {
            break;
        }
        let f = &mut files[p.job];
        if f.error.is_some() {
            continue;
        }
        let plain = waited
            .entry(p.id)
            .or_insert_with(|| ctx.bundles.load(ctx.repo, &p.id).map_err(|e| e.to_string()));
        match plain {
            Ok(plain) => place_piece(ctx, f, &p, plain),
            Err(e) => f.error = Some(e.clone()),
        }
    }
}

/// Whether the restore was stopped; then every file of the batch fails.
fn stopped(ctx: &Ctx<'_>, files: &mut [Filling]) -> bool {
    if !ctx.cancelled() {
        return false;
    }
    for f in files {
        f.error.get_or_insert_with(|| "restore stopped".to_owned());
    }
    true
}

/// How many pieces from the start of `pieces` (sorted) one read covers.
fn run_len(pieces: &[Piece]) -> usize {
    let Some(first) = pieces.first() else {
        return 0;
    };
    let mut end = first.end();
    let mut n = 1;
    for p in &pieces[1..] {
        let new_end = end.max(p.end());
        // A piece within the span so far (the pieces are sorted and entries do not
        // overlap, so: the same entry again, such as another file's slice of a
        // bundle or a chunk two files share) adds no bytes and always joins it,
        // whatever the span's length.
        if p.loc.pack != first.loc.pack
            || p.offset() > end + MAX_GAP
            || (new_end > end && new_end - first.offset() > MAX_READ)
        {
            break;
        }
        end = new_end;
        n += 1;
    }
    n
}

/// Reads the span of `run` (pieces of one pack) once and writes each piece; keeps each
/// bundle decoded through its `reading`.
fn place_run<'a>(
    ctx: &'a Ctx<'_>,
    run: &[Piece],
    files: &mut [Filling],
    reading: &mut HashMap<BlobId, Reading<'a>>,
) {
    let Some(first) = run.first() else {
        return;
    };
    // Pieces of files that already failed are not worth reading.
    if run.iter().all(|p| files[p.job].error.is_some()) {
        return;
    }
    let start = first.offset();
    let end = run.iter().map(Piece::end).max().unwrap_or(start);
    let span =
        ctx.repo
            .repo
            .backend()
            .read_range(FileKind::Pack, &first.loc.pack, start, end - start);
    let span = match span {
        Ok(bytes) => bytes,
        Err(e) => {
            for p in run {
                files[p.job].error.get_or_insert_with(|| e.to_string());
            }
            return;
        }
    };
    let mut decoded: Option<(u64, Arc<Vec<u8>>)> = None;
    for p in run {
        let f = &mut files[p.job];
        if f.error.is_some() {
            continue;
        }
        // The same chunk at several places: decode it once.
        if decoded
            .as_ref()
            .is_none_or(|(offset, _)| *offset != p.offset())
        {
            match decode_piece(ctx, &span, start, p) {
                Ok(plain) => {
                    let plain = Arc::new(plain);
                    if let Some(r) = reading.remove(&p.id) {
                        r.keep(Arc::clone(&plain));
                    }
                    decoded = Some((p.offset(), plain));
                }
                Err(message) => {
                    f.error = Some(message);
                    decoded = None;
                    continue;
                }
            }
        }
        let Some((_, plain)) = &decoded else {
            continue;
        };
        place_piece(ctx, f, p, plain);
    }
}

/// Writes piece `p` (its slice of `plain`, for a bundled file) at its place in `f`.
fn place_piece(ctx: &Ctx<'_>, f: &mut Filling, p: &Piece, plain: &[u8]) {
    let Some(plain) = plain.get(p.slice.clone().unwrap_or(0..plain.len())) else {
        f.error = Some(format!(
            "bundle {}: shorter than its index entry says",
            p.id
        ));
        return;
    };
    match write_at(&f.job.file, plain, p.at, ctx.options.sparse) {
        Ok(hole) => {
            f.hole |= hole;
            f.written += plain.len() as u64;
            ctx.progress.bytes_written(plain.len() as u64);
        }
        Err(e) => f.error = Some(format!("cannot write: {e}")),
    }
}

fn decode_piece(ctx: &Ctx<'_>, span: &[u8], start: u64, p: &Piece) -> Result<Vec<u8>, String> {
    let from = (p.offset() - start) as usize;
    let bytes = span
        .get(from..from + p.loc.length as usize)
        .ok_or_else(|| {
            format!(
                "data blob {} in pack {}: the pack is too short",
                p.id, p.loc.pack
            )
        })?;
    ctx.repo
        .repo
        .decode_blob(bytes, BlobType::Data, &p.id, &p.loc)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::atomic::{AtomicU64, Ordering};

    use arca_backends::{Call, Intercept, MemoryBackend, WriteBackend};
    use arca_repo::Node;

    use super::*;
    use crate::testing::random_bytes as noise;

    /// A piece of `length` stored bytes at `offset` of pack 0.
    fn piece(offset: u32, length: u32) -> Piece {
        Piece {
            loc: BlobLocation {
                pack: arca_backends::ObjectId::ZERO,
                blob_type: arca_repo::BlobType::Data,
                offset,
                length,
                raw_len: length,
            },
            id: BlobId([0; 32]),
            job: 0,
            at: 0,
            slice: None,
        }
    }

    #[test]
    fn a_run_takes_every_slice_of_a_bundle_longer_than_a_read() {
        let big = (MAX_READ + 1) as u32;
        // Three files of one 8 MiB + 1 bundle: one read, not three.
        assert_eq!(
            run_len(&[piece(40, big), piece(40, big), piece(40, big)]),
            3
        );
        // A piece that would stretch the span past MAX_READ starts the next run.
        assert_eq!(run_len(&[piece(40, big), piece(40 + big, 10)]), 1);
        assert_eq!(run_len(&[piece(40, 10), piece(60, 10), piece(90, big)]), 2);
    }

    #[test]
    fn open_files_stay_within_a_quarter_of_the_limit() {
        for limit in [64u64, 256, 1024, 4096, 1 << 20] {
            for threads in [1usize, 2, 8, 64, 512] {
                let (queued, batch) = file_budget(limit, threads);
                assert!((1..=BATCH_FILES).contains(&batch));
                let open = (queued + batch * threads) as u64;
                // At the floor (8 files, one per worker) tiny limits may be exceeded
                // only by the one file each worker needs.
                assert!(
                    open <= (limit / 4).max(8) + threads as u64,
                    "{limit} {threads}: {open}"
                );
            }
        }
        assert_eq!(file_budget(1024, 2), (128, 64));
    }
    use crate::{BackupOptions, NoProgress, RestoreOptions};

    /// Small files side by side (bundled, some identical), a sparse file and a file
    /// spanning several reads restore exactly; a damaged bundle fails its files alone,
    /// which are removed.
    #[test]
    fn batches_restore_exactly_and_damage_stays_with_its_file() {
        let (dir, src) = crate::testing::source_dir();
        let mut files = Vec::new();
        for i in 0..300u64 {
            let data = if i % 10 == 0 {
                b"the same small file".to_vec()
            } else {
                noise(5000 + i as usize * 137, i + 1)
            };
            files.push((format!("f{i:03}"), data));
        }
        let mut sparse = vec![0u8; 3 << 20];
        sparse[1 << 20] = 7;
        files.push(("sparse".into(), sparse));
        files.push(("big".into(), noise(MAX_READ as usize + (3 << 20), 99)));
        for (name, data) in &files {
            std::fs::write(src.join(name), data).unwrap();
        }
        let (backend, mut repo) = crate::testing::memory_repository();
        repo.backup(
            std::slice::from_ref(&src),
            &BackupOptions::default(),
            &NoProgress,
        )
        .unwrap();
        let snapshot = repo.find_snapshot("latest").unwrap();
        let restore = |target: &Path| {
            repo.restore(&snapshot, target, &RestoreOptions::default(), &NoProgress)
        };
        let out = dir.path().join("out");
        restore(&out).unwrap();
        let base = out.join(src.strip_prefix("/").unwrap());
        for (name, data) in &files {
            assert_eq!(&std::fs::read(base.join(name)).unwrap(), data, "{name}");
        }

        // Damage the bundle holding f007 where its pack holds it: the files of that
        // bundle fail, the others restore.
        let tree = crate::testing::latest_tree_of(&repo, &src);
        let bundle = tree.find(b"f007").unwrap().content[0];
        assert!(tree.find(b"f007").unwrap().bundle_offset.is_some());
        let damaged: Vec<String> = tree
            .nodes()
            .iter()
            .filter(|n| n.content.first() == Some(&bundle))
            .map(Node::display_name)
            .collect();
        assert!(damaged.len() > 1 && damaged.len() < 300, "{damaged:?}");
        let loc = repo.index.get(BlobType::Data, &bundle).unwrap();
        let mut pack = backend
            .read_full(FileKind::Pack, &loc.pack)
            .unwrap()
            .to_vec();
        pack[loc.offset as usize + loc.length as usize / 2] ^= 1;
        backend.remove(FileKind::Pack, &loc.pack).unwrap();
        backend
            .write(FileKind::Pack, &loc.pack, pack.into())
            .unwrap();
        let out = dir.path().join("out2");
        let err = restore(&out).unwrap_err().to_string();
        assert!(err.contains(&format!("{} entries", damaged.len())), "{err}");
        let base = out.join(src.strip_prefix("/").unwrap());
        for (name, data) in &files {
            if damaged.contains(name) {
                assert!(!base.join(name).exists(), "damaged {name} must not stay");
            } else {
                assert_eq!(&std::fs::read(base.join(name)).unwrap(), data, "{name}");
            }
        }
    }

    /// Eight workers take batches of files that share a few bundles: each bundle is read
    /// by one of them and placed by all, so the restore reads no more than the packs
    /// hold (before, every worker that met a bundle while another was reading it read
    /// it too).
    #[test]
    fn workers_sharing_a_bundle_read_it_once() {
        let (dir, src) = crate::testing::source_dir();
        let mut files = Vec::new();
        for i in 0..2000u64 {
            let data = noise(2000 + (i as usize % 13) * 100, i + 1);
            std::fs::write(src.join(format!("f{i:04}")), &data).unwrap();
            files.push(data);
        }
        let pack_bytes = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&pack_bytes);
        let counting = Intercept::new(MemoryBackend::new(), Box::new(|_| Ok(()))).on_received(
            Box::new(move |call, bytes| {
                if let Call::Read(FileKind::Pack, _) = call {
                    counted.fetch_add(bytes, Ordering::SeqCst);
                }
            }),
        );
        let backend: Arc<dyn WriteBackend> = Arc::new(counting);
        let init = crate::testing::fast_init(crate::InitOptions::default().pack_size);
        crate::Repository::init(backend.clone(), b"pw", &init).unwrap();
        let mut repo = crate::Repository::open(backend.clone(), b"pw").unwrap();
        repo.backup(
            std::slice::from_ref(&src),
            &BackupOptions::default(),
            &NoProgress,
        )
        .unwrap();
        let tree = crate::testing::latest_tree_of(&repo, &src);
        let bundles: std::collections::HashSet<_> =
            tree.nodes().iter().map(|n| n.content[0]).collect();
        // All kept at once, so none is read again because later ones pushed it out.
        let kept = crate::bundle_cache::CACHED_BUNDLES;
        assert!(
            (2..=kept).contains(&bundles.len()),
            "{} bundles",
            bundles.len()
        );
        let stored: u64 = backend
            .list(FileKind::Pack)
            .unwrap()
            .iter()
            .map(|(_, size)| size)
            .sum();
        let snapshot = repo.find_snapshot("latest").unwrap();
        let options = RestoreOptions {
            threads: 8,
            ..RestoreOptions::default()
        };
        for round in 0..3 {
            pack_bytes.store(0, Ordering::SeqCst);
            let out = dir.path().join(format!("out{round}"));
            repo.restore(&snapshot, &out, &options, &NoProgress)
                .unwrap();
            let read = pack_bytes.load(Ordering::SeqCst);
            assert!(
                read <= stored,
                "round {round}: read {read} of {stored} stored"
            );
            let base = out.join(src.strip_prefix("/").unwrap());
            for (i, data) in files.iter().enumerate() {
                assert_eq!(&std::fs::read(base.join(format!("f{i:04}"))).unwrap(), data);
            }
        }
    }
}
