//! DuckDB values as JSON and as text, for query output.
//!
//! JSON keeps numbers as numbers, except decimals, which are strings so no digit is lost
//! (JSON numbers travel as doubles); dates and times are ISO 8601; NaN and infinities
//! are null.

use chrono::{DateTime, NaiveDate, NaiveTime, TimeDelta};
use duckdb::types::{TimeUnit, Value};
use serde_json::{json, Value as Json};

fn micros(unit: TimeUnit, v: i64) -> i64 {
    match unit {
        TimeUnit::Second => v.saturating_mul(1_000_000),
        TimeUnit::Millisecond => v.saturating_mul(1_000),
        TimeUnit::Microsecond => v,
        TimeUnit::Nanosecond => v / 1_000,
    }
}

fn timestamp(unit: TimeUnit, v: i64) -> String {
    DateTime::from_timestamp_micros(micros(unit, v))
        .map(|t| t.naive_utc().format("%Y-%m-%dT%H:%M:%S%.f").to_string())
        .unwrap_or_else(|| v.to_string())
}

fn date(days: i32) -> String {
    NaiveDate::from_ymd_opt(1970, 1, 1)
        .and_then(|d| d.checked_add_signed(TimeDelta::days(days.into())))
        .map(|d| d.to_string())
        .unwrap_or_else(|| days.to_string())
}

fn time(unit: TimeUnit, v: i64) -> String {
    let us = micros(unit, v);
    NaiveTime::from_num_seconds_from_midnight_opt((us / 1_000_000) as u32, ((us % 1_000_000) * 1_000) as u32)
        .map(|t| t.format("%H:%M:%S%.f").to_string())
        .unwrap_or_else(|| v.to_string())
}

fn float(f: f64) -> Json {
    serde_json::Number::from_f64(f).map(Json::Number).unwrap_or(Json::Null)
}

pub fn to_json(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Boolean(b) => json!(b),
        Value::TinyInt(i) => json!(i),
        Value::SmallInt(i) => json!(i),
        Value::Int(i) => json!(i),
        Value::BigInt(i) => json!(i),
        Value::UTinyInt(i) => json!(i),
        Value::USmallInt(i) => json!(i),
        Value::UInt(i) => json!(i),
        Value::UBigInt(i) => json!(i),
        // Beyond 64 bits JSON numbers lose digits: strings keep them.
        Value::HugeInt(i) => i64::try_from(*i).map(|x| json!(x)).unwrap_or_else(|_| json!(i.to_string())),
        Value::UHugeInt(i) => u64::try_from(*i).map(|x| json!(x)).unwrap_or_else(|_| json!(i.to_string())),
        Value::Float(f) => float(f64::from(*f)),
        Value::Double(f) => float(*f),
        Value::Decimal(d) => json!(d.to_string()),
        Value::Timestamp(unit, t) => json!(timestamp(*unit, *t)),
        Value::Date32(d) => json!(date(*d)),
        Value::Time64(unit, t) => json!(time(*unit, *t)),
        Value::Interval { months, days, nanos } => json!(format!("P{months}M{days}DT{}S", *nanos as f64 / 1e9)),
        Value::Text(s) | Value::Enum(s) => json!(s),
        Value::Blob(b) | Value::Geometry(b) => json!(b.iter().map(|x| format!("{x:02x}")).collect::<String>()),
        Value::List(items) | Value::Array(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Struct(map) => Json::Object(map.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()),
        Value::Map(map) => Json::Object(map.iter().map(|(k, v)| (to_text(k), to_json(v))).collect()),
        Value::Union(inner) => to_json(inner),
        // The enum is non-exhaustive: a type added by a later DuckDB shows as its debug text.
        other => json!(format!("{other:?}")),
    }
}

/// About how many bytes `v` takes as JSON: enough to cap a result's size without
/// serializing it twice.
pub fn approximate_json_len(v: &Value) -> usize {
    match v {
        Value::Null => 4,
        Value::Text(s) | Value::Enum(s) => s.len() + 2,
        Value::Blob(b) | Value::Geometry(b) => b.len() * 2 + 2,
        Value::List(items) | Value::Array(items) => {
            items.iter().map(|i| approximate_json_len(i) + 1).sum::<usize>() + 2
        }
        Value::Struct(map) => map.iter().map(|(k, v)| k.len() + 4 + approximate_json_len(v)).sum::<usize>() + 2,
        Value::Map(map) => {
            map.iter().map(|(k, v)| approximate_json_len(k) + 2 + approximate_json_len(v)).sum::<usize>() + 2
        }
        Value::Union(inner) => approximate_json_len(inner),
        _ => 24,
    }
}

/// A value as a person reads it; NULL is empty (for CSV) — callers choose how to show it.
pub fn to_text(v: &Value) -> String {
    match to_json(v) {
        Json::Null => String::new(),
        Json::String(s) => s,
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        let c = crate::duck::open_in_memory().unwrap();
        let row: Vec<Value> = c
            .query_row(
                "SELECT 1::INTEGER, 'nan'::DOUBLE, 12345678901234567890.12::DECIMAL(38,2), DATE '2024-02-29', \
                 TIMESTAMP '2024-01-02 03:04:05.5', NULL::INTEGER, [1, 2], {'a': 'x'}, 'text'",
                [],
                |r| (0..9).map(|i| r.get::<_, Value>(i)).collect(),
            )
            .unwrap();
        let j: Vec<Json> = row.iter().map(to_json).collect();
        assert_eq!(
            j,
            vec![
                json!(1),
                Json::Null,
                json!("12345678901234567890.12"),
                json!("2024-02-29"),
                json!("2024-01-02T03:04:05.500"),
                Json::Null,
                json!([1, 2]),
                json!({"a": "x"}),
                json!("text")
            ]
        );
        assert_eq!(to_text(&row[5]), "");
    }
}
