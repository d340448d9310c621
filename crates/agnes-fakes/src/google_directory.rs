//! A fake Google Workspace Admin SDK Directory API (`admin/directory/v1`), after Google's
//! public API reference, signed in to through the fake Google accounts of
//! [`crate::google`]:
//!
//! * `GET /admin/directory/v1/groups?userKey=…`: the groups a user is a direct member of,
//!   paged by `maxResults` (1 to 200) and `pageToken`; a user in no group gets an answer
//!   without `groups`. Each group carries `kind`, `id`, `etag`, `email`, `name`,
//!   `description`, `directMembersCount` (a string) and `adminCreated`.
//! * The token must carry a Directory group scope and act (domain-wide delegation) as an
//!   administrator of the domain: otherwise 403 `forbidden`, "Not Authorized to access
//!   this resource/api", as Google answers. A user of another domain is refused the same
//!   way; an unknown user of the domain is a 404 `notFound`.
//!
//! The service account starts authorized for the read-only group scope; tests revoke it.

use crate::google::{google_error, paged, Accounts, PageSize};
use crate::server::Running;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

pub const GROUP_READONLY: &str = "https://www.googleapis.com/auth/admin.directory.group.readonly";
const GROUP: &str = "https://www.googleapis.com/auth/admin.directory.group";
const PAGES: PageSize = PageSize { default: 200, max: 200 };

struct Inner {
    accounts: Accounts,
    domain: String,
    admins: BTreeSet<String>,
    users: BTreeSet<String>,
    /// Group e-mail → its members' e-mails.
    groups: BTreeMap<String, BTreeSet<String>>,
    /// `groups.list` calls answered, with the `userKey` asked.
    calls: Vec<String>,
}

type Shared = Arc<Mutex<Inner>>;

pub struct FakeDirectory {
    pub url: String,
    /// A service-account key file whose `token_uri` is this fake.
    pub key_file: std::path::PathBuf,
    /// Application-default user credentials whose `token_uri` is this fake.
    pub adc_file: std::path::PathBuf,
    pub accounts: Accounts,
    inner: Shared,
    _dir: tempfile::TempDir,
    _running: Running,
}

/// A stable id for a group, as Google's are opaque hex.
fn hex_digest(email: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(email.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn forbidden() -> Response {
    google_error(StatusCode::FORBIDDEN, "forbidden", "Not Authorized to access this resource/api")
}

impl FakeDirectory {
    /// The Workspace of `domain`, with `admin` its administrator.
    pub fn start(domain: &str, admin: &str) -> FakeDirectory {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let accounts = Accounts::new(&format!("agnes-directory@{domain}-admin.iam.gserviceaccount.com"), dir.path());
        accounts.delegate(GROUP_READONLY, true);
        let inner = Arc::new(Mutex::new(Inner {
            accounts: accounts.clone(),
            domain: domain.to_lowercase(),
            admins: BTreeSet::from([admin.to_lowercase()]),
            users: BTreeSet::from([admin.to_lowercase()]),
            groups: BTreeMap::new(),
            calls: Vec::new(),
        }));
        let app = Router::new()
            .route("/admin/directory/v1/groups", get(groups))
            .with_state(inner.clone())
            .merge(accounts.routes());
        let running = Running::start(app);
        let url = format!("http://{}", running.addr);
        let (key_file, adc_file) = accounts.listening(&url, dir.path(), &format!("{domain}-admin"));
        FakeDirectory { url, key_file, adc_file, accounts, inner, _dir: dir, _running: running }
    }

    /// A user of the domain (in no group yet).
    pub fn add_user(&self, email: &str) {
        self.inner.lock().users.insert(email.to_lowercase());
    }

    /// Set a group's members (users are added to the domain); no members removes it.
    pub fn set_group(&self, group: &str, members: &[&str]) {
        let mut inner = self.inner.lock();
        let members: BTreeSet<String> = members.iter().map(|m| m.to_lowercase()).collect();
        inner.users.extend(members.iter().cloned());
        if members.is_empty() {
            inner.groups.remove(&group.to_lowercase());
        } else {
            inner.groups.insert(group.to_lowercase(), members);
        }
    }

    /// The `userKey` of every `groups.list` call answered, in order.
    pub fn calls(&self) -> Vec<String> {
        self.inner.lock().calls.clone()
    }

    /// The host:port to give `GCE_METADATA_HOST`.
    pub fn metadata_host(&self) -> String {
        self.url.trim_start_matches("http://").to_string()
    }
}

async fn groups(State(state): State<Shared>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut inner = state.lock();
    let grant = match inner.accounts.bearer(&headers) {
        Ok(g) => g,
        Err(r) => return *r,
    };
    if !grant.allows(&[GROUP_READONLY, GROUP]) {
        return google_error(
            StatusCode::FORBIDDEN,
            "insufficientPermissions",
            "Request had insufficient authentication scopes.",
        );
    }
    if !grant.subject.is_some_and(|s| inner.admins.contains(&s.to_lowercase())) {
        return forbidden();
    }
    let Some(user) = q.get("userKey").map(|u| u.trim().to_lowercase()) else {
        return google_error(StatusCode::BAD_REQUEST, "badRequest", "Bad Request");
    };
    if user.rsplit_once('@').map(|(_, d)| d) != Some(inner.domain.as_str()) {
        return forbidden();
    }
    if !inner.users.contains(&user) {
        return google_error(StatusCode::NOT_FOUND, "notFound", "Resource Not Found: userKey");
    }
    inner.calls.push(user.clone());
    let items: Vec<Value> = inner
        .groups
        .iter()
        .filter(|(_, members)| members.contains(&user))
        .map(|(email, members)| {
            let id = hex_digest(email);
            let name = email.split('@').next().unwrap_or_default();
            json!({"kind": "admin#directory#group", "id": &id[..17], "etag": format!("\"{}\"", &id[17..40]),
                   "email": email, "name": name, "description": "", "adminCreated": true,
                   "directMembersCount": members.len().to_string()})
        })
        .collect();
    paged(json!({"kind": "admin#directory#groups", "etag": "\"fake-etag\""}), "groups", items, &q, PAGES)
}
