//! A locked admin is unlocked with the admin API key (`latchkey admin unlock`).

use crate::harness::*;
use latchkey_client::Method;
use latchkey_proto::admin::AdminInfo;
use latchkey_proto::routes;

#[tokio::test]
async fn a_locked_admin_signs_in_again_after_the_api_unlocks_them() {
    let srv = start().await;
    let created = srv.add_admin("root").await;
    let mut b = srv.browser();
    for _ in 0..5 {
        b.sign_in(&created, "not the password").await;
    }
    let a = b.sign_in(&created, PASSWORD).await;
    assert_eq!(
        a.header("location"),
        Some("/ui/signin?err=refused"),
        "locked"
    );
    let (status, body) = srv
        .api()
        .request(Method::POST, &routes::admin_admin_unlock("root"), None)
        .await
        .unwrap();
    assert_eq!(status.as_u16(), 200);
    let info: AdminInfo = serde_json::from_slice(&body).unwrap();
    assert_eq!((info.name.as_str(), info.locked_until), ("root", None));
    let a = b.sign_in(&created, PASSWORD).await;
    assert_eq!(a.status, 303, "{}", a.body);
    assert_eq!(a.header("location"), Some(routes::UI_ADMIN));
    assert!(srv.audit().await.iter().any(|e| e.action == "admin.unlock"));
    let nobody = srv
        .api()
        .request(Method::POST, &routes::admin_admin_unlock("nobody"), None)
        .await;
    assert!(nobody.is_err(), "{nobody:?}");
}
