//! `KERB_INTERACTIVE_UNLOCK_LOGON` in its packed form (what a credential provider hands to
//! LogonUI for logon and unlock): the structure, then the strings, with each
//! `UNICODE_STRING.Buffer` holding the string's offset from the start of the buffer instead
//! of a pointer. Layout for 64-bit Windows (`ntsecapi.h`):
//!
//! ```text
//!  0  MessageType (KERB_LOGON_SUBMIT_TYPE, u32) + 4 bytes padding
//!  8  LogonDomainName  UNICODE_STRING { Length u16, MaximumLength u16, pad u32, Buffer u64 }
//! 24  UserName         UNICODE_STRING
//! 40  Password         UNICODE_STRING
//! 56  LogonId          LUID { LowPart u32, HighPart i32 }
//! 64  domain, user, password as UTF-16LE, no terminators
//! ```

use zeroize::Zeroize;

/// `KerbInteractiveLogon`: a logon at the console or over RDP.
pub const KERB_INTERACTIVE_LOGON: u32 = 2;
/// `KerbWorkstationUnlockLogon`: unlocking a locked session.
pub const KERB_WORKSTATION_UNLOCK_LOGON: u32 = 7;

const HEADER: usize = 64;

/// A Windows credential: domain (or the computer name for a local account), user, password.
#[derive(Clone, PartialEq, Eq)]
pub struct WinCredential {
    pub domain: String,
    pub user: String,
    pub password: String,
}

impl Drop for WinCredential {
    fn drop(&mut self) {
        self.password.zeroize();
    }
}

impl std::fmt::Debug for WinCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WinCredential")
            .field("domain", &self.domain)
            .field("user", &self.user)
            .field("password", &"<hidden>")
            .finish()
    }
}

fn utf16le(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// Packs the credential. Fails for strings longer than a UNICODE_STRING can hold.
pub fn pack(message_type: u32, c: &WinCredential) -> Result<Vec<u8>, String> {
    let mut strings = [utf16le(&c.domain), utf16le(&c.user), utf16le(&c.password)];
    if strings.iter().any(|s| s.len() > u16::MAX as usize - 2) {
        for s in &mut strings {
            s.zeroize();
        }
        return Err("a credential field is too long".into());
    }
    let total = HEADER + strings.iter().map(Vec::len).sum::<usize>();
    let mut out = vec![0u8; HEADER];
    out.reserve_exact(total - HEADER);
    out[0..4].copy_from_slice(&message_type.to_le_bytes());
    let mut offset = HEADER as u64;
    for (i, s) in strings.iter().enumerate() {
        let at = 8 + 16 * i;
        let len = s.len() as u16;
        out[at..at + 2].copy_from_slice(&len.to_le_bytes());
        out[at + 2..at + 4].copy_from_slice(&len.to_le_bytes());
        out[at + 8..at + 16].copy_from_slice(&offset.to_le_bytes());
        offset += s.len() as u64;
    }
    for s in &mut strings {
        out.extend_from_slice(s);
        s.zeroize();
    }
    Ok(out)
}

fn read_u16(b: &[u8], at: usize) -> Result<u16, String> {
    b.get(at..at + 2)
        .map(|x| u16::from_le_bytes([x[0], x[1]]))
        .ok_or_else(|| "truncated credential".to_string())
}

fn read_string(b: &[u8], at: usize) -> Result<String, String> {
    let len = read_u16(b, at)? as usize;
    let max = read_u16(b, at + 2)? as usize;
    let off = b
        .get(at + 8..at + 16)
        .map(|x| {
            let mut a = [0u8; 8];
            a.copy_from_slice(x);
            u64::from_le_bytes(a)
        })
        .ok_or("truncated credential")?;
    if !len.is_multiple_of(2) || len > max {
        return Err("malformed UNICODE_STRING".into());
    }
    let start = usize::try_from(off).map_err(|_| "bad string offset")?;
    if start < HEADER {
        return Err("string offset inside the header".into());
    }
    let bytes = b
        .get(start..start.checked_add(len).ok_or("bad string length")?)
        .ok_or("string outside the credential")?;
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16(&units).map_err(|_| "string is not UTF-16".to_string())
}

/// Reads a packed credential back (RDP hands one to `SetSerialization`). Every offset and
/// length is checked against the buffer.
pub fn unpack(b: &[u8]) -> Result<(u32, WinCredential), String> {
    if b.len() < HEADER {
        return Err("credential shorter than its header".into());
    }
    let message_type = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    Ok((
        message_type,
        WinCredential {
            domain: read_string(b, 8)?,
            user: read_string(b, 24)?,
            password: read_string(b, 40)?,
        },
    ))
}

/// Splits what the person typed into (domain, user): `DOMAIN\user`, `user@domain` (kept
/// whole as a UPN with an empty domain, as Windows expects) or a bare local `user`.
pub fn split_user(typed: &str, computer: &str) -> (String, String) {
    let typed = typed.trim();
    if let Some((d, u)) = typed.split_once('\\') {
        let d = if d == "." { computer } else { d };
        return (d.to_string(), u.to_string());
    }
    if typed.contains('@') {
        return (String::new(), typed.to_string());
    }
    (computer.to_string(), typed.to_string())
}

/// The domain the agent checks the password in (`LogonUserW`): what was typed before `\`
/// or after `@`; `None` for a bare name or `.\user` (an account of this machine).
pub fn password_domain(typed: &str) -> Option<String> {
    let typed = typed.trim();
    let domain = if let Some((d, _)) = typed.split_once('\\') {
        d
    } else if let Some((_, d)) = typed.split_once('@') {
        d
    } else {
        return None;
    };
    (!domain.is_empty() && domain != ".").then(|| domain.to_string())
}

/// The name the agent knows the person by: without the domain.
pub fn mfa_user(typed: &str) -> String {
    let typed = typed.trim();
    if let Some((_, u)) = typed.split_once('\\') {
        return u.to_string();
    }
    if let Some((u, _)) = typed.split_once('@') {
        return u.to_string();
    }
    typed.to_string()
}
