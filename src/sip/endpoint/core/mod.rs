//! The endpoint's single task: matches messages to transactions (RFC 3261 §17.1.3,
//! §17.2.3), drives the pure machines of `transaction` with one timer heap, and does
//! the UAS core's duties (validation, merged-request detection, CANCEL, 2xx
//! retransmission until ACK).

use super::build::{
    ack_for_failure, add_via, cancel_for, local_hostport, response_target, stamp_received, Target,
};
use super::overload::{Admission, Refusal, SourceLimits};
use super::{ClientTx, Command, EndpointConfig, Event, ServerTx};
use crate::sip::header::HeaderName;
use crate::sip::message::{
    random_token, response_to, HeaderAccess, Message, Method, Request, Response,
};
use crate::sip::parse::{parse, reply_info};
use crate::sip::transaction::{
    Action, ClientInvite, ClientNonInvite, ServerInvite, ServerNonInvite, TerminationReason,
    TimerId, TimerSet,
};
use crate::sip::transport::{Peer, Protocol, Received, Transports};
use crate::sip::validate::check_request;
use bytes::Bytes;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

mod commands;
mod inbound;

enum ServerMachine {
    Invite(ServerInvite),
    NonInvite(ServerNonInvite),
}

struct ServerEntry {
    machine: ServerMachine,
    key: String,
    merge_key: Option<String>,
    request: Request,
    peer: Peer,
    reply_to: SocketAddr,
    to_tag: String,
    last_response: Option<Bytes>,
    final_sent: bool,
    /// A call-starting INVITE counted as pending for this source until its final
    /// response (or its end without one).
    pending_from: Option<IpAddr>,
    timers: TimerSet,
}

enum ClientMachine {
    Invite(ClientInvite),
    NonInvite(ClientNonInvite),
}

struct ClientEntry {
    machine: ClientMachine,
    key: String,
    request: Request,
    bytes: Bytes,
    target: Target,
    last_response: Option<Response>,
    got_provisional: bool,
    got_final: bool,
    cancel_pending: bool,
    timers: TimerSet,
}

/// A 2xx to an INVITE that we resend until its ACK arrives (RFC 3261 §13.3.1.4).
struct Pending2xx {
    bytes: Bytes,
    protocol: Protocol,
    local: SocketAddr,
    reply_to: SocketAddr,
    interval: Duration,
    give_up_at: Instant,
    next_at: Instant,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum TimerOwner {
    Server(u64),
    Client(u64),
    Pending2xx(String),
}

pub(crate) struct Core {
    config: Arc<EndpointConfig>,
    transports: Arc<Transports>,
    events: mpsc::Sender<Event>,
    commands: mpsc::Sender<Command>,
    /// Entries boxed: a growing map then moves pointers, not whole transactions (with
    /// tens of thousands live at a high call rate, moving them stalled the task for tens
    /// of milliseconds).
    servers: HashMap<u64, Box<ServerEntry>>,
    server_keys: HashMap<String, u64>,
    merge_keys: HashMap<String, u64>,
    next_server: u64,
    clients: HashMap<u64, Box<ClientEntry>>,
    client_keys: HashMap<String, u64>,
    pending_2xx: HashMap<String, Pending2xx>,
    heap: BinaryHeap<Reverse<(Instant, TimerOwner, TimerId)>>,
    /// Transactions still waiting for their final response (server: none sent yet;
    /// client: none received yet): the ones `[sip] max_transactions` limits. A finished
    /// one lingers up to 64·T1 (32 s) only to absorb retransmissions (RFC 3261 Timer
    /// J/K, RFC 6026 Timers L/M) and counts toward the larger [`LINGER_FACTOR`] bound.
    open_servers: usize,
    open_clients: usize,
    /// Per-source rates and unanswered INVITEs (see `overload`).
    sources: SourceLimits,
}

fn method_key(m: &Method) -> &str {
    // ACK matches the INVITE's server transaction (non-2xx ACK shares its branch).
    if *m == Method::Ack {
        "INVITE"
    } else {
        m.as_str()
    }
}

/// RFC 3261 §17.2.3 server transaction key; RFC 2543 requests (no magic cookie) are
/// keyed on Call-ID, From tag, CSeq number and the whole top Via.
fn server_key(req: &Request) -> Option<String> {
    let via = req.top_via()?;
    let method = method_key(&req.method);
    if via.has_rfc3261_branch() {
        // Call-ID and CSeq number are the same in every retransmission, in the CANCEL
        // and in the non-2xx ACK; keying on them too keeps a client that reuses a branch
        // for a new request from being answered with an old response.
        let port = via.port.unwrap_or(5060);
        let seq = req.cseq().map(|c| c.seq).unwrap_or(0);
        Some(format!(
            "{}|{}:{}|{}|{}|{}",
            via.branch()?,
            via.host,
            port,
            method,
            req.call_id().unwrap_or(""),
            seq
        ))
    } else {
        let from_tag = req
            .header_from()
            .and_then(|f| f.tag().map(str::to_owned))
            .unwrap_or_default();
        let seq = req.cseq().map(|c| c.seq).unwrap_or(0);
        let top = req
            .headers
            .get(&HeaderName::Via)
            .map(|v| v.to_string())
            .unwrap_or_default();
        Some(format!(
            "2543|{}|{}|{}|{}|{}",
            req.call_id().unwrap_or(""),
            from_tag,
            seq,
            top,
            method
        ))
    }
}

fn pending_key(call_id: &str, seq: u32) -> String {
    format!("{call_id}|{seq}")
}

impl Core {
    pub(crate) fn new(
        config: Arc<EndpointConfig>,
        transports: Arc<Transports>,
        events: mpsc::Sender<Event>,
        commands: mpsc::Sender<Command>,
    ) -> Self {
        let sources = SourceLimits::new(config.overload.clone());
        Core {
            config,
            transports,
            events,
            commands,
            servers: HashMap::new(),
            server_keys: HashMap::new(),
            merge_keys: HashMap::new(),
            next_server: 1,
            clients: HashMap::new(),
            client_keys: HashMap::new(),
            pending_2xx: HashMap::new(),
            heap: BinaryHeap::new(),
            open_servers: 0,
            open_clients: 0,
            sources,
        }
    }

    pub(crate) async fn run(
        mut self,
        mut inbound: mpsc::Receiver<Received>,
        mut commands: mpsc::Receiver<Command>,
        cancel: CancellationToken,
    ) {
        // One sleep for the earliest timer, reset only when the earliest changes (a new
        // sleep on every turn of the loop costs a timer-wheel entry per message).
        let due = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(due);
        let mut armed: Option<Instant> = None;
        loop {
            let next = self.heap.peek().map(|Reverse((at, _, _))| *at);
            if let Some(at) = next.filter(|at| armed != Some(*at)) {
                due.as_mut().reset(at);
            }
            armed = next;
            tokio::select! {
                _ = cancel.cancelled() => return,
                Some(msg) = inbound.recv() => self.on_received(msg),
                Some(cmd) = commands.recv() => self.on_command(cmd),
                () = &mut due, if armed.is_some() => {
                    self.on_timers();
                    // Fired: re-armed on the next turn even if the earliest is unchanged.
                    armed = None;
                }
            }
        }
    }

    /// Transactions in progress (no final response yet).
    fn open_transactions(&self) -> usize {
        self.open_servers + self.open_clients
    }

    /// Every transaction held, finished ones lingering for retransmissions included.
    fn transaction_count(&self) -> usize {
        self.servers.len() + self.clients.len()
    }

    // ---- sending -------------------------------------------------------------------

    fn schedule(&mut self, owner: TimerOwner, now: Instant, actions: &[Action]) {
        for a in actions {
            if let Action::StartTimer(id, after) = a {
                if let Some(at) = now.checked_add(*after) {
                    self.heap.push(Reverse((at, owner.clone(), *id)));
                }
            }
        }
    }

    // ---- timers ----------------------------------------------------------------------

    fn on_timers(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((at, _, _))) = self.heap.peek() {
            if *at > now {
                break;
            }
            let Reverse((at, owner, id)) = self.heap.pop().expect("peeked");
            match owner {
                TimerOwner::Server(sid) => {
                    let Some(entry) = self.servers.get_mut(&sid) else {
                        continue;
                    };
                    if entry.timers.get(id) != Some(at) {
                        continue; // re-armed or cancelled since
                    }
                    entry.timers.cancel(id);
                    let actions = match &mut entry.machine {
                        ServerMachine::Invite(m) => m.on_timer(id),
                        ServerMachine::NonInvite(m) => m.on_timer(id),
                    };
                    self.apply_server(sid, actions);
                }
                TimerOwner::Client(cid) => {
                    let Some(entry) = self.clients.get_mut(&cid) else {
                        continue;
                    };
                    if entry.timers.get(id) != Some(at) {
                        continue;
                    }
                    entry.timers.cancel(id);
                    let actions = match &mut entry.machine {
                        ClientMachine::Invite(m) => m.on_timer(id),
                        ClientMachine::NonInvite(m) => m.on_timer(id),
                    };
                    self.apply_client(cid, actions);
                }
                TimerOwner::Pending2xx(key) => self.on_pending_2xx(key, at, now),
            }
        }
    }

    fn on_pending_2xx(&mut self, key: String, at: Instant, now: Instant) {
        let Some(p) = self.pending_2xx.get_mut(&key) else {
            return;
        };
        if p.next_at != at {
            return;
        }
        if now >= p.give_up_at {
            self.pending_2xx.remove(&key);
            let (call_id, seq) = key.rsplit_once('|').unwrap_or((&key, "0"));
            emit(
                &self.events,
                Event::AckTimeout {
                    call_id: call_id.to_owned(),
                    cseq: seq.parse().unwrap_or(0),
                },
            );
            return;
        }
        let (protocol, local, remote, bytes) = (p.protocol, p.local, p.reply_to, p.bytes.clone());
        let resend = !protocol.is_reliable();
        p.interval = (p.interval * 2).min(self.config.timers.t2);
        // From the planned time, not the time we got to it, so delays do not accumulate.
        p.next_at = if resend {
            (at + p.interval).min(p.give_up_at)
        } else {
            p.give_up_at
        };
        let next = p.next_at;
        self.heap
            .push(Reverse((next, TimerOwner::Pending2xx(key), TimerId::G)));
        if resend {
            send(
                &self.transports,
                &self.commands,
                protocol,
                Some(local),
                remote,
                bytes,
                None,
            );
        }
    }

    // ---- applying machine actions ----------------------------------------------------

    fn apply_server(&mut self, id: u64, actions: Vec<Action>) {
        let now = Instant::now();
        let Some(entry) = self.servers.get_mut(&id) else {
            return;
        };
        entry.timers.apply(now, &actions);
        let mut terminated = false;
        for action in &actions {
            match action {
                Action::SendLastResponse => {
                    if let Some(bytes) = &entry.last_response {
                        let (p, l, r, b) = (
                            entry.peer.protocol,
                            entry.peer.local,
                            entry.reply_to,
                            bytes.clone(),
                        );
                        send(&self.transports, &self.commands, p, Some(l), r, b, None);
                    }
                }
                Action::SendTrying => {
                    let trying = response_to(&entry.request, 100, None, None).to_bytes();
                    send(
                        &self.transports,
                        &self.commands,
                        entry.peer.protocol,
                        Some(entry.peer.local),
                        entry.reply_to,
                        trying,
                        None,
                    );
                }
                Action::Terminated(reason) => {
                    terminated = true;
                    if *reason == TerminationReason::Timeout {
                        tracing::debug!(tx = id, "server transaction timed out waiting for ACK");
                    }
                }
                _ => {}
            }
        }
        self.schedule(TimerOwner::Server(id), now, &actions);
        if terminated {
            if let Some(entry) = self.servers.remove(&id) {
                if !entry.final_sent {
                    self.open_servers -= 1;
                }
                self.server_keys.remove(&entry.key);
                if let Some(k) = entry.merge_key {
                    self.merge_keys.remove(&k);
                }
                if let Some(ip) = entry.pending_from {
                    self.sources.invite_answered(ip);
                }
            }
        }
    }

    fn apply_client(&mut self, id: u64, actions: Vec<Action>) {
        let now = Instant::now();
        let Some(entry) = self.clients.get_mut(&id) else {
            return;
        };
        entry.timers.apply(now, &actions);
        let mut terminated = None;
        let tx = ClientTx(id);
        let is_cancel = id > u64::MAX / 2;
        for action in &actions {
            match action {
                Action::SendRequest => {
                    let t = entry.target;
                    send(
                        &self.transports,
                        &self.commands,
                        t.protocol,
                        None,
                        t.addr,
                        entry.bytes.clone(),
                        Some(tx),
                    );
                }
                Action::SendAck => {
                    if let Some(resp) = &entry.last_response {
                        let ack = ack_for_failure(&entry.request, resp).to_bytes();
                        let t = entry.target;
                        send(
                            &self.transports,
                            &self.commands,
                            t.protocol,
                            None,
                            t.addr,
                            ack,
                            None,
                        );
                    }
                }
                Action::PassToTu => {
                    if let (Some(resp), false) = (&entry.last_response, is_cancel) {
                        let event = Event::Response {
                            tx,
                            response: resp.clone(),
                        };
                        emit(&self.events, event);
                    }
                }
                Action::Terminated(reason) => terminated = Some(*reason),
                _ => {}
            }
        }
        self.schedule(TimerOwner::Client(id), now, &actions);
        if let Some(reason) = terminated {
            if let Some(entry) = self.clients.remove(&id) {
                if !entry.got_final {
                    self.open_clients -= 1;
                }
                self.client_keys.remove(&entry.key);
                if reason != TerminationReason::Completed && !entry.got_final && !is_cancel {
                    emit(&self.events, Event::ClientFailed { tx, reason });
                }
            }
        }
    }
}

fn send(
    transports: &Arc<Transports>,
    commands: &mpsc::Sender<Command>,
    protocol: Protocol,
    local: Option<SocketAddr>,
    remote: SocketAddr,
    data: Bytes,
    tx: Option<ClientTx>,
) {
    match transports.send_now(protocol, local, remote, &data) {
        Ok(true) => {}
        Ok(false) => {
            // A new TCP connection is needed: connect off the core task.
            let transports = transports.clone();
            let commands = commands.clone();
            tokio::spawn(async move {
                if let Err(e) = transports.send(protocol, local, remote, data).await {
                    tracing::debug!(error = %e, "send failed");
                    let _ = commands.try_send(Command::SendFailed { tx });
                }
            });
        }
        Err(e) => {
            tracing::debug!(error = %e, "send failed");
            let _ = commands.try_send(Command::SendFailed { tx });
        }
    }
}

fn emit(events: &mpsc::Sender<Event>, event: Event) {
    if let Err(mpsc::error::TrySendError::Full(event)) = events.try_send(event) {
        // Responses and timeouts must not be lost: wait for room off the core task.
        let events = events.clone();
        tokio::spawn(async move {
            let _ = events.send(event).await;
        });
    }
}

/// Finished transactions linger 32 s for retransmissions (three or so per call: the
/// caller's INVITE and BYE, the agent's INVITE), so at a steady call rate they far
/// outnumber the ones in progress. `[sip] max_transactions` limits those in progress;
/// all of them together are held to this many times it, which bounds their memory.
pub(super) const LINGER_FACTOR: usize = 8;

/// How long a client refused for overload is asked to wait (Retry-After, seconds).
const RETRY_AFTER_SECS: &str = "5";

/// 503 with Retry-After, for requests past a limit.
fn overloaded(req: &Request, to_tag: &str, why: Refusal) -> Response {
    let reason = match why {
        Refusal::SourceRate | Refusal::SourcePending => "Service Unavailable: too many requests",
        _ => "Service Unavailable: overloaded",
    };
    let mut resp = response_to(req, 503, Some(reason), Some(to_tag));
    resp.headers.push(HeaderName::RetryAfter, RETRY_AFTER_SECS);
    resp
}

fn ensure_to_tag(resp: &mut Response, tag: &str) {
    let Some(h) = resp.headers.0.iter_mut().find(|h| h.name == HeaderName::To) else {
        return;
    };
    let has_tag = crate::sip::header::NameAddr::parse(&h.value)
        .map(|n| n.tag().is_some())
        .unwrap_or(true);
    if !has_tag {
        h.value = format!("{};tag={tag}", h.value).into();
    }
}

/// A stateless answer to a broken request still carries a To tag when it can.
fn add_to_tag(resp: &mut Response) {
    if let Some(h) = resp.headers.0.iter_mut().find(|h| h.name == HeaderName::To) {
        if !h.value.contains("tag=") {
            h.value = format!("{};tag={}", h.value, random_token()).into();
        }
    }
}
