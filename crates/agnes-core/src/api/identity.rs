//! Sign-in, tokens, users, groups and grants.

use serde::{Deserialize, Serialize};

/// `POST /auth/token`, `/auth/password/login` and `/auth/bootstrap`: a 24-hour session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionToken {
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: String,
    /// Absent from `/auth/password/login`, as in the original.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    pub email: String,
    /// `admin` or `user`.
    pub role: String,
}

/// `POST /auth/tokens` (201): the token itself is shown once and never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IssuedToken {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub token: String,
    pub expires_at: Option<String>,
    pub created_at: String,
}

/// A personal access token as listed (never the token itself). The admin listing
/// (`/auth/admin/tokens`) adds its owner and the address it was last used from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenView {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_ip: Option<String>,
}

/// `GET /api/me`: the caller as the server sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Me {
    pub id: String,
    pub email: String,
    pub name: Option<String>,
    pub is_admin: bool,
    pub group_ids: Vec<String>,
    pub credential: CredentialInfo,
}

/// How the caller signed in: `session`, `pat` (with its id) or `dev`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CredentialInfo {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
}

/// A user as `/api/users` shows one; a single user (`GET /api/users/{id}`) adds its groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserView {
    pub id: String,
    pub email: String,
    pub name: Option<String>,
    pub active: bool,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<Membership>>,
}

/// `POST /api/users/{id}/reset-password`: a one-time token for `/auth/password/reset`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResetToken {
    pub reset_token: String,
    pub expires_in_seconds: u64,
}

/// A member of a group, and who added them how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Member {
    pub user_id: String,
    pub email: String,
    pub name: Option<String>,
    pub active: bool,
    /// `admin`, `system_seed`, `cli_break_glass` or an external directory.
    pub source: String,
    pub added_at: String,
    pub added_by: Option<String>,
}

/// A group a user belongs to, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Membership {
    pub group_id: String,
    pub group_name: String,
    pub is_system: bool,
    pub source: String,
    pub added_at: String,
    pub added_by: Option<String>,
}

/// `POST …/members` and `POST …/memberships` (201).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MembershipAdded {
    pub group_id: String,
    pub user_id: String,
    pub source: String,
}

/// A grant: the members of `group_id` may reach `(resource_type, resource_id)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Grant {
    pub id: String,
    pub group_id: String,
    pub group_name: String,
    pub resource_type: String,
    pub resource_id: String,
    pub assigned_at: String,
    pub assigned_by: Option<String>,
}

/// A kind of resource a grant can name (`GET /api/admin/resource-types`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResourceTypeInfo {
    pub key: String,
    pub display_name: String,
    pub description: String,
    /// What a `resource_id` of this type looks like, e.g. `<table_id>`.
    pub id_format: String,
}

/// A group with its counts. The access overview adds its members' emails and its grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupView {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub is_system: bool,
    /// `system` or `custom`.
    pub origin: String,
    pub created_at: String,
    pub created_by: Option<String>,
    pub member_count: i64,
    pub grant_count: i64,
    /// Whether a Google Workspace group feeds its membership (set once SSO sync lands).
    pub is_google_managed: bool,
    pub mapped_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grants: Option<Vec<ResourceRef>>,
}

/// A resource by type and id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResourceRef {
    pub resource_type: String,
    pub resource_id: String,
}

/// A group the subject is in, and how: `admin`, `system_seed`…, or `implicit` (Everyone).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccessGroup {
    pub id: String,
    pub name: String,
    pub source: String,
}

/// What a user may reach and why (`/api/me/effective-access`,
/// `/api/admin/users/{id}/effective-access`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EffectiveAccess {
    pub user_id: String,
    pub email: String,
    pub is_admin: bool,
    /// Set for admins: every check passes, whatever the grants.
    pub admin_reason: Option<String>,
    pub groups: Vec<AccessGroup>,
    pub resources: Vec<AccessEntry>,
}

/// One resource the subject reaches, with every grant that gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccessEntry {
    pub resource_type: String,
    pub resource_id: String,
    pub via: Vec<AccessReason>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccessReason {
    pub group_id: String,
    pub group_name: String,
    pub grant_id: String,
}

/// `GET /api/admin/access-overview`: every group with members and grants, every user with
/// what they reach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccessOverview {
    pub groups: Vec<GroupView>,
    pub users: Vec<UserAccess>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserAccess {
    pub id: String,
    pub email: String,
    pub active: bool,
    pub is_admin: bool,
    pub groups: Vec<AccessGroup>,
    pub resources: Vec<ResourceRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Credentials {
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub password: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PasswordReset {
    pub email: String,
    pub token: String,
    pub password: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewToken {
    pub name: String,
    #[serde(default, deserialize_with = "super::double_option", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<i64>))]
    pub expires_in_days: Option<Option<i64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<i64>,
}

/// `POST /api/users`, and `POST /auth/bootstrap` (the first admin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewUser {
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserPatch {
    #[serde(default, deserialize_with = "super::double_option", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub name: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewPassword {
    pub password: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewGroup {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MemberRef {
    pub email: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewGrant {
    pub group_id: String,
    pub resource_type: String,
    pub resource_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupRef {
    pub group_id: String,
}

/// `GET /auth/providers`: a single sign-on provider people may use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SsoProvider {
    /// `google`, or the provider's key under `auth.oidc`.
    pub name: String,
    pub display_name: String,
    /// Where a browser starts the sign-in (`?next=` says where it ends).
    pub login_url: String,
}

/// The body of `POST /auth/email/send-link`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EmailLinkRequest {
    pub email: String,
}

/// `POST /auth/email/send-link`: the same for every address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EmailLinkSent {
    /// Always `sent`.
    pub status: String,
    pub message: String,
    /// Dev mode without SMTP: the link itself, instead of a mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev_link: Option<String>,
}

/// The body of `POST /auth/email/verify`: the link's two parts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EmailLinkVerify {
    pub email: String,
    pub token: String,
}

/// `POST /auth/cli/codes`: a one-time code for `agnes auth login`'s loopback listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CliCode {
    pub code: String,
    pub expires_in_seconds: u64,
}

/// The body of `POST /auth/cli/exchange`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CliExchange {
    pub code: String,
}

/// `POST /auth/cli/exchange`: the personal access token a code stood for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CliToken {
    pub token: String,
    pub email: String,
}
