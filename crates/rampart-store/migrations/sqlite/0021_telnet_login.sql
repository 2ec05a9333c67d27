-- Telnet login settings per asset (issue 23): the regular expressions that say which output of
-- the device is a login prompt, a password prompt, a success or a failure, and how long the
-- login may take. No row, or NULL in a column, is the built-in default. They go with the asset.
CREATE TABLE telnet_login_settings (
    asset_id TEXT PRIMARY KEY REFERENCES assets (id) ON DELETE CASCADE,
    login_prompt TEXT,
    password_prompt TEXT,
    success_pattern TEXT,
    failure_pattern TEXT,
    timeout_seconds INTEGER
);
