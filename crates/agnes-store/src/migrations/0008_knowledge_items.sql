-- Corporate memory, read side: knowledge items an admin curates, distributed to analysts'
-- agents by `GET /api/memory/bundle` (mandatory rules and approved knowledge) and read by
-- domain through grants of resource type `memory_domain`.
CREATE TABLE knowledge_items (
    id         TEXT PRIMARY KEY,
    title      TEXT NOT NULL,
    content    TEXT NOT NULL,
    domain     TEXT NOT NULL,
    category   TEXT,
    status     TEXT NOT NULL CHECK (status IN ('mandatory', 'approved', 'draft')),
    created_by TEXT,
    created_at TEXT NOT NULL,
    updated_by TEXT,
    updated_at TEXT NOT NULL
);

CREATE INDEX knowledge_items_domain ON knowledge_items (domain, status);
