//! Deadline bookkeeping for a driver of one transaction.
//!
//! The machines only *ask* for timers ([`Action::StartTimer`] /
//! [`Action::CancelTimer`]); a driver has to turn those into deadlines and
//! feed the expiries back. [`TimerSet`] does that bookkeeping so every driver
//! does not reinvent it: one optional deadline per [`TimerId`] (a transaction
//! never runs two copies of the same timer, and re-starting one replaces
//! it), on tokio's clock so drivers can `sleep_until` the next deadline and
//! tests can use tokio's paused time.

use tokio::time::Instant;

use super::{Action, TimerId};

/// At most one deadline per [`TimerId`], for one transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimerSet {
    deadlines: [Option<Instant>; TimerId::ALL.len()],
}

impl TimerSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Arm `id` to expire at `at`, replacing any earlier deadline for it.
    pub fn set(&mut self, id: TimerId, at: Instant) {
        self.deadlines[id.index()] = Some(at);
    }

    /// Disarm `id` (no-op if it is not armed).
    pub fn cancel(&mut self, id: TimerId) {
        self.deadlines[id.index()] = None;
    }

    /// The deadline of `id`, if armed.
    pub fn get(&self, id: TimerId) -> Option<Instant> {
        self.deadlines[id.index()]
    }

    /// Disarm everything.
    pub fn clear(&mut self) {
        self.deadlines = Default::default();
    }

    /// Whether no timer is armed.
    pub fn is_empty(&self) -> bool {
        self.deadlines.iter().all(Option::is_none)
    }

    /// Record the timer requests in `actions`, returned by a machine at
    /// `now`; other actions are the driver's business and are skipped.
    ///
    /// A delay too large to represent as an `Instant` leaves the timer
    /// unarmed: it would never fire anyway. [`Action::Terminated`] clears
    /// the whole set, because nothing of a finished transaction may fire.
    pub fn apply(&mut self, now: Instant, actions: &[Action]) {
        for action in actions {
            match *action {
                Action::StartTimer(id, after) => match now.checked_add(after) {
                    Some(at) => self.set(id, at),
                    None => self.cancel(id),
                },
                Action::CancelTimer(id) => self.cancel(id),
                Action::Terminated(_) => self.clear(),
                _ => {}
            }
        }
    }

    /// The armed timer that expires first, and when.
    ///
    /// Among timers due at the same instant, those that end a phase (B, F,
    /// H, …) come before those that send (A, E, G, Trying): a transaction
    /// that is timing out should not first send one last retransmission.
    /// Remaining ties go by [`TimerId`] order, so the result is
    /// deterministic.
    pub fn next_deadline(&self) -> Option<(TimerId, Instant)> {
        TimerId::ALL
            .iter()
            .filter_map(|&id| self.get(id).map(|at| (id, at)))
            .min_by_key(|&(id, at)| (at, id.sends(), id))
    }

    /// Disarm and return the first timer (in [`next_deadline`] order) whose
    /// deadline is at or before `now`. Call repeatedly until `None`, feeding
    /// each to the machine and applying its actions before the next call,
    /// since they may cancel or re-arm timers.
    ///
    /// [`next_deadline`]: TimerSet::next_deadline
    pub fn pop_expired(&mut self, now: Instant) -> Option<TimerId> {
        let (id, at) = self.next_deadline()?;
        if at > now {
            return None;
        }
        self.cancel(id);
        Some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::super::TerminationReason;
    use super::*;
    use std::time::Duration;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn empty_set_has_nothing() {
        let mut set = TimerSet::new();
        assert!(set.is_empty());
        assert_eq!(set.next_deadline(), None);
        assert_eq!(set.pop_expired(Instant::now()), None);
    }

    #[test]
    fn set_replaces_and_cancel_removes() {
        let now = Instant::now();
        let mut set = TimerSet::new();
        set.set(TimerId::A, now + ms(500));
        set.set(TimerId::A, now + ms(1000));
        assert_eq!(set.get(TimerId::A), Some(now + ms(1000)));
        set.cancel(TimerId::A);
        assert!(set.is_empty());
    }

    #[test]
    fn apply_records_start_and_cancel() {
        let now = Instant::now();
        let mut set = TimerSet::new();
        set.apply(
            now,
            &[
                Action::SendRequest,
                Action::StartTimer(TimerId::A, ms(500)),
                Action::StartTimer(TimerId::B, ms(32_000)),
            ],
        );
        assert_eq!(set.next_deadline(), Some((TimerId::A, now + ms(500))));
        set.apply(now, &[Action::CancelTimer(TimerId::A)]);
        assert_eq!(set.next_deadline(), Some((TimerId::B, now + ms(32_000))));
    }

    #[test]
    fn apply_terminated_clears_everything() {
        let now = Instant::now();
        let mut set = TimerSet::new();
        set.apply(
            now,
            &[
                Action::StartTimer(TimerId::G, ms(500)),
                Action::StartTimer(TimerId::H, ms(32_000)),
                Action::Terminated(TerminationReason::TransportError),
            ],
        );
        assert!(set.is_empty());
    }

    #[test]
    fn unrepresentable_deadline_is_never() {
        let now = Instant::now();
        let mut set = TimerSet::new();
        set.set(TimerId::B, now + ms(1));
        set.apply(now, &[Action::StartTimer(TimerId::B, Duration::MAX)]);
        assert!(set.is_empty());
    }

    #[test]
    fn pop_expired_in_deadline_order_and_disarms() {
        let now = Instant::now();
        let mut set = TimerSet::new();
        set.set(TimerId::K, now + ms(300));
        set.set(TimerId::E, now + ms(100));
        set.set(TimerId::F, now + ms(200));
        assert_eq!(set.pop_expired(now), None);
        let later = now + ms(250);
        assert_eq!(set.pop_expired(later), Some(TimerId::E));
        assert_eq!(set.pop_expired(later), Some(TimerId::F));
        assert_eq!(set.pop_expired(later), None);
        assert_eq!(set.get(TimerId::K), Some(now + ms(300)));
    }

    #[test]
    fn ties_fire_timeouts_before_retransmissions() {
        let now = Instant::now();
        let mut set = TimerSet::new();
        set.set(TimerId::A, now);
        set.set(TimerId::B, now);
        set.set(TimerId::Trying, now);
        set.set(TimerId::D, now);
        assert_eq!(set.pop_expired(now), Some(TimerId::B));
        assert_eq!(set.pop_expired(now), Some(TimerId::D));
        assert_eq!(set.pop_expired(now), Some(TimerId::A));
        assert_eq!(set.pop_expired(now), Some(TimerId::Trying));
        assert_eq!(set.pop_expired(now), None);
    }
}
