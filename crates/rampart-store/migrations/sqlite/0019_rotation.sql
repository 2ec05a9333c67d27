-- Credential rotation (issue 17): per-account settings and every rotation's state machine.

-- How an account rotates: its schedule, the privileged account on the same asset that changes
-- the password (none: the account changes its own), the generated password's length, and
-- whether Rampart knows which secret works (`unknown` after a rotation that neither the new nor
-- the old secret could log in after).
CREATE TABLE account_rotation_settings (
    account_id      TEXT PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    every_seconds   INTEGER,
    via_login       TEXT,
    password_length INTEGER NOT NULL DEFAULT 24,
    status          TEXT NOT NULL DEFAULT 'ok' CHECK (status IN ('ok', 'unknown')),
    last_rotated_at TEXT
);

-- One row per rotation. `pending_secret` is the new secret, sealed by the vault (associated data
-- `rampart/v1/accounts/ACCOUNT_ID/rotations/ID/secret/KIND`) before anything changes on the
-- target; it is cleared when the rotation commits (it became the account's secret) or fails
-- (the old secret works). `owner_pid` is the process driving the rotation: another process
-- resumes it only once that process is gone. Evidence: the account's name is copied.
CREATE TABLE account_rotations (
    id             TEXT PRIMARY KEY,
    account_id     TEXT NOT NULL,
    account        TEXT NOT NULL,
    state          TEXT NOT NULL
        CHECK (state IN ('pending', 'applied', 'committed', 'failed', 'unknown')),
    secret_kind    TEXT NOT NULL CHECK (secret_kind IN ('password', 'private_key')),
    pending_secret BLOB,
    owner_pid      INTEGER NOT NULL,
    started_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    reason         TEXT
);

-- One rotation of an account at a time: pending, applied and unknown ones are in flight.
CREATE UNIQUE INDEX account_rotations_one_in_flight ON account_rotations (account_id)
    WHERE state IN ('pending', 'applied', 'unknown');
CREATE INDEX account_rotations_by_account ON account_rotations (account_id, started_at);

-- A removed account's rotations end, and their sealed secrets go with it.
CREATE TRIGGER account_rotations_end_with_account AFTER DELETE ON accounts
BEGIN
    UPDATE account_rotations SET pending_secret = NULL, state = 'failed',
        reason = 'the account was removed'
    WHERE account_id = OLD.id AND state IN ('pending', 'applied', 'unknown');
END;
