//! The login engine's view of the servers: the calls it makes, and what each can end in.
//! `Upstream` implements it over HTTPS; the engine's unit tests use a fake.

use latchkey_proto::app::PushStartResult;
use latchkey_proto::enroll::{EnrollBegun, EnrollMethod, EnrollWait};
use latchkey_proto::fido2::LoginFido2;
use latchkey_proto::login::{AccountStatus, LoginStart, LoginStartResult, LoginStepResult};
use latchkey_proto::offline::OfflineAttachment;
use latchkey_proto::smartcard::LoginSmartcard;
use latchkey_proto::{ClientId, UserName};
use std::future::Future;

/// The `Refused` code of a call this machine could not make for lack of local resources.
pub const LOCAL_ERROR: &str = "local_error";

/// What a server call can end in, as the login engine sees it.
#[derive(Debug)]
pub enum Outcome<T> {
    Answer(T),
    /// No server gave a definite answer (refused, timeout, TLS, DNS, 5xx from all).
    Unreachable(String),
    /// A server refused the request itself (4xx): misconfiguration, not a login decision. Also
    /// a call this machine could not make (code [`LOCAL_ERROR`]): it refuses, never goes offline.
    Refused {
        code: String,
        message: String,
    },
}

impl<T> Outcome<T> {
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Outcome<U> {
        match self {
            Outcome::Answer(v) => Outcome::Answer(f(v)),
            Outcome::Unreachable(why) => Outcome::Unreachable(why),
            Outcome::Refused { code, message } => Outcome::Refused { code, message },
        }
    }
}

/// A definite answer with what rode along it. The transport only carries these; what to do
/// with a bundle, a forget list or the server's time is the engine's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answered<T> {
    pub value: T,
    pub offline: OfflineAttachment,
    /// The server's `Date` (Unix seconds), when it sent one.
    pub server_time: Option<i64>,
}

impl<T> Answered<T> {
    /// An answer with nothing riding along (tests, and calls that carry no attachment).
    pub fn bare(value: T) -> Answered<T> {
        Answered {
            value,
            offline: OfflineAttachment::default(),
            server_time: None,
        }
    }
}

pub type Reply<T> = Outcome<Answered<T>>;

/// The server calls of a login and of PAM account management.
pub trait Server: Send + Sync {
    fn login_start(&self, req: &LoginStart)
    -> impl Future<Output = Reply<LoginStartResult>> + Send;

    fn login_otp(
        &self,
        tx: &str,
        user: &str,
        code: &str,
    ) -> impl Future<Output = Reply<LoginStepResult>> + Send;

    fn push_start(
        &self,
        tx: &str,
        user: &str,
    ) -> impl Future<Output = Reply<PushStartResult>> + Send;

    /// Long-polls the push outcome (the server holds the request a little less than the
    /// transport's timeout).
    fn push_wait(
        &self,
        tx: &str,
        user: &str,
    ) -> impl Future<Output = Reply<LoginStepResult>> + Send;

    fn login_fido2(
        &self,
        tx: &str,
        user: &str,
        answer: &LoginFido2,
    ) -> impl Future<Output = Reply<LoginStepResult>> + Send;

    fn login_smartcard(
        &self,
        tx: &str,
        user: &str,
        req: &LoginSmartcard,
    ) -> impl Future<Output = Reply<LoginStepResult>> + Send;

    fn account_check(
        &self,
        user: &UserName,
        client_id: &ClientId,
    ) -> impl Future<Output = Reply<AccountStatus>> + Send;

    /// Inline enrolment: the method the person picked for the pending enrolment `tx`.
    fn enroll_begin(
        &self,
        tx: &str,
        user: &str,
        method: EnrollMethod,
    ) -> impl Future<Output = Reply<EnrollBegun>> + Send;

    /// The new authenticator's first code.
    fn enroll_confirm(
        &self,
        tx: &str,
        user: &str,
        code: &str,
    ) -> impl Future<Output = Reply<LoginStepResult>> + Send;

    /// Long-polls until the token app of the enrolment registered.
    fn enroll_wait(&self, tx: &str, user: &str) -> impl Future<Output = Reply<EnrollWait>> + Send;

    /// Finishes the login without a token, spending one grace login.
    fn enroll_skip(
        &self,
        tx: &str,
        user: &str,
    ) -> impl Future<Output = Reply<LoginStepResult>> + Send;

    /// The base URL a token app registers with (`https://host:port[/prefix]`): the servers
    /// share one database, so the first configured one.
    fn registration_base(&self) -> String;
}
