//! Our SIP core (RFC 3261 and friends): message model, strict parser and serializer,
//! request validation, transports, transactions, dialogs and digest authentication.
//!
//! Nothing here knows about call centers; the daemon's call control drives it.
//!
//! ```text
//!  bytes ──parse──▶ Message ──validate──▶ transaction layer ──▶ dialogs / application
//!    ▲                                          │
//!    └──────────── transport (UDP, TCP) ◀──serialize
//! ```

pub mod auth;
pub mod authenticator;
pub mod dialog;
pub mod echo;
pub mod endpoint;
pub mod header;
pub mod message;
pub mod parse;
pub mod registrar;
pub mod text;
pub mod transaction;
pub mod transport;
pub mod uri;
pub mod validate;

pub use header::{HeaderName, Headers, NameAddr, Via};
pub use message::{HeaderAccess, Message, Method, Request, Response};
pub use parse::{parse, ParseError};
pub use uri::{Host, SipUri, Uri};

#[cfg(test)]
mod torture_tests;

#[cfg(test)]
mod roundtrip_tests;
