//! The backend conformance suite: the contract every backend must meet.
//!
//! [`run`] takes a factory that returns a backend for a fresh, not yet created location
//! and runs every check against its own instance, returning the failures (empty when the
//! backend conforms). Test code asserts on the result:
//!
//! ```
//! use arca_backends::{MemoryBackend, WriteBackend, conformance};
//!
//! let failures = conformance::run(&|| Box::new(MemoryBackend::new()) as Box<dyn WriteBackend>);
//! assert!(failures.is_empty(), "{failures:?}");
//! ```

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::{BackendError, ErrorKind, FileKind, ObjectId, ObjectWriter, WriteBackend};

/// One failed check.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The check's name.
    pub check: &'static str,
    /// What went wrong.
    pub message: String,
}

type Check = fn(&dyn WriteBackend) -> Result<(), String>;

/// Runs every check, each on a fresh backend from `make`, and returns the failures.
pub fn run(make: &dyn Fn() -> Box<dyn WriteBackend>) -> Vec<Failure> {
    let checks: [(&'static str, Check); 14] = [
        ("fresh repository lists empty", fresh_lists_empty),
        (
            "create refuses a non-empty location",
            create_refuses_non_empty,
        ),
        ("write then read round-trips", write_read_round_trip),
        ("list reports ids and sizes", list_reports_sizes),
        ("writes are write-once", write_once),
        ("kinds are separate namespaces", kinds_are_separate),
        ("ranged reads", ranged_reads),
        ("not-found is distinguished", not_found_is_distinguished),
        ("remove deletes", remove_deletes),
        ("concurrent writers", concurrent_writers),
        ("large objects", large_objects),
        ("writes are atomic to readers", atomic_visibility),
        ("objects written piece by piece", streamed_writes),
        ("stale temporaries are removed", stale_temporaries),
    ];
    let mut failures = Vec::new();
    for (name, check) in checks {
        let backend = make();
        let result = backend
            .create()
            .map_err(|e| format!("create failed: {e}"))
            .and_then(|()| check(backend.as_ref()));
        if let Err(message) = result {
            failures.push(Failure {
                check: name,
                message,
            });
        }
    }
    failures
}

fn id(n: u32) -> ObjectId {
    let mut b = [0u8; 32];
    b[..4].copy_from_slice(&n.to_be_bytes());
    b[31] = 0xa5;
    ObjectId::from_bytes(b)
}

fn data(n: u32, len: usize) -> Bytes {
    let mut state = u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let bytes: Vec<u8> = (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    Bytes::from(bytes)
}

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

fn fresh_lists_empty(b: &dyn WriteBackend) -> Result<(), String> {
    for kind in FileKind::ALL {
        let listed = b.list(kind).map_err(|e| e.to_string())?;
        ensure!(
            listed.is_empty(),
            "{kind} lists {listed:?} in a new repository"
        );
    }
    Ok(())
}

fn create_refuses_non_empty(b: &dyn WriteBackend) -> Result<(), String> {
    b.write(FileKind::Config, &ObjectId::ZERO, data(1, 10))
        .map_err(|e| e.to_string())?;
    refused(b.create(), "create on a location that holds a config")
}

/// A writer for pack `id(n)`, from a backend that has offered one before.
fn start_pack(b: &dyn WriteBackend, n: u32) -> Result<Box<dyn ObjectWriter>, String> {
    b.start_write(FileKind::Pack, &id(n))
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "start_write offered a writer once, then none".into())
}

/// Ok if `result` is the `AlreadyExists` refusal of `what`.
fn refused(result: Result<(), BackendError>, what: &str) -> Result<(), String> {
    match result {
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!("{what} failed with {e}, not AlreadyExists")),
        Ok(()) => Err(format!("{what} succeeded")),
    }
}

fn write_read_round_trip(b: &dyn WriteBackend) -> Result<(), String> {
    for (n, kind) in FileKind::ALL.into_iter().enumerate() {
        let oid = if kind == FileKind::Config {
            ObjectId::ZERO
        } else {
            id(n as u32)
        };
        for (m, len) in [0usize, 1, 4097].into_iter().enumerate() {
            let oid = if m == 0 || kind == FileKind::Config {
                oid
            } else {
                id(1000 + n as u32 * 10 + m as u32)
            };
            if kind == FileKind::Config && m > 0 {
                continue;
            }
            let d = data(n as u32 + 7, len);
            b.write(kind, &oid, d.clone()).map_err(|e| e.to_string())?;
            let back = b.read_full(kind, &oid).map_err(|e| e.to_string())?;
            ensure!(
                back == d,
                "{kind} {oid}: read {} bytes differ from the {len} written",
                back.len()
            );
        }
    }
    Ok(())
}

fn list_reports_sizes(b: &dyn WriteBackend) -> Result<(), String> {
    let mut expected = HashSet::new();
    for n in 0..20u32 {
        let len = (n as usize) * 37;
        b.write(FileKind::Pack, &id(n), data(n, len))
            .map_err(|e| e.to_string())?;
        expected.insert((id(n), len as u64));
    }
    let listed: HashSet<_> = b
        .list(FileKind::Pack)
        .map_err(|e| e.to_string())?
        .into_iter()
        .collect();
    ensure!(
        listed == expected,
        "list returned {} entries, not the 20 written with their sizes",
        listed.len()
    );
    Ok(())
}

fn write_once(b: &dyn WriteBackend) -> Result<(), String> {
    b.write(FileKind::Snapshot, &id(1), data(1, 100))
        .map_err(|e| e.to_string())?;
    refused(
        b.write(FileKind::Snapshot, &id(1), data(2, 50)),
        "a second write of the same id",
    )?;
    let back = b
        .read_full(FileKind::Snapshot, &id(1))
        .map_err(|e| e.to_string())?;
    ensure!(back == data(1, 100), "the refused write changed the object");
    Ok(())
}

fn kinds_are_separate(b: &dyn WriteBackend) -> Result<(), String> {
    b.write(FileKind::Index, &id(5), data(1, 10))
        .map_err(|e| e.to_string())?;
    b.write(FileKind::Snapshot, &id(5), data(2, 20))
        .map_err(|e| e.to_string())?;
    let i = b
        .read_full(FileKind::Index, &id(5))
        .map_err(|e| e.to_string())?;
    let s = b
        .read_full(FileKind::Snapshot, &id(5))
        .map_err(|e| e.to_string())?;
    ensure!(
        i == data(1, 10) && s == data(2, 20),
        "objects of different kinds with one id collide"
    );
    ensure!(
        b.list(FileKind::Key).map_err(|e| e.to_string())?.is_empty(),
        "keys list objects of other kinds"
    );
    Ok(())
}

fn ranged_reads(b: &dyn WriteBackend) -> Result<(), String> {
    let d = data(3, 10_000);
    b.write(FileKind::Pack, &id(3), d.clone())
        .map_err(|e| e.to_string())?;
    for (off, len) in [
        (0u64, 10_000u64),
        (0, 1),
        (9_999, 1),
        (1234, 5678),
        (10_000, 0),
        (17, 0),
    ] {
        let got = b
            .read_range(FileKind::Pack, &id(3), off, len)
            .map_err(|e| format!("range {off}+{len}: {e}"))?;
        ensure!(
            got[..] == d[off as usize..(off + len) as usize],
            "range {off}+{len} returned wrong bytes"
        );
    }
    for (off, len) in [(9_999u64, 2u64), (10_000, 1), (20_000, 10), (u64::MAX, 2)] {
        match b.read_range(FileKind::Pack, &id(3), off, len) {
            Ok(got) => {
                return Err(format!(
                    "range {off}+{len} past the end returned {} bytes",
                    got.len()
                ));
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(format!("range {off}+{len} past the end reported not-found"));
            }
            Err(_) => {}
        }
    }
    Ok(())
}

fn not_found_is_distinguished(b: &dyn WriteBackend) -> Result<(), String> {
    let missing = id(99);
    let kinds = [
        b.read_full(FileKind::Pack, &missing)
            .err()
            .map(|e| e.kind()),
        b.read_range(FileKind::Pack, &missing, 0, 1)
            .err()
            .map(|e| e.kind()),
        b.remove(FileKind::Pack, &missing).err().map(|e| e.kind()),
        b.read_full(FileKind::Config, &ObjectId::ZERO)
            .err()
            .map(|e| e.kind()),
    ];
    for (i, k) in kinds.into_iter().enumerate() {
        ensure!(
            k == Some(ErrorKind::NotFound),
            "operation {i} on a missing object gave {k:?}, not NotFound"
        );
    }
    Ok(())
}

fn remove_deletes(b: &dyn WriteBackend) -> Result<(), String> {
    b.write(FileKind::Lock, &id(4), data(4, 64))
        .map_err(|e| e.to_string())?;
    b.remove(FileKind::Lock, &id(4))
        .map_err(|e| e.to_string())?;
    ensure!(
        b.list(FileKind::Lock)
            .map_err(|e| e.to_string())?
            .is_empty(),
        "removed object still listed"
    );
    ensure!(
        b.read_full(FileKind::Lock, &id(4)).err().map(|e| e.kind()) == Some(ErrorKind::NotFound),
        "removed object still readable"
    );
    // The id can be written again after removal.
    b.write(FileKind::Lock, &id(4), data(5, 8))
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn concurrent_writers(b: &dyn WriteBackend) -> Result<(), String> {
    let results: Vec<Result<(), String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8u32)
            .map(|t| {
                s.spawn(move || {
                    for n in 0..16u32 {
                        let k = t * 100 + n;
                        b.write(FileKind::Pack, &id(k), data(k, 3000))
                            .map_err(|e| e.to_string())?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("writer thread panicked".into()))
            })
            .collect()
    });
    for r in results {
        r?;
    }
    let listed = b.list(FileKind::Pack).map_err(|e| e.to_string())?;
    ensure!(
        listed.len() == 128,
        "{} of 128 concurrently written objects listed",
        listed.len()
    );
    for (oid, size) in listed {
        ensure!(size == 3000, "{oid} has size {size}");
    }
    Ok(())
}

fn large_objects(b: &dyn WriteBackend) -> Result<(), String> {
    let len = 40 << 20;
    let d = data(6, len);
    b.write(FileKind::Pack, &id(6), d.clone())
        .map_err(|e| e.to_string())?;
    let back = b
        .read_full(FileKind::Pack, &id(6))
        .map_err(|e| e.to_string())?;
    ensure!(back == d, "a 40 MiB object did not round-trip");
    let tail = b
        .read_range(FileKind::Pack, &id(6), len as u64 - 4096, 4096)
        .map_err(|e| e.to_string())?;
    ensure!(
        tail[..] == d[len - 4096..],
        "tail range of a large object differs"
    );
    Ok(())
}

fn atomic_visibility(b: &dyn WriteBackend) -> Result<(), String> {
    let d = data(7, 24 << 20);
    let done = Arc::new(AtomicBool::new(false));
    let observed: Result<u32, String> = std::thread::scope(|s| {
        let reader_done = done.clone();
        let expected = d.clone();
        let reader = s.spawn(move || {
            let mut seen = 0u32;
            loop {
                let finished = reader_done.load(Ordering::SeqCst);
                match b.read_full(FileKind::Pack, &id(7)) {
                    Ok(got) if got == expected => seen += 1,
                    Ok(got) => {
                        return Err(format!(
                            "a reader saw {} of {} bytes",
                            got.len(),
                            expected.len()
                        ));
                    }
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(e.to_string()),
                }
                for (oid, size) in b.list(FileKind::Pack).map_err(|e| e.to_string())? {
                    if oid == id(7) && size != expected.len() as u64 {
                        return Err(format!("list showed the object with {size} bytes"));
                    }
                }
                if finished {
                    return Ok(seen);
                }
            }
        });
        let written = b
            .write(FileKind::Pack, &id(7), d.clone())
            .map_err(|e| e.to_string());
        done.store(true, Ordering::SeqCst);
        let seen = reader
            .join()
            .unwrap_or_else(|_| Err("reader thread panicked".into()));
        written.and(seen)
    });
    let seen = observed?;
    ensure!(seen >= 1, "the object was not visible after write returned");
    Ok(())
}

/// For backends that offer [`WriteBackend::start_write`]: the object is invisible until
/// committed, then holds every piece in order; a writer dropped uncommitted leaves
/// nothing; committing onto an existing id fails with `AlreadyExists` and keeps the old
/// object.
fn streamed_writes(b: &dyn WriteBackend) -> Result<(), String> {
    let whole = data(9, 3 << 20);
    let Some(mut writer) = b
        .start_write(FileKind::Pack, &id(9))
        .map_err(|e| e.to_string())?
    else {
        return Ok(());
    };
    // Pieces small and large, as a pack's entries are.
    let mut at = 0;
    for len in [40, 300, 70_000, 1 << 20, 5].into_iter().cycle() {
        let end = (at + len).min(whole.len());
        writer.append(&whole[at..end]).map_err(|e| e.to_string())?;
        at = end;
        if at == whole.len() {
            break;
        }
    }
    let listed = b.list(FileKind::Pack).map_err(|e| e.to_string())?;
    ensure!(
        listed.is_empty(),
        "an uncommitted object is listed: {listed:?}"
    );
    match b.read_full(FileKind::Pack, &id(9)) {
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        other => return Err(format!("reading an uncommitted object gave {other:?}")),
    }
    writer.commit().map_err(|e| e.to_string())?;
    let back = b
        .read_full(FileKind::Pack, &id(9))
        .map_err(|e| e.to_string())?;
    ensure!(
        back == whole,
        "the committed object differs from its pieces"
    );

    let mut dropped = start_pack(b, 10)?;
    dropped.append(&whole[..1000]).map_err(|e| e.to_string())?;
    drop(dropped);
    let listed = b.list(FileKind::Pack).map_err(|e| e.to_string())?;
    ensure!(
        listed == vec![(id(9), whole.len() as u64)],
        "after a dropped writer the packs are {listed:?}"
    );

    let mut again = start_pack(b, 9)?;
    again.append(b"other bytes").map_err(|e| e.to_string())?;
    refused(again.commit(), "committing onto an existing id")?;
    let back = b
        .read_full(FileKind::Pack, &id(9))
        .map_err(|e| e.to_string())?;
    ensure!(back == whole, "the refused commit changed the object");
    Ok(())
}

/// A streamed write whose process dies (its writer is neither committed nor dropped)
/// leaves no object; [`WriteBackend::remove_stale_temporaries`] removes what it left
/// only when it predates the cutoff, and never touches an object.
fn stale_temporaries(b: &dyn WriteBackend) -> Result<(), String> {
    let err = |e: BackendError| e.to_string();
    b.write(FileKind::Pack, &id(1), data(1, 1000))
        .map_err(err)?;
    b.write(FileKind::Index, &id(2), data(2, 100))
        .map_err(err)?;
    let left = match b.start_write(FileKind::Pack, &id(3)).map_err(err)? {
        Some(mut writer) => {
            writer.append(&data(3, 5000)).map_err(err)?;
            // The process dies: nothing runs the writer's cleanup.
            std::mem::forget(writer);
            1
        }
        None => 0,
    };
    let hour = Duration::from_secs(3600);
    let removed = b
        .remove_stale_temporaries(SystemTime::now() - hour)
        .map_err(err)?;
    ensure!(
        removed == 0,
        "{removed} temporary files newer than the cutoff were removed"
    );
    let removed = b
        .remove_stale_temporaries(SystemTime::now() + hour)
        .map_err(err)?;
    ensure!(
        removed == left,
        "{removed} temporary files removed, {left} were left"
    );
    let packs = b.list(FileKind::Pack).map_err(err)?;
    ensure!(
        packs == vec![(id(1), 1000)],
        "after removing temporaries the packs are {packs:?}"
    );
    let back = b.read_full(FileKind::Pack, &id(1)).map_err(err)?;
    ensure!(back == data(1, 1000), "a pack changed");
    let indexes = b.list(FileKind::Index).map_err(err)?;
    ensure!(
        indexes == vec![(id(2), 100)],
        "after removing temporaries the index files are {indexes:?}"
    );
    Ok(())
}

/// A check outside [`run`] (it writes 1,003 objects, slow on remote storage): listing a
/// created, empty backend returns every one of 1,003 objects that 8 threads wrote, so
/// a backend's paging (S3 continuation tokens, B2's next file name) loses nothing.
///
/// # Errors
/// What went wrong, as text.
pub fn lists_past_a_thousand(b: &dyn WriteBackend) -> Result<(), String> {
    let ids: Vec<ObjectId> = (0..1003u32).map(id).collect();
    let failed = std::thread::scope(|s| {
        let workers: Vec<_> = ids
            .chunks(126)
            .map(|chunk| {
                s.spawn(move || {
                    chunk.iter().try_for_each(|oid| {
                        b.write(FileKind::Index, oid, Bytes::from_static(b"i"))
                            .map_err(|e| e.to_string())
                    })
                })
            })
            .collect();
        workers
            .into_iter()
            .filter_map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err("a writer panicked".into()))
                    .err()
            })
            .next()
    });
    if let Some(e) = failed {
        return Err(e);
    }
    let mut listed: Vec<ObjectId> = b
        .list(FileKind::Index)
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|(oid, _)| oid)
        .collect();
    listed.sort();
    let mut want = ids;
    want.sort();
    ensure!(
        listed == want,
        "listed {} of {} objects",
        listed.len(),
        want.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LocalBackend, MemoryBackend};

    /// Negative control: a backend that lets writes overwrite and clips ranges must fail.
    #[test]
    fn the_suite_catches_a_sloppy_backend() {
        use crate::{BackendError, ReadBackend};
        struct Sloppy(MemoryBackend);
        impl ReadBackend for Sloppy {
            fn location(&self) -> String {
                self.0.location()
            }
            fn list(&self, kind: FileKind) -> Result<Vec<(ObjectId, u64)>, BackendError> {
                self.0.list(kind)
            }
            fn read_full(&self, kind: FileKind, id: &ObjectId) -> Result<Bytes, BackendError> {
                self.0.read_full(kind, id)
            }
            fn read_range(
                &self,
                kind: FileKind,
                id: &ObjectId,
                offset: u64,
                length: u64,
            ) -> Result<Bytes, BackendError> {
                let all = self.0.read_full(kind, id)?;
                let start = (offset as usize).min(all.len());
                let end = start.saturating_add(length as usize).min(all.len());
                Ok(all.slice(start..end))
            }
        }
        impl WriteBackend for Sloppy {
            fn create(&self) -> Result<(), BackendError> {
                self.0.create()
            }
            fn write(
                &self,
                kind: FileKind,
                id: &ObjectId,
                data: Bytes,
            ) -> Result<(), BackendError> {
                let _ = self.0.remove(kind, id);
                self.0.write(kind, id, data)
            }
            fn remove(&self, kind: FileKind, id: &ObjectId) -> Result<(), BackendError> {
                self.0.remove(kind, id)
            }
        }
        let failures = run(&|| Box::new(Sloppy(MemoryBackend::new())));
        let names: Vec<_> = failures.iter().map(|f| f.check).collect();
        assert!(names.contains(&"writes are write-once"), "{names:?}");
        assert!(names.contains(&"ranged reads"), "{names:?}");
    }

    #[test]
    fn memory_backend_lists_past_a_thousand() {
        let b = crate::MemoryBackend::new();
        b.create().unwrap();
        lists_past_a_thousand(&b).unwrap();
    }

    #[test]
    fn memory_backend_conforms() {
        let failures = run(&|| Box::new(MemoryBackend::new()));
        assert!(failures.is_empty(), "{failures:#?}");
    }

    #[test]
    fn local_backend_conforms() {
        let dirs = std::sync::Mutex::new(Vec::new());
        let failures = run(&|| {
            let dir = tempfile::tempdir().unwrap();
            let backend = LocalBackend::new(dir.path().join("repo"));
            dirs.lock().unwrap().push(dir);
            Box::new(backend)
        });
        assert!(failures.is_empty(), "{failures:#?}");
    }

    /// Limits change when calls run, never what they do; objects written piece by
    /// piece keep streaming through them.
    #[test]
    fn a_throttled_local_backend_conforms() {
        let dirs = std::sync::Mutex::new(Vec::new());
        let limits = crate::Limits {
            connections: Some(2),
            upload: Some(1 << 40),
            download: Some(1 << 40),
        };
        let failures = run(&|| {
            let dir = tempfile::tempdir().unwrap();
            let backend = LocalBackend::new(dir.path().join("repo"));
            dirs.lock().unwrap().push(dir);
            Box::new(crate::Throttle::new(backend, limits))
        });
        assert!(failures.is_empty(), "{failures:#?}");
    }
}
