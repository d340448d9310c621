//! `agnes pull` against a misbehaving server: refusals, servers that ignore ranges, 5xx,
//! connections that drop mid-file, and content that does not match its hash.

mod common;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use common::agnes;
use md5::{Digest, Md5};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    Forbidden,
    /// Answer 500 this many times first.
    ServerErrors(usize),
    /// Send half the body, then drop the connection, on the first request.
    DropMidway,
    /// Ignore `Range` and always answer 200 with the whole file.
    IgnoreRange,
    /// Serve bytes that do not match the manifest's hash.
    WrongBytes,
}

#[derive(Default)]
struct Fake {
    files: HashMap<String, (Vec<u8>, Fault)>,
    hits: HashMap<String, usize>,
    ranges: Vec<String>,
    /// A server of the original's shape: the manifest has MD5 hashes and no checksums.
    legacy: bool,
}

type Shared = Arc<Mutex<Fake>>;

fn parquet(rows: i64) -> Vec<u8> {
    parquet_of(&format!("SELECT range AS id, 'row ' || range AS label FROM range({rows})"))
}

fn parquet_of(sql: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.parquet");
    let c = agnes_engine::duck::open_in_memory().unwrap();
    c.execute_batch(&format!("COPY ({sql}) TO '{}'", p.display())).unwrap();
    std::fs::read(p).unwrap()
}

/// The manifest: a file named `table.part` is a part of a layered table `table` (merged
/// on `id`), any other a single-file table.
async fn manifest(State(s): State<Shared>) -> Json<serde_json::Value> {
    let fake = s.lock().unwrap();
    let mut tables = serde_json::Map::new();
    for (name, (bytes, _)) in &fake.files {
        let hash = hex::encode(Md5::digest(bytes));
        let checksum = format!("xxh3-128:{:032x}", xxhash_rust::xxh3::xxh3_128(bytes));
        match name.split_once('.') {
            None => {
                let mut entry = json!({"id": name, "hash": hash, "size_bytes": bytes.len(), "rows": 1, "query_mode": "local", "source_type": "files"});
                if !fake.legacy {
                    entry["checksum"] = json!(checksum);
                }
                tables.insert(name.clone(), entry);
            }
            Some((table, part)) => {
                let entry = tables.entry(table.to_string()).or_insert_with(|| {
                    json!({"id": table, "hash": "", "size_bytes": 0, "rows": 1, "query_mode": "local",
                           "source_type": "postgres", "merge_key": ["id"], "parts": []})
                });
                entry["hash"] = json!(format!("{}{hash}", entry["hash"].as_str().unwrap()));
                entry["parts"].as_array_mut().unwrap().push(json!({
                    "part": part, "hash": hash, "checksum": checksum, "size_bytes": bytes.len(), "rows": 1,
                    "path": format!("/api/data/{table}/parts/{part}/download"),
                }));
            }
        }
    }
    Json(json!({"tables": tables, "server_time": "2026-01-01T00:00:00Z"}))
}

async fn download_part(
    state: State<Shared>,
    Path((table, part)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    download(state, Path(format!("{table}.{part}")), headers).await
}

async fn download(State(s): State<Shared>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    let (bytes, fault, hit) = {
        let mut fake = s.lock().unwrap();
        let hit = *fake.hits.entry(name.clone()).and_modify(|h| *h += 1).or_insert(1);
        if let Some(r) = headers.get("range") {
            fake.ranges.push(format!("{name}:{}", r.to_str().unwrap()));
        }
        let (b, f) = fake.files.get(&name).cloned().unwrap();
        (b, f, hit)
    };
    // `bytes=start-` or `bytes=start-end`, honoured unless the fault says otherwise.
    let range = headers
        .get("range")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|v| v.split_once('-'))
        .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().unwrap_or(bytes.len() - 1))))
        .filter(|(start, end)| fault != Fault::IgnoreRange && start < &bytes.len() && start <= end);
    let (status, start, end) = match range {
        Some((start, end)) => (StatusCode::PARTIAL_CONTENT, start, end.min(bytes.len() - 1)),
        None => (StatusCode::OK, 0, bytes.len() - 1),
    };
    let len = bytes.len();
    let content_range = [("content-range", format!("bytes {start}-{end}/{len}"))];
    match fault {
        Fault::Forbidden => {
            return (StatusCode::FORBIDDEN, Json(json!({"detail": "Access denied to this table"}))).into_response()
        }
        Fault::ServerErrors(n) if hit <= n => {
            return (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"detail": "boom"}))).into_response()
        }
        Fault::DropMidway if hit == 1 => {
            let half = bytes[start..start + (end + 1 - start) / 2].to_vec();
            use futures::StreamExt;
            // Let the first half reach the client, then lose the connection.
            let stream = futures::stream::iter(vec![Ok::<_, std::io::Error>(axum::body::Bytes::from(half))]).chain(
                futures::stream::once(async {
                    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                    Err(std::io::Error::other("connection lost"))
                }),
            );
            let length = (end + 1 - start).to_string();
            return (status, content_range, [("content-length", length)], Body::from_stream(stream)).into_response();
        }
        Fault::WrongBytes => {
            let mut b = bytes.clone();
            b[10] ^= 0xff;
            return (StatusCode::OK, b).into_response();
        }
        _ => {}
    }
    (status, content_range, bytes[start..=end].to_vec()).into_response()
}

async fn serve(files: Vec<(&str, Vec<u8>, Fault)>) -> (String, Shared) {
    serve_as(files, false).await
}

async fn serve_as(files: Vec<(&str, Vec<u8>, Fault)>, legacy: bool) -> (String, Shared) {
    let state: Shared = Arc::new(Mutex::new(Fake {
        files: files.into_iter().map(|(n, b, f)| (n.to_string(), (b, f))).collect(),
        legacy,
        ..Default::default()
    }));
    let app = Router::new()
        .route("/api/sync/manifest", get(manifest))
        .route("/api/data/{name}/download", get(download))
        .route("/api/data/{table}/parts/{part}/download", get(download_part))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, state)
}

async fn pull(url: &str, ws: &std::path::Path, extra: &[&str]) -> std::process::Output {
    pull_in_pieces(url, ws, extra, u64::MAX).await
}

/// A pull that splits files of `chunk_bytes` and more into ranges fetched at once.
async fn pull_in_pieces(url: &str, ws: &std::path::Path, extra: &[&str], chunk_bytes: u64) -> std::process::Output {
    let (url, ws) = (url.to_string(), ws.to_path_buf());
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        agnes()
            .env("AGNES_PULL_CHUNK_BYTES", chunk_bytes.to_string())
            .env("AGNES_SERVER", &url)
            .env("AGNES_TOKEN", "agnes_pat_test")
            .env("AGNES_LOCAL_DIR", &ws)
            .env("AGNES_CONFIG_DIR", ws.join(".cfg"))
            .arg("pull")
            .args(extra)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_table_fails_the_pull_loudly_and_the_others_still_arrive() {
    let (url, _) = serve(vec![("good", parquet(10), Fault::None), ("secret", parquet(5), Fault::Forbidden)]).await;
    let ws = tempfile::tempdir().unwrap();
    let out = pull(&url, ws.path(), &[]).await;
    assert_eq!(out.status.code(), Some(1), "never '100% done' on a 403");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("secret") && stderr.contains("HTTP 403"), "{stderr}");
    assert!(ws.path().join("server/parquet/good.parquet").is_file());
    assert!(!ws.path().join("server/parquet/secret.parquet").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn server_errors_are_retried() {
    let (url, state) = serve(vec![("flaky", parquet(10), Fault::ServerErrors(2))]).await;
    let ws = tempfile::tempdir().unwrap();
    let out = pull(&url, ws.path(), &[]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(state.lock().unwrap().hits["flaky"], 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_download_resumes_where_it_stopped() {
    let bytes = parquet(50_000);
    let (url, state) = serve(vec![("big", bytes.clone(), Fault::DropMidway)]).await;
    let ws = tempfile::tempdir().unwrap();
    let out = pull(&url, ws.path(), &[]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(ws.path().join("server/parquet/big.parquet")).unwrap(), bytes);
    let ranges = state.lock().unwrap().ranges.clone();
    assert_eq!(ranges.len(), 1, "the retry asked only for the rest: {ranges:?}");
    assert!(ranges[0].starts_with("big:bytes=") && !ranges[0].ends_with("=0-"), "{ranges:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_ignores_ranges_still_gives_a_correct_file() {
    let bytes = parquet(50_000);
    let (url, _) = serve(vec![("t", bytes.clone(), Fault::IgnoreRange)]).await;
    let ws = tempfile::tempdir().unwrap();
    // A stale partial from an earlier attempt: the server answers 200, the client restarts.
    std::fs::create_dir_all(ws.path().join("server/parquet")).unwrap();
    std::fs::write(ws.path().join("server/parquet/.t.parquet.partial"), &bytes[..1000]).unwrap();
    let out = pull(&url, ws.path(), &[]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(ws.path().join("server/parquet/t.parquet")).unwrap(), bytes);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hash_mismatch_is_rejected_and_the_old_file_kept() {
    // Checked by the fast checksum, and by MD5 against a server of the original's shape.
    for legacy in [false, true] {
        let ws = tempfile::tempdir().unwrap();
        let old = parquet(3);
        let (url, _) = serve_as(vec![("t", old.clone(), Fault::None)], legacy).await;
        assert!(pull(&url, ws.path(), &[]).await.status.success());

        let (url, _) = serve_as(vec![("t", parquet(4), Fault::WrongBytes)], legacy).await;
        let out = pull(&url, ws.path(), &[]).await;
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("hash mismatch: expected"), "legacy={legacy}: {stderr}");
        let kept = std::fs::read(ws.path().join("server/parquet/t.parquet")).unwrap();
        assert_eq!(kept, old, "the last good file stays");
        let leftovers: Vec<_> =
            std::fs::read_dir(ws.path().join("server/parquet")).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(leftovers.len(), 1, "no partial file is left: {leftovers:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_file_comes_as_ranges_at_once() {
    let bytes = parquet(200_000);
    let (url, state) = serve(vec![("big", bytes.clone(), Fault::None)]).await;
    let ws = tempfile::tempdir().unwrap();
    let out = pull_in_pieces(&url, ws.path(), &[], bytes.len() as u64 / 10).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(ws.path().join("server/parquet/big.parquet")).unwrap(), bytes);
    let mut ranges = state.lock().unwrap().ranges.clone();
    ranges.sort();
    assert_eq!(ranges.len(), 4, "AGNES_PULL_PARALLELISM (4) ranges: {ranges:?}");
    assert!(ranges.iter().any(|r| r.starts_with("big:bytes=0-")), "{ranges:?}");
    assert!(ranges.iter().all(|r| !r.ends_with('-')), "every range is bounded: {ranges:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_range_is_resumed_alone() {
    let bytes = parquet(200_000);
    let (url, state) = serve(vec![("big", bytes.clone(), Fault::DropMidway)]).await;
    let ws = tempfile::tempdir().unwrap();
    let out = pull_in_pieces(&url, ws.path(), &[], bytes.len() as u64 / 10).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(ws.path().join("server/parquet/big.parquet")).unwrap(), bytes);
    let fake = state.lock().unwrap();
    assert_eq!(fake.hits["big"], 5, "four ranges and one resumed: {:?}", fake.ranges);
    let leftovers: Vec<_> =
        std::fs::read_dir(ws.path().join("server/parquet")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(leftovers.len(), 1, "no partial file is left: {leftovers:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ranges_fall_back_to_one_stream_when_the_server_ignores_them() {
    let bytes = parquet(200_000);
    let (url, _) = serve(vec![("big", bytes.clone(), Fault::IgnoreRange)]).await;
    let ws = tempfile::tempdir().unwrap();
    let out = pull_in_pieces(&url, ws.path(), &[], bytes.len() as u64 / 10).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(ws.path().join("server/parquet/big.parquet")).unwrap(), bytes);
}

#[tokio::test(flavor = "multi_thread")]
async fn progress_is_reported_in_lines_off_a_terminal() {
    let (url, _) = serve(vec![("big", parquet(200_000), Fault::None)]).await;
    let ws = tempfile::tempdir().unwrap();
    let (url2, ws2) = (url.clone(), ws.path().to_path_buf());
    let out = tokio::task::spawn_blocking(move || {
        agnes()
            .env("AGNES_SERVER", &url2)
            .env("AGNES_TOKEN", "agnes_pat_test")
            .env("AGNES_LOCAL_DIR", &ws2)
            .env("AGNES_PULL_PROGRESS_INTERVAL_BYTES", "1")
            .arg("pull")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let lines: Vec<&str> = stdout.lines().filter(|l| l.starts_with("[1/1 files] big: ")).collect();
    assert!(lines.len() >= 2, "periodic lines and a final one: {stdout}");
    assert!(lines.iter().any(|l| l.contains("% (") && l.contains("MiB/s")), "{stdout}");
    assert!(lines.last().unwrap().contains("100% done"), "{stdout}");
    let quiet = pull(&url, ws.path(), &["--quiet"]).await;
    assert!(String::from_utf8_lossy(&quiet.stdout).is_empty(), "--quiet prints nothing");
}

/// A layered table's parts change together: when the new base cannot be fetched, the new
/// delta is not put beside the old base (that pair would read wrong rows); the old pair
/// stays until a pull brings both.
#[tokio::test(flavor = "multi_thread")]
async fn a_layered_table_changes_whole_or_not_at_all() {
    let ws = tempfile::tempdir().unwrap();
    let rows = |ws: &std::path::Path| -> String {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_agnes"))
            .env("AGNES_LOCAL_DIR", ws)
            .env("AGNES_CONFIG_DIR", ws.join(".cfg"))
            .args([
                "query",
                "SELECT count(*) AS n, string_agg(label, ',' ORDER BY id) AS labels FROM lay",
                "--format",
                "csv",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let base1 = parquet_of("SELECT range AS id, 'a' AS label FROM range(5)");
    let delta1 = parquet_of("SELECT 3 AS id, 'b' AS label");
    let (url, _) =
        serve(vec![("lay.base", base1.clone(), Fault::None), ("lay.delta", delta1.clone(), Fault::None)]).await;
    assert!(pull(&url, ws.path(), &[]).await.status.success());
    let first = rows(ws.path());
    assert!(first.contains("5,\"a,a,a,b,a\""), "{first}");

    // Compacted at the server: a new base (row 3 is b, row 4 is c) and an empty delta.
    let base2 = parquet_of(
        "SELECT range AS id, CASE range WHEN 3 THEN 'b' WHEN 4 THEN 'c' ELSE 'a' END AS label FROM range(5)",
    );
    let empty = parquet_of("SELECT 0 AS id, 'x' AS label WHERE false");
    let (url, _) =
        serve(vec![("lay.base", base2.clone(), Fault::Forbidden), ("lay.delta", empty.clone(), Fault::None)]).await;
    let out = pull(&url, ws.path(), &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(rows(ws.path()), first, "the old base and delta stay, together");
    let dir = ws.path().join("server/parquet/lay");
    assert_eq!(std::fs::read(dir.join("delta.parquet")).unwrap(), delta1);
    let staged: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".staged"))
        .collect();
    assert!(staged.is_empty(), "no staged part is left: {staged:?}");

    let (url, _) = serve(vec![("lay.base", base2, Fault::None), ("lay.delta", empty, Fault::None)]).await;
    assert!(pull(&url, ws.path(), &[]).await.status.success());
    assert!(rows(ws.path()).contains("5,\"a,a,a,b,c\""), "{}", rows(ws.path()));
}
