//! Settings from `HKLM\SOFTWARE\latchkey` (written by the MSI; all optional):
//!
//! | value                | type          | default                        |
//! |----------------------|---------------|--------------------------------|
//! | `ClientIdLogon`      | REG_SZ        | `login`                        |
//! | `ClientIdUnlock`     | REG_SZ        | `unlock`                       |
//! | `ClientIdCredUI`     | REG_SZ        | `elevation`                    |
//! | `ClientIdRemote`     | REG_SZ        | `remote`                       |
//! | `AgentPipe`          | REG_SZ        | `\\.\pipe\latchkey-agent`      |
//! | `AllowProviders`     | REG_MULTI_SZ  | none: the filter hides every other provider |
//! | `InlineEnrollment`   | REG_DWORD     | `1`: the tile sends the typed password to the agent, which checks it (LogonUser) before the server may offer a user without a token to enrol one; `0`: never (such a user is refused, as before inline enrolment) |
//!
//! A value that cannot be read falls back to its default, never to "no MFA". (Inline
//! enrolment on by default only lets the server's policy decide: `enroll.inline` is `off`
//! unless an administrator turned it on.)

use windows::Win32::System::Registry::{
    HKEY_LOCAL_MACHINE, REG_VALUE_TYPE, RRF_RT_REG_DWORD, RRF_RT_REG_MULTI_SZ, RRF_RT_REG_SZ,
    RegGetValueW,
};
use windows::core::{GUID, HSTRING};

pub const KEY: &str = r"SOFTWARE\latchkey";

/// The access context of a login, as the agent and the server name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    Logon,
    Unlock,
    CredUi,
    Remote,
}

impl Context {
    fn value_name(self) -> &'static str {
        match self {
            Context::Logon => "ClientIdLogon",
            Context::Unlock => "ClientIdUnlock",
            Context::CredUi => "ClientIdCredUI",
            Context::Remote => "ClientIdRemote",
        }
    }

    pub fn default_client_id(self) -> &'static str {
        match self {
            Context::Logon => "login",
            Context::Unlock => "unlock",
            Context::CredUi => "elevation",
            Context::Remote => "remote",
        }
    }

    /// What the agent logs as the service.
    pub fn service(self) -> &'static str {
        match self {
            Context::Logon => "logonui",
            Context::Unlock => "logonui-unlock",
            Context::CredUi => "credui",
            Context::Remote => "logonui-remote",
        }
    }
}

fn read_raw(
    name: &str,
    flags: windows::Win32::System::Registry::REG_ROUTINE_FLAGS,
) -> Option<Vec<u16>> {
    let key = HSTRING::from(KEY);
    let value = HSTRING::from(name);
    let mut size = 0u32;
    let mut ty = REG_VALUE_TYPE::default();
    // SAFETY: size query, then a read into a buffer of the reported size.
    unsafe {
        RegGetValueW(
            HKEY_LOCAL_MACHINE,
            &key,
            &value,
            flags,
            Some(&mut ty),
            None,
            Some(&mut size),
        )
        .ok()
        .ok()?;
        if size == 0 || size > 64 * 1024 {
            return None;
        }
        let mut buf = vec![0u16; (size as usize).div_ceil(2)];
        RegGetValueW(
            HKEY_LOCAL_MACHINE,
            &key,
            &value,
            flags,
            Some(&mut ty),
            Some(buf.as_mut_ptr().cast()),
            Some(&mut size),
        )
        .ok()
        .ok()?;
        buf.truncate((size as usize) / 2);
        Some(buf)
    }
}

fn read_string(name: &str) -> Option<String> {
    let buf = read_raw(name, RRF_RT_REG_SZ)?;
    let end = buf.iter().position(|&c| c == 0).unwrap_or(buf.len());
    let s = String::from_utf16(&buf[..end]).ok()?;
    let s = s.trim().to_string();
    (!s.is_empty()).then_some(s)
}

pub fn client_id(ctx: Context) -> String {
    read_string(ctx.value_name()).unwrap_or_else(|| ctx.default_client_id().to_string())
}

pub fn agent_pipe() -> String {
    read_string("AgentPipe").unwrap_or_else(|| latchkey_proto::agent::DEFAULT_PIPE.to_string())
}

/// May the tile offer inline enrolment (send the password for the agent to check)?
pub fn inline_enrollment() -> bool {
    read_dword("InlineEnrollment").is_none_or(|v| v != 0)
}

fn read_dword(name: &str) -> Option<u32> {
    let key = HSTRING::from(KEY);
    let value = HSTRING::from(name);
    let mut data = 0u32;
    let mut size = std::mem::size_of::<u32>() as u32;
    // SAFETY: a REG_DWORD read into a u32 of the size given.
    unsafe {
        RegGetValueW(
            HKEY_LOCAL_MACHINE,
            &key,
            &value,
            RRF_RT_REG_DWORD,
            None,
            Some((&raw mut data).cast()),
            Some(&mut size),
        )
        .ok()
        .ok()?;
    }
    Some(data)
}

/// Providers the filter leaves visible besides ours (e.g. a smartcard provider).
pub fn allowed_providers() -> Vec<GUID> {
    let Some(buf) = read_raw("AllowProviders", RRF_RT_REG_MULTI_SZ) else {
        return Vec::new();
    };
    buf.split(|&c| c == 0)
        .filter(|s| !s.is_empty())
        .filter_map(|s| String::from_utf16(s).ok())
        .filter_map(|s| parse_guid(s.trim()))
        .collect()
}

/// `{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}` (braces optional).
pub fn parse_guid(s: &str) -> Option<GUID> {
    let s = s.trim_start_matches('{').trim_end_matches('}');
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) || s.len() != 36 {
        return None;
    }
    u128::from_str_radix(&hex, 16).ok().map(GUID::from_u128)
}
