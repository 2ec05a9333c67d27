-- Users that come from an LDAP directory (issue 20): the directory is their source of truth.
-- They have no local password (a login binds to the directory as their DN); the periodic sync
-- keeps their SSH keys and mapped groups equal to the directory's and disables them when the
-- directory no longer lists them. `directory_disabled` says the sync disabled them (so only the
-- sync enables them again); an administrator's `user disable` stays until the administrator's
-- `user enable`.
CREATE TABLE ldap_users (
    user_id TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    dn TEXT NOT NULL,
    directory_disabled INTEGER NOT NULL DEFAULT 0 CHECK (directory_disabled IN (0, 1)),
    synced_at TEXT NOT NULL
);
