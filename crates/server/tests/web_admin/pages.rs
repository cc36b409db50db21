//! Each console page: 200 with a session, 303 without; an action of each, audited.

use super::harness::*;
use latchkey_proto::routes;

#[tokio::test]
async fn user_page_edits_disables_invites_and_manages_tokens() {
    let srv = start().await;
    let mut b = srv.console().await;
    let a = b
        .submit(
            routes::UI_ADMIN_USERS,
            routes::UI_ADMIN_USERS,
            &[("name", "alice"), ("groups", "staff")],
        )
        .await;
    assert_eq!(a.status, 303, "{}", a.body);
    let page = routes::ui_admin_user("alice");
    let p = b.get(&page).await;
    assert_eq!(p.status, 200, "{}", p.body);
    for id in [
        "disable-go",
        "invite-go",
        "token-add",
        "token-kind",
        "token-add-go",
    ] {
        assert!(p.body.contains(&format!("id=\"{id}\"")), "{id}: {}", p.body);
    }
    assert_eq!(srv.browser().get(&page).await.status, 303, "no session");

    // Display name and groups.
    let a = b
        .submit(
            &page,
            &format!("{page}/update"),
            &[("display_name", "Alice A."), ("groups", "staff, ops")],
        )
        .await;
    assert_eq!(
        a.header("location"),
        Some(format!("{page}?ok=saved").as_str())
    );
    let p = b.get(&page).await;
    assert!(p.body.contains("value=\"staff, ops\""), "{}", p.body);

    // The invite link, shown once in the POST's own page, never in a URL.
    let a = b.submit(&page, &format!("{page}/invite"), &[]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.header("cache-control"), Some("no-store"));
    let url = text_of(&a.body, "invite-url").expect("the invite link");
    assert!(
        url.starts_with("https://") && url.contains("/ui/invite/"),
        "{url}"
    );
    assert!(a.header("location").is_none());
    assert!(!b.get(&page).await.body.contains(&url), "shown once");

    // A TOTP token: its secret and QR on the next page, then the row with its buttons.
    let a = b
        .submit(
            &page,
            &format!("{page}/token"),
            &[("kind", "totp"), ("label", "phone")],
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let secret = text_of(&a.body, "token-secret").expect("the secret");
    assert!(latchkey_crypto::base32_decode(&secret).is_ok(), "{secret}");
    assert!(a.body.contains("<img class=\"qr\""), "{}", a.body);
    let p = b.get(&page).await;
    assert!(!p.body.contains(&secret), "shown once");
    let tokens = srv.api_tokens("alice").await;
    let id = &tokens[0].id;
    assert!(
        p.body.contains(&format!("data-token=\"{id}\"")),
        "{}",
        p.body
    );
    assert!(
        p.body.contains("class=\"danger small revoke\""),
        "{}",
        p.body
    );

    // HOTP: a resync form; two wrong codes leave it as it was and say so.
    let a = b
        .submit(&page, &format!("{page}/token"), &[("kind", "hotp")])
        .await;
    assert_eq!(a.status, 200);
    let hotp = srv
        .api_tokens("alice")
        .await
        .into_iter()
        .find(|t| t.kind == latchkey_proto::TokenKind::Hotp)
        .unwrap();
    let p = b.get(&page).await;
    assert!(p.body.contains("class=\"row-form resync\""), "{}", p.body);
    let tok = format!("/ui/admin/tokens/{}", hotp.id);
    let a = b
        .submit(
            &page,
            &format!("{tok}/resync"),
            &[("user", "alice"), ("code1", "000000"), ("code2", "000001")],
        )
        .await;
    assert_eq!(
        a.header("location"),
        Some(format!("{page}?err=notresynced").as_str())
    );

    // Revoke: the row goes.
    let a = b
        .submit(
            &page,
            &format!("/ui/admin/tokens/{id}/revoke"),
            &[("user", "alice")],
        )
        .await;
    assert_eq!(
        a.header("location"),
        Some(format!("{page}?ok=revoked").as_str())
    );
    assert!(
        !b.get(&page)
            .await
            .body
            .contains(&format!("data-token=\"{id}\""))
    );
    // A token of another user through this user's page: refused.
    let a = b
        .submit(&page, &format!("{tok}/revoke"), &[("user", "bob")])
        .await;
    assert!(a.status == 303 || a.status == 404, "{}", a.body);
    assert_eq!(srv.api_tokens("alice").await.len(), 1);

    // Disable and enable (the same #disable-go button toggles).
    let a = b.submit(&page, &format!("{page}/disable"), &[]).await;
    assert_eq!(
        a.header("location"),
        Some(format!("{page}?ok=disabled").as_str())
    );
    let p = b.get(&page).await;
    assert_eq!(text_of(&p.body, "user-state").as_deref(), Some("disabled"));
    assert!(p.body.contains("id=\"disable-go\""));
    assert!(!p.body.contains("id=\"invite-go\""));
    let a = b.submit(&page, &format!("{page}/enable"), &[]).await;
    assert_eq!(
        a.header("location"),
        Some(format!("{page}?ok=enabled").as_str())
    );

    for action in [
        "user.update",
        "user.invite",
        "token.add",
        "token.resync",
        "token.remove",
    ] {
        assert!(srv.audited(action).await, "{action} as admin:root");
    }
}

#[tokio::test]
async fn a_locked_user_is_unlocked_from_its_page() {
    let srv = start().await;
    let mut b = srv.console().await;
    b.submit(
        routes::UI_ADMIN_USERS,
        routes::UI_ADMIN_USERS,
        &[("name", "carol")],
    )
    .await;
    srv.api_token_add("carol").await;
    // Wrong codes through the API's verify lock carol (the default threshold is 5).
    for _ in 0..6 {
        srv.api_verify("carol", "000000").await;
    }
    let page = routes::ui_admin_user("carol");
    let p = b.get(&page).await;
    assert_eq!(
        text_of(&p.body, "user-state").as_deref(),
        Some("locked"),
        "{}",
        p.body
    );
    let a = b.submit(&page, &format!("{page}/unlock"), &[]).await;
    assert_eq!(
        a.header("location"),
        Some(format!("{page}?ok=unlocked").as_str())
    );
    let p = b.get(&page).await;
    assert_eq!(text_of(&p.body, "user-state").as_deref(), Some("enabled"));
    assert!(srv.audited("user.unlock").await);
}

#[tokio::test]
async fn policies_are_created_shown_edited_with_the_cli_rules_and_removed() {
    let srv = start().await;
    let mut b = srv.console().await;
    let list = routes::UI_ADMIN_POLICIES;
    assert_eq!(b.get(list).await.status, 200);
    assert_eq!(srv.browser().get(list).await.status, 303, "no session");
    let a = b
        .submit(
            list,
            list,
            &[
                ("client_id", "remote"),
                ("settings", "mfa_required=true\r\noffline.enabled=false"),
            ],
        )
        .await;
    let page = routes::ui_admin_policy("remote");
    assert_eq!(
        a.header("location"),
        Some(format!("{page}?ok=created").as_str()),
        "{}",
        a.body
    );
    assert!(b.get(list).await.body.contains("data-policy=\"remote\""));
    assert_eq!(srv.browser().get(&page).await.status, 303, "no session");
    let p = b.get(&page).await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert!(
        p.body.contains("<label for=\"pol-offline-max_days\">"),
        "{}",
        p.body
    );
    assert!(
        p.body
            .contains("id=\"pol-offline-enabled\" name=\"offline.enabled\" value=\"false\""),
        "{}",
        p.body
    );

    // A value the CLI would refuse: the engine's sentence, nothing saved.
    let a = b
        .submit(&page, &page, &[("op", "save"), ("max_attempts", "0")])
        .await;
    assert_eq!(
        a.header("location"),
        Some(format!("{page}?err=said").as_str())
    );
    let p = b.get(&format!("{page}?err=said")).await;
    assert!(p.body.contains("max_attempts:"), "{}", p.body);
    // A good one is saved; an emptied field inherits again.
    let a = b
        .submit(
            &page,
            &page,
            &[
                ("op", "save"),
                ("max_attempts", "4"),
                ("offline.enabled", ""),
            ],
        )
        .await;
    assert_eq!(
        a.header("location"),
        Some(format!("{page}?ok=saved").as_str())
    );
    let p = b.get(&page).await;
    assert!(
        p.body.contains("name=\"max_attempts\" value=\"4\""),
        "{}",
        p.body
    );
    assert!(
        p.body.contains("name=\"offline.enabled\" value=\"\""),
        "{}",
        p.body
    );
    // A malformed line of the create form is refused with the CLI parser's sentence.
    let a = b
        .submit(
            list,
            list,
            &[("client_id", "login"), ("settings", "mfa required")],
        )
        .await;
    assert_eq!(a.header("location"), Some("/ui/admin/policies?err=said"));
    let p = b.get("/ui/admin/policies?err=said").await;
    assert!(p.body.contains("expected KEY=VALUE"), "{}", p.body);

    let a = b.submit(&page, &page, &[("op", "remove")]).await;
    assert_eq!(a.header("location"), Some("/ui/admin/policies?ok=removed"));
    assert!(!b.get(list).await.body.contains("data-policy=\"remote\""));
    assert!(srv.audited("policy.set").await);
    assert!(srv.audited("policy.remove").await);
}

#[tokio::test]
async fn machines_join_with_a_console_token_are_listed_forgotten_and_removed() {
    let srv = start().await;
    let mut b = srv.console().await;
    let list = routes::UI_ADMIN_MACHINES;
    assert_eq!(srv.browser().get(list).await.status, 303, "no session");
    let p = b.get(list).await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert!(p.body.contains("id=\"nav-machines\""));
    let a = b
        .submit(
            list,
            routes::UI_ADMIN_JOIN_TOKENS,
            &[("expires_in", "3600"), ("note", "web1")],
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let token = text_of(&a.body, "join-token-value").expect("the join token");
    assert!(token.starts_with("lkj"), "{token}");
    assert!(!b.get(list).await.body.contains(&token), "shown once");
    let body = serde_json::json!({ "join_token": token, "hostname": "web1" });
    let (_, joined) = srv
        .api()
        .request(
            latchkey_client::Method::POST,
            routes::MACHINE_JOIN,
            Some(body),
        )
        .await
        .unwrap();
    let joined: serde_json::Value = serde_json::from_slice(&joined).unwrap();
    let id = joined["machine_id"].as_str().unwrap().to_string();
    let p = b.get(list).await;
    assert!(
        p.body.contains(&format!("data-machine=\"{id}\"")),
        "{}",
        p.body
    );
    assert!(p.body.contains("web1"));

    let a = b
        .submit(
            list,
            &format!("/ui/admin/machines/{id}/forget"),
            &[("user", "alice")],
        )
        .await;
    assert_eq!(
        a.header("location"),
        Some("/ui/admin/machines?ok=forgotten"),
        "{}",
        a.body
    );
    let a = b
        .submit(list, &format!("/ui/admin/machines/{id}/remove"), &[])
        .await;
    assert_eq!(a.header("location"), Some("/ui/admin/machines?ok=removed"));
    assert!(
        !b.get(list)
            .await
            .body
            .contains(&format!("data-machine=\"{id}\""))
    );
    // Removing it again: the engine's sentence.
    let a = b
        .submit(list, &format!("/ui/admin/machines/{id}/remove"), &[])
        .await;
    assert_eq!(a.header("location"), Some("/ui/admin/machines?err=said"));
    for action in ["machine.join_token", "offline.forget", "machine.remove"] {
        assert!(srv.audited(action).await, "{action}");
    }
}

#[tokio::test]
async fn audit_events_and_sessions_answer_filter_page_and_export() {
    let srv = start().await;
    let mut b = srv.console().await;
    for path in [
        routes::UI_ADMIN_AUDIT,
        routes::UI_ADMIN_EVENTS,
        routes::UI_ADMIN_SESSIONS,
        routes::UI_ADMIN,
        routes::UI_ADMIN_USERS,
    ] {
        assert_eq!(
            srv.browser().get(path).await.status,
            303,
            "{path} without a session"
        );
        let p = b.get(path).await;
        assert_eq!(p.status, 200, "{path}: {}", p.body);
        for nav in [
            "nav-overview",
            "nav-users",
            "nav-policies",
            "nav-machines",
            "nav-audit",
            "nav-events",
            "nav-sessions",
        ] {
            assert!(p.body.contains(&format!("id=\"{nav}\"")), "{path}: {nav}");
        }
        assert!(p.body.contains("class=\"table-wrap\""), "{path}");
    }
    for path in [routes::UI_ADMIN_EVENTS, routes::UI_ADMIN_SESSIONS] {
        let a = b.get(&format!("{path}?format=csv")).await;
        assert_eq!(a.status, 200);
        assert_eq!(a.header("content-type"), Some("text/csv; charset=utf-8"));
    }
    // 60 users added through the console: 60 audit lines by admin:root.
    let csrf = b.get(routes::UI_ADMIN_USERS).await.csrf();
    for i in 0..60 {
        let name = format!("u{i:02}");
        let a = b
            .post(routes::UI_ADMIN_USERS, &[("csrf", &csrf), ("name", &name)])
            .await;
        assert_eq!(a.status, 303);
    }
    let p = b
        .get("/ui/admin/audit?action=user&actor=admin%3Aroot")
        .await;
    assert_eq!(p.status, 200);
    assert_eq!(p.body.matches("<tr data-audit=").count(), 50, "{}", p.body);
    assert!(
        p.body.contains("u59") && !p.body.contains(">u09<"),
        "newest first"
    );
    let older = p
        .body
        .split("id=\"older\" href=\"")
        .nth(1)
        .expect("an older link");
    let older = older[..older.find('"').unwrap()].replace("&amp;", "&");
    assert!(
        older.contains("action=user") && older.contains("before="),
        "{older}"
    );
    let p = b.get(&older).await;
    assert_eq!(p.body.matches("<tr data-audit=").count(), 10, "{}", p.body);
    assert!(p.body.contains(">u00<") && !p.body.contains("id=\"older\""));
    // Filters that match nothing, and a time that cannot be read.
    let p = b.get("/ui/admin/audit?action=user&until=1970-01-02").await;
    assert_eq!(p.body.matches("<tr data-audit=").count(), 0);
    let p = b.get("/ui/admin/audit?since=soon").await;
    assert!(
        p.body.contains("From: &quot;soon&quot; is not a time"),
        "{}",
        p.body
    );
    // An export with a filter it cannot read is refused, not widened to everything.
    assert_eq!(
        b.get("/ui/admin/audit?since=soon&format=csv").await.status,
        400
    );

    // The CSV export of the same filters: headers, every row.
    let a = b.get("/ui/admin/audit?action=user.add&format=csv").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("content-type"), Some("text/csv; charset=utf-8"));
    assert_eq!(
        a.header("content-disposition"),
        Some("attachment; filename=\"latchkey-audit.csv\"")
    );
    assert!(
        a.body
            .starts_with("id,time,actor,action,user,client_id,result,detail\r\n"),
        "{}",
        a.body
    );
    assert_eq!(a.body.matches("user.add").count(), 60);
}

#[tokio::test]
async fn a_csv_export_defuses_a_formula_in_a_display_name() {
    let srv = start().await;
    let mut b = srv.console().await;
    let a = b
        .submit(
            routes::UI_ADMIN_USERS,
            routes::UI_ADMIN_USERS,
            &[
                ("name", "eve"),
                ("display_name", "=HYPERLINK(\"https://evil.example\",\"x\")"),
            ],
        )
        .await;
    assert_eq!(a.status, 303, "{}", a.body);
    let p = b.get(routes::UI_ADMIN_USERS).await;
    assert!(
        p.body.contains("class=\"button secondary csv\""),
        "{}",
        p.body
    );
    let a = b.get("/ui/admin/users?format=csv").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("content-type"), Some("text/csv; charset=utf-8"));
    assert!(
        a.header("content-disposition")
            .unwrap()
            .starts_with("attachment; filename=")
    );
    assert!(
        a.body
            .starts_with("name,display_name,groups,state,locked_until,tokens,created_at\r\n")
    );
    assert!(
        a.body
            .contains("eve,\"'=HYPERLINK(\"\"https://evil.example\"\",\"\"x\"\")\","),
        "{}",
        a.body
    );
}
