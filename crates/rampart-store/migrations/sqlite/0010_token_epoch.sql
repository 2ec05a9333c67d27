-- The user's auth_epoch when a token was created: a later credential or status change (password,
-- second factor, key removal, disable) makes the token stop working (A11).
ALTER TABLE api_tokens ADD COLUMN auth_epoch INTEGER NOT NULL DEFAULT 0;
