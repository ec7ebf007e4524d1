//! The SIP message path as the daemon runs it on every datagram or TCP frame.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::media::dtmf::{event_digit, parse_dtmf_relay};
use crate::sip::auth::{Algorithm, DigestServer};
use crate::sip::dialog::Dialog;
use crate::sip::endpoint::build::{add_via, response_target, stamp_received};
use crate::sip::endpoint::target_for_uri;
use crate::sip::message::{response_to, HeaderAccess};
use crate::sip::parse::{frame, parse, reply_info};
use crate::sip::registrar::Registrar;
use crate::sip::transport::{Peer, Protocol};
use crate::sip::validate::{check_request, Capabilities};
use crate::sip::{HeaderName, Message, Method, NameAddr, Request, Response, Uri};

/// Stream framing, parsing, the lenient scan that answers broken requests, and for what
/// parses: serialize → parse stability; for requests, what the endpoint and call control
/// do with them (see [`as_received`]).
pub fn sip(data: &[u8]) {
    let _ = frame(data);
    // The endpoint answers what it cannot parse from what this scan finds. The headers
    // are copied back verbatim (they may be the broken part), so the answer is not
    // required to parse; building it must not fail.
    if let Some(info) = reply_info(data) {
        let _ = info.response(400, "Bad Request").to_bytes();
    }
    let Ok(msg) = parse(Bytes::copy_from_slice(data)) else {
        return;
    };
    let bytes = msg.to_bytes();
    let again = parse(bytes.clone()).expect("a serialized message parses");
    assert_eq!(again.to_bytes(), bytes, "serialization is stable");
    match msg {
        Message::Request(req) => {
            for protocol in [Protocol::Udp, Protocol::Tcp] {
                as_received(req.clone(), protocol);
            }
        }
        Message::Response(resp) => {
            let _ = (resp.header_to(), resp.contacts(), resp.cseq(), resp.vias());
        }
    }
}

fn peer(protocol: Protocol) -> Peer {
    Peer {
        protocol,
        local: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5060),
        remote: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)), 5099),
    }
}

/// The endpoint stamps the request's source into its Via, checks it and answers it; call
/// control reads the numbers, the SDP offer, INFO keys and REFER targets; the registrar
/// and digest authentication read REGISTERs and credentials. Every answer the daemon
/// builds for a request it accepted must parse at the other end.
fn as_received(mut req: Request, protocol: Protocol) {
    let peer = peer(protocol);
    stamp_received(&mut req, &peer);
    let stamped = parse(req.to_bytes()).expect("a request with its source stamped parses");
    assert_eq!(stamped.to_bytes(), req.to_bytes(), "stamping is stable");
    let _ = response_target(&req, &peer, false);
    let _ = (req.routes(), req.record_routes(), req.max_forwards());
    let _ = (req.expires(), req.allow(), req.content_type());

    if let Err(rejection) = check_request(&req, &Capabilities::default()) {
        let mut resp = response_to(&req, rejection.status, Some(&rejection.reason), Some("t"));
        for (name, value) in rejection.headers {
            resp.headers.push(name, value);
        }
        let _ = resp.to_bytes();
        return;
    }
    for status in [100, 180, 200, 486] {
        let resp = response_to(&req, status, None, Some("fuzz-tag"));
        let reparsed = reparse_response(&resp);
        assert_eq!(reparsed.call_id(), req.call_id(), "Call-ID copied");
        assert_eq!(reparsed.cseq(), req.cseq(), "CSeq copied");
        if status != 100 {
            assert!(
                reparsed.header_to().is_some_and(|to| to.tag().is_some()),
                "a {status} to an accepted request has a To tag"
            );
        }
    }
    call_control_reads(&req);
    authentication(&req, &peer);
    if req.method == Method::Invite {
        dialog_requests(&req);
    }
}

fn reparse_response(resp: &Response) -> Response {
    match parse(resp.to_bytes()) {
        Ok(Message::Response(parsed)) => parsed,
        other => panic!(
            "our {} to an accepted request does not parse: {other:?}",
            resp.status
        ),
    }
}

fn call_control_reads(req: &Request) {
    let _ = req.uri.user();
    let _ = req.header_from().and_then(|from| from.uri.user());
    let _ = req
        .headers
        .get(&HeaderName::ReferTo)
        .and_then(|v| NameAddr::parse(v).ok())
        .and_then(|n| n.uri.user());
    let _ = req
        .headers
        .get(&HeaderName::Other("X-Ticket-ID".into()))
        .map(|v| v.trim().to_owned());
    for contact in req.contacts() {
        let _ = target_for_uri(&contact.uri);
    }
    let _ = target_for_uri(&req.uri);
    super::sdp(&req.body);
    if let Ok(body) = std::str::from_utf8(&req.body) {
        if let Some(key) = parse_dtmf_relay(body) {
            assert!(
                (0..16).any(|code| event_digit(code) == Some(key)),
                "INFO gave {key:?}, which is not a key"
            );
        }
    }
}

fn authentication(req: &Request, peer: &Peer) {
    // A fixed secret and clock, so that a run can be replayed.
    let digest = DigestServer::new("threering", [7; 32], Duration::from_secs(300));
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    for name in [HeaderName::Authorization, HeaderName::ProxyAuthorization] {
        for value in req.headers.get_all(&name) {
            let _ = digest.verify(req.method.as_str(), value, |_| Some("secret".into()), now);
        }
    }
    if req.method == Method::Register {
        let lockouts = std::sync::Arc::new(crate::sip::auth::lockout::Lockouts::new(
            crate::config::Config::embedded().sip.lockout_policy(),
        ));
        let auth = crate::sip::authenticator::Authenticator::new(
            "threering",
            vec![Algorithm::Md5],
            lockouts,
        );
        let mut registrar = Registrar::new(3600);
        let (resp, _) = registrar.handle(req, peer, &auth, |_| Some("secret".into()));
        reparse_response(&resp);
    }
}

/// The dialog a 200 to an INVITE forms, and our requests in it (BYE, re-INVITE, ACK).
fn dialog_requests(invite: &Request) {
    let Some(remote_contact) = invite.contacts().into_iter().next() else {
        return;
    };
    let ok = response_to(invite, 200, None, Some("fuzz-tag"));
    let contact = Uri::parse("sip:threering@127.0.0.1:5060").expect("a literal URI parses");
    let mut dialog = Dialog::uas(invite, &ok, contact)
        .expect("an accepted INVITE with a Contact forms a dialog");
    let requests = [
        dialog.request(Method::Bye),
        dialog.request(Method::Invite),
        dialog.ack(1),
    ];
    for mut request in requests {
        add_via(&mut request, "127.0.0.1", 5060, Protocol::Udp);
        let parsed = match parse(request.to_bytes()) {
            Ok(Message::Request(parsed)) => parsed,
            other => panic!(
                "our {} in a dialog does not parse: {other:?}",
                request.method
            ),
        };
        // A phone whose Contact is not a SIP URI gets requests it cannot take anyway.
        if remote_contact.uri.as_sip().is_some() {
            if let Err(rejection) = check_request(&parsed, &Capabilities::default()) {
                panic!(
                    "our {} in a dialog fails our own checks: {} {}",
                    request.method, rejection.status, rejection.reason
                );
            }
        }
    }
}
