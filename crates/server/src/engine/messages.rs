//! What a person is told, from what the engine decided. Every sentence a login screen (or the
//! token app) shows is produced here from a typed [`Said`], so a browser page and a terminal
//! can word the same outcome differently later. The texts are part of the wire: agents show
//! them as they are and tests compare them, so a change here is a change of the protocol.

use latchkey_proto::Method;
use latchkey_proto::login::{LoginStartResult, LoginStepResult};

/// Shown for unknown, disabled and token-less users alike, so the answer does not tell an
/// attacker which of these is true (the audit log records the real reason).
pub const GENERIC_DENY: &str = "Login refused: no MFA method is available for this account";
pub const TX_GONE: &str = "Login request expired or unknown: start again";
pub const NO_ATTEMPTS: &str = "Too many wrong answers for this login: start again";
pub const REG_GONE: &str = "The registration code is unknown, already used or expired: ask an administrator for a new one (`latchkey token add-fido2 USER`)";

/// Why a smartcard's certificate was refused at login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardCert {
    Expired(i64),
    NotYetValid(i64),
    UntrustedIssuer,
    Unusable,
}

/// Why a security key's registration step was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRegistration {
    /// The code is unknown, used, expired or another user's.
    CodeGone,
    /// The user is disabled or removed.
    NoMethod,
    /// A finish without a start.
    NotStarted,
    /// The attestation did not verify (the verifier's reason).
    Attestation(String),
    AlreadyRegistered,
}

impl KeyRegistration {
    pub fn text(&self) -> String {
        match self {
            KeyRegistration::CodeGone => REG_GONE.into(),
            KeyRegistration::NoMethod => GENERIC_DENY.into(),
            KeyRegistration::NotStarted => {
                "Registration not started: run the enrollment again".into()
            }
            KeyRegistration::Attestation(e) => format!("Security key registration refused: {e}"),
            KeyRegistration::AlreadyRegistered => {
                "This security key credential is already registered".into()
            }
        }
    }
}

/// One outcome a person hears about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Said {
    /// No MFA method for this account (unknown, disabled, token-less: one sentence).
    NoMethod,
    TxGone,
    NoAttempts,
    /// Locked out until `until` (seconds shown from `now`).
    Locked {
        until: i64,
        now: i64,
    },
    NoMfaNeeded,
    CodeVerified,
    CodeRejected {
        left: i64,
    },
    CodeReplayed {
        left: i64,
    },
    CodesExhausted,
    KeyVerified,
    KeyNotRegistered {
        left: Option<i64>,
    },
    KeyNeedsVerification {
        left: Option<i64>,
    },
    KeyCloned,
    KeyAnswerReused,
    CardVerified,
    CardRejected {
        left: i64,
    },
    CardsExhausted,
    CardCert(CardCert),
    PushUnavailable,
    PushSent {
        number: u32,
    },
    PushWaiting,
    PushApproved,
    PushWrongNumber,
    PushDenied,
    PushExpired,
    /// Inline enrolment offered.
    EnrolOffered,
    /// Another enrolment of the user is open (another screen).
    EnrolBusy,
    /// The pending enrolment expired, finished or is not this machine's.
    EnrolGone,
    EnrolScanTotp,
    EnrolScanApp,
    EnrolAppWaiting,
    EnrolAppRegistered,
    /// The first code confirmed the new authenticator: the login passed.
    EnrolDone,
    /// A grace login was spent; `left` remain.
    EnrolSkipped {
        left: i64,
    },
    /// No grace logins left: the user must enrol.
    EnrolNoGrace,
    /// Above the invite link's QR code (inline enrolment `link`).
    EnrolScanLink,
    /// The login's end once the invite link was shown.
    EnrolLinkShown,
}

fn attempts(left: i64) -> String {
    let plural = if left == 1 { "" } else { "s" };
    format!("{left} attempt{plural} left")
}

/// `YYYY-MM-DD` of a Unix time, for messages.
pub fn date(unix: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix.max(0) as u64);
    let s = humantime::format_rfc3339_seconds(t).to_string();
    s.get(..10).unwrap_or(&s).to_string()
}

impl Said {
    /// The terminal's (and the agent's) wording.
    pub fn text(&self) -> String {
        match self {
            Said::NoMethod => GENERIC_DENY.into(),
            Said::TxGone => TX_GONE.into(),
            Said::NoAttempts => NO_ATTEMPTS.into(),
            Said::Locked { until, now } => {
                format!("Too many failures: try again in {} s", (until - now).max(1))
            }
            Said::NoMfaNeeded => "No MFA needed".into(),
            Said::CodeVerified => "MFA verified".into(),
            Said::CodeRejected { left } => format!("Code rejected, {}", attempts(*left)),
            Said::CodeReplayed { left } => format!(
                "Code already used, wait for the next one ({})",
                attempts(*left)
            ),
            Said::CodesExhausted => "Code rejected: too many wrong codes, start again".into(),
            Said::KeyVerified => "Security key verified".into(),
            Said::KeyNotRegistered { left } => with_left(
                "Security key refused: it is not registered for this account",
                *left,
            ),
            Said::KeyNeedsVerification { left } => with_left(
                "Security key refused: PIN or fingerprint verification is required",
                *left,
            ),
            Said::KeyCloned => {
                "Login refused: this security key may have been cloned; contact your administrator"
                    .into()
            }
            Said::KeyAnswerReused => {
                "Login refused: this security key answer was already used".into()
            }
            Said::CardVerified => "Smartcard verified".into(),
            Said::CardRejected { left } => {
                format!("Smartcard signature rejected, {}", attempts(*left))
            }
            Said::CardsExhausted => "Smartcard refused: too many failures, start again".into(),
            Said::CardCert(c) => match c {
                CardCert::Expired(t) => {
                    format!("Smartcard refused: its certificate expired on {}", date(*t))
                }
                CardCert::NotYetValid(t) => format!(
                    "Smartcard refused: its certificate is valid only from {}",
                    date(*t)
                ),
                CardCert::UntrustedIssuer => {
                    "Smartcard refused: its certificate was not issued by the trusted CA".into()
                }
                CardCert::Unusable => "Smartcard refused: its certificate is not usable".into(),
            },
            Said::PushUnavailable => {
                "Push is not available for this login: type a one-time code".into()
            }
            Said::PushSent { number } => {
                format!("Push sent: type {number} in the latchkey app to approve")
            }
            Said::PushWaiting => "Waiting for approval in the latchkey app".into(),
            Said::PushApproved => "Push approved".into(),
            Said::PushWrongNumber => "Push refused: the number typed in the app was wrong".into(),
            Said::PushDenied => "Push denied in the latchkey app".into(),
            Said::PushExpired => "Push expired: nobody answered in time".into(),
            Said::EnrolOffered => {
                "You have no second factor yet: enrol one now to finish logging in.".into()
            }
            Said::EnrolBusy => "An enrolment for this account is already in progress on another screen: finish it there, or wait until it expires".into(),
            Said::EnrolGone => "Enrolment expired or unknown: log in again to start over".into(),
            Said::EnrolScanTotp => {
                "Scan with your authenticator app (or type the secret) to enrol it:".into()
            }
            Said::EnrolScanApp => "Scan with the latchkey token app to register it:".into(),
            Said::EnrolAppWaiting => "Waiting for the latchkey token app to register".into(),
            Said::EnrolAppRegistered => "Token app registered: approve the push on it to finish".into(),
            Said::EnrolDone => "Token enrolled: code verified".into(),
            Said::EnrolSkipped { left } => {
                let plural = if *left == 1 { "" } else { "s" };
                format!("Logged in without a second factor: enrol one soon ({left} login{plural} without it left)")
            }
            Said::EnrolNoGrace => "No logins without a second factor are left: enrol one to log in".into(),
            Said::EnrolScanLink => "Open this link on your phone (scan it) to set up a second factor there:".into(),
            Said::EnrolLinkShown => "Log in again once the second factor is set up on the page".into(),
        }
    }

    pub fn deny(self) -> LoginStepResult {
        LoginStepResult::Deny {
            reason: self.text(),
        }
    }

    pub fn success(self) -> LoginStepResult {
        LoginStepResult::Success {
            message: self.text(),
        }
    }

    pub fn retry(self, left: i64) -> LoginStepResult {
        LoginStepResult::Retry {
            attempts_left: u32::try_from(left).unwrap_or(0),
            message: self.text(),
        }
    }

    pub fn start_deny(self) -> LoginStartResult {
        LoginStartResult::Deny {
            reason: self.text(),
        }
    }

    pub fn start_allow(self) -> LoginStartResult {
        LoginStartResult::Allow {
            message: self.text(),
        }
    }
}

fn with_left(sentence: &str, left: Option<i64>) -> String {
    match left {
        Some(left) => format!("{sentence} ({})", attempts(left)),
        None => sentence.to_string(),
    }
}

/// The prompt the login screen shows for a challenge: it names only the methods offered.
/// With a security key, Enter uses the key (the agent's convention, docs/fido2.md).
pub fn challenge(user: &str, methods: &[Method]) -> String {
    let otp = methods.contains(&Method::Otp);
    let push = methods.contains(&Method::Push);
    if methods.contains(&Method::Fido2) {
        return match (otp, push) {
            (true, true) => format!(
                "Press Enter to use your security key, type \"push\" for a push, or type a one-time code for {user}:"
            ),
            (true, false) => {
                format!("Press Enter to use your security key, or type a one-time code for {user}:")
            }
            (false, true) => format!(
                "Press Enter to use your security key, or type \"push\" for a push to {user}'s latchkey app:"
            ),
            (false, false) => format!("Press Enter to use your security key for {user}:"),
        };
    }
    match (otp, push) {
        (true, true) => format!("Press Enter to send a push, or type a one-time code for {user}:"),
        (false, true) => format!("Press Enter to send a push to {user}'s latchkey app:"),
        (false, false) if methods.contains(&Method::Smartcard) => {
            format!("Smartcard for {user}:")
        }
        _ => format!("One-time code for {user}:"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempt_counts_are_worded_in_singular_and_plural() {
        assert_eq!(
            Said::CodeRejected { left: 1 }.text(),
            "Code rejected, 1 attempt left"
        );
        assert_eq!(
            Said::CodeReplayed { left: 2 }.text(),
            "Code already used, wait for the next one (2 attempts left)"
        );
        assert_eq!(
            Said::KeyNotRegistered { left: Some(2) }.text(),
            "Security key refused: it is not registered for this account (2 attempts left)"
        );
    }

    #[test]
    fn a_lock_message_never_says_zero_seconds() {
        let said = Said::Locked {
            until: 100,
            now: 100,
        };
        assert_eq!(said.text(), "Too many failures: try again in 1 s");
    }

    #[test]
    fn the_challenge_names_only_what_is_offered() {
        assert_eq!(
            challenge("alice", &[Method::Otp]),
            "One-time code for alice:"
        );
        assert_eq!(
            challenge("alice", &[Method::Otp, Method::Push]),
            "Press Enter to send a push, or type a one-time code for alice:"
        );
    }
}
