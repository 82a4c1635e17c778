//! Limits on what a backend may do at once: concurrent calls, and bytes per second up
//! and down.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use crate::layer::{Layer, Transfer, layer_backend};
use crate::{BackendError, Call, FileKind, ObjectId, ObjectWriter, WriteBackend};

/// What [`Throttle`] enforces. `None` leaves that dimension unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Calls in flight at once (each holds one connection of a remote backend).
    pub connections: Option<usize>,
    /// Bytes per second written.
    pub upload: Option<u64>,
    /// Bytes per second read.
    pub download: Option<u64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A counting semaphore.
#[derive(Debug)]
struct Slots {
    free: Mutex<usize>,
    freed: Condvar,
}

impl Slots {
    fn acquire(&self) -> SlotGuard<'_> {
        let mut free = lock(&self.free);
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        SlotGuard(self)
    }
}

struct SlotGuard<'a>(&'a Slots);

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        *lock(&self.0.free) += 1;
        self.0.freed.notify_one();
    }
}

/// A token bucket that may go into debt: a transfer of any size is let through, and the
/// caller then waits until the rate has paid for it. Concurrent callers queue up behind
/// the shared debt, so the long-run rate holds whatever the transfer sizes.
#[derive(Debug)]
struct Rate {
    bytes_per_sec: f64,
    /// (tokens, when they were counted); tokens may be negative (debt).
    state: Mutex<(f64, Instant)>,
}

impl Rate {
    fn new(bytes_per_sec: u64) -> Self {
        Self {
            bytes_per_sec: bytes_per_sec.max(1) as f64,
            state: Mutex::new((0.0, Instant::now())),
        }
    }

    /// Charges `bytes` and waits until the rate allows them.
    fn charge(&self, bytes: u64) {
        let wait = self.reserve(bytes, Instant::now());
        if !wait.is_zero() {
            thread::sleep(wait);
        }
    }

    /// Charges `bytes` at `now`; returns how long the caller must wait.
    fn reserve(&self, bytes: u64, now: Instant) -> Duration {
        if bytes == 0 {
            return Duration::ZERO;
        }
        let mut state = lock(&self.state);
        let elapsed = now.saturating_duration_since(state.1).as_secs_f64();
        // At most one second's worth of unused allowance is kept as a burst.
        let tokens = (state.0 + elapsed * self.bytes_per_sec).min(self.bytes_per_sec);
        let tokens = tokens - bytes as f64;
        *state = (tokens, now.max(state.1));
        if tokens < 0.0 {
            Duration::from_secs_f64(-tokens / self.bytes_per_sec)
        } else {
            Duration::ZERO
        }
    }
}

/// Enforces [`Limits`] on the backend it wraps: at most `connections` calls at once
/// (callers wait for a free slot), and the upload and download rates (a write waits
/// before it starts, a read after it ends, for as long as the rate needs).
///
/// An object written piece by piece ([`WriteBackend::start_write`], where the inner
/// backend offers it) waits before each piece as a write does, and holds a connection
/// while it is started and while it is committed, not in between.
#[derive(Debug)]
pub struct Throttle<B> {
    inner: B,
    slots: Option<Arc<Slots>>,
    upload: Option<Arc<Rate>>,
    download: Option<Rate>,
}

impl<B: WriteBackend> Throttle<B> {
    /// Wraps `inner`. A limit of 0 connections is taken as 1.
    pub fn new(inner: B, limits: Limits) -> Self {
        Self {
            inner,
            slots: limits.connections.map(|n| {
                Arc::new(Slots {
                    free: Mutex::new(n.max(1)),
                    freed: Condvar::new(),
                })
            }),
            upload: limits.upload.map(|r| Arc::new(Rate::new(r))),
            download: limits.download.map(Rate::new),
        }
    }
}

impl<B: WriteBackend> Layer for Throttle<B> {
    type Inner = B;

    fn inner(&self) -> &B {
        &self.inner
    }

    fn around<T: Transfer>(
        &self,
        call: Call<'_>,
        f: &mut dyn FnMut() -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        if let (Some(rate), Call::Write(_, _, data)) = (&self.upload, call) {
            rate.charge(data.len() as u64);
        }
        let result = {
            let _slot = self.slots.as_deref().map(Slots::acquire);
            f()
        };
        if let (Some(rate), Ok(v)) = (&self.download, &result) {
            rate.charge(v.received());
        }
        result
    }

    fn start_stream(
        &self,
        kind: FileKind,
        id: &ObjectId,
    ) -> Result<Option<Box<dyn ObjectWriter>>, BackendError> {
        let started = {
            let _slot = self.slots.as_deref().map(Slots::acquire);
            self.inner.start_write(kind, id)?
        };
        Ok(started.map(|inner| {
            Box::new(ThrottledWriter {
                inner,
                slots: self.slots.clone(),
                upload: self.upload.clone(),
            }) as Box<dyn ObjectWriter>
        }))
    }
}

layer_backend!(Throttle);

/// An object written piece by piece through a [`Throttle`].
struct ThrottledWriter {
    inner: Box<dyn ObjectWriter>,
    slots: Option<Arc<Slots>>,
    upload: Option<Arc<Rate>>,
}

impl ObjectWriter for ThrottledWriter {
    fn append(&mut self, data: &[u8]) -> Result<(), BackendError> {
        if let Some(rate) = &self.upload {
            rate.charge(data.len() as u64);
        }
        self.inner.append(data)
    }

    fn commit(self: Box<Self>) -> Result<(), BackendError> {
        let Self { inner, slots, .. } = *self;
        let _slot = slots.as_deref().map(Slots::acquire);
        inner.commit()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;

    use super::*;
    use crate::{FileKind, MemoryBackend, ObjectId, ReadBackend};

    /// Counts the calls in flight below it, and the most ever seen.
    struct Gauge<B> {
        inner: B,
        now: AtomicUsize,
        max: Arc<AtomicUsize>,
    }

    impl<B: WriteBackend> Layer for Gauge<B> {
        type Inner = B;
        fn inner(&self) -> &B {
            &self.inner
        }
        fn around<T: Transfer>(
            &self,
            _call: Call<'_>,
            f: &mut dyn FnMut() -> Result<T, BackendError>,
        ) -> Result<T, BackendError> {
            let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.max.fetch_max(n, Ordering::SeqCst);
            thread::sleep(Duration::from_millis(5));
            let r = f();
            self.now.fetch_sub(1, Ordering::SeqCst);
            r
        }
    }
    layer_backend!(Gauge);

    #[test]
    fn connections_are_limited() {
        let max = Arc::new(AtomicUsize::new(0));
        let gauge = Gauge {
            inner: MemoryBackend::new(),
            now: AtomicUsize::new(0),
            max: max.clone(),
        };
        let limits = Limits {
            connections: Some(3),
            ..Limits::default()
        };
        let backend = Arc::new(Throttle::new(gauge, limits));
        backend.create().unwrap();
        let threads: Vec<_> = (0..12u8)
            .map(|i| {
                let b = backend.clone();
                thread::spawn(move || {
                    let id = ObjectId::from_bytes([i; 32]);
                    b.write(FileKind::Pack, &id, Bytes::from(vec![i; 10]))
                        .unwrap();
                    assert_eq!(b.read_full(FileKind::Pack, &id).unwrap().len(), 10);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let max = max.load(Ordering::SeqCst);
        assert!((1..=3).contains(&max), "{max} calls ran at once");
    }

    #[test]
    fn objects_stream_through_and_each_piece_is_charged() {
        let dir = tempfile::tempdir().unwrap();
        let local = crate::LocalBackend::new(dir.path().join("repo"));
        local.create().unwrap();
        // A clock that never advances for the bucket: each charge is pure debt.
        let frozen = Instant::now() + Duration::from_secs(3600);
        let upload = Arc::new(Rate {
            bytes_per_sec: 1e12,
            state: Mutex::new((0.0, frozen)),
        });
        let throttle = Throttle {
            inner: local,
            slots: Some(Arc::new(Slots {
                free: Mutex::new(1),
                freed: Condvar::new(),
            })),
            upload: Some(upload.clone()),
            download: None,
        };
        let id = ObjectId::from_bytes([5; 32]);
        let mut writer = throttle
            .start_write(FileKind::Pack, &id)
            .unwrap()
            .expect("a local backend streams through a throttle");
        writer.append(&[1; 1000]).unwrap();
        writer.append(&[2; 500]).unwrap();
        assert_eq!(lock(&upload.state).0, -1500.0);
        // Between start and commit the writer holds no connection.
        assert!(throttle.list(FileKind::Pack).unwrap().is_empty());
        writer.commit().unwrap();
        let back = throttle.read_full(FileKind::Pack, &id).unwrap();
        assert_eq!(back.len(), 1500);
        assert_eq!(
            lock(&upload.state).0,
            -1500.0,
            "reads are not charged to uploads"
        );
    }

    #[test]
    fn the_rate_charges_debt_and_keeps_a_one_second_burst() {
        let rate = Rate::new(1000);
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let t0 = Instant::now();
        // A fresh bucket has no allowance: 500 bytes cost half a second.
        assert!((ms(rate.reserve(500, t0)) - 500.0).abs() < 0.01);
        // A second caller at the same moment queues behind the first.
        assert!((ms(rate.reserve(500, t0)) - 1000.0).abs() < 0.01);
        // Ten idle seconds later only one second of allowance has been kept.
        let t1 = t0 + Duration::from_secs(11);
        assert_eq!(rate.reserve(1000, t1), Duration::ZERO);
        assert!((ms(rate.reserve(250, t1)) - 250.0).abs() < 0.01);
        assert_eq!(rate.reserve(0, t1), Duration::ZERO);
    }
}
