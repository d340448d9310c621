//! Driving the real `agnes` binary from benchmarks.

use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A CLI session against `server`, with its own config dir and workspace.
pub struct Client {
    exe: PathBuf,
    server: String,
    cfg: PathBuf,
}

impl Client {
    pub fn run(&self, workspace: &Path, args: &[&str]) -> anyhow::Result<String> {
        self.run_measured(workspace, args).map(|(out, _)| out)
    }

    /// Run and report the process's own peak RSS in KiB (GNU time's `%M`).
    pub fn run_measured(&self, workspace: &Path, args: &[&str]) -> anyhow::Result<(String, i64)> {
        let out = Command::new("/usr/bin/time")
            .args(["-f", "agnes-peak-rss=%M"])
            .arg(&self.exe)
            .args(args)
            .env("AGNES_CONFIG_DIR", &self.cfg)
            .env("AGNES_SERVER", &self.server)
            .env("AGNES_LOCAL_DIR", workspace)
            .env_remove("AGNES_TOKEN")
            .output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        anyhow::ensure!(out.status.success(), "agnes {args:?} failed: {stderr}");
        let rss = stderr
            .lines()
            .find_map(|l| l.strip_prefix("agnes-peak-rss="))
            .and_then(|v| v.trim().parse().ok())
            .context("GNU time (/usr/bin/time) is needed: run scripts/bench.sh")?;
        Ok((String::from_utf8_lossy(&out.stdout).trim().to_string(), rss))
    }

    /// Sign in as a break-glass admin and keep a PAT in the config dir.
    pub fn admin(exe: &Path, data: &Path, server: &str, cfg: PathBuf) -> anyhow::Result<Client> {
        let c = Client { exe: exe.to_path_buf(), server: server.to_string(), cfg };
        let here = std::env::temp_dir();
        c.run(
            &here,
            &[
                "admin",
                "break-glass",
                "grant-admin",
                "bench@example.com",
                "--yes",
                "--password",
                "bench-pass-1",
                "--data-dir",
                &data.to_string_lossy(),
            ],
        )?;
        c.run(&here, &["auth", "login", "--email", "bench@example.com", "--password", "bench-pass-1"])?;
        let token = c.run(&here, &["auth", "token", "create", "--name", "bench", "--raw"])?;
        c.run(&here, &["auth", "import-token", "--token", &token])?;
        Ok(c)
    }

    /// The environment that makes an `agnes` process this session (for processes the
    /// benchmark drives itself).
    pub fn env(&self) -> Vec<(&'static str, std::ffi::OsString)> {
        vec![("AGNES_CONFIG_DIR", self.cfg.clone().into_os_string()), ("AGNES_SERVER", self.server.clone().into())]
    }

    /// The personal access token the session saved.
    pub fn token(&self) -> anyhow::Result<String> {
        let text = std::fs::read_to_string(self.cfg.join("token.json"))?;
        let v: serde_json::Value = serde_json::from_str(&text)?;
        v["access_token"].as_str().map(String::from).context("no access_token in token.json")
    }
}
