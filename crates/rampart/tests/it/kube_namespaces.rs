//! Grants limited to Kubernetes namespaces, beyond the request: what `grant explain` (CLI and
//! API) says about them, and live enforcement of a running exec stream and watch when the
//! grant's namespaces change. CONTRACT tests against `tests/kube/fake_apiserver.py`, with the
//! machine's `kubectl`, like `kube.rs`: not cluster tests.

use crate::BIN;
use crate::db_common::{live_session, text};
use crate::kube::{
    kubeconfig, kubectl_at_prompt, port_forward, rampart_for_cluster, read_until, start_fake,
    wait_exit, wait_for, watching_pods,
};
use rampart_testkit::Rampart;
use serde_json::Value;
use std::time::{Duration, Instant};

/// A new grant for carol: read and exec on `k8s`, in `namespaces` only. Returns its id.
/// Adds a grant for carol on `k8s` for `actions`, limited to `namespaces` (`None`: the whole
/// cluster); returns its id.
fn grant_carol_to(r: &Rampart, actions: &str, namespaces: Option<&str>) -> String {
    let mut args = vec![
        "grant",
        "add",
        "--user",
        "carol",
        "--asset",
        "k8s",
        "--actions",
        actions,
    ];
    if let Some(namespaces) = namespaces {
        args.extend(["--namespaces", namespaces]);
    }
    r.json(&args)["id"].as_str().unwrap().to_owned()
}

fn grant_carol(r: &Rampart, namespaces: &str) -> String {
    grant_carol_to(r, "kubernetes:read,kubernetes:exec", Some(namespaces))
}

/// `grant explain` shows the namespaces a grant limits a Kubernetes asset to, and a question
/// about a namespace outside them is a deny that says why (the same decision the listener
/// makes), in the CLI's words, its JSON and the API's.
#[test]
fn grant_explain_shows_the_namespaces_and_why_another_namespace_is_refused() {
    let r = Rampart::new(BIN);
    r.ok(&["user", "add", "carol"]);
    r.ok(&[
        "asset",
        "add",
        "k8s",
        "--host",
        "127.0.0.1",
        "--endpoint",
        "kubernetes:6443",
    ]);
    r.ok_with_stdin(
        &["account", "add", "rampart-sa@k8s", "--password-stdin"],
        b"sa-token",
    );
    let grant = grant_carol(&r, "default,api");
    let ask = |extra: &[&str]| {
        let mut args = vec![
            "grant",
            "explain",
            "--user",
            "carol",
            "--asset",
            "k8s",
            "--action",
            "kubernetes:exec",
        ];
        args.extend_from_slice(extra);
        r.ok(&args)
    };

    // Without a namespace: allowed, in those namespaces only, and the grant says its limit.
    let any = ask(&[]);
    assert!(
        any.starts_with("ALLOW: carol may use rampart-sa@k8s for kubernetes:exec"),
        "{any}"
    );
    assert!(
        any.contains("Kubernetes namespaces: api, default only"),
        "{any}"
    );
    assert!(
        any.contains(&format!(
            "grant {grant} (user:carol on asset:k8s, namespaces api,default): allows"
        )),
        "{any}"
    );
    // One of its namespaces: allowed by the grant.
    let inside = ask(&["--namespace", "api"]);
    assert!(inside.starts_with("ALLOW"), "{inside}");
    assert!(
        inside.contains(&format!("allowed by grant {grant}")),
        "{inside}"
    );
    // Another namespace: refused, and why.
    let outside = ask(&["--namespace", "kube-system"]);
    assert!(outside.starts_with("DENY: carol may not use"), "{outside}");
    assert!(
        outside.contains(
            "reason: the namespace kube-system is refused: the grants allow kubernetes:exec in \
             the namespaces api, default only"
        ),
        "{outside}"
    );
    assert!(
        outside.contains("allows it in the namespaces api, default only, not kube-system"),
        "{outside}"
    );
    let json = r.json(&[
        "grant",
        "explain",
        "--user",
        "carol",
        "--asset",
        "k8s",
        "--action",
        "kubernetes:exec",
        "--namespace",
        "kube-system",
    ]);
    assert_eq!(json[0]["decision"], "deny", "{json}");
    assert_eq!(json[0]["namespace"], "kube-system", "{json}");
    assert_eq!(json[0]["grants"][0]["allows"], false, "{json}");
    assert_eq!(
        json[0]["grants"][0]["namespaces"],
        serde_json::json!(["api", "default"]),
        "{json}"
    );
    // A namespace is a Kubernetes question only.
    let wrong = r.run(&[
        "grant",
        "explain",
        "--user",
        "carol",
        "--asset",
        "k8s",
        "--action",
        "shell",
        "--namespace",
        "api",
    ]);
    assert!(!wrong.status.success());
    assert!(
        text(&wrong).contains("a namespace applies to Kubernetes actions only"),
        "{}",
        text(&wrong)
    );

    // The API's explain answers the same, from the same function.
    r.ok(&["user", "add", "audrey", "--role", "auditor"]);
    let token = r
        .ok(&["token", "create", "--user", "audrey", "--scope", "read"])
        .trim()
        .to_owned();
    let server = r.serve();
    let bearer = format!("Bearer {token}");
    let answer = |namespace: &str| -> Value {
        let response = server.client().request(
            "GET",
            &format!(
                "/api/v1/grants/explain?user=carol&asset=k8s&action=kubernetes:exec&namespace={namespace}"
            ),
            &[("authorization", &bearer)],
            None,
        );
        assert_eq!(response.status, 200, "{}", response.text());
        response.json()
    };
    let refused = answer("kube-system");
    assert_eq!(refused[0]["decision"], "deny", "{refused}");
    assert!(
        refused[0]["reason"]
            .as_str()
            .unwrap()
            .contains("in the namespaces api, default only"),
        "{refused}"
    );
    let allowed = answer("default");
    assert_eq!(allowed[0]["decision"], "allow", "{allowed}");
    assert_eq!(allowed[0]["namespace"], "default", "{allowed}");
    assert_eq!(
        allowed[0]["namespaces"],
        serde_json::json!(["api", "default"]),
        "{allowed}"
    );
}

/// Reads `stream` into a shared buffer on a thread of its own.
fn ended_with(r: &Rampart, id: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let session = r.json(&["session", "show", id]);
        if !session["ended_at"].is_null() {
            return session["end_reason"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
        }
        assert!(Instant::now() < deadline, "{session}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Replaces carol's grant by one for the namespace `api` only: the new grant first, so her
/// Kubernetes actions stay allowed on the cluster at every moment; only the namespace
/// `default` stops being hers.
fn move_carol_to_api(r: &Rampart, old: &str) -> String {
    let new = grant_carol(r, "api");
    r.ok(&["grant", "remove", old]);
    new
}

/// CONTRACT TEST: live enforcement asks a running Kubernetes stream again for its namespace:
/// when carol's grant is replaced by one for another namespace, her running `kubectl exec -it`
/// in `default` ends and kubectl prints why, and so does her watch of `default`'s pods; the
/// sessions' records keep the reason.
#[test]
fn a_running_exec_and_watch_end_when_the_grant_no_longer_covers_their_namespace() {
    let Some(kubectl_path) = rampart_testkit::require_tool("kubectl") else {
        return;
    };
    let Some(script) = rampart_testkit::require_tool("script") else {
        return;
    };
    let Some(fake) = start_fake() else { return };
    let (r, _server, port) = rampart_for_cluster(&fake);
    r.ok(&["user", "add", "carol"]);
    let grant = grant_carol(&r, "default,api");
    let carol = kubeconfig(&r, &fake, "carol", port);
    const WHY: &str = "no grant allows kubernetes:exec in the namespace default any more";

    // An interactive exec in `default` (a shell that stays open until it is ended).
    let (mut shell, seen, _keys) =
        kubectl_at_prompt(&script, &kubectl_path, &carol, "exec -it web-0 -- sh");
    let exec = live_session(&r, "kubernetes_exec");
    let grant = move_carol_to_api(&r, &grant);
    wait_exit(&mut shell);
    wait_for(&seen, WHY, 1);
    let reason = ended_with(&r, &exec);
    assert!(reason.contains(WHY), "{reason}");

    // A watch of `default`'s pods, under a grant for `default` again, ended the same way.
    let grant = {
        let back = grant_carol(&r, "default");
        r.ok(&["grant", "remove", &grant]);
        back
    };
    let mut watch = watching_pods(&kubectl_path, &carol, &[]);
    let watching = live_session(&r, "kubernetes");
    move_carol_to_api(&r, &grant);
    wait_exit(&mut watch);
    let reason = ended_with(&r, &watching);
    assert!(
        reason.contains("no grant allows kubernetes:read in the namespace default any more"),
        "{reason}"
    );
}

/// CONTRACT TEST: a watch across the whole cluster (`kubectl get pods -A --watch`) needs a
/// grant without namespaces; when carol's grant is replaced by one for `default` only, live
/// enforcement ends the watch and its record says why.
#[test]
fn a_cluster_wide_watch_ends_when_the_grant_is_limited_to_a_namespace() {
    let Some(kubectl_path) = rampart_testkit::require_tool("kubectl") else {
        return;
    };
    let Some(fake) = start_fake() else { return };
    let (r, _server, port) = rampart_for_cluster(&fake);
    r.ok(&["user", "add", "carol"]);
    let everywhere = grant_carol_to(&r, "kubernetes:read", None);
    let carol = kubeconfig(&r, &fake, "carol", port);
    let mut watch = watching_pods(&kubectl_path, &carol, &["--all-namespaces"]);
    let watching = live_session(&r, "kubernetes");
    grant_carol(&r, "default");
    r.ok(&["grant", "remove", &everywhere]);
    wait_exit(&mut watch);
    let reason = ended_with(&r, &watching);
    assert!(
        reason.contains("no grant allows kubernetes:read across the whole cluster any more"),
        "{reason}"
    );
}

/// CONTRACT TEST: a running `kubectl port-forward` to a pod in `default` ends when carol's
/// grant is replaced by one for another namespace, as an exec stream does.
#[test]
fn a_running_port_forward_ends_when_the_grant_no_longer_covers_its_namespace() {
    let Some(kubectl_path) = rampart_testkit::require_tool("kubectl") else {
        return;
    };
    let Some(fake) = start_fake() else { return };
    let (r, _server, port) = rampart_for_cluster(&fake);
    r.ok(&["user", "add", "carol"]);
    // kubectl reads the pod before it forwards.
    let forward_grant = |namespaces| {
        grant_carol_to(
            &r,
            "kubernetes:read,kubernetes:port_forward",
            Some(namespaces),
        )
    };
    let grant = forward_grant("default,api");
    let carol = kubeconfig(&r, &fake, "carol", port);
    let (mut forward, local, _errors) = port_forward(&kubectl_path, &carol);
    // A connection through it works, and stays open.
    let mut connection = std::net::TcpStream::connect(("127.0.0.1", local)).unwrap();
    std::io::Write::write_all(&mut connection, b"before").unwrap();
    read_until(&mut connection, "echo:before");
    let forwarding = live_session(&r, "kubernetes_port_forward");
    forward_grant("api");
    r.ok(&["grant", "remove", &grant]);
    wait_exit(&mut forward);
    let reason = ended_with(&r, &forwarding);
    assert!(
        reason
            .contains("no grant allows kubernetes:port_forward in the namespace default any more"),
        "{reason}"
    );
}
