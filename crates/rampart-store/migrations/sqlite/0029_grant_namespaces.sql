-- Kubernetes namespaces a grant is limited to (issue 23); none means every namespace. Only
-- Kubernetes actions read them: a request in another namespace, or a cluster-wide one, is not
-- allowed by such a grant.
CREATE TABLE grant_namespaces (
    grant_id  TEXT NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    namespace TEXT NOT NULL,
    PRIMARY KEY (grant_id, namespace)
);
