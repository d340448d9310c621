//! `agnes admin user|group|grant|metrics|scheduler|break-glass …` (spec §4.8); the
//! registry commands are in `registry.rs`.

use crate::client::api::{urlencode, Api};
use crate::client::output;
use agnes_core::api::{
    Grant, GroupView, JiraBackfill, JiraBackfillRequest, Member, MemberRef, MembershipAdded, NewGrant, NewGroup,
    NewPassword, NewUser, ResetToken, ResourceTypeInfo, SchedulerStatus, UserView,
};
use anyhow::{bail, Context};
use clap::Subcommand;
use serde_json::json;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Users.
    #[command(subcommand)]
    User(UserCommand),
    /// Groups and their members.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Grants of resources to groups.
    #[command(subcommand)]
    Grant(GrantCommand),
    /// Emergency access, run on the server host against its data dir (no HTTP).
    #[command(subcommand)]
    BreakGlass(BreakGlassCommand),
    /// Business metric definitions: import, export, validate (over HTTP, as you).
    #[command(subcommand)]
    Metrics(super::metrics::MetricsCommand),
    /// Corporate memory: the knowledge items analysts' agents receive as rules.
    #[command(subcommand)]
    Memory(super::memory::MemoryCommand),
    /// The scheduler: its jobs and each table's last sync, next due time and last error.
    Scheduler {
        #[arg(long)]
        json: bool,
    },
    /// Register a table (`--dry-run` checks it against its source).
    RegisterTable(Box<super::registry::RegisterArgs>),
    /// Change a registered table's fields.
    UpdateTable(super::registry::UpdateArgs),
    /// Remove a table from the registry.
    UnregisterTable(super::registry::UnregisterArgs),
    /// Every registered table.
    ListTables {
        #[arg(long)]
        json: bool,
    },
    /// Register what a source holds that no table reads yet (the files root by default).
    DiscoverAndRegister(super::registry::DiscoverArgs),
    /// Configured sources: list them, test a connection.
    #[command(subcommand)]
    Source(super::registry::SourceCommand),
    /// The Jira source: backfill its tables from Jira's search.
    #[command(subcommand)]
    Jira(JiraCommand),
}

#[derive(Subcommand)]
pub enum JiraCommand {
    /// Bring every issue Jira's search finds into the tables (the webhook's own path),
    /// showing progress until done. Resumable: a failed backfill started again with the
    /// same search goes on from the page it reached.
    Backfill {
        /// A JQL restriction, e.g. `project = SUP`.
        #[arg(long)]
        jql: Option<String>,
        /// Only issues updated since this day or time (`2024-01-31`, `2024-01-31 08:00`).
        #[arg(long)]
        since: Option<String>,
        /// Start it and return; `agnes admin jira backfill-status` follows it.
        #[arg(long)]
        no_wait: bool,
    },
    /// A backfill's progress.
    BackfillStatus {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum UserCommand {
    List {
        #[arg(long)]
        json: bool,
    },
    Add {
        email: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        password: Option<String>,
    },
    /// Delete a user (by id or email).
    Remove {
        user: String,
    },
    Activate {
        user: String,
    },
    Deactivate {
        user: String,
    },
    /// Remove the password and print a one-time reset token.
    ResetPassword {
        user: String,
    },
    SetPassword {
        user: String,
        #[arg(long)]
        password: String,
    },
}

#[derive(Subcommand)]
pub enum GroupCommand {
    List {
        #[arg(long)]
        json: bool,
    },
    Create {
        name: String,
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete a group (by id or name) with its members and grants.
    Delete {
        group: String,
    },
    Members {
        group: String,
        #[arg(long)]
        json: bool,
    },
    AddMember {
        group: String,
        email: String,
    },
    RemoveMember {
        group: String,
        email: String,
    },
}

#[derive(Subcommand)]
pub enum GrantCommand {
    List {
        #[arg(long = "type")]
        resource_type: Option<String>,
        #[arg(long)]
        group: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Grant RESOURCE_ID of TYPE (e.g. `table orders`) to GROUP.
    Create {
        group: String,
        resource_type: String,
        resource_id: String,
    },
    Delete {
        grant_id: String,
    },
    ResourceTypes {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum BreakGlassCommand {
    /// Make EMAIL an admin (creating the user if needed).
    GrantAdmin {
        email: String,
        /// Also set this password (min. 8 characters), so the admin can sign in at once.
        #[arg(long, env = "AGNES_BREAK_GLASS_PASSWORD")]
        password: Option<String>,
        /// Do not ask for confirmation.
        #[arg(long, short)]
        yes: bool,
        #[arg(long, env = "DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
    },
}

pub async fn run(cmd: AdminCommand) -> anyhow::Result<()> {
    match cmd {
        AdminCommand::BreakGlass(BreakGlassCommand::GrantAdmin { email, password, yes, data_dir }) => {
            break_glass(&email, password.as_deref(), yes, data_dir).await
        }
        AdminCommand::User(c) => user(&Api::from_config(), c).await,
        AdminCommand::Group(c) => group(&Api::from_config(), c).await,
        AdminCommand::Grant(c) => grant(&Api::from_config(), c).await,
        AdminCommand::Metrics(c) => super::metrics::run(c).await,
        AdminCommand::Memory(c) => super::memory::run(&Api::from_config(), c).await,
        AdminCommand::Scheduler { json } => scheduler(&Api::from_config(), json).await,
        AdminCommand::RegisterTable(args) => super::registry::register(&Api::from_config(), *args).await,
        AdminCommand::UpdateTable(args) => super::registry::update(&Api::from_config(), args).await,
        AdminCommand::UnregisterTable(args) => super::registry::unregister(&Api::from_config(), args).await,
        AdminCommand::ListTables { json } => super::registry::list(&Api::from_config(), json).await,
        AdminCommand::DiscoverAndRegister(args) => {
            super::registry::discover_and_register(&Api::from_config(), args).await
        }
        AdminCommand::Source(cmd) => super::registry::source(&Api::from_config(), cmd).await,
        AdminCommand::Jira(cmd) => jira(&Api::from_config(), cmd).await,
    }
}

fn backfill_line(b: &JiraBackfill) -> String {
    format!(
        "{}: {} search pages, {} issues found, {} waiting to reach the tables",
        b.state, b.pages, b.issues, b.pending
    )
}

async fn jira(api: &Api, cmd: JiraCommand) -> anyhow::Result<()> {
    const PATH: &str = "/api/admin/jira/backfill";
    match cmd {
        JiraCommand::BackfillStatus { json } => {
            let b: JiraBackfill = api.get_as(PATH).await?;
            if json {
                output::json(&b);
            } else {
                println!("{}", backfill_line(&b));
            }
        }
        JiraCommand::Backfill { jql, since, no_wait } => {
            let mut b: JiraBackfill = api.post_as(PATH, &JiraBackfillRequest { jql, since }).await?;
            eprintln!("backfill started: {}", b.jql.as_deref().unwrap_or_default());
            if no_wait {
                println!("{}", backfill_line(&b));
                return Ok(());
            }
            let mut shown = String::new();
            loop {
                let line = backfill_line(&b);
                if line != shown {
                    eprintln!("{line}");
                    shown = line;
                }
                let finished = b.state != "running" && b.pending == 0;
                if finished || b.state == "failed" {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                b = api.get_as(PATH).await?;
            }
            if b.state == "failed" {
                bail!(
                    "the backfill stopped: {} (run the same command again to resume from page {})",
                    b.error.unwrap_or_default(),
                    b.pages + 1
                );
            }
            println!("{}", backfill_line(&b));
        }
    }
    Ok(())
}

async fn scheduler(api: &Api, as_json: bool) -> anyhow::Result<()> {
    let v: SchedulerStatus = api.get_as("/api/admin/scheduler").await?;
    if as_json {
        output::json(&v);
        return Ok(());
    }
    let state =
        if v.enabled { format!("every {} s", v.tick_seconds) } else { "off (AGNES_SCHEDULER_TICK_SECONDS=0)".into() };
    println!("Scheduler: {state}; a sync is {}running", if v.sync_running { "" } else { "not " });
    output::table(
        &v.jobs,
        &[
            ("name", "JOB"),
            ("last_started_at", "LAST RUN"),
            ("last_status", "STATUS"),
            ("next_run_at", "NEXT"),
            ("last_error", "LAST ERROR"),
        ],
    );
    output::table(
        &v.tables,
        &[
            ("id", "TABLE"),
            ("schedule", "SCHEDULE"),
            ("last_sync", "LAST SYNC"),
            ("next_sync_at", "NEXT SYNC"),
            ("failures", "FAILURES"),
            ("last_error", "LAST ERROR"),
        ],
    );
    Ok(())
}

/// A user's id from an id or an email.
async fn user_id(api: &Api, user: &str) -> anyhow::Result<String> {
    if !user.contains('@') {
        return Ok(user.to_string());
    }
    let users: Vec<UserView> = api.get_as("/api/users").await?;
    users
        .into_iter()
        .find(|u| u.email.eq_ignore_ascii_case(user))
        .map(|u| u.id)
        .with_context(|| format!("no user with email {user}"))
}

async fn user(api: &Api, cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::List { json } => {
            let v: Vec<UserView> = api.get_as("/api/users").await?;
            output::listing(
                &v,
                json,
                &[("id", "ID"), ("email", "EMAIL"), ("name", "NAME"), ("active", "ACTIVE"), ("created_at", "CREATED")],
            );
        }
        UserCommand::Add { email, name, password } => {
            let created: UserView =
                api.post_as("/api/users", &NewUser { email: email.clone(), name, password }).await?;
            println!("User {email} created (id {}).", created.id);
        }
        UserCommand::Remove { user } => {
            let id = user_id(api, &user).await?;
            api.delete(&format!("/api/users/{id}")).await?;
            println!("User {user} removed.");
        }
        UserCommand::Activate { user } => {
            let id = user_id(api, &user).await?;
            api.post(&format!("/api/users/{id}/activate"), json!({})).await?;
            println!("User {user} activated.");
        }
        UserCommand::Deactivate { user } => {
            let id = user_id(api, &user).await?;
            api.post(&format!("/api/users/{id}/deactivate"), json!({})).await?;
            println!("User {user} deactivated: every credential they hold stops working now.");
        }
        UserCommand::ResetPassword { user } => {
            let id = user_id(api, &user).await?;
            let reset: ResetToken = api.post_as(&format!("/api/users/{id}/reset-password"), &json!({})).await?;
            println!("Password of {user} removed. One-time reset token (valid 24 h), for POST /auth/password/reset:");
            println!("{}", reset.reset_token);
        }
        UserCommand::SetPassword { user, password } => {
            let id = user_id(api, &user).await?;
            api.post(&format!("/api/users/{id}/set-password"), serde_json::to_value(NewPassword { password })?).await?;
            println!("Password of {user} set.");
        }
    }
    Ok(())
}

async fn group(api: &Api, cmd: GroupCommand) -> anyhow::Result<()> {
    let path = |g: &str| format!("/api/admin/groups/{}", urlencode(g));
    match cmd {
        GroupCommand::List { json } => {
            let v: Vec<GroupView> = api.get_as("/api/admin/groups").await?;
            output::listing(
                &v,
                json,
                &[
                    ("id", "ID"),
                    ("name", "NAME"),
                    ("origin", "ORIGIN"),
                    ("member_count", "MEMBERS"),
                    ("grant_count", "GRANTS"),
                    ("description", "DESCRIPTION"),
                ],
            );
        }
        GroupCommand::Create { name, description } => {
            let created: GroupView =
                api.post_as("/api/admin/groups", &NewGroup { name: name.clone(), description }).await?;
            println!("Group {name} created (id {}).", created.id);
        }
        GroupCommand::Delete { group } => {
            api.delete(&path(&group)).await?;
            println!("Group {group} deleted with its members and grants.");
        }
        GroupCommand::Members { group, json } => {
            let v: Vec<Member> = api.get_as(&format!("{}/members", path(&group))).await?;
            output::listing(
                &v,
                json,
                &[
                    ("user_id", "USER ID"),
                    ("email", "EMAIL"),
                    ("name", "NAME"),
                    ("active", "ACTIVE"),
                    ("source", "SOURCE"),
                    ("added_at", "ADDED"),
                ],
            );
        }
        GroupCommand::AddMember { group, email } => {
            let body = MemberRef { email: email.clone() };
            let _: MembershipAdded = api.post_as(&format!("{}/members", path(&group)), &body).await?;
            println!("{email} added to {group}.");
        }
        GroupCommand::RemoveMember { group, email } => {
            let id = user_id(api, &email).await?;
            api.delete(&format!("{}/members/{id}", path(&group))).await?;
            println!("{email} removed from {group}.");
        }
    }
    Ok(())
}

async fn grant(api: &Api, cmd: GrantCommand) -> anyhow::Result<()> {
    match cmd {
        GrantCommand::List { resource_type, group, json } => {
            let mut query = Vec::new();
            if let Some(t) = resource_type {
                query.push(format!("resource_type={}", urlencode(&t)));
            }
            if let Some(g) = group {
                query.push(format!("group_id={}", urlencode(&g)));
            }
            let q = if query.is_empty() { String::new() } else { format!("?{}", query.join("&")) };
            let v: Vec<Grant> = api.get_as(&format!("/api/admin/grants{q}")).await?;
            output::listing(
                &v,
                json,
                &[
                    ("id", "ID"),
                    ("group_name", "GROUP"),
                    ("resource_type", "TYPE"),
                    ("resource_id", "RESOURCE"),
                    ("assigned_at", "ASSIGNED"),
                    ("assigned_by", "BY"),
                ],
            );
        }
        GrantCommand::Create { group, resource_type, resource_id } => {
            let body = NewGrant {
                group_id: group.clone(),
                resource_type: resource_type.clone(),
                resource_id: resource_id.clone(),
            };
            let created: Grant = api.post_as("/api/admin/grants", &body).await?;
            println!("Granted {resource_type} {resource_id} to {group} (grant {}).", created.id);
        }
        GrantCommand::Delete { grant_id } => {
            api.delete(&format!("/api/admin/grants/{}", urlencode(&grant_id))).await?;
            println!("Grant {grant_id} deleted.");
        }
        GrantCommand::ResourceTypes { json } => {
            let v: Vec<ResourceTypeInfo> = api.get_as("/api/admin/resource-types").await?;
            output::listing(
                &v,
                json,
                &[("key", "KEY"), ("display_name", "NAME"), ("id_format", "ID FORMAT"), ("description", "DESCRIPTION")],
            );
        }
    }
    Ok(())
}

/// Direct state-DB access on the server host: the way back in when no admin can sign in.
async fn break_glass(email: &str, password: Option<&str>, yes: bool, data_dir: PathBuf) -> anyhow::Result<()> {
    let hash = match password {
        Some(p) => Some(agnes_server::auth::password::hash(p).await.map_err(anyhow::Error::msg)?),
        None => None,
    };
    let layout = agnes_engine::DataLayout::new(&data_dir);
    let state_dir = std::env::var_os("STATE_DIR").filter(|s| !s.is_empty()).map(PathBuf::from);
    let layout = match state_dir {
        Some(d) => layout.with_state_dir(d),
        None => layout,
    };
    let db = layout.state_db();
    if !db.is_file() {
        bail!("no state database at {}: pass the server's --data-dir", db.display());
    }
    if !yes {
        use std::io::IsTerminal;
        if !std::io::stdin().is_terminal() {
            bail!("refusing to grant admin without confirmation: pass --yes");
        }
        eprint!("Make {email} an admin of the agnes server at {}? [y/N] ", data_dir.display());
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            bail!("aborted");
        }
    }
    let store = agnes_store::Store::open(&db).await?;
    let ids = store.identity();
    let user = match ids.user_by_email(email).await? {
        Some(u) => u,
        None => ids.create_user(email, None, None).await?,
    };
    if !user.active {
        ids.set_active(&user.id, true, None).await?;
    }
    if let Some(hash) = &hash {
        ids.set_password_hash(&user.id, Some(hash)).await?;
    }
    let admin =
        ids.group_by_name(agnes_store::identity::ADMIN_GROUP).await?.context("the Admin group is seeded at start")?;
    ids.add_member(&user.id, &admin.id, "cli_break_glass", Some("agnes admin break-glass")).await?;
    store
        .audit()
        .record(&agnes_store::audit::AuditEntry {
            user_id: Some(user.id.clone()),
            action: "break_glass.grant_admin".into(),
            resource: Some(format!("user:{}", user.id)),
            result: Some("success".into()),
            client_kind: Some("cli".into()),
            ..Default::default()
        })
        .await?;
    store.close().await;
    println!("{email} is now an admin.");
    if user.password_hash.is_none() && hash.is_none() {
        println!("They have no password yet: run this again with --password to set one.");
    }
    Ok(())
}
