-- Personal database tokens: what a user types as the password of a database client (psql) that
-- connects through Rampart. Only the SHA-256 of the token is kept; each one expires, and a change
-- to the user's credentials or status (auth_epoch) ends every token issued before it.
CREATE TABLE db_tokens (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT,
    last_used_at TEXT,
    auth_epoch INTEGER NOT NULL
);
CREATE INDEX db_tokens_user ON db_tokens (user_id);
