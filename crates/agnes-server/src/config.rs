//! Server configuration: command-line flags and environment variables over
//! `instance.yaml` (static file, then the writable overlay in the state dir, deep-merged;
//! `${VAR}` references resolved from the environment).

use crate::ServerError;
use agnes_engine::confined::Limits;
use agnes_engine::DataLayout;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    /// `STATE_DIR`, default `DATA_DIR/state`.
    pub state_dir: PathBuf,
    pub bind: SocketAddr,
    /// Root of the files connector (`data_source.files.root`, default `DATA_DIR/sources`).
    pub files_root: PathBuf,
    /// Named PostgreSQL connections (`data_source.postgres.<name>`).
    pub postgres: Vec<agnes_connectors::postgres::PgSource>,
    /// Keboola projects (`data_source.keboola`, or `.keboola.<name>` for several).
    pub keboola: Vec<agnes_connectors::keboola::KeboolaSource>,
    /// The BigQuery source (`data_source.bigquery`), if configured.
    pub bigquery: Option<agnes_connectors::bigquery::BigQuerySource>,
    /// The Jira site (`data_source.jira`, or `JIRA_DOMAIN`), if configured.
    pub jira: Option<agnes_connectors::jira::JiraSource>,
    /// Schedule of materialized rows without one (`AGNES_DEFAULT_SYNC_SCHEDULE`).
    pub default_sync_schedule: String,
    /// DuckDB limits for connector and orchestrator work (`engine.*`).
    pub limits: Limits,
    /// Limits of user SQL run on the server (`api.query.*`, `api.quota.*`, `api.scan.*`).
    pub query: crate::query::QueryConfig,
    pub scheduler: crate::sync::SchedulerConfig,
    /// `--dev` / `LOCAL_DEV_MODE`: every request is the seeded dev admin (loopback only).
    pub dev: bool,
    /// Mark the session cookie `Secure`: `DOMAIN` is set or `AGNES_PUBLIC_URL` is https.
    pub cookie_secure: bool,
    /// Proxies whose `X-Forwarded-For` is believed (`AGNES_TRUSTED_PROXIES`, comma list).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// The merged `instance.yaml`, for sections later features read.
    pub instance: Value,
}

impl ServerConfig {
    /// Build from the data dir, bind address and optional explicit config file; the
    /// environment supplies the rest.
    pub fn load(data_dir: PathBuf, bind: SocketAddr, config_file: Option<&Path>) -> Result<ServerConfig, ServerError> {
        let state_dir = std::env::var_os("STATE_DIR")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| data_dir.join("state"));
        let layout = DataLayout::new(&data_dir).with_state_dir(&state_dir);
        let static_file = match config_file {
            Some(p) => Some(p.to_path_buf()),
            None => {
                let dir = std::env::var_os("CONFIG_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("config"));
                Some(dir.join("instance.yaml")).filter(|p| p.is_file())
            }
        };
        let mut instance = Value::Object(Default::default());
        if let Some(p) = &static_file {
            deep_merge(&mut instance, read_yaml(p)?);
        }
        let overlay = state_dir.join("instance.yaml");
        if overlay.is_file() {
            deep_merge(&mut instance, read_yaml(&overlay)?);
        }
        resolve_env(&mut instance);

        let files_root = get_str(&instance, &["data_source", "files", "root"])
            .map(|r| {
                let p = PathBuf::from(r);
                if p.is_absolute() {
                    p
                } else {
                    data_dir.join(p)
                }
            })
            .unwrap_or_else(|| layout.default_files_root());
        let postgres = agnes_connectors::postgres::PgSource::all_from(get(&instance, &["data_source", "postgres"]))
            .map_err(|e| ServerError::Config(e.to_string()))?;
        let keboola = agnes_connectors::keboola::KeboolaSource::all_from(get(&instance, &["data_source", "keboola"]))
            .map_err(|e| ServerError::Config(e.to_string()))?;
        let bigquery =
            agnes_connectors::bigquery::BigQuerySource::from_section(get(&instance, &["data_source", "bigquery"]))
                .map_err(|e| ServerError::Config(e.to_string()))?;
        let jira = agnes_connectors::jira::JiraSource::from_section(get(&instance, &["data_source", "jira"]))
            .map_err(|e| ServerError::Config(e.to_string()))?;
        let default_sync_schedule = std::env::var("AGNES_DEFAULT_SYNC_SCHEDULE")
            .ok()
            .filter(|s| !s.trim().is_empty())
            .or_else(|| get_str(&instance, &["sync", "default_schedule"]).map(String::from))
            .unwrap_or_else(|| "every 1h".to_string());
        if let Err(e) = default_sync_schedule.parse::<agnes_core::Schedule>() {
            return Err(ServerError::Config(format!("AGNES_DEFAULT_SYNC_SCHEDULE: {e}")));
        }
        let limits = Limits {
            memory_limit: get_str(&instance, &["engine", "memory_limit"]).map(String::from),
            threads: get(&instance, &["engine", "threads"]).and_then(Value::as_u64).map(|t| t as usize),
            temp_directory: Some(layout.tmp_dir()),
            any_order: false,
        };
        let env_on =
            |k: &str| matches!(std::env::var(k).as_deref().map(str::to_lowercase).as_deref(), Ok("1" | "true" | "yes"));
        let cookie_secure = std::env::var("DOMAIN").is_ok_and(|d| !d.trim().is_empty())
            || std::env::var("AGNES_PUBLIC_URL").is_ok_and(|u| u.starts_with("https://"));
        let trusted_proxies = std::env::var("AGNES_TRUSTED_PROXIES")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse().map_err(|_| ServerError::Config(format!("AGNES_TRUSTED_PROXIES: {s:?} is not an IP address")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let query = crate::query::QueryConfig::load(&instance, &layout.tmp_dir()).map_err(ServerError::Config)?;
        let scheduler = crate::sync::SchedulerConfig::load(&instance).map_err(ServerError::Config)?;
        Ok(ServerConfig {
            query,
            scheduler,
            data_dir,
            state_dir,
            bind,
            files_root,
            postgres,
            keboola,
            bigquery,
            jira,
            default_sync_schedule,
            limits,
            dev: env_on("LOCAL_DEV_MODE"),
            cookie_secure,
            trusted_proxies,
            instance,
        })
    }

    pub fn layout(&self) -> DataLayout {
        DataLayout::new(&self.data_dir).with_state_dir(&self.state_dir)
    }
}

fn read_yaml(path: &Path) -> Result<Value, ServerError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ServerError::Config(format!("cannot read {}: {e}", path.display())))?;
    if text.trim().is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    serde_norway::from_str(&text).map_err(|e| ServerError::Config(format!("{}: {e}", path.display())))
}

fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

fn get_str<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    get(v, path).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// Merge `b` into `a`: objects recursively, anything else replaced.
fn deep_merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                deep_merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

/// Replace `${NAME}` in every string with the environment variable's value (empty when
/// unset), so secrets can stay out of the file.
fn resolve_env(v: &mut Value) {
    match v {
        Value::String(s) => {
            let mut out = String::new();
            let mut rest = s.as_str();
            while let Some(start) = rest.find("${") {
                out.push_str(&rest[..start]);
                match rest[start + 2..].find('}') {
                    Some(end) => {
                        let name = &rest[start + 2..start + 2 + end];
                        out.push_str(&std::env::var(name).unwrap_or_default());
                        rest = &rest[start + 3 + end..];
                    }
                    None => {
                        out.push_str(&rest[start..]);
                        rest = "";
                    }
                }
            }
            out.push_str(rest);
            *s = out;
        }
        Value::Array(items) => items.iter_mut().for_each(resolve_env),
        Value::Object(map) => map.values_mut().for_each(resolve_env),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_and_env() {
        let mut a = json!({"data_source": {"files": {"root": "a"}, "type": "local"}, "x": 1});
        deep_merge(&mut a, json!({"data_source": {"files": {"root": "b"}}, "y": [1]}));
        assert_eq!(a, json!({"data_source": {"files": {"root": "b"}, "type": "local"}, "x": 1, "y": [1]}));
        std::env::set_var("AGNES_TEST_SECRET_X", "s3cret");
        let mut v = json!({"k": "pre-${AGNES_TEST_SECRET_X}-${AGNES_UNSET_VAR_Y}-post ${open"});
        resolve_env(&mut v);
        assert_eq!(v, json!({"k": "pre-s3cret--post ${open"}));
    }

    #[test]
    fn load_reads_yaml_and_rejects_bad_schedule() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("instance.yaml");
        std::fs::write(&cfg, "data_source:\n  files:\n    root: raw\nengine:\n  memory_limit: 1GB\n  threads: 1\n")
            .unwrap();
        let c = ServerConfig::load(dir.path().join("data"), "127.0.0.1:0".parse().unwrap(), Some(&cfg)).unwrap();
        assert_eq!(c.files_root, dir.path().join("data/raw"));
        assert_eq!(c.limits.memory_limit.as_deref(), Some("1GB"));
        assert_eq!(c.limits.threads, Some(1));

        std::fs::write(&cfg, "data_source: [unclosed").unwrap();
        let err = ServerConfig::load(dir.path().join("data"), "127.0.0.1:0".parse().unwrap(), Some(&cfg)).unwrap_err();
        assert!(err.to_string().contains("instance.yaml"), "{err}");
    }
}
