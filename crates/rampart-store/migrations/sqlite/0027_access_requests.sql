-- Access requests (issue 18): a user asks for time-bound access; an approver approves (which
-- creates a grant that ends on its own) or denies. The audit log holds every step; this table is
-- the working state.
CREATE TABLE access_requests (
    id TEXT PRIMARY KEY,
    requester TEXT NOT NULL,
    -- One asset, or labels as `key=value` joined by commas.
    asset TEXT,
    labels TEXT,
    -- Account logins, comma-separated; empty: every account on the covered assets.
    accounts TEXT NOT NULL DEFAULT '',
    actions TEXT NOT NULL,
    duration_secs INTEGER NOT NULL CHECK (duration_secs > 0),
    reason TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'denied', 'cancelled')),
    created_at TEXT NOT NULL,
    decided_at TEXT,
    decided_by TEXT,
    note TEXT,
    -- The grant an approval created (it may be removed later; the id stays as evidence).
    grant_id TEXT,
    valid_until TEXT,
    CHECK ((asset IS NULL) <> (labels IS NULL))
);
CREATE INDEX access_requests_state ON access_requests (state, created_at);
CREATE INDEX access_requests_requester ON access_requests (requester, created_at);
