//! Event and session routes: agents upload events and ask about their sessions; admins
//! read both.

use super::error::ApiErr;
use super::extract::{AdminCaller, Json, MachineCaller, Query};
use crate::state::Shared;
use crate::store::EventFilter;
use axum::extract::State;
use latchkey_proto::events::{
    EventBatch, EventKind, EventPage, EventQuery, EventsAccepted, MAX_BATCH, SessionInfo,
    SessionQuery, SessionStateRequest, SessionStateResponse,
};
use std::time::Duration;

/// Most sessions one machine may ask about at once.
const MAX_SESSIONS: usize = 1000;

pub async fn upload(
    State(st): State<Shared>,
    MachineCaller(m): MachineCaller,
    Json(batch): Json<EventBatch>,
) -> Result<Json<EventsAccepted>, ApiErr> {
    if batch.events.len() > MAX_BATCH {
        return Err(ApiErr::bad_request(format!(
            "a batch holds at most {MAX_BATCH} events"
        )));
    }
    Ok(Json(
        st.events_ingest(&m.id, &m.hostname, batch.events).await?,
    ))
}

pub async fn session_state(
    State(st): State<Shared>,
    MachineCaller(_m): MachineCaller,
    Json(req): Json<SessionStateRequest>,
) -> Result<Json<SessionStateResponse>, ApiErr> {
    if req.sessions.len() > MAX_SESSIONS {
        return Err(ApiErr::bad_request(format!(
            "at most {MAX_SESSIONS} sessions per request"
        )));
    }
    if req
        .sessions
        .iter()
        .any(|s| s.user.len() > 256 || s.session_id.len() > 256 || s.client_id.len() > 256)
    {
        return Err(ApiErr::bad_request("a session field is too long"));
    }
    Ok(Json(st.session_state(&req.sessions).await?))
}

pub async fn list(
    State(st): State<Shared>,
    _: AdminCaller,
    Query(q): Query<EventQuery>,
) -> Result<Json<EventPage>, ApiErr> {
    if let Some(k) = &q.kind {
        k.parse::<EventKind>().map_err(ApiErr::bad_request)?;
    }
    let f = EventFilter {
        user: q.user,
        machine: q.machine,
        kind: q.kind,
        since_ms: q.since.map(|s| s.saturating_mul(1000)),
        after: q.after,
        limit: super::admin_fleet::listing_limit(q.limit)?,
    };
    let wait = Duration::from_secs(q.wait.unwrap_or(0).min(60));
    Ok(Json(st.events_page(&f, wait).await?))
}

pub async fn sessions(
    State(st): State<Shared>,
    _: AdminCaller,
    Query(q): Query<SessionQuery>,
) -> Result<Json<Vec<SessionInfo>>, ApiErr> {
    Ok(Json(st.sessions_list(q.user.as_deref()).await?))
}
