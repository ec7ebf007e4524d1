//! Server INVITE transaction (RFC 3261 §17.2.1, with RFC 6026's Accepted
//! state).
//!
//! Answers one received INVITE. It sends `100 Trying` when the TU is slow
//! (200 ms), so the client stops retransmitting; answers retransmitted
//! INVITEs with the latest response; and, for a 300–699 final, retransmits
//! that final on UDP (Timer G, doubling up to T2) until the ACK arrives or
//! Timer H gives up. A 2xx is different: the dialog owns its retransmission
//! and its ACK, so RFC 6026's Accepted state only absorbs retransmitted
//! INVITEs (which must not start a new transaction) and passes ACKs to the
//! TU until Timer L. See the diagram in the [parent module](super).

use std::time::Duration;

use super::{Action, Armed, StatusClass, TerminationReason, TimerConfig, TimerId, TRYING_DELAY};

/// States of a server INVITE transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerInviteState {
    /// INVITE received; the TU has not sent a final response yet.
    Proceeding,
    /// A 300–699 final was sent; retransmitting it until the ACK.
    Completed,
    /// The ACK for the 300–699 final arrived; absorbing ACK retransmissions.
    Confirmed,
    /// A 2xx was sent (RFC 6026); absorbing INVITEs, passing ACKs up.
    Accepted,
    /// Over; the driver removes the transaction.
    Terminated,
}

/// A server INVITE transaction: feed it retransmitted requests, the TU's
/// responses, ACKs, timer expiries and transport errors; perform the
/// actions it returns.
#[derive(Debug, Clone)]
pub struct ServerInvite {
    state: ServerInviteState,
    reliable: bool,
    timers: TimerConfig,
    /// The interval Timer G was last started with.
    timer_g: Duration,
    /// Whether the TU has given a response the driver can resend; until it
    /// has, a retransmitted INVITE is answered with a 100 Trying.
    responded: bool,
    armed: Armed,
}

impl ServerInvite {
    /// Start the transaction for a just-received INVITE: arm the 200 ms
    /// Trying timer, so a slow TU still quenches the client's Timer A.
    pub fn new(reliable: bool, timers: TimerConfig) -> (Self, Vec<Action>) {
        let timers = timers.normalized();
        let mut tx = Self {
            state: ServerInviteState::Proceeding,
            reliable,
            timers,
            timer_g: timers.t1,
            responded: false,
            armed: Armed::default(),
        };
        let mut out = Vec::new();
        tx.armed.start(&mut out, TimerId::Trying, TRYING_DELAY);
        (tx, out)
    }

    /// The current state.
    pub fn state(&self) -> ServerInviteState {
        self.state
    }

    /// Whether the transaction is over.
    pub fn is_terminated(&self) -> bool {
        self.state == ServerInviteState::Terminated
    }

    /// The INVITE was received again.
    pub fn on_request_retransmission(&mut self) -> Vec<Action> {
        use ServerInviteState::*;
        let mut out = Vec::new();
        match self.state {
            Proceeding if self.responded => out.push(Action::SendLastResponse),
            Proceeding => {
                // The client is retransmitting, so quench it now; the 200 ms
                // timer would only repeat this 100.
                self.armed.cancel(&mut out, TimerId::Trying);
                out.push(Action::SendTrying);
            }
            Completed => out.push(Action::SendLastResponse),
            // Accepted absorbs (RFC 6026): 2xx retransmission is the
            // dialog's job. Confirmed and Terminated have nothing to add.
            Accepted | Confirmed | Terminated => {}
        }
        out
    }

    /// The TU gave a response with this status; the driver has stored it and
    /// sends it on [`Action::SendLastResponse`].
    pub fn on_tu_response(&mut self, status: u16) -> Vec<Action> {
        use ServerInviteState::*;
        let mut out = Vec::new();
        let Some(class) = StatusClass::of(status) else {
            return out;
        };
        match (self.state, class) {
            (Proceeding, StatusClass::Provisional) => {
                self.responded = true;
                self.armed.cancel(&mut out, TimerId::Trying);
                out.push(Action::SendLastResponse);
            }
            (Proceeding, StatusClass::Success) => {
                self.responded = true;
                self.armed.cancel(&mut out, TimerId::Trying);
                out.push(Action::SendLastResponse);
                self.state = Accepted;
                self.armed
                    .start(&mut out, TimerId::L, self.timers.timeout());
            }
            (Proceeding, StatusClass::Failure) => {
                self.responded = true;
                self.armed.cancel(&mut out, TimerId::Trying);
                out.push(Action::SendLastResponse);
                self.state = Completed;
                if !self.reliable {
                    self.timer_g = self.timers.t1;
                    self.armed.start(&mut out, TimerId::G, self.timer_g);
                }
                self.armed
                    .start(&mut out, TimerId::H, self.timers.timeout());
            }
            // The dialog retransmits its 2xx through us (RFC 6026).
            (Accepted, StatusClass::Success) => out.push(Action::SendLastResponse),
            // Anything else is a TU error (a second final, a 1xx after a
            // final); sending it would confuse the peer.
            _ => {}
        }
        out
    }

    /// An ACK matched this transaction.
    pub fn on_ack(&mut self) -> Vec<Action> {
        use ServerInviteState::*;
        let mut out = Vec::new();
        match self.state {
            Completed => {
                self.armed.cancel(&mut out, TimerId::G);
                self.armed.cancel(&mut out, TimerId::H);
                self.state = Confirmed;
                if self.reliable || self.timers.t4.is_zero() {
                    // No ACK retransmissions to absorb: Timer I is zero.
                    self.terminate(&mut out, TerminationReason::Completed);
                } else {
                    self.armed.start(&mut out, TimerId::I, self.timers.t4);
                }
            }
            // The ACK to a 2xx belongs to the dialog (RFC 6026).
            Accepted => out.push(Action::PassAckToTu),
            // Confirmed absorbs retransmitted ACKs; in Proceeding an ACK
            // acknowledges nothing.
            Proceeding | Confirmed | Terminated => {}
        }
        out
    }

    /// A timer this transaction started has fired.
    pub fn on_timer(&mut self, id: TimerId) -> Vec<Action> {
        use ServerInviteState::*;
        let mut out = Vec::new();
        if !self.armed.fired(id) {
            return out;
        }
        match (self.state, id) {
            (Proceeding, TimerId::Trying) if !self.responded => out.push(Action::SendTrying),
            (Completed, TimerId::G) => {
                out.push(Action::SendLastResponse);
                self.timer_g = self.timer_g.saturating_mul(2).min(self.timers.t2);
                self.armed.start(&mut out, TimerId::G, self.timer_g);
            }
            (Completed, TimerId::H) => self.terminate(&mut out, TerminationReason::Timeout),
            (Confirmed, TimerId::I) | (Accepted, TimerId::L) => {
                self.terminate(&mut out, TerminationReason::Completed)
            }
            _ => {}
        }
        out
    }

    /// The transport failed to send a response of this transaction.
    ///
    /// Ignored in Accepted: RFC 6026 says a failed 2xx send must not
    /// discard the transaction (Timer L ends it), or a retransmitted INVITE
    /// would be taken for a new call. Ignored in Confirmed: nothing is sent.
    pub fn on_transport_error(&mut self) -> Vec<Action> {
        use ServerInviteState::*;
        let mut out = Vec::new();
        if matches!(self.state, Proceeding | Completed) {
            self.terminate(&mut out, TerminationReason::TransportError);
        }
        out
    }

    fn terminate(&mut self, out: &mut Vec<Action>, reason: TerminationReason) {
        self.armed.cancel_all(out);
        self.state = ServerInviteState::Terminated;
        out.push(Action::Terminated(reason));
    }
}

#[cfg(test)]
mod tests {
    use super::super::driver::{ms, run, Event};
    use super::*;
    use Action::*;
    use ServerInviteState::{Accepted, Completed, Confirmed, Proceeding};

    const T1: Duration = Duration::from_millis(500);
    const T64: Duration = Duration::from_secs(32);

    fn udp() -> ServerInvite {
        ServerInvite::new(false, TimerConfig::default()).0
    }

    fn tcp() -> ServerInvite {
        ServerInvite::new(true, TimerConfig::default()).0
    }

    #[test]
    fn new_starts_trying_timer() {
        for reliable in [false, true] {
            let (tx, out) = ServerInvite::new(reliable, TimerConfig::default());
            assert_eq!(tx.state(), Proceeding);
            assert_eq!(out, vec![StartTimer(TimerId::Trying, TRYING_DELAY)]);
        }
    }

    #[test]
    fn trying_timer_sends_100_when_tu_silent() {
        let mut tx = udp();
        assert_eq!(tx.on_timer(TimerId::Trying), vec![SendTrying]);
        assert_eq!(tx.state(), Proceeding);
    }

    #[test]
    fn tu_provisional_sends_and_cancels_trying() {
        let mut tx = udp();
        assert_eq!(
            tx.on_tu_response(180),
            vec![CancelTimer(TimerId::Trying), SendLastResponse]
        );
        assert_eq!(tx.state(), Proceeding);
        assert!(tx.on_timer(TimerId::Trying).is_empty(), "stale Trying");
        assert_eq!(tx.on_tu_response(183), vec![SendLastResponse]);
    }

    #[test]
    fn retransmission_before_any_response_sends_trying() {
        let mut tx = udp();
        assert_eq!(
            tx.on_request_retransmission(),
            vec![CancelTimer(TimerId::Trying), SendTrying]
        );
        assert_eq!(tx.on_request_retransmission(), vec![SendTrying]);
        assert_eq!(tx.state(), Proceeding);
    }

    #[test]
    fn retransmission_after_provisional_resends_it() {
        let mut tx = udp();
        tx.on_tu_response(180);
        assert_eq!(tx.on_request_retransmission(), vec![SendLastResponse]);
    }

    #[test]
    fn tu_success_goes_accepted_with_l() {
        let mut tx = udp();
        assert_eq!(
            tx.on_tu_response(200),
            vec![
                CancelTimer(TimerId::Trying),
                SendLastResponse,
                StartTimer(TimerId::L, T64)
            ]
        );
        assert_eq!(tx.state(), Accepted);
    }

    #[test]
    fn accepted_absorbs_invite_passes_ack_and_resends_2xx() {
        let mut tx = udp();
        tx.on_tu_response(180);
        tx.on_tu_response(200);
        assert!(tx.on_request_retransmission().is_empty());
        assert_eq!(tx.on_ack(), vec![PassAckToTu]);
        assert_eq!(tx.on_ack(), vec![PassAckToTu]);
        assert_eq!(tx.on_tu_response(200), vec![SendLastResponse]);
        assert!(tx.on_tu_response(180).is_empty());
        assert!(tx.on_tu_response(486).is_empty());
        assert_eq!(tx.state(), Accepted);
    }

    #[test]
    fn timer_l_terminates_accepted() {
        let mut tx = udp();
        tx.on_tu_response(200);
        assert_eq!(
            tx.on_timer(TimerId::L),
            vec![Terminated(TerminationReason::Completed)]
        );
        assert!(tx.is_terminated());
    }

    #[test]
    fn tu_failure_unreliable_starts_g_and_h() {
        let mut tx = udp();
        assert_eq!(
            tx.on_tu_response(486),
            vec![
                CancelTimer(TimerId::Trying),
                SendLastResponse,
                StartTimer(TimerId::G, T1),
                StartTimer(TimerId::H, T64)
            ]
        );
        assert_eq!(tx.state(), Completed);
    }

    #[test]
    fn tu_failure_reliable_starts_only_h() {
        let mut tx = tcp();
        tx.on_tu_response(100);
        assert_eq!(
            tx.on_tu_response(603),
            vec![SendLastResponse, StartTimer(TimerId::H, T64)]
        );
        assert_eq!(tx.state(), Completed);
    }

    #[test]
    fn timer_g_doubles_up_to_t2() {
        let mut tx = udp();
        tx.on_tu_response(486);
        for expect in [1000, 2000, 4000, 4000, 4000] {
            assert_eq!(
                tx.on_timer(TimerId::G),
                vec![
                    SendLastResponse,
                    StartTimer(TimerId::G, Duration::from_millis(expect))
                ]
            );
        }
    }

    #[test]
    fn completed_resends_on_retransmission_and_ignores_tu() {
        let mut tx = udp();
        tx.on_tu_response(486);
        assert_eq!(tx.on_request_retransmission(), vec![SendLastResponse]);
        assert!(tx.on_tu_response(200).is_empty());
        assert!(tx.on_tu_response(500).is_empty());
        assert_eq!(tx.state(), Completed);
    }

    #[test]
    fn timer_h_times_out_without_ack() {
        let mut tx = udp();
        tx.on_tu_response(486);
        assert_eq!(
            tx.on_timer(TimerId::H),
            vec![
                CancelTimer(TimerId::G),
                Terminated(TerminationReason::Timeout)
            ]
        );
        assert!(tx.is_terminated());
    }

    #[test]
    fn ack_in_completed_confirms_and_starts_i() {
        let mut tx = udp();
        tx.on_tu_response(486);
        assert_eq!(
            tx.on_ack(),
            vec![
                CancelTimer(TimerId::G),
                CancelTimer(TimerId::H),
                StartTimer(TimerId::I, Duration::from_secs(5))
            ]
        );
        assert_eq!(tx.state(), Confirmed);
    }

    #[test]
    fn ack_reliable_terminates_at_once() {
        let mut tx = tcp();
        tx.on_tu_response(486);
        assert_eq!(
            tx.on_ack(),
            vec![
                CancelTimer(TimerId::H),
                Terminated(TerminationReason::Completed)
            ]
        );
        assert!(tx.is_terminated());
    }

    #[test]
    fn confirmed_absorbs_ack_and_invite() {
        let mut tx = udp();
        tx.on_tu_response(486);
        tx.on_ack();
        assert!(tx.on_ack().is_empty());
        assert!(tx.on_request_retransmission().is_empty());
        assert!(tx.on_transport_error().is_empty());
        assert_eq!(tx.state(), Confirmed);
    }

    #[test]
    fn timer_i_terminates_confirmed() {
        let mut tx = udp();
        tx.on_tu_response(486);
        tx.on_ack();
        assert_eq!(
            tx.on_timer(TimerId::I),
            vec![Terminated(TerminationReason::Completed)]
        );
    }

    #[test]
    fn ack_in_proceeding_ignored() {
        let mut tx = udp();
        assert!(tx.on_ack().is_empty());
        assert_eq!(tx.state(), Proceeding);
    }

    #[test]
    fn transport_error_terminates_proceeding_and_completed() {
        let mut tx = udp();
        assert_eq!(
            tx.on_transport_error(),
            vec![
                CancelTimer(TimerId::Trying),
                Terminated(TerminationReason::TransportError)
            ]
        );
        let mut tx = udp();
        tx.on_tu_response(486);
        assert_eq!(
            tx.on_transport_error(),
            vec![
                CancelTimer(TimerId::G),
                CancelTimer(TimerId::H),
                Terminated(TerminationReason::TransportError)
            ]
        );
    }

    #[test]
    fn transport_error_in_accepted_is_ignored() {
        let mut tx = udp();
        tx.on_tu_response(200);
        assert!(tx.on_transport_error().is_empty());
        assert_eq!(tx.state(), Accepted);
    }

    #[test]
    fn terminated_ignores_everything() {
        let mut tx = udp();
        tx.on_transport_error();
        assert!(tx.on_request_retransmission().is_empty());
        assert!(tx.on_tu_response(200).is_empty());
        assert!(tx.on_ack().is_empty());
        assert!(tx.on_timer(TimerId::Trying).is_empty());
        assert!(tx.on_transport_error().is_empty());
        assert!(tx.is_terminated());
    }

    #[test]
    fn invalid_status_ignored() {
        let mut tx = udp();
        assert!(tx.on_tu_response(42).is_empty());
        assert!(tx.on_tu_response(700).is_empty());
        assert_eq!(tx.on_timer(TimerId::Trying), vec![SendTrying]);
    }

    #[tokio::test(start_paused = true)]
    async fn failure_without_ack_retransmits_capped_and_times_out() {
        let (mut tx, init) = ServerInvite::new(false, TimerConfig::default());
        let script: Vec<Event<ServerInvite>> = vec![(Duration::ZERO, |tx| tx.on_tu_response(486))];
        let trace = run(&mut tx, init, script).await;
        assert_eq!(
            trace.times_of(SendLastResponse),
            ms(&[0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500])
        );
        assert!(trace.times_of(SendTrying).is_empty());
        assert_eq!(
            trace.termination(),
            Some((Duration::from_secs(32), TerminationReason::Timeout))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn failure_reliable_never_retransmits() {
        let (mut tx, init) = ServerInvite::new(true, TimerConfig::default());
        let script: Vec<Event<ServerInvite>> = vec![(Duration::ZERO, |tx| tx.on_tu_response(486))];
        let trace = run(&mut tx, init, script).await;
        assert_eq!(trace.times_of(SendLastResponse), ms(&[0]));
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
        let (mut tx, init) = ServerInvite::new(false, cfg);
        let script: Vec<Event<ServerInvite>> = vec![(Duration::ZERO, |tx| tx.on_tu_response(486))];
        let trace = run(&mut tx, init, script).await;
        assert_eq!(
            trace.times_of(SendLastResponse),
            ms(&[0, 100, 300, 700, 1500, 2300, 3100, 3900, 4700, 5500, 6300])
        );
        assert_eq!(
            trace.termination(),
            Some((Duration::from_millis(6400), TerminationReason::Timeout))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn ack_stops_retransmissions_then_timer_i() {
        let (mut tx, init) = ServerInvite::new(false, TimerConfig::default());
        let script: Vec<Event<ServerInvite>> = vec![
            (Duration::ZERO, |tx| tx.on_tu_response(486)),
            (Duration::from_secs(2), |tx| tx.on_ack()),
        ];
        let trace = run(&mut tx, init, script).await;
        assert_eq!(trace.times_of(SendLastResponse), ms(&[0, 500, 1500]));
        assert_eq!(
            trace.termination(),
            Some((Duration::from_secs(7), TerminationReason::Completed))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn trying_sent_at_200ms_when_tu_silent() {
        let (mut tx, init) = ServerInvite::new(false, TimerConfig::default());
        let script: Vec<Event<ServerInvite>> =
            vec![(Duration::from_secs(1), |tx| tx.on_tu_response(200))];
        let trace = run(&mut tx, init, script).await;
        assert_eq!(trace.times_of(SendTrying), ms(&[200]));
        assert_eq!(trace.times_of(SendLastResponse), ms(&[1000]));
        assert_eq!(
            trace.termination(),
            Some((Duration::from_secs(33), TerminationReason::Completed))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn trying_not_sent_when_tu_answers_first() {
        let (mut tx, init) = ServerInvite::new(false, TimerConfig::default());
        let script: Vec<Event<ServerInvite>> = vec![
            (Duration::from_millis(150), |tx| tx.on_tu_response(180)),
            (Duration::from_secs(3), |tx| tx.on_tu_response(200)),
        ];
        let trace = run(&mut tx, init, script).await;
        assert!(trace.times_of(SendTrying).is_empty());
        assert_eq!(trace.times_of(SendLastResponse), ms(&[150, 3000]));
    }

    #[tokio::test(start_paused = true)]
    async fn trying_not_sent_when_tu_answers_final_first() {
        let (mut tx, init) = ServerInvite::new(true, TimerConfig::default());
        let script: Vec<Event<ServerInvite>> = vec![
            (Duration::from_millis(50), |tx| tx.on_tu_response(486)),
            (Duration::from_millis(80), |tx| tx.on_ack()),
        ];
        let trace = run(&mut tx, init, script).await;
        assert!(trace.times_of(SendTrying).is_empty());
        assert_eq!(
            trace.termination(),
            Some((Duration::from_millis(80), TerminationReason::Completed))
        );
    }
}
