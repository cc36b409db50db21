//! Bad input, credentials, the admin API and the store at rest, against a real latchkeyd.

use latchkey_client::{Credential, Method as HttpMethod, StatusCode};
use latchkey_proto::TokenKind;
use latchkey_proto::admin::{AuditEntry, OtpTokenCreate, Policy, TokenInfo, User};
use latchkey_proto::login::{LoginStart, LoginStartResult};
use latchkey_proto::machine::{JoinRequest, JoinResponse};
use latchkey_testkit::{TestServer, totp_now};
use serde_json::{Value, json};

use latchkey_testkit::raw_http::raw;

fn assert_clear_error(status: u16, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"], want_code, "{body}");
    let msg = body["message"].as_str().unwrap_or("");
    assert!(
        !msg.is_empty() && !msg.contains('\n'),
        "message must be one clear line: {body}"
    );
}

#[tokio::test]
async fn malformed_and_oversized_requests_get_a_clear_4xx() {
    let srv = TestServer::start().await.unwrap();
    let (join, _) = srv.join_machine("ws1").await.unwrap();
    let key = join.api_key.as_str();
    let admin = srv.admin_token.as_str();
    let json_ct = "application/json";

    let (s, b) = raw(
        &srv,
        key,
        "POST",
        "/v1/login/start",
        b"{\"user\": \"alice\", ",
        json_ct,
    )
    .await;
    assert_clear_error(s, &b, 400, "malformed_json");
    let (s, b) = raw(
        &srv,
        key,
        "POST",
        "/v1/login/start",
        b"\xff\xfe\x00garbage",
        json_ct,
    )
    .await;
    assert_clear_error(s, &b, 400, "malformed_json");
    let (s, b) = raw(
        &srv,
        key,
        "POST",
        "/v1/login/start",
        br#"{"user": 42, "client_id": "login"}"#,
        json_ct,
    )
    .await;
    assert_clear_error(s, &b, 400, "invalid_request");
    let (s, b) = raw(
        &srv,
        key,
        "POST",
        "/v1/login/start",
        br#"{"user": "a", "client_id": "login", "evil": 1}"#,
        json_ct,
    )
    .await;
    assert_clear_error(s, &b, 400, "invalid_request");
    let (s, b) = raw(
        &srv,
        key,
        "POST",
        "/v1/login/start",
        br#"{"user": "a"}"#,
        "text/plain",
    )
    .await;
    assert_clear_error(s, &b, 415, "unsupported_media_type");
    let big = format!(
        "{{\"user\": \"{}\", \"client_id\": \"login\"}}",
        "a".repeat(200_000)
    );
    let (s, b) = raw(
        &srv,
        key,
        "POST",
        "/v1/login/start",
        big.as_bytes(),
        json_ct,
    )
    .await;
    assert_clear_error(s, &b, 413, "payload_too_large");
    let (s, b) = raw(
        &srv,
        key,
        "POST",
        "/v1/login/start",
        br#"{"user": "a b", "client_id": "login"}"#,
        json_ct,
    )
    .await;
    assert_clear_error(s, &b, 400, "invalid_request");
    let (s, b) = raw(
        &srv,
        key,
        "POST",
        "/v1/login/start",
        br#"{"user": "alice", "client_id": "no-such-context"}"#,
        json_ct,
    )
    .await;
    assert_clear_error(s, &b, 400, "unknown_client_id");
    let (s, b) = raw(
        &srv,
        key,
        "POST",
        "/v1/login/start",
        br#"{"user": "alice", "client_id": "bad id!"}"#,
        json_ct,
    )
    .await;
    assert_clear_error(s, &b, 400, "invalid_request");
    let (s, b) = raw(&srv, admin, "GET", "/v1/nothing/here", b"", json_ct).await;
    assert_clear_error(s, &b, 404, "not_found");
    let (s, b) = raw(&srv, admin, "PUT", "/v1/admin/users", b"{}", json_ct).await;
    assert_clear_error(s, &b, 405, "method_not_allowed");
    let (s, b) = raw(
        &srv,
        admin,
        "GET",
        "/v1/admin/audit?since=yesterday",
        b"",
        json_ct,
    )
    .await;
    assert_clear_error(s, &b, 400, "invalid_request");

    // Bad base32 when importing a token seed.
    let (s, b) = raw(
        &srv,
        admin,
        "POST",
        "/v1/admin/users",
        br#"{"name": "alice"}"#,
        json_ct,
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = raw(
        &srv,
        admin,
        "POST",
        "/v1/admin/users/alice/tokens",
        br#"{"kind": "totp", "secret": "not base32!!"}"#,
        json_ct,
    )
    .await;
    assert_clear_error(s, &b, 400, "bad_secret");
    let (s, b) = raw(
        &srv,
        admin,
        "POST",
        "/v1/admin/users/alice/tokens",
        br#"{"kind": "totp", "digits": 12}"#,
        json_ct,
    )
    .await;
    assert_clear_error(s, &b, 400, "invalid_request");
    let (s, b) = raw(
        &srv,
        admin,
        "POST",
        "/v1/admin/users/alice/tokens",
        br#"{"kind": "motp"}"#,
        json_ct,
    )
    .await;
    assert_clear_error(s, &b, 400, "invalid_request");
    let (s, b) = raw(
        &srv,
        admin,
        "PATCH",
        "/v1/admin/policies/login",
        br#"{"settings": {"mfa_required": "perhaps"}}"#,
        json_ct,
    )
    .await;
    assert_clear_error(s, &b, 400, "invalid_request");
    assert!(
        b["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("mfa_required:"),
        "{b}"
    );

    // The server is still fine after all that.
    let health: Value = srv.anonymous().unwrap().get("/healthz").await.unwrap();
    assert_eq!(health["status"], "ok");
}

#[tokio::test]
async fn machine_endpoints_need_a_valid_machine_key_and_admin_endpoints_refuse_it() {
    let srv = TestServer::start().await.unwrap();
    let (join, m) = srv.join_machine("ws1").await.unwrap();
    let req = LoginStart {
        user: "alice".parse().unwrap(),
        client_id: "login".parse().unwrap(),
        rhost: None,
        tty: None,
        enroll: false,
    };

    let none = srv.anonymous().unwrap();
    let e = none
        .post::<_, LoginStartResult>("/v1/login/start", &req)
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(StatusCode::UNAUTHORIZED), "{e}");
    let wrong = srv
        .client(Credential::Bearer("lkm_notarealkey".into()))
        .unwrap();
    let e = wrong
        .post::<_, LoginStartResult>("/v1/login/start", &req)
        .await
        .unwrap_err();
    assert_eq!(
        (e.status(), e.api_code()),
        (Some(StatusCode::UNAUTHORIZED), Some("unauthorized")),
        "{e}"
    );
    // Admin key on a machine endpoint: refused too.
    let e = srv
        .admin()
        .unwrap()
        .post::<_, LoginStartResult>("/v1/login/start", &req)
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(StatusCode::FORBIDDEN), "{e}");

    // Machine key on admin endpoints: 403 on every one of them.
    for (method, path) in [
        ("GET", "/v1/admin/users"),
        ("POST", "/v1/admin/users"),
        ("GET", "/v1/admin/policies"),
        ("PATCH", "/v1/admin/policies/login"),
        ("GET", "/v1/admin/machines"),
        ("POST", "/v1/admin/join-tokens"),
        ("GET", "/v1/admin/audit"),
        ("DELETE", "/v1/admin/tokens/x"),
    ] {
        let method = HttpMethod::from_bytes(method.as_bytes()).unwrap();
        let e = m
            .request(method.clone(), path, Some(json!({})))
            .await
            .unwrap_err();
        assert_eq!(
            e.status(),
            Some(StatusCode::FORBIDDEN),
            "{method} {path}: {e}"
        );
    }
    // Removing the machine revokes its key.
    srv.admin()
        .unwrap()
        .delete(&format!("/v1/admin/machines/{}", join.machine_id))
        .await
        .unwrap();
    let e = m
        .post::<_, LoginStartResult>("/v1/login/start", &req)
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(StatusCode::UNAUTHORIZED), "{e}");
}

#[tokio::test]
async fn join_tokens_are_single_use_and_expire() {
    let srv = TestServer::start().await.unwrap();
    let token = srv.join_token().await.unwrap();
    let anon = srv.anonymous().unwrap();
    let req = JoinRequest {
        join_token: token.clone(),
        hostname: "ws1".into(),
        client_cert_sha256: None,
    };
    let joined: JoinResponse = anon.post("/v1/machines/join", &req).await.unwrap();
    assert_eq!(joined.tls_fingerprint, srv.info.tls_fingerprint);
    assert_eq!(joined.signing_public_key, srv.info.signing_public_key);
    let e = anon
        .post::<_, JoinResponse>("/v1/machines/join", &req)
        .await
        .unwrap_err();
    assert_eq!(e.api_code(), Some("invalid_join_token"), "{e}");
    let e = anon
        .post::<_, JoinResponse>(
            "/v1/machines/join",
            &JoinRequest {
                join_token: "lkj_made_up".into(),
                ..req.clone()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.api_code(), Some("invalid_join_token"), "{e}");
    let machines: Vec<latchkey_proto::admin::Machine> = srv
        .admin()
        .unwrap()
        .get("/v1/admin/machines")
        .await
        .unwrap();
    assert_eq!(machines.len(), 1);
    assert_eq!(machines[0].hostname, "ws1");

    // An expired token is refused like a used one.
    let created: latchkey_proto::admin::JoinTokenCreated = srv
        .admin()
        .unwrap()
        .post(
            "/v1/admin/join-tokens",
            &latchkey_proto::admin::JoinTokenCreate {
                expires_in: 1,
                note: None,
            },
        )
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let e = anon
        .post::<_, JoinResponse>(
            "/v1/machines/join",
            &JoinRequest {
                join_token: created.join_token,
                ..req
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.api_code(), Some("invalid_join_token"), "{e}");
}

#[tokio::test]
async fn otp_secrets_are_not_in_the_database_in_plaintext() {
    let mut srv = TestServer::start().await.unwrap();
    srv.add_user("alice", &[]).await.unwrap();
    let mut secrets = Vec::new();
    for kind in [TokenKind::Totp, TokenKind::Hotp, TokenKind::Totp] {
        let (_, uri) = srv.add_token("alice", kind).await.unwrap();
        secrets.push(uri.secret.to_vec());
    }
    // Flush the WAL into the main file so both are examined as they rest on disk.
    srv.stop().await;
    let mut bytes = std::fs::read(srv.db_path()).unwrap();
    if let Ok(wal) = std::fs::read(srv.db_path().with_extension("db-wal")) {
        bytes.extend(wal);
    }
    assert!(bytes.len() > 4096);
    for s in &secrets {
        let b32 = latchkey_crypto::base32_encode(s);
        let hex = data_encoding::HEXLOWER.encode(s);
        let b64 = base64_std(s);
        for needle in [
            s.as_slice(),
            b32.as_bytes(),
            b32.to_ascii_lowercase().as_bytes(),
            hex.as_bytes(),
            b64.as_bytes(),
        ] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "a secret is stored in plaintext"
            );
        }
    }
    // The admin token and machine keys are stored hashed only.
    let token = srv.admin_token.clone();
    assert!(!bytes.windows(token.len()).any(|w| w == token.as_bytes()));
    // The key files are owner-only.
    use std::os::unix::fs::PermissionsExt;
    for f in [
        "master.key",
        "signing.key",
        "tls.key",
        "tls.crt",
        "admin.token",
        "latchkey.db",
    ] {
        let mode = std::fs::metadata(srv.data_dir().join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    // And after a restart the sealed secrets still open.
    srv.restart().await.unwrap();
    let tokens: Vec<TokenInfo> = srv
        .admin()
        .unwrap()
        .get("/v1/admin/users/alice/tokens")
        .await
        .unwrap();
    assert_eq!(tokens.len(), 3);
}

fn base64_std(data: &[u8]) -> String {
    data_encoding::BASE64.encode(data)
}

#[tokio::test]
async fn admin_api_users_tokens_policies_and_audit() {
    let srv = TestServer::start().await.unwrap();
    let admin = srv.admin().unwrap();
    srv.add_user("alice", &["staff", "ops"]).await.unwrap();
    let e = admin
        .post::<_, User>(
            "/v1/admin/users",
            &latchkey_proto::admin::UserCreate {
                name: "alice".into(),
                display_name: None,
                groups: vec![],
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(StatusCode::CONFLICT));
    // Import a known seed (RFC 6238 test key) as an 8-digit SHA256 token.
    let req = OtpTokenCreate {
        kind: TokenKind::Totp,
        algorithm: Some(latchkey_proto::OtpAlgorithm::Sha256),
        digits: Some(8),
        period: Some(60),
        label: Some("hardware".into()),
        secret: Some(latchkey_crypto::base32_encode(
            b"12345678901234567890123456789012",
        )),
    };
    let enrolled: latchkey_proto::admin::TokenEnrolled = admin
        .post("/v1/admin/users/alice/tokens", &req)
        .await
        .unwrap();
    let uri = latchkey_crypto::otpauth::OtpAuthUri::parse(&enrolled.otpauth_uri).unwrap();
    assert_eq!(
        (uri.digits, uri.period, uri.algorithm),
        (8, 60, latchkey_proto::OtpAlgorithm::Sha256)
    );
    let v: latchkey_proto::admin::VerifyResult = admin
        .post(
            "/v1/admin/users/alice/verify",
            &latchkey_proto::admin::VerifyRequest {
                code: totp_now(&uri).into(),
            },
        )
        .await
        .unwrap();
    assert!(v.ok, "{v:?}");
    let v: latchkey_proto::admin::VerifyResult = admin
        .post(
            "/v1/admin/users/alice/verify",
            &latchkey_proto::admin::VerifyRequest {
                code: totp_now(&uri).into(),
            },
        )
        .await
        .unwrap();
    assert!(!v.ok && v.message.contains("already used"), "{v:?}");

    let user: User = admin.get("/v1/admin/users/alice").await.unwrap();
    assert_eq!((user.groups.len(), user.token_count), (2, 1));
    let policies: Vec<Policy> = admin.get("/v1/admin/policies").await.unwrap();
    let ids: Vec<&str> = policies.iter().map(|p| p.client_id.as_str()).collect();
    assert_eq!(ids, ["*", "elevation", "login", "remote", "unlock"]);
    assert!(
        policies
            .iter()
            .all(|p| p.mfa_required && p.failmode == latchkey_proto::admin::FailMode::Closed)
    );
    // `*` carries defaults to the others; a client's own setting wins; `key=` unsets.
    srv.set_policy("*", &[("offline.max_days", "3")])
        .await
        .unwrap();
    let p = srv
        .set_policy("remote", &[("offline.enabled", "false")])
        .await
        .unwrap();
    assert_eq!((p.offline.max_days, p.offline.enabled), (3, false));
    let p = srv
        .set_policy("remote", &[("offline.enabled", "")])
        .await
        .unwrap();
    assert!(p.offline.enabled);
    let p = srv
        .set_policy("vpn", &[("methods", "otp,push")])
        .await
        .unwrap();
    assert_eq!(p.client_id, "vpn");

    srv.admin()
        .unwrap()
        .delete(&format!("/v1/admin/tokens/{}", enrolled.token.id))
        .await
        .unwrap();
    srv.admin()
        .unwrap()
        .delete("/v1/admin/users/alice")
        .await
        .unwrap();
    let e = admin
        .get::<User>("/v1/admin/users/alice")
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(StatusCode::NOT_FOUND));

    let audit: Vec<AuditEntry> = admin.get("/v1/admin/audit").await.unwrap();
    let actions: Vec<&str> = audit.iter().map(|a| a.action.as_str()).collect();
    for want in [
        "user.add",
        "token.add",
        "token.verify",
        "policy.set",
        "token.remove",
        "user.remove",
    ] {
        assert!(actions.contains(&want), "{want} missing from {actions:?}");
    }
    assert!(
        audit
            .iter()
            .all(|a| !a.detail.contains(&enrolled.otpauth_uri))
    );
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let srv = TestServer::start().await.unwrap();
    let anon = srv.anonymous().unwrap();
    let (_, m) = srv.join_machine("ws1").await.unwrap();
    srv.add_user("alice", &[]).await.unwrap();
    let _: LoginStartResult = m
        .post(
            "/v1/login/start",
            &LoginStart {
                user: "alice".parse().unwrap(),
                client_id: "login".parse().unwrap(),
                rhost: None,
                tty: None,
                enroll: false,
            },
        )
        .await
        .unwrap();
    let ready: Value = anon.get("/readyz").await.unwrap();
    assert_eq!(ready["status"], "ready");
    let (status, body) = anon
        .request(HttpMethod::GET, "/metrics", None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("latchkey_logins_total{step=\"start\",result=\"deny\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("latchkey_login_duration_seconds_count{step=\"start\"} 1"),
        "{text}"
    );
    assert!(text.contains("latchkey_users 1"), "{text}");
    // The writer has committed the join, the user and the audit records, and says for how
    // long it was busy doing so.
    let metric = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    assert!(metric("latchkey_db_commits_total") >= 2.0, "{text}");
    assert!(
        metric("latchkey_db_writes_total") >= metric("latchkey_db_commits_total"),
        "{text}"
    );
    let busy = metric("latchkey_db_writer_busy_seconds_total");
    assert!(busy > 0.0 && busy < 60.0, "{text}");
}
