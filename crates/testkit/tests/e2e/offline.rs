//! Offline login end to end: the real libpam loads pam_latchkey.so, which talks to a real
//! agent; a real latchkeyd issues the signed bundle at an online login and is then stopped;
//! the `latchkey-token` program (a separate process) answers the QR challenge the PAM
//! conversation showed.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use latchkey_agent::offline::PROMPT_TEXT;
use latchkey_proto::offline::{ForgetOffline, ForgetOfflineQueued};
use latchkey_testkit::TestServer;
use latchkey_testkit::pam_harness::{ConvMessage, MsgStyle, PamCode, PamHarness};
use latchkey_testkit::token_cli::TokenCli;
use std::sync::{Arc, Mutex};

use crate::support::offline::*;
use crate::support::run_blocking;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_login_answered_by_the_token_cli_after_one_online_login() {
    let s = offline_ready(&[]).await;
    let b = decoded(&s.agent, "alice");
    assert_eq!(b.user, "alice");
    assert!(
        b.client_ids.contains(&"login".to_string()),
        "{:?}",
        b.client_ids
    );
    assert_eq!((b.max_logins, b.max_failures), (10, 5), "policy defaults");
    assert_eq!(b.not_after - b.issued_at, 7 * 86_400);
    assert_eq!(b.apps.len(), 1);
    assert!(b.fido2.is_empty() && b.smartcards.is_empty());

    let context = Arc::new(Mutex::new(String::new()));
    let (token, ctx) = (s.token.clone(), context.clone());
    let (code, msgs) = offline_login(s.conf.clone(), "alice", move |payload| {
        let (c, code) = token.answer(payload).unwrap();
        *ctx.lock().unwrap() = c;
        assert_eq!(code.len(), 8, "{code}");
        code
    })
    .await;
    assert_eq!(code, PamCode::SUCCESS, "{msgs:?}");
    let infos: Vec<&ConvMessage> = msgs
        .iter()
        .filter(|m| m.style == MsgStyle::TextInfo)
        .collect();
    assert!(
        infos[0].text.starts_with(PROMPT_TEXT),
        "{:?}",
        infos[0].text
    );
    // The QR code: half blocks, within 80 columns, and with the message within 24 lines.
    let picture: Vec<&str> = infos[0].text.lines().skip(1).collect();
    assert!(
        picture.len() < 24,
        "{} lines with the message",
        picture.len() + 1
    );
    assert!(picture.iter().all(|l| l.chars().count() <= 80));
    assert!(
        picture
            .iter()
            .all(|l| l.chars().all(|c| "█▀▄ ".contains(c)))
    );
    assert!(infos[1].text.starts_with("LK1:"));
    let prompts: Vec<&str> = msgs
        .iter()
        .filter(|m| m.style.is_prompt())
        .map(|m| m.text.as_str())
        .collect();
    assert_eq!(prompts, vec!["Offline code:"]);
    let ctx = context.lock().unwrap().clone();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let host = host.trim().split('.').next().unwrap();
    assert!(
        ctx.starts_with(&format!("alice@{host}, login, expires ")),
        "{ctx}"
    );
    // Recorded for the event uploader.
    let outcomes: Vec<(String, String)> = s
        .agent
        .offline_outcomes()
        .unwrap()
        .into_iter()
        .filter(|o| o.0 == "alice")
        .map(|o| (o.2, o.1))
        .collect();
    assert_eq!(
        outcomes,
        vec![("success".to_string(), "app_qr".to_string())]
    );
}

/// Draws the payload as a QR code into a PNG (4 pixels a module, white quiet zone).
fn qr_png(payload: &str, path: &std::path::Path) {
    let code = qrcode::QrCode::with_error_correction_level(payload.as_bytes(), qrcode::EcLevel::L)
        .unwrap();
    let w = code.width();
    let colors = code.to_colors();
    let (scale, quiet) = (4, 4);
    let size = (w + 2 * quiet) * scale;
    let mut px = vec![255u8; size * size];
    for y in 0..w {
        for x in 0..w {
            if colors[y * w + x] == qrcode::Color::Dark {
                for dy in 0..scale {
                    for dx in 0..scale {
                        px[((y + quiet) * scale + dy) * size + (x + quiet) * scale + dx] = 0;
                    }
                }
            }
        }
    }
    let file = std::fs::File::create(path).unwrap();
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), size as u32, size as u32);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header().unwrap().write_image_data(&px).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_cli_reads_the_challenge_from_a_png_and_refuses_what_it_cannot_answer() {
    let s = offline_ready(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let png_path = dir.path().join("qr.png");
    let token = s.token.clone();
    let (code, msgs) = offline_login(s.conf.clone(), "alice", move |payload| {
        qr_png(payload, &png_path);
        let out = token
            .run(&["answer", "--image", png_path.to_str().unwrap()])
            .unwrap();
        assert_eq!(out.code, 0, "{}", out.stderr);
        let (_, typed) = token.answer(payload).unwrap();
        let code = out.stdout.lines().nth(1).unwrap().to_string();
        assert_eq!(code, typed, "the picture and the text give the same code");
        code
    })
    .await;
    assert_eq!(code, PamCode::SUCCESS, "{msgs:?}");

    // Another app (unknown key), garbage, and an expired challenge are refused in one line.
    let payload = msgs
        .iter()
        .find(|m| m.text.starts_with("LK1:"))
        .unwrap()
        .text
        .clone();
    let other = TokenCli::new().unwrap();
    let srv2 = TestServer::start().await.unwrap();
    srv2.add_user("alice", &[]).await.unwrap();
    let other_registered = TokenCli::register(&srv2, "alice").await.unwrap();
    drop(other);
    let p = payload.clone();
    let out = run_blocking(move || other_registered.run(&["answer", &p]).unwrap()).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("unknown key"), "{}", out.stderr);
    let token = s.token.clone();
    let out = run_blocking(move || token.run(&["answer", "LK1:NOT-A-CHALLENGE"]).unwrap()).await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .starts_with("latchkey-token: not a latchkey offline challenge"),
        "{}",
        out.stderr
    );
    let mut c = latchkey_crypto::challenge::from_text(&payload).unwrap();
    c.expires_at = 1_000_000;
    let expired = latchkey_crypto::challenge::to_text(&c).unwrap();
    let token = s.token.clone();
    let out = run_blocking(move || token.run(&["answer", &expired]).unwrap()).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("expired at"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_answer_is_refused() {
    let s = offline_ready(&[]).await;
    let used = Arc::new(Mutex::new(String::new()));
    let (token, u) = (s.token.clone(), used.clone());
    let (code, _) = offline_login(s.conf.clone(), "alice", move |p| {
        let c = token.answer(p).unwrap().1;
        *u.lock().unwrap() = c.clone();
        c
    })
    .await;
    assert_eq!(code, PamCode::SUCCESS);
    let old = used.lock().unwrap().clone();
    let (code, msgs) = offline_login(s.conf.clone(), "alice", move |_| old.clone()).await;
    assert_eq!(code, PamCode::AUTH_ERR);
    assert!(
        errors(&msgs)[0].starts_with("Offline code rejected"),
        "{msgs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_codes_wipe_the_bundle_at_max_failures() {
    let s = offline_ready(&[("offline.max_failures", "3")]).await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        let (code, msgs) = offline_login(s.conf.clone(), "alice", |_| WRONG.to_string()).await;
        assert_eq!(code, PamCode::AUTH_ERR);
        seen.push(errors(&msgs)[0].clone());
    }
    assert_eq!(
        seen[0],
        "Offline code rejected (2 more wrong codes disable offline login)"
    );
    assert_eq!(
        seen[1],
        "Offline code rejected (1 more wrong code disable offline login)"
    );
    assert_eq!(
        seen[2],
        "Offline code rejected: too many wrong codes, offline login for alice is disabled; log in once while connected"
    );
    assert!(stored_bundle(&s.agent, "alice").is_none(), "wiped");
    // Even the right code cannot help now: there is no challenge any more.
    let (code, msgs) = offline_login(s.conf.clone(), "alice", answered_by(s.token.clone())).await;
    assert_eq!(code, PamCode::AUTH_ERR);
    assert_eq!(
        errors(&msgs),
        vec!["No offline login is prepared for alice on this machine: log in once while connected"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_logins_are_counted_and_the_last_one_says_reconnect() {
    let s = offline_ready(&[("offline.max_logins", "2")]).await;
    let (code, msgs) = offline_login(s.conf.clone(), "alice", answered_by(s.token.clone())).await;
    assert_eq!(code, PamCode::SUCCESS, "{msgs:?}");
    let (code, _) = offline_login(s.conf.clone(), "alice", answered_by(s.token.clone())).await;
    assert_eq!(code, PamCode::SUCCESS);
    assert!(stored_bundle(&s.agent, "alice").is_none(), "used up");
    let (code, msgs) = offline_login(s.conf.clone(), "alice", answered_by(s.token.clone())).await;
    assert_eq!(code, PamCode::AUTH_ERR);
    assert!(errors(&msgs)[0].starts_with("No offline login is prepared for alice"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_the_stored_bundle_is_refused() {
    let s = offline_ready(&[]).await;
    let (payload, _) = stored_bundle(&s.agent, "alice").unwrap();
    let mut raw = B64.decode(&payload).unwrap();
    // Flip one bit inside the JSON (max_failures 5 → 4 keeps it valid JSON and base64).
    let at = String::from_utf8(raw.clone())
        .unwrap()
        .find("\"max_failures\":5")
        .unwrap()
        + 15;
    raw[at] ^= 0x01;
    s.agent
        .state_db()
        .unwrap()
        .execute(
            "UPDATE offline_bundles SET payload = ?1",
            [B64.encode(&raw)],
        )
        .unwrap();
    let (code, msgs) = offline_login(s.conf.clone(), "alice", answered_by(s.token.clone())).await;
    assert_eq!(code, PamCode::AUTH_ERR);
    assert_eq!(
        errors(&msgs),
        vec![
            "The offline login data for alice on this machine is not valid: log in once while connected"
        ]
    );
    assert!(
        stored_bundle(&s.agent, "alice").is_none(),
        "a damaged bundle is wiped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_signed_by_another_server_is_refused() {
    let s = offline_ready(&[]).await;
    let (payload, _) = stored_bundle(&s.agent, "alice").unwrap();
    // The same bytes, signed by a key the agent did not pin at join.
    let other = latchkey_crypto::keys::SigningKeyPair::generate().unwrap();
    let sig = latchkey_crypto::bundle::sign(&other, &B64.decode(&payload).unwrap());
    s.agent
        .state_db()
        .unwrap()
        .execute(
            "UPDATE offline_bundles SET signature = ?1",
            [B64.encode(sig)],
        )
        .unwrap();
    let (code, msgs) = offline_login(s.conf.clone(), "alice", answered_by(s.token.clone())).await;
    assert_eq!(code, PamCode::AUTH_ERR);
    assert!(
        errors(&msgs)[0].starts_with("The offline login data for alice"),
        "{msgs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundles_survive_an_agent_restart() {
    let mut s = offline_ready(&[]).await;
    s.agent.restart().await.unwrap();
    let (code, msgs) = offline_login(s.conf.clone(), "alice", answered_by(s.token.clone())).await;
    assert_eq!(code, PamCode::SUCCESS, "{msgs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_user_never_reaches_offline_and_loses_the_bundle() {
    let mut s = setup(&[]).await;
    assert_eq!(online_login(&s).await, PamCode::SUCCESS);
    assert!(stored_bundle(&s.agent, "alice").is_some());
    s.srv.set_user_enabled("alice", false).await.unwrap();
    // The server answers (deny): no offline prompt, no QR, and the bundle is wiped.
    let (code, msgs) = offline_login(s.conf.clone(), "alice", answered_by(s.token.clone())).await;
    assert_eq!(code, PamCode::AUTH_ERR);
    assert!(!msgs.iter().any(|m| m.text.starts_with("LK1:")), "{msgs:?}");
    assert_eq!(
        errors(&msgs),
        vec![latchkey_server::engine::GENERIC_DENY.to_string()]
    );
    assert!(stored_bundle(&s.agent, "alice").is_none());
    // Later, with the server down, there is nothing to fall back to.
    s.srv.stop().await;
    let (code, msgs) = offline_login(s.conf.clone(), "alice", answered_by(s.token.clone())).await;
    assert_eq!(code, PamCode::AUTH_ERR);
    assert!(errors(&msgs)[0].starts_with("No offline login is prepared for alice"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forget_offline_and_app_revocation_wipe_the_bundle_at_next_contact() {
    let s = setup(&[]).await;
    s.srv.add_user("bob", &[]).await.unwrap();
    assert_eq!(online_login(&s).await, PamCode::SUCCESS);
    assert!(stored_bundle(&s.agent, "alice").is_some());
    let cfg = latchkey_agent::config::AgentConfig::load(&s.agent.config_dir).unwrap();
    // By hostname (the agent joined as test-host).
    let q: ForgetOfflineQueued = s
        .srv
        .admin()
        .unwrap()
        .post(
            "/v1/admin/machines/test-host/forget-offline",
            &ForgetOffline {
                user: "alice".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(q.machine_id, cfg.machine_id);
    assert!(
        stored_bundle(&s.agent, "alice").is_some(),
        "not before the next contact"
    );
    // Any contact will do: another user's login start carries the forget list.
    let steps = s.agent.login("bob", "login", &[]).await.unwrap();
    assert!(!steps.is_empty());
    assert!(
        stored_bundle(&s.agent, "alice").is_none(),
        "wiped at the next contact"
    );

    // A fresh online login brings a bundle back; revoking the app wipes it again.
    // (A second OATH token: the app's TOTP code of this 30-second step is spent.)
    let (_, uri) = s
        .srv
        .add_token("alice", latchkey_proto::TokenKind::Hotp)
        .await
        .unwrap();
    let conf = s.conf.clone();
    let code = run_blocking(move || {
        let mut pam = PamHarness::new("login", "alice", conf.path()).unwrap();
        pam.answer(latchkey_testkit::hotp_at(&uri, 0));
        pam.authenticate(0)
    })
    .await;
    assert_eq!(code, PamCode::SUCCESS);
    assert!(stored_bundle(&s.agent, "alice").is_some());
    let app = decoded(&s.agent, "alice").apps[0].id.clone();
    s.srv
        .admin()
        .unwrap()
        .request(
            latchkey_client::Method::DELETE,
            &format!("/v1/admin/tokens/{app}"),
            None,
        )
        .await
        .unwrap();
    let conf = s.conf.clone();
    let acct = run_blocking(move || {
        let mut pam = PamHarness::new("login", "alice", conf.path()).unwrap();
        pam.acct_mgmt(0)
    })
    .await;
    assert_eq!(acct, PamCode::SUCCESS);
    assert!(
        stored_bundle(&s.agent, "alice").is_none(),
        "revoked app: wiped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_unreachable_goes_offline_and_a_refusal_does_not() {
    let mut s = offline_ready(&[]).await;
    // A port where nothing listens (the stopped server): connection refused.
    let steps = s.agent.login("alice", "login", &[]).await.unwrap();
    assert!(
        matches!(steps[0], latchkey_proto::agent::Step::Qr { .. }),
        "refused: {steps:?}"
    );
    // A listener that never accepts (TLS handshake times out), a name that does not resolve,
    // and a server that is not TLS at all.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let garbage = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let garbage_addr = garbage.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok((mut c, _)) = garbage.accept().await {
            let _ = c.write_all(b"HTTP/1.1 200 OK\r\n\r\nnot tls").await;
        }
    });
    let urls = [
        format!("https://{}", silent.local_addr().unwrap()),
        "https://latchkey.invalid:8443".to_string(),
        format!("https://{garbage_addr}"),
    ];
    let cfg_path = s.agent.config_dir.join("agent.toml");
    let original = std::fs::read_to_string(&cfg_path).unwrap();
    for url in &urls {
        let mut cfg: latchkey_agent::config::AgentConfig = toml::from_str(&original).unwrap();
        cfg.servers = vec![url.clone()];
        cfg.connect_timeout = std::time::Duration::from_millis(300);
        cfg.timeout = std::time::Duration::from_secs(1);
        std::fs::write(&cfg_path, toml::to_string(&cfg).unwrap()).unwrap();
        s.agent.restart().await.unwrap();
        let steps = s.agent.login("alice", "login", &[]).await.unwrap();
        assert!(
            matches!(steps[0], latchkey_proto::agent::Step::Qr { .. }),
            "{url}: {steps:?}"
        );
    }
    // A definite refusal (the machine was removed: 401) is not a reason to go offline.
    std::fs::write(&cfg_path, &original).unwrap();
    s.srv.restart().await.unwrap();
    s.agent.restart().await.unwrap();
    let cfg: latchkey_agent::config::AgentConfig = toml::from_str(&original).unwrap();
    s.srv
        .admin()
        .unwrap()
        .request(
            latchkey_client::Method::DELETE,
            &format!("/v1/admin/machines/{}", cfg.machine_id),
            None,
        )
        .await
        .unwrap();
    let steps = s.agent.login("alice", "login", &[]).await.unwrap();
    assert_eq!(steps.len(), 1, "{steps:?}");
    assert!(
        matches!(&steps[0], latchkey_proto::agent::Step::Failure { reason } if reason.contains("not accepted")),
        "{steps:?}"
    );
}
