//! Starting the real `agnes` binary for black-box tests.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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
        .env("CONFIG_DIR", "/nonexistent-agnes-config")
        .env("RUST_LOG", "info");
    c
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
