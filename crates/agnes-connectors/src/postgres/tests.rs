//! The postgres connector against a real PostgreSQL (a throw-away cluster per test).

use super::*;
use crate::test_rows::text_rows as duck_rows;
use crate::testing::PgCluster;
use crate::{Connector, ConnectorError, Publication, SyncContext, SyncedTable};
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
    pg: PgCluster,
    connector: PostgresConnector,
}

/// A cluster with database `shop`, a read-only role `reader` whose password is in
/// `AGNES_TEST_PG_READER_PW`, and a connector named `main` using it.
fn env() -> Env {
    let pg = PgCluster::start();
    pg.execute("CREATE DATABASE shop");
    pg.execute("CREATE ROLE reader LOGIN PASSWORD 'reader-pw'; GRANT CONNECT ON DATABASE shop TO reader;");
    std::env::set_var("AGNES_TEST_PG_READER_PW", "reader-pw");
    let config = PgConnectionConfig {
        host: Some("127.0.0.1".into()),
        port: Some(pg.port),
        database: Some("shop".into()),
        user: Some("reader".into()),
        password_env: Some("AGNES_TEST_PG_READER_PW".into()),
        sslmode: SslMode::Disable,
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let layout = DataLayout::new(dir.path().join("data"));
    layout.create().unwrap();
    Env { _dir: dir, layout, pg, connector: PostgresConnector::new(PgSource { name: "main".into(), config }) }
}

impl Env {
    /// Run SQL in `shop` as its owner, then let `reader` read every table.
    fn shop(&self, sql: &str) {
        self.pg.execute_in("shop", sql);
        self.pg.execute_in(
            "shop",
            "GRANT USAGE ON SCHEMA public TO reader; GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader;",
        );
    }

    fn sync(&self, t: &TableSpec) -> Result<SyncedTable, ConnectorError> {
        self.connector.sync_table(
            t,
            &SyncContext { layout: &self.layout, limits: &Limits::default(), last_sync: None, source_version: None },
        )
    }
}

fn local(name: &str, source_table: &str) -> TableSpec {
    let mut t = TableSpec::new(name, SourceType::Postgres, QueryMode::Local, Default::default());
    t.source_table = Some(source_table.into());
    t
}

fn single(s: &SyncedTable) -> &agnes_engine::publish::PublishedFile {
    match &s.publication {
        Publication::Single(f) => f,
        _ => panic!("one file expected"),
    }
}

/// Every mapped type, NULLs and odd column names arrive with their values and the DuckDB
/// types the module's table promises.
#[test]
fn every_mapped_type_round_trips() {
    let env = env();
    env.shop(
        "CREATE TYPE mood AS ENUM ('sad', 'happy'); CREATE DOMAIN positive AS integer CHECK (VALUE > 0); \
         CREATE TABLE every (id int PRIMARY KEY, small smallint, big bigint, real_ real, dbl double precision, \
           price numeric(12,2), free numeric, flag boolean, label text, code char(3), v varchar(10), \
           day date, at_time time, stamp timestamp, stamptz timestamptz, span interval, uid uuid, \
           doc json, docb jsonb, raw bytea, tags text[], nums int[], m mood, p positive, \"Odd Name\" text, \"select\" int); \
         INSERT INTO every VALUES \
           (1, -3, 9007199254740993, 1.5, 2.25, 1234567890.12, 3.141592653, true, 'héllo', 'ab', 'x', \
            '2024-02-29', '13:14:15.123456', '2024-01-02 03:04:05.678901', '2024-06-30 23:30:00-02', \
            '1 year 2 mons 3 days 04:05:06.7', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{\"a\": 1}', '{\"b\": [2]}', \
            '\\xdeadbeef', '{x,NULL,\"y z\"}', '{1,2}', 'happy', 7, 'odd', 42), \
           (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
            NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);",
    );
    let synced = env.sync(&local("every", "every")).unwrap();
    let file = single(&synced);
    assert_eq!(file.rows, 2);
    let p = file.path.display();
    let types = duck_rows(&format!("SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM '{p}')"));
    let types: Vec<(&str, &str)> = types.iter().map(|r| (r[0].as_str(), r[1].as_str())).collect();
    assert_eq!(
        types,
        [
            ("id", "INTEGER"),
            ("small", "SMALLINT"),
            ("big", "BIGINT"),
            ("real_", "FLOAT"),
            ("dbl", "DOUBLE"),
            ("price", "DECIMAL(12,2)"),
            ("free", "DECIMAL(38,9)"),
            ("flag", "BOOLEAN"),
            ("label", "VARCHAR"),
            ("code", "VARCHAR"),
            ("v", "VARCHAR"),
            ("day", "DATE"),
            ("at_time", "TIME"),
            ("stamp", "TIMESTAMP"),
            ("stamptz", "TIMESTAMP WITH TIME ZONE"),
            ("span", "VARCHAR"),
            ("uid", "VARCHAR"),
            ("doc", "VARCHAR"),
            ("docb", "VARCHAR"),
            ("raw", "BLOB"),
            ("tags", "VARCHAR[]"),
            ("nums", "INTEGER[]"),
            ("m", "VARCHAR"),
            ("p", "INTEGER"),
            ("Odd Name", "VARCHAR"),
            ("select", "INTEGER"),
        ]
    );
    let row = &duck_rows(&format!(
        "SELECT small, big, real_, dbl, price, free, flag, label, code, v, day, at_time, stamp, stamptz, \
         span::INTERVAL = INTERVAL '1 year 2 months 3 days 04:05:06.7', uid::UUID, doc, docb, hex(raw), tags, nums, m, p, \
         \"Odd Name\", \"select\" FROM '{p}' WHERE id = 1"
    ))[0];
    assert_eq!(
        row,
        &[
            "-3",
            "9007199254740993",
            "1.5",
            "2.25",
            "1234567890.12",
            "3.141592653",
            "true",
            "héllo",
            "ab ",
            "x",
            "2024-02-29",
            "13:14:15.123456",
            "2024-01-02T03:04:05.678901",
            "2024-07-01T01:30:00",
            "true",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "{\"a\": 1}",
            "{\"b\": [2]}",
            "DEADBEEF",
            "[\"x\",null,\"y z\"]",
            "[1,2]",
            "happy",
            "7",
            "odd",
            "42",
        ]
    );
    let nulls = duck_rows(&format!("SELECT count(*) FROM '{p}' WHERE id = 2 AND COLUMNS(* EXCLUDE (id)) IS NULL"));
    assert_eq!(nulls, [["1"]], "the NULL row is NULL in every column");
}

/// nycflights13 flights: the parquet equals the source, by row count and per-column sums.
#[test]
fn flights_equal_the_source() {
    let env = env();
    env.shop(
        "CREATE TABLE flights (year int, month int, day int, dep_time int, sched_dep_time int, dep_delay numeric, \
           arr_time int, sched_arr_time int, arr_delay numeric, carrier text, flight int, tailnum text, \
           origin text, dest text, air_time numeric, distance numeric, hour numeric, minute numeric, \
           time_hour timestamptz);",
    );
    env.pg.load_csv("shop", "flights", &fixtures().join("flights_3000.csv"));
    let mut owner = env.pg.client("shop");
    let source: (i64, i64, String, i64) = {
        let r = owner
            .query_one(
                "SELECT count(*), sum(dep_time)::bigint, sum(arr_delay)::text, count(DISTINCT tailnum) FROM flights",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1), r.get(2), r.get(3))
    };
    let mut t = local("flights", "flights");
    t.bucket = Some("public".into());
    let synced = env.sync(&t).unwrap();
    let p = single(&synced).path.display();
    let ours = duck_rows(&format!(
        "SELECT count(*), sum(dep_time), sum(arr_delay)::DECIMAL(38,0), count(DISTINCT tailnum) FROM '{p}'"
    ));
    assert_eq!(ours[0], [source.0.to_string(), source.1.to_string(), source.2, source.3.to_string()]);
}

#[test]
fn incremental_merges_on_the_key_and_an_empty_delta_changes_nothing() {
    let env = env();
    env.shop(
        "CREATE TABLE orders (id int PRIMARY KEY, status text, updated_at timestamptz); \
         INSERT INTO orders SELECT g, 'new', '2024-01-01'::timestamptz + g * interval '1 hour' FROM generate_series(1, 100) g;",
    );
    let mut t = local("orders", "orders");
    t.sync_strategy = SyncStrategy::Incremental;
    t.incremental_column = Some("updated_at".into());
    t.primary_key = vec!["id".into()];
    assert_eq!(env.connector.unsupported(&t), None);
    let layers = |s: &SyncedTable| match &s.publication {
        Publication::Layered(l) => l.clone(),
        _ => panic!("layers expected"),
    };
    let first = layers(&env.sync(&t).unwrap());
    assert_eq!((first.rows, first.parts[0].file.rows, first.parts[1].file.rows), (100, 100, 0));
    let again = layers(&env.sync(&t).unwrap());
    assert_eq!(again, first, "no new rows: nothing is rewritten");
    env.shop(
        "UPDATE orders SET status = 'shipped', updated_at = '2024-03-01' WHERE id <= 3; \
         INSERT INTO orders VALUES (101, 'new', '2024-03-02');",
    );
    let merged = layers(&env.sync(&t).unwrap());
    assert_eq!(merged.parts[0], first.parts[0], "the base is untouched");
    assert_eq!((merged.rows, merged.parts[1].file.rows), (101, 4), "the delta holds the four changed rows");
    let table = TableData::locate(&env.layout, "postgres_main", &t).select_sql().unwrap();
    assert_eq!(
        duck_rows(&format!(
            "SELECT count(*), count(*) FILTER (WHERE status = 'shipped'), count(DISTINCT id) FROM ({table})"
        )),
        [["101", "3", "101"]],
        "three rows replaced, one added, none duplicated"
    );
    let mut no_key = t.clone();
    no_key.primary_key.clear();
    assert!(env.connector.unsupported(&no_key).unwrap().contains("primary_key"));
}

#[test]
fn partitioned_tables_are_published_as_parts() {
    let env = env();
    env.shop(
        "CREATE TABLE events (id int, at date); \
         INSERT INTO events SELECT g, '2024-01-15'::date + (g % 3) * 31 FROM generate_series(1, 30) g;",
    );
    let mut t = local("events", "events");
    t.sync_strategy = SyncStrategy::Partitioned;
    t.partition_by = Some("at".into());
    t.partition_granularity = Some(PartitionGranularity::Month);
    let synced = env.sync(&t).unwrap();
    let Publication::Parts(parts) = &synced.publication else { panic!("parts expected") };
    let keys: Vec<(&str, i64)> = parts.iter().map(|p| (p.key.as_str(), p.file.rows)).collect();
    assert_eq!(keys, [("2024_01", 10), ("2024_02", 10), ("2024_03", 10)]);
    // A sync that changes one month's rows republishes that part alone: the others keep
    // their content hash (analysts download nothing else) and their very file.
    use std::os::unix::fs::MetadataExt;
    let inodes = |p: &[agnes_engine::publish::PublishedPart]| -> Vec<u64> {
        p.iter().map(|p| std::fs::metadata(&p.file.path).unwrap().ino()).collect()
    };
    let before = inodes(parts);
    env.shop("UPDATE events SET id = id + 1000 WHERE at >= '2024-03-01'");
    let again = env.sync(&t).unwrap();
    let Publication::Parts(after) = &again.publication else { panic!("parts expected") };
    let changed: Vec<&str> =
        parts.iter().zip(after).filter(|(a, b)| a.file.md5 != b.file.md5).map(|(a, _)| a.key.as_str()).collect();
    assert_eq!(changed, ["2024_03"]);
    let now = inodes(after);
    assert_eq!((before[0], before[1]), (now[0], now[1]), "unchanged parts are not rewritten");
    assert_ne!(before[2], now[2], "the changed part is replaced");
}

#[test]
fn materialized_queries_are_read_only_and_capped() {
    let env = env();
    env.shop("CREATE TABLE t (n int); INSERT INTO t SELECT generate_series(1, 1000);");
    // The role may delete: only the read-only transaction stops the write below.
    env.pg.execute_in("shop", "GRANT DELETE ON t TO reader");
    let mut m = TableSpec::new("totals", SourceType::Postgres, QueryMode::Materialized, Default::default());
    m.source_query = Some("SELECT n % 10 AS bucket, count(*) AS c FROM t GROUP BY 1 ORDER BY 1".into());
    let synced = env.sync(&m).unwrap();
    assert_eq!(single(&synced).rows, 10);
    // A write is refused by the read-only transaction, whatever the SQL says.
    m.source_query = Some("WITH d AS (DELETE FROM t RETURNING n) SELECT * FROM d".into());
    let err = env.sync(&m).unwrap_err().to_string();
    assert!(err.contains("read-only") || err.contains("25006"), "{err}");
    // Over the planner-estimate cap: refused before it runs.
    let mut capped = env.connector.source().clone();
    capped.config.max_materialize_bytes = Some(100);
    let small = PostgresConnector::new(capped);
    m.source_query = Some("SELECT a.n, b.n AS m FROM t a, t b".into());
    let err = small
        .sync_table(
            &m,
            &SyncContext { layout: &env.layout, limits: &Limits::default(), last_sync: None, source_version: None },
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("max_materialize_bytes"), "{err}");
}

/// A type with no mapping fails the sync naming the column; the last good file stays.
#[test]
fn unmappable_columns_fail_by_name_and_keep_the_last_good_data() {
    let env = env();
    env.shop("CREATE TABLE shapes (id int, area numeric(10,1)); INSERT INTO shapes VALUES (1, 2.5);");
    let t = local("shapes", "shapes");
    let good = env.sync(&t).unwrap();
    let before = single(&good).md5.clone();
    env.shop("ALTER TABLE shapes ADD COLUMN spot point; INSERT INTO shapes VALUES (2, 1.0, '(1,2)');");
    let err = env.sync(&t).unwrap_err().to_string();
    assert!(err.contains("column spot has type point"), "{err}");
    let kept = agnes_engine::fsutil::md5_file(&single(&good).path).unwrap();
    assert_eq!(kept, before, "the published file is untouched");
}

/// Registration-time checks and the source's own facts and tables.
#[test]
fn facts_discovery_and_options() {
    let env = env();
    env.shop(
        "CREATE TABLE items (sku text PRIMARY KEY, price numeric(8,2) NOT NULL); \
         CREATE VIEW cheap AS SELECT * FROM items WHERE price < 10; INSERT INTO items VALUES ('a', 1.5); ANALYZE items;",
    );
    let mut client = connect(env.connector.source()).unwrap();
    let facts = server_facts(&mut client).unwrap();
    assert!(facts.server_version.starts_with(char::is_numeric), "{facts:?}");
    assert_eq!((facts.role.as_str(), facts.superuser, facts.tables_visible), ("reader", false, 2));
    let found = discover(&mut client).unwrap();
    let items = found.iter().find(|r| r.name == "items").unwrap();
    assert_eq!(
        (items.schema.as_str(), items.kind, items.primary_key.clone()),
        ("public", "table", vec!["sku".to_string()])
    );
    assert_eq!(items.columns[1], PgColumn { name: "price".into(), type_name: "numeric(8,2)".into(), nullable: false });
    assert_eq!(items.estimated_rows, Some(1));
    assert_eq!(found.iter().find(|r| r.name == "cheap").map(|r| r.kind), Some("view"));

    let mut t = local("items", "items");
    t.source_options = Some(serde_json::json!({"batch_rowz": 10}));
    let invalid = env.connector.check_options(&t).unwrap_err();
    assert!(invalid.field == "source_options" && invalid.message.contains("batch_rowz"), "{invalid:?}");
    // The password comes from the environment at connect time, and a missing variable
    // says which one without any value.
    let mut missing = env.connector.source().clone();
    missing.config.password_env = Some("AGNES_TEST_PG_NOT_SET".into());
    let err = connect(&missing).err().unwrap().to_string();
    assert!(err.contains("AGNES_TEST_PG_NOT_SET") && !err.contains("reader-pw"), "{err}");
}

/// PostgreSQL going away mid-life: the sync fails with the source's error and the
/// published data stays.
#[test]
fn an_outage_fails_the_sync_and_keeps_the_data() {
    let env = env();
    env.shop("CREATE TABLE t (n int); INSERT INTO t VALUES (1);");
    let t = local("t", "t");
    let good = env.sync(&t).unwrap();
    let path = single(&good).path.clone();
    let Env { pg, connector, layout, _dir } = env;
    drop(pg);
    let err = connector
        .sync_table(
            &t,
            &SyncContext { layout: &layout, limits: &Limits::default(), last_sync: None, source_version: None },
        )
        .unwrap_err();
    assert!(err.to_string().contains("cannot connect to 'main'"), "{err}");
    assert!(path.is_file());
}

/// TLS by rustls: `require` encrypts, `verify-full` checks the certificate against
/// `sslrootcert` (and refuses an issuer it does not know), `disable` does not encrypt.
#[test]
fn tls_modes_encrypt_and_verify() {
    let pg = PgCluster::start_tls();
    let source = |sslmode: SslMode, sslrootcert: Option<PathBuf>| PgSource {
        name: "tls".into(),
        config: PgConnectionConfig {
            host: Some("127.0.0.1".into()),
            port: Some(pg.port),
            database: Some("postgres".into()),
            user: Some(crate::testing::ADMIN_USER.into()),
            password_env: Some("AGNES_TEST_PG_ADMIN_PW".into()),
            sslmode,
            sslrootcert,
            ..Default::default()
        },
    };
    std::env::set_var("AGNES_TEST_PG_ADMIN_PW", crate::testing::ADMIN_PASSWORD);
    let encrypted = |s: &PgSource| -> bool {
        connect(s).unwrap().query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).unwrap().get(0)
    };
    assert!(encrypted(&source(SslMode::Require, None)));
    assert!(encrypted(&source(SslMode::VerifyFull, Some(pg.ca_file()))));
    assert!(!encrypted(&source(SslMode::Disable, None)));
    let err = connect(&source(SslMode::VerifyFull, None)).err().expect("an unknown issuer is refused").to_string();
    assert!(err.contains("cannot connect to 'tls'"), "{err}");
}
