-- SSH user certificates the node's user CA signed. The certificate itself is the credential; a
-- row says it was issued here, to whom, for which key, until when, and under which auth_epoch:
-- a change to the user's credentials or status ends every certificate issued before it. The
-- SSH front also asks it whether a key offered without a signature has a certificate of this
-- user (an offer does not say whether a certificate comes with it).
CREATE TABLE ssh_certificates (
    serial TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key_fingerprint TEXT NOT NULL,
    issued_at TEXT NOT NULL,
    valid_before TEXT NOT NULL,
    auth_epoch INTEGER NOT NULL
);
CREATE INDEX ssh_certificates_user_key ON ssh_certificates (user_id, key_fingerprint);

-- One-time enrolment links: an administrator invites an existing user, who sets their own
-- password and TOTP second factor through the link. Only the SHA-256 of the token is kept; a
-- link works once, before it expires.
CREATE TABLE user_invites (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT
);
