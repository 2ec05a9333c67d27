-- Users who sign in through an OpenID Connect provider (issue 20): the provider's subject for
-- the user, and its refresh token (sealed by the vault, bound to the row) with which the node
-- asks the provider, at a bounded interval, whether the user may still get tokens.
-- A user with a row here is external: created by just-in-time provisioning, no local password.
CREATE TABLE oidc_identities (
    user_id       TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    issuer        TEXT NOT NULL,
    subject       TEXT NOT NULL,
    refresh_token BLOB,
    last_login_at TEXT NOT NULL,
    checked_at    TEXT,
    UNIQUE (issuer, subject)
);
