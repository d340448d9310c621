//! Prometheus metrics: HTTP requests by route and status with latency histograms, sync
//! runs and failures, rows and bytes published, and seconds since each table's last sync
//! (computed from the state DB at scrape time, so it is right after a restart too).

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Instant;

pub const HTTP_REQUESTS: &str = "agnes_http_requests_total";
pub const HTTP_DURATION: &str = "agnes_http_request_duration_seconds";
pub const SYNC_RUNS: &str = "agnes_sync_runs_total";
pub const SYNC_TABLE_FAILURES: &str = "agnes_sync_table_failures_total";
pub const SYNC_TABLES: &str = "agnes_sync_tables_total";
pub const PUBLISHED_ROWS: &str = "agnes_published_rows_total";
pub const PUBLISHED_BYTES: &str = "agnes_published_bytes_total";
pub const SECONDS_SINCE_SYNC: &str = "agnes_table_seconds_since_last_sync";
pub const REBUILD_SECONDS: &str = "agnes_orchestrator_rebuild_seconds";
/// Jira events by outcome (`applied`, `failed`), and seconds from a delivery's acceptance
/// to its issue republished.
pub const JIRA_EVENTS: &str = "agnes_jira_events_total";
pub const JIRA_EVENT_SECONDS: &str = "agnes_jira_event_seconds";

/// The process-wide recorder handle. The recorder is global (the `metrics` macros write
/// to it), so it is installed once even when several servers run in one test process.
#[derive(Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
}

impl Metrics {
    pub fn install() -> Metrics {
        static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
        let handle = HANDLE
            .get_or_init(|| {
                let latency = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
                PrometheusBuilder::new()
                    .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.into()), &latency)
                    .and_then(|b| b.set_buckets_for_metric(Matcher::Full(REBUILD_SECONDS.into()), &latency))
                    .and_then(|b| b.set_buckets_for_metric(Matcher::Full(JIRA_EVENT_SECONDS.into()), &latency))
                    .expect("bucket lists are non-empty")
                    .install_recorder()
                    .expect("the metrics recorder is installed once")
            })
            .clone();
        Metrics { handle }
    }

    /// Render the exposition text, after refreshing per-table freshness gauges.
    pub async fn render(&self, store: &agnes_store::Store) -> String {
        if let Ok(states) = store.sync_state().list().await {
            let now = chrono::Utc::now();
            for s in states {
                if let Some(last) = s.last_sync {
                    let secs = (now - last).num_milliseconds() as f64 / 1000.0;
                    metrics::gauge!(SECONDS_SINCE_SYNC, "table" => s.table_id).set(secs);
                }
            }
        }
        self.handle.run_upkeep();
        self.handle.render()
    }
}

/// Middleware: count and time every request by method, route template and status.
pub async fn track(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!(HTTP_REQUESTS, &labels).increment(1);
    metrics::histogram!(HTTP_DURATION, &labels).record(started.elapsed().as_secs_f64());
    response
}
