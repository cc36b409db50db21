//! Offline bundles: after an MFA success the server signs, for that user on that machine, the
//! public material an agent needs to verify offline logins, with the policy's limits. Also
//! the list of users whose bundles a machine must wipe. See docs/offline.md.

use crate::engine::{EngineError, new_id};
use crate::policy;
use crate::state::{Actor, State, now};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use latchkey_proto::Method;
use latchkey_proto::offline::{
    BUNDLE_VERSION, Bundle, OfflineApp, OfflineAttachment, SignedBundle,
};

type Result<T> = std::result::Result<T, EngineError>;

/// Which answer the attachment rides on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachOn {
    /// A second factor was verified: a fresh bundle.
    MfaSuccess,
    /// A definite refusal: wipe the bundle if the user is unknown or disabled.
    Refusal,
    /// Anything else (challenge, retry, allow without MFA): only the forget list.
    Other,
}

impl State {
    /// Builds and signs the bundle of `user` for `machine_id`, or `None` when no client_id
    /// enables offline for this user or the user has no token app (nothing to verify with).
    ///
    /// One bundle covers every client_id whose policy (for this user) enables offline and
    /// allows the token app; its limits are the strictest of those policies.
    pub async fn offline_bundle(
        &self,
        machine_id: &str,
        user: &str,
    ) -> Result<Option<SignedBundle>> {
        let Some(u) = self.store.user_get(user).await? else {
            return Ok(None);
        };
        if !u.enabled {
            return Ok(None);
        }
        let mut client_ids = Vec::new();
        let (mut days, mut logins, mut failures) = (u32::MAX, u32::MAX, u32::MAX);
        for (client_id, _) in self.store.policy_list().await? {
            if client_id == policy::FALLBACK {
                continue;
            }
            let p = self.policy_for(&client_id, &u.name, &u.groups).await?;
            if !p.offline.enabled || !p.methods.contains(&Method::Push) {
                continue;
            }
            days = days.min(p.offline.max_days);
            logins = logins.min(p.offline.max_logins);
            failures = failures.min(p.offline.max_failures);
            client_ids.push(client_id);
        }
        if client_ids.is_empty() {
            return Ok(None);
        }
        let apps: Vec<OfflineApp> = self
            .store
            .apps_of(&u.name)
            .await?
            .into_iter()
            // Newest first: the agent seals to the first app.
            .rev()
            .map(|a| OfflineApp {
                id: a.id,
                x25519_public: a.x25519_public,
                device_name: a.device_name,
            })
            .collect();
        if apps.is_empty() {
            return Ok(None);
        }
        let issued_at = now();
        let bundle = Bundle {
            version: BUNDLE_VERSION,
            id: new_id(8)?,
            user: u.name.clone(),
            machine_id: machine_id.to_string(),
            client_ids,
            issued_at,
            not_after: issued_at + i64::from(days) * 86_400,
            max_logins: logins,
            max_failures: failures,
            apps,
            fido2: vec![],
            smartcards: vec![],
        };
        let payload = bundle
            .encode()
            .map_err(|e| EngineError::Invalid(format!("bundle: {e}")))?;
        let signature = latchkey_crypto::bundle::sign(&self.signing, &payload);
        self.store
            .offline_issued(machine_id, &u.name, &bundle.id, issued_at, bundle.not_after)
            .await?;
        self.audit(
            &Actor::Machine(machine_id.to_string()),
            "offline.issue",
            Some(&u.name),
            None,
            "ok",
            format!(
                "bundle {} for {} until {} ({} logins, {} failures)",
                bundle.id,
                bundle.client_ids.join(","),
                bundle.not_after,
                logins,
                failures
            ),
        )
        .await;
        Ok(Some(SignedBundle {
            payload: B64.encode(&payload),
            signature: B64.encode(signature),
        }))
    }

    /// What rides along an answer to `machine_id` about `user`: a bundle after an MFA
    /// success, and the users to forget. Failing to build it never fails the answer: the
    /// agent simply keeps what it has (logged).
    pub async fn offline_attachment(
        &self,
        machine_id: &str,
        user: &str,
        on: AttachOn,
    ) -> OfflineAttachment {
        let mut out = OfflineAttachment::default();
        match self.store.offline_forget_list(machine_id, now()).await {
            Ok(list) => out.offline_forget = list,
            Err(e) => {
                tracing::error!(error = %e, machine = machine_id, "offline forget list unavailable")
            }
        }
        if on == AttachOn::MfaSuccess {
            match self.offline_bundle(machine_id, user).await {
                Ok(b) => out.offline_bundle = b,
                Err(e) => {
                    tracing::error!(error = %e, machine = machine_id, user, "offline bundle not issued")
                }
            }
        } else if on == AttachOn::Refusal && !out.offline_forget.iter().any(|u| u == user) {
            // A definite refusal because the user is unknown or disabled wipes its bundle
            // here at once (not only through the forget list).
            match self.store.user_get(user).await {
                Ok(Some(u)) if u.enabled => {}
                Ok(_) => out.offline_forget.push(user.to_string()),
                Err(e) => tracing::error!(error = %e, "user lookup for offline forget failed"),
            }
        }
        out
    }

    /// Revocation hook: the user was disabled or removed, or lost a token app.
    pub async fn offline_revoke(&self, user: &str, why: &str) -> Result<()> {
        let n = self.store.offline_revoke_user(user, why, now()).await?;
        if n > 0 {
            tracing::info!(user, machines = n, why, "offline bundles revoked");
        }
        Ok(())
    }
}
