//! Event and session routes: agents upload events and ask about their sessions; admins
//! read both.

use super::Ctx;
use super::error::ApiErr;
use super::extract::{AdminCaller, Json, MachineCaller, Query};
use axum::extract::State;
use latchkey_proto::events::{
    EventBatch, EventPage, EventQuery, EventsAccepted, SessionInfo, SessionQuery,
    SessionStateRequest, SessionStateResponse,
};

pub async fn upload(
    State(cx): State<Ctx>,
    MachineCaller(m): MachineCaller,
    Json(batch): Json<EventBatch>,
) -> Result<Json<EventsAccepted>, ApiErr> {
    Ok(Json(
        cx.engine
            .events_ingest(&m.id, &m.hostname, batch.events)
            .await?,
    ))
}

pub async fn session_state(
    State(cx): State<Ctx>,
    MachineCaller(_m): MachineCaller,
    Json(req): Json<SessionStateRequest>,
) -> Result<Json<SessionStateResponse>, ApiErr> {
    Ok(Json(cx.engine.session_state(&req.sessions).await?))
}

pub async fn list(
    State(cx): State<Ctx>,
    _: AdminCaller,
    Query(q): Query<EventQuery>,
) -> Result<Json<EventPage>, ApiErr> {
    Ok(Json(cx.engine.events_page(q).await?))
}

pub async fn sessions(
    State(cx): State<Ctx>,
    _: AdminCaller,
    Query(q): Query<SessionQuery>,
) -> Result<Json<Vec<SessionInfo>>, ApiErr> {
    Ok(Json(cx.engine.sessions_list(q.user.as_deref()).await?))
}
