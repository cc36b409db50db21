//! Inline enrolment on the Windows tile under Wine (docs/windows.md, "Enrolling a token at
//! the tile"): a real latchkeyd whose policy offers `enroll.inline=totp`, a user without a
//! token, the real agent under Wine and `logonui-sim.exe` driving `latchkey_cp.dll`.
//!
//! The agent checks the tile's password with `LogonUserW` before it lets the server offer
//! enrolment. Wine 8's `LogonUserW` is a stub that accepts any password (it returns TRUE and
//! the fake token 0xdeadbeef: `logonui-sim DLL logonuser USER DOMAIN PASSWORD` shows it), so
//! these tests cover the tile and the conversation; the refusal of a wrong password by that
//! check runs only on Windows.

use super::wine::*;
use latchkey_proto::admin::TokenInfo;
use latchkey_proto::routes;
use latchkey_testkit::TestServer;
use ring::hmac;
use serde_json::Value;

/// `CPFS_DISPLAY_IN_SELECTED_TILE`: what SetFieldState says when a field appears.
const SHOWN: i64 = 1;
const ENROLL_FIELD: u32 = 7;

/// An otpauth URI read the way an authenticator app reads it, not with latchkey's parser.
struct OtpAuth {
    secret: Vec<u8>,
    algorithm: &'static hmac::Algorithm,
    digits: u32,
    period: u64,
}

fn parse_otpauth(uri: &str) -> OtpAuth {
    let rest = uri
        .strip_prefix("otpauth://totp/")
        .unwrap_or_else(|| panic!("not a TOTP otpauth URI: {uri}"));
    let (_, query) = rest
        .split_once('?')
        .expect("otpauth URI without parameters");
    let mut out = OtpAuth {
        secret: Vec::new(),
        algorithm: &hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        digits: 6,
        period: 30,
    };
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "secret" => {
                out.secret = data_encoding::BASE32_NOPAD
                    .decode(v.trim_end_matches('=').to_ascii_uppercase().as_bytes())
                    .unwrap_or_else(|e| panic!("secret {v:?} is not base32: {e}"))
            }
            "algorithm" => {
                out.algorithm = match v.to_ascii_uppercase().as_str() {
                    "SHA1" => &hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
                    "SHA256" => &hmac::HMAC_SHA256,
                    "SHA512" => &hmac::HMAC_SHA512,
                    other => panic!("algorithm {other}"),
                }
            }
            "digits" => out.digits = v.parse().unwrap(),
            "period" => out.period = v.parse().unwrap(),
            _ => {}
        }
    }
    assert!(!out.secret.is_empty(), "no secret in {uri}");
    out
}

/// RFC 6238 (RFC 4226 dynamic truncation) for the current time step.
fn totp_now(a: &OtpAuth) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let key = hmac::Key::new(*a.algorithm, &a.secret);
    let mac = hmac::sign(&key, &(now / a.period).to_be_bytes());
    let h = mac.as_ref();
    let off = (h[h.len() - 1] & 0x0f) as usize;
    let bin = u32::from_be_bytes([h[off] & 0x7f, h[off + 1], h[off + 2], h[off + 3]]);
    format!(
        "{:0width$}",
        bin % 10u32.pow(a.digits),
        width = a.digits as usize
    )
}

async fn tokens(server: &TestServer, user: &str) -> Vec<TokenInfo> {
    server
        .admin()
        .unwrap()
        .get(&routes::admin_user_tokens(user))
        .await
        .unwrap()
}

/// The tile image's bitmaps LogonUI was handed (SetFieldBitmap), in order.
fn tile_bitmaps(s: &Session) -> Vec<Value> {
    s.events()
        .into_iter()
        .filter(|e| e["event"] == "field_bitmap" && e["field"] == 0)
        .cloned()
        .collect()
}

/// The QR code in a dumped bitmap, read as a phone's camera would.
fn decode(s: &Session, dump: &Value) -> String {
    let png = s.png_of(dump);
    latchkey_token::offline::read_png(&png)
        .unwrap_or_else(|e| panic!("the tile's QR code cannot be read: {e}"))
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the Windows build and Wine: scripts/test runs it"]
async fn a_user_without_a_token_enrols_an_authenticator_at_the_tile_and_logs_in() {
    let w = win();
    let server = TestServer::start().await.unwrap();
    server
        .set_policy("*", &[("enroll.inline", "totp")])
        .await
        .unwrap();
    server.add_user("kate", &[]).await.unwrap();
    let _agent = w.agent(&server).await;
    let mut s = w.session("logon");

    // The password was checked; the server offers enrolment: no credential yet, the link.
    let offer = s.submit("kate", PASSWORD, "").await;
    assert_eq!(
        offer["response"], "CPGSR_NO_CREDENTIAL_NOT_FINISHED",
        "{offer}"
    );
    assert!(offer["credential"].is_null(), "{offer}");
    assert_eq!(offer["icon"], "warning", "{offer}");
    let v = &offer["view"];
    assert_eq!(
        v["enroll_link"], true,
        "the Enroll token link is shown: {offer}"
    );
    assert_eq!(v["secret_shown"], false, "{offer}");
    let info = v["info"].as_str().unwrap();
    assert!(
        info.contains("no second factor"),
        "the server's offer: {offer}"
    );
    assert!(!info.contains("skip"), "no grace logins, no skip: {offer}");
    assert!(
        s.events().iter().any(|e| e["event"] == "field_state"
            && e["field"] == ENROLL_FIELD
            && e["state"] == SHOWN),
        "LogonUI told to show the link: {:?}",
        s.seen
    );
    let before = tile_bitmaps(&s).len();

    // The link: the enrolment's QR code becomes the tile image, the secret is shown.
    s.send(&["enroll"]);
    let e = s.next("enroll").await;
    let v = &e["view"];
    assert_eq!(v["enroll_link"], false, "the offer is taken: {e}");
    assert_eq!(v["secret_shown"], true, "{e}");
    let instruction = v["info"].as_str().unwrap();
    assert!(
        instruction.starts_with("Scan")
            && !instruction.contains('\n')
            && !instruction.contains(['▀', '▄', '█']),
        "the instruction alone (the QR is the image, not its terminal drawing): {e}"
    );
    let secret_text = v["secret"].as_str().unwrap().to_string();
    let typed = secret_text
        .strip_prefix("Secret: ")
        .unwrap_or_else(|| panic!("the secret as text: {e}"))
        .replace(' ', "");
    let bitmaps = tile_bitmaps(&s);
    assert_eq!(
        bitmaps.len(),
        before + 1,
        "one new tile image: {:?}",
        s.seen
    );
    let qr = bitmaps.last().unwrap().clone();
    assert!(qr["width"].as_i64().unwrap() >= 128, "{qr}");
    let uri = decode(&s, &qr["dump"]);
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    assert!(
        uri.contains(&format!("secret={typed}")),
        "the text is the QR's secret: {uri} / {secret_text}"
    );
    // A repaint (GetBitmapValue) draws the same code.
    s.send(&["tile"]);
    let repaint = s.next("tile").await;
    assert_eq!(decode(&s, &repaint["dump"]), uri);
    let app = parse_otpauth(&uri);

    // A wrong first code: the server's retry message, the QR code and the secret stay.
    let right = totp_now(&app);
    let retry = s.submit("kate", PASSWORD, &wrong(&right)).await;
    assert_eq!(
        retry["response"], "CPGSR_NO_CREDENTIAL_NOT_FINISHED",
        "{retry}"
    );
    assert!(retry["credential"].is_null(), "{retry}");
    assert!(
        retry["status"]
            .as_str()
            .unwrap()
            .starts_with("Code rejected"),
        "{retry}"
    );
    assert_eq!(retry["view"]["info"], retry["status"], "{retry}");
    assert_eq!(retry["view"]["secret"], secret_text.as_str(), "{retry}");
    assert_eq!(
        tile_bitmaps(&s).len(),
        before + 1,
        "the QR code kept as the tile image: {:?}",
        s.seen
    );
    s.send(&["tile"]);
    let repaint = s.next("tile").await;
    assert_eq!(
        decode(&s, &repaint["dump"]),
        uri,
        "still the enrolment's QR"
    );
    assert!(tokens(&server, "kate").await.is_empty(), "not enrolled yet");

    // The right code: enrolled, and the login finishes as an MFA login.
    let done = s.submit("kate", PASSWORD, &totp_now(&app)).await;
    assert_eq!(
        done["response"], "CPGSR_RETURN_CREDENTIAL_FINISHED",
        "{done} after {:?}",
        s.seen
    );
    let c = &done["credential"];
    assert_eq!(c["format"], "kerb_interactive_unlock_logon", "{done}");
    assert_eq!(c["message_type"], 2, "{done}");
    assert_eq!(c["user"], "kate");
    assert_eq!(c["password"], PASSWORD);
    assert_eq!(
        done["view"]["secret_shown"], false,
        "the secret is gone: {done}"
    );
    assert_eq!(done["view"]["secret"], "", "{done}");
    let last = tile_bitmaps(&s).last().unwrap().clone();
    assert_eq!(last["width"], 128, "the logo again, not the seed: {last}");
    s.quit().await;

    let t = tokens(&server, "kate").await;
    assert_eq!(t.len(), 1, "the server lists the new token: {t:?}");
    assert_eq!(t[0].kind, latchkey_proto::TokenKind::Totp, "{t:?}");
    let audit = server.audit("kate").await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "enroll.done" && e.result == "ok"),
        "{audit:?}"
    );
    assert_eq!(client_ids(&server, "kate").await, ["login"]);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the Windows build and Wine: scripts/test runs it"]
async fn a_grace_login_skips_enrolment_with_an_empty_code_once() {
    let w = win();
    let server = TestServer::start().await.unwrap();
    server
        .set_policy(
            "*",
            &[("enroll.inline", "totp"), ("enroll.grace_logins", "1")],
        )
        .await
        .unwrap();
    server.add_user("leo", &[]).await.unwrap();
    let _agent = w.agent(&server).await;

    let mut s = w.session("logon");
    let offer = s.submit("leo", PASSWORD, "").await;
    assert_eq!(offer["view"]["enroll_link"], true, "{offer}");
    let info = offer["view"]["info"].as_str().unwrap();
    assert!(
        info.contains("skip enrolment, 1 login left"),
        "the skip hint on the info line: {offer}"
    );
    // Submit with the code left empty: skipped, logged in without a token.
    let skipped = s.submit("leo", PASSWORD, "").await;
    assert_eq!(
        skipped["response"], "CPGSR_RETURN_CREDENTIAL_FINISHED",
        "{skipped} after {:?}",
        s.seen
    );
    assert_eq!(skipped["credential"]["user"], "leo");
    assert_eq!(skipped["view"]["enroll_link"], false, "{skipped}");
    s.quit().await;
    assert!(tokens(&server, "leo").await.is_empty());

    // The grace login is used up: the next offer has no skip, and an empty code enrols.
    let mut s = w.session("logon");
    let offer = s.submit("leo", PASSWORD, "").await;
    assert_eq!(offer["view"]["enroll_link"], true, "{offer}");
    assert!(
        !offer["view"]["info"].as_str().unwrap().contains("skip"),
        "{offer}"
    );
    let enrol = s.submit("leo", PASSWORD, "").await;
    assert_eq!(
        enrol["response"], "CPGSR_NO_CREDENTIAL_NOT_FINISHED",
        "no login without a second factor now: {enrol}"
    );
    assert_eq!(
        enrol["view"]["secret_shown"], true,
        "the enrolment QR: {enrol}"
    );
    s.quit().await;
    let audit = server.audit("leo").await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "enroll.grace" && e.result == "ok"),
        "{audit:?}"
    );
}

/// `InlineEnrollment=0`: the tile never sends the password, so the agent never vouches for
/// it and a user without a token is refused as before, even where the policy allows
/// enrolment.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the Windows build and Wine: scripts/test runs it"]
async fn the_registry_switch_turns_the_tiles_enrolment_off() {
    let w = win();
    let server = TestServer::start().await.unwrap();
    server
        .set_policy("*", &[("enroll.inline", "totp")])
        .await
        .unwrap();
    server.add_user("mia", &[]).await.unwrap();
    let prefix = OwnPrefix::copy_of_test_prefix();
    let mut c = w.builtin(&prefix, "reg");
    c.args([
        "add",
        r"HKLM\SOFTWARE\latchkey",
        "/v",
        "InlineEnrollment",
        "/t",
        "REG_DWORD",
        "/d",
        "0",
        "/f",
    ]);
    let out = tokio::task::spawn_blocking(move || c.output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success(), "reg add: {out:?}");
    let _agent = w.agent_in(Some(&prefix), &server, &[]).await;
    let mut s = w.session_in(Some(&prefix), "logon");
    let r = s.submit("mia", PASSWORD, "").await;
    assert_eq!(r["response"], "CPGSR_NO_CREDENTIAL_FINISHED", "{r}");
    assert!(r["credential"].is_null(), "{r}");
    assert_eq!(r["view"]["enroll_link"], false, "no offer: {r}");
    s.quit().await;
    assert!(
        !server
            .audit("mia")
            .await
            .unwrap()
            .iter()
            .any(|e| e.action.starts_with("enroll.")),
        "the server never opened an enrolment"
    );
}
