-- Network domains and their SSH-hop gateways (issue 15); each session records its route.
CREATE TABLE domains (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);

-- Domains assets already named become domains, so every asset's domain exists.
INSERT INTO domains (id, name, created_at)
    SELECT lower(hex(randomblob(16))), domain, strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
    FROM (SELECT DISTINCT domain FROM assets WHERE domain IS NOT NULL);

-- An asset's domain must name a domain (the store checks it first, with a clearer message).
CREATE TRIGGER assets_domain_exists_insert BEFORE INSERT ON assets
    WHEN NEW.domain IS NOT NULL AND NOT EXISTS (SELECT 1 FROM domains WHERE name = NEW.domain)
    BEGIN SELECT RAISE(ABORT, 'unknown network domain'); END;
CREATE TRIGGER assets_domain_exists_update BEFORE UPDATE OF domain ON assets
    WHEN NEW.domain IS NOT NULL AND NOT EXISTS (SELECT 1 FROM domains WHERE name = NEW.domain)
    BEGIN SELECT RAISE(ABORT, 'unknown network domain'); END;

CREATE TABLE gateways (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    domain_id TEXT NOT NULL REFERENCES domains(id),
    host TEXT NOT NULL,
    port INTEGER NOT NULL,
    login TEXT NOT NULL,
    -- Lower first: new sessions try the domain's gateways in this order.
    priority INTEGER NOT NULL,
    secret_kind TEXT NOT NULL,
    -- Sealed by the vault, bound to this row (see accounts).
    secret BLOB NOT NULL,
    -- authorized_keys form; NULL until pinned.
    host_key TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX gateways_domain ON gateways (domain_id, priority);

-- `direct`, `gateway NAME`; NULL until the session's connection is made (or for older rows).
ALTER TABLE sessions ADD COLUMN route TEXT;
