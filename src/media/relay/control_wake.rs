//! The waker a relay task gives to call control's side, so that a wake for a datagram does
//! not poll that side too.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Wake, Waker};

/// The waker given to call control's side of a relay task (its cancellation token and its
/// prompt requests): it notes that they have news, then wakes the task.
#[derive(Debug)]
pub(super) struct ControlWake {
    /// Set by a wake from call control's side, taken by the next poll.
    woken: AtomicBool,
    /// The task's own waker, as of its last poll that brought a different one.
    task: Mutex<Option<Waker>>,
}

impl Default for ControlWake {
    /// Woken: the first poll registers with call control's side.
    fn default() -> ControlWake {
        ControlWake {
            woken: AtomicBool::new(true),
            task: Mutex::new(None),
        }
    }
}

impl ControlWake {
    /// Whether call control's side must be polled now (it woke the task, or the task's
    /// waker changed and the new one must be passed on); clears the mark.
    /// `known` is the poller's copy of the waker passed on last: a tokio task keeps its
    /// waker, so the lock is taken only when it changes.
    pub(super) fn take(&self, task: &Waker, known: &mut Option<Waker>) -> bool {
        let changed = !known.as_ref().is_some_and(|w| w.will_wake(task));
        if changed {
            *known = Some(task.clone());
            *self.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task.clone());
        }
        self.woken.swap(false, Ordering::AcqRel) || changed
    }

    /// Marks call control's side to be polled at the next poll.
    pub(super) fn note(&self) {
        self.woken.store(true, Ordering::Release);
    }
}

impl Wake for ControlWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.note();
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(task) = task {
            task.wake();
        }
    }
}
