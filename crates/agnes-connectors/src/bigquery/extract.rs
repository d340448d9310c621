//! The `bigquery` connector on the connector contract: reaching BigQuery (`probe`), and
//! what its data project holds (`discover`). Remote tables, materialized tables and the
//! remote-query path are not built yet: registering a BigQuery row is refused, saying so.

use super::client::BqClient;
use super::config::BigQuerySource;
use crate::{Connector, ConnectorError, InvalidField, SyncContext, SyncedTable};
use agnes_core::{QueryMode, SourceType, TableSpec};

pub struct BigQueryConnector {
    source: BigQuerySource,
}

/// Where `bigquery` lives under `extracts/`.
pub const SOURCE_NAME: &str = "bigquery";

impl BigQueryConnector {
    pub fn new(source: BigQuerySource) -> BigQueryConnector {
        BigQueryConnector { source }
    }

    pub fn source(&self) -> &BigQuerySource {
        &self.source
    }
}

impl Connector for BigQueryConnector {
    fn source_name(&self) -> &str {
        SOURCE_NAME
    }

    fn source_type(&self) -> SourceType {
        SourceType::Bigquery
    }

    fn syncs(&self, mode: QueryMode) -> bool {
        matches!(mode, QueryMode::Remote | QueryMode::Materialized)
    }

    fn probe(&self) -> Result<agnes_core::api::SourceTest, ConnectorError> {
        let client = BqClient::connect(&self.source)?;
        let datasets = client.datasets()?;
        let mut tables = 0i64;
        for d in &datasets {
            tables += client.tables(d)?.len() as i64;
        }
        let mut warnings = Vec::new();
        // A dry run is free and runs nothing: it shows whether jobs may run where they are billed.
        if let Err(e) = client.dry_run("SELECT 1") {
            warnings.push(format!("queries cannot run in the billing project {}: {e}", client.billing()));
        }
        if tables == 0 {
            warnings.push(format!("{} holds no table these credentials can list", client.project()));
        }
        Ok(agnes_core::api::SourceTest {
            name: SOURCE_NAME.into(),
            source_type: SourceType::Bigquery,
            server_version: format!(
                "BigQuery project {} (jobs billed to {}{})",
                client.project(),
                client.billing(),
                self.source.config.location.as_deref().map(|l| format!(", location {l}")).unwrap_or_default()
            ),
            role: client.principal(),
            superuser: false,
            tables_visible: tables,
            expires: None,
            warnings,
        })
    }

    fn discover(&self) -> Result<Vec<agnes_core::api::DiscoveredTable>, ConnectorError> {
        let client = BqClient::connect(&self.source)?;
        let mut found = Vec::new();
        for dataset in client.datasets()? {
            for name in client.tables(&dataset)? {
                let t = client.table(&dataset, &name)?;
                found.push(agnes_core::api::DiscoveredTable {
                    path: t.fqn.clone(),
                    format: t.entity_type().unwrap_or(t.kind.as_str()).to_string(),
                    size_bytes: t.bytes,
                    bucket: Some(t.dataset.clone()),
                    source_table: Some(t.name.clone()),
                    columns: t
                        .columns
                        .iter()
                        .map(|(name, ty)| agnes_core::api::SourceColumn {
                            name: name.clone(),
                            column_type: ty.clone(),
                            nullable: true,
                        })
                        .collect(),
                    primary_key: Vec::new(),
                    estimated_rows: t.rows.map(|r| r as i64),
                    last_import: None,
                    last_change: None,
                });
            }
        }
        Ok(found)
    }

    fn check_options(&self, table: &TableSpec) -> Result<(), InvalidField> {
        match &table.source_options {
            None => Ok(()),
            Some(v) if v.as_object().is_some_and(|o| o.is_empty()) => Ok(()),
            Some(_) => Err(InvalidField {
                field: "source_options",
                message: "the bigquery connector takes no source_options".into(),
            }),
        }
    }

    fn unsupported(&self, _table: &TableSpec) -> Option<String> {
        Some(
            "BigQuery tables cannot be registered yet (remote and materialized tables come next); \
             `agnes admin source test bigquery` and discovery work"
                .into(),
        )
    }

    fn sync_table(&self, table: &TableSpec, _ctx: &SyncContext<'_>) -> Result<SyncedTable, ConnectorError> {
        Err(ConnectorError::Config(self.unsupported(table).unwrap_or_default()))
    }

    fn preview(
        &self,
        table: &TableSpec,
        _ctx: &SyncContext<'_>,
    ) -> Result<Vec<agnes_engine::inspect::Column>, ConnectorError> {
        Err(ConnectorError::Config(self.unsupported(table).unwrap_or_default()))
    }
}
