-- The fast checksum `agnes pull` verifies (`xxh3-128:<hex>`), beside the MD5 `hash` that
-- the original's clients and the download ETag use. Empty until the table's next sync.
ALTER TABLE sync_state ADD COLUMN checksum TEXT NOT NULL DEFAULT '';
ALTER TABLE sync_parts ADD COLUMN checksum TEXT NOT NULL DEFAULT '';
