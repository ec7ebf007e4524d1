//! The endpoint: transports + transaction layer + the UAS core duties that sit below any
//! application (validation, CANCEL, 2xx retransmission until ACK, stateless 400s).
//!
//! One task (`core`) owns every transaction and one timer heap, so transaction state
//! needs no locks and events reach the application in arrival order. The application
//! (the "TU": the built-in echo UAS, or the daemon's call control) receives [`Event`]s on
//! a bounded channel and acts through the cheap, cloneable [`Endpoint`] handle.
//!
//! ```text
//!  transports ──Received──▶ core ──Event──▶ application
//!       ▲                    │  ▲
//!       └──── bytes ─────────┘  └── Command (respond, request, cancel, ack) ──
//! ```

pub(crate) mod build;
mod core;
pub mod overload;

use super::message::{Request, Response};
use super::transaction::{TerminationReason, TimerConfig};
use super::transport::{Limits, ListenSpec, Peer, Protocol, TlsSettings, Transports};
use super::validate::Capabilities;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use build::{target_for_uri, Target};
pub use overload::{OverloadConfig, TrustPolicy};

/// Identifies a server transaction (a request we answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerTx(pub u64);

/// Identifies a client transaction (a request we sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientTx(pub u64);

#[derive(Debug, Clone)]
pub struct EndpointConfig {
    pub listen: Vec<ListenSpec>,
    /// Certificates for `tls:` listeners and roots for outbound TLS; None: no TLS.
    pub tls: Option<TlsSettings>,
    pub timers: TimerConfig,
    /// Answer UDP requests at their source address and port even without `;rport`
    /// (symmetric response routing: phones behind NAT, test tools on random ports).
    pub force_rport: bool,
    /// Host written in Via and Contact when a listener is bound to an unspecified
    /// address (0.0.0.0 / ::).
    pub advertised_host: Option<String>,
    pub user_agent: String,
    pub capabilities: Capabilities,
    pub limits: Limits,
    /// Requests and responses waiting for the application; past it new requests get 503.
    pub event_queue: usize,
    /// Limits on new requests: transactions at once, and per source address.
    pub overload: OverloadConfig,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            listen: vec![
                "udp:127.0.0.1:5060".parse().expect("valid"),
                "tcp:127.0.0.1:5060".parse().expect("valid"),
            ],
            tls: None,
            timers: TimerConfig::default(),
            force_rport: true,
            advertised_host: None,
            user_agent: format!("threering/{}", env!("CARGO_PKG_VERSION")),
            capabilities: Capabilities::default(),
            limits: Limits::default(),
            event_queue: 4096,
            overload: OverloadConfig::default(),
        }
    }
}

/// What the endpoint tells the application.
#[derive(Debug)]
pub enum Event {
    /// A new request (not ACK, not CANCEL) that passed validation; answer it with
    /// [`Endpoint::respond`].
    Request {
        tx: ServerTx,
        request: Request,
        peer: Peer,
    },
    /// An ACK for a 2xx (its own transaction per RFC 3261), or one the INVITE server
    /// transaction passed up (RFC 6026 Accepted state).
    Ack { request: Request, peer: Peer },
    /// The caller cancelled an INVITE still ringing: the endpoint has answered the
    /// CANCEL 200 and the INVITE 487.
    Cancelled { tx: ServerTx },
    /// A response to a request we sent (1xx, 2xx including retransmitted 2xx for
    /// INVITE, 3xx–6xx).
    Response { tx: ClientTx, response: Response },
    /// A request we sent got no final response: Timeout reads as 408, TransportError as
    /// 503 (RFC 3261 §8.1.3.1).
    ClientFailed {
        tx: ClientTx,
        reason: TerminationReason,
    },
    /// A 2xx we sent to an INVITE was never acknowledged within 64·T1 (RFC 3261
    /// §13.3.1.4): the application should end the dialog with BYE.
    AckTimeout { call_id: String, cseq: u32 },
}

pub(crate) enum Command {
    Respond {
        tx: ServerTx,
        response: Response,
    },
    Request {
        tx: ClientTx,
        request: Request,
        target: Target,
    },
    Cancel {
        tx: ClientTx,
    },
    /// An ACK for a 2xx, sent outside any transaction.
    Ack {
        request: Request,
        target: Target,
    },
    /// A send that needed a new TCP connection failed.
    SendFailed {
        tx: Option<ClientTx>,
    },
}

/// The application's handle on the endpoint. Cheap to clone.
#[derive(Clone)]
pub struct Endpoint {
    commands: mpsc::Sender<Command>,
    transports: Arc<Transports>,
    next_client: Arc<AtomicU64>,
    config: Arc<EndpointConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("the endpoint has stopped")]
    Stopped,
}

impl Endpoint {
    /// Binds the transports and starts the core. Stops when `cancel` fires.
    pub async fn start(
        config: EndpointConfig,
        cancel: CancellationToken,
    ) -> std::io::Result<(Endpoint, mpsc::Receiver<Event>)> {
        let (inbound_tx, inbound_rx) = mpsc::channel(8192);
        let transports = Transports::bind(
            &config.listen,
            config.tls.clone(),
            inbound_tx,
            config.limits.clone(),
            cancel.clone(),
        )
        .await?;
        let (events_tx, events_rx) = mpsc::channel(config.event_queue);
        let (commands_tx, commands_rx) = mpsc::channel(8192);
        let config = Arc::new(config);
        let endpoint = Endpoint {
            commands: commands_tx.clone(),
            transports: transports.clone(),
            next_client: Arc::new(AtomicU64::new(1)),
            config: config.clone(),
        };
        let core = core::Core::new(config, transports, events_tx, commands_tx);
        tokio::spawn(core.run(inbound_rx, commands_rx, cancel));
        Ok((endpoint, events_rx))
    }

    pub fn listening(&self) -> Vec<ListenSpec> {
        self.transports.listening()
    }

    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    /// Our address (host, port) to put in Via and Contact for this transport.
    pub fn local_hostport(&self, protocol: Protocol, remote: SocketAddr) -> (String, u16) {
        build::local_hostport(&self.transports, &self.config, protocol, remote)
    }

    /// Answers a request. Responses after a final one are ignored.
    pub async fn respond(&self, tx: ServerTx, response: Response) -> Result<(), EndpointError> {
        self.commands
            .send(Command::Respond { tx, response })
            .await
            .map_err(|_| EndpointError::Stopped)
    }

    /// Answers a request with a bare response (status, extra headers, body): the
    /// endpoint adds Via, From, To (with our tag), Call-ID and CSeq from the request.
    pub async fn respond_for(&self, tx: ServerTx, response: Response) -> Result<(), EndpointError> {
        self.respond(tx, response).await
    }

    /// Sends a request in a new client transaction. The endpoint adds the top Via (our
    /// address, a new branch, `rport`) and Max-Forwards if absent.
    pub async fn request(
        &self,
        request: Request,
        target: Target,
    ) -> Result<ClientTx, EndpointError> {
        let tx = ClientTx(self.next_client.fetch_add(1, Ordering::Relaxed));
        self.commands
            .send(Command::Request {
                tx,
                request,
                target,
            })
            .await
            .map_err(|_| EndpointError::Stopped)?;
        Ok(tx)
    }

    /// Cancels an INVITE we sent (RFC 3261 §9.1): sent once a provisional response has
    /// arrived, never after a final one.
    pub async fn cancel(&self, tx: ClientTx) -> Result<(), EndpointError> {
        self.commands
            .send(Command::Cancel { tx })
            .await
            .map_err(|_| EndpointError::Stopped)
    }

    /// Sends the ACK for a 2xx (built by the dialog) outside any transaction.
    pub async fn ack(&self, request: Request, target: Target) -> Result<(), EndpointError> {
        self.commands
            .send(Command::Ack { request, target })
            .await
            .map_err(|_| EndpointError::Stopped)
    }
}
