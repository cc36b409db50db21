//! The Windows credential provider under Wine: a real latchkeyd on 127.0.0.1, the real
//! `latchkey-agent.exe` serving its named pipe under Wine, and `logonui-sim.exe` loading
//! `latchkey_cp.dll` as LogonUI does (DllGetClassObject, SetUsageScenario, Advise,
//! GetCredentialAt, SetStringValue, GetSerialization) and parsing the serialized credential.
//!
//! These tests need the Windows build: `scripts/test` runs `scripts/windows-toolchain build`
//! and then them with `--run-ignored only`. They share one Wine prefix (one pipe name), so a
//! file lock runs them one at a time.

use super::wine::*;
use latchkey_testkit::token_cli::TokenCli;
use latchkey_testkit::{TestServer, hotp_at};

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the Windows build and Wine: scripts/test runs it"]
async fn correct_code_returns_a_packed_logon_credential() {
    let w = win();
    let server = TestServer::start().await.unwrap();
    let uri = user_with_hotp(&server, "alice").await;
    let _agent = w.agent(&server).await;
    let code = hotp_at(&uri, 0);
    let r = w.sim(&["login", "logon", "alice", PASSWORD, &code]).await;

    assert_eq!(r["descriptors"].as_array().unwrap().len(), 10, "{r}");
    assert_eq!(r["tile"]["v2"], true, "ICredentialProviderCredential2: {r}");
    assert_eq!(r["tile"]["autologon"], false);
    assert_eq!(r["tile"]["tile_bitmap"][0], 128, "the logo tile image: {r}");
    let s = &r["submits"][0];
    assert_eq!(s["response"], "CPGSR_RETURN_CREDENTIAL_FINISHED", "{r}");
    let c = &s["credential"];
    assert_eq!(c["format"], "kerb_interactive_unlock_logon", "{r}");
    assert_eq!(c["message_type"], 2, "KerbInteractiveLogon: {r}");
    assert_eq!(c["user"], "alice");
    assert_eq!(c["password"], PASSWORD);
    assert!(
        !c["domain"].as_str().unwrap().is_empty(),
        "local accounts carry the computer name: {r}"
    );
    assert_eq!(
        c["clsid"].as_str().unwrap().to_lowercase(),
        "f4efd6f9-775c-4541-9dcb-303661afb99d"
    );
    assert_eq!(server.login_count("otp", "success").await.unwrap(), 1);
    assert_eq!(client_ids(&server, "alice").await, ["login"]);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the Windows build and Wine: scripts/test runs it"]
async fn wrong_code_gives_no_credential_and_the_agents_message() {
    let w = win();
    let server = TestServer::start().await.unwrap();
    let uri = user_with_hotp(&server, "bob").await;
    let _agent = w.agent(&server).await;
    let right = hotp_at(&uri, 0);
    // Two Submits on one tile: a wrong code, then the right one in the same conversation.
    let r = w
        .sim(&["login", "logon", "bob", PASSWORD, &wrong(&right), &right])
        .await;

    let first = &r["submits"][0];
    assert_ne!(first["response"], "CPGSR_RETURN_CREDENTIAL_FINISHED", "{r}");
    assert!(first["credential"].is_null(), "{r}");
    let status = first["status"].as_str().unwrap();
    assert!(
        status.starts_with("Code rejected"),
        "the server's words as status text: {r}"
    );
    assert_eq!(r["info"], status, "and on the info line: {r}");
    assert!(
        r["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "field_string" && e["field"] == 2 && e["value"] == status),
        "LogonUI told through ICredentialProviderCredentialEvents: {r}"
    );
    let second = &r["submits"][1];
    assert_eq!(
        second["response"], "CPGSR_RETURN_CREDENTIAL_FINISHED",
        "{r}"
    );
    assert_eq!(second["credential"]["user"], "bob");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the Windows build and Wine: scripts/test runs it"]
async fn denied_login_finishes_without_credential() {
    let w = win();
    let server = TestServer::start().await.unwrap();
    user_with_hotp(&server, "carol").await;
    let _agent = w.agent(&server).await;
    // An unknown user is refused at once by the server.
    let r = w
        .sim(&["login", "logon", "mallory", PASSWORD, "123456"])
        .await;
    let s = &r["submits"][0];
    assert_eq!(s["response"], "CPGSR_NO_CREDENTIAL_FINISHED", "{r}");
    assert!(s["credential"].is_null());
    assert_eq!(s["icon"], "error");
    assert!(
        s["status"].as_str().unwrap().contains("Login refused"),
        "{r}"
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the Windows build and Wine: scripts/test runs it"]
async fn unlock_serializes_a_workstation_unlock_logon() {
    let w = win();
    let server = TestServer::start().await.unwrap();
    let uri = user_with_hotp(&server, "dave").await;
    let _agent = w.agent(&server).await;
    let r = w
        .sim(&[
            "login",
            "unlock",
            "WINEHOST\\dave",
            PASSWORD,
            &hotp_at(&uri, 0),
        ])
        .await;
    let c = &r["submits"][0]["credential"];
    assert_eq!(c["message_type"], 7, "KerbWorkstationUnlockLogon: {r}");
    assert_eq!(c["domain"], "WINEHOST", "{r}");
    assert_eq!(c["user"], "dave");
    assert_eq!(c["password"], PASSWORD);
    assert_eq!(
        client_ids(&server, "dave").await,
        ["unlock"],
        "the domain is not part of the MFA name"
    );
}

/// CredUI (UAC) maps to `elevation` and packs with CredPackAuthenticationBufferW, as
/// Microsoft's CredUI sample provider does. Wine 8's CredPackAuthenticationBufferW is a stub,
/// so under Wine the tile packs the structure Windows' function produces itself (a
/// KERB_INTERACTIVE_UNLOCK_LOGON, KerbInteractiveLogon); the buffer is checked either way.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the Windows build and Wine: scripts/test runs it"]
async fn credui_elevation_runs_mfa_as_elevation_and_returns_a_packed_credential() {
    let w = win();
    let server = TestServer::start().await.unwrap();
    let uri = user_with_hotp(&server, "erin").await;
    let _agent = w.agent(&server).await;
    let r = w
        .sim(&["login", "credui", "erin", PASSWORD, &hotp_at(&uri, 0)])
        .await;
    assert_eq!(
        server.login_count("otp", "success").await.unwrap(),
        1,
        "MFA passed: {r}"
    );
    assert_eq!(client_ids(&server, "erin").await, ["elevation"]);
    let s = &r["submits"][0];
    assert_eq!(s["response"], "CPGSR_RETURN_CREDENTIAL_FINISHED", "{r}");
    let c = &s["credential"];
    assert!(c["error"].is_null(), "{r}");
    assert_eq!(c["password"], PASSWORD, "{r}");
    if c["format"] == "credui" {
        // A CredUnPackAuthenticationBufferW that works (Windows).
        assert!(c["user"].as_str().unwrap().ends_with("erin"), "{r}");
    } else {
        assert_eq!(c["format"], "kerb_interactive_unlock_logon", "{r}");
        assert_eq!(c["message_type"], 2, "KerbInteractiveLogon: {r}");
        assert_eq!(c["user"], "erin", "{r}");
        assert!(!c["domain"].as_str().unwrap().is_empty(), "{r}");
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the Windows build and Wine: scripts/test runs it"]
async fn no_agent_means_no_credential() {
    let w = win();
    // No agent runs in the prefix: the tile must refuse, not fall back to the password.
    let r = w
        .sim(&["login", "logon", "alice", PASSWORD, "123456"])
        .await;
    let s = &r["submits"][0];
    assert_eq!(s["response"], "CPGSR_NO_CREDENTIAL_FINISHED", "{r}");
    assert!(s["credential"].is_null());
    assert!(
        s["status"]
            .as_str()
            .unwrap()
            .contains("agent is not available"),
        "{r}"
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the Windows build and Wine: scripts/test runs it"]
async fn filter_hides_the_password_providers() {
    let w = win();
    let r = w.sim(&["filter"]).await;
    for scenario in ["logon", "unlock", "credui"] {
        let s = &r[scenario];
        assert_eq!(s["password_v2"], false, "{scenario}: {r}");
        assert_eq!(s["password_v1"], false, "{scenario}: {r}");
        assert_eq!(s["latchkey"], true, "{scenario}: {r}");
    }
    // Changing a password is left to Windows: the filter does not touch that scenario.
    assert_eq!(r["change_password"]["password_v2"], true, "{r}");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the Windows build and Wine: scripts/test runs it"]
async fn rdp_credential_goes_through_the_tile_as_remote() {
    let w = win();
    let server = TestServer::start().await.unwrap();
    let uri = user_with_hotp(&server, "frank").await;
    let _agent = w.agent(&server).await;
    let code = hotp_at(&uri, 0);
    let r = w.sim(&["remote", "frank", PASSWORD, &code]).await;
    assert_eq!(
        r["redirected_to"].as_str().unwrap().to_lowercase(),
        "f4efd6f9-775c-4541-9dcb-303661afb99d",
        "{r}"
    );
    assert_eq!(r["redirected_same_bytes"], true, "{r}");
    assert!(
        r["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "credentials_changed" && e["context"] == 42),
        "{r}"
    );
    assert_eq!(r["tile"]["default"], 0, "our tile is the default: {r}");
    assert_eq!(
        r["tile"]["autologon"], false,
        "but never logs on by itself: {r}"
    );
    assert_eq!(r["prefilled_user"], "frank");
    let s = &r["submit"];
    assert_eq!(s["response"], "CPGSR_RETURN_CREDENTIAL_FINISHED", "{r}");
    assert_eq!(s["credential"]["user"], "frank");
    assert_eq!(s["credential"]["password"], PASSWORD);
    assert_eq!(
        server.login_count("otp", "success").await.unwrap(),
        1,
        "the code was checked"
    );
    assert_eq!(client_ids(&server, "frank").await, ["remote"]);
}

/// The agent received an offline bundle at an online login through the tile; then the server
/// stops. The next Submit shows the QR challenge as the tile image, the real `latchkey-token`
/// reads that image (as a phone's camera would) and its code logs in.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the Windows build and Wine: scripts/test runs it"]
async fn server_stopped_the_offline_qr_tile_and_a_token_app_code_log_in() {
    let w = win();
    let mut server = TestServer::start().await.unwrap();
    server.add_user("grace", &[]).await.unwrap();
    let token = std::sync::Arc::new(TokenCli::register(&server, "grace").await.unwrap());
    let agent = w.agent(&server).await;

    // Online once, with the app's TOTP code: the agent stores the signed bundle.
    let t = token.clone();
    let code = tokio::task::spawn_blocking(move || t.totp().unwrap())
        .await
        .unwrap();
    let r = w.sim(&["login", "logon", "grace", PASSWORD, &code]).await;
    assert_eq!(
        r["submits"][0]["response"], "CPGSR_RETURN_CREDENTIAL_FINISHED",
        "{r}"
    );
    let bundles: i64 = agent
        .state_db()
        .query_row(
            "SELECT count(*) FROM offline_bundles WHERE user_name = 'grace'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(bundles, 1, "a bundle stored at the online login");
    server.stop().await;

    let mut s = w.session("logon");
    // Whatever was typed first cannot answer a challenge not shown yet.
    let first = s.submit("grace", PASSWORD, "").await;
    assert_eq!(
        first["response"], "CPGSR_NO_CREDENTIAL_NOT_FINISHED",
        "{first}"
    );
    assert!(first["credential"].is_null(), "{first}");
    assert_eq!(first["icon"], "warning", "{first}");
    assert_eq!(
        first["info"],
        latchkey_agent::offline::PROMPT_TEXT,
        "the instruction alone on the info line (the QR is the image): {first}"
    );
    assert_eq!(first["status"], first["info"]);
    // LogonUI was handed the QR as the tile image…
    let shown = s
        .events()
        .into_iter()
        .find(|e| e["event"] == "field_bitmap" && e["field"] == 0)
        .cloned()
        .unwrap_or_else(|| panic!("no SetFieldBitmap for the tile: {:?}", s.seen));
    assert!(shown["width"].as_i64().unwrap() >= 128, "{shown}");
    // …and GetBitmapValue (a repaint) draws it again.
    s.send(&["tile"]);
    let repaint = s.next("tile").await;

    // The person scans the picture with the token app (the real CLI reads the image).
    let mut codes = Vec::new();
    for dump in [&shown["dump"], &repaint["dump"]] {
        let png = s.png_of(dump);
        let t = token.clone();
        let out = tokio::task::spawn_blocking(move || {
            t.run(&["answer", "--image", png.to_str().unwrap()])
                .unwrap()
        })
        .await
        .unwrap();
        assert_eq!(
            out.code, 0,
            "the token app could not read the tile: {}",
            out.stderr
        );
        let mut lines = out.stdout.lines();
        let context = lines.next().unwrap().to_string();
        assert!(context.starts_with("grace@"), "{context}");
        assert!(context.contains(", login, "), "client_id login: {context}");
        codes.push(lines.next().unwrap().trim().to_string());
    }
    assert_eq!(codes[0], codes[1], "both pictures carry the same challenge");
    assert_eq!(codes[0].len(), 8, "{codes:?}");

    let second = s.submit("grace", PASSWORD, &codes[0]).await;
    assert_eq!(
        second["response"], "CPGSR_RETURN_CREDENTIAL_FINISHED",
        "{second} after {:?}",
        s.seen
    );
    let c = &second["credential"];
    assert_eq!(c["format"], "kerb_interactive_unlock_logon", "{second}");
    assert_eq!(c["message_type"], 2);
    assert_eq!(c["user"], "grace");
    assert_eq!(c["password"], PASSWORD);
    s.quit().await;

    let outcomes =
        latchkey_testkit::agent::offline_outcomes_in(&agent.dir.path().join("state")).unwrap();
    assert_eq!(
        outcomes
            .iter()
            .map(|(u, _, o, _)| (u.as_str(), o.as_str()))
            .collect::<Vec<_>>(),
        [("grace", "success")],
        "the offline login recorded: {outcomes:?}"
    );
}

/// The push link: an empty code asks the agent for a push; the number to match is on the
/// tile's info line while the Submit still waits, the phone (SoftApp) approves with it, and
/// the Submit returns the credential.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the Windows build and Wine: scripts/test runs it"]
async fn push_link_sends_a_push_and_the_approved_push_logs_in() {
    let w = win();
    let server = TestServer::start().await.unwrap();
    server.add_user("ivan", &[]).await.unwrap();
    let app = latchkey_testkit::token_app::SoftApp::register(&server, "ivan")
        .await
        .unwrap();
    let _agent = w.agent(&server).await;
    let mut s = w.session("logon");
    s.send(&["set", "user", "ivan"]);
    s.send(&["set", "password", PASSWORD]);
    s.send(&["set", "code", "123"]);
    // The link empties the code field and says what Submit will do.
    s.send(&["push"]);
    s.next("push").await;
    assert!(
        s.events()
            .iter()
            .any(|e| e["event"] == "field_string" && e["field"] == 5 && e["value"] == ""),
        "code field emptied: {:?}",
        s.seen
    );
    s.send(&["submit"]);
    // While the Submit waits for the phone, the number arrives on the info line.
    let number = loop {
        let e = s.next("event").await;
        if e["event"] == "field_string" && e["field"] == 2 {
            let text = e["value"].as_str().unwrap().to_string();
            if let Some(n) = text.split_whitespace().find_map(|w| {
                w.trim_matches(|c: char| !c.is_ascii_digit())
                    .parse::<u32>()
                    .ok()
            }) {
                break n;
            }
        }
    };
    let reqs = app.pending(10).await.unwrap();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(reqs[0].user, "ivan");
    assert_eq!(reqs[0].client_id, "login");
    let v = app.approve(&reqs[0], number).await.unwrap();
    assert!(v.ok, "{v:?}");
    let r = s.next("submit").await;
    assert_eq!(
        r["response"], "CPGSR_RETURN_CREDENTIAL_FINISHED",
        "{r} {:?}",
        s.seen
    );
    assert_eq!(r["credential"]["user"], "ivan");
    assert_eq!(r["credential"]["password"], PASSWORD);
    s.quit().await;
    let audit = server.audit("ivan").await.unwrap();
    assert!(
        audit.iter().any(|e| e.result == "ok"
            && e.client_id.as_deref() == Some("login")
            && (e.action.contains("push") || e.detail.contains("push"))),
        "the server recorded the approved push: {audit:?}"
    );
}

/// `HKLM\SOFTWARE\latchkey` overrides the client_id of a scenario and the agent's pipe name
/// (in a prefix of its own, so the other tests keep the defaults).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the Windows build and Wine: scripts/test runs it"]
async fn registry_overrides_the_client_id_and_the_pipe() {
    let w = win();
    let server = TestServer::start().await.unwrap();
    let uri = user_with_hotp(&server, "judy").await;
    let prefix = OwnPrefix::copy_of_test_prefix();
    let pipe = r"\\.\pipe\latchkey-agent-other";
    for (name, value) in [("ClientIdLogon", "elevation"), ("AgentPipe", pipe)] {
        let mut c = w.builtin(&prefix, "reg");
        c.args([
            "add",
            r"HKLM\SOFTWARE\latchkey",
            "/v",
            name,
            "/t",
            "REG_SZ",
            "/d",
            value,
            "/f",
        ]);
        let out = tokio::task::spawn_blocking(move || c.output())
            .await
            .unwrap()
            .unwrap();
        assert!(out.status.success(), "reg add {name}: {out:?}");
    }
    let _agent = w
        .agent_in(Some(&prefix), &server, &["--socket", pipe])
        .await;
    let mut s = w.session_in(Some(&prefix), "logon");
    let r = s.submit("judy", PASSWORD, &hotp_at(&uri, 0)).await;
    assert_eq!(r["response"], "CPGSR_RETURN_CREDENTIAL_FINISHED", "{r}");
    assert_eq!(
        r["credential"]["message_type"], 2,
        "still a logon credential: {r}"
    );
    s.quit().await;
    assert_eq!(
        client_ids(&server, "judy").await,
        ["elevation"],
        "a logon under the client_id from the registry"
    );
}
