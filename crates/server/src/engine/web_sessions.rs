//! Web sessions (issue 23, docs/web.md "Security model"): what a browser's cookie stands
//! for. The cookie is 32 random bytes; only its SHA-256 is stored, so a copy of the database
//! opens no session. A session ends when it has been idle for `web_session_idle`, at its
//! absolute expiry (`web_session_max` from sign-in for admins, at most an hour for users),
//! when its subject is gone or disabled, or at sign-out.

use super::{Actor, Engine, EngineError, Result, now};
use crate::config::USER_SESSION_MAX;
use crate::store::WebSessionRow;

/// Who a session is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Admin(String),
    User { name: String, strength: Strength },
}

/// How a user session was opened. Invite: by a one-time link (may add tokens, nothing else
/// that weakens the account); Strong: a passkey/security key with user verification, or a
/// TOTP code plus a token-app push approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strength {
    Invite,
    Strong,
}

impl Strength {
    fn as_str(self) -> &'static str {
        match self {
            Strength::Invite => "invite",
            Strength::Strong => "strong",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSession {
    pub subject: Subject,
    /// The session's CSRF token: every form of its pages carries it.
    pub csrf: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
}

/// The SHA-256 a cookie value is stored as.
fn cookie_hash(cookie: &str) -> String {
    latchkey_crypto::sha256_hex(cookie.as_bytes())
}

/// 32 random bytes, base32: a cookie value or a CSRF token.
pub(crate) fn random_token() -> Result<String> {
    let raw =
        latchkey_crypto::random_bytes(32).map_err(|e| EngineError::Internal(e.to_string()))?;
    Ok(latchkey_crypto::base32_encode(&raw))
}

fn subject_of(row: &WebSessionRow) -> Option<Subject> {
    match (row.kind.as_str(), row.strength.as_str()) {
        ("admin", _) => Some(Subject::Admin(row.subject.clone())),
        ("user", "invite") => Some(Subject::User {
            name: row.subject.clone(),
            strength: Strength::Invite,
        }),
        ("user", "strong") => Some(Subject::User {
            name: row.subject.clone(),
            strength: Strength::Strong,
        }),
        _ => None,
    }
}

impl Subject {
    /// The actor this session's actions are audited as.
    pub fn actor(&self) -> Actor {
        match self {
            Subject::Admin(name) => Actor::WebAdmin(name.clone()),
            Subject::User { name, .. } => Actor::User(name.clone()),
        }
    }
}

impl Engine {
    /// Opens a session; returns the cookie value (32 random bytes, base32) — only its
    /// SHA-256 is stored — and the session.
    pub async fn web_session_open(
        &self,
        subject: Subject,
        ip: &str,
    ) -> Result<(String, WebSession)> {
        let cookie = random_token()?;
        let csrf = random_token()?;
        let now = now();
        let (kind, name, strength, max) = match &subject {
            Subject::Admin(name) => ("admin", name.as_str(), "-", self.cfg.web_session_max),
            Subject::User { name, strength } => (
                "user",
                name.as_str(),
                strength.as_str(),
                self.cfg.web_session_max.min(USER_SESSION_MAX),
            ),
        };
        let expires_at = now + i64::try_from(max.as_secs()).unwrap_or(i64::MAX / 2);
        self.store
            .web_session_insert(&WebSessionRow {
                cookie_hash: cookie_hash(&cookie),
                kind: kind.into(),
                subject: name.into(),
                strength: strength.into(),
                csrf: csrf.clone(),
                ip: ip.chars().take(64).collect(),
                created_at: now,
                last_seen_at: now,
                expires_at,
            })
            .await?;
        Ok((
            cookie,
            WebSession {
                subject,
                csrf,
                created_at: now,
                last_seen_at: now,
                expires_at,
            },
        ))
    }

    /// The live session of a cookie value, or None (unknown, idle too long, past its
    /// absolute expiry, subject gone or disabled). Touches last_seen_at.
    pub async fn web_session(&self, cookie: &str) -> Result<Option<WebSession>> {
        // A cookie we made is 52 base32 characters; anything else is no session, unhashed.
        if cookie.len() != 52 || !cookie.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Ok(None);
        }
        let hash = cookie_hash(cookie);
        let Some((row, alive)) = self.store.web_session_get(&hash).await? else {
            return Ok(None);
        };
        let now = now();
        let idle = i64::try_from(self.cfg.web_session_idle.as_secs()).unwrap_or(i64::MAX / 2);
        let subject = subject_of(&row);
        if !alive || now >= row.expires_at || now - row.last_seen_at > idle || subject.is_none() {
            self.store.web_session_delete(&hash).await?;
            return Ok(None);
        }
        let Some(subject) = subject else {
            return Ok(None);
        };
        self.store.web_session_touch(&hash, now).await?;
        Ok(Some(WebSession {
            subject,
            csrf: row.csrf,
            created_at: row.created_at,
            last_seen_at: now,
            expires_at: row.expires_at,
        }))
    }

    pub async fn web_session_close(&self, cookie: &str) -> Result<()> {
        Ok(self.store.web_session_delete(&cookie_hash(cookie)).await?)
    }

    /// Sets the one sentence the session's next page shows (a refusal's reason, which never
    /// goes into a URL).
    pub async fn web_flash_set(&self, cookie: &str, text: &str) -> Result<()> {
        let text: String = text.chars().take(500).collect();
        Ok(self
            .store
            .web_flash_set(&cookie_hash(cookie), &text)
            .await?)
    }

    /// The sentence set by [`Engine::web_flash_set`], once.
    pub async fn web_flash_take(&self, cookie: &str) -> Result<Option<String>> {
        Ok(self.store.web_flash_take(&cookie_hash(cookie)).await?)
    }
}
