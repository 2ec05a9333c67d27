-- Grant conditions and limits, and requests to end live sessions.
ALTER TABLE grants ADD COLUMN schedule TEXT;
ALTER TABLE grants ADD COLUMN require_mfa BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE grants ADD COLUMN idle_timeout_secs INTEGER;
ALTER TABLE grants ADD COLUMN max_duration_secs INTEGER;
ALTER TABLE grants ADD COLUMN record BOOLEAN NOT NULL DEFAULT TRUE;
-- Whether the session was to be recorded: the verifier expects a recording only then.
ALTER TABLE sessions ADD COLUMN recorded BOOLEAN NOT NULL DEFAULT TRUE;

-- Written by `rampart session kill` (any process), read by the server carrying the session.
CREATE TABLE session_kills (
    session_id TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    requested_at TEXT NOT NULL
);
