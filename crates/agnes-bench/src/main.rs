//! `cargo run -p agnes-bench -- <scenario>…`: measure, compare with a baseline taken in
//! the same run, and rewrite that scenario's section of `BENCHMARKS.md`.
//!
//! Runs in the same cargo profile as the tests and the demo (dependencies, DuckDB above
//! all, are built optimised there), so benchmarking never costs a second DuckDB build.

mod bigquery;
mod cli;
mod jira;
mod keboola;
mod mcp;
mod postgres;
mod profile;
mod pull;
mod query;
mod report;
mod scenarios;
mod scheduler;
mod web;

use clap::{Parser, ValueEnum};
use std::path::PathBuf;

#[derive(Parser)]
#[command(about = "agnes benchmarks")]
struct Args {
    /// Scenarios to run (default: all).
    #[arg(value_enum)]
    scenarios: Vec<Scenario>,
    /// Where results are written.
    #[arg(long, default_value = "BENCHMARKS.md")]
    output: PathBuf,
    /// Size factor for generated inputs (1 = the sizes quoted in BENCHMARKS.md).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// CSV → published parquet through the files connector vs DuckDB's own COPY.
    Publish,
    /// Orchestrator rebuild of 10, 100 and 1,000 single-file tables.
    Rebuild,
    /// `agnes serve` start-up time on an existing data dir and idle RSS.
    Serve,
    /// Requests per second of a PAT-authenticated endpoint vs the public health check (wrk).
    Auth,
    /// Cold pull vs cp, big-file throughput, no-change pull and manifest latency at 1,000 tables.
    Pull,
    /// `/api/query` vs DuckDB on the same parquet, point-query throughput, sandbox set-up.
    Query,
    /// One scheduler tick with 1,000 registered tables, none due.
    Scheduler,
    /// Profiling a 10-million-row, 10-column table vs DuckDB's SUMMARIZE.
    Profile,
    /// p50/p99 of the health check while 32 connections send bad passwords, vs idle.
    Signin,
    /// One user's 8 and 32 parallel queries over 5 slots: latency and errors.
    Backpressure,
    /// A 10-million-row PostgreSQL table to parquet vs psql + DuckDB; incremental at 1 %.
    Postgres,
    /// A 5-million-row Keboola export (8 gzipped CSV slices, fake Storage API) vs DuckDB alone.
    Keboola,
    /// A 100,000-row remote BigQuery query vs the same pages fetched directly; the catalog
    /// of 1,000 remote tables from the metadata cache.
    Bigquery,
    /// `agnes mcp` over stdio: start to `tools/list`, a catalog call of 1,000 tables, a local query.
    Mcp,
    /// Every web page's time and weight with 1,000 tables registered.
    Web,
    /// 200 signed Jira webhook deliveries: delivery to republished parquet, p50/p95.
    Jira,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let scenarios = if args.scenarios.is_empty() { Scenario::value_variants().to_vec() } else { args.scenarios };
    for s in scenarios {
        let section = match s {
            Scenario::Publish => scenarios::publish(args.scale)?,
            Scenario::Rebuild => scenarios::rebuild(args.scale)?,
            Scenario::Serve => scenarios::serve()?,
            Scenario::Auth => scenarios::auth()?,
            Scenario::Pull => pull::pull(args.scale)?,
            Scenario::Query => query::query(args.scale)?,
            Scenario::Scheduler => scheduler::scheduler()?,
            Scenario::Profile => profile::profile_bench(args.scale)?,
            Scenario::Signin => scenarios::signin()?,
            Scenario::Backpressure => scenarios::backpressure()?,
            Scenario::Postgres => postgres::postgres_bench(args.scale)?,
            Scenario::Keboola => keboola::keboola_bench(args.scale)?,
            Scenario::Bigquery => bigquery::bigquery_bench()?,
            Scenario::Mcp => mcp::mcp_bench()?,
            Scenario::Web => web::web_bench()?,
            Scenario::Jira => jira::jira_bench()?,
        };
        println!("{}", section.body);
        report::write_section(&args.output, &section)?;
    }
    println!("results written to {}", args.output.display());
    Ok(())
}
