//! The few OS calls the agent needs that std does not offer.
#![allow(unsafe_code)]

#[cfg(unix)]
use std::ffi::CStr;

/// The login name of a uid (getpwuid_r), or None if it has none.
#[cfg(unix)]
pub fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: all pointers refer to live, correctly sized buffers owned by this frame.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    // SAFETY: getpwuid_r succeeded, so pw_name points to a NUL-terminated string in `buf`.
    let name = unsafe { CStr::from_ptr(pwd.pw_name) };
    name.to_str().ok().map(str::to_string)
}

/// The uid of a login name (getpwnam_r), or None if there is no such user.
#[cfg(unix)]
pub fn user_uid(name: &str) -> Option<u32> {
    let cname = std::ffi::CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: all pointers refer to live, correctly sized buffers owned by this frame, and
    // `cname` is NUL-terminated.
    let rc = unsafe {
        libc::getpwnam_r(
            cname.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() {
        return None;
    }
    Some(pwd.pw_uid)
}

/// Windows callers are SYSTEM or administrators (pipe.rs): no uids.
#[cfg(not(unix))]
pub fn user_uid(_name: &str) -> Option<u32> {
    None
}

/// The host name (what `join` registers).
#[cfg(windows)]
pub fn hostname() -> String {
    std::env::var("COMPUTERNAME")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// The host name (what `join` registers).
#[cfg(not(windows))]
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Turns terminal echo off (for typing a code) and returns a guard restoring it.
#[cfg(unix)]
pub struct EchoOff {
    fd: i32,
    saved: Option<libc::termios>,
}

#[cfg(unix)]
impl EchoOff {
    pub fn new(fd: i32) -> EchoOff {
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: `t` is a valid termios buffer; a non-terminal fd just returns an error.
        if unsafe { libc::tcgetattr(fd, &mut t) } != 0 {
            return EchoOff { fd, saved: None };
        }
        let saved = t;
        t.c_lflag &= !libc::ECHO;
        // SAFETY: as above.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &t) };
        EchoOff {
            fd,
            saved: Some(saved),
        }
    }
}

#[cfg(unix)]
impl Drop for EchoOff {
    fn drop(&mut self) {
        if let Some(saved) = self.saved {
            // SAFETY: restoring the attributes read in `new` on the same fd.
            unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &saved) };
        }
    }
}

/// Windows: the console keeps echoing (`latchkey-agent login` is an admin's test tool there;
/// codes are one-time).
#[cfg(not(unix))]
pub struct EchoOff;

#[cfg(not(unix))]
impl EchoOff {
    pub fn new(_fd: i32) -> EchoOff {
        EchoOff
    }
}

/// SYSTEM and Administrators: full control, inherited by files and subdirectories; nothing
/// inherited from the parent (`C:\ProgramData` lets Users read).
#[cfg(windows)]
const PRIVATE_DIR_SDDL: &str = "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)";

/// Windows: gives `dir` (which must exist) a protected DACL for SYSTEM and Administrators
/// only, so `agent.toml`, `machine.key` and the state database created in it are readable by
/// nobody else. This is the Windows counterpart of the 0600/0700 modes set on Unix.
#[cfg(windows)]
pub fn restrict_dir(dir: &std::path::Path) -> crate::Result<()> {
    use std::os::windows::ffi::OsStrExt;
    use windows_sys::Win32::Foundation::LocalFree;
    use windows_sys::Win32::Security::Authorization::{
        ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1, SE_FILE_OBJECT,
        SetNamedSecurityInfoW,
    };
    use windows_sys::Win32::Security::{
        ACL, DACL_SECURITY_INFORMATION, GetSecurityDescriptorDacl,
        PROTECTED_DACL_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR,
    };
    let sddl: Vec<u16> = PRIVATE_DIR_SDDL.encode_utf16().chain(Some(0)).collect();
    let path: Vec<u16> = dir.as_os_str().encode_wide().chain(Some(0)).collect();
    let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: `sddl` is NUL-terminated; `sd` receives a LocalAlloc'ed descriptor, freed below.
    let ok = unsafe {
        ConvertStringSecurityDescriptorToSecurityDescriptorW(
            sddl.as_ptr(),
            SDDL_REVISION_1,
            &mut sd,
            std::ptr::null_mut(),
        )
    };
    if ok == 0 || sd.is_null() {
        return Err(crate::AgentError::Local(format!(
            "{}: cannot build its access control list: {}",
            dir.display(),
            std::io::Error::last_os_error()
        )));
    }
    let (mut present, mut defaulted) = (0, 0);
    let mut dacl: *mut ACL = std::ptr::null_mut();
    // SAFETY: `sd` is a valid descriptor; the DACL pointer points into it (alive until
    // LocalFree); `path` is NUL-terminated.
    let result = unsafe {
        if GetSecurityDescriptorDacl(sd, &mut present, &mut dacl, &mut defaulted) == 0
            || present == 0
        {
            Err(std::io::Error::last_os_error().to_string())
        } else {
            match SetNamedSecurityInfoW(
                path.as_ptr(),
                SE_FILE_OBJECT,
                DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                dacl,
                std::ptr::null(),
            ) {
                0 => Ok(()),
                e => Err(std::io::Error::from_raw_os_error(e as i32).to_string()),
            }
        }
    };
    // SAFETY: allocated by ConvertStringSecurityDescriptorToSecurityDescriptorW.
    unsafe { LocalFree(sd) };
    result.map_err(|e: String| {
        crate::AgentError::Local(format!(
            "{}: cannot restrict it to SYSTEM and Administrators: {e}",
            dir.display()
        ))
    })
}

/// Raises the soft descriptor limit to the hard one; returns the soft limit in force.
#[cfg(unix)]
pub fn raise_nofile() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = lim.rlim_max;
        }
    }
    #[allow(clippy::useless_conversion)] // rlim_t is u64 on Linux, not everywhere
    Some(u64::try_from(lim.rlim_cur).unwrap_or(u64::MAX))
}
