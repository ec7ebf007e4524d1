//! Media: everything about the audio of a call, and nothing about SIP.
//!
//! threering anchors media: each call's RTP flows through two UDP ports of ours, one
//! facing the caller and one facing the agent, so that the daemon can record both sides,
//! play prompts and keep the caller after the agent leaves. This module owns:
//!
//! - [`ports`]: the pool of even RTP ports (with their RTCP neighbours) that calls borrow;
//! - [`relay`]: one [`MediaSession`] per call, relaying RTP and RTCP between the two legs with
//!   symmetric latching, and a tap for the recorder;
//! - [`sdp`]: a small SDP (RFC 4566) parser and rewriter, so that call control can learn
//!   where each leg wants its audio and hand the other leg our anchored address instead;
//! - [`tap`]: how the relay hands copies of each call's RTP to its recorder;
//! - [`threads`]: the threads, each with a runtime of its own, that the relay tasks run on;
//! - [`rtp`]: the minimal RTP/RTCP sanity checks the relay applies to every datagram;
//! - [`dtmf`]: the caller's keys, from RFC 4733 telephone-events or SIP INFO bodies;
//! - [`prompt`]: WAV prompts cut into G.711 frames, and the RTP numbering of a played stream.
//!
//! Call control drives it with plain addresses and ports: this module never imports
//! `crate::sip`, so that the data flow stays one way (SIP → call control → media).

pub mod dtmf;
pub mod ports;
pub mod prompt;
mod receive;
pub mod relay;
pub mod rtp;
pub mod sdp;
pub mod tap;
pub mod threads;

use std::net::IpAddr;
use std::path::PathBuf;

pub use dtmf::{parse_dtmf_relay, DtmfReceiver};
pub use ports::{BoundPort, MediaSocket, PortPool};
pub use prompt::{Prompt, PromptCodec, PromptPlayer};
pub use relay::{DirectionStats, Leg, MediaSession, MediaStats};
pub use sdp::{Sdp, SdpError};
pub use tap::{TapReceiver, TapSender};
pub use threads::MediaThreads;

/// Why media could not be set up for a call. Call control maps these to a SIP answer
/// (typically 503: the call cannot be anchored, so it must not be accepted).
#[derive(thiserror::Error, Debug)]
pub enum MediaError {
    /// The configured range holds no even port whose odd RTCP neighbour is also in range.
    #[error("RTP port range {first}-{last} holds no even port with its RTCP port")]
    EmptyRange { first: u16, last: u16 },
    /// Every port of the range is lent to a call or bound by another program.
    #[error("no free RTP port left in {first}-{last} on {ip}")]
    NoPortsLeft { ip: IpAddr, first: u16, last: u16 },
    /// Binding failed for a reason other than the port being taken (for example the
    /// address is not local, or the port needs privileges): retrying other ports would not
    /// help, so it is reported at once.
    #[error("cannot bind UDP port {port} on {ip}: {source}")]
    Bind {
        ip: IpAddr,
        port: u16,
        #[source]
        source: std::io::Error,
    },
    /// The media threads could not be started (the system refused a thread or the
    /// runtime's reactor).
    #[error("cannot start the media threads: {0}")]
    Threads(#[source] std::io::Error),
    /// Sockets and relay tasks need a tokio runtime; called from outside one.
    #[error("media needs a running tokio runtime")]
    NoRuntime,
    /// A prompt file could not be read.
    #[error("cannot read prompt {}: {source}", path.display())]
    PromptIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A prompt is not an 8 kHz mono 16-bit PCM WAV (or not a WAV at all); `path` is empty
    /// for prompts given as bytes.
    #[error("unusable prompt {}: {reason}", path.display())]
    PromptFormat { path: PathBuf, reason: String },
    /// The session's relay has ended (the call was torn down) before a prompt finished.
    #[error("the media session has stopped")]
    Stopped,
}
