//! The web UI's static files, embedded in the binary and served under names carrying a
//! hash of their content (`/static/agnes.3f9a….css`), so they are cached for a year and a
//! new release is fetched at once. htmx (Zero-Clause BSD, `assets/htmx.LICENSE`) is
//! vendored as released, with its gzip twin for clients that accept it.

use axum::extract::Path;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::LazyLock;

struct Asset {
    /// The name pages link to: stem, content hash, extension.
    path: String,
    content_type: &'static str,
    body: &'static [u8],
    gzip: Option<&'static [u8]>,
}

fn asset(name: &str, content_type: &'static str, body: &'static [u8], gzip: Option<&'static [u8]>) -> Asset {
    let hash = format!("{:016x}", xxhash_rust::xxh3::xxh3_64(body));
    let (stem, ext) = name.rsplit_once('.').expect("asset names have an extension");
    Asset { path: format!("{stem}.{hash}.{ext}"), content_type, body, gzip }
}

static ASSETS: LazyLock<[Asset; 3]> = LazyLock::new(|| {
    [
        asset("agnes.css", "text/css; charset=utf-8", include_bytes!("assets/agnes.css"), None),
        asset("agnes.js", "text/javascript; charset=utf-8", include_bytes!("assets/agnes.js"), None),
        asset(
            "htmx.min.js",
            "text/javascript; charset=utf-8",
            include_bytes!("assets/htmx.min.js"),
            Some(include_bytes!("assets/htmx.min.js.gz")),
        ),
    ]
});

/// The URL of an asset by its plain name (`agnes.css`).
pub fn url(name: &str) -> String {
    let (stem, ext) = name.rsplit_once('.').unwrap_or((name, ""));
    ASSETS
        .iter()
        .find(|a| a.path.starts_with(&format!("{stem}.")) && a.path.ends_with(&format!(".{ext}")))
        .map(|a| format!("/static/{}", a.path))
        .unwrap_or_default()
}

/// `GET /static/{file}`: public, immutable.
pub async fn serve(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let Some(a) = ASSETS.iter().find(|a| a.path == file) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let gzip_ok = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let cache = (header::CACHE_CONTROL, "public, max-age=31536000, immutable");
    match a.gzip.filter(|_| gzip_ok) {
        Some(gz) => (
            [
                (header::CONTENT_TYPE, a.content_type),
                cache,
                (header::CONTENT_ENCODING, "gzip"),
                (header::VARY, "accept-encoding"),
            ],
            gz,
        )
            .into_response(),
        None => {
            ([(header::CONTENT_TYPE, a.content_type), cache, (header::VARY, "accept-encoding")], a.body).into_response()
        }
    }
}

/// Bytes a page costs beyond its HTML: every asset as sent to a client that takes gzip.
#[cfg(test)]
pub fn weight() -> usize {
    ASSETS.iter().map(|a| a.gzip.map_or(a.body.len(), <[u8]>::len)).sum()
}
