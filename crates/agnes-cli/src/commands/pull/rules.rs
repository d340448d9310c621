//! Step 7 of a pull (spec §4.2): the corporate-memory bundle as Claude Code rules in
//! `.claude/rules/`: one `km_<id>.md` per mandatory item, all approved items in one
//! `km_approved.md`, and any other `km_*.md` (an item revoked, deleted or unpublished)
//! removed. Files appear whole (written aside, then renamed).

use crate::client::api::Api;
use crate::client::workspace::Workspace;
use agnes_core::api::{is_knowledge_id, KnowledgeItem, MemoryBundle};
use std::collections::BTreeSet;
use std::path::Path;

/// Fetch the bundle and write the rules; answers how many rule files are in place.
pub async fn write(api: &Api, ws: &Workspace) -> anyhow::Result<usize> {
    let bundle: MemoryBundle = serde_json::from_value(api.get("/api/memory/bundle").await?)?;
    let dir = ws.root().join(".claude/rules");
    std::fs::create_dir_all(&dir)?;
    let mut written = BTreeSet::new();
    for item in bundle.mandatory.iter().filter(|i| is_knowledge_id(&i.id)) {
        let name = format!("km_{}.md", item.id);
        replace(&dir, &name, &section(item, "#"))?;
        written.insert(name);
    }
    if !bundle.approved.is_empty() {
        let mut text =
            String::from("# Approved knowledge\n\nWhat the company has agreed on; prefer it over guesses.\n");
        for item in &bundle.approved {
            text.push('\n');
            text.push_str(&section(item, "##"));
        }
        replace(&dir, "km_approved.md", &text)?;
        written.insert("km_approved.md".to_string());
    }
    for entry in std::fs::read_dir(&dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("km_") && name.ends_with(".md") && !written.contains(&name) {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(written.len())
}

/// One item as Markdown under a heading of `level`.
fn section(item: &KnowledgeItem, level: &str) -> String {
    let category = item.category.as_deref().map(|c| format!(", {c}")).unwrap_or_default();
    format!(
        "{level} {}\n\n_{}{category}; from agnes, updated {}_\n\n{}\n",
        item.title,
        item.domain,
        item.updated_at,
        item.content.trim_end()
    )
}

fn replace(dir: &Path, name: &str, text: &str) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, dir.join(name))
}
