//! The portal's Kubernetes page in real Chromium, and what the kubeconfig it downloads is worth:
//! the real `kubectl` uses it against the fake API server (`tests/kube/fake_apiserver.py`)
//! through Rampart. A CONTRACT test like the rest of `kube.rs`, not a cluster test.

use crate::db_common::text;
use crate::kube::{header, kubectl, rampart_for_cluster, start_fake};
use rampart_testkit::require_tool;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// CONTRACT TEST: alice (password and TOTP) logs in to the portal, opens Kubernetes, sees the
/// cluster she may reach with its "Download kubeconfig" button and downloads the kubeconfig;
/// the file names Rampart's listener and the cluster and holds a personal token (never shown on
/// the page), and the real kubectl lists pods with it, as alice, impersonated.
#[test]
fn the_portal_downloads_a_kubeconfig_that_kubectl_uses_in_chromium() {
    let (Some(node), Some(chromium)) = (require_tool("node"), require_tool("chromium")) else {
        return;
    };
    if require_tool("kubectl").is_none() || !crate::browser::require_playwright() {
        return;
    }
    let Some(fake) = start_fake() else { return };
    let (r, server, port) = rampart_for_cluster(&fake);
    let uri = crate::mfa::enroll_by_link(&r, &server, "alice", "alice-password-1");
    let used_until = rampart_testkit::unix_now();
    let secret = uri
        .split(['?', '&'])
        .find_map(|part| part.strip_prefix("secret="))
        .unwrap()
        .to_owned();
    let artifacts = crate::browser::artifacts_dir().join("kube");
    let downloaded = fake.dir.path().join("downloaded.kubeconfig");
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let out = Command::new(node)
        .arg("kube.mjs")
        .current_dir(&browser_dir)
        .env("RAMPART_URL", format!("https://{}", server.http))
        .env("LOGIN_USER", "alice")
        .env("PASSWORD", "alice-password-1")
        .env("TOTP_SECRET", &secret)
        .env("TOTP_USED_UNTIL", used_until.to_string())
        .env("CLUSTER", "k8s")
        .env("KUBECONFIG_OUT", &downloaded)
        .env("ARTIFACTS", &artifacts)
        .env("CHROMIUM", chromium)
        .output()
        .unwrap();
    assert!(
        out.status.success() && text(&out).contains("kubeconfig downloaded in the browser"),
        "kube.mjs failed (screenshots in {}):\n{}",
        artifacts.display(),
        text(&out)
    );

    // The file: Rampart's Kubernetes listener with the cluster's path, the cluster's name, the
    // node's certificate as CA, and a personal Kubernetes token of alice's.
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(&downloaded).unwrap()).unwrap();
    assert_eq!(
        config["clusters"][0]["cluster"]["server"],
        format!("https://127.0.0.1:{port}/clusters/k8s"),
        "{config}"
    );
    assert_eq!(config["clusters"][0]["name"], "rampart-k8s", "{config}");
    assert_eq!(config["current-context"], "rampart-k8s", "{config}");
    assert!(
        config["clusters"][0]["cluster"]["certificate-authority-data"]
            .as_str()
            .is_some_and(|ca| !ca.is_empty()),
        "{config}"
    );
    let token = config["users"][0]["user"]["token"].as_str().unwrap();
    assert!(token.starts_with("rampartkube_"), "{config}");
    let minted = r.json(&["audit", "list", "--kind", "db_token_created"]);
    assert!(
        minted
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["actor"]["name"] == "alice" && e["event"]["user"] == "alice"),
        "{minted}"
    );

    // The real kubectl with that file, through Rampart, as alice herself.
    let pods = kubectl(&downloaded, &["get", "pods"]);
    assert!(pods.status.success(), "{}", text(&pods));
    assert!(text(&pods).contains("web-0"), "{}", text(&pods));
    let listed = fake
        .requests()
        .into_iter()
        .find(|request| request["path"] == "/api/v1/namespaces/default/pods")
        .unwrap_or_else(|| panic!("the fake API server saw no pod list: {:?}", fake.requests()));
    assert_eq!(header(&listed, "Impersonate-User"), ["alice"]);
    assert!(
        !header(&listed, "Authorization")
            .iter()
            .any(|value| value.contains(token)),
        "alice's Rampart token reached the API server"
    );
}
