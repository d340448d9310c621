//! The web UI in a real browser: headless Chromium driven over WebDriver (chromedriver,
//! both installed by `scripts/browser.sh`) against `agnes serve` on a random port. An
//! admin creates themself on the first-run page, registers a table through the form,
//! syncs it, creates an analyst, a group and the grant, and simulates the analyst; the
//! analyst signs in, finds the table, creates and revokes a token. Screenshots of the main
//! pages are saved (at a laptop's and a phone's width) as test artifacts.

mod common;

use common::{fixtures, Http, TestServer};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// chromedriver on a free port, and a headless Chromium session through it.
struct Browser {
    driver: Child,
    client: Client,
    _profile: tempfile::TempDir,
    shots: PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Browser {
    async fn start() -> Browser {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/browser.sh");
        let out = Command::new("bash").arg(script).output().expect("bash runs");
        assert!(out.status.success(), "scripts/browser.sh failed: {}", String::from_utf8_lossy(&out.stderr));
        let chromedriver = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let port = free_port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().unwrap();
        // The flags a closed network needs: no background connections, no sandbox as root.
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,900",
        ]
        .map(String::from)
        .into_iter()
        .chain([format!("--user-data-dir={}", profile.path().display())])
        .collect::<Vec<_>>();
        let mut caps = serde_json::Map::new();
        caps.insert("goog:chromeOptions".into(), json!({"binary": "/usr/bin/chromium", "args": args}));
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(c) => break c,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("no WebDriver session: {e}"),
            }
        };
        let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("web-screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        Browser { driver, client, _profile: profile, shots }
    }

    async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    /// Type into the field labelled by `id`.
    async fn fill(&self, id: &str, text: &str) {
        let field = self.client.find(Locator::Id(id)).await.unwrap_or_else(|e| panic!("no field #{id}: {e}"));
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    async fn select(&self, id: &str, value: &str) {
        self.client.find(Locator::Id(id)).await.unwrap().select_by_value(value).await.unwrap();
    }

    async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("nothing at {css}: {e}"))
            .click()
            .await
            .unwrap();
    }

    /// Wait until the page says `text`; the page's source.
    async fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let source = self.client.source().await.unwrap();
            if source.contains(text) {
                return source;
            }
            assert!(Instant::now() < deadline, "the page never said {text:?}:\n{source}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn shot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    async fn eval(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    /// Every visible form field has a label, and the page is no wider than the window.
    async fn usable(&self, page: &str) {
        let unlabelled = self
            .eval(
                "return [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]\
                 .filter(e => !e.labels || e.labels.length === 0).map(e => e.name || e.id)",
            )
            .await;
        assert_eq!(unlabelled, json!([]), "{page}: fields without a label");
        let fits = self.eval("return document.documentElement.scrollWidth <= window.innerWidth + 1").await;
        assert_eq!(fits, json!(true), "{page}: wider than the window");
    }

    async fn session(&self) -> String {
        self.client.get_named_cookie("access_token").await.unwrap().value().to_string()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_and_an_analyst_work_in_the_browser() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("sources")).unwrap();
    std::fs::copy(fixtures().join("flights_3000.csv"), data.join("sources/flights.csv")).unwrap();
    let server = TestServer::start(&data);
    let http = Http::new(&server);
    let b = Browser::start().await;
    let url = |p: &str| server.url(p);

    // First run: an anonymous visitor is sent to sign in; the first admin is made here.
    b.goto(&url("/admin/tables")).await;
    b.wait_for("Sign in").await;
    b.goto(&url("/bootstrap")).await;
    b.fill("email", "root@example.com").await;
    b.fill("password", "admin-pass-1").await;
    b.fill("password2", "admin-pass-1").await;
    b.click("main button[type=submit]").await;
    b.wait_for("Dashboard").await;
    b.shot("dashboard").await;
    let admin = b.session().await;

    // Register flights through the form, and sync it now.
    b.goto(&url("/admin/tables")).await;
    b.click("details summary").await;
    b.fill("r-name", "flights").await;
    b.select("r-source", "files:files").await;
    b.fill("r-table", "flights.csv").await;
    b.fill("r-desc", "NYC departures, 2013").await;
    b.usable("admin tables").await;
    b.click("details form button[type=submit]").await;
    b.wait_for("Registered flights").await;
    b.click("button[aria-label='Sync flights now']").await;
    b.wait_for("Sync of flights started").await;
    http.wait_synced(&admin, &["flights"]).await;
    let (s, _) = http.post("/api/catalog/profile/flights/refresh", Some(&admin), json!(null)).await;
    assert_eq!(s.as_u16(), 200, "profiled, for the table page's charts");
    b.shot("admin-tables").await;

    // An analyst, a group, the grant, and what the analyst would see.
    b.goto(&url("/admin/users")).await;
    b.fill("u-email", "ana@example.com").await;
    b.fill("u-password", "user-pass-1").await;
    b.click("form[action='/admin/users'] button").await;
    b.wait_for("ana@example.com created").await;
    b.goto(&url("/admin/access")).await;
    b.fill("g-name", "Analysts").await;
    b.click("form[action='/admin/access/groups'] button").await;
    b.wait_for("Group Analysts created").await;
    b.client.find(Locator::Id("m-group")).await.unwrap().select_by_label("Analysts").await.unwrap();
    b.fill("m-email", "ana@example.com").await;
    b.click("form[action='/admin/access/members'] button").await;
    b.wait_for("added to the group").await;
    b.click("button[aria-label='Grant flights to Analysts']").await;
    b.wait_for("flights granted").await;
    let (_, users) = http.get("/api/users", &admin).await;
    let ana_id = users.as_array().unwrap().iter().find(|u| u["email"] == "ana@example.com").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    b.select("sim-user", &ana_id).await;
    b.click("form[action='/admin/access'] button").await;
    let simulated = b.wait_for("Simulated access").await;
    assert!(simulated.contains("/catalog/flights") && simulated.contains("Analysts"), "the analyst would read flights");
    b.usable("admin access").await;
    b.shot("admin-access").await;

    // The analyst: signs in, sees flights and its page, makes and revokes a token.
    b.click("header button").await;
    b.wait_for("Sign in").await;
    b.fill("email", "ana@example.com").await;
    b.fill("password", "user-pass-1").await;
    b.click("main button[type=submit]").await;
    let home = b.wait_for("Tables you can read").await;
    assert!(home.contains("/catalog/flights") && home.contains("NYC departures"), "{home}");
    assert!(!home.contains("Admin: tables"), "no admin links for an analyst");
    b.shot("catalog").await;
    b.click("a[href='/catalog/flights']").await;
    let page = b.wait_for("How to query it").await;
    assert!(page.contains("dep_delay") && page.contains("agnes query"), "columns and commands");
    assert!(page.contains("<td>BIGINT</td>") || page.contains("<td>INTEGER</td>"), "column types");
    assert!(page.contains("<svg") && page.contains("Distribution of dep_delay"), "the profile's charts");
    b.shot("table").await;
    b.goto(&url("/admin/tables")).await;
    b.wait_for("Admin access required").await;

    b.goto(&url("/tokens")).await;
    b.fill("name", "laptop").await;
    b.click("form[action='/tokens'] button").await;
    let created = b.wait_for("not shown again").await;
    let token = created.split("id=\"new-token\">").nth(1).unwrap().split('<').next().unwrap().to_string();
    assert!(token.starts_with("agnes_pat_"));
    assert_eq!(http.get("/api/me", &token).await.0.as_u16(), 200, "the token works");
    b.shot("tokens").await;
    b.goto(&url("/tokens")).await;
    // The revoke form asks first; the browser's dialog is accepted.
    b.click("button[aria-label='Revoke laptop']").await;
    b.client.accept_alert().await.unwrap();
    b.wait_for("Token revoked").await;
    assert_eq!(http.get("/api/me", &token).await.0.as_u16(), 401, "revoked in the browser, refused by the API");

    // A phone's width: the catalog still fits.
    b.client.set_window_size(390, 844).await.unwrap();
    b.goto(&url("/catalog")).await;
    b.wait_for("Tables you can read").await;
    b.usable("catalog on a phone").await;
    b.shot("catalog-phone").await;
    b.goto(&url("/setup")).await;
    b.click("form[action='/setup'] button").await;
    // The page names the command before the click too: wait for the minted token.
    let setup = b.wait_for("agnes_pat_").await;
    assert!(setup.contains(&server.url) && setup.contains("agnes_pat_"), "the commands carry a fresh token");
    b.usable("setup on a phone").await;
    b.shot("setup-phone").await;
    b.client.clone().close().await.unwrap();
}
