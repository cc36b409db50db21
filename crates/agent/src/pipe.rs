//! The agent's named pipe on Windows (`\\.\pipe\latchkey-agent`): the same conversation as
//! the Unix socket (`socket::connection`), another transport and another caller check.
//!
//! Who may connect is decided twice. The pipe's DACL grants access to SYSTEM and the
//! Administrators group only (`D:P(A;;GA;;;SY)(A;;GA;;;BA)`, protected from inheritance), so
//! the kernel refuses everyone else; remote clients (SMB) are refused by the pipe mode. Then,
//! per connection, the client process's token must be SYSTEM's or carry the enabled
//! Administrators group: the credential provider runs as SYSTEM inside LogonUI/consent.exe,
//! `latchkey-agent login` needs an elevated prompt. Anything else ends the connection.
#![allow(unsafe_code)]

use crate::Agent;
use crate::socket::{Caller, connection, write_reply};
use latchkey_proto::agent::AgentReply;
use std::ffi::c_void;
use std::os::windows::io::AsRawHandle;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::windows::named_pipe::{NamedPipeServer, ServerOptions};
use tokio::sync::watch;
use windows_sys::Win32::Foundation::{CloseHandle, HANDLE, LocalFree};
use windows_sys::Win32::Security::Authorization::{
    ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1,
};
use windows_sys::Win32::Security::{
    GetTokenInformation, IsWellKnownSid, PSECURITY_DESCRIPTOR, SECURITY_ATTRIBUTES,
    SID_AND_ATTRIBUTES, TOKEN_GROUPS, TOKEN_QUERY, TOKEN_USER, TokenGroups, TokenUser,
    WinBuiltinAdministratorsSid, WinLocalSystemSid,
};
use windows_sys::Win32::System::Pipes::GetNamedPipeClientProcessId;
use windows_sys::Win32::System::SystemServices::SE_GROUP_ENABLED;
use windows_sys::Win32::System::Threading::{
    OpenProcess, OpenProcessToken, PROCESS_QUERY_LIMITED_INFORMATION,
};

/// SYSTEM and Administrators: full access; nobody else; not inherited.
const PIPE_SDDL: &str = "D:P(A;;GA;;;SY)(A;;GA;;;BA)";

/// A security descriptor built from SDDL, freed with LocalFree.
struct SecurityDescriptor(PSECURITY_DESCRIPTOR);

// SAFETY: the descriptor is immutable after creation and only read by CreateNamedPipeW.
unsafe impl Send for SecurityDescriptor {}
unsafe impl Sync for SecurityDescriptor {}

impl SecurityDescriptor {
    fn from_sddl(sddl: &str) -> crate::Result<SecurityDescriptor> {
        let wide: Vec<u16> = sddl.encode_utf16().chain(Some(0)).collect();
        let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
        // SAFETY: `wide` is NUL-terminated; `sd` receives a LocalAlloc'ed descriptor.
        let ok = unsafe {
            ConvertStringSecurityDescriptorToSecurityDescriptorW(
                wide.as_ptr(),
                SDDL_REVISION_1,
                &mut sd,
                std::ptr::null_mut(),
            )
        };
        if ok == 0 || sd.is_null() {
            return Err(crate::AgentError::Socket(format!(
                "cannot build the pipe's security descriptor: {}",
                std::io::Error::last_os_error()
            )));
        }
        Ok(SecurityDescriptor(sd))
    }
}

impl Drop for SecurityDescriptor {
    fn drop(&mut self) {
        // SAFETY: allocated by ConvertStringSecurityDescriptorToSecurityDescriptorW.
        unsafe { LocalFree(self.0) };
    }
}

pub struct PipeListener {
    name: String,
    sd: SecurityDescriptor,
    next: NamedPipeServer,
}

fn create(name: &str, sd: &SecurityDescriptor, first: bool) -> std::io::Result<NamedPipeServer> {
    let mut sa = SECURITY_ATTRIBUTES {
        nLength: std::mem::size_of::<SECURITY_ATTRIBUTES>() as u32,
        lpSecurityDescriptor: sd.0,
        bInheritHandle: 0,
    };
    // SAFETY: `sa` is a valid SECURITY_ATTRIBUTES whose descriptor outlives the call.
    unsafe {
        ServerOptions::new()
            .first_pipe_instance(first)
            .reject_remote_clients(true)
            .create_with_security_attributes_raw(name, (&mut sa as *mut SECURITY_ATTRIBUTES).cast())
    }
}

/// Creates the first instance of the pipe; fails when another agent already owns the name.
pub fn bind(name: &str) -> crate::Result<PipeListener> {
    let sd = SecurityDescriptor::from_sddl(PIPE_SDDL)?;
    let next = create(name, &sd, true).map_err(|e| {
        crate::AgentError::Socket(format!(
            "cannot create the pipe {name}: {e} (is another latchkey-agent running?)"
        ))
    })?;
    Ok(PipeListener {
        name: name.to_string(),
        sd,
        next,
    })
}

pub async fn serve(
    agent: Arc<Agent>,
    mut listener: PipeListener,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let connected = tokio::select! {
            _ = shutdown.changed() => return,
            c = listener.next.connect() => c,
        };
        if let Err(e) = connected {
            tracing::warn!(error = %e, "connect on the agent pipe failed");
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        // A new instance waits for the next client before this one is handed over.
        let fresh = match create(&listener.name, &listener.sd, false) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "cannot create another instance of the agent pipe");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let pipe = std::mem::replace(&mut listener.next, fresh);
        let agent = agent.clone();
        tokio::spawn(async move { pipe_connection(agent, pipe).await });
    }
}

async fn pipe_connection(agent: Arc<Agent>, mut pipe: NamedPipeServer) {
    let handle = pipe.as_raw_handle() as HANDLE;
    match caller_of(handle) {
        Ok(caller) => connection(agent, pipe, caller).await,
        Err(why) => {
            tracing::warn!(reason = %why, "refused a caller on the agent pipe");
            let _ = write_reply(
                &mut pipe,
                &AgentReply::Error {
                    message: "not allowed: only SYSTEM or an administrator may use the agent"
                        .into(),
                },
            )
            .await;
        }
    }
}

/// Closes a handle on drop.
struct Owned(HANDLE);

impl Drop for Owned {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: a handle this module opened and owns.
            unsafe { CloseHandle(self.0) };
        }
    }
}

/// Reads one variable-size token information class into an 8-byte aligned buffer.
fn token_info(token: HANDLE, class: i32) -> crate::Result<Vec<u64>> {
    let mut needed = 0u32;
    // SAFETY: a size query with a null buffer.
    unsafe { GetTokenInformation(token, class, std::ptr::null_mut(), 0, &mut needed) };
    if needed == 0 || needed > 1 << 20 {
        return Err(crate::AgentError::Socket(format!(
            "token information: {}",
            std::io::Error::last_os_error()
        )));
    }
    let mut buf = vec![0u64; (needed as usize).div_ceil(8)];
    // SAFETY: `buf` holds at least `needed` bytes.
    let ok = unsafe {
        GetTokenInformation(
            token,
            class,
            buf.as_mut_ptr().cast::<c_void>(),
            needed,
            &mut needed,
        )
    };
    if ok == 0 {
        return Err(crate::AgentError::Socket(format!(
            "token information: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(buf)
}

/// SYSTEM, or a member of the enabled Administrators group → `Caller::Root`; else an error.
fn caller_of(pipe: HANDLE) -> crate::Result<Caller> {
    let mut pid = 0u32;
    // SAFETY: `pipe` is the live server end of a connected pipe.
    if unsafe { GetNamedPipeClientProcessId(pipe, &mut pid) } == 0 {
        return Err(crate::AgentError::Socket(format!(
            "client process unknown: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: plain Win32 calls; the handles are owned and closed by `Owned`.
    let process = Owned(unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) });
    if process.0.is_null() {
        return Err(crate::AgentError::Socket(format!(
            "cannot open client process {pid}: {}",
            std::io::Error::last_os_error()
        )));
    }
    let mut token: HANDLE = std::ptr::null_mut();
    // SAFETY: as above.
    if unsafe { OpenProcessToken(process.0, TOKEN_QUERY, &mut token) } == 0 {
        return Err(crate::AgentError::Socket(format!(
            "cannot read client process {pid}'s token: {}",
            std::io::Error::last_os_error()
        )));
    }
    let token = Owned(token);

    let user = token_info(token.0, TokenUser)?;
    // SAFETY: GetTokenInformation(TokenUser) filled the buffer with a TOKEN_USER.
    let user_sid = unsafe { (*user.as_ptr().cast::<TOKEN_USER>()).User.Sid };
    // SAFETY: the SID points into `user`, alive here.
    if unsafe { IsWellKnownSid(user_sid, WinLocalSystemSid) } != 0 {
        return Ok(Caller::Root);
    }
    let groups = token_info(token.0, TokenGroups)?;
    // SAFETY: GetTokenInformation(TokenGroups) filled the buffer with a TOKEN_GROUPS whose
    // `GroupCount` entries follow it inside the same buffer.
    let admin = unsafe {
        let g = groups.as_ptr().cast::<TOKEN_GROUPS>();
        let first = std::ptr::addr_of!((*g).Groups).cast::<SID_AND_ATTRIBUTES>();
        // Never read past the buffer, whatever the count says.
        let room = (groups.len() * 8).saturating_sub(first as usize - g as usize)
            / std::mem::size_of::<SID_AND_ATTRIBUTES>();
        let n = ((*g).GroupCount as usize).min(room);
        (0..n).any(|i| {
            let entry = &*first.add(i);
            entry.Attributes & (SE_GROUP_ENABLED as u32) != 0
                && IsWellKnownSid(entry.Sid, WinBuiltinAdministratorsSid) != 0
        })
    };
    if admin {
        Ok(Caller::Root)
    } else {
        Err(crate::AgentError::Socket(format!(
            "client process {pid} is neither SYSTEM nor an administrator"
        )))
    }
}
