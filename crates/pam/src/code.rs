//! The few Linux-PAM constants the module uses (values from `security/_pam_types.h` and
//! `syslog.h`), as types so the logic cannot mix a return code with a message style.

/// What a `pam_sm_*` function returns to libpam.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum PamCode {
    Success = 0,
    ServiceErr = 3,
    PermDenied = 6,
    AuthErr = 7,
    Ignore = 25,
}

impl PamCode {
    pub fn as_raw(self) -> i32 {
        self as i32
    }
}

/// `pam_message.msg_style`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum MsgStyle {
    PromptEchoOff = 1,
    PromptEchoOn = 2,
    ErrorMsg = 3,
    TextInfo = 4,
}

impl MsgStyle {
    pub fn is_prompt(self) -> bool {
        matches!(self, MsgStyle::PromptEchoOff | MsgStyle::PromptEchoOn)
    }
}

/// `pam_get_item` item types the module reads (strings only; `PAM_CONV` stays in `ffi`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Item {
    Service = 1,
    Tty = 3,
    Rhost = 4,
}

/// syslog priorities (`LOG_AUTHPRIV` is added by `pam_syslog`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum LogLevel {
    Err = 3,
    Warning = 4,
    Notice = 5,
    Info = 6,
    Debug = 7,
}

/// The `flags` argument of the `pam_sm_*` functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags(pub i32);

impl Flags {
    /// `PAM_SILENT`: the application asks modules not to send informative messages.
    pub const SILENT: i32 = 0x8000;

    pub fn silent(self) -> bool {
        self.0 & Self::SILENT != 0
    }
}
