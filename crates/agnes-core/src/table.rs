//! The registry's table specification and its enumerations (spec §2.1).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Error for a value outside an enumeration of the contract.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {value:?} (expected one of: {expected})")]
pub struct InvalidValue {
    pub field: &'static str,
    pub value: String,
    pub expected: &'static str,
}

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident, $field:literal, { $($variant:ident => $text:literal $(| $alias:literal)*),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "&'static str")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = InvalidValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text $(| $alias)* => Ok($name::$variant),)+
                    _ => Err(InvalidValue {
                        field: $field,
                        value: s.to_string(),
                        expected: concat!($($text, " "),+),
                    }),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidValue;
            fn try_from(s: String) -> Result<Self, Self::Error> { s.parse() }
        }

        impl From<$name> for &'static str {
            fn from(v: $name) -> Self { v.as_str() }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }

        /// On the wire it is one of its texts.
        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($text),+]))
                    .into()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}
    };
}

string_enum!(
    /// How a table's data reaches analysts.
    QueryMode, "query_mode", {
        Local => "local",
        Remote => "remote",
        Materialized => "materialized",
        Internal => "internal",
    }
);

string_enum!(
    /// How a connector refreshes a table.
    SyncStrategy, "sync_strategy", {
        FullRefresh => "full_refresh",
        Incremental => "incremental",
        Partitioned => "partitioned",
    }
);

string_enum!(
    /// The size of one partition of a partitioned table.
    PartitionGranularity, "partition_granularity", {
        Day => "day",
        Month => "month",
        Year => "year",
    }
);

string_enum!(
    /// Where a table's data comes from. `csv` is accepted as an alias of `files`, the
    /// seeds' name for the source type the original never built.
    SourceType, "source_type", {
        Files => "files" | "csv",
        Keboola => "keboola",
        Bigquery => "bigquery",
        Jira => "jira",
        Postgres => "postgres",
        Local => "local",
        Internal => "internal",
    }
);

impl PartitionGranularity {
    /// The `strftime` pattern of a partition key; keys are also the part file stems
    /// (`2024`, `2024_03`, `2024_03_15`), as in the original's Keboola layout.
    pub fn strftime_pattern(self) -> &'static str {
        match self {
            PartitionGranularity::Day => "%Y_%m_%d",
            PartitionGranularity::Month => "%Y_%m",
            PartitionGranularity::Year => "%Y",
        }
    }
}

/// One row of the table registry: everything the server knows about a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TableSpec {
    /// Registry id: the one key every reference resolves to (RBAC, sync state, files).
    pub id: String,
    /// Display name = view name = parquet stem = `_meta.table_name`.
    pub name: String,
    pub source_type: Option<SourceType>,
    pub bucket: Option<String>,
    /// For `files`: the path or glob, relative to the files root.
    pub source_table: Option<String>,
    /// For `materialized`: the query whose result is published.
    pub source_query: Option<String>,
    pub sync_strategy: SyncStrategy,
    pub query_mode: QueryMode,
    pub sync_schedule: Option<String>,
    pub profile_after_sync: bool,
    pub primary_key: Vec<String>,
    pub folder: Option<String>,
    pub description: Option<String>,
    pub registered_by: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub registered_at: DateTime<Utc>,
    pub incremental_window_days: Option<i64>,
    pub max_history_days: Option<i64>,
    pub incremental_column: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub where_filters: Option<serde_json::Value>,
    pub partition_by: Option<String>,
    pub partition_granularity: Option<PartitionGranularity>,
    pub initial_load_chunk_days: Option<i64>,
    pub bq_fqn: Option<String>,
    /// Connector-specific options (ours, not the original's): for `files`, the reader
    /// settings such as `null_markers`, `delimiter`, `header`, `format`.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub source_options: Option<serde_json::Value>,
    /// The configured connection the row reads (`data_source.<type>.<name>`); optional
    /// while its source type has only one.
    #[serde(default)]
    pub connection: Option<String>,
}

impl TableSpec {
    /// A spec with the contract's defaults, for tests and programmatic registration,
    /// registered at `registered_at` (core reads no clock: the caller says when).
    pub fn new(name: &str, source_type: SourceType, query_mode: QueryMode, registered_at: DateTime<Utc>) -> Self {
        TableSpec {
            id: crate::registry_id_for_name(name),
            name: name.trim().to_string(),
            source_type: Some(source_type),
            bucket: None,
            source_table: None,
            source_query: None,
            sync_strategy: SyncStrategy::FullRefresh,
            query_mode,
            sync_schedule: None,
            profile_after_sync: true,
            primary_key: Vec::new(),
            folder: None,
            description: None,
            registered_by: None,
            registered_at,
            incremental_window_days: None,
            max_history_days: None,
            incremental_column: None,
            where_filters: None,
            partition_by: None,
            partition_granularity: None,
            initial_load_chunk_days: None,
            bq_fqn: None,
            source_options: None,
            connection: None,
        }
    }

    /// The schedule that decides when the table is due: its own, else the default for
    /// materialized rows; `None` means "every tick".
    pub fn effective_schedule<'a>(&'a self, default_materialized: &'a str) -> Option<&'a str> {
        match (&self.sync_schedule, self.query_mode) {
            (Some(s), _) if !s.trim().is_empty() => Some(s.as_str()),
            (_, QueryMode::Materialized) => Some(default_materialized),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_and_reject() {
        for m in QueryMode::ALL {
            assert_eq!(m.as_str().parse::<QueryMode>().unwrap(), *m);
        }
        assert_eq!("csv".parse::<SourceType>().unwrap(), SourceType::Files);
        let err = "parquetish".parse::<SourceType>().unwrap_err();
        assert!(err.to_string().contains("files"), "{err}");
        assert!("LOCAL".parse::<QueryMode>().is_err());
        let json = serde_json::to_string(&SyncStrategy::FullRefresh).unwrap();
        assert_eq!(json, "\"full_refresh\"");
        assert!(serde_json::from_str::<SyncStrategy>("\"sometimes\"").is_err());
    }

    #[test]
    fn effective_schedule_defaults() {
        let mut t = TableSpec::new("Orders", SourceType::Files, QueryMode::Local, DateTime::UNIX_EPOCH);
        assert_eq!(t.id, "orders");
        assert_eq!(t.effective_schedule("every 1h"), None);
        t.query_mode = QueryMode::Materialized;
        assert_eq!(t.effective_schedule("every 1h"), Some("every 1h"));
        t.sync_schedule = Some("daily 03:00".into());
        assert_eq!(t.effective_schedule("every 1h"), Some("daily 03:00"));
    }
}

impl TableSpec {
    /// Whether the row names export filters (`null` and `[]` name none).
    pub fn has_where_filters(&self) -> bool {
        self.where_filters.as_ref().is_some_and(|f| !f.is_null() && f.as_array().is_none_or(|a| !a.is_empty()))
    }

    /// The registry's rules (spec §3.8) that hold whatever the source: one message per
    /// broken rule, so a request can be fixed in one round trip.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        if self.name.trim().is_empty() {
            errors.push("name must not be blank".to_string());
        } else if !crate::is_strict_identifier(&self.name) {
            errors.push(format!(
                "name {:?} must be a valid identifier (letters, digits, _; it is the view and file name)",
                self.name
            ));
        }
        if let Some(s) = self.sync_schedule.as_deref().filter(|s| !s.trim().is_empty()) {
            if let Err(e) = s.parse::<crate::Schedule>() {
                errors.push(e.to_string());
            }
        }
        let has_query = self.source_query.as_deref().is_some_and(|q| !q.trim().is_empty());
        let has_filters = self.has_where_filters();
        if has_query && self.query_mode != QueryMode::Materialized {
            errors.push("source_query is only allowed with query_mode 'materialized'".into());
        }
        if self.query_mode == QueryMode::Materialized
            && !has_query
            && !matches!(self.source_type, Some(SourceType::Bigquery | SourceType::Keboola))
        {
            errors.push("a materialized table needs a source_query".into());
        }
        if self.query_mode == QueryMode::Internal {
            errors.push("query_mode 'internal' is reserved for system tables".into());
        }
        if self.sync_strategy == SyncStrategy::Partitioned {
            if self.partition_by.as_deref().is_none_or(|p| p.trim().is_empty()) {
                errors.push("a partitioned table needs partition_by (a date or timestamp column)".into());
            }
            if self.query_mode == QueryMode::Remote {
                errors.push("a remote table cannot be partitioned".into());
            }
            if has_filters {
                errors.push("where_filters cannot be combined with sync_strategy 'partitioned'".into());
            }
        }
        if has_filters && self.sync_strategy == SyncStrategy::Incremental {
            errors.push("where_filters cannot be combined with sync_strategy 'incremental'".into());
        }
        if has_filters && self.query_mode == QueryMode::Remote {
            errors.push("where_filters cannot be combined with query_mode 'remote'".into());
        }
        if self.source_type == Some(SourceType::Files) && self.query_mode == QueryMode::Local {
            match self.source_table.as_deref().map(str::trim) {
                None | Some("") => {
                    errors.push("source_table is required: the file path or glob, relative to the files root".into())
                }
                Some(p) if p.starts_with('/') || p.split('/').any(|seg| seg == "..") => {
                    errors.push(format!("source_table {p:?} must be relative to the files root, without '..'"))
                }
                Some(_) => {}
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod validation_tests {
    use super::*;

    fn files(name: &str) -> TableSpec {
        let mut t = TableSpec::new(name, SourceType::Files, QueryMode::Local, DateTime::UNIX_EPOCH);
        t.source_table = Some("x.csv".into());
        t
    }

    #[test]
    fn rules() {
        assert!(files("orders").validate().is_ok());
        let mut t = files("bad name");
        t.sync_schedule = Some("hourly".into());
        t.source_query = Some("SELECT 1".into());
        let errors = t.validate().unwrap_err();
        assert_eq!(errors.len(), 3, "{errors:?}");

        let mut t = files("p");
        t.sync_strategy = SyncStrategy::Partitioned;
        assert!(t.validate().unwrap_err()[0].contains("partition_by"));
        t.partition_by = Some("day".into());
        t.where_filters = Some(serde_json::json!([{"column": "a", "operator": "eq", "values": [1]}]));
        assert!(t.validate().unwrap_err()[0].contains("where_filters"));

        let mut t = files("m");
        t.query_mode = QueryMode::Materialized;
        assert!(t.validate().unwrap_err()[0].contains("source_query"));
        t.source_query = Some("SELECT 1".into());
        assert!(t.validate().is_ok());

        let mut t = files("e");
        t.source_table = Some("../etc/passwd".into());
        assert!(t.validate().unwrap_err()[0].contains(".."));
    }
}
