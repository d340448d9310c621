//! `agnes init` (spec §4.6): set a workspace up for an analyst and their AI agent.
//!
//! Verifies the token, saves the configuration, writes CLAUDE.md from the server's welcome
//! text, merges agnes's Claude Code hooks into `.claude/settings.json` (idempotently,
//! keeping every third-party hook and setting), creates `.claude/CLAUDE.local.md`, runs the
//! first pull and writes the sentinel. Hooks never block a session: every one ends in
//! `|| true` and the push runs in the background.

use super::pull::{self, PullArgs};
use crate::client::api::{Api, ApiFailure};
use crate::client::config;
use crate::client::workspace::Workspace;
use agnes_core::api::Welcome;
use anyhow::{bail, Context};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct InitArgs {
    #[arg(long)]
    server_url: String,
    /// A personal access token.
    #[arg(long)]
    token: String,
    /// Re-initialize: back up CLAUDE.md and overwrite it.
    #[arg(long)]
    force: bool,
    /// The workspace directory (default: AGNES_LOCAL_DIR or the current directory).
    #[arg(long)]
    workspace: Option<PathBuf>,
    #[arg(long)]
    skip_materialize: bool,
}

/// Marks the hook entries agnes owns, so a re-run replaces them and nothing else.
const MARKER: &str = "# agnes-hook";
/// Commands of hooks the original agnes installed: replaced too, so workspaces migrate.
const LEGACY: &[&str] =
    &["agnes capture-session", "agnes self-upgrade", "agnes pull", "agnes push", "agnes refresh-marketplace"];

fn ours(entry: &Value) -> bool {
    let commands: Vec<&str> =
        entry["hooks"].as_array().map(|h| h.iter().filter_map(|x| x["command"].as_str()).collect()).unwrap_or_default();
    !commands.is_empty() && commands.iter().all(|c| c.contains(MARKER) || LEGACY.iter().any(|l| c.contains(l)))
}

fn hook(command: &str) -> Value {
    json!({"hooks": [{"type": "command", "command": format!("{command} {MARKER}")}]})
}

/// Merge agnes's hooks into Claude Code settings, keeping everything else.
/// `.mcp.json` with the `agnes` server entry (Claude Code's project MCP configuration);
/// other servers are kept.
pub fn merge_mcp(mut config: Value) -> Value {
    if !config.is_object() {
        config = json!({});
    }
    if !config["mcpServers"].is_object() {
        config["mcpServers"] = json!({});
    }
    config["mcpServers"]["agnes"] = json!({"command": "agnes", "args": ["mcp"]});
    config
}

pub fn merge_hooks(mut settings: Value) -> Value {
    if !settings.is_object() {
        settings = json!({});
    }
    let wanted = [
        ("SessionStart", hook("bash -c \"agnes capture-session 2>/dev/null || true\"")),
        ("SessionStart", hook("bash -c \"agnes pull --quiet 2>/dev/null || true\"")),
        ("SessionEnd", hook("bash -c \"( nohup agnes push --quiet </dev/null >/dev/null 2>&1 & ) ; true\"")),
    ];
    let hooks = settings.as_object_mut().expect("an object").entry("hooks").or_insert_with(|| json!({}));
    if !hooks.is_object() {
        *hooks = json!({});
    }
    for event in ["SessionStart", "SessionEnd"] {
        let list = hooks.as_object_mut().expect("an object").entry(event).or_insert_with(|| json!([]));
        if !list.is_array() {
            *list = json!([]);
        }
        let list = list.as_array_mut().expect("an array");
        list.retain(|e| !ours(e));
        list.extend(wanted.iter().filter(|(e, _)| *e == event).map(|(_, entry)| entry.clone()));
    }
    settings
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

pub async fn run(args: InitArgs) -> anyhow::Result<()> {
    let ws = match &args.workspace {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
            Workspace::at(d.clone())
        }
        None => Workspace::current()?,
    };
    let root = ws.root().to_path_buf();
    if ws.init_sentinel().is_file() && !args.force {
        bail!("this workspace is already initialized ({}); run with --force to redo it", ws.init_sentinel().display());
    }
    let server = args.server_url.trim_end_matches('/').to_string();
    let api = Api::new(server.clone(), Some(args.token.trim().to_string()));
    api.get("/api/catalog/tables").await.map_err(|e| match e {
        ApiFailure::Http { status, .. } if status.as_u16() == 401 => {
            anyhow::anyhow!("auth_failed: the server refused this token")
        }
        other => anyhow::Error::new(other),
    })?;
    config::save_server(&server)?;
    config::save_token(args.token.trim(), "")?;

    let claude_md = root.join("CLAUDE.md");
    if args.force && claude_md.is_file() {
        let backup = root.join(format!("CLAUDE.md.bak.{}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ")));
        std::fs::copy(&claude_md, &backup).with_context(|| format!("cannot back up {}", claude_md.display()))?;
    }
    let welcome: Welcome =
        api.get_as(&format!("/api/welcome?server_url={}", crate::client::api::urlencode(&server))).await?;
    write(&claude_md, &welcome.content)?;

    let settings_path = root.join(".claude/settings.json");
    let settings = match std::fs::read_to_string(&settings_path) {
        Ok(text) => serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON; fix or remove it", settings_path.display()))?,
        Err(_) => json!({"model": "sonnet", "permissions": {"allow": ["Read", "Bash", "Grep", "Glob"]}}),
    };
    write(&settings_path, &serde_json::to_string_pretty(&merge_hooks(settings))?)?;
    let mcp_path = root.join(".mcp.json");
    let mcp = match std::fs::read_to_string(&mcp_path) {
        Ok(text) => serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON; fix or remove it", mcp_path.display()))?,
        Err(_) => json!({}),
    };
    write(&mcp_path, &serde_json::to_string_pretty(&merge_mcp(mcp))?)?;
    let local_md = root.join(".claude/CLAUDE.local.md");
    if !local_md.exists() {
        write(&local_md, "# Personal notes\n\nNotes for your own sessions; agnes uploads this file to the server with `agnes push`.\n")?;
    }

    pull::run_with(&api, &ws, PullArgs { skip_materialize: args.skip_materialize, quiet: true, ..Default::default() })
        .await
        .context("manifest_unauthorized or download failure during the first pull")?;

    let now = chrono::Utc::now().to_rfc3339();
    write(
        &root.join("AGNES_WORKSPACE.md"),
        &format!("# agnes workspace\n\n- created: {now}\n- server: {server}\n- path: {}\n\nRun `agnes pull` to refresh the data, `agnes catalog` to see what is available.\n", root.display()),
    )?;
    write(
        &ws.init_sentinel(),
        &serde_json::to_string_pretty(
            &json!({"completed_at": now, "agnes_version": agnes_core::VERSION, "server_url": server}),
        )?,
    )?;
    let tables = ws.load_state().tables.len();
    println!(
        "Workspace ready.\n  server:    {server}\n  tables:    {tables} pulled\n  workspace: {}\nTry: agnes catalog\n\
         MCP: Claude Code finds `agnes mcp` in .mcp.json. For Claude Desktop or another client, add:\n  \
         \"agnes\": {{\"command\": \"agnes\", \"args\": [\"mcp\"], \"env\": {{\"AGNES_LOCAL_DIR\": \"{}\"}}}}",
        root.display(),
        root.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mcp_entry_is_added_once_beside_other_servers() {
        let other = json!({"mcpServers": {"github": {"command": "gh-mcp"}}});
        let merged = merge_mcp(merge_mcp(other));
        assert_eq!(merged["mcpServers"]["github"]["command"], "gh-mcp");
        assert_eq!(merged["mcpServers"]["agnes"], json!({"command": "agnes", "args": ["mcp"]}));
        assert_eq!(merged["mcpServers"].as_object().unwrap().len(), 2);
    }

    #[test]
    fn hook_merge_is_idempotent_and_keeps_third_party_entries() {
        let mine = json!({"theme": "dark", "hooks": {
            "SessionStart": [{"hooks": [{"type": "command", "command": "echo hello"}]}],
            "SessionEnd": [{"hooks": [{"type": "command", "command": "bash -c \"agnes push --quiet\""}]}],
            "PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "lint"}]}],
        }});
        let once = merge_hooks(mine);
        let twice = merge_hooks(once.clone());
        assert_eq!(once, twice, "idempotent");
        assert_eq!(once["theme"], "dark");
        assert_eq!(once["hooks"]["PreToolUse"][0]["hooks"][0]["command"], "lint");
        let start = once["hooks"]["SessionStart"].as_array().unwrap();
        assert_eq!(start.len(), 3);
        assert_eq!(start[0]["hooks"][0]["command"], "echo hello");
        assert!(start[1]["hooks"][0]["command"].as_str().unwrap().contains("agnes capture-session"));
        assert!(start[2]["hooks"][0]["command"].as_str().unwrap().contains("agnes pull --quiet"));
        let end = once["hooks"]["SessionEnd"].as_array().unwrap();
        assert_eq!(end.len(), 1, "the legacy agnes entry was replaced, not duplicated");
        assert!(
            end[0]["hooks"][0]["command"].as_str().unwrap().contains("|| true")
                || end[0]["hooks"][0]["command"].as_str().unwrap().contains("; true")
        );
        assert_eq!(merge_hooks(json!("garbage"))["hooks"]["SessionStart"].as_array().unwrap().len(), 2);
    }
}
