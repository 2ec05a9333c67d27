-- Command control rules (issue 18): ordered; each attaches to one grant or to assets carrying
-- one label. A grant's rules go with it.
CREATE TABLE command_rules (
    id TEXT PRIMARY KEY,
    -- Lower first; the first rule that matches a command decides.
    position INTEGER NOT NULL,
    grant_id TEXT REFERENCES grants (id) ON DELETE CASCADE,
    label_key TEXT,
    label_value TEXT,
    -- `any`, `prefix:WORDS`, `glob:PATTERN`, `regex:EXPR`, `list:NAME` (rampart_core::rules).
    matcher TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('allow', 'warn', 'deny')),
    created_at TEXT NOT NULL,
    CHECK ((grant_id IS NULL) <> (label_key IS NULL)),
    CHECK ((label_key IS NULL) = (label_value IS NULL))
);
CREATE INDEX command_rules_grant ON command_rules (grant_id);
CREATE INDEX command_rules_label ON command_rules (label_key, label_value);
