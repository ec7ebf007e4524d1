//! Server non-INVITE transaction (RFC 3261 §17.2.2).
//!
//! Answers one received non-INVITE request. It never retransmits on its own:
//! the client's Timer E drives retransmission, and each retransmitted request
//! is answered with the latest response the TU gave. Until the TU has said
//! anything there is nothing to resend, so retransmissions are absorbed
//! (no automatic 100 here: RFC 4320 restricts when a non-INVITE may get one,
//! so that choice is the TU's). After the
//! final response, Timer J (64·T1) keeps answering retransmissions for as
//! long as the client may still send them. See the diagram in the
//! [parent module](super).

use super::{Action, Armed, StatusClass, TerminationReason, TimerConfig, TimerId};

/// States of a server non-INVITE transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerNonInviteState {
    /// Request received; the TU has not responded yet.
    Trying,
    /// The TU sent a provisional response.
    Proceeding,
    /// The TU sent the final response; answering retransmissions with it.
    Completed,
    /// Over; the driver removes the transaction.
    Terminated,
}

/// A server non-INVITE transaction: feed it retransmitted requests, the TU's
/// responses, timer expiries and transport errors; perform the actions it
/// returns.
#[derive(Debug, Clone)]
pub struct ServerNonInvite {
    state: ServerNonInviteState,
    reliable: bool,
    timers: TimerConfig,
    armed: Armed,
}

impl ServerNonInvite {
    /// Start the transaction for a just-received request. There is nothing
    /// to do yet; the (empty) action list keeps the constructor shaped like
    /// the other three machines'.
    pub fn new(reliable: bool, timers: TimerConfig) -> (Self, Vec<Action>) {
        let tx = Self {
            state: ServerNonInviteState::Trying,
            reliable,
            timers: timers.normalized(),
            armed: Armed::default(),
        };
        (tx, Vec::new())
    }

    /// The current state.
    pub fn state(&self) -> ServerNonInviteState {
        self.state
    }

    /// Whether the transaction is over.
    pub fn is_terminated(&self) -> bool {
        self.state == ServerNonInviteState::Terminated
    }

    /// The request was received again.
    pub fn on_request_retransmission(&mut self) -> Vec<Action> {
        use ServerNonInviteState::*;
        match self.state {
            Proceeding | Completed => vec![Action::SendLastResponse],
            Trying | Terminated => Vec::new(),
        }
    }

    /// The TU gave a response with this status; the driver has stored it and
    /// sends it on [`Action::SendLastResponse`].
    pub fn on_tu_response(&mut self, status: u16) -> Vec<Action> {
        use ServerNonInviteState::*;
        let mut out = Vec::new();
        let Some(class) = StatusClass::of(status) else {
            return out;
        };
        match (self.state, class) {
            (Trying | Proceeding, StatusClass::Provisional) => {
                self.state = Proceeding;
                out.push(Action::SendLastResponse);
            }
            (Trying | Proceeding, StatusClass::Success | StatusClass::Failure) => {
                self.state = Completed;
                out.push(Action::SendLastResponse);
                if self.reliable {
                    // No retransmitted requests will come: Timer J is zero.
                    self.terminate(&mut out, TerminationReason::Completed);
                } else {
                    self.armed
                        .start(&mut out, TimerId::J, self.timers.timeout());
                }
            }
            // Completed discards any further response from the TU
            // (RFC 3261 §17.2.2): the peer already has the final one.
            _ => {}
        }
        out
    }

    /// A timer this transaction started has fired.
    pub fn on_timer(&mut self, id: TimerId) -> Vec<Action> {
        let mut out = Vec::new();
        if self.armed.fired(id) && self.state == ServerNonInviteState::Completed && id == TimerId::J
        {
            self.terminate(&mut out, TerminationReason::Completed);
        }
        out
    }

    /// The transport failed to send a response of this transaction. Ignored
    /// in Trying, where the transaction has sent nothing.
    pub fn on_transport_error(&mut self) -> Vec<Action> {
        use ServerNonInviteState::*;
        let mut out = Vec::new();
        if matches!(self.state, Proceeding | Completed) {
            self.terminate(&mut out, TerminationReason::TransportError);
        }
        out
    }

    fn terminate(&mut self, out: &mut Vec<Action>, reason: TerminationReason) {
        self.armed.cancel_all(out);
        self.state = ServerNonInviteState::Terminated;
        out.push(Action::Terminated(reason));
    }
}

#[cfg(test)]
mod tests {
    use super::super::driver::{ms, run, Event};
    use super::*;
    use std::time::Duration;
    use Action::*;
    use ServerNonInviteState::{Completed, Proceeding, Trying};

    const T64: Duration = Duration::from_secs(32);

    fn udp() -> ServerNonInvite {
        ServerNonInvite::new(false, TimerConfig::default()).0
    }

    fn tcp() -> ServerNonInvite {
        ServerNonInvite::new(true, TimerConfig::default()).0
    }

    #[test]
    fn new_does_nothing() {
        let (tx, out) = ServerNonInvite::new(false, TimerConfig::default());
        assert_eq!(tx.state(), Trying);
        assert!(out.is_empty());
    }

    #[test]
    fn retransmission_in_trying_absorbed() {
        let mut tx = udp();
        assert!(tx.on_request_retransmission().is_empty());
        assert_eq!(tx.state(), Trying);
    }

    #[test]
    fn tu_provisional_sends_and_proceeds() {
        let mut tx = udp();
        assert_eq!(tx.on_tu_response(100), vec![SendLastResponse]);
        assert_eq!(tx.state(), Proceeding);
        assert_eq!(tx.on_tu_response(180), vec![SendLastResponse]);
        assert_eq!(tx.state(), Proceeding);
    }

    #[test]
    fn retransmission_in_proceeding_resends() {
        let mut tx = udp();
        tx.on_tu_response(100);
        assert_eq!(tx.on_request_retransmission(), vec![SendLastResponse]);
    }

    #[test]
    fn tu_final_from_trying_completes_with_j() {
        let mut tx = udp();
        assert_eq!(
            tx.on_tu_response(200),
            vec![SendLastResponse, StartTimer(TimerId::J, T64)]
        );
        assert_eq!(tx.state(), Completed);
    }

    #[test]
    fn tu_final_from_proceeding_completes_with_j() {
        let mut tx = udp();
        tx.on_tu_response(100);
        assert_eq!(
            tx.on_tu_response(404),
            vec![SendLastResponse, StartTimer(TimerId::J, T64)]
        );
        assert_eq!(tx.state(), Completed);
    }

    #[test]
    fn tu_final_reliable_terminates_at_once() {
        let mut tx = tcp();
        assert_eq!(
            tx.on_tu_response(200),
            vec![SendLastResponse, Terminated(TerminationReason::Completed)]
        );
        assert!(tx.is_terminated());
    }

    #[test]
    fn completed_resends_on_retransmission_and_discards_tu() {
        let mut tx = udp();
        tx.on_tu_response(200);
        assert_eq!(tx.on_request_retransmission(), vec![SendLastResponse]);
        assert!(tx.on_tu_response(500).is_empty());
        assert!(tx.on_tu_response(180).is_empty());
        assert_eq!(tx.state(), Completed);
    }

    #[test]
    fn timer_j_terminates_completed() {
        let mut tx = udp();
        tx.on_tu_response(200);
        assert!(tx.on_timer(TimerId::K).is_empty(), "foreign timer");
        assert_eq!(
            tx.on_timer(TimerId::J),
            vec![Terminated(TerminationReason::Completed)]
        );
        assert!(tx.is_terminated());
    }

    #[test]
    fn transport_error_terminates_after_sending() {
        let mut tx = udp();
        assert!(tx.on_transport_error().is_empty(), "Trying sent nothing");
        tx.on_tu_response(100);
        assert_eq!(
            tx.on_transport_error(),
            vec![Terminated(TerminationReason::TransportError)]
        );
        let mut tx = udp();
        tx.on_tu_response(200);
        assert_eq!(
            tx.on_transport_error(),
            vec![
                CancelTimer(TimerId::J),
                Terminated(TerminationReason::TransportError)
            ]
        );
    }

    #[test]
    fn terminated_and_invalid_inputs_ignored() {
        let mut tx = udp();
        assert!(tx.on_tu_response(7).is_empty());
        assert!(tx.on_timer(TimerId::J).is_empty(), "J not running");
        assert_eq!(tx.state(), Trying);
        tx.on_tu_response(200);
        tx.on_timer(TimerId::J);
        assert!(tx.on_request_retransmission().is_empty());
        assert!(tx.on_tu_response(200).is_empty());
        assert!(tx.on_transport_error().is_empty());
        assert!(tx.is_terminated());
    }

    #[tokio::test(start_paused = true)]
    async fn answers_retransmissions_until_j() {
        let (mut tx, init) = ServerNonInvite::new(false, TimerConfig::default());
        let script: Vec<Event<ServerNonInvite>> = vec![
            (Duration::ZERO, |tx| tx.on_request_retransmission()),
            (Duration::from_millis(100), |tx| tx.on_tu_response(200)),
            (Duration::from_millis(500), |tx| {
                tx.on_request_retransmission()
            }),
        ];
        let trace = run(&mut tx, init, script).await;
        assert_eq!(trace.times_of(SendLastResponse), ms(&[100, 500]));
        assert_eq!(
            trace.termination(),
            Some((Duration::from_millis(32_100), TerminationReason::Completed))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn reliable_final_ends_immediately() {
        let (mut tx, init) = ServerNonInvite::new(true, TimerConfig::default());
        let script: Vec<Event<ServerNonInvite>> =
            vec![(Duration::from_millis(100), |tx| tx.on_tu_response(200))];
        let trace = run(&mut tx, init, script).await;
        assert_eq!(trace.times_of(SendLastResponse), ms(&[100]));
        assert_eq!(
            trace.termination(),
            Some((Duration::from_millis(100), TerminationReason::Completed))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn t1_100ms_scales_timer_j() {
        let cfg = TimerConfig {
            t1: Duration::from_millis(100),
            t2: Duration::from_millis(800),
            t4: Duration::from_secs(1),
        };
        let (mut tx, init) = ServerNonInvite::new(false, cfg);
        let script: Vec<Event<ServerNonInvite>> =
            vec![(Duration::ZERO, |tx| tx.on_tu_response(200))];
        let trace = run(&mut tx, init, script).await;
        assert_eq!(
            trace.termination(),
            Some((Duration::from_millis(6400), TerminationReason::Completed))
        );
    }
}
