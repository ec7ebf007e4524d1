//! QA over the API: a call's automatic flags, scores (immutable versions) and
//! annotations, the scoring forms, and the call page's pictures.
//!
//! ```text
//! GET  /api/qa/forms                  {"forms":[...]}
//! GET  /api/calls/{id}/qa             {"flags","scores","annotations"}
//! GET  /api/calls/{id}/scores         {"scores":[...]} oldest first
//! POST /api/calls/{id}/scores         {"form"?, "items":{key: bool}, "comment", "reason"?} → 201
//! POST /api/calls/{id}/annotations    {"at_ms", "tag", "comment"} → 201
//! GET  /api/calls/{id}/waveform.svg   two channel lanes drawn from the WAV
//! GET  /api/calls/{id}/timeline.svg   ring bursts, attempts, answer, hang-up
//! ```
//! Scoring and annotating need the qa or supervisor role; an agent sees only its own
//! calls.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;

use super::error::body;
use super::{ApiCaller, ApiError, AppState};
use crate::call::record::CallRecord;
use crate::config::Role;
use crate::qa::analysis::Analysis;
use crate::qa::forms::{self, Annotation, AnnotationInput, Score, ScoreInput};
use crate::store::ScoreRefused;

/// The call, if it exists and the caller may see it.
async fn visible_call(
    state: &AppState,
    caller: &ApiCaller,
    id: &str,
) -> Result<CallRecord, ApiError> {
    let call = state
        .store
        .get_call(id)
        .await?
        .ok_or_else(|| ApiError::NotFound {
            what: format!("call {id:?}"),
        })?;
    caller.check_call(id, call.agent.as_deref())?;
    Ok(call)
}

/// The recording's levels (off the async runtime), when the call has a readable one.
async fn analysis_of(state: &AppState, call: &CallRecord) -> Option<Analysis> {
    let relative = call.recording_path.as_ref()?;
    let path = super::recording::inside_root(&state.recordings, relative)?;
    tokio::task::spawn_blocking(move || Analysis::of_file(&path).ok())
        .await
        .ok()
        .flatten()
}

pub async fn forms(State(state): State<AppState>) -> Response {
    Json(json!({ "forms": state.qa.forms })).into_response()
}

pub async fn overview(
    State(state): State<AppState>,
    Extension(caller): Extension<ApiCaller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let call = visible_call(&state, &caller, &id).await?;
    let analysis = analysis_of(&state, &call).await;
    let flags =
        crate::qa::flags::call_flags(&call, &state.qa, state.rings.target, analysis.as_ref());
    let scores = state.store.scores(&id).await?;
    let annotations = state.store.annotations(&id).await?;
    Ok(Json(json!({
        "call_id": id,
        "flags": flags,
        "scores": scores,
        "latest_score": scores.last(),
        "annotations": annotations,
        "recording_ms": analysis.as_ref().map(Analysis::duration_ms),
    }))
    .into_response())
}

pub async fn scores(
    State(state): State<AppState>,
    Extension(caller): Extension<ApiCaller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    visible_call(&state, &caller, &id).await?;
    Ok(Json(json!({ "call_id": id, "scores": state.store.scores(&id).await? })).into_response())
}

/// A random id for a score or an annotation.
pub(super) fn new_id() -> String {
    hex::encode(rand::random::<[u8; 8]>())
}

pub async fn add_score(
    State(state): State<AppState>,
    Extension(caller): Extension<ApiCaller>,
    ip: super::auth::ClientIp,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Qa, Role::Supervisor])?;
    visible_call(&state, &caller, &id).await?;
    let input: ScoreInput = body(&bytes)?;
    let form = state
        .qa
        .form(input.form.as_deref())
        .ok_or_else(|| ApiError::Invalid {
            problems: vec![format!(
                "form: {:?} is not a configured form ({})",
                input.form.as_deref().unwrap_or_default(),
                state
                    .qa
                    .forms
                    .iter()
                    .map(|f| f.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )],
        })?;
    let (items, total) =
        forms::score(form, &input).map_err(|problems| ApiError::Invalid { problems })?;
    let score = Score {
        id: new_id(),
        call_id: id.clone(),
        version: 0,
        form: form.name.clone(),
        items,
        total,
        comment: input.comment.trim().to_owned(),
        reason: input.reason.clone().filter(|r| !r.trim().is_empty()),
        supersedes: None,
        author: caller.name.clone(),
        created_at: chrono::Utc::now().timestamp_millis(),
    };
    match state.store.add_score(score).await {
        Ok(saved) => {
            tracing::info!(call = %id, version = saved.version, total = saved.total, by = %caller.name, "QA score saved");
            let entry = super::users::entry(&caller, ip, "qa.score")
                .target(id.clone())
                .detail(format!(
                    "version {} total {:.1}",
                    saved.version, saved.total
                ));
            super::users::record(&state, entry).await;
            Ok((StatusCode::CREATED, Json(saved)).into_response())
        }
        Err(e @ ScoreRefused::NeedsReason { .. }) => Err(ApiError::Conflict {
            message: e.to_string(),
        }),
        Err(ScoreRefused::Store(e)) => Err(e.into()),
    }
}

pub async fn add_annotation(
    State(state): State<AppState>,
    Extension(caller): Extension<ApiCaller>,
    ip: super::auth::ClientIp,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Qa, Role::Supervisor])?;
    let call = visible_call(&state, &caller, &id).await?;
    let input: AnnotationInput = body(&bytes)?;
    let mut problems = Vec::new();
    let length = call
        .recording
        .duration_ms
        .or(call.talk_ms)
        .unwrap_or(i64::MAX);
    if input.at_ms < 0 || input.at_ms > length {
        problems.push(format!(
            "at_ms: {} is outside the recording (0-{length})",
            input.at_ms
        ));
    }
    if input.tag.trim().is_empty() && input.comment.trim().is_empty() {
        problems.push("give a tag or a comment".into());
    }
    if !problems.is_empty() {
        return Err(ApiError::Invalid { problems });
    }
    let annotation = Annotation {
        id: new_id(),
        call_id: id,
        at_ms: input.at_ms,
        tag: input.tag.trim().to_owned(),
        comment: input.comment.trim().to_owned(),
        author: caller.name.clone(),
        created_at: chrono::Utc::now().timestamp_millis(),
    };
    state.store.add_annotation(&annotation).await?;
    let entry = super::users::entry(&caller, ip, "qa.annotate")
        .target(annotation.call_id.clone())
        .detail(format!("at {} ms", annotation.at_ms));
    super::users::record(&state, entry).await;
    Ok((StatusCode::CREATED, Json(annotation)).into_response())
}

fn svg(body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml; charset=utf-8"),
            (header::CACHE_CONTROL, "private, max-age=60"),
        ],
        body,
    )
        .into_response()
}

pub async fn waveform(
    State(state): State<AppState>,
    Extension(caller): Extension<ApiCaller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let call = visible_call(&state, &caller, &id).await?;
    let analysis = analysis_of(&state, &call)
        .await
        .ok_or_else(|| ApiError::NotFound {
            what: format!("recording of call {id}"),
        })?;
    Ok(svg(crate::qa::svg::waveform(&analysis)))
}

pub async fn timeline(
    State(state): State<AppState>,
    Extension(caller): Extension<ApiCaller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let call = visible_call(&state, &caller, &id).await?;
    let rings = &state.rings;
    Ok(svg(crate::qa::svg::timeline(
        &call,
        rings.cadence_ms,
        rings.target,
        rings.limit,
    )))
}
