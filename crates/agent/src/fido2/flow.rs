//! The security-key part of a login conversation (a child of the login engine).
//!
//! Steps: [PIN prompt, echo off, when the policy requires user verification and the key has
//! a PIN] → Info "Touch your security key" → on Continue, authenticatorGetAssertion with the
//! server's challenge and allow list, bounded by `fido2_timeout` → the answer goes to the
//! server, which decides. A local failure (no key, timeout, wrong PIN) goes back to the
//! method prompt when other methods are offered, and ends the login when the key was the
//! only one.

use super::settle::mfa_passed;
use super::{Login, LoginEngine, Outcome, Progress, Server, fail};
use crate::fido2::{self, Uv, UvPlan};
use latchkey_crypto::webauthn::{b64url, b64url_decode};
use latchkey_proto::agent::Step;
use latchkey_proto::fido2::{LoginFido2, UserVerification};
use latchkey_proto::login::LoginStepResult;
use zeroize::Zeroizing;

pub const TOUCH: &str = "Touch your security key";
pub const PIN_LABEL: &str = "Security key PIN:";

/// The method prompt to go back to: (label, push offered).
type Menu = Option<(String, bool)>;

#[derive(Clone, PartialEq, Eq)]
pub enum Stage {
    /// The PIN prompt is out.
    AwaitPin,
    /// "Touch your security key" is out; Continue runs the assertion.
    Touch(Uv),
    /// A retry message is out; Continue starts over with the key.
    Again,
}

#[derive(Clone, PartialEq, Eq)]
pub struct Flow {
    pub stage: Stage,
    pub menu: Menu,
}

impl std::fmt::Debug for Flow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let stage = match &self.stage {
            Stage::AwaitPin => "AwaitPin".to_string(),
            Stage::Touch(uv) => format!("Touch({uv:?})"),
            Stage::Again => "Again".to_string(),
        };
        f.debug_struct("Flow")
            .field("stage", &stage)
            .finish_non_exhaustive()
    }
}

/// At the method prompt, Enter (or "key") picks the security key.
pub fn picks_key(text: &str) -> bool {
    let t = text.trim();
    t.is_empty() || t.eq_ignore_ascii_case("key") || t.eq_ignore_ascii_case("fido2")
}

impl Login {
    /// Back to the method prompt with `msg`, or the end of the login when the key was the
    /// only method.
    fn fido2_local_failure(&mut self, tx: String, menu: Menu, msg: String) -> Step {
        tracing::info!(user = %self.req.user, reason = %msg, "security key step failed");
        match menu {
            Some((label, push)) => {
                self.progress = Progress::InfoThenPrompt { tx, label, push };
                Step::Info { text: msg }
            }
            None => self.finish(fail(msg)),
        }
    }

    pub(super) async fn fido2_start(&mut self, tx: String, menu: Menu) -> Step {
        let Some(req) = self.fido2.clone() else {
            return self.finish(fail(
                "Login refused: protocol error (no security key challenge)",
            ));
        };
        let required = req.user_verification == UserVerification::Required;
        let preferred = req.user_verification == UserVerification::Preferred;
        let uv = if required || preferred {
            let settings = self.fido2_settings.clone();
            let info = tokio::task::spawn_blocking(move || fido2::probe(&settings)).await;
            let info = match info {
                Ok(Ok(i)) => i,
                Ok(Err(e)) => {
                    let msg = e.user_message(self.fido2_settings.timeout);
                    return self.fido2_local_failure(tx, menu, msg);
                }
                Err(e) => return self.fido2_local_failure(tx, menu, e.to_string()),
            };
            match fido2::uv_plan(&info, required, preferred) {
                UvPlan::NeedPin => {
                    self.progress = Progress::Fido2 {
                        tx,
                        flow: Flow {
                            stage: Stage::AwaitPin,
                            menu,
                        },
                    };
                    return Step::Prompt {
                        label: PIN_LABEL.into(),
                        echo: false,
                    };
                }
                UvPlan::Impossible => {
                    let msg = "This login needs a PIN or fingerprint on your security key, and none is set up".to_string();
                    return self.fido2_local_failure(tx, menu, msg);
                }
                UvPlan::BuiltIn => Uv::BuiltIn,
                UvPlan::None => Uv::None,
            }
        } else {
            Uv::None
        };
        self.fido2_touch(tx, menu, uv)
    }

    fn fido2_touch(&mut self, tx: String, menu: Menu, uv: Uv) -> Step {
        self.progress = Progress::Fido2 {
            tx,
            flow: Flow {
                stage: Stage::Touch(uv),
                menu,
            },
        };
        Step::Info { text: TOUCH.into() }
    }

    pub(super) async fn fido2_answer(&mut self, tx: String, flow: Flow, text: &str) -> Step {
        if flow.stage != Stage::AwaitPin {
            return self.finish(fail("Login refused: protocol error (unexpected answer)"));
        }
        if text.is_empty() {
            return self.fido2_local_failure(tx, flow.menu, "No PIN typed".into());
        }
        let pin = Uv::Pin(Zeroizing::new(text.to_string()));
        self.fido2_touch(tx, flow.menu, pin)
    }

    pub(super) async fn fido2_continue<S: Server>(
        &mut self,
        engine: &LoginEngine<S>,
        tx: String,
        flow: Flow,
    ) -> Step {
        let uv = match flow.stage {
            Stage::Touch(uv) => uv,
            Stage::Again => return self.fido2_start(tx, flow.menu).await,
            Stage::AwaitPin => {
                return self.finish(fail("Login refused: protocol error (unexpected continue)"));
            }
        };
        let Some(req) = self.fido2.clone() else {
            return self.finish(fail(
                "Login refused: protocol error (no security key challenge)",
            ));
        };
        let (Some(challenge), Some(allow)) = (
            b64url_decode(&req.challenge),
            req.allow_credentials
                .iter()
                .map(|c| b64url_decode(c))
                .collect::<Option<Vec<_>>>(),
        ) else {
            return self.finish(fail(
                "Login refused: the server's security key challenge is malformed",
            ));
        };
        let ran = fido2::get_assertion_blocking(
            self.fido2_settings.clone(),
            req.rp_id.clone(),
            challenge,
            allow,
            uv,
        )
        .await;
        let a = match ran {
            Ok(a) => a,
            Err(e) => {
                let msg = e.user_message(self.fido2_settings.timeout);
                return self.fido2_local_failure(tx, flow.menu, msg);
            }
        };
        let answer = LoginFido2 {
            credential_id: b64url(&a.credential_id),
            authenticator_data: b64url(&a.authenticator_data),
            signature: b64url(&a.signature),
            client_data_json: b64url(a.client_data_json.as_bytes()),
        };
        let reply = engine
            .server
            .login_fido2(&tx, &self.req.user, &answer)
            .await;
        match engine.settle(&self.req.user, reply, mfa_passed).await {
            Outcome::Answer(LoginStepResult::Success { message }) => {
                self.finish(Step::Success { message })
            }
            Outcome::Answer(LoginStepResult::Deny { reason }) => self.finish(fail(reason)),
            Outcome::Answer(LoginStepResult::Retry { message, .. }) => match flow.menu {
                Some((label, push)) => {
                    self.progress = Progress::InfoThenPrompt { tx, label, push };
                    Step::Info { text: message }
                }
                None => {
                    self.progress = Progress::Fido2 {
                        tx,
                        flow: Flow {
                            stage: Stage::Again,
                            menu: None,
                        },
                    };
                    Step::Info { text: message }
                }
            },
            Outcome::Answer(LoginStepResult::Pending { .. }) => self.finish(fail(
                "Login refused: protocol error (pending answer to a security key)",
            )),
            Outcome::Unreachable(why) => self.unreachable(engine, &why).await,
            Outcome::Refused { code, message } => self.refused(&code, &message),
        }
    }
}
