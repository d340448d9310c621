//! For this crate's tests: a query's rows as text, as DuckDB prints each value (NULL as
//! `NULL`), in UTC.

pub fn text_rows(sql: &str) -> Vec<Vec<String>> {
    use agnes_engine::duckdb::types::Value;
    let conn = agnes_engine::duck::open_in_memory().unwrap();
    conn.execute_batch("SET TimeZone = 'UTC'").unwrap();
    let mut stmt = conn.prepare(sql).unwrap();
    let mut out = Vec::new();
    let mut rows = stmt.query([]).unwrap();
    while let Some(r) = rows.next().unwrap() {
        let n = r.as_ref().column_count();
        out.push(
            (0..n)
                .map(|i| match r.get::<_, Value>(i).unwrap() {
                    Value::Null => "NULL".to_string(),
                    v => agnes_engine::values::to_text(&v),
                })
                .collect(),
        );
    }
    out
}
