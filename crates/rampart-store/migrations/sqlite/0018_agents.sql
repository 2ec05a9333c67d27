-- Dial-out agents of network domains (issue 15): one-time enrolment tokens and the agents
-- they enrolled, each with its own pinned SSH key.
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

-- Background health checks of SSH-hop gateways: the last verdict ('ok', 'failing'; NULL: not
-- checked yet), its error and when it was reached.
ALTER TABLE gateways ADD COLUMN health TEXT;
ALTER TABLE gateways ADD COLUMN health_error TEXT;
ALTER TABLE gateways ADD COLUMN health_checked_at TEXT;
