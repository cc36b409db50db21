//! Offline logins with a security key: the touch, the PIN, and the assertion checked against
//! the bundle's credentials.

use super::{CLONED, Hw, HwNext, KEY_PIN_LABEL, KeyStage, Limits, OfflineKey, TOUCH, challenge};
use crate::fido2::{self, Uv, UvPlan};
use crate::offline::challenge::no_bundle;
use crate::offline::{Attempt, Verdict};
use latchkey_crypto::webauthn::{self, Expect, ORIGIN_AGENT, WebauthnError, b64url, b64url_decode};
use latchkey_proto::agent::Step;
use latchkey_proto::offline::OfflineFido2;
use zeroize::Zeroizing;

impl Attempt<'_> {
    pub(super) async fn key_start(
        &self,
        lim: Limits,
        creds: &[OfflineFido2],
        settings: &fido2::Settings,
    ) -> Hw {
        let Some(rp_id) = creds.first().map(|c| c.rp_id.clone()) else {
            return self.hw_fail(&lim, "fido2", no_bundle(&lim.user), "no credential");
        };
        let creds: Vec<OfflineFido2> = creds.iter().filter(|c| c.rp_id == rp_id).cloned().collect();
        let uv_required = creds.iter().any(|c| c.uv_required);
        let mut key = OfflineKey {
            lim,
            creds,
            rp_id,
            uv_required,
            stage: KeyStage::Touch(Uv::None),
            settings: settings.clone(),
        };
        if uv_required {
            let s = settings.clone();
            let info = tokio::task::spawn_blocking(move || fido2::probe(&s)).await;
            let info = match info {
                Ok(Ok(i)) => i,
                Ok(Err(e)) => {
                    let msg = e.user_message(settings.timeout);
                    return self.hw_fail(&key.lim, "fido2", msg, "no security key");
                }
                Err(e) => return self.hw_fail(&key.lim, "fido2", e.to_string(), "probe failed"),
            };
            match fido2::uv_plan(&info, true, false) {
                UvPlan::NeedPin => {
                    key.stage = KeyStage::AwaitPin;
                    return Hw::Key(
                        Box::new(key),
                        Step::Prompt {
                            label: KEY_PIN_LABEL.into(),
                            echo: false,
                        },
                    );
                }
                UvPlan::BuiltIn => key.stage = KeyStage::Touch(Uv::BuiltIn),
                UvPlan::None | UvPlan::Impossible => {
                    return self.hw_fail(
                        &key.lim,
                        "fido2",
                        "This login needs a PIN or fingerprint on your security key, and none is set up".into(),
                        "user verification impossible",
                    );
                }
            }
        }
        Hw::Key(Box::new(key), Step::Info { text: TOUCH.into() })
    }

    /// The PIN prompt of a security key was answered.
    pub fn key_pin(&self, k: &mut OfflineKey, pin: &str) -> HwNext {
        if k.stage != KeyStage::AwaitPin {
            return HwNext::Done(Verdict::Failed(
                "Login refused: protocol error (unexpected answer)".into(),
            ));
        }
        if pin.is_empty() {
            self.record_m(
                &k.lim.user,
                &k.lim.client_id,
                "fido2",
                "failure",
                "no PIN typed",
            );
            return HwNext::Done(Verdict::Failed("No PIN typed".into()));
        }
        k.stage = KeyStage::Touch(Uv::Pin(Zeroizing::new(pin.to_string())));
        HwNext::Step(Step::Info { text: TOUCH.into() })
    }

    /// "Touch your key" was shown: runs getAssertion with a fresh challenge and verifies the
    /// answer with the cached COSE key and the agent's counter.
    pub async fn key_continue(&self, k: &OfflineKey) -> Verdict {
        let lim = &k.lim;
        let KeyStage::Touch(uv) = k.stage.clone() else {
            return Verdict::Failed("Login refused: protocol error (unexpected continue)".into());
        };
        let challenge = match challenge() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "no randomness for an offline challenge");
                self.record_m(
                    &lim.user,
                    &lim.client_id,
                    "fido2",
                    "failure",
                    "challenge error",
                );
                return Verdict::Failed(
                    "Offline login refused: the challenge could not be made".into(),
                );
            }
        };
        let Some(allow) = k
            .creds
            .iter()
            .map(|c| b64url_decode(&c.credential_id))
            .collect::<Option<Vec<_>>>()
        else {
            self.record_m(
                &lim.user,
                &lim.client_id,
                "fido2",
                "failure",
                "credential id malformed",
            );
            return Verdict::Failed(no_bundle(&lim.user));
        };
        let ran = fido2::get_assertion_blocking(
            k.settings.clone(),
            k.rp_id.clone(),
            challenge.clone(),
            allow,
            uv,
        )
        .await;
        let a = match ran {
            Ok(a) => a,
            Err(e) => {
                // No key, timeout, wrong PIN: the key said no; nothing was verified.
                let msg = e.user_message(k.settings.timeout);
                self.record_m(
                    &lim.user,
                    &lim.client_id,
                    "fido2",
                    "failure",
                    &format!("security key: {e}"),
                );
                return Verdict::Failed(msg);
            }
        };
        let cred_id = b64url(&a.credential_id);
        let Some(cred) = k.creds.iter().find(|c| c.credential_id == cred_id) else {
            return self.count_failure(
                lim,
                "fido2",
                "unknown credential",
                "Security key answer rejected".into(),
            );
        };
        let Some(cose) = b64url_decode(&cred.cose_key) else {
            return self.count_failure(
                lim,
                "fido2",
                "cached COSE key malformed",
                no_bundle(&lim.user),
            );
        };
        let seen = match self.db.fido2_counter(&lim.user, &cred_id) {
            Ok(n) => n.unwrap_or(0),
            Err(e) => {
                return self.state_db_failed(
                    &lim.user,
                    &lim.client_id,
                    "fido2",
                    "offline counter unreadable",
                    &e,
                );
            }
        };
        // The bundle's count is a floor; the agent's own counter never goes lower.
        let stored = seen.max(cred.sign_count);
        let verified = webauthn::verify_assertion(
            &cose,
            stored,
            &webauthn::Assertion {
                authenticator_data: &a.authenticator_data,
                client_data_json: a.client_data_json.as_bytes(),
                signature: &a.signature,
            },
            &Expect {
                rp_id: &k.rp_id,
                challenge: &challenge,
                origins: &[ORIGIN_AGENT],
                require_uv: k.uv_required,
            },
        );
        let v = match verified {
            Ok(v) => v,
            Err(WebauthnError::Counter { stored, received }) => {
                tracing::error!(user = %lim.user, credential = %cred_id, stored, received, "offline: security key counter did not increase: possible cloned key");
                return self.count_failure(
                    lim,
                    "fido2",
                    &format!("possible cloned key: counter {received}, stored {stored}"),
                    CLONED.into(),
                );
            }
            Err(e) => {
                return self.count_failure(
                    lim,
                    "fido2",
                    &format!("assertion rejected: {e}"),
                    "Security key answer rejected".into(),
                );
            }
        };
        if v.sign_count != 0 {
            match self
                .db
                .fido2_counter_advance(&lim.user, &cred_id, v.sign_count)
            {
                Ok(true) => {}
                // Another login stored this counter (or a higher one) meanwhile.
                Ok(false) => {
                    return self.count_failure(
                        lim,
                        "fido2",
                        "possible cloned key: counter already used",
                        CLONED.into(),
                    );
                }
                Err(e) => {
                    return self.state_db_failed(
                        &lim.user,
                        &lim.client_id,
                        "fido2",
                        "offline counter not stored",
                        &e,
                    );
                }
            }
        }
        self.count_success(lim, "fido2")
    }
}
