-- Facts about the instance that, once true, stay true. `admin_ever`: some user has been a
-- member of Admin. First-admin bootstrap is open only while this is absent, so deleting
-- every password, demoting every admin or resetting a hash can never reopen it. The row is
-- written by a trigger on the membership table, whichever path (seed, bootstrap,
-- break-glass, demo, dev mode, a later admin API) adds the member.
CREATE TABLE instance_facts (
    key    TEXT PRIMARY KEY,
    set_at TEXT NOT NULL
);

INSERT INTO instance_facts (key, set_at)
SELECT 'admin_ever', strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
WHERE EXISTS (
    SELECT 1 FROM user_group_members m JOIN user_groups g ON g.id = m.group_id WHERE g.name = 'Admin'
);

CREATE TRIGGER admin_member_marks_admin_ever AFTER INSERT ON user_group_members
WHEN (SELECT name FROM user_groups WHERE id = NEW.group_id) = 'Admin'
BEGIN
    INSERT OR IGNORE INTO instance_facts (key, set_at) VALUES ('admin_ever', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
END;

-- A session JWT carries the generation of its user at issue and is valid only while the
-- user's generation is unchanged. Logout bumps it explicitly; the triggers bump it on a
-- password change or reset and on deactivation, whoever writes the row.
ALTER TABLE users ADD COLUMN session_generation INTEGER NOT NULL DEFAULT 0;

CREATE TRIGGER users_password_change_ends_sessions AFTER UPDATE OF password_hash ON users
WHEN OLD.password_hash IS NOT NEW.password_hash
BEGIN
    UPDATE users SET session_generation = session_generation + 1 WHERE id = NEW.id;
END;

CREATE TRIGGER users_deactivation_ends_sessions AFTER UPDATE OF active ON users
WHEN OLD.active = 1 AND NEW.active = 0
BEGIN
    UPDATE users SET session_generation = session_generation + 1 WHERE id = NEW.id;
END;
