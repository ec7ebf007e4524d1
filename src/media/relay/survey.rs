//! The relay task's survey-mode work: the caller's key timeouts and prompt playback.
//! (Key detection on arriving packets is in [`Relay::on_datagram`].)

use super::*;
use crate::media::prompt::FRAME_DURATION;

/// Frames sent at once at most when the task fell behind (a stalled runtime): beyond
/// that, the schedule moves on from now instead of bursting the backlog at the caller.
const MAX_BURST: usize = 3;

/// A prompt to play, from [`MediaSession::play_to_caller`] to the relay task.
pub(super) struct PlayRequest {
    pub(super) frames: Arc<Vec<Frame>>,
    pub(super) payload_type: u8,
    /// Told when the last frame was sent; dropped (so the waiter sees `Stopped`) if the
    /// relay ends first.
    pub(super) done: oneshot::Sender<Result<(), MediaError>>,
}

/// The prompt being played.
pub(super) struct Playback {
    request: PlayRequest,
    /// The next frame to send.
    next: usize,
    /// When frame 0 was (or, after a stall, would have been) due: frame `n` is due
    /// `n × 20 ms` later, so the pace does not drift.
    start: Instant,
}

impl Playback {
    fn due(&self) -> Instant {
        let frames = u32::try_from(self.next).unwrap_or(u32::MAX);
        self.start + FRAME_DURATION.saturating_mul(frames)
    }

    fn finished(&self) -> bool {
        self.next >= self.request.frames.len()
    }
}

impl Relay {
    /// When the caller's key receiver wants its timeout checked.
    pub(super) fn dtmf_deadline(&self) -> Option<Instant> {
        let (receiver, _) = self.caller_dtmf.as_ref()?;
        receiver.deadline().map(Instant::from_std)
    }

    /// A key whose end packets were lost (or one queued behind another) is reported now.
    pub(super) fn dtmf_timeout(&mut self) {
        self.refresh_control();
        let now = Instant::now().into_std();
        let Some((receiver, sink)) = self.caller_dtmf.as_mut() else {
            return;
        };
        while let Some(key) = receiver.on_tick(now) {
            if !send_key(&self.shared, sink, key) {
                self.caller_dtmf = None;
                return;
            }
        }
    }

    /// When the next prompt frame is due, if one is playing.
    pub(super) fn frame_due(&self) -> Option<Instant> {
        self.playback.as_ref().map(Playback::due)
    }

    /// Starts a prompt: a new talk spurt, its first frame at once. A prompt still playing
    /// (only possible if its waiter gave up) is replaced.
    pub(super) fn start_playback(&mut self, request: PlayRequest) {
        let now = Instant::now();
        self.player.start_talkspurt(now.into_std());
        self.playback = Some(Playback {
            request,
            next: 0,
            start: now,
        });
        self.play_due_frames();
    }

    /// Sends the frames whose time has come (normally one) to the caller, and taps them as
    /// the agent's side; ends the playback after the last one or if its waiter is gone.
    pub(super) fn play_due_frames(&mut self) {
        self.refresh_control();
        let Relay {
            shared,
            ports,
            targets,
            tap,
            playback,
            player,
            ..
        } = self;
        let Some(play) = playback.as_mut() else {
            return;
        };
        if play.request.done.is_closed() {
            // play_to_caller's future was dropped: the prompt is cut short.
            *playback = None;
            return;
        }
        let now = Instant::now();
        let mut sent = 0;
        while !play.finished() && play.due() <= now {
            if sent == MAX_BURST {
                // Behind by more than a burst: the next frame is due one frame from now,
                // and the pace goes on from there.
                let frames = u32::try_from(play.next).unwrap_or(u32::MAX);
                let next_due = now + FRAME_DURATION;
                play.start = next_due
                    .checked_sub(FRAME_DURATION.saturating_mul(frames))
                    .unwrap_or(next_due);
                break;
            }
            let Some(frame) = play.request.frames.get(play.next) else {
                break;
            };
            let packet = player.next_packet(play.request.payload_type, frame);
            send_prompt_packet(shared, ports, targets, tap, &packet);
            play.next += 1;
            sent += 1;
        }
        if play.finished() {
            if let Some(done) = playback.take() {
                // The waiter may have gone in the meantime; nothing to tell then.
                let _ = done.request.done.send(Ok(()));
            }
        }
    }
}

/// Sends one prompt packet to the caller, where relayed packets would go, and taps it as
/// the agent's.
fn send_prompt_packet(
    shared: &Shared,
    ports: &[BoundPort; 2],
    targets: &[[Target; 2]; 2],
    tap: &mut Option<TapSender>,
    packet: &[u8],
) {
    let counters = &shared.prompt_counters;
    bump(&counters.frames, 1);
    tap_packet(
        tap,
        &counters.tap_dropped,
        Leg::Agent,
        packet,
        Instant::now(),
    );
    let caller = Leg::Caller.index();
    let Some(destination) = targets[caller][Channel::Rtp.index()].destination() else {
        bump(&counters.dropped_no_destination, 1);
        return;
    };
    let port = &ports[caller];
    let destination = fit_family(destination, port.local_ip());
    match port.socket.try_send_to(packet, destination) {
        Ok(sent) => {
            bump(&counters.packets_sent, 1);
            bump(&counters.bytes_sent, sent);
        }
        Err(error) => {
            bump(&counters.dropped_send_failed, 1);
            tracing::trace!(%destination, %error, "prompt send failed");
        }
    }
}
