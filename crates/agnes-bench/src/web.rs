//! The web UI with 1,000 registered (and synced) tables: each page's time as a browser
//! gets it over loopback (request sent to last byte read, signed in by the session cookie),
//! median of 20, and each page's weight: its HTML plus every asset as sent gzip-accepting.

use crate::pull::thousand_tables;
use crate::report::{machine, Section};
use crate::scenarios::{agnes_exe, median, start_server, stop};
use serde_json::json;
use std::time::{Duration, Instant};

const PAGES: &[&str] = &[
    "/",
    "/catalog",
    "/catalog?page=10",
    "/catalog?q=t05",
    "/catalog/t0500",
    "/catalog/metrics",
    "/access",
    "/tokens",
    "/setup",
    "/admin/tables",
    "/admin/tables?page=20",
    "/admin/access",
    "/admin/users",
    "/admin/users/{me}",
    "/admin/tables/t0500",
    "/admin/tables/discover?source=files",
    "/admin/metrics",
    "/admin/audit",
];

/// The REST calls under the pages, timed alike, to show where a page's time goes.
const CALLS: &[&str] = &[
    "/api/v2/catalog",
    "/api/admin/registry",
    "/api/admin/scheduler",
    "/api/v2/schema/t0500",
    "/api/v2/sample/t0500?n=10",
    "/api/admin/access-overview",
    "/api/health/detailed",
    "/api/admin/audit?limit=15",
    "/api/admin/storage",
];

/// The `/static/…` files a page links to (the templates escape `/` as `&#x2f;`).
fn assets(html: &str) -> Vec<String> {
    let html = html.replace("&#x2f;", "/");
    html.split("\"/static/").skip(1).filter_map(|rest| rest.split('"').next()).map(|p| format!("/static/{p}")).collect()
}

pub fn web_bench() -> anyhow::Result<Section> {
    let exe = agnes_exe()?;
    let work = tempfile::tempdir()?;
    let data = work.path().join("data");
    thousand_tables(&data)?;
    let (server, port) = start_server(&exe, &data)?;
    let result = (|| -> anyhow::Result<Vec<(String, Duration, usize)>> {
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::blocking::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
        let boot = json!({"email": "web@example.com", "password": "web-pass-1"});
        let session: serde_json::Value = http.post(format!("{url}/auth/bootstrap")).json(&boot).send()?.json()?;
        let cookie = format!("access_token={}", session["access_token"].as_str().unwrap_or_default());
        let me: serde_json::Value = http.get(format!("{url}/api/me")).header("cookie", &cookie).send()?.json()?;
        let me = me["id"].as_str().unwrap_or_default().to_string();
        let mut out = Vec::new();
        for page in PAGES.iter().chain(CALLS).map(|p| p.replace("{me}", &me)) {
            let page = page.as_str();
            let get = |path: &str, gzip: bool| -> anyhow::Result<(Duration, Vec<u8>)> {
                let mut request = http.get(format!("{url}{path}")).header("cookie", &cookie);
                if gzip {
                    request = request.header("accept-encoding", "gzip");
                }
                let started = Instant::now();
                let response = request.send()?;
                anyhow::ensure!(response.status() == 200, "{path}: {}", response.status());
                let body = response.bytes()?.to_vec();
                Ok((started.elapsed(), body))
            };
            let mut times = Vec::new();
            let mut html = Vec::new();
            for _ in 0..20 {
                let (took, body) = get(page, false)?;
                times.push(took);
                html = body;
            }
            let text = String::from_utf8_lossy(&html).to_string();
            let mut weight = html.len();
            for asset in assets(&text) {
                weight += get(&asset, true)?.1.len();
            }
            out.push((page.to_string(), median(times), weight));
        }
        Ok(out)
    })();
    stop(server)?;
    let pages = result?;
    let rows: String = pages
        .iter()
        .map(|(p, t, w)| format!("| `{p}` | {:.1} ms | {:.1} KB |\n", t.as_secs_f64() * 1000.0, *w as f64 / 1000.0))
        .collect();
    let worst = pages.iter().take(PAGES.len()).map(|(_, t, _)| *t).max().unwrap_or_default();
    let heaviest = pages.iter().take(PAGES.len()).map(|(_, _, w)| *w).max().unwrap_or_default();
    Ok(Section {
        name: "web",
        body: format!(
            "## Web UI\n\n{}\n\nThe real binary over loopback with 1,000 synced tables, signed in as an admin by the \
             session cookie: each page's time from request to last byte (server time plus loopback), median of 20; \
             its weight is the HTML plus every asset it links, as sent to a browser that accepts gzip (htmx is served \
             pre-compressed; HTML is not compressed). Targets: p50 ≤ 10 ms per page, ≤ 100 KB per page.\n\n\
             | page (or the REST call under pages) | p50 | weight |\n|---|---|---|\n{rows}\nSlowest page p50 {:.1} ms; heaviest page {:.1} KB.\n",
            machine(),
            worst.as_secs_f64() * 1000.0,
            heaviest as f64 / 1000.0,
        ),
    })
}
