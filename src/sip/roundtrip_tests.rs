//! Property test: any message our serializer writes parses back to the same message,
//! and serializing that again gives the same bytes.

use super::header::HeaderName;
use super::message::{HeaderAccess, Message, Method, Request, Response};
use super::parse::parse;
use super::uri::Uri;
use proptest::prelude::*;

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9.!%*_+`'~-]{0,12}"
}

fn display() -> impl Strategy<Value = String> {
    "[ -~]{0,16}"
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::Invite),
        Just(Method::Options),
        Just(Method::Register),
        Just(Method::Bye),
        "[A-Z]{3,10}".prop_map(|m| Method::from(m.as_str())),
    ]
}

prop_compose! {
    fn request()(method in method(), user in "[a-z0-9]{1,10}", host in "[a-z]{1,8}\\.example\\.com",
                 port in proptest::option::of(1u16..), dn in display(), tag in token(),
                 branch in token(), seq in 0u32..(1 << 31), call_id in token(),
                 extra in proptest::collection::vec((token(), "[ -~]{0,30}"), 0..4),
                 body in proptest::collection::vec(any::<u8>(), 0..64)) -> Request {
        let port = port.map(|p| format!(":{p}")).unwrap_or_default();
        let uri = Uri::parse(&format!("sip:{user}@{host}{port}")).unwrap();
        let mut req = Request::new(method.clone(), uri.clone());
        req.headers.push(HeaderName::Via, format!("SIP/2.0/UDP {host}{port};branch=z9hG4bK{branch};rport"));
        req.headers.push(HeaderName::From, format!("{} <sip:{user}@{host}>;tag={tag}", super::text::quote(&dn)));
        req.headers.push(HeaderName::To, format!("<{uri}>"));
        req.headers.push(HeaderName::CallId, call_id);
        req.headers.push(HeaderName::CSeq, format!("{seq} {method}"));
        req.headers.push(HeaderName::MaxForwards, "70");
        for (name, value) in extra {
            let value = value.trim().to_owned();
            let name = HeaderName::from_wire(format!("X-{name}").as_str().into());
            if !value.is_empty() {
                req.headers.push(name, value);
            }
        }
        req.body = body.into();
        req
    }
}

proptest! {
    #[test]
    fn request_roundtrip(req in request()) {
        let bytes = req.to_bytes();
        let Message::Request(back) = parse(bytes.clone()).expect("our own output parses") else {
            panic!("request expected")
        };
        prop_assert_eq!(&back.method, &req.method);
        prop_assert_eq!(&back.uri, &req.uri);
        prop_assert_eq!(&back.body, &req.body);
        prop_assert_eq!(back.header_from(), req.header_from());
        prop_assert_eq!(back.cseq(), req.cseq());
        prop_assert_eq!(back.to_bytes(), bytes);
    }

    #[test]
    fn response_roundtrip(status in 100u16..700, reason in "[ -~]{0,20}", req in request()) {
        let mut resp = super::message::response_to(&req, status, None, Some("t1"));
        resp.reason = reason.trim().into();
        let bytes = resp.to_bytes();
        let Message::Response(back) = parse(bytes.clone()).expect("our own output parses") else {
            panic!("response expected")
        };
        prop_assert_eq!(back.status, status);
        prop_assert_eq!(back.to_bytes(), bytes);
        let _: &Response = &back;
    }
}
