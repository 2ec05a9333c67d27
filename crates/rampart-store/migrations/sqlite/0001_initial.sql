-- Rampart's initial schema.
--
-- Portable on purpose: TEXT ids (UUIDs), TEXT RFC 3339 times in UTC, no SQLite-only types, so the
-- same schema runs on PostgreSQL. Evidence tables (sessions, audit_events) copy names instead of
-- referencing rows, so removing a user or asset never rewrites history.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'auditor', 'user')),
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    password_hash TEXT,
    created_at    TEXT NOT NULL
);

CREATE TABLE user_keys (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- A key identifies one person: the same key may not belong to two users.
    fingerprint TEXT NOT NULL UNIQUE,
    algorithm   TEXT NOT NULL,
    public_key  TEXT NOT NULL,
    comment     TEXT NOT NULL,
    added_at    TEXT NOT NULL
);
CREATE INDEX user_keys_by_user ON user_keys (user_id);

CREATE TABLE groups (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);

CREATE TABLE group_members (
    group_id TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id  TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);

CREATE TABLE assets (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    host       TEXT NOT NULL,
    port       INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
    host_key   TEXT,
    created_at TEXT NOT NULL
);

CREATE TABLE asset_labels (
    asset_id TEXT NOT NULL REFERENCES assets (id) ON DELETE CASCADE,
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (asset_id, key)
);

CREATE TABLE accounts (
    id          TEXT PRIMARY KEY,
    asset_id    TEXT NOT NULL REFERENCES assets (id) ON DELETE CASCADE,
    login       TEXT NOT NULL,
    secret_kind TEXT NOT NULL CHECK (secret_kind IN ('password', 'private_key')),
    -- Vault envelope: format version, key id, nonce, XChaCha20-Poly1305 ciphertext. The AEAD's
    -- associated data names this row's id and secret kind, so a copy in another row won't open.
    secret      BLOB NOT NULL,
    created_at  TEXT NOT NULL,
    UNIQUE (asset_id, login)
);

CREATE TABLE grants (
    id          TEXT PRIMARY KEY,
    user_id     TEXT REFERENCES users (id) ON DELETE CASCADE,
    group_id    TEXT REFERENCES groups (id) ON DELETE CASCADE,
    -- NULL asset_id: the grant selects assets by its grant_labels instead.
    asset_id    TEXT REFERENCES assets (id) ON DELETE CASCADE,
    actions     TEXT NOT NULL,
    valid_from  TEXT,
    valid_until TEXT,
    created_at  TEXT NOT NULL,
    CHECK ((user_id IS NULL) <> (group_id IS NULL))
);

CREATE TABLE grant_labels (
    grant_id TEXT NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (grant_id, key)
);

-- Account logins a grant is limited to; none means every account on the covered assets.
CREATE TABLE grant_accounts (
    grant_id TEXT NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    login    TEXT NOT NULL,
    PRIMARY KEY (grant_id, login)
);

CREATE TABLE sessions (
    id                TEXT PRIMARY KEY,
    user_name         TEXT NOT NULL,
    asset_name        TEXT NOT NULL,
    account_login     TEXT NOT NULL,
    kind              TEXT NOT NULL,
    source_addr       TEXT NOT NULL,
    started_at        TEXT NOT NULL,
    ended_at          TEXT,
    bytes_from_client INTEGER NOT NULL DEFAULT 0,
    bytes_to_client   INTEGER NOT NULL DEFAULT 0,
    exit_status       INTEGER,
    end_reason        TEXT
);
CREATE INDEX sessions_by_start ON sessions (started_at);

-- The audit log: append-only, each row chained to the one before by hash.
CREATE TABLE audit_events (
    seq       INTEGER PRIMARY KEY,
    at        TEXT NOT NULL,
    actor     TEXT NOT NULL,
    kind      TEXT NOT NULL,
    event     TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL UNIQUE
);

-- Which vault master key new secrets are sealed with (one row). Kept in the database, inside the
-- same transactions as the secrets, so every process agrees on it during a key rotation.
CREATE TABLE vault_state (
    singleton     INTEGER PRIMARY KEY CHECK (singleton = 1),
    active_key_id TEXT NOT NULL
);
