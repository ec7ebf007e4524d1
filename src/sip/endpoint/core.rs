//! The endpoint's single task: matches messages to transactions (RFC 3261 §17.1.3,
//! §17.2.3), drives the pure machines of `transaction` with one timer heap, and does
//! the UAS core's duties (validation, merged-request detection, CANCEL, 2xx
//! retransmission until ACK).

use super::build::{
    ack_for_failure, add_via, cancel_for, local_hostport, response_target, stamp_received, Target,
};
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
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

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
    servers: HashMap<u64, ServerEntry>,
    server_keys: HashMap<String, u64>,
    merge_keys: HashMap<String, u64>,
    next_server: u64,
    clients: HashMap<u64, ClientEntry>,
    client_keys: HashMap<String, u64>,
    pending_2xx: HashMap<String, Pending2xx>,
    heap: BinaryHeap<Reverse<(Instant, TimerOwner, TimerId)>>,
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
        }
    }

    pub(crate) async fn run(
        mut self,
        mut inbound: mpsc::Receiver<Received>,
        mut commands: mpsc::Receiver<Command>,
        cancel: CancellationToken,
    ) {
        loop {
            let next = self.heap.peek().map(|Reverse((at, _, _))| *at);
            tokio::select! {
                _ = cancel.cancelled() => return,
                Some(msg) = inbound.recv() => self.on_received(msg),
                Some(cmd) = commands.recv() => self.on_command(cmd),
                _ = sleep_until_opt(next) => self.on_timers(),
            }
        }
    }

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

    // ---- inbound -------------------------------------------------------------------

    fn on_received(&mut self, msg: Received) {
        match parse(msg.data.clone()) {
            Ok(Message::Request(req)) => self.on_request(req, msg.peer),
            Ok(Message::Response(resp)) => self.on_response(resp),
            Err(e) => {
                let Some(info) = reply_info(&msg.data) else {
                    tracing::debug!(remote = %msg.peer.remote, error = %e, "dropped unparseable message");
                    return;
                };
                if info.method == "ACK" {
                    return;
                }
                tracing::debug!(remote = %msg.peer.remote, error = %e, "answering unparseable request");
                let mut resp = info.response(e.status(), &e.reason_phrase());
                add_to_tag(&mut resp);
                send(
                    &self.transports,
                    &self.commands,
                    msg.peer.protocol,
                    Some(msg.peer.local),
                    msg.peer.remote,
                    resp.to_bytes(),
                    None,
                );
            }
        }
    }

    fn on_request(&mut self, mut req: Request, peer: Peer) {
        stamp_received(&mut req, &peer);
        let Some(key) = server_key(&req) else {
            // No usable Via: cannot be answered.
            return;
        };
        if req.method == Method::Ack {
            return self.on_ack(req, peer, &key);
        }
        if let Some(&id) = self.server_keys.get(&key) {
            let actions = match &mut self.servers.get_mut(&id).expect("indexed").machine {
                ServerMachine::Invite(m) => m.on_request_retransmission(),
                ServerMachine::NonInvite(m) => m.on_request_retransmission(),
            };
            return self.apply_server(id, actions);
        }
        if req.method == Method::Cancel {
            return self.on_cancel(req, peer);
        }
        // Merged request (RFC 3261 §8.2.2.2): same From tag, Call-ID and CSeq as a
        // request in progress but another branch, and no To tag.
        let merge_key = match (
            req.header_to().map(|t| t.tag().is_none()),
            req.header_from(),
            req.cseq(),
        ) {
            (Some(true), Some(from), Some(cseq)) => from.tag().map(|tag| {
                format!(
                    "{}|{}|{}|{}",
                    req.call_id().unwrap_or(""),
                    tag,
                    cseq.seq,
                    cseq.method
                )
            }),
            _ => None,
        };
        let merged = merge_key
            .as_ref()
            .is_some_and(|k| self.merge_keys.contains_key(k));
        let id = self.create_server(req, peer, key, if merged { None } else { merge_key });
        let entry = &self.servers[&id];
        if merged {
            return self.respond(
                ServerTx(id),
                response_to(&entry.request, 482, None, Some(&entry.to_tag)),
            );
        }
        if let Err(rejection) = check_request(&entry.request, &self.config.capabilities) {
            let mut resp = response_to(
                &entry.request,
                rejection.status,
                Some(&rejection.reason),
                Some(&entry.to_tag),
            );
            for (name, value) in rejection.headers {
                resp.headers.push(name, value);
            }
            return self.respond(ServerTx(id), resp);
        }
        if self.transaction_count() > self.config.max_transactions {
            let resp = overloaded(&entry.request, &entry.to_tag);
            return self.respond(ServerTx(id), resp);
        }
        let event = Event::Request {
            tx: ServerTx(id),
            request: entry.request.clone(),
            peer: entry.peer.clone(),
        };
        if let Err(mpsc::error::TrySendError::Full(_)) | Err(mpsc::error::TrySendError::Closed(_)) =
            self.events.try_send(event)
        {
            let resp = overloaded(&entry.request, &entry.to_tag);
            self.respond(ServerTx(id), resp);
        }
    }

    fn create_server(
        &mut self,
        req: Request,
        peer: Peer,
        key: String,
        merge_key: Option<String>,
    ) -> u64 {
        let id = self.next_server;
        self.next_server += 1;
        let reliable = peer.protocol.is_reliable();
        let (machine, actions) = if req.method == Method::Invite {
            let (m, a) = ServerInvite::new(reliable, self.config.timers);
            (ServerMachine::Invite(m), a)
        } else {
            let (m, a) = ServerNonInvite::new(reliable, self.config.timers);
            (ServerMachine::NonInvite(m), a)
        };
        let reply_to = response_target(&req, &peer, self.config.force_rport);
        // A To tag the request already has (in-dialog) stays; otherwise ours.
        let to_tag = req
            .header_to()
            .and_then(|t| t.tag().map(str::to_owned))
            .unwrap_or_else(random_token);
        self.server_keys.insert(key.clone(), id);
        if let Some(k) = &merge_key {
            self.merge_keys.insert(k.clone(), id);
        }
        self.servers.insert(
            id,
            ServerEntry {
                machine,
                key,
                merge_key,
                request: req,
                peer,
                reply_to,
                to_tag,
                last_response: None,
                final_sent: false,
                timers: TimerSet::new(),
            },
        );
        self.apply_server(id, actions);
        id
    }

    fn on_ack(&mut self, req: Request, peer: Peer, key: &str) {
        if let Some(&id) = self.server_keys.get(key) {
            let entry = self.servers.get_mut(&id).expect("indexed");
            if let ServerMachine::Invite(m) = &mut entry.machine {
                let actions = m.on_ack();
                let pass_up = actions.contains(&Action::PassAckToTu);
                self.apply_server(id, actions);
                if !pass_up {
                    return; // ACK for a non-2xx: the transaction's own business
                }
            }
        }
        if let (Some(call_id), Some(cseq)) = (req.call_id(), req.cseq()) {
            self.pending_2xx.remove(&pending_key(call_id, cseq.seq));
        }
        emit(&self.events, Event::Ack { request: req, peer });
    }

    fn on_cancel(&mut self, cancel: Request, peer: Peer) {
        // The CANCEL names its INVITE by the same branch (RFC 3261 §9.2).
        let invite_key = {
            let mut probe = cancel.clone();
            probe.method = Method::Invite;
            server_key(&probe)
        };
        let cancel_key = server_key(&cancel).unwrap_or_default();
        let id = self.create_server(cancel, peer, cancel_key, None);
        let cancel_req = self.servers[&id].request.clone();
        let to_tag = self.servers[&id].to_tag.clone();
        let invite_id = invite_key.and_then(|k| self.server_keys.get(&k).copied());
        let Some(invite_id) = invite_id else {
            return self.respond(
                ServerTx(id),
                response_to(&cancel_req, 481, None, Some(&to_tag)),
            );
        };
        self.respond(
            ServerTx(id),
            response_to(&cancel_req, 200, None, Some(&to_tag)),
        );
        let invite = &self.servers[&invite_id];
        if !invite.final_sent {
            let resp = response_to(&invite.request, 487, None, Some(&invite.to_tag));
            self.respond(ServerTx(invite_id), resp);
            emit(
                &self.events,
                Event::Cancelled {
                    tx: ServerTx(invite_id),
                },
            );
        }
    }

    fn on_response(&mut self, resp: Response) {
        let (Some(via), Some(cseq)) = (resp.top_via(), resp.cseq()) else {
            return;
        };
        let Some(branch) = via.branch() else { return };
        let key = format!("{branch}|{}", cseq.method);
        let Some(&id) = self.client_keys.get(&key) else {
            tracing::debug!(status = resp.status, "response matches no transaction");
            return;
        };
        let entry = self.clients.get_mut(&id).expect("indexed");
        let actions = match &mut entry.machine {
            ClientMachine::Invite(m) => m.on_response(resp.status),
            ClientMachine::NonInvite(m) => m.on_response(resp.status),
        };
        if resp.status < 200 {
            entry.got_provisional = true;
        } else {
            entry.got_final = true;
        }
        entry.last_response = Some(resp);
        let send_cancel = entry.cancel_pending && entry.got_provisional && !entry.got_final;
        if send_cancel {
            entry.cancel_pending = false;
        }
        self.apply_client(id, actions);
        if send_cancel {
            self.send_cancel(id);
        }
    }

    // ---- commands from the application ---------------------------------------------

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Respond { tx, response } => self.respond(tx, response),
            Command::Request {
                tx,
                request,
                target,
            } => self.start_client(tx, request, target),
            Command::Cancel { tx } => {
                let Some(entry) = self.clients.get_mut(&tx.0) else {
                    return;
                };
                if entry.got_final || entry.request.method != Method::Invite {
                    return;
                }
                if entry.got_provisional {
                    self.send_cancel(tx.0);
                } else {
                    entry.cancel_pending = true;
                }
            }
            Command::Ack {
                mut request,
                target,
            } => {
                let (host, port) =
                    local_hostport(&self.transports, &self.config, target.protocol, target.addr);
                add_via(&mut request, &host, port, target.protocol);
                send(
                    &self.transports,
                    &self.commands,
                    target.protocol,
                    None,
                    target.addr,
                    request.to_bytes(),
                    None,
                );
            }
            Command::SendFailed { tx } => {
                if let Some(tx) = tx {
                    let actions = match self.clients.get_mut(&tx.0).map(|e| &mut e.machine) {
                        Some(ClientMachine::Invite(m)) => m.on_transport_error(),
                        Some(ClientMachine::NonInvite(m)) => m.on_transport_error(),
                        None => return,
                    };
                    self.apply_client(tx.0, actions);
                }
            }
        }
    }

    fn respond(&mut self, tx: ServerTx, mut response: Response) {
        let Some(entry) = self.servers.get_mut(&tx.0) else {
            tracing::debug!(tx = tx.0, "response for a finished transaction dropped");
            return;
        };
        if entry.final_sent {
            return;
        }
        if response.headers.count(&HeaderName::Via) == 0 {
            // A bare response (status, extra headers, body), e.g. one relayed from the
            // other leg of a B2BUA: address it from the request it answers.
            let tag = (response.status > 100).then_some(entry.to_tag.as_str());
            let mut full =
                response_to(&entry.request, response.status, Some(&response.reason), tag);
            full.headers.0.append(&mut response.headers.0);
            full.body = std::mem::take(&mut response.body);
            response = full;
        }
        if response.status > 100 {
            ensure_to_tag(&mut response, &entry.to_tag);
        }
        if response.headers.count(&HeaderName::Server) == 0
            && response.headers.count(&HeaderName::UserAgent) == 0
        {
            response
                .headers
                .push(HeaderName::Server, self.config.user_agent.as_str());
        }
        let bytes = response.to_bytes();
        entry.last_response = Some(bytes.clone());
        if response.status >= 200 {
            entry.final_sent = true;
        }
        let is_invite_2xx = entry.request.method == Method::Invite && response.is_success();
        if is_invite_2xx {
            if let (Some(call_id), Some(cseq)) = (entry.request.call_id(), entry.request.cseq()) {
                let now = Instant::now();
                let key = pending_key(call_id, cseq.seq);
                let t1 = self.config.timers.t1;
                let reliable = entry.peer.protocol.is_reliable();
                // Over TCP the 2xx is not resent, but the ACK is still awaited.
                let first = if reliable {
                    self.config.timers.timeout()
                } else {
                    t1
                };
                self.pending_2xx.insert(
                    key.clone(),
                    Pending2xx {
                        bytes: bytes.clone(),
                        protocol: entry.peer.protocol,
                        local: entry.peer.local,
                        reply_to: entry.reply_to,
                        interval: t1,
                        give_up_at: now + self.config.timers.timeout(),
                        next_at: now + first,
                    },
                );
                self.heap.push(Reverse((
                    now + first.min(self.config.timers.timeout()),
                    TimerOwner::Pending2xx(key),
                    TimerId::G,
                )));
            }
        }
        let actions = match &mut entry.machine {
            ServerMachine::Invite(m) => m.on_tu_response(response.status),
            ServerMachine::NonInvite(m) => m.on_tu_response(response.status),
        };
        self.apply_server(tx.0, actions);
    }

    fn start_client(&mut self, tx: ClientTx, mut request: Request, target: Target) {
        let (host, port) =
            local_hostport(&self.transports, &self.config, target.protocol, target.addr);
        let branch = add_via(&mut request, &host, port, target.protocol);
        if request.headers.count(&HeaderName::UserAgent) == 0 {
            request
                .headers
                .push(HeaderName::UserAgent, self.config.user_agent.as_str());
        }
        let method = request
            .cseq()
            .map(|c| c.method)
            .unwrap_or_else(|| request.method.clone());
        let key = format!("{branch}|{method}");
        let reliable = target.protocol.is_reliable();
        let (machine, actions) = if request.method == Method::Invite {
            let (m, a) = ClientInvite::new(reliable, self.config.timers);
            (ClientMachine::Invite(m), a)
        } else {
            let (m, a) = ClientNonInvite::new(reliable, self.config.timers);
            (ClientMachine::NonInvite(m), a)
        };
        self.add_client(tx.0, key, request, target, machine, actions);
    }

    /// Registers a client transaction and performs its first actions.
    fn add_client(
        &mut self,
        id: u64,
        key: String,
        request: Request,
        target: Target,
        machine: ClientMachine,
        actions: Vec<Action>,
    ) {
        self.client_keys.insert(key.clone(), id);
        let entry = ClientEntry {
            machine,
            key,
            bytes: request.to_bytes(),
            request,
            target,
            last_response: None,
            got_provisional: false,
            got_final: false,
            cancel_pending: false,
            timers: TimerSet::new(),
        };
        self.clients.insert(id, entry);
        self.apply_client(id, actions);
    }

    fn send_cancel(&mut self, id: u64) {
        let Some(entry) = self.clients.get(&id) else {
            return;
        };
        let cancel = cancel_for(&entry.request);
        let target = entry.target;
        // The CANCEL is its own non-INVITE client transaction with the INVITE's branch.
        let cancel_tx = ClientTx(u64::MAX - id);
        let (machine, actions) =
            ClientNonInvite::new(target.protocol.is_reliable(), self.config.timers);
        let branch = cancel.branch().unwrap_or_default();
        let key = format!("{branch}|CANCEL");
        let machine = ClientMachine::NonInvite(machine);
        self.add_client(cancel_tx.0, key, cancel, target, machine, actions);
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
                self.server_keys.remove(&entry.key);
                if let Some(k) = entry.merge_key {
                    self.merge_keys.remove(&k);
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

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// 503 with Retry-After, for requests past a limit.
fn overloaded(req: &Request, to_tag: &str) -> Response {
    let mut resp = response_to(
        req,
        503,
        Some("Service Unavailable: overloaded"),
        Some(to_tag),
    );
    resp.headers.push(HeaderName::RetryAfter, "5");
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
