-- Jira issues waiting to reach the tables: one row per accepted webhook delivery, or per
-- issue a reconcile or backfill found. A row goes when the tables hold its issue as Jira
-- had it after the event; until then it survives restarts (an accepted delivery is never
-- lost) and a failing one waits until `retry_at`.
CREATE TABLE jira_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    issue_key TEXT NOT NULL,
    -- The delivery's `webhookEvent`, or `reconcile` / `backfill`.
    event TEXT NOT NULL,
    received_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    retry_at TEXT,
    last_error TEXT
);
CREATE INDEX jira_events_by_key ON jira_events (issue_key, id);

-- The resumable jobs of the Jira source: `backfill` (its search, the page it reached and
-- its progress) and `reconcile` (when it last asked Jira what changed).
CREATE TABLE jira_jobs (
    name TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    jql TEXT,
    next_page_token TEXT,
    pages INTEGER NOT NULL DEFAULT 0,
    issues INTEGER NOT NULL DEFAULT 0,
    started_at TEXT,
    finished_at TEXT,
    error TEXT
);
