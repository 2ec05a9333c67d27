-- The schema on PostgreSQL, as SQLite's migrations 1 to 34 leave it (a PostgreSQL database
-- starts here: migrations 2 to 34 are empty on PostgreSQL, so both backends record the same
-- numbers). Types: BIGINT for SQLite's INTEGER, BYTEA for BLOB; times are TEXT as on SQLite.
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'auditor', 'user')),
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    password_hash TEXT,
    created_at    TEXT NOT NULL
, auth_epoch BIGINT NOT NULL DEFAULT 0, totp_secret BYTEA, totp_last_step BIGINT, allow_from TEXT, deny_from TEXT, login_hours TEXT);
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
    host_key   TEXT,
    created_at TEXT NOT NULL
, domain TEXT);
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
    secret      BYTEA NOT NULL,
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
    created_at  TEXT NOT NULL, schedule TEXT, require_mfa BOOLEAN NOT NULL DEFAULT FALSE, idle_timeout_secs BIGINT, max_duration_secs BIGINT, record BOOLEAN NOT NULL DEFAULT TRUE,
    CHECK ((user_id IS NULL) <> (group_id IS NULL))
);
CREATE TABLE grant_labels (
    grant_id TEXT NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (grant_id, key)
);
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
    bytes_from_client BIGINT NOT NULL DEFAULT 0,
    bytes_to_client   BIGINT NOT NULL DEFAULT 0,
    exit_status       BIGINT,
    end_reason        TEXT
, recorded BOOLEAN NOT NULL DEFAULT TRUE, recording_cap BIGINT, route TEXT, command TEXT, breakglass TEXT);
CREATE INDEX sessions_by_start ON sessions (started_at);
CREATE TABLE audit_events (
    seq       BIGINT PRIMARY KEY,
    at        TEXT NOT NULL,
    actor     TEXT NOT NULL,
    kind      TEXT NOT NULL,
    event     TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL UNIQUE
);
CREATE TABLE vault_state (
    singleton     BIGINT PRIMARY KEY CHECK (singleton = 1),
    active_key_id TEXT NOT NULL
);
CREATE TABLE commands (
    id            TEXT PRIMARY KEY,
    session_id    TEXT NOT NULL,
    at            TEXT NOT NULL,
    user_name     TEXT NOT NULL,
    asset_name    TEXT NOT NULL,
    account_login TEXT NOT NULL,
    command       TEXT NOT NULL
);
CREATE INDEX commands_by_time ON commands (at);
CREATE TABLE audit_seals (
    seq       BIGINT PRIMARY KEY,
    hash      TEXT NOT NULL,
    sealed_at TEXT NOT NULL,
    signature TEXT NOT NULL
, state TEXT NOT NULL DEFAULT 'legacy');
CREATE TABLE sink_status (
    sink           TEXT PRIMARY KEY,
    delivered_seq  BIGINT NOT NULL,
    failed         BIGINT NOT NULL DEFAULT 0,
    last_error     TEXT,
    updated_at     TEXT NOT NULL
);
CREATE TABLE login_failures (
    key TEXT PRIMARY KEY,
    failures BIGINT NOT NULL,
    window_start TEXT NOT NULL,
    locked_until TEXT
);
CREATE INDEX login_failures_window_start ON login_failures (window_start);
CREATE TABLE session_kills (
    session_id TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    requested_at TEXT NOT NULL
);
CREATE TABLE web_sessions (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The user's auth_epoch at login: a credential or status change ends the session.
    auth_epoch BIGINT NOT NULL,
    mfa BOOLEAN NOT NULL,
    source_addr TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    -- The absolute end; the idle end is last_seen_at plus the configured idle timeout.
    expires_at TEXT NOT NULL
);
CREATE INDEX web_sessions_user ON web_sessions (user_id);
CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    scope TEXT NOT NULL,
    description TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT,
    last_used_at TEXT
, auth_epoch BIGINT NOT NULL DEFAULT 0);
CREATE INDEX api_tokens_user ON api_tokens (user_id);
CREATE TABLE asset_endpoints (
    asset_id        TEXT NOT NULL REFERENCES assets (id) ON DELETE CASCADE,
    protocol        TEXT NOT NULL CHECK (protocol IN ('ssh', 'postgres', 'mysql', 'redis', 'rdp',
                                                      'vnc', 'telnet', 'kubernetes', 'tcp')),
    port            BIGINT NOT NULL CHECK (port BETWEEN 1 AND 65535),
    -- For TLS protocols: the pinned certificate fingerprint (SHA256:hex), once known.
    tls_fingerprint TEXT,
    PRIMARY KEY (asset_id, protocol),
    UNIQUE (asset_id, port)
);
CREATE TABLE db_tokens (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT,
    last_used_at TEXT,
    auth_epoch BIGINT NOT NULL
, kind TEXT NOT NULL DEFAULT 'database'
    CHECK (kind IN ('database', 'kubernetes')));
CREATE INDEX db_tokens_user ON db_tokens (user_id);
CREATE TABLE domains (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
CREATE FUNCTION assets_domain_exists() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.domain IS NOT NULL AND NOT EXISTS (SELECT 1 FROM domains WHERE name = NEW.domain) THEN
        RAISE EXCEPTION 'unknown network domain';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER assets_domain_exists_insert BEFORE INSERT ON assets
    FOR EACH ROW EXECUTE FUNCTION assets_domain_exists();
CREATE TRIGGER assets_domain_exists_update BEFORE UPDATE OF domain ON assets
    FOR EACH ROW EXECUTE FUNCTION assets_domain_exists();
CREATE TABLE gateways (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    domain_id TEXT NOT NULL REFERENCES domains(id),
    host TEXT NOT NULL,
    port BIGINT NOT NULL,
    login TEXT NOT NULL,
    -- Lower first: new sessions try the domain's gateways in this order.
    priority BIGINT NOT NULL,
    secret_kind TEXT NOT NULL,
    -- Sealed by the vault, bound to this row (see accounts).
    secret BYTEA NOT NULL,
    -- authorized_keys form; NULL until pinned.
    host_key TEXT,
    created_at TEXT NOT NULL
, health TEXT, health_error TEXT, health_checked_at TEXT);
CREATE INDEX gateways_domain ON gateways (domain_id, priority);
CREATE TABLE agent_tokens (
    id TEXT PRIMARY KEY,
    -- SHA-256 of the token's secret (32 random bytes); the token itself is shown once.
    token_hash TEXT NOT NULL UNIQUE,
    -- The name the agent enrolled with this token gets.
    agent_name TEXT NOT NULL,
    domain_id TEXT NOT NULL REFERENCES domains(id),
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    -- Set once, by the enrolment that used it; a used token is refused.
    used_at TEXT
);
CREATE TABLE agents (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    domain_id TEXT NOT NULL REFERENCES domains(id),
    -- The agent's own public key (authorized_keys form), pinned at enrolment.
    public_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL UNIQUE,
    enrolled_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE INDEX agents_domain ON agents (domain_id, name);
CREATE TABLE account_rotation_settings (
    account_id      TEXT PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    every_seconds   BIGINT,
    via_login       TEXT,
    password_length BIGINT NOT NULL DEFAULT 24,
    status          TEXT NOT NULL DEFAULT 'ok' CHECK (status IN ('ok', 'unknown')),
    last_rotated_at TEXT
, rotate_after_sessions_since TEXT);
CREATE TABLE account_rotations (
    id             TEXT PRIMARY KEY,
    account_id     TEXT NOT NULL,
    account        TEXT NOT NULL,
    state          TEXT NOT NULL
        CHECK (state IN ('pending', 'applied', 'committed', 'failed', 'unknown')),
    secret_kind    TEXT NOT NULL CHECK (secret_kind IN ('password', 'private_key')),
    pending_secret BYTEA,
    owner_pid      BIGINT NOT NULL,
    started_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    reason         TEXT
, started_by TEXT);
CREATE UNIQUE INDEX account_rotations_one_in_flight ON account_rotations (account_id)
    WHERE state IN ('pending', 'applied', 'unknown');
CREATE INDEX account_rotations_by_account ON account_rotations (account_id, started_at);
CREATE FUNCTION account_rotations_end_with_account() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE account_rotations SET pending_secret = NULL, state = 'failed',
        reason = 'the account was removed'
    WHERE account_id = OLD.id AND state IN ('pending', 'applied', 'unknown');
    RETURN OLD;
END $$;
CREATE TRIGGER account_rotations_end_with_account AFTER DELETE ON accounts
    FOR EACH ROW EXECUTE FUNCTION account_rotations_end_with_account();
CREATE TABLE telnet_login_settings (
    asset_id TEXT PRIMARY KEY REFERENCES assets (id) ON DELETE CASCADE,
    login_prompt TEXT,
    password_prompt TEXT,
    success_pattern TEXT,
    failure_pattern TEXT,
    timeout_seconds BIGINT
);
CREATE TABLE detector_seen (
    user_name TEXT NOT NULL,
    what TEXT NOT NULL CHECK (what IN ('source', 'asset')),
    value TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    PRIMARY KEY (user_name, what, value)
);
CREATE TABLE detector_progress (
    name TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    quiet_until BIGINT NOT NULL
);
CREATE TABLE breakglass_kits (
    id         TEXT PRIMARY KEY,
    -- Absolute path of the kit file on this node.
    path       TEXT NOT NULL UNIQUE,
    -- JSON array of `login@asset`.
    accounts   TEXT NOT NULL,
    -- JSON array of {"name", "recipient"} (public keys).
    custodians TEXT NOT NULL,
    threshold  BIGINT NOT NULL CHECK (threshold >= 1),
    -- The id written in the kit file last sealed to `path`.
    kit        TEXT NOT NULL,
    sealed_at  TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE breakglass_requests (
    id               TEXT PRIMARY KEY,
    user_name        TEXT NOT NULL,
    asset_name       TEXT NOT NULL,
    reason           TEXT NOT NULL,
    requested_by     TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('pending', 'active')),
    duration_seconds BIGINT NOT NULL,
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
CREATE TABLE IF NOT EXISTS "session_end_rotations" (
    session_id TEXT PRIMARY KEY,
    account    TEXT NOT NULL,
    state      TEXT NOT NULL,
    at         TEXT NOT NULL
, why TEXT NOT NULL DEFAULT 'breakglass');
CREATE TABLE ssh_certificates (
    serial TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key_fingerprint TEXT NOT NULL,
    issued_at TEXT NOT NULL,
    valid_before TEXT NOT NULL,
    auth_epoch BIGINT NOT NULL
);
CREATE INDEX ssh_certificates_user_key ON ssh_certificates (user_id, key_fingerprint);
CREATE TABLE user_invites (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT
);
CREATE TABLE access_requests (
    id TEXT PRIMARY KEY,
    requester TEXT NOT NULL,
    -- One asset, or labels as `key=value` joined by commas.
    asset TEXT,
    labels TEXT,
    -- Account logins, comma-separated; empty: every account on the covered assets.
    accounts TEXT NOT NULL DEFAULT '',
    actions TEXT NOT NULL,
    duration_secs BIGINT NOT NULL CHECK (duration_secs > 0),
    reason TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'denied', 'cancelled')),
    created_at TEXT NOT NULL,
    decided_at TEXT,
    decided_by TEXT,
    note TEXT,
    -- The grant an approval created (it may be removed later; the id stays as evidence).
    grant_id TEXT,
    valid_until TEXT,
    CHECK ((asset IS NULL) <> (labels IS NULL))
);
CREATE INDEX access_requests_state ON access_requests (state, created_at);
CREATE INDEX access_requests_requester ON access_requests (requester, created_at);
CREATE TABLE IF NOT EXISTS "command_rules" (
    id TEXT PRIMARY KEY,
    -- Lower first; the first rule that matches a command decides.
    position BIGINT NOT NULL,
    grant_id TEXT REFERENCES grants (id) ON DELETE CASCADE,
    label_key TEXT,
    label_value TEXT,
    -- `any`, `prefix:WORDS`, `glob:PATTERN`, `regex:EXPR`, `list:NAME` (rampart_core::rules).
    matcher TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('allow', 'warn', 'approve', 'deny')),
    created_at TEXT NOT NULL,
    CHECK ((grant_id IS NULL) <> (label_key IS NULL)),
    CHECK ((label_key IS NULL) = (label_value IS NULL))
);
CREATE INDEX command_rules_grant ON command_rules (grant_id);
CREATE INDEX command_rules_label ON command_rules (label_key, label_value);
CREATE TABLE command_approvals (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    requester TEXT NOT NULL,
    -- `login@asset`.
    target TEXT NOT NULL,
    asset TEXT NOT NULL,
    -- The asset's labels when the line was held, `key=value` joined by commas (who may decide).
    labels TEXT NOT NULL DEFAULT '',
    line TEXT NOT NULL,
    command TEXT NOT NULL,
    rule TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'denied', 'timed_out', 'cancelled')),
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    decided_at TEXT,
    decided_by TEXT,
    note TEXT
);
CREATE INDEX command_approvals_state ON command_approvals (state, created_at);
CREATE TABLE grant_namespaces (
    grant_id  TEXT NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    namespace TEXT NOT NULL,
    PRIMARY KEY (grant_id, namespace)
);
CREATE TABLE label_rotation_schedules (
    label         TEXT PRIMARY KEY,
    every_seconds BIGINT NOT NULL CHECK (every_seconds >= 60),
    created_at    TEXT NOT NULL
);
CREATE TABLE asset_password_policies (
    asset_id TEXT PRIMARY KEY REFERENCES assets (id) ON DELETE CASCADE,
    length   BIGINT CHECK (length IS NULL OR (length >= 8 AND length <= 128)),
    classes  TEXT NOT NULL,
    excluded TEXT NOT NULL DEFAULT ''
);
CREATE TABLE oidc_identities (
    user_id       TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    issuer        TEXT NOT NULL,
    subject       TEXT NOT NULL,
    refresh_token BYTEA,
    last_login_at TEXT NOT NULL,
    checked_at    TEXT,
    UNIQUE (issuer, subject)
);
CREATE TABLE ldap_users (
    user_id TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    dn TEXT NOT NULL,
    directory_disabled BIGINT NOT NULL DEFAULT 0 CHECK (directory_disabled IN (0, 1)),
    synced_at TEXT NOT NULL
);
CREATE TABLE user_passkeys (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    credential_id TEXT NOT NULL UNIQUE,
    passkey TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_used_at TEXT,
    UNIQUE (user_id, name)
);
