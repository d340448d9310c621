//! Looking into published parquet: column types and sample rows, for the catalog API.

use crate::table_data::TableData;
use crate::Result;
use duckdb::Connection;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub column_type: String,
    pub nullable: bool,
}

/// A connection to the one in-memory DuckDB that inspects published files: a new
/// instance costs some 15 ms, a connection to a kept one well under one. Nothing is ever
/// created in it; each caller reads files through its own connection.
fn connection() -> Result<Connection> {
    static BASE: std::sync::Mutex<Option<Connection>> = std::sync::Mutex::new(None);
    let mut base = BASE.lock().unwrap_or_else(|e| e.into_inner());
    if base.is_none() {
        *base = Some(crate::duck::open_in_memory()?);
    }
    Ok(base.as_ref().expect("opened above").try_clone()?)
}

/// The columns of a published table.
pub fn describe_table(data: &TableData) -> Result<Vec<Column>> {
    describe_query(&connection()?, &data.select_sql()?)
}

/// The columns a query returns, without running it.
pub fn describe_query(conn: &Connection, select_sql: &str) -> Result<Vec<Column>> {
    let mut stmt = conn.prepare(&format!("SELECT column_name, column_type, \"null\" FROM (DESCRIBE {select_sql})"))?;
    let rows = stmt.query_map([], |r| {
        Ok(Column {
            name: r.get(0)?,
            column_type: r.get(1)?,
            nullable: r.get::<_, Option<String>>(2)?.as_deref() == Some("YES"),
        })
    })?;
    Ok(rows.collect::<std::result::Result<Vec<_>, _>>()?)
}

/// The first `n` rows as JSON objects: numbers stay numbers, dates and timestamps are
/// ISO strings, NaN and infinities become null.
pub fn sample_table(data: &TableData, n: usize) -> Result<Vec<serde_json::Map<String, serde_json::Value>>> {
    let conn = connection()?;
    let mut stmt = conn.prepare(&format!("SELECT to_json(t)::VARCHAR FROM ({}) t LIMIT {n}", data.select_sql()?))?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for text in rows {
        let text = text?;
        let value = serde_json::from_str(&non_finite_to_null(&text))
            .map_err(|e| crate::EngineError::Invalid(format!("row is not valid JSON ({e}): {text}")))?;
        out.push(value);
    }
    Ok(out)
}

/// DuckDB writes non-finite doubles as bare `NaN`, `Infinity`, `-Infinity`, which JSON
/// does not allow; replace them (outside strings) with `null`.
fn non_finite_to_null(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = json;
    while let Some(c) = rest.chars().next() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            rest = &rest[c.len_utf8()..];
            continue;
        }
        if c == '"' {
            in_string = true;
        } else if let Some(token) = ["-Infinity", "Infinity", "NaN"].into_iter().find(|t| rest.starts_with(t)) {
            out.push_str("null");
            rest = &rest[token.len()..];
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_and_sample() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.parquet");
        let conn = crate::duck::open_in_memory().unwrap();
        conn.execute_batch(&format!(
            "COPY (SELECT 1.5::DOUBLE a, 'nan'::DOUBLE b, DATE '2024-01-02' d, 12.34::DECIMAL(10,2) e, NULL::INTEGER f, 'say \"NaN\"' s FROM range(3)) TO '{}'",
            p.display()
        ))
        .unwrap();
        let cols = describe_table(&TableData::File(p.clone())).unwrap();
        assert_eq!(
            cols.iter().map(|c| (c.name.as_str(), c.column_type.as_str())).collect::<Vec<_>>()[..3],
            [("a", "DOUBLE"), ("b", "DOUBLE"), ("d", "DATE")]
        );
        let rows = sample_table(&TableData::File(p.clone()), 2).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            serde_json::Value::Object(rows[0].clone()),
            serde_json::json!({"a": 1.5, "b": null, "d": "2024-01-02", "e": 12.34, "f": null, "s": "say \"NaN\""})
        );
    }

    #[test]
    fn non_finite_outside_strings_only() {
        assert_eq!(
            non_finite_to_null(r#"{"a":NaN,"b":-Infinity,"c":"NaN","d":[Infinity]}"#),
            r#"{"a":null,"b":null,"c":"NaN","d":[null]}"#
        );
    }
}
