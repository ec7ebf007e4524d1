//! A small per-leg reorder buffer keyed by RTP sequence number (RFC 3550 §5.1).
//!
//! UDP may deliver a leg's packets out of order or twice. The recorder places audio by RTP
//! timestamp, so order matters less for *where* samples go than for *which* packets count:
//! the first packet of a stream fixes the leg's anchor, a packet that comes after its
//! successors were written is too late to use, and a duplicate must not be decoded twice.
//! This buffer turns the arriving stream into an in-order, de-duplicated one:
//!
//! - packets that continue the sequence are released at once (no added latency);
//! - behind a gap, later packets are held until the missing one arrives, or until the
//!   oldest held packet has waited `hold` (the gap is then a loss and becomes silence), or
//!   until more than `capacity` packets are held (the window is full);
//! - packets behind what was already released are late and dropped, as are duplicates.
//!
//! Sequence numbers are 16 bits and wrap (65535 → 0): each one is mapped to a 64-bit
//! "extended" number relative to the next expected one, taking the shorter way round the
//! circle, so ordering across the wrap is ordinary integer ordering. A sender that restarts
//! its sequence far behind (same SSRC, RFC 3550 Appendix A.1's "probation") is accepted once
//! two consecutive such packets arrive, so a restart does not silence the leg for good.
//!
//! The buffer holds items of any type, is driven by explicit instants (so it is tested
//! without sleeping) and never panics.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// Extended numbers start here, so that a packet just before the first one (reordered at
/// the very start) still has a key without going below zero.
const BASE: u64 = 1 << 32;

/// A packet this far behind the next expected one is not a late packet but a sender that
/// restarted its sequence (RFC 3550 Appendix A.1 uses the same bound).
const MAX_MISORDER: i64 = 100;

/// What [`ReorderBuffer::insert`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Held, to be released in order.
    Accepted,
    /// The same sequence number is already held: dropped.
    Duplicate,
    /// Behind what was already released (a late or duplicate packet): dropped.
    Late,
    /// Accepted as the start of a restarted sequence; what was held from the old sequence
    /// is released first, in order.
    Restarted,
}

/// One held packet.
#[derive(Debug)]
struct Held<T> {
    arrival: Instant,
    item: T,
}

/// Reorders one leg's packets by sequence number. See the module documentation.
#[derive(Debug)]
pub struct ReorderBuffer<T> {
    hold: Duration,
    capacity: usize,
    /// Held packets by extended sequence number.
    pending: BTreeMap<u64, Held<T>>,
    /// Packets already due (window overflow, sequence restart), in release order.
    due: VecDeque<T>,
    /// Extended number of the next packet to release; meaningful once `started`.
    next: u64,
    started: bool,
    /// Whether anything was released since the (re)start: before that, a packet slightly
    /// earlier than the first one may still become the start.
    released_any: bool,
    /// RFC 3550 A.1 probation: the sequence number that would confirm a restart.
    restart_candidate: Option<u16>,
}

impl<T> ReorderBuffer<T> {
    /// A buffer that holds packets behind a gap for at most `hold`, and at most `capacity`
    /// packets at once (at least 1).
    pub fn new(hold: Duration, capacity: usize) -> Self {
        ReorderBuffer {
            hold,
            capacity: capacity.max(1),
            pending: BTreeMap::new(),
            due: VecDeque::new(),
            next: BASE,
            started: false,
            released_any: false,
            restart_candidate: None,
        }
    }

    /// Number of packets held or due.
    pub fn len(&self) -> usize {
        self.pending.len() + self.due.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Offers a packet that arrived at `arrival` with sequence number `seq`.
    pub fn insert(&mut self, seq: u16, arrival: Instant, item: T) -> Admission {
        if !self.started {
            self.restart_at(seq);
        }
        // Signed distance from the next expected number, the short way round.
        let delta = i64::from(seq.wrapping_sub(self.next as u16) as i16);
        let mut admission = Admission::Accepted;
        if delta < 0 {
            let capacity = i64::try_from(self.capacity).unwrap_or(i64::MAX);
            if !self.released_any && -delta <= capacity {
                // Reordered at the very start: this one becomes the first.
                self.next = self.next.saturating_add_signed(delta);
            } else if -delta > MAX_MISORDER {
                if self.restart_candidate == Some(seq) {
                    self.flush_pending_to_due();
                    self.restart_at(seq);
                    admission = Admission::Restarted;
                } else {
                    self.restart_candidate = Some(seq.wrapping_add(1));
                    return Admission::Late;
                }
            } else {
                return Admission::Late;
            }
        }
        self.restart_candidate = None;
        let key = self
            .next
            .saturating_add_signed(i64::from(seq.wrapping_sub(self.next as u16) as i16));
        if self.pending.contains_key(&key) {
            return Admission::Duplicate;
        }
        self.pending.insert(key, Held { arrival, item });
        while self.pending.len() > self.capacity {
            // Window full: the oldest sequence number must go now, gap or not.
            if let Some((key, held)) = self.pending.pop_first() {
                self.next = key.saturating_add(1);
                self.released_any = true;
                self.due.push_back(held.item);
            }
        }
        admission
    }

    /// Releases the next packet if it is due at `now`: it continues the sequence, or the
    /// oldest held packet has waited `hold`, or the window overflowed. Call repeatedly until
    /// it returns `None`.
    pub fn pop_ready(&mut self, now: Instant) -> Option<T> {
        if let Some(item) = self.due.pop_front() {
            return Some(item);
        }
        let (&key, _) = self.pending.first_key_value()?;
        let continues = self.released_any && key == self.next;
        let expired = self
            .pending
            .values()
            .map(|held| held.arrival)
            .min()
            .is_some_and(|oldest| now.saturating_duration_since(oldest) >= self.hold);
        if !continues && !expired {
            return None;
        }
        let held = self.pending.remove(&key)?;
        self.next = key.saturating_add(1);
        self.released_any = true;
        Some(held.item)
    }

    /// Releases everything held, in order, whatever the time (end of recording, or a new
    /// stream on the leg). Packets behind the last one released stay late afterwards.
    pub fn drain(&mut self) -> Vec<T> {
        self.flush_pending_to_due();
        self.due.drain(..).collect()
    }

    /// Forgets everything, released or held: the next packet starts a new sequence.
    pub fn reset(&mut self) {
        self.pending.clear();
        self.due.clear();
        self.started = false;
        self.released_any = false;
        self.restart_candidate = None;
        self.next = BASE;
    }

    fn flush_pending_to_due(&mut self) {
        if let Some((&last, _)) = self.pending.last_key_value() {
            self.next = last.saturating_add(1);
            self.released_any = true;
        }
        let pending = std::mem::take(&mut self.pending);
        self.due.extend(pending.into_values().map(|held| held.item));
    }

    fn restart_at(&mut self, seq: u16) {
        self.next = BASE + u64::from(seq);
        self.started = true;
        self.released_any = false;
        self.restart_candidate = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOLD: Duration = Duration::from_millis(60);

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    fn pop_all(buffer: &mut ReorderBuffer<u16>, now: Instant) -> Vec<u16> {
        std::iter::from_fn(|| buffer.pop_ready(now)).collect()
    }

    #[test]
    fn in_order_packets_pass_once_started() {
        let t0 = Instant::now();
        let mut b = ReorderBuffer::new(HOLD, 16);
        assert_eq!(b.insert(10, t0, 10), Admission::Accepted);
        // The very first packet waits for the hold, in case an earlier one is in flight.
        assert!(pop_all(&mut b, t0).is_empty());
        assert_eq!(pop_all(&mut b, ms(t0, 60)), vec![10]);
        b.insert(11, ms(t0, 60), 11);
        assert_eq!(pop_all(&mut b, ms(t0, 60)), vec![11]);
        assert!(b.is_empty());
    }

    #[test]
    fn an_earlier_packet_before_the_first_release_becomes_the_start() {
        let t0 = Instant::now();
        let mut b = ReorderBuffer::new(HOLD, 16);
        b.insert(5, t0, 5);
        b.insert(4, ms(t0, 5), 4);
        b.insert(6, ms(t0, 10), 6);
        assert_eq!(pop_all(&mut b, ms(t0, 60)), vec![4, 5, 6]);
    }

    #[test]
    fn out_of_order_packets_are_released_in_order() {
        let t0 = Instant::now();
        let mut b = ReorderBuffer::new(HOLD, 16);
        b.insert(1, t0, 1);
        assert_eq!(pop_all(&mut b, ms(t0, 60)), vec![1]);
        b.insert(3, ms(t0, 70), 3);
        b.insert(4, ms(t0, 80), 4);
        assert!(
            pop_all(&mut b, ms(t0, 80)).is_empty(),
            "held behind the gap"
        );
        b.insert(2, ms(t0, 85), 2);
        assert_eq!(pop_all(&mut b, ms(t0, 85)), vec![2, 3, 4]);
        assert_eq!(b.insert(3, ms(t0, 90), 3), Admission::Late);
    }

    #[test]
    fn a_lost_packet_is_given_up_after_the_hold() {
        let t0 = Instant::now();
        let mut b = ReorderBuffer::new(HOLD, 16);
        b.insert(1, t0, 1);
        assert_eq!(pop_all(&mut b, ms(t0, 60)), vec![1]);
        b.insert(3, ms(t0, 100), 3);
        b.insert(4, ms(t0, 120), 4);
        assert!(pop_all(&mut b, ms(t0, 159)).is_empty());
        assert_eq!(pop_all(&mut b, ms(t0, 160)), vec![3, 4]);
        // The lost one, if it shows up now, is late.
        assert_eq!(b.insert(2, ms(t0, 170), 2), Admission::Late);
    }

    #[test]
    fn duplicates_are_dropped_held_or_released() {
        let t0 = Instant::now();
        let mut b = ReorderBuffer::new(HOLD, 16);
        b.insert(7, t0, 7);
        assert_eq!(b.insert(7, t0, 7), Admission::Duplicate);
        assert_eq!(pop_all(&mut b, ms(t0, 60)), vec![7]);
        assert_eq!(b.insert(7, ms(t0, 61), 7), Admission::Late);
        b.insert(9, ms(t0, 62), 9);
        assert_eq!(b.insert(9, ms(t0, 63), 9), Admission::Duplicate);
        b.insert(8, ms(t0, 64), 8);
        assert_eq!(pop_all(&mut b, ms(t0, 64)), vec![8, 9]);
    }

    #[test]
    fn sequence_wraps_from_65535_to_0() {
        let t0 = Instant::now();
        let mut b = ReorderBuffer::new(HOLD, 16);
        b.insert(65534, t0, 65534);
        assert_eq!(pop_all(&mut b, ms(t0, 60)), vec![65534]);
        b.insert(0, ms(t0, 61), 0);
        b.insert(1, ms(t0, 62), 1);
        assert!(pop_all(&mut b, ms(t0, 62)).is_empty(), "65535 is missing");
        b.insert(65535, ms(t0, 63), 65535);
        assert_eq!(pop_all(&mut b, ms(t0, 63)), vec![65535, 0, 1]);
        assert_eq!(b.insert(65535, ms(t0, 64), 65535), Admission::Late);
        b.insert(2, ms(t0, 65), 2);
        assert_eq!(pop_all(&mut b, ms(t0, 65)), vec![2]);
    }

    #[test]
    fn a_full_window_releases_the_oldest_without_waiting() {
        let t0 = Instant::now();
        let mut b = ReorderBuffer::new(HOLD, 4);
        b.insert(1, t0, 1);
        assert_eq!(pop_all(&mut b, ms(t0, 60)), vec![1]);
        // 2 is lost; 3..=7 arrive at once: five held is one too many.
        for seq in 3..=7 {
            b.insert(seq, ms(t0, 61), seq);
        }
        assert_eq!(pop_all(&mut b, ms(t0, 61)), vec![3, 4, 5, 6, 7]);
        assert_eq!(b.insert(2, ms(t0, 62), 2), Admission::Late);
    }

    #[test]
    fn a_sequence_restart_is_accepted_after_two_consecutive_packets() {
        let t0 = Instant::now();
        let mut b = ReorderBuffer::new(HOLD, 16);
        b.insert(30000, t0, 30000);
        assert_eq!(pop_all(&mut b, ms(t0, 60)), vec![30000]);
        assert_eq!(b.insert(500, ms(t0, 70), 500), Admission::Late);
        assert_eq!(b.insert(501, ms(t0, 90), 501), Admission::Restarted);
        b.insert(502, ms(t0, 110), 502);
        assert_eq!(pop_all(&mut b, ms(t0, 160)), vec![501, 502]);
    }

    #[test]
    fn drain_and_reset() {
        let t0 = Instant::now();
        let mut b = ReorderBuffer::new(HOLD, 16);
        b.insert(3, t0, 3);
        b.insert(1, t0, 1);
        b.insert(5, t0, 5);
        assert_eq!(b.drain(), vec![1, 3, 5]);
        assert_eq!(b.insert(4, t0, 4), Admission::Late);
        b.reset();
        assert_eq!(b.insert(4, t0, 4), Admission::Accepted);
        assert_eq!(b.drain(), vec![4]);
    }

    proptest::proptest! {
        /// Whatever arrives within a span that cannot look like a restart, what comes out
        /// is strictly increasing: in order, and nothing twice.
        #[test]
        fn output_is_ordered_and_unique(seqs in proptest::collection::vec(0u16..100, 0..300)) {
            let t0 = Instant::now();
            let mut b = ReorderBuffer::new(HOLD, 8);
            let mut out = Vec::new();
            for (i, &seq) in seqs.iter().enumerate() {
                let now = ms(t0, i as u64 * 7);
                b.insert(seq, now, seq);
                out.extend(pop_all(&mut b, now));
            }
            out.extend(b.drain());
            for pair in out.windows(2) {
                proptest::prop_assert!(pair[0] < pair[1], "{:?}", out);
            }
        }

        /// Any sequence numbers and instants at all: no panic, and nothing is lost
        /// silently (every packet is released, dropped or still held).
        #[test]
        fn never_panics(input in proptest::collection::vec((proptest::num::u16::ANY, 0u64..1000), 0..300)) {
            let t0 = Instant::now();
            let mut b = ReorderBuffer::new(HOLD, 8);
            let mut accepted = 0usize;
            let mut released = 0usize;
            for &(seq, at) in &input {
                match b.insert(seq, ms(t0, at), seq) {
                    Admission::Accepted | Admission::Restarted => accepted += 1,
                    Admission::Duplicate | Admission::Late => {}
                }
                released += pop_all(&mut b, ms(t0, at)).len();
            }
            released += b.drain().len();
            proptest::prop_assert_eq!(accepted, released);
        }
    }
}
