//! The Jira connector against the fake Jira: refresh raw issues (paging, remote links,
//! attachments, retries), then sync the six tables and read the parquet row by row.

use super::*;
use agnes_engine::confined::Limits;
use agnes_engine::DataLayout;
use agnes_fakes::jira::{FakeJira, IssueSpec};
use serde_json::json;

struct Site {
    fake: FakeJira,
    source: JiraSource,
    raw: RawStore,
    layout: DataLayout,
    _dir: tempfile::TempDir,
}

fn site() -> Site {
    let fake = FakeJira::start("sync@corp.example", "api-token-1");
    std::env::set_var("AGNES_TEST_JIRA_EMAIL", "sync@corp.example");
    std::env::set_var("AGNES_TEST_JIRA_TOKEN", "api-token-1");
    let section = json!({"base_url": fake.url, "email_env": "AGNES_TEST_JIRA_EMAIL", "api_token_env": "AGNES_TEST_JIRA_TOKEN",
                         "custom_fields": {"request_type": "customfield_10010", "first_response": "customfield_10020",
                                           "satisfaction": "customfield_10030", "organizations": "customfield_10040",
                                           "severity": "customfield_10050"},
                         "max_attachment_bytes": 100});
    let source = JiraSource::from_section(Some(&section)).unwrap().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let layout = DataLayout::new(dir.path().join("data"));
    layout.create().unwrap();
    let raw = RawStore::new(source.data_dir(&layout.extracts_dir()));
    Site { fake, source, raw, layout, _dir: dir }
}

fn client(site: &Site) -> JiraClient {
    JiraClient::connect(&site.source).unwrap().with_backoff(std::time::Duration::from_millis(10))
}

fn spec(key: &str, created: &str) -> IssueSpec {
    IssueSpec::new(key, &format!("{key} summary"), created)
}

fn table(entity: &str) -> TableSpec {
    let mut t = TableSpec::new(entity, SourceType::Jira, QueryMode::Local, chrono::Utc::now());
    t.source_table = Some(entity.into());
    t.sync_strategy = SyncStrategy::Partitioned;
    t
}

impl Site {
    fn refresh(&self, key: &str) -> Refreshed {
        let done = refresh(&client(self), &self.source, &self.raw, key, false).unwrap();
        self.raw.record_changes(&done.keys).unwrap();
        done
    }

    fn sync(&self, entity: &str, version: Option<&str>) -> SyncedTable {
        let connector = JiraConnector::new(self.source.clone(), self.raw.clone());
        let ctx =
            SyncContext { layout: &self.layout, limits: &Limits::default(), last_sync: None, source_version: version };
        connector.sync_table(&table(entity), &ctx).unwrap()
    }

    /// Every row of a synced table as text, after the part it lies in, in order.
    fn rows(&self, entity: &str, columns: &str) -> Vec<String> {
        let dir = self.layout.table_part_dir(SOURCE, entity);
        let duck = agnes_engine::duck::open_in_memory().unwrap();
        let mut rows = Vec::new();
        for file in agnes_engine::table_data::TableData::Parts(dir).files() {
            let part = file.file_stem().unwrap().to_string_lossy().into_owned();
            let sql = format!("SELECT concat_ws(' | ', {columns}) FROM read_parquet('{}')", file.display());
            let mut stmt = duck.prepare(&sql).unwrap();
            rows.extend(
                stmt.query_map([], |r| r.get::<_, String>(0)).unwrap().map(|r| format!("{part} {}", r.unwrap())),
            );
        }
        rows.sort();
        rows
    }
}

#[test]
fn issues_become_six_tables_by_month_and_follow_every_change() {
    let site = site();
    let mut sup1 = spec("SUP-1", "2024-01-31T23:30:00.000-0200");
    sup1.description = Some("Login fails\n\nsince Monday".into());
    sup1.assignee = Some(("ana@corp.example", "Ana"));
    sup1.labels = vec!["vip".into(), "login".into()];
    sup1.comments = (1..=5)
        .map(|i| {
            (
                format!("100{i}"),
                "bob@corp.example".to_string(),
                format!("comment {i}"),
                "2024-02-01T09:00:00.000+0000".to_string(),
            )
        })
        .collect();
    sup1.changes = (1..=5)
        .map(|i| {
            (
                format!("200{i}"),
                "status".to_string(),
                format!("s{i}"),
                format!("s{}", i + 1),
                format!("2024-02-0{i}T10:00:00.000+0000"),
            )
        })
        .collect();
    sup1.attachments = vec![
        ("300".into(), "screen shot.png".into(), b"PNG bytes".to_vec()),
        ("301".into(), "dump.bin".into(), vec![0u8; 101]),
    ];
    sup1.links = vec![("400".into(), "Blocks".into(), true, "SUP-2".into(), "the other".into())];
    sup1.custom.insert("customfield_10010".into(), json!({"requestType": {"id": "88", "name": "Get IT help"},
                                                         "currentStatus": {"status": "Waiting for support", "statusCategory": "NEW"}}));
    sup1.custom.insert("customfield_10020".into(), json!({"id": "58", "name": "Time to first response",
        "completedCycles": [{"breached": true, "goalDuration": {"millis": 3_600_000}, "elapsedTime": {"millis": 7_200_000}}]}));
    sup1.custom.insert("customfield_10030".into(), json!({"rating": 4}));
    sup1.custom.insert("customfield_10040".into(), json!([{"id": "1", "name": "Acme"}, {"id": "2", "name": "Globex"}]));
    sup1.custom.insert("customfield_10050".into(), json!({"value": "Sev 2", "id": "10100"}));
    site.fake.put(sup1);
    site.fake.set_remote_links(
        "SUP-1",
        &[(10000, "https://wiki.example/p/1", "Runbook", "Confluence", "com.atlassian.confluence")],
    );
    site.fake.put(spec("SUP-2", "2024-03-10T08:00:00.000+0000"));
    // Rate limited first: the client waits and carries on.
    site.fake.fail_next(2, 429, 0);
    let done = site.refresh("SUP-1");
    assert!(done.warnings.is_empty(), "{:?}", done.warnings);
    site.refresh("SUP-2");
    let requests = site.fake.requests();
    assert!(requests.iter().any(|r| r == "GET /rest/api/3/issue/SUP-1/comment"), "comments past the first page");
    assert!(requests.iter().any(|r| r == "GET /rest/api/3/issue/SUP-1/changelog"), "the whole changelog");

    let mut versions = Vec::new();
    for e in ENTITIES {
        let synced = site.sync(e.name, None);
        versions.push(synced.source_version.clone().unwrap());
    }
    assert_eq!(versions, vec!["2".to_string(); 6], "applied up to the journal's end");
    // Created 2024-01-31 23:30 at -02:00 is February in UTC.
    assert_eq!(
        site.rows("issues", "issue_key, summary, status, status_category, assignee_email, created_at::VARCHAR, labels::VARCHAR, \
                   attachment_count, comment_count, issuelink_count, request_type, request_status, severity, \
                   organizations::VARCHAR, satisfaction, first_response_breached, first_response_goal_millis, \
                   first_response_elapsed_millis, _raw_file, description"),
        [
            "2024-02 SUP-1 | SUP-1 summary | Waiting for support | To Do | ana@corp.example | 2024-02-01 01:30:00+00 | [vip, login] | \
             2 | 5 | 1 | Get IT help | Waiting for support | Sev 2 | [Acme, Globex] | 4 | true | 3600000 | 7200000 | \
             issues/SUP-1.json | Login fails\nsince Monday",
            "2024-03 SUP-2 | SUP-2 summary | Waiting for support | To Do | 2024-03-10 08:00:00+00 | [] | 0 | 0 | 0 | \
             issues/SUP-2.json",
        ]
    );
    let comments = site.rows("comments", "issue_key, comment_id, author_email, body");
    assert_eq!(comments.len(), 5);
    assert_eq!(comments[4], "2024-02 SUP-1 | 1005 | bob@corp.example | comment 5");
    let changes = site.rows("changelog", "issue_key, change_id, field_name, from_value, to_value, changed_at::VARCHAR");
    assert_eq!(changes.len(), 5, "{changes:?}");
    assert_eq!(changes[0], "2024-02 SUP-1 | 2001 | status | s1 | s2 | 2024-02-01 10:00:00+00");
    let attachment = site
        .rows("attachments", "issue_key, attachment_id, filename, hierarchical_path, size_bytes, local_path IS NULL");
    assert_eq!(
        attachment,
        [
            "2024-02 SUP-1 | 300 | screen shot.png | attachments/SUP/SUP-1/300_screen shot.png | 9 | false",
            "2024-02 SUP-1 | 301 | dump.bin | attachments/SUP/SUP-1/301_dump.bin | 101 | true",
        ],
        "over the size limit: listed, not downloaded"
    );
    assert!(!site.fake.requests().iter().any(|r| r.ends_with("/attachment/content/301")));
    let (_, path) = site.raw.attachment_path("SUP-1", "300", "screen shot.png");
    assert_eq!(std::fs::read(path).unwrap(), b"PNG bytes");
    assert_eq!(
        site.rows("issuelinks", "issue_key, link_id, link_type, direction, linked_issue_key, linked_issue_status"),
        ["2024-02 SUP-1 | 400 | Blocks | outward | SUP-2 | Done"]
    );
    assert_eq!(
        site.rows("remote_links", "issue_key, remote_link_id, url, title, application_name, application_type"),
        ["2024-02 SUP-1 | 10000 | https://wiki.example/p/1 | Runbook | Confluence | com.atlassian.confluence"]
    );

    // SUP-2's creation moves to January; SUP-1 loses comments; remote links fail (kept).
    let march = site.layout.table_part_dir(SOURCE, "issues").join("2024-03.parquet");
    assert!(march.is_file());
    let mut moved = site.fake.get("SUP-2").unwrap();
    moved.created = "2024-01-05T08:00:00.000+0000".into();
    site.fake.put(moved);
    let mut fewer = site.fake.get("SUP-1").unwrap();
    fewer.comments.truncate(1);
    site.fake.put(fewer);
    site.fake.fail_remote_links("SUP-1", true);
    let done = site.refresh("SUP-1");
    assert_eq!(done.warnings.len(), 1, "{:?}", done.warnings);
    site.refresh("SUP-2");
    for e in ENTITIES {
        assert_eq!(site.sync(e.name, Some("2")).source_version.as_deref(), Some("4"));
    }
    assert_eq!(site.rows("issues", "issue_key"), ["2024-01 SUP-2", "2024-02 SUP-1"]);
    assert!(!march.exists(), "an emptied month goes");
    assert_eq!(site.rows("comments", "comment_id"), ["2024-02 1001"]);
    assert_eq!(site.rows("remote_links", "remote_link_id"), ["2024-02 10000"], "kept when they cannot be read");

    // Deleted in Jira: gone from every table; a table with no rows keeps its columns.
    site.fake.delete("SUP-1");
    site.refresh("SUP-1");
    let mut parts = Vec::new();
    for e in ENTITIES {
        parts.push(site.sync(e.name, Some("4")).parts().iter().map(|p| p.key.clone()).collect::<Vec<_>>());
    }
    assert_eq!(site.rows("issues", "issue_key"), ["2024-01 SUP-2"]);
    assert_eq!(parts[1], ["empty"], "comments: no rows, one empty part");
    assert!(site.rows("comments", "comment_id").is_empty());
    let duck = agnes_engine::duck::open_in_memory().unwrap();
    let cols: i64 = duck
        .query_row(
            &format!(
                "SELECT count(*) FROM (DESCRIBE SELECT * FROM read_parquet('{}/*.parquet'))",
                site.layout.table_part_dir(SOURCE, "comments").display()
            ),
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(cols, 8);

    // Nothing changed since: the same parts, not rewritten.
    let before = site.sync("issues", Some("5"));
    assert_eq!(before.source_version.as_deref(), Some("5"));
    assert_eq!(site.sync("issues", Some("5")), before);
}

#[test]
fn transient_failures_are_retried_and_lasting_ones_reported() {
    let site = site();
    site.fake.put(spec("OPS-7", "2024-05-01T00:00:00.000+0000"));
    site.fake.fail_next(3, 503, 0);
    assert_eq!(site.refresh("OPS-7").keys, ["OPS-7"]);
    site.fake.fail_next(10, 429, 0);
    let e = refresh(&client(&site), &site.source, &site.raw, "OPS-7", false).unwrap_err().to_string();
    assert!(e.contains("429") && e.contains("5 attempts"), "{e}");

    std::env::set_var("AGNES_TEST_JIRA_TOKEN", "wrong");
    let e = refresh(&client(&site), &site.source, &site.raw, "OPS-7", false).unwrap_err().to_string();
    assert!(e.contains("401") && e.contains("Client must be authenticated"), "{e}");
    assert!(!e.contains("wrong"), "the token is never in a message");
}

#[test]
fn search_pages_through_keys() {
    let site = site();
    for n in 1..=230 {
        let mut s = spec(&format!("SUP-{n}"), "2024-05-01T00:00:00.000+0000");
        s.updated =
            if n % 2 == 0 { "2024-06-02T00:00:00.000+0000".into() } else { "2024-05-01T00:00:00.000+0000".into() };
        site.fake.put(s);
    }
    let c = client(&site);
    let (mut keys, mut page) = (Vec::new(), None);
    loop {
        let (got, next) = c.search("updated >= \"2024-06-01 00:00\" ORDER BY updated ASC", page.as_deref()).unwrap();
        keys.extend(got);
        match next {
            Some(n) => page = Some(n),
            None => break,
        }
    }
    assert_eq!(keys.len(), 115);
    assert_eq!(keys[0], "SUP-2");
    let e = c.search("ORDER BY created", None).unwrap_err().to_string();
    assert!(e.contains("Unbounded JQL"), "{e}");
}
