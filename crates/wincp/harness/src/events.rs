//! The event sinks LogonUI hands a provider and its credentials: every call is recorded
//! (and, in `session` mode, printed at once), bitmaps read back while they are the DLL's.

use crate::read::{bitmap_size, dump_bitmap};
use crate::{Log, STREAM};
use serde_json::{Value, json};
use windows::Win32::Graphics::Gdi::HBITMAP;
use windows::Win32::UI::Shell::{
    CREDENTIAL_PROVIDER_FIELD_INTERACTIVE_STATE, CREDENTIAL_PROVIDER_FIELD_STATE,
    ICredentialProviderCredential, ICredentialProviderCredentialEvents,
    ICredentialProviderCredentialEvents_Impl, ICredentialProviderEvents,
    ICredentialProviderEvents_Impl,
};
use windows::core::{BOOL, PCWSTR, Ref, implement};

fn record(log: &Log, mut v: Value) {
    if STREAM.get().is_some() {
        v["kind"] = json!("event");
        println!("{v}");
    }
    log.lock().unwrap().push(v);
}

#[implement(ICredentialProviderEvents)]
pub(crate) struct ProviderEvents {
    pub(crate) log: Log,
}

impl ICredentialProviderEvents_Impl for ProviderEvents_Impl {
    fn CredentialsChanged(&self, ctx: usize) -> windows::core::Result<()> {
        record(
            &self.log,
            json!({"event": "credentials_changed", "context": ctx}),
        );
        Ok(())
    }
}

#[implement(ICredentialProviderCredentialEvents)]
pub(crate) struct CredentialEvents {
    pub(crate) log: Log,
}

fn wide(p: &PCWSTR) -> String {
    if p.is_null() {
        String::new()
    } else {
        unsafe { p.to_string() }.unwrap_or_default()
    }
}

impl ICredentialProviderCredentialEvents_Impl for CredentialEvents_Impl {
    fn SetFieldState(
        &self,
        _: Ref<ICredentialProviderCredential>,
        id: u32,
        s: CREDENTIAL_PROVIDER_FIELD_STATE,
    ) -> windows::core::Result<()> {
        record(
            &self.log,
            json!({"event": "field_state", "field": id, "state": s.0}),
        );
        Ok(())
    }
    fn SetFieldInteractiveState(
        &self,
        _: Ref<ICredentialProviderCredential>,
        id: u32,
        s: CREDENTIAL_PROVIDER_FIELD_INTERACTIVE_STATE,
    ) -> windows::core::Result<()> {
        record(
            &self.log,
            json!({"event": "field_interactive_state", "field": id, "state": s.0}),
        );
        Ok(())
    }
    fn SetFieldString(
        &self,
        _: Ref<ICredentialProviderCredential>,
        id: u32,
        psz: &PCWSTR,
    ) -> windows::core::Result<()> {
        record(
            &self.log,
            json!({"event": "field_string", "field": id, "value": wide(psz)}),
        );
        Ok(())
    }
    fn SetFieldCheckbox(
        &self,
        _: Ref<ICredentialProviderCredential>,
        _: u32,
        _: BOOL,
        _: &PCWSTR,
    ) -> windows::core::Result<()> {
        Ok(())
    }
    fn SetFieldBitmap(
        &self,
        _: Ref<ICredentialProviderCredential>,
        id: u32,
        bmp: HBITMAP,
    ) -> windows::core::Result<()> {
        let (w, h) = bitmap_size(bmp);
        // The bitmap stays the DLL's: read it now.
        let dump = dump_bitmap(bmp, "event");
        record(
            &self.log,
            json!({"event": "field_bitmap", "field": id, "width": w, "height": h, "dump": dump}),
        );
        Ok(())
    }
    fn SetFieldComboBoxSelectedItem(
        &self,
        _: Ref<ICredentialProviderCredential>,
        _: u32,
        _: u32,
    ) -> windows::core::Result<()> {
        Ok(())
    }
    fn DeleteFieldComboBoxItem(
        &self,
        _: Ref<ICredentialProviderCredential>,
        _: u32,
        _: u32,
    ) -> windows::core::Result<()> {
        Ok(())
    }
    fn AppendFieldComboBoxItem(
        &self,
        _: Ref<ICredentialProviderCredential>,
        _: u32,
        _: &PCWSTR,
    ) -> windows::core::Result<()> {
        Ok(())
    }
    fn SetFieldSubmitButton(
        &self,
        _: Ref<ICredentialProviderCredential>,
        _: u32,
        _: u32,
    ) -> windows::core::Result<()> {
        Ok(())
    }
    fn OnCreatingWindow(&self) -> windows::core::Result<windows::Win32::Foundation::HWND> {
        Ok(windows::Win32::Foundation::HWND::default())
    }
}
