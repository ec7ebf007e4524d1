//! Archiving a ticket over the API, against the in-process server of
//! `tickets_common/server.rs`: the completeness check (every gap listed), roles, the
//! bundle (members, SHA-256, no partial file), the ticket frozen afterwards, a changed,
//! missing or unfinished recording blocking it, and two archive requests at once.

#[path = "tickets_common/mod.rs"]
mod tickets_common;

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use tickets_common::server::{
    actions, full_form, int_of, start, str_of, Server, ADMIN, ADMIN_NAME, AGENT,
};
use tickets_common::{
    bundle_relative, call_record, now_ms, request, sha256_file, write_recording, Reply,
};

/// A ticket with every field, a linked call with a finished recording and a survey
/// score: ready to archive. Returns (ticket id, call id).
async fn complete_ticket(server: &Server, kind: &str, call_id: &str) -> (String, String) {
    let t = server.create(full_form(kind)).await;
    let id = str_of(&t, "id").to_owned();
    let recording = write_recording(&server.recordings, call_id, 16_000);
    server
        .store
        .save_call(&call_record(
            call_id,
            now_ms() - 300_000,
            Some(recording),
            vec![],
        ))
        .await
        .unwrap();
    let reply = server
        .post(
            &format!("/api/tickets/{id}/calls"),
            json!({"call_id": call_id, "role": "inbound"}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let reply = server
        .post(&format!("/api/tickets/{id}/survey"), json!({"score": 5}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    (id, call_id.to_owned())
}

fn missing_of(reply: &Reply) -> Vec<String> {
    assert_eq!(reply.status, 422, "{}", reply.body);
    let body = reply.json();
    assert!(str_of(&body, "error").contains("incomplete"), "{body}");
    serde_json::from_value(body["missing"].clone()).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn assert_lists(missing: &[String], needles: &[&str]) {
    for needle in needles {
        assert!(
            missing.iter().any(|m| m.contains(needle)),
            "nothing about {needle:?} in {missing:#?}"
        );
    }
}

fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

#[tokio::test]
async fn an_incomplete_ticket_is_not_archived_and_every_gap_is_listed() {
    let server = start().await;
    let t = server.create(json!({"kind": "consultation"})).await;
    let id = str_of(&t, "id").to_owned();
    let reply = server
        .send("POST", &format!("/api/tickets/{id}/archive"), None)
        .await;
    let missing = missing_of(&reply);
    assert_lists(
        &missing,
        &[
            "field customer",
            "field phone",
            "field area",
            "field inquiry_type",
            "field content",
            "recording",
            "survey",
        ],
    );
    assert_eq!(missing.len(), 7, "{missing:#?}");
    assert!(
        !missing.iter().any(|m| m.contains("waybill")),
        "{missing:#?}"
    );

    // A query needs its waybill too.
    let t = server.create(json!({"kind": "query"})).await;
    let reply = server
        .send(
            "POST",
            &format!("/api/tickets/{}/archive", str_of(&t, "id")),
            None,
        )
        .await;
    let missing = missing_of(&reply);
    assert_lists(&missing, &["field waybill"]);
    assert_eq!(missing.len(), 8, "{missing:#?}");

    // Still not archived, and nothing written.
    let t = server.ticket(&id).await;
    assert_eq!(t["archived_at"], Value::Null);
    assert_eq!(files_under(&server.archive_root), Vec::<PathBuf>::new());

    // Archiving is not for agents, complete or not.
    let reply = request(
        server.addr,
        "POST",
        &format!("/api/tickets/{id}/archive"),
        Some(AGENT),
        None,
    )
    .await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert!(reply.json()["error"].is_string());
    let reply = server
        .send("POST", "/api/tickets/T-20260101-0055/archive", None)
        .await;
    assert_eq!(reply.status, 404, "{}", reply.body);
    server.shut_down().await;
}

#[tokio::test]
async fn a_complete_ticket_is_archived_once_and_then_frozen() {
    let server = start().await;
    let (id, call_id) = complete_ticket(&server, "query", "n1-20261124-0001").await;
    let url = format!("/api/tickets/{id}");

    let reply = request(
        server.addr,
        "POST",
        &format!("{url}/archive"),
        Some(AGENT),
        None,
    )
    .await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert_eq!(server.ticket(&id).await["archived_at"], Value::Null);

    let reply = server.send("POST", &format!("{url}/archive"), None).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let done = reply.json();
    assert_eq!(done["ticket"], id.as_str());
    assert_eq!(str_of(&done, "path"), bundle_relative("query", &id));
    assert_eq!(done["recordings"], 1);
    let bundle = server.archive_root.join(str_of(&done, "path"));
    assert!(bundle.is_file(), "{}", bundle.display());
    let sha = str_of(&done, "sha256").to_owned();
    assert_eq!(sha256_file(&bundle), sha);
    assert_eq!(
        int_of(&done, "bytes") as u64,
        std::fs::metadata(&bundle).unwrap().len()
    );
    assert_eq!(
        bundle.metadata().unwrap().len() % 512,
        0,
        "a tar is whole blocks"
    );
    let verified = threering::archive::verify(&bundle).unwrap();
    assert_eq!(verified.ticket_id, id);
    assert_eq!(verified.sha256, sha);
    let names: Vec<&str> = verified.members.iter().map(|(n, _)| n.as_str()).collect();
    let recording_member = format!("recordings/{call_id}.wav");
    assert_eq!(
        names,
        [
            "form.json",
            "form.html",
            recording_member.as_str(),
            "survey.json",
            "calls.json",
            "manifest.json",
            "SHA256SUMS"
        ]
    );
    // The recording went in byte for byte.
    let recording_sha = sha256_file(&server.recordings.join(format!("2026/11/24/{call_id}.wav")));
    assert_eq!(verified.members[2].1, recording_sha);
    // No partial file left beside it.
    assert_eq!(
        files_under(&server.archive_root),
        std::slice::from_ref(&bundle)
    );

    let t = server.ticket(&id).await;
    assert!(int_of(&t, "archived_at") >= int_of(&t, "created_at"), "{t}");
    assert_eq!(t["archive_sha256"], sha.as_str());
    assert_eq!(t["archive_path"], done["path"]);
    let last = t["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["action"], "archived");
    assert_eq!(last["author"], ADMIN_NAME);
    assert!(str_of(&last, "note").contains(&sha), "{last}");

    // Once only, and frozen afterwards.
    let reply = server.send("POST", &format!("{url}/archive"), None).await;
    assert_eq!(reply.status, 409, "{}", reply.body);
    assert!(str_of(&reply.json(), "error").contains("already archived"));
    assert_eq!(sha256_file(&bundle), sha, "the bundle is never rewritten");
    for (method, path, body) in [
        ("PATCH", url.clone(), json!({"content": "改写"})),
        ("PATCH", url.clone(), json!({"status": "closed"})),
        ("POST", format!("{url}/notes"), json!({"text": "late"})),
        (
            "POST",
            format!("{url}/survey"),
            json!({"score": 1, "cause": "company"}),
        ),
        (
            "POST",
            format!("{url}/calls"),
            json!({"call_id": call_id, "role": "reply"}),
        ),
        (
            "POST",
            format!("{url}/callback"),
            json!({"agent": "1001", "number": "13800138000"}),
        ),
    ] {
        let reply = server.send(method, &path, Some(&body.to_string())).await;
        assert_eq!(reply.status, 409, "{method} {path} {body}: {}", reply.body);
        assert!(str_of(&reply.json(), "error").contains("archived"));
    }
    let after = server.ticket(&id).await;
    assert_eq!(after["history"], t["history"]);
    assert_eq!(after["content"], t["content"]);
    assert_eq!(after["status"], t["status"]);
    server.shut_down().await;
}

#[tokio::test]
async fn a_changed_or_missing_recording_blocks_the_archive() {
    let server = start().await;

    // Altered after its SHA-256 was recorded.
    let (id, call_id) = complete_ticket(&server, "consultation", "n1-20261124-0002").await;
    let file = server.recordings.join(format!("2026/11/24/{call_id}.wav"));
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();
    let reply = server
        .send("POST", &format!("/api/tickets/{id}/archive"), None)
        .await;
    let missing = missing_of(&reply);
    assert_eq!(missing.len(), 1, "{missing:#?}");
    assert!(missing[0].contains(&call_id), "{missing:#?}");
    assert!(missing[0].contains("SHA-256"), "{missing:#?}");
    assert!(missing[0].contains(&sha256_file(&file)), "{missing:#?}");
    assert_eq!(server.ticket(&id).await["archived_at"], Value::Null);

    // Gone from the disk.
    let (id, call_id) = complete_ticket(&server, "consultation", "n1-20261124-0003").await;
    let file = server.recordings.join(format!("2026/11/24/{call_id}.wav"));
    std::fs::remove_file(&file).unwrap();
    let reply = server
        .send("POST", &format!("/api/tickets/{id}/archive"), None)
        .await;
    let missing = missing_of(&reply);
    assert_eq!(missing.len(), 1, "{missing:#?}");
    assert!(missing[0].contains(&call_id), "{missing:#?}");
    assert!(missing[0].contains("cannot be read"), "{missing:#?}");

    // A recording still being written (no SHA-256 yet) is not archived either.
    let t = server.create(full_form("order")).await;
    let order_id = str_of(&t, "id").to_owned();
    let (path, _) = write_recording(&server.recordings, "n1-20261124-0004", 1_000);
    let mut live = call_record("n1-20261124-0004", now_ms(), None, vec![order_id.clone()]);
    live.recording_path = Some(path);
    server.store.save_call(&live).await.unwrap();
    server
        .post(
            &format!("/api/tickets/{order_id}/survey"),
            json!({"no_survey_reason": "customer declined"}),
        )
        .await;
    let reply = server
        .send("POST", &format!("/api/tickets/{order_id}/archive"), None)
        .await;
    let missing = missing_of(&reply);
    assert_eq!(missing.len(), 1, "{missing:#?}");
    assert!(missing[0].contains("n1-20261124-0004"), "{missing:#?}");

    // Nothing was written for any of them.
    assert_eq!(files_under(&server.archive_root), Vec::<PathBuf>::new());
    server.shut_down().await;
}

// Regression: two archive requests for one ticket at once give one bundle and one 409
// (the second writer once got a 500 naming the server's paths, or marked the ticket a
// second time).
#[tokio::test]
async fn two_archive_requests_at_once_give_one_bundle_and_one_conflict() {
    let server = start().await;
    let (id, _) = complete_ticket(&server, "query", "n1-20261124-0011").await;
    // A large second recording keeps the first writer busy for a while.
    let big = write_recording(&server.recordings, "n1-20261124-0012", 8 << 20);
    server
        .store
        .save_call(&call_record(
            "n1-20261124-0012",
            now_ms(),
            Some(big),
            vec![id.clone()],
        ))
        .await
        .unwrap();
    let url = format!("/api/tickets/{id}/archive");
    let (a, b) = tokio::join!(
        request(server.addr, "POST", &url, Some(ADMIN), None),
        request(server.addr, "POST", &url, Some(ADMIN), None),
    );
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(
        statuses,
        [201, 409],
        "\nA: {} {}\nB: {} {}",
        a.status,
        a.body,
        b.status,
        b.body
    );
    let t = server.ticket(&id).await;
    let archived = actions(&t["history"])
        .iter()
        .filter(|a| *a == "archived")
        .count();
    assert_eq!(archived, 1, "{}", t["history"]);
    let bundle = server.archive_root.join(bundle_relative("query", &id));
    assert_eq!(t["archive_sha256"], sha256_file(&bundle).as_str());
    server.shut_down().await;
}
