use super::*;
use serde_json::json;
use std::time::Duration;

fn next_now(sub: &mut Subscription) -> Option<Item> {
    // Everything tested here is already published: a short bound is plenty.
    futures_util::FutureExt::now_or_never(sub.next()).flatten()
}

async fn next_within(sub: &mut Subscription) -> Option<Item> {
    tokio::time::timeout(Duration::from_secs(2), sub.next())
        .await
        .ok()
        .flatten()
}

fn event_id(item: Option<Item>) -> String {
    match item {
        Some(Item::Event(e)) => e.id_string(),
        other => panic!("expected an event, got {other:?}"),
    }
}

#[test]
fn ids_increase_and_serialize_as_node_dash_seq() {
    let bus = EventBus::starting_at("n-1", 41);
    let a = bus.publish(CALL_OFFERED, json!({"call_id": "c1"}));
    let b = bus.publish(CALL_RINGING, json!({"call_id": "c1"}));
    assert_eq!((a, b), (41, 42));
    let recent = bus.recent();
    let value = serde_json::to_value(&*recent[1]).unwrap();
    assert_eq!(value["id"], "n-1-42");
    assert_eq!(value["type"], "call.ringing");
    assert_eq!(value["data"], json!({"call_id": "c1"}));
    assert!(value["at"].as_i64().unwrap() > 1_600_000_000_000);
    // A node id with dashes still splits at the last one.
    assert_eq!(parse_id("n-1-42"), Some(("n-1", 42)));
    assert_eq!(parse_id("42"), None);
    assert_eq!(parse_id("n1-x"), None);
}

#[test]
fn a_new_bus_starts_past_any_earlier_process() {
    let first = EventBus::new("n1").publish(CALL_ENDED, json!({}));
    std::thread::sleep(Duration::from_millis(2));
    let later = EventBus::new("n1").publish(CALL_ENDED, json!({}));
    assert!(later > first + 1000, "{first} then {later}");
}

#[tokio::test]
async fn subscribers_get_live_events_in_order_and_filtered() {
    let bus = EventBus::starting_at("n1", 1);
    let mut all = bus.subscribe();
    let mut answered = bus.subscribe_since(None, Some(vec![CALL_ANSWERED.to_owned()]));
    bus.publish(CALL_OFFERED, json!({}));
    bus.publish(CALL_ANSWERED, json!({}));
    bus.publish(CALL_ENDED, json!({}));
    assert_eq!(event_id(next_within(&mut all).await), "n1-1");
    assert_eq!(event_id(next_within(&mut all).await), "n1-2");
    assert_eq!(event_id(next_within(&mut all).await), "n1-3");
    assert_eq!(event_id(next_within(&mut answered).await), "n1-2");
    assert_eq!(next_now(&mut answered), None);
    bus.close();
    assert_eq!(next_within(&mut all).await, None);
}

#[tokio::test]
async fn resume_replays_what_came_after_the_id_then_goes_live() {
    let bus = EventBus::starting_at("n1", 1);
    for _ in 0..5 {
        bus.publish(CALL_RINGING, json!({}));
    }
    let mut sub = bus.subscribe_since(Some("n1-3"), None);
    bus.publish(CALL_ANSWERED, json!({}));
    assert_eq!(event_id(next_within(&mut sub).await), "n1-4");
    assert_eq!(event_id(next_within(&mut sub).await), "n1-5");
    assert_eq!(event_id(next_within(&mut sub).await), "n1-6");
    assert_eq!(next_now(&mut sub), None);
    // Up to date: nothing replayed, no notice.
    let mut current = bus.subscribe_since(Some("n1-6"), None);
    assert_eq!(next_now(&mut current), None);
}

#[tokio::test]
async fn resume_past_the_ring_says_how_many_were_missed() {
    let bus = EventBus::starting_at("n1", 1);
    for _ in 0..REPLAY + 10 {
        bus.publish(CALL_RINGING, json!({}));
    }
    // The ring holds 11..=1010; since 5: 6..=10 are gone.
    let mut sub = bus.subscribe_since(Some("n1-5"), None);
    assert_eq!(
        next_within(&mut sub).await,
        Some(Item::Lagged { skipped: Some(5) })
    );
    assert_eq!(event_id(next_within(&mut sub).await), "n1-11");
    // An id from another node, or from before this process: unknown gap.
    let mut other = bus.subscribe_since(Some("n2-7"), None);
    assert_eq!(
        next_within(&mut other).await,
        Some(Item::Lagged { skipped: None })
    );
    let late = EventBus::starting_at("n1", 1000);
    late.publish(CALL_RINGING, json!({}));
    let mut old = late.subscribe_since(Some("n1-5"), None);
    assert_eq!(
        next_within(&mut old).await,
        Some(Item::Lagged { skipped: None })
    );
    assert_eq!(event_id(next_within(&mut old).await), "n1-1000");
}

#[tokio::test]
async fn a_lagging_subscriber_is_told_and_goes_on() {
    let bus = EventBus::starting_at("n1", 1);
    let mut slow = bus.subscribe();
    let total = LIVE_CAPACITY as u64 + 100;
    for _ in 0..total {
        bus.publish(CALL_RINGING, json!({}));
    }
    assert_eq!(
        next_within(&mut slow).await,
        Some(Item::Lagged { skipped: Some(100) })
    );
    // It resumes with the oldest event still held, and keeps up from there.
    assert_eq!(event_id(next_within(&mut slow).await), "n1-101");
    let notice = Item::Lagged { skipped: Some(100) }.to_json();
    assert_eq!(notice["type"], STREAM_LAGGED);
    assert_eq!(notice["id"], Value::Null);
    assert_eq!(notice["data"]["skipped"], 100);
}

#[test]
fn publishing_never_waits_for_sinks_or_subscribers() {
    let bus = EventBus::starting_at("n1", 1);
    let _idle = bus.subscribe();
    let (tx, mut rx) = tokio::sync::mpsc::channel(2);
    let dropped = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = dropped.clone();
    bus.add_sink(move |e| {
        if tx.try_send(e.id).is_err() {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let started = std::time::Instant::now();
    for _ in 0..10_000 {
        bus.publish(TICKET_UPDATED, json!({"ticket_id": "T-1"}));
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(rx.try_recv().ok(), Some(1));
    assert_eq!(rx.try_recv().ok(), Some(2));
    assert_eq!(dropped.load(std::sync::atomic::Ordering::SeqCst), 9_998);
    assert_eq!(bus.recent().len(), REPLAY);
    bus.clear_sinks();
    bus.publish(TICKET_UPDATED, json!({}));
    assert!(rx.try_recv().is_err());
}

#[test]
fn unknown_types_are_named() {
    assert_eq!(
        unknown_types(["call.answered", "call.exploded", "ticket.updated"]),
        vec!["call.exploded"]
    );
}

mod webhook_tests {
    use super::super::webhooks::*;

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Expected values from Python's hmac module (RFC 4231 test case 2's key).
        let sig = signature(b"Jefe", "1718000000", br#"{"id":"n1-1"}"#);
        assert_eq!(
            sig,
            "sha256=562efbe41461b8a8d19b53111c6a8669ec7b83da1bdd6c97a53feae99b0313a2"
        );
        assert_ne!(sig, signature(b"Jefe", "1718000001", br#"{"id":"n1-1"}"#));
        assert_ne!(sig, signature(b"jefe", "1718000000", br#"{"id":"n1-1"}"#));
    }

    #[test]
    fn backoff_doubles_with_jitter_and_a_cap() {
        let ms = |a, j| backoff(a, 1000, j).as_millis() as u64;
        assert_eq!(ms(1, 0.5), 1000);
        assert_eq!(ms(2, 0.5), 2000);
        assert_eq!(ms(3, 0.5), 4000);
        assert_eq!(ms(1, 0.0), 800);
        assert_eq!(ms(1, 1.0), 1200);
        assert_eq!(ms(10, 0.5), 300_000);
        assert_eq!(ms(40, 1.0), 300_000);
        assert_eq!(backoff(2, 50, 0.5).as_millis(), 100);
    }

    #[test]
    fn urls_are_plain_http_with_host_and_port() {
        let url = HttpUrl::parse("http://127.0.0.1:8099/hooks/cti?x=1").unwrap();
        assert_eq!(
            (url.host.as_str(), url.port, url.path.as_str()),
            ("127.0.0.1", 8099, "/hooks/cti?x=1")
        );
        let url = HttpUrl::parse("HTTP://crm.example").unwrap();
        assert_eq!((url.port, url.path.as_str()), (80, "/"));
        let url = HttpUrl::parse("http://[::1]:9000").unwrap();
        assert_eq!(
            (url.host.as_str(), url.authority()),
            ("::1", "[::1]:9000".into())
        );
        assert!(HttpUrl::parse("https://crm.example/x")
            .unwrap_err()
            .contains("not supported yet"));
        for bad in [
            "ftp://x/",
            "http://",
            "http://:80/",
            "http://h:0/",
            "http://h:99999/",
            "http://u:p@h/",
            "http://h/a b",
            "crm.example/x",
        ] {
            assert!(HttpUrl::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[tokio::test]
    async fn the_client_posts_and_reads_the_status() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            // Head and a 7-byte body.
            while !String::from_utf8_lossy(&request).ends_with("{\"a\":1}") {
                let n = socket.read(&mut buf).await.unwrap();
                assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&request));
                request.extend_from_slice(&buf[..n]);
            }
            socket
                .write_all(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n")
                .await
                .unwrap();
            String::from_utf8(request).unwrap()
        });
        let url = HttpUrl::parse(&format!("http://127.0.0.1:{port}/in")).unwrap();
        let status = post(
            &url,
            &[("X-Test", "yes".to_owned())],
            b"{\"a\":1}",
            std::time::Duration::from_secs(5),
        )
        .await;
        assert_eq!(status, Ok(503));
        let request = server.await.unwrap();
        assert!(request.starts_with("POST /in HTTP/1.1\r\n"), "{request}");
        assert!(request.contains("\r\nContent-Length: 7\r\n"), "{request}");
        assert!(request.contains("\r\nX-Test: yes\r\n"), "{request}");
        assert!(request.contains(&format!("\r\nHost: 127.0.0.1:{port}\r\n")));

        // Nobody listening, and a listener that never answers.
        let closed = HttpUrl::parse(&format!("http://127.0.0.1:{port}/in")).unwrap();
        assert!(post(&closed, &[], b"{}", std::time::Duration::from_secs(2))
            .await
            .is_err());
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = HttpUrl::parse(&format!(
            "http://127.0.0.1:{}/",
            silent.local_addr().unwrap().port()
        ))
        .unwrap();
        let err = post(&url, &[], b"{}", std::time::Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(err.contains("no answer within 200 ms"), "{err}");
    }
}

#[test]
fn webhook_config_problems_are_keyed_by_entry() {
    use crate::config::{Config, Secret, WebhookConfig};
    let hook = |name: &str, url: &str, secret: &str, events: &[&str]| WebhookConfig {
        name: name.into(),
        url: url.into(),
        secret: Secret::new(secret),
        events: events.iter().map(|e| e.to_string()).collect(),
        timeout_ms: 5000,
        max_attempts: 8,
        retry_base_ms: 1000,
    };
    let mut config = Config::embedded();
    config.webhooks = vec![
        hook("crm", "http://127.0.0.1:9000/cti", "s", &["call.answered"]),
        hook("crm", "https://crm.example/cti", "", &["call.exploded"]),
    ];
    config.webhooks[1].max_attempts = 0;
    let problems: Vec<String> = config.validate().iter().map(|p| p.to_string()).collect();
    let keys: Vec<&str> = problems
        .iter()
        .map(|p| p.split(':').next().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "webhooks[1].name",
            "webhooks[1].url",
            "webhooks[1].secret",
            "webhooks[1].events",
            "webhooks[1].max_attempts"
        ],
        "{problems:#?}"
    );
    assert!(problems[1].contains("https:// is not supported yet"));
    // From TOML, with the defaults filled in.
    let text = format!(
        "{}\n[[webhooks]]\nname = \"crm\"\nurl = \"http://10.0.0.5:8080/hook\"\nsecret = \"k\"\n",
        Config::EMBEDDED
    );
    let config = Config::from_toml(&text).unwrap();
    let hook = &config.webhooks[0];
    assert_eq!(
        (hook.timeout_ms, hook.max_attempts, hook.retry_base_ms),
        (5000, 8, 1000)
    );
    assert!(hook.events.is_empty());
    assert!(
        !format!("{hook:?}").contains("\"k\""),
        "the secret is not logged"
    );
}
