//! `ICredentialProvider` (the tile for logon, unlock, CredUI and remote sessions) and
//! `ICredentialProviderFilter` (hide the other providers; send RDP's credential here).

use crate::config::{self, Context};
use crate::credential::Credential;
use crate::{CLSID_LATCHKEY_PROVIDER, Live, fields, guard, kerb, winutil};
use std::sync::Mutex;
use windows::Win32::Foundation::{E_INVALIDARG, E_NOTIMPL, E_POINTER, E_UNEXPECTED};
use windows::Win32::UI::Shell::{
    CPUS_CHANGE_PASSWORD, CPUS_CREDUI, CPUS_LOGON, CPUS_UNLOCK_WORKSTATION,
    CREDENTIAL_PROVIDER_CREDENTIAL_SERIALIZATION, CREDENTIAL_PROVIDER_FIELD_DESCRIPTOR,
    CREDENTIAL_PROVIDER_USAGE_SCENARIO, ICredentialProvider, ICredentialProvider_Impl,
    ICredentialProviderCredential, ICredentialProviderEvents, ICredentialProviderFilter,
    ICredentialProviderFilter_Impl,
};
use windows::core::{BOOL, GUID, Ref, implement};

/// `CREDUIWIN_PACK_32_WOW`: a 32-bit CredUI caller wants a 32-bit packed buffer.
const CREDUIWIN_PACK_32_WOW: u32 = 0x1000_0000;

#[derive(Default)]
struct State {
    context: Option<Context>,
    /// CredUI flags from SetUsageScenario.
    flags: u32,
    events: Option<(ICredentialProviderEvents, usize)>,
    credential: Option<ICredentialProviderCredential>,
    /// A credential handed in by SetSerialization (RDP): prefills the tile; MFA still runs.
    handed_in: Option<kerb::WinCredential>,
}

#[implement(ICredentialProvider, ICredentialProviderFilter)]
pub struct Provider {
    state: Mutex<State>,
    _live: Live,
}

impl Provider {
    pub fn new() -> Provider {
        Provider {
            state: Mutex::new(State::default()),
            _live: Live::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn context_of(cpus: CREDENTIAL_PROVIDER_USAGE_SCENARIO) -> Option<Context> {
    let remote = winutil::remote_session();
    match cpus {
        CPUS_LOGON if remote => Some(Context::Remote),
        CPUS_LOGON => Some(Context::Logon),
        CPUS_UNLOCK_WORKSTATION if remote => Some(Context::Remote),
        CPUS_UNLOCK_WORKSTATION => Some(Context::Unlock),
        CPUS_CREDUI => Some(Context::CredUi),
        _ => None,
    }
}

impl ICredentialProvider_Impl for Provider_Impl {
    fn SetUsageScenario(
        &self,
        cpus: CREDENTIAL_PROVIDER_USAGE_SCENARIO,
        dwflags: u32,
    ) -> windows::core::Result<()> {
        guard(|| {
            // Password change and PLAP are not ours: Windows' own providers handle them.
            let ctx = context_of(cpus).ok_or(E_NOTIMPL)?;
            let mut st = self.state();
            st.context = Some(ctx);
            st.flags = dwflags;
            st.credential = None;
            Ok(())
        })
    }

    fn SetSerialization(
        &self,
        pcpcs: *const CREDENTIAL_PROVIDER_CREDENTIAL_SERIALIZATION,
    ) -> windows::core::Result<()> {
        guard(|| {
            if pcpcs.is_null() {
                return Err(E_POINTER.into());
            }
            // SAFETY: non-null, valid for the call per the COM contract.
            let cs = unsafe { &*pcpcs };
            if cs.clsidCredentialProvider != CLSID_LATCHKEY_PROVIDER
                || cs.rgbSerialization.is_null()
                || cs.cbSerialization == 0
            {
                return Err(E_INVALIDARG.into());
            }
            let mut st = self.state();
            if !matches!(
                st.context,
                Some(Context::Logon | Context::Unlock | Context::Remote)
            ) {
                return Err(E_NOTIMPL.into());
            }
            // SAFETY: LogonUI guarantees cbSerialization bytes at rgbSerialization.
            let bytes = unsafe {
                std::slice::from_raw_parts(cs.rgbSerialization, cs.cbSerialization as usize)
            };
            let (_, cred) = kerb::unpack(bytes).map_err(|_| E_INVALIDARG)?;
            // A credential handed in by the filter comes from a Remote Desktop client.
            st.context = Some(Context::Remote);
            st.handed_in = Some(cred);
            st.credential = None;
            let events = st.events.clone();
            drop(st);
            if let Some((ev, ctx)) = events {
                // SAFETY: a live interface LogonUI gave us in Advise.
                let _ = unsafe { ev.CredentialsChanged(ctx) };
            }
            Ok(())
        })
    }

    fn Advise(
        &self,
        pcpe: Ref<ICredentialProviderEvents>,
        upadvisecontext: usize,
    ) -> windows::core::Result<()> {
        guard(|| {
            self.state().events = pcpe.ok().ok().map(|e| (e.clone(), upadvisecontext));
            Ok(())
        })
    }

    fn UnAdvise(&self) -> windows::core::Result<()> {
        guard(|| {
            self.state().events = None;
            Ok(())
        })
    }

    fn GetFieldDescriptorCount(&self) -> windows::core::Result<u32> {
        Ok(fields::COUNT)
    }

    fn GetFieldDescriptorAt(
        &self,
        dwindex: u32,
    ) -> windows::core::Result<*mut CREDENTIAL_PROVIDER_FIELD_DESCRIPTOR> {
        guard(|| {
            let f = fields::get(dwindex).ok_or(E_INVALIDARG)?;
            let label = winutil::co_string(f.label)?;
            let d = CREDENTIAL_PROVIDER_FIELD_DESCRIPTOR {
                dwFieldID: dwindex,
                cpft: f.kind,
                pszLabel: label,
                guidFieldType: GUID::zeroed(),
            };
            let bytes: [u8; std::mem::size_of::<CREDENTIAL_PROVIDER_FIELD_DESCRIPTOR>()] =
                // SAFETY: a plain C struct copied as bytes into CoTaskMem.
                unsafe { std::mem::transmute(d) };
            let p = winutil::co_bytes(&bytes)?;
            Ok(p.cast::<CREDENTIAL_PROVIDER_FIELD_DESCRIPTOR>())
        })
    }

    fn GetCredentialCount(
        &self,
        pdwcount: *mut u32,
        pdwdefault: *mut u32,
        pbautologonwithdefault: *mut BOOL,
    ) -> windows::core::Result<()> {
        guard(|| {
            if pdwcount.is_null() || pdwdefault.is_null() || pbautologonwithdefault.is_null() {
                return Err(E_POINTER.into());
            }
            let st = self.state();
            // SAFETY: checked non-null.
            unsafe {
                *pdwcount = 1;
                // A handed-in (RDP) credential makes our tile the default, never an automatic
                // logon: the code is still to be typed.
                *pdwdefault = if st.handed_in.is_some() { 0 } else { u32::MAX };
                *pbautologonwithdefault = BOOL(0);
            }
            Ok(())
        })
    }

    fn GetCredentialAt(
        &self,
        dwindex: u32,
    ) -> windows::core::Result<ICredentialProviderCredential> {
        guard(|| {
            if dwindex != 0 {
                return Err(E_INVALIDARG.into());
            }
            let mut st = self.state();
            let ctx = st.context.ok_or(E_UNEXPECTED)?;
            if let Some(c) = &st.credential {
                return Ok(c.clone());
            }
            let wow = ctx == Context::CredUi && st.flags & CREDUIWIN_PACK_32_WOW != 0;
            let c: ICredentialProviderCredential =
                Credential::new(ctx, wow, st.handed_in.clone()).into();
            st.credential = Some(c.clone());
            Ok(c)
        })
    }
}

impl ICredentialProviderFilter_Impl for Provider_Impl {
    fn Filter(
        &self,
        cpus: CREDENTIAL_PROVIDER_USAGE_SCENARIO,
        _dwflags: u32,
        rgclsidproviders: *const GUID,
        rgballow: *mut BOOL,
        cproviders: u32,
    ) -> windows::core::Result<()> {
        guard(|| {
            // Changing a password is not a way in: leave that scenario to Windows.
            if cpus == CPUS_CHANGE_PASSWORD {
                return Ok(());
            }
            if cproviders == 0 {
                return Ok(());
            }
            if rgclsidproviders.is_null() || rgballow.is_null() {
                return Err(E_POINTER.into());
            }
            let allowed = config::allowed_providers();
            // SAFETY: LogonUI passes `cproviders` entries in each array.
            let (ids, allow) = unsafe {
                (
                    std::slice::from_raw_parts(rgclsidproviders, cproviders as usize),
                    std::slice::from_raw_parts_mut(rgballow, cproviders as usize),
                )
            };
            for (id, a) in ids.iter().zip(allow.iter_mut()) {
                let keep = *id == CLSID_LATCHKEY_PROVIDER || allowed.contains(id);
                *a = BOOL(keep as i32);
            }
            Ok(())
        })
    }

    fn UpdateRemoteCredential(
        &self,
        pcpcsin: *const CREDENTIAL_PROVIDER_CREDENTIAL_SERIALIZATION,
        pcpcsout: *mut CREDENTIAL_PROVIDER_CREDENTIAL_SERIALIZATION,
    ) -> windows::core::Result<()> {
        guard(|| {
            if pcpcsin.is_null() || pcpcsout.is_null() {
                return Err(E_POINTER.into());
            }
            // SAFETY: non-null, valid per the COM contract.
            let (cin, cout) = unsafe { (&*pcpcsin, &mut *pcpcsout) };
            if cin.rgbSerialization.is_null() || cin.cbSerialization == 0 {
                return Err(E_INVALIDARG.into());
            }
            // SAFETY: cbSerialization bytes at rgbSerialization.
            let bytes = unsafe {
                std::slice::from_raw_parts(cin.rgbSerialization, cin.cbSerialization as usize)
            };
            // Same bytes, addressed to us: the RDP client's user and password prefill our tile
            // and the code is asked before Windows sees them.
            cout.ulAuthenticationPackage = cin.ulAuthenticationPackage;
            cout.clsidCredentialProvider = CLSID_LATCHKEY_PROVIDER;
            cout.cbSerialization = cin.cbSerialization;
            cout.rgbSerialization = winutil::co_bytes(bytes)?;
            Ok(())
        })
    }
}
