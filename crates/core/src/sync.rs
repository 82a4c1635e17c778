//! Locking that tolerates poisoning.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`. State behind this crate's locks is only changed in whole steps, so a panic
/// elsewhere while the lock was held cannot leave it half-updated; a poisoned lock is
/// still consistent and is used as is.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
