-- Anomaly detectors (issue 18). What they remember of each user: the source addresses they
-- logged in from and the assets they had sessions to, each with when it was last seen (RFC 3339
-- UTC), so "a new address", "not used for N days" and "a first session to an asset" are one
-- lookup. And how far they have read the audit log: `seq` is the last event they judged;
-- events up to `quiet_until` (the head when they first ran) are learned without alerts, so
-- turning a detector on does not raise alerts about the past.
CREATE TABLE detector_seen (
    user_name TEXT NOT NULL,
    what TEXT NOT NULL CHECK (what IN ('source', 'asset')),
    value TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    PRIMARY KEY (user_name, what, value)
);
CREATE TABLE detector_progress (
    name TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    quiet_until INTEGER NOT NULL
);
