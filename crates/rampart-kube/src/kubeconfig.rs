//! The kubeconfig Rampart issues (`rampart kube config`, the API's and the portal's download):
//! one cluster (Rampart's listener with the cluster's path, the node's certificate as its CA),
//! one user (a personal Kubernetes token), one context. Written as JSON, which is YAML too and
//! which kubectl and client libraries read as a kubeconfig.

use crate::api::PREFIX;
use serde_json::json;

/// What a kubeconfig names.
#[derive(Debug)]
pub struct KubeconfigInput<'a> {
    /// `https://HOST:PORT` of the Kubernetes listener.
    pub server: &'a str,
    /// `ASSET` or `ACCOUNT@ASSET`.
    pub cluster: &'a str,
    pub user: &'a str,
    /// The node's certificate (PEM), trusted as the cluster's CA.
    pub ca_pem: &'a [u8],
    pub token: &'a str,
    pub namespace: Option<&'a str>,
}

/// The kubeconfig's text.
pub fn render(input: &KubeconfigInput<'_>) -> String {
    use base64::Engine as _;
    let name = format!("rampart-{}", input.cluster.replace('@', "-"));
    let user = format!("{}@rampart", input.user);
    let mut context = json!({ "cluster": name, "user": user });
    if let (Some(namespace), Some(object)) = (input.namespace, context.as_object_mut()) {
        object.insert("namespace".to_owned(), json!(namespace));
    }
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": name,
            "cluster": {
                "server": format!("{}{PREFIX}{}", input.server.trim_end_matches('/'), input.cluster),
                "certificate-authority-data":
                    base64::engine::general_purpose::STANDARD.encode(input.ca_pem),
            },
        }],
        "users": [{ "name": user, "user": { "token": input.token } }],
        "contexts": [{ "name": name, "context": context }],
        "current-context": name,
    });
    let mut text = serde_json::to_string_pretty(&config).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kubeconfig_names_the_listener_path_ca_and_token() {
        let text = render(&KubeconfigInput {
            server: "https://127.0.0.1:6443/",
            cluster: "sa@prod-k8s",
            user: "alice",
            ca_pem: b"-----BEGIN CERTIFICATE-----",
            token: "rampartkube_x",
            namespace: Some("web"),
        });
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            value["clusters"][0]["cluster"]["server"],
            "https://127.0.0.1:6443/clusters/sa@prod-k8s"
        );
        assert_eq!(value["users"][0]["user"]["token"], "rampartkube_x");
        assert_eq!(value["contexts"][0]["context"]["namespace"], "web");
        assert_eq!(value["current-context"], "rampart-sa-prod-k8s");
    }
}
