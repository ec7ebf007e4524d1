//! Dialogs (RFC 3261 §12) as a B2BUA needs them: state built from an INVITE and its
//! response on either side, in-dialog requests (BYE, re-INVITE, INFO, OPTIONS) with
//! the route set and remote target, CSeq ordering of the requests the peer sends, and
//! the ACK for a 2xx. Pure data and functions; the endpoint sends what they build.
//!
//! ```text
//!   1xx with To tag ──▶ Early ──2xx──▶ Confirmed ──BYE (either side)──▶ Terminated
//!         └──────────────────── 3xx–6xx / CANCEL ─────────────────────────▲
//! ```

use super::header::{HeaderName, NameAddr};
use super::message::{random_token, HeaderAccess, Method, Request, Response};
use super::uri::Uri;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogState {
    Early,
    Confirmed,
    Terminated,
}

/// Call-ID plus both tags: what identifies a dialog.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
}

#[derive(Debug, Clone)]
pub struct Dialog {
    pub id: DialogId,
    pub state: DialogState,
    /// Our URI with our tag (From in our requests).
    pub local: NameAddr,
    /// The peer's URI with its tag (To in our requests).
    pub remote: NameAddr,
    /// Last CSeq number we used.
    pub local_seq: u32,
    /// Highest CSeq number the peer used, once it sent something.
    pub remote_seq: Option<u32>,
    /// Where in-dialog requests go: the peer's Contact.
    pub remote_target: Uri,
    /// Record-Route, in the order our requests must carry it as Route.
    pub route_set: Vec<NameAddr>,
    /// Our Contact, for target-refresh requests and responses.
    pub local_contact: Uri,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialogError {
    #[error("message lacks {what}")]
    Missing { what: &'static str },
    #[error("CSeq {got} is not above {last}: out of order")]
    OutOfOrder { got: u32, last: u32 },
}

impl Dialog {
    /// The dialog a UAS forms when it answers `invite` with `response` (1xx with a To
    /// tag or 2xx, RFC 3261 §12.1.1).
    pub fn uas(
        invite: &Request,
        response: &Response,
        local_contact: Uri,
    ) -> Result<Dialog, DialogError> {
        let missing = |what| DialogError::Missing { what };
        let local = response.header_to().ok_or(missing("To"))?;
        let remote = invite.header_from().ok_or(missing("From"))?;
        let local_tag = local.tag().ok_or(missing("To tag"))?.to_owned();
        let remote_tag = remote.tag().unwrap_or("").to_owned();
        let remote_target = invite
            .contacts()
            .into_iter()
            .next()
            .ok_or(missing("Contact"))?
            .uri;
        Ok(Dialog {
            id: DialogId {
                call_id: invite.call_id().ok_or(missing("Call-ID"))?.to_owned(),
                local_tag,
                remote_tag,
            },
            state: if response.is_success() {
                DialogState::Confirmed
            } else {
                DialogState::Early
            },
            local,
            remote,
            local_seq: 0,
            remote_seq: invite.cseq().map(|c| c.seq),
            remote_target,
            route_set: invite.record_routes(),
            local_contact,
        })
    }

    /// The dialog a UAC forms from its `invite` and a response with a To tag
    /// (RFC 3261 §12.1.2): the route set is the Record-Route reversed.
    pub fn uac(invite: &Request, response: &Response) -> Result<Dialog, DialogError> {
        let missing = |what| DialogError::Missing { what };
        let local = invite.header_from().ok_or(missing("From"))?;
        let remote = response.header_to().ok_or(missing("To"))?;
        let remote_tag = remote.tag().ok_or(missing("To tag"))?.to_owned();
        let remote_target = response
            .contacts()
            .into_iter()
            .next()
            .map(|c| c.uri)
            .unwrap_or_else(|| invite.uri.clone());
        let mut route_set = response.record_routes();
        route_set.reverse();
        let local_contact = invite
            .contacts()
            .into_iter()
            .next()
            .map(|c| c.uri)
            .ok_or(missing("Contact"))?;
        Ok(Dialog {
            id: DialogId {
                call_id: invite.call_id().ok_or(missing("Call-ID"))?.to_owned(),
                local_tag: local.tag().ok_or(missing("From tag"))?.to_owned(),
                remote_tag,
            },
            state: if response.is_success() {
                DialogState::Confirmed
            } else {
                DialogState::Early
            },
            local,
            remote,
            local_seq: invite.cseq().map_or(1, |c| c.seq),
            remote_seq: None,
            remote_target,
            route_set,
            local_contact,
        })
    }

    /// Where in-dialog requests are sent (RFC 3261 §12.2.1.1, §8.1.2): the first entry of
    /// the route set (a record-routing proxy) when there is one, else the remote target.
    pub fn next_hop(&self) -> &Uri {
        self.route_set
            .first()
            .map_or(&self.remote_target, |route| &route.uri)
    }

    /// A new in-dialog request (RFC 3261 §12.2.1.1). Takes the next CSeq, except for
    /// ACK and CANCEL which reuse the INVITE's.
    pub fn request(&mut self, method: Method) -> Request {
        if method != Method::Ack && method != Method::Cancel {
            self.local_seq += 1;
        }
        let mut req = Request::new(method.clone(), self.remote_target.to_request_uri());
        for route in &self.route_set {
            req.headers.push(HeaderName::Route, route.to_string());
        }
        req.headers.push(HeaderName::From, self.local.to_string());
        req.headers.push(HeaderName::To, self.remote.to_string());
        req.headers
            .push(HeaderName::CallId, self.id.call_id.as_str());
        req.headers
            .push(HeaderName::CSeq, format!("{} {method}", self.local_seq));
        if matches!(method, Method::Invite | Method::Update) {
            req.headers
                .push(HeaderName::Contact, format!("<{}>", self.local_contact));
        }
        req
    }

    /// The ACK for a 2xx to the INVITE with CSeq `invite_seq` (RFC 3261 §13.2.2.4).
    pub fn ack(&self, invite_seq: u32) -> Request {
        let mut req = Request::new(Method::Ack, self.remote_target.to_request_uri());
        for route in &self.route_set {
            req.headers.push(HeaderName::Route, route.to_string());
        }
        req.headers.push(HeaderName::From, self.local.to_string());
        req.headers.push(HeaderName::To, self.remote.to_string());
        req.headers
            .push(HeaderName::CallId, self.id.call_id.as_str());
        req.headers
            .push(HeaderName::CSeq, format!("{invite_seq} ACK"));
        req
    }

    /// Checks a request the peer sent in this dialog (RFC 3261 §12.2.2): CSeq must grow
    /// (ACK and CANCEL excepted); a target refresh updates the remote target.
    pub fn on_remote_request(&mut self, req: &Request) -> Result<(), DialogError> {
        let cseq = req.cseq().ok_or(DialogError::Missing { what: "CSeq" })?;
        if req.method != Method::Ack && req.method != Method::Cancel {
            if let Some(last) = self.remote_seq {
                if cseq.seq <= last {
                    return Err(DialogError::OutOfOrder {
                        got: cseq.seq,
                        last,
                    });
                }
            }
            self.remote_seq = Some(cseq.seq);
        }
        if req.method == Method::Invite || req.method == Method::Update {
            if let Some(c) = req.contacts().into_iter().next() {
                self.remote_target = c.uri;
            }
        }
        if req.method == Method::Bye {
            self.state = DialogState::Terminated;
        }
        Ok(())
    }

    /// Does this request belong to this dialog (as seen from our side)?
    pub fn matches(&self, req: &Request) -> bool {
        let to_tag = req.header_to().and_then(|t| t.tag().map(str::to_owned));
        let from_tag = req.header_from().and_then(|f| f.tag().map(str::to_owned));
        req.call_id() == Some(self.id.call_id.as_str())
            && to_tag.as_deref() == Some(self.id.local_tag.as_str())
            && from_tag.as_deref().unwrap_or("") == self.id.remote_tag
    }
}

/// A new From tag / Call-ID for a dialog we start.
pub fn new_tag() -> String {
    random_token()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{response_to, Message};
    use crate::sip::parse::parse;
    use crate::sip::HeaderName;
    use bytes::Bytes;

    fn invite() -> Request {
        let raw = "INVITE sip:4008001234@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\nFrom: <sip:caller@127.0.0.1>;tag=abc\r\nTo: <sip:4008001234@127.0.0.1>\r\nCall-ID: c1@test\r\nCSeq: 7 INVITE\r\nContact: <sip:caller@127.0.0.1:5070>\r\nRecord-Route: <sip:p1.example;lr>, <sip:p2.example;lr>\r\nContent-Length: 0\r\n\r\n";
        match parse(Bytes::from(raw)).unwrap() {
            Message::Request(r) => r,
            _ => unreachable!(),
        }
    }

    /// Our requests in the dialog an INVITE forms, with a Via as the endpoint adds, as the
    /// phone's parser sees them.
    fn our_requests_parse(invite: &[u8]) {
        let Ok(Message::Request(inv)) = parse(Bytes::copy_from_slice(invite)) else {
            panic!("the INVITE parses");
        };
        let resp = response_to(&inv, 200, None, Some("ours"));
        let mut d = Dialog::uas(&inv, &resp, Uri::parse("sip:tr@127.0.0.1:5060").unwrap()).unwrap();
        for mut req in [d.request(Method::Bye), d.request(Method::Invite), d.ack(1)] {
            req.headers
                .push_front(HeaderName::Via, "SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK-t");
            assert!(
                parse(req.to_bytes()).is_ok(),
                "{}",
                String::from_utf8_lossy(&req.to_bytes())
            );
        }
    }

    /// Regression (fuzzer, sip_parse): a Contact with `?headers` became the Request-URI
    /// of our BYE, where RFC 3261 §19.1.1 forbids them: the phone would refuse our BYE.
    #[test]
    fn contact_headers_stay_out_of_our_request_uri() {
        our_requests_parse(INVITE_WITH_CONTACT_HEADERS);
        let Ok(Message::Request(inv)) = parse(Bytes::from_static(INVITE_WITH_CONTACT_HEADERS))
        else {
            panic!("parses");
        };
        let resp = response_to(&inv, 200, None, Some("ours"));
        let mut d = Dialog::uas(&inv, &resp, Uri::parse("sip:tr@127.0.0.1:5060").unwrap()).unwrap();
        assert_eq!(
            d.request(Method::Bye).uri.to_string(),
            "sip:13800138000@127.0.0.1:5070;tran"
        );
    }

    const INVITE_WITH_CONTACT_HEADERS: &[u8] = b"INVITE sip:4008001234@127.0.0.1:5060 SIP/2.0\r\n\
    Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-4242-1-inv;rport\r\n\
    From: \x22Test Caller\x22 <sip:13800138000@127.0.0.1:5070>;tag=4242SIPpTag001\r\n\
    To: <sip:4008001234@127.0.0.1:5060>\r\n\
    Call-ID: seed-1@127.0.0.1\r\n\
    CSeq: 1 INVITE\r\n\
    Contact: <sip:13800138000@127.0.0.1:5070;tran?sport=UDP>\r\n\
    Max-Forwards: 70\r\n\
    Subject: threering daemon test\r\n\
    Content-Type: application/sdp\r\n\
    Content-Length: 083\r\n\
    \r\n\
    v=0\r\n\
    o=caller 53655765 2353687637 IN IP4 127.0.0.1\r\n\
    s=-\r\n\
    c=IN IP4 127.0.0.1\r\n\
    t=0 0\r\n\
    m=audio 6004 RTP/AVP 8 0\r\n\
    a=r\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00endrecv\r\n";

    /// Regression (fuzzer, sip_parse): `From: s:>` was taken as a URI of scheme `s`, and
    /// written back as `<s:>>` in the To of our BYE, which no parser reads.
    #[test]
    fn a_uri_with_characters_no_uri_has_is_refused() {
        let invite: &[u8] = b"INVITE sip:1.0.0.1 SIP/2.0\n\
            V:SIP/2.0/UD b\n\
            F:s:>\n\
            T:p:0\n\
            Call-ID:s\n\
            CSeq:1 INVITE\n\
            Contact:<p:1>\n";
        assert!(parse(Bytes::from_static(invite)).is_err());
        assert!(crate::sip::NameAddr::parse("s:>").is_err());
        assert!(Uri::parse("p:1").is_ok());
    }

    #[test]
    fn uas_dialog_and_bye() {
        let inv = invite();
        let resp = response_to(&inv, 200, None, Some("ours"));
        let mut d = Dialog::uas(&inv, &resp, Uri::parse("sip:tr@127.0.0.1:5060").unwrap()).unwrap();
        assert_eq!(d.id.local_tag, "ours");
        assert_eq!(d.id.remote_tag, "abc");
        assert_eq!(d.state, DialogState::Confirmed);
        let bye = d.request(Method::Bye);
        assert_eq!(bye.uri.to_string(), "sip:caller@127.0.0.1:5070");
        assert_eq!(d.next_hop().to_string(), "sip:p1.example;lr");
        d.route_set.clear();
        assert_eq!(d.next_hop().to_string(), "sip:caller@127.0.0.1:5070");
        assert_eq!(bye.routes().len(), 2);
        assert_eq!(bye.routes()[0].uri.to_string(), "sip:p1.example;lr");
        assert_eq!(bye.cseq().unwrap().seq, 1);
        assert_eq!(bye.header_to().unwrap().tag(), Some("abc"));
    }

    #[test]
    fn uac_dialog_reverses_route_set_and_orders_cseq() {
        let inv = invite();
        // response_to copies the Record-Route, as the far UAS does.
        let resp = response_to(&inv, 180, None, Some("theirs"));
        let mut d = Dialog::uac(&inv, &resp).unwrap();
        assert_eq!(d.state, DialogState::Early);
        assert_eq!(d.route_set[0].uri.to_string(), "sip:p2.example;lr");
        assert_eq!(d.next_hop().to_string(), "sip:p2.example;lr");
        assert_eq!(d.ack(7).cseq().unwrap().seq, 7);
        assert_eq!(d.request(Method::Bye).cseq().unwrap().seq, 8);
        let mut in_dialog = d.request(Method::Info);
        in_dialog.headers.set(HeaderName::CSeq, "3 INFO");
        d.on_remote_request(&in_dialog).unwrap();
        in_dialog.headers.set(HeaderName::CSeq, "2 INFO");
        assert!(matches!(
            d.on_remote_request(&in_dialog),
            Err(DialogError::OutOfOrder { .. })
        ));
    }

    #[test]
    fn dialog_forming_responses_carry_the_record_route() {
        let inv = invite();
        let rr = |resp: &Response| resp.headers.get_all(&HeaderName::RecordRoute).count();
        // Both values of the request's one Record-Route line, in order.
        let ringing = response_to(&inv, 180, None, Some("t"));
        assert_eq!(rr(&ringing), 2);
        assert_eq!(
            ringing.record_routes()[0].uri.to_string(),
            "sip:p1.example;lr"
        );
        assert_eq!(rr(&response_to(&inv, 200, None, Some("t"))), 2);
        assert_eq!(rr(&response_to(&inv, 100, None, None)), 0);
        assert_eq!(rr(&response_to(&inv, 486, None, Some("t"))), 0);
        let mut options = inv.clone();
        options.method = Method::Options;
        assert_eq!(rr(&response_to(&options, 200, None, Some("t"))), 0);
    }
}
