//! Supervisor pages: the dashboard (answer-time compliance per queue, agent and hour,
//! with charts and CSV downloads) and the shift handover report.

use std::collections::HashMap;
use std::fmt::Write as _;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::Extension;

use super::{page, PageSession};
use crate::config::Role;
use crate::http::AppState;
use crate::qa::svg::esc;
use crate::reports::charts::{self, CompliancePoint};
use crate::reports::{num_text, Aggregator, Group, Range, RingCounts, Stats};

/// The 403 page for an agent; None for the roles that may see supervisor pages.
pub(super) fn refused(session: &PageSession) -> Option<Response> {
    match session.caller.role {
        Role::Supervisor | Role::Qa | Role::Admin => None,
        Role::Agent => Some((
            StatusCode::FORBIDDEN,
            page(
                "403",
                session,
                "<h1>403</h1><p>看板需要主管或质检角色 · the dashboard needs the supervisor or qa role</p>",
            ),
        )
            .into_response()),
    }
}

/// The date range of the page: `from`/`to` as local dates (inclusive), default today.
fn range_of(state: &AppState, params: &HashMap<String, String>) -> (Range, String, String) {
    let offset = state.reports.offset;
    let today = chrono::Utc::now().with_timezone(&offset).date_naive();
    let date = |k: &str| {
        params
            .get(k)
            .and_then(|v| chrono::NaiveDate::parse_from_str(v.trim(), "%Y-%m-%d").ok())
    };
    let from = date("from").unwrap_or(today);
    let to = date("to").unwrap_or(today).max(from);
    let ms = |d: chrono::NaiveDate| {
        d.and_hms_opt(0, 0, 0)
            .and_then(|t| t.and_local_timezone(offset).single())
            .map_or(0, |t| t.timestamp_millis())
    };
    let end = to.succ_opt().unwrap_or(to);
    let range = Range {
        from: ms(from),
        to: ms(end).max(ms(from) + 1),
    };
    (range, from.to_string(), to.to_string())
}

fn stats_table(id: &str, first: &str, rows: &[Stats], totals: Option<&Stats>) -> String {
    let mut out = format!(
        r#"<table id="{id}"><thead><tr><th>{first}</th><th>来电 Offered</th><th>接听 Answered</th><th>放弃 Abandoned</th><th>三声内 % within</th><th>超上限 % over</th><th>平均响铃 Avg rings</th><th>P90 响铃</th><th>ASA ms</th><th>服务水平 SL %</th><th>未接 RNA</th><th>坐席先挂 Agent hang-ups</th><th>平均通话 Avg talk s</th><th>满意度 Survey</th></tr></thead><tbody>"#
    );
    let row = |s: &Stats, class: &str| {
        let key = s.key.clone().unwrap_or_else(|| "—".into());
        let label = match (&s.name, class) {
            (_, "total") => "合计 Total".to_owned(),
            (Some(name), _) => format!("{key} {name}"),
            (None, _) => key.clone(),
        };
        format!(
            r#"<tr class="{class}" data-agent="{key_attr}"><td>{label}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class="avg-rings">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            s.offered,
            s.answered,
            s.abandoned,
            num_text(s.pct_within_target),
            num_text(s.pct_over_limit),
            num_text(s.avg_rings),
            s.p90_rings.map_or("—".into(), |r| r.to_string()),
            s.asa_ms.map_or("—".into(), |r| r.to_string()),
            num_text(s.service_level),
            s.ring_no_answers,
            s.agent_hangups,
            s.avg_talk_ms
                .map_or("—".into(), |t| format!("{:.1}", t as f64 / 1000.0)),
            num_text(s.survey_avg),
            key_attr = esc(&key),
            label = esc(&label),
        )
    };
    for s in rows {
        out.push_str(&row(s, "row"));
    }
    if let Some(t) = totals {
        out.push_str(&row(t, "total"));
    }
    out.push_str("</tbody></table>");
    out
}

/// `GET /ui/dashboard?from=YYYY-MM-DD&to=YYYY-MM-DD`.
pub async fn dashboard(
    State(state): State<AppState>,
    Extension(session): Extension<PageSession>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    if let Some(refusal) = refused(&session) {
        return refusal;
    }
    let (range, from_text, to_text) = range_of(&state, &params);
    let settings = &state.reports;
    let mut by_queue = Aggregator::new(settings, Group::Queue, range);
    let mut by_agent = Aggregator::new(settings, Group::Agent, range);
    let mut by_hour = Aggregator::new(settings, Group::Hour, range);
    let mut by_day = Aggregator::new(settings, Group::Day, range);
    let mut rings = RingCounts::new(settings, None, None);
    let read = state
        .store
        .for_each_call_between(range.from, range.to, |call| {
            by_queue.add(&call);
            by_agent.add(&call);
            by_hour.add(&call);
            by_day.add(&call);
            rings.add(&call);
        })
        .await;
    if let Err(e) = read {
        tracing::error!(error = %e, "dashboard: reading calls failed");
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Html("store error".to_owned()),
        )
            .into_response();
    }
    let (queues, totals) = by_queue.finish();
    let (agents, _) = by_agent.finish();
    let (hours, _) = by_hour.finish();
    let (days, _) = by_day.finish();
    let points: Vec<CompliancePoint> = hours.iter().map(CompliancePoint::from_stats).collect();
    let range_text = format!("{from_text} – {to_text}");
    let csv = |group: &str| {
        format!(
            "/api/reports/summary?group={group}&format=csv&from={}&to={}",
            range.from, range.to
        )
    };
    let mut body = format!(
        r#"<h1>主管看板 · Supervisor dashboard</h1>
<form class="filters" method="get" action="/ui/dashboard"><label>从 From<input type="date" name="from" value="{from_text}"></label><label>到 To<input type="date" name="to" value="{to_text}"></label><button>查看 Show</button></form>
<p class="muted">三声规则:{target} 声内接听,最多 {limit} 声;每声 {cadence} ms · target {target} rings, limit {limit}, cadence {cadence} ms</p>"#,
        target = settings.target,
        limit = settings.limit,
        cadence = settings.cadence_ms,
    );
    let _ = write!(
        body,
        r#"<section><h2>队列 Queues <a class="muted" href="{}">CSV</a></h2>{}</section>"#,
        esc(&csv("queue")),
        stats_table("queues", "队列 Queue", &queues, Some(&totals))
    );
    let _ = write!(
        body,
        r#"<section><h2>坐席 Agents <a class="muted" href="{}">CSV</a></h2>{}</section>"#,
        esc(&csv("agent")),
        stats_table("agents", "坐席 Agent", &agents, None)
    );
    let _ = write!(
        body,
        r#"<section><h2>图表 Charts</h2><div id="rings-chart">{}</div><div id="compliance-chart">{}</div></section>"#,
        charts::rings_histogram(&rings, &range_text),
        charts::compliance_chart(&points, false, &range_text)
    );
    let _ = write!(
        body,
        r#"<section><h2>按小时 By hour <a class="muted" href="{}">CSV</a></h2>{}</section>"#,
        esc(&csv("hour")),
        stats_table("hours", "小时 Hour", &hours, None)
    );
    if days.len() > 1 {
        let _ = write!(
            body,
            r#"<section><h2>按日 By day <a class="muted" href="{}">CSV</a></h2>{}</section>"#,
            esc(&csv("day")),
            stats_table("days", "日期 Day", &days, None)
        );
    }
    page("看板 Dashboard", &session, &body).into_response()
}

/// `GET /ui/shift?from&to` (RFC 3339, epoch ms; default the last 24 hours): the
/// handover report as its own printable page.
pub async fn shift(
    State(state): State<AppState>,
    Extension(session): Extension<PageSession>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    if let Some(refusal) = refused(&session) {
        return refusal;
    }
    let offset = state.reports.offset;
    let time = |k: &str| {
        params
            .get(k)
            .and_then(|v| crate::reports::parse_cli_time(v.trim(), offset))
    };
    let now = chrono::Utc::now().timestamp_millis();
    let range = match Range::resolve(time("from"), time("to"), now) {
        Ok(range) => range,
        Err((key, message)) => {
            return (
                StatusCode::BAD_REQUEST,
                page("400", &session, &format!("<p>{key}: {}</p>", esc(&message))),
            )
                .into_response()
        }
    };
    match crate::reports::shift::build(&state.store, &state.reports, range, now).await {
        Ok(report) => Html(crate::reports::shift::render_html(&report)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "shift report failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html("store error".to_owned()),
            )
                .into_response()
        }
    }
}
