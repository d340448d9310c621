-- A registry row names the configured connection it reads (`data_source.<type>.<name>`),
-- for source types that can have several (PostgreSQL, later BigQuery and Keboola
-- projects). NULL: the only connection of that type.
ALTER TABLE table_registry ADD COLUMN connection TEXT;
