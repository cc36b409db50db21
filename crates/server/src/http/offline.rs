//! Admin route for offline bundles: `POST /v1/admin/machines/{machine}/forget-offline`.

use super::error::ApiErr;
use super::extract::{AdminCaller, Json};
use crate::engine::validate_user_name;
use crate::state::{Actor, Shared, now};
use axum::extract::{Path, State};
use latchkey_proto::offline::{ForgetOffline, ForgetOfflineQueued};

/// Queues the wipe of `user`'s offline bundle on a machine (by id, or by hostname when it
/// names exactly one machine). The agent wipes it at its next contact with any server.
pub async fn forget(
    State(st): State<Shared>,
    _: AdminCaller,
    Path(machine): Path<String>,
    Json(req): Json<ForgetOffline>,
) -> Result<Json<ForgetOfflineQueued>, ApiErr> {
    validate_user_name(&req.user)?;
    let machines = st.store.machine_list().await?;
    let by_id: Vec<_> = machines.iter().filter(|m| m.id == machine).collect();
    let found = if by_id.len() == 1 {
        by_id
    } else {
        machines.iter().filter(|m| m.hostname == machine).collect()
    };
    let m = match found.as_slice() {
        [m] => *m,
        [] => return Err(ApiErr::not_found(format!("machine {machine:?} not found"))),
        _ => {
            return Err(ApiErr::bad_request(format!(
                "hostname {machine:?} names several machines: use the machine id"
            )));
        }
    };
    let now = now();
    st.store
        .offline_forget(
            &m.id,
            &req.user,
            "forget-offline requested by an admin",
            now,
        )
        .await?;
    st.audit(
        &Actor::Admin,
        "offline.forget",
        Some(&req.user),
        None,
        "ok",
        format!(
            "machine {} ({}) will wipe the offline bundle at its next contact",
            m.id, m.hostname
        ),
    )
    .await;
    Ok(Json(ForgetOfflineQueued {
        machine_id: m.id.clone(),
        user: req.user,
        requested_at: now,
    }))
}
