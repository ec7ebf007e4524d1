//! `/api/reports`: supervisor statistics (JSON or CSV), SVG charts and the shift
//! handover report (HTML, JSON or CSV), for the supervisor and qa roles (and admin).
//! The figures and their definitions are in [`crate::reports`].
//!
//! ```text
//! GET /api/reports/summary?from&to&group=queue|agent|hour|day|none[&format=json|csv]
//! GET /api/reports/charts/rings.svg?from&to[&queue][&agent]
//! GET /api/reports/charts/compliance.svg?from&to[&by=hour|day][&queue]
//! GET /api/reports/shift?from&to[&format=html|json|csv[&table=NAME]]
//! ```
//! `from`/`to`: RFC 3339 or epoch ms; default the last 24 hours (`to` now, `from` 24 h
//! before `to`); at most 400 days. Reports hold customer data: never cached.

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::calls::{bad_param, parse_time};
use super::{ApiCaller, ApiError, AppState};
use crate::config::Role;
use crate::reports::charts::{self, CompliancePoint};
use crate::reports::csv::{summary_table, Table};
use crate::reports::shift;
use crate::reports::{Aggregator, Group, Range, RingCounts};

/// The query string as name → value; empty values count as absent; names outside
/// `known` are refused (a misspelt parameter must not silently widen a report).
fn params(
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    known: &[&str],
) -> Result<HashMap<String, String>, ApiError> {
    let Query(params) = query.map_err(|e| bad_param("query", e.body_text()))?;
    let mut out = HashMap::new();
    for (name, value) in params {
        if !known.contains(&name.as_str()) {
            return Err(bad_param(
                &name,
                format!("unknown parameter (known: {})", known.join(", ")),
            ));
        }
        if !value.is_empty() {
            out.insert(name, value);
        }
    }
    Ok(out)
}

fn range(params: &HashMap<String, String>) -> Result<Range, ApiError> {
    let time = |name: &str| {
        params
            .get(name)
            .map(|value| parse_time(name, value))
            .transpose()
    };
    let (from, to) = (time("from")?, time("to")?);
    Range::resolve(from, to, chrono::Utc::now().timestamp_millis())
        .map_err(|(name, message)| bad_param(name, message))
}

/// The value of `name`, one of `allowed` (the first when absent).
fn choice<'a>(
    params: &HashMap<String, String>,
    name: &str,
    allowed: &[&'a str],
) -> Result<&'a str, ApiError> {
    match params.get(name) {
        None => Ok(allowed[0]),
        Some(value) => allowed
            .iter()
            .find(|a| **a == value.as_str())
            .copied()
            .ok_or_else(|| {
                bad_param(
                    name,
                    format!("{value:?}: expected one of {}", allowed.join(", ")),
                )
            }),
    }
}

fn allowed(caller: &ApiCaller) -> Result<(), ApiError> {
    caller.require(&[Role::Supervisor, Role::Qa])
}

/// A body with its content type, never cached.
fn typed(body: String, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A CSV download named `filename` (ASCII).
fn csv_download(table: &Table, filename: &str) -> Response {
    let mut response = typed(table.to_csv(), "text/csv; charset=utf-8; header=present");
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

fn json_no_store<T: serde::Serialize>(value: &T) -> Response {
    let mut response = Json(value).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `YYYYMMDDTHHMM` local, for file names.
fn stamp(state: &AppState, ms: i64) -> String {
    state.reports.local(ms).format("%Y%m%dT%H%M").to_string()
}

fn range_text(state: &AppState, range: Range) -> String {
    format!(
        "{} – {} ({})",
        state.reports.display(range.from),
        state.reports.display(range.to),
        state.reports.offset
    )
}

pub async fn summary(
    State(state): State<AppState>,
    Extension(caller): Extension<ApiCaller>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    allowed(&caller)?;
    let params = params(query, &["from", "to", "group", "format"])?;
    let range = range(&params)?;
    // `none` first: the default.
    let group = choice(&params, "group", &["none", "queue", "agent", "hour", "day"])?;
    let group = Group::parse(group).unwrap_or(Group::None);
    let format = choice(&params, "format", &["json", "csv"])?;
    let settings = &state.reports;
    let mut aggregator = Aggregator::new(settings, group, range);
    state
        .store
        .for_each_call_between(range.from, range.to, |call| aggregator.add(&call))
        .await?;
    let summary = aggregator.summary();
    if format == "csv" {
        let filename = format!(
            "threering-summary-{}-{}-{}.csv",
            group.as_str(),
            stamp(&state, range.from),
            stamp(&state, range.to)
        );
        return Ok(csv_download(&summary_table(&summary), &filename));
    }
    Ok(json_no_store(&summary))
}

pub async fn rings_chart(
    State(state): State<AppState>,
    Extension(caller): Extension<ApiCaller>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    allowed(&caller)?;
    let params = params(query, &["from", "to", "queue", "agent"])?;
    let range = range(&params)?;
    let mut counts = RingCounts::new(
        &state.reports,
        params.get("queue").cloned(),
        params.get("agent").cloned(),
    );
    state
        .store
        .for_each_call_between(range.from, range.to, |call| counts.add(&call))
        .await?;
    let svg = charts::rings_histogram(&counts, &range_text(&state, range));
    Ok(typed(svg, "image/svg+xml; charset=utf-8"))
}

pub async fn compliance_chart(
    State(state): State<AppState>,
    Extension(caller): Extension<ApiCaller>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    allowed(&caller)?;
    let params = params(query, &["from", "to", "by", "queue"])?;
    let range = range(&params)?;
    let by_day = choice(&params, "by", &["hour", "day"])? == "day";
    let group = if by_day { Group::Day } else { Group::Hour };
    let queue = params.get("queue");
    let mut aggregator = Aggregator::new(&state.reports, group, range);
    state
        .store
        .for_each_call_between(range.from, range.to, |call| {
            if queue.is_none_or(|q| call.queue.as_ref() == Some(q)) {
                aggregator.add(&call);
            }
        })
        .await?;
    let (rows, _) = aggregator.finish();
    let points: Vec<CompliancePoint> = rows.iter().map(CompliancePoint::from_stats).collect();
    let mut text = range_text(&state, range);
    if let Some(q) = queue {
        text.push_str(&format!(" · 队列 queue {q}"));
    }
    let svg = charts::compliance_chart(&points, by_day, &text);
    Ok(typed(svg, "image/svg+xml; charset=utf-8"))
}

pub async fn shift(
    State(state): State<AppState>,
    Extension(caller): Extension<ApiCaller>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    allowed(&caller)?;
    let params = params(query, &["from", "to", "format", "table"])?;
    let range = range(&params)?;
    let format = choice(&params, "format", &["html", "json", "csv"])?;
    let table = match (format, params.get("table")) {
        // Without a name, the key figures.
        ("csv", _) => Some(choice(&params, "table", &shift::TABLES)?),
        (_, Some(_)) => return Err(bad_param("table", "only with format=csv")),
        (_, None) => None,
    };
    let now = chrono::Utc::now().timestamp_millis();
    let report = shift::build(&state.store, &state.reports, range, now).await?;
    match (format, table) {
        ("json", _) => Ok(json_no_store(&report)),
        ("csv", Some(name)) => {
            let table = report.table(name).unwrap_or_default();
            let filename = format!(
                "threering-shift-{name}-{}-{}.csv",
                stamp(&state, range.from),
                stamp(&state, range.to)
            );
            Ok(csv_download(&table, &filename))
        }
        _ => Ok(typed(
            shift::render_html(&report),
            "text/html; charset=utf-8",
        )),
    }
}
