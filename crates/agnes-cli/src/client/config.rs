//! The analyst's local configuration: `AGNES_CONFIG_DIR` or `~/.config/agnes/` with
//! `config.yaml` (`server`) and `token.json` (mode 0600). Environment variables win over
//! the files (`AGNES_SERVER`, `AGNES_TOKEN`), unlike the original (spec §12 quirk 7).

use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

pub const DEFAULT_SERVER: &str = "http://localhost:8000";

pub fn config_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("AGNES_CONFIG_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".config").join("agnes")
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct ConfigFile {
    server: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct TokenFile {
    pub access_token: String,
    #[serde(default)]
    pub email: String,
}

/// The server URL: `AGNES_SERVER`, else `config.yaml`, else the default.
pub fn server_url() -> String {
    if let Ok(s) = std::env::var("AGNES_SERVER") {
        if !s.trim().is_empty() {
            return s.trim().trim_end_matches('/').to_string();
        }
    }
    std::fs::read_to_string(config_dir().join("config.yaml"))
        .ok()
        .and_then(|t| serde_norway::from_str::<ConfigFile>(&t).ok())
        .and_then(|c| c.server)
        .map(|s| s.trim_end_matches('/').to_string())
        .unwrap_or_else(|| DEFAULT_SERVER.to_string())
}

/// The token: `AGNES_TOKEN`, else `token.json`.
pub fn token() -> Option<String> {
    if let Ok(t) = std::env::var("AGNES_TOKEN") {
        if !t.trim().is_empty() {
            return Some(t.trim().to_string());
        }
    }
    read_token_file().map(|t| t.access_token).filter(|t| !t.is_empty())
}

pub fn read_token_file() -> Option<TokenFile> {
    std::fs::read_to_string(config_dir().join("token.json")).ok().and_then(|t| serde_json::from_str(&t).ok())
}

pub fn save_server(url: &str) -> anyhow::Result<()> {
    let dir = config_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let text = serde_norway::to_string(&ConfigFile { server: Some(url.trim_end_matches('/').to_string()) })?;
    write_private(&dir.join("config.yaml"), text.as_bytes())
}

pub fn save_token(token: &str, email: &str) -> anyhow::Result<()> {
    let dir = config_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let text = serde_json::to_vec_pretty(&TokenFile { access_token: token.to_string(), email: email.to_string() })?;
    write_private(&dir.join("token.json"), &text)
}

/// Returns whether a token file existed.
pub fn delete_token() -> anyhow::Result<bool> {
    match std::fs::remove_file(config_dir().join("token.json")) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Write a file readable by its owner only, replacing it atomically.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
