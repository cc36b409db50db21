//! The enrolment conversation against the fake server: an offer nobody asked for, a skip,
//! a first code that passes after a retry.

use super::*;

fn enrol_offer(methods: Vec<EnrollMethod>, grace_left: u32) -> LoginStartResult {
    LoginStartResult::Enroll {
        pending_id: "tx1".parse().unwrap(),
        methods,
        message: "Enrol".into(),
        expires_in: 600,
        grace_left,
    }
}

fn enrolling() -> Login {
    let mut l = login();
    l.req.enroll = true;
    l
}

#[tokio::test]
async fn an_enrolment_offer_nobody_asked_for_is_refused() {
    let f = fixture();
    f.queue_start(answer(enrol_offer(vec![EnrollMethod::Totp], 3)));
    let mut l = login();
    let step = l.begin(&f.engine).await;
    assert!(
        matches!(&step, Step::Failure { reason } if reason.contains("protocol error")),
        "{step:?}"
    );
    assert_eq!(*f.server().calls.lock().unwrap(), ["start"]);
}

#[tokio::test]
async fn a_skipped_enrolment_keeps_no_bundle_and_is_recorded_as_grace() {
    let f = fixture();
    f.queue_start(answer(enrol_offer(
        vec![EnrollMethod::Totp, EnrollMethod::App],
        2,
    )));
    // A bundle riding on a login without a second factor is never kept.
    f.queue_step(f.with_bundle(LoginStepResult::Success {
        message: "Logged in without a second factor".into(),
    }));
    let mut l = enrolling();
    let Step::Enroll {
        methods,
        skip,
        label,
        ..
    } = l.begin(&f.engine).await
    else {
        panic!("no offer");
    };
    assert_eq!(methods.len(), 2);
    assert_eq!(
        skip.as_deref(),
        Some("Press Enter to skip enrolment, 2 logins left")
    );
    assert!(label.contains("1-2"), "{label}");
    assert!(matches!(
        l.answer(&f.engine, "").await,
        Step::Success { .. }
    ));
    assert!(!f.has_bundle());
    let ev = f.spooled();
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0].method.as_deref(), Some("grace"));
}

#[tokio::test]
async fn a_confirmed_first_code_keeps_the_bundle_it_brings() {
    let f = fixture();
    f.queue_start(answer(enrol_offer(
        vec![EnrollMethod::Totp, EnrollMethod::App],
        0,
    )));
    f.server()
        .begun
        .lock()
        .unwrap()
        .push_back(answer(EnrollBegun::Totp {
        otpauth_uri:
            "otpauth://totp/latchkey:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=latchkey"
                .into(),
        secret: "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ".into(),
        message: "Scan".into(),
    }));
    f.queue_step(answer(LoginStepResult::Retry {
        attempts_left: 1,
        message: "Code rejected, 1 attempt left".into(),
    }));
    f.queue_step(f.with_bundle(LoginStepResult::Success {
        message: "Token enrolled".into(),
    }));
    let mut l = enrolling();
    assert!(matches!(l.begin(&f.engine).await, Step::Enroll { .. }));
    // Picked by name (numbers work too); the QR step shows the secret, grouped.
    let Step::Qr { copy, text, .. } = l.answer(&f.engine, "totp").await else {
        panic!("no QR code");
    };
    assert_eq!(
        copy.as_deref(),
        Some("Secret: GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ")
    );
    assert!(text.starts_with("Scan\n"), "{text}");
    let Step::Prompt { label, .. } = l.on_continue(&f.engine).await else {
        panic!("no prompt");
    };
    assert!(!label.contains("skip"), "no grace left: {label}");
    assert!(matches!(
        l.answer(&f.engine, "000000").await,
        Step::Info { .. }
    ));
    assert!(matches!(
        l.on_continue(&f.engine).await,
        Step::Prompt { .. }
    ));
    assert!(matches!(
        l.answer(&f.engine, "123456").await,
        Step::Success { .. }
    ));
    assert!(f.has_bundle());
    let calls = f.server().calls.lock().unwrap().clone();
    assert_eq!(
        calls,
        ["start", "enroll_begin", "enroll_confirm", "enroll_confirm"]
    );
    assert_eq!(f.spooled()[0].method.as_deref(), Some("otp"));
}

#[tokio::test]
async fn a_link_enrolment_shows_the_invite_then_ends_the_login_with_the_servers_sentence() {
    let f = fixture();
    f.queue_start(answer(enrol_offer(
        vec![EnrollMethod::Totp, EnrollMethod::Link],
        0,
    )));
    f.server()
        .begun
        .lock()
        .unwrap()
        .push_back(answer(EnrollBegun::Link {
            url: "https://mfa.example/ui/invite/abc".into(),
            message: "Open this link".into(),
            reason: "Log in again once it is set up".into(),
        }));
    let mut l = enrolling();
    assert!(matches!(l.begin(&f.engine).await, Step::Enroll { .. }));
    let Step::Qr {
        payload,
        copy,
        text,
    } = l.answer(&f.engine, "2").await
    else {
        panic!("no QR code");
    };
    assert_eq!(payload, "https://mfa.example/ui/invite/abc");
    assert_eq!(
        copy.as_deref(),
        Some("Or open: https://mfa.example/ui/invite/abc")
    );
    assert!(text.starts_with("Open this link\n"), "{text}");
    let end = l.on_continue(&f.engine).await;
    assert!(
        matches!(&end, Step::Failure { reason } if reason == "Log in again once it is set up"),
        "{end:?}"
    );
    assert_eq!(*f.server().calls.lock().unwrap(), ["start", "enroll_begin"]);
}
