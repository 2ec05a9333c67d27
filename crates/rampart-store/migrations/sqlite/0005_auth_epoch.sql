-- Counts changes to a user's credentials (keys, password, second factor) and status: a live
-- session that started under an older epoch is ended (credential change ends sessions).
ALTER TABLE users ADD COLUMN auth_epoch INTEGER NOT NULL DEFAULT 0;
