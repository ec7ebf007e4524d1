//! `POST /api/calls/{id}/survey`: the agent's desktop hands the caller to the
//! satisfaction survey (the agent's leg is ended; the caller hears the survey prompt).

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::{ApiError, AppState};
use crate::call::{Control, SurveyRefused};

pub async fn start(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let unavailable = || ApiError::Unavailable {
        message: "call control is not running".into(),
    };
    let control = state.control.as_ref().ok_or_else(unavailable)?;
    let (reply, answer) = tokio::sync::oneshot::channel();
    control
        .send(Control::StartSurvey {
            call_id: id.clone(),
            reply,
        })
        .await
        .map_err(|_| unavailable())?;
    match answer.await.map_err(|_| unavailable())? {
        Ok(()) => Ok(Json(json!({ "id": id, "survey": "started" })).into_response()),
        Err(SurveyRefused::NoSuchCall) => Err(ApiError::NotFound {
            what: format!("connected call {id}"),
        }),
        Err(e @ SurveyRefused::Unavailable) => Err(ApiError::Conflict {
            message: e.to_string(),
        }),
    }
}
