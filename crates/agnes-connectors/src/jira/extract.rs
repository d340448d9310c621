//! From raw issues to the six tables (spec §8.3): each issue's rows of `issues`,
//! `comments`, `attachments`, `changelog`, `issuelinks` and `remote_links`, all in the
//! part of the month the issue was created (`YYYY-MM`, UTC), written as parquet with the
//! contract's columns and fixed types.

use super::adf;
use super::config::JiraSource;
use super::raw::RawStore;
use crate::ConnectorError;
use arrow_array::builder::{
    ArrayBuilder, BooleanBuilder, Date32Builder, Int64Builder, ListBuilder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;

/// A column's type: text, BIGINT, BOOLEAN, TIMESTAMPTZ (UTC), DATE or VARCHAR[].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Int,
    Bool,
    Ts,
    Date,
    List,
}

use Kind::*;

/// One of the six tables: its name (the registry's `source_table`) and columns.
pub struct Entity {
    pub name: &'static str,
    pub columns: &'static [(&'static str, Kind)],
}

pub const ISSUES: Entity = Entity {
    name: "issues",
    columns: &[
        ("issue_key", Text),
        ("issue_id", Text),
        ("issue_url", Text),
        ("summary", Text),
        ("description", Text),
        ("issue_type", Text),
        ("status", Text),
        ("status_category", Text),
        ("priority", Text),
        ("resolution", Text),
        ("project_key", Text),
        ("project_name", Text),
        ("creator_email", Text),
        ("creator_name", Text),
        ("reporter_email", Text),
        ("reporter_name", Text),
        ("assignee_email", Text),
        ("assignee_name", Text),
        ("created_at", Ts),
        ("updated_at", Ts),
        ("resolved_at", Ts),
        ("due_date", Date),
        ("labels", List),
        ("attachment_count", Int),
        ("comment_count", Int),
        ("issuelink_count", Int),
        ("request_type", Text),
        ("request_status", Text),
        ("severity", Text),
        ("triage", Text),
        ("configuration_item", Text),
        ("participants", List),
        ("organizations", List),
        ("spam", Text),
        ("context", Text),
        ("custom_url", Text),
        ("slack_link", Text),
        ("technical_issue_category", Text),
        ("email_address", Text),
        ("satisfaction", Int),
        ("first_response_breached", Bool),
        ("first_response_goal_millis", Int),
        ("first_response_elapsed_millis", Int),
        ("time_to_resolution_breached", Bool),
        ("time_to_resolution_goal_millis", Int),
        ("time_to_resolution_elapsed_millis", Int),
        ("l3_team", Text),
        ("_synced_at", Ts),
        ("_raw_file", Text),
    ],
};

pub const COMMENTS: Entity = Entity {
    name: "comments",
    columns: &[
        ("comment_id", Text),
        ("issue_key", Text),
        ("author_email", Text),
        ("author_name", Text),
        ("body", Text),
        ("created_at", Ts),
        ("updated_at", Ts),
        ("update_author_email", Text),
    ],
};

pub const ATTACHMENTS: Entity = Entity {
    name: "attachments",
    columns: &[
        ("attachment_id", Text),
        ("issue_key", Text),
        ("filename", Text),
        ("local_path", Text),
        ("hierarchical_path", Text),
        ("size_bytes", Int),
        ("mime_type", Text),
        ("author_email", Text),
        ("created_at", Ts),
        ("content_url", Text),
        ("thumbnail_url", Text),
    ],
};

pub const CHANGELOG: Entity = Entity {
    name: "changelog",
    columns: &[
        ("change_id", Text),
        ("issue_key", Text),
        ("author_email", Text),
        ("author_name", Text),
        ("field_name", Text),
        ("field_type", Text),
        ("from_value", Text),
        ("to_value", Text),
        ("changed_at", Ts),
    ],
};

pub const ISSUELINKS: Entity = Entity {
    name: "issuelinks",
    columns: &[
        ("issue_key", Text),
        ("link_id", Text),
        ("link_type", Text),
        ("direction", Text),
        ("linked_issue_key", Text),
        ("linked_issue_summary", Text),
        ("linked_issue_status", Text),
        ("linked_issue_priority", Text),
    ],
};

pub const REMOTE_LINKS: Entity = Entity {
    name: "remote_links",
    columns: &[
        ("issue_key", Text),
        ("remote_link_id", Text),
        ("url", Text),
        ("title", Text),
        ("application_name", Text),
        ("application_type", Text),
    ],
};

pub const ENTITIES: [&Entity; 6] = [&ISSUES, &COMMENTS, &ATTACHMENTS, &CHANGELOG, &ISSUELINKS, &REMOTE_LINKS];

pub fn entity(name: &str) -> Option<&'static Entity> {
    ENTITIES.into_iter().find(|e| e.name == name)
}

/// One value of a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(Option<String>),
    Int(Option<i64>),
    Bool(Option<bool>),
    Ts(Option<DateTime<Utc>>),
    Date(Option<NaiveDate>),
    List(Option<Vec<String>>),
}

pub type Row = Vec<Cell>;

/// The key under which the raw issue overlays its remote links (absent: not fetched).
pub const REMOTE_LINKS_KEY: &str = "remote_links";

/// A Jira timestamp (`2024-01-15T10:30:00.000+0100`, or RFC 3339) in UTC.
pub fn timestamp(v: Option<&Value>) -> Option<DateTime<Utc>> {
    let s = v?.as_str()?;
    DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| DateTime::parse_from_rfc3339(s))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The month part an issue's rows live in: its creation month in UTC.
pub fn month_of(issue: &Value) -> String {
    timestamp(issue.pointer("/fields/created"))
        .map(|t| t.format("%Y-%m").to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn text_at(v: &Value, pointer: &str) -> Option<String> {
    match v.pointer(pointer)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn t(v: &Value, pointer: &str) -> Cell {
    Cell::Text(text_at(v, pointer))
}

fn ts(v: &Value, pointer: &str) -> Cell {
    Cell::Ts(timestamp(v.pointer(pointer)))
}

/// The readable value of a custom field, whatever its kind: text, number, an option
/// (`value`, with its child for cascading selects), a named object, a user, an array
/// of any of these (joined by `, `), a service desk request type.
pub fn custom_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().filter_map(custom_text).collect();
            (!parts.is_empty()).then(|| parts.join(", "))
        }
        Value::Object(o) => {
            if let Some(value) = o.get("value").and_then(custom_text) {
                return Some(match o.get("child").and_then(custom_text) {
                    Some(child) => format!("{value} / {child}"),
                    None => value,
                });
            }
            if let Some(name) = v.pointer("/requestType/name") {
                return custom_text(name);
            }
            ["displayName", "name", "emailAddress", "title", "label", "key", "id"]
                .iter()
                .find_map(|k| o.get(*k).and_then(custom_text))
        }
    }
}

/// A custom field holding several values (participants, organizations) as a list.
fn custom_list(v: Option<&Value>) -> Option<Vec<String>> {
    match v? {
        Value::Null => None,
        Value::Array(items) => Some(items.iter().filter_map(custom_text).collect()),
        one => custom_text(one).map(|s| vec![s]),
    }
}

/// An SLA field's current (else last completed) cycle: breached, goal, elapsed.
fn sla(v: Option<&Value>) -> [Cell; 3] {
    let cycle = v.and_then(|v| {
        v.get("ongoingCycle")
            .filter(|c| !c.is_null())
            .or_else(|| v.get("completedCycles").and_then(Value::as_array).and_then(|c| c.last()))
    });
    let millis = |p: &str| cycle.and_then(|c| c.pointer(p)).and_then(Value::as_i64);
    [
        Cell::Bool(cycle.and_then(|c| c.get("breached")).and_then(Value::as_bool)),
        Cell::Int(millis("/goalDuration/millis")),
        Cell::Int(millis("/elapsedTime/millis")),
    ]
}

/// The rows of one entity for one raw issue.
pub fn rows(
    entity: &Entity,
    issue: &Value,
    source: &JiraSource,
    raw: &RawStore,
    synced_at: DateTime<Utc>,
) -> Result<Vec<Row>, ConnectorError> {
    let key = issue.get("key").and_then(Value::as_str).unwrap_or_default().to_string();
    let k = || Cell::Text(Some(key.clone()));
    let fields = issue.get("fields").cloned().unwrap_or(Value::Null);
    let array = |p: &str| fields.pointer(p).and_then(Value::as_array).cloned().unwrap_or_default();
    Ok(match entity.name {
        "issues" => vec![issue_row(issue, &key, source, synced_at)?],
        "comments" => array("/comment/comments")
            .iter()
            .map(|c| {
                vec![
                    t(c, "/id"),
                    k(),
                    t(c, "/author/emailAddress"),
                    t(c, "/author/displayName"),
                    Cell::Text(c.get("body").and_then(adf::to_text)),
                    ts(c, "/created"),
                    ts(c, "/updated"),
                    t(c, "/updateAuthor/emailAddress"),
                ]
            })
            .collect(),
        "attachments" => array("/attachment")
            .iter()
            .map(|a| {
                let id = text_at(a, "/id").unwrap_or_default();
                let (relative, absolute) = raw.attachment_path(&key, &id, &text_at(a, "/filename").unwrap_or_default());
                let local = absolute.is_file().then(|| absolute.to_string_lossy().into_owned());
                vec![
                    Cell::Text(Some(id)),
                    k(),
                    t(a, "/filename"),
                    Cell::Text(local),
                    Cell::Text(Some(relative)),
                    Cell::Int(a.get("size").and_then(Value::as_i64)),
                    t(a, "/mimeType"),
                    t(a, "/author/emailAddress"),
                    ts(a, "/created"),
                    t(a, "/content"),
                    t(a, "/thumbnail"),
                ]
            })
            .collect(),
        "changelog" => issue
            .pointer("/changelog/histories")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
            .iter()
            .flat_map(|h| {
                let items = h.get("items").and_then(Value::as_array).cloned().unwrap_or_default();
                items
                    .into_iter()
                    .map(|item| {
                        let value = |s: &str, raw: &str| text_at(&item, s).or_else(|| text_at(&item, raw));
                        vec![
                            t(h, "/id"),
                            k(),
                            t(h, "/author/emailAddress"),
                            t(h, "/author/displayName"),
                            t(&item, "/field"),
                            t(&item, "/fieldtype"),
                            Cell::Text(value("/fromString", "/from")),
                            Cell::Text(value("/toString", "/to")),
                            ts(h, "/created"),
                        ]
                    })
                    .collect::<Vec<_>>()
            })
            .collect(),
        "issuelinks" => array("/issuelinks")
            .iter()
            .map(|l| {
                let (direction, other) = match (l.get("outwardIssue"), l.get("inwardIssue")) {
                    (Some(o), _) => ("outward", o),
                    (None, Some(i)) => ("inward", i),
                    (None, None) => ("unknown", &Value::Null),
                };
                vec![
                    k(),
                    t(l, "/id"),
                    t(l, "/type/name"),
                    Cell::Text(Some(direction.into())),
                    t(other, "/key"),
                    t(other, "/fields/summary"),
                    t(other, "/fields/status/name"),
                    t(other, "/fields/priority/name"),
                ]
            })
            .collect(),
        "remote_links" => issue
            .get(REMOTE_LINKS_KEY)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|r| {
                vec![
                    k(),
                    t(r, "/id"),
                    t(r, "/object/url"),
                    t(r, "/object/title"),
                    t(r, "/application/name"),
                    t(r, "/application/type"),
                ]
            })
            .collect(),
        other => return Err(ConnectorError::Config(format!("the Jira source has no table '{other}'"))),
    })
}

fn issue_row(issue: &Value, key: &str, source: &JiraSource, synced_at: DateTime<Utc>) -> Result<Row, ConnectorError> {
    let f = issue.get("fields").cloned().unwrap_or(Value::Null);
    let custom = |column: &str| source.custom_field(column).and_then(|id| f.get(id)).filter(|v| !v.is_null());
    let text = |column: &str| Cell::Text(custom(column).and_then(custom_text));
    let count = |p: &str| Cell::Int(f.pointer(p).and_then(Value::as_array).map(|a| a.len() as i64));
    let comments = f
        .pointer("/comment/total")
        .and_then(Value::as_i64)
        .or_else(|| f.pointer("/comment/comments").and_then(Value::as_array).map(|a| a.len() as i64));
    let request = custom("request_type");
    let satisfaction = custom("satisfaction").and_then(|v| {
        v.get("rating").and_then(Value::as_i64).or_else(|| v.as_i64()).or_else(|| v.as_str()?.parse().ok())
    });
    let [fr_breached, fr_goal, fr_elapsed] = sla(custom("first_response"));
    let [ttr_breached, ttr_goal, ttr_elapsed] = sla(custom("time_to_resolution"));
    Ok(vec![
        Cell::Text(Some(key.to_string())),
        t(issue, "/id"),
        Cell::Text(Some(format!("{}/browse/{key}", source.base_url()?))),
        t(&f, "/summary"),
        Cell::Text(f.get("description").and_then(adf::to_text)),
        t(&f, "/issuetype/name"),
        t(&f, "/status/name"),
        t(&f, "/status/statusCategory/name"),
        t(&f, "/priority/name"),
        t(&f, "/resolution/name"),
        t(&f, "/project/key"),
        t(&f, "/project/name"),
        t(&f, "/creator/emailAddress"),
        t(&f, "/creator/displayName"),
        t(&f, "/reporter/emailAddress"),
        t(&f, "/reporter/displayName"),
        t(&f, "/assignee/emailAddress"),
        t(&f, "/assignee/displayName"),
        ts(&f, "/created"),
        ts(&f, "/updated"),
        ts(&f, "/resolutiondate"),
        Cell::Date(
            f.get("duedate").and_then(Value::as_str).and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()),
        ),
        Cell::List(f.get("labels").and_then(Value::as_array).map(|a| a.iter().filter_map(custom_text).collect())),
        count("/attachment"),
        Cell::Int(comments),
        count("/issuelinks"),
        Cell::Text(request.and_then(|r| text_at(r, "/requestType/name"))),
        Cell::Text(request.and_then(|r| text_at(r, "/currentStatus/status"))),
        text("severity"),
        text("triage"),
        text("configuration_item"),
        Cell::List(custom_list(custom("participants"))),
        Cell::List(custom_list(custom("organizations"))),
        text("spam"),
        text("context"),
        text("custom_url"),
        text("slack_link"),
        text("technical_issue_category"),
        text("email_address"),
        Cell::Int(satisfaction),
        fr_breached,
        fr_goal,
        fr_elapsed,
        ttr_breached,
        ttr_goal,
        ttr_elapsed,
        text("l3_team"),
        Cell::Ts(Some(synced_at)),
        Cell::Text(Some(format!("issues/{key}.json"))),
    ])
}

/// The Arrow schema of an entity; with `part`, the `__agnes_part` column the publish
/// routes rows by.
pub fn schema(entity: &Entity, part: bool) -> Arc<Schema> {
    let mut fields: Vec<Field> = entity
        .columns
        .iter()
        .map(|(name, kind)| {
            let data_type = match kind {
                Text => DataType::Utf8,
                Int => DataType::Int64,
                Bool => DataType::Boolean,
                Ts => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                Date => DataType::Date32,
                List => DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            };
            Field::new(*name, data_type, true)
        })
        .collect();
    if part {
        fields.push(Field::new("__agnes_part", DataType::Utf8, false));
    }
    Arc::new(Schema::new(fields))
}

fn builder(kind: Kind, n: usize) -> Box<dyn ArrayBuilder> {
    match kind {
        Text => Box::new(StringBuilder::with_capacity(n, n * 16)),
        Int => Box::new(Int64Builder::with_capacity(n)),
        Bool => Box::new(BooleanBuilder::with_capacity(n)),
        Ts => Box::new(TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC")),
        Date => Box::new(Date32Builder::with_capacity(n)),
        List => Box::new(ListBuilder::new(StringBuilder::new())),
    }
}

fn append(b: &mut dyn ArrayBuilder, cell: &Cell) {
    let any = b.as_any_mut();
    match cell {
        Cell::Text(v) => any.downcast_mut::<StringBuilder>().expect("a text column").append_option(v.as_deref()),
        Cell::Int(v) => any.downcast_mut::<Int64Builder>().expect("an integer column").append_option(*v),
        Cell::Bool(v) => any.downcast_mut::<BooleanBuilder>().expect("a boolean column").append_option(*v),
        Cell::Ts(v) => any
            .downcast_mut::<TimestampMicrosecondBuilder>()
            .expect("a timestamp column")
            .append_option(v.map(|t| t.timestamp_micros())),
        Cell::Date(v) => {
            let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("the epoch");
            any.downcast_mut::<Date32Builder>()
                .expect("a date column")
                .append_option(v.map(|d| (d - epoch).num_days() as i32))
        }
        Cell::List(v) => {
            let list = any.downcast_mut::<ListBuilder<StringBuilder>>().expect("a list column");
            match v {
                Some(items) => {
                    for item in items {
                        list.values().append_value(item);
                    }
                    list.append(true);
                }
                None => list.append(false),
            }
        }
    }
}

/// Write `rows`, each with the part it belongs in, as one parquet file at `dest`; with
/// `with_part`, the part is the `__agnes_part` column.
pub fn write(entity: &Entity, rows: &[(String, Row)], with_part: bool, dest: &Path) -> Result<(), ConnectorError> {
    let schema = schema(entity, with_part);
    let mut builders: Vec<Box<dyn ArrayBuilder>> =
        entity.columns.iter().map(|(_, kind)| builder(*kind, rows.len())).collect();
    let mut parts = StringBuilder::new();
    for (part, row) in rows {
        for (b, cell) in builders.iter_mut().zip(row) {
            append(b.as_mut(), cell);
        }
        if with_part {
            parts.append_value(part);
        }
    }
    let mut arrays: Vec<arrow_array::ArrayRef> = builders.iter_mut().map(|b| b.finish()).collect();
    if with_part {
        arrays.push(Arc::new(parts.finish()));
    }
    let batch = RecordBatch::try_new(schema.clone(), arrays)
        .map_err(|e| ConnectorError::Source(format!("cannot assemble the {} rows: {e}", entity.name)))?;
    let write_err = |e: parquet::errors::ParquetError| ConnectorError::Source(format!("cannot write parquet: {e}"));
    let file = std::fs::File::create(dest)
        .map_err(|e| ConnectorError::Source(format!("cannot create {}: {e}", dest.display())))?;
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .build();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, Some(props)).map_err(write_err)?;
    writer.write(&batch).map_err(write_err)?;
    writer.close().map_err(write_err)?;
    Ok(())
}
