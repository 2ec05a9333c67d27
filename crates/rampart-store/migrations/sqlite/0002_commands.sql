-- The command log: one row per command typed in an interactive shell, read from the terminal.
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
