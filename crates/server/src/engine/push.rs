//! Push approvals: a login asks every registered app of the user; the person types the number
//! shown on the login screen into the app, which signs its answer with its Ed25519 key.
//!
//! No third-party push service is reachable from here, so apps keep a long poll open
//! (`GET /v1/apps/pending?wait=`). The [`Hub`] wakes waiters in this process at once; waiters
//! also re-check the store every second so several instances sharing one database still see
//! each other's requests (a gateway to FCM/APNs would be one more notifier here).

use super::messages::Said;
use super::{Actor, Engine, EngineError, Result, new_id, now};
use crate::store::{AppRow, PushRow, PushState};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use latchkey_proto::Method;
use latchkey_proto::app::{
    Decision, PushRequest, PushResponse, PushStartResult, PushStarted, PushVerdict,
    push_signing_bytes,
};
use latchkey_proto::login::LoginStepResult;
use latchkey_proto::offline::WithOffline;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Seconds a push request waits for the person.
pub const PUSH_TTL: i64 = 60;
/// Longest single long poll.
pub const MAX_WAIT: u64 = 30;

/// What a login waiting on a push learns: decided from the stored state and the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// Nobody answered yet, and there is time left.
    Waiting,
    Approved,
    Denied,
    WrongNumber,
    /// Nobody answered in time.
    Expired,
}

impl PushOutcome {
    pub fn of(p: &PushRow, now: i64) -> PushOutcome {
        match p.state {
            PushState::Approved => PushOutcome::Approved,
            PushState::Denied => PushOutcome::Denied,
            PushState::WrongNumber => PushOutcome::WrongNumber,
            PushState::Pending if p.expires_at <= now => PushOutcome::Expired,
            PushState::Pending => PushOutcome::Waiting,
        }
    }
}

/// Waits until `check` yields something, `notify` fires, or `wait` passes; re-checks every
/// second for changes made by other instances.
pub(super) async fn long_poll<T, F, Fut>(
    notify: Arc<Notify>,
    wait: Duration,
    mut check: F,
) -> Result<Option<T>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if let Some(v) = check().await? {
            return Ok(Some(v));
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        let step = (deadline - now).min(Duration::from_secs(1));
        let _ = tokio::time::timeout(step, notified).await;
    }
}

/// A pending push as the app sees it, or None (logged) for a row whose identifiers no longer
/// pass their validators: the app never sees it, so that login can only time out, denied.
fn view(p: &PushRow) -> Option<PushRequest> {
    let ids = || -> std::result::Result<_, crate::store::StoreError> {
        Ok((
            super::stored(p.tx_id.clone())?,
            super::stored(p.user_name.clone())?,
            super::stored(p.client_id.clone())?,
        ))
    };
    match ids() {
        Ok((tx, user, client_id)) => Some(PushRequest {
            tx,
            user,
            host: p.host.clone(),
            client_id,
            rhost: p.rhost.clone(),
            expires_at: p.expires_at,
            nonce: p.nonce.clone(),
        }),
        Err(e) => {
            tracing::warn!(error = %e, "pending push not shown");
            None
        }
    }
}

fn random_number() -> Result<u32> {
    let b = latchkey_crypto::random_bytes(4).map_err(|e| EngineError::Invalid(e.to_string()))?;
    // 10..=99: two digits, never a leading zero. The bias of 2^32 mod 90 is negligible.
    Ok(10 + u32::from_be_bytes([b[0], b[1], b[2], b[3]]) % 90)
}

impl Engine {
    /// `POST /v1/login/{tx}/push`: sends the push (idempotent per transaction).
    pub async fn push_start(
        &self,
        machine_id: &str,
        host: &str,
        tx_id: &str,
    ) -> Result<PushStartResult> {
        let refused = |said: Said| Ok(PushStartResult::Step(said.deny()));
        let now = now();
        let actor = Actor::Machine(machine_id.to_string());
        let Some(tx) = self.store.tx_get(tx_id).await? else {
            return refused(Said::TxGone);
        };
        if tx.machine_id != machine_id || tx.done || tx.expires_at <= now {
            return refused(Said::TxGone);
        }
        let user = match self.store.user_get(&tx.user_name).await? {
            Some(u) if u.enabled => u,
            _ => return refused(Said::NoMethod),
        };
        let policy = self
            .policy_for(&tx.client_id, &user.name, &user.groups)
            .await?;
        if !policy.methods.contains(&Method::Push)
            || self.store.app_count_of(&user.name).await? == 0
        {
            return refused(Said::PushUnavailable);
        }
        let row = PushRow {
            tx_id: tx.id.clone(),
            user_name: user.name.clone(),
            host: host.to_string(),
            client_id: tx.client_id.clone(),
            rhost: tx.rhost.clone(),
            number: i64::from(random_number()?),
            nonce: new_id(16)?,
            expires_at: (now + PUSH_TTL).min(tx.expires_at),
            state: PushState::Pending,
            detail: None,
        };
        let row = self.store.push_create(&row, now).await?;
        self.hub.user(&user.name).notify_waiters();
        self.audit(
            &actor,
            "push.send",
            Some(&user.name),
            Some(&tx.client_id),
            "ok",
            format!("push sent to {host} login"),
        )
        .await;
        let number = u32::try_from(row.number).unwrap_or(0);
        Ok(PushStartResult::Started(PushStarted {
            number,
            expires_in: (row.expires_at - now).max(0) as u64,
            message: Said::PushSent { number }.text(),
        }))
    }

    /// `POST /v1/login/{tx}/push/wait`: the push's outcome, waiting up to `wait`, with
    /// what the offline decision attaches to it.
    pub async fn push_wait(
        &self,
        machine_id: &str,
        tx_id: &str,
        wait: Duration,
    ) -> Result<WithOffline<LoginStepResult>> {
        let result = self.push_settled(machine_id, tx_id, wait).await?;
        let user = if matches!(result, LoginStepResult::Success { .. }) {
            self.store.tx_user_offline_candidate(tx_id).await?
        } else {
            None
        };
        Ok(self.with_offline(machine_id, result, user).await)
    }

    pub(super) async fn push_settled(
        &self,
        machine_id: &str,
        tx_id: &str,
        wait: Duration,
    ) -> Result<LoginStepResult> {
        let actor = Actor::Machine(machine_id.to_string());
        let Some(tx) = self.store.tx_get(tx_id).await? else {
            return Ok(Said::TxGone.deny());
        };
        if tx.machine_id != machine_id {
            return Ok(Said::TxGone.deny());
        }
        let store = self.store.clone();
        let id = tx_id.to_string();
        let settled = long_poll(
            self.hub.tx(tx_id),
            wait.min(Duration::from_secs(MAX_WAIT)),
            || {
                let (store, id) = (store.clone(), id.clone());
                async move {
                    let p = store.push_get(&id).await?;
                    Ok(p.filter(|p| PushOutcome::of(p, now()) != PushOutcome::Waiting))
                }
            },
        )
        .await?;
        let Some(p) = settled else {
            return Ok(LoginStepResult::Pending {
                message: Said::PushWaiting.text(),
            });
        };
        let cid = Some(tx.client_id.as_str());
        let user = tx.user_name.as_str();
        let (said, detail) = match PushOutcome::of(&p, now()) {
            PushOutcome::Approved => {
                if !self.store.tx_finish(tx_id).await? {
                    return Ok(Said::TxGone.deny());
                }
                // A portal sign-in's push leaves the login lockout alone (its code step
                // ended the portal's run already).
                if machine_id != super::WEB_MACHINE
                    && let Some(u) = self.store.user_get(user).await?
                {
                    self.clear_failures(&u).await?;
                }
                self.audit(&actor, "login.push", Some(user), cid, "ok", "push approved")
                    .await;
                return Ok(Said::PushApproved.success());
            }
            PushOutcome::Denied => (Said::PushDenied, p.detail.unwrap_or_default()),
            PushOutcome::WrongNumber => (Said::PushWrongNumber, p.detail.unwrap_or_default()),
            // Settled above: anything still pending has expired by now.
            PushOutcome::Waiting | PushOutcome::Expired => {
                self.store.tx_finish(tx_id).await?;
                self.audit(
                    &actor,
                    "login.push",
                    Some(user),
                    cid,
                    "deny",
                    "push expired",
                )
                .await;
                return Ok(Said::PushExpired.deny());
            }
        };
        self.store.tx_finish(tx_id).await?;
        self.audit(
            &actor,
            "login.push",
            Some(user),
            cid,
            "deny",
            format!("push denied: {detail}"),
        )
        .await;
        Ok(said.deny())
    }

    /// `GET /v1/apps/pending?wait=`.
    pub async fn app_pending(&self, app: &AppRow, wait: Duration) -> Result<Vec<PushRequest>> {
        let store = self.store.clone();
        let user = app.user_name.clone();
        let found = long_poll(
            self.hub.user(&app.user_name),
            wait.min(Duration::from_secs(MAX_WAIT)),
            || {
                let (store, user) = (store.clone(), user.clone());
                async move {
                    let rows = store.push_pending_for(&user, now()).await?;
                    Ok((!rows.is_empty()).then_some(rows))
                }
            },
        )
        .await?;
        Ok(found.unwrap_or_default().iter().filter_map(view).collect())
    }

    /// `POST /v1/apps/respond`: a signed approval or denial.
    pub async fn app_respond(&self, app: &AppRow, r: &PushResponse) -> Result<PushVerdict> {
        let actor = Actor::App(app.id.clone());
        let refuse = |m: &str| PushVerdict {
            ok: false,
            message: m.to_string(),
        };
        let now = now();
        let Some(p) = self.store.push_get(&r.tx).await? else {
            return Ok(refuse("No such login request"));
        };
        if p.user_name != app.user_name {
            return Ok(refuse("No such login request"));
        }
        let cid = Some(p.client_id.as_str());
        let user = Some(p.user_name.as_str());
        let app_label = format!("app {} ({})", app.id, app.device_name);
        let public = B64.decode(&app.ed25519_public).unwrap_or_default();
        let sig = B64.decode(&r.signature).unwrap_or_default();
        let signed = push_signing_bytes(&r.tx, r.decision, r.number, &r.nonce);
        if !latchkey_crypto::ct_eq(r.nonce.as_bytes(), p.nonce.as_bytes())
            || !latchkey_crypto::keys::ed25519_verify(&public, &signed, &sig)
        {
            self.audit(
                &actor,
                "push.respond",
                user,
                cid,
                "deny",
                format!("bad signature or nonce from {app_label}"),
            )
            .await;
            return Ok(refuse(
                "The answer's signature is not valid for this request",
            ));
        }
        if PushOutcome::of(&p, now) != PushOutcome::Waiting {
            return Ok(refuse(
                "This login request is no longer waiting (answered or expired)",
            ));
        }
        let (state, detail, verdict) = match r.decision {
            Decision::Deny => {
                let why = r.reason.as_deref().unwrap_or("no reason given");
                let why: String = why.chars().filter(|c| !c.is_control()).take(200).collect();
                (
                    PushState::Denied,
                    format!("denied by {app_label}: {why}"),
                    PushVerdict {
                        ok: true,
                        message: "Login denied".into(),
                    },
                )
            }
            Decision::Approve if r.number.map(i64::from) == Some(p.number) => (
                PushState::Approved,
                format!("approved by {app_label}"),
                PushVerdict {
                    ok: true,
                    message: "Login approved".into(),
                },
            ),
            Decision::Approve => (
                PushState::WrongNumber,
                format!("wrong number typed in {app_label}"),
                refuse("Wrong number: the login was refused. Start the login again."),
            ),
        };
        if !self
            .store
            .push_settle(&r.tx, state, &app.id, &detail, now)
            .await?
        {
            return Ok(refuse(
                "This login request is no longer waiting (answered or expired)",
            ));
        }
        self.hub.tx(&r.tx).notify_waiters();
        let result = if state == PushState::Approved {
            "ok"
        } else {
            "deny"
        };
        self.audit(&actor, "push.respond", user, cid, result, detail)
            .await;
        Ok(verdict)
    }
}
