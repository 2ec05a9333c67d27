-- Login ACLs and lockout.
-- Per-user rules, NULL = no rule: comma-separated networks (10.0.0.0/8,2001:db8::/32) and a
-- weekly schedule (Mon-Fri 08:00-18:00 Europe/Berlin), as rampart_core::login_rules reads them.
ALTER TABLE users ADD COLUMN allow_from TEXT;
ALTER TABLE users ADD COLUMN deny_from TEXT;
ALTER TABLE users ADD COLUMN login_hours TEXT;

-- Failed-login counters: key is user:NAME (existing users only) or source:ADDRESS (an IPv6
-- source counts as its /64). Times are RFC 3339 UTC to the second, so text order is time order.
-- Rows whose window and lock have both passed are deleted as failures are recorded.
CREATE TABLE login_failures (
    key TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    window_start TEXT NOT NULL,
    locked_until TEXT
);
CREATE INDEX login_failures_window_start ON login_failures (window_start);
