//! `ICredentialProviderCredential2`: the tile. Submit runs the agent conversation
//! (`flow`); only the agent's `Success` leads to a serialized Windows credential.

use crate::config::{self, Context};
use crate::flow::{Begin, Flow, Outcome};
use crate::{CLSID_LATCHKEY_PROVIDER, Live, fields, guard, kerb, qr, winutil};

mod view;
use latchkey_proto::Secret;
use latchkey_proto::agent::FirstFactor;
use std::sync::Mutex;
use view::qr_bitmap;
use windows::Win32::Foundation::{E_INVALIDARG, E_NOTIMPL, E_POINTER, NTSTATUS};
use windows::Win32::Graphics::Gdi::{DeleteObject, HBITMAP, HGDIOBJ};
use windows::Win32::UI::Shell::{
    CPFS_DISPLAY_IN_SELECTED_TILE, CPFS_HIDDEN, CPFT_COMMAND_LINK, CPFT_EDIT_TEXT, CPFT_LARGE_TEXT,
    CPFT_PASSWORD_TEXT, CPFT_SMALL_TEXT, CPGSR_NO_CREDENTIAL_FINISHED,
    CPGSR_NO_CREDENTIAL_NOT_FINISHED, CPGSR_RETURN_CREDENTIAL_FINISHED, CPSI_ERROR, CPSI_NONE,
    CPSI_WARNING, CREDENTIAL_PROVIDER_CREDENTIAL_SERIALIZATION,
    CREDENTIAL_PROVIDER_FIELD_INTERACTIVE_STATE, CREDENTIAL_PROVIDER_FIELD_STATE,
    CREDENTIAL_PROVIDER_GET_SERIALIZATION_RESPONSE, CREDENTIAL_PROVIDER_STATUS_ICON,
    ICredentialProviderCredential, ICredentialProviderCredential_Impl,
    ICredentialProviderCredential2, ICredentialProviderCredential2_Impl,
    ICredentialProviderCredentialEvents,
};
use windows::core::{BOOL, IUnknownImpl, PCWSTR, PWSTR, Ref, implement};
use zeroize::Zeroize;

struct State {
    user: String,
    password: String,
    code: String,
    info: String,
    /// The QR code, when the agent sent one (the offline challenge, an enrolment): its
    /// payload (GetBitmapValue draws a fresh bitmap for LogonUI to own) and the bitmap given
    /// to SetFieldBitmap (ours to delete). An enrolment's payload carries the TOTP seed.
    qr_payload: Option<Secret>,
    qr: Option<HBITMAP>,
    /// The agent offers enrolment: the "Enroll token" link is shown.
    enroll_offered: bool,
    /// The text beside an enrolment QR code (the secret to type instead of scanning).
    secret: Option<Secret>,
    events: Option<ICredentialProviderCredentialEvents>,
    flow: Flow,
}

impl Drop for State {
    fn drop(&mut self) {
        self.password.zeroize();
        self.code.zeroize();
        // `qr_payload` and `secret` are Secrets: wiped when dropped.
        if let Some(b) = self.qr.take() {
            // SAFETY: a bitmap this object created and still owns.
            let _ = unsafe { DeleteObject(HGDIOBJ(b.0)) };
        }
    }
}

#[implement(ICredentialProviderCredential2, ICredentialProviderCredential)]
pub struct Credential {
    context: Context,
    /// CredUI asked for a 32-bit packed buffer.
    wow: bool,
    state: Mutex<State>,
    _live: Live,
}

impl Credential {
    pub fn new(context: Context, wow: bool, handed_in: Option<kerb::WinCredential>) -> Credential {
        let (user, password) = match &handed_in {
            Some(c) if c.domain.is_empty() => (c.user.clone(), c.password.clone()),
            Some(c) => (format!("{}\\{}", c.domain, c.user), c.password.clone()),
            None => (String::new(), String::new()),
        };
        Credential {
            context,
            wow,
            state: Mutex::new(State {
                user,
                password,
                code: String::new(),
                info: String::new(),
                qr_payload: None,
                qr: None,
                enroll_offered: false,
                secret: None,
                events: None,
                flow: Flow::default(),
            }),
            _live: Live::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn write_status(
    text: &str,
    icon: CREDENTIAL_PROVIDER_STATUS_ICON,
    ppsz: *mut PWSTR,
    picon: *mut CREDENTIAL_PROVIDER_STATUS_ICON,
) -> windows::core::Result<()> {
    // SAFETY: the caller checked both pointers.
    unsafe {
        *ppsz = winutil::co_string(text)?;
        *picon = icon;
    }
    Ok(())
}

impl Credential_Impl {
    fn me(&self) -> ICredentialProviderCredential {
        self.to_interface()
    }

    /// Tells LogonUI a field changed (outside the state lock: LogonUI may call back).
    fn notify_string(
        &self,
        events: &Option<ICredentialProviderCredentialEvents>,
        id: u32,
        s: &str,
    ) {
        if let Some(ev) = events {
            let h = windows::core::HSTRING::from(s);
            // SAFETY: a live interface from Advise; `h` outlives the call.
            let _ = unsafe { ev.SetFieldString(&self.me(), id, PCWSTR(h.as_ptr())) };
        }
    }

    fn serialize(
        &self,
        typed_user: &str,
        password: &str,
        pcpcs: *mut CREDENTIAL_PROVIDER_CREDENTIAL_SERIALIZATION,
    ) -> windows::core::Result<()> {
        let (domain, user) = kerb::split_user(typed_user, &winutil::computer_name());
        let mut bytes = if self.context == Context::CredUi {
            let full = if domain.is_empty() {
                user.clone()
            } else {
                format!("{domain}\\{user}")
            };
            // CredPackAuthenticationBufferW, as Microsoft's CredUI sample provider does; with
            // no flags Windows packs a KERB_INTERACTIVE_UNLOCK_LOGON (KerbInteractiveLogon).
            // Where it fails (Wine 8 has a stub), the same structure is packed here: the
            // 64-bit layout only, so a 32-bit (WOW) caller gets no credential instead.
            match winutil::credui_pack(&full, password, self.wow) {
                Ok(b) => b,
                Err(e) if self.wow => return Err(e),
                Err(_) => {
                    let cred = kerb::WinCredential {
                        domain,
                        user,
                        password: password.to_string(),
                    };
                    kerb::pack(kerb::KERB_INTERACTIVE_LOGON, &cred).map_err(|_| E_INVALIDARG)?
                }
            }
        } else {
            let message = if self.context == Context::Unlock {
                kerb::KERB_WORKSTATION_UNLOCK_LOGON
            } else {
                kerb::KERB_INTERACTIVE_LOGON
            };
            let cred = kerb::WinCredential {
                domain,
                user,
                password: password.to_string(),
            };
            kerb::pack(message, &cred).map_err(|_| E_INVALIDARG)?
        };
        let package = winutil::negotiate_package();
        let result = package.and_then(|package| {
            let data = winutil::co_bytes(&bytes)?;
            // SAFETY: the caller checked the pointer.
            unsafe {
                *pcpcs = CREDENTIAL_PROVIDER_CREDENTIAL_SERIALIZATION {
                    ulAuthenticationPackage: package,
                    clsidCredentialProvider: CLSID_LATCHKEY_PROVIDER,
                    cbSerialization: bytes.len() as u32,
                    rgbSerialization: data,
                };
            }
            Ok(())
        });
        bytes.zeroize();
        result
    }
}

impl ICredentialProviderCredential_Impl for Credential_Impl {
    fn Advise(&self, pcpce: Ref<ICredentialProviderCredentialEvents>) -> windows::core::Result<()> {
        guard(|| {
            self.state().events = pcpce.ok().ok().cloned();
            Ok(())
        })
    }

    fn UnAdvise(&self) -> windows::core::Result<()> {
        guard(|| {
            self.state().events = None;
            Ok(())
        })
    }

    fn SetSelected(&self) -> windows::core::Result<BOOL> {
        Ok(BOOL(0))
    }

    fn SetDeselected(&self) -> windows::core::Result<()> {
        guard(|| {
            let (events, had_password) = {
                let mut st = self.state();
                st.flow.reset();
                st.code.zeroize();
                st.code.clear();
                let had = !st.password.is_empty();
                st.password.zeroize();
                st.password.clear();
                (st.events.clone(), had)
            };
            if had_password {
                self.notify_string(&events, fields::PASSWORD, "");
            }
            self.notify_string(&events, fields::CODE, "");
            self.end_view();
            Ok(())
        })
    }

    fn GetFieldState(
        &self,
        dwfieldid: u32,
        pcpfs: *mut CREDENTIAL_PROVIDER_FIELD_STATE,
        pcpfis: *mut CREDENTIAL_PROVIDER_FIELD_INTERACTIVE_STATE,
    ) -> windows::core::Result<()> {
        guard(|| {
            let f = fields::get(dwfieldid).ok_or(E_INVALIDARG)?;
            if pcpfs.is_null() || pcpfis.is_null() {
                return Err(E_POINTER.into());
            }
            let shown = {
                let st = self.state();
                match dwfieldid {
                    fields::ENROLL => Some(st.enroll_offered),
                    fields::SECRET => Some(st.secret.is_some()),
                    _ => None,
                }
            };
            let state = match shown {
                Some(true) => CPFS_DISPLAY_IN_SELECTED_TILE,
                Some(false) => CPFS_HIDDEN,
                None => f.state,
            };
            // SAFETY: checked non-null.
            unsafe {
                *pcpfs = state;
                *pcpfis = f.interactive;
            }
            Ok(())
        })
    }

    fn GetStringValue(&self, dwfieldid: u32) -> windows::core::Result<PWSTR> {
        guard(|| {
            let f = fields::get(dwfieldid).ok_or(E_INVALIDARG)?;
            let st = self.state();
            let value = match dwfieldid {
                fields::USER => st.user.clone(),
                // Secrets are write-only: LogonUI never needs them back.
                fields::PASSWORD | fields::CODE => String::new(),
                fields::INFO => st.info.clone(),
                fields::SECRET => st
                    .secret
                    .as_ref()
                    .map(|s| s.expose().to_string())
                    .unwrap_or_default(),
                _ if f.kind == CPFT_LARGE_TEXT
                    || f.kind == CPFT_SMALL_TEXT
                    || f.kind == CPFT_COMMAND_LINK =>
                {
                    f.label.to_string()
                }
                _ => return Err(E_INVALIDARG.into()),
            };
            winutil::co_string(&value)
        })
    }

    fn GetBitmapValue(&self, dwfieldid: u32) -> windows::core::Result<HBITMAP> {
        guard(|| {
            if dwfieldid != fields::TILE {
                return Err(E_INVALIDARG.into());
            }
            let payload = self.state().qr_payload.clone();
            // LogonUI owns the bitmap it is given: each call draws a fresh one.
            let drawn = match payload {
                Some(p) => qr_bitmap(p.expose()),
                None => qr::logo(),
            };
            drawn.map_err(|_| windows::Win32::Foundation::E_FAIL.into())
        })
    }

    fn GetCheckboxValue(&self, _: u32, _: *mut BOOL, _: *mut PWSTR) -> windows::core::Result<()> {
        Err(E_NOTIMPL.into())
    }

    fn GetSubmitButtonValue(&self, dwfieldid: u32) -> windows::core::Result<u32> {
        if dwfieldid == fields::SUBMIT {
            Ok(fields::CODE)
        } else {
            Err(E_INVALIDARG.into())
        }
    }

    fn GetComboBoxValueCount(&self, _: u32, _: *mut u32, _: *mut u32) -> windows::core::Result<()> {
        Err(E_NOTIMPL.into())
    }

    fn GetComboBoxValueAt(&self, _: u32, _: u32) -> windows::core::Result<PWSTR> {
        Err(E_NOTIMPL.into())
    }

    fn SetStringValue(&self, dwfieldid: u32, psz: &PCWSTR) -> windows::core::Result<()> {
        guard(|| {
            let f = fields::get(dwfieldid).ok_or(E_INVALIDARG)?;
            if f.kind != CPFT_EDIT_TEXT && f.kind != CPFT_PASSWORD_TEXT {
                return Err(E_INVALIDARG.into());
            }
            let value = if psz.is_null() {
                String::new()
            } else {
                // SAFETY: LogonUI passes a NUL-terminated string.
                unsafe { psz.to_string() }.map_err(|_| E_INVALIDARG)?
            };
            let other_person = {
                let mut st = self.state();
                let other = dwfieldid == fields::USER && st.user != value;
                if other {
                    // Another person: a paused conversation is not theirs.
                    st.flow.reset();
                }
                let slot = match dwfieldid {
                    fields::USER => &mut st.user,
                    fields::PASSWORD => &mut st.password,
                    fields::CODE => &mut st.code,
                    _ => return Err(E_INVALIDARG.into()),
                };
                slot.zeroize();
                *slot = value;
                other
            };
            if other_person {
                self.end_view();
            }
            Ok(())
        })
    }

    fn SetCheckboxValue(&self, _: u32, _: BOOL) -> windows::core::Result<()> {
        Err(E_NOTIMPL.into())
    }

    fn SetComboBoxSelectedValue(&self, _: u32, _: u32) -> windows::core::Result<()> {
        Err(E_NOTIMPL.into())
    }

    fn CommandLinkClicked(&self, dwfieldid: u32) -> windows::core::Result<()> {
        guard(|| {
            if dwfieldid == fields::ENROLL {
                self.enrol_clicked();
                return Ok(());
            }
            if dwfieldid != fields::PUSH {
                return Err(E_INVALIDARG.into());
            }
            let events = {
                let mut st = self.state();
                st.code.zeroize();
                st.code.clear();
                st.info = "Press Submit: a push will be sent to your phone.".into();
                st.events.clone()
            };
            self.notify_string(&events, fields::CODE, "");
            self.notify_string(
                &events,
                fields::INFO,
                "Press Submit: a push will be sent to your phone.",
            );
            Ok(())
        })
    }

    fn GetSerialization(
        &self,
        pcpgsr: *mut CREDENTIAL_PROVIDER_GET_SERIALIZATION_RESPONSE,
        pcpcs: *mut CREDENTIAL_PROVIDER_CREDENTIAL_SERIALIZATION,
        ppszoptionalstatustext: *mut PWSTR,
        pcpsioptionalstatusicon: *mut CREDENTIAL_PROVIDER_STATUS_ICON,
    ) -> windows::core::Result<()> {
        guard(|| {
            if pcpgsr.is_null()
                || pcpcs.is_null()
                || ppszoptionalstatustext.is_null()
                || pcpsioptionalstatusicon.is_null()
            {
                return Err(E_POINTER.into());
            }
            // SAFETY: checked non-null. Start from "no credential": every early return denies.
            unsafe {
                *pcpgsr = CPGSR_NO_CREDENTIAL_NOT_FINISHED;
                *ppszoptionalstatustext = PWSTR::null();
                *pcpsioptionalstatusicon = CPSI_NONE;
            }
            let (typed_user, mut password, mut code) = {
                let st = self.state();
                (st.user.clone(), st.password.clone(), st.code.clone())
            };
            if kerb::mfa_user(&typed_user).is_empty() {
                code.zeroize();
                password.zeroize();
                return write_status(
                    "Type your user name.",
                    CPSI_ERROR,
                    ppszoptionalstatustext,
                    pcpsioptionalstatusicon,
                );
            }
            // The password goes to the agent only for it to check (LogonUserW) before the
            // server may offer enrolment to a user without a token; the server's policy
            // decides whether it does.
            let enroll = config::inline_enrollment().then(|| FirstFactor::Password {
                password: Secret::from(password.as_str()),
                domain: kerb::password_domain(&typed_user),
            });
            let begin = Begin {
                user: kerb::mfa_user(&typed_user),
                service: self.context.service().to_string(),
                client_id: config::client_id(self.context),
                enroll,
            };
            // The conversation blocks this thread while the agent works (a push waits for
            // the phone); the agent bounds every step with its own timeouts.
            let outcome = {
                let (mut flow, events) = {
                    let mut st = self.state();
                    (std::mem::take(&mut st.flow), st.events.clone())
                };
                // What the agent says while the Submit runs (the push number to match) goes
                // to the info line at once.
                let mut show = |text: &str| {
                    self.state().info = text.to_string();
                    self.notify_string(&events, fields::INFO, text);
                };
                let o = flow.submit(winutil::connect_agent, &begin, &code, &mut show);
                self.state().flow = flow;
                o
            };
            code.zeroize();
            let events = {
                let mut st = self.state();
                st.code.zeroize();
                st.code.clear();
                st.events.clone()
            };
            self.notify_string(&events, fields::CODE, "");
            let result = match outcome {
                Outcome::Success { .. } => {
                    self.end_view();
                    match self.serialize(&typed_user, &password, pcpcs) {
                        Ok(()) => {
                            // SAFETY: checked non-null.
                            unsafe { *pcpgsr = CPGSR_RETURN_CREDENTIAL_FINISHED };
                            Ok(())
                        }
                        Err(e) => write_status(
                            &format!(
                                "MFA passed, but the Windows credential could not be prepared ({:#010x}).",
                                e.code().0
                            ),
                            CPSI_ERROR,
                            ppszoptionalstatustext,
                            pcpsioptionalstatusicon,
                        ),
                    }
                }
                Outcome::Failure { reason } => {
                    self.end_view();
                    // SAFETY: checked non-null.
                    unsafe { *pcpgsr = CPGSR_NO_CREDENTIAL_FINISHED };
                    self.state().info = reason.clone();
                    self.notify_string(&events, fields::INFO, &reason);
                    write_status(
                        &reason,
                        CPSI_ERROR,
                        ppszoptionalstatustext,
                        pcpsioptionalstatusicon,
                    )
                }
                Outcome::NeedCode { text, qr } => {
                    self.show_need_code(&events, &text, qr);
                    write_status(
                        &text,
                        CPSI_WARNING,
                        ppszoptionalstatustext,
                        pcpsioptionalstatusicon,
                    )
                }
                Outcome::Enroll { text, skip } => {
                    let text = self.show_offer(&events, &text, skip.as_deref());
                    write_status(
                        &text,
                        CPSI_WARNING,
                        ppszoptionalstatustext,
                        pcpsioptionalstatusicon,
                    )
                }
            };
            password.zeroize();
            result
        })
    }

    fn ReportResult(
        &self,
        _ntsstatus: NTSTATUS,
        _ntssubstatus: NTSTATUS,
        ppszoptionalstatustext: *mut PWSTR,
        pcpsioptionalstatusicon: *mut CREDENTIAL_PROVIDER_STATUS_ICON,
    ) -> windows::core::Result<()> {
        // Windows reports its own password errors; nothing to add.
        if !ppszoptionalstatustext.is_null() {
            // SAFETY: checked non-null.
            unsafe { *ppszoptionalstatustext = PWSTR::null() };
        }
        if !pcpsioptionalstatusicon.is_null() {
            // SAFETY: checked non-null.
            unsafe { *pcpsioptionalstatusicon = CPSI_NONE };
        }
        Ok(())
    }
}

impl ICredentialProviderCredential2_Impl for Credential_Impl {
    fn GetUserSid(&self) -> windows::core::Result<PWSTR> {
        // Not tied to one user tile: LogonUI shows it under "Other user".
        Err(windows::Win32::Foundation::S_FALSE.into())
    }
}
