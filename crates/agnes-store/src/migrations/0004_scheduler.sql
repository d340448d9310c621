-- The in-server scheduler's memory (issue: freshness): what each job last did, and which
-- tables wait before their next attempt after failing. Kept here so a restart neither
-- forgets a failure's backoff nor loses that a run was cut off.
CREATE TABLE scheduler_jobs (
    name             TEXT PRIMARY KEY,
    running_since    TEXT,              -- set while a run is in flight
    last_started_at  TEXT,
    last_finished_at TEXT,
    last_status      TEXT,              -- ok | partial | error | skipped | interrupted
    last_error       TEXT,
    last_duration_ms INTEGER,
    runs             INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE sync_backoff (
    table_id   TEXT PRIMARY KEY,
    failures   INTEGER NOT NULL,
    retry_at   TEXT NOT NULL,
    last_error TEXT
);
