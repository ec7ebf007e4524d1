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
//!
//! `ringing` holds the agent leg up to the answer; `dialogs` the call after it.

use super::active::{Attempt, Call, Phase, Stamp};
use super::agents::AgentBoard;
use super::record::{AttemptOutcome, CallOutcome, CallRecord, Direction, HangupSide, PausedSpan};
use super::routing::pick_agents;
use crate::config::Config;
use crate::media::sdp::Sdp;
use crate::media::{MediaSession, PortPool};
use crate::sip::auth::lockout::Lockouts;
use crate::sip::authenticator::{Authenticator, Challenger};
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

mod agent_control;
mod callback;
mod cluster_sync;
mod cti;
mod dialogs;
mod live;
mod ringing;

pub use callback::CallbackRefused;
pub use live::{LiveAgent, LiveCall, Snapshot};

enum Timer {
    RingTimeout {
        call: u64,
        attempt: usize,
    },
    MaxWait {
        call: u64,
        generation: u32,
    },
    SurveyDone {
        call: u64,
        score: Option<u8>,
    },
    /// A callback's customer rang too long.
    CustomerTimeout {
        call: u64,
    },
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
    /// A callback's INVITE to the customer.
    Customer {
        call: u64,
    },
    /// An INVITE to an agent whose call has ended: a late 2xx is ACKed and released.
    Orphan {
        index: u64,
    },
}

/// Commands from outside the controller (the daemon's shutdown, the API).
pub enum Control {
    /// Stop taking calls; end the rest after `grace`.
    Drain { grace: Duration },
    /// Pause (or resume) the recording of a connected call, by its record id: the
    /// paused span is silence. Answers with the call's paused spans so far.
    Recording {
        call_id: String,
        pause: bool,
        reply: tokio::sync::oneshot::Sender<Result<Vec<PausedSpan>, RecordingRefused>>,
    },
    /// Hand a connected call's caller to the survey now: the agent's leg is ended with
    /// BYE (the agent's desktop asked for it through the API).
    StartSurvey {
        call_id: String,
        reply: tokio::sync::oneshot::Sender<Result<(), SurveyRefused>>,
    },
    /// What is going on now (the wallboard).
    Snapshot {
        reply: tokio::sync::oneshot::Sender<Snapshot>,
    },
    /// Call a ticket's customer back: ring `agent`, then `number` through `trunk` (the
    /// first trunk when None). Answers with the new call's record id.
    Callback {
        ticket_id: String,
        agent: String,
        number: String,
        trunk: Option<String>,
        reply: tokio::sync::oneshot::Sender<Result<String, CallbackRefused>>,
    },
    /// Every configured agent as the API shows it, in config order.
    Agents {
        reply: tokio::sync::oneshot::Sender<Vec<crate::call::agents::AgentView>>,
    },
    /// An agent control (queue log-in/out, pause, unpause, end wrap-up) asked for by `by`;
    /// answers with the agent after the change.
    Agent {
        agent: String,
        action: crate::call::agents::AgentAction,
        by: String,
        reply: tokio::sync::oneshot::Sender<
            Result<crate::call::agents::AgentView, crate::call::agents::AgentRefused>,
        >,
    },
}

/// Why a survey was not started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SurveyRefused {
    #[error("no connected call with that id")]
    NoSuchCall,
    #[error(
        "the survey is not available for this call (disabled, or the caller's codec has no prompt)"
    )]
    Unavailable,
}

/// Why a pause/resume was not done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecordingRefused {
    #[error("no call in progress with that id")]
    NoSuchCall,
    #[error("the call is not being recorded")]
    NotRecording,
}

pub struct Controller {
    config: Arc<Config>,
    endpoint: Endpoint,
    registrar: Registrar,
    /// Digest checks for REGISTERs and for INVITEs from untrusted sources, with the
    /// brute-force lockout shared with the admin API.
    auth: Authenticator,
    board: AgentBoard,
    /// The agents' fixed contacts (`[[agents]] contact`), parsed once: the request URI
    /// and where to send it. An agent whose contact names a host rather than an address
    /// has none (as before: it must register).
    fixed_contacts: HashMap<String, (Uri, Target)>,
    cursors: HashMap<String, usize>,
    /// Boxed, so that growing the map moves pointers rather than whole calls.
    calls: HashMap<u64, Box<Call>>,
    by_caller_tx: HashMap<ServerTx, u64>,
    by_call_id: HashMap<String, u64>,
    clients: HashMap<ClientTx, Purpose>,
    /// INVITEs of attempts whose call ended, by orphan index.
    orphans: HashMap<u64, (Request, Target)>,
    /// Timers due, by when (and a sequence number, so equal instants keep their order):
    /// one map entry each rather than a sleeping task each.
    timers: std::collections::BTreeMap<(Instant, u64), Timer>,
    next_timer: u64,
    /// Timers that a task of its own fires (the survey's end).
    timers_tx: mpsc::Sender<Timer>,
    timers_rx: Option<mpsc::Receiver<Timer>>,
    store: StoreWriter,
    pool: PortPool,
    media_ip: IpAddr,
    next_key: u64,
    next_seq: u64,
    drain_until: Option<Instant>,
    /// Survey prompts, decoded at start; None if they could not be loaded (no survey).
    survey_prompts: HashMap<String, super::survey::SurveyPrompts>,
    /// Recordings being closed (off this task); awaited before the store closes.
    finalizers: tokio::task::JoinSet<()>,
    cancel: CancellationToken,
    /// The CTI event stream (call.offered, call.ringing, ...); publishing never waits.
    events: crate::events::EventBus,
    /// Claims on agents in the database shared with other nodes (PostgreSQL); None for a
    /// single node.
    claims: Option<super::claims::AgentClaims>,
    /// Registrations, agent controls and wallboard pictures shared with the other nodes
    /// (see [`super::cluster`]).
    cluster: Option<super::cluster::ClusterLink>,
}

/// Our Contact URI for a leg on this transport.
fn our_contact(endpoint: &Endpoint, protocol: Protocol, remote: std::net::SocketAddr) -> Uri {
    let (host, port) = endpoint.local_hostport(protocol, remote);
    let transport = protocol
        .uri_param()
        .map(|t| format!(";transport={t}"))
        .unwrap_or_default();
    Uri::parse(&format!("sip:threering@{host}:{port}{transport}")).expect("own contact URI")
}

impl Controller {
    pub fn new(
        config: Arc<Config>,
        endpoint: Endpoint,
        store: StoreWriter,
        pool: PortPool,
        cancel: CancellationToken,
        events: crate::events::EventBus,
        lockouts: Arc<Lockouts>,
    ) -> Self {
        // Each queue's survey prompts: the queue's own files, else [survey]'s, else the
        // built-in ones. A queue whose prompts do not load has no survey (logged).
        let mut survey_prompts = HashMap::new();
        for queue in &config.queues {
            let mut survey = config.survey.clone();
            survey.prompt = queue.survey_prompt.clone().or(survey.prompt);
            survey.invalid_prompt = queue
                .survey_invalid_prompt
                .clone()
                .or(survey.invalid_prompt);
            survey.thanks_prompt = queue.survey_thanks_prompt.clone().or(survey.thanks_prompt);
            match super::survey::SurveyPrompts::load(&survey) {
                Ok(prompts) => {
                    survey_prompts.insert(queue.name.clone(), prompts);
                }
                Err(e) => {
                    tracing::error!(queue = %queue.name, error = %e, "survey prompts could not be loaded: no survey for this queue")
                }
            }
        }
        let now = Instant::now();
        let mut board = AgentBoard::new(
            config
                .agents
                .iter()
                .map(|a| (a.id.clone(), a.contact.is_some())),
            now,
        );
        // Every agent starts logged in to every queue it is configured in.
        for queue in &config.queues {
            for agent in &queue.agents {
                board.join_queue(agent, &queue.name);
            }
        }
        let fixed_contacts = config
            .agents
            .iter()
            .filter_map(|a| {
                let uri = Uri::parse(a.contact.as_deref()?).ok()?;
                let target = target_for_uri(&uri)?;
                Some((a.id.clone(), (uri.to_request_uri(), target)))
            })
            .collect();
        let (timers_tx, timers_rx) = mpsc::channel(4096);
        Controller {
            registrar: Registrar::new(config.sip.max_register_expires),
            auth: Authenticator::new(
                &config.sip.realm,
                vec![
                    crate::sip::auth::Algorithm::Md5,
                    crate::sip::auth::Algorithm::Sha256,
                ],
                lockouts,
            ),
            media_ip: config.media.address,
            config,
            endpoint,
            board,
            fixed_contacts,
            cursors: HashMap::new(),
            calls: HashMap::new(),
            by_caller_tx: HashMap::new(),
            by_call_id: HashMap::new(),
            clients: HashMap::new(),
            orphans: HashMap::new(),
            timers: std::collections::BTreeMap::new(),
            next_timer: 0,
            timers_tx,
            timers_rx: Some(timers_rx),
            store,
            pool,
            next_key: 1,
            next_seq: 1,
            drain_until: None,
            survey_prompts,
            finalizers: tokio::task::JoinSet::new(),
            cancel,
            events,
            claims: None,
            cluster: None,
        }
    }

    /// Shares agents with the other nodes on the same database (see
    /// [`super::claims`]).
    pub fn with_claims(mut self, claims: super::claims::AgentClaims) -> Self {
        self.claims = Some(claims);
        self
    }

    /// Shares registrations, agent controls and the wallboard with the other nodes (see
    /// [`super::cluster`]).
    pub fn with_cluster(mut self, link: super::cluster::ClusterLink) -> Self {
        self.cluster = Some(link);
        self
    }

    /// Gives up the claims on agents this node neither rings nor talks to any more.
    fn release_claims(&mut self) {
        if let Some(claims) = self.claims.as_mut() {
            let board = &self.board;
            let now = Instant::now();
            claims.release_idle(|agent| board.is_busy(agent, now));
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
        let mut cluster_news = self.cluster.as_mut().and_then(|c| c.news.take());
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        // The earliest timer's sleep, reset only when the earliest changes.
        let due = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(due);
        let mut armed: Option<Instant> = None;
        loop {
            let earliest = self.timers.keys().next().map(|(at, _)| *at);
            if let Some(at) = earliest.filter(|at| armed != Some(*at)) {
                due.as_mut().reset(at);
            }
            armed = earliest;
            tokio::select! {
                _ = self.cancel.cancelled() => break,
                Some(event) = events.recv() => self.on_event(event).await,
                () = &mut due, if armed.is_some() => self.fire_due_timers().await,
                Some(timer) = timers.recv() => self.on_timer(timer).await,
                Some(news) = async {
                    match cluster_news.as_mut() {
                        Some(news) => news.recv().await,
                        None => std::future::pending().await,
                    }
                } => self.on_cluster_news(news).await,
                Some(cmd) = control.recv() => match cmd {
                    Control::Drain { grace } => {
                        tracing::info!(calls = self.calls.len(), grace_ms = grace.as_millis() as u64, "draining: new calls are refused");
                        self.drain_until = Some(Instant::now() + grace);
                    }
                    Control::Recording { call_id, pause, reply } => {
                        let _ = reply.send(self.pause_recording(&call_id, pause));
                    }
                    Control::StartSurvey { call_id, reply } => {
                        let _ = reply.send(self.survey_on_request(&call_id).await);
                    }
                    Control::Snapshot { reply } => {
                        let _ = reply.send(self.merged_snapshot());
                    }
                    Control::Callback { ticket_id, agent, number, trunk, reply } => {
                        let _ = reply.send(self.start_callback(ticket_id, agent, number, trunk).await);
                    }
                    Control::Agents { reply } => {
                        let _ = reply.send(self.agents_view());
                    }
                    Control::Agent { agent, action, by, reply } => {
                        let _ = reply.send(self.agent_command(&agent, action, &by).await);
                    }
                },
                _ = tick.tick() => {
                    self.route_waiting().await;
                    self.release_claims();
                    self.reap_finalizers();
                    self.publish_snapshot();
                    self.tick_rings();
                    self.agent_gauges();
                    self.auth.lockouts().expire(std::time::Instant::now());
                }
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
        // Recordings still being closed write their calls' records when done.
        while self.finalizers.join_next().await.is_some() {}
        self.store.close().await;
    }

    /// Pauses or resumes a connected call's recording.
    fn pause_recording(
        &mut self,
        call_id: &str,
        pause: bool,
    ) -> Result<Vec<PausedSpan>, RecordingRefused> {
        let call = self
            .calls
            .values_mut()
            .find(|c| c.record.id == call_id && c.phase == Phase::Connected)
            .ok_or(RecordingRefused::NoSuchCall)?;
        let recorder = call
            .recorder
            .as_ref()
            .ok_or(RecordingRefused::NotRecording)?;
        if pause {
            recorder.pause();
        } else {
            recorder.resume();
        }
        tracing::info!(call = %call_id, pause, "recording paused/resumed");
        Ok(paused_spans(recorder))
    }

    /// Forgets the finalizers that are done: a `JoinSet` keeps a finished task until it
    /// is joined, so without this every ended call would stay in memory (about 1.4 KiB
    /// each, found by the soak).
    fn reap_finalizers(&mut self) {
        while let Some(done) = self.finalizers.try_join_next() {
            if let Err(e) = done {
                tracing::error!(error = %e, "a call's finalizer failed");
            }
        }
    }

    /// Fires `timer` after `after` (on call control's own loop).
    fn timer(&mut self, after: Duration, timer: Timer) {
        self.next_timer += 1;
        self.timers
            .insert((Instant::now() + after, self.next_timer), timer);
    }

    /// Fires every timer that is due, earliest first.
    async fn fire_due_timers(&mut self) {
        let now = Instant::now();
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let timer = entry.remove();
            self.on_timer(timer).await;
        }
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
                    Some(Purpose::Customer { call }) => self.customer_failed(call, None).await,
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
                let (resp, outcome) =
                    self.registrar
                        .handle(&req, &peer, &self.auth, agent_password(&self.config));
                if let RegisterOutcome::Updated { user, bound } = outcome {
                    tracing::info!(agent = %user, registered = bound, "agent registration");
                    self.board.set_registered(&user, bound, Instant::now());
                    self.share_registration(&user);
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

    /// A call record id: node, time to the millisecond, and a sequence number.
    fn new_record_id(&mut self) -> String {
        let id = format!(
            "{}-{}-{:04}",
            self.config.daemon.node_id,
            chrono::Utc::now().format("%Y%m%d%H%M%S%3f"),
            self.next_seq % 10_000
        );
        self.next_seq += 1;
        id
    }

    async fn new_call(&mut self, tx: ServerTx, req: Request, peer: Peer) {
        let tag = new_tag();
        // Calls come from trunks and trusted peers; anyone else must be an agent, and is
        // challenged before anything depends on the number dialled, so that an extension
        // scanner gets the same 407 for every number.
        if !self.config.may_call_unauthenticated(peer.remote.ip()) {
            match self.auth.authenticate(
                &req,
                peer.remote.ip(),
                Challenger::Proxy,
                &tag,
                agent_password(&self.config),
            ) {
                Ok(agent) => {
                    tracing::debug!(%agent, source = %peer.remote, "INVITE authenticated as an agent")
                }
                Err(resp) => return self.respond(tx, resp).await,
            }
        }
        let reject =
            |status: u16, reason: &str| response_to(&req, status, Some(reason), Some(&tag));
        if self.drain_until.is_some() {
            let mut resp = reject(503, "Service Unavailable: shutting down");
            resp.headers.push(HeaderName::RetryAfter, "30");
            return self.respond(tx, resp).await;
        }
        if self.calls.len() >= self.config.daemon.max_calls {
            crate::metrics::sip_rejected("max_calls");
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
        let id = self.new_record_id();
        let sip_call_id = req.call_id().unwrap_or("").to_owned();
        let caller = req
            .header_from()
            .and_then(|f| f.uri.user())
            .unwrap_or_else(|| "anonymous".to_owned());
        // Headers that steer the call are honoured only from trusted trunks and IVRs.
        let trusted = self.config.is_trusted(peer.remote.ip());
        let header = |name: &str| {
            req.headers
                .get(&HeaderName::Other(name.into()))
                .map(|v| v.trim().to_owned())
                .filter(|_| trusted)
        };
        let tickets: Vec<String> = header("X-Ticket-ID").into_iter().collect();
        let record_call = self.config.queue(&queue).is_some_and(|q| q.record)
            && !header("X-Record").is_some_and(|v| v.eq_ignore_ascii_case("no"));
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
            survey_offered: false,
            recording: Default::default(),
            tickets,
        };
        tracing::info!(call = %record.id, %queue, caller = %record.caller, "new call");
        if !record.tickets.is_empty() {
            // Linked to its ticket on arrival, not only once answered.
            self.store.save(record.clone()).await;
        }
        let max_wait = self.config.queue(&queue).map_or(120_000, |q| q.max_wait_ms);
        self.calls.insert(
            key,
            Box::new(Call {
                key,
                record,
                phase: Phase::Routing,
                queue,
                caller_tx: Some(tx),
                caller_invite: req,
                caller_peer: peer,
                caller_tag: tag,
                caller_dialog: None,
                caller_ringing: None,
                started,
                answered: None,
                media: Arc::new(media),
                attempts: Vec::new(),
                tried: Default::default(),
                agent_dialog: None,
                wait_generation: 0,
                recording_wanted: record_call,
                recorder: None,
                caller_codec: None,
                agent_left: None,
                survey: None,
                callback: None,
                rings_told: 0,
            }),
        );
        if let Some(call) = self.calls.get(&key) {
            cti::offered(&self.events, call);
        }
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
}

/// Looks up an agent's SIP password (None: no such agent, or one without a password),
/// for digest checks.
fn agent_password(config: &Config) -> impl Fn(&str) -> Option<String> + '_ {
    |user| {
        config
            .agent(user)
            .and_then(|a| a.password.as_ref().map(|p| p.expose().to_owned()))
    }
}

/// The recorder's paused spans as the record keeps them.
fn paused_spans(recorder: &crate::recording::Recorder) -> Vec<PausedSpan> {
    recorder
        .paused_spans()
        .into_iter()
        .map(|(start, end)| PausedSpan {
            start_ms: start as i64,
            end_ms: end.map(|e| e as i64),
        })
        .collect()
}
