//! The QA pages: call search and the call page (recording, waveform, ring timeline,
//! flags, tickets, survey, scores and annotations), with the score and annotation
//! forms.

use std::collections::HashMap;
use std::fmt::Write as _;

use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;

use super::{local_time, or_dash, page, PageSession};
use crate::call::record::CallRecord;
use crate::config::Role;
use crate::http::AppState;
use crate::qa::analysis::Analysis;
use crate::qa::forms::{self, Annotation, Score, ScoreInput};
use crate::qa::svg::esc;
use crate::store::{CallFilter, ScoreRefused};

fn offset(state: &AppState) -> chrono::FixedOffset {
    state.tickets.rules.calendar.offset()
}

/// A plain error page with a status.
fn error_page(session: &PageSession, status: StatusCode, message: &str) -> Response {
    (
        status,
        page(
            "错误 Error",
            session,
            &format!("<h1>{}</h1><p>{}</p>", status, esc(message)),
        ),
    )
        .into_response()
}

/// `YYYY-MM-DD` (local) or RFC 3339 or epoch ms → epoch ms; `end` moves a bare date to
/// the next midnight.
fn parse_when(text: &str, offset: chrono::FixedOffset, end: bool) -> Option<i64> {
    if let Ok(ms) = text.parse::<i64>() {
        return Some(ms);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp_millis());
    }
    let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    let date = if end { date.succ_opt()? } else { date };
    date.and_hms_opt(0, 0, 0)?
        .and_local_timezone(offset)
        .single()
        .map(|t| t.timestamp_millis())
}

/// `GET /ui/calls`: the search form and the matching calls, newest first.
pub async fn search(
    State(state): State<AppState>,
    Extension(session): Extension<PageSession>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let offset = offset(&state);
    let get = |k: &str| params.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let mut filter = CallFilter {
        from: get("from").and_then(|v| parse_when(v, offset, false)),
        to: get("to").and_then(|v| parse_when(v, offset, true)),
        agent: get("agent").map(str::to_owned),
        queue: get("queue").map(str::to_owned),
        ticket: get("ticket").map(str::to_owned),
        caller: get("caller").map(str::to_owned),
        min_rings: get("min_rings").and_then(|v| v.parse().ok()),
        max_survey: get("max_survey").and_then(|v| v.parse().ok()),
        violation: get("violation").map(|v| v == "true"),
        qa_scored: get("qa").map(|v| v == "scored"),
        limit: Some(200),
    };
    // Agents see their own calls only.
    if session.caller.role == Role::Agent {
        filter.agent = Some(session.caller.agent.clone().unwrap_or_default());
    }
    let calls = match state.store.list_calls(&filter).await {
        Ok(calls) => calls,
        Err(e) => {
            tracing::error!(error = %e, "call search failed");
            return error_page(&session, StatusCode::INTERNAL_SERVER_ERROR, "search failed");
        }
    };
    let value = |k: &str| esc(get(k).unwrap_or_default());
    let selected = |k: &str, v: &str| {
        if get(k) == Some(v) {
            " selected"
        } else {
            ""
        }
    };
    let mut body = format!(
        r#"<h1>通话查询 · Call search</h1>
<form class="filters" method="get" action="/ui/calls">
<label>从 From<input type="date" name="from" value="{from}"></label>
<label>到 To<input type="date" name="to" value="{to}"></label>
<label>坐席 Agent<input name="agent" value="{agent}" size="6"></label>
<label>队列 Queue<input name="queue" value="{queue}" size="8"></label>
<label>工单 Ticket<input name="ticket" value="{ticket}" size="16"></label>
<label>来电号码 Caller<input name="caller" value="{caller}" size="12"></label>
<label>响铃≥ Rings<input type="number" min="1" name="min_rings" value="{min_rings}" style="width:4em"></label>
<label>超时 Violation<select name="violation"><option value="">全部 all</option><option value="true"{vt}>超过三声 late</option><option value="false"{vf}>按时 on time</option></select></label>
<label>满意度≤ Survey<input type="number" min="1" max="5" name="max_survey" value="{max_survey}" style="width:4em"></label>
<label>质检 QA<select name="qa"><option value="">全部 all</option><option value="scored"{qs}>已评 scored</option><option value="unscored"{qu}>未评 unscored</option></select></label>
<button>查询 Search</button></form>"#,
        from = value("from"),
        to = value("to"),
        agent = value("agent"),
        queue = value("queue"),
        ticket = value("ticket"),
        caller = value("caller"),
        min_rings = value("min_rings"),
        max_survey = value("max_survey"),
        vt = selected("violation", "true"),
        vf = selected("violation", "false"),
        qs = selected("qa", "scored"),
        qu = selected("qa", "unscored"),
    );
    let _ = write!(
        body,
        r#"<p class="muted">{} 条 calls</p><table id="calls"><thead><tr><th>时间 Started</th><th>来电 Caller</th><th>队列 Queue</th><th>坐席 Agent</th><th>响铃 Rings</th><th>振铃 ms</th><th>结果 Outcome</th><th>挂机 Hang-up</th><th>通话 Talk</th><th>满意度 Survey</th></tr></thead><tbody>"#,
        calls.len()
    );
    for call in &calls {
        let late = call.three_ring_ok == Some(false);
        let _ = write!(
            body,
            r#"<tr><td><a class="call-link" href="/ui/calls/{id}">{started}</a></td><td>{caller}</td><td>{queue}</td><td>{agent}</td><td class="{cls}">{rings}</td><td>{ring_ms}</td><td>{outcome}</td><td>{side}</td><td>{talk}</td><td>{survey}</td></tr>"#,
            id = esc(&call.id),
            started = local_time(call.started_at, offset),
            caller = esc(&call.caller),
            queue = or_dash(call.queue.as_deref()),
            agent = or_dash(call.agent.as_deref()),
            cls = if late { "bad" } else { "" },
            rings = or_dash(call.rings),
            ring_ms = or_dash(call.caller_ring_ms),
            outcome = call.outcome.as_str(),
            side = or_dash(call.hangup_side.map(|s| s.as_str())),
            talk = or_dash(call.talk_ms.map(|t| format!("{}s", t / 1000))),
            survey = or_dash(call.survey_score),
        );
    }
    body.push_str("</tbody></table>");
    page("通话查询 Calls", &session, &body).into_response()
}

/// The call if the session may see it, else the page to answer with.
async fn call_for(
    state: &AppState,
    session: &PageSession,
    id: &str,
) -> Result<CallRecord, Response> {
    let call = match state.store.get_call(id).await {
        Ok(Some(call)) => call,
        Ok(None) => {
            return Err(error_page(
                session,
                StatusCode::NOT_FOUND,
                &format!("no call {id}"),
            ))
        }
        Err(e) => {
            tracing::error!(error = %e, "reading a call failed");
            return Err(error_page(
                session,
                StatusCode::INTERNAL_SERVER_ERROR,
                "store error",
            ));
        }
    };
    let caller = &session.caller;
    if !caller.may_see_call(call.agent.as_deref()) {
        return Err(error_page(
            session,
            StatusCode::FORBIDDEN,
            "坐席只能查看自己的通话 · agents see only their own calls",
        ));
    }
    Ok(call)
}

/// `GET /ui/calls/{id}`: everything QA needs about one call.
pub async fn call_page(
    State(state): State<AppState>,
    Extension(session): Extension<PageSession>,
    Path(id): Path<String>,
) -> Response {
    let call = match call_for(&state, &session, &id).await {
        Ok(call) => call,
        Err(page) => return page,
    };
    let offset = offset(&state);
    let analysis = match call
        .recording_path
        .as_ref()
        .and_then(|r| crate::http::recording::inside_root(&state.recordings, r))
    {
        Some(path) => tokio::task::spawn_blocking(move || Analysis::of_file(&path).ok())
            .await
            .ok()
            .flatten(),
        None => None,
    };
    let flags =
        crate::qa::flags::call_flags(&call, &state.qa, state.rings.target, analysis.as_ref());
    let scores = state.store.scores(&id).await.unwrap_or_default();
    let annotations = state.store.annotations(&id).await.unwrap_or_default();
    let rings = &state.rings;
    let ok_badge = match call.three_ring_ok {
        Some(true) => r#"<span class="ok">✓ 三声内 within target</span>"#.to_owned(),
        Some(false) => r#"<span class="bad">✗ 超过三声 late</span>"#.to_owned(),
        None => "—".to_owned(),
    };
    let mut body = format!(
        r#"<h1>通话 Call <code id="call-id">{id}</code></h1>
<section><table><tr><th>方向 Direction</th><td>{direction}</td><th>来电 Caller</th><td>{caller}</td><th>被叫 Callee</th><td>{callee}</td></tr>
<tr><th>队列 Queue</th><td>{queue}</td><th>坐席 Agent</th><td id="agent">{agent}</td><th>结果 Outcome</th><td>{outcome}</td></tr>
<tr><th>开始 Started</th><td>{started}</td><th>接听 Answered</th><td>{answered}</td><th>结束 Ended</th><td>{ended}</td></tr>
<tr><th>振铃 Caller ring</th><td>{ring_ms} ms</td><th>响铃声数 Rings</th><td id="rings">{rings_heard}</td><th>三声规则 Rule</th><td>{ok_badge}</td></tr>
<tr><th>挂机方 Hang-up</th><td>{side}</td><th>通话时长 Talk</th><td>{talk}</td><th>满意度 Survey</th><td id="survey">{survey}</td></tr></table></section>"#,
        id = esc(&call.id),
        direction = call.direction.as_str(),
        caller = esc(&call.caller),
        callee = esc(&call.callee),
        queue = or_dash(call.queue.as_deref()),
        agent = or_dash(call.agent.as_deref()),
        outcome = call.outcome.as_str(),
        started = local_time(call.started_at, offset),
        answered = call
            .answered_at
            .map_or("—".into(), |t| local_time(t, offset)),
        ended = call.ended_at.map_or("—".into(), |t| local_time(t, offset)),
        ring_ms = or_dash(call.caller_ring_ms),
        rings_heard = or_dash(call.rings),
        side = or_dash(call.hangup_side.map(|s| s.as_str())),
        talk = or_dash(call.talk_ms.map(|t| format!("{:.1} s", t as f64 / 1000.0))),
        survey = or_dash(call.survey_score),
    );
    // The recording: played over the Range endpoint (every playback is audit-logged).
    body.push_str("<section><h2>录音 Recording</h2>");
    match (&call.recording_path, &analysis) {
        (Some(_), Some(analysis)) => {
            let _ = write!(
                body,
                r#"<audio id="recording" controls preload="metadata" src="/api/calls/{id}/recording"></audio><p class="muted">时长 {secs:.1} s · 播放与下载均记入审计日志 · every playback is audit-logged</p><div id="waveform">{svg}</div>"#,
                id = esc(&call.id),
                secs = analysis.duration_ms() as f64 / 1000.0,
                svg = crate::qa::svg::waveform(analysis),
            );
        }
        (Some(_), None) => {
            body.push_str("<p>录音文件不可读 · the recording file cannot be read</p>")
        }
        (None, _) => body.push_str("<p>无录音 · not recorded</p>"),
    }
    body.push_str("</section>");
    let _ = write!(
        body,
        r#"<section><h2>振铃时间线 Ring timeline</h2><div id="timeline">{}</div></section>"#,
        crate::qa::svg::timeline(&call, rings.cadence_ms, rings.target, rings.limit)
    );
    // Flags, tickets.
    body.push_str(r#"<section><h2>自动质检标记 Flags</h2><div id="flags">"#);
    if flags.is_empty() {
        body.push_str("<p>无 · none</p>");
    }
    for flag in &flags {
        let at = flag
            .at_ms
            .map(|ms| {
                format!(
                    r##" <a href="#" data-at="{}">@{:.1}s</a>"##,
                    ms,
                    ms as f64 / 1000.0
                )
            })
            .unwrap_or_default();
        let _ = write!(
            body,
            r#"<span class="flag" data-code="{}">{}{}</span> <span class="muted">{}</span><br>"#,
            flag.code,
            esc(flag.label),
            at,
            esc(&flag.detail)
        );
    }
    body.push_str("</div></section><section><h2>关联工单 Tickets</h2>");
    if call.tickets.is_empty() {
        body.push_str("<p>无 · none</p>");
    }
    for ticket in &call.tickets {
        let _ = write!(
            body,
            r#"<a class="ticket" href="/api/tickets/{0}">{0}</a> "#,
            esc(ticket)
        );
    }
    body.push_str("</section>");
    body.push_str(&scores_section(&state, &session, &call, &scores));
    body.push_str(&annotations_section(&session, &call, &annotations));
    // Jump to a flag or annotation's moment.
    body.push_str(r#"<script>document.querySelectorAll('[data-at]').forEach(a=>a.addEventListener('click',e=>{e.preventDefault();const p=document.getElementById('recording');if(p){p.currentTime=a.dataset.at/1000;p.play();}}));</script>"#);
    page(&format!("通话 {}", call.id), &session, &body).into_response()
}

fn scores_section(
    state: &AppState,
    session: &PageSession,
    call: &CallRecord,
    scores: &[Score],
) -> String {
    let mut out = String::from(
        r#"<section><h2>质检评分 QA score</h2><table id="scores"><tr><th>版本 Version</th><th>总分 Total</th><th>评分人 By</th><th>时间 When</th><th>说明 Comment</th><th>更正原因 Reason</th></tr>"#,
    );
    for s in scores {
        let _ = write!(
            out,
            r#"<tr class="score"><td>{}</td><td class="total">{:.1}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            s.version,
            s.total,
            esc(&s.author),
            local_time(s.created_at, offset(state)),
            esc(&s.comment),
            or_dash(s.reason.as_deref())
        );
    }
    out.push_str("</table>");
    let may_score = matches!(
        session.caller.role,
        Role::Qa | Role::Supervisor | Role::Admin
    );
    if let (true, Some(form)) = (may_score, state.qa.form(None)) {
        let _ = write!(
            out,
            r#"<form id="score-form" method="post" action="/ui/calls/{id}/score"><input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="form" value="{form}"><p>{title}</p>"#,
            id = esc(&call.id),
            csrf = esc(&session.csrf),
            form = esc(&form.name),
            title = esc(&form.title),
        );
        for item in &form.items {
            let _ = write!(
                out,
                r#"<label><input type="checkbox" name="item.{key}" value="1"> {label} <span class="muted">({weight})</span></label><br>"#,
                key = esc(&item.key),
                label = esc(&item.label),
                weight = item.weight
            );
        }
        out.push_str(r#"<label>说明 Comment <input name="comment" size="60"></label><br>"#);
        if !scores.is_empty() {
            out.push_str(r#"<label>更正原因 Reason for the correction <input name="reason" size="50" required></label><br>"#);
        }
        out.push_str(r#"<button id="submit-score">提交评分 Save score</button></form>"#);
    }
    out.push_str("</section>");
    out
}

fn annotations_section(session: &PageSession, call: &CallRecord, notes: &[Annotation]) -> String {
    let mut out = String::from(r#"<section><h2>标注 Annotations</h2><ul id="annotations">"#);
    for a in notes {
        let _ = write!(
            out,
            r##"<li><a href="#" data-at="{}">@{:.1}s</a> <strong>{}</strong> {} <span class="muted">— {}</span></li>"##,
            a.at_ms,
            a.at_ms as f64 / 1000.0,
            esc(&a.tag),
            esc(&a.comment),
            esc(&a.author)
        );
    }
    out.push_str("</ul>");
    if matches!(
        session.caller.role,
        Role::Qa | Role::Supervisor | Role::Admin
    ) {
        let _ = write!(
            out,
            r#"<form method="post" action="/ui/calls/{id}/annotate"><input type="hidden" name="csrf" value="{csrf}"><label>位置(秒) At (s) <input name="at_s" type="number" step="0.1" min="0" required style="width:6em"></label> <label>标签 Tag <input name="tag" size="10"></label> <label>说明 Comment <input name="comment" size="40"></label> <button>添加 Add</button></form>"#,
            id = esc(&call.id),
            csrf = esc(&session.csrf)
        );
    }
    out.push_str("</section>");
    out
}

fn csrf_ok(session: &PageSession, form: &HashMap<String, String>) -> bool {
    let sent = form.get("csrf").map(String::as_bytes).unwrap_or_default();
    crate::http::auth::constant_time_eq(sent, session.csrf.as_bytes())
}

/// Why a QA form post on call `id` is refused (bad CSRF token, a role that may not
/// score or annotate, a call the session may not see), as the page to answer with.
async fn qa_form_refused(
    state: &AppState,
    session: &PageSession,
    form: &HashMap<String, String>,
    id: &str,
) -> Option<Response> {
    if !csrf_ok(session, form) {
        return Some(error_page(
            session,
            StatusCode::FORBIDDEN,
            "CSRF token missing or wrong",
        ));
    }
    if !matches!(
        session.caller.role,
        Role::Qa | Role::Supervisor | Role::Admin
    ) {
        return Some(error_page(
            session,
            StatusCode::FORBIDDEN,
            "评分与标注需要质检或主管角色 · scoring and annotating need the qa or supervisor role",
        ));
    }
    call_for(state, session, id).await.err()
}

/// `POST /ui/calls/{id}/score` (the form on the call page).
pub async fn post_score(
    State(state): State<AppState>,
    Extension(session): Extension<PageSession>,
    ip: crate::http::auth::ClientIp,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Some(refusal) = qa_form_refused(&state, &session, &form, &id).await {
        return refusal;
    }
    let Some(qa_form) = state.qa.form(form.get("form").map(String::as_str)) else {
        return error_page(&session, StatusCode::BAD_REQUEST, "unknown form");
    };
    // Unchecked boxes are not sent: every item of the form is answered, false if absent.
    let input = ScoreInput {
        form: Some(qa_form.name.clone()),
        items: qa_form
            .items
            .iter()
            .map(|i| (i.key.clone(), form.contains_key(&format!("item.{}", i.key))))
            .collect(),
        comment: form.get("comment").cloned().unwrap_or_default(),
        reason: form.get("reason").cloned().filter(|r| !r.trim().is_empty()),
    };
    let (items, total) = match forms::score(qa_form, &input) {
        Ok(scored) => scored,
        Err(problems) => {
            return error_page(&session, StatusCode::BAD_REQUEST, &problems.join("; "))
        }
    };
    let score = Score {
        id: crate::http::qa::new_id(),
        call_id: id.clone(),
        version: 0,
        form: qa_form.name.clone(),
        items,
        total,
        comment: input.comment.trim().to_owned(),
        reason: input.reason,
        supersedes: None,
        author: session.caller.name.clone(),
        created_at: chrono::Utc::now().timestamp_millis(),
    };
    match state.store.add_score(score).await {
        Ok(saved) => {
            let entry = crate::http::users::entry(&session.caller, ip, "qa.score")
                .target(id.clone())
                .detail(format!(
                    "version {} total {:.1}",
                    saved.version, saved.total
                ));
            crate::http::users::record(&state, entry).await;
            Redirect::to(&format!("/ui/calls/{id}#scores")).into_response()
        }
        Err(ScoreRefused::NeedsReason { .. }) => error_page(
            &session,
            StatusCode::CONFLICT,
            "已有评分:更正需要填写原因 · this call is scored; a correction needs a reason",
        ),
        Err(ScoreRefused::Store(e)) => {
            tracing::error!(error = %e, "saving a score failed");
            error_page(&session, StatusCode::INTERNAL_SERVER_ERROR, "store error")
        }
    }
}

/// `POST /ui/calls/{id}/annotate`.
pub async fn post_annotation(
    State(state): State<AppState>,
    Extension(session): Extension<PageSession>,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Some(refusal) = qa_form_refused(&state, &session, &form, &id).await {
        return refusal;
    }
    let Some(at_s) = form
        .get("at_s")
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| *s >= 0.0)
    else {
        return error_page(
            &session,
            StatusCode::BAD_REQUEST,
            "at: seconds from the start",
        );
    };
    let annotation = Annotation {
        id: crate::http::qa::new_id(),
        call_id: id.clone(),
        at_ms: (at_s * 1000.0) as i64,
        tag: form
            .get("tag")
            .map(|t| t.trim().to_owned())
            .unwrap_or_default(),
        comment: form
            .get("comment")
            .map(|t| t.trim().to_owned())
            .unwrap_or_default(),
        author: session.caller.name.clone(),
        created_at: chrono::Utc::now().timestamp_millis(),
    };
    match state.store.add_annotation(&annotation).await {
        Ok(()) => Redirect::to(&format!("/ui/calls/{id}#annotations")).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "saving an annotation failed");
            error_page(&session, StatusCode::INTERNAL_SERVER_ERROR, "store error")
        }
    }
}
