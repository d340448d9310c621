//! The one authorization path: who the caller is, and what they may reach and why.

pub use agnes_core::api::{AccessEntry, AccessGroup, AccessReason, EffectiveAccess};
use agnes_store::identity::{Grant, User};
use agnes_store::Store;

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A session JWT, from the `Authorization` header or the `access_token` cookie.
    Session { via_cookie: bool },
    /// A personal access token.
    Pat { id: String },
    /// `--dev`: every request is the seeded dev admin.
    Dev,
}

/// An authenticated, active user and the groups that decide what they may see.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    /// Explicit memberships plus the implicit `Everyone`.
    pub group_ids: Vec<String>,
    pub is_admin: bool,
    pub credential: Credential,
}

impl Caller {
    /// The audit log's `client_kind`.
    pub fn client_kind(&self) -> &'static str {
        match self.credential {
            Credential::Pat { .. } => "cli",
            Credential::Session { via_cookie: true } => "web",
            Credential::Session { via_cookie: false } | Credential::Dev => "api",
        }
    }

    /// Load the user's groups and build the caller.
    pub async fn load(store: &Store, user: User, credential: Credential) -> agnes_store::Result<Caller> {
        let everyone = store.identity().everyone_group().await?.id;
        Caller::load_with(store, user, credential, &everyone).await
    }

    /// [`Caller::load`] with the id of `Everyone` already known (it is a system group: its
    /// id never changes), saving a query on every authenticated request.
    pub async fn load_with(
        store: &Store,
        user: User,
        credential: Credential,
        everyone_id: &str,
    ) -> agnes_store::Result<Caller> {
        let memberships = store.identity().memberships(&user.id).await?;
        let groups = memberships.into_iter().map(|m| (m.group_id, m.group_name));
        Ok(Caller::with_groups(user, credential, groups, everyone_id))
    }

    /// The caller from the user's groups as `(id, name)`, already read.
    pub fn with_groups(
        user: User,
        credential: Credential,
        groups: impl IntoIterator<Item = (String, String)>,
        everyone_id: &str,
    ) -> Caller {
        let mut is_admin = false;
        let mut group_ids = Vec::new();
        for (id, name) in groups {
            is_admin |= name == agnes_store::identity::ADMIN_GROUP;
            group_ids.push(id);
        }
        if !group_ids.iter().any(|g| g == everyone_id) {
            group_ids.push(everyone_id.to_string());
        }
        Caller { user, group_ids, is_admin, credential }
    }
}

/// Resource types a grant can name. Adding one is a line here, not a migration.
pub const RESOURCE_TYPES: &[ResourceType] = &[
    ResourceType {
        key: "table",
        display_name: "Table",
        description: "A registered table: its data, schema, sample and profile.",
        id_format: "<table_id>",
    },
    ResourceType {
        key: MEMORY_DOMAIN,
        display_name: "Memory domain",
        description: "The corporate-memory knowledge items of one domain, in the pulled rules.",
        id_format: "<domain>",
    },
];

/// The resource type of corporate-memory domains.
pub const MEMORY_DOMAIN: &str = "memory_domain";

#[derive(Debug, Clone, Copy)]
pub struct ResourceType {
    pub key: &'static str,
    pub display_name: &'static str,
    pub description: &'static str,
    pub id_format: &'static str,
}

impl From<&ResourceType> for agnes_core::api::ResourceTypeInfo {
    fn from(t: &ResourceType) -> Self {
        agnes_core::api::ResourceTypeInfo {
            key: t.key.into(),
            display_name: t.display_name.into(),
            description: t.description.into(),
            id_format: t.id_format.into(),
        }
    }
}

pub fn is_resource_type(key: &str) -> bool {
    RESOURCE_TYPES.iter().any(|t| t.key == key)
}

/// Whether `caller` may reach `(resource_type, resource_id)`: admins always, others
/// through a grant to one of their groups.
pub async fn can_access(
    store: &Store,
    caller: &Caller,
    resource_type: &str,
    resource_id: &str,
) -> agnes_store::Result<bool> {
    if caller.is_admin {
        return Ok(true);
    }
    store.identity().has_grant(&caller.group_ids, resource_type, resource_id).await
}

/// The ids of `resource_type` the caller may reach: `None` means all (admins), else those
/// granted to one of their groups. The set form of [`can_access`], for listings.
pub async fn readable(
    store: &Store,
    caller: &Caller,
    resource_type: &str,
) -> agnes_store::Result<Option<std::collections::HashSet<String>>> {
    if caller.is_admin {
        return Ok(None);
    }
    let grants = store.identity().grants_of_groups(&caller.group_ids).await?;
    Ok(Some(grants.into_iter().filter(|g| g.resource_type == resource_type).map(|g| g.resource_id).collect()))
}

pub async fn effective_access(store: &Store, caller: &Caller) -> agnes_store::Result<EffectiveAccess> {
    let ids = store.identity();
    let memberships = ids.memberships(&caller.user.id).await?;
    let everyone = ids.everyone_group().await?;
    let mut groups: Vec<AccessGroup> = memberships
        .iter()
        .map(|m| AccessGroup { id: m.group_id.clone(), name: m.group_name.clone(), source: m.source.clone() })
        .collect();
    if !memberships.iter().any(|m| m.group_id == everyone.id) {
        groups.push(AccessGroup { id: everyone.id, name: everyone.name, source: "implicit".into() });
    }
    let grants: Vec<Grant> = ids.grants_of_groups(&caller.group_ids).await?;
    let mut resources: Vec<AccessEntry> = Vec::new();
    for g in grants {
        let reason = AccessReason { group_id: g.group_id, group_name: g.group_name, grant_id: g.id };
        match resources.iter_mut().find(|e| e.resource_type == g.resource_type && e.resource_id == g.resource_id) {
            Some(e) => e.via.push(reason),
            None => resources.push(AccessEntry {
                resource_type: g.resource_type,
                resource_id: g.resource_id,
                via: vec![reason],
            }),
        }
    }
    resources.sort_by(|a, b| (&a.resource_type, &a.resource_id).cmp(&(&b.resource_type, &b.resource_id)));
    Ok(EffectiveAccess {
        user_id: caller.user.id.clone(),
        email: caller.user.email.clone(),
        is_admin: caller.is_admin,
        admin_reason: caller.is_admin.then(|| "member of the Admin group: every access check passes".to_string()),
        groups,
        resources,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn grants_through_groups_admins_always() {
        let store = Store::open_in_memory().await.unwrap();
        let ids = store.identity();
        let ana = ids.create_user("ana@example.com", None, None).await.unwrap();
        let boss = ids.create_user("boss@example.com", None, None).await.unwrap();
        let finance = ids.create_group("Finance", None, "test").await.unwrap();
        ids.add_member(&ana.id, &finance.id, "admin", None).await.unwrap();
        ids.grant(&finance.id, "table", "orders", None).await.unwrap();
        let everyone = ids.everyone_group().await.unwrap();
        ids.grant(&everyone.id, "table", "calendar", None).await.unwrap();
        let admin = ids.group_by_name(agnes_store::identity::ADMIN_GROUP).await.unwrap().unwrap();
        ids.add_member(&boss.id, &admin.id, "admin", None).await.unwrap();

        let ana = Caller::load(&store, ana, Credential::Dev).await.unwrap();
        assert!(can_access(&store, &ana, "table", "orders").await.unwrap());
        assert!(can_access(&store, &ana, "table", "calendar").await.unwrap(), "Everyone is implicit");
        assert!(!can_access(&store, &ana, "table", "salaries").await.unwrap());
        assert!(!can_access(&store, &ana, "memory_domain", "orders").await.unwrap(), "the type is part of the key");

        let boss = Caller::load(&store, boss, Credential::Dev).await.unwrap();
        assert!(boss.is_admin);
        assert!(can_access(&store, &boss, "table", "salaries").await.unwrap());

        let why = effective_access(&store, &ana).await.unwrap();
        let ids: Vec<_> =
            why.resources.iter().map(|r| (r.resource_id.as_str(), r.via[0].group_name.as_str())).collect();
        assert_eq!(ids, [("calendar", "Everyone"), ("orders", "Finance")]);
    }
}
