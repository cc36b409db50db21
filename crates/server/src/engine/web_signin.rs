//! Signing in to the self-service portal (docs/web.md): no single factor opens a Strong
//! session. Two ways, both name first:
//!
//! - a security key or passkey in the browser, with user verification (WebAuthn get);
//! - a one-time code, then a push approval in the token app (number matching). The code
//!   must come from another token than a token app's own TOTP seed: the app approves the
//!   push, and one phone is one factor.
//!
//! The seam (docs/decisions.md, "Self-service portal"): each step is a login transaction of
//! the portal's pseudo-machine [`WEB_MACHINE`] under the `*` policy, so the code, the key's
//! assertion and the push go through the very checks a login screen's do — the user's
//! lockout, the transaction's attempts, the replay floor, the sign counter, the push's
//! number and signature — and are audited as such (`machine:web`). No offline bundle is
//! ever attached: these answers never reach `with_offline`.

use super::fido2::Party;
use super::login::Limits;
use super::messages::Said;
use super::otp::{AppSeeds, OtpJudged};
use super::web_sessions::Strength;
use super::{Engine, EngineError, PushOutcome, Result, new_tx_id, now};
use crate::policy;
use crate::store::NewTx;
use latchkey_crypto::webauthn::b64url;
use latchkey_proto::app::PushStartResult;
use latchkey_proto::fido2::LoginFido2;
use latchkey_proto::login::LoginStepResult;
use latchkey_proto::{Method, UserName};
use std::time::Duration;

/// The machine id of the portal's own login transactions. Real machine ids are random
/// base32 of 16 characters or more, so this one is never a machine's.
pub const WEB_MACHINE: &str = "web";
/// What the token app shows as the host of a portal sign-in.
const WEB_HOST: &str = "self-service portal";
/// A portal ceremony (a code, a key's challenge) lives 2 minutes.
const WEB_TX_TTL: i64 = 120;
/// A right code of the token app's own seed, in the code + push sign-in.
pub const APP_SEED_REFUSED: &str =
    "Use a security key, or a code from an authenticator app other than the latchkey app.";
/// One refusal for a name that cannot sign in (unknown, disabled, nothing registered).
pub const CODE_SIGNIN_REFUSED: &str = "Sign-in refused: check the name and the code.";

/// A user signed in: the session to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIn {
    pub user: UserName,
    pub strength: Strength,
}

/// What a right code leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeSignin {
    /// The push is out: show `number`, wait on `ceremony` (a transaction id).
    Push {
        ceremony: String,
        number: u32,
        expires_in: u64,
    },
    Refused(String),
}

/// Where a push sign-in stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushSignin {
    Waiting,
    SignedIn(SignedIn),
    Refused(String),
}

/// The options of a WebAuthn `get` for the browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyChallenge {
    /// The transaction the assertion answers.
    pub ceremony: String,
    pub rp_id: String,
    /// base64url
    pub challenge: String,
    /// base64url credential ids of the user registered under `web_rp_id`.
    pub allow_credentials: Vec<String>,
    pub timeout_ms: u64,
}

impl Engine {
    /// A login transaction of the portal for `user` (from `ip`), two minutes.
    pub(super) async fn web_tx(&self, user: &str, ip: &str, now: i64) -> Result<String> {
        let tx = new_tx_id()?;
        let rhost: String = ip.chars().filter(|c| !c.is_control()).take(64).collect();
        self.store
            .tx_create(&NewTx {
                id: &tx,
                user_name: user,
                client_id: policy::FALLBACK,
                machine_id: WEB_MACHINE,
                rhost: Some(&rhost),
                tty: None,
                now,
                expires_at: now + WEB_TX_TTL,
            })
            .await?;
        Ok(tx.to_string())
    }

    /// An enabled user by a typed name, or None (an invalid name is nobody).
    async fn signin_user(&self, name: &str) -> Result<Option<crate::store::UserRow>> {
        if name.parse::<UserName>().is_err() {
            return Ok(None);
        }
        Ok(self.store.user_get(name).await?.filter(|u| u.enabled))
    }

    /// Step one of a code + push sign-in: the code is judged as a login's code would be;
    /// right, a push goes to the user's token apps.
    pub async fn signin_code(&self, name: &str, code: &str, ip: &str) -> Result<CodeSignin> {
        let refused = |s: &str| Ok(CodeSignin::Refused(s.to_string()));
        let Some(user) = self.signin_user(name.trim()).await? else {
            return refused(CODE_SIGNIN_REFUSED);
        };
        let now = now();
        let tx = self.web_tx(&user.name, ip, now).await?;
        let open = match self
            .open_step(
                WEB_MACHINE,
                &tx,
                Method::Otp,
                Limits::WithVerdict,
                "web.signin.code",
                now,
            )
            .await?
        {
            Ok(open) => open,
            Err(denied) => return refused(&step_words(denied)),
        };
        // The app approves the push: its own seed's code would make one phone both
        // factors, so only another token's code counts here (judged in the store).
        let result = self
            .otp_judge(open, &tx, code.trim(), now, AppSeeds::Refuse)
            .await?;
        self.store.tx_finish(&tx).await?;
        let result = match result {
            OtpJudged::Step(r) => r,
            OtpJudged::AppSeed => return refused(APP_SEED_REFUSED),
        };
        match result {
            LoginStepResult::Success { .. } => {}
            // Each sign-in is its own transaction: "attempts left" would mislead; the
            // user's lockout still counts every wrong code.
            LoginStepResult::Retry { .. } => return refused(CODE_SIGNIN_REFUSED),
            other => return refused(&step_words(other)),
        }
        // The code alone opens nothing: the push must be approved on the user's app.
        let push_tx = self.web_tx(&user.name, ip, now).await?;
        match self.push_start(WEB_MACHINE, WEB_HOST, &push_tx).await? {
            PushStartResult::Started(p) => Ok(CodeSignin::Push {
                ceremony: push_tx,
                number: p.number,
                expires_in: p.expires_in,
            }),
            PushStartResult::Step(_) => refused(
                "The code is right, but this way of signing in also needs the latchkey token app: use a security key, or ask your administrator for a link.",
            ),
        }
    }

    /// Step two: the push's outcome, waiting up to `wait`. Approved once: a Strong
    /// session for the user (a second wait on the same push is refused).
    pub async fn signin_push_wait(&self, ceremony: &str, wait: Duration) -> Result<PushSignin> {
        let Some(tx) = self.store.tx_get(ceremony).await? else {
            return Ok(PushSignin::Refused(Said::TxGone.text()));
        };
        if tx.machine_id != WEB_MACHINE {
            return Ok(PushSignin::Refused(Said::TxGone.text()));
        }
        match self.push_settled(WEB_MACHINE, ceremony, wait).await? {
            LoginStepResult::Success { .. } => Ok(PushSignin::SignedIn(SignedIn {
                user: super::stored(tx.user_name)?,
                strength: Strength::Strong,
            })),
            LoginStepResult::Pending { .. } => Ok(PushSignin::Waiting),
            other => Ok(PushSignin::Refused(step_words(other))),
        }
    }

    /// The number of a push sign-in still waiting, to show again on a refreshed page.
    pub async fn signin_push_number(&self, ceremony: &str) -> Result<Option<u32>> {
        let Some(p) = self.store.push_get(ceremony).await? else {
            return Ok(None);
        };
        let tx = self.store.tx_get(ceremony).await?;
        let ours = tx.is_some_and(|t| t.machine_id == WEB_MACHINE && !t.done);
        Ok((ours && PushOutcome::of(&p, now()) == PushOutcome::Waiting)
            .then(|| u32::try_from(p.number).unwrap_or(0)))
    }

    /// Step one of a key sign-in: a single-use challenge (2 minutes) for the user's keys
    /// registered in a browser (`web_rp_id`). A name with no such key gets the refusal a
    /// name that does not exist gets.
    pub async fn key_signin_start(&self, name: &str, ip: &str) -> Result<KeyChallenge> {
        let party: Party = self.browser_party()?;
        let refused = || EngineError::Invalid(NO_KEY.into());
        let Some(user) = self.signin_user(name.trim()).await? else {
            return Err(refused());
        };
        let allow: Vec<String> = self
            .store
            .fido2_of(&user.name)
            .await?
            .into_iter()
            .filter(|c| c.rp_id == party.rp_id)
            .map(|c| c.credential_id)
            .collect();
        if allow.is_empty() {
            return Err(refused());
        }
        let now = now();
        let tx = self.web_tx(&user.name, ip, now).await?;
        let raw =
            latchkey_crypto::random_bytes(32).map_err(|e| EngineError::Internal(e.to_string()))?;
        let challenge = b64url(&raw);
        self.store
            .fido2_challenge_create(&tx, &challenge, &party.rp_id, now + WEB_TX_TTL)
            .await?;
        Ok(KeyChallenge {
            ceremony: tx,
            rp_id: party.rp_id,
            challenge,
            allow_credentials: allow,
            timeout_ms: (WEB_TX_TTL as u64) * 1000,
        })
    }

    /// Step two: the assertion, checked as a login's (this user's credential, the challenge
    /// once, `web_origin`, user verification, the signature, the sign counter).
    pub async fn key_signin_finish(
        &self,
        ceremony: &str,
        answer: &LoginFido2,
    ) -> Result<std::result::Result<SignedIn, String>> {
        let now = now();
        let open = match self
            .open_step(
                WEB_MACHINE,
                ceremony,
                Method::Fido2,
                Limits::Reserve,
                "web.signin.key",
                now,
            )
            .await?
        {
            Ok(open) => open,
            Err(denied) => return Ok(Err(step_words(denied))),
        };
        let user = open.user.name.clone();
        match self.fido2_answer(open, ceremony, answer, now).await? {
            LoginStepResult::Success { .. } => Ok(Ok(SignedIn {
                user: super::stored(user)?,
                strength: Strength::Strong,
            })),
            other => {
                // One try per challenge: a failed answer ends the ceremony.
                self.store.tx_finish(ceremony).await?;
                Ok(Err(step_words(other)))
            }
        }
    }
}

/// What a name with no key registered in a browser hears (any name alike).
pub const NO_KEY: &str = "No security key or passkey is registered for this name in the browser: sign in with a code and your phone, or ask your administrator for a link.";

/// The sentence of a login step's answer.
fn step_words(r: LoginStepResult) -> String {
    match r {
        LoginStepResult::Success { message } | LoginStepResult::Pending { message } => message,
        LoginStepResult::Retry { message, .. } => message,
        LoginStepResult::Deny { reason } => reason,
    }
}
