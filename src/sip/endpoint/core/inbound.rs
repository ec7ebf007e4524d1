//! Messages from the network: matching requests and responses to transactions
//! (RFC 3261 §17.1.3, §17.2.3), the overload limits a new request must pass before it
//! gets a transaction (see `overload`), merged requests, CANCEL, ACK, and 400s for
//! requests that do not parse.

use super::*;

impl Core {
    // ---- inbound -------------------------------------------------------------------

    pub(super) fn on_received(&mut self, msg: Received) {
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

    pub(super) fn on_request(&mut self, mut req: Request, peer: Peer) {
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
            // A CANCEL of an INVITE in progress relieves the load: it always passes.
            if !self.cancels_invite_in_progress(&req) && !self.admit(&req, &peer) {
                return;
            }
            return self.on_cancel(req, peer);
        }
        if !self.admit(&req, &peer) {
            return;
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
        let source = peer.remote.ip();
        let new_invite = req.method == Method::Invite && !has_to_tag(&req);
        let id = self.create_server(req, peer, key, if merged { None } else { merge_key });
        if new_invite {
            self.sources.invite_started(source);
            if let Some(entry) = self.servers.get_mut(&id) {
                entry.pending_from = Some(source);
            }
        }
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
        let event = Event::Request {
            tx: ServerTx(id),
            request: entry.request.clone(),
            peer: entry.peer.clone(),
        };
        if let Err(mpsc::error::TrySendError::Full(_)) | Err(mpsc::error::TrySendError::Closed(_)) =
            self.events.try_send(event)
        {
            crate::metrics::sip_rejected(Refusal::EventQueue.as_str());
            let resp = overloaded(&entry.request, &entry.to_tag, Refusal::EventQueue);
            self.respond(ServerTx(id), resp);
        }
    }

    /// The limits a new request (one that would get a transaction) must pass; past one
    /// it is answered 503 statelessly or dropped, and false is returned.
    fn admit(&mut self, req: &Request, peer: &Peer) -> bool {
        let in_dialog = has_to_tag(req);
        let new_invite = req.method == Method::Invite && !in_dialog;
        let mut verdict = self
            .sources
            .admit(peer.remote.ip(), new_invite, Instant::now());
        let cap = self.config.overload.transaction_cap(in_dialog);
        if verdict == Admission::Admit
            && (self.open_transactions() >= cap
                || self.transaction_count() >= cap.saturating_mul(LINGER_FACTOR))
        {
            verdict = Admission::Reject(Refusal::MaxTransactions);
        }
        match verdict {
            Admission::Admit => true,
            Admission::Drop(why) => {
                crate::metrics::sip_dropped(why.as_str());
                tracing::trace!(remote = %peer.remote, reason = why.as_str(), "request dropped");
                false
            }
            Admission::Reject(why) => {
                crate::metrics::sip_rejected(why.as_str());
                tracing::debug!(remote = %peer.remote, method = %req.method.as_str(), reason = why.as_str(), "request refused 503");
                // Stateless: no transaction is kept, a retransmission is judged afresh.
                let mut resp = overloaded(req, &random_token(), why);
                resp.headers
                    .push(HeaderName::Server, self.config.user_agent.as_str());
                let reply_to = response_target(req, peer, self.config.force_rport);
                send(
                    &self.transports,
                    &self.commands,
                    peer.protocol,
                    Some(peer.local),
                    reply_to,
                    resp.to_bytes(),
                    None,
                );
                false
            }
        }
    }

    /// Is `cancel` aimed at an INVITE server transaction we have?
    fn cancels_invite_in_progress(&self, cancel: &Request) -> bool {
        let mut probe = cancel.clone();
        probe.method = Method::Invite;
        server_key(&probe).is_some_and(|k| self.server_keys.contains_key(&k))
    }

    pub(super) fn create_server(
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
        self.open_servers += 1;
        self.servers.insert(
            id,
            Box::new(ServerEntry {
                machine,
                key,
                merge_key,
                request: req,
                peer,
                reply_to,
                to_tag,
                last_response: None,
                final_sent: false,
                pending_from: None,
                timers: TimerSet::new(),
            }),
        );
        self.apply_server(id, actions);
        id
    }

    pub(super) fn on_ack(&mut self, req: Request, peer: Peer, key: &str) {
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
        // Not `emit`: ACKs are not answered and a flood of them (e.g. for our stateless
        // 503s) must not pile up waiting for room; one lost when the queue is full only
        // costs the application a notice, the 2xx retransmission has stopped above.
        if self
            .events
            .try_send(Event::Ack { request: req, peer })
            .is_err()
        {
            crate::metrics::sip_dropped("event_queue");
        }
    }

    pub(super) fn on_cancel(&mut self, cancel: Request, peer: Peer) {
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

    pub(super) fn on_response(&mut self, resp: Response) {
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
        } else if !entry.got_final {
            entry.got_final = true;
            self.open_clients -= 1;
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
}

/// Does the request's To carry a tag (an in-dialog request)?
fn has_to_tag(req: &Request) -> bool {
    req.header_to().is_some_and(|t| t.tag().is_some())
}
