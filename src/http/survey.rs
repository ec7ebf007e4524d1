//! `POST /api/calls/{id}/survey`: the agent's desktop hands the caller to the
//! satisfaction survey (the agent's leg is ended; the caller hears the survey prompt).

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;

use super::{ApiCaller, ApiError, AppState};
use crate::call::{Control, SurveyRefused};

pub async fn start(
    State(state): State<AppState>,
    Extension(caller): Extension<ApiCaller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    super::calls::check_own_call(&state, &caller, &id).await?;
    let call_id = id.clone();
    let answer =
        super::ask_control(&state, |reply| Control::StartSurvey { call_id, reply }).await?;
    match answer {
        Ok(()) => Ok(Json(json!({ "id": id, "survey": "started" })).into_response()),
        Err(SurveyRefused::NoSuchCall) => Err(ApiError::NotFound {
            what: format!("connected call {id}"),
        }),
        Err(e @ SurveyRefused::Unavailable) => Err(ApiError::Conflict {
            message: e.to_string(),
        }),
    }
}
