-- Kubernetes tokens (issue 23): the bearer token of a kubeconfig that `rampart kube config`
-- writes. They are personal tokens like the database tokens (hash only, expiring, revocable,
-- ended by an auth_epoch change), told apart by their kind: a database token never opens the
-- Kubernetes listener, and a Kubernetes token never logs in to a database.
ALTER TABLE db_tokens ADD COLUMN kind TEXT NOT NULL DEFAULT 'database'
    CHECK (kind IN ('database', 'kubernetes'));
