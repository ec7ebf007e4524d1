//! The tap: how the relay hands copies of a call's RTP to its recorder.
//!
//! The relay offers every accepted RTP packet of both legs; the recorder thread takes all
//! of them at once on its tick. A bounded channel of owned packets did this before, and at
//! 400 recorded calls it cost about 9 % of the daemon's CPU (`bench/relay_cpu`: one heap
//! copy per packet, the channel's push and pop, the free on the recorder thread). Here the
//! relay appends the packet's bytes to a buffer under a lock that the recorder takes once
//! per tick, swapping in its emptied buffer of the last tick: no allocation once the two
//! buffers have grown to a tick's worth, one uncontended lock per packet.
//!
//! - **Bounded**: at most `capacity` packets wait; more are refused ([`Offer::Full`]) and
//!   the relay counts them. The relay never waits for the recorder.
//! - **Closed** by the recorder: once the receiver is gone, offers say so
//!   ([`Offer::Closed`]) and the relay forgets the tap. (The recorder learns that a call
//!   ended from its handle, not from the tap.)

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

#[cfg(test)]
use bytes::Bytes;
use tokio::time::Instant;

use super::relay::{Leg, MAX_PACKET};

/// An RTP packet as it arrived from a leg, as tests read it back
/// ([`TapReceiver::try_recv`]; the recorder reads the bytes in place with
/// [`TapReceiver::drain`]). Only RTP that passed the
/// source check is tapped (no RTCP, nothing from strangers), whether or not it could be
/// relayed: the recording is of what each side said.
#[cfg(test)]
#[derive(Debug, Clone)]
pub struct TappedPacket {
    pub leg: Leg,
    /// When the relay read it: the recorder aligns the two legs by arrival time.
    pub arrival: Instant,
    /// The whole RTP packet, header included (the recorder needs the payload type,
    /// sequence number and timestamp).
    pub data: Bytes,
}

/// Where one packet's bytes are in a [`Batch`].
#[derive(Debug, Clone, Copy)]
struct Entry {
    leg: Leg,
    arrival: Instant,
    start: usize,
    end: usize,
}

/// Packets offered since the recorder last took them: their bytes back to back.
#[derive(Debug, Default)]
struct Batch {
    entries: Vec<Entry>,
    bytes: Vec<u8>,
}

impl Batch {
    fn clear(&mut self) {
        self.entries.clear();
        self.bytes.clear();
    }

    fn packet(&self, entry: &Entry) -> &[u8] {
        &self.bytes[entry.start..entry.end]
    }
}

#[derive(Debug)]
struct Shared {
    waiting: Mutex<Batch>,
    capacity: usize,
    receiver_gone: AtomicBool,
}

impl Shared {
    /// The batch is plain data that no code path leaves half-written (an entry is pushed
    /// after its bytes), so a poisoned lock is safe to keep using.
    fn lock(&self) -> MutexGuard<'_, Batch> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What became of an offered packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    Taken,
    /// `capacity` packets are already waiting (or the packet is larger than
    /// [`MAX_PACKET`]): this one is not recorded.
    Full,
    /// The receiver is gone: nothing offered will be recorded any more.
    Closed,
}

/// The relay's end. Cloning it gives another sender into the same receiver.
#[derive(Debug, Clone)]
pub struct TapSender {
    shared: Arc<Shared>,
}

/// The recorder's end.
#[derive(Debug)]
pub struct TapReceiver {
    shared: Arc<Shared>,
    /// The batch taken last, read from `next` on (swapped with the waiting one when read
    /// to the end, so both keep their capacity).
    taken: Batch,
    next: usize,
}

/// Why [`TapReceiver::try_recv`] gave nothing.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryRecvError {
    /// Nothing waits now.
    Empty,
    /// Nothing waits and every sender is gone.
    Disconnected,
}

/// A tap holding at most `capacity` packets that the receiver has not taken yet.
pub fn channel(capacity: usize) -> (TapSender, TapReceiver) {
    let shared = Arc::new(Shared {
        waiting: Mutex::new(Batch::default()),
        capacity,
        receiver_gone: AtomicBool::new(false),
    });
    let receiver = TapReceiver {
        shared: Arc::clone(&shared),
        taken: Batch::default(),
        next: 0,
    };
    (TapSender { shared }, receiver)
}

impl TapSender {
    /// Copies `packet` into the tap, never waiting.
    pub fn offer(&self, leg: Leg, arrival: Instant, packet: &[u8]) -> Offer {
        if self.shared.receiver_gone.load(Ordering::Relaxed) {
            return Offer::Closed;
        }
        if packet.len() > MAX_PACKET {
            return Offer::Full;
        }
        let mut waiting = self.shared.lock();
        if waiting.entries.len() >= self.shared.capacity {
            return Offer::Full;
        }
        let start = waiting.bytes.len();
        waiting.bytes.extend_from_slice(packet);
        let end = waiting.bytes.len();
        waiting.entries.push(Entry {
            leg,
            arrival,
            start,
            end,
        });
        Offer::Taken
    }
}

impl TapReceiver {
    /// Makes `taken[next..]` non-empty if anything waits; `false` if nothing does.
    fn refill(&mut self) -> bool {
        if self.next < self.taken.entries.len() {
            return true;
        }
        self.taken.clear();
        self.next = 0;
        std::mem::swap(&mut self.taken, &mut *self.shared.lock());
        !self.taken.entries.is_empty()
    }

    /// Hands up to `max` waiting packets to `each`, oldest first, as (leg, arrival,
    /// packet); returns how many. Packets offered while this runs wait for the next call.
    pub fn drain(&mut self, max: usize, mut each: impl FnMut(Leg, Instant, &[u8])) -> usize {
        let mut count = 0;
        while count < max && self.refill() {
            let available = self.taken.entries.len() - self.next;
            let take = available.min(max - count);
            for entry in &self.taken.entries[self.next..self.next + take] {
                each(entry.leg, entry.arrival, self.taken.packet(entry));
            }
            self.next += take;
            count += take;
        }
        count
    }

    /// The oldest waiting packet, as an owned copy. For tests.
    #[cfg(test)]
    pub fn try_recv(&mut self) -> Result<TappedPacket, TryRecvError> {
        if !self.refill() {
            // Senders gone means only this receiver holds the shared state.
            return Err(if Arc::strong_count(&self.shared) == 1 {
                TryRecvError::Disconnected
            } else {
                TryRecvError::Empty
            });
        }
        let entry = self.taken.entries[self.next];
        self.next += 1;
        Ok(TappedPacket {
            leg: entry.leg,
            arrival: entry.arrival,
            data: Bytes::copy_from_slice(self.taken.packet(&entry)),
        })
    }

    /// The oldest packet, waiting for one if none is there yet (by looking every
    /// millisecond: the relay does not wake the recorder, which reads on its own tick);
    /// `None` once every sender is gone and nothing waits. For tests.
    #[cfg(test)]
    pub async fn recv(&mut self) -> Option<TappedPacket> {
        loop {
            match self.try_recv() {
                Ok(packet) => return Some(packet),
                Err(TryRecvError::Disconnected) => return None,
                Err(TryRecvError::Empty) => {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
            }
        }
    }
}

impl Drop for TapReceiver {
    fn drop(&mut self) {
        self.shared.receiver_gone.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_come_out_in_order_and_the_bound_holds_until_they_are_taken() {
        let (tap, mut receiver) = channel(2);
        let now = Instant::now();
        assert_eq!(tap.offer(Leg::Caller, now, b"one"), Offer::Taken);
        assert_eq!(tap.offer(Leg::Agent, now, b"two"), Offer::Taken);
        assert_eq!(tap.offer(Leg::Caller, now, b"three"), Offer::Full);
        let mut seen = Vec::new();
        let count = receiver.drain(1, |leg, _, data| seen.push((leg, data.to_vec())));
        assert_eq!(count, 1);
        // Both were taken from the shared batch: room for two more.
        assert_eq!(tap.offer(Leg::Agent, now, b"four"), Offer::Taken);
        assert_eq!(tap.offer(Leg::Agent, now, b"five"), Offer::Taken);
        assert_eq!(tap.offer(Leg::Agent, now, b"six"), Offer::Full);
        receiver.drain(10, |leg, _, data| seen.push((leg, data.to_vec())));
        let expected = [
            (Leg::Caller, "one"),
            (Leg::Agent, "two"),
            (Leg::Agent, "four"),
            (Leg::Agent, "five"),
        ];
        let expected: Vec<_> = expected
            .iter()
            .map(|(leg, s)| (*leg, s.as_bytes().to_vec()))
            .collect();
        assert_eq!(seen, expected);
        assert_eq!(receiver.try_recv().unwrap_err(), TryRecvError::Empty);
    }

    #[test]
    fn an_oversized_packet_is_refused() {
        let (tap, mut receiver) = channel(8);
        let big = vec![0x80; MAX_PACKET + 1];
        assert_eq!(tap.offer(Leg::Caller, Instant::now(), &big), Offer::Full);
        assert_eq!(receiver.try_recv().unwrap_err(), TryRecvError::Empty);
    }

    #[test]
    fn either_end_going_away_is_seen_by_the_other() {
        let (tap, mut receiver) = channel(8);
        assert_eq!(
            tap.offer(Leg::Caller, Instant::now(), b"last"),
            Offer::Taken
        );
        let copy = tap.clone();
        drop(tap);
        assert_eq!(receiver.try_recv().expect("waiting").data.as_ref(), b"last");
        assert_eq!(receiver.try_recv().unwrap_err(), TryRecvError::Empty);
        drop(copy);
        assert_eq!(receiver.try_recv().unwrap_err(), TryRecvError::Disconnected);

        let (tap, receiver) = channel(8);
        assert_eq!(tap.offer(Leg::Agent, Instant::now(), b"x"), Offer::Taken);
        drop(receiver);
        assert_eq!(tap.offer(Leg::Agent, Instant::now(), b"x"), Offer::Closed);
    }
}
