-- What a signed chain head says about its signer: 'running' (a server that signs again within
-- its seal interval), 'final' (the last signature of a process that stopped cleanly), or
-- 'legacy' (signed before heads carried a time and a state). sealed_at is part of what is signed.
ALTER TABLE audit_seals ADD COLUMN state TEXT NOT NULL DEFAULT 'legacy';
