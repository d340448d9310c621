//! Personal access tokens: only a SHA-256 of the token and a display prefix are stored.

use super::{IdentityRepo, User};
use crate::error::Result;

/// A token as listed (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct TokenInfo {
    pub id: String,
    pub user_id: String,
    pub user_email: String,
    pub name: String,
    pub prefix: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    pub last_used_ip: Option<String>,
    pub revoked_at: Option<String>,
    #[serde(skip)]
    pub token_hash: String,
}

const TOKEN_SELECT: &str = "SELECT t.id, t.user_id, u.email AS user_email, t.name, t.prefix, t.created_at, t.expires_at, \
     t.last_used_at, t.last_used_ip, t.revoked_at, t.token_hash FROM personal_access_tokens t JOIN users u ON u.id = t.user_id";

impl IdentityRepo<'_> {
    pub async fn token(&self, id: &str) -> Result<Option<TokenInfo>> {
        Ok(sqlx::query_as(&format!("{TOKEN_SELECT} WHERE t.id = ?")).bind(id).fetch_optional(self.pool).await?)
    }

    /// A token with its owner, in one query: what authenticating a request needs.
    /// A token, its user and the user's groups as `(id, name)`, in one round trip: this is
    /// on the path of every request a personal access token makes.
    pub async fn token_with_user(&self, id: &str) -> Result<Option<(TokenInfo, User, Vec<(String, String)>)>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            token: TokenInfo,
            u_id: String,
            u_email: String,
            u_name: Option<String>,
            u_active: bool,
            u_created_at: String,
            u_session_generation: i64,
            u_groups: String,
        }
        let row: Option<Row> = sqlx::query_as(
            "SELECT t.id, t.user_id, u.email AS user_email, t.name, t.prefix, t.created_at, t.expires_at, t.last_used_at, \
             t.last_used_ip, t.revoked_at, t.token_hash, u.id AS u_id, u.email AS u_email, u.name AS u_name, \
             u.active AS u_active, u.created_at AS u_created_at, \
             u.session_generation AS u_session_generation, (SELECT json_group_array(json_array(g.id, g.name)) \
               FROM user_group_members m JOIN user_groups g ON g.id = m.group_id WHERE m.user_id = u.id) AS u_groups \
             FROM personal_access_tokens t JOIN users u ON u.id = t.user_id WHERE t.id = ?"
        )
        .bind(id)
        .fetch_optional(self.pool)
        .await?;
        row.map(|r| {
            let groups = serde_json::from_str(&r.u_groups)
                .map_err(|e| crate::StoreError::Corrupt { column: "user_group_members", message: e.to_string() })?;
            let user = User {
                id: r.u_id,
                email: r.u_email,
                name: r.u_name,
                password_hash: None,
                active: r.u_active,
                created_at: r.u_created_at,
                session_generation: r.u_session_generation,
            };
            Ok((r.token, user, groups))
        })
        .transpose()
    }

    pub async fn tokens_of_user(&self, user_id: &str) -> Result<Vec<TokenInfo>> {
        Ok(sqlx::query_as(&format!("{TOKEN_SELECT} WHERE t.user_id = ? ORDER BY t.created_at DESC"))
            .bind(user_id)
            .fetch_all(self.pool)
            .await?)
    }

    pub async fn all_tokens(&self, limit: i64, offset: i64) -> Result<Vec<TokenInfo>> {
        Ok(sqlx::query_as(&format!("{TOKEN_SELECT} ORDER BY t.created_at DESC LIMIT ? OFFSET ?"))
            .bind(limit)
            .bind(offset)
            .fetch_all(self.pool)
            .await?)
    }

    /// Mark revoked; returns whether a not-yet-revoked token was revoked.
    pub async fn revoke_token(&self, id: &str) -> Result<bool> {
        let r = sqlx::query("UPDATE personal_access_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(crate::now_text())
            .bind(id)
            .execute(self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Record a use; returns the previous `last_used_ip` (to detect a new IP).
    pub async fn touch_token(&self, id: &str, ip: &str) -> Result<Option<String>> {
        let previous: Option<(Option<String>,)> =
            sqlx::query_as("SELECT last_used_ip FROM personal_access_tokens WHERE id = ?")
                .bind(id)
                .fetch_optional(self.pool)
                .await?;
        sqlx::query("UPDATE personal_access_tokens SET last_used_at = ?, last_used_ip = ? WHERE id = ?")
            .bind(crate::now_text())
            .bind(ip)
            .bind(id)
            .execute(self.pool)
            .await?;
        Ok(previous.and_then(|(ip,)| ip))
    }
}
