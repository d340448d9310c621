//! The tables a query reads, as DuckDB's own parser sees it, without running it or
//! needing the tables: how metric SQL is checked against the registry before anyone
//! relies on it.

use crate::{EngineError, Result};
use serde_json::Value;
use std::collections::BTreeSet;

/// The names of the tables `sql` reads (`schema.table` when qualified), sorted, without
/// the names of its own CTEs. An error carries DuckDB's parser message.
pub fn tables_read(sql: &str) -> Result<Vec<String>> {
    let conn = crate::duck::open_in_memory()?;
    let text: String = conn.query_row("SELECT json_serialize_sql(?::VARCHAR)", [sql], |r| r.get(0))?;
    let tree: Value =
        serde_json::from_str(&text).map_err(|e| EngineError::Invalid(format!("cannot read the parse tree: {e}")))?;
    if tree["error"].as_bool() == Some(true) {
        let message = tree["error_message"].as_str().unwrap_or("the SQL does not parse");
        return Err(EngineError::InvalidSql(message.to_string()));
    }
    if tree["statements"].as_array().is_none_or(Vec::is_empty) {
        return Err(EngineError::Invalid("no statement".into()));
    }
    let (mut tables, mut ctes) = (BTreeSet::new(), BTreeSet::new());
    collect(&tree["statements"], &mut tables, &mut ctes);
    Ok(tables.into_iter().filter(|t| !ctes.contains(t)).collect())
}

fn collect(node: &Value, tables: &mut BTreeSet<String>, ctes: &mut BTreeSet<String>) {
    match node {
        Value::Array(items) => items.iter().for_each(|v| collect(v, tables, ctes)),
        Value::Object(map) => {
            if map.get("type").and_then(Value::as_str) == Some("BASE_TABLE") {
                let name = map.get("table_name").and_then(Value::as_str).unwrap_or_default();
                match map.get("schema_name").and_then(Value::as_str).filter(|s| !s.is_empty()) {
                    Some(schema) => tables.insert(format!("{schema}.{name}")),
                    None => tables.insert(name.to_string()),
                };
            }
            if let Some(entries) = map.get("cte_map").and_then(|c| c["map"].as_array()) {
                ctes.extend(entries.iter().filter_map(|e| e["key"].as_str().map(str::to_string)));
            }
            map.values().for_each(|v| collect(v, tables, ctes));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::tables_read;

    #[test]
    fn lists_the_tables_a_query_reads() {
        let sql = "WITH paid AS (SELECT * FROM orders WHERE status = 'completed')
                   SELECT c.country, sum(p.total_amount) FROM paid p JOIN customers c USING (customer_id)
                   WHERE p.customer_id IN (SELECT customer_id FROM analytics.vip) GROUP BY 1";
        assert_eq!(tables_read(sql).unwrap(), ["analytics.vip", "customers", "orders"]);
        assert_eq!(tables_read("SELECT 1").unwrap(), Vec::<String>::new());
        assert_eq!(tables_read("FROM web_sessions SELECT count(*)").unwrap(), ["web_sessions"]);
    }

    #[test]
    fn refuses_what_does_not_parse() {
        let err = tables_read("SELEC 1").unwrap_err().to_string();
        assert!(err.contains("syntax error"), "{err}");
        assert!(tables_read("").is_err());
        assert!(tables_read("DROP TABLE orders").is_err(), "only queries");
    }
}
