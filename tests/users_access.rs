//! Roles, tokens and the audit log over a real socket (raw HTTP/1.1) and with the real
//! `threering user` command: disabled users and revoked tokens, per-user tokens (API and
//! CLI), the agent role's own calls and recordings, every recording playback audited and
//! the log read by admins only, admins managing users and tokens over the API, and ticket
//! changes in the audit log. Sign-in itself is in `users_auth.rs`; the shared helpers in
//! `users_common/mod.rs`.

#[path = "users_common/mod.rs"]
mod users_common;

use serde_json::{json, Value};

use users_common::{
    add_user, api_login, audit, bearer, cli, ids, install, send, sign_in, start, CONFIG_TOKEN,
    WAV_LEN,
};

#[tokio::test]
async fn disabled_users_and_revoked_tokens_get_401() {
    let install = install();
    add_user(&install, "zhou", "agent", Some("1001"), "agent-password");
    let server = start(&install, true).await;
    let session = sign_in(server.addr, "zhou", "agent-password").await;

    // A token of one's own, made while signed in.
    let reply = session
        .send(
            server.addr,
            "POST",
            "/api/users/zhou/tokens",
            &json!({ "label": "softphone" }),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    let token = reply.json()["token"].as_str().unwrap().to_owned();
    let token_id = reply.json()["id"].as_i64().unwrap();
    let with_token = |token: String| async move {
        send(
            server.addr,
            "GET",
            "/api/me",
            &[("Authorization", &bearer(&token))],
            None,
        )
        .await
    };
    let me = with_token(token.clone()).await;
    assert_eq!(me.status, 200, "{}", me.text());
    assert_eq!(me.json()["user"], "zhou");
    assert_eq!(me.json()["auth"], "token");
    assert_eq!(me.json()["agent_id"], "1001");
    assert!(me.json().get("csrf_token").is_none());
    // The token list never shows the token.
    let listed = session.get(server.addr, "/api/users/zhou/tokens").await;
    assert_eq!(listed.status, 200);
    assert!(!listed.text().contains(&token));

    // Disabled by the CLI: password, cookie and token all stop working.
    let run = cli(&install, &["user", "disable", "zhou"], "");
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(session.get(server.addr, "/api/me").await.status, 401);
    assert_eq!(with_token(token.clone()).await.status, 401);
    let reply = api_login(server.addr, "zhou", "agent-password").await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.json()["error"], "wrong name or password");

    // Enabled again: the token works; revoked, it does not.
    assert!(cli(&install, &["user", "enable", "zhou"], "").ok);
    assert_eq!(with_token(token.clone()).await.status, 200);
    let reply = send(
        server.addr,
        "DELETE",
        &format!("/api/users/zhou/tokens/{token_id}"),
        &[("Authorization", &bearer(&token))],
        None,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["revoked"], true);
    let me = with_token(token.clone()).await;
    assert_eq!(me.status, 401);
    assert!(me.header("www-authenticate").unwrap().starts_with("Bearer"));

    // A token from the CLI works the same way.
    let run = cli(&install, &["user", "token", "zhou", "--label", "crm"], "");
    assert!(run.ok, "{}", run.stderr);
    let cli_token = run.stdout.trim().to_owned();
    assert_eq!(cli_token.len(), 64);
    assert_eq!(with_token(cli_token).await.status, 200);
    server.shut_down().await;
}

#[tokio::test]
async fn an_agent_sees_only_its_own_calls_and_recordings() {
    let install = install();
    add_user(&install, "wu", "agent", Some("1001"), "agent-password");
    let server = start(&install, true).await;
    let wu = sign_in(server.addr, "wu", "agent-password").await;

    let list = wu.get(server.addr, "/api/calls").await;
    assert_eq!(list.status, 200, "{}", list.text());
    assert_eq!(ids(&list.json()), ["n1-alice"]);
    assert_eq!(
        ids(&wu.get(server.addr, "/api/calls?agent=1001").await.json()),
        ["n1-alice"]
    );
    let reply = wu.get(server.addr, "/api/calls?agent=1002").await;
    assert_eq!(reply.status, 403);
    assert!(reply.json()["error"].is_string());

    assert_eq!(wu.get(server.addr, "/api/calls/n1-alice").await.status, 200);
    let reply = wu.get(server.addr, "/api/calls/n1-bob").await;
    assert_eq!(reply.status, 403);
    assert!(reply.json()["error"].as_str().unwrap().contains("n1-bob"));
    let reply = wu.get(server.addr, "/api/calls/n1-bob/recording").await;
    assert_eq!(reply.status, 403);
    assert!(reply.json()["error"].is_string());
    let reply = wu.get(server.addr, "/api/calls/n1-alice/recording").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body.len(), WAV_LEN);

    // Not another agent's recording to pause; one's own gets as far as call control
    // (not running here).
    for action in ["pause", "resume"] {
        let reply = wu
            .send(
                server.addr,
                "POST",
                &format!("/api/calls/n1-bob/recording/{action}"),
                &json!({}),
            )
            .await;
        assert_eq!(reply.status, 403, "{action}: {}", reply.text());
        let reply = wu
            .send(
                server.addr,
                "POST",
                &format!("/api/calls/n1-alice/recording/{action}"),
                &json!({}),
            )
            .await;
        assert_eq!(reply.status, 503, "{action}: {}", reply.text());
    }
    // Agents do not read the audit log or manage users.
    assert_eq!(wu.get(server.addr, "/api/audit").await.status, 403);
    assert_eq!(wu.get(server.addr, "/api/users").await.status, 403);

    // The config token (admin) sees everything, as before.
    let all = send(
        server.addr,
        "GET",
        "/api/calls",
        &[("Authorization", &bearer(CONFIG_TOKEN))],
        None,
    )
    .await;
    assert_eq!(ids(&all.json()).len(), 2);
    server.shut_down().await;
}

#[tokio::test]
async fn every_recording_get_is_audited_and_only_admins_read_the_audit_log() {
    let install = install();
    add_user(&install, "qian", "qa", None, "qa-password-2");
    let server = start(&install, true).await;
    let qian = sign_in(server.addr, "qian", "qa-password-2").await;

    let full = qian.get(server.addr, "/api/calls/n1-bob/recording").await;
    assert_eq!(full.status, 200);
    let ranged = send(
        server.addr,
        "GET",
        "/api/calls/n1-bob/recording",
        &[("Cookie", &qian.cookie), ("Range", "bytes=100-199")],
        None,
    )
    .await;
    assert_eq!(ranged.status, 206);
    assert_eq!(ranged.body.len(), 100);
    let by_token = send(
        server.addr,
        "GET",
        "/api/calls/n1-alice/recording",
        &[
            ("Authorization", &bearer(CONFIG_TOKEN)),
            ("Range", "bytes=-10"),
        ],
        None,
    )
    .await;
    assert_eq!(by_token.status, 206);

    let entries = audit(server.addr, "action=recording.play").await;
    assert_eq!(entries.len(), 3, "{entries:?}");
    let newest_first: Vec<(&str, &str, Option<&str>)> = entries
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap(),
                e["target"].as_str().unwrap(),
                e["detail"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        newest_first,
        [
            ("dev", "n1-alice", Some("bytes=-10")),
            ("qian", "n1-bob", Some("bytes=100-199")),
            ("qian", "n1-bob", None),
        ]
    );
    assert!(entries.iter().all(|e| e["source_ip"] == "127.0.0.1"));
    assert!(entries[0]["seq"].as_i64() > entries[1]["seq"].as_i64());
    assert_eq!(entries[1]["role"], "qa");

    // Filters.
    assert_eq!(
        audit(server.addr, "actor=qian&action=recording.play")
            .await
            .len(),
        2
    );
    assert_eq!(audit(server.addr, "target=n1-alice").await.len(), 1);
    assert_eq!(
        audit(server.addr, "action=recording.*&limit=1").await.len(),
        1
    );
    assert_eq!(
        audit(
            server.addr,
            "action=recording.play&from=2100-01-01T00:00:00Z"
        )
        .await
        .len(),
        0
    );
    let reply = send(
        server.addr,
        "GET",
        "/api/audit?actr=qian",
        &[("Authorization", &bearer(CONFIG_TOKEN))],
        None,
    )
    .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["parameter"], "actr");

    // A non-admin may not read it.
    let reply = qian.get(server.addr, "/api/audit").await;
    assert_eq!(reply.status, 403);
    assert!(reply.json()["error"].is_string());
    server.shut_down().await;
}

#[tokio::test]
async fn admins_manage_users_and_tokens_over_the_api() {
    let install = install();
    add_user(&install, "root", "admin", None, "admin-password");
    let server = start(&install, true).await;
    let addr = server.addr;
    let root = sign_in(addr, "root", "admin-password").await;

    let reply = root
        .send(
            addr,
            "POST",
            "/api/users",
            &json!({ "name": "zheng", "role": "agent", "password": "agent-pass-3", "agent_id": "1002" }),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    assert_eq!(
        reply.json(),
        json!({
            "name": "zheng", "role": "agent", "agent_id": "1002", "disabled": false,
            "created_at": reply.json()["created_at"],
        })
    );
    let again = root
        .send(
            addr,
            "POST",
            "/api/users",
            &json!({ "name": "zheng", "role": "qa", "password": "agent-pass-3" }),
        )
        .await;
    assert_eq!(again.status, 409);
    let bad = root
        .send(
            addr,
            "POST",
            "/api/users",
            &json!({ "name": "a b", "role": "boss", "password": "x" }),
        )
        .await;
    assert_eq!(bad.status, 400);
    let bad = root
        .send(
            addr,
            "POST",
            "/api/users",
            &json!({ "name": "a b", "role": "qa", "password": "x" }),
        )
        .await;
    assert_eq!(bad.status, 400);
    // The name, the agent id (the name, by default) and the password.
    assert_eq!(bad.json()["problems"].as_array().unwrap().len(), 3);

    let users = root.get(addr, "/api/users").await.json();
    let names: Vec<&str> = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["root", "zheng"]);
    assert!(!root.get(addr, "/api/users").await.text().contains("argon2"));

    // The new agent signs in and sees agent 1002's call only.
    let zheng = sign_in(addr, "zheng", "agent-pass-3").await;
    assert_eq!(ids(&zheng.get(addr, "/api/calls").await.json()), ["n1-bob"]);
    // It may not make users, nor tokens for others; the admin may.
    let reply = zheng
        .send(
            addr,
            "POST",
            "/api/users",
            &json!({ "name": "x", "role": "admin", "password": "whatever-1" }),
        )
        .await;
    assert_eq!(reply.status, 403);
    let reply = zheng
        .send(
            addr,
            "POST",
            "/api/users/root/tokens",
            &json!({ "label": "x" }),
        )
        .await;
    assert_eq!(reply.status, 403);
    let reply = root
        .send(
            addr,
            "POST",
            "/api/users/zheng/tokens",
            &json!({ "label": "desk" }),
        )
        .await;
    assert_eq!(reply.status, 201);
    let token_id = reply.json()["id"].as_i64().unwrap();
    let reply = zheng
        .send(
            addr,
            "DELETE",
            &format!("/api/users/root/tokens/{token_id}"),
            &json!({}),
        )
        .await;
    assert_eq!(reply.status, 403);
    let reply = root
        .send(addr, "DELETE", "/api/users/zheng/tokens/999", &json!({}))
        .await;
    assert_eq!(reply.status, 404);
    assert!(reply.json()["error"].is_string());

    // PATCH: a new password signs the user out; disabled, it cannot sign in.
    let reply = root
        .send(
            addr,
            "PATCH",
            "/api/users/zheng",
            &json!({ "password": "new-pass-44" }),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(zheng.get(addr, "/api/me").await.status, 401);
    let zheng = sign_in(addr, "zheng", "new-pass-44").await;
    let reply = root
        .send(
            addr,
            "PATCH",
            "/api/users/zheng",
            &json!({ "disabled": true }),
        )
        .await;
    assert_eq!(reply.json()["disabled"], true);
    assert_eq!(zheng.get(addr, "/api/me").await.status, 401);
    assert_eq!(api_login(addr, "zheng", "new-pass-44").await.status, 401);

    let actions: Vec<String> = audit(addr, "actor=root")
        .await
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        actions,
        [
            "user.update",
            "user.update",
            "token.create",
            "user.create",
            "login.ok"
        ]
    );
    server.shut_down().await;
}

#[tokio::test]
async fn ticket_changes_through_the_api_are_audited() {
    let install = install();
    let server = start(&install, true).await;
    let admin = [("Authorization", bearer(CONFIG_TOKEN))];
    let headers: Vec<(&str, &str)> = admin.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let post = |path: String, body: Value| {
        let headers = headers.clone();
        async move {
            let body = body.to_string();
            send(
                server.addr,
                "POST",
                &path,
                &headers,
                Some(("application/json", &body)),
            )
            .await
        }
    };
    let reply = post(
        "/api/tickets".into(),
        json!({ "kind": "order", "customer": "张三" }),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    let id = reply.json()["id"].as_str().unwrap().to_owned();
    let body = json!({ "phone": "13800138000", "area": "华东" }).to_string();
    let reply = send(
        server.addr,
        "PATCH",
        &format!("/api/tickets/{id}"),
        &headers,
        Some(("application/json", &body)),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let reply = post(
        format!("/api/tickets/{id}/notes"),
        json!({ "text": "已联系" }),
    )
    .await;
    assert_eq!(reply.status, 201);
    let reply = post(
        format!("/api/tickets/{id}/calls"),
        json!({ "call_id": "n1-alice", "role": "work-contact" }),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    let reply = post(format!("/api/tickets/{id}/survey"), json!({ "score": 5 })).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    // Refused changes are not logged as changes.
    let reply = post(format!("/api/tickets/{id}/survey"), json!({})).await;
    assert_eq!(reply.status, 400);

    let entries = audit(server.addr, "action=ticket.*").await;
    let got: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["target"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            ("ticket.survey", id.as_str()),
            ("ticket.link", id.as_str()),
            ("ticket.note", id.as_str()),
            ("ticket.update", id.as_str()),
            ("ticket.create", id.as_str()),
        ]
    );
    assert_eq!(entries[0]["detail"], "score 5");
    assert_eq!(entries[1]["detail"], "call n1-alice as work-contact");
    assert_eq!(entries[3]["detail"], "area, phone");
    assert!(entries
        .iter()
        .all(|e| e["actor"] == "dev" && e["role"] == "admin"));
    server.shut_down().await;
}
