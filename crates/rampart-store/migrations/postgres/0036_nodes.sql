-- Cluster operations (issue 19): the nodes that serve this store, their heartbeats, and the
-- node carrying each session.
CREATE TABLE nodes (
    name TEXT PRIMARY KEY,
    -- Random per process start: a node's row belongs to the process that registered it.
    instance TEXT NOT NULL,
    -- The data directory it runs from (its `node-id`).
    home TEXT NOT NULL,
    -- Where other nodes reach this node's HTTP listener (the live-watch relay), if anywhere.
    address TEXT,
    -- Its HTTPS certificate (PEM, public): other nodes trust it for that connection.
    certificate TEXT,
    version TEXT NOT NULL,
    started_at TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL,
    -- up | stopped | lost
    state TEXT NOT NULL,
    -- 1 while it holds the cluster's leader lock (it runs the work that must run once).
    leader INTEGER NOT NULL DEFAULT 0
);
ALTER TABLE sessions ADD COLUMN node TEXT;
CREATE INDEX sessions_live_by_node ON sessions (node) WHERE ended_at IS NULL;
-- Settings every node must agree on (the vault key, the audit key), checked at node start.
CREATE TABLE cluster_settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
