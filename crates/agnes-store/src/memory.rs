//! Corporate-memory knowledge items (migration 0008).

use crate::error::{Result, StoreError};
use agnes_core::api::{KnowledgeItem, KnowledgeStatus};
use sqlx::SqlitePool;

pub struct MemoryRepo<'a> {
    pool: &'a SqlitePool,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    title: String,
    content: String,
    domain: String,
    category: Option<String>,
    status: String,
    created_by: Option<String>,
    created_at: String,
    updated_by: Option<String>,
    updated_at: String,
}

impl TryFrom<Row> for KnowledgeItem {
    type Error = StoreError;
    fn try_from(r: Row) -> Result<KnowledgeItem> {
        let status = KnowledgeStatus::parse(&r.status)
            .ok_or_else(|| StoreError::Corrupt { column: "knowledge_items.status", message: r.status.clone() })?;
        Ok(KnowledgeItem {
            id: r.id,
            title: r.title,
            content: r.content,
            domain: r.domain,
            category: r.category,
            status,
            created_by: r.created_by,
            created_at: r.created_at,
            updated_by: r.updated_by,
            updated_at: r.updated_at,
        })
    }
}

const SELECT: &str = "SELECT id, title, content, domain, category, status, created_by, created_at, updated_by, \
     updated_at FROM knowledge_items";

impl<'a> MemoryRepo<'a> {
    pub(crate) fn new(pool: &'a SqlitePool) -> Self {
        MemoryRepo { pool }
    }

    /// Every item, by domain and id.
    pub async fn list(&self) -> Result<Vec<KnowledgeItem>> {
        let rows: Vec<Row> = sqlx::query_as(&format!("{SELECT} ORDER BY domain, id")).fetch_all(self.pool).await?;
        rows.into_iter().map(KnowledgeItem::try_from).collect()
    }

    /// Mandatory and approved items, by domain and id (drafts stay on the server).
    pub async fn published(&self) -> Result<Vec<KnowledgeItem>> {
        let rows: Vec<Row> =
            sqlx::query_as(&format!("{SELECT} WHERE status IN ('mandatory', 'approved') ORDER BY domain, id"))
                .fetch_all(self.pool)
                .await?;
        rows.into_iter().map(KnowledgeItem::try_from).collect()
    }

    pub async fn get(&self, id: &str) -> Result<Option<KnowledgeItem>> {
        let row: Option<Row> =
            sqlx::query_as(&format!("{SELECT} WHERE id = ?")).bind(id).fetch_optional(self.pool).await?;
        row.map(KnowledgeItem::try_from).transpose()
    }

    /// Store a new item; an existing id is a conflict.
    pub async fn insert(&self, item: &KnowledgeItem) -> Result<()> {
        let r = sqlx::query(
            "INSERT INTO knowledge_items (id, title, content, domain, category, status, created_by, created_at, \
               updated_by, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&item.id)
        .bind(&item.title)
        .bind(&item.content)
        .bind(&item.domain)
        .bind(&item.category)
        .bind(item.status.as_str())
        .bind(&item.created_by)
        .bind(&item.created_at)
        .bind(&item.updated_by)
        .bind(&item.updated_at)
        .execute(self.pool)
        .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!("knowledge item '{}' already exists", item.id)));
        }
        Ok(())
    }

    /// Replace an item's fields (its id and creation stay); whether it existed.
    pub async fn update(&self, item: &KnowledgeItem) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE knowledge_items SET title = ?, content = ?, domain = ?, category = ?, status = ?, \
               updated_by = ?, updated_at = ? WHERE id = ?",
        )
        .bind(&item.title)
        .bind(&item.content)
        .bind(&item.domain)
        .bind(&item.category)
        .bind(item.status.as_str())
        .bind(&item.updated_by)
        .bind(&item.updated_at)
        .bind(&item.id)
        .execute(self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    pub async fn delete(&self, id: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM knowledge_items WHERE id = ?").bind(id).execute(self.pool).await?;
        Ok(r.rows_affected() > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    fn item(id: &str, domain: &str, status: KnowledgeStatus) -> KnowledgeItem {
        KnowledgeItem {
            id: id.into(),
            title: format!("About {id}"),
            content: "Revenue is net of refunds.".into(),
            domain: domain.into(),
            category: None,
            status,
            created_by: Some("admin@example.com".into()),
            created_at: "2026-01-01T00:00:00Z".into(),
            updated_by: None,
            updated_at: "2026-01-01T00:00:00Z".into(),
        }
    }

    #[tokio::test]
    async fn items_round_trip_and_drafts_stay_unpublished() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("system.db")).await.unwrap();
        let memory = store.memory();
        memory.insert(&item("refunds", "finance", KnowledgeStatus::Mandatory)).await.unwrap();
        memory.insert(&item("churn", "product", KnowledgeStatus::Approved)).await.unwrap();
        memory.insert(&item("wip", "finance", KnowledgeStatus::Draft)).await.unwrap();
        let dup = memory.insert(&item("wip", "finance", KnowledgeStatus::Draft)).await.unwrap_err();
        assert!(matches!(dup, StoreError::Conflict(_)), "{dup}");
        let published: Vec<String> = memory.published().await.unwrap().into_iter().map(|i| i.id).collect();
        assert_eq!(published, ["refunds", "churn"]);
        let mut changed = memory.get("wip").await.unwrap().unwrap();
        changed.status = KnowledgeStatus::Approved;
        assert!(memory.update(&changed).await.unwrap());
        assert_eq!(memory.published().await.unwrap().len(), 3);
        assert!(memory.delete("wip").await.unwrap());
        assert!(!memory.delete("wip").await.unwrap());
        assert_eq!(memory.list().await.unwrap().len(), 2);
    }
}
