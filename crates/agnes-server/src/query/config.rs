//! Limits of server-side SQL, from `instance.yaml` (`api.query.*`, `api.quota.*`,
//! `api.scan.*`) with environment overrides.

use crate::settings::setting;
use agnes_engine::sandbox::SandboxLimits;
use agnes_store::quotas::QuotaLimits;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct QueryConfig {
    pub sandbox: SandboxLimits,
    /// The largest `limit` `/api/query` accepts.
    pub max_rows: usize,
    /// The largest `limit` `/api/v2/scan` accepts.
    pub scan_max_limit: usize,
    /// How long one scan may run, streaming included.
    pub scan_timeout: Duration,
    /// The most Arrow IPC one scan may answer.
    pub scan_max_result_bytes: u64,
    pub quotas: QuotaLimits,
    /// How long a request over its user's concurrency slots waits, in line behind that
    /// user's earlier requests, for a slot to free before it is answered 429.
    pub slot_wait: Duration,
}

impl QueryConfig {
    pub fn load(instance: &Value, tmp_dir: &Path) -> Result<QueryConfig, String> {
        let timeout: f64 =
            setting(instance, "AGNES_QUERY_TIMEOUT_SECONDS", &["api", "query", "timeout_seconds"], 30.0)?;
        if !(timeout > 0.0 && timeout.is_finite()) {
            return Err("AGNES_QUERY_TIMEOUT_SECONDS must be a positive number of seconds".into());
        }
        let sandbox = SandboxLimits {
            timeout: Duration::from_secs_f64(timeout),
            memory_limit: setting(
                instance,
                "AGNES_QUERY_MEMORY_LIMIT",
                &["api", "query", "memory_limit"],
                "1GB".into(),
            )?,
            threads: setting(instance, "AGNES_QUERY_THREADS", &["api", "query", "threads"], 2)?,
            temp_directory: Some(tmp_dir.join("query")),
            catalog_dir: Some(tmp_dir.join("sandbox-catalogs")),
            max_temp_size: setting(
                instance,
                "AGNES_QUERY_MAX_TEMP_SIZE",
                &["api", "query", "max_temp_size"],
                "2GB".into(),
            )?,
            max_result_bytes: setting(
                instance,
                "AGNES_QUERY_MAX_RESULT_BYTES",
                &["api", "query", "max_result_bytes"],
                64 << 20,
            )?,
        };
        let scan_timeout: f64 =
            setting(instance, "AGNES_SCAN_TIMEOUT_SECONDS", &["api", "scan", "timeout_seconds"], 300.0)?;
        if !(scan_timeout > 0.0 && scan_timeout.is_finite()) {
            return Err("AGNES_SCAN_TIMEOUT_SECONDS must be a positive number of seconds".into());
        }
        let quotas = QuotaLimits {
            max_concurrent: setting(
                instance,
                "AGNES_QUOTA_MAX_CONCURRENT",
                &["api", "quota", "max_concurrent_per_user"],
                5,
            )?,
            max_daily_bytes: setting(
                instance,
                "AGNES_QUOTA_MAX_DAILY_BYTES",
                &["api", "quota", "max_daily_bytes_per_user"],
                50 << 30,
            )?,
            // Nothing runs longer than its time limit; a slot older than that with some
            // margin belongs to a request that no longer exists.
            stale_after: chrono::Duration::seconds(timeout.max(scan_timeout) as i64 * 2 + 60),
        };
        Ok(QueryConfig {
            sandbox,
            max_rows: setting(instance, "AGNES_QUERY_MAX_ROWS", &["api", "query", "max_rows"], 100_000)?,
            scan_max_limit: setting(instance, "AGNES_SCAN_MAX_LIMIT", &["api", "scan", "max_limit"], 10_000_000)?,
            scan_timeout: Duration::from_secs_f64(scan_timeout),
            scan_max_result_bytes: setting(
                instance,
                "AGNES_SCAN_MAX_RESULT_BYTES",
                &["api", "scan", "max_result_bytes"],
                2 << 30,
            )?,
            quotas,
            slot_wait: {
                let seconds: f64 =
                    setting(instance, "AGNES_QUOTA_SLOT_WAIT_SECONDS", &["api", "quota", "slot_wait_seconds"], 10.0)?;
                if !(seconds >= 0.0 && seconds.is_finite()) {
                    return Err("AGNES_QUOTA_SLOT_WAIT_SECONDS must be zero or a positive number of seconds".into());
                }
                Duration::from_secs_f64(seconds)
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_then_defaults() {
        let instance = serde_json::json!({"api": {"query": {"timeout_seconds": 5, "memory_limit": "512MB"}, "quota": {"max_concurrent_per_user": 2}}});
        let c = QueryConfig::load(&instance, Path::new("/tmp")).unwrap();
        assert_eq!(c.sandbox.timeout, Duration::from_secs(5));
        assert_eq!(c.sandbox.memory_limit, "512MB");
        assert_eq!(c.quotas.max_concurrent, 2);
        assert_eq!(c.quotas.max_daily_bytes, 50 << 30);
        assert_eq!(c.max_rows, 100_000);
        assert_eq!(c.slot_wait, Duration::from_secs(10));
        let bad = serde_json::json!({"api": {"query": {"max_rows": "many"}}});
        assert!(QueryConfig::load(&bad, Path::new("/tmp")).unwrap_err().contains("max_rows"));
    }
}
