//! The per-call RTP relay: two anchored legs, symmetric latching, a tap for the recorder.
//!
//! A [`MediaSession`] borrows two port pairs from the [`PortPool`]: one faces the caller,
//! one faces the agent. Whatever arrives on the caller-facing ports goes out of the
//! agent-facing ports to the agent, and the other way round; RTP on the even port, RTCP on
//! the odd one (RTCP multiplexed on the RTP port, RFC 5761, is passed the same way as RTP).
//! Payloads are never touched: the two phones negotiated their codecs end to end.
//!
//! ## Where packets for a leg go (symmetric RTP, RFC 4961)
//! Phones behind NAT announce an address in SDP that is not where their packets come from,
//! and they expect audio back where they send from. So each leg's destination is learnt
//! from its own packets ("latching"), with the SDP address as the starting point and as the
//! bound on who may latch:
//!
//! ```text
//!                     set_remote(Some(a))
//!   ┌────────────┐   (a new address)    ┌─────────────┐
//!   │   no SDP   │ ───────────────────▶ │  expecting  │
//!   │  send: --  │ ◀─────────────────── │  send: a    │
//!   └────────────┘   set_remote(None)   └─────────────┘
//!      │     ▲                            │        ▲
//!      │     │ set_remote(None)           │        │ set_remote(Some(b)), b != a
//!      │     │                            │        │
//!      │   ┌─┴────────────┐  first packet from a source s with a's IP (any port)
//!      │   │   latched    │ ◀─────────────┘        │
//!      └─▶ │   send: s    │ ───────────────────────┘
//!          └──────────────┘
//!   first packet from any source s
//! ```
//!
//! Once latched, packets from any other source are dropped (a stranger who guesses our port
//! cannot hijack or inject into the call); only a new SDP address re-opens latching. RTP is
//! only ever sent to the SDP or latched address of a leg; with neither, it is dropped. Each
//! drop is counted in [`MediaStats`] rather than logged, so a flood cannot flood the logs.
//!
//! While a leg has no SDP address, the first source to send latches it: that is what lets a
//! leg be found when its SDP gave no usable address, but it also means call control should
//! pass each leg's SDP address as soon as it has it (for the agent leg, from the first 183
//! or 200 with SDP), so that the window for a stranger stays short.
//!
//! ## Survey mode: keys, a departed agent, prompts
//! When the agent hangs up first, the caller stays on the line for the satisfaction survey
//! (call control decides; see `call::survey`). The session provides the pieces:
//!
//! - [`MediaSession::set_caller_dtmf`]: the caller's RFC 4733 telephone-events, on the
//!   payload type its SDP negotiated, become keys on a channel, whether the call is bridged
//!   (the events are still relayed to the agent) or not;
//! - [`MediaSession::detach_agent`]: nothing goes to or comes from the agent leg any more,
//!   while the caller leg goes on (its packets are still tapped and its keys detected);
//! - [`MediaSession::play_to_caller`]: 20 ms G.711 frames sent to the caller at a steady
//!   pace, with RTP numbering of our own ([`PromptPlayer`]), and tapped as the agent's side
//!   so that the recording has the prompt on the agent's (right) channel.
//!
//! The relay task does all of it, so that the caller's destination (latched or from SDP)
//! follows the same rules as relayed packets, and the frames are paced by its timer.
//!
//! ## Costs
//! One task per call, on the daemon's media threads ([`super::threads`]); receive buffers
//! per thread, not per call, and every queued datagram read with one system call (the
//! private `receive` module); sockets registered for reading only, so that sends go
//! straight to the kernel and cause no reactor events ([`super::ports::MediaSocket`]); two
//! timers per call (reset, never re-created: key timeouts and prompt pacing); no
//! allocation per packet (prompt packets are built on the stack); the only per-packet copy
//! is into the recorder's tap, and only while a tap is set. All state is bounded: there
//! are no queues here, and the tap ([`super::tap`]) holds a bounded number of packets; its
//! overflow is dropped and counted.

use std::fmt;
use std::future::Future;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::Duration;

use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::dtmf::DtmfReceiver;
use super::ports::{BoundPort, MediaSocket, PortPool};
use super::prompt::{Frame, PromptPlayer};
use super::receive;
use super::rtp::{self, PacketKind};
use super::tap::{Offer, TapSender};
use super::threads::Seat;
use super::MediaError;

mod control_wake;
mod survey;
use control_wake::ControlWake;
use survey::{PlayRequest, Playback};

/// Largest datagram relayed. Audio RTP is a few hundred bytes and always fits an Ethernet
/// MTU; anything larger is not a phone's audio and is dropped as invalid.
pub const MAX_PACKET: usize = 2048;

/// Datagrams read from one socket before the others get a turn, so that a flood on one leg
/// cannot starve the other.
const BATCH: usize = 64;

/// Datagrams relayed (sent to the other leg) by every session since start, for
/// `threering_media_packets_relayed_total`. Added once per socket drain, not per packet,
/// so the sessions of different media threads rarely contend on its cache line.
static RELAYED_PACKETS: AtomicU64 = AtomicU64::new(0);

/// Datagrams (RTP and RTCP) all sessions have relayed so far.
pub fn relayed_packets_total() -> u64 {
    RELAYED_PACKETS.load(Ordering::Relaxed)
}

/// One side of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Leg {
    Caller,
    Agent,
}

impl Leg {
    /// The leg that packets from this one are relayed to.
    pub fn other(self) -> Leg {
        match self {
            Leg::Caller => Leg::Agent,
            Leg::Agent => Leg::Caller,
        }
    }

    fn index(self) -> usize {
        match self {
            Leg::Caller => 0,
            Leg::Agent => 1,
        }
    }
}

impl fmt::Display for Leg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Leg::Caller => "caller",
            Leg::Agent => "agent",
        })
    }
}

/// Which port of a leg's pair a datagram used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Channel {
    Rtp,
    Rtcp,
}

impl Channel {
    fn index(self) -> usize {
        match self {
            Channel::Rtp => 0,
            Channel::Rtcp => 1,
        }
    }
}

/// Counters for datagrams that arrived on one leg's port (RTP or RTCP) and were relayed
/// toward the other leg. `packets_received` counts every datagram; each one is then either
/// sent or counted in exactly one of the `dropped_*` counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirectionStats {
    pub packets_received: u64,
    pub bytes_received: u64,
    pub packets_sent: u64,
    pub bytes_sent: u64,
    /// Not RTP/RTCP version 2, truncated header, or larger than [`MAX_PACKET`].
    pub dropped_invalid: u64,
    /// From a source other than the latched one, or, before latching, from an IP other
    /// than the SDP address's.
    pub dropped_unknown_source: u64,
    /// The other leg has neither an SDP address nor a latched one yet.
    pub dropped_no_destination: u64,
    /// The kernel refused the send (buffer full, unreachable, wrong address family).
    pub dropped_send_failed: u64,
    /// To or from an agent leg that [`MediaSession::detach_agent`] cut off.
    pub dropped_detached: u64,
    /// The agent's RTP while a prompt plays to the caller: the prompt takes its place, in
    /// the caller's ear and in the recording.
    pub dropped_during_prompt: u64,
    /// Tapped copies the recorder's channel had no room for (the packet itself was still
    /// relayed; not part of the `dropped_*` sum).
    pub tap_dropped: u64,
}

impl DirectionStats {
    /// Datagrams that were received but not relayed.
    pub fn dropped(&self) -> u64 {
        self.dropped_invalid
            .saturating_add(self.dropped_unknown_source)
            .saturating_add(self.dropped_no_destination)
            .saturating_add(self.dropped_send_failed)
            .saturating_add(self.dropped_detached)
            .saturating_add(self.dropped_during_prompt)
    }
}

/// Counters of the frames [`MediaSession::play_to_caller`] played.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PromptStats {
    /// Frames whose time came; each was then sent or counted in one `dropped_*`.
    pub frames: u64,
    pub packets_sent: u64,
    pub bytes_sent: u64,
    /// The caller has neither an SDP address nor a latched one.
    pub dropped_no_destination: u64,
    pub dropped_send_failed: u64,
    /// Copies the recorder's channel had no room for.
    pub tap_dropped: u64,
}

/// A snapshot of a session's counters, per direction and port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaStats {
    /// Arrived on the caller-facing RTP port (RTP, and RTCP if the phones multiplex it).
    pub caller_to_agent: DirectionStats,
    /// Arrived on the agent-facing RTP port.
    pub agent_to_caller: DirectionStats,
    /// Arrived on the caller-facing RTCP port.
    pub caller_to_agent_rtcp: DirectionStats,
    /// Arrived on the agent-facing RTCP port.
    pub agent_to_caller_rtcp: DirectionStats,
    /// Prompts played to the caller.
    pub prompt_to_caller: PromptStats,
    /// Keys detected in the caller's telephone-events and handed to the sink.
    pub caller_keys: u64,
    /// Keys detected while the sink was full (lost).
    pub caller_keys_dropped: u64,
}

/// The atomic counterpart of [`DirectionStats`], written by the relay task, read by
/// [`MediaSession::stats`] without locking.
#[derive(Debug, Default)]
struct Counters {
    packets_received: AtomicU64,
    bytes_received: AtomicU64,
    packets_sent: AtomicU64,
    bytes_sent: AtomicU64,
    dropped_invalid: AtomicU64,
    dropped_unknown_source: AtomicU64,
    dropped_no_destination: AtomicU64,
    dropped_send_failed: AtomicU64,
    dropped_detached: AtomicU64,
    dropped_during_prompt: AtomicU64,
    tap_dropped: AtomicU64,
}

/// Counters are statistics, not synchronisation: relaxed ordering is enough. A session's
/// counters have one writer, its relay task, so a plain load and store do (no locked
/// read-modify-write: four of them per relayed packet otherwise); readers see each value
/// whole.
fn bump(counter: &AtomicU64, by: usize) {
    let by = u64::try_from(by).unwrap_or(u64::MAX);
    counter.store(
        counter.load(Ordering::Relaxed).saturating_add(by),
        Ordering::Relaxed,
    );
}

impl Counters {
    fn snapshot(&self) -> DirectionStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        DirectionStats {
            packets_received: get(&self.packets_received),
            bytes_received: get(&self.bytes_received),
            packets_sent: get(&self.packets_sent),
            bytes_sent: get(&self.bytes_sent),
            dropped_invalid: get(&self.dropped_invalid),
            dropped_unknown_source: get(&self.dropped_unknown_source),
            dropped_no_destination: get(&self.dropped_no_destination),
            dropped_send_failed: get(&self.dropped_send_failed),
            dropped_detached: get(&self.dropped_detached),
            dropped_during_prompt: get(&self.dropped_during_prompt),
            tap_dropped: get(&self.tap_dropped),
        }
    }
}

/// The atomic counterpart of [`PromptStats`].
#[derive(Debug, Default)]
struct PromptCounters {
    frames: AtomicU64,
    packets_sent: AtomicU64,
    bytes_sent: AtomicU64,
    dropped_no_destination: AtomicU64,
    dropped_send_failed: AtomicU64,
    tap_dropped: AtomicU64,
}

impl PromptCounters {
    fn snapshot(&self) -> PromptStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        PromptStats {
            frames: get(&self.frames),
            packets_sent: get(&self.packets_sent),
            bytes_sent: get(&self.bytes_sent),
            dropped_no_destination: get(&self.dropped_no_destination),
            dropped_send_failed: get(&self.dropped_send_failed),
            tap_dropped: get(&self.tap_dropped),
        }
    }
}

/// What call control has told the session; the relay task copies it when it changes.
#[derive(Debug, Default)]
struct Control {
    /// SDP addresses, indexed by [`Leg::index`].
    remotes: [Option<SocketAddr>; 2],
    tap: Option<TapSender>,
    /// The caller's telephone-event payload type and where its keys go.
    caller_dtmf: Option<(u8, mpsc::Sender<char>)>,
    /// Bumped by every [`MediaSession::set_caller_dtmf`]: the relay starts a fresh
    /// receiver then, and only then.
    caller_dtmf_version: u64,
    agent_detached: bool,
}

/// State shared between the [`MediaSession`] handle and its relay task.
#[derive(Debug, Default)]
struct Shared {
    control: Mutex<Control>,
    /// Bumped on every change to `control`, so the relay task notices changes with one
    /// atomic load per packet instead of taking the lock.
    generation: AtomicU64,
    /// Indexed by arrival leg, then channel.
    counters: [[Counters; 2]; 2],
    prompt_counters: PromptCounters,
    caller_keys: AtomicU64,
    caller_keys_dropped: AtomicU64,
}

impl Shared {
    /// `control` is plain data that no code path leaves half-written, so a poisoned lock
    /// is safe to keep using.
    fn lock(&self) -> MutexGuard<'_, Control> {
        self.control
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn update(&self, change: impl FnOnce(&mut Control)) {
        let mut control = self.lock();
        change(&mut control);
        self.generation.fetch_add(1, Ordering::Release);
    }
}

/// The two anchored legs of one call. Packets that arrive on the caller-facing port go out
/// of the agent-facing port to the agent's address, and vice versa.
///
/// Created when a call arrives (so that the SDP we answer with can name our ports) and
/// ended with [`MediaSession::stop`], by dropping it, or by cancelling the token given to
/// [`MediaSession::start`]; the ports go back to the pool once the relay task has ended.
#[derive(Debug)]
pub struct MediaSession {
    shared: Arc<Shared>,
    local_ip: IpAddr,
    caller_port: u16,
    agent_port: u16,
    /// A child of the token given at start: stopping one call leaves the others running,
    /// while a daemon shutdown stops them all.
    cancel: CancellationToken,
    /// Cancelled by the relay task as it ends, after its ports are back in the pool.
    finished: CancellationToken,
    /// Prompts to play, to the relay task.
    play_requests: mpsc::Sender<PlayRequest>,
    /// Held for the whole of a [`MediaSession::play_to_caller`]: prompts take turns.
    prompt_turn: tokio::sync::Mutex<()>,
}

impl MediaSession {
    /// Binds a caller-facing and an agent-facing port pair and spawns the relay task.
    /// Neither leg has a destination yet: see [`MediaSession::set_caller_remote`].
    ///
    /// The relay task runs on the pool's media threads if it has them, else on the
    /// caller's runtime.
    pub fn start(pool: &PortPool, cancel: CancellationToken) -> Result<MediaSession, MediaError> {
        let seat = pool.seat()?;
        let runtime = seat.handle.clone();
        // Sockets register with the reactor of the runtime whose context is entered.
        let context = runtime.enter();
        let caller = pool.bind()?;
        let agent = pool.bind()?;
        drop(context);
        let cancel = cancel.child_token();
        let finished = CancellationToken::new();
        let shared = Arc::new(Shared::default());
        let (play_requests, requests) = mpsc::channel(1);
        let session = MediaSession {
            shared: Arc::clone(&shared),
            local_ip: caller.local_ip(),
            caller_port: caller.port,
            agent_port: agent.port,
            cancel: cancel.clone(),
            finished: finished.clone(),
            play_requests,
            prompt_turn: tokio::sync::Mutex::new(()),
        };
        let relay = Relay {
            shared,
            ports: [caller, agent],
            targets: Default::default(),
            seen_generation: 0,
            tap: None,
            caller_dtmf: None,
            seen_dtmf_version: 0,
            agent_detached: false,
            requests,
            playback: None,
            player: PromptPlayer::new(),
            _seat: seat,
            _finished: finished.drop_guard(),
        };
        // No tracing span around the task: entering and leaving one on every poll costs
        // more than the rare events it would label, which name the ports themselves.
        runtime.spawn(relay.run(cancel));
        Ok(session)
    }

    /// The RTP port to put in the SDP we send to the caller.
    pub fn caller_port(&self) -> u16 {
        self.caller_port
    }

    /// The RTP port to put in the SDP we offer to agents.
    pub fn agent_port(&self) -> u16 {
        self.agent_port
    }

    /// The address both ports are bound to (the pool's address).
    pub fn local_ip(&self) -> IpAddr {
        self.local_ip
    }

    /// Where the caller's SDP says to send its audio (`Sdp::audio_destination`). A different
    /// address than before re-opens latching; `None` (hold, refused stream) stops sending to
    /// the caller until it sends again.
    pub fn set_caller_remote(&self, addr: Option<SocketAddr>) {
        self.shared
            .update(|control| control.remotes[Leg::Caller.index()] = addr);
    }

    /// Where the answering agent's SDP says to send its audio; see
    /// [`MediaSession::set_caller_remote`].
    pub fn set_agent_remote(&self, addr: Option<SocketAddr>) {
        self.shared
            .update(|control| control.remotes[Leg::Agent.index()] = addr);
    }

    /// Starts (or, with `None`, stops) copying every accepted RTP packet of both legs to
    /// the recorder. The tap's bound is the recorder's choice; when it is full, copies
    /// are dropped and counted, and the relay never waits for the recorder.
    pub fn set_tap(&self, tap: Option<TapSender>) {
        self.shared.update(|control| control.tap = tap);
    }

    /// Starts (or, with either argument `None`, stops) detecting the caller's keys: RFC
    /// 4733 telephone-events on `payload_type` (the one the caller's SDP maps to
    /// `telephone-event`, whatever its number) in the RTP the caller sends. Each key press
    /// is offered once to `sink` with `try_send` (a full sink loses the key, counted in
    /// [`MediaStats::caller_keys_dropped`]; a closed one ends detection).
    ///
    /// Works while bridged (the events are still relayed to the agent, untouched) and after
    /// [`MediaSession::detach_agent`]. A new sink on the same payload type gets the keys
    /// of presses that end from now on (one under way included), never one already
    /// reported to the old sink; survey code that wants only keys pressed after its prompt
    /// should drain the channel after playing it.
    pub fn set_caller_dtmf(&self, payload_type: Option<u8>, sink: Option<mpsc::Sender<char>>) {
        self.shared.update(|control| {
            control.caller_dtmf = payload_type.zip(sink);
            control.caller_dtmf_version = control.caller_dtmf_version.wrapping_add(1);
        });
    }

    /// Cuts the agent leg off for good (the agent hung up, or was handed off): from now on
    /// nothing is sent to the agent and whatever arrives from it is dropped
    /// ([`DirectionStats::dropped_detached`]), neither relayed nor tapped. The caller leg
    /// stays up: its packets are still received, latched, tapped and searched for keys.
    pub fn detach_agent(&self) {
        self.shared.update(|control| control.agent_detached = true);
    }

    /// Plays `frames` (20 ms of G.711 each, from [`Prompt::frames`](super::Prompt::frames))
    /// to the caller with `payload_type` (the one the caller negotiated for their codec),
    /// one every 20 ms from now on, and returns once the last one was sent.
    ///
    /// - The frames go where relayed packets for the caller go (latched, else SDP
    ///   address); without either they are counted as dropped, at the same pace.
    /// - RTP numbering is the session's own ([`PromptPlayer`]): one SSRC for all prompts
    ///   of the call, sequence numbers that continue from prompt to prompt, timestamps that
    ///   advance with wall time over the pauses, the marker bit on each prompt's first
    ///   packet.
    /// - Every frame sent is also tapped as [`Leg::Agent`]: the prompt is on the
    ///   recording's agent channel. While it plays, RTP from the agent (if still attached)
    ///   is neither relayed to the caller nor tapped.
    /// - **One prompt at a time: a second call waits** until the first one has finished,
    ///   then plays (callers are served in order). Dropping the returned future stops its
    ///   prompt within a frame, which is how a prompt is cut short.
    /// - Fails with [`MediaError::Stopped`] if the session ends before the last frame.
    pub async fn play_to_caller(
        &self,
        frames: Arc<Vec<Frame>>,
        payload_type: u8,
    ) -> Result<(), MediaError> {
        let _turn = self.prompt_turn.lock().await;
        let (done, finished) = oneshot::channel();
        let request = PlayRequest {
            frames,
            payload_type,
            done,
        };
        self.play_requests
            .send(request)
            .await
            .map_err(|_| MediaError::Stopped)?;
        finished.await.unwrap_or(Err(MediaError::Stopped))
    }

    /// Packets and bytes received and sent per direction, and why any were dropped.
    pub fn stats(&self) -> MediaStats {
        let shared = &self.shared;
        let counters = &shared.counters;
        MediaStats {
            caller_to_agent: counters[0][0].snapshot(),
            agent_to_caller: counters[1][0].snapshot(),
            caller_to_agent_rtcp: counters[0][1].snapshot(),
            agent_to_caller_rtcp: counters[1][1].snapshot(),
            prompt_to_caller: shared.prompt_counters.snapshot(),
            caller_keys: shared.caller_keys.load(Ordering::Relaxed),
            caller_keys_dropped: shared.caller_keys_dropped.load(Ordering::Relaxed),
        }
    }

    /// Ends the relay; its ports go back to the pool as the task ends, which
    /// [`MediaSession::finished`] waits for. Idempotent.
    pub fn stop(&self) {
        self.cancel.cancel();
    }

    /// Resolves once the relay task has ended and its ports are back in the pool.
    pub async fn finished(&self) {
        self.finished.cancelled().await;
    }

    /// Whether the relay task has ended.
    pub fn is_finished(&self) -> bool {
        self.finished.is_cancelled()
    }
}

impl Drop for MediaSession {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Whether a packet from a source may enter the call on a leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// From the latched source.
    Known,
    /// The first acceptable packet: the leg is now latched to its source.
    Latched,
    Rejected,
}

/// Where one leg's packets (on one channel) come from and go to: the state machine of the
/// module documentation. Pure, so it is tested without sockets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Target {
    /// From SDP.
    expected: Option<SocketAddr>,
    /// From the first acceptable packet.
    latched: Option<SocketAddr>,
}

impl Target {
    /// Applies the SDP address. The same address again keeps the latch (a re-INVITE that
    /// changes nothing must not open the call to hijacking); a new one re-opens latching.
    pub(crate) fn expect(&mut self, addr: Option<SocketAddr>) {
        if self.expected != addr {
            self.expected = addr;
            self.latched = None;
        }
    }

    pub(crate) fn admit(&mut self, source: SocketAddr) -> Admission {
        if let Some(latched) = self.latched {
            return if latched == source {
                Admission::Known
            } else {
                Admission::Rejected
            };
        }
        match self.expected {
            Some(expected) if !same_ip(expected.ip(), source.ip()) => Admission::Rejected,
            _ => {
                self.latched = Some(source);
                Admission::Latched
            }
        }
    }

    pub(crate) fn destination(&self) -> Option<SocketAddr> {
        self.latched.or(self.expected)
    }
}

/// IP equality that treats `::ffff:a.b.c.d` as `a.b.c.d`: a dual-stack socket reports IPv4
/// sources in the mapped form while SDP names them plainly.
fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

/// Adapts a destination to the family of the socket sending to it: an IPv6 socket reaches
/// IPv4 peers through mapped addresses, an IPv4 socket cannot use the mapped form.
pub(crate) fn fit_family(destination: SocketAddr, local: IpAddr) -> SocketAddr {
    match (local, destination.ip()) {
        (IpAddr::V6(_), IpAddr::V4(v4)) => {
            SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), destination.port())
        }
        (IpAddr::V4(_), IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), destination.port()),
            None => destination,
        },
        _ => destination,
    }
}

/// The relay task's state. Owns the ports: they go back to the pool when it is dropped.
struct Relay {
    shared: Arc<Shared>,
    /// Indexed by [`Leg::index`].
    ports: [BoundPort; 2],
    /// Indexed by leg, then [`Channel::index`].
    targets: [[Target; 2]; 2],
    seen_generation: u64,
    tap: Option<TapSender>,
    /// Key detection on the caller's RTP, and where the keys go.
    caller_dtmf: Option<(DtmfReceiver, mpsc::Sender<char>)>,
    seen_dtmf_version: u64,
    agent_detached: bool,
    requests: mpsc::Receiver<PlayRequest>,
    /// The prompt being played to the caller.
    playback: Option<Playback>,
    /// Numbers the packets of every prompt played to the caller.
    player: PromptPlayer,
    /// The media thread's count of this session, given back as the task ends.
    _seat: Seat,
    /// Declared last, so it is dropped after the ports: whoever waits on
    /// [`MediaSession::finished`] then finds them back in the pool.
    _finished: DropGuard,
}

impl Relay {
    async fn run(mut self, cancel: CancellationToken) {
        let (caller_port, agent_port) = (self.ports[0].port, self.ports[1].port);
        tracing::debug!(caller_port, agent_port, "media relay started");
        // Two timers for the whole session, reset rather than re-created: the caller's key
        // timeout and the next prompt frame. `None`: not armed.
        let dtmf_timer = tokio::time::sleep(Duration::ZERO);
        let frame_timer = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(dtmf_timer, frame_timer);
        let (mut dtmf_armed, mut frame_armed) = (None, None);
        let mut requests_open = true;
        // Pinned once: a fresh `cancelled()` (and fresh `readable()` futures) on every wake
        // would register and unregister a waiter under a lock each time.
        let cancelled = cancel.cancelled();
        tokio::pin!(cancelled);
        // Call control's side (cancellation, prompts) wakes the task through a waker of its
        // own that notes it did: a wake for a datagram then skips polling them (the lock
        // in the token and the channel's pop were 3.7 % of the daemon's samples at 400
        // recorded calls, `bench/relay_cpu`).
        let control = Arc::new(ControlWake::default());
        let control_waker = std::task::Waker::from(Arc::clone(&control));
        let mut known_waker = None;
        // Where the readiness check starts, turned by one each wake so that a flood on one
        // socket cannot starve the others (a drain reads at most `BATCH`).
        let mut first = 0;
        loop {
            arm(dtmf_timer.as_mut(), &mut dtmf_armed, self.dtmf_deadline());
            arm(frame_timer.as_mut(), &mut frame_armed, self.frame_due());
            // One hand-written poll instead of `select!`: each socket keeps a single waker
            // slot (`poll_recv_ready`), so a wake costs no allocation and no waiter list.
            let wake = std::future::poll_fn(|cx| {
                if control.take(cx.waker(), &mut known_waker) {
                    let mut control_cx = std::task::Context::from_waker(&control_waker);
                    if cancelled.as_mut().poll(&mut control_cx).is_ready() {
                        return Poll::Ready(Wake::Cancelled);
                    }
                    if requests_open {
                        if let Poll::Ready(request) = self.requests.poll_recv(&mut control_cx) {
                            // More may be queued, and the channel wakes only a waiting
                            // receiver: look again next time.
                            control.note();
                            return Poll::Ready(Wake::Play(request));
                        }
                    }
                }
                for k in 0..SOCKETS.len() {
                    let (leg, channel) = SOCKETS[(first + k) % SOCKETS.len()];
                    let socket = socket_of(&self.ports[leg.index()], channel);
                    if let Poll::Ready(ready) = socket.poll_recv_ready(cx) {
                        return Poll::Ready(Wake::Readable(leg, channel, ready));
                    }
                }
                if dtmf_armed.is_some() && dtmf_timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Wake::DtmfTimeout);
                }
                if frame_armed.is_some() && frame_timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Wake::FrameDue);
                }
                Poll::Pending
            })
            .await;
            first = (first + 1) % SOCKETS.len();
            match wake {
                Wake::Cancelled => break,
                Wake::Readable(leg, channel, Err(error)) => {
                    // Readiness only fails if the reactor is gone (runtime shutting down).
                    tracing::warn!(
                        caller_port, agent_port, %leg, ?channel, %error,
                        "media socket failed, relay ends"
                    );
                    break;
                }
                Wake::Readable(leg, channel, Ok(())) => self.drain(leg, channel),
                Wake::Play(Some(request)) => self.start_playback(request),
                // The session handle is gone; cancellation follows.
                Wake::Play(None) => requests_open = false,
                Wake::DtmfTimeout => {
                    dtmf_armed = None;
                    self.dtmf_timeout();
                }
                Wake::FrameDue => {
                    frame_armed = None;
                    self.play_due_frames();
                }
            }
        }
        tracing::debug!(caller_port, agent_port, "media relay ended");
    }

    /// Reads what is queued on one socket, up to [`BATCH`] datagrams, [`receive::RECV_BATCH`]
    /// per system call ([`super::receive`]).
    fn drain(&mut self, leg: Leg, channel: Channel) {
        let mut relayed = 0;
        // One clock read per drain: the datagrams of one drain were all read now.
        let now = Instant::now();
        receive::with_batch(|batch| {
            let mut read = 0;
            while read < BATCH {
                let socket = socket_of(&self.ports[leg.index()], channel);
                let received = match batch.receive(socket) {
                    Ok(received) => received,
                    Err(error) if error.kind() == ErrorKind::WouldBlock => break,
                    Err(error) => {
                        // An ICMP error reported on a later read, for example: not fatal.
                        tracing::trace!(%leg, ?channel, %error, "receive failed");
                        break;
                    }
                };
                for k in 0..received.count {
                    let (datagram, source) = batch.datagram(k);
                    let Some(source) = source else { continue };
                    if self.on_datagram(leg, channel, datagram, source, now) {
                        relayed += 1;
                    }
                }
                read += received.count;
                if received.drained {
                    break;
                }
            }
        });
        if relayed > 0 {
            RELAYED_PACKETS.fetch_add(relayed, Ordering::Relaxed);
        }
    }

    /// Copies call control's latest settings if they changed since the last packet.
    fn refresh_control(&mut self) {
        let generation = self.shared.generation.load(Ordering::Acquire);
        if generation == self.seen_generation {
            return;
        }
        self.seen_generation = generation;
        let control = self.shared.lock();
        for leg in [Leg::Caller, Leg::Agent] {
            let rtp = control.remotes[leg.index()];
            // RFC 3550 §11: RTCP goes to the port above the RTP port.
            let rtcp = rtp.map(|a| SocketAddr::new(a.ip(), a.port().saturating_add(1)));
            let targets = &mut self.targets[leg.index()];
            targets[Channel::Rtp.index()].expect(rtp);
            targets[Channel::Rtcp.index()].expect(rtcp);
        }
        self.tap.clone_from(&control.tap);
        self.agent_detached = control.agent_detached;
        if control.caller_dtmf_version != self.seen_dtmf_version {
            self.seen_dtmf_version = control.caller_dtmf_version;
            let previous = self.caller_dtmf.take();
            self.caller_dtmf = control.caller_dtmf.as_ref().map(|(payload_type, sink)| {
                // A new sink on the same payload type keeps what the receiver knows, so
                // the end packets of a press already reported are not a new press.
                let receiver = previous
                    .map(|(receiver, _)| receiver)
                    .filter(|receiver| receiver.payload_type() == *payload_type)
                    .unwrap_or_else(|| DtmfReceiver::new(*payload_type));
                (receiver, sink.clone())
            });
        }
    }

    /// Checks one datagram and relays it to the other leg; `true` if it was sent.
    fn on_datagram(
        &mut self,
        leg: Leg,
        channel: Channel,
        datagram: &[u8],
        source: SocketAddr,
        now: Instant,
    ) -> bool {
        self.refresh_control();
        let Relay {
            shared,
            ports,
            targets,
            tap,
            caller_dtmf,
            agent_detached,
            playback,
            ..
        } = self;
        let counters = &shared.counters[leg.index()][channel.index()];
        bump(&counters.packets_received, 1);
        bump(&counters.bytes_received, datagram.len());
        if leg == Leg::Agent && *agent_detached {
            bump(&counters.dropped_detached, 1);
            return false;
        }

        // A datagram that filled the receive buffer was larger than that, and truncated.
        let Some(packet) = Some(datagram).filter(|d| d.len() <= MAX_PACKET) else {
            bump(&counters.dropped_invalid, 1);
            return false;
        };
        let kind = rtp::classify(packet);
        if kind == PacketKind::Invalid {
            bump(&counters.dropped_invalid, 1);
            return false;
        }
        match targets[leg.index()][channel.index()].admit(source) {
            Admission::Known => {}
            Admission::Latched => tracing::debug!(
                caller_port = ports[0].port,
                agent_port = ports[1].port,
                %leg, ?channel, %source,
                "latched"
            ),
            Admission::Rejected => {
                bump(&counters.dropped_unknown_source, 1);
                tracing::trace!(%leg, ?channel, %source, "dropped packet from unknown source");
                return false;
            }
        }
        if channel == Channel::Rtp && kind == PacketKind::Rtp {
            if leg == Leg::Agent && playback.is_some() {
                bump(&counters.dropped_during_prompt, 1);
                return false;
            }
            tap_packet(tap, &counters.tap_dropped, leg, packet, now);
            if leg == Leg::Caller {
                if let Some((receiver, sink)) = caller_dtmf {
                    if let Some(key) = receiver.on_packet(packet, now.into_std()) {
                        if !send_key(shared, sink, key) {
                            *caller_dtmf = None;
                        }
                    }
                }
            }
        }

        let out = leg.other();
        if out == Leg::Agent && *agent_detached {
            bump(&counters.dropped_detached, 1);
            return false;
        }
        let Some(destination) = targets[out.index()][channel.index()].destination() else {
            bump(&counters.dropped_no_destination, 1);
            return false;
        };
        let out_port = &ports[out.index()];
        let destination = fit_family(destination, out_port.local_ip());
        match socket_of(out_port, channel).try_send_to(packet, destination) {
            Ok(sent) => {
                bump(&counters.packets_sent, 1);
                bump(&counters.bytes_sent, sent);
                true
            }
            Err(error) => {
                bump(&counters.dropped_send_failed, 1);
                tracing::trace!(%leg, ?channel, %destination, %error, "send failed");
                false
            }
        }
    }
}

fn socket_of(port: &BoundPort, channel: Channel) -> &MediaSocket {
    match channel {
        Channel::Rtp => &port.socket,
        Channel::Rtcp => &port.rtcp_socket,
    }
}

/// Offers a copy of the packet to the recorder without ever waiting for it. A recorder
/// that went away is forgotten until call control sets a new tap.
fn tap_packet(
    tap: &mut Option<TapSender>,
    tap_dropped: &AtomicU64,
    leg: Leg,
    packet: &[u8],
    arrival: Instant,
) {
    let Some(sender) = tap else {
        return;
    };
    match sender.offer(leg, arrival, packet) {
        Offer::Taken => {}
        Offer::Full => bump(tap_dropped, 1),
        Offer::Closed => *tap = None,
    }
}

/// Offers a key to the caller's key sink; `false` if the sink is closed (detection can
/// stop).
fn send_key(shared: &Shared, sink: &mpsc::Sender<char>, key: char) -> bool {
    match sink.try_send(key) {
        Ok(()) => {
            bump(&shared.caller_keys, 1);
            true
        }
        Err(TrySendError::Full(_)) => {
            bump(&shared.caller_keys_dropped, 1);
            true
        }
        Err(TrySendError::Closed(_)) => false,
    }
}

/// The four sockets of a session, in the order their readiness is checked (from a
/// starting point that turns).
const SOCKETS: [(Leg, Channel); 4] = [
    (Leg::Caller, Channel::Rtp),
    (Leg::Agent, Channel::Rtp),
    (Leg::Caller, Channel::Rtcp),
    (Leg::Agent, Channel::Rtcp),
];

/// What woke the relay task.
enum Wake {
    Cancelled,
    Readable(Leg, Channel, std::io::Result<()>),
    Play(Option<PlayRequest>),
    DtmfTimeout,
    FrameDue,
}

/// Points a session timer at `deadline`, resetting it only when the deadline changed.
fn arm(
    timer: std::pin::Pin<&mut tokio::time::Sleep>,
    armed: &mut Option<Instant>,
    deadline: Option<Instant>,
) {
    if *armed == deadline {
        return;
    }
    if let Some(at) = deadline {
        timer.reset(at);
    }
    *armed = deadline;
}

#[cfg(test)]
mod survey_tests;
#[cfg(test)]
mod tests;
