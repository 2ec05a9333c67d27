-- The target model: an asset is a host with one or more endpoints (a protocol on a port), in at
-- most one network domain. Every existing asset's port becomes its ssh endpoint; its pinned host
-- key stays on the asset as the ssh endpoint's identity. Evidence rows (sessions, audit events)
-- copy names and are not touched.
CREATE TABLE asset_endpoints (
    asset_id        TEXT NOT NULL REFERENCES assets (id) ON DELETE CASCADE,
    protocol        TEXT NOT NULL CHECK (protocol IN ('ssh', 'postgres', 'mysql', 'redis', 'rdp',
                                                      'vnc', 'telnet', 'kubernetes', 'tcp')),
    port            INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
    -- For TLS protocols: the pinned certificate fingerprint (SHA256:hex), once known.
    tls_fingerprint TEXT,
    PRIMARY KEY (asset_id, protocol),
    UNIQUE (asset_id, port)
);

INSERT INTO asset_endpoints (asset_id, protocol, port)
    SELECT id, 'ssh', port FROM assets;

ALTER TABLE assets DROP COLUMN port;

-- The network domain's name; NULL: the asset is dialled directly.
ALTER TABLE assets ADD COLUMN domain TEXT;
