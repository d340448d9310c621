//! Users.

use super::{IdentityRepo, User, USER_COLUMNS};
use crate::error::{Result, StoreError};

impl IdentityRepo<'_> {
    pub async fn list_users(&self) -> Result<Vec<User>> {
        Ok(sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY email")).fetch_all(self.pool).await?)
    }

    /// Change name and/or email; `None` keeps the value.
    pub async fn update_user(&self, id: &str, name: Option<Option<&str>>, email: Option<&str>) -> Result<User> {
        if let Some(email) = email {
            if let Some(other) = self.user_by_email(email).await? {
                if other.id != id {
                    return Err(StoreError::Conflict(format!("user '{email}' already exists")));
                }
            }
        }
        let now = crate::now_text();
        let mut tx = crate::write_tx(self.pool).await?;
        if let Some(name) = name {
            sqlx::query("UPDATE users SET name = ?, updated_at = ? WHERE id = ?")
                .bind(name)
                .bind(&now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(email) = email {
            sqlx::query("UPDATE users SET email = ?, updated_at = ? WHERE id = ?")
                .bind(email)
                .bind(&now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.user(id).await?.ok_or_else(|| StoreError::NotFound(format!("user {id}")))
    }

    pub async fn delete_user(&self, id: &str) -> Result<bool> {
        Ok(sqlx::query("DELETE FROM users WHERE id = ?").bind(id).execute(self.pool).await?.rows_affected() > 0)
    }

    /// Activate or deactivate; returns whether the user exists.
    pub async fn set_active(&self, id: &str, active: bool, by: Option<&str>) -> Result<bool> {
        let now = crate::now_text();
        let r = if active {
            sqlx::query("UPDATE users SET active = 1, deactivated_at = NULL, deactivated_by = NULL, updated_at = ? WHERE id = ?")
                .bind(&now)
                .bind(id)
                .execute(self.pool)
                .await?
        } else {
            sqlx::query(
                "UPDATE users SET active = 0, deactivated_at = ?, deactivated_by = ?, updated_at = ? WHERE id = ?",
            )
            .bind(&now)
            .bind(by)
            .bind(&now)
            .bind(id)
            .execute(self.pool)
            .await?
        };
        Ok(r.rows_affected() > 0)
    }

    /// Replace the password hash (`None` removes password sign-in) and clear any reset token.
    pub async fn set_password_hash(&self, id: &str, hash: Option<&str>) -> Result<bool> {
        let r = sqlx::query("UPDATE users SET password_hash = ?, reset_token = NULL, reset_token_created = NULL, updated_at = ? WHERE id = ?")
            .bind(hash)
            .bind(crate::now_text())
            .bind(id)
            .execute(self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Store a one-time reset token (its hash is the caller's business).
    pub async fn set_reset_token(&self, id: &str, token: &str) -> Result<bool> {
        let r = sqlx::query("UPDATE users SET reset_token = ?, reset_token_created = ?, updated_at = ? WHERE id = ?")
            .bind(token)
            .bind(crate::now_text())
            .bind(crate::now_text())
            .bind(id)
            .execute(self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }
}

impl IdentityRepo<'_> {
    /// Whether the instance has ever had an admin (kept by a trigger on memberships, and
    /// never cleared): first-admin bootstrap is open only while it has not.
    pub async fn admin_ever(&self) -> Result<bool> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT key FROM instance_facts WHERE key = 'admin_ever'").fetch_optional(self.pool).await?;
        Ok(row.is_some())
    }

    /// End every session the user holds (logout): sessions carry the generation they were
    /// issued at. Password changes and deactivation do the same by trigger.
    pub async fn end_sessions(&self, id: &str) -> Result<()> {
        sqlx::query("UPDATE users SET session_generation = session_generation + 1 WHERE id = ?")
            .bind(id)
            .execute(self.pool)
            .await?;
        Ok(())
    }

    /// Use up a reset token (stored as its hash) issued less than `max_age` ago. A
    /// compare-and-swap, so a token works once even under concurrent requests.
    pub async fn consume_reset_token(&self, id: &str, token_hash: &str, max_age: chrono::Duration) -> Result<bool> {
        let cutoff = crate::ts_text(chrono::Utc::now() - max_age);
        let r = sqlx::query(
            "UPDATE users SET reset_token = NULL, reset_token_created = NULL WHERE id = ? AND reset_token = ? AND reset_token_created > ?",
        )
        .bind(id)
        .bind(token_hash)
        .bind(cutoff)
        .execute(self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }
}

impl IdentityRepo<'_> {
    /// Stamp `last_pull_at` (every manifest fetch).
    pub async fn touch_last_pull(&self, id: &str) -> Result<()> {
        sqlx::query("UPDATE users SET last_pull_at = ? WHERE id = ?")
            .bind(crate::now_text())
            .bind(id)
            .execute(self.pool)
            .await?;
        Ok(())
    }
}
