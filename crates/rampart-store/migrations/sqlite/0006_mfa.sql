-- A user's TOTP second factor: the shared secret, sealed by the vault and bound to the user row
-- (never in clear), and the last time step a code was accepted for, so that each code is
-- accepted once. Both are NULL when the user has not enrolled.
ALTER TABLE users ADD COLUMN totp_secret BLOB;
ALTER TABLE users ADD COLUMN totp_last_step INTEGER;
