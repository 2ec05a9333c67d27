//! Recording download and verification, for sessions the caller may see.

use crate::WebState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Path};
use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rampart_core::audit::AuditEvent;
use serde_json::{Value, json};
use std::path::PathBuf;

use super::Caller_;
use super::sessions::visible_session;

/// The largest recording the API hands out in one response.
const MAX_RECORDING_BYTES: u64 = 512 * 1024 * 1024;

fn audit_key(state: &WebState) -> ApiResult<rampart_audit::PublicKey> {
    let text = rampart_store::node_keys::public_key_of(&state.store.data_dir().audit_key_path())
        .map_err(ApiError::from)?;
    rampart_audit::public_key_from_openssh(&text).map_err(|err| {
        tracing::error!(error = %err, "the audit key is unreadable");
        ApiError::internal()
    })
}

/// The session `id` if the caller may see it and it has a recording, with the recordings'
/// directory.
async fn recorded_session(
    state: &WebState,
    caller: &Caller,
    id: &str,
) -> ApiResult<(rampart_core::Session, PathBuf)> {
    let session = visible_session(state, caller, id).await?;
    let dir = state.store.data_dir().recordings_dir();
    if !rampart_audit::has_recording(&dir, session.id) {
        return Err(ApiError::not_found(format!(
            "session {} has no recording",
            session.id
        )));
    }
    Ok((session, dir))
}

pub async fn recording_get(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let (session, dir) = recorded_session(&state, &caller, &id).await?;
    let unreadable = |err: std::io::Error| {
        tracing::error!(error = %err, "cannot read a recording");
        ApiError::internal()
    };
    // A command's raw streams are merged into the cast: count them too (escaped, they grow).
    // A failed look is an error, never "size 0" under the cap; only a missing raw file is 0.
    let mut size = 0u64;
    for (path, required) in [
        (rampart_audit::recording::cast_path(&dir, session.id), true),
        (rampart_audit::recording::raw_path(&dir, session.id), false),
    ] {
        match tokio::fs::metadata(&path).await {
            Ok(meta) => size = size.saturating_add(meta.len()),
            Err(err) if !required && err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(unreadable(err)),
        }
    }
    if size > MAX_RECORDING_BYTES {
        return Err(ApiError::bad_request(
            "the recording is too large to download here: use rampart recording export",
        ));
    }
    // Only the recording the hash chain anchors for the session goes out, verified, as replay
    // and export do: an edited recording, or another session's validly sealed one put in its
    // place, is refused. The chain decides whether the session has ended (the sessions table
    // is only a cache); a recording still being written has no seal yet and goes out marked so.
    let chain = state.store.chain_recording(session.id).await?;
    let unsealed = matches!(chain, rampart_core::audit::ChainRecording::Unfinished);
    if !unsealed {
        let key = audit_key(&state)?;
        let (checked_dir, id) = (dir.clone(), session.id);
        let checked = tokio::task::spawn_blocking(move || {
            rampart_audit::verify_anchored_recording(&checked_dir, id, &key, &chain)
        })
        .await
        .map_err(|err| {
            tracing::error!(error = %err, "the recording check stopped");
            ApiError::internal()
        })?;
        if let Err(problem) = checked {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "recording_not_verified",
                format!(
                    "the recording does not verify: {problem} (rampart audit verify names \
                     what was found)"
                ),
            ));
        }
    }
    // Reading evidence is itself evidence (E5), recorded before anything is sent.
    let event = AuditEvent::RecordingExported {
        session: session.id.to_string(),
        file: format!("api download from {}", caller.source),
    };
    state.store.record_event(&caller.actor(), &event).await?;
    let mut response = crate::download::stream_cast(dir, session.id).into_response();
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-asciicast"),
    );
    response.headers_mut().insert(
        "x-rampart-recording",
        HeaderValue::from_static(if unsealed {
            "unsealed: the session is live"
        } else {
            "verified"
        }),
    );
    if let Ok(value) =
        HeaderValue::from_str(&format!("attachment; filename=\"{}.cast\"", session.id))
    {
        response.headers_mut().insert(CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

pub async fn recording_verify(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (session, dir) = recorded_session(&state, &caller, &id).await?;
    let key = audit_key(&state)?;
    // Its own seal, and the chain's anchor: a validly sealed recording of another session is
    // reported, not verified.
    let chain = state.store.chain_recording(session.id).await?;
    Ok(Json(
        match rampart_audit::verify_anchored_recording(&dir, session.id, &key, &chain) {
            Ok(report) => json!({
                "session": session.id,
                "verified": true,
                "complete": report.complete,
                "chunks": report.chunks,
                "bytes": report.length,
                "capped": report.capped(),
                "detail": report.describe(),
            }),
            Err(_) if session.is_live() => json!({
                "session": session.id,
                "verified": false,
                "live": true,
                "problem": "live: sealed when the session ends",
            }),
            Err(problem) => json!({
                "session": session.id,
                "verified": false,
                "problem": match problem {
                    rampart_audit::RecordingProblem::Missing(_) => "part of the recording is missing".to_owned(),
                    other => other.to_string(),
                },
            }),
        },
    ))
}

/// `GET /api/v1/sessions/{id}/recording/stream`: a desktop session's recording as its raw
/// stream file (frames of the desktop stream, `o`, and the input as metadata, `i`; see
/// `rampart_desktop::screen`), for the portal's desktop replay. Only once the session has ended,
/// and only the recording the chain anchors, verified as the cast download is; viewing it is
/// audited (`recording_viewed`) before anything is sent.
pub async fn recording_stream(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let (session, dir) = recorded_session(&state, &caller, &id).await?;
    if !session.kind.is_desktop() {
        return Err(ApiError::not_found(
            "only desktop sessions are replayed from their stream; use /recording",
        ));
    }
    let path = rampart_audit::recording::raw_path(&dir, session.id);
    let size = tokio::fs::metadata(&path)
        .await
        .map_err(|_| ApiError::not_found("the session's recording has no stream"))?
        .len();
    if size > MAX_RECORDING_BYTES {
        return Err(ApiError::bad_request(
            "the recording is too large to replay here",
        ));
    }
    let chain = state.store.chain_recording(session.id).await?;
    if matches!(chain, rampart_core::audit::ChainRecording::Unfinished) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "recording_live",
            "the session is live: its recording is replayed once it has ended",
        ));
    }
    let key = audit_key(&state)?;
    let (checked_dir, checked) = (dir.clone(), session.id);
    let verified = tokio::task::spawn_blocking(move || {
        rampart_audit::verify_anchored_recording(&checked_dir, checked, &key, &chain)
    })
    .await
    .map_err(|err| {
        tracing::error!(error = %err, "the recording check stopped");
        ApiError::internal()
    })?;
    if let Err(problem) = verified {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "recording_not_verified",
            format!("the recording does not verify: {problem}"),
        ));
    }
    let event = AuditEvent::RecordingViewed {
        session: session.id.to_string(),
    };
    state.store.record_event(&caller.actor(), &event).await?;
    let bytes = tokio::fs::read(&path).await.map_err(|err| {
        tracing::error!(error = %err, "cannot read a recording");
        ApiError::internal()
    })?;
    let mut response = bytes.into_response();
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    response
        .headers_mut()
        .insert("x-rampart-recording", HeaderValue::from_static("verified"));
    Ok(response)
}
