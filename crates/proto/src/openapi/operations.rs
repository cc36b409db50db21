//! What each operation of the route table takes and answers, by type.
//!
//! `describe` matches on every [`Op`]: a route added to the table without a description here
//! does not compile, and the schemas come from the very types the server (de)serializes.

use crate::admin::{
    AdminCreate, AdminCreated, AdminInfo, AuditEntry, AuditQuery, JoinTokenCreate,
    JoinTokenCreated, Machine, OtpTokenCreate, Policy, PolicyUpdate, TokenEnrolled, TokenInfo,
    TokenResync, User, UserCreate, UserInviteCreate, UserInvited, UserUpdate, VerifyRequest,
    VerifyResult,
};
use crate::app::{
    AppLinkCreate, AppLinkCreated, AppRegister, AppRegistered, Badge, PushRequest, PushResponse,
    PushStartResult, PushVerdict,
};
use crate::enroll::{EnrollBegin, EnrollBegun, EnrollWait};
use crate::events::{
    EventBatch, EventPage, EventQuery, EventsAccepted, SessionInfo, SessionQuery,
    SessionStateRequest, SessionStateResponse,
};
use crate::fido2::{
    Fido2RegisterFinish, Fido2RegisterOptions, Fido2RegisterStart, Fido2Registered,
    Fido2RegistrationCreate, Fido2RegistrationCreated, LoginFido2,
};
use crate::login::{
    AccountCheck, AccountStatus, LoginOtp, LoginStart, LoginStartResult, LoginStepResult,
};
use crate::machine::{JoinRequest, JoinResponse};
use crate::offline::{ForgetOffline, ForgetOfflineQueued, WithOffline};
use crate::routes::Op;
use crate::smartcard::{
    LoginSmartcard, SmartcardAdd, SmartcardCodeCreate, SmartcardEnroll, SmartcardEnrollCode,
};
use crate::{ClientId, MachineId, TxId, UserName, WaitQuery};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

/// A successful answer's body.
pub(super) enum Answer {
    Json(Schema),
    /// `text/plain` (Prometheus metrics).
    Text,
    /// 204, no body.
    Empty,
}

pub(super) struct OpDoc {
    pub summary: &'static str,
    pub body: Option<Schema>,
    /// The query parameters: an object schema whose properties are the parameters.
    pub query: Option<Schema>,
    pub status: u16,
    pub answer: Answer,
    /// Refusals this operation gives beyond those of its kind of caller and input.
    pub refusals: &'static [u16],
}

fn json<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    g.subschema_for::<T>()
}

/// A query type's schema, inlined (its properties become parameters).
fn query<T: JsonSchema>() -> Schema {
    schemars::generate::SchemaSettings::draft2020_12()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .into_generator()
        .into_root_schema_for::<T>()
}

/// The schema of a path parameter of `op`.
pub(super) fn path_param(op: Op, name: &str, g: &mut SchemaGenerator) -> Schema {
    match (op, name) {
        (_, "tx") => json::<TxId>(g),
        (_, "name") => json::<UserName>(g),
        (Op::PolicyShow | Op::PolicySet | Op::PolicyRemove, _) => json::<ClientId>(g),
        (Op::MachineRemove, _) => json::<MachineId>(g),
        // forget-offline takes a machine id or a hostname; token ids are the server's own.
        _ => json_schema!({ "type": "string", "minLength": 1, "maxLength": 256 }),
    }
}

fn status_schema() -> Schema {
    json_schema!({
        "type": "object",
        "required": ["status"],
        "properties": { "status": { "type": "string" } }
    })
}

impl OpDoc {
    fn new(summary: &'static str, status: u16, answer: Answer) -> OpDoc {
        OpDoc {
            summary,
            body: None,
            query: None,
            status,
            answer,
            refusals: &[],
        }
    }
    fn body(mut self, s: Schema) -> OpDoc {
        self.body = Some(s);
        self
    }
    fn query(mut self, s: Schema) -> OpDoc {
        self.query = Some(s);
        self
    }
    fn refusals(mut self, r: &'static [u16]) -> OpDoc {
        self.refusals = r;
        self
    }
}

pub(super) fn describe(op: Op, g: &mut SchemaGenerator) -> OpDoc {
    use Answer::{Empty, Json, Text};
    let ok =
        |g: &mut SchemaGenerator, s: &'static str, schema: fn(&mut SchemaGenerator) -> Schema| {
            OpDoc::new(s, 200, Json(schema(g)))
        };
    let created =
        |g: &mut SchemaGenerator, s: &'static str, schema: fn(&mut SchemaGenerator) -> Schema| {
            OpDoc::new(s, 201, Json(schema(g)))
        };
    let step = json::<WithOffline<LoginStepResult>>;
    match op {
        Op::Healthz => OpDoc::new("Liveness", 200, Json(status_schema())),
        Op::Readyz => OpDoc::new(
            "Readiness (503 with the same shape while not ready)",
            200,
            Json(status_schema()),
        ),
        Op::Metrics => OpDoc::new("Prometheus metrics", 200, Text),
        Op::OpenApi => OpDoc::new(
            "This document",
            200,
            Json(json_schema!({ "type": "object" })),
        ),
        Op::MachineJoin => ok(
            g,
            "Join a machine with a one-time join token",
            json::<JoinResponse>,
        )
        .body(json::<JoinRequest>(g))
        .refusals(&[401, 429]),
        Op::LoginStart => ok(g, "Start a login", json::<WithOffline<LoginStartResult>>)
            .body(json::<LoginStart>(g))
            .refusals(&[429]),
        Op::LoginOtp => ok(g, "Answer a login with a one-time code", step)
            .body(json::<LoginOtp>(g))
            .refusals(&[404, 429]),
        Op::AccountCheck => ok(
            g,
            "May this user log in now (PAM account management)",
            json::<WithOffline<AccountStatus>>,
        )
        .body(json::<AccountCheck>(g))
        .refusals(&[429]),
        Op::LoginFido2 => ok(g, "Answer a login with a FIDO2 assertion", step)
            .body(json::<LoginFido2>(g))
            .refusals(&[404, 429]),
        Op::Fido2RegisterStart => ok(
            g,
            "Start a security-key registration with a one-time code",
            json::<Fido2RegisterOptions>,
        )
        .body(json::<Fido2RegisterStart>(g)),
        Op::Fido2RegisterFinish => created(
            g,
            "Finish a security-key registration",
            json::<Fido2Registered>,
        )
        .body(json::<Fido2RegisterFinish>(g)),
        Op::Fido2RegistrationCreate => created(
            g,
            "A one-time security-key registration code for a user",
            json::<Fido2RegistrationCreated>,
        )
        .body(json::<Fido2RegistrationCreate>(g))
        .refusals(&[404]),
        Op::LoginSmartcard => ok(g, "Answer a login with a smartcard signature", step)
            .body(json::<LoginSmartcard>(g))
            .refusals(&[404, 429]),
        Op::SmartcardEnroll => created(
            g,
            "Enrol a smartcard certificate with a one-time code",
            json::<TokenInfo>,
        )
        .body(json::<SmartcardEnroll>(g)),
        Op::SmartcardAdd => created(
            g,
            "Register a smartcard certificate for a user",
            json::<TokenInfo>,
        )
        .body(json::<SmartcardAdd>(g))
        .refusals(&[404, 409]),
        Op::SmartcardCodeCreate => created(
            g,
            "A one-time smartcard enrolment code for a user",
            json::<SmartcardEnrollCode>,
        )
        .body(json::<SmartcardCodeCreate>(g))
        .refusals(&[404]),
        Op::PushStart => ok(
            g,
            "Send a push to the user's token apps",
            json::<PushStartResult>,
        )
        .refusals(&[404, 429]),
        Op::PushWait => ok(g, "Wait for the push's answer (long poll)", step)
            .query(query::<WaitQuery>())
            .refusals(&[404, 429]),
        Op::EnrollBegin => ok(
            g,
            "Begin an inline enrolment with the method the person picked",
            json::<EnrollBegun>,
        )
        .body(json::<EnrollBegin>(g))
        .refusals(&[404, 429]),
        Op::EnrollConfirm => ok(
            g,
            "Confirm an inline enrolment with the new token's first code",
            step,
        )
        .body(json::<LoginOtp>(g))
        .refusals(&[404, 429]),
        Op::EnrollWait => ok(
            g,
            "Wait until the token app of an inline enrolment registered (long poll)",
            json::<EnrollWait>,
        )
        .query(query::<WaitQuery>())
        .refusals(&[404, 429]),
        Op::EnrollSkip => ok(
            g,
            "Finish a login without a token, spending one of the user's grace logins",
            step,
        )
        .refusals(&[404, 429]),
        Op::AppLinkCreate => created(
            g,
            "A one-time token-app registration code for a user",
            json::<AppLinkCreated>,
        )
        .body(json::<AppLinkCreate>(g))
        .refusals(&[404]),
        Op::AppRegister => created(
            g,
            "Register a token app with its one-time code",
            json::<AppRegistered>,
        )
        .body(json::<AppRegister>(g))
        .refusals(&[401]),
        Op::AppPending => ok(
            g,
            "Logins waiting for this app's approval (long poll)",
            json::<Vec<PushRequest>>,
        )
        .query(query::<WaitQuery>()),
        Op::AppRespond => ok(g, "Approve or deny a login, signed", json::<PushVerdict>)
            .body(json::<PushResponse>(g)),
        Op::AppBadge => {
            ok(g, "Badge in or out, signed", json::<PushVerdict>).body(json::<Badge>(g))
        }
        Op::UserList => ok(g, "List users", json::<Vec<User>>),
        Op::UserAdd => created(g, "Add a user", json::<User>)
            .body(json::<UserCreate>(g))
            .refusals(&[409]),
        Op::UserShow => ok(g, "Show a user", json::<User>).refusals(&[404]),
        Op::UserUpdate => ok(g, "Change a user", json::<User>)
            .body(json::<UserUpdate>(g))
            .refusals(&[404]),
        Op::UserRemove => OpDoc::new("Remove a user and their tokens", 204, Empty).refusals(&[404]),
        Op::UserInvite => created(
            g,
            "A one-time invite link to the self-service portal (replaces an older one)",
            json::<UserInvited>,
        )
        .body(json::<UserInviteCreate>(g))
        .refusals(&[400, 404]),
        Op::TokenList => ok(g, "A user's tokens", json::<Vec<TokenInfo>>).refusals(&[404]),
        Op::TokenAdd => created(g, "Enrol a TOTP or HOTP token", json::<TokenEnrolled>)
            .body(json::<OtpTokenCreate>(g))
            .refusals(&[404]),
        Op::TokenVerify => ok(
            g,
            "Check a code as a login would (consumes it)",
            json::<VerifyResult>,
        )
        .body(json::<VerifyRequest>(g))
        .refusals(&[404]),
        Op::TokenRemove => OpDoc::new(
            "Remove a token, smartcard or security key, or revoke a token app",
            204,
            Empty,
        )
        .refusals(&[404]),
        Op::TokenResync => ok(
            g,
            "Resynchronise an HOTP token (RFC 4226 §7.4)",
            json::<VerifyResult>,
        )
        .body(json::<TokenResync>(g))
        .refusals(&[404]),
        Op::PolicyList => ok(g, "Effective client policies", json::<Vec<Policy>>),
        Op::PolicyShow => ok(g, "One client policy", json::<Policy>).refusals(&[404]),
        Op::PolicySet => {
            ok(g, "Change a client policy", json::<Policy>).body(json::<PolicyUpdate>(g))
        }
        Op::PolicyRemove => {
            OpDoc::new("Remove a client policy (not `*`)", 204, Empty).refusals(&[404])
        }
        Op::MachineList => ok(g, "Joined machines", json::<Vec<Machine>>),
        Op::MachineRemove => {
            OpDoc::new("Remove a machine (revokes its key)", 204, Empty).refusals(&[404])
        }
        Op::MachineForgetOffline => ok(
            g,
            "Make a machine wipe a user's offline bundle",
            json::<ForgetOfflineQueued>,
        )
        .body(json::<ForgetOffline>(g))
        .refusals(&[404]),
        Op::JoinTokenCreate => {
            created(g, "A one-time machine join token", json::<JoinTokenCreated>).body(json::<
                JoinTokenCreate,
            >(
                g
            ))
        }
        Op::AdminList => ok(g, "Web console admins", json::<Vec<AdminInfo>>),
        Op::AdminAdd => created(
            g,
            "Add a web console admin (the TOTP secret is answered once)",
            json::<AdminCreated>,
        )
        .body(json::<AdminCreate>(g))
        .refusals(&[409]),
        Op::AdminRemove => OpDoc::new(
            "Remove a web console admin (ends their sessions)",
            204,
            Empty,
        )
        .refusals(&[404]),
        Op::AdminUnlock => ok(
            g,
            "Clear a web console admin's lockout (failures and lock time)",
            json::<AdminInfo>,
        )
        .refusals(&[404]),
        Op::Audit => ok(g, "The audit log", json::<Vec<AuditEntry>>).query(query::<AuditQuery>()),
        Op::EventUpload => ok(
            g,
            "Upload agent events (at most 1000, body at most 4 MiB)",
            json::<EventsAccepted>,
        )
        .body(json::<EventBatch>(g)),
        Op::SessionState => ok(
            g,
            "What to do with this machine's open sessions",
            json::<SessionStateResponse>,
        )
        .body(json::<SessionStateRequest>(g)),
        Op::EventList => ok(
            g,
            "Agent events (follow with `after` and `wait`)",
            json::<EventPage>,
        )
        .query(query::<EventQuery>()),
        Op::SessionList => {
            ok(g, "Open sessions", json::<Vec<SessionInfo>>).query(query::<SessionQuery>())
        }
    }
}
