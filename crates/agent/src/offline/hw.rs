//! Offline logins with a security key (FIDO2) or a smartcard (PKCS#11), verified with the
//! public material of the signed bundle. See docs/offline.md, "Security key and smartcard".
//!
//! Order, as online: a smartcard when a card holding one of the cached certificates is
//! present, else a security key when one is plugged in (or when the token app is not
//! allowed), else the token app's QR challenge. Each ends in an explicit verdict; wrong
//! answers count toward `max_failures`, successes toward `max_logins`, and both are recorded
//! as offline events (method `fido2` or `smartcard`).

use super::challenge::{Checked, no_bundle};
use super::{Offline, Verdict, utc_date};
use crate::fido2::{self, AssertionRequest, Uv, UvPlan};
use crate::smartcard::{self, CardError};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use latchkey_crypto::webauthn::{self, Expect, ORIGIN_AGENT, WebauthnError, b64url, b64url_decode};
use latchkey_crypto::x509::{CertError, Certificate};
use latchkey_proto::Method;
use latchkey_proto::agent::Step;
use latchkey_proto::offline::OfflineFido2;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

pub const TOUCH: &str = "Offline: touch your security key";
pub const KEY_PIN_LABEL: &str = "Offline: security key PIN:";
/// Wrong PINs accepted in one offline smartcard login (as online).
const MAX_PIN_TRIES: u32 = 3;
pub const CLONED: &str =
    "Security key refused: its signature counter did not increase (possible cloned key)";

/// The bundle and counters one offline login applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Limits {
    user: String,
    client_id: String,
    payload: String,
    max_logins: u32,
    max_failures: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyStage {
    AwaitPin,
    Touch(Uv),
}

/// An offline security-key login in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineKey {
    lim: Limits,
    creds: Vec<OfflineFido2>,
    rp_id: String,
    uv_required: bool,
    stage: KeyStage,
    settings: fido2::Settings,
}

/// An offline smartcard login in progress (PIN prompt out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineCard {
    lim: Limits,
    module: PathBuf,
    /// The cached (signed) certificate: its key verifies, not whatever the card holds.
    cert: Certificate,
    label: String,
    wrong_pins: u32,
}

impl OfflineCard {
    pub fn prompt(&self) -> Step {
        Step::Prompt {
            label: self.label.clone(),
            echo: false,
        }
    }
}

/// How an offline login starts.
pub enum Hw {
    Key(Box<OfflineKey>, Step),
    Card(Box<OfflineCard>, Step),
    /// Go on with the token app's QR challenge.
    Qr,
    Fail(String),
}

/// What follows an answer or a Continue.
pub enum HwNext {
    Step(Step),
    Done(Verdict),
}

fn challenge() -> Result<Vec<u8>, String> {
    latchkey_crypto::random_bytes(32).map_err(|e| e.to_string())
}

impl Offline {
    fn hw_fail(&self, lim: &Limits, method: &str, reason: String, log: &str) -> Hw {
        tracing::warn!(user = %lim.user, client_id = %lim.client_id, method, why = log, "offline login refused");
        self.record_m(&lim.user, &lim.client_id, method, "failure", log);
        Hw::Fail(reason)
    }

    /// Picks the offline method for this login (see the module comment).
    pub async fn begin_hw(
        &self,
        user: &str,
        client_id: &str,
        settings: &fido2::Settings,
        module: Option<&Path>,
    ) -> Hw {
        let Checked {
            stored,
            bundle,
            now,
        } = match self.check(user, client_id) {
            Ok(c) => c,
            Err(reason) => return Hw::Fail(reason),
        };
        let lim = Limits {
            user: user.to_string(),
            client_id: client_id.to_string(),
            payload: stored.payload,
            max_logins: bundle.max_logins,
            max_failures: bundle.max_failures,
        };
        let card_ok = bundle.allows(client_id, Method::Smartcard) && !bundle.smartcards.is_empty();
        let key_ok = bundle.allows(client_id, Method::Fido2) && !bundle.fido2.is_empty();
        let qr_ok = bundle.allows(client_id, Method::Push) && !bundle.apps.is_empty();
        if card_ok && let Some(module) = module.map(Path::to_path_buf) {
            let fps: Vec<String> = bundle
                .smartcards
                .iter()
                .map(|s| s.fingerprint.clone())
                .collect();
            let m = module.clone();
            let found =
                tokio::task::spawn_blocking(move || smartcard::find_registered(&m, &fps)).await;
            match found {
                Ok(Ok(card)) => {
                    return self.card_start(lim, module, &bundle.smartcards, &card, now);
                }
                Ok(Err(e)) => {
                    tracing::info!(error = %e, "offline: no card with a cached certificate")
                }
                Err(e) => tracing::warn!(error = %e, "offline: smartcard lookup failed"),
            }
        }
        if key_ok {
            let s = settings.clone();
            let present = tokio::task::spawn_blocking(move || !fido2::open_all(&s).is_empty())
                .await
                .unwrap_or(false);
            if present || !qr_ok {
                return self.key_start(lim, &bundle.fido2, settings).await;
            }
        }
        if qr_ok {
            return Hw::Qr;
        }
        if card_ok {
            return self.hw_fail(
                &lim,
                "smartcard",
                smartcard::NO_CARD.into(),
                "no card with a cached certificate",
            );
        }
        self.hw_fail(
            &lim,
            "app_qr",
            no_bundle(user),
            "no offline method for this client_id",
        )
    }

    fn card_start(
        &self,
        lim: Limits,
        module: PathBuf,
        cached: &[latchkey_proto::offline::OfflineSmartcard],
        card: &smartcard::CardCert,
        now: i64,
    ) -> Hw {
        let cert = cached
            .iter()
            .find(|s| s.fingerprint.eq_ignore_ascii_case(&card.cert.fingerprint))
            .and_then(|s| B64.decode(s.cert_der.as_bytes()).ok())
            .and_then(|der| Certificate::from_der(&der).ok())
            .filter(|c| c.fingerprint.eq_ignore_ascii_case(&card.cert.fingerprint));
        let Some(cert) = cert else {
            return self.hw_fail(
                &lim,
                "smartcard",
                no_bundle(&lim.user),
                "cached certificate malformed",
            );
        };
        // `now` passed the clock guard in `check`.
        match cert.check_validity(now) {
            Ok(()) => {}
            Err(CertError::Expired(t)) => {
                return self.hw_fail(
                    &lim,
                    "smartcard",
                    format!(
                        "Smartcard certificate expired on {}: ask your administrator for a new one",
                        utc_date(t)
                    ),
                    "cached certificate expired",
                );
            }
            Err(e) => {
                return self.hw_fail(
                    &lim,
                    "smartcard",
                    format!("Smartcard certificate not usable: {e}"),
                    "cached certificate not valid now",
                );
            }
        }
        let who = if card.token_label.is_empty() {
            cert.subject.clone()
        } else {
            format!("{} ({})", card.token_label, cert.subject)
        };
        let c = OfflineCard {
            lim,
            module,
            cert,
            label: format!("Offline: smartcard PIN for {who}:"),
            wrong_pins: 0,
        };
        let step = c.prompt();
        Hw::Card(Box::new(c), step)
    }

    async fn key_start(
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
        let (settings, rp_id, ch) = (k.settings.clone(), k.rp_id.clone(), challenge.clone());
        let ran = tokio::task::spawn_blocking(move || {
            fido2::get_assertion_any(
                &settings,
                &AssertionRequest {
                    rp_id: &rp_id,
                    challenge: &ch,
                    allow_list: &allow,
                    uv: &uv,
                },
            )
        })
        .await;
        let a = match ran {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => {
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
            Err(e) => {
                self.record_m(
                    &lim.user,
                    &lim.client_id,
                    "fido2",
                    "failure",
                    "security key task failed",
                );
                return Verdict::Failed(format!("Security key error: {e}"));
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
                tracing::error!(error = %e, "offline counter unreadable");
                self.record_m(
                    &lim.user,
                    &lim.client_id,
                    "fido2",
                    "failure",
                    "state database error",
                );
                return Verdict::Failed(
                    "Offline login refused: the agent's state database failed".into(),
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
                    tracing::error!(error = %e, "offline counter not stored");
                    self.record_m(
                        &lim.user,
                        &lim.client_id,
                        "fido2",
                        "failure",
                        "state database error",
                    );
                    return Verdict::Failed(
                        "Offline login refused: the agent's state database failed".into(),
                    );
                }
            }
        }
        self.count_success(lim, "fido2")
    }

    /// The smartcard PIN prompt was answered: sign a fresh challenge on the card and verify
    /// it with the cached certificate's key.
    pub async fn card_answer(&self, c: &mut OfflineCard, pin: &str) -> HwNext {
        if pin.is_empty() {
            return HwNext::Step(Step::Info {
                text: "No PIN typed.".into(),
            });
        }
        let lim = c.lim.clone();
        let challenge = match challenge() {
            Ok(ch) => ch,
            Err(e) => {
                tracing::error!(error = %e, "no randomness for an offline challenge");
                self.record_m(
                    &lim.user,
                    &lim.client_id,
                    "smartcard",
                    "failure",
                    "challenge error",
                );
                return HwNext::Done(Verdict::Failed(
                    "Offline login refused: the challenge could not be made".into(),
                ));
            }
        };
        let pin = Zeroizing::new(pin.to_string());
        let (module, fp, ch) = (
            c.module.clone(),
            c.cert.fingerprint.clone(),
            challenge.clone(),
        );
        let signed =
            tokio::task::spawn_blocking(move || smartcard::sign_challenge(&module, &fp, &pin, &ch))
                .await;
        let sig = match signed {
            Ok(Ok(sig)) => sig,
            Ok(Err(CardError::WrongPin(tries))) => {
                c.wrong_pins += 1;
                let text = CardError::WrongPin(tries).to_string();
                let verdict = self.count_failure(&lim, "smartcard", "wrong PIN", text.clone());
                if c.wrong_pins >= MAX_PIN_TRIES {
                    return HwNext::Done(Verdict::Failed(format!(
                        "{text}; login refused after {MAX_PIN_TRIES} tries"
                    )));
                }
                // The failure count may have just wiped the bundle: that ends the login.
                return match self.db.bundle_get(&lim.user) {
                    Ok(Some(s)) if s.payload == lim.payload => HwNext::Step(Step::Info { text }),
                    _ => HwNext::Done(verdict),
                };
            }
            Ok(Err(e)) => {
                tracing::warn!(user = %lim.user, error = %e, "offline smartcard signing failed");
                self.record_m(
                    &lim.user,
                    &lim.client_id,
                    "smartcard",
                    "failure",
                    &format!("card: {e}"),
                );
                return HwNext::Done(Verdict::Failed(e.to_string()));
            }
            Err(e) => {
                self.record_m(
                    &lim.user,
                    &lim.client_id,
                    "smartcard",
                    "failure",
                    "card task failed",
                );
                return HwNext::Done(Verdict::Failed(format!("Smartcard error: {e}")));
            }
        };
        if c.cert
            .verify_signature(sig.mechanism, &challenge, &sig.bytes)
            .is_err()
        {
            return HwNext::Done(self.count_failure(
                &lim,
                "smartcard",
                "signature does not verify with the cached certificate",
                "Smartcard answer rejected".into(),
            ));
        }
        HwNext::Done(self.count_success(&lim, "smartcard"))
    }

    fn count_success(&self, lim: &Limits, method: &str) -> Verdict {
        let (user, cid, max) = (lim.user.as_str(), lim.client_id.as_str(), lim.max_logins);
        let counted = self.db.bundle_count_login(user, &lim.payload, max, |n| {
            self.event_m(
                user,
                cid,
                method,
                "success",
                &format!("offline login {n} of {max}"),
            )
        });
        match counted {
            Ok(Some(n)) => {
                tracing::info!(
                    user,
                    client_id = cid,
                    method,
                    n,
                    max,
                    "offline login: MFA passed"
                );
                if n >= max {
                    self.wipe(user, "last offline login used");
                    Verdict::Passed(
                        "Offline login accepted; that was the last one: log in once while connected"
                            .into(),
                    )
                } else {
                    Verdict::Passed(format!("Offline login accepted ({} left)", max - n))
                }
            }
            Ok(None) => {
                self.record_m(user, cid, method, "failure", "bundle gone or used up");
                Verdict::Failed(no_bundle(user))
            }
            Err(e) => {
                tracing::error!(error = %e, "offline login not counted");
                self.record_m(user, cid, method, "failure", "state database error");
                Verdict::Failed("Offline login refused: the agent's state database failed".into())
            }
        }
    }

    /// Counts one wrong answer (wiping the bundle at `max_failures`) and records it.
    fn count_failure(&self, lim: &Limits, method: &str, log: &str, message: String) -> Verdict {
        let (user, cid, max) = (lim.user.as_str(), lim.client_id.as_str(), lim.max_failures);
        tracing::warn!(
            user,
            client_id = cid,
            method,
            why = log,
            "offline answer rejected"
        );
        let counted = self.db.bundle_count_failure(user, &lim.payload, |f| {
            let reason = match f {
                Some(f) if f >= max => format!("{log}; {f} failures: bundle wiped"),
                Some(f) => format!("{log} ({f} of {max})"),
                None => format!("{log}; bundle gone"),
            };
            self.event_m(user, cid, method, "failure", &reason)
        });
        match counted {
            Ok(Some(f)) if f >= max => {
                self.wipe(user, "too many offline failures");
                Verdict::Failed(format!(
                    "{message}; too many failures, offline login for {user} is disabled; log in once while connected"
                ))
            }
            Ok(_) => Verdict::Failed(message),
            Err(e) => {
                tracing::error!(error = %e, "offline failure not counted");
                self.record_m(
                    user,
                    cid,
                    method,
                    "failure",
                    &format!("{log}; state database error"),
                );
                Verdict::Failed(message)
            }
        }
    }
}
