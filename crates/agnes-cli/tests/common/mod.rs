//! Starting the real `agnes` binary for black-box tests.

#![allow(dead_code)]

use serde_json::json;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub fn agnes() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_agnes"));
    c.env_remove("DATA_DIR")
        .env_remove("AGNES_BIND")
        .env_remove("JWT_SECRET_KEY")
        .env_remove("STATE_DIR")
        .env_remove("AGNES_METRICS_TOKEN")
        .env_remove("LOCAL_DEV_MODE")
        .env_remove("SEED_ADMIN_EMAIL")
        .env_remove("SEED_ADMIN_PASSWORD")
        .env_remove("AGNES_SERVER")
        .env_remove("AGNES_TOKEN")
        .env("AGNES_AUTH_RATELIMIT_ENABLED", "0")
        // Tests trigger syncs themselves; the scheduler test switches it on.
        .env("AGNES_SCHEDULER_TICK_SECONDS", "0")
        .env("CONFIG_DIR", "/nonexistent-agnes-config")
        .env("RUST_LOG", "info");
    c
}

/// `agnes ARGS` with its own config dir, against `server`.
pub fn run_with_config(config: &Path, server: &TestServer, args: &[&str]) -> Output {
    agnes().env("AGNES_CONFIG_DIR", config).env("AGNES_SERVER", &server.url).args(args).output().unwrap()
}

/// The standard output of a run that must succeed.
pub fn ok(out: Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// A running `agnes serve` on a random loopback port; killed on drop.
pub struct TestServer {
    pub child: Child,
    pub url: String,
    pub data_dir: PathBuf,
    pub stderr: mpsc::Receiver<String>,
}

impl TestServer {
    pub fn start(data_dir: &Path) -> TestServer {
        Self::start_with(data_dir, |_| {})
    }

    pub fn start_with(data_dir: &Path, configure: impl FnOnce(&mut Command)) -> TestServer {
        let mut cmd = agnes();
        cmd.args(["--log-format", "json", "serve", "--bind", "127.0.0.1:0", "--data-dir"]).arg(data_dir);
        configure(&mut cmd);
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("agnes starts");
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = loop {
            let line = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).unwrap_or_else(|_| {
                let _ = child.kill();
                panic!("agnes serve did not report its address in time")
            });
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if v["message"] == "agnes serving" {
                break v["addr"].as_str().expect("addr field").to_string();
            }
        };
        TestServer { child, url: format!("http://{addr}"), data_dir: data_dir.to_path_buf(), stderr: rx }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }

    /// Send SIGTERM and wait for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "agnes did not stop within 30 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A JSON client for one test server.
pub struct Http {
    client: reqwest::Client,
    base: String,
}

impl Http {
    pub fn new(server: &TestServer) -> Http {
        Http { client: reqwest::Client::new(), base: server.url.clone() }
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
    }

    pub async fn get(&self, path: &str, token: &str) -> (reqwest::StatusCode, serde_json::Value) {
        self.call(reqwest::Method::GET, path, Some(token), None).await
    }

    pub async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: serde_json::Value,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        self.call(reqwest::Method::POST, path, token, Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> reqwest::StatusCode {
        self.call(reqwest::Method::DELETE, path, Some(token), None).await.0
    }

    /// Bootstrap the first admin and return a session token.
    pub async fn bootstrap(&self) -> String {
        let (s, v) = self
            .post(
                "/auth/bootstrap",
                None,
                serde_json::json!({"email": "admin@example.com", "password": "admin-pass-1"}),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        v["access_token"].as_str().unwrap().to_string()
    }

    /// Register each body, expecting 201.
    pub async fn register(&self, admin: &str, bodies: Vec<serde_json::Value>) {
        for body in bodies {
            let (status, answer) = self.post("/api/admin/register-table", Some(admin), body).await;
            assert_eq!(status, 201, "{answer}");
        }
    }

    /// Wait until the manifest lists every one of `tables` as published.
    pub async fn wait_synced(&self, admin: &str, tables: &[&str]) {
        for _ in 0..400 {
            let (_, m) = self.get("/api/sync/manifest", admin).await;
            if tables.iter().all(|t| !m["tables"][*t]["hash"].as_str().unwrap_or("").is_empty()) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let (_, status) = self.get("/api/sync/status", admin).await;
        let (_, manifest) = self.get("/api/sync/manifest", admin).await;
        panic!("{tables:?} not synced in time\nstatus: {status}\nmanifest: {manifest}");
    }

    /// Create a user with a password and return their session token.
    pub async fn user(&self, admin: &str, email: &str) -> (String, String) {
        let (s, v) =
            self.post("/api/users", Some(admin), serde_json::json!({"email": email, "password": "user-pass-1"})).await;
        assert_eq!(s, 201, "{v}");
        let id = v["id"].as_str().unwrap().to_string();
        let (s, t) =
            self.post("/auth/token", None, serde_json::json!({"email": email, "password": "user-pass-1"})).await;
        assert_eq!(s, 200, "{t}");
        (id, t["access_token"].as_str().unwrap().to_string())
    }
}

/// A server with the nycflights13 fixtures registered and synced, and an analyst.
/// In the one table the analyst may never read; no answer to them may contain it.
pub const SECRET_MARKER: &str = "TOPSECRET-4242";

pub struct Fixture {
    pub _dir: tempfile::TempDir,
    pub server: TestServer,
    pub http: Http,
    pub data: PathBuf,
    pub admin: String,
    pub analyst: String,
}

/// Registry bodies of the nycflights13 fixtures: flights, airlines, and weather
/// partitioned by month.
pub fn nyc_tables() -> Vec<serde_json::Value> {
    vec![
        json!({"name": "flights", "source_table": "flights.csv"}),
        json!({"name": "airlines", "source_table": "airlines.csv"}),
        json!({"name": "weather", "source_table": "weather.csv", "sync_strategy": "partitioned", "partition_by": "time_hour", "partition_granularity": "month"}),
    ]
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/nycflights13")
}

/// flights, airlines and weather (partitioned) granted to the analyst; salaries not.
pub async fn setup(env: &[(&str, &str)]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let sources = data.join("sources");
    std::fs::create_dir_all(&sources).unwrap();
    std::fs::copy(fixtures().join("flights_3000.csv"), sources.join("flights.csv")).unwrap();
    std::fs::copy(fixtures().join("airlines.csv"), sources.join("airlines.csv")).unwrap();
    std::fs::copy(fixtures().join("weather_1000.csv"), sources.join("weather.csv")).unwrap();
    std::fs::write(sources.join("salaries.csv"), format!("name,salary\nalice,{SECRET_MARKER}\nbob,{SECRET_MARKER}\n"))
        .unwrap();
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let server = TestServer::start_with(&data, |c| {
        c.envs(env);
    });
    let http = Http::new(&server);
    let admin = http.bootstrap().await;
    let mut tables = nyc_tables();
    tables.push(json!({"name": "salaries", "source_table": "salaries.csv"}));
    http.register(&admin, tables).await;
    assert_eq!(http.post("/api/sync/trigger", Some(&admin), json!(null)).await.0, 200);
    http.wait_synced(&admin, &["flights", "airlines", "weather", "salaries"]).await;
    let (_, analyst) = http.user(&admin, "ana@example.com").await;
    http.post("/api/admin/groups", Some(&admin), json!({"name": "Analysts"})).await;
    http.post("/api/admin/groups/Analysts/members", Some(&admin), json!({"email": "ana@example.com"})).await;
    for t in ["flights", "airlines", "weather"] {
        let grant = json!({"group_id": "Analysts", "resource_type": "table", "resource_id": t});
        assert_eq!(http.post("/api/admin/grants", Some(&admin), grant).await.0, 201);
    }
    Fixture { _dir: dir, server, http, data, admin, analyst }
}

/// The `agnes` CLI as one user of a test server, with a workspace and settings of its own.
pub struct Cli {
    pub server: String,
    pub token: String,
    pub workspace: PathBuf,
    pub config: PathBuf,
}

impl Cli {
    pub fn new(server: &str, token: &str, root: &Path) -> Cli {
        Cli { server: server.into(), token: token.into(), workspace: root.join("ws"), config: root.join("cfg") }
    }

    /// The `agnes` command as this user, in their workspace.
    pub fn command(&self) -> Command {
        std::fs::create_dir_all(&self.workspace).unwrap();
        let mut c = agnes();
        c.env("AGNES_SERVER", &self.server)
            .env("AGNES_TOKEN", &self.token)
            .env("AGNES_LOCAL_DIR", &self.workspace)
            .env("AGNES_CONFIG_DIR", &self.config);
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().unwrap()
    }

    /// Run: (exit code, stdout, stderr).
    pub fn output(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let out = self.run(args);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Run and expect `code`; answer stdout.
    pub fn expect(&self, code: i32, args: &[&str]) -> String {
        let (got, stdout, stderr) = self.output(args);
        assert_eq!(got, Some(code), "agnes {args:?}\nstdout: {stdout}\nstderr: {stderr}");
        stdout
    }
}
