//! Client non-INVITE transaction (RFC 3261 §17.1.2).
//!
//! Sends a request other than INVITE or ACK (REGISTER, BYE, OPTIONS, …) and
//! delivers its responses to the TU. Non-INVITE requests are expected to be
//! answered promptly, so on UDP Timer E retransmits with doubling intervals
//! capped at T2, and keeps retransmitting at T2 even after a provisional
//! response (unlike INVITE, a 1xx here does not promise the server will
//! retransmit a final). Timer F bounds the whole exchange at 64·T1. After the
//! final response, Timer K (T4) absorbs its retransmissions. See the diagram
//! in the [parent module](super).

use std::time::Duration;

use super::{Action, Armed, StatusClass, TerminationReason, TimerConfig, TimerId};

/// States of a client non-INVITE transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientNonInviteState {
    /// Request sent, no response yet.
    Trying,
    /// A provisional response arrived; still waiting for a final one.
    Proceeding,
    /// The final response arrived; absorbing its retransmissions.
    Completed,
    /// Over; the driver removes the transaction.
    Terminated,
}

/// A client non-INVITE transaction: feed it responses, timer expiries and
/// transport errors; perform the actions it returns.
#[derive(Debug, Clone)]
pub struct ClientNonInvite {
    state: ClientNonInviteState,
    reliable: bool,
    timers: TimerConfig,
    /// The interval Timer E was last started with.
    timer_e: Duration,
    armed: Armed,
}

impl ClientNonInvite {
    /// Start the transaction: the request goes out at once, Timer E (T1, UDP
    /// only) schedules its retransmission and Timer F (64·T1) bounds the
    /// wait for a final response.
    pub fn new(reliable: bool, timers: TimerConfig) -> (Self, Vec<Action>) {
        let timers = timers.normalized();
        let mut tx = Self {
            state: ClientNonInviteState::Trying,
            reliable,
            timers,
            timer_e: timers.t1,
            armed: Armed::default(),
        };
        let mut out = vec![Action::SendRequest];
        if !reliable {
            tx.armed.start(&mut out, TimerId::E, timers.t1);
        }
        tx.armed.start(&mut out, TimerId::F, timers.timeout());
        (tx, out)
    }

    /// The current state.
    pub fn state(&self) -> ClientNonInviteState {
        self.state
    }

    /// Whether the transaction is over.
    pub fn is_terminated(&self) -> bool {
        self.state == ClientNonInviteState::Terminated
    }

    /// A response with this status matched the transaction.
    pub fn on_response(&mut self, status: u16) -> Vec<Action> {
        use ClientNonInviteState::*;
        let mut out = Vec::new();
        let Some(class) = StatusClass::of(status) else {
            return out;
        };
        match (self.state, class) {
            (Trying | Proceeding, StatusClass::Provisional) => {
                // Timer E keeps running: the next expiry resends at T2.
                self.state = Proceeding;
                out.push(Action::PassToTu);
            }
            (Trying | Proceeding, StatusClass::Success | StatusClass::Failure) => {
                self.armed.cancel(&mut out, TimerId::E);
                self.armed.cancel(&mut out, TimerId::F);
                self.state = Completed;
                out.push(Action::PassToTu);
                if self.reliable || self.timers.t4.is_zero() {
                    // Nothing to absorb on a reliable transport: Timer K is 0.
                    self.terminate(&mut out, TerminationReason::Completed);
                } else {
                    self.armed.start(&mut out, TimerId::K, self.timers.t4);
                }
            }
            // Completed absorbs retransmitted finals (and stray 1xx): the TU
            // already has its answer.
            _ => {}
        }
        out
    }

    /// A timer this transaction started has fired.
    pub fn on_timer(&mut self, id: TimerId) -> Vec<Action> {
        use ClientNonInviteState::*;
        let mut out = Vec::new();
        if !self.armed.fired(id) {
            return out;
        }
        match (self.state, id) {
            (Trying, TimerId::E) => {
                out.push(Action::SendRequest);
                self.timer_e = self.timer_e.saturating_mul(2).min(self.timers.t2);
                self.armed.start(&mut out, TimerId::E, self.timer_e);
            }
            (Proceeding, TimerId::E) => {
                out.push(Action::SendRequest);
                self.timer_e = self.timers.t2;
                self.armed.start(&mut out, TimerId::E, self.timer_e);
            }
            (Trying | Proceeding, TimerId::F) => {
                self.terminate(&mut out, TerminationReason::Timeout)
            }
            (Completed, TimerId::K) => self.terminate(&mut out, TerminationReason::Completed),
            _ => {}
        }
        out
    }

    /// The transport failed to send this transaction's request. Ignored once
    /// Completed, where nothing is sent any more.
    pub fn on_transport_error(&mut self) -> Vec<Action> {
        use ClientNonInviteState::*;
        let mut out = Vec::new();
        if matches!(self.state, Trying | Proceeding) {
            self.terminate(&mut out, TerminationReason::TransportError);
        }
        out
    }

    fn terminate(&mut self, out: &mut Vec<Action>, reason: TerminationReason) {
        self.armed.cancel_all(out);
        self.state = ClientNonInviteState::Terminated;
        out.push(Action::Terminated(reason));
    }
}

#[cfg(test)]
mod tests {
    use super::super::driver::{ms, run, Event};
    use super::*;
    use Action::*;
    use ClientNonInviteState::{Completed, Proceeding, Trying};

    const T1: Duration = Duration::from_millis(500);
    const T2: Duration = Duration::from_secs(4);
    const T64: Duration = Duration::from_secs(32);

    fn udp() -> ClientNonInvite {
        ClientNonInvite::new(false, TimerConfig::default()).0
    }

    fn tcp() -> ClientNonInvite {
        ClientNonInvite::new(true, TimerConfig::default()).0
    }

    #[test]
    fn new_unreliable_sends_and_starts_e_and_f() {
        let (tx, out) = ClientNonInvite::new(false, TimerConfig::default());
        assert_eq!(tx.state(), Trying);
        assert_eq!(
            out,
            vec![
                SendRequest,
                StartTimer(TimerId::E, T1),
                StartTimer(TimerId::F, T64)
            ]
        );
    }

    #[test]
    fn new_reliable_has_no_timer_e() {
        let (_, out) = ClientNonInvite::new(true, TimerConfig::default());
        assert_eq!(out, vec![SendRequest, StartTimer(TimerId::F, T64)]);
    }

    #[test]
    fn timer_e_in_trying_doubles_up_to_t2() {
        let mut tx = udp();
        for expect in [1000, 2000, 4000, 4000] {
            assert_eq!(
                tx.on_timer(TimerId::E),
                vec![
                    SendRequest,
                    StartTimer(TimerId::E, Duration::from_millis(expect))
                ]
            );
        }
        assert_eq!(tx.state(), Trying);
    }

    #[test]
    fn timer_e_in_proceeding_resends_at_t2() {
        let mut tx = udp();
        assert_eq!(tx.on_response(100), vec![PassToTu]);
        assert_eq!(tx.state(), Proceeding);
        assert_eq!(
            tx.on_timer(TimerId::E),
            vec![SendRequest, StartTimer(TimerId::E, T2)]
        );
        assert_eq!(
            tx.on_timer(TimerId::E),
            vec![SendRequest, StartTimer(TimerId::E, T2)]
        );
    }

    #[test]
    fn provisional_in_proceeding_passed_up() {
        let mut tx = udp();
        tx.on_response(100);
        assert_eq!(tx.on_response(180), vec![PassToTu]);
        assert_eq!(tx.state(), Proceeding);
    }

    #[test]
    fn final_in_trying_completes_with_k() {
        for status in [200, 404, 699] {
            let mut tx = udp();
            assert_eq!(
                tx.on_response(status),
                vec![
                    CancelTimer(TimerId::E),
                    CancelTimer(TimerId::F),
                    PassToTu,
                    StartTimer(TimerId::K, Duration::from_secs(5))
                ]
            );
            assert_eq!(tx.state(), Completed);
        }
    }

    #[test]
    fn final_in_proceeding_completes_with_k() {
        let mut tx = udp();
        tx.on_response(100);
        assert_eq!(
            tx.on_response(200),
            vec![
                CancelTimer(TimerId::E),
                CancelTimer(TimerId::F),
                PassToTu,
                StartTimer(TimerId::K, Duration::from_secs(5))
            ]
        );
    }

    #[test]
    fn final_reliable_terminates_at_once() {
        let mut tx = tcp();
        assert_eq!(
            tx.on_response(200),
            vec![
                CancelTimer(TimerId::F),
                PassToTu,
                Terminated(TerminationReason::Completed)
            ]
        );
        assert!(tx.is_terminated());
    }

    #[test]
    fn completed_absorbs_retransmissions() {
        let mut tx = udp();
        tx.on_response(200);
        assert!(tx.on_response(200).is_empty());
        assert!(tx.on_response(500).is_empty());
        assert!(tx.on_response(180).is_empty());
        assert!(tx.on_timer(TimerId::E).is_empty(), "stale E");
        assert!(tx.on_transport_error().is_empty());
        assert_eq!(tx.state(), Completed);
    }

    #[test]
    fn timer_k_terminates_completed() {
        let mut tx = udp();
        tx.on_response(200);
        assert_eq!(
            tx.on_timer(TimerId::K),
            vec![Terminated(TerminationReason::Completed)]
        );
    }

    #[test]
    fn timer_f_times_out_trying_and_proceeding() {
        let mut tx = udp();
        assert_eq!(
            tx.on_timer(TimerId::F),
            vec![
                CancelTimer(TimerId::E),
                Terminated(TerminationReason::Timeout)
            ]
        );
        let mut tx = udp();
        tx.on_response(100);
        assert_eq!(
            tx.on_timer(TimerId::F),
            vec![
                CancelTimer(TimerId::E),
                Terminated(TerminationReason::Timeout)
            ]
        );
    }

    #[test]
    fn transport_error_terminates_trying_and_proceeding() {
        let mut tx = tcp();
        assert_eq!(
            tx.on_transport_error(),
            vec![
                CancelTimer(TimerId::F),
                Terminated(TerminationReason::TransportError)
            ]
        );
        let mut tx = udp();
        tx.on_response(100);
        assert_eq!(
            tx.on_transport_error(),
            vec![
                CancelTimer(TimerId::E),
                CancelTimer(TimerId::F),
                Terminated(TerminationReason::TransportError)
            ]
        );
    }

    #[test]
    fn terminated_and_invalid_inputs_ignored() {
        let mut tx = udp();
        assert!(tx.on_response(1000).is_empty());
        assert!(tx.on_timer(TimerId::A).is_empty());
        assert_eq!(tx.state(), Trying);
        tx.on_transport_error();
        assert!(tx.on_response(200).is_empty());
        assert!(tx.on_timer(TimerId::F).is_empty());
        assert!(tx.on_transport_error().is_empty());
        assert!(tx.is_terminated());
    }

    #[tokio::test(start_paused = true)]
    async fn udp_no_response_e_capped_at_t2_f_at_32s() {
        let (mut tx, init) = ClientNonInvite::new(false, TimerConfig::default());
        let trace = run(&mut tx, init, vec![]).await;
        assert_eq!(
            trace.times_of(SendRequest),
            ms(&[0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500])
        );
        assert_eq!(
            trace.termination(),
            Some((Duration::from_secs(32), TerminationReason::Timeout))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn reliable_no_response_sends_once() {
        let (mut tx, init) = ClientNonInvite::new(true, TimerConfig::default());
        let trace = run(&mut tx, init, vec![]).await;
        assert_eq!(trace.times_of(SendRequest), ms(&[0]));
        assert_eq!(
            trace.termination(),
            Some((Duration::from_secs(32), TerminationReason::Timeout))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn provisional_switches_to_t2_interval() {
        let (mut tx, init) = ClientNonInvite::new(false, TimerConfig::default());
        let script: Vec<Event<ClientNonInvite>> = vec![
            (Duration::from_millis(600), |tx| tx.on_response(100)),
            (Duration::from_secs(10), |tx| tx.on_response(200)),
        ];
        let trace = run(&mut tx, init, script).await;
        // E was armed for 1.5 s before the 100 arrived; from then on, T2.
        assert_eq!(trace.times_of(SendRequest), ms(&[0, 500, 1500, 5500, 9500]));
        assert_eq!(
            trace.termination(),
            Some((Duration::from_secs(15), TerminationReason::Completed))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn t1_100ms_scales_everything() {
        let cfg = TimerConfig {
            t1: Duration::from_millis(100),
            t2: Duration::from_millis(800),
            t4: Duration::from_secs(1),
        };
        let (mut tx, init) = ClientNonInvite::new(false, cfg);
        let trace = run(&mut tx, init, vec![]).await;
        assert_eq!(
            trace.times_of(SendRequest),
            ms(&[0, 100, 300, 700, 1500, 2300, 3100, 3900, 4700, 5500, 6300])
        );
        assert_eq!(
            trace.termination(),
            Some((Duration::from_millis(6400), TerminationReason::Timeout))
        );

        let (mut tx, init) = ClientNonInvite::new(false, cfg);
        let script: Vec<Event<ClientNonInvite>> =
            vec![(Duration::from_millis(50), |tx| tx.on_response(200))];
        let trace = run(&mut tx, init, script).await;
        assert_eq!(
            trace.termination(),
            Some((Duration::from_millis(1050), TerminationReason::Completed))
        );
    }
}
