//! `agnes demo`: the whole server-side flow on embedded defaults, in one command.

use agnes_core::{PartitionGranularity, QueryMode, SourceType, SyncStrategy, TableSpec};
use agnes_server::auth::{password, pat, secret};
use agnes_server::sync::{Progress, Selection};
use agnes_store::identity::{User, ADMIN_GROUP};
use agnes_store::Store;
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Server data directory (created if missing; the dataset goes under its files root).
    #[arg(long, env = "DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Address to serve on after setting up.
    #[arg(long, env = "AGNES_BIND", default_value = "127.0.0.1:8000")]
    bind: SocketAddr,
    /// Dataset size: 1 = 50k customers, 400k orders, 3M web sessions.
    #[arg(long, default_value_t = 1.0, value_parser = parse_scale)]
    scale: f64,
    /// Seed of the generator: the same seed and scale give the same data.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Set everything up, print the summary, and exit instead of serving.
    #[arg(long)]
    no_serve: bool,
}

fn parse_scale(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if v > 0.0 && v <= 100.0 {
        Ok(v)
    } else {
        Err("scale must be greater than 0 and at most 100".into())
    }
}

const ADMIN_EMAIL: &str = "admin@demo.agnes.local";
const ANALYST_EMAIL: &str = "analyst@demo.agnes.local";
const ANALYSTS_GROUP: &str = "Analysts";
/// Not granted to analysts: the demo shows that access is per table.
const RESTRICTED_TABLE: &str = "customers";

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let config = agnes_server::ServerConfig::load(args.data_dir.clone(), args.bind, None)?;
    let files_root = config.files_root.clone();
    std::fs::create_dir_all(&files_root).with_context(|| format!("cannot create {}", files_root.display()))?;

    println!(
        "agnes demo: generating the dataset (scale {}, seed {}) under {}",
        args.scale,
        args.seed,
        files_root.display()
    );
    let tables = generate(&files_root, args.scale, args.seed).await?;

    let state = agnes_server::prepare(config.clone()).await?;
    register_tables(&state.store, &tables).await?;
    let (admin, analyst) = ensure_users(&state.store, &state.layout.state_dir()).await?;
    let metrics = import_starter_metrics(&state.store).await?;

    println!("Syncing {} tables through the files connector…", tables.len() + 1);
    let printer = |p: Progress<'_>| match p {
        Progress::Started { table, index, total } => println!("  [{}/{}] {} …", index + 1, total, table.name),
        Progress::Finished(o) if o.status == "ok" => println!(
            "        {} rows, {:.1} MiB, {:.1} s",
            o.rows.unwrap_or(0),
            o.size_bytes.unwrap_or(0) as f64 / 1048576.0,
            o.duration_ms as f64 / 1000.0
        ),
        Progress::Finished(o) => println!("        FAILED: {}", o.error.as_deref().unwrap_or("")),
        Progress::Rebuilding => println!("  rebuilding the analytics database…"),
    };
    let ids: Vec<String> = state.store.registry().list().await?.into_iter().map(|t| t.id).collect();
    let report = state.sync.run(Selection::Tables(ids), Some(&printer)).await?;
    let failed: Vec<_> = report.failed().map(|t| format!("{}: {}", t.id, t.error.as_deref().unwrap_or(""))).collect();
    if !failed.is_empty() {
        anyhow::bail!("{} table(s) failed to sync:\n  {}", failed.len(), failed.join("\n  "));
    }

    let key = secret::load_or_create(&state.layout.state_dir())?;
    let admin_token =
        pat::issue(&state.store, &key, &admin, "agnes demo", pat::DEFAULT_SCOPE, Some(chrono::Duration::days(90)))
            .await?;
    let analyst_token =
        pat::issue(&state.store, &key, &analyst, "agnes demo", pat::DEFAULT_SCOPE, Some(chrono::Duration::days(90)))
            .await?;
    let url = format!("http://{}", args.bind);
    let exe = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "agnes".into());
    let credentials = state.layout.state_dir().join("demo-credentials.txt");
    println!(
        "\nReady: {} tables in {}, and {metrics} business metric definitions.\n\n\
         Users (passwords are in {}):\n  admin    {ADMIN_EMAIL}  (group {ADMIN_GROUP})\n  analyst  {ANALYST_EMAIL}  (group {ANALYSTS_GROUP}: every table except '{RESTRICTED_TABLE}')\n\n\
         Tokens (valid 90 days; shown once):\n  admin    {}\n  analyst  {}\n\n\
         Try it as the analyst (in another terminal, while this one serves):\n  \
         export AGNES_SERVER={url} AGNES_TOKEN={}\n  \
         {exe} auth whoami\n  \
         {exe} pull && {exe} query \"SELECT status, count(*) FROM orders GROUP BY 1\"\n  \
         {exe} query --remote \"SELECT channel, sum(total_amount) FROM orders GROUP BY 1\"\n  \
         {exe} explore orders --remote\n  \
         {exe} catalog --metrics && {exe} catalog --metrics --show revenue/total_revenue\n  \
         {exe} snapshot create web_sessions --as recent --where \"started_at >= DATE '2025-06-01'\" --limit 1000\n  \
         curl -s -H \"Authorization: Bearer $AGNES_TOKEN\" $AGNES_SERVER/api/me/effective-access\n  \
         curl -s $AGNES_SERVER/api/health\n  \
         curl -s $AGNES_SERVER/metrics | grep agnes_published\n",
        report.exposed_tables,
        state.layout.analytics_db().display(),
        credentials.display(),
        admin_token.token,
        analyst_token.token,
        analyst_token.token,
    );
    if args.no_serve {
        state.store.close().await;
        return Ok(());
    }
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .map_err(|source| agnes_server::ServerError::Bind { addr: args.bind.to_string(), source })?;
    println!("Serving on {url} — Ctrl-C to stop.");
    agnes_server::Server::from_parts(state, listener).run(agnes_server::shutdown_signal()).await?;
    Ok(())
}

async fn generate(root: &Path, scale: f64, seed: u64) -> anyhow::Result<Vec<agnes_engine::demo_data::DemoTable>> {
    let bar = if std::io::stdout().is_terminal() { ProgressBar::new(1) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("  {spinner} [{bar:30}] {pos}/{len} {msg} ({elapsed})")
            .expect("static template")
            .progress_chars("=> "),
    );
    let root = root.to_path_buf();
    let b = bar.clone();
    let plain = bar.is_hidden();
    let tables = tokio::task::spawn_blocking(move || {
        agnes_engine::demo_data::generate(&root, scale, seed, |name, done, total| {
            b.set_length(total as u64);
            b.set_position(done as u64);
            b.set_message(name.to_string());
            if plain {
                println!("  generated {name} ({done}/{total})");
            }
        })
    })
    .await??;
    bar.finish_and_clear();
    Ok(tables)
}

/// The starter pack of business metrics for the demo dataset, as YAML files by their path
/// in the tree (`<category>/<name>.yml`). Each one's SQL is run against the demo data by a
/// test, and its `validation` bounds (`min`, `max`) hold for every `value` it returns.
const STARTER_METRICS: &[(&str, &str)] = &[
    ("conversion/revenue_per_session.yml", include_str!("demo_metrics/conversion/revenue_per_session.yml")),
    ("conversion/session_conversion_rate.yml", include_str!("demo_metrics/conversion/session_conversion_rate.yml")),
    ("conversion/signed_in_share.yml", include_str!("demo_metrics/conversion/signed_in_share.yml")),
    ("customers/active_customers.yml", include_str!("demo_metrics/customers/active_customers.yml")),
    ("customers/average_nps.yml", include_str!("demo_metrics/customers/average_nps.yml")),
    ("customers/new_customers.yml", include_str!("demo_metrics/customers/new_customers.yml")),
    ("customers/repeat_purchase_rate.yml", include_str!("demo_metrics/customers/repeat_purchase_rate.yml")),
    ("orders/cancellation_rate.yml", include_str!("demo_metrics/orders/cancellation_rate.yml")),
    ("orders/items_per_order.yml", include_str!("demo_metrics/orders/items_per_order.yml")),
    ("orders/order_count.yml", include_str!("demo_metrics/orders/order_count.yml")),
    ("revenue/average_order_value.yml", include_str!("demo_metrics/revenue/average_order_value.yml")),
    ("revenue/gross_margin.yml", include_str!("demo_metrics/revenue/gross_margin.yml")),
    ("revenue/refund_rate.yml", include_str!("demo_metrics/revenue/refund_rate.yml")),
    ("revenue/total_revenue.yml", include_str!("demo_metrics/revenue/total_revenue.yml")),
    ("sessions/average_session_duration.yml", include_str!("demo_metrics/sessions/average_session_duration.yml")),
    ("sessions/pages_per_session.yml", include_str!("demo_metrics/sessions/pages_per_session.yml")),
    ("sessions/session_count.yml", include_str!("demo_metrics/sessions/session_count.yml")),
];

/// Import the starter pack through the same reader as `POST /api/admin/metrics/import`.
async fn import_starter_metrics(store: &Store) -> anyhow::Result<usize> {
    let files = STARTER_METRICS.iter().map(|(p, t)| (p.to_string(), t.to_string())).collect();
    let imported = agnes_server::metric_import::read_files(files).map_err(anyhow::Error::msg)?;
    store.metric_definitions().upsert_many(&imported.definitions).await?;
    Ok(imported.definitions.len())
}

/// Register every demo table (and one materialized summary) unless already registered.
async fn register_tables(store: &Store, tables: &[agnes_engine::demo_data::DemoTable]) -> anyhow::Result<()> {
    let mut specs = Vec::new();
    for t in tables {
        let mut spec = TableSpec::new(t.name, SourceType::Files, QueryMode::Local, chrono::Utc::now());
        spec.source_table = Some(t.source_table.clone());
        spec.description = Some(t.description.to_string());
        spec.primary_key = t.primary_key.iter().map(|s| s.to_string()).collect();
        spec.folder = Some("demo".into());
        spec.registered_by = Some(ADMIN_EMAIL.into());
        if let Some((column, granularity)) = t.partition {
            spec.sync_strategy = SyncStrategy::Partitioned;
            spec.partition_by = Some(column.into());
            spec.partition_granularity = Some(granularity.parse::<PartitionGranularity>()?);
        }
        specs.push(spec);
    }
    let mut daily = TableSpec::new("daily_revenue", SourceType::Files, QueryMode::Materialized, chrono::Utc::now());
    daily.description = Some("Revenue and order count per day from completed and shipped orders.".into());
    daily.source_query = Some(
        "SELECT CAST(ordered_at AS DATE) AS day, count(*) AS orders, SUM(total_amount) AS revenue \
         FROM read_csv(source_path('demo/orders.csv')) WHERE status IN ('completed', 'shipped') \
         GROUP BY 1 ORDER BY 1"
            .into(),
    );
    daily.folder = Some("demo".into());
    daily.registered_by = Some(ADMIN_EMAIL.into());
    specs.push(daily);
    for spec in specs {
        if store.registry().get(&spec.id).await?.is_none() {
            store.registry().insert(&spec).await?;
        }
    }
    Ok(())
}

/// The demo admin and analyst, their group and grants. Passwords are generated once and
/// kept in `state/demo-credentials.txt` (mode 0600).
async fn ensure_users(store: &Store, state_dir: &Path) -> anyhow::Result<(User, User)> {
    let ids = store.identity();
    let credentials = state_dir.join("demo-credentials.txt");
    let mut lines = Vec::new();
    let admin = ensure_user(store, ADMIN_EMAIL, &mut lines).await?;
    let analyst = ensure_user(store, ANALYST_EMAIL, &mut lines).await?;
    if !lines.is_empty() {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new().append(true).create(true).mode(0o600).open(&credentials)?;
        writeln!(f, "{}", lines.join("\n"))?;
    }
    let admin_group = ids.group_by_name(ADMIN_GROUP).await?.context("the Admin group is seeded at start")?;
    ids.add_member(&admin.id, &admin_group.id, "system_seed", Some("agnes demo")).await?;
    let analysts = match ids.group_by_name(ANALYSTS_GROUP).await? {
        Some(g) => g,
        None => ids.create_group(ANALYSTS_GROUP, Some("Demo analysts"), ADMIN_EMAIL).await?,
    };
    ids.add_member(&analyst.id, &analysts.id, "admin", Some(ADMIN_EMAIL)).await?;
    for t in store.registry().list().await? {
        if t.id != RESTRICTED_TABLE {
            ids.grant(&analysts.id, "table", &t.id, Some(ADMIN_EMAIL)).await?;
        }
    }
    Ok((admin, analyst))
}

/// The user with `email`, created with a fresh password (appended to `lines`) if new.
async fn ensure_user(store: &Store, email: &str, lines: &mut Vec<String>) -> anyhow::Result<User> {
    if let Some(u) = store.identity().user_by_email(email).await? {
        return Ok(u);
    }
    let pw = random_password();
    let hash = password::hash(&pw).await.map_err(anyhow::Error::msg)?;
    lines.push(format!("{email}\t{pw}"));
    Ok(store.identity().create_user(email, email.split('@').next(), Some(&hash)).await?)
}

fn random_password() -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    (0..16).map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char).collect()
}
