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
        let mut req = Request::new(method.clone(), self.remote_target.clone());
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
        let mut req = Request::new(Method::Ack, self.remote_target.clone());
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
    use bytes::Bytes;

    fn invite() -> Request {
        let raw = "INVITE sip:4008001234@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\nFrom: <sip:caller@127.0.0.1>;tag=abc\r\nTo: <sip:4008001234@127.0.0.1>\r\nCall-ID: c1@test\r\nCSeq: 7 INVITE\r\nContact: <sip:caller@127.0.0.1:5070>\r\nRecord-Route: <sip:p1.example;lr>, <sip:p2.example;lr>\r\nContent-Length: 0\r\n\r\n";
        match parse(Bytes::from(raw)).unwrap() {
            Message::Request(r) => r,
            _ => unreachable!(),
        }
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
