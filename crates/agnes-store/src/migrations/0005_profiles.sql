-- Table profiles (spec §7; the table exists since 0001): remember which published content
-- each profile describes, so only changed tables are profiled again.
ALTER TABLE table_profiles ADD COLUMN source_hash TEXT NOT NULL DEFAULT '';
