-- Cost guardrails kept as state (DESIGN decision 8): every endpoint that runs user SQL
-- takes a slot here while it runs and adds what it answered to the day's usage.
CREATE TABLE quota_slots (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL,
    acquired_at TEXT NOT NULL
);
CREATE INDEX quota_slots_user ON quota_slots (user_id);

CREATE TABLE quota_usage (
    user_id TEXT NOT NULL,
    day     TEXT NOT NULL,          -- UTC date, YYYY-MM-DD
    bytes   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, day)
);
