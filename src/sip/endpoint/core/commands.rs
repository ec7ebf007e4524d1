//! What the application asks for: responses (with 2xx retransmission until ACK),
//! new client transactions, CANCEL and ACK for 2xx.

use super::*;

impl Core {
    // ---- commands from the application ---------------------------------------------

    pub(super) fn on_command(&mut self, cmd: Command) {
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

    pub(super) fn respond(&mut self, tx: ServerTx, mut response: Response) {
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
            self.open_servers -= 1;
            if let Some(ip) = entry.pending_from.take() {
                self.sources.invite_answered(ip);
            }
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

    pub(super) fn start_client(&mut self, tx: ClientTx, mut request: Request, target: Target) {
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
    pub(super) fn add_client(
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
        self.open_clients += 1;
        self.clients.insert(id, Box::new(entry));
        self.apply_client(id, actions);
    }

    pub(super) fn send_cancel(&mut self, id: u64) {
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
}
