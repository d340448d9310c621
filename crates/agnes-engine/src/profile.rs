//! Table profiles (spec §7): per column completeness, distinct values, samples and the
//! statistics of its type family, with the original's alerts; per table row count,
//! missing cells, duplicates and a few sample rows. Above `sample_size` rows a reservoir
//! sample is profiled (`sampled: true`). The DuckDB session has its own memory limit,
//! thread count and spill directory, so profiling a big table cannot starve queries.

use crate::table_data::TableData;
use crate::{EngineError, Result};
use agnes_core::api::{
    BooleanStats, ColumnProfile, DateRange, DateStats, Histogram, NumericStats, ProfileAlert, StringStats,
    TableProfile, TopValue,
};
use agnes_core::ident::{quote_ident, quote_literal};
use duckdb::types::Value as Db;
use duckdb::Connection;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct ProfileOptions {
    pub sample_size: u64,
    pub max_categorical_distinct: u64,
    pub top_values_limit: u64,
    pub histogram_bins: u64,
    pub sample_rows_limit: u64,
    pub sample_values_limit: u64,
    pub alert_high_missing_pct: f64,
    pub alert_missing_pct: f64,
    pub alert_imbalance_pct: f64,
    pub alert_high_cardinality: u64,
    pub memory_limit: String,
    pub threads: usize,
    pub temp_directory: Option<PathBuf>,
}

impl Default for ProfileOptions {
    fn default() -> Self {
        ProfileOptions {
            sample_size: 500_000,
            max_categorical_distinct: 50,
            top_values_limit: 10,
            histogram_bins: 15,
            sample_rows_limit: 5,
            sample_values_limit: 5,
            alert_high_missing_pct: 30.0,
            alert_missing_pct: 5.0,
            alert_imbalance_pct: 60.0,
            alert_high_cardinality: 50,
            memory_limit: "1GB".into(),
            threads: 2,
            temp_directory: None,
        }
    }
}

/// What to profile and what the registry says about it.
pub struct ProfileInput<'a> {
    pub table_id: &'a str,
    /// The published table.
    pub data: &'a TableData,
    pub description: Option<&'a str>,
    pub primary_key: &'a [String],
    pub sync_strategy: &'a str,
    pub file_size_bytes: u64,
}

/// The spec's type families.
fn category(ty: &str) -> &'static str {
    let base = ty.split('(').next().unwrap_or(ty).trim();
    match base {
        "BOOLEAN" => "BOOLEAN",
        "DATE" => "DATE",
        t if t.contains("TIMESTAMP") => "TIMESTAMP",
        "TINYINT" | "SMALLINT" | "INTEGER" | "BIGINT" | "HUGEINT" | "UTINYINT" | "USMALLINT" | "UINTEGER"
        | "UBIGINT" | "UHUGEINT" | "FLOAT" | "DOUBLE" | "DECIMAL" => "NUMERIC",
        _ => "STRING",
    }
}

fn pct(part: f64, whole: f64) -> f64 {
    if whole <= 0.0 {
        return 0.0;
    }
    round2(part / whole * 100.0)
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// A statistic JSON can carry: NaN and infinities are no number to an analyst.
fn finite(x: Option<f64>) -> Option<f64> {
    x.filter(|x| x.is_finite())
}

fn f64_of(v: &Db) -> Option<f64> {
    match v {
        Db::Double(x) => Some(*x),
        Db::Float(x) => Some(*x as f64),
        Db::BigInt(x) => Some(*x as f64),
        Db::Int(x) => Some(*x as f64),
        Db::HugeInt(x) => Some(*x as f64),
        Db::UBigInt(x) => Some(*x as f64),
        _ => None,
    }
}

/// `1.2K`, `3.4M`, `5B`, as the original labels histogram bins.
fn short(x: f64) -> String {
    let (v, suffix) = match x.abs() {
        a if a >= 1e9 => (x / 1e9, "B"),
        a if a >= 1e6 => (x / 1e6, "M"),
        a if a >= 1e3 => (x / 1e3, "K"),
        _ => (x, ""),
    };
    let text = format!("{v:.1}");
    format!("{}{suffix}", text.strip_suffix(".0").unwrap_or(&text))
}

struct Session {
    conn: Connection,
}

impl Session {
    fn row(&self, sql: &str) -> Result<Vec<Db>> {
        let mut stmt = self.conn.prepare(sql)?;
        let mut rows = stmt.query([])?;
        let row = rows.next()?.ok_or_else(|| EngineError::Invalid(format!("no row from {sql}")))?;
        let n = row.as_ref().column_count();
        Ok((0..n).map(|i| row.get::<_, Db>(i)).collect::<std::result::Result<_, _>>()?)
    }

    fn rows(&self, sql: &str) -> Result<Vec<Vec<Db>>> {
        let mut stmt = self.conn.prepare(sql)?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let n = row.as_ref().column_count();
            out.push((0..n).map(|i| row.get::<_, Db>(i)).collect::<std::result::Result<_, _>>()?);
        }
        Ok(out)
    }

    fn count(&self, sql: &str) -> Result<f64> {
        Ok(self.row(sql)?.first().and_then(f64_of).unwrap_or(0.0))
    }
}

fn text(v: &Db) -> Option<String> {
    match v {
        Db::Null => None,
        Db::Text(s) => Some(s.clone()),
        other => Some(crate::values::to_text(other)),
    }
}

fn int(v: &Db) -> Option<i64> {
    f64_of(v).map(|x| x as i64)
}

/// Profile one table.
pub fn profile(input: &ProfileInput<'_>, opts: &ProfileOptions) -> Result<TableProfile> {
    let conn = crate::duck::open_in_memory()?;
    let mut setup = format!(
        "SET memory_limit = {}; SET threads = {}; SET TimeZone = 'UTC';",
        quote_literal(&opts.memory_limit),
        opts.threads.max(1)
    );
    if let Some(dir) = &opts.temp_directory {
        setup.push_str(&format!(" SET temp_directory = {};", quote_literal(&dir.to_string_lossy())));
    }
    conn.execute_batch(&setup)?;
    let s = Session { conn };
    s.conn.execute_batch(&format!("CREATE TEMP VIEW src AS {}", input.data.select_sql()?))?;
    let row_count = s.count("SELECT count(*) FROM src")?;
    let sampled = row_count > opts.sample_size as f64;
    if sampled {
        s.conn.execute_batch(&format!(
            "CREATE TEMP TABLE t AS SELECT * FROM src USING SAMPLE {} ROWS",
            opts.sample_size
        ))?;
    } else {
        s.conn.execute_batch("CREATE TEMP VIEW t AS SELECT * FROM src")?;
    }
    let n = if sampled { opts.sample_size as f64 } else { row_count };
    let described = s.rows("SELECT column_name, column_type FROM (DESCRIBE t)")?;
    let mut columns = Vec::new();
    let mut alerts = Vec::new();
    let mut types: BTreeMap<String, u64> = BTreeMap::new();
    let mut missing_cells = 0.0;
    let mut date_range = None;
    let mut names = Vec::new();
    for col in &described {
        let (Db::Text(name), Db::Text(ty)) = (&col[0], &col[1]) else { continue };
        names.push(name.clone());
        let cat = category(ty);
        *types.entry(cat.to_string()).or_default() += 1;
        let (column, col_alerts) = profile_column(&s, name, ty, cat, n, opts)?;
        missing_cells += column.null_count as f64;
        if let (None, Some(d)) = (&date_range, &column.date_stats) {
            date_range =
                Some(DateRange { column: name.clone(), earliest: d.earliest.clone(), latest: d.latest.clone() });
        }
        for (kind, message) in col_alerts {
            alerts.push(ProfileAlert { column: name.clone(), kind: kind.to_string(), message });
        }
        columns.push(column);
    }
    let cells = n * described.len() as f64;
    let avg_completeness = if columns.is_empty() {
        100.0
    } else {
        round2(columns.iter().map(|c| c.completeness_pct).sum::<f64>() / columns.len() as f64)
    };
    let duplicate_rows = if input.primary_key.is_empty() {
        None
    } else {
        let key: Vec<String> = input.primary_key.iter().map(|k| quote_ident(k)).collect();
        let distinct = s.count(&format!("SELECT count(*) FROM (SELECT DISTINCT {} FROM src)", key.join(", ")))?;
        Some((row_count - distinct) as i64)
    };
    let sample_rows = s
        .rows(&format!("SELECT * FROM src LIMIT {}", opts.sample_rows_limit))?
        .iter()
        .map(|r| {
            names.iter().zip(r).map(|(name, v)| (name.clone(), text(v).map_or(Value::Null, Value::String))).collect()
        })
        .collect();
    Ok(TableProfile {
        table_id: input.table_id.to_string(),
        description: input.description.map(String::from),
        primary_key: input.primary_key.to_vec(),
        sync_strategy: input.sync_strategy.to_string(),
        row_count: row_count as i64,
        column_count: described.len(),
        file_size_mb: round2(input.file_size_bytes as f64 / 1048576.0),
        avg_completeness,
        missing_cells: missing_cells as i64,
        missing_cells_pct: pct(missing_cells, cells),
        duplicate_rows,
        variable_types: types,
        date_range,
        alerts,
        sampled,
        columns,
        sample_rows,
        last_sync: None,
        profiled_at: None,
        used_by_metrics: Vec::new(),
    })
}

type Alerts = Vec<(&'static str, String)>;

fn profile_column(
    s: &Session,
    name: &str,
    ty: &str,
    cat: &str,
    n: f64,
    o: &ProfileOptions,
) -> Result<(ColumnProfile, Alerts)> {
    let c = quote_ident(name);
    let basic = s.row(&format!("SELECT count({c}), count(DISTINCT {c}) FROM t"))?;
    let (non_null, distinct) = (f64_of(&basic[0]).unwrap_or(0.0), f64_of(&basic[1]).unwrap_or(0.0));
    let nulls = n - non_null;
    let sample_values = s
        .rows(&format!(
            "SELECT DISTINCT CAST({c} AS VARCHAR) FROM t WHERE {c} IS NOT NULL LIMIT {}",
            o.sample_values_limit
        ))?
        .iter()
        .map(|r| text(&r[0]))
        .collect();
    let mut column = ColumnProfile {
        name: name.to_string(),
        column_type: ty.to_string(),
        type_category: cat.to_string(),
        completeness_pct: pct(non_null, n),
        null_count: nulls as i64,
        unique_count: distinct as i64,
        unique_pct: pct(distinct, non_null),
        sample_values,
        is_primary_key: nulls == 0.0 && distinct == n && n > 0.0,
        alerts: Vec::new(),
        numeric_stats: None,
        string_stats: None,
        date_stats: None,
        boolean_stats: None,
    };
    let mut alerts: Alerts = Vec::new();
    if distinct == 1.0 && nulls == 0.0 {
        alerts.push(("constant", format!("{name} has a single value")));
    }
    if distinct == n && nulls == 0.0 && n > 1.0 {
        alerts.push(("unique", format!("{name} is unique in every row")));
    }
    let missing = if n > 0.0 { nulls / n * 100.0 } else { 0.0 };
    if missing > o.alert_high_missing_pct {
        alerts.push(("high_missing", format!("{name} is {missing:.1}% missing")));
    } else if missing > o.alert_missing_pct {
        alerts.push(("missing", format!("{name} is {missing:.1}% missing")));
    }
    match cat {
        "NUMERIC" => {
            let r = s.row(&format!(
                "SELECT min({c})::DOUBLE, max({c})::DOUBLE, avg({c})::DOUBLE, median({c})::DOUBLE, stddev({c})::DOUBLE, \
                 quantile_cont({c}, 0.05)::DOUBLE, quantile_cont({c}, 0.25)::DOUBLE, quantile_cont({c}, 0.75)::DOUBLE, \
                 quantile_cont({c}, 0.95)::DOUBLE, count(*) FILTER (WHERE {c} = 0), count(*) FILTER (WHERE {c} < 0) FROM t"
            ))?;
            let v: Vec<Option<f64>> = r.iter().map(|x| finite(f64_of(x))).collect();
            let (zeros, negative) = (v[9].unwrap_or(0.0), v[10].unwrap_or(0.0));
            let histogram = match (v[0], v[1]) {
                (Some(lo), Some(hi)) => numeric_histogram(s, &c, lo, hi, o.histogram_bins)?,
                _ => Histogram { bins: Vec::new(), counts: Vec::new() },
            };
            column.numeric_stats = Some(NumericStats {
                min: v[0],
                max: v[1],
                mean: v[2],
                median: v[3],
                stddev: v[4],
                p5: v[5],
                p25: v[6],
                p75: v[7],
                p95: v[8],
                zeros: zeros as i64,
                zeros_pct: pct(zeros, non_null),
                negative: negative as i64,
                negative_pct: pct(negative, non_null),
                histogram,
            });
            if non_null > 0.0 && zeros / non_null > 0.5 {
                alerts.push(("zeros", format!("{name} is zero in {:.1}% of rows", zeros / non_null * 100.0)));
            }
        }
        "STRING" => {
            let r = s.row(&format!(
                "SELECT min(length(CAST({c} AS VARCHAR))), max(length(CAST({c} AS VARCHAR))), avg(length(CAST({c} AS VARCHAR)))::DOUBLE FROM t"
            ))?;
            let categorical = distinct <= o.max_categorical_distinct as f64;
            let top_values = if categorical { top_values(s, &c, non_null, o.top_values_limit)? } else { Vec::new() };
            if let Some(share) = top_values.first().map(|t| t.pct) {
                if share > o.alert_imbalance_pct && distinct > 1.0 {
                    alerts.push(("imbalance", format!("{name}'s most common value is {share:.1}% of rows")));
                }
            }
            if !categorical && distinct > o.alert_high_cardinality as f64 && distinct < non_null {
                alerts.push(("high_cardinality", format!("{name} has {distinct} distinct values")));
            }
            column.string_stats = Some(StringStats {
                min_length: int(&r[0]),
                max_length: int(&r[1]),
                avg_length: finite(f64_of(&r[2])).map(round2),
                top_values,
            });
        }
        "DATE" | "TIMESTAMP" => {
            // As a date in UTC (the profiler's session time zone).
            let d = format!("{c}::DATE");
            let r = s.row(&format!(
                "SELECT min({d})::VARCHAR, max({d})::VARCHAR, datediff('day', min({d}), max({d})) FROM t"
            ))?;
            let quarters = s.rows(&format!(
                "SELECT year({d}) || '-Q' || quarter({d}) AS q, count(*) FROM t WHERE {c} IS NOT NULL GROUP BY 1 ORDER BY 1"
            ))?;
            column.date_stats = Some(DateStats {
                earliest: text(&r[0]),
                latest: text(&r[1]),
                span_days: int(&r[2]),
                histogram: Histogram {
                    bins: quarters.iter().filter_map(|q| text(&q[0])).collect(),
                    counts: quarters.iter().map(|q| int(&q[1]).unwrap_or(0)).collect(),
                },
            });
        }
        _ => {
            let r = s.row(&format!("SELECT count(*) FILTER (WHERE {c}), count(*) FILTER (WHERE NOT {c}) FROM t"))?;
            let (yes, no) = (f64_of(&r[0]).unwrap_or(0.0), f64_of(&r[1]).unwrap_or(0.0));
            column.boolean_stats =
                Some(BooleanStats { true_count: yes as i64, false_count: no as i64, true_pct: pct(yes, yes + no) });
        }
    }
    column.alerts = alerts.iter().map(|(k, _)| k.to_string()).collect();
    Ok((column, alerts))
}

fn top_values(s: &Session, c: &str, non_null: f64, limit: u64) -> Result<Vec<TopValue>> {
    Ok(s.rows(&format!(
        "SELECT CAST({c} AS VARCHAR) AS v, count(*) AS n FROM t WHERE {c} IS NOT NULL GROUP BY 1 ORDER BY n DESC, v LIMIT {limit}"
    ))?
    .iter()
    .map(|r| {
        let count = f64_of(&r[1]).unwrap_or(0.0);
        TopValue { value: text(&r[0]), count: count as i64, pct: pct(count, non_null) }
    })
    .collect())
}

/// Equal-width bins over `[lo, hi]`, labelled like `1.2K-3.4K`.
fn numeric_histogram(s: &Session, c: &str, lo: f64, hi: f64, bins: u64) -> Result<Histogram> {
    let bins = bins.max(1);
    let width = (hi - lo) / bins as f64;
    let mut counts = vec![0i64; bins as usize];
    if width > 0.0 && width.is_finite() {
        for r in s.rows(&format!(
            "SELECT least(greatest(floor(({c}::DOUBLE - {lo}) / {width})::BIGINT, 0), {}) AS b, count(*) FROM t \
             WHERE {c} IS NOT NULL AND isfinite({c}::DOUBLE) GROUP BY 1",
            bins - 1
        ))? {
            if let (Some(b), Some(n)) = (f64_of(&r[0]), f64_of(&r[1])) {
                counts[b as usize] = n as i64;
            }
        }
    } else {
        counts = vec![s.count(&format!("SELECT count({c}) FROM t"))? as i64];
    }
    let bins = (0..counts.len())
        .map(|i| {
            let from = lo + width * i as f64;
            format!("{}-{}", short(from), short(if counts.len() == 1 { hi } else { from + width }))
        })
        .collect();
    Ok(Histogram { bins, counts })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fixture(dir: &std::path::Path, name: &str, csv: &str) -> TableData {
        let path = dir.join(format!("{name}.parquet"));
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/nycflights13").join(csv);
        crate::duck::open_in_memory()
            .unwrap()
            .execute_batch(&format!(
                "COPY (SELECT * FROM read_csv('{}', nullstr = 'NA')) TO '{}'",
                src.display(),
                path.display()
            ))
            .unwrap();
        TableData::File(path)
    }

    fn profiled(input: &ProfileInput<'_>, opts: &ProfileOptions) -> Value {
        serde_json::to_value(profile(input, opts).unwrap()).unwrap()
    }

    fn column<'a>(p: &'a Value, name: &str) -> &'a Value {
        p["columns"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap()
    }

    #[test]
    fn nycflights13_profiles() {
        let dir = tempfile::tempdir().unwrap();
        let flights = fixture(dir.path(), "flights", "flights_3000.csv");
        let input = ProfileInput {
            table_id: "flights",
            data: &flights,
            description: None,
            primary_key: &[],
            sync_strategy: "full_refresh",
            file_size_bytes: 1,
        };
        let p = profiled(&input, &ProfileOptions::default());
        assert_eq!(
            (p["row_count"].as_i64(), p["column_count"].as_u64(), p["sampled"].as_bool()),
            (Some(3000), Some(19), Some(false))
        );
        let dep = column(&p, "dep_time");
        assert_eq!(dep["type_category"], "NUMERIC");
        assert!(dep["null_count"].as_i64().unwrap() > 0, "flights without a departure: {dep}");
        let carrier = column(&p, "carrier");
        assert_eq!(carrier["type_category"], "STRING");
        let top = &carrier["string_stats"]["top_values"][0];
        assert_eq!((top["value"].as_str(), top["count"].as_i64()), (Some("UA"), Some(552)), "{carrier}");
        let when = column(&p, "time_hour");
        assert_eq!(when["type_category"], "TIMESTAMP");
        assert_eq!(when["date_stats"]["earliest"], "2013-01-01");
        assert_eq!(p["date_range"]["column"], "time_hour");
        assert_eq!(column(&p, "year")["alerts"], json!(["constant"]), "every flight is from 2013");
        let hist = &dep["numeric_stats"]["histogram"];
        assert_eq!(hist["bins"].as_array().unwrap().len(), 15);
        assert_eq!(
            hist["counts"].as_array().unwrap().iter().map(|c| c.as_i64().unwrap()).sum::<i64>(),
            3000 - dep["null_count"].as_i64().unwrap()
        );
        assert_eq!(p["sample_rows"].as_array().unwrap().len(), 5);

        let sampled = profiled(&input, &ProfileOptions { sample_size: 1000, ..Default::default() });
        assert_eq!((sampled["sampled"].as_bool(), sampled["row_count"].as_i64()), (Some(true), Some(3000)));
        assert_eq!(column(&sampled, "carrier")["null_count"], 0);
    }

    /// Time-zone-aware values are profiled in UTC: a timestamp just before midnight at a
    /// negative offset belongs to the next UTC day (and here the next quarter).
    #[test]
    fn timestamptz_columns_are_dated_in_utc() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.parquet");
        crate::duck::open_in_memory()
            .unwrap()
            .execute_batch(&format!(
                "COPY (SELECT * FROM (VALUES (TIMESTAMPTZ '2013-03-31 23:30:00-02'), \
                 (TIMESTAMPTZ '2013-01-01 00:30:00+02'), (TIMESTAMPTZ '2013-02-15 12:00:00+00')) v(happened)) TO '{}'",
                path.display()
            ))
            .unwrap();
        let data = TableData::File(path);
        let input = ProfileInput {
            table_id: "events",
            data: &data,
            description: None,
            primary_key: &[],
            sync_strategy: "full_refresh",
            file_size_bytes: 1,
        };
        let p = profiled(&input, &ProfileOptions::default());
        let at = &column(&p, "happened")["date_stats"];
        assert_eq!((at["earliest"].as_str(), at["latest"].as_str()), (Some("2012-12-31"), Some("2013-04-01")), "{at}");
        assert_eq!(at["histogram"]["bins"], json!(["2012-Q4", "2013-Q1", "2013-Q2"]), "{at}");
    }

    #[test]
    fn labels_and_categories() {
        assert_eq!(
            (short(1234.0), short(3_400_000.0), short(5e9), short(12.0)),
            ("1.2K".into(), "3.4M".into(), "5B".into(), "12".into())
        );
        assert_eq!(
            (category("DECIMAL(10,2)"), category("TIMESTAMP WITH TIME ZONE"), category("VARCHAR")),
            ("NUMERIC", "TIMESTAMP", "STRING")
        );
    }
}
