//! Client INVITE transaction (RFC 3261 §17.1.1, with RFC 6026's Accepted
//! state).
//!
//! Sends an INVITE and reliably delivers its responses to the TU. On UDP it
//! retransmits with Timer A, doubling each time with no cap: INVITE answers
//! can take human time, and after the first provisional response the server
//! quenches us anyway. A non-2xx final response is ACKed here, inside the
//! transaction; a 2xx is *not* (the dialog ACKs it end to end), so RFC 6026's
//! Accepted state keeps the transaction alive for 64·T1 only to pass
//! retransmitted or forked 2xx responses up to the TU, instead of letting
//! them arrive as strays. See the diagram in the [parent module](super).

use std::time::Duration;

use super::{Action, Armed, StatusClass, TerminationReason, TimerConfig, TimerId};

/// States of a client INVITE transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientInviteState {
    /// INVITE sent, no response yet; retransmitting on UDP.
    Calling,
    /// A provisional response arrived; waiting for a final one.
    Proceeding,
    /// A 300–699 final arrived and was ACKed; absorbing its retransmissions.
    Completed,
    /// A 2xx arrived (RFC 6026); passing further 2xx up until Timer M.
    Accepted,
    /// Over; the driver removes the transaction.
    Terminated,
}

/// A client INVITE transaction: feed it responses, timer expiries and
/// transport errors; perform the actions it returns.
#[derive(Debug, Clone)]
pub struct ClientInvite {
    state: ClientInviteState,
    reliable: bool,
    timers: TimerConfig,
    /// The interval Timer A was last started with; doubled on each expiry.
    timer_a: Duration,
    armed: Armed,
}

impl ClientInvite {
    /// Start the transaction: the INVITE goes out at once, Timer A (T1, UDP
    /// only) schedules its retransmission and Timer B (64·T1) bounds the
    /// wait for any response.
    pub fn new(reliable: bool, timers: TimerConfig) -> (Self, Vec<Action>) {
        let timers = timers.normalized();
        let mut tx = Self {
            state: ClientInviteState::Calling,
            reliable,
            timers,
            timer_a: timers.t1,
            armed: Armed::default(),
        };
        let mut out = vec![Action::SendRequest];
        if !reliable {
            tx.armed.start(&mut out, TimerId::A, timers.t1);
        }
        tx.armed.start(&mut out, TimerId::B, timers.timeout());
        (tx, out)
    }

    /// The current state.
    pub fn state(&self) -> ClientInviteState {
        self.state
    }

    /// Whether the transaction is over.
    pub fn is_terminated(&self) -> bool {
        self.state == ClientInviteState::Terminated
    }

    /// A response with this status matched the transaction.
    pub fn on_response(&mut self, status: u16) -> Vec<Action> {
        use ClientInviteState::*;
        let mut out = Vec::new();
        let Some(class) = StatusClass::of(status) else {
            return out;
        };
        match (self.state, class) {
            (Calling | Proceeding, StatusClass::Provisional) => {
                // Stop A: the server has the request and will retransmit its
                // own final response. Stop B: it only bounds Calling, the TU
                // decides how long to ring (CANCEL, Timer C at proxies).
                self.stop_calling_timers(&mut out);
                self.state = Proceeding;
                out.push(Action::PassToTu);
            }
            (Calling | Proceeding, StatusClass::Success) => {
                self.stop_calling_timers(&mut out);
                self.state = Accepted;
                out.push(Action::PassToTu);
                self.armed
                    .start(&mut out, TimerId::M, self.timers.timeout());
            }
            (Calling | Proceeding, StatusClass::Failure) => {
                self.stop_calling_timers(&mut out);
                self.state = Completed;
                out.push(Action::SendAck);
                out.push(Action::PassToTu);
                if self.reliable {
                    // No retransmissions of the final can arrive on a
                    // reliable transport: Timer D is zero.
                    self.terminate(&mut out, TerminationReason::Completed);
                } else {
                    self.armed
                        .start(&mut out, TimerId::D, self.timers.timer_d());
                }
            }
            // The server retransmits its final because our ACK was lost:
            // ACK again, but the TU has already seen this response.
            (Completed, StatusClass::Failure) => out.push(Action::SendAck),
            // Retransmitted or forked 2xx: the dialog must see each one to
            // ACK it (RFC 6026).
            (Accepted, StatusClass::Success) => out.push(Action::PassToTu),
            _ => {}
        }
        out
    }

    /// A timer this transaction started has fired.
    pub fn on_timer(&mut self, id: TimerId) -> Vec<Action> {
        use ClientInviteState::*;
        let mut out = Vec::new();
        if !self.armed.fired(id) {
            return out;
        }
        match (self.state, id) {
            (Calling, TimerId::A) => {
                out.push(Action::SendRequest);
                self.timer_a = self.timer_a.saturating_mul(2);
                self.armed.start(&mut out, TimerId::A, self.timer_a);
            }
            (Calling, TimerId::B) => self.terminate(&mut out, TerminationReason::Timeout),
            (Completed, TimerId::D) | (Accepted, TimerId::M) => {
                self.terminate(&mut out, TerminationReason::Completed)
            }
            _ => {}
        }
        out
    }

    /// The transport failed to send this transaction's INVITE or ACK.
    ///
    /// Ignored in Accepted: the transaction sends nothing there (the 2xx ACK
    /// is the dialog's), and ending early would hide retransmitted 2xx from
    /// the dialog that must ACK them.
    pub fn on_transport_error(&mut self) -> Vec<Action> {
        use ClientInviteState::*;
        let mut out = Vec::new();
        if matches!(self.state, Calling | Proceeding | Completed) {
            self.terminate(&mut out, TerminationReason::TransportError);
        }
        out
    }

    fn stop_calling_timers(&mut self, out: &mut Vec<Action>) {
        self.armed.cancel(out, TimerId::A);
        self.armed.cancel(out, TimerId::B);
    }

    fn terminate(&mut self, out: &mut Vec<Action>, reason: TerminationReason) {
        self.armed.cancel_all(out);
        self.state = ClientInviteState::Terminated;
        out.push(Action::Terminated(reason));
    }
}

#[cfg(test)]
mod tests {
    use super::super::driver::{ms, run, Event};
    use super::*;
    use Action::*;
    use ClientInviteState::{Accepted, Calling, Completed, Proceeding};

    fn udp() -> ClientInvite {
        ClientInvite::new(false, TimerConfig::default()).0
    }

    fn tcp() -> ClientInvite {
        ClientInvite::new(true, TimerConfig::default()).0
    }

    const T1: Duration = Duration::from_millis(500);
    const T64: Duration = Duration::from_secs(32);

    #[test]
    fn new_unreliable_sends_and_starts_a_and_b() {
        let (tx, out) = ClientInvite::new(false, TimerConfig::default());
        assert_eq!(tx.state(), Calling);
        assert_eq!(
            out,
            vec![
                SendRequest,
                StartTimer(TimerId::A, T1),
                StartTimer(TimerId::B, T64)
            ]
        );
    }

    #[test]
    fn new_reliable_has_no_timer_a() {
        let (tx, out) = ClientInvite::new(true, TimerConfig::default());
        assert_eq!(tx.state(), Calling);
        assert_eq!(out, vec![SendRequest, StartTimer(TimerId::B, T64)]);
    }

    #[test]
    fn timer_a_doubles_without_cap() {
        let mut tx = udp();
        let mut expect = T1;
        for _ in 0..8 {
            expect *= 2;
            assert_eq!(
                tx.on_timer(TimerId::A),
                vec![SendRequest, StartTimer(TimerId::A, expect)]
            );
        }
        assert!(expect > TimerConfig::default().t2, "no T2 cap for INVITE");
        assert_eq!(tx.state(), Calling);
    }

    #[test]
    fn timer_b_in_calling_times_out() {
        let mut tx = udp();
        assert_eq!(
            tx.on_timer(TimerId::B),
            vec![
                CancelTimer(TimerId::A),
                Terminated(TerminationReason::Timeout)
            ]
        );
        assert!(tx.is_terminated());
    }

    #[test]
    fn provisional_in_calling_goes_proceeding_and_stops_a_and_b() {
        let mut tx = udp();
        assert_eq!(
            tx.on_response(180),
            vec![CancelTimer(TimerId::A), CancelTimer(TimerId::B), PassToTu]
        );
        assert_eq!(tx.state(), Proceeding);
        assert!(tx.on_timer(TimerId::A).is_empty(), "stale A ignored");
        assert!(tx.on_timer(TimerId::B).is_empty(), "stale B ignored");
    }

    #[test]
    fn provisional_in_proceeding_passed_up() {
        let mut tx = udp();
        tx.on_response(100);
        assert_eq!(tx.on_response(183), vec![PassToTu]);
        assert_eq!(tx.state(), Proceeding);
    }

    #[test]
    fn failure_in_calling_acks_passes_up_and_starts_d() {
        let mut tx = udp();
        assert_eq!(
            tx.on_response(486),
            vec![
                CancelTimer(TimerId::A),
                CancelTimer(TimerId::B),
                SendAck,
                PassToTu,
                StartTimer(TimerId::D, Duration::from_secs(32)),
            ]
        );
        assert_eq!(tx.state(), Completed);
    }

    #[test]
    fn failure_in_proceeding_acks_passes_up_and_starts_d() {
        let mut tx = udp();
        tx.on_response(180);
        assert_eq!(
            tx.on_response(603),
            vec![
                SendAck,
                PassToTu,
                StartTimer(TimerId::D, Duration::from_secs(32))
            ]
        );
        assert_eq!(tx.state(), Completed);
    }

    #[test]
    fn failure_reliable_terminates_at_once() {
        let mut tx = tcp();
        assert_eq!(
            tx.on_response(404),
            vec![
                CancelTimer(TimerId::B),
                SendAck,
                PassToTu,
                Terminated(TerminationReason::Completed)
            ]
        );
        assert!(tx.is_terminated());
    }

    #[test]
    fn retransmitted_failure_in_completed_is_acked_not_passed_up() {
        let mut tx = udp();
        tx.on_response(486);
        assert_eq!(tx.on_response(486), vec![SendAck]);
        assert_eq!(tx.state(), Completed);
    }

    #[test]
    fn completed_ignores_provisional_and_success() {
        let mut tx = udp();
        tx.on_response(486);
        assert!(tx.on_response(180).is_empty());
        assert!(tx.on_response(200).is_empty());
        assert_eq!(tx.state(), Completed);
    }

    #[test]
    fn timer_d_terminates_completed() {
        let mut tx = udp();
        tx.on_response(486);
        assert_eq!(
            tx.on_timer(TimerId::D),
            vec![Terminated(TerminationReason::Completed)]
        );
        assert!(tx.is_terminated());
    }

    #[test]
    fn success_in_calling_goes_accepted_with_m() {
        let mut tx = udp();
        assert_eq!(
            tx.on_response(200),
            vec![
                CancelTimer(TimerId::A),
                CancelTimer(TimerId::B),
                PassToTu,
                StartTimer(TimerId::M, T64)
            ]
        );
        assert_eq!(tx.state(), Accepted);
    }

    #[test]
    fn success_in_proceeding_goes_accepted_with_m() {
        let mut tx = tcp();
        tx.on_response(180);
        assert_eq!(
            tx.on_response(202),
            vec![PassToTu, StartTimer(TimerId::M, T64)]
        );
        assert_eq!(tx.state(), Accepted);
    }

    #[test]
    fn accepted_passes_further_2xx_up_and_ignores_others() {
        let mut tx = udp();
        tx.on_response(200);
        assert_eq!(tx.on_response(200), vec![PassToTu]);
        assert!(tx.on_response(180).is_empty());
        assert!(tx.on_response(500).is_empty());
        assert_eq!(tx.state(), Accepted);
    }

    #[test]
    fn timer_m_terminates_accepted() {
        let mut tx = udp();
        tx.on_response(200);
        assert_eq!(
            tx.on_timer(TimerId::M),
            vec![Terminated(TerminationReason::Completed)]
        );
        assert!(tx.is_terminated());
    }

    #[test]
    fn transport_error_terminates_calling_proceeding_completed() {
        let mut tx = udp();
        assert_eq!(
            tx.on_transport_error(),
            vec![
                CancelTimer(TimerId::A),
                CancelTimer(TimerId::B),
                Terminated(TerminationReason::TransportError)
            ]
        );
        let mut tx = udp();
        tx.on_response(180);
        assert_eq!(
            tx.on_transport_error(),
            vec![Terminated(TerminationReason::TransportError)]
        );
        let mut tx = udp();
        tx.on_response(486);
        assert_eq!(
            tx.on_transport_error(),
            vec![
                CancelTimer(TimerId::D),
                Terminated(TerminationReason::TransportError)
            ]
        );
    }

    #[test]
    fn transport_error_in_accepted_is_ignored() {
        let mut tx = udp();
        tx.on_response(200);
        assert!(tx.on_transport_error().is_empty());
        assert_eq!(tx.state(), Accepted);
    }

    #[test]
    fn terminated_ignores_everything() {
        let mut tx = udp();
        tx.on_timer(TimerId::B);
        assert!(tx.on_response(200).is_empty());
        assert!(tx.on_response(486).is_empty());
        assert!(tx.on_timer(TimerId::A).is_empty());
        assert!(tx.on_transport_error().is_empty());
        assert!(tx.is_terminated());
    }

    #[test]
    fn invalid_status_and_foreign_timers_ignored() {
        let mut tx = udp();
        assert!(tx.on_response(0).is_empty());
        assert!(tx.on_response(99).is_empty());
        assert!(tx.on_response(700).is_empty());
        assert!(tx.on_timer(TimerId::G).is_empty());
        assert!(tx.on_timer(TimerId::D).is_empty());
        assert_eq!(tx.state(), Calling);
    }

    #[tokio::test(start_paused = true)]
    async fn udp_no_response_retransmits_then_times_out_at_64_t1() {
        let (mut tx, init) = ClientInvite::new(false, TimerConfig::default());
        let trace = run(&mut tx, init, vec![]).await;
        assert_eq!(
            trace.times_of(SendRequest),
            ms(&[0, 500, 1500, 3500, 7500, 15500, 31500])
        );
        assert_eq!(
            trace.termination(),
            Some((Duration::from_secs(32), TerminationReason::Timeout))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn reliable_no_response_sends_once_then_times_out() {
        let (mut tx, init) = ClientInvite::new(true, TimerConfig::default());
        let trace = run(&mut tx, init, vec![]).await;
        assert_eq!(trace.times_of(SendRequest), ms(&[0]));
        assert_eq!(
            trace.termination(),
            Some((Duration::from_secs(32), TerminationReason::Timeout))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn t1_100ms_scales_retransmissions_and_timeout() {
        let cfg = TimerConfig {
            t1: Duration::from_millis(100),
            t2: Duration::from_millis(800),
            t4: Duration::from_secs(1),
        };
        let (mut tx, init) = ClientInvite::new(false, cfg);
        let trace = run(&mut tx, init, vec![]).await;
        assert_eq!(
            trace.times_of(SendRequest),
            ms(&[0, 100, 300, 700, 1500, 3100, 6300])
        );
        assert_eq!(
            trace.termination(),
            Some((Duration::from_millis(6400), TerminationReason::Timeout))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn provisional_stops_retransmissions() {
        let (mut tx, init) = ClientInvite::new(false, TimerConfig::default());
        let script: Vec<Event<ClientInvite>> = vec![
            (Duration::from_millis(1000), |tx| tx.on_response(180)),
            (Duration::from_secs(60), |tx| tx.on_response(486)),
        ];
        let trace = run(&mut tx, init, script).await;
        assert_eq!(trace.times_of(SendRequest), ms(&[0, 500]));
        assert_eq!(trace.times_of(SendAck), ms(&[60_000]));
        assert_eq!(
            trace.termination(),
            Some((Duration::from_secs(92), TerminationReason::Completed))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn accepted_lasts_64_t1() {
        let (mut tx, init) = ClientInvite::new(false, TimerConfig::default());
        let script: Vec<Event<ClientInvite>> =
            vec![(Duration::from_millis(700), |tx| tx.on_response(200))];
        let trace = run(&mut tx, init, script).await;
        assert_eq!(trace.times_of(SendRequest), ms(&[0, 500]));
        assert_eq!(
            trace.termination(),
            Some((Duration::from_millis(32_700), TerminationReason::Completed))
        );
    }
}
