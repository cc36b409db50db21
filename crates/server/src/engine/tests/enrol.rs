//! One-time enrolment codes: single use, bounded lifetime, for an existing user only.

use super::*;
use crate::engine::{EngineError, Unauthorized};
use std::time::Duration;

fn register(code: latchkey_proto::Secret) -> AppRegister {
    AppRegister {
        code,
        device_name: "phone".into(),
        x25519_public: B64.encode([1u8; 32]),
        ed25519_public: B64.encode([2u8; 32]),
    }
}

#[tokio::test]
async fn a_code_registers_one_app_only() {
    let fx = fx().await;
    fx.user("alice").await;
    let issued =
        fx.e.enrolment_code(
            &crate::engine::Actor::Admin,
            "alice",
            CodeKind::TokenApp,
            None,
        )
        .await
        .unwrap();
    assert!(issued.code.expose().starts_with("lkr"));
    assert!(issued.expires_at > now() + 800 && issued.expires_at <= now() + 900);
    let app =
        fx.e.app_register(&register(issued.code.clone()))
            .await
            .unwrap();
    assert_eq!(app.user, "alice");
    let again = fx.e.app_register(&register(issued.code)).await;
    assert!(matches!(
        again,
        Err(EngineError::Unauthorized(Unauthorized::AppRegistrationCode))
    ));
}

#[tokio::test]
async fn an_expired_code_is_refused() {
    let fx = fx().await;
    fx.user("bob").await;
    let issued =
        fx.e.enrolment_code(
            &crate::engine::Actor::Admin,
            "bob",
            CodeKind::TokenApp,
            Some(1),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let late = fx.e.app_register(&register(issued.code)).await;
    assert!(matches!(
        late,
        Err(EngineError::Unauthorized(Unauthorized::AppRegistrationCode))
    ));
}

#[tokio::test]
async fn codes_are_only_for_existing_users_and_bounded_lifetimes() {
    let fx = fx().await;
    fx.user("carol").await;
    let nobody =
        fx.e.enrolment_code(
            &crate::engine::Actor::Admin,
            "nobody",
            CodeKind::Smartcard,
            None,
        )
        .await;
    assert!(matches!(nobody, Err(EngineError::NotFound(_))));
    for ttl in [0, 7 * 86_400 + 1] {
        let kind = CodeKind::SecurityKey { label: None };
        let bad =
            fx.e.enrolment_code(&crate::engine::Actor::Admin, "carol", kind, Some(ttl))
                .await;
        assert!(matches!(bad, Err(EngineError::Invalid(_))), "ttl {ttl}");
    }
    let label = Some("x".repeat(65));
    let bad =
        fx.e.enrolment_code(
            &crate::engine::Actor::Admin,
            "carol",
            CodeKind::SecurityKey { label },
            None,
        )
        .await;
    assert!(matches!(bad, Err(EngineError::Invalid(_))));
    let sc =
        fx.e.enrolment_code(
            &crate::engine::Actor::Admin,
            "carol",
            CodeKind::Smartcard,
            Some(60),
        )
        .await
        .unwrap();
    assert!(sc.code.expose().starts_with("lks"));
}

/// A machine's enrolment of `cert` (base64 DER) for `user` with `code`.
async fn enroll(fx: &Fx, user: &str, code: &str, cert: &str) -> crate::engine::Result<String> {
    let req = latchkey_proto::smartcard::SmartcardEnroll {
        user: user.parse().unwrap(),
        code: code.into(),
        cert: cert.into(),
        label: None,
    };
    Ok(fx.e.smartcard_enroll(&fx.machine, &req).await?.id)
}

#[tokio::test]
async fn a_smartcard_code_enrols_one_card_of_its_user_only() {
    let fx = fx().await;
    fx.user("dave").await;
    fx.user("eve").await;
    let issued =
        fx.e.enrolment_code(
            &crate::engine::Actor::Admin,
            "dave",
            CodeKind::Smartcard,
            None,
        )
        .await
        .unwrap();
    // An EC P-256 certificate, as a card holds.
    let card = rcgen::generate_simple_self_signed(vec!["dave".into()]).unwrap();
    let cert = B64.encode(card.cert.der());
    let refused = Err::<String, _>(Unauthorized::SmartcardEnrollCode);
    let unauthorized = |r: crate::engine::Result<String>| match r {
        Err(EngineError::Unauthorized(why)) => Err(why),
        Ok(id) => Ok(id),
        Err(other) => panic!("unexpected {other:?}"),
    };
    assert_eq!(
        unauthorized(enroll(&fx, "eve", issued.code.expose(), &cert).await),
        refused
    );
    let id = unauthorized(enroll(&fx, "dave", issued.code.expose(), &cert).await).unwrap();
    let tokens = fx.e.token_list("dave").await.unwrap();
    assert!(tokens.iter().any(|t| t.id == id && t.smartcard.is_some()));
    assert_eq!(
        unauthorized(enroll(&fx, "dave", issued.code.expose(), &cert).await),
        refused
    );
}
