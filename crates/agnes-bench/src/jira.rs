//! Jira freshness: 200 signed webhook deliveries (each announcing a change to a different
//! issue, 20 a second) against `agnes serve` and the fake Jira; for each, the time from
//! sending it to the published `issues` parquet holding the change, read from disk as
//! the orchestrator and a pull see it. The baseline is the delivery's own HTTP round trip.

use crate::report::{machine, Section};
use crate::scenarios::{agnes_exe, start_server_with, stop};
use agnes_fakes::jira::{sign, webhook, FakeJira, IssueSpec};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const ISSUES: usize = 200;
const SECRET: &str = "bench-secret";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Every issue's summary as the published `issues` parquet says now.
fn published(duck: &agnes_engine::duckdb::Connection, dir: &std::path::Path) -> HashMap<String, String> {
    let sql =
        format!("SELECT issue_key, summary FROM read_parquet('{}/*.parquet', union_by_name = true)", dir.display());
    let Ok(mut stmt) = duck.prepare(&sql) else { return HashMap::new() };
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?.unwrap_or_default())));
    rows.map(|rows| rows.flatten().collect()).unwrap_or_default()
}

pub fn jira_bench() -> anyhow::Result<Section> {
    let exe = agnes_exe()?;
    let fake = FakeJira::start("bench@corp.example", "bench-token");
    let keys: Vec<String> = (1..=ISSUES).map(|n| format!("SUP-{n}")).collect();
    for (i, key) in keys.iter().enumerate() {
        let mut s = IssueSpec::new(key, "first", &format!("2024-{:02}-10T10:00:00.000+0000", i % 12 + 1));
        s.comments = (0..3)
            .map(|c| {
                (
                    format!("{i}{c}"),
                    "bob@corp.example".into(),
                    format!("comment {c}"),
                    "2024-06-01T00:00:00.000+0000".into(),
                )
            })
            .collect();
        fake.put(s);
    }
    let work = tempfile::tempdir()?;
    let config = work.path().join("config");
    std::fs::create_dir_all(&config)?;
    std::fs::write(
        config.join("instance.yaml"),
        format!("data_source:\n  jira:\n    base_url: {}\n    reconcile_interval_seconds: 0\n", fake.url),
    )?;
    let data = work.path().join("data");
    let env = [
        ("CONFIG_DIR", config.to_str().unwrap_or_default()),
        ("JIRA_EMAIL", "bench@corp.example"),
        ("JIRA_API_TOKEN", "bench-token"),
        ("JIRA_WEBHOOK_SECRET", SECRET),
    ];
    let (server, port) = start_server_with(&exe, &data, &env)?;
    let result = (|| -> anyhow::Result<(Vec<Duration>, Vec<Duration>, Duration)> {
        let url = format!("http://127.0.0.1:{port}/webhooks/jira");
        let http = reqwest::blocking::Client::new();
        let send = |key: &str, event: &str| -> anyhow::Result<Duration> {
            let body = serde_json::to_vec(&webhook(event, key, "bench"))?;
            let started = Instant::now();
            let r = http.post(&url).header("X-Hub-Signature", sign(SECRET, &body)).body(body).send()?;
            anyhow::ensure!(r.status() == 200, "the webhook answered {}", r.status());
            Ok(started.elapsed())
        };
        let dir = data.join("extracts/jira/data/issues");
        let duck = agnes_engine::duck::open_in_memory()?;
        // The first deliveries build the tables from nothing.
        let warm = Instant::now();
        for key in &keys {
            send(key, "jira:issue_created")?;
        }
        while published(&duck, &dir).len() < ISSUES {
            anyhow::ensure!(warm.elapsed() < Duration::from_secs(120), "the first build did not finish in 2 minutes");
            std::thread::sleep(Duration::from_millis(50));
        }
        let first_build = warm.elapsed();

        // Then one change per issue, 20 a second; a watcher reads the parquet every 25 ms.
        let sent: std::sync::Mutex<HashMap<String, Instant>> = Default::default();
        let done = std::sync::atomic::AtomicBool::new(false);
        let (rtts, latencies) = std::thread::scope(|scope| -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
            let watcher = scope.spawn(|| {
                let Ok(duck) = agnes_engine::duck::open_in_memory() else { return Vec::new() };
                let mut seen: HashMap<String, Duration> = HashMap::new();
                let deadline = Instant::now() + Duration::from_secs(300);
                while seen.len() < ISSUES && Instant::now() < deadline {
                    let now = published(&duck, &dir);
                    let at = Instant::now();
                    for (key, sent_at) in sent.lock().unwrap().iter() {
                        if !seen.contains_key(key) && now.get(key).is_some_and(|s| s == &format!("v2 {key}")) {
                            seen.insert(key.clone(), at - *sent_at);
                        }
                    }
                    if done.load(std::sync::atomic::Ordering::Relaxed) && seen.len() == sent.lock().unwrap().len() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(25));
                }
                seen.into_values().collect::<Vec<_>>()
            });
            let mut rtts = Vec::new();
            for key in &keys {
                let mut s = fake.get(key).expect("the issue");
                s.summary = format!("v2 {key}");
                s.updated = "2024-12-01T00:00:00.000+0000".into();
                fake.put(s);
                sent.lock().unwrap().insert(key.clone(), Instant::now());
                rtts.push(send(key, "jira:issue_updated")?);
                std::thread::sleep(Duration::from_millis(50));
            }
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            let latencies = watcher.join().map_err(|_| anyhow::anyhow!("the watcher failed"))?;
            Ok((rtts, latencies))
        })?;
        anyhow::ensure!(latencies.len() == ISSUES, "only {} of {ISSUES} changes reached the table", latencies.len());
        Ok((rtts, latencies, first_build))
    })();
    stop(server)?;
    let (mut rtts, mut latencies, first_build) = result?;
    rtts.sort();
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    Ok(Section {
        name: "jira",
        body: format!(
            "## Jira webhook freshness\n\n{}\n\n{ISSUES} issues (3 comments each) over 12 months of the fake Jira Cloud API; \
             {ISSUES} signed `jira:issue_updated` deliveries, one per issue, 20 a second. Latency: from sending a \
             delivery to the published `issues` parquet holding the change (read from disk every 25 ms). Baseline: \
             the delivery's HTTP round trip (accepted and queued durably). The first build of the six tables from \
             {ISSUES} `issue_created` deliveries took {:.1} s.\n\n\
             | measure | agnes | baseline | target |\n|---|---|---|---|\n\
             | delivery → republished, p50 | {:.0} ms | round trip p50: {:.1} ms | |\n\
             | delivery → republished, p95 | {:.0} ms | round trip p95: {:.1} ms | ≤ 5,000 ms |\n\
             | delivery → republished, max | {:.0} ms | round trip max: {:.1} ms | |\n",
            machine(),
            first_build.as_secs_f64(),
            ms(percentile(&latencies, 0.5)),
            ms(percentile(&rtts, 0.5)),
            ms(percentile(&latencies, 0.95)),
            ms(percentile(&rtts, 0.95)),
            ms(*latencies.last().unwrap_or(&Duration::ZERO)),
            ms(*rtts.last().unwrap_or(&Duration::ZERO)),
        ),
    })
}
