//! The console: the browser front end built from `gateway/console` into
//! `gateway/console/dist`, embedded in the binary and served at `/` by
//! every listener that serves the public API. It is a client of the API
//! alone: nothing here reads the store or the engine.
//!
//! Hashed assets (`/assets/…`) are cached for good; the page itself is
//! revalidated on every load, so a new binary's console is picked up at
//! once. Any other path without a file name answers the page (the console
//! routes in the browser); `/v1` and `/hooks` keep the API's answers.

use std::collections::HashMap;
use std::io::Write;
use std::sync::LazyLock;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::error::ApiError;

#[derive(rust_embed::Embed)]
#[folder = "console/dist"]
struct Dist;

/// What the console's page may load and run: its own scripts and nothing
/// inline, no framing, requests to its own origin only.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self'; \
     connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// One embedded file, ready to answer.
struct Asset {
    body: Bytes,
    /// The body gzip-compressed, when that is smaller.
    gzip: Option<Bytes>,
    mime: HeaderValue,
    etag: HeaderValue,
    cache: &'static str,
}

static ASSETS: LazyLock<HashMap<String, Asset>> = LazyLock::new(|| {
    Dist::iter()
        .filter_map(|path| {
            let file = Dist::get(&path)?;
            let body = Bytes::from(file.data.into_owned());
            let hash: String = file
                .metadata
                .sha256_hash()
                .iter()
                .take(16)
                .map(|b| format!("{b:02x}"))
                .collect();
            let asset = Asset {
                gzip: gzip(&body),
                mime: HeaderValue::from_str(file.metadata.mimetype())
                    .unwrap_or(HeaderValue::from_static("application/octet-stream")),
                etag: HeaderValue::from_str(&format!("\"{hash}\""))
                    .unwrap_or(HeaderValue::from_static("\"0\"")),
                cache: if path.starts_with("assets/") {
                    "public, max-age=31536000, immutable"
                } else {
                    "no-cache"
                },
                body,
            };
            Some((path.into_owned(), asset))
        })
        .collect()
});

fn gzip(body: &Bytes) -> Option<Bytes> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(body).ok()?;
    let compressed = encoder.finish().ok()?;
    (compressed.len() + 64 < body.len()).then(|| Bytes::from(compressed))
}

/// Whether the path belongs to the API (the operations routes among it,
/// on a listener that does not serve them), whose unknown routes answer
/// as the API does.
fn is_api(path: &str) -> bool {
    crate::OPERATIONS_PATHS.contains(&path)
        || ["/v1", "/hooks"]
            .iter()
            .any(|p| path == *p || path.starts_with(&format!("{p}/")))
}

/// The fallback of the public listener: the console's files and page.
pub(crate) async fn serve(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path();
    if is_api(path) {
        return ApiError::not_found("route").into_response();
    }
    if method != Method::GET && method != Method::HEAD {
        return ApiError::not_found("route").into_response();
    }
    let name = path.trim_start_matches('/');
    let last = name.rsplit('/').next().unwrap_or_default();
    let asset = match ASSETS.get(name) {
        Some(asset) if !name.is_empty() => asset,
        // A path naming no file is one of the console's own routes.
        _ if !last.contains('.') && !name.starts_with("assets/") => {
            match ASSETS.get("index.html") {
                Some(page) => page,
                None => return ApiError::not_found("route").into_response(),
            }
        }
        _ => return ApiError::not_found("file").into_response(),
    };
    answer(asset, &method, &headers)
}

fn answer(asset: &Asset, method: &Method, headers: &HeaderMap) -> Response {
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',')
                .any(|t| t.trim().trim_start_matches("W/") == asset.etag)
        });
    let gzip = asset.gzip.as_ref().filter(|_| accepts_gzip(headers));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let body = gzip.unwrap_or(&asset.body).clone();
        let length = body.len();
        let body = if method == Method::HEAD {
            Body::empty()
        } else {
            Body::from(body)
        };
        let mut response = Response::new(body);
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, length.into());
        response
    };
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, asset.mime.clone());
    h.insert(header::ETAG, asset.etag.clone());
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(asset.cache));
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if gzip.is_some() && !fresh {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    secure(h);
    response
}

/// The headers every console answer carries.
pub fn secure(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
}

/// Whether the client takes gzip (`gzip` listed without `q=0`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.split_once('=').is_some_and(|(name, q)| {
                    name.trim().eq_ignore_ascii_case("q")
                        && q.trim().parse::<f32>().is_ok_and(|q| q == 0.0)
                })
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(name: &'static str, value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_static(value));
        h
    }

    #[test]
    fn gzip_is_taken_when_listed_and_not_refused() {
        assert!(accepts_gzip(&with("accept-encoding", "gzip, deflate, br")));
        assert!(accepts_gzip(&with(
            "accept-encoding",
            "br;q=1.0, gzip;q=0.5"
        )));
        assert!(accepts_gzip(&with("accept-encoding", "*")));
        assert!(!accepts_gzip(&with("accept-encoding", "gzip;q=0")));
        assert!(!accepts_gzip(&with("accept-encoding", "gzip;Q=0")));
        assert!(!accepts_gzip(&with("accept-encoding", "gzip; q=0.000")));
        assert!(!accepts_gzip(&with("accept-encoding", "br")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn api_paths_are_the_apis() {
        assert!(is_api("/v1"));
        assert!(is_api("/v1/nothing"));
        assert!(is_api("/hooks/t/x"));
        assert!(!is_api("/v1x"));
        // A listener without the operations routes answers them as unknown.
        assert!(is_api("/health") && is_api("/ready") && is_api("/metrics"));
        assert!(!is_api("/workflows/1"));
        assert!(!is_api("/"));
    }

    #[test]
    fn the_page_is_embedded() {
        let page = ASSETS
            .get("index.html")
            .expect("the console's page is embedded");
        assert_eq!(page.mime, "text/html");
        assert_eq!(page.cache, "no-cache");
        assert!(
            ASSETS
                .keys()
                .any(|k| k.starts_with("assets/") && k.ends_with(".js"))
        );
    }
}
