//! What a Kubernetes API request is, from its method, path and query (pure): the cluster it is
//! for (`/clusters/TARGET/...`, the prefix of the server URL in the kubeconfig Rampart writes),
//! the verb, the resource, namespace, name and subresource, and which Rampart action it needs.
//!
//! The grammar is the API server's own (`k8s.io/apiserver` request info): `/api/v1/...` for the
//! core group, `/apis/GROUP/VERSION/...` for the others, `namespaces/NS/RESOURCE[/NAME[/SUB]]`
//! inside a namespace; everything else (`/version`, `/api`, `/apis`, `/openapi/...`) is a
//! non-resource request, read-only.

use rampart_core::{Action, Name};

/// The path prefix of every request: `/clusters/TARGET/` (TARGET is `ASSET` or `ACCOUNT@ASSET`).
pub const PREFIX: &str = "/clusters/";

/// Subresources that open a stream to a container (exec, attach, port-forward).
const STREAMING: [&str; 3] = ["exec", "attach", "portforward"];

/// The cluster a request names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterRef {
    pub asset: Name,
    pub account: Option<Name>,
}

impl ClusterRef {
    /// `prod-k8s` or `rampart-sa@prod-k8s`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let name = |what: &str, text: &str| {
            Name::parse(what, text).map_err(|_| format!("invalid cluster {text:?} in the path"))
        };
        match text.split_once('@') {
            None => Ok(Self {
                asset: name("asset", text)?,
                account: None,
            }),
            Some((account, asset)) => Ok(Self {
                asset: name("asset", asset)?,
                account: Some(name("account", account)?),
            }),
        }
    }

    pub fn target(&self) -> String {
        match &self.account {
            Some(account) => format!("{account}@{}", self.asset),
            None => self.asset.to_string(),
        }
    }
}

/// One API request as Rampart records and authorizes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRequest {
    pub verb: &'static str,
    /// The path on the API server (without the `/clusters/TARGET` prefix).
    pub path: String,
    /// `pods`, `deployments.apps`; `None` for a non-resource request.
    pub resource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

impl ApiRequest {
    /// Splits `/clusters/TARGET/rest` into the cluster and the request on the API server.
    pub fn parse(
        method: &str,
        full_path: &str,
        query: Option<&str>,
    ) -> Result<(ClusterRef, ApiRequest), String> {
        let rest = full_path
            .strip_prefix(PREFIX)
            .ok_or_else(|| format!("the path must start with {PREFIX}CLUSTER/"))?;
        let (target, path) = match rest.split_once('/') {
            Some((target, path)) => (target, format!("/{path}")),
            None => (rest, "/".to_owned()),
        };
        let cluster = ClusterRef::parse(target)?;
        if path.split('/').any(|part| part == ".." || part == ".") {
            return Err("the path may not contain . or .. segments".to_owned());
        }
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let watch = query.is_some_and(|q| {
            form_urlencoded::parse(q.as_bytes())
                .any(|(k, v)| k == "watch" && (v == "true" || v == "1"))
        });
        let (group, resource_parts): (Option<String>, &[&str]) = match parts.as_slice() {
            ["api", _version, rest @ ..] if !rest.is_empty() => (None, rest),
            ["apis", group, _version, rest @ ..] if !rest.is_empty() => {
                (Some((*group).to_owned()), rest)
            }
            _ => {
                let verb = match method {
                    "GET" | "HEAD" => "get",
                    "POST" => "create",
                    "PUT" => "update",
                    "PATCH" => "patch",
                    "DELETE" => "delete",
                    _ => "other",
                };
                return Ok((
                    cluster,
                    ApiRequest {
                        verb,
                        path,
                        resource: None,
                        namespace: None,
                        name: None,
                        subresource: None,
                    },
                ));
            }
        };
        // `namespaces/NS/RESOURCE/...`, except `namespaces/NS` itself (the namespace object)
        // and `namespaces/NS/status|finalize` (its subresources).
        let (namespace, object) = match resource_parts {
            ["namespaces", ns, resource, rest @ ..]
                if !matches!(*resource, "status" | "finalize") || !rest.is_empty() =>
            {
                (Some((*ns).to_owned()), {
                    let mut v = vec![*resource];
                    v.extend_from_slice(rest);
                    v
                })
            }
            other => (None, other.to_vec()),
        };
        let resource = object.first().map(|r| match &group {
            Some(group) => format!("{r}.{group}"),
            None => (*r).to_owned(),
        });
        let name = object.get(1).map(|n| (*n).to_owned());
        let subresource = object.get(2).map(|s| (*s).to_owned());
        if object.len() > 3 {
            return Err(format!("unexpected API path {path}"));
        }
        let verb = match (method, name.is_some()) {
            ("GET" | "HEAD", _) if watch => "watch",
            ("GET" | "HEAD", true) => "get",
            ("GET" | "HEAD", false) => "list",
            ("POST", _) => "create",
            ("PUT", _) => "update",
            ("PATCH", _) => "patch",
            ("DELETE", true) => "delete",
            ("DELETE", false) => "deletecollection",
            _ => "other",
        };
        // A stream to a container is opened by GET (WebSocket) or POST (SPDY): either way it
        // is `create` on the subresource, as the API server's authorizer sees it.
        let verb = if subresource
            .as_deref()
            .is_some_and(|s| STREAMING.contains(&s))
        {
            "create"
        } else {
            verb
        };
        Ok((
            cluster,
            ApiRequest {
                verb,
                path,
                resource,
                namespace,
                name,
                subresource,
            },
        ))
    }

    /// Whether the request opens a stream to a container (exec, attach, port-forward).
    pub fn is_streaming(&self) -> bool {
        self.resource.as_deref() == Some("pods")
            && self
                .subresource
                .as_deref()
                .is_some_and(|s| STREAMING.contains(&s))
    }

    /// The Rampart action the request needs: port-forward `kubernetes:port_forward`, the other
    /// streams to containers (exec, attach) `kubernetes:exec`, reads (get, list, watch, every
    /// non-resource GET) `kubernetes:read`, the rest `kubernetes:write`.
    pub fn action(&self) -> Action {
        if self.is_streaming() {
            if self.subresource.as_deref() == Some("portforward") {
                return Action::KubernetesPortForward;
            }
            return Action::KubernetesExec;
        }
        match self.verb {
            "get" | "list" | "watch" => Action::KubernetesRead,
            _ => Action::KubernetesWrite,
        }
    }

    /// Whether the objects of this request are Secrets (their values are never recorded).
    pub fn is_secret(&self) -> bool {
        self.resource.as_deref() == Some("secrets")
    }

    /// `list pods -n default`, `get pods/web-0 -n default`, `get /version`.
    pub fn summary(&self) -> String {
        let Some(resource) = &self.resource else {
            return format!("{} {}", self.verb, self.path);
        };
        let mut text = format!("{} {resource}", self.verb);
        if let Some(name) = &self.name {
            text.push('/');
            text.push_str(name);
        }
        if let Some(sub) = &self.subresource {
            text.push('/');
            text.push_str(sub);
        }
        if let Some(ns) = &self.namespace {
            text.push_str(" -n ");
            text.push_str(ns);
        }
        text
    }
}

/// The values of `key` in a query string, decoded, in order (`command=echo&command=hi`).
pub fn query_values(query: Option<&str>, key: &str) -> Vec<String> {
    query
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .filter(|(k, _)| k == key)
                .map(|(_, v)| v.into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(method: &str, path: &str, query: Option<&str>) -> ApiRequest {
        ApiRequest::parse(method, path, query).unwrap().1
    }

    #[test]
    fn requests_get_their_verb_resource_and_action() {
        let r = parse("GET", "/clusters/k8s/api/v1/namespaces/default/pods", None);
        assert_eq!(
            (r.verb, r.resource.as_deref(), r.namespace.as_deref()),
            ("list", Some("pods"), Some("default"))
        );
        assert_eq!(r.action(), Action::KubernetesRead);
        assert_eq!(r.summary(), "list pods -n default");
        let r = parse(
            "GET",
            "/clusters/k8s/api/v1/namespaces/default/pods/web-0",
            None,
        );
        assert_eq!((r.verb, r.name.as_deref()), ("get", Some("web-0")));
        let r = parse(
            "GET",
            "/clusters/k8s/api/v1/namespaces/default/pods",
            Some("watch=true&resourceVersion=1"),
        );
        assert_eq!(r.verb, "watch");
        let r = parse(
            "DELETE",
            "/clusters/k8s/apis/apps/v1/namespaces/prod/deployments/web",
            None,
        );
        assert_eq!(
            (r.verb, r.resource.as_deref(), r.action()),
            ("delete", Some("deployments.apps"), Action::KubernetesWrite)
        );
        let r = parse(
            "GET",
            "/clusters/k8s/api/v1/namespaces/default/pods/web-0/exec",
            Some("command=echo&command=hi&stdout=true"),
        );
        assert!(r.is_streaming());
        assert_eq!((r.verb, r.action()), ("create", Action::KubernetesExec));
        let r = parse("GET", "/clusters/k8s/api/v1/namespaces/default", None);
        assert_eq!(
            (
                r.verb,
                r.resource.as_deref(),
                r.name.as_deref(),
                r.namespace
            ),
            ("get", Some("namespaces"), Some("default"), None)
        );
        let r = parse("GET", "/clusters/k8s/api/v1/nodes", None);
        assert_eq!((r.verb, r.resource.as_deref()), ("list", Some("nodes")));
        for path in [
            "/clusters/k8s/version",
            "/clusters/k8s/api",
            "/clusters/k8s/apis",
        ] {
            let r = parse("GET", path, None);
            assert_eq!(
                (r.resource.clone(), r.action()),
                (None, Action::KubernetesRead)
            );
        }
        let (cluster, _) = ApiRequest::parse("GET", "/clusters/sa@k8s/api", None).unwrap();
        assert_eq!(cluster.target(), "sa@k8s");
    }

    #[test]
    fn bad_paths_are_refused() {
        for path in [
            "/api/v1/pods",
            "/clusters/",
            "/clusters/bad name/api",
            "/clusters/k8s/api/v1/namespaces/default/pods/../secrets",
            "/clusters/k8s/api/v1/namespaces/a/pods/b/exec/extra",
        ] {
            assert!(ApiRequest::parse("GET", path, None).is_err(), "{path}");
        }
    }

    #[test]
    fn exec_commands_come_from_the_query_in_order() {
        assert_eq!(
            query_values(
                Some("command=sh&command=-c&command=echo%20hi&stdin=true"),
                "command"
            ),
            vec!["sh", "-c", "echo hi"]
        );
    }
}
