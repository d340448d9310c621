//! `agnes admin register-table | update-table | unregister-table | list-tables |
//! discover-and-register` (spec §4.8): the table registry from the command line, over
//! `/api/admin/register-table`, `/api/admin/registry` and `/api/admin/discover-tables`.

use crate::client::api::{urlencode, Api};
use crate::client::output;
use crate::exit::Coded;
use agnes_core::api::{
    DiscoverAndRegister, DiscoveryRegistered, Precheck, Registered, RegistryList, SourceInfo, SourceTest,
    TableRegistration, TableUpdated,
};
use anyhow::{anyhow, Context};
use reqwest::Method;
use serde_json::{json, Value};

/// The registry fields a command line can set, as the server names them.
#[derive(clap::Args, Default)]
pub struct TableFields {
    /// `files` (default on this server), `keboola`, `bigquery`, …
    #[arg(long)]
    source_type: Option<String>,
    /// The source's schema, dataset or bucket.
    #[arg(long)]
    bucket: Option<String>,
    /// The source table or, for files, the path under the files root (register-table:
    /// default NAME).
    #[arg(long)]
    source_table: Option<String>,
    /// `local`, `materialized` or `remote`.
    #[arg(long)]
    query_mode: Option<String>,
    /// The named connection of the source (`data_source.postgres.<name>`); needed when
    /// its type has several.
    #[arg(long)]
    connection: Option<String>,
    /// The SQL of a materialized table, or `@file.sql`.
    #[arg(long)]
    query: Option<String>,
    #[arg(long)]
    description: Option<String>,
    /// `every 15m`, `every 2h`, `daily 03:00[,15:00]` (UTC).
    #[arg(long)]
    sync_schedule: Option<String>,
}

impl TableFields {
    /// The fields given, as a request body; `@file` values are read.
    fn body(&self) -> anyhow::Result<TableRegistration> {
        Ok(TableRegistration {
            source_type: self.source_type.clone(),
            bucket: self.bucket.clone(),
            source_table: self.source_table.clone(),
            query_mode: self.query_mode.clone(),
            description: self.description.clone(),
            sync_schedule: self.sync_schedule.clone(),
            connection: self.connection.clone(),
            source_query: self.query.as_deref().map(read_at_file).transpose()?,
            ..TableRegistration::default()
        })
    }
}

#[derive(clap::Args)]
pub struct RegisterArgs {
    /// The table's name; its registry id is the name in lower case.
    name: String,
    #[command(flatten)]
    fields: TableFields,
    /// `full_refresh` (default), `incremental` or `partitioned`.
    #[arg(long)]
    sync_strategy: Option<String>,
    /// Comma-separated key columns.
    #[arg(long, value_delimiter = ',')]
    primary_key: Vec<String>,
    /// For `incremental`: the growing column (an updated-at time or a sequence) whose
    /// values past the last sync's greatest are fetched.
    #[arg(long)]
    incremental_column: Option<String>,
    /// For `incremental` on a date or time column: also fetch again the last N days before
    /// the mark (rows that arrive late).
    #[arg(long)]
    incremental_window_days: Option<i64>,
    #[arg(long)]
    max_history_days: Option<i64>,
    /// Export filters as JSON (a list), or `@file.json`.
    #[arg(long)]
    where_filters_json: Option<String>,
    #[arg(long)]
    partition_by: Option<String>,
    /// `day`, `month` or `year`.
    #[arg(long)]
    partition_granularity: Option<String>,
    #[arg(long)]
    initial_load_chunk_days: Option<i64>,
    /// Check the table against its source without registering it.
    #[arg(long)]
    dry_run: bool,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct UpdateArgs {
    /// Registry id (or name) of the table.
    id: String,
    /// A new name.
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    fields: TableFields,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Subcommand)]
pub enum SourceCommand {
    /// The configured sources and their settings (never a secret).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Connect and report the server version, the role and what it can read.
    Test {
        name: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
pub struct UnregisterArgs {
    /// Registry id (or name) of the table.
    id: String,
    /// Do not ask for confirmation.
    #[arg(long, short)]
    yes: bool,
}

#[derive(clap::Args)]
pub struct DiscoverArgs {
    /// The source to register from (`agnes admin source list`); the files root by default.
    #[arg(long)]
    source: Option<String>,
    /// Only these tables, as discovery lists them (`schema.table`, or file paths).
    #[arg(long = "table", value_name = "PATH")]
    tables: Vec<String>,
    /// `local` (default) or `remote`.
    #[arg(long)]
    query_mode: Option<String>,
    /// Every table's sync strategy: `full_refresh` (default) or `incremental` (tables
    /// without a primary key are skipped).
    #[arg(long)]
    sync_strategy: Option<String>,
    /// List what would be registered, register nothing.
    #[arg(long)]
    dry_run: bool,
    #[arg(long)]
    json: bool,
}

/// A usage mistake: exit 2 with what to do.
fn usage(message: impl Into<String>) -> anyhow::Error {
    Coded::wrap(2, anyhow!(message.into()))
}

/// `value`, or the contents of the file `@path` names.
fn read_at_file(value: &str) -> anyhow::Result<String> {
    match value.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("cannot read {path}")),
        None => Ok(value.to_string()),
    }
}

pub async fn register(api: &Api, args: RegisterArgs) -> anyhow::Result<()> {
    let materialized = args.fields.query_mode.as_deref() == Some("materialized");
    if materialized && args.fields.query.is_none() && args.fields.source_type.as_deref() != Some("keboola") {
        return Err(usage("a materialized table needs --query (SQL, or @file.sql)"));
    }
    let where_filters = match &args.where_filters_json {
        Some(filters) => Some(
            serde_json::from_str::<Value>(&read_at_file(filters)?)
                .map_err(|e| usage(format!("--where-filters-json is not JSON: {e}")))?,
        ),
        None => None,
    };
    let fields = args.fields.body()?;
    let body = TableRegistration {
        name: Some(args.name.clone()),
        source_table: fields.source_table.clone().or_else(|| Some(args.name.clone())),
        sync_strategy: args.sync_strategy,
        primary_key: (!args.primary_key.is_empty()).then_some(args.primary_key),
        incremental_column: args.incremental_column,
        incremental_window_days: args.incremental_window_days,
        max_history_days: args.max_history_days,
        partition_by: args.partition_by,
        partition_granularity: args.partition_granularity,
        initial_load_chunk_days: args.initial_load_chunk_days,
        where_filters,
        ..fields
    };
    if args.dry_run {
        let v: Precheck = api.post_as("/api/admin/register-table/precheck", &body).await?;
        if args.json {
            output::json(&v);
        } else {
            println!("{} would register; its source has these columns:", args.name);
            output::table(&v.table.columns, &[("name", "COLUMN"), ("type", "TYPE")]);
        }
        return Ok(());
    }
    let v: Registered = api.post_as("/api/admin/register-table", &body).await?;
    if args.json {
        output::json(&v);
    } else {
        let id = v.id;
        if args.fields.query_mode.as_deref() == Some("remote") {
            println!(
                "Registered {} (id {id}). It stays in its source: query it with `agnes query --remote`.",
                args.name
            );
        } else {
            println!("Registered {} (id {id}). It is published on its next sync.", args.name);
        }
        println!("Next: grant it with `agnes admin grant create GROUP table {id}`.");
    }
    Ok(())
}

pub async fn update(api: &Api, args: UpdateArgs) -> anyhow::Result<()> {
    let body = TableRegistration { name: args.name.clone(), ..args.fields.body()? };
    if body == TableRegistration::default() {
        return Err(usage("nothing to change: give at least one field, e.g. --description or --sync-schedule"));
    }
    let path = format!("/api/admin/registry/{}", urlencode(&args.id));
    let v: TableUpdated = api.call_as(Method::PUT, &path, Some(&body)).await?;
    if args.json {
        output::json(&v);
    } else {
        println!("Updated {}.", args.id);
    }
    Ok(())
}

pub async fn unregister(api: &Api, args: UnregisterArgs) -> anyhow::Result<()> {
    if !args.yes {
        use std::io::IsTerminal;
        if !std::io::stdin().is_terminal() {
            return Err(usage("refusing to unregister without confirmation: pass --yes"));
        }
        eprint!("Unregister {}? Analysts lose it at their next pull. [y/N] ", args.id);
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            anyhow::bail!("aborted");
        }
    }
    api.delete(&format!("/api/admin/registry/{}", urlencode(&args.id))).await?;
    println!("Unregistered {}.", args.id);
    Ok(())
}

pub async fn list(api: &Api, as_json: bool) -> anyhow::Result<()> {
    let v: RegistryList = api.get_as("/api/admin/registry").await?;
    if as_json {
        output::json(&v);
        return Ok(());
    }
    output::table(
        &v.tables,
        &[
            ("id", "ID"),
            ("source_type", "SOURCE"),
            ("source_table", "SOURCE TABLE"),
            ("query_mode", "MODE"),
            ("sync_strategy", "STRATEGY"),
            ("sync_schedule", "SCHEDULE"),
            ("last_sync_error", "LAST ERROR"),
        ],
    );
    Ok(())
}

/// Register what a source holds (the files root by default) in one call.
pub async fn discover_and_register(api: &Api, args: DiscoverArgs) -> anyhow::Result<()> {
    let body = DiscoverAndRegister {
        source: args.source.clone().unwrap_or_else(|| "files".into()),
        tables: (!args.tables.is_empty()).then(|| args.tables.clone()),
        query_mode: args.query_mode.clone(),
        sync_schedule: None,
        sync_strategy: args.sync_strategy.clone(),
        dry_run: args.dry_run,
    };
    let out: DiscoveryRegistered = api.post_as("/api/admin/discover-and-register", &body).await?;
    if args.json {
        output::json(&out);
        return Ok(());
    }
    let verb = if args.dry_run { "Would register" } else { "Registered" };
    println!("{verb} {} table(s); {} skipped.", out.registered.len(), out.skipped.len());
    output::table(&out.registered, &[("name", "NAME"), ("id", "ID")]);
    for s in &out.skipped {
        println!("skipped {}: {}", s.path, s.reason);
    }
    Ok(())
}

/// `agnes admin source list | test NAME`.
pub async fn source(api: &Api, cmd: SourceCommand) -> anyhow::Result<()> {
    match cmd {
        SourceCommand::List { json } => {
            let sources: Vec<SourceInfo> = api.get_as("/api/admin/sources").await?;
            if json {
                output::json(&sources);
                return Ok(());
            }
            let rows: Vec<Value> = sources
                .iter()
                .map(|s| {
                    let settings = s.settings.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
                    json!({"name": s.name, "type": s.source_type, "tables": s.tables, "settings": settings})
                })
                .collect();
            output::table(&rows, &[("name", "NAME"), ("type", "TYPE"), ("tables", "TABLES"), ("settings", "SETTINGS")]);
        }
        SourceCommand::Test { name, json } => {
            let test: SourceTest =
                api.post_as(&format!("/api/admin/sources/{}/test", urlencode(&name)), &json!({})).await?;
            if json {
                output::json(&test);
                return Ok(());
            }
            println!(
                "{} answers: {}, signed in as {}{}; {} tables readable{}.",
                test.name,
                test.server_version,
                test.role,
                if test.superuser { " (a superuser)" } else { "" },
                test.tables_visible,
                test.expires.as_deref().map(|e| format!("; the credentials expire {e}")).unwrap_or_default()
            );
            for w in &test.warnings {
                eprintln!("warning: {w}");
            }
        }
    }
    Ok(())
}
