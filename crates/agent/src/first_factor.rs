//! Whether the first factor of a login was verified, so that a user without a token may
//! enrol one at this prompt (docs/enrollment.md). The agent never offers enrolment on a
//! shell's word alone from an unprivileged caller: a local user must not be able to enrol a
//! token for an account by talking to the socket.

use crate::socket::Caller;
use latchkey_proto::UserName;
use latchkey_proto::agent::FirstFactor;

/// What the first factor allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Verified: the server may offer enrolment.
    Enrol,
    /// Not vouched for: the login goes on without an enrolment offer.
    NoEnrol,
    /// (Windows only: Linux agents check no passwords.) The password was checked and is wrong, or could not be checked: the login is
    /// refused with this reason.
    #[cfg_attr(not(windows), allow(dead_code))]
    Refuse(String),
}

/// Judges a `Begin`'s `enroll` for `user` from `caller`.
pub async fn judge(caller: &Caller, user: &UserName, claim: Option<FirstFactor>) -> Verdict {
    let Some(claim) = claim else {
        return Verdict::NoEnrol;
    };
    if *caller != Caller::Root {
        // A screen locker runs as the user: its word is the user's own, and the user's own
        // word is not a verified password.
        tracing::warn!(?caller, %user, "enrolment asked by an unprivileged caller: not offered");
        return Verdict::NoEnrol;
    }
    match claim {
        FirstFactor::Verified => Verdict::Enrol,
        FirstFactor::Password { password, domain } => {
            password::check(user, domain.as_deref(), password).await
        }
    }
}

#[cfg(not(windows))]
mod password {
    use super::Verdict;
    use latchkey_proto::{Secret, UserName};

    /// On Linux the PAM stack checks passwords (`requisite` before this module); a password
    /// sent to the agent is not something it checks.
    pub async fn check(user: &UserName, _domain: Option<&str>, _password: Secret) -> Verdict {
        tracing::warn!(%user, "a password for inline enrolment was sent to a Linux agent: not offered");
        Verdict::NoEnrol
    }
}

#[cfg(windows)]
#[path = "first_factor_windows.rs"]
mod password;
