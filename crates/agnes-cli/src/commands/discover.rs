//! `agnes catalog`, `schema`, `describe` / `sample`, `status`, `disk-info` (spec §4.4, §4.9).

use crate::client::api::{Api, ApiFailure};
use crate::client::output;
use crate::client::workspace::Workspace;
use crate::exit::Coded;
use agnes_core::api::{Catalog, ColumnProfile, Sample, TableProfile, TableSchema};
use serde_json::{json, Value};

#[derive(clap::Args)]
pub struct CatalogArgs {
    #[arg(long)]
    json: bool,
    /// Accepted for compatibility; the server always answers fresh.
    #[arg(long)]
    refresh: bool,
    /// List the business metric definitions instead of tables.
    #[arg(long)]
    metrics: bool,
    /// Show one metric (`<category>/<name>`): its definition and SQL.
    #[arg(long, value_name = "ID")]
    show: Option<String>,
}

#[derive(clap::Args)]
pub struct SchemaArgs {
    table: String,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct DescribeArgs {
    table: String,
    /// Sample rows (1–100).
    #[arg(short = 'n', long = "rows", default_value_t = 5)]
    rows: u32,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct ExploreArgs {
    table: String,
    /// The server's profile of the table instead of the local DuckDB.
    #[arg(long)]
    remote: bool,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct JsonFlag {
    #[arg(long)]
    json: bool,
}

/// The original's exit codes for catalog calls: 8 denied, 5 server trouble, 2 otherwise.
fn coded(e: ApiFailure) -> anyhow::Error {
    let code = match &e {
        ApiFailure::Http { status, .. } if status.as_u16() == 403 => 8,
        ApiFailure::Http { status, .. } if status.is_server_error() => 5,
        ApiFailure::Transport { .. } => 5,
        _ => 2,
    };
    Coded::wrap(code, e.into())
}

pub async fn catalog(args: CatalogArgs) -> anyhow::Result<()> {
    let _ = args.refresh;
    if args.metrics || args.show.is_some() {
        return super::metrics::catalog(args.show.as_deref(), args.json).await;
    }
    let catalog: Catalog = Api::from_config().get_as("/api/v2/catalog").await.map_err(|e| Coded::wrap(5, e.into()))?;
    if args.json {
        output::json(&catalog);
        return Ok(());
    }
    let rows: Vec<Value> = catalog
        .tables
        .iter()
        .map(|t| {
            json!({"id": t.id, "source": t.source_type, "mode": t.query_mode, "entity": t.entity_type,
                   "name": t.name, "rows": t.rows, "synced": t.last_sync})
        })
        .collect();
    output::table(
        &rows,
        &[
            ("id", "ID"),
            ("source", "SOURCE"),
            ("mode", "MODE"),
            ("entity", "ENTITY"),
            ("name", "NAME"),
            ("rows", "ROWS"),
            ("synced", "LAST SYNC"),
        ],
    );
    Ok(())
}

fn print_schema(s: &TableSchema) {
    println!(
        "Table: {}  ({} — use {} SQL dialect)",
        s.table_id,
        s.source_type.map_or("-", |t| t.as_str()),
        s.sql_flavor.to_uppercase()
    );
    let cols: Vec<Value> = s
        .columns
        .iter()
        .map(|c| {
            json!({"name": c.name, "type": c.column_type, "null": if c.nullable { "YES" } else { "NO" },
                   "description": c.description})
        })
        .collect();
    output::table(&cols, &[("name", "COLUMN"), ("type", "TYPE"), ("null", "NULL"), ("description", "DESCRIPTION")]);
    if let Some(p) = &s.partition_by {
        println!("Partitioned by: {p}");
    }
}

pub async fn schema(args: SchemaArgs) -> anyhow::Result<()> {
    let schema: TableSchema =
        Api::from_config().get_as(&format!("/api/v2/schema/{}", args.table)).await.map_err(coded)?;
    if args.json {
        output::json(&schema);
    } else {
        print_schema(&schema);
    }
    Ok(())
}

pub async fn describe(args: DescribeArgs) -> anyhow::Result<()> {
    let api = Api::from_config();
    let schema: TableSchema = api.get_as(&format!("/api/v2/schema/{}", args.table)).await.map_err(coded)?;
    let sample: Sample =
        api.get_as(&format!("/api/v2/sample/{}?n={}", args.table, args.rows.clamp(1, 100))).await.map_err(coded)?;
    if args.json {
        output::json(&json!({"schema": schema, "sample": sample}));
        return Ok(());
    }
    print_schema(&schema);
    // The profile's alerts, when the server has one (it is made after each changing sync).
    if let Ok(profile) = api.get_as::<TableProfile>(&format!("/api/catalog/profile/{}", args.table)).await {
        for alert in &profile.alerts {
            println!("alert: {}: {}", alert.column, alert.message);
        }
    }
    println!("\nSample:");
    let spec: Vec<(&str, &str)> = schema.columns.iter().map(|c| (c.name.as_str(), c.name.as_str())).collect();
    output::table(&sample.rows, &spec);
    Ok(())
}

/// `agnes explore TABLE`: row count, columns and a few rows from the local DuckDB; with
/// `--remote`, the server's profile (statistics and alerts of every column).
pub async fn explore(args: ExploreArgs) -> anyhow::Result<()> {
    if args.remote {
        let profile: TableProfile =
            Api::from_config().get_as(&format!("/api/catalog/profile/{}", args.table)).await.map_err(coded)?;
        if args.json {
            output::json(&profile);
            return Ok(());
        }
        print_profile(&profile);
        return Ok(());
    }
    let ws = Workspace::current()?;
    let db = ws.duckdb();
    if !db.is_file() {
        return Err(anyhow::anyhow!("Local DuckDB not found. Run: agnes pull"));
    }
    let (db2, table) = (db.clone(), args.table.clone());
    let (count, columns, rows) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        if !agnes_engine::local::relation_names(&db2)?.contains(&table) {
            anyhow::bail!(
                "'{table}' is not in the local DuckDB: pull it (agnes pull), or see the server's profile with --remote"
            );
        }
        let q = |sql: String, n| agnes_engine::local::query(&db2, &sql, n);
        Ok((
            q(format!("SELECT count(*) FROM \"{table}\""), 1)?,
            q(format!("SELECT column_name, column_type, \"null\" FROM (DESCRIBE \"{table}\")"), 10_000)?,
            q(format!("SELECT * FROM \"{table}\" LIMIT 5"), 5)?,
        ))
    })
    .await??;
    let to_json = |o: &agnes_engine::local::QueryOutput| -> Vec<Value> {
        o.rows
            .iter()
            .map(|r| {
                Value::Object(o.columns.iter().cloned().zip(r.iter().map(agnes_engine::values::to_json)).collect())
            })
            .collect()
    };
    let v = json!({"table": args.table, "rows": count.rows.first().map(|r| agnes_engine::values::to_json(&r[0])),
                   "columns": to_json(&columns), "sample": to_json(&rows)});
    if args.json {
        output::json(&v);
        return Ok(());
    }
    println!("Table: {}  ({} rows)", args.table, output::cell(&v["rows"]));
    output::table(
        v["columns"].as_array().map(Vec::as_slice).unwrap_or_default(),
        &[("column_name", "COLUMN"), ("column_type", "TYPE"), ("null", "NULL")],
    );
    let names: Vec<(&str, &str)> = rows.columns.iter().map(|c| (c.as_str(), c.as_str())).collect();
    output::table(v["sample"].as_array().map(Vec::as_slice).unwrap_or_default(), &names);
    Ok(())
}

fn print_profile(p: &TableProfile) {
    println!(
        "Table: {}  ({} rows, {} columns{}; profiled {})",
        p.table_id,
        p.row_count,
        p.column_count,
        if p.sampled { ", statistics from a sample" } else { "" },
        p.profiled_at.as_deref().unwrap_or("-"),
    );
    let columns: Vec<Value> = p
        .columns
        .iter()
        .map(|c| {
            json!({"name": c.name, "type": c.column_type, "complete": format!("{}%", c.completeness_pct),
                   "unique": c.unique_count, "detail": value_summary(c), "alerts": c.alerts.join(", ")})
        })
        .collect();
    output::table(
        &columns,
        &[
            ("name", "COLUMN"),
            ("type", "TYPE"),
            ("complete", "COMPLETE"),
            ("unique", "DISTINCT"),
            ("detail", "VALUES"),
            ("alerts", "ALERTS"),
        ],
    );
}

/// One line on a column's values: its range, or its most common values.
fn value_summary(c: &ColumnProfile) -> String {
    let text = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let num = |v: Option<f64>| text(v.map(|x| x.to_string()));
    if let Some(n) = &c.numeric_stats {
        format!("min {} · median {} · max {}", num(n.min), num(n.median), num(n.max))
    } else if let Some(d) = &c.date_stats {
        format!("{} → {}", text(d.earliest.clone()), text(d.latest.clone()))
    } else if let Some(s) = &c.string_stats {
        let top: Vec<String> =
            s.top_values.iter().take(3).map(|v| format!("{} ({}%)", text(v.value.clone()), v.pct)).collect();
        top.join(", ")
    } else if let Some(b) = &c.boolean_stats {
        format!("{}% true", b.true_pct)
    } else {
        String::new()
    }
}

fn dir_usage(dir: &std::path::Path) -> (u64, usize) {
    let mut bytes = 0;
    let mut files = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                let (b, f) = dir_usage(&e.path());
                bytes += b;
                files += f;
            } else {
                bytes += m.len();
                files += 1;
            }
        }
    }
    (bytes, files)
}

pub fn status(args: JsonFlag) -> anyhow::Result<()> {
    let ws = Workspace::current()?;
    let state = ws.load_state();
    let db = ws.duckdb();
    let last = std::fs::metadata(&db)
        .and_then(|m| m.modified())
        .ok()
        .map(|t| chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339());
    let v = json!({
        "workspace": ws.root().display().to_string(),
        "initialized": ws.init_sentinel().is_file(),
        "parquet_tables": state.tables.len(),
        "duckdb_exists": db.is_file(),
        "last_synced": last,
        "sessions_pending_upload": super::push::pending_sessions(&ws),
    });
    if args.json {
        output::json(&v);
    } else {
        println!("Workspace:       {}", output::cell(&v["workspace"]));
        println!("Initialized:     {}", v["initialized"]);
        println!("Pulled tables:   {}", v["parquet_tables"]);
        println!(
            "Local DuckDB:    {}",
            if db.is_file() { db.display().to_string() } else { "missing (run agnes pull)".into() }
        );
        println!("Last synced:     {}", output::cell(&v["last_synced"]));
        println!("Sessions to push: {}", v["sessions_pending_upload"]);
    }
    Ok(())
}

pub fn disk_info(args: JsonFlag) -> anyhow::Result<()> {
    let ws = Workspace::current()?;
    let dir = ws.snapshots_dir();
    let (used, _) = dir_usage(&dir);
    let count = std::fs::read_dir(&dir)
        .map(|d| d.flatten().filter(|e| e.path().extension().is_some_and(|x| x == "parquet")).count())
        .unwrap_or(0);
    let free = free_bytes(ws.root());
    let quota: f64 = std::env::var("AGNES_SNAPSHOT_QUOTA_GB").ok().and_then(|q| q.parse().ok()).unwrap_or(10.0);
    let v = json!({"snapshots_dir": dir, "used_bytes": used, "snapshot_count": count, "free_bytes": free, "quota_gb": quota});
    if args.json {
        output::json(&v);
    } else {
        println!(
            "Snapshots: {count} in {} ({:.1} MiB of a {quota} GB quota); {:.1} GiB free on disk",
            dir.display(),
            used as f64 / 1048576.0,
            free as f64 / 1073741824.0
        );
    }
    Ok(())
}

fn free_bytes(path: &std::path::Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else { return 0 };
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } == 0 {
        s.f_bavail as u64 * s.f_frsize as u64
    } else {
        0
    }
}
