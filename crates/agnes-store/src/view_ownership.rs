//! Which source owns each master view name: the first source to expose a name keeps it.

use crate::error::Result;
use sqlx::SqlitePool;
use std::collections::{BTreeMap, BTreeSet};

pub struct ViewOwnershipRepo<'a> {
    pool: &'a SqlitePool,
}

impl<'a> ViewOwnershipRepo<'a> {
    pub(crate) fn new(pool: &'a SqlitePool) -> Self {
        ViewOwnershipRepo { pool }
    }

    /// view name → owning source.
    pub async fn load(&self) -> Result<BTreeMap<String, String>> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT view_name, source_name FROM view_ownership").fetch_all(self.pool).await?;
        Ok(rows.into_iter().collect())
    }

    /// Record new claims and drop the ownership of views no longer present anywhere, in
    /// one transaction. `present` is `None` when some source could not be scanned: then
    /// nothing is dropped, since an unreadable source must not lose its names.
    pub async fn apply(
        &self,
        new_claims: &BTreeMap<String, String>,
        present: Option<&BTreeSet<(String, String)>>,
    ) -> Result<()> {
        let mut tx = crate::write_tx(self.pool).await?;
        let now = crate::now_text();
        for (view, source) in new_claims {
            sqlx::query(
                "INSERT OR IGNORE INTO view_ownership (view_name, source_name, registered_at) VALUES (?, ?, ?)",
            )
            .bind(view)
            .bind(source)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(present) = present {
            let owned: Vec<(String, String)> =
                sqlx::query_as("SELECT view_name, source_name FROM view_ownership").fetch_all(&mut *tx).await?;
            for (view, source) in owned {
                if !present.contains(&(source.clone(), view.clone())) {
                    sqlx::query("DELETE FROM view_ownership WHERE view_name = ?").bind(&view).execute(&mut *tx).await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }
}
