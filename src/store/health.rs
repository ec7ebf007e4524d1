//! Whether the database can be written, as the store writer last found it, and how many
//! call records wait for it. The writer sets it; `/healthz` and `/metrics`
//! (`threering_store_up`, `threering_store_queued_records`) read it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Shared between the writer task and the HTTP server; cheap to clone. Starts "up".
#[derive(Debug, Clone)]
pub struct StoreHealth {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    up: AtomicBool,
    queued: AtomicU64,
    /// Why the store is down (the last error), while it is.
    reason: Mutex<Option<String>>,
}

impl Default for StoreHealth {
    fn default() -> Self {
        StoreHealth {
            inner: Arc::new(Inner {
                up: AtomicBool::new(true),
                queued: AtomicU64::new(0),
                reason: Mutex::new(None),
            }),
        }
    }
}

impl StoreHealth {
    pub fn new() -> StoreHealth {
        StoreHealth::default()
    }

    /// Whether the last write (or probe) reached the database.
    pub fn is_up(&self) -> bool {
        self.inner.up.load(Ordering::Acquire)
    }

    /// Call records waiting to be written (in memory and in the spool).
    pub fn queued(&self) -> u64 {
        self.inner.queued.load(Ordering::Acquire)
    }

    /// Why the database cannot be written, while it cannot.
    pub fn reason(&self) -> Option<String> {
        self.lock_reason().clone()
    }

    pub(super) fn set_down(&self, reason: String) {
        *self.lock_reason() = Some(reason);
        self.inner.up.store(false, Ordering::Release);
        crate::metrics::store_up(false);
    }

    pub(super) fn set_up(&self) {
        *self.lock_reason() = None;
        self.inner.up.store(true, Ordering::Release);
        crate::metrics::store_up(true);
    }

    pub(super) fn set_queued(&self, records: u64) {
        self.inner.queued.store(records, Ordering::Release);
        crate::metrics::store_queued_records(records);
    }

    fn lock_reason(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        // A panic elsewhere while holding the lock leaves a string: still usable.
        self.inner
            .reason
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
