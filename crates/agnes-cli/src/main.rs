//! The `agnes` binary. Errors become one readable line plus a hint on stderr and the
//! documented exit code; `anyhow` is used only here, at the edge.

mod client;
mod commands;
mod demo;
mod exit;
mod logging;

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "agnes", version, about = "Data distribution for AI analysts", propagate_version = true)]
struct Cli {
    /// Log format: `text` for people, `json` for log collectors.
    #[arg(long, global = true, value_enum, default_value_t = logging::LogFormat::Text, env = "AGNES_LOG_FORMAT")]
    log_format: logging::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Generate a synthetic company dataset, register and sync it, create users, then serve.
    Demo(demo::DemoArgs),
    /// Sign in, see who you are, manage personal access tokens.
    #[command(subcommand)]
    Auth(commands::auth::AuthCommand),
    /// Administer users, groups and grants.
    #[command(subcommand)]
    Admin(commands::admin::AdminCommand),
    /// Download the tables you may read into this workspace and refresh the local DuckDB.
    Pull(commands::pull::PullArgs),
    /// Run SQL on the local DuckDB.
    Query(commands::query::QueryArgs),
    /// Filtered local slices of tables too big to pull.
    #[command(subcommand)]
    Snapshot(commands::snapshot::SnapshotCommand),
    /// List the tables you may use.
    Catalog(commands::discover::CatalogArgs),
    /// Show a table's columns.
    Schema(commands::discover::SchemaArgs),
    /// Show a table's columns and a few rows.
    #[command(alias = "sample")]
    Describe(commands::discover::DescribeArgs),
    /// A table up close: the local DuckDB's view of it, or with --remote the server's profile.
    Explore(commands::discover::ExploreArgs),
    /// Show this workspace's state.
    Status(commands::discover::JsonFlag),
    /// Show the disk used by snapshots.
    DiskInfo(commands::discover::JsonFlag),
    /// Set this directory up as an analyst workspace (CLAUDE.md, hooks, first pull).
    Init(commands::init::InitArgs),
    /// Upload queued session transcripts and CLAUDE.local.md.
    Push(commands::push::PushArgs),
    /// Queue the session a Claude Code SessionStart hook describes on standard input.
    CaptureSession,
    /// Serve this workspace's tools to an AI agent over MCP (stdio).
    Mcp(commands::mcp::McpArgs),
}

#[derive(clap::Args, Clone)]
pub struct ServeArgs {
    /// Server data directory (created if missing).
    #[arg(long, env = "DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, env = "AGNES_BIND", default_value = "127.0.0.1:8000")]
    pub bind: SocketAddr,
    /// instance.yaml to read (default: CONFIG_DIR/instance.yaml when present).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Sign every request in as a seeded dev admin (also LOCAL_DEV_MODE=1). Refused
    /// unless --bind is a loopback address.
    #[arg(long)]
    pub dev: bool,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return exit::report(anyhow::anyhow!("cannot start the async runtime: {e}")),
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve(args).await,
            Command::Demo(args) => demo::run(args).await,
            Command::Auth(cmd) => commands::auth::run(cmd).await,
            Command::Admin(cmd) => commands::admin::run(cmd).await,
            Command::Pull(args) => commands::pull::run(args).await,
            Command::Query(args) => commands::query::run(args).await,
            Command::Snapshot(cmd) => commands::snapshot::run(cmd).await,
            Command::Catalog(args) => commands::discover::catalog(args).await,
            Command::Schema(args) => commands::discover::schema(args).await,
            Command::Describe(args) => commands::discover::describe(args).await,
            Command::Explore(args) => commands::discover::explore(args).await,
            Command::Status(args) => commands::discover::status(args),
            Command::DiskInfo(args) => commands::discover::disk_info(args),
            Command::Init(args) => commands::init::run(args).await,
            Command::Push(args) => commands::push::run(args).await,
            Command::CaptureSession => commands::push::capture(),
            Command::Mcp(args) => commands::mcp::run(args).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => exit::report(e),
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = agnes_server::ServerConfig::load(args.data_dir, args.bind, args.config.as_deref())?;
    config.dev |= args.dev;
    agnes_server::serve(config).await?;
    Ok(())
}
