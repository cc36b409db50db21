//! [`PamHandle`] over a real `pam_handle_t`.

use super::sys::{self, PAM_CONV, PAM_SUCCESS, pam_conv, pam_handle_t, pam_message, pam_response};
use crate::code::{Item, LogLevel, MsgStyle};
use crate::core::PamHandle;
use crate::error::{Error, Result};
use libc::{c_char, c_void};
use std::ffi::{CStr, CString};
use std::ptr;
use zeroize::{Zeroize, Zeroizing};

/// A `pam_handle_t` libpam gave to a `pam_sm_*` call; valid for the duration of that call.
pub(super) struct LibPam {
    pamh: *mut pam_handle_t,
}

impl LibPam {
    /// # Safety
    /// `pamh` is non-null and the handle libpam passed to the current `pam_sm_*` call.
    pub(super) unsafe fn new(pamh: *mut pam_handle_t) -> LibPam {
        LibPam { pamh }
    }
}

/// A C string for libpam; NULs cannot appear in one, so they are dropped.
fn c_string(text: &str) -> CString {
    CString::new(text.replace('\0', "")).unwrap_or_default()
}

/// Copies a C string owned by libpam; `None` when null, empty or not UTF-8.
///
/// # Safety
/// `p` is null or points to a NUL-terminated string valid for this call.
unsafe fn owned_str(p: *const c_char) -> Option<String> {
    if p.is_null() {
        return None;
    }
    // SAFETY: per this function's contract.
    let s = unsafe { CStr::from_ptr(p) }.to_str().ok()?;
    (!s.is_empty()).then(|| s.to_string())
}

impl PamHandle for LibPam {
    fn user(&self) -> Result<String> {
        let mut p: *const c_char = ptr::null();
        // SAFETY: valid handle; libpam stores a pointer it owns into `p`. A null prompt
        // makes libpam use its default if it has to ask.
        let rc = unsafe { sys::pam_get_user(self.pamh, &mut p, ptr::null()) };
        if rc != PAM_SUCCESS || p.is_null() {
            return Err(Error::User(format!("pam_get_user failed (PAM error {rc})")));
        }
        // SAFETY: libpam returned a NUL-terminated string it keeps for the handle's life.
        let user = unsafe { CStr::from_ptr(p) }
            .to_str()
            .map_err(|_| Error::User("the user name is not UTF-8".into()))?;
        if user.is_empty() {
            return Err(Error::User("the user name is empty".into()));
        }
        Ok(user.to_string())
    }

    fn item(&self, item: Item) -> Option<String> {
        let mut p: *const c_void = ptr::null();
        // SAFETY: valid handle; the string items store a `const char *` libpam owns.
        let rc = unsafe { sys::pam_get_item(self.pamh, item as i32, &mut p) };
        if rc != PAM_SUCCESS {
            return None;
        }
        // SAFETY: a string item is null or a NUL-terminated string owned by libpam.
        unsafe { owned_str(p.cast()) }
    }

    fn getenv(&self, name: &str) -> Option<String> {
        let name = c_string(name);
        // SAFETY: valid handle and NUL-terminated name; the result is owned by libpam.
        unsafe { owned_str(sys::pam_getenv(self.pamh, name.as_ptr())) }
    }

    fn converse(&self, style: MsgStyle, text: &str) -> Result<Option<Zeroizing<String>>> {
        let mut item: *const c_void = ptr::null();
        // SAFETY: valid handle; PAM_CONV stores a `const struct pam_conv *`.
        let rc = unsafe { sys::pam_get_item(self.pamh, PAM_CONV, &mut item) };
        let conv: *const pam_conv = item.cast();
        if rc != PAM_SUCCESS || conv.is_null() {
            return Err(Error::Conversation(
                "the application set no conversation".into(),
            ));
        }
        // SAFETY: non-null pointer to the application's pam_conv, valid during this call.
        let (Some(conv_fn), appdata) = (unsafe { ((*conv).conv, (*conv).appdata_ptr) }) else {
            return Err(Error::Conversation(
                "the application set no conversation".into(),
            ));
        };
        let text = c_string(text);
        let msg = pam_message {
            msg_style: style as i32,
            msg: text.as_ptr(),
        };
        // One message per call: Linux-PAM and Solaris read a `pam_message **` differently
        // (array of pointers vs pointer to an array); with one message both agree.
        let mut msgp: *const pam_message = &msg;
        let mut resp: *mut pam_response = ptr::null_mut();
        // SAFETY: `msgp` points to one valid message for the call's duration; the
        // application writes a malloc'd response array (or nothing) into `resp`.
        let rc = unsafe { conv_fn(1, &mut msgp, &mut resp, appdata) };
        if rc != PAM_SUCCESS {
            // On failure the application owns (and has freed) any response.
            return Err(Error::Conversation(format!("PAM error {rc}")));
        }
        // SAFETY: on success `resp` is null or one malloc'd pam_response whose `resp`
        // string is null or malloc'd; both are ours to free.
        let answer = unsafe { take_response(resp) }.transpose()?;
        Ok(if style.is_prompt() { answer } else { None })
    }

    fn syslog(&self, level: LogLevel, msg: &str) {
        let msg = c_string(msg);
        // SAFETY: valid handle; a constant "%s" format with one NUL-terminated argument.
        unsafe { sys::pam_syslog(self.pamh, level as i32, c"%s".as_ptr(), msg.as_ptr()) };
    }
}

/// Copies the answer out of a response array of one, zeroes the application's copy (it
/// holds the code) and frees both allocations. A non-UTF-8 answer is an error.
///
/// # Safety
/// `resp` is null or a malloc'd `pam_response` whose `resp` is null or a malloc'd C string.
unsafe fn take_response(resp: *mut pam_response) -> Option<Result<Zeroizing<String>>> {
    if resp.is_null() {
        return None;
    }
    // SAFETY: per this function's contract.
    let text = unsafe { (*resp).resp };
    let answer = if text.is_null() {
        None
    } else {
        // SAFETY: a malloc'd NUL-terminated string, ours to read, overwrite and free.
        let buf = unsafe { std::slice::from_raw_parts_mut(text.cast::<u8>(), libc::strlen(text)) };
        let copy = Zeroizing::new(buf.to_vec());
        buf.zeroize();
        // SAFETY: allocated by the application with malloc, as the PAM API requires.
        unsafe { libc::free(text.cast()) };
        Some(match std::str::from_utf8(&copy) {
            Ok(s) => Ok(Zeroizing::new(s.to_string())),
            Err(_) => Err(Error::Conversation("the answer is not UTF-8".into())),
        })
    };
    // SAFETY: allocated by the application with malloc/calloc.
    unsafe { libc::free(resp.cast()) };
    answer
}
