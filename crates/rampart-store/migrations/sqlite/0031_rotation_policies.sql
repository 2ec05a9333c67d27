-- Credential rotation, the rest of issue 17: schedules per asset label, rotation after every
-- session that used an account, and generated-password policies per asset.

-- Every account of the assets that carry `label` (`KEY=VALUE`) rotates every `every_seconds`.
-- An account's own schedule (`account_rotation_settings.every_seconds`) wins; of several
-- labels, the shortest interval.
CREATE TABLE label_rotation_schedules (
    label         TEXT PRIMARY KEY,
    every_seconds INTEGER NOT NULL CHECK (every_seconds >= 60),
    created_at    TEXT NOT NULL
);

-- The account rotates once each session that used it ended, for sessions started since this
-- time (NULL: it does not; turning it on does not rotate for the sessions before).
ALTER TABLE account_rotation_settings ADD COLUMN rotate_after_sessions_since TEXT;

-- Sessions whose end rotated their account (break-glass sessions, and sessions of accounts that
-- rotate after every session): one row per session handled, so each is handled once. `why`:
-- `breakglass` or `after_session`.
ALTER TABLE breakglass_session_rotations RENAME TO session_end_rotations;
ALTER TABLE session_end_rotations ADD COLUMN why TEXT NOT NULL DEFAULT 'breakglass';

-- How passwords generated for the accounts of an asset look, where the target needs it:
-- `length` (NULL: the account's own length), the character classes drawn from (a comma list of
-- lower, upper, digits, symbols; each present at least once) and characters never used.
CREATE TABLE asset_password_policies (
    asset_id TEXT PRIMARY KEY REFERENCES assets (id) ON DELETE CASCADE,
    length   INTEGER CHECK (length IS NULL OR (length >= 8 AND length <= 128)),
    classes  TEXT NOT NULL,
    excluded TEXT NOT NULL DEFAULT ''
);

-- Who started each rotation (`system` for the schedule and end-of-session rotations,
-- `user:NAME` through the API or portal, `cli:OS_USER`), for the history. NULL: before this.
ALTER TABLE account_rotations ADD COLUMN started_by TEXT;
