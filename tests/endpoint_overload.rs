//! The endpoint's overload limits over real loopback sockets: past `max_transactions` a
//! new request gets a stateless 503 (its retransmission too) while a CANCEL of an INVITE
//! in progress and in-dialog requests still pass; a source past its request rate gets
//! 503s, then silence, while another source is served; a source's unanswered INVITEs
//! are capped until one is answered.

use bytes::Bytes;
use std::net::IpAddr;
use std::time::{Duration, Instant};
use threering::sip::endpoint::{Endpoint, EndpointConfig, Event, OverloadConfig, TrustPolicy};
use threering::sip::message::{response_to, Message, Method, Response};
use threering::sip::{parse, HeaderAccess, HeaderName};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

async fn endpoint(
    overload: OverloadConfig,
) -> (Endpoint, mpsc::Receiver<Event>, CancellationToken) {
    let cancel = CancellationToken::new();
    let config = EndpointConfig {
        listen: vec!["udp:127.0.0.1:0".parse().unwrap()],
        overload,
        ..EndpointConfig::default()
    };
    let (ep, events) = Endpoint::start(config, cancel.clone()).await.unwrap();
    (ep, events, cancel)
}

/// No source is trusted: every one meets `source_rps` and `source_pending_invites`.
fn untrusted() -> TrustPolicy {
    TrustPolicy::new(|_: IpAddr| false)
}

/// A request from `socket`: `to_tag` makes it in-dialog.
fn request(
    socket: &UdpSocket,
    method: &str,
    branch: &str,
    call_id: &str,
    to_tag: Option<&str>,
) -> String {
    let local = socket.local_addr().unwrap();
    let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    let seq = if method == "BYE" { 2 } else { 1 };
    format!(
        "{method} sip:echo@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch}\r\nFrom: <sip:c@127.0.0.1>;tag=f-{call_id}\r\nTo: <sip:echo@127.0.0.1>{to_tag}\r\nCall-ID: {call_id}\r\nCSeq: {seq} {method}\r\nContact: <sip:c@{local}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

async fn send(socket: &UdpSocket, ep: &Endpoint, text: &str) {
    let to = ep.listening()[0].addr;
    socket.send_to(text.as_bytes(), to).await.unwrap();
}

/// Responses that reach `socket` until it has been quiet for `quiet`.
async fn responses(socket: &UdpSocket, quiet: Duration) -> Vec<Response> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65_535];
    while let Ok(Ok((n, _))) = tokio::time::timeout(quiet, socket.recv_from(&mut buf)).await {
        if let Ok(Message::Response(r)) = parse(Bytes::copy_from_slice(&buf[..n])) {
            out.push(r);
        }
    }
    out
}

fn statuses(rs: &[Response]) -> Vec<(u16, String)> {
    rs.iter()
        .map(|r| {
            let method = r
                .cseq()
                .map(|c| c.method.as_str().to_owned())
                .unwrap_or_default();
            (r.status, method)
        })
        .collect()
}

/// New requests the application was told about.
fn requests(events: &mut mpsc::Receiver<Event>) -> Vec<(Method, String)> {
    let mut out = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let Event::Request { request, .. } = event {
            out.push((
                request.method.clone(),
                request.call_id().unwrap_or("").to_owned(),
            ));
        }
    }
    out
}

#[tokio::test]
async fn past_max_transactions_new_requests_get_a_stateless_503_but_cancel_and_in_dialog_pass() {
    let (ep, mut events, cancel) = endpoint(OverloadConfig {
        max_transactions: 4,
        ..OverloadConfig::default()
    })
    .await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for i in 0..4 {
        let text = request(
            &socket,
            "INVITE",
            &format!("z9hG4bKfill{i}"),
            &format!("fill-{i}"),
            None,
        );
        send(&socket, &ep, &text).await;
    }
    // The application does not answer: 4 transactions stay (the endpoint's own 100s).
    responses(&socket, Duration::from_millis(300)).await;
    assert_eq!(requests(&mut events).len(), 4);

    let over = request(&socket, "INVITE", "z9hG4bKover", "over", None);
    send(&socket, &ep, &over).await;
    let first = responses(&socket, Duration::from_millis(300)).await;
    assert_eq!(statuses(&first), [(503, "INVITE".to_owned())]);
    assert_eq!(
        first[0]
            .headers
            .get(&HeaderName::RetryAfter)
            .map(|v| v.trim()),
        Some("5")
    );
    assert!(first[0]
        .header_to()
        .and_then(|t| t.tag().map(str::to_owned))
        .is_some());
    // No transaction was kept: a retransmission is judged afresh (a new To tag), and
    // the application never hears of it.
    send(&socket, &ep, &over).await;
    let again = responses(&socket, Duration::from_millis(300)).await;
    assert_eq!(statuses(&again), [(503, "INVITE".to_owned())]);
    assert_ne!(
        again[0]
            .header_to()
            .and_then(|t| t.tag().map(str::to_owned)),
        first[0]
            .header_to()
            .and_then(|t| t.tag().map(str::to_owned))
    );
    assert_eq!(requests(&mut events), []);

    // An in-dialog request (a BYE ending a call) has headroom past the cap...
    let bye = request(&socket, "BYE", "z9hG4bKbye", "talking", Some("ours"));
    send(&socket, &ep, &bye).await;
    responses(&socket, Duration::from_millis(200)).await;
    assert_eq!(requests(&mut events), [(Method::Bye, "talking".to_owned())]);
    // ...and the CANCEL of an INVITE in progress always passes: 200, and 487 for it.
    let cancel_text = request(&socket, "CANCEL", "z9hG4bKfill0", "fill-0", None);
    send(&socket, &ep, &cancel_text).await;
    let mut got = statuses(&responses(&socket, Duration::from_millis(300)).await);
    got.sort();
    assert_eq!(
        got,
        [(200, "CANCEL".to_owned()), (487, "INVITE".to_owned())]
    );
    cancel.cancel();
}

/// Answered transactions linger 32 s to absorb retransmissions; they are not work in
/// progress, so `max_transactions` does not count them (at a steady call rate they
/// outnumber the open ones tenfold, and counting them refused calls at a quarter of the
/// rate the daemon could take). All of them together are held to 8 times the limit.
#[tokio::test]
async fn answered_transactions_lingering_for_retransmissions_do_not_use_up_the_limit() {
    let (ep, mut events, cancel) = endpoint(OverloadConfig {
        max_transactions: 4,
        ..OverloadConfig::default()
    })
    .await;
    // The application answers OPTIONS 200 and leaves INVITEs ringing.
    let app = ep.clone();
    let (invites_tx, mut invites) = mpsc::unbounded_channel();
    let answering = tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let Event::Request { tx, request, .. } = event {
                if request.method == Method::Invite {
                    let _ = invites_tx.send(request.call_id().unwrap_or("").to_owned());
                } else {
                    let _ = app
                        .respond(tx, response_to(&request, 200, None, None))
                        .await;
                }
            }
        }
    });
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // 31 answered OPTIONS, at most 4 open at a time: each then lingers (Timer J), so
    // together they are far past max_transactions.
    for batch in (0..31).collect::<Vec<_>>().chunks(4) {
        for i in batch {
            let text = request(
                &socket,
                "OPTIONS",
                &format!("z9hG4bKdone{i}"),
                &format!("done-{i}"),
                None,
            );
            send(&socket, &ep, &text).await;
        }
        let answered = statuses(&responses(&socket, Duration::from_millis(150)).await);
        assert_eq!(answered, vec![(200, "OPTIONS".to_owned()); batch.len()]);
    }
    // A new call is still taken: one open transaction of 4, 32 held of 8 x 4.
    let call = request(&socket, "INVITE", "z9hG4bKcall", "call", None);
    send(&socket, &ep, &call).await;
    let got = statuses(&responses(&socket, Duration::from_millis(300)).await);
    assert_eq!(got, [(100, "INVITE".to_owned())]);
    assert_eq!(invites.recv().await.as_deref(), Some("call"));
    // Now 32 are held: the next new request is refused for the overall bound.
    let over = request(&socket, "INVITE", "z9hG4bKover", "over", None);
    send(&socket, &ep, &over).await;
    let got = statuses(&responses(&socket, Duration::from_millis(300)).await);
    assert_eq!(got, [(503, "INVITE".to_owned())]);
    assert!(
        invites.try_recv().is_err(),
        "the refused INVITE never reached the application"
    );
    answering.abort();
    cancel.cancel();
}

#[tokio::test]
async fn a_source_past_its_rate_gets_503s_then_silence_while_another_source_is_served() {
    let (ep, mut events, cancel) = endpoint(OverloadConfig {
        source_rps: 10,
        trusted: untrusted(),
        ..OverloadConfig::default()
    })
    .await;
    // The application answers every request 200.
    let app = ep.clone();
    let answering = tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let Event::Request { tx, request, .. } = event {
                let _ = app
                    .respond(tx, response_to(&request, 200, None, None))
                    .await;
            }
        }
    });
    let flooder = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let started = Instant::now();
    for i in 0..100 {
        let text = request(
            &flooder,
            "OPTIONS",
            &format!("z9hG4bKo{i}"),
            &format!("o-{i}"),
            None,
        );
        send(&flooder, &ep, &text).await;
    }
    let sent_in = started.elapsed();
    let got = statuses(&responses(&flooder, Duration::from_millis(500)).await);
    let ok = got.iter().filter(|(s, _)| *s == 200).count();
    let refused = got.iter().filter(|(s, _)| *s == 503).count();
    // Burst: twice the rate (20), plus what refilled while sending.
    let refill = (sent_in.as_secs_f64() * 10.0).ceil() as usize;
    assert!(
        (20..=20 + refill).contains(&ok),
        "{ok} answered 200 in {sent_in:?}: {got:?}"
    );
    // About twice the rate of refusals, then silence: the rest are dropped.
    assert!(
        (18..=22 + refill).contains(&refused),
        "{refused} refused 503: {got:?}"
    );
    assert_eq!(ok + refused, got.len(), "only 200 and 503: {got:?}");
    assert!(got.len() < 100, "a flood is not answered in full");

    // Another address is served at once.
    let other = UdpSocket::bind("127.0.0.2:0").await.unwrap();
    let text = request(&other, "OPTIONS", "z9hG4bKother", "other", None);
    send(&other, &ep, &text).await;
    let got = statuses(&responses(&other, Duration::from_millis(300)).await);
    assert_eq!(got, [(200, "OPTIONS".to_owned())]);
    cancel.cancel();
    answering.abort();
}

#[tokio::test]
async fn unanswered_invites_from_one_source_are_capped_until_one_is_answered() {
    let (ep, mut events, cancel) = endpoint(OverloadConfig {
        source_pending_invites: 2,
        trusted: untrusted(),
        ..OverloadConfig::default()
    })
    .await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for i in 0..2 {
        let text = request(
            &socket,
            "INVITE",
            &format!("z9hG4bKp{i}"),
            &format!("p-{i}"),
            None,
        );
        send(&socket, &ep, &text).await;
    }
    responses(&socket, Duration::from_millis(300)).await;
    let pending = {
        let mut pending = Vec::new();
        while let Ok(event) = events.try_recv() {
            if let Event::Request { tx, request, .. } = event {
                pending.push((tx, request));
            }
        }
        pending
    };
    assert_eq!(pending.len(), 2);

    let third = request(&socket, "INVITE", "z9hG4bKp2", "p-2", None);
    send(&socket, &ep, &third).await;
    let got = statuses(&responses(&socket, Duration::from_millis(300)).await);
    assert_eq!(got, [(503, "INVITE".to_owned())]);
    assert_eq!(requests(&mut events), []);

    // One answered (busy): the source may have one more unanswered INVITE.
    let (tx, invite) = &pending[0];
    ep.respond(*tx, response_to(invite, 486, None, None))
        .await
        .unwrap();
    responses(&socket, Duration::from_millis(300)).await;
    let fourth = request(&socket, "INVITE", "z9hG4bKp3", "p-3", None);
    send(&socket, &ep, &fourth).await;
    responses(&socket, Duration::from_millis(300)).await;
    assert_eq!(requests(&mut events), [(Method::Invite, "p-3".to_owned())]);
    cancel.cancel();
}
