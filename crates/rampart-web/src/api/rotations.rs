//! Credential rotation of accounts (issue 17): history and settings, and rotate now. The state
//! machine is `rampart-rotate`'s; nothing here ever holds a secret.

use super::Caller_;
use crate::WebState;
use crate::error::{ApiError, ApiResult, Path};
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use rampart_core::AccountRef;
use rampart_rotate::RotateError;
use rampart_store::RotationState;
use serde_json::{Value, json};

/// An account's rotation settings and its rotations, newest first.
pub async fn account_rotations(
    State(state): State<WebState>,
    Path(account): Path<String>,
) -> ApiResult<Json<Value>> {
    let account = AccountRef::parse(&account)?;
    let settings = state.store.rotation_settings(&account).await?;
    let rotations = state.store.rotation_history(&account).await?;
    Ok(Json(
        json!({ "settings": settings, "rotations": rotations }),
    ))
}

/// Rotates the account now (or resumes its unfinished rotation) and answers with the outcome:
/// 200 when committed, 409 when it did not commit (the reason says what was kept).
pub async fn account_rotate(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(account): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let account = AccountRef::parse(&account)?;
    // A missing account is 404 before anything else.
    state.store.rotation_settings(&account).await?;
    let Some(rotator) = &state.rotator else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "this listener cannot rotate credentials",
        ));
    };
    match rotator.acting_for(caller.actor()).rotate(&account).await {
        Ok(outcome) if outcome.state == RotationState::Committed => {
            Ok((StatusCode::OK, Json(json!(outcome))))
        }
        Ok(outcome) => Ok((StatusCode::CONFLICT, Json(json!(outcome)))),
        Err(RotateError::Store(err)) => Err(err.into()),
        Err(err @ (RotateError::Busy { .. } | RotateError::Unsupported(_))) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            err.to_string(),
        )),
        Err(err @ RotateError::Random(_)) => {
            tracing::error!(error = %err, "rotation failed");
            Err(ApiError::internal())
        }
    }
}
