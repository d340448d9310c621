use super::*;
use crate::extract::{write_extract, ExtractTable, MetaRow};
use crate::publish::publish_query;

struct Fixture {
    _dir: tempfile::TempDir,
    layout: DataLayout,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let layout = DataLayout::new(dir.path());
    layout.create().unwrap();
    Fixture { _dir: dir, layout }
}

fn meta(name: &str, rows: i64) -> MetaRow {
    MetaRow {
        table_name: name.into(),
        description: None,
        rows,
        size_bytes: 0,
        extracted_at: None,
        query_mode: "local".into(),
    }
}

/// Publish `rows` rows as `data/<table>.parquet` of `source` and return its extract table.
fn parquet_table(layout: &DataLayout, source: &str, table: &str, rows: i64) -> ExtractTable {
    let conn = crate::duck::open_in_memory().unwrap();
    let path = layout.table_file(source, table);
    let f = publish_query(&conn, &format!("SELECT range AS id FROM range({rows})"), &path).unwrap();
    ExtractTable::over(
        MetaRow { size_bytes: f.size_bytes, ..meta(table, f.rows) },
        &crate::table_data::TableData::File(path),
    )
    .unwrap()
}

fn count(conn: &Connection, view: &str) -> i64 {
    conn.query_row(&format!("SELECT count(*) FROM {}", quote_ident(view)), [], |r| r.get(0)).unwrap()
}

fn names(report: &RebuildReport) -> Vec<String> {
    let mut v: Vec<String> = report.exposed.values().flatten().map(|t| t.name.clone()).collect();
    v.sort();
    v
}

#[test]
fn empty_data_dir_builds_an_empty_analytics_db() {
    let f = fixture();
    let report = Orchestrator::new(f.layout.clone()).rebuild(&RebuildInput::default()).unwrap();
    assert_eq!(report.table_count(), 0);
    assert!(report.problems.is_empty());
    assert!(f.layout.analytics_db().is_file());
    assert_eq!(report.present.as_ref().map(|p| p.len()), Some(0));
}

#[test]
fn single_and_multi_source() {
    let f = fixture();
    let orders = parquet_table(&f.layout, "files", "orders", 10);
    write_extract(&f.layout.extract_db("files"), &[orders], &[]).unwrap();
    let o = Orchestrator::new(f.layout.clone());
    let report = o.rebuild(&RebuildInput::default()).unwrap();
    assert_eq!(names(&report), ["orders"]);
    assert_eq!(report.new_claims.get("orders").map(String::as_str), Some("files"));

    let issues = parquet_table(&f.layout, "jira", "issues", 7);
    write_extract(&f.layout.extract_db("jira"), &[issues], &[]).unwrap();
    let report = o.rebuild(&RebuildInput::default()).unwrap();
    assert_eq!(names(&report), ["issues", "orders"]);
    let reader = open_analytics_reader(&f.layout).unwrap();
    assert_eq!(count(&reader, "orders"), 10);
    assert_eq!(count(&reader, "issues"), 7);
}

#[test]
fn missing_extract_is_skipped_but_others_build() {
    let f = fixture();
    std::fs::create_dir_all(f.layout.source_dir("empty_source")).unwrap();
    let t = parquet_table(&f.layout, "files", "orders", 3);
    write_extract(&f.layout.extract_db("files"), &[t], &[]).unwrap();
    let report = Orchestrator::new(f.layout.clone()).rebuild(&RebuildInput::default()).unwrap();
    assert_eq!(names(&report), ["orders"]);
    assert!(report.problems.is_empty(), "a directory without an extract is not a problem: {:?}", report.problems);
}

#[test]
fn malicious_source_and_table_names_are_rejected() {
    let f = fixture();
    // A source directory whose name would break out of an identifier.
    let evil_dir = f.layout.extracts_dir().join("x\"; DROP TABLE y; --");
    std::fs::create_dir_all(&evil_dir).unwrap();
    let good = parquet_table(&f.layout, "files", "orders", 2);
    write_extract(&evil_dir.join("extract.duckdb"), std::slice::from_ref(&good), &[]).unwrap();
    // A reserved catalog name.
    write_extract(&f.layout.extract_db("system"), std::slice::from_ref(&good), &[]).unwrap();

    // A _meta row with a malicious name, written by a hostile extract writer.
    let path = f.layout.extract_db("files");
    write_extract(&path, &[good], &[]).unwrap();
    {
        let conn = crate::duck::open(&path).unwrap();
        conn.execute_batch("INSERT INTO _meta VALUES ('a\"; DROP VIEW orders; --', NULL, 1, 1, NULL, 'local')")
            .unwrap();
    }
    let report = Orchestrator::new(f.layout.clone()).rebuild(&RebuildInput::default()).unwrap();
    assert_eq!(names(&report), ["orders"]);
    let messages: Vec<_> = report.problems.iter().map(|p| p.message.as_str()).collect();
    assert_eq!(report.problems.len(), 3, "{messages:?}");
    assert!(messages.iter().filter(|m| m.contains("invalid source directory name")).count() == 2);
    assert!(messages.contains(&"invalid table name"));
}

#[test]
fn corrupt_empty_and_half_written_extracts_do_not_block_others() {
    let f = fixture();
    let t = parquet_table(&f.layout, "good", "orders", 5);
    write_extract(&f.layout.extract_db("good"), &[t], &[]).unwrap();

    std::fs::create_dir_all(f.layout.source_dir("corrupt")).unwrap();
    std::fs::write(f.layout.extract_db("corrupt"), b"this is not a duckdb file at all").unwrap();
    std::fs::create_dir_all(f.layout.source_dir("empty")).unwrap();
    std::fs::write(f.layout.extract_db("empty"), b"").unwrap();
    // Half-written: a valid extract truncated in the middle.
    let whole = parquet_table(&f.layout, "half", "x", 5);
    write_extract(&f.layout.extract_db("half"), &[whole], &[]).unwrap();
    let bytes = std::fs::read(f.layout.extract_db("half")).unwrap();
    std::fs::write(f.layout.extract_db("half"), &bytes[..bytes.len() / 3]).unwrap();
    // An extract with no _meta table.
    {
        std::fs::create_dir_all(f.layout.source_dir("nometa")).unwrap();
        let c = crate::duck::open(f.layout.extract_db("nometa")).unwrap();
        c.execute_batch("CREATE TABLE t AS SELECT 1 AS a").unwrap();
    }

    let report = Orchestrator::new(f.layout.clone()).rebuild(&RebuildInput::default()).unwrap();
    assert!(names(&report).contains(&"orders".to_string()));
    let bad: BTreeSet<_> = report.problems.iter().map(|p| p.source.as_str()).collect();
    for s in ["corrupt", "nometa"] {
        assert!(bad.contains(s), "{s} must be reported: {:?}", report.problems);
    }
    assert!(report.present.is_none(), "an unreadable source blocks ownership reconcile");
    assert_eq!(count(&open_analytics_reader(&f.layout).unwrap(), "orders"), 5);
}

#[test]
fn rebuild_is_idempotent() {
    let f = fixture();
    let t = parquet_table(&f.layout, "files", "orders", 4);
    write_extract(&f.layout.extract_db("files"), &[t], &[]).unwrap();
    let o = Orchestrator::new(f.layout.clone());
    let first = o.rebuild(&RebuildInput::default()).unwrap();
    let input = RebuildInput { ownership: first.new_claims.clone(), ..Default::default() };
    let second = o.rebuild(&input).unwrap();
    assert_eq!(names(&first), names(&second));
    assert!(second.new_claims.is_empty(), "nothing new to claim the second time");
    assert!(second.problems.is_empty());
    let leftovers: Vec<_> =
        std::fs::read_dir(f.layout.analytics_dir()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(leftovers.len(), 1, "only server.duckdb remains: {leftovers:?}");
}

#[test]
fn ownership_first_source_keeps_the_name() {
    let f = fixture();
    let a = parquet_table(&f.layout, "alpha", "shared", 1);
    let b = parquet_table(&f.layout, "beta", "shared", 2);
    write_extract(&f.layout.extract_db("alpha"), &[a], &[]).unwrap();
    write_extract(&f.layout.extract_db("beta"), &[b], &[]).unwrap();
    // beta claimed it earlier: the stored ownership wins over sort order.
    let input = RebuildInput { ownership: [("shared".to_string(), "beta".to_string())].into(), ..Default::default() };
    let report = Orchestrator::new(f.layout.clone()).rebuild(&input).unwrap();
    assert_eq!(report.exposed.get("beta").map(|v| v.len()), Some(1));
    assert!(!report.exposed.contains_key("alpha"));
    assert!(report.problems.iter().any(|p| p.source == "alpha" && p.message.contains("owned by source 'beta'")));
    assert_eq!(count(&open_analytics_reader(&f.layout).unwrap(), "shared"), 2);
}

#[test]
fn stale_ownership_is_released_when_every_source_reads_cleanly() {
    let f = fixture();
    let t = parquet_table(&f.layout, "files", "orders", 1);
    write_extract(&f.layout.extract_db("files"), &[t], &[]).unwrap();
    let input = RebuildInput { ownership: [("gone".to_string(), "files".to_string())].into(), ..Default::default() };
    let report = Orchestrator::new(f.layout.clone()).rebuild(&input).unwrap();
    let present = report.present.unwrap();
    assert!(present.contains(&("files".to_string(), "orders".to_string())));
    assert!(!present.contains(&("files".to_string(), "gone".to_string())));
}

#[test]
fn rebuild_while_a_reader_holds_the_old_db() {
    let f = fixture();
    let t = parquet_table(&f.layout, "files", "orders", 3);
    write_extract(&f.layout.extract_db("files"), &[t], &[]).unwrap();
    let o = Orchestrator::new(f.layout.clone());
    o.rebuild(&RebuildInput::default()).unwrap();
    let old_reader = open_analytics_reader(&f.layout).unwrap();
    assert_eq!(count(&old_reader, "orders"), 3);

    let t = parquet_table(&f.layout, "files", "customers", 8);
    let o2 = parquet_table(&f.layout, "files", "orders", 3);
    write_extract(&f.layout.extract_db("files"), &[o2, t], &[]).unwrap();
    let report = o.rebuild(&RebuildInput::default()).unwrap();
    assert_eq!(names(&report), ["customers", "orders"]);
    // The old reader still answers from the file it opened.
    assert_eq!(count(&old_reader, "orders"), 3);
    let new_reader = open_analytics_reader(&f.layout).unwrap();
    assert_eq!(count(&new_reader, "customers"), 8);
}

#[test]
fn filesystem_fallback_exposes_registered_materialized_parquet_only() {
    let f = fixture();
    let conn = crate::duck::open_in_memory().unwrap();
    // No extract.duckdb at all for this source: the original never exposed these.
    publish_query(&conn, "SELECT 42 AS answer", &f.layout.table_file("warehouse", "daily_revenue")).unwrap();
    publish_query(&conn, "SELECT 1 AS x", &f.layout.table_file("warehouse", "orphan")).unwrap();
    std::fs::write(f.layout.source_data_dir("warehouse").join("bad-name.parquet"), b"PAR1").unwrap();
    let input = RebuildInput {
        fallback: [
            ("warehouse".to_string(), "daily_revenue".to_string()),
            ("warehouse".to_string(), "bad-name".to_string()),
        ]
        .into(),
        ..Default::default()
    };
    let report = Orchestrator::new(f.layout.clone()).rebuild(&input).unwrap();
    assert_eq!(names(&report), ["daily_revenue"]);
    assert!(report.exposed["warehouse"][0].from_fallback);
    assert_eq!(report.exposed["warehouse"][0].rows, 1);
    let reader = open_analytics_reader(&f.layout).unwrap();
    let v: i32 = reader.query_row("SELECT answer FROM daily_revenue", [], |r| r.get(0)).unwrap();
    assert_eq!(v, 42);
}

#[test]
fn remote_attach_policy() {
    let p = RemotePolicy::default();
    let row = |ext: &str, env: &str| RemoteAttach {
        alias: "kbc".into(),
        extension: ext.into(),
        url: "u".into(),
        token_env: env.into(),
    };
    assert_eq!(p.refusal(&row("keboola", "KBC_TOKEN")), None);
    assert!(p.refusal(&row("httpfs", "")).unwrap().contains("allowlist"));
    assert!(p.refusal(&row("keboola", "HOME")).unwrap().contains("token_env"));
    assert!(p.refusal(&row("keboola", "lower")).is_some());
    assert!(p.refusal(&RemoteAttach { alias: "a b".into(), ..row("keboola", "") }).is_some());
}

#[test]
fn remote_attach_with_unset_token_env_is_skipped_not_fatal() {
    let f = fixture();
    let t = parquet_table(&f.layout, "kb", "local_t", 2);
    let remote = RemoteAttach {
        alias: "kbc".into(),
        extension: "keboola".into(),
        url: "https://x".into(),
        token_env: "KBC_STORAGE_TOKEN".into(),
    };
    std::env::remove_var("KBC_STORAGE_TOKEN");
    write_extract(&f.layout.extract_db("kb"), &[t], &[remote]).unwrap();
    let report = Orchestrator::new(f.layout.clone()).rebuild(&RebuildInput::default()).unwrap();
    assert_eq!(names(&report), ["local_t"]);
    assert!(report.problems.iter().any(|p| p.message.contains("KBC_STORAGE_TOKEN is not set")));
}
