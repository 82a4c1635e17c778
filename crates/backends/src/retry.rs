//! Retries of transient failures, with exponential backoff and jitter.

use std::fmt;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::layer::{Layer, Transfer, layer_backend};
use crate::{BackendError, Call, ErrorKind, WriteBackend};

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0: never retry).
    pub retries: u32,
    /// The delay before the first retry; each further retry doubles it.
    pub initial_delay: Duration,
    /// The longest delay between two attempts.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 8 retries from 0.5 s doubling up to 30 s: about 90 s before giving up.
    fn default() -> Self {
        Self {
            retries: 8,
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `retry` (0-based): the exponential step, less a
    /// random part of up to half of it, so that clients that failed together do not
    /// retry together.
    fn delay(&self, retry: u32) -> Duration {
        let step = self
            .initial_delay
            .saturating_mul(1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX))
            .min(self.max_delay);
        let half = step / 2;
        let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        let jitter = if nanos == 0 { 0 } else { random_u64() % nanos };
        step - Duration::from_nanos(jitter)
    }
}

fn random_u64() -> u64 {
    getrandom::u64().unwrap_or_else(|_| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        u64::from(t.subsec_nanos()) ^ t.as_secs().rotate_left(32)
    })
}

/// Called before each retry with the error, the retry's number (1-based) and the delay.
pub type RetryHook = Arc<dyn Fn(&BackendError, u32, Duration) + Send + Sync>;

/// Retries calls that fail with [`ErrorKind::Transient`]; other failures are returned
/// at once.
///
/// A write whose earlier attempt failed may have been stored all the same (the reply was
/// lost). When a retried write finds the object already there, it reads it back: equal
/// content means the earlier attempt succeeded, anything else stays an error. (A retried
/// removal that finds the object gone reports [`ErrorKind::NotFound`] as usual: callers
/// that only want it gone accept that.)
pub struct Retry<B> {
    inner: B,
    policy: RetryPolicy,
    on_retry: Option<RetryHook>,
}

impl<B> fmt::Debug for Retry<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<B: WriteBackend> Retry<B> {
    /// Wraps `inner` with `policy`.
    pub fn new(inner: B, policy: RetryPolicy) -> Self {
        Self {
            inner,
            policy,
            on_retry: None,
        }
    }

    /// Calls `hook` before every retry (to report it).
    #[must_use]
    pub fn on_retry(mut self, hook: RetryHook) -> Self {
        self.on_retry = Some(hook);
        self
    }

    /// True if `call` (a write whose earlier attempt failed) is found stored whole.
    fn landed_before(&self, call: Call<'_>) -> bool {
        match call {
            Call::Write(kind, id, data) => self
                .around(Call::Read(kind, id), &mut || self.inner.read_full(kind, id))
                .is_ok_and(|stored| stored == *data),
            _ => false,
        }
    }
}

impl<B: WriteBackend> Layer for Retry<B> {
    type Inner = B;

    fn inner(&self) -> &B {
        &self.inner
    }

    fn around<T: Transfer>(
        &self,
        call: Call<'_>,
        f: &mut dyn FnMut() -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        let mut retry = 0;
        loop {
            match f() {
                Ok(v) => return Ok(v),
                Err(e) if retry > 0 && e.kind() == ErrorKind::AlreadyExists => {
                    return match T::already_done() {
                        Some(done) if self.landed_before(call) => Ok(done),
                        _ => Err(e),
                    };
                }
                Err(e) if e.kind() == ErrorKind::Transient && retry < self.policy.retries => {
                    let delay = self.policy.delay(retry);
                    retry += 1;
                    if let Some(hook) = &self.on_retry {
                        hook(&e, retry, delay);
                    }
                    thread::sleep(delay);
                }
                Err(e) if e.kind() == ErrorKind::Transient && retry > 0 => {
                    return Err(e.context(format!("gave up after {} attempts", retry + 1)));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

layer_backend!(Retry);

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use bytes::Bytes;

    use super::*;
    use crate::{FaultPlan, Faults, FileKind, MemoryBackend, ObjectId, ReadBackend};

    fn quick(retries: u32) -> RetryPolicy {
        RetryPolicy {
            retries,
            initial_delay: Duration::from_micros(10),
            max_delay: Duration::from_micros(100),
        }
    }

    /// Fails the first `failures` calls with `kind`, then passes calls through.
    struct Flaky<B> {
        inner: B,
        kind: ErrorKind,
        failures: u32,
        calls: AtomicU32,
    }

    impl<B: WriteBackend> Layer for Flaky<B> {
        type Inner = B;
        fn inner(&self) -> &B {
            &self.inner
        }
        fn around<T: Transfer>(
            &self,
            call: Call<'_>,
            f: &mut dyn FnMut() -> Result<T, BackendError>,
        ) -> Result<T, BackendError> {
            if self.calls.fetch_add(1, Ordering::SeqCst) < self.failures {
                return Err(BackendError::new(self.kind, call.operation(), "x", "flaky"));
            }
            f()
        }
    }
    layer_backend!(Flaky);

    fn flaky(kind: ErrorKind, failures: u32) -> Flaky<MemoryBackend> {
        let inner = MemoryBackend::new();
        inner.create().unwrap();
        Flaky {
            inner,
            kind,
            failures,
            calls: AtomicU32::new(0),
        }
    }

    #[test]
    fn transient_failures_are_retried_and_permanent_ones_are_not() {
        let hooks = Arc::new(AtomicU32::new(0));
        let counted = hooks.clone();
        let retry = Retry::new(flaky(ErrorKind::Transient, 3), quick(5)).on_retry(Arc::new(
            move |_, n, _| {
                counted.fetch_add(1, Ordering::SeqCst);
                assert!(n <= 3);
            },
        ));
        assert_eq!(retry.list(FileKind::Pack).unwrap(), vec![]);
        assert_eq!(hooks.load(Ordering::SeqCst), 3);

        let retry = Retry::new(flaky(ErrorKind::Permanent, 1), quick(5));
        assert!(retry.list(FileKind::Pack).is_err());
        assert_eq!(retry.inner.calls.load(Ordering::SeqCst), 1);

        let retry = Retry::new(flaky(ErrorKind::Transient, 100), quick(4));
        let err = retry.list(FileKind::Pack).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Transient);
        assert!(
            err.to_string().contains("gave up after 5 attempts"),
            "{err}"
        );
        assert_eq!(retry.inner.calls.load(Ordering::SeqCst), 5);
    }

    #[test]
    fn delays_grow_to_the_cap_with_jitter() {
        let policy = RetryPolicy {
            retries: 20,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
        };
        for (retry, step) in [(0, 100), (1, 200), (3, 800), (5, 2000), (40, 2000)] {
            let d = policy.delay(retry);
            let step = Duration::from_millis(step);
            assert!(d <= step && d >= step / 2, "retry {retry}: {d:?}");
        }
    }

    #[test]
    fn lost_replies_and_cut_transfers_do_not_change_the_data() {
        let plan = FaultPlan {
            transient: 0.4,
            lost_replies: 0.5,
            seed: 3,
            ..FaultPlan::default()
        };
        let faulty = Faults::new(MemoryBackend::new(), plan);
        let backend = Retry::new(faulty, quick(30));
        backend.create().unwrap();
        let ids: Vec<ObjectId> = (0..200u8).map(|i| ObjectId::from_bytes([i; 32])).collect();
        for (i, id) in ids.iter().enumerate() {
            let data = Bytes::from(vec![i as u8; 100 + i]);
            backend.write(FileKind::Pack, id, data).unwrap();
        }
        for (i, id) in ids.iter().enumerate() {
            let data = backend.read_full(FileKind::Pack, id).unwrap();
            assert_eq!(data, vec![i as u8; 100 + i]);
        }
        assert_eq!(backend.list(FileKind::Pack).unwrap().len(), 200);
        for id in &ids {
            // A removal whose reply was lost is retried and finds the object gone.
            if let Err(e) = backend.remove(FileKind::Pack, id) {
                assert!(e.is_not_found(), "{e}");
            }
        }
        assert!(backend.list(FileKind::Pack).unwrap().is_empty());
    }

    #[test]
    fn a_different_object_under_the_same_id_stays_an_error() {
        let inner = MemoryBackend::new();
        inner.create().unwrap();
        let id = ObjectId::from_bytes([1; 32]);
        inner
            .write(FileKind::Pack, &id, Bytes::from_static(b"old"))
            .unwrap();
        // The first attempt fails transiently; the retry meets "old", which differs.
        let backend = Retry::new(
            Flaky {
                inner,
                kind: ErrorKind::Transient,
                failures: 1,
                calls: AtomicU32::new(0),
            },
            quick(3),
        );
        let err = backend
            .write(FileKind::Pack, &id, Bytes::from_static(b"new"))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    }

    #[test]
    fn the_decorated_stack_conforms() {
        let failures = crate::conformance::run(&|| {
            let plan = FaultPlan {
                transient: 0.2,
                lost_replies: 0.5,
                seed: 11,
                ..FaultPlan::default()
            };
            let stack = crate::Throttle::new(
                Faults::new(MemoryBackend::new(), plan),
                crate::Limits {
                    connections: Some(2),
                    ..crate::Limits::default()
                },
            );
            Box::new(Retry::new(stack, quick(40))) as Box<dyn WriteBackend>
        });
        assert!(failures.is_empty(), "{failures:?}");
    }

    #[test]
    fn plans_parse() {
        let plan: FaultPlan = "transient=0.25,lost-replies=1,permanent-after-writes=30,seed=9"
            .parse()
            .unwrap();
        assert_eq!(plan.transient, 0.25);
        assert_eq!(plan.lost_replies, 1.0);
        assert_eq!(plan.permanent_after_writes, Some(30));
        assert_eq!(plan.seed, 9);
        for bad in ["transient=2", "x=1", "transient", "seed=-1"] {
            assert!(bad.parse::<FaultPlan>().is_err(), "{bad}");
        }
    }
}
