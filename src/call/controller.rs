//! The B2BUA: takes the SIP endpoint's events, routes callers to agents, bridges the
//! two dialogs with media anchored through us, times every ring, and hands call
//! records to the store writer. One task owns all call state (no locks); timers come
//! back to it as messages.
//!
//! ```text
//!  caller INVITE ─▶ 100 ─▶ pick agent(s) ─▶ INVITE agent ─▶ 180 ─▶ 180 to caller
//!       │                     ▲   │ no answer in ring_timeout: CANCEL, next agent
//!       │                     └───┤ 486/603/480: next agent
//!       │                         ▼
//!       │                agent 200 ─▶ ACK agent, 200 to caller ─▶ Connected ─▶ BYE either side
//!       └─ CANCEL while ringing: CANCEL agents, abandoned;  max_wait: overflow or 480
//! ```

use super::active::{Attempt, Call, Phase, Stamp};
use super::agents::AgentBoard;
use super::record::{AttemptOutcome, CallOutcome, CallRecord, Direction, HangupSide};
use super::routing::pick_agents;
use crate::config::Config;
use crate::media::sdp::Sdp;
use crate::media::{MediaSession, PortPool};
use crate::sip::dialog::{new_tag, Dialog};
use crate::sip::endpoint::{target_for_uri, ClientTx, Endpoint, Event, ServerTx, Target};
use crate::sip::header::HeaderName;
use crate::sip::message::{random_token, response_to, HeaderAccess, Method, Request, Response};
use crate::sip::registrar::{RegisterOutcome, Registrar};
use crate::sip::transport::{Peer, Protocol};
use crate::sip::Uri;
use crate::store::StoreWriter;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

enum Timer {
    RingTimeout { call: u64, attempt: usize },
    MaxWait { call: u64, generation: u32 },
}

/// What a client transaction we started was for.
#[derive(Clone, Copy)]
enum Purpose {
    Attempt {
        call: u64,
        index: usize,
    },
    /// A BYE or an in-dialog request we relay; only its failure matters.
    Bye,
    /// An in-dialog request relayed from one leg: its response goes back on `tx`.
    Relay {
        call: u64,
        tx: ServerTx,
        to_agent: bool,
    },
    /// An INVITE to an agent whose call has ended: a late 2xx is ACKed and released.
    Orphan {
        index: u64,
    },
}

/// Commands from outside the controller (the daemon's shutdown).
pub enum Control {
    /// Stop taking calls; end the rest after `grace`.
    Drain { grace: Duration },
}

pub struct Controller {
    config: Arc<Config>,
    endpoint: Endpoint,
    registrar: Registrar,
    board: AgentBoard,
    cursors: HashMap<String, usize>,
    calls: HashMap<u64, Call>,
    by_caller_tx: HashMap<ServerTx, u64>,
    by_call_id: HashMap<String, u64>,
    clients: HashMap<ClientTx, Purpose>,
    /// INVITEs of attempts whose call ended, by orphan index.
    orphans: HashMap<u64, (Request, Target)>,
    timers_tx: mpsc::Sender<Timer>,
    timers_rx: Option<mpsc::Receiver<Timer>>,
    store: StoreWriter,
    pool: PortPool,
    media_ip: IpAddr,
    next_key: u64,
    next_seq: u64,
    drain_until: Option<Instant>,
    cancel: CancellationToken,
}

/// Our Contact URI for a leg on this transport.
fn our_contact(endpoint: &Endpoint, protocol: Protocol, remote: std::net::SocketAddr) -> Uri {
    let (host, port) = endpoint.local_hostport(protocol, remote);
    let transport = if protocol == Protocol::Tcp {
        ";transport=tcp"
    } else {
        ""
    };
    Uri::parse(&format!("sip:threering@{host}:{port}{transport}")).expect("own contact URI")
}

impl Controller {
    pub fn new(
        config: Arc<Config>,
        endpoint: Endpoint,
        store: StoreWriter,
        pool: PortPool,
        cancel: CancellationToken,
    ) -> Self {
        let now = Instant::now();
        let board = AgentBoard::new(
            config
                .agents
                .iter()
                .map(|a| (a.id.clone(), a.contact.is_some())),
            now,
        );
        let (timers_tx, timers_rx) = mpsc::channel(4096);
        Controller {
            registrar: Registrar::new(
                &config.sip.realm,
                vec![
                    crate::sip::auth::Algorithm::Md5,
                    crate::sip::auth::Algorithm::Sha256,
                ],
                config.sip.max_register_expires,
            ),
            media_ip: config.media.address,
            config,
            endpoint,
            board,
            cursors: HashMap::new(),
            calls: HashMap::new(),
            by_caller_tx: HashMap::new(),
            by_call_id: HashMap::new(),
            clients: HashMap::new(),
            orphans: HashMap::new(),
            timers_tx,
            timers_rx: Some(timers_rx),
            store,
            pool,
            next_key: 1,
            next_seq: 1,
            drain_until: None,
            cancel,
        }
    }

    /// Runs until drained (after a `Control::Drain`) or cancelled; then the store
    /// writer is closed so every record is written.
    pub async fn run(
        mut self,
        mut events: mpsc::Receiver<Event>,
        mut control: mpsc::Receiver<Control>,
    ) {
        let mut timers = self.timers_rx.take().expect("run once");
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => break,
                Some(event) = events.recv() => self.on_event(event).await,
                Some(timer) = timers.recv() => self.on_timer(timer).await,
                Some(cmd) = control.recv() => match cmd {
                    Control::Drain { grace } => {
                        tracing::info!(calls = self.calls.len(), grace_ms = grace.as_millis() as u64, "draining: new calls are refused");
                        self.drain_until = Some(Instant::now() + grace);
                    }
                },
                _ = tick.tick() => self.route_waiting().await,
            }
            if let Some(until) = self.drain_until {
                if self.calls.is_empty() {
                    break;
                }
                if Instant::now() >= until {
                    self.end_all().await;
                    break;
                }
            }
        }
        if !self.calls.is_empty() {
            self.end_all().await;
        }
        self.store.close().await;
    }

    fn timer(&self, after: Duration, timer: Timer) {
        let tx = self.timers_tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let _ = tx.send(timer).await;
        });
    }

    async fn respond(&self, tx: ServerTx, resp: Response) {
        let _ = self.endpoint.respond(tx, resp).await;
    }

    // ---- events ----------------------------------------------------------------------

    async fn on_event(&mut self, event: Event) {
        match event {
            Event::Request { tx, request, peer } => self.on_request(tx, request, peer).await,
            Event::Ack { .. } => {}
            Event::Cancelled { tx } => {
                if let Some(&key) = self.by_caller_tx.get(&tx) {
                    self.abandon(key).await;
                }
            }
            Event::Response { tx, response } => self.on_response(tx, response).await,
            Event::ClientFailed { tx, reason } => {
                tracing::debug!(?reason, "request to a peer failed");
                match self.clients.remove(&tx) {
                    Some(Purpose::Attempt { call, index }) => {
                        self.attempt_failed(call, index).await
                    }
                    Some(Purpose::Relay { tx: server_tx, .. }) => {
                        let timeout = reason == crate::sip::transaction::TerminationReason::Timeout;
                        let status = if timeout { 408 } else { 503 };
                        let resp =
                            Response::new(status, crate::sip::message::reason_phrase(status));
                        self.respond_relayed(server_tx, resp).await;
                    }
                    Some(Purpose::Orphan { index }) => {
                        self.orphans.remove(&index);
                    }
                    Some(Purpose::Bye) | None => {}
                }
            }
            Event::AckTimeout { call_id, .. } => {
                if let Some(&key) = self.by_call_id.get(&call_id) {
                    tracing::warn!(%call_id, "caller never acknowledged our 200: ending the call");
                    self.hang_up(key, HangupSide::System, None).await;
                }
            }
        }
    }

    async fn on_request(&mut self, tx: ServerTx, req: Request, peer: Peer) {
        let in_dialog = req.header_to().is_some_and(|t| t.tag().is_some());
        match req.method {
            Method::Register => {
                let agents = &self.config.agents;
                let (resp, outcome) = self.registrar.handle(&req, &peer, |user| {
                    agents
                        .iter()
                        .find(|a| a.id == user)
                        .and_then(|a| a.password.as_ref().map(|p| p.expose().to_owned()))
                });
                if let RegisterOutcome::Updated { user, bound } = outcome {
                    tracing::info!(agent = %user, registered = bound, "agent registration");
                    self.board.set_registered(&user, bound, Instant::now());
                }
                self.respond(tx, resp).await;
            }
            Method::Options => {
                let mut resp = response_to(&req, 200, None, Some(&new_tag()));
                resp.headers.push(
                    HeaderName::Allow,
                    self.endpoint.config().capabilities.allow_header(),
                );
                resp.headers.push(HeaderName::Accept, "application/sdp");
                self.respond(tx, resp).await;
            }
            Method::Invite if !in_dialog => self.new_call(tx, req, peer).await,
            _ if in_dialog => self.in_dialog(tx, req, peer).await,
            _ => {
                self.respond(tx, response_to(&req, 481, None, Some(&new_tag())))
                    .await
            }
        }
    }

    async fn new_call(&mut self, tx: ServerTx, req: Request, peer: Peer) {
        let tag = new_tag();
        let reject =
            |status: u16, reason: &str| response_to(&req, status, Some(reason), Some(&tag));
        if self.drain_until.is_some() {
            let mut resp = reject(503, "Service Unavailable: shutting down");
            resp.headers.push(HeaderName::RetryAfter, "30");
            return self.respond(tx, resp).await;
        }
        if self.calls.len() >= self.config.daemon.max_calls {
            let mut resp = reject(503, "Service Unavailable: too many calls");
            resp.headers.push(HeaderName::RetryAfter, "5");
            return self.respond(tx, resp).await;
        }
        if req.max_forwards() == Some(0) {
            return self.respond(tx, reject(483, "Too Many Hops")).await;
        }
        let number = req.uri.user().unwrap_or_default();
        let Some(queue) = self
            .config
            .queue_for_number(&number)
            .map(|q| q.name.clone())
        else {
            return self
                .respond(tx, reject(404, "Not Found: no queue for this number"))
                .await;
        };
        let offer = std::str::from_utf8(&req.body)
            .ok()
            .and_then(|b| Sdp::parse(b).ok());
        let Some(offer) = offer else {
            return self
                .respond(
                    tx,
                    reject(488, "Not Acceptable Here: an SDP offer is required"),
                )
                .await;
        };
        let media = match MediaSession::start(&self.pool, self.cancel.child_token()) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(error = %e, "no media ports");
                let mut resp = reject(503, "Service Unavailable: no media ports");
                resp.headers.push(HeaderName::RetryAfter, "5");
                return self.respond(tx, resp).await;
            }
        };
        media.set_caller_remote(offer.audio_destination());
        self.respond(tx, response_to(&req, 100, None, None)).await;

        let started = Stamp::now();
        let key = self.next_key;
        self.next_key += 1;
        let id = format!(
            "{}-{}-{:04}",
            self.config.daemon.node_id,
            chrono::Utc::now().format("%Y%m%d%H%M%S%3f"),
            self.next_seq % 10_000
        );
        self.next_seq += 1;
        let sip_call_id = req.call_id().unwrap_or("").to_owned();
        let caller = req
            .header_from()
            .and_then(|f| f.uri.user())
            .unwrap_or_else(|| "anonymous".to_owned());
        let tickets = req
            .headers
            .get(&HeaderName::Other("X-Ticket-ID".into()))
            .map(|t| vec![t.trim().to_owned()])
            .unwrap_or_default();
        let record = CallRecord {
            id,
            sip_call_id: sip_call_id.clone(),
            direction: Direction::Inbound,
            caller,
            callee: number,
            queue: Some(queue.clone()),
            agent: None,
            started_at: started.wall,
            caller_ringing_at: None,
            answered_at: None,
            ended_at: None,
            caller_ring_ms: None,
            rings: None,
            three_ring_ok: None,
            over_limit: None,
            outcome: CallOutcome::Active,
            hangup_side: None,
            talk_ms: None,
            attempts: Vec::new(),
            recording_path: None,
            survey_score: None,
            tickets,
        };
        tracing::info!(call = %record.id, %queue, caller = %record.caller, "new call");
        let max_wait = self.config.queue(&queue).map_or(120_000, |q| q.max_wait_ms);
        self.calls.insert(
            key,
            Call {
                key,
                record,
                phase: Phase::Routing,
                queue,
                caller_tx: tx,
                caller_invite: req,
                caller_peer: peer,
                caller_tag: tag,
                caller_dialog: None,
                caller_ringing: None,
                started,
                answered: None,
                media,
                attempts: Vec::new(),
                tried: Default::default(),
                agent_dialog: None,
                wait_generation: 0,
            },
        );
        self.by_caller_tx.insert(tx, key);
        self.by_call_id.insert(sip_call_id, key);
        crate::metrics::active_calls(self.calls.len());
        self.timer(
            Duration::from_millis(max_wait),
            Timer::MaxWait {
                call: key,
                generation: 0,
            },
        );
        self.route(key).await;
    }

    /// Rings the next agent(s) for a call that has none ringing.
    async fn route(&mut self, key: u64) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        if call.phase != Phase::Routing || call.ringing_attempts() > 0 {
            return;
        }
        let Some(queue) = self.config.queue(&call.queue).cloned() else {
            return;
        };
        let cursor = self.cursors.entry(queue.name.clone()).or_default();
        let picks = pick_agents(
            queue.strategy,
            &queue.agents,
            &self.board,
            &call.tried,
            cursor,
            Instant::now(),
        );
        for agent in picks {
            self.ring_agent(key, &agent, queue.ring_timeout_ms).await;
        }
    }

    async fn route_waiting(&mut self) {
        let waiting: Vec<u64> = self
            .calls
            .values()
            .filter(|c| c.phase == Phase::Routing && c.ringing_attempts() == 0)
            .map(|c| c.key)
            .collect();
        for key in waiting {
            self.route(key).await;
        }
    }

    fn agent_target(&self, agent: &str) -> Option<(Uri, Target)> {
        if let Some(binding) = self.registrar.binding(agent) {
            return Some((binding.contact.clone(), binding.target()));
        }
        let contact = self.config.agent(agent)?.contact.as_deref()?;
        let uri = Uri::parse(contact).ok()?;
        let target = target_for_uri(&uri)?;
        Some((uri, target))
    }

    async fn ring_agent(&mut self, key: u64, agent: &str, ring_timeout_ms: u64) {
        let Some((uri, target)) = self.agent_target(agent) else {
            tracing::warn!(%agent, "agent has no reachable contact");
            return;
        };
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let mut offer = match std::str::from_utf8(&call.caller_invite.body)
            .ok()
            .and_then(|b| Sdp::parse(b).ok())
        {
            Some(sdp) => sdp,
            None => return,
        };
        offer.anchor(self.media_ip, call.media.agent_port());
        let (host, _) = self.endpoint.local_hostport(target.protocol, target.addr);
        let mut invite = Request::new(Method::Invite, uri.clone());
        let caller = &call.record.caller;
        invite.headers.push(
            HeaderName::From,
            format!("<sip:{caller}@{host}>;tag={}", new_tag()),
        );
        invite.headers.push(HeaderName::To, format!("<{uri}>"));
        invite
            .headers
            .push(HeaderName::CallId, format!("{}@threering", random_token()));
        invite.headers.push(HeaderName::CSeq, "1 INVITE");
        invite.headers.push(
            HeaderName::Contact,
            format!(
                "<{}>",
                our_contact(&self.endpoint, target.protocol, target.addr)
            ),
        );
        invite.headers.push(
            HeaderName::Other("X-Threering-Call".into()),
            call.record.id.as_str(),
        );
        invite
            .headers
            .push(HeaderName::Other("X-Queue".into()), call.queue.as_str());
        for ticket in &call.record.tickets {
            invite
                .headers
                .push(HeaderName::Other("X-Ticket-ID".into()), ticket.as_str());
        }
        invite
            .headers
            .push(HeaderName::ContentType, "application/sdp");
        invite.body = offer.to_string().into();
        let Ok(tx) = self.endpoint.request(invite.clone(), target).await else {
            return;
        };
        let call = self.calls.get_mut(&key).expect("checked above");
        let index = call.attempts.len();
        call.attempts.push(Attempt {
            agent: agent.to_owned(),
            tx,
            invite,
            target,
            invited: Stamp::now(),
            ring_started: None,
            ended: None,
            outcome: AttemptOutcome::Ringing,
            sip_status: None,
            open: true,
        });
        call.tried.insert(agent.to_owned());
        self.clients
            .insert(tx, Purpose::Attempt { call: key, index });
        self.board.ringing(agent);
        tracing::info!(call = %call.record.id, %agent, "ringing agent");
        self.timer(
            Duration::from_millis(ring_timeout_ms),
            Timer::RingTimeout {
                call: key,
                attempt: index,
            },
        );
    }

    async fn on_response(&mut self, tx: ClientTx, resp: Response) {
        let Some(purpose) = self.clients.get(&tx).copied() else {
            return;
        };
        if resp.status >= 200 {
            self.clients.remove(&tx);
        }
        match purpose {
            Purpose::Attempt { call, index } => self.on_attempt_response(call, index, resp).await,
            Purpose::Bye => {}
            Purpose::Orphan { index } => {
                let Some((invite, target)) = self.orphans.remove(&index) else {
                    return;
                };
                if resp.status < 200 {
                    self.orphans.insert(index, (invite, target));
                } else if resp.is_success() {
                    self.release_late_answer(&invite, target, &resp).await;
                }
            }
            Purpose::Relay {
                call,
                tx: server_tx,
                to_agent,
            } => {
                self.on_relay_response(call, server_tx, to_agent, resp)
                    .await
            }
        }
    }

    async fn on_attempt_response(&mut self, key: u64, index: usize, resp: Response) {
        let Some(call) = self.calls.get_mut(&key) else {
            // The call is gone: a late 2xx from an agent must still be ACKed and ended.
            return;
        };
        let status = resp.status;
        if status < 200 {
            if status == 100 {
                return;
            }
            let attempt = &mut call.attempts[index];
            if attempt.open && attempt.ring_started.is_none() {
                attempt.ring_started = Some(Stamp::now());
            }
            if call.caller_ringing.is_none() && call.phase == Phase::Routing {
                call.caller_ringing = Some(Stamp::now());
                let mut ringing =
                    response_to(&call.caller_invite, 180, None, Some(&call.caller_tag));
                let contact = our_contact(
                    &self.endpoint,
                    call.caller_peer.protocol,
                    call.caller_peer.remote,
                );
                ringing
                    .headers
                    .push(HeaderName::Contact, format!("<{contact}>"));
                let caller_tx = call.caller_tx;
                self.respond(caller_tx, ringing).await;
            }
            return;
        }
        if (200..300).contains(&status) {
            return self.on_agent_answer(key, index, resp).await;
        }
        // A final failure.
        let attempt = &mut call.attempts[index];
        let agent = attempt.agent.clone();
        if attempt.open {
            let outcome = match status {
                486 | 600 => AttemptOutcome::Busy,
                408 => AttemptOutcome::NoAnswer,
                487 => AttemptOutcome::Cancelled,
                503 if attempt.ring_started.is_none() => AttemptOutcome::Failed,
                _ => AttemptOutcome::Rejected,
            };
            attempt.finish(outcome, Some(status));
            let pause_after = self
                .config
                .queue(&call.queue)
                .map_or(0, |q| q.auto_pause_after);
            self.board
                .attempt_failed(&agent, outcome == AttemptOutcome::NoAnswer, pause_after);
            if matches!(
                outcome,
                AttemptOutcome::Busy | AttemptOutcome::Rejected | AttemptOutcome::Failed
            ) {
                let retry = self.config.queue(&call.queue).map_or(5000, |q| q.retry_ms);
                self.board
                    .back_off(&agent, Instant::now() + Duration::from_millis(retry));
            }
            tracing::info!(call = %call.record.id, %agent, status, outcome = outcome.as_str(), "agent attempt failed");
        }
        self.route(key).await;
    }

    async fn on_agent_answer(&mut self, key: u64, index: usize, resp: Response) {
        let call = self.calls.get_mut(&key).expect("caller checked");
        let attempt = &call.attempts[index];
        let dialog = Dialog::uac(&attempt.invite, &resp);
        let target = dialog
            .as_ref()
            .ok()
            .and_then(|d| target_for_uri(&d.remote_target))
            .unwrap_or(attempt.target);
        let invite_seq = attempt.invite.cseq().map_or(1, |c| c.seq);
        let Ok(mut dialog) = dialog else {
            tracing::warn!("agent's 200 OK does not form a dialog");
            return;
        };
        // Every 2xx is acknowledged, even one we do not want.
        let _ = self.endpoint.ack(dialog.ack(invite_seq), target).await;
        let call = self.calls.get_mut(&key).expect("caller checked");
        if call.attempts[index].outcome == AttemptOutcome::Answered {
            // A retransmitted 2xx from the agent who answered (our ACK was lost): the
            // ACK above was all it needed.
            return;
        }
        if call.phase != Phase::Routing || !call.attempts[index].open {
            // Another agent won (ring-all race) or the caller left: release this one.
            let bye = dialog.request(Method::Bye);
            if let Ok(tx) = self.endpoint.request(bye, target).await {
                self.clients.insert(tx, Purpose::Bye);
            }
            let agent = call.attempts[index].agent.clone();
            call.attempts[index].finish(AttemptOutcome::Cancelled, Some(resp.status));
            self.board
                .call_ended(&agent, Instant::now(), Duration::ZERO);
            return;
        }
        let now = Stamp::now();
        call.attempts[index].finish(AttemptOutcome::Answered, Some(resp.status));
        call.answered = Some(now);
        call.phase = Phase::Connected;
        let agent = call.attempts[index].agent.clone();
        call.record.agent = Some(agent.clone());
        call.record.outcome = CallOutcome::Answered;
        // Cancel everyone else still ringing for this call.
        let losers = call.close_open_attempts();
        // Media: the agent's answer tells where its RTP goes; the caller gets the
        // same answer anchored on our caller-facing port.
        let agent_sdp = std::str::from_utf8(&resp.body)
            .ok()
            .and_then(|b| Sdp::parse(b).ok());
        call.media
            .set_agent_remote(agent_sdp.as_ref().and_then(Sdp::audio_destination));
        let mut answer = agent_sdp.unwrap_or_else(|| {
            Sdp::parse(std::str::from_utf8(&call.caller_invite.body).unwrap_or(""))
                .expect("offer parsed at call start")
        });
        answer.anchor(self.media_ip, call.media.caller_port());
        let mut ok = response_to(&call.caller_invite, 200, None, Some(&call.caller_tag));
        let contact = our_contact(
            &self.endpoint,
            call.caller_peer.protocol,
            call.caller_peer.remote,
        );
        ok.headers.push(HeaderName::Contact, format!("<{contact}>"));
        ok.headers.push(HeaderName::ContentType, "application/sdp");
        ok.body = answer.to_string().into();
        call.caller_dialog = Dialog::uas(&call.caller_invite, &ok, contact).ok();
        self.by_call_id.insert(dialog.id.call_id.clone(), key);
        call.agent_dialog = Some((dialog, target));
        let rings = &self.config.rings;
        call.sync_record(rings.cadence_ms, rings.target, rings.limit);
        let caller_tx = call.caller_tx;
        let ring_s = call.record.caller_ring_ms.unwrap_or(0) as f64 / 1000.0;
        let violation = call.record.three_ring_ok == Some(false);
        let record = call.record.clone();
        let queue = call.queue.clone();
        self.respond(caller_tx, ok).await;
        tracing::info!(call = %record.id, %agent, rings = record.rings, caller_ring_ms = record.caller_ring_ms, "answered");
        crate::metrics::agent_answered(&queue, &agent, ring_s, violation);
        self.board.answered(&agent);
        self.cancel_attempts(losers).await;
        self.store.save(record).await;
    }

    /// Sends CANCEL for attempts closed by `Call::close_open_attempts` and frees their
    /// agents.
    async fn cancel_attempts(&mut self, attempts: Vec<(ClientTx, String)>) {
        for (tx, agent) in attempts {
            let _ = self.endpoint.cancel(tx).await;
            self.board.attempt_failed(&agent, false, 0);
        }
    }

    /// An agent INVITE got no response at all (or the transport failed).
    async fn attempt_failed(&mut self, key: u64, index: usize) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(attempt) = call.attempts.get_mut(index) else {
            return;
        };
        if attempt.open {
            attempt.finish(AttemptOutcome::Failed, None);
            let agent = attempt.agent.clone();
            tracing::warn!(call = %call.record.id, %agent, "agent unreachable");
            self.board.attempt_failed(&agent, false, 0);
            let retry = self.config.queue(&call.queue).map_or(5000, |q| q.retry_ms);
            self.board
                .back_off(&agent, Instant::now() + Duration::from_millis(retry));
        }
        self.route(key).await;
    }

    /// ACKs and hangs up a 2xx that arrived for a call already gone.
    async fn release_late_answer(&mut self, invite: &Request, target: Target, resp: &Response) {
        let Ok(mut dialog) = Dialog::uac(invite, resp) else {
            return;
        };
        let target = target_for_uri(&dialog.remote_target).unwrap_or(target);
        let seq = invite.cseq().map_or(1, |c| c.seq);
        let _ = self.endpoint.ack(dialog.ack(seq), target).await;
        let bye = dialog.request(Method::Bye);
        if let Ok(tx) = self.endpoint.request(bye, target).await {
            self.clients.insert(tx, Purpose::Bye);
        }
    }

    async fn on_timer(&mut self, timer: Timer) {
        match timer {
            Timer::RingTimeout {
                call: key,
                attempt: index,
            } => {
                let Some(call) = self.calls.get_mut(&key) else {
                    return;
                };
                let Some(attempt) = call.attempts.get_mut(index) else {
                    return;
                };
                if !attempt.open || call.phase != Phase::Routing {
                    return;
                }
                attempt.finish(AttemptOutcome::NoAnswer, None);
                let (tx, agent) = (attempt.tx, attempt.agent.clone());
                let pause_after = self
                    .config
                    .queue(&call.queue)
                    .map_or(0, |q| q.auto_pause_after);
                tracing::info!(call = %call.record.id, %agent, "ring-no-answer");
                let _ = self.endpoint.cancel(tx).await;
                self.board.attempt_failed(&agent, true, pause_after);
                self.route(key).await;
            }
            Timer::MaxWait {
                call: key,
                generation,
            } => {
                let Some(call) = self.calls.get_mut(&key) else {
                    return;
                };
                if call.phase != Phase::Routing || call.wait_generation != generation {
                    return;
                }
                let overflow = self
                    .config
                    .queue(&call.queue)
                    .and_then(|q| q.overflow.clone());
                let ringing = call.close_open_attempts();
                self.cancel_attempts(ringing).await;
                let call = self.calls.get_mut(&key).expect("present");
                match overflow.and_then(|o| self.config.queue(&o).cloned()) {
                    Some(next) => {
                        tracing::info!(call = %call.record.id, from = %call.queue, to = %next.name, "overflow");
                        call.queue = next.name.clone();
                        call.record.queue = Some(next.name.clone());
                        call.tried.clear();
                        call.wait_generation += 1;
                        let generation = call.wait_generation;
                        self.timer(
                            Duration::from_millis(next.max_wait_ms),
                            Timer::MaxWait {
                                call: key,
                                generation,
                            },
                        );
                        self.route(key).await;
                    }
                    None => {
                        let resp = response_to(
                            &call.caller_invite,
                            480,
                            Some("Temporarily Unavailable: no agent answered"),
                            Some(&call.caller_tag),
                        );
                        let caller_tx = call.caller_tx;
                        self.respond(caller_tx, resp).await;
                        self.end_call(key, CallOutcome::NoAgent, HangupSide::System)
                            .await;
                    }
                }
            }
        }
    }

    /// The caller cancelled while ringing (the endpoint already answered 487).
    async fn abandon(&mut self, key: u64) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if call.phase != Phase::Routing {
            return;
        }
        let ringing = call.close_open_attempts();
        self.cancel_attempts(ringing).await;
        self.end_call(key, CallOutcome::Abandoned, HangupSide::Caller)
            .await;
    }

    /// Requests inside a dialog: BYE ends the call; re-INVITE, INFO, UPDATE and OPTIONS
    /// are relayed to the other leg.
    async fn in_dialog(&mut self, tx: ServerTx, req: Request, _peer: Peer) {
        let call_id = req.call_id().unwrap_or("").to_owned();
        let Some(&key) = self.by_call_id.get(&call_id) else {
            return self.respond(tx, response_to(&req, 481, None, None)).await;
        };
        let Some(call) = self.calls.get_mut(&key) else {
            return self.respond(tx, response_to(&req, 481, None, None)).await;
        };
        let from_caller = call_id == call.record.sip_call_id;
        let ok = if from_caller {
            call.caller_dialog
                .as_mut()
                .is_some_and(|d| d.on_remote_request(&req).is_ok())
        } else {
            call.agent_dialog
                .as_mut()
                .is_some_and(|(d, _)| d.on_remote_request(&req).is_ok())
        };
        if !ok {
            return self.respond(tx, response_to(&req, 481, None, None)).await;
        }
        if req.method == Method::Bye {
            self.respond(tx, response_to(&req, 200, None, None)).await;
            let side = if from_caller {
                HangupSide::Caller
            } else {
                HangupSide::Agent
            };
            return self.hang_up(key, side, Some(from_caller)).await;
        }
        // Relay to the other leg.
        let (dialog, target) = if from_caller {
            match call.agent_dialog.as_mut() {
                Some((d, t)) => (d, *t),
                None => return self.respond(tx, response_to(&req, 481, None, None)).await,
            }
        } else {
            let target = Target {
                protocol: call.caller_peer.protocol,
                addr: call.caller_peer.remote,
            };
            match call.caller_dialog.as_mut() {
                Some(d) => (d, target),
                None => return self.respond(tx, response_to(&req, 481, None, None)).await,
            }
        };
        let mut out = dialog.request(req.method.clone());
        if let Some(ct) = req.headers.get(&HeaderName::ContentType) {
            out.headers.push(HeaderName::ContentType, ct.clone());
        }
        out.body = req.body.clone();
        if matches!(req.method, Method::Invite | Method::Update) && !req.body.is_empty() {
            if let Some(mut sdp) = std::str::from_utf8(&req.body)
                .ok()
                .and_then(|b| Sdp::parse(b).ok())
            {
                let port = if from_caller {
                    call.media.agent_port()
                } else {
                    call.media.caller_port()
                };
                if from_caller {
                    call.media.set_caller_remote(sdp.audio_destination());
                } else {
                    call.media.set_agent_remote(sdp.audio_destination());
                }
                sdp.anchor(self.media_ip, port);
                out.body = sdp.to_string().into();
            }
        }
        match self.endpoint.request(out, target).await {
            Ok(client_tx) => {
                self.clients.insert(
                    client_tx,
                    Purpose::Relay {
                        call: key,
                        tx,
                        to_agent: from_caller,
                    },
                );
            }
            Err(_) => self.respond(tx, response_to(&req, 503, None, None)).await,
        }
    }

    async fn on_relay_response(
        &mut self,
        key: u64,
        server_tx: ServerTx,
        to_agent: bool,
        resp: Response,
    ) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if resp.status < 200 && resp.status != 180 && resp.status != 183 {
            return;
        }
        // The request we answer is the one on the other leg; rebuild from the server
        // transaction's view is not available here, so answer with status and body.
        let mut out = Response::new(resp.status, resp.reason.as_str());
        let is_2xx = resp.is_success();
        if is_2xx && resp.cseq().is_some_and(|c| c.method == Method::Invite) {
            // ACK the leg that answered the re-INVITE, and anchor its SDP.
            let (dialog, target, port) = if to_agent {
                match call.agent_dialog.as_ref() {
                    Some((d, t)) => (d, *t, call.media.caller_port()),
                    None => return,
                }
            } else {
                let t = Target {
                    protocol: call.caller_peer.protocol,
                    addr: call.caller_peer.remote,
                };
                match call.caller_dialog.as_ref() {
                    Some(d) => (d, t, call.media.agent_port()),
                    None => return,
                }
            };
            let seq = resp.cseq().map_or(1, |c| c.seq);
            let ack = dialog.ack(seq);
            if let Some(mut sdp) = std::str::from_utf8(&resp.body)
                .ok()
                .and_then(|b| Sdp::parse(b).ok())
            {
                if to_agent {
                    call.media.set_agent_remote(sdp.audio_destination());
                } else {
                    call.media.set_caller_remote(sdp.audio_destination());
                }
                sdp.anchor(self.media_ip, port);
                out.headers.push(HeaderName::ContentType, "application/sdp");
                out.body = sdp.to_string().into();
            }
            let _ = self.endpoint.ack(ack, target).await;
        } else if !resp.body.is_empty() {
            if let Some(ct) = resp.headers.get(&HeaderName::ContentType) {
                out.headers.push(HeaderName::ContentType, ct.clone());
            }
            out.body = resp.body.clone();
        }
        self.respond_relayed(server_tx, out).await;
    }

    /// Sends a relayed response; the endpoint fills in Via/From/To/Call-ID/CSeq from
    /// the request it belongs to.
    async fn respond_relayed(&self, tx: ServerTx, resp: Response) {
        let _ = self.endpoint.respond_for(tx, resp).await;
    }

    /// Ends a connected call: BYE to the leg(s) that did not hang up.
    /// `from_caller`: Some(true) if the caller sent BYE, Some(false) the agent, None
    /// when we end it (both legs get a BYE).
    async fn hang_up(&mut self, key: u64, side: HangupSide, from_caller: Option<bool>) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let mut byes = Vec::new();
        if from_caller != Some(false) {
            if let Some((d, t)) = call.agent_dialog.as_mut() {
                byes.push((d.request(Method::Bye), *t));
            }
        }
        if from_caller != Some(true) {
            let t = Target {
                protocol: call.caller_peer.protocol,
                addr: call.caller_peer.remote,
            };
            if let Some(d) = call.caller_dialog.as_mut() {
                byes.push((d.request(Method::Bye), t));
            }
        }
        for (bye, target) in byes {
            if let Ok(tx) = self.endpoint.request(bye, target).await {
                self.clients.insert(tx, Purpose::Bye);
            }
        }
        self.end_call(key, CallOutcome::Answered, side).await;
    }

    async fn end_call(&mut self, key: u64, outcome: CallOutcome, side: HangupSide) {
        let Some(mut call) = self.calls.remove(&key) else {
            return;
        };
        call.finish(outcome, side);
        let rings = &self.config.rings;
        call.sync_record(rings.cadence_ms, rings.target, rings.limit);
        let wrap_up = self.config.queue(&call.queue).map_or(0, |q| q.wrap_up_ms);
        if let Some(agent) = &call.record.agent {
            self.board
                .call_ended(agent, Instant::now(), Duration::from_millis(wrap_up));
        }
        self.by_caller_tx.remove(&call.caller_tx);
        self.by_call_id.remove(&call.record.sip_call_id);
        if let Some((d, _)) = &call.agent_dialog {
            self.by_call_id.remove(&d.id.call_id);
        }
        // Agent INVITEs still in flight stay known, so a late 2xx can be released.
        for attempt in &call.attempts {
            if let Some(Purpose::Attempt { .. }) = self.clients.get(&attempt.tx) {
                let index = self.next_key;
                self.next_key += 1;
                self.orphans
                    .insert(index, (attempt.invite.clone(), attempt.target));
                self.clients.insert(attempt.tx, Purpose::Orphan { index });
            }
        }
        self.clients.retain(|_, p| match p {
            Purpose::Attempt { call, .. } | Purpose::Relay { call, .. } => *call != key,
            Purpose::Bye | Purpose::Orphan { .. } => true,
        });
        let record = call.record;
        tracing::info!(call = %record.id, outcome = record.outcome.as_str(), hangup = ?record.hangup_side, talk_ms = record.talk_ms, "call ended");
        crate::metrics::call_ended(
            record.queue.as_deref().unwrap_or(""),
            record.outcome.as_str(),
        );
        crate::metrics::active_calls(self.calls.len());
        self.store.save(record).await;
    }

    /// Shutdown: every call ends now, by the system.
    async fn end_all(&mut self) {
        let keys: Vec<u64> = self.calls.keys().copied().collect();
        for key in keys {
            let phase = self.calls.get(&key).map(|c| c.phase);
            match phase {
                Some(Phase::Connected) => self.hang_up(key, HangupSide::System, None).await,
                Some(Phase::Routing) => {
                    if let Some(call) = self.calls.get(&key) {
                        let mut resp = response_to(
                            &call.caller_invite,
                            503,
                            Some("Service Unavailable: shutting down"),
                            Some(&call.caller_tag),
                        );
                        resp.headers.push(HeaderName::RetryAfter, "30");
                        let tx = call.caller_tx;
                        self.respond(tx, resp).await;
                    }
                    let ringing = self
                        .calls
                        .get_mut(&key)
                        .map(Call::close_open_attempts)
                        .unwrap_or_default();
                    self.cancel_attempts(ringing).await;
                    self.end_call(key, CallOutcome::Rejected, HangupSide::System)
                        .await;
                }
                _ => {}
            }
        }
    }
}
