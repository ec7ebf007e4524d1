//! Sign-in over a real socket (raw HTTP/1.1) and with the real `threering user` command:
//! the auth config section, password hashes, the session cookie's flags and its CSRF
//! token, the CLI's password checks, the login form and logout, the login rate limit,
//! `401` without credentials, and the bare router (no peer address) still signing in.
//! Roles, tokens, user management and the audit log are in `users_access.rs`; the shared
//! helpers in `users_common/mod.rs`.

#[path = "users_common/mod.rs"]
mod users_common;

use serde_json::json;

use threering::config::Config;

use users_common::{add_user, api_login, audit, cli, ids, install, send, sign_in, start, Session};

#[test]
fn the_auth_section_has_defaults_and_its_problems_name_their_keys() {
    let config = Config::embedded();
    assert_eq!(config.auth.session_ttl_minutes, 480);
    assert_eq!(config.auth.login_attempts_per_minute, 10);
    // Not Secure by default over plain HTTP (HTTPS turns it on: tests/tls.rs).
    assert_eq!(config.auth.cookie_secure, Some(false));

    let bad = Config::EMBEDDED
        .replace("session_ttl_minutes = 480", "session_ttl_minutes = 0")
        .replace(
            "login_attempts_per_minute = 10",
            "login_attempts_per_minute = 0",
        );
    let problems = match Config::from_toml(&bad) {
        Err(threering::config::ConfigError::Invalid { problems }) => problems,
        other => panic!("{other:?}"),
    };
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        ["auth.session_ttl_minutes", "auth.login_attempts_per_minute"]
    );
    let typo = Config::EMBEDDED.replace("[auth]\n", "[auth]\ncookie_secur = false\n");
    assert!(Config::from_toml(&typo)
        .unwrap_err()
        .to_string()
        .contains("cookie_secur"));
}

#[tokio::test]
async fn a_user_added_by_the_cli_signs_in_with_a_cookie_that_needs_csrf_for_changes() {
    let install = install();
    add_user(&install, "wang", "qa", None, "qa-password-1");
    let server = start(&install, true).await;

    // The stored hash is an Argon2 PHC string, not the password.
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM users WHERE name = 'wang'")
        .fetch_one(server.store.pool())
        .await
        .unwrap();
    assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
    assert!(!hash.contains("qa-password-1"));

    let reply = api_login(server.addr, "wang", "qa-password-1").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let me = reply.json();
    assert_eq!(me["user"], "wang");
    assert_eq!(me["role"], "qa");
    let csrf = me["csrf_token"].as_str().unwrap().to_owned();
    assert_eq!(csrf.len(), 64);
    let set_cookie = reply
        .all("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("threering_session="))
        .unwrap()
        .to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "cookie_secure is off");
    let session = Session {
        cookie: reply.cookie("threering_session").unwrap(),
        csrf,
    };

    // A cookie GET works; /api/me tells the CSRF token.
    let reply = session.get(server.addr, "/api/calls").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(ids(&reply.json()).len(), 2, "qa sees every call");
    let reply = session.get(server.addr, "/api/me").await;
    assert_eq!(reply.json()["auth"], "session");
    assert_eq!(reply.json()["csrf_token"], session.csrf.as_str());

    // A cookie POST without the CSRF header is refused; with it, it is done.
    let body = json!({ "kind": "order" }).to_string();
    let reply = send(
        server.addr,
        "POST",
        "/api/tickets",
        &[("Cookie", &session.cookie)],
        Some(("application/json", &body)),
    )
    .await;
    assert_eq!(reply.status, 403, "{}", reply.text());
    assert!(reply.json()["error"]
        .as_str()
        .unwrap()
        .contains("X-CSRF-Token"));
    let reply = send(
        server.addr,
        "POST",
        "/api/tickets",
        &[
            ("Cookie", &session.cookie),
            ("X-CSRF-Token", "0".repeat(64).as_str()),
        ],
        Some(("application/json", &body)),
    )
    .await;
    assert_eq!(reply.status, 403, "a wrong token is no token");
    let reply = session
        .send(
            server.addr,
            "POST",
            "/api/tickets",
            &json!({ "kind": "order" }),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    let ticket = reply.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(reply.json()["created_by"], "wang");

    // The login and the ticket are in the audit log, with the peer address.
    let entries = audit(server.addr, "actor=wang").await;
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["ticket.create", "login.ok"]);
    assert_eq!(entries[0]["target"], ticket.as_str());
    assert_eq!(entries[0]["role"], "qa");
    assert_eq!(entries[1]["source_ip"], "127.0.0.1");
    server.shut_down().await;
}

#[tokio::test]
async fn the_cli_refuses_an_empty_password_and_can_generate_one() {
    let install = install();
    let run = cli(&install, &["user", "add", "li", "--role", "agent"], "\n");
    assert!(!run.ok);
    assert!(run.stderr.contains("no password"), "{}", run.stderr);
    let run = cli(
        &install,
        &["user", "add", "li", "--role", "chief"],
        "pw-pw-pw-pw\n",
    );
    assert!(!run.ok);
    assert!(run.stderr.contains("--role"), "{}", run.stderr);

    let run = cli(
        &install,
        &[
            "user",
            "add",
            "li",
            "--role",
            "agent",
            "--generate-password",
        ],
        "",
    );
    assert!(run.ok, "{}", run.stderr);
    let password = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .expect("the generated password is printed")
        .to_owned();
    let run = cli(
        &install,
        &["user", "add", "li", "--role", "agent"],
        "pw-pw-pw-pw\n",
    );
    assert!(!run.ok, "a second li");
    assert!(run.stderr.contains("already exists"), "{}", run.stderr);
    let run = cli(&install, &["user", "list"], "");
    assert!(run.ok);
    let line = run.stdout.lines().find(|l| l.starts_with("li ")).unwrap();
    assert!(line.contains("agent") && line.contains("active"), "{line}");

    let server = start(&install, true).await;
    let me = api_login(server.addr, "li", &password).await;
    assert_eq!(me.status, 200, "{}", me.text());
    assert_eq!(
        me.json()["agent_id"],
        "li",
        "the agent id defaults to the name"
    );
    server.shut_down().await;
}

#[tokio::test]
async fn the_login_form_signs_in_and_out() {
    let install = install();
    add_user(&install, "zhao", "supervisor", None, "sup-password");
    let server = start(&install, true).await;
    let addr = server.addr;

    let page = send(addr, "GET", "/login?next=/api/me", &[], None).await;
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    let html = page.text();
    assert!(
        html.contains("用户名") && html.contains("Password"),
        "{html}"
    );
    assert!(!html.contains("<script"), "no JavaScript needed");
    let form_cookie = page.cookie("threering_login_csrf").unwrap();
    let form_csrf = form_cookie.split_once('=').unwrap().1.to_owned();
    assert!(html.contains(&format!("name=\"csrf\" value=\"{form_csrf}\"")));
    assert!(html.contains("name=\"next\" value=\"/api/me\""));

    let post = |body: String, cookie: Option<String>| async move {
        let headers: Vec<(&str, &str)> = match &cookie {
            Some(c) => vec![("Cookie", c.as_str())],
            None => vec![],
        };
        send(
            addr,
            "POST",
            "/login",
            &headers,
            Some(("application/x-www-form-urlencoded", &body)),
        )
        .await
    };
    let form = |password: &str, next: &str| {
        format!("name=zhao&password={password}&csrf={form_csrf}&next={next}")
    };

    // Without the form's cookie (a post from another site): refused.
    let reply = post(form("sup-password", "%2Fapi%2Fme"), None).await;
    assert_eq!(reply.status, 403);
    assert!(reply.cookie("threering_session").is_none());

    // A wrong password: 401 page.
    let reply = post(form("nope", "%2Fapi%2Fme"), Some(form_cookie.clone())).await;
    assert_eq!(reply.status, 401);
    assert!(reply
        .text()
        .contains("用户名或密码错误 / wrong name or password"));
    assert!(reply.cookie("threering_session").is_none());

    // Right: 303 to next, with the session cookie.
    let reply = post(
        form("sup-password", "%2Fapi%2Fme"),
        Some(form_cookie.clone()),
    )
    .await;
    assert_eq!(reply.status, 303, "{}", reply.text());
    assert_eq!(reply.header("location"), Some("/api/me"));
    let cookie = reply.cookie("threering_session").unwrap();
    let me = send(addr, "GET", "/api/me", &[("Cookie", &cookie)], None).await;
    assert_eq!(me.json()["user"], "zhao");
    let csrf = me.json()["csrf_token"].as_str().unwrap().to_owned();

    // next elsewhere: home instead.
    let reply = post(
        form("sup-password", "https%3A%2F%2Fevil.example%2F"),
        Some(form_cookie.clone()),
    )
    .await;
    assert_eq!(reply.status, 303);
    assert_eq!(reply.header("location"), Some("/"));
    let other = reply.cookie("threering_session").unwrap();
    let home = send(addr, "GET", "/", &[("Cookie", &other)], None).await;
    assert_eq!(home.status, 200);
    assert!(home.text().contains("zhao"));
    assert_eq!(send(addr, "GET", "/", &[], None).await.status, 303);

    // Logging out needs the session's CSRF token.
    let reply = send(
        addr,
        "POST",
        "/logout",
        &[("Cookie", &cookie)],
        Some(("application/x-www-form-urlencoded", "csrf=wrong")),
    )
    .await;
    assert_eq!(reply.status, 403);
    let reply = send(
        addr,
        "POST",
        "/logout",
        &[("Cookie", &cookie)],
        Some(("application/x-www-form-urlencoded", &format!("csrf={csrf}"))),
    )
    .await;
    assert_eq!(reply.status, 303);
    assert_eq!(reply.header("location"), Some("/login"));
    assert!(reply
        .all("set-cookie")
        .iter()
        .any(|c| c.starts_with("threering_session=;") && c.contains("Max-Age=0")));
    let me = send(addr, "GET", "/api/me", &[("Cookie", &cookie)], None).await;
    assert_eq!(me.status, 401, "the session is over");
    // The other browser's session goes on.
    let me = send(addr, "GET", "/api/me", &[("Cookie", &other)], None).await;
    assert_eq!(me.status, 200);

    let actions: Vec<String> = audit(addr, "actor=zhao")
        .await
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(actions, ["logout", "login.ok", "login.ok", "login.failed"]);
    server.shut_down().await;
}

#[tokio::test]
async fn wrong_passwords_are_401_and_the_eleventh_failure_in_a_minute_is_429() {
    let install = install();
    add_user(&install, "sun", "qa", None, "right-password");
    let server = start(&install, true).await;
    for attempt in 1..=10 {
        let reply = api_login(server.addr, "sun", "wrong-password").await;
        assert_eq!(reply.status, 401, "attempt {attempt}: {}", reply.text());
        assert_eq!(reply.json()["error"], "wrong name or password");
        assert!(reply.cookie("threering_session").is_none());
    }
    let reply = api_login(server.addr, "sun", "wrong-password").await;
    assert_eq!(reply.status, 429, "{}", reply.text());
    let retry: u64 = reply.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Even the right password waits: no password is checked meanwhile.
    let reply = api_login(server.addr, "sun", "right-password").await;
    assert_eq!(reply.status, 429);
    // The form says so too.
    let page = send(server.addr, "GET", "/login", &[], None).await;
    let cookie = page.cookie("threering_login_csrf").unwrap();
    let csrf = cookie.split_once('=').unwrap().1.to_owned();
    let reply = send(
        server.addr,
        "POST",
        "/login",
        &[("Cookie", &cookie)],
        Some((
            "application/x-www-form-urlencoded",
            &format!("name=sun&password=right-password&csrf={csrf}"),
        )),
    )
    .await;
    assert_eq!(reply.status, 429);
    assert!(reply.header("retry-after").is_some());
    // Unknown names from the same address are refused as well (per source IP).
    assert_eq!(api_login(server.addr, "nobody", "x").await.status, 429);

    let failed = audit(server.addr, "action=login.failed").await;
    assert_eq!(failed.len(), 10, "every failure that was checked is logged");
    assert!(failed.iter().all(|e| e["actor"] == "sun"));
    server.shut_down().await;
}

#[tokio::test]
async fn unauthenticated_api_requests_are_401() {
    let install = install();
    let server = start(&install, true).await;
    let bogus_cookie = format!("threering_session={}", "ab".repeat(32));
    for path in [
        "/api/calls",
        "/api/calls/n1-alice/recording",
        "/api/me",
        "/api/audit",
        "/api/users",
        "/api/tickets",
        "/api/nowhere",
    ] {
        for headers in [
            vec![],
            vec![("Cookie", bogus_cookie.as_str())],
            vec![("Cookie", "threering_session=")],
            vec![("Authorization", "Bearer not-a-token")],
        ] {
            let reply = send(server.addr, "GET", path, &headers, None).await;
            assert_eq!(reply.status, 401, "{path} {headers:?}");
            assert!(reply.json()["error"].is_string());
            assert!(reply.header("www-authenticate").is_some());
        }
    }
    // POST /api/login is the one way in, and takes no credentials.
    let reply = api_login(server.addr, "nobody", "nothing-at-all").await;
    assert_eq!(reply.status, 401);
    let reply = send(
        server.addr,
        "POST",
        "/api/login",
        &[],
        Some(("application/json", "{\"name\": 1}")),
    )
    .await;
    assert_eq!(reply.status, 400);
    assert!(reply.json()["problems"].is_array());
    let body = json!({ "name": "nobody", "password": "nothing-at-all" }).to_string();
    let reply = send(
        server.addr,
        "POST",
        "/api/login",
        &[],
        Some(("text/plain", &body)),
    )
    .await;
    assert_eq!(
        reply.status, 400,
        "JSON only (no cross-site text/plain forms)"
    );
    // Nothing was audited as played.
    assert!(audit(server.addr, "action=recording.play").await.is_empty());
    server.shut_down().await;
}

#[tokio::test]
async fn without_connect_info_the_router_still_signs_in_and_audits() {
    let install = install();
    add_user(&install, "feng", "qa", None, "qa-password-3");
    let server = start(&install, false).await;
    let feng = sign_in(server.addr, "feng", "qa-password-3").await;
    let reply = feng.get(server.addr, "/api/calls/n1-alice/recording").await;
    assert_eq!(reply.status, 200);
    let entries = audit(server.addr, "actor=feng").await;
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert_eq!(entries[0]["action"], "recording.play");
    assert!(entries.iter().all(|e| e["source_ip"].is_null()));
    server.shut_down().await;
}
