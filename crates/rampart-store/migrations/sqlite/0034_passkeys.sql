-- Passkeys (WebAuthn credentials, issue 20): a second factor for the portal login after the
-- password, and a passwordless portal login. `passkey` is webauthn-rs's serialized `Passkey`
-- (the credential's public key, its signature counter and backup flags): no secret. The
-- credential id (base64url, as the browser sends it) is unique across every user, so a
-- discoverable login names exactly one user.
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
