//! Invite links to the self-service portal (docs/web.md, "Invite links"): a one-time code for
//! one user, from an admin (`latchkey user invite`, the console) or from the login screen's
//! inline enrolment (`link`). Only the code's SHA-256 is stored; a new invite replaces the
//! user's older one not used yet; redeeming it spends it once, whatever arrives together.

use super::enrol::code_hash;
use super::{Actor, Engine, EngineError, Result, Unauthorized, now};
use latchkey_proto::{Secret, UserName};

/// Default lifetime of an invite: 24 hours.
pub const INVITE_TTL: u64 = 86_400;
/// Longest lifetime of an invite: 7 days.
const MAX_TTL: u64 = 7 * 86_400;
/// Where an invite link points (the web pages' path; the code follows).
pub const INVITE_PATH: &str = "/ui/invite/";
/// What a person holding an unusable invite reads, whatever the reason (unknown, used,
/// expired, a disabled user): one sentence that says what to do.
pub const INVITE_GONE: &str = "This link was already used, has expired or is not valid: ask your administrator for a new one.";

/// An invite just issued: its link is shown once, never stored.
#[derive(Debug, Clone)]
pub struct Invite {
    pub user: UserName,
    /// `<public base>/ui/invite/<code>`.
    pub url: Secret,
    pub expires_at: i64,
}

/// A `Host` header worth building a link from: a host name or address and a port, nothing
/// else (no user info, path or spaces).
fn clean_host(host: &str) -> Option<&str> {
    let ok = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    ok.then_some(host)
}

impl Engine {
    /// The base of links handed to people (`https://HOST[:PORT]`): `web_origin` when the
    /// server knows its public address (set, or derived from `web_rp_id`), else the host the
    /// caller reached it by (its `Host` header, as the CLI's and agents' links do), else the
    /// listen address.
    pub fn public_base(&self, host: Option<&str>) -> String {
        if let Some(origin) = &self.cfg.web_origin {
            return origin.clone();
        }
        match host.and_then(clean_host) {
            Some(h) => format!("https://{h}"),
            None => format!("https://{}", self.cfg.listen),
        }
    }

    /// Issues an invite for the enabled user `name`, valid `expires_in` seconds (24 h unless
    /// asked, at most 7 days), replacing the user's older invite not used yet.
    pub async fn user_invite(
        &self,
        actor: &Actor,
        name: &str,
        expires_in: Option<u64>,
        host: Option<&str>,
    ) -> Result<Invite> {
        let ttl = expires_in.unwrap_or(INVITE_TTL);
        if !(60..=MAX_TTL).contains(&ttl) {
            return Err(EngineError::Invalid(
                "expires_in must be between 1 minute and 7 days".into(),
            ));
        }
        let user = self.existing_user(name).await?;
        if !user.enabled {
            return Err(EngineError::Invalid(format!(
                "user {name:?} is disabled: enable it before inviting"
            )));
        }
        let invite = self.invite_issue(actor, &user.name, ttl, host).await?;
        self.audit(
            actor,
            "user.invite",
            Some(&user.name),
            None,
            "ok",
            format!("invite link issued, valid {ttl} s"),
        )
        .await;
        Ok(invite)
    }

    /// Draws, stores (hashed) and returns a new invite for `user`.
    pub(super) async fn invite_issue(
        &self,
        actor: &Actor,
        user: &str,
        ttl: u64,
        host: Option<&str>,
    ) -> Result<Invite> {
        let raw =
            latchkey_crypto::random_bytes(32).map_err(|e| EngineError::Internal(e.to_string()))?;
        let code = latchkey_crypto::base32_encode(&raw).to_ascii_lowercase();
        let now = now();
        let expires_at = now + ttl as i64;
        self.store
            .invite_create(&code_hash(&code), user, &actor.label(), now, expires_at)
            .await?;
        let url = format!("{}{INVITE_PATH}{code}", self.public_base(host));
        Ok(Invite {
            user: super::stored(user.to_string())?,
            url: Secret::from(url),
            expires_at,
        })
    }

    /// Spends an invite code: the user it was for, once. Unknown, used and expired codes,
    /// and the invite of a user disabled or removed since, are one refusal
    /// ([`INVITE_GONE`]); `ip` goes to the audit log, the code never does.
    pub async fn invite_redeem(&self, code: &str, ip: &str) -> Result<UserName> {
        let refused = || EngineError::Unauthorized(Unauthorized::InviteCode);
        let ip: String = ip.chars().filter(|c| !c.is_control()).take(64).collect();
        let used = if code.is_empty() || code.len() > 128 {
            None
        } else {
            self.store.invite_consume(&code_hash(code), now()).await?
        };
        let Some(name) = used else {
            self.audit(
                &Actor::Anonymous,
                "invite.redeem",
                None,
                None,
                "deny",
                format!("unknown, used or expired invite from {ip}"),
            )
            .await;
            return Err(refused());
        };
        let user = self.store.user_get(&name).await?;
        if !user.is_some_and(|u| u.enabled) {
            self.audit(
                &Actor::Anonymous,
                "invite.redeem",
                Some(&name),
                None,
                "deny",
                format!("invite of a disabled or removed user, from {ip}"),
            )
            .await;
            return Err(refused());
        }
        self.audit(
            &Actor::User(name.clone()),
            "invite.redeem",
            Some(&name),
            None,
            "ok",
            format!("invite link opened from {ip}"),
        )
        .await;
        Ok(super::stored(name)?)
    }
}
