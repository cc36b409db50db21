//! The few OS calls the agent needs that std does not offer.
#![allow(unsafe_code)]

#[cfg(unix)]
use std::ffi::CStr;

/// The login name of a uid (getpwuid_r), or None if it has none.
#[cfg(unix)]
pub fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: all pointers refer to live, correctly sized buffers owned by this frame.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    // SAFETY: getpwuid_r succeeded, so pw_name points to a NUL-terminated string in `buf`.
    let name = unsafe { CStr::from_ptr(pwd.pw_name) };
    name.to_str().ok().map(str::to_string)
}

/// The host name (what `join` registers).
#[cfg(windows)]
pub fn hostname() -> String {
    std::env::var("COMPUTERNAME")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// The host name (what `join` registers).
#[cfg(not(windows))]
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Turns terminal echo off (for typing a code) and returns a guard restoring it.
#[cfg(unix)]
pub struct EchoOff {
    fd: i32,
    saved: Option<libc::termios>,
}

#[cfg(unix)]
impl EchoOff {
    pub fn new(fd: i32) -> EchoOff {
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: `t` is a valid termios buffer; a non-terminal fd just returns an error.
        if unsafe { libc::tcgetattr(fd, &mut t) } != 0 {
            return EchoOff { fd, saved: None };
        }
        let saved = t;
        t.c_lflag &= !libc::ECHO;
        // SAFETY: as above.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &t) };
        EchoOff {
            fd,
            saved: Some(saved),
        }
    }
}

#[cfg(unix)]
impl Drop for EchoOff {
    fn drop(&mut self) {
        if let Some(saved) = self.saved {
            // SAFETY: restoring the attributes read in `new` on the same fd.
            unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &saved) };
        }
    }
}

/// Windows: the console keeps echoing (`latchkey-agent login` is an admin's test tool there;
/// codes are one-time).
#[cfg(not(unix))]
pub struct EchoOff;

#[cfg(not(unix))]
impl EchoOff {
    pub fn new(_fd: i32) -> EchoOff {
        EchoOff
    }
}
