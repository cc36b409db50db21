//! `GET /openapi.json` on a real latchkeyd, and the router against the route table of
//! `latchkey_proto::routes`: every route of the table is served with its method, no other
//! method is served on its paths, and the router names no path the table lacks but the web
//! token app's (`routes::WEB_APP_PATHS`, which are not API routes and not in the document).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use latchkey_client::{Client, ClientConfig, Credential, Error, Method, Trust};
use latchkey_proto::routes::{self, Access, HttpMethod, ROUTES, Route};
use latchkey_proto::{ErrorCode, TxId};
use latchkey_server::{RunningServer, ServerConfig};
use std::collections::{BTreeMap, BTreeSet};

struct Server {
    running: RunningServer,
    admin_token: String,
    _dir: tempfile::TempDir,
}

async fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = ServerConfig::new(dir.path().join("data"));
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    let running = latchkey_server::start(cfg.clone()).await.unwrap();
    let admin_token = std::fs::read_to_string(cfg.data_dir.join("admin.token"))
        .unwrap()
        .trim()
        .to_string();
    Server {
        running,
        admin_token,
        _dir: dir,
    }
}

impl Server {
    fn client(&self, credential: Credential) -> Client {
        let info = &self.running.info;
        Client::new(
            ClientConfig::parse(&info.url())
                .unwrap()
                .with_trust(Trust::Pin(info.tls_fingerprint.clone()))
                .with_credential(credential),
        )
        .unwrap()
    }
}

fn method(m: HttpMethod) -> Method {
    match m {
        HttpMethod::Get => Method::GET,
        HttpMethod::Post => Method::POST,
        HttpMethod::Patch => Method::PATCH,
        HttpMethod::Delete => Method::DELETE,
    }
}

/// A concrete path for a route: parameters filled with values no store holds, so no
/// request of this test changes anything.
fn concrete(r: &Route) -> String {
    let values: Vec<&str> = r
        .params()
        .map(|p| if p == "tx" { "0000nosuchtx" } else { "nosuch" })
        .collect();
    routes::fill(r.pattern, &values)
}

/// The router's own "no such route" answers, as opposed to a handler's `not_found`.
fn router_refused(
    res: &Result<(latchkey_client::StatusCode, latchkey_client::Bytes), Error>,
) -> Option<String> {
    match res {
        Err(Error::Api { error, message, .. })
            if (error == ErrorCode::NotFound.as_str()
                && message.starts_with("no such endpoint"))
                || error == ErrorCode::MethodNotAllowed.as_str() =>
        {
            Some(format!("{error}: {message}"))
        }
        _ => None,
    }
}

#[tokio::test]
async fn openapi_json_is_served_without_a_credential_and_is_the_contract() {
    let srv = start().await;
    let anon = srv.client(Credential::None);
    let doc: serde_json::Value = anon.get(routes::OPENAPI).await.unwrap();
    assert_eq!(doc, latchkey_proto::openapi::document());
    assert_eq!(doc["openapi"], "3.1.0");
    for r in ROUTES {
        let m = r.method.as_str().to_ascii_lowercase();
        assert!(
            doc["paths"][r.pattern][&m].is_object(),
            "{} {} is not in /openapi.json",
            r.method,
            r.pattern
        );
    }
    // The web token app's pages and the console's are served but are not part of the API.
    let paths = doc["paths"].as_object().unwrap();
    assert!(
        paths
            .keys()
            .all(|p| !p.starts_with(routes::WEB_APP) && !p.starts_with(routes::UI)),
        "{:?}",
        paths.keys().collect::<Vec<_>>()
    );
    // A second fetch is the same bytes (built once).
    let (_, a) = anon
        .request(Method::GET, routes::OPENAPI, None)
        .await
        .unwrap();
    let (_, b) = anon
        .request(Method::GET, routes::OPENAPI, None)
        .await
        .unwrap();
    assert_eq!(a, b);
}

#[tokio::test]
async fn the_router_serves_exactly_the_routes_of_the_table() {
    let srv = start().await;
    let admin = srv.client(Credential::Bearer(srv.admin_token.clone()));
    let anon = srv.client(Credential::None);
    assert!(TxId::parse("0000nosuchtx").is_ok());

    let mut methods: BTreeMap<&str, BTreeSet<HttpMethod>> = BTreeMap::new();
    for r in ROUTES {
        methods.entry(r.pattern).or_default().insert(r.method);
        let path = concrete(r);
        // GET/DELETE need no body, so the admin key reaches admin handlers; every other
        // request is refused before a handler acts (no body, wrong caller).
        let client = if r.access == Access::Admin {
            &admin
        } else {
            &anon
        };
        let res = client.request(method(r.method), &path, None).await;
        if let Some(refusal) = router_refused(&res) {
            panic!(
                "{} {path} (table: {}) is not routed: {refusal}",
                r.method, r.pattern
            );
        }
    }

    let all = [
        HttpMethod::Get,
        HttpMethod::Post,
        HttpMethod::Patch,
        HttpMethod::Delete,
    ];
    for (pattern, served) in &methods {
        let r = ROUTES.iter().find(|r| r.pattern == *pattern).unwrap();
        for m in all.iter().filter(|m| !served.contains(m)) {
            let res = admin.request(method(*m), &concrete(r), None).await;
            match res {
                Err(Error::Api { error, .. }) if error == ErrorCode::MethodNotAllowed.as_str() => {}
                other => panic!("{m} {pattern} is served but not in the table: {other:?}"),
            }
        }
    }

    // The web app's paths answer too (what they answer: tests/app.rs).
    for path in [
        routes::WEB_APP_ROOT,
        "/app/index.html",
        "/app/register",
        routes::UI_ROOT,
        "/ui/static/ui.css",
    ] {
        let (status, _) = anon.request(Method::GET, path, None).await.unwrap();
        assert_eq!(status, 200, "{path}");
    }

    // A path outside the table is the router's 404.
    let res = admin.request(Method::GET, "/v1/no-such-route", None).await;
    assert!(router_refused(&res).is_some(), "{res:?}");
}

/// The router takes every path from `latchkey_proto::routes` (no literal a client could spell
/// differently), and together those constants are exactly the table's paths.
#[test]
fn the_router_takes_its_paths_from_the_route_table() {
    // The API's router, and the web console's routers (src/web/, every file: the pages of
    // each area have their own `router()`).
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut sources = vec![(
        "http/mod.rs".to_string(),
        include_str!("../src/http/mod.rs").to_string(),
    )];
    rust_files(&root.join("web"), &mut sources);
    let consts: std::collections::BTreeMap<&str, &str> = include_str!("../../proto/src/routes.rs")
        .lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("pub const ")?;
            let (name, rest) = rest.split_once(": &str = \"")?;
            Some((name, rest.strip_suffix("\";")?))
        })
        .collect();
    let mut served = BTreeSet::new();
    for (file, router) in &sources {
        for (i, _) in router.match_indices(".route(") {
            let arg = router[i + ".route(".len()..].trim_start();
            assert!(
                !arg.starts_with('"'),
                "{file} spells a path as a literal: {}",
                &arg[..arg.find(',').unwrap_or(arg.len())]
            );
            let name = arg
                .strip_prefix("routes::")
                .and_then(|a| {
                    a.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .next()
                })
                .unwrap_or_else(|| panic!("a route not from latchkey_proto::routes: {arg:.40}"));
            served.insert(
                *consts
                    .get(name)
                    .unwrap_or_else(|| panic!("no constant {name}")),
            );
        }
    }
    let table: BTreeSet<&str> = ROUTES
        .iter()
        .map(|r| r.pattern)
        .chain(routes::WEB_APP_PATHS.iter().copied())
        .chain(routes::WEB_UI_PATHS.iter().copied())
        .chain(routes::WEB_ADMIN_PATHS.iter().copied())
        .chain(routes::WEB_ME_PATHS.iter().copied())
        .collect();
    assert_eq!(
        served, table,
        "the router's paths and the route table (with the web app's and the console's paths) differ"
    );
}

/// Every `.rs` file below `dir`, as (path relative to src/, text).
fn rust_files(dir: &std::path::Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push((
                p.display().to_string(),
                std::fs::read_to_string(&p).unwrap(),
            ));
        }
    }
}
