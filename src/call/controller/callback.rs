//! Callbacks (`POST /api/tickets/{id}/callback`): the agent's phone rings first; when
//! the agent answers, the customer is called through an outbound trunk with the agent's
//! media, anchored on our relay like any call. The customer is the call's "caller" side,
//! so recording, BYE handling and the survey work as for an inbound call; the record is
//! an outbound call linked to the ticket with role `reply`.
//!
//! ```text
//!  API ─▶ INVITE agent (our offer) ─▶ 180 … 200 ─▶ ACK ─▶ INVITE customer via trunk
//!                                                 (the agent's codecs, our address)
//!        customer 180 (ring starts) … 200 ─▶ ACK ─▶ Connected: recorded, survey after
//!        401/407 from the trunk: once more with digest credentials
//!        busy / no answer / failure: BYE to the agent, outcome not_reached
//! ```

use super::*;
use crate::call::active::CallbackLeg;
use crate::config::TrunkConfig;

/// How long the customer may ring before the callback is given up.
const CUSTOMER_RING_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a callback was not started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CallbackRefused {
    #[error("agent: no such agent in the configuration")]
    UnknownAgent,
    #[error("trunk: no such trunk in the configuration")]
    UnknownTrunk,
    #[error("no outbound trunk is configured ([[trunks]] in the configuration)")]
    NoTrunk,
    #[error("the agent is neither registered nor has a fixed contact")]
    AgentUnreachable,
    #[error("the agent is ringing or on a call")]
    AgentBusy,
    #[error("no capacity for another call now (shutting down, call limit or media ports)")]
    Overloaded,
}

/// An SDP offer on our relay port with these audio formats, plus RFC 4733
/// telephone-event when they lack it (the survey needs the customer's keys).
fn offer_with(ip: IpAddr, port: u16, formats: &[(u8, Option<String>)]) -> Sdp {
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let session = rand::random::<u32>();
    let mut payloads = Vec::new();
    let mut attributes = String::new();
    let is_event = |e: &Option<String>| {
        e.as_deref()
            .is_some_and(|e| e.to_ascii_lowercase().starts_with("telephone-event"))
    };
    for (pt, encoding) in formats {
        payloads.push(pt.to_string());
        if let Some(encoding) = encoding {
            attributes.push_str(&format!("a=rtpmap:{pt} {encoding}\r\n"));
        }
    }
    if !formats.iter().any(|(_, e)| is_event(e)) {
        // 101 as most phones use, else the first free dynamic type.
        let free = std::iter::once(101u8)
            .chain(96..=127)
            .find(|pt| !formats.iter().any(|(p, _)| p == pt));
        if let Some(pt) = free {
            payloads.push(pt.to_string());
            attributes.push_str(&format!(
                "a=rtpmap:{pt} telephone-event/8000\r\na=fmtp:{pt} 0-15\r\n"
            ));
        }
    }
    let text = format!(
        "v=0\r\no=threering {session} 1 IN {family} {ip}\r\ns=threering\r\nc=IN {family} {ip}\r\n\
         t=0 0\r\nm=audio {port} RTP/AVP {}\r\n{attributes}a=sendrecv\r\n",
        payloads.join(" ")
    );
    Sdp::parse(&text).expect("our own offer parses")
}

/// Our first offer, for the agent: G.711 both laws and RFC 4733 events.
fn our_offer(ip: IpAddr, port: u16) -> Sdp {
    offer_with(
        ip,
        port,
        &[
            (0, Some("PCMU/8000".into())),
            (8, Some("PCMA/8000".into())),
            (101, Some("telephone-event/8000".into())),
        ],
    )
}

impl Controller {
    /// Starts a callback for `ticket`: rings `agent`, who then gets `number`. Answers
    /// with the new call's record id.
    pub(super) async fn start_callback(
        &mut self,
        ticket: String,
        agent: String,
        number: String,
        trunk: Option<String>,
    ) -> Result<String, CallbackRefused> {
        if self.drain_until.is_some() || self.calls.len() >= self.config.daemon.max_calls {
            return Err(CallbackRefused::Overloaded);
        }
        if self.config.agent(&agent).is_none() {
            return Err(CallbackRefused::UnknownAgent);
        }
        let trunk: TrunkConfig = match (trunk.as_deref(), self.config.trunk(trunk.as_deref())) {
            (_, Some(t)) => t.clone(),
            (Some(_), None) => return Err(CallbackRefused::UnknownTrunk),
            (None, None) => return Err(CallbackRefused::NoTrunk),
        };
        let (addr, protocol) = trunk.target().ok_or(CallbackRefused::UnknownTrunk)?;
        let trunk_target = Target { protocol, addr };
        if self.agent_target(&agent).is_none() {
            return Err(CallbackRefused::AgentUnreachable);
        }
        let busy = self.board.get(&agent).is_some_and(|a| {
            matches!(
                a.state,
                super::super::agents::AgentState::Ringing
                    | super::super::agents::AgentState::OnCall
            )
        });
        if busy {
            return Err(CallbackRefused::AgentBusy);
        }
        let media = MediaSession::start(&self.pool, self.cancel.child_token())
            .map_err(|_| CallbackRefused::Overloaded)?;
        // The call belongs to the agent's (first) queue: its survey and recording policy.
        let queue = self
            .config
            .queues
            .iter()
            .find(|q| q.agents.contains(&agent))
            .or(self.config.queues.first())
            .map_or_else(|| "callback".to_owned(), |q| q.name.clone());
        let caller_id = trunk
            .caller_id
            .clone()
            .or_else(|| {
                self.config
                    .queue(&queue)
                    .and_then(|q| q.numbers.first().cloned())
            })
            .unwrap_or_else(|| "threering".to_owned());

        // The customer INVITE, built now (its offer is replaced by the agent's media
        // when the agent answers).
        let uri = Uri::parse(&format!("sip:{number}@{addr}"))
            .map_err(|_| CallbackRefused::UnknownTrunk)?;
        let (host, _) = self.endpoint.local_hostport(protocol, addr);
        let mut invite = Request::new(Method::Invite, uri.clone());
        let tag = new_tag();
        invite.headers.push(
            HeaderName::From,
            format!("<sip:{caller_id}@{host}>;tag={tag}"),
        );
        invite.headers.push(HeaderName::To, format!("<{uri}>"));
        let sip_call_id = format!("{}@threering", random_token());
        invite
            .headers
            .push(HeaderName::CallId, sip_call_id.as_str());
        invite.headers.push(HeaderName::CSeq, "1 INVITE");
        invite.headers.push(
            HeaderName::Contact,
            format!("<{}>", our_contact(&self.endpoint, protocol, addr)),
        );
        invite
            .headers
            .push(HeaderName::Other("X-Ticket-ID".into()), ticket.as_str());
        invite
            .headers
            .push(HeaderName::ContentType, "application/sdp");
        invite.body = our_offer(self.media_ip, media.caller_port())
            .to_string()
            .into();

        let started = Stamp::now();
        let key = self.next_key;
        self.next_key += 1;
        let id = self.new_record_id();
        let record = CallRecord {
            id: id.clone(),
            sip_call_id: sip_call_id.clone(),
            direction: Direction::Outbound,
            caller: agent.clone(),
            callee: number.clone(),
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
            tickets: vec![ticket.clone()],
        };
        let record_call = self.config.queue(&queue).is_none_or(|q| q.record);
        self.calls.insert(
            key,
            Box::new(Call {
                key,
                record: record.clone(),
                phase: Phase::Routing,
                queue,
                caller_tx: None,
                caller_invite: invite,
                caller_peer: Peer {
                    protocol,
                    local: addr,
                    remote: addr,
                },
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
                callback: Some(CallbackLeg {
                    number: number.clone(),
                    trunk,
                    target: trunk_target,
                    tx: None,
                    authenticated: false,
                    failed_status: None,
                }),
                rings_told: 0,
            }),
        );
        if let Some(call) = self.calls.get(&key) {
            cti::offered(&self.events, call);
        }
        self.by_call_id.insert(sip_call_id, key);
        crate::metrics::active_calls(self.calls.len());
        // Saved now, so the API can show the call (and its ticket link) at once.
        self.store.save(record).await;
        tracing::info!(call = %id, %ticket, %agent, %number, "callback: ringing the agent");
        let ring_timeout = self
            .calls
            .get(&key)
            .and_then(|c| self.config.queue(&c.queue))
            .map_or(30_000, |q| q.ring_timeout_ms);
        self.ring_agent(key, &agent, ring_timeout).await;
        if self.calls.get(&key).is_some_and(|c| c.attempts.is_empty()) {
            // The INVITE could not even be sent.
            self.end_call(key, CallOutcome::NoAgent, HangupSide::System)
                .await;
        }
        Ok(id)
    }

    /// The agent of a callback answered: call the customer with the agent's media.
    pub(super) async fn callback_agent_answered(
        &mut self,
        key: u64,
        index: usize,
        dialog: Dialog,
        target: Target,
        resp: Response,
    ) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        call.attempts[index].finish(AttemptOutcome::Answered, Some(resp.status));
        let agent = call.attempts[index].agent.clone();
        call.record.agent = Some(agent.clone());
        call.phase = Phase::Dialing;
        let agent_sdp = std::str::from_utf8(&resp.body)
            .ok()
            .and_then(|b| Sdp::parse(b).ok());
        call.media
            .set_agent_remote(agent_sdp.as_ref().and_then(Sdp::audio_destination));
        if let Some(agent_sdp) = &agent_sdp {
            // The customer is offered what the agent's phone chose, so the relay never
            // has to transcode.
            let offer = offer_with(
                self.media_ip,
                call.media.caller_port(),
                &agent_sdp.audio_formats(),
            );
            call.caller_invite.body = offer.to_string().into();
        }
        self.by_call_id.insert(dialog.id.call_id.clone(), key);
        call.agent_dialog = Some((dialog, target));
        self.board.answered(&agent);
        tracing::info!(call = %call.record.id, %agent, "callback: agent answered, calling the customer");
        self.send_customer_invite(key).await;
    }

    async fn send_customer_invite(&mut self, key: u64) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(leg) = call.callback.as_ref() else {
            return;
        };
        let target = leg.target;
        let invite = call.caller_invite.clone();
        match self.endpoint.request(invite, target).await {
            Ok(tx) => {
                if let Some(leg) = self.calls.get_mut(&key).and_then(|c| c.callback.as_mut()) {
                    leg.tx = Some(tx);
                }
                self.clients.insert(tx, Purpose::Customer { call: key });
                self.timer(CUSTOMER_RING_TIMEOUT, Timer::CustomerTimeout { call: key });
            }
            Err(e) => {
                tracing::warn!(error = %e, "callback: the customer INVITE could not be sent");
                self.customer_failed(key, None).await;
            }
        }
    }

    /// A response to the customer INVITE.
    pub(super) async fn on_customer_response(&mut self, key: u64, resp: Response) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let status = resp.status;
        if status < 200 {
            if matches!(status, 180 | 183) && call.caller_ringing.is_none() {
                call.caller_ringing = Some(Stamp::now());
                let agent = call.record.agent.clone();
                cti::ringing(
                    &self.events,
                    call,
                    agent.as_deref(),
                    self.config.rings.cadence_ms,
                );
            }
            return;
        }
        if (200..300).contains(&status) {
            return self.customer_answered(key, resp).await;
        }
        if matches!(status, 401 | 407) && self.retry_with_credentials(key, &resp).await {
            return;
        }
        self.customer_failed(key, Some(status)).await;
    }

    /// Answers a trunk's digest challenge once. False if there is nothing to answer with.
    async fn retry_with_credentials(&mut self, key: u64, resp: &Response) -> bool {
        let Some(call) = self.calls.get_mut(&key) else {
            return false;
        };
        let Some(leg) = call.callback.as_mut() else {
            return false;
        };
        let (Some(user), Some(password)) = (&leg.trunk.username, &leg.trunk.password) else {
            return false;
        };
        if leg.authenticated {
            return false;
        }
        let (challenge_header, answer_header) = if resp.status == 401 {
            (HeaderName::WwwAuthenticate, HeaderName::Authorization)
        } else {
            (
                HeaderName::ProxyAuthenticate,
                HeaderName::ProxyAuthorization,
            )
        };
        let Some(challenge) = resp
            .headers
            .get(&challenge_header)
            .and_then(|v| crate::sip::auth::parse_challenge(v).ok())
        else {
            return false;
        };
        let mut invite = call.caller_invite.clone();
        let uri = invite.uri.to_string();
        let value = crate::sip::auth::authorization_for(
            &challenge,
            "INVITE",
            &uri,
            user,
            password.expose(),
            &random_token(),
            1,
        );
        let seq = invite.cseq().map_or(1, |c| c.seq) + 1;
        invite
            .headers
            .set(HeaderName::CSeq, format!("{seq} INVITE"));
        invite.headers.push(answer_header, value);
        leg.authenticated = true;
        call.caller_invite = invite;
        tracing::info!(call = %call.record.id, "callback: the trunk asked for credentials; sending them");
        self.send_customer_invite(key).await;
        true
    }

    async fn customer_answered(&mut self, key: u64, resp: Response) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Ok(dialog) = Dialog::uac(&call.caller_invite, &resp) else {
            tracing::warn!(call = %call.record.id, "callback: the customer's 200 OK does not form a dialog");
            return;
        };
        let seq = call.caller_invite.cseq().map_or(1, |c| c.seq);
        let target = call
            .callback
            .as_ref()
            .map(|l| l.target)
            .expect("a callback");
        let _ = self.endpoint.ack(dialog.ack(seq), target).await;
        if call.phase != Phase::Dialing {
            // A retransmitted 2xx: the ACK was all it needed.
            return;
        }
        let now = Stamp::now();
        call.answered = Some(now);
        call.phase = Phase::Connected;
        call.record.outcome = CallOutcome::Answered;
        if let Some(leg) = call.callback.as_mut() {
            leg.tx = None;
        }
        let answer = std::str::from_utf8(&resp.body)
            .ok()
            .and_then(|b| Sdp::parse(b).ok());
        call.media
            .set_caller_remote(answer.as_ref().and_then(Sdp::audio_destination));
        call.caller_codec = answer.as_ref().and_then(first_g711);
        if call.recording_wanted {
            let agent_sdp = std::str::from_utf8(&call.caller_invite.body)
                .ok()
                .and_then(|b| Sdp::parse(b).ok());
            ringing::start_recording(
                call,
                &self.config.store.recordings,
                [answer.as_ref(), agent_sdp.as_ref()],
            );
        }
        call.caller_dialog = Some(dialog);
        let rings = &self.config.rings;
        call.sync_record(rings.cadence_ms, rings.target, rings.limit);
        // The three-ring rule is about callers waiting for us, not customers we call.
        call.record.three_ring_ok = None;
        call.record.over_limit = None;
        let record = call.record.clone();
        cti::answered(&self.events, &record, self.config.rings.target);
        tracing::info!(call = %record.id, customer_ring_ms = record.caller_ring_ms, "callback: the customer answered");
        self.store.save(record).await;
    }

    /// The customer leg failed (busy, declined, no answer, unreachable): the agent is
    /// told with a BYE and the call ends, not reached.
    pub(super) async fn customer_failed(&mut self, key: u64, status: Option<u16>) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if let Some(leg) = call.callback.as_mut() {
            leg.tx = None;
            leg.failed_status = status;
        }
        tracing::info!(call = %call.record.id, status = ?status, "callback: the customer was not reached");
        if let Some((dialog, target)) = call.agent_dialog.as_mut() {
            let bye = dialog.request(Method::Bye);
            let target = *target;
            if let Ok(tx) = self.endpoint.request(bye, target).await {
                self.clients.insert(tx, Purpose::Bye);
            }
        }
        self.end_call(key, CallOutcome::NotReached, HangupSide::System)
            .await;
    }

    /// The customer rang too long.
    pub(super) async fn customer_timeout(&mut self, key: u64) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        if call.phase != Phase::Dialing {
            return;
        }
        if let Some(tx) = call.callback.as_ref().and_then(|l| l.tx) {
            // The 487 that follows ends the call.
            let _ = self.endpoint.cancel(tx).await;
        }
    }

    /// CANCELs a customer INVITE still ringing (the agent hung up, or shutdown).
    pub(super) async fn cancel_customer(&mut self, key: u64) {
        let Some(tx) = self
            .calls
            .get_mut(&key)
            .and_then(|c| c.callback.as_mut())
            .and_then(|l| l.tx.take())
        else {
            return;
        };
        let _ = self.endpoint.cancel(tx).await;
    }
}

/// The first G.711 format of an SDP: what prompts are played to that side in.
pub(super) fn first_g711(sdp: &Sdp) -> Option<(crate::media::prompt::PromptCodec, u8)> {
    sdp.audio_formats().into_iter().find_map(|(pt, enc)| {
        let name = enc
            .as_deref()
            .and_then(|e| e.split('/').next())
            .map(str::to_ascii_uppercase);
        match (pt, name.as_deref()) {
            (0, None) | (_, Some("PCMU")) => Some((crate::media::prompt::PromptCodec::Pcmu, pt)),
            (8, None) | (_, Some("PCMA")) => Some((crate::media::prompt::PromptCodec::Pcma, pt)),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_offer_keeps_the_agents_codec_and_adds_events() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let offer = offer_with(ip, 20_000, &[(8, Some("PCMA/8000".into()))]);
        assert_eq!(
            offer.audio_formats(),
            vec![
                (8, Some("PCMA/8000".to_owned())),
                (101, Some("telephone-event/8000".to_owned()))
            ]
        );
        assert_eq!(
            offer.audio_destination(),
            Some("127.0.0.1:20000".parse().unwrap())
        );
        // 101 taken by something else: the first free dynamic type.
        let offer = offer_with(ip, 20_000, &[(101, Some("PCMU/8000".into()))]);
        assert_eq!(offer.audio_formats()[1].0, 96);
        // Events already there: not added twice.
        let offer = our_offer(ip, 20_002);
        assert_eq!(offer.audio_formats().len(), 3);
    }
}
