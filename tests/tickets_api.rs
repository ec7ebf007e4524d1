//! The tickets API over a real socket, spoken as raw HTTP/1.1: creating tickets (ids,
//! due times, holidays), errors, status moves and history, links to calls (also among
//! concurrent writes), survey results, filters and the overdue gauge, `null` clearing a
//! field, and callbacks without call control. Archiving over the API is in
//! `tickets_archive_api.rs`; the server and shared helpers in `tickets_common/server.rs`.

#[path = "tickets_common/mod.rs"]
mod tickets_common;

use serde_json::{json, Value};

use threering::call::record::Direction;
use threering::config::Config;

use tickets_common::server::{
    actions, full_form, int_of, start, start_with, str_of, Server, ADMIN, ADMIN_NAME, AGENT,
    AGENT_NAME,
};
use tickets_common::{call_record, id_parts, is_ticket_id, local_day, now_ms, request};

const HOUR_MS: i64 = 3_600_000;

async fn history(server: &Server, id: &str) -> Value {
    let reply = server.get(&format!("/api/tickets/{id}/history")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["id"], id);
    body["history"].clone()
}

#[tokio::test]
async fn a_ticket_is_created_with_an_id_a_due_time_and_no_links() {
    let server = start().await;
    let before = now_ms();
    let first = server.create(full_form("consultation")).await;
    let after = now_ms();

    let id = str_of(&first, "id").to_owned();
    assert!(is_ticket_id(&id), "{id}");
    let created_at = int_of(&first, "created_at");
    assert!(
        (before..=after).contains(&created_at),
        "{created_at} not in {before}..={after}"
    );
    let (day, number) = id_parts(&id);
    assert_eq!(day, local_day(created_at), "the id carries the local day");
    assert_eq!(first["kind"], "consultation");
    assert_eq!(first["status"], "open");
    assert_eq!(first["customer"], "张三");
    assert_eq!(first["phone"], "13800138000");
    assert_eq!(first["area"], "华东");
    assert_eq!(first["inquiry_type"], "查单");
    assert_eq!(first["waybill"], "SF1234567890");
    assert_eq!(first["content"], "包裹三天未更新物流信息");
    assert_eq!(first["created_by"], ADMIN_NAME);
    assert!(int_of(&first, "due_at") > created_at, "{first}");
    // Consultation: one working day (9 working hours) on the calendar, so due within
    // working hours (09:00-18:00 local) on a weekday, at most a week and a day away.
    let due = int_of(&first, "due_at");
    assert!(due <= created_at + 8 * 24 * HOUR_MS, "{first}");
    assert!(due >= created_at + 9 * HOUR_MS, "{first}");
    let local = chrono::DateTime::from_timestamp_millis(due)
        .unwrap()
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap());
    let minute = chrono::Timelike::hour(&local) * 60 + chrono::Timelike::minute(&local);
    assert!((9 * 60..=18 * 60).contains(&minute), "due {local}");
    assert!(
        chrono::Datelike::weekday(&local).num_days_from_monday() < 5,
        "due {local}"
    );
    assert_eq!(first["calls"], json!([]));
    assert_eq!(first["survey_score"], Value::Null);
    assert_eq!(first["overdue"], false);
    assert_eq!(first["complexity"], Value::Null);
    assert_eq!(first["archived_at"], Value::Null);

    let second = server.create(json!({"kind": "order"})).await;
    let (day2, number2) = id_parts(str_of(&second, "id"));
    if day2 == day {
        assert_eq!(number2, number + 1, "the day's next number");
    } else {
        // The local day turned between the two requests: numbering starts again.
        assert_eq!(number2, 1);
    }
    assert_eq!(second["status"], "open");

    // The stored ticket is the one answered.
    let stored = server.ticket(&id).await;
    assert_eq!(stored["due_at"], first["due_at"]);
    assert_eq!(stored["created_at"], first["created_at"]);
    assert_eq!(actions(&stored["history"]), ["created"]);

    // Complaints run on wall-clock hours: 2 h simple, 24 h complex.
    for (complexity, hours) in [("simple", 2), ("complex", 24)] {
        let mut form = full_form("complaint");
        form["complexity"] = json!(complexity);
        let complaint = server.create(form).await;
        assert_eq!(complaint["complexity"], complexity);
        assert_eq!(
            int_of(&complaint, "due_at"),
            int_of(&complaint, "created_at") + hours * HOUR_MS,
            "{complexity} complaint: {complaint}"
        );
        assert_eq!(complaint["reply_due_at"], complaint["due_at"]);
    }
    // A complaint whose complexity is not known yet runs on the stricter clock.
    let unknown = server.create(json!({"kind": "complaint"})).await;
    assert_eq!(unknown["complexity"], "simple");
    assert_eq!(
        int_of(&unknown, "due_at"),
        int_of(&unknown, "created_at") + 2 * HOUR_MS
    );
    // Assigning at creation dispatches at once.
    let dispatched = server
        .create(json!({"kind": "query", "assigned_agent": "1001"}))
        .await;
    assert_eq!(dispatched["status"], "dispatched");
    server.shut_down().await;
}

#[tokio::test]
async fn bad_requests_are_json_and_name_what_is_wrong() {
    let server = start().await;
    let problems = server
        .post("/api/tickets", json!({"kind": "gossip", "customer": "x"}))
        .await
        .problems();
    assert!(problems.contains("kind"), "{problems}");
    assert!(problems.contains("gossip"), "{problems}");

    let problems = server
        .post("/api/tickets", json!({"customer": "x"}))
        .await
        .problems();
    assert!(problems.contains("kind: required"), "{problems}");

    let mut form = full_form("consultation");
    form["area"] = json!("火星");
    let problems = server.post("/api/tickets", form).await.problems();
    assert!(problems.contains("area"), "{problems}");
    assert!(problems.contains("火星"), "{problems}");
    assert!(!problems.contains("kind"), "{problems}");

    // Two problems at once: both are listed.
    let problems = server
        .post(
            "/api/tickets",
            json!({"kind": "complaint", "complexity": "medium", "inquiry_type": "闲聊"}),
        )
        .await
        .problems();
    assert!(problems.contains("complexity"), "{problems}");
    assert!(problems.contains("inquiry_type"), "{problems}");

    let problems = server
        .post(
            "/api/tickets",
            json!({"kind": "consultation", "custmer": "typo"}),
        )
        .await
        .problems();
    assert!(problems.contains("custmer"), "{problems}");

    let reply = server
        .send("POST", "/api/tickets", Some("{\"kind\": \"consultation\""))
        .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(reply.json()["error"].is_string());
    let reply = server.send("POST", "/api/tickets", Some("")).await;
    assert_eq!(reply.status, 400, "{}", reply.body);

    // Nothing was created by any of those.
    assert_eq!(server.listed("").await, Vec::<String>::new());

    let reply = request(
        server.addr,
        "POST",
        "/api/tickets",
        None,
        Some(&json!({"kind": "consultation"}).to_string()),
    )
    .await;
    assert_eq!(reply.status, 401);
    assert!(reply.header("www-authenticate").is_some());
    assert!(reply.json()["error"].is_string());
    let reply = request(server.addr, "GET", "/api/tickets", Some("nope"), None).await;
    assert_eq!(reply.status, 401);

    let reply = server.get("/api/tickets/T-20260101-0042").await;
    assert_eq!(reply.status, 404);
    assert!(
        str_of(&reply.json(), "error").contains("T-20260101-0042"),
        "{}",
        reply.body
    );
    for path in [
        "/api/tickets/T-20260101-0042/history",
        "/api/tickets/T-20260101-0042/calls",
    ] {
        let reply = server.get(path).await;
        assert_eq!(reply.status, 404, "{path}: {}", reply.body);
        assert!(reply.json()["error"].is_string());
    }
    let reply = server
        .patch("/api/tickets/T-20260101-0042", json!({"status": "closed"}))
        .await;
    assert_eq!(reply.status, 404, "{}", reply.body);
    server.shut_down().await;
}

#[tokio::test]
async fn status_moves_and_an_append_only_history() {
    let server = start().await;
    let ticket = server.create(full_form("consultation")).await;
    let id = str_of(&ticket, "id").to_owned();
    let url = format!("/api/tickets/{id}");

    let reply = server.patch(&url, json!({"assigned_agent": "1001"})).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let t = reply.json();
    assert_eq!(t["status"], "dispatched");
    assert_eq!(t["assigned_agent"], "1001");
    let after_dispatch = history(&server, &id).await;
    assert_eq!(actions(&after_dispatch), ["created", "updated", "status"]);
    assert!(
        str_of(&after_dispatch[2], "note").contains("open → dispatched"),
        "{after_dispatch}"
    );

    let reply = server
        .patch(&url, json!({"reply": "已联系网点，明天派送"}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let t = reply.json();
    assert_eq!(t["status"], "replied");
    assert_eq!(t["reply"], "已联系网点，明天派送");
    assert!(t["replied_at"].is_i64(), "{t}");
    assert_eq!(t["closed_at"], Value::Null);

    let reply = server.patch(&url, json!({"status": "closed"})).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let t = reply.json();
    assert_eq!(t["status"], "closed");
    let closed_at = int_of(&t, "closed_at");
    assert!(closed_at >= int_of(&t, "replied_at"), "{t}");

    let reply = server.patch(&url, json!({"status": "open"})).await;
    assert_eq!(reply.status, 409, "{}", reply.body);
    assert!(str_of(&reply.json(), "error").contains("closed"));
    let problems = server
        .patch(&url, json!({"status": "finished"}))
        .await
        .problems();
    assert!(problems.contains("status"), "{problems}");
    let problems = server
        .patch(&url, json!({"colour": "red"}))
        .await
        .problems();
    assert!(problems.contains("colour"), "{problems}");
    // Refused changes changed nothing.
    let t = server.ticket(&id).await;
    assert_eq!(t["status"], "closed");
    assert_eq!(int_of(&t, "closed_at"), closed_at);

    let reply = server
        .post(&format!("{url}/notes"), json!({"text": "客户表示满意"}))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let problems = server
        .post(&format!("{url}/notes"), json!({"text": "   "}))
        .await
        .problems();
    assert!(problems.contains("text"), "{problems}");

    // An agent's change is signed with the agent's token name.
    let reply = request(
        server.addr,
        "POST",
        &format!("{url}/notes"),
        Some(AGENT),
        Some(&json!({"text": "回访完成"}).to_string()),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.body);

    let all = history(&server, &id).await;
    assert_eq!(
        actions(&all),
        [
            "created", "updated", "status", // assigned: open → dispatched
            "reply", "status", // replied
            "status", // closed
            "note", "note",
        ]
    );
    let entries = all.as_array().unwrap();
    for entry in &entries[..7] {
        assert_eq!(entry["author"], ADMIN_NAME, "{entry}");
    }
    assert_eq!(entries[7]["author"], AGENT_NAME);
    assert_eq!(entries[6]["note"], "客户表示满意");
    assert_eq!(entries[7]["note"], "回访完成");
    assert!(str_of(&entries[4], "note").contains("dispatched → replied"));
    assert!(str_of(&entries[5], "note").contains("replied → closed"));
    assert_eq!(int_of(&entries[5], "at"), closed_at);
    let times: Vec<i64> = entries.iter().map(|e| int_of(e, "at")).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    // Append-only: what was there after the first change is still there, unchanged.
    assert_eq!(&entries[..3], after_dispatch.as_array().unwrap().as_slice());
    // The ticket served alone carries the same history.
    assert_eq!(server.ticket(&id).await["history"], all);
    server.shut_down().await;
}

#[tokio::test]
async fn calls_are_linked_with_their_roles() {
    let server = start().await;
    let ticket = server.create(full_form("query")).await;
    let id = str_of(&ticket, "id").to_owned();
    let now = now_ms();
    server
        .store
        .save_call(&call_record("n1-work", now - 60_000, None, vec![]))
        .await
        .unwrap();

    let reply = server
        .post(
            &format!("/api/tickets/{id}/calls"),
            json!({"call_id": "n1-work", "role": "work-contact"}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let t = reply.json();
    let calls = t["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{t}");
    assert_eq!(calls[0]["call_id"], "n1-work");
    assert_eq!(calls[0]["role"], "work-contact");
    assert_eq!(calls[0]["linked_by"], ADMIN_NAME);
    assert_eq!(actions(&t["history"]).last().unwrap(), "link");

    let reply = server.get(&format!("/api/calls?ticket={id}")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let listed = reply.json()["calls"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 1, "{}", reply.body);
    assert_eq!(listed[0]["id"], "n1-work");
    assert_eq!(listed[0]["tickets"], json!([id]));
    let call = server.get("/api/calls/n1-work").await.json();
    assert_eq!(call["tickets"], json!([id]));

    let problems = server
        .post(
            &format!("/api/tickets/{id}/calls"),
            json!({"call_id": "n1-nowhere", "role": "inbound"}),
        )
        .await
        .problems();
    assert!(problems.contains("n1-nowhere"), "{problems}");
    let problems = server
        .post(
            &format!("/api/tickets/{id}/calls"),
            json!({"call_id": "n1-work", "role": "gossip"}),
        )
        .await
        .problems();
    assert!(problems.contains("role"), "{problems}");
    let reply = server
        .post(
            "/api/tickets/T-20260101-0099/calls",
            json!({"call_id": "n1-work"}),
        )
        .await;
    assert_eq!(reply.status, 404, "{}", reply.body);

    // A call that arrived carrying the ticket's id (X-Ticket-ID) is its inbound call.
    let mut inbound = call_record("n1-inbound", now - 120_000, None, vec![id.clone()]);
    inbound.direction = Direction::Inbound;
    server.store.save_call(&inbound).await.unwrap();
    let reply = server.get(&format!("/api/tickets/{id}/calls")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let links = reply.json()["calls"].as_array().unwrap().clone();
    let role_of = |call: &str| {
        links
            .iter()
            .find(|l| l["call_id"] == call)
            .unwrap_or_else(|| panic!("{call} not linked: {links:?}"))["role"]
            .clone()
    };
    assert_eq!(links.len(), 2, "{links:?}");
    assert_eq!(role_of("n1-inbound"), "inbound");
    assert_eq!(role_of("n1-work"), "work-contact");
    let mut ids = server.get(&format!("/api/calls?ticket={id}")).await.json()["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect::<Vec<_>>();
    ids.sort();
    assert_eq!(ids, ["n1-inbound", "n1-work"]);

    // Without a role a link is inbound.
    let other = server.create(json!({"kind": "order"})).await;
    let other_id = str_of(&other, "id");
    let reply = server
        .post(
            &format!("/api/tickets/{other_id}/calls"),
            json!({"call_id": "n1-work"}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.json()["calls"][0]["role"], "inbound");
    let mut tickets: Vec<String> =
        serde_json::from_value(server.get("/api/calls/n1-work").await.json()["tickets"].clone())
            .unwrap();
    tickets.sort();
    let mut expected = vec![id.clone(), other_id.to_owned()];
    expected.sort();
    assert_eq!(tickets, expected);
    server.shut_down().await;
}

#[tokio::test]
async fn survey_results_reopen_only_for_the_companys_fault() {
    let server = start().await;

    // Score 1, the company's fault: a replied ticket is reopened.
    let t = server.create(full_form("consultation")).await;
    let id = str_of(&t, "id").to_owned();
    let reply = server
        .patch(&format!("/api/tickets/{id}"), json!({"reply": "已处理"}))
        .await;
    assert_eq!(reply.json()["status"], "replied");
    let reply = server
        .post(
            &format!("/api/tickets/{id}/survey"),
            json!({"score": 1, "cause": "company"}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let t = reply.json();
    assert_eq!(t["status"], "reopened");
    assert_eq!(t["survey_score"], 1);
    assert_eq!(t["survey_cause"], "company");
    let survey_at = int_of(&t, "survey_at");
    assert!(
        int_of(&t, "due_at") > survey_at,
        "reopening restarts the reply clock: {t}"
    );
    let h = history(&server, &id).await;
    let acts = actions(&h);
    assert_eq!(&acts[acts.len() - 2..], ["survey", "status"], "{h}");
    let n = acts.len();
    assert!(str_of(&h[n - 2], "note").contains("satisfaction 1"), "{h}");
    assert!(
        str_of(&h[n - 1], "note").contains("replied → reopened"),
        "{h}"
    );
    assert_eq!(h[n - 1]["author"], ADMIN_NAME);

    // Score 2, the customer's own doing: stays replied.
    let t = server.create(full_form("consultation")).await;
    let id = str_of(&t, "id").to_owned();
    server
        .patch(&format!("/api/tickets/{id}"), json!({"reply": "已处理"}))
        .await;
    let reply = server
        .post(
            &format!("/api/tickets/{id}/survey"),
            json!({"score": 2, "cause": "customer"}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let t = reply.json();
    assert_eq!(t["status"], "replied");
    assert_eq!(t["survey_score"], 2);
    assert_eq!(t["survey_cause"], "customer");
    assert_eq!(
        actions(&history(&server, &id).await).last().unwrap(),
        "survey"
    );

    // Out of range, bad cause, nothing given: 400, and nothing recorded.
    for body in [
        json!({"score": 6}),
        json!({"score": 0}),
        json!({"score": 3, "cause": "weather"}),
        json!({}),
    ] {
        let reply = server
            .post(&format!("/api/tickets/{id}/survey"), body.clone())
            .await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.body);
    }
    let problems = server
        .post(&format!("/api/tickets/{id}/survey"), json!({"score": 6}))
        .await
        .problems();
    assert!(problems.contains("score"), "{problems}");
    assert_eq!(server.ticket(&id).await["survey_score"], 2);

    // No survey, with the reason why.
    let t = server.create(full_form("order")).await;
    let id = str_of(&t, "id").to_owned();
    let reply = server
        .post(
            &format!("/api/tickets/{id}/survey"),
            json!({"no_survey_reason": "customer declined"}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let t = reply.json();
    assert_eq!(t["no_survey_reason"], "customer declined");
    assert_eq!(t["survey_score"], Value::Null);
    assert_eq!(t["status"], "open");
    server.shut_down().await;
}

#[tokio::test]
async fn tickets_are_filtered_and_overdue_ones_counted() {
    let server = start().await;
    let open = server.create(full_form("consultation")).await;
    let open_id = str_of(&open, "id").to_owned();

    let mut form = full_form("complaint");
    form["area"] = json!("华南");
    let complaint = server.create(form).await;
    let complaint_id = str_of(&complaint, "id").to_owned();

    let mut form = full_form("query");
    form["area"] = json!("华北");
    form["assigned_agent"] = json!("1002");
    let dispatched = server.create(form).await;
    let dispatched_id = str_of(&dispatched, "id").to_owned();

    // A callback promised a minute ago: due then, and overdue now.
    let promised = now_ms() - 60_000;
    let reply = server
        .patch(
            &format!("/api/tickets/{open_id}"),
            json!({"promised_callback_at": promised}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let t = reply.json();
    assert_eq!(int_of(&t, "promised_callback_at"), promised);
    assert_eq!(int_of(&t, "due_at"), promised);
    assert_eq!(t["overdue"], true);
    assert_eq!(server.ticket(&open_id).await["overdue"], true);
    assert_eq!(server.ticket(&complaint_id).await["overdue"], false);

    assert_eq!(
        server.listed("?status=open").await,
        [open_id.as_str(), complaint_id.as_str()]
    );
    assert_eq!(
        server.listed("?status=dispatched").await,
        [dispatched_id.as_str()]
    );
    assert_eq!(server.listed("?status=closed").await, Vec::<String>::new());
    assert_eq!(
        server.listed("?kind=complaint").await,
        [complaint_id.as_str()]
    );
    assert_eq!(server.listed("?kind=order").await, Vec::<String>::new());
    // 华东, percent-encoded.
    assert_eq!(
        server.listed("?area=%E5%8D%8E%E4%B8%9C").await,
        [open_id.as_str()]
    );
    assert_eq!(server.listed("?agent=1002").await, [dispatched_id.as_str()]);
    let reply = server.get("/api/tickets?overdue=true").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let overdue = reply.json()["tickets"].as_array().unwrap().clone();
    assert_eq!(overdue.len(), 1, "{}", reply.body);
    assert_eq!(overdue[0]["id"], open_id.as_str());
    assert_eq!(overdue[0]["overdue"], true);
    // Earliest due first: the overdue one, the complaint (2 h), then the query (a day).
    assert_eq!(
        server.listed("?overdue=false").await,
        [
            open_id.as_str(),
            complaint_id.as_str(),
            dispatched_id.as_str()
        ]
    );
    let now = now_ms();
    assert_eq!(
        server
            .listed(&format!("?due_before={}", now + HOUR_MS))
            .await,
        [open_id.as_str()]
    );
    assert_eq!(
        server
            .listed(&format!("?due_before={}", now + 3 * HOUR_MS))
            .await,
        [open_id.as_str(), complaint_id.as_str()]
    );
    assert_eq!(server.listed("?limit=1").await, [open_id.as_str()]);
    assert_eq!(
        server
            .listed("?kind=consultation&area=%E5%8D%8E%E5%8D%97")
            .await
            .len(),
        0
    );

    for (query, param) in [
        ("colour=red", "colour"),
        ("status=finished", "status"),
        ("kind=gossip", "kind"),
        ("overdue=maybe", "overdue"),
        ("due_before=tomorrow", "due_before"),
        ("limit=0", "limit"),
    ] {
        let reply = server.get(&format!("/api/tickets?{query}")).await;
        assert_eq!(reply.status, 400, "{query}: {}", reply.body);
        let body = reply.json();
        assert_eq!(body["parameter"], param, "{query}: {body}");
        assert!(str_of(&body, "error").contains(param), "{body}");
    }

    // The gauge is counted from this server's store at scrape time (no other test in
    // this binary scrapes, so the process-wide gauge is ours).
    let reply = request(server.addr, "GET", "/metrics", None, None).await;
    assert_eq!(reply.status, 200);
    for expected in [
        "threering_tickets_overdue{kind=\"consultation\"} 1\n",
        "threering_tickets_overdue{kind=\"complaint\"} 0\n",
        "threering_tickets_overdue{kind=\"query\"} 0\n",
        "# TYPE threering_tickets_overdue gauge",
    ] {
        assert!(
            reply.body.contains(expected),
            "no {expected:?} in\n{}",
            reply.body
        );
    }

    // Replied tickets are no longer overdue.
    let reply = server
        .patch(
            &format!("/api/tickets/{open_id}"),
            json!({"reply": "已回电"}),
        )
        .await;
    assert_eq!(reply.json()["overdue"], false);
    assert_eq!(server.listed("?overdue=true").await, Vec::<String>::new());
    let reply = request(server.addr, "GET", "/metrics", None, None).await;
    assert!(
        reply
            .body
            .contains("threering_tickets_overdue{kind=\"consultation\"} 0\n"),
        "{}",
        reply.body
    );
    server.shut_down().await;
}

#[tokio::test]
async fn callbacks_need_call_control_and_a_real_number() {
    let server = start().await;
    let t = server.create(full_form("consultation")).await;
    let id = str_of(&t, "id").to_owned();
    let url = format!("/api/tickets/{id}/callback");

    let problems = server
        .post(&url, json!({"agent": "1001", "number": "12ab"}))
        .await
        .problems();
    assert!(problems.contains("number"), "{problems}");
    assert!(problems.contains("12ab"), "{problems}");
    let problems = server
        .post(&url, json!({"agent": "1001", "number": ""}))
        .await
        .problems();
    assert!(problems.contains("number"), "{problems}");

    let reply = server
        .post(&url, json!({"agent": "1001", "number": "13800138000"}))
        .await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert!(
        str_of(&reply.json(), "error").contains("call control"),
        "{}",
        reply.body
    );
    let reply = server
        .post(
            "/api/tickets/T-20260101-0077/callback",
            json!({"agent": "1001", "number": "13800138000"}),
        )
        .await;
    assert_eq!(reply.status, 404, "{}", reply.body);
    // Nothing happened to the ticket.
    assert_eq!(actions(&history(&server, &id).await), ["created"]);
    server.shut_down().await;
}

/// Toll fraud: international numbers are refused by default, and an agent's callbacks
/// per day are limited.
#[tokio::test]
async fn callbacks_only_dial_allowed_numbers_a_limited_number_of_times() {
    let mut config = Config::embedded();
    config.callbacks.per_agent_per_day = 1;
    let server = start_with(config).await;
    let t = server.create(full_form("consultation")).await;
    let url = format!("/api/tickets/{}/callback", str_of(&t, "id"));
    for number in [
        "0044207946000",
        "+8613800138000",
        "95599",
        "13800138000123456",
    ] {
        let reply = server
            .post(&url, json!({"agent": "1001", "number": number}))
            .await;
        assert_eq!(reply.status, 403, "{number}: {}", reply.body);
        assert!(
            str_of(&reply.json(), "error").contains("[callbacks]"),
            "{}",
            reply.body
        );
    }
    // One callback already today: the next is refused until tomorrow.
    let mut call = call_record("n1-cb-1", now_ms(), None, vec![]);
    call.direction = Direction::Outbound;
    call.caller = "1001".into();
    server.store.save_call(&call).await.unwrap();
    let reply = server
        .post(&url, json!({"agent": "1001", "number": "13800138000"}))
        .await;
    assert_eq!(reply.status, 429, "{}", reply.body);
    assert!(str_of(&reply.json(), "error").contains("per_agent_per_day"));
    // Another agent still may (and gets as far as call control, absent here).
    let reply = server
        .post(&url, json!({"agent": "1002", "number": "13800138000"}))
        .await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    server.shut_down().await;
}

#[tokio::test]
async fn configured_holidays_push_the_reply_due_time_past_them() {
    let offset = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
    let today = chrono::Utc::now().with_timezone(&offset).date_naive();
    let mut config = Config::embedded();
    // Today and the next nine days are holidays.
    config.calendar.holidays = (0..10)
        .map(|d| {
            (today + chrono::Duration::days(d))
                .format("%Y-%m-%d")
                .to_string()
        })
        .collect();
    assert!(config.validate().is_empty(), "{:?}", config.validate());
    let server = start_with(config).await;

    let t = server.create(full_form("consultation")).await;
    // Accepted on a holiday: the working day starts on the first weekday after the
    // holidays, at 09:00, and one working day (9 h) later it is due: 18:00 that day.
    let mut first_working = today + chrono::Duration::days(10);
    while chrono::Datelike::weekday(&first_working).num_days_from_monday() >= 5 {
        first_working = first_working.succ_opt().unwrap();
    }
    let expected = first_working
        .and_hms_opt(18, 0, 0)
        .unwrap()
        .and_local_timezone(offset)
        .unwrap()
        .timestamp_millis();
    assert_eq!(int_of(&t, "due_at"), expected, "{t}");
    // The ticket is filed under the local day.
    let (day, _) = id_parts(str_of(&t, "id"));
    assert_eq!(day, today.format("%Y%m%d").to_string());

    // Complaints run on the wall clock, holidays or not.
    let c = server.create(full_form("complaint")).await;
    assert_eq!(int_of(&c, "due_at"), int_of(&c, "created_at") + 2 * HOUR_MS);
    server.shut_down().await;
}

// Regression: `null` in a PATCH body clears (it was once read as "absent"): a waybill is
// cleared and a promised callback withdrawn, the due time going back to the reply's.
#[tokio::test]
async fn patch_with_null_clears_a_field_and_withdraws_a_promise() {
    let server = start().await;
    let t = server.create(full_form("query")).await;
    let id = str_of(&t, "id").to_owned();
    let url = format!("/api/tickets/{id}");
    let reply_due = int_of(&t, "reply_due_at");
    let promised = int_of(&t, "created_at") + 30 * 60_000;
    let reply = server
        .patch(&url, json!({"promised_callback_at": promised}))
        .await;
    assert_eq!(int_of(&reply.json(), "due_at"), promised);

    // An empty string clears a text field (this part works).
    let reply = server.patch(&url, json!({"company": "顺丰"})).await;
    assert_eq!(reply.json()["company"], "顺丰");
    let reply = server.patch(&url, json!({"company": ""})).await;
    assert_eq!(reply.json()["company"], Value::Null);

    let reply = server
        .patch(&url, json!({"waybill": null, "promised_callback_at": null}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let t = reply.json();
    assert_eq!(t["waybill"], Value::Null, "null clears the waybill: {t}");
    assert_eq!(
        t["promised_callback_at"],
        Value::Null,
        "null withdraws the promise: {t}"
    );
    assert_eq!(
        int_of(&t, "due_at"),
        reply_due,
        "due at the reply time again"
    );
    server.shut_down().await;
}

// Regression: `Store::link_call` reads, then writes. In a deferred transaction, SQLite
// in WAL mode fails the upgrade at once (SQLITE_BUSY / BUSY_SNAPSHOT) when another
// connection writes meanwhile, so links made among other writes failed with 500; it now
// starts with BEGIN IMMEDIATE.
#[tokio::test]
async fn links_notes_and_new_tickets_at_once_all_succeed() {
    const TICKETS: usize = 16;
    const ROUNDS: usize = 3;
    let server = start().await;
    let mut ids = Vec::new();
    for _ in 0..TICKETS {
        let t = server.create(json!({"kind": "order"})).await;
        ids.push(str_of(&t, "id").to_owned());
    }
    let call_id = |round: usize, i: usize| format!("n1-busy-{round}-{i}");
    for round in 0..ROUNDS {
        for i in 0..TICKETS {
            let call = call_record(&call_id(round, i), now_ms(), None, vec![]);
            server.store.save_call(&call).await.unwrap();
        }
    }
    let mut failed = Vec::new();
    for round in 0..ROUNDS {
        let mut tasks = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let (addr, id) = (server.addr, id.clone());
            let link = json!({"call_id": call_id(round, i), "role": "work-contact"}).to_string();
            tasks.push(tokio::spawn(async move {
                let note = json!({"text": format!("note {round}")}).to_string();
                let order = json!({"kind": "order"}).to_string();
                let calls = format!("/api/tickets/{id}/calls");
                let notes = format!("/api/tickets/{id}/notes");
                let (a, b, c) = tokio::join!(
                    request(addr, "POST", &calls, Some(ADMIN), Some(&link)),
                    request(addr, "POST", &notes, Some(ADMIN), Some(&note)),
                    request(addr, "POST", "/api/tickets", Some(ADMIN), Some(&order)),
                );
                [("link", a), ("note", b), ("create", c)]
                    .into_iter()
                    .filter(|(_, r)| r.status != 201)
                    .map(|(what, r)| format!("{what} on {id}: {} {}", r.status, r.body))
                    .collect::<Vec<_>>()
            }));
        }
        for task in tasks {
            failed.extend(task.await.unwrap());
        }
    }
    assert_eq!(failed, Vec::<String>::new(), "requests failed under load");
    for (i, id) in ids.iter().enumerate() {
        let t = server.ticket(id).await;
        let mut linked: Vec<String> = t["calls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| str_of(l, "call_id").to_owned())
            .collect();
        linked.sort();
        let expected: Vec<String> = (0..ROUNDS).map(|r| call_id(r, i)).collect();
        assert_eq!(linked, expected, "{t}");
        let acts = actions(&t["history"]);
        assert_eq!(acts.iter().filter(|a| *a == "note").count(), ROUNDS);
        assert_eq!(acts.iter().filter(|a| *a == "link").count(), ROUNDS);
    }
    // Every new ticket got its own number.
    let listed = server.listed("?limit=1000").await;
    assert_eq!(listed.len(), TICKETS * (ROUNDS + 1));
    let mut numbers: Vec<u32> = listed.iter().map(|id| id_parts(id).1).collect();
    numbers.sort();
    numbers.dedup();
    assert_eq!(numbers.len(), listed.len(), "duplicate ticket numbers");
    server.shut_down().await;
}
