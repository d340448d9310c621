//! The `jira` connector (spec §8.3): Jira Cloud kept fresh by webhooks. The server's
//! Jira service brings each changed issue's raw JSON up to date ([`refresh`]: the issue
//! with every comment and change, its remote links and attachments) and records the
//! change in the raw store's journal; a sync of one of the six tables then applies the
//! issues changed since its last sync to the month parts they touch. The raw store is
//! the truth: a table synced for the first time is built from all of it.
//!
//! Registry rows: `source_type = jira`, `source_table` one of the six entities,
//! `sync_strategy = partitioned` (one part per `YYYY-MM`).

mod adf;
pub mod client;
mod config;
pub mod extract;
pub mod raw;
#[cfg(test)]
mod tests;

pub use client::{Fetched, JiraClient};
pub use config::{JiraConfig, JiraSource, CUSTOM_COLUMNS};
pub use raw::{is_issue_key, RawStore};

use crate::{Connector, ConnectorError, InvalidField, Publication, SyncContext, SyncedTable};
use agnes_core::ident::quote_literal;
use agnes_core::{QueryMode, SourceType, SyncStrategy, TableSpec};
use agnes_engine::confined::open_confined;
use agnes_engine::fsutil::temp_path_for;
use agnes_engine::publish::{describe, publish_in_parts, replace_in_parts, PublishedPart};
use extract::{Entity, ENTITIES};
use serde_json::Value;

/// The extract directory and catalog name of the Jira tables.
pub const SOURCE: &str = "jira";
/// The part a table with no rows at all keeps, so it still has its columns.
const EMPTY_PART: &str = "empty";
/// Issues transformed per batch on a full build (bounds memory).
const BATCH: usize = 2_000;

pub struct JiraConnector {
    source: JiraSource,
    raw: RawStore,
}

/// What bringing one issue up to date did.
#[derive(Debug, Default, PartialEq)]
pub struct Refreshed {
    /// The keys whose raw JSON changed (two when the issue moved to another key).
    pub keys: Vec<String>,
    /// What went wrong without stopping it (remote links kept from before, an
    /// attachment not downloaded).
    pub warnings: Vec<String>,
}

/// Bring the raw JSON of `key` up to date with Jira: fetched and saved, or removed when
/// the event deleted it or Jira no longer has it. Remote links that cannot be read keep
/// their previous value; attachments up to the size limit are downloaded once.
pub fn refresh(
    client: &JiraClient,
    source: &JiraSource,
    raw: &RawStore,
    key: &str,
    deleted: bool,
) -> Result<Refreshed, ConnectorError> {
    let mut done = Refreshed { keys: vec![key.to_string()], warnings: Vec::new() };
    let mut issue = match deleted {
        true => Fetched::Gone,
        false => client.issue(key)?,
    };
    let Fetched::Issue(issue) = &mut issue else {
        raw.remove(key)?;
        return Ok(done);
    };
    // Jira answers a moved issue under its new key: the old one is gone.
    let current = issue.get("key").and_then(Value::as_str).filter(|k| is_issue_key(k)).unwrap_or(key).to_string();
    if current != key {
        raw.remove(key)?;
        done.keys.push(current.clone());
    }
    let previous = raw.load(&current)?;
    match client.remote_links(&current) {
        Ok(links) => issue[extract::REMOTE_LINKS_KEY] = Value::Array(links),
        Err(e) => {
            done.warnings.push(format!("{current}: remote links kept from before: {e}"));
            if let Some(kept) = previous.as_ref().and_then(|p| p.get(extract::REMOTE_LINKS_KEY)) {
                issue[extract::REMOTE_LINKS_KEY] = kept.clone();
            }
        }
    }
    let attachments = issue.pointer("/fields/attachment").and_then(Value::as_array).cloned().unwrap_or_default();
    for a in attachments {
        let text =
            |k: &str| a.get(k).and_then(|v| v.as_str().map(String::from).or_else(|| v.as_i64().map(|n| n.to_string())));
        let (Some(id), Some(name), Some(url)) = (text("id"), text("filename"), text("content")) else { continue };
        let size = a.get("size").and_then(Value::as_u64).unwrap_or(0);
        let (_, path) = raw.attachment_path(&current, &id, &name);
        if size > source.max_attachment_bytes() || std::fs::metadata(&path).is_ok_and(|m| m.len() == size) {
            continue;
        }
        if let Err(e) = client.download(&url, &path, source.max_attachment_bytes()) {
            done.warnings.push(format!("{current}: attachment {id} not downloaded: {e}"));
        }
    }
    raw.save(&current, issue)?;
    Ok(done)
}

impl JiraConnector {
    pub fn new(source: JiraSource, raw: RawStore) -> JiraConnector {
        JiraConnector { source, raw }
    }

    pub fn entity_of(table: &TableSpec) -> Result<&'static Entity, ConnectorError> {
        let name = table.source_table.as_deref().unwrap_or(&table.name);
        extract::entity(name).ok_or_else(|| {
            ConnectorError::Config(format!(
                "source_table '{name}' is not a Jira table (one of: {})",
                ENTITIES.iter().map(|e| e.name).collect::<Vec<_>>().join(", ")
            ))
        })
    }

    /// The rows of `entity` for `keys` (a key without raw JSON has none), written to a
    /// hidden parquet in `tmp` with each row's month part.
    fn stage(
        &self,
        entity: &Entity,
        keys: &[String],
        tmp: &std::path::Path,
    ) -> Result<std::path::PathBuf, ConnectorError> {
        let now = chrono::Utc::now();
        let mut rows = Vec::new();
        for key in keys {
            if let Some(issue) = self.raw.load(key)? {
                let month = extract::month_of(&issue);
                for row in extract::rows(entity, &issue, &self.source, &self.raw, now)? {
                    rows.push((month.clone(), row));
                }
            }
        }
        let staged = temp_path_for(&tmp.join(format!("jira-{}.parquet", entity.name)));
        extract::write(entity, &rows, true, &staged)?;
        Ok(staged)
    }
}

impl Connector for JiraConnector {
    fn source_name(&self) -> &str {
        SOURCE
    }

    fn source_type(&self) -> SourceType {
        SourceType::Jira
    }

    fn syncs(&self, mode: QueryMode) -> bool {
        mode == QueryMode::Local
    }

    fn probe(&self) -> Result<agnes_core::api::SourceTest, ConnectorError> {
        let me = JiraClient::connect(&self.source)?.myself()?;
        let mut warnings = Vec::new();
        if self.source.webhook_secret().is_none() {
            warnings.push(format!("{} is not set: webhooks are refused (503)", self.source.webhook_secret_env()));
        }
        Ok(agnes_core::api::SourceTest {
            name: SOURCE.into(),
            source_type: SourceType::Jira,
            server_version: format!("Jira Cloud at {}", self.source.base_url()?),
            role: me
                .get("emailAddress")
                .or_else(|| me.get("displayName"))
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_string(),
            superuser: false,
            tables_visible: ENTITIES.len() as i64,
            expires: None,
            warnings,
        })
    }

    fn discover(&self) -> Result<Vec<agnes_core::api::DiscoveredTable>, ConnectorError> {
        Ok(ENTITIES
            .iter()
            .map(|e| agnes_core::api::DiscoveredTable {
                path: e.name.to_string(),
                format: "partitioned_table".into(),
                size_bytes: None,
                bucket: None,
                source_table: Some(e.name.to_string()),
                columns: columns(e),
                primary_key: Vec::new(),
                estimated_rows: None,
                last_import: None,
                last_change: None,
                registered_as: None,
            })
            .collect())
    }

    fn check_options(&self, table: &TableSpec) -> Result<(), InvalidField> {
        if table.source_options.as_ref().is_some_and(|o| !o.is_null()) {
            return Err(InvalidField {
                field: "source_options",
                message: "the Jira tables take no source_options".into(),
            });
        }
        Ok(())
    }

    fn unsupported(&self, table: &TableSpec) -> Option<String> {
        if let Err(e) = Self::entity_of(table) {
            return Some(e.to_string());
        }
        (table.sync_strategy != SyncStrategy::Partitioned)
            .then(|| "the Jira tables are published by month: register them with sync_strategy 'partitioned'".into())
    }

    fn sync_table(&self, table: &TableSpec, ctx: &SyncContext<'_>) -> Result<SyncedTable, ConnectorError> {
        let entity = Self::entity_of(table)?;
        let dir = ctx.layout.table_part_dir(SOURCE, &table.name);
        let tmp = ctx.layout.tmp_dir();
        let data = ctx.layout.source_data_dir(SOURCE);
        for d in [&data, &tmp] {
            std::fs::create_dir_all(d)
                .map_err(|e| ConnectorError::Source(format!("cannot create {}: {e}", d.display())))?;
        }
        let duck = open_confined(&[&data, &tmp], ctx.limits)?;
        // Applied up to this journal entry before; none (or no data): build from all.
        let applied = ctx.source_version.and_then(|v| v.parse::<u64>().ok()).filter(|_| dir.is_dir());
        let (changed, last) = self.raw.changed_since(applied.unwrap_or(0))?;
        let publish = |keys: &[String], all: bool| -> Result<Vec<PublishedPart>, ConnectorError> {
            let staged = self.stage(entity, keys, &tmp)?;
            let rows = format!("SELECT * FROM read_parquet({})", quote_literal(&staged.to_string_lossy()));
            let parts = if all {
                publish_in_parts(&duck, &rows, &dir)
            } else {
                replace_in_parts(&duck, &rows, "issue_key", keys, &dir)
            };
            let _ = std::fs::remove_file(&staged);
            Ok(parts?)
        };
        let mut parts = match applied {
            Some(_) if changed.is_empty() => current_parts(&duck, &dir)?,
            Some(_) => publish(&changed, false)?,
            None => {
                let keys = self.raw.keys()?;
                let mut parts = publish(&keys[..keys.len().min(BATCH)], true)?;
                for chunk in keys.chunks(BATCH).skip(1) {
                    parts = publish(chunk, false)?;
                }
                parts
            }
        };
        parts = keep_columns_when_empty(&duck, entity, &dir, &tmp, parts)?;
        Ok(SyncedTable { publication: Publication::Parts(parts), source_version: Some(last.to_string()) })
    }

    fn preview(
        &self,
        table: &TableSpec,
        _ctx: &SyncContext<'_>,
    ) -> Result<Vec<agnes_engine::inspect::Column>, ConnectorError> {
        Ok(columns(Self::entity_of(table)?)
            .into_iter()
            .map(|c| agnes_engine::inspect::Column { name: c.name, column_type: c.column_type, nullable: true })
            .collect())
    }
}

/// The DuckDB columns of an entity.
fn columns(entity: &Entity) -> Vec<agnes_core::api::SourceColumn> {
    entity
        .columns
        .iter()
        .map(|(name, kind)| agnes_core::api::SourceColumn {
            name: name.to_string(),
            column_type: match kind {
                extract::Kind::Text => "VARCHAR",
                extract::Kind::Int => "BIGINT",
                extract::Kind::Bool => "BOOLEAN",
                extract::Kind::Ts => "TIMESTAMP WITH TIME ZONE",
                extract::Kind::Date => "DATE",
                extract::Kind::List => "VARCHAR[]",
            }
            .into(),
            nullable: true,
        })
        .collect()
}

fn current_parts(
    duck: &agnes_engine::duckdb::Connection,
    dir: &std::path::Path,
) -> Result<Vec<PublishedPart>, ConnectorError> {
    agnes_engine::table_data::TableData::Parts(dir.to_path_buf())
        .files()
        .iter()
        .map(|f| {
            let key = f.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            Ok(PublishedPart { key, file: describe(duck, f)? })
        })
        .collect()
}

/// A table with no rows keeps one empty part with its columns (readers of a table in
/// parts need a file); once it has rows, that part goes.
fn keep_columns_when_empty(
    duck: &agnes_engine::duckdb::Connection,
    entity: &Entity,
    dir: &std::path::Path,
    tmp: &std::path::Path,
    parts: Vec<PublishedPart>,
) -> Result<Vec<PublishedPart>, ConnectorError> {
    let empty = dir.join(format!("{EMPTY_PART}.parquet"));
    let (filled, placeholder): (Vec<_>, Vec<_>) = parts.into_iter().partition(|p| p.key != EMPTY_PART);
    if !filled.is_empty() {
        if !placeholder.is_empty() {
            agnes_engine::fsutil::remove_if_exists(&empty)?;
        }
        return Ok(filled);
    }
    if placeholder.is_empty() {
        std::fs::create_dir_all(dir)
            .map_err(|e| ConnectorError::Source(format!("cannot create {}: {e}", dir.display())))?;
        let staged = temp_path_for(&tmp.join(format!("jira-{}-empty.parquet", entity.name)));
        extract::write(entity, &[], false, &staged)?;
        agnes_engine::publish::publish_written(duck, &staged, &empty)?;
    }
    Ok(vec![PublishedPart { key: EMPTY_PART.into(), file: describe(duck, &empty)? }])
}
