//! latchkey_cp.dll: the Windows credential provider. A thin COM shell over the agent's step
//! protocol (`latchkey_proto::agent`) on the named pipe `\\.\pipe\latchkey-agent`: it shows
//! a tile (user, password, one-time code, push link, info line, QR image), hands the person's
//! input to the agent and, only after the agent says `Success`, serializes the Windows
//! credential for LogonUI. No network, no policy here; the agent decides everything.
//!
//! One COM class implements `ICredentialProvider` and `ICredentialProviderFilter`; the
//! filter hides the other providers (the built-in password provider first) so MFA cannot be
//! skipped, and routes RDP's remote credential to this provider.
//!
//! No panic crosses COM: every entry point runs inside [`guard`].

#![cfg(windows)]
#![allow(unsafe_code)]

pub mod config;
mod credential;
pub mod fields;
pub mod flow;
pub mod kerb;
mod provider;
pub mod qr;
mod winutil;

use std::ffi::c_void;
use std::sync::atomic::{AtomicI32, Ordering};
use windows::Win32::Foundation::{
    CLASS_E_CLASSNOTAVAILABLE, CLASS_E_NOAGGREGATION, E_POINTER, E_UNEXPECTED, S_FALSE, S_OK,
};
use windows::Win32::System::Com::{IClassFactory, IClassFactory_Impl};
use windows::core::{BOOL, GUID, HRESULT, IUnknown, Interface, Ref, implement};

/// CLSID of the latchkey credential provider and filter.
pub const CLSID_LATCHKEY_PROVIDER: GUID = GUID::from_u128(0xf4efd6f9_775c_4541_9dcb_303661afb99d);
/// Windows' password provider (V2, Windows 8+) and its V1 predecessor: what the filter must
/// hide first.
pub const CLSID_PASSWORD_PROVIDER: GUID = GUID::from_u128(0x60b78e88_ead8_445c_9cfd_0b87f74ea6cd);
pub const CLSID_PASSWORD_PROVIDER_V1: GUID =
    GUID::from_u128(0x6f45dc1e_5384_457a_bc13_2cd81b0d28ed);

static LIVE_OBJECTS: AtomicI32 = AtomicI32::new(0);

/// Counts live COM objects for `DllCanUnloadNow`.
pub(crate) struct Live;

impl Live {
    pub(crate) fn new() -> Live {
        LIVE_OBJECTS.fetch_add(1, Ordering::SeqCst);
        Live
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        LIVE_OBJECTS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs a COM method body; a panic becomes `E_UNEXPECTED` instead of crossing into LogonUI.
pub(crate) fn guard<T>(f: impl FnOnce() -> windows::core::Result<T>) -> windows::core::Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => Err(E_UNEXPECTED.into()),
    }
}

#[implement(IClassFactory)]
struct Factory {
    _live: Live,
}

impl IClassFactory_Impl for Factory_Impl {
    fn CreateInstance(
        &self,
        outer: Ref<IUnknown>,
        iid: *const GUID,
        object: *mut *mut c_void,
    ) -> windows::core::Result<()> {
        guard(|| {
            if object.is_null() || iid.is_null() {
                return Err(E_POINTER.into());
            }
            // SAFETY: checked non-null; COM passes valid pointers.
            unsafe { *object = std::ptr::null_mut() };
            if outer.is_some() {
                return Err(CLASS_E_NOAGGREGATION.into());
            }
            let unknown: IUnknown = provider::Provider::new().into();
            // SAFETY: `iid` and `object` are valid per the COM contract.
            unsafe { unknown.query(iid, object) }.ok()
        })
    }

    fn LockServer(&self, _lock: BOOL) -> windows::core::Result<()> {
        Ok(())
    }
}

/// COM entry point: the class factory for our CLSID.
///
/// # Safety
/// Called by COM with valid pointers.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn DllGetClassObject(
    clsid: *const GUID,
    iid: *const GUID,
    out: *mut *mut c_void,
) -> HRESULT {
    let r = std::panic::catch_unwind(|| {
        if clsid.is_null() || iid.is_null() || out.is_null() {
            return E_POINTER;
        }
        // SAFETY: checked non-null.
        unsafe { *out = std::ptr::null_mut() };
        // SAFETY: checked non-null.
        if unsafe { *clsid } != CLSID_LATCHKEY_PROVIDER {
            return CLASS_E_CLASSNOTAVAILABLE;
        }
        let factory: IClassFactory = Factory { _live: Live::new() }.into();
        // SAFETY: valid per the COM contract.
        unsafe { factory.query(iid, out) }
    });
    r.unwrap_or(E_UNEXPECTED)
}

/// COM entry point: may the DLL be unloaded (no live objects)?
#[unsafe(no_mangle)]
pub extern "system" fn DllCanUnloadNow() -> HRESULT {
    if LIVE_OBJECTS.load(Ordering::SeqCst) == 0 {
        S_OK
    } else {
        S_FALSE
    }
}
