//! threering: a SIP call-center daemon. See `DESIGN.md` in the shared folder for the
//! architecture: `sip` is the protocol core and knows nothing about call centers; `call`
//! is call control (queues, agents, ring timing); `media` relays RTP and knows nothing
//! about SIP; `store` persists call records; `http` serves the API and metrics;
//! `tls` loads certificates and keys for SIP over TLS and HTTPS.
pub mod alarms;
pub mod archive;
pub mod call;
pub mod config;
pub mod daemon;
pub mod events;
#[doc(hidden)]
pub mod fuzzing;
pub mod html;
pub mod http;
pub mod media;
pub mod metrics;
pub mod qa;
pub mod recording;
pub mod reports;
pub mod sip;
pub mod store;
pub mod tickets;
pub mod tls;
pub mod users;
