//! Offline logins with a security key (FIDO2) or a smartcard (PKCS#11), verified with the
//! public material of the signed bundle. See docs/offline.md, "Security key and smartcard".
//!
//! Order, as online: a smartcard when a card holding one of the cached certificates is
//! present, else a security key when one is plugged in (or when the token app is not
//! allowed), else the token app's QR challenge. Each ends in an explicit verdict; wrong
//! answers count toward `max_failures`, successes toward `max_logins`, and both are recorded
//! as offline events (method `fido2` or `smartcard`). The security key's steps are in `key.rs`.

use super::challenge::{Checked, no_bundle};
use super::{Attempt, Verdict, utc_date};
use crate::fido2::{self, Uv};
use crate::smartcard::{self, CardError};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use latchkey_crypto::x509::{CertError, Certificate};
use latchkey_proto::Method;
use latchkey_proto::agent::Step;
use latchkey_proto::offline::OfflineFido2;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

mod key;

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

fn challenge() -> crate::Result<Vec<u8>> {
    latchkey_crypto::random_bytes(32).map_err(|e| crate::AgentError::Local(e.to_string()))
}

impl Attempt<'_> {
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
            Err(super::Refused(reason)) => return Hw::Fail(reason),
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
        self.count_login(
            &lim.user,
            &lim.client_id,
            &lim.payload,
            lim.max_logins,
            method,
        )
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
        let counted = self.db.bundle_count_failure(user, &lim.payload);
        if let Ok(f) = &counted {
            let reason = match f {
                Some(f) if *f >= max => format!("{log}; {f} failures: bundle wiped"),
                Some(f) => format!("{log} ({f} of {max})"),
                None => format!("{log}; bundle gone"),
            };
            self.record_m(user, cid, method, "failure", &reason);
        }
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
