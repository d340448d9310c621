-- One number that changes whenever what a caller may read could have changed: a grant, a
-- registry row or a table's published state. The query service keeps each group set's
-- readable tables under this number, so the cache is invalidated by the database itself,
-- whoever writes (the server, a CLI on the host), never by code that must remember to.
CREATE TABLE access_generation (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  INTEGER NOT NULL
);
INSERT INTO access_generation (id, n) VALUES (1, 0);

CREATE TRIGGER sync_state_insert_bumps_access AFTER INSERT ON sync_state
BEGIN UPDATE access_generation SET n = n + 1; END;

CREATE TRIGGER sync_state_update_bumps_access AFTER UPDATE ON sync_state
BEGIN UPDATE access_generation SET n = n + 1; END;

CREATE TRIGGER sync_state_delete_bumps_access AFTER DELETE ON sync_state
BEGIN UPDATE access_generation SET n = n + 1; END;

CREATE TRIGGER table_registry_insert_bumps_access AFTER INSERT ON table_registry
BEGIN UPDATE access_generation SET n = n + 1; END;

CREATE TRIGGER table_registry_update_bumps_access AFTER UPDATE ON table_registry
BEGIN UPDATE access_generation SET n = n + 1; END;

CREATE TRIGGER table_registry_delete_bumps_access AFTER DELETE ON table_registry
BEGIN UPDATE access_generation SET n = n + 1; END;

CREATE TRIGGER resource_grants_insert_bumps_access AFTER INSERT ON resource_grants
BEGIN UPDATE access_generation SET n = n + 1; END;

CREATE TRIGGER resource_grants_update_bumps_access AFTER UPDATE ON resource_grants
BEGIN UPDATE access_generation SET n = n + 1; END;

CREATE TRIGGER resource_grants_delete_bumps_access AFTER DELETE ON resource_grants
BEGIN UPDATE access_generation SET n = n + 1; END;
