//! Building the messages the transaction layer sends by itself (ACK for non-2xx,
//! CANCEL, 100 Trying, stateless 400s) and deciding where messages go (RFC 3261 §18.2.2
//! response routing with RFC 3581 `rport`).

use super::EndpointConfig;
use crate::sip::header::{HeaderName, Via};
use crate::sip::message::{new_branch, HeaderAccess, Method, Request, Response};
use crate::sip::transport::{Peer, Protocol, Transports};
use crate::sip::uri::{Host, Uri};
use std::net::{IpAddr, SocketAddr};

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub protocol: Protocol,
    pub addr: SocketAddr,
}

/// The target a SIP URI names, when its host is an IP address: `transport=tcp` picks
/// TCP, `transport=tls` or a `sips:` URI TLS (RFC 3261 §26.2.2; a `sips:` URI is never
/// reached over a plain transport), else UDP. The default port is 5061 for TLS, 5060
/// otherwise. Host names would need DNS (RFC 3263), which the daemon does not do: agents
/// and trunks are configured or registered by address.
pub fn target_for_uri(uri: &Uri) -> Option<Target> {
    let sip = uri.as_sip()?;
    let ip: IpAddr = match &sip.host {
        Host::V4(a) => IpAddr::V4(*a),
        Host::V6(a) => IpAddr::V6(*a),
        Host::Name(n) if n.eq_ignore_ascii_case("localhost") => {
            IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
        }
        Host::Name(_) => return None,
    };
    let named = sip.params.value("transport").and_then(Protocol::from_name);
    let protocol = match named {
        _ if sip.secure => Protocol::Tls,
        Some(protocol) => protocol,
        None => Protocol::Udp,
    };
    Some(Target {
        protocol,
        addr: SocketAddr::new(ip, sip.port.unwrap_or(protocol.default_port())),
    })
}

pub(crate) fn local_hostport(
    transports: &Transports,
    config: &EndpointConfig,
    protocol: Protocol,
    remote: SocketAddr,
) -> (String, u16) {
    let local = transports
        .local_addr_for(protocol, remote)
        .unwrap_or_else(|| SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 5060));
    let host = if local.ip().is_unspecified() {
        config
            .advertised_host
            .clone()
            .unwrap_or_else(|| "127.0.0.1".to_owned())
    } else {
        match local.ip() {
            IpAddr::V4(a) => a.to_string(),
            IpAddr::V6(a) => format!("[{a}]"),
        }
    };
    (host, local.port())
}

/// Records where a request really came from in its top Via (RFC 3261 §18.2.1,
/// RFC 3581 §4): `received` when the sent-by host differs from the source address,
/// `rport` filled in when the client asked for it.
pub(crate) fn stamp_received(req: &mut Request, peer: &Peer) {
    let Some(first) = req.headers.0.iter_mut().find(|h| h.name == HeaderName::Via) else {
        return;
    };
    let Ok(mut via) = Via::parse(&first.value) else {
        return;
    };
    let source_ip = peer.remote.ip();
    let sent_by_ip = match &via.host {
        Host::V4(a) => Some(IpAddr::V4(*a)),
        Host::V6(a) => Some(IpAddr::V6(*a)),
        Host::Name(_) => None,
    };
    let mut changed = false;
    if sent_by_ip != Some(source_ip) {
        via.params.set("received", Some(source_ip.to_string()));
        changed = true;
    }
    if via.rport() == Some(None) {
        via.params
            .set("rport", Some(peer.remote.port().to_string()));
        changed = true;
    }
    if changed {
        first.value = via.to_string().into();
    }
}

/// Where responses to a request from `peer` go (RFC 3261 §18.2.2, RFC 3581 §4).
pub(crate) fn response_target(req: &Request, peer: &Peer, force_rport: bool) -> SocketAddr {
    if peer.protocol.is_reliable() || force_rport {
        return peer.remote;
    }
    match req.top_via() {
        Some(via) if via.rport().is_some() => peer.remote,
        Some(via) => SocketAddr::new(peer.remote.ip(), via.port.unwrap_or(5060)),
        None => peer.remote,
    }
}

/// Adds our Via on top (and Max-Forwards if missing) to a request we send.
pub(crate) fn add_via(req: &mut Request, host: &str, port: u16, protocol: Protocol) -> String {
    let branch = new_branch();
    req.headers.push_front(
        HeaderName::Via,
        format!(
            "SIP/2.0/{} {host}:{port};branch={branch};rport",
            protocol.via_token()
        ),
    );
    if req.headers.count(&HeaderName::MaxForwards) == 0 {
        req.headers.push(HeaderName::MaxForwards, "70");
    }
    branch
}

/// The ACK a client INVITE transaction sends for a non-2xx final response
/// (RFC 3261 §17.1.1.3).
pub(crate) fn ack_for_failure(invite: &Request, response: &Response) -> Request {
    let mut ack = Request::new(Method::Ack, invite.uri.clone());
    if let Some(via) = invite.headers.get(&HeaderName::Via) {
        ack.headers.push(HeaderName::Via, via.clone());
    }
    copy(&mut ack, invite, &HeaderName::MaxForwards);
    copy(&mut ack, invite, &HeaderName::From);
    match response.headers.get(&HeaderName::To) {
        Some(to) => ack.headers.push(HeaderName::To, to.clone()),
        None => copy(&mut ack, invite, &HeaderName::To),
    }
    copy(&mut ack, invite, &HeaderName::CallId);
    let seq = invite.cseq().map_or(1, |c| c.seq);
    ack.headers.push(HeaderName::CSeq, format!("{seq} ACK"));
    for route in invite.headers.get_all(&HeaderName::Route) {
        ack.headers.push(HeaderName::Route, route.clone());
    }
    ack
}

/// A CANCEL for an INVITE we sent (RFC 3261 §9.1).
pub(crate) fn cancel_for(invite: &Request) -> Request {
    let mut cancel = Request::new(Method::Cancel, invite.uri.clone());
    if let Some(via) = invite.headers.get(&HeaderName::Via) {
        cancel.headers.push(HeaderName::Via, via.clone());
    }
    copy(&mut cancel, invite, &HeaderName::MaxForwards);
    copy(&mut cancel, invite, &HeaderName::From);
    copy(&mut cancel, invite, &HeaderName::To);
    copy(&mut cancel, invite, &HeaderName::CallId);
    let seq = invite.cseq().map_or(1, |c| c.seq);
    cancel
        .headers
        .push(HeaderName::CSeq, format!("{seq} CANCEL"));
    for route in invite.headers.get_all(&HeaderName::Route) {
        cancel.headers.push(HeaderName::Route, route.clone());
    }
    cancel
}

fn copy(to: &mut Request, from: &Request, name: &HeaderName) {
    if let Some(v) = from.headers.get(name) {
        to.headers.push(name.clone(), v.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(uri: &str) -> Option<Target> {
        target_for_uri(&Uri::parse(uri).expect("test URI"))
    }

    #[test]
    fn the_transport_parameter_and_the_scheme_pick_the_protocol() {
        let at = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let t = |protocol, port| {
            Some(Target {
                protocol,
                addr: at(port),
            })
        };
        assert_eq!(target("sip:a@127.0.0.1"), t(Protocol::Udp, 5060));
        assert_eq!(
            target("sip:a@127.0.0.1:7;transport=TCP"),
            t(Protocol::Tcp, 7)
        );
        assert_eq!(
            target("sip:a@127.0.0.1;transport=tls"),
            t(Protocol::Tls, 5061)
        );
        assert_eq!(
            target("sip:a@127.0.0.1:9;transport=tls"),
            t(Protocol::Tls, 9)
        );
        assert_eq!(target("sips:a@127.0.0.1"), t(Protocol::Tls, 5061));
        // A sips: URI is never reached over a plain transport, whatever it says.
        assert_eq!(
            target("sips:a@127.0.0.1:8;transport=tcp"),
            t(Protocol::Tls, 8)
        );
        // An unknown transport falls back to UDP, as before.
        assert_eq!(
            target("sip:a@127.0.0.1;transport=sctp"),
            t(Protocol::Udp, 5060)
        );
        assert_eq!(target("sip:a@example.com;transport=tls"), None);
    }
}
