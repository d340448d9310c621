//! Stored table profiles, keyed by registry id.

use crate::error::{Result, StoreError};
use agnes_core::api::TableProfile;
use sqlx::SqlitePool;

pub struct ProfileRepo<'a> {
    pool: &'a SqlitePool,
}

impl<'a> ProfileRepo<'a> {
    pub(crate) fn new(pool: &'a SqlitePool) -> Self {
        ProfileRepo { pool }
    }

    /// Keep `profile` as the one of `table_id`, describing content `source_hash`.
    pub async fn put(&self, table_id: &str, profile: &TableProfile, source_hash: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO table_profiles (table_id, profile, profiled_at, source_hash) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (table_id) DO UPDATE SET profile = ?2, profiled_at = ?3, source_hash = ?4",
        )
        .bind(table_id)
        .bind(
            serde_json::to_string(profile)
                .map_err(|e| StoreError::Corrupt { column: "profile", message: e.to_string() })?,
        )
        .bind(crate::now_text())
        .bind(source_hash)
        .execute(self.pool)
        .await?;
        Ok(())
    }

    /// The profile with `profiled_at` set, if there is one. A profile stored in a shape
    /// this build cannot read counts as none: it is profiled again after the next sync.
    pub async fn get(&self, table_id: &str) -> Result<Option<TableProfile>> {
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT profile, profiled_at FROM table_profiles WHERE table_id = ?")
                .bind(table_id)
                .fetch_optional(self.pool)
                .await?;
        Ok(row.and_then(|(text, at)| {
            let mut profile: TableProfile = serde_json::from_str(&text).ok()?;
            profile.profiled_at = Some(at);
            Some(profile)
        }))
    }
}
