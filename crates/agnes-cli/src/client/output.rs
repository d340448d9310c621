//! Printing results: a table for people, JSON with `--json`.

use comfy_table::{presets::UTF8_BORDERS_ONLY, ContentArrangement, Table};
use serde::Serialize;
use serde_json::Value;

pub fn json<T: Serialize + ?Sized>(v: &T) {
    println!("{}", serde_json::to_string_pretty(v).expect("wire types serialize"));
}

/// Print `rows` (each an object on the wire) as a table of `columns` (field, heading).
pub fn table<T: Serialize>(rows: &[T], columns: &[(&str, &str)]) {
    if rows.is_empty() {
        println!("(none)");
        return;
    }
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY).set_content_arrangement(ContentArrangement::Dynamic);
    t.set_header(columns.iter().map(|(_, h)| *h));
    for r in rows {
        let r = serde_json::to_value(r).expect("wire types serialize");
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

/// A listing as `--json` asks: the items as JSON, else a table.
pub fn listing<T: Serialize>(items: &[T], as_json: bool, columns: &[(&str, &str)]) {
    if as_json {
        json(items);
    } else {
        table(items, columns);
    }
}
