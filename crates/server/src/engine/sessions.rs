//! Sessions: which open sessions must be locked. The agent asks about its local sessions
//! (`POST /v1/sessions/state`); admins list the sessions derived from logon/logoff events.
//!
//! A session must lock when it is older than the policy's `session.max_hours`, or when the
//! user badged out after it opened (`session.lock_on_badge_out`). A badge-out before the
//! session opened does not lock it: the person came back and logged in.

use super::{Engine, EngineError, now};
use crate::policy;
use latchkey_proto::admin::SessionPolicy;
use latchkey_proto::events::{
    LocalSession, LockReason, SessionInfo, SessionStateResponse, SessionVerdict,
};

/// Most sessions one machine may ask about at once.
const MAX_SESSIONS: usize = 1000;

/// `session.max_hours`: a number of hours (`8`, `0.5`) or a duration with a unit (`90m`, `2s`).
pub fn parse_hours(v: &str) -> Result<u64, String> {
    let secs = match v.trim().parse::<f64>() {
        Ok(h) if h.is_finite() && (0.0..=24.0 * 366.0).contains(&h) => (h * 3600.0).round() as u64,
        Ok(_) => return Err(format!("{v:?} is outside 0..=8784 hours")),
        Err(_) => humantime::parse_duration(v.trim())
            .map_err(|_| format!("{v:?} is not a number of hours or a duration (8, 0.5, 90m)"))?
            .as_secs(),
    };
    if secs > 366 * 86_400 {
        return Err(format!("{v:?} is longer than a year"));
    }
    Ok(secs)
}

/// What one session's policy and badge say now.
pub fn verdict(
    s: &LocalSession,
    p: &SessionPolicy,
    badge: Option<(&str, i64)>,
    now: i64,
) -> (Vec<(LockReason, String)>, Option<i64>) {
    let mut locks = Vec::new();
    let expires_at = (p.max_secs > 0).then(|| s.opened_at.saturating_add(p.max_secs as i64));
    if expires_at.is_some_and(|t| now >= t) {
        locks.push((LockReason::Expired, "expired".to_string()));
    }
    if p.lock_on_badge_out
        && let Some(("out", at)) = badge
        && at >= s.opened_at
    {
        locks.push((LockReason::BadgedOut, format!("badged_out:{at}")));
    }
    (locks, expires_at)
}

impl Engine {
    /// The session rules for a session of `user` opened through `client_id`; a context
    /// without its own policy falls back to `*`.
    async fn session_policy(
        &self,
        client_id: Option<&str>,
        user: &str,
    ) -> Result<SessionPolicy, EngineError> {
        let groups = self
            .store
            .user_get(user)
            .await?
            .map(|u| u.groups)
            .unwrap_or_default();
        let cid = client_id.unwrap_or(policy::FALLBACK);
        match self.policy_for(cid, user, &groups).await {
            Ok(p) => Ok(p.session),
            Err(EngineError::UnknownClient(_)) => Ok(self
                .policy_for(policy::FALLBACK, user, &groups)
                .await?
                .session),
            Err(e) => Err(e),
        }
    }

    pub async fn session_state(
        &self,
        sessions: &[LocalSession],
    ) -> Result<SessionStateResponse, EngineError> {
        if sessions.len() > MAX_SESSIONS {
            return Err(EngineError::Invalid(format!(
                "at most {MAX_SESSIONS} sessions per request"
            )));
        }
        if sessions
            .iter()
            .any(|s| s.user.len() > 256 || s.session_id.len() > 256 || s.client_id.len() > 256)
        {
            return Err(EngineError::Invalid("a session field is too long".into()));
        }
        let now = now();
        let mut out = Vec::with_capacity(sessions.len());
        for s in sessions {
            let p = self.session_policy(Some(&s.client_id), &s.user).await?;
            let badge = self.store.badge_get(&s.user).await?;
            let (locks, expires_at) =
                verdict(s, &p, badge.as_ref().map(|(st, t)| (st.as_str(), *t)), now);
            out.push(SessionVerdict {
                session_id: s.session_id.clone(),
                locks: locks
                    .into_iter()
                    .map(|(reason, trigger)| latchkey_proto::events::LockOrder { reason, trigger })
                    .collect(),
                expires_at,
                lock_when_unreachable_after: p.lock_when_unreachable_after,
            });
        }
        Ok(SessionStateResponse {
            sessions: out,
            server_time: now,
        })
    }

    /// Open sessions with their expiry and the user's badge state.
    pub async fn sessions_list(&self, user: Option<&str>) -> Result<Vec<SessionInfo>, EngineError> {
        let rows = self.store.sessions_open(user).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let p = self.session_policy(r.client_id.as_deref(), &r.user).await?;
            let badge = self.store.badge_get(&r.user).await?;
            let opened_at = r.opened_at;
            let mut info = SessionInfo::from(r);
            info.expires_at = (p.max_secs > 0).then(|| opened_at.saturating_add(p.max_secs as i64));
            if let Some((state, time)) = badge {
                info.badge = Some(state);
                info.badge_time = Some(time);
            }
            out.push(info);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(opened_at: i64) -> LocalSession {
        LocalSession {
            session_id: "3".into(),
            user: "alice".into(),
            client_id: "login".into(),
            opened_at,
        }
    }

    #[test]
    fn hours_take_numbers_and_durations() {
        assert_eq!(parse_hours("8").unwrap(), 8 * 3600);
        assert_eq!(parse_hours("0.5").unwrap(), 1800);
        assert_eq!(parse_hours("2s").unwrap(), 2);
        assert_eq!(parse_hours("0").unwrap(), 0);
        assert!(parse_hours("-1").is_err());
        assert!(parse_hours("soon").is_err());
    }

    #[test]
    fn expiry_and_badge_out_after_open_lock() {
        let p = SessionPolicy {
            max_secs: 100,
            lock_on_badge_out: true,
            lock_when_unreachable_after: 0,
        };
        let (locks, exp) = verdict(&session(1000), &p, None, 1050);
        assert!(locks.is_empty());
        assert_eq!(exp, Some(1100));
        let (locks, _) = verdict(&session(1000), &p, None, 1100);
        assert_eq!(locks, vec![(LockReason::Expired, "expired".to_string())]);
        // Badged out before the session opened: no lock.
        let (locks, _) = verdict(&session(1000), &p, Some(("out", 900)), 1050);
        assert!(locks.is_empty());
        let (locks, _) = verdict(&session(1000), &p, Some(("out", 1040)), 1050);
        assert_eq!(
            locks,
            vec![(LockReason::BadgedOut, "badged_out:1040".to_string())]
        );
        let (locks, _) = verdict(&session(1000), &p, Some(("in", 1040)), 1050);
        assert!(locks.is_empty());
        let off = SessionPolicy {
            lock_on_badge_out: false,
            ..p
        };
        let (locks, _) = verdict(&session(1000), &off, Some(("out", 1040)), 1050);
        assert!(locks.is_empty());
    }
}
