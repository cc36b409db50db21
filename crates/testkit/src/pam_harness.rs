//! Drives the real Linux-PAM library the way an application (login, sudo, sshd) does:
//! `pam_start_confdir` with a temporary configuration directory, a conversation that answers
//! prompts from a script and records every message, then `pam_authenticate`,
//! `pam_acct_mgmt`, `pam_open_session`… Modules are loaded by libpam itself, so the test
//! exercises the built `pam_latchkey.so` exactly as a login would.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use latchkey_testkit::pam_harness::{PamCode, PamConfDir, PamHarness, ScriptedAgent};
//! use latchkey_proto::agent::{AgentRequest, Step};
//! let agent = ScriptedAgent::start(|req| match req {
//!     AgentRequest::Begin { .. } => Step::Prompt { label: "Code:".into(), echo: false }.into(),
//!     _ => Step::Success { message: String::new() }.into(),
//! })?;
//! let conf = PamConfDir::latchkey("login", &[&agent.socket_arg()])?;
//! let mut pam = PamHarness::new("login", "alice", conf.path())?;
//! pam.answer("123456");
//! assert_eq!(pam.authenticate(0), PamCode::SUCCESS);
//! # Ok(()) }
//! ```
//!
//! Needs libpam ≥ 1.4 (`pam_start_confdir`) and its development symlink to link
//! (Debian: `libpam0g-dev`).
#![allow(unsafe_code)]

use anyhow::{Context, Result, bail, ensure};
use libc::{c_int, c_void};
use std::any::Any;
use std::collections::VecDeque;
use std::ffi::{CStr, CString};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use tempfile::TempDir;

pub use crate::scripted_agent::{AgentAction, ScriptedAgent};

/// `PAM_SILENT`, for the `flags` of the harness calls.
pub const PAM_SILENT: i32 = 0x8000;

/// A libpam return code; `Debug` prints its name, so assertion failures read well.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PamCode(pub i32);

/// Declares the codes as constants and names them for `Debug`.
macro_rules! pam_codes {
    ($($name:ident = $v:literal),* $(,)?) => {
        impl PamCode {
            $(pub const $name: PamCode = PamCode($v);)*

            pub fn name(self) -> &'static str {
                match self.0 {
                    $($v => concat!("PAM_", stringify!($name)),)*
                    _ => "PAM_(other)",
                }
            }
        }
    };
}

pam_codes!(
    SUCCESS = 0,
    SERVICE_ERR = 3,
    SYSTEM_ERR = 4,
    PERM_DENIED = 6,
    AUTH_ERR = 7,
    AUTHINFO_UNAVAIL = 9,
    USER_UNKNOWN = 10,
    MAXTRIES = 11,
    ACCT_EXPIRED = 13,
    SESSION_ERR = 14,
    CONV_ERR = 19,
    IGNORE = 25,
    ABORT = 26,
);

impl fmt::Debug for PamCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}

/// `pam_message.msg_style`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MsgStyle {
    PromptEchoOff,
    PromptEchoOn,
    ErrorMsg,
    TextInfo,
    Other(i32),
}

impl MsgStyle {
    fn from_raw(v: c_int) -> MsgStyle {
        match v {
            1 => MsgStyle::PromptEchoOff,
            2 => MsgStyle::PromptEchoOn,
            3 => MsgStyle::ErrorMsg,
            4 => MsgStyle::TextInfo,
            other => MsgStyle::Other(other),
        }
    }

    pub fn is_prompt(self) -> bool {
        matches!(self, MsgStyle::PromptEchoOff | MsgStyle::PromptEchoOn)
    }
}

/// One message a module sent through the conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvMessage {
    pub style: MsgStyle,
    pub text: String,
}

/// String items an application sets with `pam_set_item`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PamItem {
    User = 2,
    Tty = 3,
    Rhost = 4,
    Ruser = 8,
}

type Responder = Box<dyn FnMut(&ConvMessage) -> Option<String> + Send>;
type Observer = Box<dyn FnMut(&ConvMessage) + Send>;

#[derive(Default)]
struct ConvState {
    answers: VecDeque<String>,
    responder: Option<Responder>,
    /// Sees every message, prompts and texts alike (e.g. to read a push number).
    observer: Option<Observer>,
    messages: Vec<ConvMessage>,
    /// A panic of the responder, re-raised in the test thread after libpam returns.
    panic: Option<Box<dyn Any + Send>>,
}

/// One PAM transaction (`pam_handle_t`), ended with `pam_end` on drop.
pub struct PamHarness {
    pamh: *mut sys::pam_handle_t,
    state: Arc<Mutex<ConvState>>,
    /// libpam keeps a pointer to the conversation's `appdata_ptr` (our `state`).
    _conv: Box<sys::pam_conv>,
    last: c_int,
}

// SAFETY: a pam handle may move between threads as long as one thread uses it at a time,
// which `&mut self` on every call guarantees; the responder is `Send`.
unsafe impl Send for PamHarness {}

impl PamHarness {
    /// `pam_start_confdir(service, user, conv, confdir)`: libpam reads `confdir/service`.
    pub fn new(service: &str, user: &str, confdir: &Path) -> Result<PamHarness> {
        let c_service = CString::new(service)?;
        let c_user = CString::new(user)?;
        let c_dir = CString::new(confdir.to_str().context("confdir is not UTF-8")?)?;
        let state = Arc::new(Mutex::new(ConvState::default()));
        let conv = Box::new(sys::pam_conv {
            conv: Some(conversation),
            appdata_ptr: Arc::as_ptr(&state) as *mut c_void,
        });
        let mut pamh = std::ptr::null_mut();
        // SAFETY: valid C strings; `conv` and `state` outlive the handle (dropped after
        // pam_end in Drop).
        let rc = unsafe {
            sys::pam_start_confdir(
                c_service.as_ptr(),
                c_user.as_ptr(),
                &*conv,
                c_dir.as_ptr(),
                &mut pamh,
            )
        };
        ensure!(
            rc == 0 && !pamh.is_null(),
            "pam_start_confdir({service}) failed: {:?}",
            PamCode(rc)
        );
        Ok(PamHarness {
            pamh,
            state,
            _conv: conv,
            last: 0,
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ConvState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues an answer for the next prompt. Prompts take queued answers first, then ask
    /// the responder; with neither, the conversation fails (`PAM_CONV_ERR`, like Ctrl-D).
    pub fn answer(&mut self, text: impl Into<String>) -> &mut Self {
        self.state().answers.push_back(text.into());
        self
    }

    /// Answers prompts the queue does not cover, e.g. with a TOTP code computed when the
    /// prompt arrives. `None` fails the conversation.
    pub fn respond_with(
        &mut self,
        f: impl FnMut(&ConvMessage) -> Option<String> + Send + 'static,
    ) -> &mut Self {
        self.state().responder = Some(Box::new(f));
        self
    }

    /// Calls `f` with every message as it arrives (texts too), while libpam is still running.
    pub fn observe(&mut self, f: impl FnMut(&ConvMessage) + Send + 'static) -> &mut Self {
        self.state().observer = Some(Box::new(f));
        self
    }

    /// Every message received so far, in order.
    pub fn messages(&self) -> Vec<ConvMessage> {
        self.state().messages.clone()
    }

    /// Returns and forgets the messages received so far.
    pub fn take_messages(&mut self) -> Vec<ConvMessage> {
        std::mem::take(&mut self.state().messages)
    }

    /// Texts of the messages of one style (e.g. `MsgStyle::ErrorMsg`).
    pub fn texts(&self, style: MsgStyle) -> Vec<String> {
        let state = self.state();
        let of_style = state.messages.iter().filter(|m| m.style == style);
        of_style.map(|m| m.text.clone()).collect()
    }

    /// Texts of the prompts (echo on or off).
    pub fn prompts(&self) -> Vec<String> {
        let state = self.state();
        let prompts = state.messages.iter().filter(|m| m.style.is_prompt());
        prompts.map(|m| m.text.clone()).collect()
    }

    pub fn set_item(&mut self, item: PamItem, value: &str) -> Result<()> {
        let value = CString::new(value)?;
        // SAFETY: live handle; libpam copies string items.
        let rc = unsafe { sys::pam_set_item(self.pamh, item as c_int, value.as_ptr().cast()) };
        ensure!(rc == 0, "pam_set_item({item:?}) failed: {:?}", PamCode(rc));
        Ok(())
    }

    pub fn set_rhost(&mut self, rhost: &str) -> Result<()> {
        self.set_item(PamItem::Rhost, rhost)
    }

    pub fn set_tty(&mut self, tty: &str) -> Result<()> {
        self.set_item(PamItem::Tty, tty)
    }

    /// Sets a PAM environment variable, as pam_systemd does with `XDG_SESSION_ID`.
    pub fn putenv(&mut self, name: &str, value: &str) -> Result<()> {
        let entry = CString::new(format!("{name}={value}"))?;
        // SAFETY: live handle; libpam copies the entry.
        let rc = unsafe { sys::pam_putenv(self.pamh, entry.as_ptr()) };
        ensure!(rc == 0, "pam_putenv({name}) failed: {:?}", PamCode(rc));
        Ok(())
    }

    /// Runs one libpam call, then re-raises a panic of the responder in this thread.
    fn call(
        &mut self,
        f: unsafe extern "C" fn(*mut sys::pam_handle_t, c_int) -> c_int,
        flags: i32,
    ) -> PamCode {
        // SAFETY: live handle; the conversation state outlives the call.
        let rc = unsafe { f(self.pamh, flags) };
        self.last = rc;
        if let Some(panic) = self.state().panic.take() {
            resume_unwind(panic);
        }
        PamCode(rc)
    }

    pub fn authenticate(&mut self, flags: i32) -> PamCode {
        self.call(sys::pam_authenticate, flags)
    }

    pub fn acct_mgmt(&mut self, flags: i32) -> PamCode {
        self.call(sys::pam_acct_mgmt, flags)
    }

    pub fn setcred(&mut self, flags: i32) -> PamCode {
        self.call(sys::pam_setcred, flags)
    }

    pub fn open_session(&mut self, flags: i32) -> PamCode {
        self.call(sys::pam_open_session, flags)
    }

    pub fn close_session(&mut self, flags: i32) -> PamCode {
        self.call(sys::pam_close_session, flags)
    }

    /// `pam_end` with the last call's status (dropping does the same); libpam calls the
    /// modules' cleanup functions here.
    pub fn end(mut self) -> PamCode {
        // SAFETY: the handle is live; it is nulled so Drop does not end it twice.
        let rc = unsafe { sys::pam_end(self.pamh, self.last) };
        self.pamh = std::ptr::null_mut();
        PamCode(rc)
    }
}

impl Drop for PamHarness {
    fn drop(&mut self) {
        if !self.pamh.is_null() {
            // SAFETY: the handle is live and not used after this.
            unsafe { sys::pam_end(self.pamh, self.last) };
        }
    }
}

/// The conversation function libpam calls: records each message, answers prompts, and
/// allocates the responses with malloc (libpam's modules free them).
unsafe extern "C" fn conversation(
    num_msg: c_int,
    msg: *mut *const sys::pam_message,
    resp: *mut *mut sys::pam_response,
    appdata: *mut c_void,
) -> c_int {
    const PAM_BUF_ERR: c_int = 5;
    const PAM_CONV_ERR: c_int = 19;
    const PAM_MAX_NUM_MSG: c_int = 32;
    if num_msg <= 0
        || num_msg > PAM_MAX_NUM_MSG
        || msg.is_null()
        || resp.is_null()
        || appdata.is_null()
    {
        return PAM_CONV_ERR;
    }
    // SAFETY: appdata is the `Arc<Mutex<ConvState>>` of a live harness.
    let state = unsafe { &*(appdata as *const Mutex<ConvState>) };
    let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
    let n = num_msg as usize;
    let answered = catch_unwind(AssertUnwindSafe(|| {
        let mut answers = Vec::with_capacity(n);
        for i in 0..n {
            // SAFETY: Linux-PAM passes an array of `num_msg` message pointers.
            let m = unsafe { *msg.add(i) };
            if m.is_null() {
                return None;
            }
            // SAFETY: a valid pam_message whose text is null or NUL-terminated.
            let (style, text) = unsafe { ((*m).msg_style, (*m).msg) };
            let text = if text.is_null() {
                String::new()
            } else {
                // SAFETY: see above.
                unsafe { CStr::from_ptr(text) }
                    .to_string_lossy()
                    .into_owned()
            };
            let message = ConvMessage {
                style: MsgStyle::from_raw(style),
                text,
            };
            state.messages.push(message.clone());
            if let Some(observe) = state.observer.as_mut() {
                observe(&message);
            }
            if message.style.is_prompt() {
                let queued = state.answers.pop_front();
                let answer = queued.or_else(|| state.responder.as_mut().and_then(|f| f(&message)));
                answers.push(Some(CString::new(answer?).ok()?));
            } else {
                answers.push(None);
            }
        }
        Some(answers)
    }));
    let answers = match answered {
        Ok(Some(a)) => a,
        Ok(None) => return PAM_CONV_ERR,
        Err(panic) => {
            state.panic = Some(panic);
            return PAM_CONV_ERR;
        }
    };
    // SAFETY: calloc/strdup: the PAM API has modules free() the responses.
    unsafe {
        let out =
            libc::calloc(n, std::mem::size_of::<sys::pam_response>()) as *mut sys::pam_response;
        if out.is_null() {
            return PAM_BUF_ERR;
        }
        for (i, answer) in answers.iter().enumerate() {
            if let Some(a) = answer {
                (*out.add(i)).resp = libc::strdup(a.as_ptr());
            }
        }
        *resp = out;
    }
    0
}

/// A temporary PAM configuration directory for `pam_start_confdir`.
pub struct PamConfDir {
    dir: TempDir,
}

impl PamConfDir {
    pub fn new() -> Result<PamConfDir> {
        Ok(PamConfDir {
            dir: tempfile::tempdir()?,
        })
    }

    /// A directory whose `service` file is [`latchkey_stack`]`(args)`.
    pub fn latchkey(service: &str, args: &[&str]) -> Result<PamConfDir> {
        let conf = PamConfDir::new()?;
        conf.write_service(service, &latchkey_stack(args)?)?;
        Ok(conf)
    }

    /// The standard stack for `service` with pam_latchkey.so talking to the agent at `socket`.
    pub fn for_socket(service: &str, socket: &Path) -> Result<PamConfDir> {
        PamConfDir::latchkey(service, &[&format!("socket={}", socket.display())])
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes the stack file of `service` verbatim (modules by bare name come from
    /// libpam's module directory; give ours by absolute path, see [`module_path`]).
    pub fn write_service(&self, service: &str, stack: &str) -> Result<()> {
        ensure!(!service.contains('/'), "bad service name {service:?}");
        std::fs::write(self.dir.path().join(service), stack)?;
        Ok(())
    }
}

/// The standard test stack: `pam_permit.so` before `pam_latchkey.so` for auth and account
/// (so the module is exercised stacked, as on a real system), our module alone for
/// sessions, `pam_deny.so` for passwords.
pub fn latchkey_stack(args: &[&str]) -> Result<String> {
    let module = module_path()?;
    let module = module.to_str().context("module path is not UTF-8")?;
    for a in args.iter().copied().chain([module]) {
        ensure!(
            !a.contains(char::is_whitespace),
            "no whitespace in a PAM stack word: {a:?}"
        );
    }
    let line = format!("{module} {}", args.join(" "));
    Ok(format!(
        "# written by latchkey-testkit\n\
         auth     required pam_permit.so\n\
         auth     required {line}\n\
         account  required pam_permit.so\n\
         account  required {line}\n\
         session  required {line}\n\
         password required pam_deny.so\n"
    ))
}

/// The built `libpam_latchkey.so`: `$LATCHKEY_PAM_MODULE` if set, else the one rustc wrote
/// next to the running test executable (`target/<profile>/deps/`, refreshed whenever the
/// module is compiled, also as a dev-dependency), else the copy cargo puts in
/// `target/<profile>/` for `cargo build -p latchkey-pam`.
pub fn module_path() -> Result<PathBuf> {
    const NAME: &str = "libpam_latchkey.so";
    if let Some(p) = std::env::var_os("LATCHKEY_PAM_MODULE") {
        let p = PathBuf::from(p);
        ensure!(
            p.is_absolute() && p.exists(),
            "LATCHKEY_PAM_MODULE={} does not exist",
            p.display()
        );
        return Ok(p);
    }
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .context("test binary has no parent directory")?;
    let mut candidates = vec![dir.join(NAME)];
    if dir.ends_with("deps") {
        candidates.extend(dir.parent().map(|d| d.join(NAME)));
    }
    match candidates.iter().find(|p| p.exists()) {
        Some(p) => Ok(p.clone()),
        None => bail!(
            "{NAME} not found in {}: build the module first with `cargo build -p latchkey-pam` \
             (or set LATCHKEY_PAM_MODULE to its absolute path)",
            candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" or ")
        ),
    }
}

/// Linux-PAM's application API (`security/pam_appl.h`, `_pam_types.h`).
#[allow(non_camel_case_types)]
mod sys {
    use libc::{c_char, c_int, c_void};

    #[repr(C)]
    pub struct pam_handle_t {
        _private: [u8; 0],
    }

    #[repr(C)]
    pub struct pam_message {
        pub msg_style: c_int,
        pub msg: *const c_char,
    }

    #[repr(C)]
    pub struct pam_response {
        pub resp: *mut c_char,
        pub resp_retcode: c_int,
    }

    #[repr(C)]
    pub struct pam_conv {
        pub conv: Option<
            unsafe extern "C" fn(
                c_int,
                *mut *const pam_message,
                *mut *mut pam_response,
                *mut c_void,
            ) -> c_int,
        >,
        pub appdata_ptr: *mut c_void,
    }

    #[link(name = "pam")]
    unsafe extern "C" {
        pub fn pam_start_confdir(
            service_name: *const c_char,
            user: *const c_char,
            pam_conversation: *const pam_conv,
            confdir: *const c_char,
            pamh: *mut *mut pam_handle_t,
        ) -> c_int;
        pub fn pam_end(pamh: *mut pam_handle_t, pam_status: c_int) -> c_int;
        pub fn pam_authenticate(pamh: *mut pam_handle_t, flags: c_int) -> c_int;
        pub fn pam_acct_mgmt(pamh: *mut pam_handle_t, flags: c_int) -> c_int;
        pub fn pam_setcred(pamh: *mut pam_handle_t, flags: c_int) -> c_int;
        pub fn pam_open_session(pamh: *mut pam_handle_t, flags: c_int) -> c_int;
        pub fn pam_close_session(pamh: *mut pam_handle_t, flags: c_int) -> c_int;
        pub fn pam_set_item(
            pamh: *mut pam_handle_t,
            item_type: c_int,
            item: *const c_void,
        ) -> c_int;
        pub fn pam_putenv(pamh: *mut pam_handle_t, name_value: *const c_char) -> c_int;
    }
}
