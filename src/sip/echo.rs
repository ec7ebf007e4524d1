//! The built-in test UAS (`threering sip-echo`): answers INVITEs after a configurable
//! ring time with an SDP that points at an RTP echo socket, handles ACK, BYE, CANCEL,
//! INFO and OPTIONS, and runs a small registrar with digest authentication. It lets SIP
//! peers such as SIPp exercise the SIP core before the daemon's call control exists, and
//! stays useful as a stand-in agent phone in tests.

use super::auth::lockout::{LockoutPolicy, Lockouts};
use super::auth::Algorithm;
use super::authenticator::Authenticator;
use super::dialog::Dialog;
use super::endpoint::{Endpoint, EndpointConfig, Event, ServerTx};
use super::header::HeaderName;
use super::message::{response_to, HeaderAccess, Method, Request, Response};
use super::registrar::Registrar;
use super::transaction::TimerConfig;
use super::transport::{ListenSpec, Peer};
use super::uri::Uri;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The echo UAS locks out brute force like the daemon's defaults.
const ECHO_LOCKOUT: LockoutPolicy = LockoutPolicy {
    max_failures: 5,
    window: Duration::from_secs(300),
    lockout: Duration::from_secs(600),
};

#[derive(Debug, Clone)]
pub struct EchoConfig {
    pub listen: Vec<ListenSpec>,
    /// Time between 180 Ringing and 200 OK.
    pub ring: Duration,
    /// Users allowed to REGISTER: name → password.
    pub users: HashMap<String, String>,
    pub realm: String,
    pub timers: TimerConfig,
    /// Digest algorithms offered, most preferred first (RFC 8760).
    pub algorithms: Vec<Algorithm>,
}

struct Echo {
    endpoint: Endpoint,
    config: EchoConfig,
    registrar: Registrar,
    auth: Authenticator,
    rtp_addr: SocketAddr,
    /// INVITEs ringing, by transaction.
    ringing: HashMap<ServerTx, (Request, Peer, String)>,
    /// Confirmed dialogs by Call-ID.
    dialogs: HashMap<String, Dialog>,
    answer_tx: mpsc::Sender<ServerTx>,
}

/// Runs until `cancel` fires. `on_listening` gets the bound listen entries.
pub async fn run(
    config: EchoConfig,
    cancel: CancellationToken,
    on_listening: impl FnOnce(&[ListenSpec]),
) -> std::io::Result<()> {
    let endpoint_config = EndpointConfig {
        listen: config.listen.clone(),
        timers: config.timers,
        ..EndpointConfig::default()
    };
    let (endpoint, mut events) = Endpoint::start(endpoint_config, cancel.clone()).await?;
    let rtp_ip = config
        .listen
        .first()
        .map_or([127, 0, 0, 1].into(), |l| l.addr.ip());
    let rtp = UdpSocket::bind(SocketAddr::new(rtp_ip, 0)).await?;
    let rtp_addr = rtp.local_addr()?;
    tokio::spawn(echo_rtp(rtp, cancel.clone()));
    on_listening(&endpoint.listening());
    let (answer_tx, mut answer_rx) = mpsc::channel(1024);
    let mut echo = Echo {
        registrar: Registrar::new(3600),
        auth: Authenticator::new(
            &config.realm,
            config.algorithms.clone(),
            Arc::new(Lockouts::new(ECHO_LOCKOUT)),
        ),
        endpoint,
        config,
        rtp_addr,
        ringing: HashMap::new(),
        dialogs: HashMap::new(),
        answer_tx,
    };
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            Some(event) = events.recv() => echo.on_event(event).await,
            Some(tx) = answer_rx.recv() => echo.answer(tx).await,
        }
    }
}

/// Sends every RTP packet back where it came from.
async fn echo_rtp(socket: UdpSocket, cancel: CancellationToken) {
    let mut buf = [0u8; 2048];
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            r = socket.recv_from(&mut buf) => if let Ok((n, from)) = r {
                let _ = socket.send_to(&buf[..n], from).await;
            },
        }
    }
}

impl Echo {
    async fn respond(&self, tx: ServerTx, resp: Response) {
        let _ = self.endpoint.respond(tx, resp).await;
    }

    fn contact_uri(&self, peer: &Peer) -> Uri {
        let (host, port) = self.endpoint.local_hostport(peer.protocol, peer.remote);
        let transport = peer
            .protocol
            .uri_param()
            .map(|t| format!(";transport={t}"))
            .unwrap_or_default();
        Uri::parse(&format!("sip:echo@{host}:{port}{transport}")).expect("own contact URI is valid")
    }

    async fn on_event(&mut self, event: Event) {
        match event {
            Event::Request { tx, request, peer } => self.on_request(tx, request, peer).await,
            Event::Cancelled { tx } => {
                self.ringing.remove(&tx);
            }
            Event::AckTimeout { call_id, .. } => {
                self.dialogs.remove(&call_id);
            }
            Event::Ack { .. } | Event::Response { .. } | Event::ClientFailed { .. } => {}
        }
    }

    async fn on_request(&mut self, tx: ServerTx, req: Request, peer: Peer) {
        let in_dialog = req.header_to().is_some_and(|t| t.tag().is_some());
        match req.method {
            Method::Invite if in_dialog => {
                // re-INVITE: accept with the same answer.
                let call_id = req.call_id().unwrap_or("").to_owned();
                let accepted = self
                    .dialogs
                    .get_mut(&call_id)
                    .is_some_and(|d| d.on_remote_request(&req).is_ok());
                if accepted {
                    let resp = self.ok_with_sdp(&req, &peer, None);
                    self.respond(tx, resp).await;
                } else {
                    self.respond(tx, response_to(&req, 481, None, None)).await;
                }
            }
            Method::Invite => {
                let tag = super::dialog::new_tag();
                let mut ringing = response_to(&req, 180, None, Some(&tag));
                ringing.headers.push(
                    HeaderName::Contact,
                    format!("<{}>", self.contact_uri(&peer)),
                );
                self.respond(tx, ringing).await;
                self.ringing.insert(tx, (req, peer, tag));
                let answer = self.answer_tx.clone();
                let ring = self.config.ring;
                tokio::spawn(async move {
                    tokio::time::sleep(ring).await;
                    let _ = answer.send(tx).await;
                });
            }
            Method::Bye | Method::Info => {
                let call_id = req.call_id().unwrap_or("").to_owned();
                let known = match self.dialogs.get_mut(&call_id) {
                    Some(d) => d.on_remote_request(&req).is_ok(),
                    None => false,
                };
                let status = if known { 200 } else { 481 };
                if known && req.method == Method::Bye {
                    self.dialogs.remove(&call_id);
                }
                self.respond(tx, response_to(&req, status, None, None))
                    .await;
            }
            Method::Options => {
                let mut resp = response_to(&req, 200, None, Some(&super::dialog::new_tag()));
                resp.headers.push(
                    HeaderName::Allow,
                    self.endpoint.config().capabilities.allow_header(),
                );
                resp.headers.push(HeaderName::Accept, "application/sdp");
                self.respond(tx, resp).await;
            }
            Method::Register => {
                let users = &self.config.users;
                let (resp, _) = self
                    .registrar
                    .handle(&req, &peer, &self.auth, |u| users.get(u).cloned());
                self.respond(tx, resp).await;
            }
            _ => self.respond(tx, response_to(&req, 405, None, None)).await,
        }
    }

    async fn answer(&mut self, tx: ServerTx) {
        let Some((req, peer, tag)) = self.ringing.remove(&tx) else {
            return;
        };
        let resp = self.ok_with_sdp(&req, &peer, Some(&tag));
        if let Ok(dialog) = Dialog::uas(&req, &resp, self.contact_uri(&peer)) {
            self.dialogs.insert(dialog.id.call_id.clone(), dialog);
        }
        self.respond(tx, resp).await;
    }

    fn ok_with_sdp(&self, req: &Request, peer: &Peer, tag: Option<&str>) -> Response {
        let mut resp = response_to(req, 200, None, tag);
        resp.headers
            .push(HeaderName::Contact, format!("<{}>", self.contact_uri(peer)));
        resp.headers
            .push(HeaderName::ContentType, "application/sdp");
        let ip = self.rtp_addr.ip();
        let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
        resp.body = format!(
            "v=0\r\no=threering 1 1 IN {family} {ip}\r\ns=threering echo\r\nc=IN {family} {ip}\r\nt=0 0\r\nm=audio {} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n",
            self.rtp_addr.port()
        )
        .into();
        resp
    }
}
