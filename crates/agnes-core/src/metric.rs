//! Business metric definitions (spec §6): the YAML format read into one normalised record,
//! and written back the same way.
//!
//! A YAML document is read by the caller into a `serde_json::Value` (so this crate needs no
//! YAML parser); [`definitions_from_document`] turns it into definitions, strictly: an
//! unknown key, a value of the wrong type or a missing name is an error that says which
//! entry and which key, never a silently dropped field.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// One metric, as stored and served (`GET /api/metrics/{id}` adds the timestamps).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MetricDefinition {
    /// `<category>/<name>`.
    pub id: String,
    pub name: String,
    pub display_name: String,
    pub category: String,
    pub description: Option<String>,
    /// `sum`, `ratio`, `count`, `average`…
    #[serde(rename = "type")]
    pub kind: String,
    pub unit: Option<String>,
    pub grain: String,
    /// The table the metric is computed from (YAML `table`).
    pub table_name: Option<String>,
    /// Every table the SQL reads.
    pub tables: Vec<String>,
    pub expression: Option<String>,
    pub time_column: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub dimensions: Vec<Value>,
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub filters: Vec<Value>,
    pub synonyms: Vec<String>,
    pub notes: Vec<String>,
    /// The canonical query.
    pub sql: String,
    /// `{"by_<variant>": sql}`, collected from the YAML's `sql_by_<variant>` keys.
    pub sql_variants: BTreeMap<String, String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub validation: Option<Map<String, Value>>,
    /// `yaml_import` or `manual`.
    pub source: String,
}

/// A stored metric: its definition and when it was first and last written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MetricRecord {
    #[serde(flatten)]
    pub definition: MetricDefinition,
    pub created_at: String,
    pub updated_at: String,
}

pub const SOURCE_YAML: &str = "yaml_import";
pub const SOURCE_MANUAL: &str = "manual";

/// Keys a definition may carry besides the `sql_by_<variant>` ones.
const KNOWN_KEYS: &[&str] = &[
    "name",
    "display_name",
    "category",
    "type",
    "unit",
    "grain",
    "table",
    "table_name",
    "tables",
    "expression",
    "time_column",
    "description",
    "dimensions",
    "filters",
    "synonyms",
    "notes",
    "sql",
    "sql_variants",
    "validation",
    "id",
];

/// Keys the server owns: accepted so a fetched record can be sent back, but not read.
const SERVER_KEYS: &[&str] = &["source", "created_at", "updated_at"];

const VARIANT_PREFIX: &str = "sql_by_";

/// Whether `s` can be a metric's name or category: it becomes a path segment of the id, of
/// the URL and of the exported file, so it is plain.
pub fn is_metric_segment(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && !s.starts_with(['.', '-'])
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Whether `id` is a well-formed `<category>/<name>`.
pub fn is_metric_id(id: &str) -> bool {
    id.split_once('/').is_some_and(|(c, n)| is_metric_segment(c) && is_metric_segment(n))
}

/// Read one YAML document (as JSON): a mapping or a list of mappings. `default_category`
/// is the category of entries that name none (the directory a file was found in).
pub fn definitions_from_document(
    doc: Value,
    default_category: Option<&str>,
    source: &str,
) -> Result<Vec<MetricDefinition>, String> {
    match doc {
        Value::Null => Err("the document is empty".into()),
        Value::Object(m) => Ok(vec![definition_from_mapping(m, default_category, source)?]),
        Value::Array(items) if items.is_empty() => Err("the document is an empty list".into()),
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::Object(m) => {
                    definition_from_mapping(m, default_category, source).map_err(|e| format!("entry {}: {e}", i + 1))
                }
                _ => Err(format!("entry {}: a metric is a mapping of fields", i + 1)),
            })
            .collect(),
        _ => Err("a metric document is a mapping or a list of mappings".into()),
    }
}

/// Read one definition from its fields.
pub fn definition_from_mapping(
    mut m: Map<String, Value>,
    default_category: Option<&str>,
    source: &str,
) -> Result<MetricDefinition, String> {
    let mut f = Fields(&mut m);
    let name = f.string("name")?.ok_or("missing 'name'")?;
    let category = match f.string("category")? {
        Some(c) => c,
        None => default_category.map(str::to_string).ok_or("missing 'category'")?,
    };
    for (key, value) in [("name", &name), ("category", &category)] {
        if !is_metric_segment(value) {
            return Err(format!("'{key}' {value:?} must be 1-128 of A-Z a-z 0-9 _ - . (not starting with . or -)"));
        }
    }
    let id = format!("{category}/{name}");
    if let Some(given) = f.string("id")? {
        if given != id {
            return Err(format!("'id' {given:?} must be '<category>/<name>', here {id:?}"));
        }
    }
    let table = f.string("table")?;
    let table_name = f.string("table_name")?;
    let table_name = match (table, table_name) {
        (Some(a), Some(b)) if a != b => return Err(format!("'table' {a:?} and 'table_name' {b:?} disagree")),
        (a, b) => a.or(b),
    };
    let mut sql_variants = BTreeMap::new();
    if let Some(given) = f.take("sql_variants") {
        let Value::Object(given) = given else {
            return Err("'sql_variants' must be a mapping of by_<variant> to SQL".into());
        };
        for (k, v) in given {
            let Some(variant) = k.strip_prefix("by_").filter(|v| !v.is_empty()) else {
                return Err(format!("'sql_variants' key {k:?} must be by_<variant>"));
            };
            let Value::String(sql) = v else { return Err(format!("'sql_variants.{k}' must be a string")) };
            sql_variants.insert(format!("by_{variant}"), sql);
        }
    }
    let variant_keys: Vec<String> = f.0.keys().filter(|k| k.starts_with(VARIANT_PREFIX)).cloned().collect();
    for key in variant_keys {
        let variant = &key[VARIANT_PREFIX.len()..];
        if variant.is_empty() {
            return Err(format!("{key:?} names no variant: use sql_by_<variant>"));
        }
        let sql = f.string(&key)?.unwrap_or_default();
        sql_variants.insert(format!("by_{variant}"), sql);
    }
    let def = MetricDefinition {
        display_name: f.string("display_name")?.unwrap_or_else(|| name.clone()),
        kind: f.string("type")?.unwrap_or_else(|| "sum".into()),
        unit: f.string("unit")?,
        grain: f.string("grain")?.unwrap_or_else(|| "monthly".into()),
        tables: f.strings("tables")?,
        expression: f.string("expression")?,
        time_column: f.string("time_column")?,
        description: f.string("description")?,
        dimensions: f.list("dimensions")?,
        filters: f.list("filters")?,
        synonyms: f.strings("synonyms")?,
        notes: f.strings("notes")?,
        sql: f.string("sql")?.unwrap_or_default(),
        validation: match f.take("validation") {
            None | Some(Value::Null) => None,
            Some(Value::Object(v)) => Some(v),
            Some(_) => return Err("'validation' must be a mapping".into()),
        },
        sql_variants,
        table_name,
        id,
        name,
        category,
        source: source.to_string(),
    };
    for key in SERVER_KEYS {
        f.take(key);
    }
    if let Some(unknown) = f.0.keys().next() {
        return Err(format!(
            "unknown field {unknown:?} (known: {}, sql_by_<variant>)",
            KNOWN_KEYS.iter().filter(|k| **k != "id").copied().collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(def)
}

/// The fields of one mapping, taken out as they are read so what is left is unknown.
struct Fields<'a>(&'a mut Map<String, Value>);

impl Fields<'_> {
    fn take(&mut self, key: &str) -> Option<Value> {
        self.0.remove(key)
    }

    fn string(&mut self, key: &str) -> Result<Option<String>, String> {
        match self.take(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(format!("'{key}' must be a string")),
        }
    }

    fn list(&mut self, key: &str) -> Result<Vec<Value>, String> {
        match self.take(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => Ok(items),
            Some(_) => Err(format!("'{key}' must be a list")),
        }
    }

    fn strings(&mut self, key: &str) -> Result<Vec<String>, String> {
        self.list(key)?
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(format!("'{key}' must be a list of strings")),
            })
            .collect()
    }
}

/// A definition as its YAML file is written (`export`): the fields in the format's order,
/// `table_name` as `table`, variants as `sql_by_<variant>`, empty fields left out.
#[derive(Serialize)]
pub struct MetricFile<'a> {
    name: &'a str,
    display_name: &'a str,
    category: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    unit: Option<&'a str>,
    grain: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    table: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    tables: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    expression: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    time_column: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    dimensions: &'a [Value],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    filters: &'a [Value],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    synonyms: &'a [String],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    notes: &'a [String],
    sql: &'a str,
    #[serde(flatten)]
    variants: BTreeMap<String, &'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    validation: Option<&'a Map<String, Value>>,
}

impl<'a> From<&'a MetricDefinition> for MetricFile<'a> {
    fn from(d: &'a MetricDefinition) -> Self {
        MetricFile {
            name: &d.name,
            display_name: &d.display_name,
            category: &d.category,
            kind: &d.kind,
            unit: d.unit.as_deref(),
            grain: &d.grain,
            table: d.table_name.as_deref(),
            tables: &d.tables,
            expression: d.expression.as_deref(),
            time_column: d.time_column.as_deref(),
            description: d.description.as_deref(),
            dimensions: &d.dimensions,
            filters: &d.filters,
            synonyms: &d.synonyms,
            notes: &d.notes,
            sql: &d.sql,
            variants: d.sql_variants.iter().map(|(k, v)| (format!("sql_{k}"), v.as_str())).collect(),
            validation: d.validation.as_ref(),
        }
    }
}

impl MetricDefinition {
    /// The tables this metric names: `table_name` first, then `tables`, without repeats.
    pub fn named_tables(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self.table_name.iter().map(String::as_str).collect();
        for t in &self.tables {
            if !out.contains(&t.as_str()) {
                out.push(t);
            }
        }
        out
    }

    /// Every SQL text of the metric: the canonical one (if any) and each variant, labelled.
    pub fn sql_texts(&self) -> Vec<(String, &str)> {
        let mut out = Vec::new();
        if !self.sql.trim().is_empty() {
            out.push(("sql".to_string(), self.sql.as_str()));
        }
        out.extend(self.sql_variants.iter().map(|(k, v)| (format!("sql_{k}"), v.as_str())));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(doc: Value) -> Result<Vec<MetricDefinition>, String> {
        definitions_from_document(doc, None, SOURCE_YAML)
    }

    #[test]
    fn every_field_is_read_with_its_default() {
        let d = &read(json!({"name": "mrr", "category": "revenue", "sql": "SELECT 1"})).unwrap()[0];
        assert_eq!(d.id, "revenue/mrr");
        assert_eq!((d.display_name.as_str(), d.kind.as_str(), d.grain.as_str()), ("mrr", "sum", "monthly"));
        assert!(d.tables.is_empty() && d.sql_variants.is_empty() && d.validation.is_none());

        let full = json!({
            "name": "total_revenue", "display_name": "Total revenue", "category": "revenue", "type": "sum",
            "unit": "USD", "grain": "daily", "table": "orders", "tables": ["orders", "order_items"],
            "expression": "SUM(total_amount)", "time_column": "ordered_at", "description": "Money in.",
            "dimensions": ["channel", {"name": "country", "table": "customers"}], "filters": ["status = 'completed'"],
            "synonyms": ["sales", "turnover"], "notes": ["Excludes refunds."], "sql": "SELECT 1",
            "sql_by_channel": "SELECT 2", "sql_by_month": "SELECT 3", "validation": {"min": 0},
        });
        let d = &read(full).unwrap()[0];
        assert_eq!(d.table_name.as_deref(), Some("orders"));
        assert_eq!(d.sql_variants.get("by_channel").map(String::as_str), Some("SELECT 2"));
        assert_eq!(d.sql_variants.len(), 2);
        assert_eq!(d.dimensions[1]["table"], "customers");
        assert_eq!(d.validation.as_ref().unwrap()["min"], 0);
        assert_eq!(d.named_tables(), ["orders", "order_items"]);
        assert_eq!(d.sql_texts().len(), 3);
    }

    #[test]
    fn category_comes_from_the_directory_unless_given() {
        let doc = json!([{"name": "a"}, {"name": "b", "category": "other"}]);
        let defs = definitions_from_document(doc, Some("sales"), SOURCE_YAML).unwrap();
        assert_eq!(defs.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["sales/a", "other/b"]);
    }

    #[test]
    fn mistakes_are_named() {
        let cases = [
            (Value::Null, "empty"),
            (json!([]), "empty list"),
            (json!("text"), "mapping or a list"),
            (json!({"category": "x"}), "missing 'name'"),
            (json!({"name": "x"}), "missing 'category'"),
            (json!([{"name": "a", "category": "c"}, {"category": "c"}]), "entry 2: missing 'name'"),
            (json!([{"name": "a", "category": "c"}, 5]), "entry 2: a metric is a mapping"),
            (json!({"name": "a/b", "category": "c"}), "'name'"),
            (json!({"name": "..", "category": "c"}), "'name'"),
            (json!({"name": "a", "category": ""}), "'category'"),
            (json!({"name": "a", "category": "c", "unit": 5}), "'unit' must be a string"),
            (json!({"name": "a", "category": "c", "tables": "orders"}), "'tables' must be a list"),
            (json!({"name": "a", "category": "c", "synonyms": [1]}), "list of strings"),
            (json!({"name": "a", "category": "c", "validation": [1]}), "'validation' must be a mapping"),
            (json!({"name": "a", "category": "c", "table": "x", "table_name": "y"}), "disagree"),
            (json!({"name": "a", "category": "c", "sql_by_": "x"}), "names no variant"),
            (json!({"name": "a", "category": "c", "sql_by_x": 1}), "'sql_by_x' must be a string"),
            (json!({"name": "a", "category": "c", "synonym": ["x"]}), "unknown field \"synonym\""),
            (json!({"name": "a", "category": "c", "id": "c/b"}), "'id'"),
            (json!({"name": "a", "category": "c", "sql_variants": {"x": "y"}}), "by_<variant>"),
        ];
        for (doc, expected) in cases {
            let err = read(doc.clone()).unwrap_err();
            assert!(err.contains(expected), "{doc}: {err:?} should say {expected:?}");
        }
    }

    #[test]
    fn a_fetched_record_can_be_sent_back() {
        let d = read(json!({"name": "a", "category": "c", "table": "t", "sql_by_x": "SELECT 1"})).unwrap().remove(0);
        let record = MetricRecord { definition: d.clone(), created_at: "then".into(), updated_at: "now".into() };
        let Value::Object(m) = serde_json::to_value(&record).unwrap() else { panic!() };
        assert_eq!(m["id"], "c/a");
        let back = definition_from_mapping(m, None, SOURCE_YAML).unwrap();
        assert_eq!(back, d);
    }

    #[test]
    fn the_file_form_reads_back_to_the_same_definition() {
        let doc = json!({
            "name": "conv", "category": "web", "type": "ratio", "unit": "percentage", "table": "sessions",
            "tables": ["sessions"], "dimensions": ["device"], "notes": ["n"], "sql": "SELECT 1",
            "sql_by_device": "SELECT 2", "validation": {"min": 0, "max": 1},
        });
        let d = read(doc).unwrap().remove(0);
        let Value::Object(file) = serde_json::to_value(MetricFile::from(&d)).unwrap() else { panic!() };
        assert_eq!(file["table"], "sessions");
        assert_eq!(file["sql_by_device"], "SELECT 2");
        assert!(!file.contains_key("filters") && !file.contains_key("id"));
        assert_eq!(definition_from_mapping(file, None, SOURCE_YAML).unwrap(), d);
    }

    #[test]
    fn segments() {
        for ok in ["mrr", "total_revenue", "v2.1", "a-b"] {
            assert!(is_metric_segment(ok), "{ok}");
        }
        for bad in ["", ".", "..", ".hidden", "-x", "a/b", "a b", "ü", &"a".repeat(129)] {
            assert!(!is_metric_segment(bad), "{bad}");
        }
        assert!(is_metric_id("revenue/mrr") && !is_metric_id("revenue") && !is_metric_id("a/b/c"));
    }
}
