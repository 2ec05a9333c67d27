//! The REST API over real HTTPS against a real `rampart serve`: the authorization matrix built
//! from the router's own route table (B1, B2, B10), logins with password and TOTP (A2, A7,
//! lockout shared with SSH), CSRF (B8), cookies, logout, A11, API token scopes, expiry,
//! revocation and source rules, a canary in the vault (D1), and the OpenAPI document checked by
//! a third-party validator.

use super::BIN;
use crate::ssh::Lab;
use rampart_testkit::{HttpClient, HttpResponse, Rampart, require_tool};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// One way of calling the API.
#[derive(Clone, Debug)]
enum Who {
    Anonymous,
    Cookie { cookie: String, csrf: String },
    Token(String),
}

fn call(
    client: &HttpClient,
    who: &Who,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> HttpResponse {
    let mut headers: Vec<(&str, &str)> = Vec::new();
    let bearer;
    let cookie_header;
    match who {
        Who::Anonymous => {}
        Who::Cookie { cookie, csrf } => {
            cookie_header = format!("rampart_session={cookie}");
            headers.push(("cookie", &cookie_header));
            if method != "GET" {
                headers.push(("x-csrf-token", csrf));
            }
        }
        Who::Token(token) => {
            bearer = format!("Bearer {token}");
            headers.push(("authorization", &bearer));
        }
    }
    client.request(method, path, &headers, body)
}

/// A WebSocket handshake as `who`, with `origin` as the `Origin` header if any.
fn handshake(client: &HttpClient, who: &Who, path: &str, origin: Option<&str>) -> HttpResponse {
    let mut headers: Vec<(&str, &str)> = Vec::new();
    let bearer;
    let cookie_header;
    match who {
        Who::Anonymous => {}
        Who::Cookie { cookie, .. } => {
            cookie_header = format!("rampart_session={cookie}");
            headers.push(("cookie", &cookie_header));
        }
        Who::Token(token) => {
            bearer = format!("Bearer {token}");
            headers.push(("authorization", &bearer));
        }
    }
    if let Some(origin) = origin {
        headers.push(("origin", origin));
    }
    client.websocket_handshake(path, &headers)
}

/// Logs in; returns the cookie and CSRF token, or the failed answer.
fn login(
    client: &HttpClient,
    user: &str,
    password: &str,
    totp: Option<&str>,
) -> Result<Who, HttpResponse> {
    login_from(client, None, user, password, totp)
}

/// Logs in through a (trusted) proxy that says the client is `forwarded_for`.
fn login_from(
    client: &HttpClient,
    forwarded_for: Option<&str>,
    user: &str,
    password: &str,
    totp: Option<&str>,
) -> Result<Who, HttpResponse> {
    let mut body = json!({ "username": user, "password": password });
    if let Some(code) = totp {
        body["totp"] = json!(code);
    }
    let headers: Vec<(&str, &str)> = forwarded_for
        .map(|a| ("x-forwarded-for", a))
        .into_iter()
        .collect();
    let response = client.request("POST", "/api/v1/login", &headers, Some(&body));
    if response.status != 200 {
        return Err(response);
    }
    let set_cookie = response.header("set-cookie").unwrap().to_owned();
    let cookie = set_cookie
        .strip_prefix("rampart_session=")
        .and_then(|rest| rest.split(';').next())
        .unwrap()
        .to_owned();
    let csrf = response.json()["csrf_token"].as_str().unwrap().to_owned();
    Ok(Who::Cookie { cookie, csrf })
}

fn password(r: &Rampart, user: &str, password: &str) {
    r.ok_with_stdin(&["user", "password", user], password.as_bytes());
}

fn token(r: &Rampart, user: &str, scope: &str) -> String {
    r.ok(&["token", "create", "--user", user, "--scope", scope])
        .trim()
        .to_owned()
}

/// The expected outcome for [anonymous, user A, user B, auditor, admin]:
/// `2` a 2xx answer, `A` past the guard (anything but 401/403), `N` 404 (not yours),
/// `F` 403, `U` 401. WebSocket routes are called with a real handshake from this server's
/// origin: `W` upgraded (101) with a cookie, 403 with a token; `n` 404 with a cookie, 403 with
/// a token (WebSockets are for browser sessions only). `b`: past the guard with a cookie, 403
/// with a token (a change of one's own credentials, for browser sessions only).
fn expected_table() -> BTreeMap<(&'static str, &'static str), &'static str> {
    BTreeMap::from([
        (("GET", "/healthz"), "22222"),
        (("GET", "/readyz"), "22222"),
        (("GET", "/metrics"), "UFF22"),
        (("GET", "/api/v1/openapi.json"), "22222"),
        (("POST", "/api/v1/login"), "AAAAA"),
        (("POST", "/api/v1/login/passkey/start"), "22222"),
        (("POST", "/api/v1/login/passkey"), "AAAAA"),
        (("POST", "/api/v1/logout"), "UAAAA"),
        (("GET", "/api/v1/oidc/start"), "NNNNN"),
        (("GET", "/api/v1/oidc/callback"), "NNNNN"),
        (("POST", "/api/v1/oidc/second-factor"), "AAAAA"),
        (("GET", "/api/v1/me"), "U2222"),
        (("GET", "/api/v1/me/accounts"), "U2222"),
        (("POST", "/api/v1/me/ssh-certificate"), "UAAAA"),
        (("POST", "/api/v1/me/password"), "UAAAA"),
        (("POST", "/api/v1/me/keys"), "UAAAA"),
        (("POST", "/api/v1/me/totp"), "UAAAA"),
        (("POST", "/api/v1/me/totp/confirm"), "UAAAA"),
        (("POST", "/api/v1/me/keys/remove"), "UAAAA"),
        (("GET", "/api/v1/me/passkeys"), "U2222"),
        (("POST", "/api/v1/me/passkeys/start"), "Ubbbb"),
        (("POST", "/api/v1/me/passkeys"), "UAAAA"),
        (("DELETE", "/api/v1/me/passkeys/{id}"), "Ubbbb"),
        (("GET", "/account"), "22222"),
        (("GET", "/api/v1/me/ssh-logins/{code}"), "UNNNN"),
        (("POST", "/api/v1/me/ssh-logins/{code}"), "UAAAA"),
        (("POST", "/api/v1/ssh-login"), "AAAAA"),
        (("POST", "/api/v1/users/{name}/invites"), "UFFFA"),
        (("POST", "/api/v1/invites/{token}/start"), "NNNNN"),
        (("POST", "/api/v1/invites/{token}"), "AAAAA"),
        (("GET", "/invite"), "22222"),
        (("GET", "/api/v1/me/ssh-approvals/{id}"), "UNNNN"),
        (("POST", "/api/v1/me/ssh-approvals/{id}"), "UAAAA"),
        (("POST", "/api/v1/ssh-login/poll"), "AAAAA"),
        (("GET", "/ssh"), "22222"),
        (("GET", "/api/v1/terminal"), "UWWWW"),
        (("GET", "/api/v1/desktop"), "UWWWW"),
        (("GET", "/api/v1/sessions/{id}/watch"), "Unnnn"),
        (("GET", "/api/v1/tokens"), "U2222"),
        (("POST", "/api/v1/tokens"), "UAAAA"),
        (("DELETE", "/api/v1/tokens/{id}"), "UANNA"),
        (("GET", "/api/v1/sessions"), "U2222"),
        (("GET", "/api/v1/sessions/{id}"), "U2N22"),
        (("GET", "/api/v1/cluster/sessions/{id}/stream"), "FFFFF"),
        (("GET", "/api/v1/nodes"), "UFF22"),
        (("POST", "/api/v1/sessions/{id}/kill"), "UFFAA"),
        (("GET", "/api/v1/sessions/{id}/recording"), "U2N22"),
        // Only desktop sessions have a stream to replay: the matrix's shell session is 404.
        (("GET", "/api/v1/sessions/{id}/recording/stream"), "UANAA"),
        (
            ("GET", "/api/v1/sessions/{id}/recording/verification"),
            "U2N22",
        ),
        (("GET", "/api/v1/commands"), "U2222"),
        (("GET", "/api/v1/queries"), "U2222"),
        (("GET", "/api/v1/db-tokens"), "U2222"),
        (("POST", "/api/v1/db-tokens"), "UAAAA"),
        (("DELETE", "/api/v1/db-tokens/{id}"), "UNNNA"),
        (("POST", "/api/v1/kube/config"), "UAAAA"),
        (("GET", "/api/v1/audit/events"), "UFF22"),
        (("GET", "/api/v1/audit/export"), "UFF22"),
        (("GET", "/api/v1/users"), "UFF22"),
        (("POST", "/api/v1/users"), "UFFFA"),
        (("GET", "/api/v1/users/{name}"), "UFFAA"),
        (("DELETE", "/api/v1/users/{name}"), "UFFFA"),
        (("POST", "/api/v1/users/{name}/disable"), "UFFFA"),
        (("POST", "/api/v1/users/{name}/enable"), "UFFFA"),
        (("POST", "/api/v1/users/{name}/keys"), "UFFFA"),
        (("POST", "/api/v1/users/{name}/keys/remove"), "UFFFA"),
        (("PUT", "/api/v1/users/{name}/password"), "UFFFA"),
        (("DELETE", "/api/v1/users/{name}/mfa"), "UFFFA"),
        (("POST", "/api/v1/users/{name}/unlock"), "UFFFA"),
        (("PUT", "/api/v1/users/{name}/login-rules"), "UFFFA"),
        (("GET", "/api/v1/groups"), "UFF22"),
        (("POST", "/api/v1/groups"), "UFFFA"),
        (("POST", "/api/v1/groups/{name}/members"), "UFFFA"),
        (("DELETE", "/api/v1/groups/{name}/members/{user}"), "UFFFA"),
        (("DELETE", "/api/v1/groups/{name}"), "UFFFA"),
        (("PUT", "/api/v1/users/{name}/role"), "UFFFA"),
        (("PATCH", "/api/v1/grants/{id}"), "UFFFA"),
        (("GET", "/api/v1/assets"), "UFF22"),
        (("POST", "/api/v1/assets"), "UFFFA"),
        (("GET", "/api/v1/assets/{name}"), "UFFAA"),
        (("DELETE", "/api/v1/assets/{name}"), "UFFFA"),
        (("PUT", "/api/v1/assets/{name}"), "UFFFA"),
        (("POST", "/api/v1/assets/{name}/endpoints"), "UFFFA"),
        (
            ("PUT", "/api/v1/assets/{name}/endpoints/{protocol}"),
            "UFFFA",
        ),
        (
            ("DELETE", "/api/v1/assets/{name}/endpoints/{protocol}"),
            "UFFFA",
        ),
        (("PUT", "/api/v1/assets/{name}/host-key"), "UFFFA"),
        (("DELETE", "/api/v1/assets/{name}/host-key"), "UFFFA"),
        (("GET", "/api/v1/domains"), "UFF22"),
        (("GET", "/api/v1/domains/{name}"), "UFFAA"),
        (("POST", "/api/v1/domains"), "UFFFA"),
        (("DELETE", "/api/v1/domains/{name}"), "UFFFA"),
        (("GET", "/api/v1/gateways"), "UFF22"),
        (("GET", "/api/v1/gateways/{name}"), "UFFAA"),
        (("POST", "/api/v1/gateways"), "UFFFA"),
        (("DELETE", "/api/v1/gateways/{name}"), "UFFFA"),
        (("POST", "/api/v1/gateways/{name}/test"), "UFFFA"),
        (("GET", "/api/v1/accounts"), "UFF22"),
        (("POST", "/api/v1/accounts"), "UFFFA"),
        (("PUT", "/api/v1/accounts/{account}/secret"), "UFFFA"),
        (("DELETE", "/api/v1/accounts/{account}"), "UFFFA"),
        (("GET", "/api/v1/accounts/{account}/rotations"), "UFFAA"),
        (("POST", "/api/v1/accounts/{account}/rotations"), "UFFFA"),
        (("POST", "/api/v1/accounts/{account}/rotate"), "UFFFA"),
        (("GET", "/api/v1/breakglass/kits"), "UFF22"),
        (("GET", "/api/v1/breakglass/requests"), "UFF22"),
        (("POST", "/api/v1/breakglass/requests"), "UFFFA"),
        (
            ("POST", "/api/v1/breakglass/requests/{id}/approve"),
            "UFFFA",
        ),
        (("GET", "/api/v1/grants"), "UFF22"),
        (("POST", "/api/v1/grants"), "UFFFA"),
        (("GET", "/api/v1/grants/explain"), "UFFAA"),
        (("DELETE", "/api/v1/grants/{id}"), "UFFFA"),
        (("GET", "/api/v1/alerts"), "UFF22"),
        (("GET", "/api/v1/audit/sinks"), "UFF22"),
        (("GET", "/api/v1/reports"), "UFF22"),
        (("GET", "/api/v1/requests"), "U2222"),
        (("POST", "/api/v1/requests"), "UAAAA"),
        (("POST", "/api/v1/requests/{id}/approve"), "UAAAA"),
        (("POST", "/api/v1/requests/{id}/deny"), "UAAAA"),
        (("POST", "/api/v1/requests/{id}/cancel"), "UAAAA"),
        (("GET", "/api/v1/command-approvals"), "U2222"),
        (("POST", "/api/v1/command-approvals/{id}/approve"), "UAAAA"),
        (("POST", "/api/v1/command-approvals/{id}/deny"), "UAAAA"),
        (("POST", "/api/v1/alerts/{id}/acknowledge"), "UFFAA"),
        (("GET", "/api/v1/command-rules"), "UFF22"),
        (("POST", "/api/v1/command-rules"), "UFFFA"),
        (("DELETE", "/api/v1/command-rules/{id}"), "UFFFA"),
        // The portal's pages are shells: their data comes from the routes above.
        (("GET", "/"), "22222"),
        (("GET", "/login"), "22222"),
        (("GET", "/terminal"), "22222"),
        (("GET", "/desktop"), "22222"),
        (("GET", "/sessions"), "22222"),
        (("GET", "/replay"), "22222"),
        (("GET", "/watch"), "22222"),
        (("GET", "/commands"), "22222"),
        (("GET", "/databases"), "22222"),
        (("GET", "/kubernetes"), "22222"),
        (("GET", "/alerts"), "22222"),
        (("GET", "/audit"), "22222"),
        (("GET", "/reports"), "22222"),
        (("GET", "/requests"), "22222"),
        (("GET", "/admin/users"), "22222"),
        (("GET", "/admin/groups"), "22222"),
        (("GET", "/admin/assets"), "22222"),
        (("GET", "/admin/domains"), "22222"),
        (("GET", "/admin/accounts"), "22222"),
        (("GET", "/admin/grants"), "22222"),
        (("GET", "/admin/settings"), "22222"),
        (("GET", "/assets/{file}"), "22222"),
        (("GET", "/assets/vendor/{package}/{file}"), "22222"),
    ])
}

fn outcome_matches(expected: char, who: &Who, response: &HttpResponse) -> bool {
    let by_cookie = matches!(who, Who::Cookie { .. });
    match expected {
        'W' if by_cookie => response.status == 101,
        'n' if by_cookie => response.status == 404,
        'W' | 'n' => response.status == 403,
        'b' if by_cookie => response.status != 401 && response.status != 403,
        'b' => response.status == 403,
        '2' => (200..300).contains(&response.status),
        'A' => response.status != 401 && response.status != 403,
        'N' => response.status == 404,
        'F' => response.status == 403,
        'U' => response.status == 401,
        _ => false,
    }
}

#[test]
fn authorization_matrix_covers_every_route() {
    let Some(lab) = Lab::start() else { return };
    let r = &lab.r;
    // Alice (user A) has a recorded session with a command in it.
    let out = lab.ssh(&lab.direct(), "echo matrix", b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let session = lab.sessions()[0]["id"].as_str().unwrap().to_owned();
    r.ok(&["user", "add", "bob"]);
    r.ok(&["user", "add", "audrey", "--role", "auditor"]);
    r.ok(&["user", "add", "adam", "--role", "admin"]);
    for user in ["alice", "bob", "audrey", "adam"] {
        password(r, user, &format!("{user}-password-1"));
    }
    let client = lab.server.client();
    let cookie = |user: &str| login(&client, user, &format!("{user}-password-1"), None).unwrap();
    let columns: Vec<(usize, &str, Who)> = vec![
        (0, "anonymous", Who::Anonymous),
        (1, "alice cookie", cookie("alice")),
        (1, "alice token", Who::Token(token(r, "alice", "write"))),
        (2, "bob cookie", cookie("bob")),
        (2, "bob token", Who::Token(token(r, "bob", "write"))),
        (3, "audrey cookie", cookie("audrey")),
        (3, "audrey token", Who::Token(token(r, "audrey", "write"))),
        (4, "adam cookie", cookie("adam")),
        (4, "adam token", Who::Token(token(r, "adam", "admin"))),
    ];
    let alice_spare_token =
        r.json(&["token", "create", "--user", "alice", "--scope", "read"])["token"]["id"]
            .as_str()
            .unwrap()
            .to_owned();

    // Every route of the router's own table must have a row: a new route without one fails.
    let table = expected_table();
    let mut routes = rampart_web::routes::table();
    // Log out last: it ends the sessions the other rows use.
    routes.sort_by_key(|route| route.path == "/api/v1/logout");
    let mut failures = Vec::new();
    for route in &routes {
        let method = route.method.as_str();
        let Some(expected) = table.get(&(method, route.path)) else {
            failures.push(format!(
                "{method} {} has no row in the expected table",
                route.path
            ));
            continue;
        };
        let path = route
            .path
            .replace("/sessions/{id}", &format!("/sessions/{session}"))
            .replace("/tokens/{id}", &format!("/tokens/{alice_spare_token}"))
            .replace("{id}", "01890000-0000-7000-8000-000000000000")
            .replace("{name}", "zz-nobody")
            .replace("{user}", "zz-nobody")
            .replace("{protocol}", "ssh")
            .replace("{account}", "zz@zz-nobody")
            .replace("/assets/{file}", "/assets/portal.css")
            .replace("{package}/{file}", "xterm/LICENSE");
        // An invalid body: whoever gets past the guard is refused by the handler, so the
        // matrix changes nothing.
        let body = route.body.map(|_| json!({ "zz_not_a_field": true }));
        let websocket = route.success == 101;
        let path = if route.path == "/api/v1/terminal" || route.path == "/api/v1/desktop" {
            format!("{path}?account=zz@zz-nobody")
        } else {
            path
        };
        for (column, label, who) in &columns {
            let response = if websocket {
                handshake(&client, who, &path, Some(client.origin()))
            } else {
                call(&client, who, method, &path, body.as_ref())
            };
            let want = expected.chars().nth(*column).unwrap();
            if !outcome_matches(want, who, &response) {
                failures.push(format!(
                    "{method} {path} as {label}: expected {want}, got {} {}",
                    response.status,
                    response.text()
                ));
            }
        }
    }
    for key in table.keys() {
        if !routes.iter().any(|r| (r.method.as_str(), r.path) == *key) {
            failures.push(format!("{key:?} is in the expected table but not a route"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // B2: lists hold only what the caller could fetch one by one.
    let alice = Who::Token(token(r, "alice", "read"));
    let bob = Who::Token(token(r, "bob", "read"));
    let auditor = Who::Token(token(r, "audrey", "read"));
    let ids = |who: &Who, path: &str| -> Vec<String> {
        call(&client, who, "GET", path, None)
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                s["session"]
                    .as_str()
                    .or(s["id"].as_str())
                    .unwrap_or("")
                    .to_owned()
            })
            .collect()
    };
    assert!(ids(&alice, "/api/v1/sessions").contains(&session));
    assert!(ids(&bob, "/api/v1/sessions").is_empty());
    assert!(ids(&bob, "/api/v1/sessions?user=alice").is_empty());
    assert!(ids(&auditor, "/api/v1/sessions").contains(&session));
    assert!(ids(&bob, "/api/v1/commands?user=alice").is_empty());
    let bobs = call(&client, &bob, "GET", "/api/v1/tokens?user=alice", None).json();
    assert!(
        bobs.as_array().unwrap().iter().all(|t| t["user"] == "bob"),
        "{bobs}"
    );
    // The recording downloads and is audited (E5).
    let cast = call(
        &client,
        &alice,
        "GET",
        &format!("/api/v1/sessions/{session}/recording"),
        None,
    );
    assert_eq!(cast.status, 200);
    assert!(cast.text().starts_with('{'), "asciicast header first");
    let verification = call(
        &client,
        &auditor,
        "GET",
        &format!("/api/v1/sessions/{session}/recording/verification"),
        None,
    )
    .json();
    assert_eq!(verification["verified"], true, "{verification}");
    assert!(!lab.events("recording_exported").is_empty());
    // The accounts alice may reach now, by the same policy the SSH menu asks.
    let reachable = call(&client, &alice, "GET", "/api/v1/me/accounts", None).json();
    assert_eq!(reachable[0]["account"], format!("{}@web-01", lab.login));
    assert_eq!(
        call(&client, &bob, "GET", "/api/v1/me/accounts", None).json(),
        json!([])
    );
    // An auditor may kill alice's session... only while it is live; it has ended.
    let kill = call(
        &client,
        &Who::Token(token(r, "audrey", "write")),
        "POST",
        &format!("/api/v1/sessions/{session}/kill"),
        Some(&json!({})),
    );
    assert_eq!(kill.status, 404, "{}", kill.text());
}

#[test]
fn websockets_need_a_browser_session_from_our_origin_and_watching_needs_a_role() {
    let Some(lab) = Lab::start() else { return };
    let r = &lab.r;
    r.ok(&["user", "add", "audrey", "--role", "auditor"]);
    for user in ["alice", "audrey"] {
        password(r, user, &format!("{user}-password-1"));
    }
    let client = lab.server.client();
    let alice = login(&client, "alice", "alice-password-1", None).unwrap();
    let audrey = login(&client, "audrey", "audrey-password-1", None).unwrap();
    let terminal = format!("/api/v1/terminal?account={}@web-01", lab.login);
    // B8: a valid cookie from a foreign page, or with no Origin at all, opens nothing.
    let foreign = handshake(&client, &alice, &terminal, Some("https://evil.example"));
    assert_eq!(
        (foreign.status, foreign.error_code().as_str()),
        (403, "origin_refused")
    );
    let lookalike = format!("{}.evil.example", client.origin());
    assert_eq!(
        handshake(&client, &alice, &terminal, Some(&lookalike)).status,
        403
    );
    assert_eq!(handshake(&client, &alice, &terminal, None).status, 403);
    assert_eq!(
        handshake(&client, &alice, &terminal, Some(client.origin())).status,
        101
    );
    // Without the upgrade headers, the route says so (and opens nothing).
    let Who::Cookie { cookie, .. } = &alice else {
        panic!()
    };
    let plain = client.request(
        "GET",
        &terminal,
        &[
            ("cookie", &format!("rampart_session={cookie}")),
            ("origin", client.origin()),
        ],
        None,
    );
    assert_eq!(plain.status, 400, "{}", plain.text());

    // A live session: alice runs a long command.
    let mut long = lab.ssh_command(&lab.direct());
    let mut child = long
        .arg("sleep 30")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The web terminal opened above is a live session too for a moment (until its closed
    // WebSocket ends it): the one to watch is the one running the command.
    let mut live = None;
    for _ in 0..200 {
        let sessions = r.json(&["session", "list", "--live"]);
        let running = sessions
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["command"] == "sleep 30");
        if let Some(id) = running.and_then(|s| s["id"].as_str()) {
            live = Some(id.to_owned());
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let live = live.expect("the session never showed as live");
    let watch = format!("/api/v1/sessions/{live}/watch");
    // B10: alice cannot watch, not even her own session; the auditor can, from our origin only.
    assert_eq!(
        handshake(&client, &alice, &watch, Some(client.origin())).status,
        404
    );
    assert_eq!(
        handshake(&client, &audrey, &watch, Some("https://evil.example")).status,
        403
    );
    // The store shows the session live a moment before the relay registers it.
    let mut watched = 0;
    for _ in 0..100 {
        watched = handshake(&client, &audrey, &watch, Some(client.origin())).status;
        if watched != 404 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(watched, 101);
    // Watching is audited, with who watched.
    let watched = lab.events("session_watched");
    assert!(
        watched
            .iter()
            .any(|e| e["event"]["session"] == live.as_str()
                && e["actor"].to_string().contains("audrey")),
        "{watched:?}"
    );
    // Now that it is watchable, alice still cannot watch it.
    assert_eq!(
        handshake(&client, &alice, &watch, Some(client.origin())).status,
        404
    );
    let unknown = "/api/v1/sessions/01890000-0000-7000-8000-000000000000/watch";
    assert_eq!(
        handshake(&client, &audrey, unknown, Some(client.origin())).status,
        404
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn web_login_password_totp_lockout_csrf_logout() {
    let r = Rampart::new(BIN);
    r.ok(&["user", "add", "carol"]);
    r.ok(&["user", "add", "dave"]);
    r.ok(&["user", "add", "erin"]);
    for user in ["carol", "dave", "erin"] {
        password(&r, user, "right-password");
    }
    // The test client is the trusted proxy: each phase comes "from" its own address, so the
    // per-source counters do not mix the phases up.
    let server = r.serve_with_env(&[("RAMPART_AUTH_TRUSTED_PROXIES", "127.0.0.1/32")]);
    let uri = crate::mfa::enroll_by_link(&r, &server, "carol", "right-password");
    let client = server.client();

    // A second factor is part of the one login request: without it, nothing (A7).
    let missing = login(&client, "carol", "right-password", None).unwrap_err();
    assert_eq!(missing.status, 401);
    assert_eq!(missing.error_code(), "login_failed");
    // Wait for a step the enrolment did not use, then log in with its code.
    let step_start = (rampart_testkit::unix_now() / 30 + 1) * 30;
    std::thread::sleep(std::time::Duration::from_secs(
        step_start.saturating_sub(rampart_testkit::unix_now()),
    ));
    let code = rampart_testkit::totp_code(&uri, rampart_testkit::unix_now());
    let Who::Cookie { cookie, csrf } =
        login(&client, "carol", "right-password", Some(&code)).unwrap()
    else {
        panic!()
    };
    // The replayed code is refused.
    let replay = login(&client, "carol", "right-password", Some(&code)).unwrap_err();
    assert_eq!(replay.error_code(), "login_failed");

    // A2: unknown user, wrong password and locked user look the same.
    let unknown =
        login_from(&client, Some("192.0.2.1"), "nobody", "right-password", None).unwrap_err();
    let wrong = login_from(&client, Some("192.0.2.2"), "erin", "wrong-password", None).unwrap_err();
    // A1: a new forwarded address per attempt does not escape the user's lock.
    for attempt in 0..5 {
        let from = format!("198.51.100.{attempt}");
        let _ = login_from(&client, Some(&from), "dave", "wrong-password", None);
    }
    let locked = login_from(
        &client,
        Some("198.51.100.99"),
        "dave",
        "right-password",
        None,
    )
    .unwrap_err();
    for answer in [&wrong, &locked] {
        assert_eq!(
            (answer.status, answer.text()),
            (unknown.status, unknown.text())
        );
    }
    // The lock is the one SSH uses: the same counters, shown by the CLI.
    let dave = r.json(&["user", "show", "dave"]);
    assert!(dave["locked_until"].is_string(), "{dave}");
    r.ok(&["user", "unlock", "dave"]);
    assert!(
        login_from(
            &client,
            Some("198.51.100.100"),
            "dave",
            "right-password",
            None
        )
        .is_ok()
    );

    // Cookie attributes (HTTPS, so Secure).
    let fresh = client.request(
        "POST",
        "/api/v1/login",
        &[],
        Some(&json!({"username": "erin", "password": "right-password"})),
    );
    let set_cookie = fresh.header("set-cookie").unwrap();
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }

    // CSRF (B8): a change by cookie needs the header, and the right one.
    let cookie_header = format!("rampart_session={cookie}");
    let create = |csrf: Option<&str>| {
        let mut headers = vec![("cookie", cookie_header.as_str())];
        if let Some(csrf) = csrf {
            headers.push(("x-csrf-token", csrf));
        }
        client.request(
            "POST",
            "/api/v1/tokens",
            &headers,
            Some(&json!({"scope": "read"})),
        )
    };
    assert_eq!(create(None).error_code(), "csrf_failed");
    assert_eq!(create(Some("not-the-token")).error_code(), "csrf_failed");
    assert_eq!(create(Some(&csrf)).status, 201);
    // Reads need none.
    assert_eq!(
        client
            .request("GET", "/api/v1/me", &[("cookie", &cookie_header)], None)
            .status,
        200
    );

    // Logout ends the session.
    let me = Who::Cookie {
        cookie: cookie.clone(),
        csrf: csrf.clone(),
    };
    assert_eq!(
        call(&client, &me, "POST", "/api/v1/logout", None).status,
        204
    );
    assert_eq!(call(&client, &me, "GET", "/api/v1/me", None).status, 401);

    // A11: a password change ends the user's other web sessions.
    let one = login(&client, "erin", "right-password", None).unwrap();
    let two = login(&client, "erin", "right-password", None).unwrap();
    assert_eq!(call(&client, &one, "GET", "/api/v1/me", None).status, 200);
    password(&r, "erin", "new-password");
    for session in [&one, &two] {
        assert_eq!(
            call(&client, session, "GET", "/api/v1/me", None).status,
            401
        );
    }
    assert!(
        r.json(&["audit", "list", "--limit", "1000"])
            .to_string()
            .contains("web_session_ended")
    );
}

#[test]
fn api_tokens_scopes_expiry_revocation_and_source_rules() {
    let r = Rampart::new(BIN);
    r.ok(&["user", "add", "adam", "--role", "admin"]);
    r.ok(&["user", "add", "erin"]);
    password(&r, "erin", "right-password");
    let server = r.serve();
    let client = server.client();
    // A read token cannot change anything, even an administrator's.
    let read = Who::Token(token(&r, "adam", "read"));
    assert_eq!(
        call(&client, &read, "GET", "/api/v1/users", None).status,
        200
    );
    let refused = call(
        &client,
        &read,
        "POST",
        "/api/v1/groups",
        Some(&json!({"name": "ops"})),
    );
    assert_eq!(
        (refused.status, refused.error_code().as_str()),
        (403, "forbidden")
    );
    // A write token does not administer; an admin token does.
    let write = Who::Token(token(&r, "adam", "write"));
    assert_eq!(
        call(
            &client,
            &write,
            "POST",
            "/api/v1/groups",
            Some(&json!({"name": "ops"}))
        )
        .status,
        403
    );
    let admin = Who::Token(token(&r, "adam", "admin"));
    assert_eq!(
        call(
            &client,
            &admin,
            "POST",
            "/api/v1/groups",
            Some(&json!({"name": "ops"}))
        )
        .status,
        201
    );
    // Users cannot hold admin tokens; nobody issues tokens for others but administrators.
    let err = r.run(&["token", "create", "--user", "erin", "--scope", "admin"]);
    assert!(!err.status.success());
    let erin = Who::Token(token(&r, "erin", "write"));
    let other = call(
        &client,
        &erin,
        "POST",
        "/api/v1/tokens",
        Some(&json!({"user": "adam", "scope": "read"})),
    );
    assert_eq!(other.status, 403);
    // Shown once: the listing never holds the secret.
    let created = call(
        &client,
        &admin,
        "POST",
        "/api/v1/tokens",
        Some(&json!({"user": "erin", "scope": "read", "expires": "1s"})),
    );
    assert_eq!(created.status, 201);
    let secret = created.json()["secret"].as_str().unwrap().to_owned();
    let listing = call(&client, &admin, "GET", "/api/v1/tokens", None).text();
    assert!(!listing.contains(&secret));
    // Expired.
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(
        call(&client, &Who::Token(secret), "GET", "/api/v1/me", None).status,
        401
    );
    // Revoked.
    let revocable = r.json(&["token", "create", "--user", "erin", "--scope", "read"]);
    let id = revocable["token"]["id"].as_str().unwrap();
    let revocable = Who::Token(revocable["secret"].as_str().unwrap().to_owned());
    assert_eq!(
        call(&client, &revocable, "GET", "/api/v1/me", None).status,
        200
    );
    r.ok(&["token", "revoke", id]);
    assert_eq!(
        call(&client, &revocable, "GET", "/api/v1/me", None).status,
        401
    );
    assert!(
        r.ok(&["token", "list", "--user", "erin"])
            .contains("revoked")
    );
    // From outside the user's allowed sources: neither the token nor a login works.
    assert_eq!(call(&client, &erin, "GET", "/api/v1/me", None).status, 200);
    r.ok(&["user", "set", "erin", "--allow-from", "10.0.0.0/8"]);
    assert_eq!(call(&client, &erin, "GET", "/api/v1/me", None).status, 401);
    assert_eq!(
        login(&client, "erin", "right-password", None)
            .unwrap_err()
            .status,
        401
    );
    // A forged X-Forwarded-For from an untrusted peer changes nothing (A1).
    let forged = client.request(
        "GET",
        "/api/v1/me",
        &[
            (
                "authorization",
                &format!(
                    "Bearer {}",
                    match &erin {
                        Who::Token(t) => t.clone(),
                        _ => unreachable!(),
                    }
                ),
            ),
            ("x-forwarded-for", "10.1.2.3"),
        ],
        None,
    );
    assert_eq!(forged.status, 401);
    // Disabled users' tokens stop working.
    r.ok(&["user", "set", "erin", "--allow-from", ""]);
    assert_eq!(call(&client, &erin, "GET", "/api/v1/me", None).status, 200);
    r.ok(&["user", "disable", "erin"]);
    assert_eq!(call(&client, &erin, "GET", "/api/v1/me", None).status, 401);
    let events = r.json(&["audit", "list", "--limit", "1000"]).to_string();
    for kind in ["api_token_created", "api_token_revoked"] {
        assert!(events.contains(kind), "{kind}");
    }
}

#[test]
fn the_vault_canary_appears_in_no_api_response() {
    const CANARY: &str = "canary-api-secret-5e1f9b";
    const CANARY2: &str = "canary-api-replaced-77aa";
    let r = Rampart::new(BIN);
    r.ok(&["user", "add", "adam", "--role", "admin"]);
    r.ok(&["asset", "add", "web-01", "--host", "127.0.0.1"]);
    r.ok_with_stdin(
        &["account", "add", "root@web-01", "--password-stdin"],
        CANARY.as_bytes(),
    );
    r.ok(&["grant", "add", "--user", "adam", "--asset", "web-01"]);
    let server = r.serve();
    let client = server.client();
    let admin = Who::Token(token(&r, "adam", "admin"));
    let mut bodies = String::new();
    let replaced = call(
        &client,
        &admin,
        "PUT",
        "/api/v1/accounts/root@web-01/secret",
        Some(&json!({"password": CANARY2})),
    );
    assert_eq!(replaced.status, 200, "{}", replaced.text());
    bodies += &replaced.text();
    let added = call(
        &client,
        &admin,
        "POST",
        "/api/v1/accounts",
        Some(&json!({"account": "admin@web-01", "password": CANARY})),
    );
    assert_eq!(added.status, 201);
    bodies += &added.text();
    for path in [
        "/api/v1/accounts",
        "/api/v1/accounts?asset=web-01",
        "/api/v1/assets",
        "/api/v1/assets/web-01",
        "/api/v1/users",
        "/api/v1/users/adam",
        "/api/v1/me",
        "/api/v1/me/accounts",
        "/api/v1/grants",
        "/api/v1/grants/explain?user=adam&asset=web-01",
        "/api/v1/audit/events?limit=10000",
        "/api/v1/audit/export",
        "/api/v1/audit/export?format=csv",
        "/api/v1/sessions",
        "/api/v1/commands",
        "/api/v1/tokens",
        "/api/v1/openapi.json",
    ] {
        let response = call(&client, &admin, "GET", path, None);
        assert_eq!(response.status, 200, "{path}: {}", response.text());
        bodies += &response.text();
    }
    // The search can fail: the bodies hold the accounts and their audit events.
    assert!(bodies.contains("root@web-01") && bodies.contains("account_secret_replaced"));
    for canary in [CANARY, CANARY2] {
        assert!(
            !bodies.contains(canary),
            "an API response holds a vaulted secret"
        );
    }
    // Exports are audited (E5).
    assert!(
        r.json(&["audit", "list", "--limit", "1000"])
            .to_string()
            .contains("audit_exported")
    );
}

#[test]
fn openapi_document_is_valid() {
    let r = Rampart::new(BIN);
    let server = r.serve();
    let response = server
        .client()
        .request("GET", "/api/v1/openapi.json", &[], None);
    assert_eq!(response.status, 200);
    let document = response.json();
    assert_eq!(document["openapi"], "3.1.0");
    // Every route of the table is documented, and nothing else.
    let mut documented = 0;
    for route in rampart_web::routes::table() {
        let method = route.method.as_str().to_lowercase();
        assert!(
            document["paths"][route.path][&method].is_object(),
            "{method} {}",
            route.path
        );
        documented += 1;
    }
    let operations: usize = document["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_object().unwrap().len())
        .sum();
    assert_eq!(operations, documented);
    let Some(validator) = require_tool("openapi-spec-validator") else {
        return;
    };
    let file = r.scratch().join("openapi.json");
    std::fs::write(&file, response.body).unwrap();
    let output = std::process::Command::new(validator)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "openapi-spec-validator: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn plain_http_only_on_loopback() {
    let r = Rampart::new(BIN);
    let server = r.serve_with_env(&[("RAMPART_HTTP_TLS", "false")]);
    assert!(!server.tls);
    assert_eq!(server.get("/healthz").0, 200);
    let mut command = r.command(&[
        "serve",
        "--http-listen",
        "0.0.0.0:0",
        "--ssh-listen",
        "127.0.0.1:0",
    ]);
    let output = command.env("RAMPART_HTTP_TLS", "false").output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("http.tls"));
}

/// A11 for tokens: a change to the user's credentials (here a password change) makes every token
/// they had stop working; new tokens work.
#[test]
fn a_credential_change_retires_the_users_tokens() {
    let r = Rampart::new(BIN);
    r.ok(&["user", "add", "erin"]);
    password(&r, "erin", "right-password");
    let server = r.serve();
    let client = server.client();
    let before = Who::Token(token(&r, "erin", "read"));
    assert_eq!(
        call(&client, &before, "GET", "/api/v1/me", None).status,
        200
    );
    password(&r, "erin", "another-right-password");
    let refused = call(&client, &before, "GET", "/api/v1/me", None);
    assert_eq!(refused.status, 401);
    let listed = r.json(&["token", "list", "--user", "erin"]);
    assert_eq!(listed[0]["superseded"], true, "{listed}");
    let after = Who::Token(token(&r, "erin", "read"));
    assert_eq!(call(&client, &after, "GET", "/api/v1/me", None).status, 200);
}

#[test]
fn portal_pages_have_a_strict_policy_escape_input_and_serve_embedded_assets() {
    let r = Rampart::new(BIN);
    let server = r.serve();
    let client = server.client();
    let pages: Vec<_> = rampart_web::routes::table()
        .into_iter()
        .filter(|route| route.produces == "text/html")
        .collect();
    assert!(pages.len() >= 10);
    for route in pages {
        let page = client.request("GET", route.path, &[], None);
        assert_eq!(page.status, 200, "{}", route.path);
        assert_eq!(
            page.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        let policy = page.header("content-security-policy").unwrap();
        assert!(policy.contains("default-src 'self'"), "{policy}");
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
        let scripts = policy
            .split(';')
            .find(|d| d.trim().starts_with("script-src"))
            .unwrap();
        assert!(!scripts.contains("unsafe-inline"), "{policy}");
        assert_eq!(page.header("x-frame-options"), Some("DENY"));
        // No inline script: every script element loads a file from this server.
        let html = page.text();
        for tag in html.split("<script").skip(1) {
            assert!(
                tag.trim_start().starts_with("src=\"/assets/"),
                "{}: {tag}",
                route.path
            );
        }
    }
    // What a visitor puts in the address is escaped.
    let hostile = client.request(
        "GET",
        "/terminal?account=%3Cscript%3Ealert(1)%3C/script%3E%22",
        &[],
        None,
    );
    let html = hostile.text();
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;"));
    assert!(!html.contains("<script>alert"));
    // The embedded assets, with their types and the vendored licences.
    for (path, content_type, needle) in [
        ("/assets/portal.js", "text/javascript", "X-CSRF-Token"),
        ("/assets/portal.css", "text/css", "#terminal"),
        (
            "/assets/vendor/xterm/xterm.js",
            "text/javascript",
            "Terminal",
        ),
        ("/assets/vendor/xterm/LICENSE", "text/plain", "MIT"),
        (
            "/assets/vendor/xterm-addon-fit/LICENSE",
            "text/plain",
            "MIT",
        ),
        (
            "/assets/vendor/asciinema-player/asciinema-player.min.js",
            "text/javascript",
            "AsciinemaPlayer",
        ),
        (
            "/assets/vendor/asciinema-player/LICENSE",
            "text/plain",
            "Apache License",
        ),
    ] {
        let asset = client.request("GET", path, &[], None);
        assert_eq!(asset.status, 200, "{path}");
        assert!(
            asset
                .header("content-type")
                .unwrap()
                .starts_with(content_type),
            "{path}"
        );
        assert_eq!(asset.header("x-content-type-options"), Some("nosniff"));
        assert!(asset.text().contains(needle), "{path}");
    }
    for missing in [
        "/assets/nothing.js",
        "/assets/vendor/xterm/..%2F..%2Fportal.js",
    ] {
        assert_eq!(
            client.request("GET", missing, &[], None).status,
            404,
            "{missing}"
        );
    }
}

/// A client may write a request's head and its body separately (a busy machine deschedules
/// it in between). A request refused before its body arrived must still leave the connection
/// open for the next request, or a client reusing it sees it closed under a POST (the flaky
/// "Peer disconnected" of the authorization matrix).
#[test]
fn a_request_refused_before_its_body_arrived_leaves_the_connection_usable() {
    let r = Rampart::new(BIN);
    let server = r.serve();
    let mut connection = server.client().raw();
    let body = br#"{"zz_not_a_field":true}"#;
    connection.send(
        format!(
            "POST /api/v1/users/zz-nobody/keys HTTP/1.1\r\nHost: rampart\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    connection.send(body);
    let refused = connection.read_response().expect("an answer to the POST");
    assert_eq!(refused.status, 401, "{}", refused.text());
    assert_ne!(refused.header("connection"), Some("close"));
    connection.send(b"GET /readyz HTTP/1.1\r\nHost: rampart\r\n\r\n");
    let ready = connection
        .read_response()
        .expect("the kept-alive connection answers the next request");
    assert_eq!(ready.status, 200, "{}", ready.text());
}

#[test]
fn an_admin_creates_tests_and_removes_domains_and_gateways_through_the_api() {
    const CANARY: &str = "canary-gateway-password-31c7";
    let r = Rampart::new(BIN);
    r.ok(&["user", "add", "adam", "--role", "admin"]);
    let server = r.serve();
    let client = server.client();
    let admin = Who::Token(token(&r, "adam", "admin"));
    let created = call(
        &client,
        &admin,
        "POST",
        "/api/v1/domains",
        Some(&json!({"name": "dc-east"})),
    );
    assert_eq!(created.status, 201, "{}", created.text());
    // A port nothing listens on: bind one, learn it, close it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let added = call(
        &client,
        &admin,
        "POST",
        "/api/v1/gateways",
        Some(
            &json!({"name": "gw-1", "domain": "dc-east", "host": "127.0.0.1",
                     "port": closed, "login": "jump", "password": CANARY}),
        ),
    );
    assert_eq!(added.status, 201, "{}", added.text());
    assert_eq!(added.json()["domain"], "dc-east");
    assert!(!added.text().contains(CANARY), "{}", added.text());
    let cli = r.json(&["gateway", "show", "gw-1"]);
    assert_eq!(cli["port"], closed, "{cli}");
    assert_eq!(cli["secret_kind"], "password", "{cli}");
    // Neither secret field: refused, nothing added.
    let refused = call(
        &client,
        &admin,
        "POST",
        "/api/v1/gateways",
        Some(&json!({"name": "gw-2", "domain": "dc-east", "host": "127.0.0.1", "login": "jump"})),
    );
    assert_eq!(refused.status, 400, "{}", refused.text());
    // The Test button: each step, and the failing one named in one line.
    let tested = call(
        &client,
        &admin,
        "POST",
        "/api/v1/gateways/gw-1/test",
        Some(&json!({})),
    );
    assert_eq!(tested.status, 200, "{}", tested.text());
    let tested = tested.json();
    assert_eq!(tested["ok"], false, "{tested}");
    assert_eq!(tested["steps"][0]["step"], "tcp reach", "{tested}");
    assert_eq!(tested["steps"][0]["result"], "failed", "{tested}");
    assert_eq!(tested["steps"][1]["result"], "not tried", "{tested}");
    assert_eq!(
        tested["error"],
        format!("gateway gw-1: 127.0.0.1:{closed} is unreachable (connection refused)"),
        "{tested}"
    );
    let listed = call(&client, &admin, "GET", "/api/v1/gateways", None);
    assert_eq!(listed.json()[0]["name"], "gw-1", "{}", listed.text());
    // A domain holding a gateway is not removed; the refusal names it.
    let held = call(&client, &admin, "DELETE", "/api/v1/domains/dc-east", None);
    assert_eq!(held.status, 400, "{}", held.text());
    assert!(held.text().contains("gateways gw-1"), "{}", held.text());
    let removed = call(&client, &admin, "DELETE", "/api/v1/gateways/gw-1", None);
    assert_eq!(removed.status, 200, "{}", removed.text());
    let removed = call(&client, &admin, "DELETE", "/api/v1/domains/dc-east", None);
    assert_eq!(removed.status, 200, "{}", removed.text());
    assert!(r.json(&["domain", "list"]).as_array().unwrap().is_empty());
    let audit = r.json(&["audit", "list", "--limit", "100"]).to_string();
    for event in [
        "domain_added",
        "gateway_added",
        "gateway_removed",
        "domain_removed",
    ] {
        assert!(audit.contains(event), "{event} missing");
    }
}
