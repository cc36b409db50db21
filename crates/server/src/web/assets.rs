//! The console's static files (`crates/server/web/ui/`), embedded at build time and served
//! at `/ui/static/{file}` from one table: a request can only name a row, never a path on
//! the disk. Each file has a strong ETag and a long cache; the pages link them with
//! `?v=TAG` ([`url`]), so a new build is a new URL.

use axum::body::Body;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::OnceLock;

struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! assets {
    ($($name:literal => $ty:literal,)*) => {
        &[$(Asset {
            name: $name,
            content_type: $ty,
            bytes: include_bytes!(concat!("../../web/ui/", $name)),
        },)*]
    };
}

/// Every file of `crates/server/web/ui/` (the test below keeps the two equal).
static ASSETS: &[Asset] = assets! {
    "ui.css" => "text/css; charset=utf-8",
    "webauthn.js" => "text/javascript; charset=utf-8",
};

/// Each file's tag: 16 hex digits of its SHA-256.
fn tags() -> &'static [(&'static str, String)] {
    static TAGS: OnceLock<Vec<(&'static str, String)>> = OnceLock::new();
    TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                (
                    a.name,
                    latchkey_crypto::sha256_hex(a.bytes)
                        .chars()
                        .take(16)
                        .collect(),
                )
            })
            .collect()
    })
}

fn tag_of(name: &str) -> Option<&'static str> {
    tags()
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| t.as_str())
}

/// The URL a page links a static file by: `/ui/static/NAME?v=TAG`.
pub fn url(name: &str) -> String {
    match tag_of(name) {
        Some(tag) => format!("/ui/static/{name}?v={tag}"),
        None => format!("/ui/static/{name}"),
    }
}

/// `GET /ui/static/{file}`.
pub async fn file(Path(name): Path<String>, headers: HeaderMap) -> Response {
    let (Some(a), Some(tag)) = (ASSETS.iter().find(|a| a.name == name), tag_of(&name)) else {
        return super::layout::error_page(StatusCode::NOT_FOUND, "There is no such file.");
    };
    let etag =
        HeaderValue::from_str(&format!("\"{tag}\"")).unwrap_or(HeaderValue::from_static("\"-\""));
    let cache = HeaderValue::from_static("public, max-age=31536000, immutable");
    let hit = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',').map(str::trim).any(|t| {
                t == "*" || t.strip_prefix("W/").unwrap_or(t).as_bytes() == etag.as_bytes()
            })
        });
    if hit {
        return (
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag), (header::CACHE_CONTROL, cache)],
        )
            .into_response();
    }
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(a.content_type),
            ),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, cache),
        ],
        Body::from(a.bytes),
    )
        .into_response()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn the_table_is_the_directory() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web/ui");
        let on_disk: BTreeSet<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        let table: BTreeSet<String> = ASSETS.iter().map(|a| a.name.to_string()).collect();
        assert_eq!(
            on_disk, table,
            "add each file of web/ui/ to ASSETS in web/assets.rs"
        );
    }

    #[test]
    fn urls_carry_the_files_tag() {
        let u = url("ui.css");
        assert!(u.starts_with("/ui/static/ui.css?v="), "{u}");
        assert_eq!(u.len(), "/ui/static/ui.css?v=".len() + 16);
    }
}
