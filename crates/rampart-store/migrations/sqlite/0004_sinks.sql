-- Progress of each SIEM sink (syslog, webhook): the last event delivered or given up on, and how
-- many could not be delivered. The audit log itself is the queue: a sink that is down never
-- blocks anything and never loses the local record.
CREATE TABLE sink_status (
    sink           TEXT PRIMARY KEY,
    delivered_seq  INTEGER NOT NULL,
    failed         INTEGER NOT NULL DEFAULT 0,
    last_error     TEXT,
    updated_at     TEXT NOT NULL
);
