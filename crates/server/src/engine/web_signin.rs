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
//! assertion and the push go through the very checks a login screen's do — the
//! transaction's attempts, the replay floor, the sign counter, the push's number and
//! signature — and are audited as such (`machine:web`). No offline bundle is ever
//! attached: these answers never reach `with_offline`.
//!
//! Anyone can type a name here, so the failures count toward a lockout of the portal's own
//! ([`PORTAL_MAX_FAILURES`] in a row lock portal sign-ins for [`PORTAL_LOCK_SECS`]),
//! never toward the login lockout of the machines; a user locked out of logins is refused
//! here too. Every refusal before a right factor is [`PORTAL_SIGNIN_REFUSED`], whether the name
//! is unknown, disabled, has no key, gave a wrong answer or is locked; and a name without a
//! browser key gets a challenge that looks like a real one ([`Engine::decoy_credentials`]),
//! whose answer is always refused.

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
/// The one refusal of a portal sign-in before a right factor: an unknown, disabled or
/// locked name, a name with no key, a wrong code, a wrong or junk assertion.
pub const PORTAL_SIGNIN_REFUSED: &str = "Sign-in refused: check the name, and the code or the security key. After 5 failures, signing in here waits 15 minutes.";
/// Portal sign-in failures in a row that lock portal sign-ins of the user, and for how
/// long (the login lockout is not touched).
pub const PORTAL_MAX_FAILURES: i64 = 5;
pub const PORTAL_LOCK_SECS: i64 = 15 * 60;
/// The domain of the decoy credential ids ([`Engine::decoy_credentials`]).
const DECOY_LABEL: &[u8] = b"latchkey web sign-in decoy credential ids v1";

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

    /// Step one of a code + push sign-in: the code is judged as a login's code would be
    /// (its failures toward the portal's lockout); right, a push goes to the user's token
    /// apps. Any valid name gets the same work and, short of a right code, the same answer.
    pub async fn signin_code(&self, name: &str, code: &str, ip: &str) -> Result<CodeSignin> {
        let refused = |s: &str| Ok(CodeSignin::Refused(s.to_string()));
        let name = name.trim();
        if name.parse::<UserName>().is_err() {
            return refused(PORTAL_SIGNIN_REFUSED);
        }
        let now = now();
        // A transaction whether or not the name is a user's: open_step refuses an unknown
        // or disabled one, as a locked one, each audited with its reason.
        let tx = self.web_tx(name, ip, now).await?;
        let open = match self
            .open_portal_step(
                &tx,
                Method::Otp,
                Limits::WithVerdict,
                "web.signin.code",
                now,
            )
            .await?
        {
            Ok(open) => open,
            Err(_) => return refused(PORTAL_SIGNIN_REFUSED),
        };
        let user = open.user.name.clone();
        // The app approves the push: its own seed's code would make one phone both
        // factors, so only another token's code counts here (judged in the store).
        let result = self
            .otp_judge(open, &tx, code.trim(), now, AppSeeds::Refuse)
            .await?;
        self.store.tx_finish(&tx).await?;
        match result {
            OtpJudged::Step(LoginStepResult::Success { .. }) => {}
            OtpJudged::AppSeed => return refused(APP_SEED_REFUSED),
            // Wrong, replayed, locked: one sentence (the reason is in the audit log).
            OtpJudged::Step(_) => return refused(PORTAL_SIGNIN_REFUSED),
        }
        // The code alone opens nothing: the push must be approved on the user's app.
        let push_tx = self.web_tx(&user, ip, now).await?;
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
    /// registered in a browser (`web_rp_id`). Every name gets one: a name with no such key
    /// (or no such user) gets [`Engine::decoy_credentials`] in `allow_credentials` and a
    /// ceremony whose every answer is refused. A disabled or locked user's keys are named
    /// as ever (their answer is refused at step two), so the ids never change with the
    /// account's state.
    pub async fn key_signin_start(&self, name: &str, ip: &str) -> Result<KeyChallenge> {
        let party: Party = self.browser_party()?;
        let name = name.trim();
        let valid = name.parse::<UserName>().is_ok();
        let mut allow: Vec<String> = Vec::new();
        if valid {
            allow = self
                .store
                .fido2_of(name)
                .await?
                .into_iter()
                .filter(|c| c.rp_id == party.rp_id)
                .map(|c| c.credential_id)
                .collect();
        }
        if allow.is_empty() {
            allow = self.decoy_credentials(name)?;
        }
        let now = now();
        let raw =
            latchkey_crypto::random_bytes(32).map_err(|e| EngineError::Internal(e.to_string()))?;
        let challenge = b64url(&raw);
        // An invalid name is nobody by rules anyone can read: its ceremony is not stored.
        let tx = if valid {
            let tx = self.web_tx(name, ip, now).await?;
            self.store
                .fido2_challenge_create(&tx, &challenge, &party.rp_id, now + WEB_TX_TTL)
                .await?;
            tx
        } else {
            new_tx_id()?.to_string()
        };
        Ok(KeyChallenge {
            ceremony: tx,
            rp_id: party.rp_id,
            challenge,
            allow_credentials: allow,
            timeout_ms: (WEB_TX_TTL as u64) * 1000,
        })
    }

    /// The credential ids a name without a browser key is answered: one (or two), 16 to 64
    /// bytes, as real ids are, derived from the master key and the name so that asking
    /// again answers the same ones. No authenticator has them, and none is stored.
    pub(super) fn decoy_credentials(&self, name: &str) -> Result<Vec<String>> {
        use hmac::{Hmac, Mac};
        let prf = |parts: &[&[u8]]| -> Result<[u8; 32]> {
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(self.master.as_bytes())
                .map_err(|e| EngineError::Internal(e.to_string()))?;
            mac.update(DECOY_LABEL);
            for p in parts {
                mac.update(&(p.len() as u64).to_be_bytes());
                mac.update(p);
            }
            Ok(mac.finalize().into_bytes().into())
        };
        let head = prf(&[name.as_bytes()])?;
        let count = if head[0] % 4 == 0 { 2 } else { 1 };
        let mut ids = Vec::new();
        for i in 0..count {
            let len = [16, 32, 48, 64][usize::from(head[1 + i] % 4)];
            let mut id = Vec::with_capacity(64);
            for block in 0u8..2 {
                id.extend_from_slice(&prf(&[name.as_bytes(), &[i as u8, block]])?);
            }
            id.truncate(len);
            ids.push(b64url(&id));
        }
        Ok(ids)
    }

    /// Step two: the assertion, checked as a login's (this user's credential, the challenge
    /// once, `web_origin`, user verification, the signature, the sign counter).
    pub async fn key_signin_finish(
        &self,
        ceremony: &str,
        answer: &LoginFido2,
    ) -> Result<std::result::Result<SignedIn, String>> {
        let now = now();
        // Unknown ceremony (an invalid name's), unknown, disabled or locked user: refused
        // with the one sentence (the reason is in the audit log).
        let open = match self
            .open_portal_step(
                ceremony,
                Method::Fido2,
                Limits::Reserve,
                "web.signin.key",
                now,
            )
            .await?
        {
            Ok(open) => open,
            Err(_) => return Ok(Err(PORTAL_SIGNIN_REFUSED.to_string())),
        };
        let user = open.user.name.clone();
        match self.fido2_answer(open, ceremony, answer, now).await? {
            LoginStepResult::Success { .. } => Ok(Ok(SignedIn {
                user: super::stored(user)?,
                strength: Strength::Strong,
            })),
            _ => {
                // One try per challenge: a failed answer ends the ceremony.
                self.store.tx_finish(ceremony).await?;
                Ok(Err(PORTAL_SIGNIN_REFUSED.to_string()))
            }
        }
    }
}

/// The sentence of a login step's answer.
fn step_words(r: LoginStepResult) -> String {
    match r {
        LoginStepResult::Success { message } | LoginStepResult::Pending { message } => message,
        LoginStepResult::Retry { message, .. } => message,
        LoginStepResult::Deny { reason } => reason,
    }
}
