//! Small Win32 helpers: COM-allocated strings and buffers, the LSA package id, CredUI
//! packing, the agent pipe.

use crate::flow::Pipe;
use windows::Win32::Foundation::{E_FAIL, E_OUTOFMEMORY, HANDLE};
use windows::Win32::Security::Authentication::Identity::{
    LSA_STRING, LsaConnectUntrusted, LsaDeregisterLogonProcess, LsaLookupAuthenticationPackage,
};
use windows::Win32::Security::Credentials::{CRED_PACK_FLAGS, CredPackAuthenticationBufferW};
use windows::Win32::System::Com::CoTaskMemAlloc;
use windows::Win32::System::WindowsProgramming::GetComputerNameW;
use windows::Win32::UI::Shell::SHStrDupW;
use windows::Win32::UI::WindowsAndMessaging::{GetSystemMetrics, SM_REMOTESESSION};
use windows::core::{HSTRING, PSTR, PWSTR};
use zeroize::Zeroize;

/// A CoTaskMemAlloc'ed copy of `s` (LogonUI frees it).
pub fn co_string(s: &str) -> windows::core::Result<PWSTR> {
    // SAFETY: SHStrDupW copies the NUL-terminated HSTRING into CoTaskMem.
    unsafe { SHStrDupW(&HSTRING::from(s)) }
}

/// A CoTaskMemAlloc'ed copy of `bytes`.
pub fn co_bytes(bytes: &[u8]) -> windows::core::Result<*mut u8> {
    // SAFETY: allocation of bytes.len() (at least 1) bytes, then a copy into it.
    unsafe {
        let p = CoTaskMemAlloc(bytes.len().max(1)).cast::<u8>();
        if p.is_null() {
            return Err(E_OUTOFMEMORY.into());
        }
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len());
        Ok(p)
    }
}

pub fn computer_name() -> String {
    let mut buf = [0u16; 64];
    let mut len = buf.len() as u32;
    // SAFETY: `buf` has `len` u16s.
    match unsafe { GetComputerNameW(Some(PWSTR(buf.as_mut_ptr())), &mut len) } {
        Ok(()) => String::from_utf16_lossy(&buf[..(len as usize).min(buf.len())]),
        Err(_) => ".".to_string(),
    }
}

/// The LSA id of the package the credential is for: Negotiate (what Windows' own password
/// provider uses), or Kerberos where Negotiate is not an LSA package (Wine); both take a
/// `KERB_INTERACTIVE_UNLOCK_LOGON`.
pub fn negotiate_package() -> windows::core::Result<u32> {
    let mut lsa = HANDLE::default();
    // SAFETY: plain LSA calls on a handle this function opens and closes; the names are
    // static ASCII strings described by their LSA_STRINGs.
    unsafe {
        LsaConnectUntrusted(&mut lsa).ok()?;
        let mut result = Err(E_FAIL.into());
        for name in [&b"Negotiate"[..], &b"Kerberos"[..]] {
            let lsa_name = LSA_STRING {
                Length: name.len() as u16,
                MaximumLength: name.len() as u16,
                Buffer: PSTR(name.as_ptr() as *mut u8),
            };
            let mut package = 0u32;
            result = LsaLookupAuthenticationPackage(lsa, &lsa_name, &mut package)
                .ok()
                .map(|_| package);
            if result.is_ok() {
                break;
            }
        }
        let _ = LsaDeregisterLogonProcess(lsa);
        result
    }
}

/// CredUI's serialization: `CredPackAuthenticationBufferW` of `DOMAIN\user` and password.
pub fn credui_pack(user: &str, password: &str, wow: bool) -> windows::core::Result<Vec<u8>> {
    let flags = if wow {
        windows::Win32::Security::Credentials::CRED_PACK_WOW_BUFFER
    } else {
        CRED_PACK_FLAGS(0)
    };
    let user = HSTRING::from(user);
    let mut password_w: Vec<u16> = password.encode_utf16().chain(Some(0)).collect();
    let pw = windows::core::PCWSTR(password_w.as_ptr());
    let mut size = 0u32;
    // SAFETY: size query, then packing into a buffer of that size. The size query fails
    // with ERROR_INSUFFICIENT_BUFFER on Windows and succeeds on Wine: either way it is the
    // reported size that matters.
    let result = unsafe {
        let _ = CredPackAuthenticationBufferW(flags, &user, pw, None, &mut size);
        if size == 0 || size > 64 * 1024 {
            Err(E_FAIL.into())
        } else {
            let mut buf = vec![0u8; size as usize];
            CredPackAuthenticationBufferW(flags, &user, pw, Some(buf.as_mut_ptr()), &mut size).map(
                |_| {
                    buf.truncate(size as usize);
                    buf
                },
            )
        }
    };
    password_w.zeroize();
    result
}

/// Is this a Remote Desktop session?
pub fn remote_session() -> bool {
    // SAFETY: no arguments beyond the metric index.
    unsafe { GetSystemMetrics(SM_REMOTESESSION) != 0 }
}

/// Opens the agent's pipe (the client end opens like a file). Waits a little for a free
/// instance when the agent is busy accepting.
pub fn connect_agent() -> Result<Box<dyn Pipe + Send>, String> {
    let name = crate::config::agent_pipe();
    let mut last = None;
    for _ in 0..20 {
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&name)
        {
            Ok(f) => return Ok(Box::new(f)),
            // ERROR_PIPE_BUSY: every instance is taken for a moment.
            Err(e) if e.raw_os_error() == Some(231) => {
                last = Some(e);
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err(e) => return Err(format!("{name}: {e}")),
        }
    }
    Err(format!(
        "{name}: {}",
        last.map(|e| e.to_string()).unwrap_or_default()
    ))
}
