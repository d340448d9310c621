//! `agnes capture-session` and `agnes push` (spec §4.7): Claude Code session transcripts
//! and CLAUDE.local.md go back to the server.
//!
//! The SessionStart hook queues the session (`.claude/agnes-sessions.txt`, TSV
//! `session_id<TAB>transcript path`); the SessionEnd hook pushes the queue in the
//! background. A push takes the queue aside first, so a crash or an unreachable server
//! loses nothing: what was not uploaded goes back into the queue.

use crate::client::api::{Api, ApiFailure};
use crate::client::workspace::Workspace;
use agnes_core::api::{LocalMd, Uploaded};
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

/// Sessions queued for the next push (also those a crashed push had taken aside).
pub fn pending_sessions(ws: &Workspace) -> usize {
    let mut all = entries(&std::fs::read_to_string(taken(ws)).unwrap_or_default());
    all.extend(entries(&std::fs::read_to_string(queue(ws)).unwrap_or_default()));
    all.sort();
    all.dedup();
    all.len()
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

/// The server's limits (`/api/upload/*`), checked before a byte is read.
const MAX_SESSION_BYTES: u64 = 50 * 1024 * 1024;
const MAX_LOCAL_MD_BYTES: u64 = 1024 * 1024;

/// Where Claude Code keeps this workspace's transcripts: `projects/` of its configuration
/// directory (`CLAUDE_CONFIG_DIR`, else `~/.claude`), in a folder named after the
/// workspace's absolute path with every character other than A-Z, a-z and 0-9 turned
/// into `-`. `None` when there is no such folder (nothing can be uploaded).
fn transcripts_dir(ws: &Workspace) -> Option<PathBuf> {
    let config = std::env::var_os("CLAUDE_CONFIG_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".claude")))?;
    let root = ws.root().canonicalize().ok()?;
    let folder: String =
        root.to_string_lossy().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    config.join("projects").join(folder).canonicalize().ok()
}

/// Why a queued transcript is not uploaded.
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    /// Deleted since it was queued.
    Gone,
    Outside,
    TooLarge(u64),
    Unreadable(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Gone => write!(f, "the file is gone"),
            Refusal::Outside => {
                write!(f, "not a transcript of this workspace (only Claude Code's project folder for it is uploaded)")
            }
            Refusal::TooLarge(n) => write!(f, "{n} bytes is over the server's 50 MiB limit"),
            Refusal::Unreadable(e) => write!(f, "cannot read it: {e}"),
        }
    }
}

/// Open a queued transcript if it is a regular file inside `dir` once every link is
/// resolved, and within the size limit; nothing is read before those checks.
fn open_transcript(dir: Option<&Path>, path: &Path) -> Result<tokio::fs::File, Refusal> {
    let real = match path.canonicalize() {
        Ok(real) => real,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Refusal::Gone),
        Err(e) => return Err(Refusal::Unreadable(e.to_string())),
    };
    if !dir.is_some_and(|dir| real.starts_with(dir)) {
        return Err(Refusal::Outside);
    }
    let file = std::fs::File::open(&real).map_err(|e| Refusal::Unreadable(e.to_string()))?;
    let meta = file.metadata().map_err(|e| Refusal::Unreadable(e.to_string()))?;
    if !meta.is_file() {
        return Err(Refusal::Outside);
    }
    if meta.len() > MAX_SESSION_BYTES {
        return Err(Refusal::TooLarge(meta.len()));
    }
    Ok(tokio::fs::File::from_std(file))
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
    let (mut sent, mut dropped, mut skipped, mut refused, mut keep, mut errors) = (0, 0, 0, 0, Vec::new(), Vec::new());
    let transcripts = transcripts_dir(&ws);
    for (id, path) in to_send {
        let file = match open_transcript(transcripts.as_deref(), Path::new(&path)) {
            Ok(file) => file,
            Err(Refusal::Gone) => {
                skipped += 1; // the transcript is gone: nothing to send, ever
                continue;
            }
            Err(refusal) => {
                refused += 1;
                eprintln!("warning: not uploading {path} (session {id}): {refusal}");
                errors.push(json!({"session": id, "error": refusal.to_string()}));
                continue;
            }
        };
        let (content_type, body) = crate::client::api::multipart_stream("file", &safe_name(&id), file);
        match api.post_bytes("/api/upload/sessions", &content_type, body).await {
            Ok(_) => sent += 1,
            Err(ApiFailure::Http { status, detail, .. }) if status.is_client_error() && status.as_u16() != 401 => {
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
    match std::fs::metadata(&local_md) {
        Ok(meta) if meta.is_file() && meta.len() > MAX_LOCAL_MD_BYTES => {
            eprintln!("warning: not uploading {}: larger than 1 MiB", local_md.display());
            errors.push(json!({"local_md": true, "error": "larger than 1 MiB"}));
        }
        Ok(meta) if meta.is_file() => {
            let content = std::fs::read_to_string(&local_md).unwrap_or_default();
            match api.post_as::<Uploaded>("/api/upload/local-md", &LocalMd { content }).await {
                Ok(_) => local_md_sent = true,
                Err(e) => errors.push(json!({"local_md": true, "error": e.to_string()})),
            }
        }
        _ => {}
    }
    append(&queue(&ws), &keep)?;
    let _ = std::fs::remove_file(taken(&ws));
    let out = json!({"sessions": sent, "local_md": local_md_sent, "errors": errors, "skipped": skipped, "private_skipped": skipped_private.len(), "dropped_permanent": dropped, "refused": refused});
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_inside_the_transcript_folder_open() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("projects/-ws");
        std::fs::create_dir_all(&project).unwrap();
        let project = project.canonicalize().unwrap();
        std::fs::write(project.join("s1.jsonl"), "{}\n").unwrap();
        let secret = dir.path().join("id_rsa");
        std::fs::write(&secret, "KEY").unwrap();
        std::os::unix::fs::symlink(&secret, project.join("link.jsonl")).unwrap();

        assert!(open_transcript(Some(&project), &project.join("s1.jsonl")).is_ok());
        assert_eq!(open_transcript(Some(&project), &secret).unwrap_err(), Refusal::Outside);
        assert_eq!(open_transcript(Some(&project), &project.join("link.jsonl")).unwrap_err(), Refusal::Outside);
        assert_eq!(
            open_transcript(Some(&project), &project.join("../-ws/../../id_rsa")).unwrap_err(),
            Refusal::Outside
        );
        assert_eq!(open_transcript(Some(&project), &project.join("gone.jsonl")).unwrap_err(), Refusal::Gone);
        assert_eq!(open_transcript(None, &project.join("s1.jsonl")).unwrap_err(), Refusal::Outside);
        assert_eq!(open_transcript(Some(&project), &project).unwrap_err(), Refusal::Outside);

        let big = std::fs::File::create(project.join("big.jsonl")).unwrap();
        big.set_len(MAX_SESSION_BYTES + 1).unwrap();
        assert_eq!(
            open_transcript(Some(&project), &project.join("big.jsonl")).unwrap_err(),
            Refusal::TooLarge(MAX_SESSION_BYTES + 1)
        );
    }
}
