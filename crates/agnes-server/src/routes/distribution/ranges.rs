//! Serving a file from disk without loading it: `Content-Length`, strong `ETag`,
//! `If-None-Match` → 304, `If-Range`, single ranges (206), multiple ranges
//! (`multipart/byteranges`), unsatisfiable ranges (416), and HEAD.

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use std::path::Path;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

/// More ranges than this in one request are ignored (the whole file is sent instead), so a
/// request cannot make the server seek a file thousands of times.
const MAX_RANGES: usize = 32;

/// Parse a `Range` header against a file of `len` bytes. `None`: no usable range header
/// (serve everything). `Some(empty)`: nothing satisfiable (416).
pub fn parse_ranges(value: &str, len: u64) -> Option<Vec<(u64, u64)>> {
    let spec = value.trim().strip_prefix("bytes=")?;
    let mut ranges = Vec::new();
    for part in spec.split(',') {
        let (a, b) = part.trim().split_once('-')?;
        let (a, b) = (a.trim(), b.trim());
        let range = match (a.is_empty(), b.is_empty()) {
            (true, true) => return None,
            // Suffix: the last N bytes.
            (true, false) => {
                let n: u64 = b.parse().ok()?;
                if n == 0 || len == 0 {
                    continue;
                }
                (len.saturating_sub(n), len - 1)
            }
            (false, _) => {
                let start: u64 = a.parse().ok()?;
                let end = if b.is_empty() {
                    len.saturating_sub(1)
                } else {
                    b.parse::<u64>().ok()?.min(len.saturating_sub(1))
                };
                if !b.is_empty() && b.parse::<u64>().ok()? < start {
                    return None;
                }
                if start >= len {
                    continue;
                }
                (start, end)
            }
        };
        ranges.push(range);
    }
    if ranges.len() > MAX_RANGES {
        return None;
    }
    Some(ranges)
}

async fn slice(path: &Path, start: u64, end: u64) -> std::io::Result<ReaderStream<tokio::io::Take<tokio::fs::File>>> {
    let mut f = tokio::fs::File::open(path).await?;
    f.seek(std::io::SeekFrom::Start(start)).await?;
    Ok(ReaderStream::with_capacity(f.take(end - start + 1), 256 * 1024))
}

/// Answer a download of `path` whose content hash is `etag_hash`.
pub async fn serve(path: &Path, etag_hash: &str, filename: &str, method: &Method, headers: &HeaderMap) -> Response {
    let len = match tokio::fs::metadata(path).await {
        Ok(m) if m.is_file() => m.len(),
        _ => return crate::error::ApiError::new(StatusCode::NOT_FOUND, "File not found").into_response(),
    };
    let etag = format!("\"{etag_hash}\"");
    let etag_value = HeaderValue::from_str(&etag).unwrap_or_else(|_| HeaderValue::from_static("\"\""));
    let mut common = HeaderMap::new();
    common.insert(header::ETAG, etag_value);
    common.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(inm) = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) {
        if !etag_hash.is_empty() && inm.split(',').any(|t| t.trim() == etag || t.trim() == "*") {
            return (StatusCode::NOT_MODIFIED, common).into_response();
        }
    }
    common.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&format!("attachment; filename=\"{filename}\""))
            .unwrap_or_else(|_| HeaderValue::from_static("attachment")),
    );
    // If-Range with a different validator: the client's partial copy is stale, send it all.
    let range_allowed = headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()).is_none_or(|v| v.trim() == etag);
    let ranges = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .filter(|_| range_allowed)
        .and_then(|v| parse_ranges(v, len));
    let head = method == Method::HEAD;
    let io_error = |e: std::io::Error| crate::error::ApiError::internal(e).into_response();

    match ranges {
        None => {
            common.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
            common.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            if head || len == 0 {
                return (StatusCode::OK, common, Body::empty()).into_response();
            }
            match slice(path, 0, len - 1).await {
                Ok(s) => (StatusCode::OK, common, Body::from_stream(s)).into_response(),
                Err(e) => io_error(e),
            }
        }
        Some(r) if r.is_empty() => {
            common.insert(header::CONTENT_RANGE, HeaderValue::from_str(&format!("bytes */{len}")).expect("ascii"));
            (StatusCode::RANGE_NOT_SATISFIABLE, common).into_response()
        }
        Some(r) if r.len() == 1 => {
            let (start, end) = r[0];
            common.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
            common.insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes {start}-{end}/{len}")).expect("ascii"),
            );
            common.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start + 1));
            if head {
                return (StatusCode::PARTIAL_CONTENT, common, Body::empty()).into_response();
            }
            match slice(path, start, end).await {
                Ok(s) => (StatusCode::PARTIAL_CONTENT, common, Body::from_stream(s)).into_response(),
                Err(e) => io_error(e),
            }
        }
        Some(r) => {
            let boundary = format!("agnes-{}", uuid::Uuid::new_v4().simple());
            let part_head = |(s, e): (u64, u64)| {
                format!("\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes {s}-{e}/{len}\r\n\r\n")
            };
            let tail = format!("\r\n--{boundary}--\r\n");
            let total: u64 =
                r.iter().map(|&(s, e)| part_head((s, e)).len() as u64 + e - s + 1).sum::<u64>() + tail.len() as u64;
            common.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_str(&format!("multipart/byteranges; boundary={boundary}")).expect("ascii"),
            );
            common.insert(header::CONTENT_LENGTH, HeaderValue::from(total));
            if head {
                return (StatusCode::PARTIAL_CONTENT, common, Body::empty()).into_response();
            }
            let mut streams = Vec::new();
            for (s, e) in r {
                streams.push(
                    futures::stream::once(futures::future::ready(Ok::<Bytes, std::io::Error>(Bytes::from(part_head(
                        (s, e),
                    )))))
                    .boxed(),
                );
                match slice(path, s, e).await {
                    Ok(st) => streams.push(st.boxed()),
                    Err(err) => return io_error(err),
                }
            }
            streams.push(futures::stream::once(futures::future::ready(Ok(Bytes::from(tail)))).boxed());
            (StatusCode::PARTIAL_CONTENT, common, Body::from_stream(futures::stream::iter(streams).flatten()))
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_ranges;

    #[test]
    fn ranges() {
        assert_eq!(parse_ranges("bytes=0-9", 100), Some(vec![(0, 9)]));
        assert_eq!(parse_ranges("bytes=90-", 100), Some(vec![(90, 99)]));
        assert_eq!(parse_ranges("bytes=-10", 100), Some(vec![(90, 99)]));
        assert_eq!(parse_ranges("bytes=95-200", 100), Some(vec![(95, 99)]));
        assert_eq!(parse_ranges("bytes=0-0, 5-6", 100), Some(vec![(0, 0), (5, 6)]));
        assert_eq!(parse_ranges("bytes=100-", 100), Some(vec![]), "unsatisfiable");
        assert_eq!(parse_ranges("bytes=5-1", 100), None, "malformed: ignored");
        assert_eq!(parse_ranges("items=0-1", 100), None);
        assert_eq!(parse_ranges("bytes=a-b", 100), None);
        assert_eq!(parse_ranges(&format!("bytes={}", vec!["0-0"; 40].join(",")), 100), None, "too many ranges");
    }
}
