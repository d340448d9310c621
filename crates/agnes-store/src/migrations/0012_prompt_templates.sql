-- Admin overrides of the texts agnes gives agents: `workspace` is the CLAUDE.md that
-- `agnes init` writes (GET /api/welcome; the original's claude_md_template), `agent_setup`
-- the prompt the setup page gives an analyst to paste into their agent (its
-- welcome_template). No row: the built-in text.
CREATE TABLE prompt_templates (
    name       TEXT PRIMARY KEY CHECK (name IN ('workspace', 'agent_setup')),
    body       TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT
);
