//! Schema and migrations. DDL is the only place where backends may differ.

use super::{Backend, Result, Store};
use super::{query, query_scalar};

/// Each entry is applied once, in order, and recorded in `schema_version`.
const MIGRATIONS: &[&str] = &[
    // 1: foundation
    r#"
CREATE TABLE users (
    name TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    groups_json TEXT NOT NULL,
    enabled BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    failures BIGINT NOT NULL DEFAULT 0,
    locked_until BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    digits BIGINT NOT NULL,
    period BIGINT NOT NULL,
    secret_sealed TEXT NOT NULL,
    used BIGINT NOT NULL,
    label TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE INDEX tokens_user ON tokens(user_name);
CREATE TABLE policies (
    client_id TEXT PRIMARY KEY,
    settings_json TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE machines (
    id TEXT PRIMARY KEY,
    hostname TEXT NOT NULL,
    api_key_hash TEXT NOT NULL UNIQUE,
    cert_sha256 TEXT UNIQUE,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT
);
CREATE TABLE join_tokens (
    token_hash TEXT PRIMARY KEY,
    note TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    machine_id TEXT
);
CREATE TABLE admin_keys (
    key_hash TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE login_tx (
    id TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    client_id TEXT NOT NULL,
    machine_id TEXT NOT NULL,
    rhost TEXT,
    tty TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    done BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX login_tx_expires ON login_tx(expires_at);
CREATE TABLE audit (
    id @AUTOID@,
    time BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    user_name TEXT,
    client_id TEXT,
    result TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX audit_time ON audit(time);
CREATE INDEX audit_user_time ON audit(user_name, time);
"#,
    // 2: token apps and push
    r#"
CREATE TABLE apps (
    id TEXT PRIMARY KEY,
    user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    device_name TEXT NOT NULL,
    x25519_public TEXT NOT NULL,
    ed25519_public TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT
);
CREATE INDEX apps_user ON apps(user_name);
CREATE TABLE app_links (
    code_hash TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE TABLE push_requests (
    tx_id TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    host TEXT NOT NULL,
    client_id TEXT NOT NULL,
    rhost TEXT,
    number BIGINT NOT NULL,
    nonce TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    state TEXT NOT NULL,
    app_id TEXT,
    detail TEXT
);
CREATE INDEX push_user_state ON push_requests(user_name, state);
CREATE TABLE badges (
    user_name TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    time BIGINT NOT NULL,
    app_id TEXT NOT NULL
);
ALTER TABLE tokens ADD COLUMN app_id TEXT
"#,
    // 3: smartcards (the certificate of a `smartcard` token; one-time enrollment codes)
    r#"
CREATE TABLE smartcards (
    token_id TEXT PRIMARY KEY REFERENCES tokens(id) ON DELETE CASCADE,
    user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    fingerprint TEXT NOT NULL UNIQUE,
    cert_der TEXT NOT NULL,
    subject TEXT NOT NULL,
    issuer TEXT NOT NULL,
    not_before BIGINT NOT NULL,
    not_after BIGINT NOT NULL
);
CREATE INDEX smartcards_user ON smartcards(user_name);
CREATE TABLE smartcard_codes (
    code_hash TEXT PRIMARY KEY,
    user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
)
"#,
    // 4: FIDO2 security keys
    r#"
CREATE TABLE fido2_credentials (
    id TEXT PRIMARY KEY,
    user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    credential_id TEXT NOT NULL UNIQUE,
    public_key TEXT NOT NULL,
    alg BIGINT NOT NULL,
    sign_count BIGINT NOT NULL,
    uv_registered BIGINT NOT NULL,
    aaguid TEXT NOT NULL,
    rp_id TEXT NOT NULL,
    label TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE INDEX fido2_credentials_user ON fido2_credentials(user_name);
CREATE TABLE fido2_registrations (
    code_hash TEXT PRIMARY KEY,
    user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    label TEXT NOT NULL,
    challenge TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE TABLE fido2_login_challenges (
    tx_id TEXT PRIMARY KEY,
    challenge TEXT NOT NULL,
    rp_id TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX fido2_login_challenges_expires ON fido2_login_challenges(expires_at)
"#,
    // 5: offline bundles handed out, and bundles agents must wipe (see store/offline.rs)
    r#"
CREATE TABLE offline_issued (
    machine_id TEXT NOT NULL,
    user_name TEXT NOT NULL,
    bundle_id TEXT NOT NULL,
    issued_at BIGINT NOT NULL,
    not_after BIGINT NOT NULL,
    PRIMARY KEY (machine_id, user_name)
);
CREATE INDEX offline_issued_user ON offline_issued(user_name);
CREATE TABLE offline_forget (
    machine_id TEXT NOT NULL,
    user_name TEXT NOT NULL,
    requested_at BIGINT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (machine_id, user_name)
)
"#,
    // 6: agent events and the sessions derived from them
    r#"
CREATE TABLE events (
    seq @AUTOID@,
    id TEXT NOT NULL UNIQUE,
    machine_id TEXT NOT NULL,
    hostname TEXT NOT NULL,
    time_ms BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    user_name TEXT,
    session_id TEXT,
    client_id TEXT,
    body TEXT NOT NULL
);
CREATE INDEX events_time ON events(time_ms);
CREATE INDEX events_user_time ON events(user_name, time_ms);
CREATE INDEX events_machine_time ON events(machine_id, time_ms);
CREATE INDEX events_received ON events(received_at);
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    machine_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    user_name TEXT NOT NULL,
    service TEXT,
    client_id TEXT,
    rhost TEXT,
    opened_at BIGINT NOT NULL,
    closed_at BIGINT,
    locked_at BIGINT
);
CREATE INDEX sessions_machine ON sessions(machine_id, session_id);
CREATE INDEX sessions_open_user ON sessions(closed_at, user_name)
"#,
    // 7: login transactions keyed by their id alone (SQLite: no separate rowid B-tree, one
    // page write less per login). Transactions live two minutes: the ones in flight during
    // the upgrade are dropped and those logins start again.
    r#"
DROP TABLE login_tx;
CREATE TABLE login_tx (
    id TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    client_id TEXT NOT NULL,
    machine_id TEXT NOT NULL,
    rhost TEXT,
    tty TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    done BIGINT NOT NULL DEFAULT 0
)@WITHOUT_ROWID@;
CREATE INDEX login_tx_expires ON login_tx(expires_at)
"#,
    // 8: a user's tokens by kind: the counts read at every login start come from the index
    // alone (OATH tokens and smartcards are counted apart); it also serves lookups by user.
    r#"
CREATE INDEX tokens_user_kind ON tokens(user_name, kind);
DROP INDEX tokens_user
"#,
    // 9: no index on login_tx's expiry to update at every login: transaction ids now begin
    // with their creation time in an alphabet that keeps its order, and the purge deletes a
    // range of ids. Transactions in flight during the upgrade (old ids, which would sort
    // after every new one) are dropped: those logins start again.
    r#"
DELETE FROM login_tx;
DROP INDEX login_tx_expires
"#,
    // 10: inline enrolment (docs/enrollment.md): a pending enrolment belongs to a login
    // transaction; at most one is open per user (the partial unique index); grace logins
    // are counted per user.
    r#"
CREATE TABLE enrolments (
    tx_id TEXT PRIMARY KEY,
    user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    machine_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    methods TEXT NOT NULL,
    method TEXT,
    secret_sealed TEXT,
    app_code_hash TEXT,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX enrolments_one_open ON enrolments(user_name) WHERE state = 'open';
CREATE INDEX enrolments_app_code ON enrolments(app_code_hash);
CREATE TABLE enrol_grace (
    user_name TEXT PRIMARY KEY REFERENCES users(name) ON DELETE CASCADE,
    used BIGINT NOT NULL
)
"#,
    // 11: the web console (issue 23): sessions of browsers, kept by the SHA-256 of their
    // cookie, and admin accounts (password hash, sealed TOTP secret, lockout).
    r#"
CREATE TABLE web_sessions (
    cookie_hash TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    strength TEXT NOT NULL,
    csrf TEXT NOT NULL,
    ip TEXT NOT NULL,
    flash TEXT,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX web_sessions_expires ON web_sessions(expires_at);
CREATE INDEX web_sessions_subject ON web_sessions(kind, subject);
CREATE TABLE admins (
    name TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    totp_sealed TEXT NOT NULL,
    totp_last_step BIGINT NOT NULL DEFAULT 0,
    failures BIGINT NOT NULL DEFAULT 0,
    locked_until BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    last_signin_at BIGINT
)
"#,
    // 12: the self-service portal (docs/web.md): one-time invite links (only the code's
    // SHA-256 is kept; one open invite per user), and an authenticator a user is enrolling
    // for themself, kept until its first code confirms it (one per user).
    r#"
CREATE TABLE invites (
    code_hash TEXT PRIMARY KEY,
    user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX invites_user ON invites(user_name);
CREATE TABLE self_totp (
    user_name TEXT PRIMARY KEY REFERENCES users(name) ON DELETE CASCADE,
    id TEXT NOT NULL,
    secret_sealed TEXT NOT NULL,
    label TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
)
"#,
    // 13: when an admin's last sign-in attempt was counted, so that failures older than
    // the lock window stop counting (Store::admin_attempt).
    r#"
ALTER TABLE admins ADD COLUMN failed_at BIGINT NOT NULL DEFAULT 0
"#,
    // 14: the portal sign-in's own lockout (docs/web.md "Self-service portal"): its failures
    // never count toward the login lockout (`failures`, `locked_until`), which only an
    // answer at a login screen moves.
    r#"
ALTER TABLE users ADD COLUMN web_failures BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN web_locked_until BIGINT NOT NULL DEFAULT 0
"#,
];

fn dialect(sql: &str, backend: Backend) -> String {
    match backend {
        Backend::Sqlite => sql
            .replace("@AUTOID@", "INTEGER PRIMARY KEY AUTOINCREMENT")
            .replace("@WITHOUT_ROWID@", " WITHOUT ROWID"),
    }
}

pub(super) async fn migrate(store: &Store) -> Result<()> {
    let pool = store.writer();
    query("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
        .execute(pool)
        .await?;
    let current: Option<i64> = query_scalar("SELECT MAX(version) FROM schema_version")
        .fetch_one(pool)
        .await?;
    let current = current.unwrap_or(0);
    for (i, migration) in MIGRATIONS.iter().enumerate() {
        let version = i as i64 + 1;
        if version <= current {
            continue;
        }
        let statements: Vec<_> = dialect(migration, store.backend())
            .split(';')
            .filter(|s| !s.trim().is_empty())
            .map(|s| query(s.to_string()))
            .collect();
        pool.transaction(false, move |c| {
            for q in &statements {
                q.execute_on(c)?;
            }
            query("INSERT INTO schema_version (version) VALUES ($1)")
                .bind(version)
                .execute_on(c)?;
            Ok(())
        })
        .await?;
        tracing::info!(version, "database schema migrated");
    }
    Ok(())
}
