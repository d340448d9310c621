//! Corporate memory, read side: admins curate knowledge items, grants of `memory_domain`
//! decide who receives them, and `agnes pull` writes them as Claude Code rules.

mod common;

use common::{setup, Cli};
use serde_json::{json, Value};

fn ids(items: &Value) -> Vec<&str> {
    items.as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn knowledge_reaches_exactly_the_granted_agents() {
    let f = setup(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let admin = Cli::new(&f.server.url, &f.admin, &dir.path().join("admin"));
    let ana = Cli::new(&f.server.url, &f.analyst, &dir.path().join("ana"));

    let note = dir.path().join("refunds.md");
    std::fs::write(&note, "Revenue is always net of refunds.\nUse `total_amount - refunded_amount`.").unwrap();
    let add = |args: &[&str]| {
        let mut all = vec!["admin", "memory", "add"];
        all.extend_from_slice(args);
        admin.expect(0, &all)
    };
    let out = add(&[
        "--id",
        "refunds",
        "--title",
        "Revenue is net",
        "--domain",
        "finance",
        "--content",
        &format!("@{}", note.display()),
        "--status",
        "mandatory",
    ]);
    assert!(out.contains("Added refunds (finance, mandatory)"), "{out}");
    add(&[
        "--id",
        "fiscal",
        "--title",
        "Fiscal year starts in April",
        "--domain",
        "finance",
        "--content",
        "FY2025 = 2025-04-01..2026-03-31",
        "--status",
        "approved",
    ]);
    add(&[
        "--id",
        "churn",
        "--title",
        "Churn is 90 days idle",
        "--domain",
        "product",
        "--content",
        "A customer churns after 90 days without an order.",
        "--status",
        "approved",
    ]);
    let out = add(&["--id", "wip", "--title", "Not yet agreed", "--domain", "finance", "--content", "TBD"]);
    assert!(out.contains("draft"), "{out}");

    // Bad input and wrong callers.
    let (s, v) = f
        .http
        .post(
            "/api/admin/memory/items",
            Some(&f.admin),
            json!({"id": "refunds", "title": "t", "content": "c", "domain": "finance"}),
        )
        .await;
    assert_eq!(s, 409, "{v}");
    let (s, v) = f
        .http
        .post(
            "/api/admin/memory/items",
            Some(&f.admin),
            json!({"title": "t", "content": "c", "domain": "finance", "status": "final"}),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    let (s, v) = f
        .http
        .post(
            "/api/admin/memory/items",
            Some(&f.admin),
            json!({"id": "../x", "title": "t", "content": "c", "domain": "finance"}),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    let (s, _) = f
        .http
        .post("/api/admin/memory/items", Some(&f.analyst), json!({"title": "t", "content": "c", "domain": "finance"}))
        .await;
    assert_eq!(s, 403);

    // Nothing granted: the analyst receives nothing; the admin receives every published item.
    let (_, bundle) = f.http.get("/api/memory/bundle", &f.analyst).await;
    assert_eq!((ids(&bundle["mandatory"]).len(), ids(&bundle["approved"]).len()), (0, 0), "{bundle}");
    let (_, all) = f.http.get("/api/memory/bundle", &f.admin).await;
    assert_eq!((ids(&all["mandatory"]), ids(&all["approved"])), (vec!["refunds"], vec!["fiscal", "churn"]), "{all}");

    let grant = json!({"group_id": "Analysts", "resource_type": "memory_domain", "resource_id": "finance"});
    let (s, v) = f.http.post("/api/admin/grants", Some(&f.admin), grant).await;
    assert_eq!(s, 201, "{v}");
    let (_, bundle) = f.http.get("/api/memory/bundle", &f.analyst).await;
    assert_eq!((ids(&bundle["mandatory"]), ids(&bundle["approved"])), (vec!["refunds"], vec!["fiscal"]), "{bundle}");
    assert!(!bundle.to_string().contains("TBD"), "drafts are never sent");

    // `agnes pull` writes the rules.
    let pulled: Value = serde_json::from_str(&ana.expect(0, &["pull", "--json"])).unwrap();
    assert_eq!(pulled["rules_count"], 2, "{pulled}");
    let rules = ana.workspace.join(".claude/rules");
    let refunds = std::fs::read_to_string(rules.join("km_refunds.md")).unwrap();
    assert!(refunds.starts_with("# Revenue is net") && refunds.contains("net of refunds"), "{refunds}");
    let approved = std::fs::read_to_string(rules.join("km_approved.md")).unwrap();
    assert!(approved.contains("## Fiscal year starts in April") && !approved.contains("Churn"), "{approved}");

    // An item unpublished or deleted leaves the laptop at the next pull.
    admin.expect(0, &["admin", "memory", "update", "refunds", "--status", "draft"]);
    admin.expect(0, &["admin", "memory", "remove", "fiscal"]);
    assert_eq!(admin.run(&["admin", "memory", "remove", "fiscal"]).status.code(), Some(1), "already gone");
    let out = ana.expect(0, &["pull"]);
    assert!(out.contains("Rules: 0."), "{out}");
    assert!(!rules.join("km_refunds.md").exists() && !rules.join("km_approved.md").exists());
    let listed: Value = serde_json::from_str(&admin.expect(0, &["admin", "memory", "list", "--json"])).unwrap();
    assert_eq!(listed["count"], 3, "{listed}");
}
