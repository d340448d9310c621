-- Groups an identity provider feeds (`google`, or the name of an `auth.oidc` provider):
-- created on a sign-in that carries them, their memberships replaced on each sign-in
-- (rows with `source = '<provider>_sync'`; rows an admin added are never touched).
-- NULL: a group made here (system or custom).
ALTER TABLE user_groups ADD COLUMN synced_from TEXT;
