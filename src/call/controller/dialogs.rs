//! Calls after the answer: requests inside either dialog (BYE ends the call; re-INVITE,
//! INFO, UPDATE and OPTIONS are relayed to the other leg), ending calls and writing their
//! records, and ending every call at shutdown.

use super::*;

impl Controller {
    /// Requests inside a dialog: BYE ends the call; re-INVITE, INFO, UPDATE and OPTIONS
    /// are relayed to the other leg.
    pub(super) async fn in_dialog(&mut self, tx: ServerTx, req: Request, _peer: Peer) {
        let call_id = req.call_id().unwrap_or("").to_owned();
        let Some(&key) = self.by_call_id.get(&call_id) else {
            return self.respond(tx, response_to(&req, 481, None, None)).await;
        };
        let wants_survey = self.survey_wanted(key);
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
        let surveying = call.phase == Phase::Survey;
        if surveying && from_caller && req.method == Method::Info {
            // Keys sent as SIP INFO (application/dtmf-relay or application/dtmf).
            let digit = std::str::from_utf8(&req.body)
                .ok()
                .and_then(crate::media::dtmf::parse_dtmf_relay);
            if let (Some(digit), Some(survey)) = (digit, call.survey.as_ref()) {
                let _ = survey.digits.try_send(digit);
            }
            return self.respond(tx, response_to(&req, 200, None, None)).await;
        }
        let connected = call.phase == Phase::Connected;
        if req.method == Method::Refer && !from_caller && connected {
            return self.refer_from_agent(key, tx, &req).await;
        }
        if req.method == Method::Bye && !from_caller && connected && wants_survey {
            self.respond(tx, response_to(&req, 200, None, None)).await;
            return self.start_survey(key).await;
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

    pub(super) async fn on_relay_response(
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
    pub(super) async fn respond_relayed(&self, tx: ServerTx, resp: Response) {
        let _ = self.endpoint.respond_for(tx, resp).await;
    }

    /// Ends a connected call: BYE to the leg(s) that did not hang up.
    /// `from_caller`: Some(true) if the caller sent BYE, Some(false) the agent, None
    /// when we end it (both legs get a BYE).
    pub(super) async fn hang_up(&mut self, key: u64, side: HangupSide, from_caller: Option<bool>) {
        // A callback whose customer is still ringing: stop ringing them.
        self.cancel_customer(key).await;
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

    pub(super) async fn end_call(&mut self, key: u64, outcome: CallOutcome, side: HangupSide) {
        let Some(mut call) = self.calls.remove(&key) else {
            return;
        };
        // A survey still running (one that finished told survey.completed already).
        let surveying = call.phase == Phase::Survey && call.survey.is_some();
        call.finish(outcome, side);
        let rings = &self.config.rings;
        call.sync_record(rings.cadence_ms, rings.target, rings.limit);
        if surveying {
            // The caller hung up (or the daemon stopped) before the survey ended.
            cti::survey_completed(&self.events, &call.record, "hung_up");
        }
        cti::ended(&self.events, &call.record);
        let wrap_up = self.config.queue(&call.queue).map_or(0, |q| q.wrap_up_ms);
        // An agent who handed the caller to the survey was freed then.
        if let (Some(agent), None) = (&call.record.agent, call.agent_left) {
            self.board
                .call_ended(agent, Instant::now(), Duration::from_millis(wrap_up));
        }
        if let Some(tx) = call.caller_tx {
            self.by_caller_tx.remove(&tx);
        }
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
        // So is a callback's customer INVITE.
        if let Some(leg) = &call.callback {
            for (tx, purpose) in self.clients.iter_mut() {
                if matches!(purpose, Purpose::Customer { call } if *call == key) {
                    let index = self.next_key;
                    self.next_key += 1;
                    self.orphans
                        .insert(index, (call.caller_invite.clone(), leg.target));
                    *purpose = Purpose::Orphan { index };
                    let _ = tx;
                }
            }
        }
        self.clients.retain(|_, p| match p {
            Purpose::Attempt { call, .. }
            | Purpose::Relay { call, .. }
            | Purpose::Customer { call } => *call != key,
            Purpose::Bye | Purpose::Orphan { .. } => true,
        });
        let mut record = call.record;
        tracing::info!(call = %record.id, outcome = record.outcome.as_str(), hangup = ?record.hangup_side, talk_ms = record.talk_ms, "call ended");
        crate::metrics::call_ended(
            record.queue.as_deref().unwrap_or(""),
            record.outcome.as_str(),
        );
        crate::metrics::active_calls(self.calls.len());
        match call.recorder {
            // Closing the file (padding, fsync, checksum) happens off this task; the
            // record is written once the recording's details are known.
            Some(recorder) => {
                let store = self.store.clone();
                let root = self.config.store.recordings.clone();
                self.finalizers.spawn(async move {
                    match recorder.stop().await {
                        Ok(summary) => {
                            crate::alarms::clear(crate::alarms::Alarm::RecordingsFailing);
                            record.recording.sha256 = Some(summary.sha256);
                            record.recording.duration_ms = Some(summary.duration_ms as i64);
                            record.recording.bytes = Some(summary.bytes as i64);
                            record.recording.paused_spans = summary
                                .paused_spans
                                .into_iter()
                                .map(|(start, end)| PausedSpan {
                                    start_ms: start as i64,
                                    end_ms: end.map(|e| e as i64),
                                })
                                .collect();
                        }
                        Err(e) => {
                            tracing::error!(call = %record.id, error = %e, "recording could not be closed");
                            crate::metrics::recording_failed();
                            crate::alarms::raise(
                                crate::alarms::Alarm::RecordingsFailing,
                                format!("call {}: {e}", record.id),
                            );
                            salvage_recording(&root, &mut record).await;
                        }
                    }
                    store.save(record).await;
                });
            }
            None => self.store.save(record).await,
        }
    }

    /// Shutdown: every call ends now, by the system.
    pub(super) async fn end_all(&mut self) {
        let keys: Vec<u64> = self.calls.keys().copied().collect();
        for key in keys {
            let phase = self.calls.get(&key).map(|c| c.phase);
            match phase {
                Some(Phase::Connected | Phase::Dialing) => {
                    self.hang_up(key, HangupSide::System, None).await
                }
                Some(Phase::Survey) => self.hang_up(key, HangupSide::System, Some(false)).await,
                Some(Phase::Routing) => {
                    if let Some(call) = self.calls.get(&key) {
                        let mut resp = response_to(
                            &call.caller_invite,
                            503,
                            Some("Service Unavailable: shutting down"),
                            Some(&call.caller_tag),
                        );
                        resp.headers.push(HeaderName::RetryAfter, "30");
                        if let Some(tx) = call.caller_tx {
                            self.respond(tx, resp).await;
                        }
                    }
                    let ringing = self
                        .calls
                        .get_mut(&key)
                        .map(|call| call.close_open_attempts())
                        .unwrap_or_default();
                    self.cancel_attempts(ringing).await;
                    self.end_call(key, CallOutcome::Rejected, HangupSide::System)
                        .await;
                }
                _ => {}
            }
        }
    }

    /// Whether this call's caller is surveyed when the agent hangs up.
    fn survey_wanted(&self, key: u64) -> bool {
        let Some(call) = self.calls.get(&key) else {
            return false;
        };
        let queue_says = self.config.queue(&call.queue).and_then(|q| q.survey);
        queue_says.unwrap_or(self.config.survey.enabled) && self.survey_wanted_ignoring_policy(key)
    }

    /// Whether a survey can run for this call at all (prompts, codec, a caller dialog),
    /// whatever the policy: an explicit request (API, REFER) overrides the policy.
    fn survey_wanted_ignoring_policy(&self, key: u64) -> bool {
        self.calls.get(&key).is_some_and(|call| {
            self.survey_prompts.contains_key(&call.queue)
                && call.caller_codec.is_some()
                && call.caller_dialog.is_some()
        })
    }

    /// The agent hung up: keep the caller, stop relaying to the agent, play the survey.
    /// Hand-off to the survey is not "the agent hung up first".
    pub(super) async fn start_survey(&mut self, key: u64) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(prompts) = self.survey_prompts.get(&call.queue) else {
            return;
        };
        let Some((codec, pt)) = call.caller_codec else {
            return;
        };
        let now = Stamp::now();
        call.phase = Phase::Survey;
        call.agent_left = Some(now);
        call.record.survey_offered = true;
        call.media.detach_agent();
        if let Some((dialog, _)) = call.agent_dialog.take() {
            self.by_call_id.remove(&dialog.id.call_id);
        }
        if let Some(agent) = &call.record.agent {
            let wrap_up = self.config.queue(&call.queue).map_or(0, |q| q.wrap_up_ms);
            self.board
                .call_ended(agent, now.mono, Duration::from_millis(wrap_up));
        }
        // The caller's telephone-event payload type, from its offer.
        let offer = std::str::from_utf8(&call.caller_invite.body)
            .ok()
            .and_then(|b| Sdp::parse(b).ok());
        let events_pt = offer.and_then(|sdp| {
            sdp.audio_formats().into_iter().find_map(|(pt, enc)| {
                enc.filter(|e| e.to_ascii_lowercase().starts_with("telephone-event"))
                    .map(|_| pt)
            })
        });
        let (digits_tx, digits_rx) = mpsc::channel(8);
        call.media
            .set_caller_dtmf(events_pt, Some(digits_tx.clone()));
        let plan = prompts.plan(codec, pt);
        let media = call.media.clone();
        let timers = self.timers_tx.clone();
        let task = tokio::spawn(async move {
            let score = super::super::survey::run(media, digits_rx, plan).await;
            let _ = timers.send(Timer::SurveyDone { call: key, score }).await;
        });
        call.survey = Some(super::super::active::SurveyState {
            digits: digits_tx,
            task,
        });
        tracing::info!(call = %call.record.id, "agent hung up: caller handed to the survey");
    }

    /// The API asked to hand this call's caller to the survey: BYE to the agent, then
    /// the survey as if the agent had hung up.
    pub(super) async fn survey_on_request(
        &mut self,
        call_id: &str,
    ) -> Result<(), super::SurveyRefused> {
        let key = self
            .calls
            .values()
            .find(|c| c.record.id == call_id && c.phase == Phase::Connected)
            .map(|c| c.key)
            .ok_or(super::SurveyRefused::NoSuchCall)?;
        if !self.survey_wanted_ignoring_policy(key) {
            return Err(super::SurveyRefused::Unavailable);
        }
        if let Some(call) = self.calls.get_mut(&key) {
            if let Some((dialog, target)) = call.agent_dialog.as_mut() {
                let bye = dialog.request(Method::Bye);
                let target = *target;
                if let Ok(tx) = self.endpoint.request(bye, target).await {
                    self.clients.insert(tx, Purpose::Bye);
                }
            }
        }
        self.start_survey(key).await;
        Ok(())
    }

    /// The agent transfers the caller with REFER. Transfer to the survey number hands
    /// the caller to the survey (202, a NOTIFY with the outcome, BYE to the agent);
    /// other transfers are not supported yet.
    async fn refer_from_agent(&mut self, key: u64, tx: ServerTx, req: &Request) {
        let refer_to = req
            .headers
            .get(&HeaderName::ReferTo)
            .and_then(|v| crate::sip::NameAddr::parse(v).ok())
            .and_then(|n| n.uri.user());
        let to_survey = refer_to.as_deref() == Some(self.config.survey.number.as_str());
        if !to_survey || !self.survey_wanted_ignoring_policy(key) {
            let resp = response_to(
                req,
                403,
                Some("Forbidden: only transfers to the survey are supported"),
                None,
            );
            return self.respond(tx, resp).await;
        }
        self.respond(tx, response_to(req, 202, None, None)).await;
        if let Some(call) = self.calls.get_mut(&key) {
            if let Some((dialog, target)) = call.agent_dialog.as_mut() {
                let mut notify = dialog.request(Method::Notify);
                notify.headers.push(HeaderName::Event, "refer");
                notify.headers.push(
                    HeaderName::Other("Subscription-State".into()),
                    "terminated;reason=noresource",
                );
                notify
                    .headers
                    .push(HeaderName::ContentType, "message/sipfrag;version=2.0");
                notify.body = bytes::Bytes::from_static(b"SIP/2.0 200 OK\r\n");
                let target = *target;
                if let Ok(client) = self.endpoint.request(notify, target).await {
                    self.clients.insert(client, Purpose::Bye);
                }
            }
        }
        let id = self
            .calls
            .get(&key)
            .map(|c| c.record.id.clone())
            .unwrap_or_default();
        let _ = self.survey_on_request(&id).await;
    }
}

/// A recording cut short by a write error (volume full, I/O error): the file is made a
/// valid WAV of the audio written so far (header rewritten, a torn frame cut; no new space
/// is needed), and the record says so (`interrupted`, with the repaired file's length and
/// checksum), so QA never meets a file whose header disagrees with its data. When even
/// that fails the record keeps no recording details and the file is left for the repair
/// at the next start.
async fn salvage_recording(root: &std::path::Path, record: &mut CallRecord) {
    let Some(relative) = record.recording_path.clone() else {
        return;
    };
    let path = root.join(&relative);
    let repaired =
        tokio::task::spawn_blocking(move || crate::recording::repair(&path).map(|s| (s, path)))
            .await;
    match repaired {
        Ok(Ok((summary, path))) => {
            let summary = match summary {
                Some(s) => Ok(s),
                None => crate::recording::summarize(&path),
            };
            match summary {
                Ok(s) => {
                    record.recording.interrupted = true;
                    record.recording.sha256 = Some(s.sha256);
                    record.recording.duration_ms = Some(s.duration_ms as i64);
                    record.recording.bytes = Some(s.bytes as i64);
                }
                Err(e) => {
                    tracing::error!(call = %record.id, error = %e, "the cut-short recording cannot be read back")
                }
            }
        }
        Ok(Err(e)) => {
            tracing::error!(call = %record.id, error = %e, "the cut-short recording could not be repaired")
        }
        Err(e) => tracing::error!(call = %record.id, error = %e, "recording repair task failed"),
    }
}
