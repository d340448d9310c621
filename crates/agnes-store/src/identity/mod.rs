//! Users, groups, memberships, grants and personal access tokens.

mod groups;
mod tokens;
mod users;

use crate::error::{Result, StoreError};
use sqlx::SqlitePool;

pub use groups::{Grant, GroupSummary, Member, Membership};
pub use tokens::TokenInfo;

/// The god-mode group: every access check passes for its members.
pub const ADMIN_GROUP: &str = "Admin";
/// Every active user is a member, without rows to maintain.
pub const EVERYONE_GROUP: &str = "Everyone";

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct User {
    pub id: String,
    pub email: String,
    pub name: Option<String>,
    #[serde(skip)]
    pub password_hash: Option<String>,
    pub active: bool,
    pub created_at: String,
    /// Sessions issued at another generation are over (logout, password change, deactivation).
    #[serde(skip)]
    pub session_generation: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct Group {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub is_system: bool,
    pub created_at: String,
    pub created_by: Option<String>,
    /// The identity provider that feeds it; `None` for a group made here.
    pub synced_from: Option<String>,
}

/// A personal access token's stored form (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PatRecord {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub token_hash: String,
    pub prefix: String,
    pub created_at: String,
    pub expires_at: Option<String>,
}

pub struct IdentityRepo<'a> {
    pool: &'a SqlitePool,
}

pub(crate) const USER_COLUMNS: &str = "id, email, name, password_hash, active, created_at, session_generation";
pub(crate) const GROUP_COLUMNS: &str = "id, name, description, is_system, created_at, created_by, synced_from";

impl<'a> IdentityRepo<'a> {
    pub(crate) fn new(pool: &'a SqlitePool) -> Self {
        IdentityRepo { pool }
    }

    /// (Re)seed `Admin` and `Everyone`; idempotent.
    pub async fn seed_system_groups(&self) -> Result<()> {
        for (name, description) in
            [(ADMIN_GROUP, "Full access to every resource and admin endpoint"), (EVERYONE_GROUP, "Every active user")]
        {
            sqlx::query(
                "INSERT INTO user_groups (id, name, description, is_system, created_at, created_by) \
                 VALUES (?, ?, ?, 1, ?, 'system:seed') ON CONFLICT (name) DO UPDATE SET is_system = 1",
            )
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(name)
            .bind(description)
            .bind(crate::now_text())
            .execute(self.pool)
            .await?;
        }
        Ok(())
    }

    pub async fn create_user(&self, email: &str, name: Option<&str>, password_hash: Option<&str>) -> Result<User> {
        if self.user_by_email(email).await?.is_some() {
            return Err(StoreError::Conflict(format!("user '{email}' already exists")));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let now = crate::now_text();
        sqlx::query(
            "INSERT INTO users (id, email, name, password_hash, active, created_at, updated_at) VALUES (?, ?, ?, ?, 1, ?, ?)",
        )
        .bind(&id)
        .bind(email)
        .bind(name)
        .bind(password_hash)
        .bind(&now)
        .bind(&now)
        .execute(self.pool)
        .await?;
        self.user(&id).await?.ok_or_else(|| StoreError::NotFound(format!("user {id}")))
    }

    pub async fn user(&self, id: &str) -> Result<Option<User>> {
        Ok(sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?"))
            .bind(id)
            .fetch_optional(self.pool)
            .await?)
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        Ok(sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE email = ?"))
            .bind(email)
            .fetch_optional(self.pool)
            .await?)
    }

    pub async fn group_by_name(&self, name: &str) -> Result<Option<Group>> {
        Ok(sqlx::query_as(&format!("SELECT {GROUP_COLUMNS} FROM user_groups WHERE name = ?"))
            .bind(name)
            .fetch_optional(self.pool)
            .await?)
    }

    pub async fn create_group(&self, name: &str, description: Option<&str>, created_by: &str) -> Result<Group> {
        if self.group_by_name(name).await?.is_some() {
            return Err(StoreError::Conflict(format!("group '{name}' already exists")));
        }
        sqlx::query(
            "INSERT INTO user_groups (id, name, description, is_system, created_at, created_by) VALUES (?, ?, ?, 0, ?, ?)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(name)
        .bind(description)
        .bind(crate::now_text())
        .bind(created_by)
        .execute(self.pool)
        .await?;
        self.group_by_name(name).await?.ok_or_else(|| StoreError::NotFound(format!("group {name}")))
    }

    /// The group an identity provider's group maps to: found by name, or created and
    /// marked as fed by `provider`.
    pub async fn synced_group(&self, name: &str, provider: &str) -> Result<Group> {
        sqlx::query(
            "INSERT OR IGNORE INTO user_groups (id, name, description, is_system, created_at, created_by, synced_from) \
             VALUES (?, ?, ?, 0, ?, ?, ?)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(name)
        .bind(format!("Synced from {provider}"))
        .bind(crate::now_text())
        .bind(format!("{provider} sign-in"))
        .bind(provider)
        .execute(self.pool)
        .await?;
        self.group_by_name(name).await?.ok_or_else(|| StoreError::NotFound(format!("group {name}")))
    }

    /// A user's memberships from one sync source become exactly `group_ids`: rows of that
    /// source not listed go, listed ones are added. Rows of any other source (an admin's)
    /// are never touched, and a group the user is already in keeps its row as it is.
    pub async fn replace_synced_memberships(&self, user_id: &str, source: &str, group_ids: &[String]) -> Result<()> {
        let mut tx = crate::write_tx(self.pool).await?;
        let held: Vec<(String,)> =
            sqlx::query_as("SELECT group_id FROM user_group_members WHERE user_id = ? AND source = ?")
                .bind(user_id)
                .bind(source)
                .fetch_all(&mut *tx)
                .await?;
        for (gone,) in held.iter().filter(|(g,)| !group_ids.contains(g)) {
            sqlx::query("DELETE FROM user_group_members WHERE user_id = ? AND group_id = ? AND source = ?")
                .bind(user_id)
                .bind(gone)
                .bind(source)
                .execute(&mut *tx)
                .await?;
        }
        for group_id in group_ids {
            sqlx::query(
                "INSERT OR IGNORE INTO user_group_members (user_id, group_id, source, added_at, added_by) \
                 VALUES (?, ?, ?, ?, NULL)",
            )
            .bind(user_id)
            .bind(group_id)
            .bind(source)
            .bind(crate::now_text())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Add a member; an existing pair is a silent no-op.
    pub async fn add_member(&self, user_id: &str, group_id: &str, source: &str, added_by: Option<&str>) -> Result<()> {
        sqlx::query(
            "INSERT OR IGNORE INTO user_group_members (user_id, group_id, source, added_at, added_by) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(user_id)
        .bind(group_id)
        .bind(source)
        .bind(crate::now_text())
        .bind(added_by)
        .execute(self.pool)
        .await?;
        Ok(())
    }

    /// Grant `(resource_type, resource_id)` to a group; an existing grant is a no-op.
    pub async fn grant(
        &self,
        group_id: &str,
        resource_type: &str,
        resource_id: &str,
        assigned_by: Option<&str>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT OR IGNORE INTO resource_grants (id, group_id, resource_type, resource_id, assigned_at, assigned_by) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(group_id)
        .bind(resource_type)
        .bind(resource_id)
        .bind(crate::now_text())
        .bind(assigned_by)
        .execute(self.pool)
        .await?;
        Ok(())
    }

    pub async fn insert_pat(&self, pat: &PatRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO personal_access_tokens (id, user_id, name, token_hash, prefix, created_at, expires_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&pat.id)
        .bind(&pat.user_id)
        .bind(&pat.name)
        .bind(&pat.token_hash)
        .bind(&pat.prefix)
        .bind(&pat.created_at)
        .bind(&pat.expires_at)
        .execute(self.pool)
        .await?;
        Ok(())
    }
}
