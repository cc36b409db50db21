//! The web token app (issue 22) at `/app/`: its files, embedded in the binary at build time,
//! served from one table with the headers that keep the page to itself.
//!
//! Nothing is read from the disk at run time: a request can only ever name a row of
//! [`ASSETS`] (looked up by its exact path, never joined to a directory), so `..`, `%2e%2e`
//! or `//` find nothing. The test below keeps the table and `crates/server/web/app/` equal.
//!
//! Caching: every answer says `no-cache` with a strong `ETag`, so the browser revalidates
//! each file cheaply (304); the app's service worker keeps the offline copy. `sw.js` carries
//! a version over all files (`__LK_ASSETS_VERSION__` replaced), so any change to any file is
//! a new service worker, which fetches a new cache.

use super::error::ApiErr;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use latchkey_proto::routes;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

/// One file of the app.
pub struct Asset {
    /// Path below `/app/`, `/`-separated, as in `crates/server/web/app/`.
    pub path: &'static str,
    pub content_type: &'static str,
    pub bytes: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";
const MANIFEST: &str = "application/manifest+json";
const PNG: &str = "image/png";
const TEXT: &str = "text/plain; charset=utf-8";

macro_rules! assets {
    ($($path:literal => $ty:ident,)*) => {
        &[$(Asset {
            path: $path,
            content_type: $ty,
            bytes: include_bytes!(concat!("../../web/app/", $path)),
        },)*]
    };
}

/// Every file of `crates/server/web/app/`, and nothing else. A file added there must be added
/// here (the test `the_table_is_the_directory` says which line to add).
pub static ASSETS: &[Asset] = assets! {
    "index.html" => HTML,
    "app.css" => CSS,
    "app.js" => JS,
    "accounts.js" => JS,
    "api.js" => JS,
    "crypto.js" => JS,
    "lock.js" => JS,
    "push.js" => JS,
    "scan.js" => JS,
    "store.js" => JS,
    "ui.js" => JS,
    "sw.js" => JS,
    "manifest.webmanifest" => MANIFEST,
    "icon.svg" => SVG,
    "icon-192.png" => PNG,
    "icon-512.png" => PNG,
    "vendor/README.md" => TEXT,
    "vendor/jsqr/LICENSE" => TEXT,
    "vendor/jsqr/jsQR.js" => JS,
    "vendor/noble-ciphers/LICENSE" => TEXT,
    "vendor/noble-ciphers/_arx.js" => JS,
    "vendor/noble-ciphers/_poly1305.js" => JS,
    "vendor/noble-ciphers/chacha.js" => JS,
    "vendor/noble-ciphers/utils.js" => JS,
};

/// Pages of the app (below `/app/`): the app routes itself, so each is its `index.html`.
/// `register` is where registration links point (`crates/token/src/link.rs`).
const PAGES: &[&str] = &["register"];

const INDEX: &str = "index.html";
const SERVICE_WORKER: &str = "sw.js";
/// Replaced in `sw.js` by [`Built::version`].
pub const VERSION_PLACEHOLDER: &str = "__LK_ASSETS_VERSION__";

pub const APP_VERSION_HEADER: &str = "x-latchkey-app-version";

/// `connect-src https:`: one installed app may hold accounts on several servers (the token
/// app's API answers CORS for it). No inline script or style, no framing, no forms, no
/// `<base>`; the camera (QR codes) for this origin only; no referrer, as the registration
/// code is in the page's query string.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self' https:; manifest-src 'self'; worker-src 'self'; media-src 'self' blob: mediastream:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const FIXED_HEADERS: &[(&str, &str)] = &[
    ("content-security-policy", CSP),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("permissions-policy", "camera=(self)"),
    ("cache-control", "no-cache"),
];

/// A file as it is served: its bytes (for `sw.js`, with the version in) and their tag.
struct Served {
    content_type: &'static str,
    bytes: Bytes,
    etag: HeaderValue,
}

struct Built {
    /// Short hex hash over every file's path and bytes.
    version: HeaderValue,
    files: Vec<(&'static str, Served)>,
}

/// Computed on the first request (hashing the files takes a few milliseconds), then shared.
fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| build(ASSETS))
}

fn build(assets: &'static [Asset]) -> Built {
    let version = version(assets);
    let files = assets
        .iter()
        .map(|a| {
            let bytes = if a.path == SERVICE_WORKER {
                Bytes::from(
                    String::from_utf8_lossy(a.bytes)
                        .replace(VERSION_PLACEHOLDER, &version)
                        .into_bytes(),
                )
            } else {
                Bytes::from_static(a.bytes)
            };
            let etag = header_value(&format!("\"{}\"", latchkey_crypto::sha256_hex(&bytes)));
            (
                a.path,
                Served {
                    content_type: a.content_type,
                    bytes,
                    etag,
                },
            )
        })
        .collect();
    Built {
        version: header_value(&version),
        files,
    }
}

/// 16 hex digits of SHA-256 over every (path, length, bytes): a renamed, added, removed or
/// changed file changes it.
fn version(assets: &[Asset]) -> String {
    let mut h = Sha256::new();
    for a in assets {
        h.update(a.path.as_bytes());
        h.update([0]);
        h.update((a.bytes.len() as u64).to_be_bytes());
        h.update(a.bytes);
    }
    latchkey_crypto::sha256_hex(&h.finalize())
        .chars()
        .take(16)
        .collect()
}

/// For hex digits and quotes, always a valid header value.
fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// The headers of every answer under `/app`, refusals included (the router's 405 too: a
/// layer on the whole router). `/app` and everything below `/app/` are exactly the paths
/// [`routes::WEB_APP_PATHS`] match.
pub async fn headers(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if !(path == routes::WEB_APP || path.starts_with(routes::WEB_APP_ROOT)) {
        return next.run(req).await;
    }
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    for (name, value) in FIXED_HEADERS {
        h.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    h.insert(
        HeaderName::from_static(APP_VERSION_HEADER),
        built().version.clone(),
    );
    resp
}

/// `GET /app`: the app's pages resolve their files relative to `/app/`. The target is a
/// relative reference (`app/`), so it stays right behind a proxy that serves latchkeyd under
/// a prefix; the query (a registration code) goes along.
pub async fn redirect(uri: Uri) -> Response {
    const TARGET: &str = "app/";
    // A parsed query is visible ASCII, so a valid header value.
    let target = uri
        .query()
        .and_then(|q| HeaderValue::from_str(&format!("{TARGET}?{q}")).ok())
        .unwrap_or(HeaderValue::from_static(TARGET));
    (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, target)]).into_response()
}

/// `GET /app/`: the app.
pub async fn root(headers: HeaderMap) -> Response {
    file_answer(INDEX, &headers)
}

/// `GET /app/{*path}`: a file of the table or a page; anything else is a 404. The raw path is
/// matched, not a decoded one: `%2e%2e` stays those six characters and matches no row.
pub async fn file(uri: Uri, headers: HeaderMap) -> Response {
    let rest = uri
        .path()
        .strip_prefix(routes::WEB_APP_ROOT)
        .unwrap_or_default();
    if PAGES.contains(&rest) {
        return file_answer(INDEX, &headers);
    }
    file_answer(rest, &headers)
}

fn file_answer(path: &str, req_headers: &HeaderMap) -> Response {
    let Some((_, f)) = built().files.iter().find(|(p, _)| *p == path) else {
        return ApiErr::not_found("no such file in the web token app").into_response();
    };
    if matches_etag(req_headers, &f.etag) {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, f.etag.clone())]).into_response();
    }
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(f.content_type),
            ),
            (header::ETAG, f.etag.clone()),
        ],
        Body::from(f.bytes.clone()),
    )
        .into_response()
}

/// `If-None-Match` with our tag among its list, or `*` (RFC 9110 §13.1.2: weak comparison,
/// so a `W/` prefix added by a proxy still matches).
fn matches_etag(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let ours = etag.as_bytes();
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t).as_bytes() == ours)
}

/// The content type a file gets from its name; `None` for a kind the app does not serve yet
/// (add it here and in the table).
#[cfg(test)]
fn content_type_for(path: &str) -> Option<&'static str> {
    let name = path.rsplit('/').next().unwrap_or(path);
    if name == "LICENSE" {
        return Some(TEXT);
    }
    match name.rsplit_once('.')?.1 {
        "html" => Some(HTML),
        "js" | "mjs" => Some(JS),
        "css" => Some(CSS),
        "svg" => Some(SVG),
        "webmanifest" => Some(MANIFEST),
        "png" => Some(PNG),
        "txt" | "md" => Some(TEXT),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::path::Path;

    fn files_under(dir: &Path, prefix: &str, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            let rel = format!("{prefix}{name}");
            if entry.file_type().unwrap().is_dir() {
                files_under(&entry.path(), &format!("{rel}/"), out);
            } else {
                out.insert(rel);
            }
        }
    }

    fn type_name(t: &str) -> &'static str {
        [
            (HTML, "HTML"),
            (JS, "JS"),
            (CSS, "CSS"),
            (SVG, "SVG"),
            (MANIFEST, "MANIFEST"),
            (PNG, "PNG"),
            (TEXT, "TEXT"),
        ]
        .into_iter()
        .find(|(ct, _)| *ct == t)
        .map_or("?", |(_, name)| name)
    }

    /// Whoever adds, renames or removes a file of the app sees at once what to change here.
    #[test]
    fn the_table_is_the_directory() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("web/app");
        let mut on_disk = BTreeSet::new();
        files_under(&dir, "", &mut on_disk);
        let table: BTreeSet<String> = ASSETS.iter().map(|a| a.path.to_string()).collect();
        let missing: Vec<String> = on_disk
            .difference(&table)
            .map(|p| match content_type_for(p) {
                Some(t) => format!("    \"{p}\" => {},", type_name(t)),
                None => format!("    \"{p}\" (a kind of file with no content type yet)"),
            })
            .collect();
        assert!(
            missing.is_empty(),
            "files in crates/server/web/app that latchkeyd does not serve; add them to ASSETS in crates/server/src/http/app_assets.rs:\n{}",
            missing.join("\n")
        );
        let gone: Vec<&String> = table.difference(&on_disk).collect();
        assert!(
            gone.is_empty(),
            "ASSETS names files that do not exist: {gone:?}"
        );
    }

    #[test]
    fn each_file_has_the_content_type_of_its_name() {
        for a in ASSETS {
            assert_eq!(Some(a.content_type), content_type_for(a.path), "{}", a.path);
        }
    }

    #[test]
    fn the_table_has_no_duplicates_and_no_odd_paths() {
        let mut seen = BTreeSet::new();
        for a in ASSETS {
            assert!(seen.insert(a.path), "{} twice", a.path);
            assert!(
                !a.path.starts_with('/')
                    && !a
                        .path
                        .split('/')
                        .any(|s| s.is_empty() || s == "." || s == ".."),
                "{}",
                a.path
            );
            assert!(!PAGES.contains(&a.path), "{} is also a page", a.path);
        }
        assert!(seen.contains(INDEX) && seen.contains(SERVICE_WORKER));
    }

    #[test]
    fn the_service_worker_carries_the_version() {
        let raw = ASSETS.iter().find(|a| a.path == SERVICE_WORKER).unwrap();
        assert!(
            String::from_utf8_lossy(raw.bytes).contains(VERSION_PLACEHOLDER),
            "sw.js must name its cache with {VERSION_PLACEHOLDER}: without it a changed app keeps its old cache"
        );
        let b = built();
        let (_, sw) = b.files.iter().find(|(p, _)| *p == SERVICE_WORKER).unwrap();
        let text = std::str::from_utf8(&sw.bytes).unwrap();
        assert!(!text.contains(VERSION_PLACEHOLDER));
        assert!(text.contains(b.version.to_str().unwrap()));
        assert_eq!(b.version.len(), 16);
        let tag = format!("\"{}\"", latchkey_crypto::sha256_hex(&sw.bytes));
        assert_eq!(sw.etag, tag.as_str(), "the tag is of the bytes served");
    }

    #[test]
    fn any_change_to_any_file_changes_the_version() {
        static A: &[Asset] = &[
            Asset {
                path: "a.js",
                content_type: JS,
                bytes: b"1",
            },
            Asset {
                path: "b.js",
                content_type: JS,
                bytes: b"2",
            },
        ];
        static CHANGED: &[Asset] = &[
            Asset {
                path: "a.js",
                content_type: JS,
                bytes: b"1",
            },
            Asset {
                path: "b.js",
                content_type: JS,
                bytes: b"3",
            },
        ];
        static RENAMED: &[Asset] = &[
            Asset {
                path: "a.js",
                content_type: JS,
                bytes: b"1",
            },
            Asset {
                path: "c.js",
                content_type: JS,
                bytes: b"2",
            },
        ];
        // Bytes moved across the boundary between two files.
        static SHIFTED: &[Asset] = &[
            Asset {
                path: "a.js",
                content_type: JS,
                bytes: b"12",
            },
            Asset {
                path: "b.js",
                content_type: JS,
                bytes: b"",
            },
        ];
        let v = version(A);
        for other in [CHANGED, RENAMED, SHIFTED, &A[..1]] {
            assert_ne!(v, version(other));
        }
        assert_eq!(v, version(A));
    }

    #[test]
    fn if_none_match_takes_lists_weak_tags_and_star() {
        let tag = HeaderValue::from_static("\"abc\"");
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::IF_NONE_MATCH, HeaderValue::from_static(v));
            matches_etag(&h, &tag)
        };
        assert!(with("\"abc\""));
        assert!(with("\"x\", \"abc\""));
        assert!(with("W/\"abc\""));
        assert!(with("*"));
        assert!(!with("\"abd\""));
        assert!(!with("abc"));
        assert!(!matches_etag(&HeaderMap::new(), &tag));
    }
}
