//! Security keys and passkeys in the browser: registering one (`/ui/me/key`) and signing in
//! with one (`/ui/me/signin/key`). The server's options travel in a
//! `<script type="application/json">` block, `/ui/static/webauthn.js` runs the ceremony and
//! posts the answer in form#key-form with the CSRF field; errors show in `#key-status`.

use super::home::refused as back_with;
use super::{invite_note, me, nav};
use crate::engine::{KeyChallenge, KeyCreate};
use crate::http::Ctx;
use crate::web::assets;
use crate::web::layout::{self, Flash, FlashKind, Nav};
use crate::web::session::{SigninCsrf, SigninForm, UserForm, UserSession, WebResult};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use latchkey_proto::fido2::LoginFido2;
use latchkey_proto::routes;
use maud::{Markup, PreEscaped, html};

/// JSON for a `<script type="application/json">` block: `<` is escaped so no value can
/// close the element.
fn json_block(v: &serde_json::Value) -> Markup {
    let text = v.to_string().replace('<', "\\u003c");
    html! { script type="application/json" id="webauthn-options" { (PreEscaped(text)) } }
}

fn create_options(o: &KeyCreate) -> serde_json::Value {
    serde_json::json!({
        "mode": "create",
        "rp_id": o.rp_id,
        "rp_name": o.rp_name,
        "user_id": o.user_id,
        "user_name": o.user_name,
        "user_display_name": o.user_display_name,
        "challenge": o.challenge,
        "algorithms": o.algorithms,
        "exclude_credentials": o.exclude_credentials,
        "timeout_ms": o.timeout_ms,
    })
}

fn get_options(c: &KeyChallenge) -> serde_json::Value {
    serde_json::json!({
        "mode": "get",
        "rp_id": c.rp_id,
        "challenge": c.challenge,
        "allow_credentials": c.allow_credentials,
        "timeout_ms": c.timeout_ms,
    })
}

fn script() -> Markup {
    html! { script src=(assets::url("webauthn.js")) {} }
}

/// `GET /ui/me/key`: a fresh registration ceremony (2 minutes) with its button.
pub async fn register_form(State(cx): State<Ctx>, user: UserSession) -> WebResult<Response> {
    let page = |body: Markup, flash: Option<Flash>| {
        layout::html_response(
            StatusCode::OK,
            layout::page("Add a security key", &nav(&user, "nav-me", flash), body),
        )
    };
    let opts = match cx.engine.own_key_start(&me(&user), "").await {
        Ok(o) => o,
        Err(crate::engine::EngineError::Invalid(why)) => {
            let body = html! {
                h1 { "Add a security key or passkey" }
                p { a href=(routes::UI_ME) { "Back to your tokens" } }
            };
            return Ok(page(
                body,
                Some(Flash {
                    kind: FlashKind::Err,
                    text: why,
                }),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let body = html! {
        h1 { "Add a security key or passkey" }
        @if let Some(note) = invite_note(&user) { p.card { (note) } }
        form.card.narrow #key-form method="post" action=(routes::UI_ME_KEY) {
            (layout::csrf_field(&user.session))
            input type="hidden" name="ceremony" value=(opts.ceremony);
            input type="hidden" name="label" value="";
            input type="hidden" name="attestation_object" value="";
            input type="hidden" name="client_data_json" value="";
            (layout::field("key-label", "key_label", "A name for it", "", Some("e.g. blue key, my phone"), "text", None))
            p.muted { "Your browser asks you to touch the key, or to confirm with your fingerprint, face or PIN. The request lasts 2 minutes: reload the page if it ran out." }
            button #key-register type="button" { "Register" }
            p #key-status role="status" aria-live="polite" {}
        }
        (json_block(&create_options(&opts)))
        (script())
        p { a href=(routes::UI_ME) { "Back to your tokens" } }
    };
    Ok(page(body, None))
}

#[derive(serde::Deserialize)]
pub struct RegisterFields {
    #[serde(default)]
    ceremony: String,
    #[serde(default)]
    label: String,
    #[serde(default)]
    attestation_object: String,
    #[serde(default)]
    client_data_json: String,
}

/// `POST /ui/me/key`: the browser's answer.
pub async fn register_finish(
    State(cx): State<Ctx>,
    UserForm { user, form }: UserForm<RegisterFields>,
) -> WebResult<Response> {
    match cx
        .engine
        .own_key_finish(
            &me(&user),
            &form.ceremony,
            Some(&form.label),
            &form.attestation_object,
            &form.client_data_json,
        )
        .await
    {
        Ok(_) => Ok(layout::see_other(&format!("{}?ok=key", routes::UI_ME))),
        Err(e) => back_with(&cx, &user, routes::UI_ME, e.into()).await,
    }
}

#[derive(serde::Deserialize)]
pub struct NameField {
    #[serde(default)]
    name: String,
}

/// `POST /ui/me/signin/key`: the name; the page that asks the browser for an assertion.
pub async fn signin_start(
    State(cx): State<Ctx>,
    headers: HeaderMap,
    SigninForm { form, ip, .. }: SigninForm<NameField>,
) -> WebResult<Response> {
    if !cx.signin_limiter.allow(&ip) {
        return Ok(layout::see_other("/ui/me/signin?err=toomany"));
    }
    let key_note = cx.engine.cfg().web_rp_id.is_none();
    let ch = match cx.engine.key_signin_start(&form.name, &ip).await {
        Ok(ch) => ch,
        Err(crate::engine::EngineError::Invalid(why)) => {
            return super::signin::refused(&headers, &why, key_note);
        }
        Err(e) => return Err(e.into()),
    };
    let pre = SigninCsrf::for_form(&headers)?;
    let body = html! {
        h1 { "Use your security key or passkey" }
        form.card.narrow #key-form method="post" action=(routes::UI_ME_SIGNIN_KEY_FINISH) {
            (layout::signin_csrf(&pre))
            input type="hidden" name="ceremony" value=(ch.ceremony);
            input type="hidden" name="credential_id" value="";
            input type="hidden" name="authenticator_data" value="";
            input type="hidden" name="client_data_json" value="";
            input type="hidden" name="signature" value="";
            p { "Touch your security key, or confirm with your fingerprint, face or PIN." }
            p #key-status role="status" aria-live="polite" {}
            button #key-retry type="button" { "Try again" }
        }
        (json_block(&get_options(&ch)))
        (script())
        p { a href=(routes::UI_ME_SIGNIN) { "Back to the sign-in page" } }
    };
    let mut r = layout::html_response(
        StatusCode::OK,
        layout::page("Sign in with a security key", &Nav::default(), body),
    );
    if let Some(c) = pre.set_cookie() {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(r)
}

#[derive(serde::Deserialize)]
pub struct AssertionFields {
    #[serde(default)]
    ceremony: String,
    #[serde(default)]
    credential_id: String,
    #[serde(default)]
    authenticator_data: String,
    #[serde(default)]
    client_data_json: String,
    #[serde(default)]
    signature: String,
}

/// `POST /ui/me/signin/key/finish`: the assertion; right, a Strong session.
pub async fn signin_finish(
    State(cx): State<Ctx>,
    headers: HeaderMap,
    SigninForm {
        form,
        ip,
        old_cookie,
    }: SigninForm<AssertionFields>,
) -> WebResult<Response> {
    let answer = LoginFido2 {
        credential_id: form.credential_id,
        authenticator_data: form.authenticator_data,
        signature: form.signature,
        client_data_json: form.client_data_json,
    };
    let key_note = cx.engine.cfg().web_rp_id.is_none();
    match cx.engine.key_signin_finish(&form.ceremony, &answer).await? {
        Ok(signed) => super::signin::open(&cx, signed, &ip, old_cookie.as_deref()).await,
        Err(why) => super::signin::refused(&headers, &why, key_note),
    }
}
