//! Printing results: a table for people, JSON with `--json`.

use comfy_table::{presets::UTF8_BORDERS_ONLY, ContentArrangement, Table};
use serde_json::Value;

pub fn json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).expect("JSON values serialize"));
}

/// Print `rows` (objects) as a table of `columns` (key, heading).
pub fn table(rows: &[Value], columns: &[(&str, &str)]) {
    if rows.is_empty() {
        println!("(none)");
        return;
    }
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY).set_content_arrangement(ContentArrangement::Dynamic);
    t.set_header(columns.iter().map(|(_, h)| *h));
    for r in rows {
        t.add_row(columns.iter().map(|(k, _)| cell(&r[*k])));
    }
    println!("{t}");
}

pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A listing as `--json` asks: the raw value, else a table.
pub fn listing(v: &Value, as_json: bool, columns: &[(&str, &str)]) {
    if as_json {
        json(v);
    } else {
        table(v.as_array().map(Vec::as_slice).unwrap_or_default(), columns);
    }
}
