//! The entry points libpam looks up with `dlsym`. Each checks its pointers, converts its
//! arguments and runs the logic inside `catch_unwind`, so no panic unwinds into C.

use super::handle::LibPam;
use super::sys::pam_handle_t;
use crate::code::{Flags, PamCode};
use crate::core;
use latchkey_proto::agent::SessionEvent;
use libc::{c_char, c_int};
use std::ffi::CStr;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Runs `f` with the handle and arguments; `on_error` is returned for a null handle or a
/// panic.
///
/// # Safety
/// `pamh`, `argc` and `argv` are what libpam passed to a `pam_sm_*` function.
unsafe fn run(
    pamh: *mut pam_handle_t,
    argc: c_int,
    argv: *const *const c_char,
    on_error: PamCode,
    f: impl FnOnce(&LibPam, &[String]) -> PamCode,
) -> c_int {
    if pamh.is_null() {
        return on_error.as_raw();
    }
    // SAFETY: per this function's contract.
    let (handle, args) = unsafe { (LibPam::new(pamh), args(argc, argv)) };
    catch_unwind(AssertUnwindSafe(|| f(&handle, &args)))
        .unwrap_or(on_error)
        .as_raw()
}

/// The module arguments. A null or non-UTF-8 argument becomes text with U+FFFD in it, which
/// no option accepts (and no socket path matches), so it fails closed in `Options::parse`.
///
/// # Safety
/// `argv` is null or holds `argc` pointers, each null or a NUL-terminated string.
unsafe fn args(argc: c_int, argv: *const *const c_char) -> Vec<String> {
    let argc = usize::try_from(argc).unwrap_or(0);
    if argv.is_null() {
        return if argc == 0 {
            Vec::new()
        } else {
            vec!["\u{fffd}(null argv)".into()]
        };
    }
    (0..argc)
        .map(|i| {
            // SAFETY: i < argc, per this function's contract.
            let p = unsafe { *argv.add(i) };
            if p.is_null() {
                "\u{fffd}(null argument)".into()
            } else {
                // SAFETY: a NUL-terminated string, per this function's contract.
                unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
            }
        })
        .collect()
}

/// # Safety
/// Called by libpam with a valid handle and its module arguments.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pam_sm_authenticate(
    pamh: *mut pam_handle_t,
    flags: c_int,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    // SAFETY: arguments straight from libpam.
    unsafe {
        run(pamh, argc, argv, PamCode::ServiceErr, |h, args| {
            core::authenticate(h, Flags(flags), args)
        })
    }
}

/// Nothing to establish: the module holds no credentials.
///
/// # Safety
/// Called by libpam.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pam_sm_setcred(
    _pamh: *mut pam_handle_t,
    _flags: c_int,
    _argc: c_int,
    _argv: *const *const c_char,
) -> c_int {
    PamCode::Success.as_raw()
}

/// # Safety
/// Called by libpam with a valid handle and its module arguments.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pam_sm_acct_mgmt(
    pamh: *mut pam_handle_t,
    flags: c_int,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    // SAFETY: arguments straight from libpam.
    unsafe {
        run(pamh, argc, argv, PamCode::ServiceErr, |h, args| {
            core::acct_mgmt(h, Flags(flags), args)
        })
    }
}

/// # Safety
/// Called by libpam with a valid handle and its module arguments.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pam_sm_open_session(
    pamh: *mut pam_handle_t,
    _flags: c_int,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    // SAFETY: arguments straight from libpam. Sessions are reporting only: never refused.
    unsafe {
        run(pamh, argc, argv, PamCode::Success, |h, args| {
            core::session(h, SessionEvent::Open, args)
        })
    }
}

/// # Safety
/// Called by libpam with a valid handle and its module arguments.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pam_sm_close_session(
    pamh: *mut pam_handle_t,
    _flags: c_int,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    // SAFETY: arguments straight from libpam. Sessions are reporting only: never refused.
    unsafe {
        run(pamh, argc, argv, PamCode::Success, |h, args| {
            core::session(h, SessionEvent::Close, args)
        })
    }
}

/// Passwords are not ours to change: `PAM_IGNORE` leaves the decision to the other modules.
///
/// # Safety
/// Called by libpam.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pam_sm_chauthtok(
    _pamh: *mut pam_handle_t,
    _flags: c_int,
    _argc: c_int,
    _argv: *const *const c_char,
) -> c_int {
    PamCode::Ignore.as_raw()
}
