//! Business metric definitions (spec §6), keyed by `<category>/<name>`.

use crate::error::{Result, StoreError};
use agnes_core::metric::{MetricDefinition, MetricRecord};
use serde_json::Value;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};

pub struct MetricRepo<'a> {
    pool: &'a SqlitePool,
}

const COLUMNS: &str = "id, name, display_name, category, description, type, unit, grain, table_name, tables, \
     expression, time_column, dimensions, filters, synonyms, notes, sql, sql_variants, validation, source, \
     created_at, updated_at";

impl<'a> MetricRepo<'a> {
    pub(crate) fn new(pool: &'a SqlitePool) -> Self {
        MetricRepo { pool }
    }

    /// Insert or replace every definition in one transaction: all are written or none.
    /// A replaced metric keeps its `created_at`; `updated_at` is now.
    pub async fn upsert_many(&self, defs: &[MetricDefinition]) -> Result<()> {
        let now = crate::now_text();
        let mut tx = crate::write_tx(self.pool).await?;
        for d in defs {
            sqlx::query(
                "INSERT INTO metric_definitions (id, name, display_name, category, description, type, unit, grain, \
                   table_name, tables, expression, time_column, dimensions, filters, synonyms, notes, sql, \
                   sql_variants, validation, source, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?21) \
                 ON CONFLICT (id) DO UPDATE SET name = ?2, display_name = ?3, category = ?4, description = ?5, \
                   type = ?6, unit = ?7, grain = ?8, table_name = ?9, tables = ?10, expression = ?11, \
                   time_column = ?12, dimensions = ?13, filters = ?14, synonyms = ?15, notes = ?16, sql = ?17, \
                   sql_variants = ?18, validation = ?19, source = ?20, updated_at = ?21",
            )
            .bind(&d.id)
            .bind(&d.name)
            .bind(&d.display_name)
            .bind(&d.category)
            .bind(&d.description)
            .bind(&d.kind)
            .bind(&d.unit)
            .bind(&d.grain)
            .bind(&d.table_name)
            .bind(json(&d.tables))
            .bind(&d.expression)
            .bind(&d.time_column)
            .bind(json(&d.dimensions))
            .bind(json(&d.filters))
            .bind(json(&d.synonyms))
            .bind(json(&d.notes))
            .bind(&d.sql)
            .bind((!d.sql_variants.is_empty()).then(|| json(&d.sql_variants)))
            .bind(d.validation.as_ref().map(json))
            .bind(&d.source)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every metric, or those of one category, by category then name.
    pub async fn list(&self, category: Option<&str>) -> Result<Vec<MetricRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM metric_definitions WHERE ?1 IS NULL OR category = ?1 ORDER BY category, name"
        ))
        .bind(category)
        .fetch_all(self.pool)
        .await?;
        rows.iter().map(record).collect()
    }

    pub async fn get(&self, id: &str) -> Result<Option<MetricRecord>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM metric_definitions WHERE id = ?"))
            .bind(id)
            .fetch_optional(self.pool)
            .await?;
        row.as_ref().map(record).transpose()
    }

    /// The metrics computed from a table known by registry `id` and SQL `name` (as their
    /// `table_name`, or one of their `tables`).
    pub async fn using_table(&self, id: &str, name: &str) -> Result<Vec<MetricRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM metric_definitions m WHERE table_name IN (?1, ?2) \
               OR EXISTS (SELECT 1 FROM json_each(m.tables) WHERE json_each.value IN (?1, ?2)) ORDER BY category, name"
        ))
        .bind(id)
        .bind(name)
        .fetch_all(self.pool)
        .await?;
        rows.iter().map(record).collect()
    }

    /// Delete one metric; `NotFound` when there is none.
    pub async fn delete(&self, id: &str) -> Result<()> {
        let done = sqlx::query("DELETE FROM metric_definitions WHERE id = ?").bind(id).execute(self.pool).await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("Metric '{id}'")));
        }
        Ok(())
    }
}

/// A list or mapping column's text. Serialising plain JSON values cannot fail.
fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

fn record(row: &SqliteRow) -> Result<MetricRecord> {
    fn parsed<T: serde::de::DeserializeOwned + Default>(row: &SqliteRow, column: &'static str) -> Result<T> {
        match row.try_get::<Option<String>, _>(column)? {
            None => Ok(T::default()),
            Some(text) => {
                serde_json::from_str(&text).map_err(|e| StoreError::Corrupt { column, message: e.to_string() })
            }
        }
    }
    let validation: Option<Value> = parsed(row, "validation")?;
    Ok(MetricRecord {
        definition: MetricDefinition {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            display_name: row.try_get("display_name")?,
            category: row.try_get("category")?,
            description: row.try_get("description")?,
            kind: row.try_get("type")?,
            unit: row.try_get("unit")?,
            grain: row.try_get("grain")?,
            table_name: row.try_get("table_name")?,
            tables: parsed(row, "tables")?,
            expression: row.try_get("expression")?,
            time_column: row.try_get("time_column")?,
            dimensions: parsed(row, "dimensions")?,
            filters: parsed(row, "filters")?,
            synonyms: parsed(row, "synonyms")?,
            notes: parsed(row, "notes")?,
            sql: row.try_get("sql")?,
            sql_variants: parsed(row, "sql_variants")?,
            validation: match validation {
                Some(Value::Object(m)) => Some(m),
                _ => None,
            },
            source: row.try_get("source")?,
        },
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

#[cfg(test)]
mod tests {
    use crate::Store;
    use agnes_core::metric::{definitions_from_document, SOURCE_YAML};
    use serde_json::json;

    #[tokio::test]
    async fn upsert_keeps_created_at_and_lists_by_category() {
        let store = Store::open_in_memory().await.unwrap();
        let repo = store.metric_definitions();
        let defs = definitions_from_document(
            json!([
                {"name": "mrr", "category": "revenue", "table": "subs", "sql": "SELECT 1", "sql_by_plan": "SELECT 2",
                 "validation": {"min": 0}},
                {"name": "sessions", "category": "web", "tables": ["subs", "sessions"], "sql": "SELECT 3"},
            ]),
            None,
            SOURCE_YAML,
        )
        .unwrap();
        repo.upsert_many(&defs).await.unwrap();
        let first = repo.get("revenue/mrr").await.unwrap().unwrap();
        assert_eq!(first.definition, defs[0]);
        repo.upsert_many(&defs).await.unwrap();
        let again = repo.get("revenue/mrr").await.unwrap().unwrap();
        assert_eq!(again.created_at, first.created_at);
        assert!(again.updated_at >= first.updated_at);
        assert_eq!(repo.list(None).await.unwrap().len(), 2, "re-import adds nothing");
        assert_eq!(repo.list(Some("web")).await.unwrap()[0].definition, defs[1]);
        assert_eq!(repo.using_table("subs", "subs").await.unwrap().len(), 2);
        assert_eq!(repo.using_table("x", "sessions").await.unwrap().len(), 1);
        repo.delete("web/sessions").await.unwrap();
        assert!(repo.delete("web/sessions").await.is_err());
        assert!(repo.get("web/sessions").await.unwrap().is_none());
    }
}
