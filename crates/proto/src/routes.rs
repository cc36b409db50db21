//! Every route of latchkeyd: its path, method and who may call it, in one table.
//!
//! A path with parameters has a `PATTERN`-style constant in axum's syntax (`/v1/login/{tx}/otp`,
//! what the router takes) and a builder that fills it in for clients, percent-encoding each
//! value so a name like `../admin` stays inside its segment. Clients use the builders or the
//! plain constants; nothing else spells a `/v1/` path.

use std::fmt;

pub const HEALTHZ: &str = "/healthz";
pub const READYZ: &str = "/readyz";
pub const METRICS: &str = "/metrics";
pub const OPENAPI: &str = "/openapi.json";

pub const MACHINE_JOIN: &str = "/v1/machines/join";
pub const LOGIN_START: &str = "/v1/login/start";
pub const LOGIN_OTP: &str = "/v1/login/{tx}/otp";
pub const LOGIN_FIDO2: &str = "/v1/login/{tx}/fido2";
pub const LOGIN_SMARTCARD: &str = "/v1/login/{tx}/smartcard";
pub const LOGIN_PUSH: &str = "/v1/login/{tx}/push";
pub const LOGIN_PUSH_WAIT: &str = "/v1/login/{tx}/push/wait";
pub const LOGIN_ENROLL: &str = "/v1/login/{tx}/enroll";
pub const LOGIN_ENROLL_CONFIRM: &str = "/v1/login/{tx}/enroll/confirm";
pub const LOGIN_ENROLL_WAIT: &str = "/v1/login/{tx}/enroll/wait";
pub const LOGIN_ENROLL_SKIP: &str = "/v1/login/{tx}/enroll/skip";
pub const ACCOUNT_CHECK: &str = "/v1/account/check";
pub const FIDO2_REGISTER_START: &str = "/v1/fido2/register/start";
pub const FIDO2_REGISTER_FINISH: &str = "/v1/fido2/register/finish";
pub const SMARTCARD_ENROLL: &str = "/v1/smartcards/enroll";
pub const EVENTS: &str = "/v1/events";
pub const SESSIONS_STATE: &str = "/v1/sessions/state";

pub const APP_REGISTER: &str = "/v1/apps/register";
pub const APP_PENDING: &str = "/v1/apps/pending";
pub const APP_RESPOND: &str = "/v1/apps/respond";
pub const APP_BADGE: &str = "/v1/apps/badge";

pub const ADMIN_USERS: &str = "/v1/admin/users";
pub const ADMIN_USER: &str = "/v1/admin/users/{name}";
pub const ADMIN_USER_TOKENS: &str = "/v1/admin/users/{name}/tokens";
pub const ADMIN_USER_VERIFY: &str = "/v1/admin/users/{name}/verify";
pub const ADMIN_USER_FIDO2: &str = "/v1/admin/users/{name}/fido2";
pub const ADMIN_USER_SMARTCARDS: &str = "/v1/admin/users/{name}/smartcards";
pub const ADMIN_USER_SMARTCARDS_ENROLL: &str = "/v1/admin/users/{name}/smartcards/enroll";
pub const ADMIN_USER_APPS: &str = "/v1/admin/users/{name}/apps";
pub const ADMIN_USER_INVITE: &str = "/v1/admin/users/{name}/invite";
pub const ADMIN_TOKEN: &str = "/v1/admin/tokens/{id}";
pub const ADMIN_TOKEN_RESYNC: &str = "/v1/admin/tokens/{id}/resync";
pub const ADMIN_POLICIES: &str = "/v1/admin/policies";
pub const ADMIN_POLICY: &str = "/v1/admin/policies/{id}";
pub const ADMIN_MACHINES: &str = "/v1/admin/machines";
pub const ADMIN_MACHINE: &str = "/v1/admin/machines/{id}";
pub const ADMIN_MACHINE_FORGET_OFFLINE: &str = "/v1/admin/machines/{id}/forget-offline";
pub const ADMIN_JOIN_TOKENS: &str = "/v1/admin/join-tokens";
pub const ADMIN_AUDIT: &str = "/v1/admin/audit";
pub const ADMIN_EVENTS: &str = "/v1/admin/events";
pub const ADMIN_SESSIONS: &str = "/v1/admin/sessions";
pub const ADMIN_ADMINS: &str = "/v1/admin/admins";
pub const ADMIN_ADMIN: &str = "/v1/admin/admins/{name}";
pub const ADMIN_ADMIN_UNLOCK: &str = "/v1/admin/admins/{name}/unlock";

/// The web token app (issue 22): the phone authenticator as an installable web app, served by
/// latchkeyd but not part of the API (not in [`ROUTES`], not in `/openapi.json`). `WEB_APP`
/// redirects to `WEB_APP_ROOT`; `WEB_APP_FILE` is one file of the app, or one of its pages
/// (`/app/register`, where registration links point), which are its `index.html`.
pub const WEB_APP: &str = "/app";
pub const WEB_APP_ROOT: &str = "/app/";
pub const WEB_APP_FILE: &str = "/app/{*path}";

/// Paths the router serves that are not API routes. `crates/server/tests/openapi.rs` checks
/// that the router serves exactly these and the paths of [`ROUTES`].
pub const WEB_APP_PATHS: &[&str] = &[WEB_APP, WEB_APP_ROOT, WEB_APP_FILE];

/// The web console and self-service portal (issue 23, docs/web.md): server-rendered pages
/// under `/ui`, served by latchkeyd but not API routes (not in [`ROUTES`], not in
/// `/openapi.json`). Pages are reached with a session cookie, never with an API key.
pub const UI: &str = "/ui";
pub const UI_ROOT: &str = "/ui/";
pub const UI_SIGNIN: &str = "/ui/signin";
pub const UI_SIGNOUT: &str = "/ui/signout";
pub const UI_STATIC: &str = "/ui/static/{file}";

/// The admin console (`/ui/admin/…`).
pub const UI_ADMIN: &str = "/ui/admin/";
pub const UI_ADMIN_USERS: &str = "/ui/admin/users";
pub const UI_ADMIN_USER: &str = "/ui/admin/users/{name}";
pub const UI_ADMIN_USER_ACTION: &str = "/ui/admin/users/{name}/{action}";
pub const UI_ADMIN_TOKEN_ACTION: &str = "/ui/admin/tokens/{id}/{action}";
pub const UI_ADMIN_POLICIES: &str = "/ui/admin/policies";
pub const UI_ADMIN_POLICY: &str = "/ui/admin/policies/{id}";
pub const UI_ADMIN_MACHINES: &str = "/ui/admin/machines";
pub const UI_ADMIN_MACHINE_ACTION: &str = "/ui/admin/machines/{id}/{action}";
pub const UI_ADMIN_JOIN_TOKENS: &str = "/ui/admin/join-tokens";
pub const UI_ADMIN_AUDIT: &str = "/ui/admin/audit";
pub const UI_ADMIN_EVENTS: &str = "/ui/admin/events";
pub const UI_ADMIN_SESSIONS: &str = "/ui/admin/sessions";

/// The pages of `/ui` the router serves, with [`WEB_ADMIN_PATHS`] and [`WEB_ME_PATHS`];
/// `crates/server/tests/openapi.rs` checks the router against them.
pub const WEB_UI_PATHS: &[&str] = &[UI, UI_ROOT, UI_SIGNOUT, UI_STATIC];

/// The admin sign-in page and the console's pages.
pub const WEB_ADMIN_PATHS: &[&str] = &[
    UI_SIGNIN,
    UI_ADMIN,
    UI_ADMIN_USERS,
    UI_ADMIN_USER,
    UI_ADMIN_USER_ACTION,
    UI_ADMIN_TOKEN_ACTION,
    UI_ADMIN_POLICIES,
    UI_ADMIN_POLICY,
    UI_ADMIN_MACHINES,
    UI_ADMIN_MACHINE_ACTION,
    UI_ADMIN_JOIN_TOKENS,
    UI_ADMIN_AUDIT,
    UI_ADMIN_EVENTS,
    UI_ADMIN_SESSIONS,
];

/// The self-service portal (`/ui/me/…`) and its invite landing.
pub const UI_INVITE: &str = "/ui/invite/{code}";
pub const UI_ME: &str = "/ui/me/";
pub const UI_ME_SIGNIN: &str = "/ui/me/signin";
pub const UI_ME_SIGNIN_KEY: &str = "/ui/me/signin/key";
pub const UI_ME_SIGNIN_KEY_FINISH: &str = "/ui/me/signin/key/finish";
pub const UI_ME_SIGNIN_CODE: &str = "/ui/me/signin/code";
pub const UI_ME_SIGNIN_WAIT: &str = "/ui/me/signin/wait";
pub const UI_ME_TOTP: &str = "/ui/me/totp";
pub const UI_ME_APP: &str = "/ui/me/app";
pub const UI_ME_KEY: &str = "/ui/me/key";
pub const UI_ME_TEST: &str = "/ui/me/test/{id}";
/// `rename` or `remove` one of the user's own tokens.
pub const UI_ME_TOKEN_ACTION: &str = "/ui/me/tokens/{id}/{action}";
pub const UI_ME_LOGIN_REPORT: &str = "/ui/me/logins/{id}/report";

/// The self-service portal's pages (`/ui/me/…`, `/ui/invite/{code}`), beside [`WEB_UI_PATHS`].
pub const WEB_ME_PATHS: &[&str] = &[
    UI_INVITE,
    UI_ME,
    UI_ME_SIGNIN,
    UI_ME_SIGNIN_KEY,
    UI_ME_SIGNIN_KEY_FINISH,
    UI_ME_SIGNIN_CODE,
    UI_ME_SIGNIN_WAIT,
    UI_ME_TOTP,
    UI_ME_APP,
    UI_ME_KEY,
    UI_ME_TEST,
    UI_ME_TOKEN_ACTION,
    UI_ME_LOGIN_REPORT,
];

/// The token app's own API: the routes a token app calls from wherever it runs, so the only
/// ones that answer CORS requests from any origin (docs/decisions.md, "Web token app").
pub const CORS_ROUTES: &[&str] = &[APP_REGISTER, APP_PENDING, APP_RESPOND, APP_BADGE];

/// Percent-encodes everything but RFC 3986 unreserved characters, so a value is always one
/// path segment (or one query value): `/`, `?`, `#`, `%` and `..` cannot change the route.
pub fn encode_path_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    // A segment of only dots would be resolved away by URL normalisation on the way.
    if out.bytes().all(|b| b == b'.') {
        return out.replace('.', "%2E");
    }
    out
}

/// `pattern` with its `{…}` segments replaced, in order, by the encoded `values`. A pattern
/// with more parameters than values keeps the rest as written (a bug the tests catch).
pub fn fill(pattern: &str, values: &[&str]) -> String {
    let mut values = values.iter();
    pattern
        .split('/')
        .map(|seg| {
            if seg.starts_with('{') && seg.ends_with('}') {
                values
                    .next()
                    .map_or_else(|| seg.to_string(), |v| encode_path_segment(v))
            } else {
                seg.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

macro_rules! builders {
    ($($(#[$doc:meta])* $fn:ident($arg:ident) => $pattern:ident;)*) => {
        $($(#[$doc])* pub fn $fn($arg: &str) -> String { fill($pattern, &[$arg]) })*
    };
}

builders! {
    login_otp(tx) => LOGIN_OTP;
    login_fido2(tx) => LOGIN_FIDO2;
    login_smartcard(tx) => LOGIN_SMARTCARD;
    login_push(tx) => LOGIN_PUSH;
    login_push_wait(tx) => LOGIN_PUSH_WAIT;
    login_enroll(tx) => LOGIN_ENROLL;
    login_enroll_confirm(tx) => LOGIN_ENROLL_CONFIRM;
    login_enroll_wait(tx) => LOGIN_ENROLL_WAIT;
    login_enroll_skip(tx) => LOGIN_ENROLL_SKIP;
    admin_user(name) => ADMIN_USER;
    admin_admin(name) => ADMIN_ADMIN;
    admin_admin_unlock(name) => ADMIN_ADMIN_UNLOCK;
    ui_admin_user(name) => UI_ADMIN_USER;
    ui_admin_policy(id) => UI_ADMIN_POLICY;
    admin_user_tokens(name) => ADMIN_USER_TOKENS;
    admin_user_verify(name) => ADMIN_USER_VERIFY;
    admin_user_fido2(name) => ADMIN_USER_FIDO2;
    admin_user_smartcards(name) => ADMIN_USER_SMARTCARDS;
    admin_user_smartcards_enroll(name) => ADMIN_USER_SMARTCARDS_ENROLL;
    admin_user_apps(name) => ADMIN_USER_APPS;
    admin_user_invite(name) => ADMIN_USER_INVITE;
    admin_token(id) => ADMIN_TOKEN;
    admin_token_resync(id) => ADMIN_TOKEN_RESYNC;
    /// `client_id` of the policy (`*` for the fallback).
    admin_policy(client_id) => ADMIN_POLICY;
    /// A machine id (or, for `forget-offline`, a hostname naming one machine).
    admin_machine(id) => ADMIN_MACHINE;
    admin_machine_forget_offline(machine) => ADMIN_MACHINE_FORGET_OFFLINE;
}

/// Who may call a route (docs/api.md, docs/security.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// No credential; some routes take a one-time secret in the body instead (a join token,
    /// a registration code).
    Anonymous,
    /// A joined machine: its API key as a bearer token, or its registered client certificate.
    Machine,
    /// An admin API key as a bearer token; machine keys are refused (403).
    Admin,
    /// A registered token app's key as a bearer token.
    App,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Anonymous => "anonymous",
            Access::Machine => "machine",
            Access::Admin => "admin",
            Access::App => "app",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HttpMethod {
    Get,
    Post,
    Patch,
    Delete,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Delete => "DELETE",
        }
    }
}

impl fmt::Display for HttpMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One operation of the API. Matching on it (as the OpenAPI document does) makes a new route
/// a compile error until it is described.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Healthz,
    Readyz,
    Metrics,
    OpenApi,
    MachineJoin,
    LoginStart,
    LoginOtp,
    AccountCheck,
    LoginFido2,
    Fido2RegisterStart,
    Fido2RegisterFinish,
    Fido2RegistrationCreate,
    LoginSmartcard,
    SmartcardEnroll,
    SmartcardAdd,
    SmartcardCodeCreate,
    PushStart,
    PushWait,
    EnrollBegin,
    EnrollConfirm,
    EnrollWait,
    EnrollSkip,
    AppLinkCreate,
    AppRegister,
    AppPending,
    AppRespond,
    AppBadge,
    UserList,
    UserAdd,
    UserShow,
    UserUpdate,
    UserRemove,
    UserInvite,
    TokenList,
    TokenAdd,
    TokenVerify,
    TokenRemove,
    TokenResync,
    PolicyList,
    PolicyShow,
    PolicySet,
    PolicyRemove,
    MachineList,
    MachineRemove,
    MachineForgetOffline,
    JoinTokenCreate,
    Audit,
    EventUpload,
    SessionState,
    EventList,
    SessionList,
    AdminList,
    AdminAdd,
    AdminRemove,
    AdminUnlock,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub op: Op,
    pub method: HttpMethod,
    /// The path in axum's syntax, `{name}` for a parameter.
    pub pattern: &'static str,
    pub access: Access,
}

impl Route {
    /// The `{…}` parameter names of the pattern, in order.
    pub fn params(&self) -> impl Iterator<Item = &'static str> {
        self.pattern
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
    }
}

const fn r(op: Op, method: HttpMethod, pattern: &'static str, access: Access) -> Route {
    Route {
        op,
        method,
        pattern,
        access,
    }
}

use Access::{Admin, Anonymous, App, Machine};
use HttpMethod::{Delete, Get, Patch, Post};

/// Every route latchkeyd serves. `crates/server/tests/openapi.rs` checks the router agrees.
pub const ROUTES: &[Route] = &[
    r(Op::Healthz, Get, HEALTHZ, Anonymous),
    r(Op::Readyz, Get, READYZ, Anonymous),
    r(Op::Metrics, Get, METRICS, Anonymous),
    r(Op::OpenApi, Get, OPENAPI, Anonymous),
    r(Op::MachineJoin, Post, MACHINE_JOIN, Anonymous),
    r(Op::LoginStart, Post, LOGIN_START, Machine),
    r(Op::LoginOtp, Post, LOGIN_OTP, Machine),
    r(Op::AccountCheck, Post, ACCOUNT_CHECK, Machine),
    r(Op::LoginFido2, Post, LOGIN_FIDO2, Machine),
    r(Op::Fido2RegisterStart, Post, FIDO2_REGISTER_START, Machine),
    r(
        Op::Fido2RegisterFinish,
        Post,
        FIDO2_REGISTER_FINISH,
        Machine,
    ),
    r(Op::Fido2RegistrationCreate, Post, ADMIN_USER_FIDO2, Admin),
    r(Op::LoginSmartcard, Post, LOGIN_SMARTCARD, Machine),
    r(Op::SmartcardEnroll, Post, SMARTCARD_ENROLL, Machine),
    r(Op::SmartcardAdd, Post, ADMIN_USER_SMARTCARDS, Admin),
    r(
        Op::SmartcardCodeCreate,
        Post,
        ADMIN_USER_SMARTCARDS_ENROLL,
        Admin,
    ),
    r(Op::PushStart, Post, LOGIN_PUSH, Machine),
    r(Op::PushWait, Post, LOGIN_PUSH_WAIT, Machine),
    r(Op::EnrollBegin, Post, LOGIN_ENROLL, Machine),
    r(Op::EnrollConfirm, Post, LOGIN_ENROLL_CONFIRM, Machine),
    r(Op::EnrollWait, Post, LOGIN_ENROLL_WAIT, Machine),
    r(Op::EnrollSkip, Post, LOGIN_ENROLL_SKIP, Machine),
    r(Op::AppLinkCreate, Post, ADMIN_USER_APPS, Admin),
    r(Op::AppRegister, Post, APP_REGISTER, Anonymous),
    r(Op::AppPending, Get, APP_PENDING, App),
    r(Op::AppRespond, Post, APP_RESPOND, App),
    r(Op::AppBadge, Post, APP_BADGE, App),
    r(Op::UserList, Get, ADMIN_USERS, Admin),
    r(Op::UserAdd, Post, ADMIN_USERS, Admin),
    r(Op::UserShow, Get, ADMIN_USER, Admin),
    r(Op::UserUpdate, Patch, ADMIN_USER, Admin),
    r(Op::UserRemove, Delete, ADMIN_USER, Admin),
    r(Op::UserInvite, Post, ADMIN_USER_INVITE, Admin),
    r(Op::TokenList, Get, ADMIN_USER_TOKENS, Admin),
    r(Op::TokenAdd, Post, ADMIN_USER_TOKENS, Admin),
    r(Op::TokenVerify, Post, ADMIN_USER_VERIFY, Admin),
    r(Op::TokenRemove, Delete, ADMIN_TOKEN, Admin),
    r(Op::TokenResync, Post, ADMIN_TOKEN_RESYNC, Admin),
    r(Op::PolicyList, Get, ADMIN_POLICIES, Admin),
    r(Op::PolicyShow, Get, ADMIN_POLICY, Admin),
    r(Op::PolicySet, Patch, ADMIN_POLICY, Admin),
    r(Op::PolicyRemove, Delete, ADMIN_POLICY, Admin),
    r(Op::MachineList, Get, ADMIN_MACHINES, Admin),
    r(Op::MachineRemove, Delete, ADMIN_MACHINE, Admin),
    r(
        Op::MachineForgetOffline,
        Post,
        ADMIN_MACHINE_FORGET_OFFLINE,
        Admin,
    ),
    r(Op::JoinTokenCreate, Post, ADMIN_JOIN_TOKENS, Admin),
    r(Op::Audit, Get, ADMIN_AUDIT, Admin),
    r(Op::EventUpload, Post, EVENTS, Machine),
    r(Op::SessionState, Post, SESSIONS_STATE, Machine),
    r(Op::EventList, Get, ADMIN_EVENTS, Admin),
    r(Op::SessionList, Get, ADMIN_SESSIONS, Admin),
    r(Op::AdminList, Get, ADMIN_ADMINS, Admin),
    r(Op::AdminAdd, Post, ADMIN_ADMINS, Admin),
    r(Op::AdminRemove, Delete, ADMIN_ADMIN, Admin),
    r(Op::AdminUnlock, Post, ADMIN_ADMIN_UNLOCK, Admin),
];

/// The table's entry for an operation.
pub fn route(op: Op) -> Option<&'static Route> {
    ROUTES.iter().find(|r| r.op == op)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn builders_fill_every_parameter_and_encode_it() {
        assert_eq!(login_otp("abc"), "/v1/login/abc/otp");
        assert_eq!(admin_user("../admin"), "/v1/admin/users/..%2Fadmin");
        assert_eq!(admin_user(".."), "/v1/admin/users/%2E%2E");
        assert_eq!(admin_policy("*"), "/v1/admin/policies/%2A");
        assert_eq!(
            admin_user_tokens("a b?#"),
            "/v1/admin/users/a%20b%3F%23/tokens"
        );
        assert_eq!(
            admin_machine_forget_offline("host-1"),
            "/v1/admin/machines/host-1/forget-offline"
        );
        assert!(!login_push_wait("t").contains('{'));
    }

    #[test]
    fn each_method_and_path_is_in_the_table_once_and_ops_are_unique() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert!(
                    !(a.method == b.method && a.pattern == b.pattern),
                    "{} {} twice",
                    a.method,
                    a.pattern
                );
                assert_ne!(a.op, b.op);
            }
        }
    }

    #[test]
    fn admin_paths_need_the_admin_key_and_v1_paths_are_versioned() {
        for r in ROUTES {
            assert_eq!(
                r.pattern.starts_with("/v1/admin/"),
                r.access == Access::Admin,
                "{}",
                r.pattern
            );
            assert!(
                r.pattern.starts_with(&format!("/v{}/", crate::API_VERSION))
                    || [HEALTHZ, READYZ, METRICS, OPENAPI].contains(&r.pattern),
                "{}",
                r.pattern
            );
        }
    }

    #[test]
    fn web_ui_paths_are_outside_the_api() {
        for p in WEB_UI_PATHS
            .iter()
            .chain(WEB_ADMIN_PATHS)
            .chain(WEB_ME_PATHS)
        {
            assert!(*p == UI || p.starts_with(UI_ROOT), "{p}");
            assert!(ROUTES.iter().all(|r| r.pattern != *p), "{p} is in ROUTES");
        }
    }

    #[test]
    fn web_app_paths_are_outside_the_api() {
        for p in WEB_APP_PATHS {
            assert!(p.starts_with(WEB_APP), "{p}");
            assert!(ROUTES.iter().all(|r| r.pattern != *p), "{p} is in ROUTES");
        }
        // The cross-origin routes are the token app's own and nothing an admin or a machine
        // calls.
        for p in CORS_ROUTES {
            let routes: Vec<_> = ROUTES.iter().filter(|r| r.pattern == *p).collect();
            assert!(!routes.is_empty(), "{p}");
            for r in routes {
                assert!(
                    matches!(
                        r.op,
                        Op::AppRegister | Op::AppPending | Op::AppRespond | Op::AppBadge
                    ),
                    "{p}"
                );
            }
        }
    }

    #[test]
    fn params_are_named_segments() {
        let r = route(Op::LoginOtp).unwrap();
        assert_eq!(r.params().collect::<Vec<_>>(), ["tx"]);
        assert_eq!(route(Op::UserList).unwrap().params().count(), 0);
    }
}
