//! SIP transaction state machines (RFC 3261 §17, amended by RFC 6026).
//!
//! # Why pure machines
//!
//! A transaction is a small protocol of retransmissions and timeouts. Its
//! rules are easy to get subtly wrong and hard to test through sockets and a
//! wall clock, so the four machines here do no I/O, read no clock and never
//! see message bytes. A driver (written elsewhere) feeds each machine events
//! (a response arrived, the TU answered, a timer fired, the transport failed)
//! and performs the [`Action`]s it returns, *in order*. Timers are requested
//! with [`Action::StartTimer`] and come back as `on_timer(id)` calls;
//! [`timers::TimerSet`] is a helper that keeps those deadlines for a driver.
//!
//! Conventions shared by every machine:
//!
//! * An event that does not apply in the current state is ignored and yields
//!   an empty `Vec`: late retransmissions, a stale timer that raced with its
//!   cancellation, a TU answering twice. Ignoring is what RFC 3261 asks for
//!   absorbed messages, and it means a confused peer cannot make us panic.
//! * A machine remembers which timers it has running. A timer that fires
//!   without being running (already cancelled, or never started) is ignored,
//!   and "stop X" in the diagrams emits `CancelTimer(X)` only if X is running.
//! * Before [`Action::Terminated`] a machine cancels every timer it still has
//!   running, and `Terminated` is always the last action of its batch.
//! * "(unreliable)" marks timers that only run over UDP: a reliable transport
//!   (TCP, TLS, SCTP) retransmits for us, so these machines never resend on it.
//! * Where RFC 3261 gives a timer the value 0 on reliable transports (D, I, J,
//!   K), the machine does not start a zero timer but terminates at once.
//!
//! # Client INVITE ([`ClientInvite`], RFC 3261 §17.1.1, RFC 6026)
//!
//! ```text
//!          new / SendRequest, start A (unreliable), start B
//!             |
//!             v
//!       +------------+  A  / SendRequest, restart A at twice its interval
//!       |  Calling   |  B  / -> Terminated(Timeout)
//!       +------------+  transport error / -> Terminated(TransportError)
//!         |   |    |
//!         |   |    | 2xx / stop A, B; PassToTu; start M
//!         |   |    +------------------------------------------+
//!         |   |                                               |
//!         |   | 1xx / stop A, B; PassToTu                     |
//!         |   v                                               v
//!         | +------------+  1xx / PassToTu           +------------+  2xx / PassToTu
//!         | | Proceeding |  2xx / PassToTu; start M->|  Accepted  |  M / -> Terminated(Completed)
//!         | +------------+  transport error          +------------+
//!         |   |               / -> Terminated(TransportError)
//!         |   |
//!         +---+ 300-699 (from Calling or Proceeding)
//!           |     / stop A, B; SendAck; PassToTu; start D
//!           v
//!       +------------+  300-699 / SendAck   (retransmission: not passed up)
//!       | Completed  |  D / -> Terminated(Completed)   (reliable: at once)
//!       +------------+  transport error / -> Terminated(TransportError)
//! ```
//!
//! # Server INVITE ([`ServerInvite`], RFC 3261 §17.2.1, RFC 6026)
//!
//! ```text
//!          new / start Trying (200 ms)
//!             |
//!             v
//!       +------------+  Trying / SendTrying       (only if the TU sent nothing)
//!       | Proceeding |  INVITE / SendLastResponse (or SendTrying if none yet)
//!       |            |  1xx from TU / stop Trying; SendLastResponse
//!       +------------+  transport error / -> Terminated(TransportError)
//!         |        |
//!         |        | 2xx from TU / stop Trying; SendLastResponse; start L
//!         |        v
//!         |      +------------+  2xx from TU / SendLastResponse
//!         |      |  Accepted  |  INVITE / -   (absorbed)
//!         |      +------------+  ACK / PassAckToTu
//!         |                      L / -> Terminated(Completed)
//!         |
//!         | 300-699 from TU / stop Trying; SendLastResponse; start G (unreliable), H
//!         v
//!       +------------+  G / SendLastResponse; restart G at min(2G, T2)
//!       | Completed  |  INVITE / SendLastResponse
//!       +------------+  H / -> Terminated(Timeout)      (the ACK never came)
//!         |             transport error / -> Terminated(TransportError)
//!         |
//!         | ACK / stop G, H; start I
//!         v
//!       +------------+  ACK / -   (absorbed)
//!       | Confirmed  |  I / -> Terminated(Completed)   (reliable: at once)
//!       +------------+
//! ```
//!
//! # Client non-INVITE ([`ClientNonInvite`], RFC 3261 §17.1.2)
//!
//! ```text
//!          new / SendRequest, start E (unreliable), start F
//!             |
//!             v
//!       +------------+  E / SendRequest; restart E at min(2E, T2)
//!       |   Trying   |  F / -> Terminated(Timeout)
//!       +------------+  transport error / -> Terminated(TransportError)
//!         |        |
//!         |        | 1xx / PassToTu
//!         |        v
//!         |      +------------+  1xx / PassToTu
//!         |      | Proceeding |  E / SendRequest; restart E at T2
//!         |      +------------+  F / -> Terminated(Timeout)
//!         |        |             transport error / -> Terminated(TransportError)
//!         |        |
//!         +--------+ 200-699 (from Trying or Proceeding)
//!              |     / stop E, F; PassToTu; start K
//!              v
//!       +------------+  200-699 / -   (retransmission absorbed)
//!       | Completed  |  K / -> Terminated(Completed)   (reliable: at once)
//!       +------------+
//! ```
//!
//! # Server non-INVITE ([`ServerNonInvite`], RFC 3261 §17.2.2)
//!
//! ```text
//!          new / -
//!             |
//!             v
//!       +------------+  request / -   (absorbed: nothing to resend yet)
//!       |   Trying   |
//!       +------------+
//!         |        |
//!         |        | 1xx from TU / SendLastResponse
//!         |        v
//!         |      +------------+  1xx from TU / SendLastResponse
//!         |      | Proceeding |  request / SendLastResponse
//!         |      +------------+  transport error / -> Terminated(TransportError)
//!         |        |
//!         +--------+ 200-699 from TU (in Trying or Proceeding)
//!              |     / SendLastResponse; start J
//!              v
//!       +------------+  request / SendLastResponse
//!       | Completed  |  200-699 from TU / -   (discarded)
//!       +------------+  J / -> Terminated(Completed)   (reliable: at once)
//!                       transport error / -> Terminated(TransportError)
//! ```

use std::time::Duration;

pub mod client_invite;
pub mod client_non_invite;
pub mod server_invite;
pub mod server_non_invite;
pub mod timers;

pub use client_invite::{ClientInvite, ClientInviteState};
pub use client_non_invite::{ClientNonInvite, ClientNonInviteState};
pub use server_invite::{ServerInvite, ServerInviteState};
pub use server_non_invite::{ServerNonInvite, ServerNonInviteState};
pub use timers::TimerSet;

/// How long a server INVITE waits for the TU before sending `100 Trying`
/// itself (RFC 3261 §17.2.1). Fixed by the RFC, not derived from T1: it is
/// about how fast a TU answers, not about the network round trip.
pub const TRYING_DELAY: Duration = Duration::from_millis(200);

/// Lower bound of Timer D on unreliable transports (RFC 3261 Table 4, "> 32s
/// for UDP"). Timer D must outlast the *server's* retransmissions of its final
/// response, which run for 64·T1 of the server's T1; we cannot know that T1,
/// so Timer D never goes below the default 32 s even when our T1 is smaller.
pub const TIMER_D_MIN: Duration = Duration::from_secs(32);

/// The retransmission timer base values (RFC 3261 §17.1.1.1, Table 4).
///
/// Configurable because RFC 3261 allows a larger T1 on high-latency paths and
/// because tests want short timers; every derived timer scales with these
/// (64·T1, min(2x, T2), T4) except [`TRYING_DELAY`] and the floor
/// [`TIMER_D_MIN`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerConfig {
    /// Round-trip time estimate: first retransmission interval.
    pub t1: Duration,
    /// Cap on the retransmission interval of non-INVITE requests and of
    /// INVITE final responses.
    pub t2: Duration,
    /// How long a message may linger in the network; how long completed
    /// transactions stay around to absorb retransmissions.
    pub t4: Duration,
}

impl Default for TimerConfig {
    /// RFC 3261's recommended values: T1 = 500 ms, T2 = 4 s, T4 = 5 s.
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl TimerConfig {
    /// The values the machines actually use. A zero T1 would make the
    /// retransmission timers fire at the same instant forever (a driver busy
    /// loop), so T1 is raised to at least 1 ms; T2 below T1 would make the
    /// "cap" shrink the interval, so T2 is raised to at least T1.
    pub fn normalized(self) -> Self {
        let t1 = self.t1.max(Duration::from_millis(1));
        Self {
            t1,
            t2: self.t2.max(t1),
            t4: self.t4,
        }
    }

    /// 64·T1: the overall transaction timeout (Timers B, F, H, J, L and M).
    /// Saturating so an absurd T1 cannot overflow into a panic.
    pub fn timeout(&self) -> Duration {
        self.t1.saturating_mul(64)
    }

    /// Timer D on an unreliable transport: 64·T1, but never less than
    /// [`TIMER_D_MIN`].
    pub fn timer_d(&self) -> Duration {
        self.timeout().max(TIMER_D_MIN)
    }
}

/// The timers of RFC 3261 §17 (Table 4) and RFC 6026, plus the 100 Trying
/// delay of a server INVITE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimerId {
    /// Client INVITE: retransmit the request (unreliable only).
    A,
    /// Client INVITE: give up waiting for any response.
    B,
    /// Client INVITE: stop absorbing retransmitted non-2xx finals.
    D,
    /// Client non-INVITE: retransmit the request (unreliable only).
    E,
    /// Client non-INVITE: give up waiting for a final response.
    F,
    /// Server INVITE: retransmit the non-2xx final (unreliable only).
    G,
    /// Server INVITE: give up waiting for the ACK.
    H,
    /// Server INVITE: stop absorbing retransmitted ACKs.
    I,
    /// Server non-INVITE: stop answering retransmitted requests.
    J,
    /// Client non-INVITE: stop absorbing retransmitted finals.
    K,
    /// Server INVITE (RFC 6026): stop absorbing INVITEs / passing ACKs up
    /// after a 2xx.
    L,
    /// Client INVITE (RFC 6026): stop passing retransmitted 2xx up.
    M,
    /// Server INVITE: send `100 Trying` if the TU has not answered in 200 ms.
    Trying,
}

impl TimerId {
    /// Every timer, in declaration order.
    pub const ALL: [TimerId; 13] = [
        TimerId::A,
        TimerId::B,
        TimerId::D,
        TimerId::E,
        TimerId::F,
        TimerId::G,
        TimerId::H,
        TimerId::I,
        TimerId::J,
        TimerId::K,
        TimerId::L,
        TimerId::M,
        TimerId::Trying,
    ];

    /// Position in [`TimerId::ALL`], for fixed-size per-timer tables.
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// Whether firing this timer sends something rather than ending a phase.
    /// [`TimerSet`] fires the other kind first when two expire at the same
    /// instant, so a transaction that is timing out does not send one last
    /// useless retransmission.
    pub(crate) fn sends(self) -> bool {
        matches!(self, TimerId::A | TimerId::E | TimerId::G | TimerId::Trying)
    }
}

/// What the driver must do, in the order returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// (Re)send the request this client transaction carries.
    SendRequest,
    /// Client INVITE, non-2xx final response: send the ACK the transaction
    /// builds (same branch as the INVITE), RFC 3261 §17.1.1.3.
    SendAck,
    /// Server: (re)send the most recent response the TU gave (the driver
    /// keeps its bytes).
    SendLastResponse,
    /// Server INVITE: send a 100 Trying (the driver builds it from the
    /// request).
    SendTrying,
    /// Hand this response to the TU (client side; the driver passes the
    /// response it fed in).
    PassToTu,
    /// Server INVITE in Accepted (RFC 6026): hand an ACK for a 2xx to the TU.
    PassAckToTu,
    /// Arm (or re-arm, replacing any earlier deadline) this timer to fire
    /// after the given delay, then call `on_timer(id)`.
    StartTimer(TimerId, Duration),
    /// Disarm this timer; it must not be fed back.
    CancelTimer(TimerId),
    /// The transaction is over; the driver removes it. `reason` says why.
    Terminated(TerminationReason),
}

/// Why a transaction ended, so the TU can tell success from failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TerminationReason {
    /// The exchange ran its course (final response delivered / ACKed, and
    /// the absorb window is over).
    Completed,
    /// No response (client) or no ACK (server) came in time. A client TU
    /// reacts as to a 408 (RFC 3261 §8.1.3.1).
    Timeout,
    /// The transport reported a fatal error sending for this transaction;
    /// a client TU reacts as to a 503 (RFC 3261 §8.1.3.1).
    TransportError,
}

/// The response classes the machines distinguish. Statuses outside 100–699
/// are not SIP responses; the parser should reject them, and the machines
/// ignore them rather than guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatusClass {
    /// 100–199.
    Provisional,
    /// 200–299.
    Success,
    /// 300–699.
    Failure,
}

impl StatusClass {
    pub(crate) fn of(status: u16) -> Option<Self> {
        match status {
            100..=199 => Some(Self::Provisional),
            200..=299 => Some(Self::Success),
            300..=699 => Some(Self::Failure),
            _ => None,
        }
    }
}

/// The set of timers a machine currently has running. Kept by each machine
/// so it can ignore stale expiries and cancel exactly what is running when
/// it changes state or terminates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Armed(u16);

impl Armed {
    fn bit(id: TimerId) -> u16 {
        1 << id.index()
    }

    pub(crate) fn is_armed(self, id: TimerId) -> bool {
        self.0 & Self::bit(id) != 0
    }

    /// Arm `id` and ask the driver to start it.
    pub(crate) fn start(&mut self, out: &mut Vec<Action>, id: TimerId, after: Duration) {
        self.0 |= Self::bit(id);
        out.push(Action::StartTimer(id, after));
    }

    /// Disarm `id`, asking the driver to cancel it only if it was running.
    pub(crate) fn cancel(&mut self, out: &mut Vec<Action>, id: TimerId) {
        if self.is_armed(id) {
            self.0 &= !Self::bit(id);
            out.push(Action::CancelTimer(id));
        }
    }

    /// Record that `id` fired. Returns false if it was not running, in which
    /// case the expiry is stale and must be ignored.
    pub(crate) fn fired(&mut self, id: TimerId) -> bool {
        let was = self.is_armed(id);
        self.0 &= !Self::bit(id);
        was
    }

    /// Cancel everything still running (before terminating).
    pub(crate) fn cancel_all(&mut self, out: &mut Vec<Action>) {
        for id in TimerId::ALL {
            self.cancel(out, id);
        }
    }
}

/// A small, deterministic driver for the timing tests: it runs a machine on
/// tokio's paused clock with a [`TimerSet`], feeds scripted events at given
/// virtual times, and records every action with the time it was returned.
#[cfg(test)]
pub(crate) mod driver {
    use super::{Action, TerminationReason, TimerId, TimerSet};
    use std::time::Duration;
    use tokio::time::{sleep_until, Instant};

    /// A machine the driver can feed timer expiries to.
    pub(crate) trait Machine {
        fn fire(&mut self, id: TimerId) -> Vec<Action>;
    }

    impl Machine for super::ClientInvite {
        fn fire(&mut self, id: TimerId) -> Vec<Action> {
            self.on_timer(id)
        }
    }
    impl Machine for super::ServerInvite {
        fn fire(&mut self, id: TimerId) -> Vec<Action> {
            self.on_timer(id)
        }
    }
    impl Machine for super::ClientNonInvite {
        fn fire(&mut self, id: TimerId) -> Vec<Action> {
            self.on_timer(id)
        }
    }
    impl Machine for super::ServerNonInvite {
        fn fire(&mut self, id: TimerId) -> Vec<Action> {
            self.on_timer(id)
        }
    }

    /// An event fed at a virtual time after the start.
    pub(crate) type Event<M> = (Duration, fn(&mut M) -> Vec<Action>);

    /// Every action the machine returned, with its virtual time.
    #[derive(Debug, Default)]
    pub(crate) struct Trace {
        pub(crate) log: Vec<(Duration, Action)>,
    }

    impl Trace {
        /// The times at which `action` was returned.
        pub(crate) fn times_of(&self, action: Action) -> Vec<Duration> {
            self.log
                .iter()
                .filter(|(_, a)| *a == action)
                .map(|(t, _)| *t)
                .collect()
        }

        /// When and why the machine terminated, if it did.
        pub(crate) fn termination(&self) -> Option<(Duration, TerminationReason)> {
            self.log.iter().find_map(|(t, a)| match a {
                Action::Terminated(r) => Some((*t, *r)),
                _ => None,
            })
        }
    }

    /// Milliseconds as durations, for terse expectations.
    pub(crate) fn ms(list: &[u64]) -> Vec<Duration> {
        list.iter().map(|m| Duration::from_millis(*m)).collect()
    }

    /// Upper bound on wake-ups, so a machine that keeps re-arming a timer
    /// forever fails the test instead of hanging it.
    const MAX_WAKES: usize = 10_000;

    /// Run `machine` from its `initial` actions until it terminates or has
    /// nothing left to wait for.
    pub(crate) async fn run<M: Machine>(
        machine: &mut M,
        initial: Vec<Action>,
        mut script: Vec<Event<M>>,
    ) -> Trace {
        let start = Instant::now();
        let mut timers = TimerSet::new();
        let mut trace = Trace::default();
        script.sort_by_key(|(at, _)| *at);
        let mut script = script.into_iter().peekable();
        if record(&mut trace, &mut timers, start, start, initial) {
            return trace;
        }
        for _ in 0..MAX_WAKES {
            let next_timer = timers.next_deadline().map(|(_, at)| at);
            let next_event = script.peek().map(|(at, _)| start + *at);
            let wake = match (next_timer, next_event) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => return trace,
            };
            sleep_until(wake).await;
            let now = Instant::now();
            while let Some((_, event)) = script.next_if(|(at, _)| start + *at <= now) {
                let actions = event(machine);
                if record(&mut trace, &mut timers, start, now, actions) {
                    return trace;
                }
            }
            while let Some(id) = timers.pop_expired(now) {
                let actions = machine.fire(id);
                if record(&mut trace, &mut timers, start, now, actions) {
                    return trace;
                }
            }
        }
        trace
    }

    /// Log `actions` and apply their timer requests; true once terminated.
    fn record(
        trace: &mut Trace,
        timers: &mut TimerSet,
        start: Instant,
        now: Instant,
        actions: Vec<Action>,
    ) -> bool {
        timers.apply(now, &actions);
        let terminated = actions.iter().any(|a| matches!(a, Action::Terminated(_)));
        let at = now - start;
        trace.log.extend(actions.into_iter().map(|a| (at, a)));
        terminated
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_timers_are_rfc_values() {
        let t = TimerConfig::default();
        assert_eq!(t.t1, Duration::from_millis(500));
        assert_eq!(t.t2, Duration::from_secs(4));
        assert_eq!(t.t4, Duration::from_secs(5));
        assert_eq!(t.timeout(), Duration::from_secs(32));
        assert_eq!(t.timer_d(), Duration::from_secs(32));
    }

    #[test]
    fn timer_d_never_below_32s_but_grows_with_t1() {
        let small = TimerConfig {
            t1: Duration::from_millis(100),
            ..TimerConfig::default()
        };
        assert_eq!(small.timer_d(), TIMER_D_MIN);
        let big = TimerConfig {
            t1: Duration::from_secs(1),
            ..TimerConfig::default()
        };
        assert_eq!(big.timer_d(), Duration::from_secs(64));
    }

    #[test]
    fn normalized_guards_zero_t1_and_small_t2() {
        let t = TimerConfig {
            t1: Duration::ZERO,
            t2: Duration::ZERO,
            t4: Duration::ZERO,
        }
        .normalized();
        assert_eq!(t.t1, Duration::from_millis(1));
        assert_eq!(t.t2, Duration::from_millis(1));
        assert_eq!(t.t4, Duration::ZERO);
    }

    #[test]
    fn huge_t1_saturates_instead_of_panicking() {
        let t = TimerConfig {
            t1: Duration::MAX,
            ..TimerConfig::default()
        };
        assert_eq!(t.timeout(), Duration::MAX);
        let (_, actions) = ClientInvite::new(false, t);
        assert!(actions.contains(&Action::StartTimer(TimerId::B, Duration::MAX)));
    }

    #[test]
    fn status_classes() {
        assert_eq!(StatusClass::of(99), None);
        assert_eq!(StatusClass::of(100), Some(StatusClass::Provisional));
        assert_eq!(StatusClass::of(199), Some(StatusClass::Provisional));
        assert_eq!(StatusClass::of(200), Some(StatusClass::Success));
        assert_eq!(StatusClass::of(299), Some(StatusClass::Success));
        assert_eq!(StatusClass::of(300), Some(StatusClass::Failure));
        assert_eq!(StatusClass::of(699), Some(StatusClass::Failure));
        assert_eq!(StatusClass::of(700), None);
    }

    #[test]
    fn timer_ids_index_matches_all() {
        for (i, id) in TimerId::ALL.iter().enumerate() {
            assert_eq!(id.index(), i);
        }
    }

    #[test]
    fn armed_cancels_only_running_timers() {
        let mut armed = Armed::default();
        let mut out = Vec::new();
        armed.cancel(&mut out, TimerId::A);
        assert!(out.is_empty());
        armed.start(&mut out, TimerId::A, Duration::from_millis(1));
        armed.start(&mut out, TimerId::Trying, Duration::from_millis(1));
        assert!(armed.fired(TimerId::A));
        assert!(!armed.fired(TimerId::A), "second expiry is stale");
        out.clear();
        armed.cancel_all(&mut out);
        assert_eq!(out, vec![Action::CancelTimer(TimerId::Trying)]);
    }
}
