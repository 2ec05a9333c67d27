-- Signatures over the audit chain head by the node's audit key. A rewritten chain (even with
-- recomputed hashes) or a deleted tail no longer matches its last signed head.
CREATE TABLE audit_seals (
    seq       INTEGER PRIMARY KEY,
    hash      TEXT NOT NULL,
    sealed_at TEXT NOT NULL,
    signature TEXT NOT NULL
);
