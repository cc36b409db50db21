//! Windows: the password typed on the tile is checked with `LogonUserW`, as the system,
//! before the agent lets the server offer enrolment.
//!
//! A network logon (`LOGON32_LOGON_NETWORK`): it checks the password against the account
//! database (the local SAM, or a domain controller) without loading a profile or starting a
//! session, and needs no logon right on the machine. The token it returns is closed at once;
//! the agent only wants the verdict.
//!
//! Under Wine (8.x, what the tests run) `LogonUserW` is a stub: it returns TRUE for any user
//! and password and hands back the fake handle `0xdeadbeef` (seen in a test run: a wrong
//! password gets the enrolment offer under Wine). So the Wine tests exercise the tile and
//! the enrolment conversation, not this check; the refusal of a wrong password runs only on
//! Windows. `CloseHandle` of the fake handle fails under Wine, which is ignored here.

// LogonUserW, GetLastError and CloseHandle: raw Win32 calls, each with its SAFETY note.
#![allow(unsafe_code)]

use super::Verdict;
use latchkey_proto::{Secret, UserName};
use windows_sys::Win32::Foundation::{
    CloseHandle, ERROR_ACCOUNT_DISABLED, ERROR_ACCOUNT_EXPIRED, ERROR_ACCOUNT_RESTRICTION,
    ERROR_LOGON_FAILURE, ERROR_LOGON_TYPE_NOT_GRANTED, ERROR_NO_LOGON_SERVERS,
    ERROR_PASSWORD_EXPIRED, ERROR_PASSWORD_MUST_CHANGE, GetLastError, HANDLE,
};
use windows_sys::Win32::Security::{LOGON32_LOGON_NETWORK, LOGON32_PROVIDER_DEFAULT, LogonUserW};
use zeroize::Zeroizing;

/// What `LogonUserW` said.
enum Checked {
    Right,
    /// The Win32 error of the failed call.
    Failed(u32),
}

fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

/// `LogonUserW(user, domain, password)`; blocking (a domain controller may be asked).
fn logon_user(user: &str, domain: &str, password: &Secret) -> Checked {
    let user = wide(user);
    let domain = wide(domain);
    // The password's UTF-16 copy is wiped when it goes out of scope.
    let password: Zeroizing<Vec<u16>> = Zeroizing::new(wide(password.expose()));
    let mut token: HANDLE = std::ptr::null_mut();
    // SAFETY: three NUL-terminated UTF-16 strings that outlive the call, and a valid place
    // for the token handle.
    let ok = unsafe {
        LogonUserW(
            user.as_ptr(),
            domain.as_ptr(),
            password.as_ptr(),
            LOGON32_LOGON_NETWORK,
            LOGON32_PROVIDER_DEFAULT,
            &mut token,
        )
    };
    if ok == 0 {
        // SAFETY: reads the calling thread's last error, set by the failed call.
        return Checked::Failed(unsafe { GetLastError() });
    }
    if !token.is_null() {
        // SAFETY: the token LogonUserW just returned; closed once. (Wine's stub returns a
        // fake handle, whose close fails: nothing to do about it.)
        let _ = unsafe { CloseHandle(token) };
    }
    Checked::Right
}

/// The one-line reason a person reads for a failed check (never the password, never
/// "server unreachable": no server was asked).
fn reason(error: u32) -> String {
    match error {
        ERROR_LOGON_FAILURE => "Wrong user name or password".into(),
        ERROR_ACCOUNT_DISABLED => "This account is disabled".into(),
        ERROR_ACCOUNT_EXPIRED => "This account has expired".into(),
        ERROR_PASSWORD_EXPIRED | ERROR_PASSWORD_MUST_CHANGE => {
            "The password has expired: change it first, then enrol".into()
        }
        ERROR_ACCOUNT_RESTRICTION | ERROR_LOGON_TYPE_NOT_GRANTED => {
            "This account may not log in here now (account restrictions)".into()
        }
        other => {
            format!("The password could not be checked on this machine (Windows error {other})")
        }
    }
}

/// Checks `password` for `user` in `domain` (`None` or `.`: an account of this machine).
pub async fn check(user: &UserName, domain: Option<&str>, password: Secret) -> Verdict {
    let domain = match domain.map(str::trim) {
        None | Some("") | Some(".") => ".".to_string(),
        Some(d) => d.to_string(),
    };
    let name = user.to_string();
    let d = domain.clone();
    let checked = tokio::task::spawn_blocking(move || logon_user(&name, &d, &password)).await;
    match checked {
        Ok(Checked::Right) => {
            tracing::info!(%user, %domain, "inline enrolment: password verified (LogonUserW)");
            Verdict::Enrol
        }
        // No domain controller answered: a domain account cannot be checked now. That must
        // not stop the login itself (Windows logs on with cached credentials, and the agent
        // may have an offline bundle): it goes on, without an enrolment offer.
        Ok(Checked::Failed(ERROR_NO_LOGON_SERVERS)) => {
            tracing::warn!(%user, %domain, "inline enrolment: no logon server to check the password; not offered");
            Verdict::NoEnrol
        }
        // A wrong password: Windows would refuse it too; refused here before MFA.
        Ok(Checked::Failed(ERROR_LOGON_FAILURE)) => {
            tracing::warn!(%user, %domain, "inline enrolment: wrong user name or password");
            Verdict::Refuse(reason(ERROR_LOGON_FAILURE))
        }
        // Anything else (an expired password, a disabled account, a restriction, an error):
        // the password is not verified, so no enrolment is offered; the login itself goes
        // on, and Windows handles the account's state as it always does (an expired
        // password's change screen, a disabled account's refusal) after MFA.
        Ok(Checked::Failed(error)) => {
            let reason = reason(error);
            tracing::warn!(%user, %domain, error, %reason, "inline enrolment: password not verified; not offered");
            Verdict::NoEnrol
        }
        Err(e) => {
            tracing::error!(%user, error = %e, "inline enrolment: the password check did not run; not offered");
            Verdict::NoEnrol
        }
    }
}
