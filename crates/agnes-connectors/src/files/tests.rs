use super::*;
use crate::{Connector, ConnectorError, Publication, SyncContext};
use agnes_core::{PartitionGranularity, QueryMode, SourceType, SyncStrategy, TableSpec};
use agnes_engine::confined::Limits;
use agnes_engine::table_data::TableData;
use agnes_engine::DataLayout;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/nycflights13")
}

struct Env {
    _dir: tempfile::TempDir,
    layout: DataLayout,
    root: PathBuf,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let layout = DataLayout::new(dir.path().join("data"));
    layout.create().unwrap();
    let root = layout.default_files_root();
    for f in ["flights_3000.csv", "airlines.csv", "weather_1000.csv"] {
        std::fs::copy(fixtures().join(f), root.join(f)).unwrap();
    }
    Env { _dir: dir, layout, root }
}

fn table(name: &str, source_table: &str) -> TableSpec {
    let mut t = TableSpec::new(name, SourceType::Files, QueryMode::Local, Default::default());
    t.source_table = Some(source_table.into());
    t
}

fn sync(env: &Env, t: &TableSpec) -> Result<crate::SyncedTable, ConnectorError> {
    let connector = FilesConnector::new(FilesConfig { root: env.root.clone() });
    connector.sync_table(
        t,
        &SyncContext { layout: &env.layout, limits: &Limits::default(), last_sync: None, source_version: None },
    )
}

/// `(SELECT …)` reading what was published for `t`, as every reader does.
fn published(env: &Env, t: &TableSpec) -> String {
    format!("({})", TableData::locate(&env.layout, "files", t).select_sql().unwrap())
}

fn query_i64(sql: &str) -> i64 {
    agnes_engine::duck::open_in_memory().unwrap().query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn csv_with_na_keeps_integer_types_and_known_answers() {
    let env = env();
    let synced = sync(&env, &table("flights", "flights_3000.csv")).unwrap();
    let Publication::Single(file) = &synced.publication else { panic!("single file expected") };
    assert_eq!(file.rows, 3000);
    let p = file.path.display();
    assert_eq!(query_i64(&format!("SELECT count(*) FROM '{p}' WHERE dep_time IS NULL")), 22);
    assert_eq!(query_i64(&format!("SELECT count(*) FROM '{p}' WHERE carrier = 'UA'")), 552);
    let conn = agnes_engine::duck::open_in_memory().unwrap();
    let types: Vec<(String, String)> = conn
        .prepare(&format!("SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM '{p}')"))
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let ty = |c: &str| types.iter().find(|(n, _)| n == c).map(|(_, t)| t.clone()).unwrap();
    assert_eq!(ty("dep_time"), "BIGINT", "NA must not turn an integer column into text");
    assert_eq!(ty("carrier"), "VARCHAR");
    assert!(ty("time_hour").starts_with("TIMESTAMP"), "{}", ty("time_hour"));
}

#[test]
fn null_markers_are_configurable_per_table() {
    let env = env();
    std::fs::write(env.root.join("dash.csv"), "id,score\n1,10\n2,-\n3,NA\n").unwrap();
    let mut t = table("dash", "dash.csv");
    t.source_options = Some(serde_json::json!({"null_markers": ["-", "NA"]}));
    sync(&env, &t).unwrap();
    let p = published(&env, &t);
    assert_eq!(query_i64(&format!("SELECT count(*) FROM {p} WHERE score IS NULL")), 2);

    t.source_options = Some(serde_json::json!({"null_marker": ["-"]}));
    let err = sync(&env, &t).unwrap_err();
    assert!(err.to_string().contains("unknown field"), "{err}");
}

#[test]
fn malformed_csv_names_file_line_and_reason() {
    let env = env();
    std::fs::write(env.root.join("bad.csv"), "id,amount\n1,2.5\n2,3.5\n3,oops\n").unwrap();
    let mut t = table("bad", "bad.csv");
    t.source_options = Some(serde_json::json!({"types": {"amount": "DOUBLE"}}));
    let err = sync(&env, &t).unwrap_err().to_string();
    assert!(err.contains("bad.csv"), "names the file: {err}");
    assert!(err.contains("Line: 4"), "names the line: {err}");
    assert!(err.contains("oops"), "names the value: {err}");
    assert!(!env.layout.table_file("files", "bad").exists(), "nothing published");
}

#[test]
fn paths_cannot_escape_the_root() {
    let env = env();
    let outside = env.layout.root().join("secret.csv");
    std::fs::write(&outside, "a\n1\n").unwrap();
    std::os::unix::fs::symlink(&outside, env.root.join("link.csv")).unwrap();
    for (pattern, expect) in [
        ("../secret.csv", "without '..'"),
        ("/etc/passwd", "relative"),
        ("link.csv", "outside the files root"),
        ("missing.csv", "not found"),
        ("nothing/*.csv", "no files match"),
        ("", "empty"),
    ] {
        let err = sync(&env, &table("t", pattern)).unwrap_err().to_string();
        assert!(err.contains(expect), "{pattern:?}: {err}");
    }
}

#[test]
fn materialized_queries_are_confined_to_the_root() {
    let env = env();
    let mut t = TableSpec::new("delays", SourceType::Files, QueryMode::Materialized, Default::default());
    t.source_query = Some(
        "SELECT carrier, count(*) AS flights, avg(dep_delay) AS avg_delay \
         FROM read_csv(source_path('flights_3000.csv'), nullstr = 'NA') GROUP BY carrier ORDER BY carrier;"
            .into(),
    );
    sync(&env, &t).unwrap();
    assert_eq!(query_i64(&format!("SELECT flights FROM {} WHERE carrier = 'UA'", published(&env, &t))), 552);

    for escape in [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_csv(source_path('../secret.csv'))",
        "SELECT * FROM read_text('/etc/hostname')",
    ] {
        t.source_query = Some(escape.into());
        let err = sync(&env, &t).unwrap_err().to_string();
        assert!(err.contains("Permission") || err.contains("disabled"), "{escape}: {err}");
    }
}

#[test]
fn globs_tsv_json_and_parquet() {
    let env = env();
    std::fs::create_dir_all(env.root.join("parts")).unwrap();
    std::fs::write(env.root.join("parts/a.csv"), "id,v\n1,x\n").unwrap();
    std::fs::write(env.root.join("parts/b.csv"), "id,v,extra\n2,y,z\n").unwrap();
    std::fs::write(env.root.join("parts/.hidden.csv"), "id,v\n99,h\n").unwrap();
    let synced = sync(&env, &table("parts", "parts/*.csv")).unwrap();
    assert_eq!(synced.rows(), 2, "hidden files are skipped; schemas unioned by name");

    std::fs::write(env.root.join("t.tsv"), "a\tb\n1\thello, world\n").unwrap();
    let tabbed = table("tabbed", "t.tsv");
    sync(&env, &tabbed).unwrap();
    assert_eq!(query_i64(&format!("SELECT count(*) FROM {} WHERE b = 'hello, world'", published(&env, &tabbed))), 1);

    std::fs::write(env.root.join("events.ndjson"), "{\"id\":1,\"k\":\"a\"}\n{\"id\":2,\"k\":null}\n").unwrap();
    assert_eq!(sync(&env, &table("events", "events.ndjson")).unwrap().rows(), 2);

    let flights = table("flights", "flights_3000.csv");
    sync(&env, &flights).unwrap();
    std::fs::copy(env.layout.table_file("files", "flights"), env.root.join("copy.parquet")).unwrap();
    assert_eq!(sync(&env, &table("copy", "copy.parquet")).unwrap().rows(), 3000);

    std::fs::write(env.root.join("data.bin"), "x").unwrap();
    let err = sync(&env, &table("bin", "data.bin")).unwrap_err().to_string();
    assert!(err.contains("source_options.format"), "{err}");
}

#[test]
fn partitioned_tables_publish_one_file_per_period() {
    let env = env();
    let mut t = table("weather", "weather_1000.csv");
    t.sync_strategy = SyncStrategy::Partitioned;
    t.partition_by = Some("time_hour".into());
    t.partition_granularity = Some(PartitionGranularity::Month);
    let synced = sync(&env, &t).unwrap();
    let Publication::Parts(parts) = &synced.publication else { panic!("parts expected") };
    let summary: Vec<(&str, i64)> = parts.iter().map(|p| (p.key.as_str(), p.file.rows)).collect();
    assert_eq!(summary, [("2013_01", 737), ("2013_02", 263)]);
    assert!(env.layout.table_part_dir("files", "weather").join("2013_01.parquet").is_file());
    assert_eq!(query_i64(&format!("SELECT count(*) FROM {}", published(&env, &t))), 1000);

    t.partition_by = None;
    assert!(sync(&env, &t).unwrap_err().to_string().contains("partition_by"));
}

#[test]
fn invalid_table_names_are_refused() {
    let env = env();
    let mut t = table("x", "airlines.csv");
    t.name = "bad name".into();
    assert!(sync(&env, &t).unwrap_err().to_string().contains("not a valid identifier"));
}

#[test]
fn concise_keeps_what_and_where() {
    let msg = "Conversion Error: CSV Error on Line: 3\nOriginal Line: 2,x3\nError when converting\n\n  file = /r/bad.csv\n  delimiter = ,";
    assert_eq!(
        super::extract::concise(msg),
        "Conversion Error: CSV Error on Line: 3 | Original Line: 2,x3 | Error when converting | file = /r/bad.csv"
    );
}

/// The whole real dataset, when `../shared/data` is present (CI has it beside the clone).
#[test]
fn full_nycflights13_when_present() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/nycflights13");
    if !shared.join("flights.csv").is_file() {
        eprintln!("shared data absent: skipping the full-size check");
        return;
    }
    let env = env();
    std::fs::copy(shared.join("flights.csv"), env.root.join("flights.csv")).unwrap();
    let flights = table("flights", "flights.csv");
    let synced = sync(&env, &flights).unwrap();
    let p = published(&env, &flights);
    assert_eq!(synced.rows(), 336_776);
    assert_eq!(query_i64(&format!("SELECT count(*) FROM {p} WHERE dep_time IS NULL")), 8_255);
    assert_eq!(query_i64(&format!("SELECT count(*) FROM {p} WHERE carrier = 'UA'")), 58_665);
}
