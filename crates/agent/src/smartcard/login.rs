//! The login engine's smartcard conversation: find the registered certificate on a card, ask
//! for the PIN (echo off), sign the server's challenge on the card, post it.
//!
//! When the user also has a code or push method, an empty PIN answer (or no card) goes on to
//! the code prompt; when the smartcard is the only method, no card is a refusal.

use super::{CardError, NO_CARD, find_registered, sign_challenge};
use crate::engine::{LoginEngine, Outcome, Server};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use latchkey_proto::agent::Step;
use latchkey_proto::login::LoginStepResult;
use latchkey_proto::smartcard::{LoginSmartcard, SmartcardRequest};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Wrong PINs accepted in one login before the agent gives up (the card counts too).
const MAX_PIN_TRIES: u32 = 3;

/// A smartcard login in progress (the engine keeps it in its state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardLogin {
    pub tx: String,
    module: PathBuf,
    challenge: Vec<u8>,
    fingerprint: String,
    label: String,
    /// The code prompt (label, push offered) to go on to with an empty answer.
    pub fallback: Option<(String, bool)>,
    wrong_pins: u32,
}

impl CardLogin {
    pub fn prompt(&self) -> Step {
        Step::Prompt {
            label: self.label.clone(),
            echo: false,
        }
    }
}

pub enum Begin {
    /// Ask for the PIN.
    Ask(Box<CardLogin>, Step),
    /// No usable card, but another method is offered: go on with it.
    Skip,
    Fail(String),
}

pub enum Next {
    /// Show this step and stay in the smartcard conversation.
    Step(Step),
    /// Go on to the code prompt.
    Fallback,
    /// The login ends with this step.
    Done(Step),
    Unreachable(String),
    Refused {
        code: String,
        message: String,
    },
}

fn fail(reason: impl Into<String>) -> Step {
    Step::Failure {
        reason: reason.into(),
    }
}

fn date(unix: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix.max(0) as u64);
    let s = humantime::format_rfc3339_seconds(t).to_string();
    s.get(..10).unwrap_or(&s).to_string()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Looks for a card holding one of the registered certificates.
pub async fn begin(
    module: Option<&Path>,
    tx: &str,
    req: &SmartcardRequest,
    fallback: Option<(String, bool)>,
) -> Begin {
    let give_up = |why: String, fallback: &Option<(String, bool)>| {
        if fallback.is_some() {
            tracing::info!(reason = %why, "smartcard not usable; offering the other methods");
            Begin::Skip
        } else {
            Begin::Fail(why)
        }
    };
    let Some(module) = module.map(Path::to_path_buf) else {
        tracing::warn!(
            "smartcard offered but no PKCS#11 module: set smartcard_module in agent.toml"
        );
        return give_up(NO_CARD.to_string(), &fallback);
    };
    let Ok(challenge) = B64.decode(&req.challenge) else {
        return Begin::Fail(
            "Login refused: the server sent a malformed smartcard challenge".into(),
        );
    };
    let fps = req.fingerprints.clone();
    let m = module.clone();
    let found = tokio::task::spawn_blocking(move || find_registered(&m, &fps)).await;
    let card = match found {
        Ok(Ok(card)) => card,
        Ok(Err(e)) => {
            if !matches!(e, CardError::NoCard | CardError::NoCertificate) {
                tracing::warn!(error = %e, "smartcard lookup failed");
            }
            return give_up(e.to_string(), &fallback);
        }
        Err(e) => return Begin::Fail(format!("Smartcard error: {e}")),
    };
    let now = now();
    if card.cert.not_after < now {
        return give_up(
            format!(
                "Smartcard certificate expired on {}: ask your administrator for a new one",
                date(card.cert.not_after)
            ),
            &fallback,
        );
    }
    let or_code = if fallback.is_some() {
        " (or press Enter for another method)"
    } else {
        ""
    };
    let who = if card.token_label.is_empty() {
        card.cert.subject.clone()
    } else {
        format!("{} ({})", card.token_label, card.cert.subject)
    };
    let c = CardLogin {
        tx: tx.to_string(),
        module,
        challenge,
        fingerprint: card.cert.fingerprint.clone(),
        label: format!("Smartcard PIN for {who}{or_code}:"),
        fallback,
        wrong_pins: 0,
    };
    let step = c.prompt();
    Begin::Ask(Box::new(c), step)
}

/// The person answered the PIN prompt.
pub async fn answer<S: Server>(
    c: &mut CardLogin,
    engine: &LoginEngine<S>,
    user: &str,
    pin: &str,
) -> Next {
    if pin.is_empty() {
        if c.fallback.is_some() {
            return Next::Fallback;
        }
        return Next::Step(Step::Info {
            text: "No PIN typed.".into(),
        });
    }
    let pin = Zeroizing::new(pin.to_string());
    let (module, fp, challenge) = (c.module.clone(), c.fingerprint.clone(), c.challenge.clone());
    let signed =
        tokio::task::spawn_blocking(move || sign_challenge(&module, &fp, &pin, &challenge)).await;
    let sig = match signed {
        Ok(Ok(sig)) => sig,
        Ok(Err(CardError::WrongPin(tries))) => {
            c.wrong_pins += 1;
            let text = CardError::WrongPin(tries).to_string();
            if c.wrong_pins >= MAX_PIN_TRIES {
                return Next::Done(fail(format!(
                    "{text}; login refused after {MAX_PIN_TRIES} tries"
                )));
            }
            return Next::Step(Step::Info { text });
        }
        Ok(Err(e)) => {
            tracing::warn!(user, error = %e, "smartcard signing failed");
            return Next::Done(fail(e.to_string()));
        }
        Err(e) => return Next::Done(fail(format!("Smartcard error: {e}"))),
    };
    let req = LoginSmartcard {
        fingerprint: c.fingerprint.clone(),
        signature: B64.encode(&sig.bytes),
        mechanism: sig.mechanism.as_str().to_string(),
    };
    let reply = engine.server().login_smartcard(&c.tx, user, &req).await;
    match engine
        .settle(user, reply, crate::engine::settle::mfa_passed)
        .await
    {
        Outcome::Answer(LoginStepResult::Success { message }) => {
            Next::Done(Step::Success { message })
        }
        Outcome::Answer(LoginStepResult::Deny { reason }) => Next::Done(fail(reason)),
        Outcome::Answer(LoginStepResult::Retry { message, .. }) => {
            Next::Step(Step::Info { text: message })
        }
        Outcome::Answer(LoginStepResult::Pending { .. }) => Next::Done(fail(
            "Login refused: protocol error (pending answer to a smartcard)",
        )),
        Outcome::Unreachable(why) => Next::Unreachable(why),
        Outcome::Refused { code, message } => Next::Refused { code, message },
    }
}
