-- agnes state schema v1: the data core (spec §2.1, §2.2), keyed by registry id.
-- Timestamps are RFC 3339 text in UTC; JSON columns are text. Both port to PostgreSQL.

CREATE TABLE table_registry (
    id                      TEXT PRIMARY KEY,
    name                    TEXT NOT NULL UNIQUE,
    source_type             TEXT,
    bucket                  TEXT,
    source_table            TEXT,
    source_query            TEXT,
    sync_strategy           TEXT NOT NULL DEFAULT 'full_refresh',
    query_mode              TEXT NOT NULL DEFAULT 'local',
    sync_schedule           TEXT,
    profile_after_sync      INTEGER NOT NULL DEFAULT 1,
    primary_key             TEXT NOT NULL DEFAULT '[]',
    folder                  TEXT,
    description             TEXT,
    registered_by           TEXT,
    registered_at           TEXT NOT NULL,
    incremental_window_days INTEGER,
    max_history_days        INTEGER,
    incremental_column      TEXT,
    where_filters           TEXT,
    partition_by            TEXT,
    partition_granularity   TEXT,
    initial_load_chunk_days INTEGER,
    bq_fqn                  TEXT,
    source_options          TEXT
);

-- One row per table that has ever been synced. `table_id` is the registry id (or the
-- view name for tables an external extract exposes without a registry row).
CREATE TABLE sync_state (
    table_id                TEXT PRIMARY KEY,
    source_name             TEXT,
    last_sync               TEXT,
    last_changed            TEXT,
    rows                    INTEGER NOT NULL DEFAULT 0,
    file_size_bytes         INTEGER NOT NULL DEFAULT 0,
    uncompressed_size_bytes INTEGER NOT NULL DEFAULT 0,
    columns                 INTEGER NOT NULL DEFAULT 0,
    hash                    TEXT NOT NULL DEFAULT '',
    status                  TEXT NOT NULL DEFAULT 'ok',
    error                   TEXT
);

-- Parts of partitioned tables: what the manifest lists so they can be pulled part by part.
CREATE TABLE sync_parts (
    table_id   TEXT NOT NULL,
    part       TEXT NOT NULL,
    hash       TEXT NOT NULL,
    rows       INTEGER NOT NULL,
    size_bytes INTEGER NOT NULL,
    PRIMARY KEY (table_id, part)
);

CREATE TABLE sync_history (
    id          TEXT PRIMARY KEY,
    table_id    TEXT NOT NULL,
    synced_at   TEXT NOT NULL,
    rows        INTEGER,
    duration_ms INTEGER,
    status      TEXT NOT NULL,
    error       TEXT,
    changed     INTEGER
);
CREATE INDEX sync_history_table ON sync_history (table_id, synced_at);

CREATE TABLE view_ownership (
    view_name     TEXT PRIMARY KEY,
    source_name   TEXT NOT NULL,
    registered_at TEXT NOT NULL
);

CREATE TABLE table_profiles (
    table_id    TEXT PRIMARY KEY,
    profile     TEXT NOT NULL,
    profiled_at TEXT NOT NULL
);

CREATE TABLE column_metadata (
    table_id    TEXT NOT NULL,
    column_name TEXT NOT NULL,
    basetype    TEXT,
    description TEXT,
    confidence  TEXT NOT NULL DEFAULT 'manual',
    source      TEXT NOT NULL DEFAULT 'manual',
    updated_at  TEXT,
    PRIMARY KEY (table_id, column_name)
);

CREATE TABLE metric_definitions (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    display_name TEXT NOT NULL,
    category     TEXT NOT NULL,
    description  TEXT,
    type         TEXT NOT NULL DEFAULT 'sum',
    unit         TEXT,
    grain        TEXT NOT NULL DEFAULT 'monthly',
    table_name   TEXT,
    tables       TEXT NOT NULL DEFAULT '[]',
    expression   TEXT,
    time_column  TEXT,
    dimensions   TEXT NOT NULL DEFAULT '[]',
    filters      TEXT NOT NULL DEFAULT '[]',
    synonyms     TEXT NOT NULL DEFAULT '[]',
    notes        TEXT NOT NULL DEFAULT '[]',
    sql          TEXT NOT NULL,
    sql_variants TEXT,
    validation   TEXT,
    source       TEXT NOT NULL DEFAULT 'manual',
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);

CREATE TABLE users (
    id                  TEXT PRIMARY KEY,
    email               TEXT NOT NULL UNIQUE COLLATE NOCASE,
    name                TEXT,
    password_hash       TEXT,
    setup_token         TEXT,
    setup_token_created TEXT,
    reset_token         TEXT,
    reset_token_created TEXT,
    active              INTEGER NOT NULL DEFAULT 1,
    deactivated_at      TEXT,
    deactivated_by      TEXT,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    onboarded           INTEGER NOT NULL DEFAULT 0,
    last_pull_at        TEXT
);

CREATE TABLE personal_access_tokens (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    prefix       TEXT NOT NULL,
    scopes       TEXT,
    created_at   TEXT NOT NULL,
    expires_at   TEXT,
    last_used_at TEXT,
    last_used_ip TEXT,
    revoked_at   TEXT
);
CREATE INDEX personal_access_tokens_user ON personal_access_tokens (user_id);

CREATE TABLE user_groups (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    description TEXT,
    is_system   INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL,
    created_by  TEXT
);

CREATE TABLE user_group_members (
    user_id  TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    group_id TEXT NOT NULL REFERENCES user_groups (id) ON DELETE CASCADE,
    source   TEXT NOT NULL,
    added_at TEXT NOT NULL,
    added_by TEXT,
    PRIMARY KEY (user_id, group_id)
);

CREATE TABLE resource_grants (
    id            TEXT PRIMARY KEY,
    group_id      TEXT NOT NULL REFERENCES user_groups (id) ON DELETE CASCADE,
    resource_type TEXT NOT NULL,
    resource_id   TEXT NOT NULL,
    assigned_at   TEXT NOT NULL,
    assigned_by   TEXT,
    UNIQUE (group_id, resource_type, resource_id)
);
CREATE INDEX resource_grants_resource ON resource_grants (resource_type, resource_id);

CREATE TABLE audit_log (
    id             TEXT PRIMARY KEY,
    timestamp      TEXT NOT NULL,
    user_id        TEXT,
    action         TEXT NOT NULL,
    resource       TEXT,
    params         TEXT,
    result         TEXT,
    duration_ms    INTEGER,
    params_before  TEXT,
    client_ip      TEXT,
    client_kind    TEXT,
    correlation_id TEXT
);
CREATE INDEX audit_log_timestamp ON audit_log (timestamp);
CREATE INDEX audit_log_user ON audit_log (user_id, timestamp);
CREATE INDEX audit_log_action ON audit_log (action, timestamp);
