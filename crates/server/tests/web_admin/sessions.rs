//! Sessions end with their subject: a user disabled (by the API or the console) or removed,
//! an admin removed. An enable that follows, or a user or admin made again under the same
//! name, brings no old session back.

use crate::harness::*;
use latchkey_client::Method;
use latchkey_proto::admin::UserInvited;
use latchkey_proto::routes;

impl Server {
    async fn api_call(&self, method: Method, path: &str, body: Option<serde_json::Value>) {
        self.api().request(method, path, body).await.unwrap();
    }

    async fn api_user_add(&self, name: &str) {
        let body = serde_json::json!({ "name": name });
        self.api_call(Method::POST, routes::ADMIN_USERS, Some(body))
            .await;
    }

    async fn api_enabled(&self, name: &str, enabled: bool) {
        let body = serde_json::json!({ "enabled": enabled });
        self.api_call(Method::PATCH, &routes::admin_user(name), Some(body))
            .await;
    }

    /// A fresh invite link's path (`/ui/invite/CODE`).
    pub async fn api_invite(&self, name: &str) -> String {
        let (_, b) = self
            .api()
            .request(
                Method::POST,
                &routes::admin_user_invite(name),
                Some(serde_json::json!({})),
            )
            .await
            .unwrap();
        let i: UserInvited = serde_json::from_slice(&b).unwrap();
        let url = i.url.expose().to_string();
        url[url.find("/ui/").unwrap()..].to_string()
    }

    /// A browser holding an invite session of `name`, on the portal's start page.
    async fn portal(&self, name: &str) -> Browser {
        let path = self.api_invite(name).await;
        let mut b = self.browser();
        open_invite(&mut b, &path).await;
        assert_eq!(b.get(routes::UI_ME).await.status, 200);
        b
    }
}

/// Opens an invite link as a person does: its page, then its button.
pub async fn open_invite(b: &mut Browser, path: &str) {
    let a = redeem(b, path).await;
    assert_eq!(a.status, 303, "{}", a.body);
    assert_eq!(a.header("location"), Some(routes::UI_ME));
}

/// The invite page, then its button's POST (with the page's token); the POST's answer.
pub async fn redeem(b: &mut Browser, path: &str) -> Answer {
    let page = b.get(path).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("id=\"invite-open\""), "{}", page.body);
    b.post(path, &[("csrf", &page.csrf())]).await
}

/// The session's page is gone: the portal sends the browser to sign in.
async fn signed_out(b: &mut Browser) {
    let a = b.get(routes::UI_ME).await;
    assert_eq!(a.status, 303, "the old session still opens the portal");
    assert_eq!(a.header("location"), Some(routes::UI_ME_SIGNIN));
}

#[tokio::test]
async fn disabling_a_user_ends_their_sessions_even_if_enabled_again_at_once() {
    let srv = start().await;
    srv.api_user_add("alice").await;
    // Through the API: disable, then enable before the session's next request.
    let mut b = srv.portal("alice").await;
    srv.api_enabled("alice", false).await;
    srv.api_enabled("alice", true).await;
    signed_out(&mut b).await;
    // Through the console's buttons.
    let mut a = srv.portal("alice").await;
    let mut admin = srv.console().await;
    let page = routes::ui_admin_user("alice");
    for action in ["disable", "enable"] {
        let to = routes::fill(routes::UI_ADMIN_USER_ACTION, &["alice", action]);
        let r = admin.submit(&page, &to, &[]).await;
        assert_eq!(r.status, 303, "{action}: {}", r.body);
    }
    assert!(srv.api_user_enabled("alice").await);
    signed_out(&mut a).await;
}

#[tokio::test]
async fn a_disabled_users_unused_invite_does_not_come_back_with_an_enable() {
    let srv = start().await;
    srv.api_user_add("alice").await;
    let path = srv.api_invite("alice").await;
    srv.api_enabled("alice", false).await;
    srv.api_enabled("alice", true).await;
    let a = redeem(&mut srv.browser(), &path).await;
    assert_eq!(a.status, 410, "{}", a.body);
}

#[tokio::test]
async fn a_user_made_again_under_the_same_name_inherits_no_session_or_invite() {
    let srv = start().await;
    srv.api_user_add("alice").await;
    let mut b = srv.portal("alice").await;
    let path = srv.api_invite("alice").await;
    srv.api_call(Method::DELETE, &routes::admin_user("alice"), None)
        .await;
    srv.api_user_add("alice").await;
    signed_out(&mut b).await;
    assert_eq!(redeem(&mut srv.browser(), &path).await.status, 410);
}

#[tokio::test]
async fn a_removed_admin_made_again_has_no_old_session() {
    let srv = start().await;
    let mut b = srv.console().await;
    assert_eq!(b.get(routes::UI_ADMIN).await.status, 200);
    srv.api_call(Method::DELETE, &routes::admin_admin("root"), None)
        .await;
    srv.add_admin("root").await;
    let a = b.get(routes::UI_ADMIN).await;
    assert_eq!(a.status, 303, "{}", a.body);
    assert_eq!(a.header("location"), Some(routes::UI_SIGNIN));
}

impl Server {
    async fn api_user_enabled(&self, name: &str) -> bool {
        let (_, b) = self
            .api()
            .request(Method::GET, &routes::admin_user(name), None)
            .await
            .unwrap();
        let u: latchkey_proto::admin::User = serde_json::from_slice(&b).unwrap();
        u.enabled
    }
}
