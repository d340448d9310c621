//! `agnes capture-session` and `agnes push` (spec §4.7): Claude Code session transcripts
//! and CLAUDE.local.md go back to the server.
//!
//! The SessionStart hook queues the session (`.claude/agnes-sessions.txt`, TSV
//! `session_id<TAB>transcript path`); the SessionEnd hook pushes the queue in the
//! background. A push takes the queue aside first, so a crash or an unreachable server
//! loses nothing: what was not uploaded goes back into the queue.

use crate::client::api::{Api, ApiFailure};
use crate::client::workspace::Workspace;
use anyhow::Context;
use serde_json::{json, Value};
use std::io::Read;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct PushArgs {
    #[arg(long)]
    quiet: bool,
    #[arg(long)]
    json: bool,
    #[arg(long)]
    dry_run: bool,
}

fn queue(ws: &Workspace) -> PathBuf {
    ws.root().join(".claude/agnes-sessions.txt")
}

fn taken(ws: &Workspace) -> PathBuf {
    ws.root().join(".claude/agnes-sessions.pushing")
}

fn private_ids(ws: &Workspace) -> Vec<String> {
    std::fs::read_to_string(ws.root().join(".claude/agnes-private.txt"))
        .unwrap_or_default()
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

fn entries(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(id, path)| (id.trim().to_string(), path.trim().to_string()))
        .filter(|(id, _)| !id.is_empty())
        .collect()
}

fn append(path: &Path, lines: &[(String, String)]) -> anyhow::Result<()> {
    use std::io::Write;
    if lines.is_empty() {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    for (id, p) in lines {
        writeln!(f, "{id}\t{p}")?;
    }
    Ok(())
}

/// Read the SessionStart hook's JSON (`session_id`, `transcript_path`) and queue it.
pub fn capture() -> anyhow::Result<()> {
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text)?;
    let v: Value = serde_json::from_str(&text).context("expected the hook's JSON on standard input")?;
    let id = v["session_id"].as_str().context("no session_id in the hook input")?;
    let path = v["transcript_path"].as_str().context("no transcript_path in the hook input")?;
    let ws = Workspace::current()?;
    let already = entries(&std::fs::read_to_string(queue(&ws)).unwrap_or_default()).iter().any(|(i, _)| i == id);
    if !already {
        append(&queue(&ws), &[(id.to_string(), path.to_string())])?;
    }
    Ok(())
}

/// A multipart body with one `file` field.
fn safe_name(id: &str) -> String {
    let s: String =
        id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).take(190).collect();
    format!("{s}.jsonl")
}

pub async fn run(args: PushArgs) -> anyhow::Result<()> {
    let ws = Workspace::current()?;
    let Some(_lock) = ws.try_lock_named(".push.lock")? else {
        return Ok(()); // another push is running: nothing to do
    };
    // Recover a queue a crashed push had taken aside, then take the current one.
    let mut pending = entries(&std::fs::read_to_string(taken(&ws)).unwrap_or_default());
    if !args.dry_run {
        if let Ok(text) = std::fs::read_to_string(queue(&ws)) {
            pending.extend(entries(&text));
            append(&taken(&ws), &entries(&text))?;
            let _ = std::fs::remove_file(queue(&ws));
        }
    } else {
        pending.extend(entries(&std::fs::read_to_string(queue(&ws)).unwrap_or_default()));
    }
    pending.dedup();
    let private = private_ids(&ws);
    let (skipped_private, to_send): (Vec<_>, Vec<_>) = pending.into_iter().partition(|(id, _)| private.contains(id));
    let local_md = ws.root().join(".claude/CLAUDE.local.md");
    if args.dry_run {
        let out = json!({"dry_run": true, "would_upload": {"sessions": to_send.len(), "local_md": local_md.is_file()}, "would_skip_private": skipped_private.len()});
        crate::client::output::json(&out);
        return Ok(());
    }
    let api = Api::from_config();
    if !api.has_token() {
        std::fs::rename(taken(&ws), queue(&ws)).ok();
        return Err(ApiFailure::NotLoggedIn.into());
    }
    let (mut sent, mut dropped, mut skipped, mut keep, mut errors) = (0, 0, 0, Vec::new(), Vec::new());
    for (id, path) in to_send {
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(_) => {
                skipped += 1; // the transcript is gone: nothing to send, ever
                continue;
            }
        };
        let (content_type, body) = crate::client::api::multipart_file("file", &safe_name(&id), &bytes);
        match api.post_bytes("/api/upload/sessions", &content_type, body).await {
            Ok(_) => sent += 1,
            Err(ApiFailure::Http { status, detail }) if status.is_client_error() && status.as_u16() != 401 => {
                dropped += 1; // refused for good (too large, bad name): retrying cannot help
                errors.push(json!({"session": id, "error": crate::client::api::render_error(status, &detail)}));
            }
            Err(e) => {
                errors.push(json!({"session": id, "error": e.to_string()}));
                keep.push((id, path));
            }
        }
    }
    let mut local_md_sent = false;
    if local_md.is_file() {
        let content = std::fs::read_to_string(&local_md).unwrap_or_default();
        match api.post("/api/upload/local-md", json!({"content": content})).await {
            Ok(_) => local_md_sent = true,
            Err(e) => errors.push(json!({"local_md": true, "error": e.to_string()})),
        }
    }
    append(&queue(&ws), &keep)?;
    let _ = std::fs::remove_file(taken(&ws));
    let out = json!({"sessions": sent, "local_md": local_md_sent, "errors": errors, "skipped": skipped, "private_skipped": skipped_private.len(), "dropped_permanent": dropped});
    if args.json {
        crate::client::output::json(&out);
    } else if !args.quiet {
        println!("Pushed {sent} session(s){}.", if local_md_sent { " and CLAUDE.local.md" } else { "" });
    }
    if !keep.is_empty() {
        anyhow::bail!("{} session(s) could not be sent and stay queued for the next push", keep.len());
    }
    Ok(())
}
