//! Offline bundles: after an MFA success the server signs, for that user on that machine, the
//! public material an agent needs to verify offline logins, with the policy's limits. Also
//! the list of users whose bundles a machine must wipe. See docs/offline.md.

use super::{Actor, Engine, EngineError, Result, new_id, now};
use crate::policy;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use latchkey_proto::Method;
use latchkey_proto::login::LoginStepResult;
use latchkey_proto::offline::{
    BUNDLE_VERSION, Bundle, OfflineApp, OfflineAttachment, OfflineFido2, OfflineSmartcard,
    SignedBundle, WithOffline,
};
use std::collections::BTreeMap;

/// What the machine is sent about offline logins beside an answer. Decided once, here, from
/// [`Answered`], for every method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attach {
    /// Nothing: a retry or a denial of a second factor (the login start already carried the
    /// forget list), or a success whose transaction is gone.
    Nothing,
    /// Only the users this machine must forget (challenge, allow without MFA, a success of
    /// a user with nothing a bundle could carry).
    ForgetList,
    /// The forget list, and the user too when this machine holds its bundle and the user is
    /// unknown or disabled: a definite refusal.
    WipeIfGone,
    /// The forget list and a fresh bundle: a second factor was verified for a user who has
    /// something to use offline.
    Bundle,
}

/// An answer the engine gives a machine about a user, as far as offline bundles care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answered {
    /// A login start; `denied` when it was refused.
    Start { denied: bool },
    /// An account check.
    Account { allowed: bool },
    /// An answer to a second factor (code, security key, smartcard, push): `success` when
    /// it was verified; `has_offline` whether the transaction's user has anything a bundle
    /// could carry (None when the answer was decided before the user was read).
    Step {
        success: bool,
        has_offline: Option<bool>,
    },
}

impl Answered {
    pub fn attach(self) -> Attach {
        match self {
            Answered::Start { denied: true } | Answered::Account { allowed: false } => {
                Attach::WipeIfGone
            }
            Answered::Start { denied: false } | Answered::Account { allowed: true } => {
                Attach::ForgetList
            }
            Answered::Step {
                success: true,
                has_offline: Some(true),
            } => Attach::Bundle,
            Answered::Step {
                success: true,
                has_offline: Some(false),
            } => Attach::ForgetList,
            Answered::Step { .. } => Attach::Nothing,
        }
    }
}

impl Engine {
    /// A second factor's answer with its offline attachment ([`Answered::attach`]): `user`
    /// is the transaction's, with whether it has anything a bundle could carry.
    pub(super) async fn with_offline(
        &self,
        machine_id: &str,
        result: LoginStepResult,
        user: Option<(String, bool)>,
    ) -> WithOffline<LoginStepResult> {
        let attach = Answered::Step {
            success: matches!(result, LoginStepResult::Success { .. }),
            has_offline: user.as_ref().map(|(_, has)| *has),
        }
        .attach();
        let offline = match &user {
            Some((user, _)) => self.attachment(machine_id, user, attach).await,
            None => OfflineAttachment::default(),
        };
        WithOffline {
            inner: result,
            offline,
        }
    }

    /// Builds and signs the bundle of `user` for `machine_id`, or `None` when no client_id
    /// enables offline for this user with a method the user has (nothing to verify with).
    ///
    /// One bundle covers every client_id whose policy (for this user) enables offline and
    /// allows one of the user's offline-capable methods (token app via `push`, `fido2`,
    /// `smartcard`); `methods` says which per client_id; its limits are the strictest of
    /// those policies, and a security key needs UV offline if one of them requires it.
    async fn offline_bundle(&self, machine_id: &str, user: &str) -> Result<Option<SignedBundle>> {
        // One statement tells whether there is anything to put in a bundle: most users of a
        // fleet have OATH tokens only, and this runs after every MFA success.
        let Some((u, _, n_apps, n_cards, n_keys)) = self.store.user_get_with_counts(user).await?
        else {
            return Ok(None);
        };
        if !u.enabled || n_apps + n_cards + n_keys == 0 {
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
        let keys = self.store.fido2_of(&u.name).await?;
        let cards = self.store.smartcards_of(&u.name).await?;
        // What this user could answer offline with: the token app (the QR challenge stands
        // in for push), a security key, a smartcard.
        let mut has = Vec::new();
        if !apps.is_empty() {
            has.push(Method::Push);
        }
        if !keys.is_empty() {
            has.push(Method::Fido2);
        }
        if !cards.is_empty() {
            has.push(Method::Smartcard);
        }
        let mut client_ids = Vec::new();
        let mut methods = BTreeMap::new();
        let mut uv_required = false;
        let (mut days, mut logins, mut failures) = (u32::MAX, u32::MAX, u32::MAX);
        for (client_id, _) in self.store.policy_list().await? {
            if client_id == policy::FALLBACK {
                continue;
            }
            let p = self.policy_for(&client_id, &u.name, &u.groups).await?;
            let usable: Vec<Method> = has
                .iter()
                .copied()
                .filter(|m| p.methods.contains(m))
                .collect();
            if !p.offline.enabled || usable.is_empty() {
                continue;
            }
            if usable.contains(&Method::Fido2)
                && p.fido2.user_verification == latchkey_proto::fido2::UserVerification::Required
            {
                uv_required = true;
            }
            days = days.min(p.offline.max_days);
            logins = logins.min(p.offline.max_logins);
            failures = failures.min(p.offline.max_failures);
            methods.insert(client_id.clone(), usable);
            client_ids.push(client_id);
        }
        if client_ids.is_empty() {
            return Ok(None);
        }
        let used = |m: Method| methods.values().any(|v: &Vec<Method>| v.contains(&m));
        let apps = if used(Method::Push) { apps } else { vec![] };
        let fido2: Vec<OfflineFido2> = if used(Method::Fido2) {
            keys.into_iter()
                .filter(|k| k.rp_id == self.cfg.fido2_rp_id)
                .map(|k| OfflineFido2 {
                    credential_id: k.credential_id,
                    cose_key: k.public_key,
                    rp_id: k.rp_id,
                    sign_count: u32::try_from(k.sign_count).unwrap_or(u32::MAX),
                    // Strictest: one client_id requiring UV makes it required offline.
                    uv_required,
                })
                .collect()
        } else {
            vec![]
        };
        let smartcards: Vec<OfflineSmartcard> = if used(Method::Smartcard) {
            cards
                .into_iter()
                .map(|c| OfflineSmartcard {
                    cert_der: B64.encode(&c.cert_der),
                    fingerprint: c.fingerprint,
                })
                .collect()
        } else {
            vec![]
        };
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
            fido2,
            smartcards,
            methods,
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

    /// What rides along an answer to `machine_id` about `user` ([`Attach`]). Failing to
    /// build it never fails the answer: the agent simply keeps what it has (logged).
    pub(super) async fn attachment(
        &self,
        machine_id: &str,
        user: &str,
        on: Attach,
    ) -> OfflineAttachment {
        let mut out = OfflineAttachment::default();
        if on == Attach::Nothing {
            return out;
        }
        match self.store.offline_forget_list(machine_id, now()).await {
            Ok(list) => out.offline_forget = list,
            Err(e) => {
                tracing::error!(error = %e, machine = machine_id, "offline forget list unavailable")
            }
        }
        if on == Attach::Bundle {
            match self.offline_bundle(machine_id, user).await {
                Ok(b) => out.offline_bundle = b,
                Err(e) => {
                    tracing::error!(error = %e, machine = machine_id, user, "offline bundle not issued")
                }
            }
        } else if on == Attach::WipeIfGone && !out.offline_forget.iter().any(|u| u == user) {
            // A definite refusal of a user this machine holds a bundle of (by the server's
            // record) wipes it here at once, when the user is unknown or disabled. Only
            // then: naming the user to a machine that never held its bundle would tell
            // unknown and disabled users apart from the others (docs/security.md).
            match self.store.offline_held(machine_id, user).await {
                Ok(true) => match self.store.user_get(user).await {
                    Ok(Some(u)) if u.enabled => {}
                    Ok(_) => out.offline_forget.push(user.to_string()),
                    Err(e) => tracing::error!(error = %e, "user lookup for offline forget failed"),
                },
                Ok(false) => {}
                Err(e) => tracing::error!(error = %e, "offline issue lookup failed"),
            }
        }
        out
    }

    /// Revocation hook: the user was disabled or removed, or lost a token app.
    pub(super) async fn offline_revoke(&self, user: &str, why: &str) -> Result<()> {
        let n = self.store.offline_revoke_user(user, why, now()).await?;
        if n > 0 {
            tracing::info!(user, machines = n, why, "offline bundles revoked");
        }
        Ok(())
    }
}
