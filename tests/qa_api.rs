//! QA over the API, against an in-process server on a real socket: automatic flags from
//! the record and from a real stereo WAV (a long silence, talk-over), scores that are
//! never changed (a correction is a new version with a reason), annotations at a
//! position, the waveform and timeline pictures, and who may do what.

#[path = "tickets_common/mod.rs"]
mod tickets_common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use threering::call::record::HangupSide;
use threering::config::{Config, Role, TokenConfig};
use threering::http::{serve, AppState};
use threering::store::testing::TestDb;
use threering::store::Store;
use tickets_common::{call_record, request, Reply};

const QA: &str = "qa-token";
const AGENT: &str = "agent-token";

struct Server {
    addr: SocketAddr,
    store: Store,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
    _db: TestDb,
}

impl Server {
    async fn get(&self, path: &str, token: &str) -> Reply {
        request(self.addr, "GET", path, Some(token), None).await
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        request(
            self.addr,
            "POST",
            path,
            Some(token),
            Some(&body.to_string()),
        )
        .await
    }
}

fn token(name: &str, role: Role, text: &str) -> TokenConfig {
    TokenConfig {
        name: name.into(),
        role,
        token_sha256: hex::encode(Sha256::digest(text.as_bytes())),
    }
}

/// A stereo 8 kHz recording: 2 s of the caller, 12 s of silence, 3 s of both talking.
fn write_wav(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    let tone = |i: u32| ((i as f32 * 0.2).sin() * 8000.0) as i16;
    for i in 0..8000 * 17 {
        let (l, r) = match i / 8000 {
            0..=1 => (tone(i), 0),
            2..=13 => (0, 0),
            _ => (tone(i), tone(i + 7)),
        };
        w.write_sample(l).unwrap();
        w.write_sample(r).unwrap();
    }
    w.finalize().unwrap();
}

async fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::from_env().await;
    let store = db.open().await;
    let mut config = Config::embedded();
    config.store.recordings = dir.path().join("recordings");
    let mut state = AppState::new(&config, store.clone());
    state.tokens = vec![
        token("qa-1", Role::Qa, QA),
        token("agent-1001", Role::Agent, AGENT),
    ];
    state.ready = Arc::new(AtomicBool::new(true));
    // A late answer the agent hung up on, recorded.
    let relative = "2026/11/24/n1-qa-1.wav".to_owned();
    write_wav(&config.store.recordings.join(&relative));
    let mut call = call_record(
        "n1-qa-1",
        1_795_000_000_000,
        Some((relative, "x".into())),
        vec![],
    );
    call.three_ring_ok = Some(false);
    call.rings = Some(4);
    call.hangup_side = Some(HangupSide::Agent);
    call.talk_ms = Some(17_000);
    call.recording.duration_ms = Some(17_000);
    store.save_call(&call).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(serve(listener, state, stop.clone().cancelled_owned()));
    Server {
        addr,
        store,
        stop,
        _dir: dir,
        _db: db,
    }
}

fn all_items(passed: bool) -> Value {
    json!({
        "greeting": passed, "polite": passed, "no_forbidden": passed, "restated": passed,
        "within_3_min": passed, "anything_else": passed, "customer_hung_up_first": passed,
    })
}

#[tokio::test]
async fn flags_come_from_the_record_and_the_recording() {
    let server = start().await;
    let reply = server.get("/api/calls/n1-qa-1/qa", QA).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let qa = reply.json();
    let codes: Vec<&str> = qa["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
            "late_answer",
            "agent_hung_up_first",
            "long_silence",
            "talk_over"
        ],
        "{}",
        reply.body
    );
    let silence = &qa["flags"][2];
    assert_eq!(silence["at_ms"], 2000, "{silence}");
    assert_eq!(qa["recording_ms"], 17_000);
    assert_eq!(qa["scores"], json!([]));
    server.stop.cancel();
}

#[tokio::test]
async fn a_score_is_never_changed_a_correction_is_a_new_version() {
    let server = start().await;
    let path = "/api/calls/n1-qa-1/scores";
    let first = server
        .post(path, QA, json!({"items": all_items(true), "comment": "好"}))
        .await;
    assert_eq!(first.status, 201, "{}", first.body);
    let first = first.json();
    assert_eq!(first["version"], 1);
    assert_eq!(first["total"], 100.0);
    assert_eq!(first["author"], "qa-1");
    // Scoring again without a reason is refused; with one it is version 2.
    let again = server
        .post(path, QA, json!({"items": all_items(false)}))
        .await;
    assert_eq!(again.status, 409, "{}", again.body);
    assert!(again.json()["error"].as_str().unwrap().contains("reason"));
    let mut items = all_items(true);
    items["customer_hung_up_first"] = json!(false);
    let second = server
        .post(
            path,
            QA,
            json!({"items": items, "reason": "坐席先挂机,漏扣分"}),
        )
        .await;
    assert_eq!(second.status, 201, "{}", second.body);
    let second = second.json();
    assert_eq!(second["version"], 2);
    assert_eq!(second["total"], 85.0);
    assert_eq!(second["supersedes"], first["id"]);
    let listed = server.get(path, QA).await.json();
    let versions = listed["scores"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0], first, "version 1 is unchanged");
    // Bad input names what is wrong.
    let bad = server
        .post(
            path,
            QA,
            json!({"items": {"greeting": true, "charm": true}, "reason": "x"}),
        )
        .await;
    let problems = bad.problems();
    assert!(
        problems.contains("items.charm") && problems.contains("items.polite"),
        "{problems}"
    );
    let bad = server
        .post(
            path,
            QA,
            json!({"form": "nope", "items": all_items(true), "reason": "x"}),
        )
        .await;
    assert!(bad.problems().contains("form"));
    server.stop.cancel();
}

#[tokio::test]
async fn annotations_sit_at_a_position_in_the_recording() {
    let server = start().await;
    let path = "/api/calls/n1-qa-1/annotations";
    let made = server
        .post(
            path,
            QA,
            json!({"at_ms": 2500, "tag": "silence", "comment": "客户等待"}),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.body);
    let outside = server
        .post(path, QA, json!({"at_ms": 99_000, "tag": "x"}))
        .await;
    assert!(outside.problems().contains("at_ms"));
    let empty = server.post(path, QA, json!({"at_ms": 10})).await;
    assert!(empty.problems().contains("tag or a comment"));
    let qa = server.get("/api/calls/n1-qa-1/qa", QA).await.json();
    assert_eq!(qa["annotations"][0]["at_ms"], 2500);
    assert_eq!(qa["annotations"][0]["author"], "qa-1");
    assert_eq!(server.store.annotations("n1-qa-1").await.unwrap().len(), 1);
    server.stop.cancel();
}

#[tokio::test]
async fn the_pictures_are_svg() {
    let server = start().await;
    let wave = server.get("/api/calls/n1-qa-1/waveform.svg", QA).await;
    assert_eq!(wave.status, 200);
    assert!(wave
        .header("content-type")
        .unwrap()
        .starts_with("image/svg+xml"));
    assert_eq!(wave.body.matches(r#"class="lane""#).count(), 2);
    let timeline = server.get("/api/calls/n1-qa-1/timeline.svg", QA).await;
    assert_eq!(timeline.status, 200);
    assert!(timeline.body.contains(r#"class="attempt""#));
    let missing = server.get("/api/calls/nope/waveform.svg", QA).await;
    assert_eq!(missing.status, 404);
    server.stop.cancel();
}

#[tokio::test]
async fn agents_neither_score_nor_see_other_agents_calls() {
    let server = start().await;
    let score = server
        .post(
            "/api/calls/n1-qa-1/scores",
            AGENT,
            json!({"items": all_items(true)}),
        )
        .await;
    assert_eq!(score.status, 403, "{}", score.body);
    // The config token names no agent id: no call is its own.
    let qa = server.get("/api/calls/n1-qa-1/qa", AGENT).await;
    assert_eq!(qa.status, 403, "{}", qa.body);
    let forms = server.get("/api/qa/forms", AGENT).await.json();
    assert_eq!(forms["forms"][0]["name"], "standard");
    assert_eq!(forms["forms"][0]["items"].as_array().unwrap().len(), 7);
    server.stop.cancel();
}
