//! The access rule in SQL. Every statement that lists what a caller may read takes its
//! filter from [`granted`], so the rule is written once, beside `can_access`/`readable` in
//! the server (the same rule for single resources and sets).

/// `(?A OR <column> IN (<ids of resource_type> granted to a group in the JSON array ?G))`:
/// true for every row when parameter `all` is true (admins), else for rows whose
/// `column` is granted to one of the caller's groups (parameter `groups`).
pub(crate) fn granted(resource_type: &'static str, column: &str, all: u8, groups: u8) -> String {
    debug_assert!(resource_type.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "a constant resource type");
    format!(
        "(?{all} OR {column} IN (SELECT resource_id FROM resource_grants WHERE resource_type = '{resource_type}' \
         AND group_id IN (SELECT value FROM json_each(?{groups}))))"
    )
}
