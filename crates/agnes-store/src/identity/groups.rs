//! Groups, memberships and grants.

use super::{Group, IdentityRepo, ADMIN_GROUP, EVERYONE_GROUP, GROUP_COLUMNS};
use crate::error::{Result, StoreError};

/// A group with its counts, as the admin API lists it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct GroupSummary {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub is_system: bool,
    pub created_at: String,
    pub created_by: Option<String>,
    pub synced_from: Option<String>,
    pub member_count: i64,
    pub grant_count: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct Member {
    pub user_id: String,
    pub email: String,
    pub name: Option<String>,
    pub active: bool,
    pub source: String,
    pub added_at: String,
    pub added_by: Option<String>,
}

/// A group a user belongs to, and how.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct Membership {
    pub group_id: String,
    pub group_name: String,
    pub is_system: bool,
    pub source: String,
    pub added_at: String,
    pub added_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct Grant {
    pub id: String,
    pub group_id: String,
    pub group_name: String,
    pub resource_type: String,
    pub resource_id: String,
    pub assigned_at: String,
    pub assigned_by: Option<String>,
}

into_wire!(
    Member { user_id, email, name, active, source, added_at, added_by },
    Membership { group_id, group_name, is_system, source, added_at, added_by },
    Grant { id, group_id, group_name, resource_type, resource_id, assigned_at, assigned_by }
);

const GRANT_SELECT: &str =
    "SELECT g.id, g.group_id, u.name AS group_name, g.resource_type, g.resource_id, g.assigned_at, g.assigned_by \
     FROM resource_grants g JOIN user_groups u ON u.id = g.group_id";

impl IdentityRepo<'_> {
    pub async fn list_groups(&self) -> Result<Vec<GroupSummary>> {
        Ok(sqlx::query_as(
            "SELECT g.id, g.name, g.description, g.is_system, g.created_at, g.created_by, g.synced_from, \
             (SELECT COUNT(*) FROM user_group_members m WHERE m.group_id = g.id) AS member_count, \
             (SELECT COUNT(*) FROM resource_grants r WHERE r.group_id = g.id) AS grant_count \
             FROM user_groups g ORDER BY g.is_system DESC, g.name",
        )
        .fetch_all(self.pool)
        .await?)
    }

    pub async fn group_summary(&self, id: &str) -> Result<Option<GroupSummary>> {
        Ok(self.list_groups().await?.into_iter().find(|g| g.id == id))
    }

    pub async fn group(&self, id: &str) -> Result<Option<Group>> {
        Ok(sqlx::query_as(&format!("SELECT {GROUP_COLUMNS} FROM user_groups WHERE id = ?"))
            .bind(id)
            .fetch_optional(self.pool)
            .await?)
    }

    /// A group by id, else by name.
    pub async fn resolve_group(&self, id_or_name: &str) -> Result<Option<Group>> {
        match self.group(id_or_name).await? {
            Some(g) => Ok(Some(g)),
            None => self.group_by_name(id_or_name).await,
        }
    }

    pub async fn update_group(&self, id: &str, name: Option<&str>, description: Option<Option<&str>>) -> Result<()> {
        if let Some(name) = name {
            if let Some(other) = self.group_by_name(name).await? {
                if other.id != id {
                    return Err(StoreError::Conflict(format!("group '{name}' already exists")));
                }
            }
            sqlx::query("UPDATE user_groups SET name = ? WHERE id = ?").bind(name).bind(id).execute(self.pool).await?;
        }
        if let Some(description) = description {
            sqlx::query("UPDATE user_groups SET description = ? WHERE id = ?")
                .bind(description)
                .bind(id)
                .execute(self.pool)
                .await?;
        }
        Ok(())
    }

    /// Delete a group with its members and grants, in one transaction.
    pub async fn delete_group(&self, id: &str) -> Result<bool> {
        let mut tx = crate::write_tx(self.pool).await?;
        sqlx::query("DELETE FROM user_group_members WHERE group_id = ?").bind(id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM resource_grants WHERE group_id = ?").bind(id).execute(&mut *tx).await?;
        let gone = sqlx::query("DELETE FROM user_groups WHERE id = ?").bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(gone.rows_affected() > 0)
    }

    pub async fn members(&self, group_id: &str) -> Result<Vec<Member>> {
        Ok(sqlx::query_as(
            "SELECT u.id AS user_id, u.email, u.name, u.active, m.source, m.added_at, m.added_by \
             FROM user_group_members m JOIN users u ON u.id = m.user_id WHERE m.group_id = ? ORDER BY u.email",
        )
        .bind(group_id)
        .fetch_all(self.pool)
        .await?)
    }

    /// Add a member; a [`StoreError::Conflict`] if already one.
    pub async fn add_member_strict(
        &self,
        user_id: &str,
        group_id: &str,
        source: &str,
        added_by: Option<&str>,
    ) -> Result<()> {
        let exists: Option<(String,)> =
            sqlx::query_as("SELECT user_id FROM user_group_members WHERE user_id = ? AND group_id = ?")
                .bind(user_id)
                .bind(group_id)
                .fetch_optional(self.pool)
                .await?;
        if exists.is_some() {
            return Err(StoreError::Conflict("user is already a member of this group".into()));
        }
        self.add_member(user_id, group_id, source, added_by).await
    }

    /// The membership row, if any.
    pub async fn membership(&self, user_id: &str, group_id: &str) -> Result<Option<Membership>> {
        Ok(self.memberships(user_id).await?.into_iter().find(|m| m.group_id == group_id))
    }

    pub async fn remove_member(&self, user_id: &str, group_id: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM user_group_members WHERE user_id = ? AND group_id = ?")
            .bind(user_id)
            .bind(group_id)
            .execute(self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Explicit memberships of a user (not the implicit `Everyone`).
    pub async fn memberships(&self, user_id: &str) -> Result<Vec<Membership>> {
        Ok(sqlx::query_as(
            "SELECT g.id AS group_id, g.name AS group_name, g.is_system, m.source, m.added_at, m.added_by \
             FROM user_group_members m JOIN user_groups g ON g.id = m.group_id WHERE m.user_id = ? ORDER BY g.name",
        )
        .bind(user_id)
        .fetch_all(self.pool)
        .await?)
    }

    /// Active users who are members of `Admin`.
    pub async fn active_admin_ids(&self) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT u.id FROM users u JOIN user_group_members m ON m.user_id = u.id JOIN user_groups g ON g.id = m.group_id \
             WHERE g.name = ? AND u.active = 1",
        )
        .bind(ADMIN_GROUP)
        .fetch_all(self.pool)
        .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    pub async fn everyone_group(&self) -> Result<Group> {
        self.group_by_name(EVERYONE_GROUP).await?.ok_or_else(|| StoreError::NotFound("group Everyone".into()))
    }

    pub async fn list_grants(&self, resource_type: Option<&str>, group_id: Option<&str>) -> Result<Vec<Grant>> {
        Ok(sqlx::query_as(&format!(
            "{GRANT_SELECT} WHERE (?1 IS NULL OR g.resource_type = ?1) AND (?2 IS NULL OR g.group_id = ?2) \
             ORDER BY u.name, g.resource_type, g.resource_id"
        ))
        .bind(resource_type)
        .bind(group_id)
        .fetch_all(self.pool)
        .await?)
    }

    pub async fn grant_by_id(&self, id: &str) -> Result<Option<Grant>> {
        Ok(sqlx::query_as(&format!("{GRANT_SELECT} WHERE g.id = ?")).bind(id).fetch_optional(self.pool).await?)
    }

    /// Create a grant; a duplicate is a [`StoreError::Conflict`].
    pub async fn create_grant(
        &self,
        group_id: &str,
        resource_type: &str,
        resource_id: &str,
        assigned_by: Option<&str>,
    ) -> Result<Grant> {
        let id = uuid::Uuid::new_v4().to_string();
        let r = sqlx::query(
            "INSERT INTO resource_grants (id, group_id, resource_type, resource_id, assigned_at, assigned_by) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (group_id, resource_type, resource_id) DO NOTHING",
        )
        .bind(&id)
        .bind(group_id)
        .bind(resource_type)
        .bind(resource_id)
        .bind(crate::now_text())
        .bind(assigned_by)
        .execute(self.pool)
        .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "grant of {resource_type} '{resource_id}' to this group already exists"
            )));
        }
        self.grant_by_id(&id).await?.ok_or_else(|| StoreError::NotFound(format!("grant {id}")))
    }

    pub async fn delete_grant(&self, id: &str) -> Result<bool> {
        Ok(sqlx::query("DELETE FROM resource_grants WHERE id = ?").bind(id).execute(self.pool).await?.rows_affected()
            > 0)
    }

    /// Grants held by any of these groups.
    pub async fn grants_of_groups(&self, group_ids: &[String]) -> Result<Vec<Grant>> {
        let all = self.list_grants(None, None).await?;
        Ok(all.into_iter().filter(|g| group_ids.contains(&g.group_id)).collect())
    }

    /// Whether any of these groups holds the grant.
    pub async fn has_grant(&self, group_ids: &[String], resource_type: &str, resource_id: &str) -> Result<bool> {
        if group_ids.is_empty() {
            return Ok(false);
        }
        let placeholders = vec!["?"; group_ids.len()].join(", ");
        let sql = format!(
            "SELECT COUNT(*) FROM resource_grants WHERE resource_type = ? AND resource_id = ? AND group_id IN ({placeholders})"
        );
        let mut q = sqlx::query_as::<_, (i64,)>(&sql).bind(resource_type).bind(resource_id);
        for g in group_ids {
            q = q.bind(g);
        }
        Ok(q.fetch_one(self.pool).await?.0 > 0)
    }
}
