//! Locking shared by the gateway's bookkeeping.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, carrying on with the data if a holder panicked (the bookkeeping stays usable:
/// every update is a single consistent step).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
