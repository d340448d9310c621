//! `agnes admin memory list | show | add | update | remove` (corporate memory, over
//! `/api/admin/memory/items`).

use crate::client::api::{urlencode, Api};
use crate::client::output;
use crate::exit::Coded;
use agnes_core::api::{ItemInput, KnowledgeItem, KnowledgeList};
use anyhow::{anyhow, Context};
use clap::Subcommand;
use reqwest::Method;

#[derive(Subcommand)]
pub enum MemoryCommand {
    /// Every knowledge item, drafts included.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One item with its content.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Add an item (a draft unless --status says otherwise).
    Add {
        #[arg(long)]
        title: String,
        /// Who may read it: grant `memory_domain DOMAIN` to a group.
        #[arg(long)]
        domain: String,
        /// The text, or `@file.md`.
        #[arg(long)]
        content: String,
        #[arg(long)]
        category: Option<String>,
        /// `mandatory` (one rule file each), `approved` (combined) or `draft` (not sent).
        #[arg(long)]
        status: Option<String>,
        /// A stable id (1-128 of A-Z a-z 0-9 _ -); generated when absent.
        #[arg(long)]
        id: Option<String>,
    },
    /// Change an item's fields.
    Update {
        id: String,
        #[arg(long)]
        title: Option<String>,
        #[arg(long)]
        domain: Option<String>,
        /// The text, or `@file.md`.
        #[arg(long)]
        content: Option<String>,
        #[arg(long)]
        category: Option<String>,
        #[arg(long)]
        status: Option<String>,
    },
    /// Delete an item; laptops drop its rule at their next pull.
    Remove { id: String },
}

/// `value`, or the contents of the file `@path` names.
fn text(value: &str) -> anyhow::Result<String> {
    match value.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("cannot read {path}")),
        None => Ok(value.to_string()),
    }
}

pub async fn run(api: &Api, cmd: MemoryCommand) -> anyhow::Result<()> {
    match cmd {
        MemoryCommand::List { json } => {
            let v: KnowledgeList = api.get_as("/api/admin/memory/items").await?;
            if json {
                output::json(&v);
            } else {
                output::table(
                    &v.items,
                    &[
                        ("id", "ID"),
                        ("domain", "DOMAIN"),
                        ("status", "STATUS"),
                        ("title", "TITLE"),
                        ("updated_at", "UPDATED"),
                    ],
                );
            }
        }
        MemoryCommand::Show { id, json } => {
            let item: KnowledgeItem = api.get_as(&format!("/api/admin/memory/items/{}", urlencode(&id))).await?;
            if json {
                output::json(&item);
            } else {
                println!("{} [{}, {}]\n\n{}", item.title, item.domain, item.status.as_str(), item.content);
            }
        }
        MemoryCommand::Add { title, domain, content, category, status, id } => {
            let body = ItemInput {
                id,
                title: Some(title),
                content: Some(text(&content)?),
                domain: Some(domain),
                category,
                status,
            };
            let item: KnowledgeItem = api.post_as("/api/admin/memory/items", &body).await?;
            println!("Added {} ({}, {}).", item.id, item.domain, item.status.as_str());
            if item.status == agnes_core::api::KnowledgeStatus::Draft {
                println!("It is a draft: publish it with `agnes admin memory update {} --status approved`.", item.id);
            }
        }
        MemoryCommand::Update { id, title, domain, content, category, status } => {
            let content = content.as_deref().map(text).transpose()?;
            let body = ItemInput { id: None, title, content, domain, category, status };
            if body == (ItemInput { id: None, title: None, content: None, domain: None, category: None, status: None })
            {
                return Err(Coded::wrap(
                    2,
                    anyhow!("nothing to change: give at least one field, e.g. --status approved"),
                ));
            }
            let path = format!("/api/admin/memory/items/{}", urlencode(&id));
            let item: KnowledgeItem = api.call_as(Method::PUT, &path, Some(&body)).await?;
            println!("Updated {} ({}, {}).", item.id, item.domain, item.status.as_str());
        }
        MemoryCommand::Remove { id } => {
            api.delete(&format!("/api/admin/memory/items/{}", urlencode(&id))).await?;
            println!("Removed {id}.");
        }
    }
    Ok(())
}
