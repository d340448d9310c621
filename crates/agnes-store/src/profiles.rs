//! Stored table profiles, keyed by registry id.

use crate::error::Result;
use sqlx::SqlitePool;

pub struct ProfileRepo<'a> {
    pool: &'a SqlitePool,
}

impl<'a> ProfileRepo<'a> {
    pub(crate) fn new(pool: &'a SqlitePool) -> Self {
        ProfileRepo { pool }
    }

    /// Keep `profile` as the one of `table_id`, describing content `source_hash`.
    pub async fn put(&self, table_id: &str, profile: &serde_json::Value, source_hash: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO table_profiles (table_id, profile, profiled_at, source_hash) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (table_id) DO UPDATE SET profile = ?2, profiled_at = ?3, source_hash = ?4",
        )
        .bind(table_id)
        .bind(profile.to_string())
        .bind(crate::now_text())
        .bind(source_hash)
        .execute(self.pool)
        .await?;
        Ok(())
    }

    /// The profile with `profiled_at` added, if there is one.
    pub async fn get(&self, table_id: &str) -> Result<Option<serde_json::Value>> {
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT profile, profiled_at FROM table_profiles WHERE table_id = ?")
                .bind(table_id)
                .fetch_optional(self.pool)
                .await?;
        Ok(row.and_then(|(text, at)| {
            let mut v: serde_json::Value = serde_json::from_str(&text).ok()?;
            v["profiled_at"] = serde_json::Value::String(at);
            Some(v)
        }))
    }
}
