//! Fault injection: a decorator that makes a backend fail the way networks and servers
//! do, for tests of everything above it.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::layer::{Layer, Transfer, layer_backend};
use crate::{BackendError, Call, ErrorKind, WriteBackend};

/// Which faults [`Faults`] injects. Deterministic for a given seed and call order.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FaultPlan {
    /// The fraction of calls (0 to 1) that fail with a transient error. A failing read
    /// is cut: the transfer happens and its data is thrown away.
    pub transient: f64,
    /// Of the writes that fail, the fraction that are stored all the same (the reply
    /// was lost): a retry then finds the object present.
    pub lost_replies: f64,
    /// Once this many writes have succeeded, every further write fails permanently.
    pub permanent_after_writes: Option<u64>,
    /// The seed of the pseudo-random choices.
    pub seed: u64,
}

/// A fault plan that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "bad fault plan {0:?}: expected comma-separated transient=F, lost-replies=F, permanent-after-writes=N, seed=N"
)]
pub struct ParseFaultPlanError(String);

impl FromStr for FaultPlan {
    type Err = ParseFaultPlanError;

    /// Parses `transient=0.2,lost-replies=0.5,permanent-after-writes=30,seed=7` (any
    /// subset, any order).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || ParseFaultPlanError(text.to_owned());
        let fraction = |v: &str| {
            v.parse::<f64>()
                .ok()
                .filter(|f| (0.0..=1.0).contains(f))
                .ok_or_else(bad)
        };
        let mut plan = Self::default();
        for part in text.split(',').filter(|p| !p.is_empty()) {
            let (key, value) = part.split_once('=').ok_or_else(bad)?;
            match key.trim() {
                "transient" => plan.transient = fraction(value)?,
                "lost-replies" => plan.lost_replies = fraction(value)?,
                "permanent-after-writes" => {
                    plan.permanent_after_writes = Some(value.parse().map_err(|_| bad())?);
                }
                "seed" => plan.seed = value.parse().map_err(|_| bad())?,
                _ => return Err(bad()),
            }
        }
        Ok(plan)
    }
}

/// Injects the faults of a [`FaultPlan`] into the backend it wraps. Errors name the
/// backend's location and the object, and say they were injected.
pub struct Faults<B> {
    inner: B,
    plan: FaultPlan,
    calls: AtomicU64,
    writes: AtomicU64,
}

impl<B> fmt::Debug for Faults<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Faults")
            .field("plan", &self.plan)
            .finish_non_exhaustive()
    }
}

/// splitmix64: a well-mixed 64-bit value for each input.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A uniform fraction in [0, 1) from 53 bits of `x`.
fn fraction(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

impl<B: WriteBackend> Faults<B> {
    /// Wraps `inner`.
    pub fn new(inner: B, plan: FaultPlan) -> Self {
        Self {
            inner,
            plan,
            calls: AtomicU64::new(0),
            writes: AtomicU64::new(0),
        }
    }

    fn error(&self, kind: ErrorKind, call: Call<'_>, what: &str) -> BackendError {
        BackendError::new(
            kind,
            call.operation(),
            format!("{} {}", self.inner.location(), call.object()),
            format!("injected fault: {what}"),
        )
    }
}

impl<B: WriteBackend> Layer for Faults<B> {
    type Inner = B;

    fn inner(&self) -> &B {
        &self.inner
    }

    fn around<T: Transfer>(
        &self,
        call: Call<'_>,
        f: &mut dyn FnMut() -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        let roll = mix(self.plan.seed ^ mix(n));
        let fails = fraction(roll) < self.plan.transient;
        if let (Call::Write(..), Some(limit)) = (call, self.plan.permanent_after_writes)
            && self.writes.load(Ordering::Relaxed) >= limit
        {
            return Err(self.error(ErrorKind::Permanent, call, "storage refuses writes"));
        }
        let changes = matches!(call, Call::Write(..) | Call::Remove(..));
        let lost_reply = changes && fraction(mix(roll)) < self.plan.lost_replies;
        let result = if fails && !lost_reply && !matches!(call, Call::Read(..)) {
            Err(self.error(ErrorKind::Transient, call, "connection reset"))
        } else {
            f()
        };
        if let (Call::Write(..), Ok(_)) = (call, &result) {
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
        match result {
            Ok(_) if fails && lost_reply => {
                Err(self.error(ErrorKind::Transient, call, "reply lost"))
            }
            Ok(v) if fails => {
                let got = v.received();
                let what = format!("transfer cut after {} of {got} bytes", got / 2);
                Err(self.error(ErrorKind::Transient, call, &what))
            }
            other => other,
        }
    }
}

layer_backend!(Faults);

/// What [`Intercept`] calls before every call: it sees the call and may fail it.
pub type InterceptHook = Box<dyn Fn(Call<'_>) -> Result<(), BackendError> + Send + Sync>;

/// What [`Intercept`] calls after every call that succeeded: the call, and the bytes it
/// brought from the storage (0 but for reads).
pub type ReceivedHook = Box<dyn Fn(Call<'_>, u64) + Send + Sync>;

/// Runs a hook before every call to the backend it wraps: to count calls, to fail
/// chosen ones, or to do something at a chosen moment (tests of everything above a
/// backend, and embedders that want to observe storage traffic). A call the hook fails
/// does not reach the backend. [`Intercept::on_received`] adds a hook that sees how
/// much each call read.
pub struct Intercept<B> {
    inner: B,
    hook: InterceptHook,
    received: Option<ReceivedHook>,
}

impl<B> fmt::Debug for Intercept<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Intercept").finish_non_exhaustive()
    }
}

impl<B: WriteBackend> Intercept<B> {
    /// Wraps `inner`, calling `hook` before each call.
    pub fn new(inner: B, hook: InterceptHook) -> Self {
        Self {
            inner,
            hook,
            received: None,
        }
    }

    /// Also calls `received` after each call that succeeded, with the bytes it read.
    #[must_use]
    pub fn on_received(mut self, received: ReceivedHook) -> Self {
        self.received = Some(received);
        self
    }
}

impl<B: WriteBackend> Layer for Intercept<B> {
    type Inner = B;

    fn inner(&self) -> &B {
        &self.inner
    }

    fn around<T: Transfer>(
        &self,
        call: Call<'_>,
        f: &mut dyn FnMut() -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        (self.hook)(call)?;
        let done = f()?;
        if let Some(received) = &self.received {
            received(call, done.received());
        }
        Ok(done)
    }
}

layer_backend!(Intercept);

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use bytes::Bytes;

    use super::*;
    use crate::{FileKind, MemoryBackend, ObjectId, ReadBackend};

    #[test]
    fn intercept_sees_every_call_and_may_fail_it() {
        let reads = Arc::new(AtomicU32::new(0));
        let counted = reads.clone();
        let backend = Intercept::new(
            MemoryBackend::new(),
            Box::new(move |call| match call {
                Call::Read(..) => {
                    counted.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                }
                Call::Write(FileKind::Pack, ..) => Err(BackendError::new(
                    ErrorKind::Permanent,
                    "write",
                    "x",
                    "refused",
                )),
                _ => Ok(()),
            }),
        );
        backend.create().unwrap();
        let id = ObjectId::from_bytes([1; 32]);
        assert!(
            backend
                .write(FileKind::Pack, &id, Bytes::from_static(b"p"))
                .is_err()
        );
        backend
            .write(FileKind::Index, &id, Bytes::from_static(b"i"))
            .unwrap();
        assert!(backend.list(FileKind::Pack).unwrap().is_empty());
        backend.read_full(FileKind::Index, &id).unwrap();
        backend.read_range(FileKind::Index, &id, 0, 1).unwrap();
        assert_eq!(reads.load(Ordering::SeqCst), 2);
    }

    /// The received hook sees the bytes each successful read brought, and nothing for
    /// writes, listings or calls that failed.
    #[test]
    fn intercept_reports_the_bytes_each_read_brought() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let backend = Intercept::new(MemoryBackend::new(), Box::new(|_| Ok(()))).on_received(
            Box::new(move |call, bytes| {
                if bytes > 0 {
                    log.lock()
                        .unwrap()
                        .push((call.operation(), call.object(), bytes));
                }
            }),
        );
        backend.create().unwrap();
        let id = ObjectId::from_bytes([2; 32]);
        backend
            .write(FileKind::Pack, &id, Bytes::from_static(b"twelve bytes"))
            .unwrap();
        backend.read_full(FileKind::Pack, &id).unwrap();
        backend.read_range(FileKind::Pack, &id, 3, 5).unwrap();
        assert!(backend.read_range(FileKind::Pack, &id, 10, 5).is_err());
        backend.list(FileKind::Pack).unwrap();
        let object = format!("data/{id}");
        assert_eq!(
            *seen.lock().unwrap(),
            vec![("read", object.clone(), 12), ("read", object, 5)]
        );
    }
}
