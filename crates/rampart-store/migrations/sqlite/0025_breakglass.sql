-- Break-glass kits (issue 17): what each offline kit was sealed with, so the kit is sealed
-- again, to the same path for the same custodians, after any of its accounts rotates. No secret
-- here: the kit file holds the sealed secrets; this holds the custodians' public keys.
CREATE TABLE breakglass_kits (
    id         TEXT PRIMARY KEY,
    -- Absolute path of the kit file on this node.
    path       TEXT NOT NULL UNIQUE,
    -- JSON array of `login@asset`.
    accounts   TEXT NOT NULL,
    -- JSON array of {"name", "recipient"} (public keys).
    custodians TEXT NOT NULL,
    threshold  INTEGER NOT NULL CHECK (threshold >= 1),
    -- The id written in the kit file last sealed to `path`.
    kit        TEXT NOT NULL,
    sealed_at  TEXT NOT NULL,
    created_at TEXT NOT NULL
);

-- Break-glass access requests (issue 17): emergency access for a user to an asset, given once
-- two distinct administrators other than the user approved it: then a grant is made that ends
-- at `ends_at`, and sessions under it are marked (`sessions.breakglass`). Evidence: names are
-- copied.
CREATE TABLE breakglass_requests (
    id               TEXT PRIMARY KEY,
    user_name        TEXT NOT NULL,
    asset_name       TEXT NOT NULL,
    reason           TEXT NOT NULL,
    requested_by     TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('pending', 'active')),
    duration_seconds INTEGER NOT NULL,
    grant_id         TEXT,
    created_at       TEXT NOT NULL,
    ends_at          TEXT
);
CREATE TABLE breakglass_approvals (
    request_id  TEXT NOT NULL REFERENCES breakglass_requests (id) ON DELETE CASCADE,
    admin       TEXT NOT NULL,
    approved_at TEXT NOT NULL,
    PRIMARY KEY (request_id, admin)
);
-- The break-glass request a session ran under (its allowing grant was that request's grant).
ALTER TABLE sessions ADD COLUMN breakglass TEXT;
-- A break-glass session's account is rotated once the session ended; one row per session
-- handled (the outcome's state), so it is rotated once.
CREATE TABLE breakglass_session_rotations (
    session_id TEXT PRIMARY KEY,
    account    TEXT NOT NULL,
    state      TEXT NOT NULL,
    at         TEXT NOT NULL
);
