-- What BigQuery said of each remote BigQuery table at the last metadata refresh, so the
-- catalog, schema and scan checks answer without calling BigQuery. `columns` is a JSON
-- list of [name, duckdb type]; `clustered_by` a JSON list of names. A failed refresh
-- keeps the last good metadata and records the error beside it.
CREATE TABLE bq_metadata_cache (
    table_id      TEXT PRIMARY KEY REFERENCES table_registry(id) ON DELETE CASCADE,
    path          TEXT NOT NULL,
    entity_type   TEXT,
    columns       TEXT NOT NULL DEFAULT '[]',
    partition_by  TEXT,
    clustered_by  TEXT NOT NULL DEFAULT '[]',
    rows          INTEGER,
    size_bytes    INTEGER,
    refreshed_at  TEXT,
    error_at      TEXT,
    error_msg     TEXT
);

-- The cost ledger: what remote sources billed for each user's queries, per UTC day.
-- The same bytes count against the user's daily budget in quota_usage.
CREATE TABLE remote_usage (
    user_id       TEXT NOT NULL,
    day           TEXT NOT NULL,
    source        TEXT NOT NULL,
    queries       INTEGER NOT NULL DEFAULT 0,
    billed_bytes  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, day, source)
);

-- What the catalog shows of a remote table changes with its cached metadata: readers that
-- keep decoded rows under the access generation see the change.
CREATE TRIGGER bq_metadata_cache_insert_bumps_access AFTER INSERT ON bq_metadata_cache
BEGIN UPDATE access_generation SET n = n + 1; END;

CREATE TRIGGER bq_metadata_cache_update_bumps_access AFTER UPDATE ON bq_metadata_cache
BEGIN UPDATE access_generation SET n = n + 1; END;

CREATE TRIGGER bq_metadata_cache_delete_bumps_access AFTER DELETE ON bq_metadata_cache
BEGIN UPDATE access_generation SET n = n + 1; END;
