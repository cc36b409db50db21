//! logonui-sim.exe: drives latchkey_cp.dll the way LogonUI (and CredUI) do, for the Wine
//! tests, and prints what happened as one JSON object on stdout.
//!
//! ```text
//! logonui-sim DLL login  SCENARIO USER PASSWORD CODE [CODE…]   (SCENARIO: logon|unlock|credui)
//! logonui-sim DLL remote USER PASSWORD CODE                    (RDP: filter → SetSerialization)
//! logonui-sim DLL filter
//! logonui-sim DLL session SCENARIO DUMPDIR                     (driven line by line, below)
//! logonui-sim DLL logonuser USER DOMAIN PASSWORD               (what this system's LogonUserW says)
//! ```
//!
//! `session` is for conversations a test takes part in (the offline QR, a push): it reads one
//! JSON array per line on stdin — `["set", "user"|"password"|"code", VALUE]`, `["submit"]`,
//! `["push"]` (the command link), `["enroll"]` (the "Enroll token" link), `["tile"]`
//! (GetBitmapValue), `["wait-agent", MS]` (until
//! the agent's pipe exists, e.g. a service starting), `["quit"]` — and prints one
//! JSON object per line as things happen, events included (a push's number arrives while
//! its Submit still waits); a Submit's and a link's report carry the tile's `view` (the
//! info line, the enrolment secret, which of the changing fields are shown, from
//! GetStringValue and GetFieldState). Bitmaps are written to DUMPDIR as 8-bit greyscale PGM files,
//! read back from the HBITMAP with GetDIBits.
//!
//! The DLL is loaded with LoadLibrary + DllGetClassObject (no registration needed). Each CODE
//! is one Submit: SetStringValue for the fields, then GetSerialization. Serialized
//! credentials are parsed back here, independently of the DLL's packing code.

#![allow(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod events;
mod read;

use events::{CredentialEvents, ProviderEvents};
use latchkey_cp::{
    CLSID_LATCHKEY_PROVIDER, CLSID_PASSWORD_PROVIDER, CLSID_PASSWORD_PROVIDER_V1, fields,
};
use read::{
    bitmap_size, dump_bitmap, guid_str, icon_name, parse_credui, parse_kerb, response_name,
};
use serde_json::{Value, json};
use std::ffi::c_void;
use std::sync::{Arc, Mutex};
use windows::Win32::Foundation::HMODULE;
use windows::Win32::Graphics::Gdi::{DeleteObject, HGDIOBJ};
use windows::Win32::System::Com::{
    COINIT_APARTMENTTHREADED, CoInitializeEx, CoTaskMemFree, IClassFactory,
};
use windows::Win32::System::LibraryLoader::{GetProcAddress, LoadLibraryW};
use windows::Win32::UI::Shell::{
    CPFS_HIDDEN, CPGSR_RETURN_CREDENTIAL_FINISHED, CPUS_CHANGE_PASSWORD, CPUS_CREDUI, CPUS_LOGON,
    CPUS_UNLOCK_WORKSTATION, CREDENTIAL_PROVIDER_CREDENTIAL_SERIALIZATION,
    CREDENTIAL_PROVIDER_FIELD_INTERACTIVE_STATE, CREDENTIAL_PROVIDER_FIELD_STATE,
    CREDENTIAL_PROVIDER_GET_SERIALIZATION_RESPONSE, CREDENTIAL_PROVIDER_STATUS_ICON,
    ICredentialProvider, ICredentialProviderCredential, ICredentialProviderCredential2,
    ICredentialProviderCredentialEvents, ICredentialProviderEvents, ICredentialProviderFilter,
};
use windows::core::{BOOL, GUID, HRESULT, HSTRING, Interface, PCWSTR, PWSTR, s};

pub(crate) type Log = Arc<Mutex<Vec<Value>>>;

/// In `session` mode every event is printed at once (and bitmaps dumped here).
pub(crate) static STREAM: std::sync::OnceLock<String> = std::sync::OnceLock::new();
pub(crate) static DUMPS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

type GetClassObject =
    unsafe extern "system" fn(*const GUID, *const GUID, *mut *mut c_void) -> HRESULT;

fn load(dll: &str) -> IClassFactory {
    unsafe {
        let module: HMODULE = LoadLibraryW(&HSTRING::from(dll)).expect("LoadLibraryW");
        let proc =
            GetProcAddress(module, s!("DllGetClassObject")).expect("DllGetClassObject export");
        let get: GetClassObject = std::mem::transmute(proc);
        let mut out: *mut c_void = std::ptr::null_mut();
        get(&CLSID_LATCHKEY_PROVIDER, &IClassFactory::IID, &mut out)
            .ok()
            .expect("DllGetClassObject");
        // A foreign CLSID must be refused.
        let mut other: *mut c_void = std::ptr::null_mut();
        let hr = get(&CLSID_PASSWORD_PROVIDER, &IClassFactory::IID, &mut other);
        assert!(hr.is_err() && other.is_null(), "a foreign CLSID was served");
        IClassFactory::from_raw(out)
    }
}

fn set(cred: &ICredentialProviderCredential, id: u32, v: &str) {
    let h = HSTRING::from(v);
    unsafe { cred.SetStringValue(id, PCWSTR(h.as_ptr())) }.expect("SetStringValue");
}

fn get_string(cred: &ICredentialProviderCredential, id: u32) -> String {
    unsafe {
        let p = cred.GetStringValue(id).expect("GetStringValue");
        let s = p.to_string().unwrap_or_default();
        CoTaskMemFree(Some(p.0 as *const c_void));
        s
    }
}

/// What the tile shows now of its changing fields, as LogonUI would ask for them.
fn view(cred: &ICredentialProviderCredential) -> Value {
    let shown = |id: u32| {
        let mut state = CREDENTIAL_PROVIDER_FIELD_STATE::default();
        let mut interactive = CREDENTIAL_PROVIDER_FIELD_INTERACTIVE_STATE::default();
        unsafe { cred.GetFieldState(id, &mut state, &mut interactive) }.expect("GetFieldState");
        state != CPFS_HIDDEN
    };
    json!({
        "info": get_string(cred, fields::INFO),
        "secret": get_string(cred, fields::SECRET),
        "enroll_link": shown(fields::ENROLL),
        "secret_shown": shown(fields::SECRET),
        "push_link": shown(fields::PUSH),
    })
}

fn submit(cred: &ICredentialProviderCredential, credui: bool) -> Value {
    let mut resp = CREDENTIAL_PROVIDER_GET_SERIALIZATION_RESPONSE::default();
    let mut cs = CREDENTIAL_PROVIDER_CREDENTIAL_SERIALIZATION::default();
    let mut status = PWSTR::null();
    let mut icon = CREDENTIAL_PROVIDER_STATUS_ICON::default();
    let r = unsafe { cred.GetSerialization(&mut resp, &mut cs, &mut status, &mut icon) };
    let status_text = if status.is_null() {
        Value::Null
    } else {
        let s = unsafe { status.to_string() }.unwrap_or_default();
        unsafe { CoTaskMemFree(Some(status.0 as *const c_void)) };
        Value::String(s)
    };
    let credential = if resp == CPGSR_RETURN_CREDENTIAL_FINISHED && !cs.rgbSerialization.is_null() {
        let bytes =
            unsafe { std::slice::from_raw_parts(cs.rgbSerialization, cs.cbSerialization as usize) }
                .to_vec();
        unsafe { CoTaskMemFree(Some(cs.rgbSerialization as *const c_void)) };
        let mut v = if credui {
            // CredUnPackAuthenticationBufferW where it works (Windows); Wine 8's is a stub
            // (it "succeeds" with empty strings), so the buffer is then read as the packed
            // KERB_INTERACTIVE_UNLOCK_LOGON it is.
            match parse_credui(&bytes) {
                v if v["error"].is_null() && v["user"].as_str().is_some_and(|u| !u.is_empty()) => v,
                v => {
                    let mut k = parse_kerb(&bytes);
                    k["credunpack"] = v;
                    k
                }
            }
        } else {
            parse_kerb(&bytes)
        };
        v["package"] = json!(cs.ulAuthenticationPackage);
        v["clsid"] = json!(guid_str(&cs.clsidCredentialProvider));
        v
    } else {
        Value::Null
    };
    json!({
        "hresult": format!("{:#010x}", r.as_ref().err().map(|e| e.code().0).unwrap_or(0)),
        "response": response_name(resp),
        "status": status_text,
        "icon": icon_name(icon),
        "credential": credential,
    })
}

fn open_tile(
    factory: &IClassFactory,
    cpus: windows::Win32::UI::Shell::CREDENTIAL_PROVIDER_USAGE_SCENARIO,
    log: &Log,
) -> (ICredentialProvider, Value) {
    let provider: ICredentialProvider =
        unsafe { factory.CreateInstance(None) }.expect("CreateInstance");
    unsafe { provider.SetUsageScenario(cpus, 0) }.expect("SetUsageScenario");
    let events: ICredentialProviderEvents = ProviderEvents { log: log.clone() }.into();
    unsafe { provider.Advise(&events, 42) }.expect("Advise");
    let n = unsafe { provider.GetFieldDescriptorCount() }.expect("GetFieldDescriptorCount");
    let mut descriptors = Vec::new();
    for i in 0..n {
        unsafe {
            let d = provider
                .GetFieldDescriptorAt(i)
                .expect("GetFieldDescriptorAt");
            let label = (*d).pszLabel.to_string().unwrap_or_default();
            descriptors.push(json!({"id": (*d).dwFieldID, "type": (*d).cpft.0, "label": label}));
            CoTaskMemFree(Some((*d).pszLabel.0 as *const c_void));
            CoTaskMemFree(Some(d as *const c_void));
        }
    }
    (provider, Value::Array(descriptors))
}

fn credential_of(
    provider: &ICredentialProvider,
    log: &Log,
) -> (ICredentialProviderCredential, Value) {
    let (mut count, mut default, mut auto) = (0u32, 0u32, BOOL(0));
    unsafe { provider.GetCredentialCount(&mut count, &mut default, &mut auto) }
        .expect("GetCredentialCount");
    let cred = unsafe { provider.GetCredentialAt(0) }.expect("GetCredentialAt");
    let is_v2 = cred.cast::<ICredentialProviderCredential2>().is_ok();
    let events: ICredentialProviderCredentialEvents = CredentialEvents { log: log.clone() }.into();
    unsafe { cred.Advise(&events) }.expect("credential Advise");
    let _auto_submit = unsafe { cred.SetSelected() }.expect("SetSelected");
    let tile = unsafe { cred.GetBitmapValue(fields::TILE) }.expect("GetBitmapValue");
    let (w, h) = bitmap_size(tile);
    let _ = unsafe { DeleteObject(HGDIOBJ(tile.0)) };
    (
        cred,
        json!({"count": count, "default": default, "autologon": auto.as_bool(), "v2": is_v2, "tile_bitmap": [w, h]}),
    )
}

fn cmd_login(dll: &str, scenario: &str, user: &str, password: &str, codes: &[String]) -> Value {
    let cpus = scenario_of(scenario);
    let log: Log = Default::default();
    let factory = load(dll);
    let (provider, descriptors) = open_tile(&factory, cpus, &log);
    let (cred, tile) = credential_of(&provider, &log);
    let mut submits = Vec::new();
    for code in codes {
        set(&cred, fields::USER, user);
        set(&cred, fields::PASSWORD, password);
        set(&cred, fields::CODE, code);
        submits.push(submit(&cred, scenario == "credui"));
    }
    let info = get_string(&cred, fields::INFO);
    json!({"descriptors": descriptors, "tile": tile, "submits": submits, "info": info, "events": *log.lock().unwrap()})
}

fn cmd_filter(dll: &str) -> Value {
    let factory = load(dll);
    let filter: ICredentialProviderFilter =
        unsafe { factory.CreateInstance(None) }.expect("CreateInstance filter");
    let ids = [
        CLSID_PASSWORD_PROVIDER,
        CLSID_LATCHKEY_PROVIDER,
        CLSID_PASSWORD_PROVIDER_V1,
    ];
    let mut out = serde_json::Map::new();
    for (name, cpus) in [
        ("logon", CPUS_LOGON),
        ("unlock", CPUS_UNLOCK_WORKSTATION),
        ("credui", CPUS_CREDUI),
        ("change_password", CPUS_CHANGE_PASSWORD),
    ] {
        let mut allow = [BOOL(1); 3];
        unsafe { filter.Filter(cpus, 0, ids.as_ptr(), allow.as_mut_ptr(), ids.len() as u32) }
            .expect("Filter");
        out.insert(
            name.to_string(),
            json!({"password_v2": allow[0].as_bool(), "latchkey": allow[1].as_bool(), "password_v1": allow[2].as_bool()}),
        );
    }
    Value::Object(out)
}

/// Packs a KERB_INTERACTIVE_UNLOCK_LOGON as an RDP client's credential would arrive.
fn pack_kerb(domain: &str, user: &str, password: &str) -> Vec<u8> {
    let strings: Vec<Vec<u8>> = [domain, user, password]
        .iter()
        .map(|s| s.encode_utf16().flat_map(u16::to_le_bytes).collect())
        .collect();
    let mut out = vec![0u8; 64];
    out[0..4].copy_from_slice(&2u32.to_le_bytes());
    let mut off = 64u64;
    for (i, s) in strings.iter().enumerate() {
        let at = 8 + 16 * i;
        out[at..at + 2].copy_from_slice(&(s.len() as u16).to_le_bytes());
        out[at + 2..at + 4].copy_from_slice(&(s.len() as u16).to_le_bytes());
        out[at + 8..at + 16].copy_from_slice(&off.to_le_bytes());
        off += s.len() as u64;
    }
    for s in strings {
        out.extend_from_slice(&s);
    }
    out
}

fn cmd_remote(dll: &str, user: &str, password: &str, code: &str) -> Value {
    let log: Log = Default::default();
    let factory = load(dll);
    let filter: ICredentialProviderFilter =
        unsafe { factory.CreateInstance(None) }.expect("CreateInstance filter");
    let mut rdp = pack_kerb("", user, password);
    let cin = CREDENTIAL_PROVIDER_CREDENTIAL_SERIALIZATION {
        ulAuthenticationPackage: 0,
        clsidCredentialProvider: CLSID_PASSWORD_PROVIDER,
        cbSerialization: rdp.len() as u32,
        rgbSerialization: rdp.as_mut_ptr(),
    };
    let mut cout = CREDENTIAL_PROVIDER_CREDENTIAL_SERIALIZATION::default();
    unsafe { filter.UpdateRemoteCredential(&cin, &mut cout) }.expect("UpdateRemoteCredential");
    let redirected =
        unsafe { std::slice::from_raw_parts(cout.rgbSerialization, cout.cbSerialization as usize) }
            .to_vec();
    let (provider, _) = open_tile(&factory, CPUS_LOGON, &log);
    unsafe { provider.SetSerialization(&cout) }.expect("SetSerialization");
    unsafe { CoTaskMemFree(Some(cout.rgbSerialization as *const c_void)) };
    let (cred, tile) = credential_of(&provider, &log);
    let prefilled_user = get_string(&cred, fields::USER);
    // The person types only the code; user and password came from the RDP client.
    set(&cred, fields::CODE, code);
    let result = submit(&cred, false);
    json!({
        "redirected_to": guid_str(&cout.clsidCredentialProvider),
        "redirected_same_bytes": redirected == rdp,
        "tile": tile,
        "prefilled_user": prefilled_user,
        "submit": result,
        "events": *log.lock().unwrap(),
    })
}

fn scenario_of(name: &str) -> windows::Win32::UI::Shell::CREDENTIAL_PROVIDER_USAGE_SCENARIO {
    match name {
        "logon" => CPUS_LOGON,
        "unlock" => CPUS_UNLOCK_WORKSTATION,
        "credui" => CPUS_CREDUI,
        other => panic!("unknown scenario {other}"),
    }
}

/// Waits until the agent's pipe exists (a service starting in the background); returns the
/// milliseconds waited, or None on timeout. WaitNamedPipeW does not take an instance.
fn wait_agent(limit_ms: u64) -> Option<u64> {
    let name = HSTRING::from(latchkey_cp::config::agent_pipe());
    let start = std::time::Instant::now();
    loop {
        if unsafe { windows::Win32::System::Pipes::WaitNamedPipeW(&name, 200) }.as_bool() {
            return Some(start.elapsed().as_millis() as u64);
        }
        if start.elapsed().as_millis() as u64 > limit_ms {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// One tile driven by commands on stdin (see the top of this file).
fn cmd_session(dll: &str, scenario: &str, dump_dir: &str) -> Value {
    STREAM.set(dump_dir.to_string()).unwrap();
    let log: Log = Default::default();
    let factory = load(dll);
    let (provider, descriptors) = open_tile(&factory, scenario_of(scenario), &log);
    let (cred, tile) = credential_of(&provider, &log);
    println!(
        "{}",
        json!({"kind": "ready", "descriptors": descriptors, "tile": tile})
    );
    for line in std::io::stdin().lines() {
        let line = line.expect("reading stdin");
        let cmd: Vec<String> = serde_json::from_str(&line).expect("a JSON array of strings");
        let out = match cmd.iter().map(String::as_str).collect::<Vec<_>>()[..] {
            ["set", field, value] => {
                let id = match field {
                    "user" => fields::USER,
                    "password" => fields::PASSWORD,
                    "code" => fields::CODE,
                    other => panic!("unknown field {other}"),
                };
                set(&cred, id, value);
                json!({"kind": "set", "field": field})
            }
            ["submit"] => {
                let mut s = submit(&cred, scenario == "credui");
                s["kind"] = json!("submit");
                s["info"] = json!(get_string(&cred, fields::INFO));
                s["view"] = view(&cred);
                s
            }
            ["enroll"] => {
                unsafe { cred.CommandLinkClicked(fields::ENROLL) }.expect("CommandLinkClicked");
                json!({"kind": "enroll", "view": view(&cred)})
            }
            ["push"] => {
                unsafe { cred.CommandLinkClicked(fields::PUSH) }.expect("CommandLinkClicked");
                json!({"kind": "push"})
            }
            ["tile"] => {
                let bmp = unsafe { cred.GetBitmapValue(fields::TILE) }.expect("GetBitmapValue");
                let dump = dump_bitmap(bmp, "tile");
                let _ = unsafe { DeleteObject(HGDIOBJ(bmp.0)) };
                json!({"kind": "tile", "dump": dump})
            }
            ["wait-agent", ms] => {
                let ms: u64 = ms.parse().expect("milliseconds");
                json!({"kind": "wait-agent", "waited_ms": wait_agent(ms)})
            }
            ["quit"] => break,
            _ => panic!("unknown command {line}"),
        };
        println!("{out}");
    }
    json!({"kind": "done"})
}

/// `LogonUserW(USER, DOMAIN, PASSWORD)`, a network logon as the agent does it (diagnostics:
/// Wine's is a stub that accepts anything).
fn cmd_logonuser(user: &str, domain: &str, password: &str) -> Value {
    use windows::Win32::Foundation::{CloseHandle, HANDLE};
    use windows::Win32::Security::{LOGON32_LOGON_NETWORK, LOGON32_PROVIDER_DEFAULT, LogonUserW};
    let mut token = HANDLE::default();
    let r = unsafe {
        LogonUserW(
            &HSTRING::from(user),
            &HSTRING::from(domain),
            &HSTRING::from(password),
            LOGON32_LOGON_NETWORK,
            LOGON32_PROVIDER_DEFAULT,
            &mut token,
        )
    };
    let error = r.as_ref().err().map(|e| format!("{:#010x}", e.code().0));
    let closed = r.is_ok().then(|| unsafe { CloseHandle(token) }.is_ok());
    json!({"ok": r.is_ok(), "error": error, "token": format!("{:#x}", token.0 as usize), "closed": closed})
}

/// Which LSA authentication packages this system knows (diagnostics for Wine).
fn cmd_lsa() -> Value {
    use windows::Win32::Foundation::HANDLE;
    use windows::Win32::Security::Authentication::Identity::{
        LSA_STRING, LsaConnectUntrusted, LsaLookupAuthenticationPackage,
    };
    let mut lsa = HANDLE::default();
    let connect = unsafe { LsaConnectUntrusted(&mut lsa) };
    let mut out = serde_json::Map::new();
    out.insert("connect".into(), json!(format!("{:#x}", connect.0)));
    for name in [
        "Negotiate",
        "Kerberos",
        "MICROSOFT_AUTHENTICATION_PACKAGE_V1_0",
        "NTLM",
        "negotiate",
    ] {
        let s = LSA_STRING {
            Length: name.len() as u16,
            MaximumLength: name.len() as u16,
            Buffer: windows::core::PSTR(name.as_ptr() as *mut u8),
        };
        let mut id = 0u32;
        let r = unsafe { LsaLookupAuthenticationPackage(lsa, &s, &mut id) };
        out.insert(name.into(), json!(format!("{:#x} id {id}", r.0)));
    }
    Value::Object(out)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: logonui-sim DLL login|remote|filter …");
        std::process::exit(2);
    }
    unsafe {
        let _ = CoInitializeEx(None, COINIT_APARTMENTTHREADED);
    }
    let dll = &args[1];
    let out = match args[2].as_str() {
        "login" if args.len() >= 7 => cmd_login(dll, &args[3], &args[4], &args[5], &args[6..]),
        "remote" if args.len() == 6 => cmd_remote(dll, &args[3], &args[4], &args[5]),
        "filter" => cmd_filter(dll),
        "session" if args.len() == 5 => cmd_session(dll, &args[3], &args[4]),
        "lsa" => cmd_lsa(),
        "logonuser" if args.len() == 6 => cmd_logonuser(&args[3], &args[4], &args[5]),
        _ => {
            eprintln!(
                "usage: logonui-sim DLL login SCENARIO USER PASSWORD CODE… | remote USER PASSWORD CODE | filter"
            );
            std::process::exit(2);
        }
    };
    println!("{out}");
}
