-- The `approve` command rule action (issue 18): command_rules is rebuilt so its action may be
-- 'approve' (SQLite cannot change a CHECK in place: create, copy, drop, rename; indexes and
-- the foreign key to grants as before). Nothing references command_rules.
CREATE TABLE command_rules_new (
    id TEXT PRIMARY KEY,
    -- Lower first; the first rule that matches a command decides.
    position INTEGER NOT NULL,
    grant_id TEXT REFERENCES grants (id) ON DELETE CASCADE,
    label_key TEXT,
    label_value TEXT,
    -- `any`, `prefix:WORDS`, `glob:PATTERN`, `regex:EXPR`, `list:NAME` (rampart_core::rules).
    matcher TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('allow', 'warn', 'approve', 'deny')),
    created_at TEXT NOT NULL,
    CHECK ((grant_id IS NULL) <> (label_key IS NULL)),
    CHECK ((label_key IS NULL) = (label_value IS NULL))
);
INSERT INTO command_rules_new (id, position, grant_id, label_key, label_value, matcher, action,
    created_at)
SELECT id, position, grant_id, label_key, label_value, matcher, action, created_at
FROM command_rules;
DROP TABLE command_rules;
ALTER TABLE command_rules_new RENAME TO command_rules;
CREATE INDEX command_rules_grant ON command_rules (grant_id);
CREATE INDEX command_rules_label ON command_rules (label_key, label_value);

-- Shell lines held for an approver. The audit log holds every step (requested, decided); this
-- table is the working state the waiting session polls and approvers list. Names are copied
-- (evidence rows never depend on rows that can be removed).
CREATE TABLE command_approvals (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    requester TEXT NOT NULL,
    -- `login@asset`.
    target TEXT NOT NULL,
    asset TEXT NOT NULL,
    -- The asset's labels when the line was held, `key=value` joined by commas (who may decide).
    labels TEXT NOT NULL DEFAULT '',
    line TEXT NOT NULL,
    command TEXT NOT NULL,
    rule TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'denied', 'timed_out', 'cancelled')),
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    decided_at TEXT,
    decided_by TEXT,
    note TEXT
);
CREATE INDEX command_approvals_state ON command_approvals (state, created_at);
