//! Admin overrides of the built-in texts agnes gives agents (see migration 0012).

use crate::error::Result;
use sqlx::SqlitePool;

/// An override: its text, when and by whom it was set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub body: String,
    pub updated_at: String,
    pub updated_by: Option<String>,
}

pub struct PromptTemplatesRepo<'a> {
    pool: &'a SqlitePool,
}

impl<'a> PromptTemplatesRepo<'a> {
    pub(crate) fn new(pool: &'a SqlitePool) -> Self {
        PromptTemplatesRepo { pool }
    }

    pub async fn get(&self, name: &str) -> Result<Option<Template>> {
        let row: Option<(String, String, Option<String>)> =
            sqlx::query_as("SELECT body, updated_at, updated_by FROM prompt_templates WHERE name = ?")
                .bind(name)
                .fetch_optional(self.pool)
                .await?;
        Ok(row.map(|(body, updated_at, updated_by)| Template { body, updated_at, updated_by }))
    }

    pub async fn set(&self, name: &str, body: &str, by: Option<&str>) -> Result<()> {
        sqlx::query(
            "INSERT INTO prompt_templates (name, body, updated_at, updated_by) VALUES (?, ?, ?, ?) \
             ON CONFLICT (name) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at, \
             updated_by = excluded.updated_by",
        )
        .bind(name)
        .bind(body)
        .bind(crate::now_text())
        .bind(by)
        .execute(self.pool)
        .await?;
        Ok(())
    }

    /// Back to the built-in text.
    pub async fn clear(&self, name: &str) -> Result<()> {
        sqlx::query("DELETE FROM prompt_templates WHERE name = ?").bind(name).execute(self.pool).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn an_override_is_set_replaced_and_cleared() {
        let store = crate::Store::open_in_memory().await.unwrap();
        let repo = store.prompt_templates();
        assert_eq!(repo.get("workspace").await.unwrap(), None);
        repo.set("workspace", "one", Some("a@x")).await.unwrap();
        repo.set("workspace", "two", None).await.unwrap();
        assert_eq!(repo.get("workspace").await.unwrap().unwrap().body, "two");
        assert!(repo.set("other", "x", None).await.is_err(), "only the known templates");
        repo.clear("workspace").await.unwrap();
        assert_eq!(repo.get("workspace").await.unwrap(), None);
    }
}
