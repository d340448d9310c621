-- What the source said its table's version was when the published data was read (for
-- Keboola, the table's lastImportDate): a sync that finds the same version has nothing
-- to export. NULL: the source has no such notion, or nothing is published yet.
ALTER TABLE sync_state ADD COLUMN source_version TEXT;
