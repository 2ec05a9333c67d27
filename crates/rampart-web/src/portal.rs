//! The web portal: server-rendered HTML pages and the static assets they load (one script, one
//! style sheet, and the vendored xterm.js and asciinema-player), all embedded in the binary.
//!
//! The pages are shells: navigation, forms and empty tables. `assets/portal.js` fills them from
//! the JSON API with the browser session's cookie and CSRF token, so every datum a page shows
//! has passed the API's guard and object checks; the pages themselves hold nothing secret and
//! are public (an anonymous visitor is sent to the login page by the script).
//!
//! INVARIANTS:
//! - Every page carries a Content-Security-Policy without inline scripts (`script-src 'self'`,
//!   plus `'wasm-unsafe-eval'` for the player's terminal emulator), `frame-ancestors 'none'`.
//! - Anything interpolated into HTML goes through [`escape`]; the script writes text with
//!   `textContent`, never `innerHTML`.

use crate::WebState;
use crate::error::{ApiError, Path};
use axum::extract::{Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS};
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::fmt::Write as _;

/// The policy every page is served with.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Escapes text for HTML element content and double-quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One embedded file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $type:literal) => {
        Asset {
            path: $path,
            content_type: $type,
            bytes: include_bytes!(concat!("../assets/", $path)),
        }
    };
}

static ASSETS: &[Asset] = &[
    asset!("portal.js", "text/javascript; charset=utf-8"),
    asset!("portal.css", "text/css; charset=utf-8"),
    asset!("vendor/xterm/xterm.js", "text/javascript; charset=utf-8"),
    asset!("vendor/xterm/xterm.css", "text/css; charset=utf-8"),
    asset!("vendor/xterm/LICENSE", "text/plain; charset=utf-8"),
    asset!(
        "vendor/xterm-addon-fit/addon-fit.js",
        "text/javascript; charset=utf-8"
    ),
    asset!(
        "vendor/xterm-addon-fit/LICENSE",
        "text/plain; charset=utf-8"
    ),
    asset!(
        "vendor/asciinema-player/asciinema-player.min.js",
        "text/javascript; charset=utf-8"
    ),
    asset!(
        "vendor/asciinema-player/asciinema-player.css",
        "text/css; charset=utf-8"
    ),
    asset!(
        "vendor/asciinema-player/LICENSE",
        "text/plain; charset=utf-8"
    ),
];

fn header(response: &mut Response, name: HeaderName, value: &'static str) {
    response
        .headers_mut()
        .insert(name, HeaderValue::from_static(value));
}

fn serve_asset(path: &str) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.path == path) else {
        return ApiError::not_found("no such asset").into_response();
    };
    let mut response = asset.bytes.into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    header(&mut response, X_CONTENT_TYPE_OPTIONS, "nosniff");
    header(&mut response, CACHE_CONTROL, "public, max-age=3600");
    response
}

/// `GET /assets/{file}`: the portal's own script and style sheet.
pub async fn asset(Path(file): Path<String>) -> Response {
    serve_asset(&file)
}

/// `GET /assets/vendor/{package}/{file}`: a vendored file (with its licence).
pub async fn vendor_asset(Path((package, file)): Path<(String, String)>) -> Response {
    serve_asset(&format!("vendor/{package}/{file}"))
}

/// Navigation: every link; the script hides those the user's role cannot use.
const NAV: &[(&str, &str, &str)] = &[
    ("/", "Home", "user"),
    ("/sessions", "Sessions", "user"),
    ("/commands", "Commands", "user"),
    ("/databases", "Databases", "user"),
    ("/kubernetes", "Kubernetes", "user"),
    ("/requests", "Requests", "user"),
    ("/alerts", "Alerts", "auditor"),
    ("/account", "Account", "user"),
    ("/audit", "Audit", "auditor"),
    ("/reports", "Reports", "auditor"),
    ("/admin/users", "Users", "auditor"),
    ("/admin/groups", "Groups", "auditor"),
    ("/admin/assets", "Assets", "auditor"),
    ("/admin/domains", "Domains", "auditor"),
    ("/admin/accounts", "Accounts", "auditor"),
    ("/admin/grants", "Grants", "auditor"),
    ("/admin/settings", "Settings", "auditor"),
];

/// A whole page: `page` names what the script does on it.
fn page(title: &str, page: &str, extra_head: &[&str], body: &str) -> Response {
    let mut html = String::with_capacity(2048 + body.len());
    let _ = write!(
        html,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{} · Rampart</title>\n<link rel=\"stylesheet\" href=\"/assets/portal.css\">\n",
        escape(title)
    );
    for line in extra_head {
        html.push_str(line);
        html.push('\n');
    }
    html.push_str("<script src=\"/assets/portal.js\" defer></script>\n</head>\n");
    let _ = writeln!(html, "<body data-page=\"{}\">", escape(page));
    if page != "login" && page != "terminal" && page != "desktop" && page != "invite" {
        html.push_str("<header><a class=\"brand\" href=\"/\">Rampart</a><nav>");
        for (href, label, role) in NAV {
            let _ = write!(
                html,
                "<a href=\"{href}\" data-role=\"{role}\">{}</a>",
                escape(label)
            );
        }
        html.push_str(
            "</nav><span id=\"whoami\"></span><button id=\"logout\" type=\"button\">Log out</button></header>\n",
        );
    }
    let _ = write!(
        html,
        "<main>\n<p id=\"status\" role=\"status\"></p>\n{body}\n</main>\n</body>\n</html>\n"
    );
    let mut response = ([(CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response();
    header(
        &mut response,
        HeaderName::from_static("content-security-policy"),
        CONTENT_SECURITY_POLICY,
    );
    header(&mut response, X_FRAME_OPTIONS, "DENY");
    header(&mut response, X_CONTENT_TYPE_OPTIONS, "nosniff");
    header(&mut response, CACHE_CONTROL, "no-store");
    header(
        &mut response,
        HeaderName::from_static("referrer-policy"),
        "same-origin",
    );
    response
}

const XTERM_HEAD: &[&str] = &[
    "<link rel=\"stylesheet\" href=\"/assets/vendor/xterm/xterm.css\">",
    "<script src=\"/assets/vendor/xterm/xterm.js\" defer></script>",
    "<script src=\"/assets/vendor/xterm-addon-fit/addon-fit.js\" defer></script>",
];

const PLAYER_HEAD: &[&str] = &[
    "<link rel=\"stylesheet\" href=\"/assets/vendor/asciinema-player/asciinema-player.css\">",
    "<script src=\"/assets/vendor/asciinema-player/asciinema-player.min.js\" defer></script>",
];

pub async fn login(State(state): State<WebState>) -> Response {
    let mut body = String::from(
        r#"<h1>Rampart</h1>
<form id="login-form" class="card">
<label>User name <input name="username" autocomplete="username" required autofocus></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<label>Code from your authenticator app (if you have one) <input name="totp" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" maxlength="6"></label>
<button type="submit">Log in</button>
</form>
<p class="card" id="passkey-login"><button type="button" id="passkey-login-button" class="secondary">Sign in with a passkey</button></p>"#,
    );
    // Single sign-on (`[oidc]`): the button, and the code asked after the provider when the
    // provider's sign-in does not count as the second factor (the script shows one or other).
    if let Some(provider) = &state.oidc {
        let _ = write!(
            body,
            r#"
<p class="card" id="oidc-login"><a id="oidc-login-link" class="button" href="/api/v1/oidc/start">Sign in with {}</a></p>
<form id="oidc-code-form" class="card" hidden>
<p>Signed in at {}. Your account also has a second factor:</p>
<label>Code from your authenticator app <input name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{{6}}" maxlength="6" required></label>
<button type="submit">Continue</button>
</form>"#,
            escape(&provider.settings().display_name),
            escape(&provider.settings().display_name)
        );
    }
    page("Log in", "login", &[], &body)
}

pub async fn home() -> Response {
    page(
        "Home",
        "home",
        &[],
        r#"<section id="dashboard" class="dashboard" hidden aria-label="dashboard">
<div class="card"><h2>Live sessions: <span id="live-count">…</span></h2><ul id="live-sessions"></ul></div>
<div class="card"><h2>Recent denials and failures: <span id="trouble-count">…</span></h2><ul id="recent-trouble"></ul><p><a href="/audit">All audit events</a></p></div>
<div class="card"><h2>Open alerts: <span id="alert-count">…</span></h2><ul id="open-alerts"></ul><p><a href="/alerts">All alerts</a></p></div>
<div class="card"><h2>Gateways: <span id="gateway-health">…</span></h2><ul id="failing-gateways"></ul></div>
<div class="card"><h2>Audit sinks: <span id="sink-health">…</span></h2><ul id="lagging-sinks"></ul></div>
<div class="card"><h2>Recent changes</h2><ul id="recent-changes"></ul></div>
</section>
<h1>The accounts you may reach now</h1>
<table id="accounts"><thead><tr><th>Account</th><th>Asset</th><th>Address</th><th>Labels</th><th>From a terminal</th><th></th></tr></thead><tbody></tbody></table>
<h1>Desktops (VNC)</h1>
<table id="desktops"><thead><tr><th>Account</th><th>Asset</th><th>Address</th><th>Labels</th><th></th></tr></thead><tbody></tbody></table>
<h1>Desktops (RDP)</h1>
<table id="rdp-desktops"><thead><tr><th>Account</th><th>Asset</th><th>Address</th><th>Labels</th><th></th></tr></thead><tbody></tbody></table>"#,
    )
}

#[derive(Debug, serde::Deserialize)]
pub struct AccountParam {
    account: Option<String>,
}

pub async fn terminal(Query(query): Query<AccountParam>) -> Response {
    let account = query.account.unwrap_or_default();
    page(
        &format!("Terminal {account}"),
        "terminal",
        XTERM_HEAD,
        &format!(
            "<div id=\"terminal-bar\"><a href=\"/\">← Rampart</a> <span id=\"terminal-account\">{}</span> <span id=\"terminal-state\"></span></div>\n<div id=\"terminal\"></div>",
            escape(&account)
        ),
    )
}

pub async fn desktop(Query(query): Query<AccountParam>) -> Response {
    let account = query.account.unwrap_or_default();
    page(
        &format!("Desktop {account}"),
        "desktop",
        &[],
        &format!(
            "<div id=\"terminal-bar\"><a href=\"/\">← Rampart</a> <span id=\"desktop-account\">{}</span> <span id=\"desktop-state\"></span></div>\n<p id=\"desktop-notice\" role=\"alert\"></p>\n<div id=\"desktop-wrap\"><canvas id=\"desktop\" tabindex=\"0\" width=\"1\" height=\"1\"></canvas></div>",
            escape(&account)
        ),
    )
}

pub async fn sessions() -> Response {
    page(
        "Sessions",
        "sessions",
        &[],
        r#"<h1>Sessions</h1>
<form id="session-filter" class="inline">
<label>User <input name="user"></label>
<label>Asset <input name="asset"></label>
<label>Since <input name="since" placeholder="2026-01-01T00:00:00Z"></label>
<label><input name="live" type="checkbox" value="true"> live only</label>
<button type="submit">Filter</button>
</form>
<table id="sessions"><thead><tr><th>Started</th><th>User</th><th>Account and route</th><th>Kind</th><th>Duration</th><th>Ended</th><th>Status</th><th></th></tr></thead><tbody></tbody></table>"#,
    )
}

#[derive(Debug, serde::Deserialize)]
pub struct SessionParam {
    session: Option<String>,
}

pub async fn replay(Query(query): Query<SessionParam>) -> Response {
    let session = query.session.unwrap_or_default();
    page(
        "Replay",
        "replay",
        PLAYER_HEAD,
        &format!(
            "<h1>Replay of session <code id=\"session-id\">{}</code></h1>\n<p id=\"session-summary\"></p>\n<p>Verification: <strong id=\"verification\">checking…</strong></p>\n<div class=\"replay\"><div id=\"player\"></div><aside aria-label=\"commands\"><h2>Commands</h2><ol id=\"replay-commands\"></ol></aside></div>",
            escape(&session)
        ),
    )
}

pub async fn watch(Query(query): Query<SessionParam>) -> Response {
    let session = query.session.unwrap_or_default();
    page(
        "Watch",
        "watch",
        XTERM_HEAD,
        &format!(
            "<h1>Watching session <code id=\"session-id\">{}</code> (read-only)</h1>\n<p id=\"watch-state\"></p>\n<div id=\"terminal\" class=\"watch\"></div>",
            escape(&session)
        ),
    )
}

pub async fn commands() -> Response {
    page(
        "Commands",
        "commands",
        &[],
        r#"<h1>Command log</h1>
<form id="command-filter" class="inline">
<label>User <input name="user"></label>
<label>Asset <input name="asset"></label>
<label>Since <input name="since" placeholder="2026-01-01T00:00:00Z"></label>
<label>Matching <input name="grep" placeholder="regular expression"></label>
<button type="submit">Search</button>
</form>
<table id="commands"><thead><tr><th>At</th><th>User</th><th>Account</th><th>Command</th><th>Replay</th></tr></thead><tbody></tbody></table>"#,
    )
}

/// Database access: the user's database token (minted here, shown once) and the query log;
/// `?session=ID` shows one database session as a timeline of its statements.
pub async fn databases() -> Response {
    page(
        "Databases",
        "databases",
        &[],
        r#"<h1>Databases</h1>
<div class="card"><h2>Database token</h2>
<p>The password for psql and redis-cli through Rampart, with <code>USER@ASSET</code> as the user name. It is shown once.</p>
<form id="db-token-form" class="inline">
<label>Lifetime <input name="ttl" value="8h"></label>
<button type="submit">Create a database token</button>
</form>
<p id="db-token" hidden>Your token (copy it now): <code id="db-token-secret"></code></p>
</div>
<h2 id="queries-title">Query log</h2>
<form id="query-filter" class="inline">
<label>User <input name="user"></label>
<label>Asset <input name="asset"></label>
<label>Session <input name="session"></label>
<label>Since <input name="since" placeholder="2026-01-01T00:00:00Z"></label>
<label>Matching <input name="grep" placeholder="regular expression"></label>
<button type="submit">Search</button>
</form>
<table id="queries"><thead><tr><th>At</th><th>User</th><th>Target</th><th>Session</th><th>Seq</th><th>Statement</th><th>Result</th></tr></thead><tbody></tbody></table>"#,
    )
}

/// Kubernetes access: the clusters the user may reach, each with a "Download kubeconfig" button
/// that mints a personal kube token (as the Databases page mints database tokens: after a
/// login with the second factor) and downloads the kubeconfig holding it, once.
pub async fn kubernetes() -> Response {
    page(
        "Kubernetes",
        "kubernetes",
        &[],
        r#"<h1>Kubernetes</h1>
<p>Use <code>kubectl</code> through Rampart as yourself: download a kubeconfig for a cluster you may reach. It holds a personal token, shown once (download it again for a new one).</p>
<form id="kube-ttl" class="inline">
<label>Token lifetime <input name="ttl" value="8h"></label>
</form>
<table id="kube-clusters"><thead><tr><th>Cluster</th><th>Account</th><th>Labels</th><th>Allowed</th><th></th></tr></thead><tbody></tbody></table>
<p id="kube-made" hidden>Saved as <code id="kube-file"></code>. Use it with <code id="kube-command"></code></p>"#,
    )
}

/// Alerts, newest first: open ones (the default) or all, each with its severity, time, user,
/// target, the rule or detector that raised it, links to its session and its events, and an
/// Acknowledge button while it is open.
pub async fn alerts() -> Response {
    page(
        "Alerts",
        "alerts",
        &[],
        r#"<h1>Alerts</h1>
<form id="alert-filter" class="inline">
<label><input type="radio" name="show" value="open" checked> open</label>
<label><input type="radio" name="show" value="all"> all</label>
<button type="submit">Show</button>
</form>
<table id="alerts"><thead><tr><th>Raised</th><th>Severity</th><th>Raised by</th><th>What happened</th><th>User</th><th>Target</th><th>Session</th><th>State</th></tr></thead><tbody></tbody></table>"#,
    )
}

/// `GET /invite?token=`: an enrolment link (no login: the token is the credential).
pub async fn invite() -> Response {
    page(
        "Welcome",
        "invite",
        &[],
        r#"<h1>Welcome to Rampart</h1>
<p id="invite-for"></p>
<form id="invite-form" hidden>
<p>Add this to your authenticator app: <code id="invite-uri"></code></p>
<label>New password <input name="password" type="password" autocomplete="new-password" minlength="12"></label>
<label>Code from the app <input name="code" inputmode="numeric" autocomplete="one-time-code"></label>
<button type="submit">Set my password and second factor</button>
</form>"#,
    )
}

/// `GET /account`: the user's own password and SSH keys.
pub async fn account() -> Response {
    page(
        "Account",
        "account",
        &[],
        r#"<h1>My account</h1>
<p>SSH certificates for your own key, and approving a <code>rampart login</code> or an SSH login: <a href="/ssh">SSH</a>.</p>
<div class="card"><h2>Password</h2>
<form id="password-form">
<label>Current password <input name="current_password" type="password" autocomplete="current-password"></label>
<label>New password <input name="new_password" type="password" autocomplete="new-password" minlength="12"></label>
<button type="submit">Change my password</button>
</form>
</div>
<div class="card"><h2>Second factor</h2>
<p id="totp-state"></p>
<form id="totp-start-form" class="inline"><button type="submit">Set up my authenticator app</button></form>
<form id="totp-confirm-form" class="inline" hidden>
<p>Add this to your authenticator app (it is shown to you only): <code id="totp-uri"></code></p>
<label>Code from the app <input name="code" inputmode="numeric" autocomplete="one-time-code"></label>
<button type="submit">Confirm</button>
</form>
</div>
<div class="card"><h2>Passkeys</h2>
<p>A passkey (this device's screen lock, a security key) logs you in to the portal instead of your authenticator app's code, or without your password.</p>
<table id="my-passkeys"><thead><tr><th>Name</th><th>Registered</th><th>Last used</th><th></th></tr></thead><tbody></tbody></table>
<form id="passkey-form" class="inline" autocomplete="off">
<label>Name <input name="name" placeholder="laptop" maxlength="64" required></label>
<button type="submit">Register a passkey</button>
</form>
</div>
<div class="card"><h2>SSH keys</h2>
<table id="my-keys"><thead><tr><th>Fingerprint</th><th>Type</th><th>Comment</th><th></th></tr></thead><tbody></tbody></table>
<form id="key-form">
<label>Public key <textarea name="public_key" rows="3" cols="80" placeholder="ssh-ed25519 AAAA... you@laptop"></textarea></label>
<button type="submit">Add the key</button>
</form>
</div>
<div class="card"><h2>API tokens</h2>
<table id="my-tokens"><thead><tr><th>Description</th><th>Scope</th><th>Created</th><th>Expires</th><th></th></tr></thead><tbody></tbody></table>
<form id="token-form" class="inline" autocomplete="off">
<label>Description <input name="description" placeholder="CI job"></label>
<label>Scope <select name="scope"><option>read</option><option>write</option></select></label>
<label>Expires <input name="expires" placeholder="30d (none if empty)"></label>
<button type="submit">Create an API token</button>
</form>
<p id="token-made" hidden>Your new API token (shown only now, copy it): <code id="token-secret"></code></p>
<p>Database tokens (what psql, mysql or redis-cli type as the password through Rampart) are made on the <a href="/databases">Databases</a> page.</p>
</div>"#,
    )
}

/// `GET /ssh`: the user's SSH certificate (paste a public key, download the certificate) and
/// the approval of a `rampart login` request (`?code=XXXX-XXXX`) or of a waiting SSH login
/// (`?approve=ID`, the link keyboard-interactive shows).
pub async fn ssh() -> Response {
    page(
        "SSH",
        "ssh",
        &[],
        r##"<h1>SSH</h1>
<div class="card" id="ssh-approval-card" hidden><h2>Approve an SSH login</h2>
<p>An SSH login as <code id="ssh-approval-login"></code> from <span id="ssh-approval-source"></span> waits for you. Approve it only if you started it.</p>
<button type="button" id="ssh-approval-approve">Approve the login</button>
<button type="button" id="ssh-approval-deny" class="secondary">Deny the login</button>
<p id="ssh-approval-result"></p>
</div>
<div class="card" id="ssh-login-card"><h2>Approve a <code>rampart login</code></h2>
<p>Approve only a request you started yourself: the key it names gets a certificate that logs in as you.</p>
<form id="ssh-login-form" class="inline">
<label>Code <input name="code" placeholder="ABCD-EFGH" autocomplete="off"></label>
<button type="submit">Look up</button>
</form>
<div id="ssh-login-request" hidden>
<p>Key <code id="ssh-login-fingerprint"></code> from <span id="ssh-login-source"></span></p>
<button type="button" id="ssh-login-approve">Approve</button>
<button type="button" id="ssh-login-deny" class="secondary">Deny</button>
</div>
<p id="ssh-login-result"></p>
</div>
<div class="card"><h2>SSH certificate</h2>
<p>Paste your SSH public key (the <code>.pub</code> file). Rampart signs it for you; save the certificate as <code>KEY-cert.pub</code> next to your key and <code>ssh</code> uses it.</p>
<form id="ssh-cert-form">
<label>Public key <textarea name="public_key" rows="3" cols="80" placeholder="ssh-ed25519 AAAA... you@laptop"></textarea></label>
<button type="submit">Sign my key</button>
</form>
<div id="ssh-cert" hidden>
<p>Valid until <span id="ssh-cert-until"></span> for <code id="ssh-cert-principal"></code>. <a id="ssh-cert-download" download="id-cert.pub" href="#">Download the certificate</a></p>
<pre id="ssh-cert-text"></pre>
</div>
</div>"##,
    )
}

pub async fn audit() -> Response {
    page(
        "Audit",
        "audit",
        &[],
        r#"<h1>Audit events</h1>
<form id="audit-filter" class="inline">
<label>Kind <input name="kind" placeholder="login_failed"></label>
<label>Actor <input name="actor" placeholder="user:alice"></label>
<label>Containing <input name="contains"></label>
<label>Since <input name="since" placeholder="2026-01-01T00:00:00Z"></label>
<button type="submit">Search</button>
</form>
<p>Export the events since the time above, or all of them (the export is audited): <a id="export-csv" href="/api/v1/audit/export?format=csv" download>CSV</a> · <a id="export-jsonl" href="/api/v1/audit/export?format=jsonl" download>JSON lines</a></p>
<table id="events"><thead><tr><th>#</th><th>At</th><th>Kind</th><th>What happened</th></tr></thead><tbody></tbody></table>"#,
    )
}

pub async fn requests() -> Response {
    page(
        "Access requests",
        "requests",
        &[],
        r#"<h1>Access requests</h1>
<p>Ask for access you do not have yet, for a limited time. An approver (an administrator, or a member of an approver group) approves or denies it; an approval is a grant that ends on its own. Nobody approves their own request.</p>
<form id="request-create" class="inline">
<label>Asset <input name="asset" required placeholder="web-01"></label>
<label>Account <input name="account" placeholder="any"></label>
<label>For <input name="duration" required value="1h" size="5"></label>
<label>Reason <input name="reason" required size="40" placeholder="ticket INC-1234: restart the web service"></label>
<button type="submit">Ask</button>
</form>
<form id="request-filter" class="inline">
<label>State <select name="state"><option value="">all</option><option>pending</option><option>approved</option><option>denied</option><option>cancelled</option></select></label>
<button type="submit">Show</button>
</form>
<p><label>Note for my decisions <input id="request-note" size="40" placeholder="optional: shown to the requester"></label></p>
<table id="requests"><thead><tr><th>Asked</th><th>Who</th><th>For</th><th>Accounts</th><th>How long</th><th>Reason</th><th>State</th><th>Decided</th><th></th></tr></thead><tbody></tbody></table>
<h2 id="held-commands">Held commands</h2>
<p>Shell lines an <em>approve</em> command rule holds: the user waits at their prompt until an approver decides here (the list refreshes by itself). Approved, the line runs; denied or not decided in time, it is cleared and the user sees why. Nobody approves their own command.</p>
<p><label>Note for my decisions on commands <input id="approval-note" size="40" placeholder="optional: shown to the user in their session"></label></p>
<table id="command-approvals"><thead><tr><th>Asked</th><th>Who</th><th>On</th><th>Line</th><th>Rule</th><th>State</th><th>Decided</th><th></th></tr></thead><tbody></tbody></table>"#,
    )
}

pub async fn reports() -> Response {
    page(
        "Reports",
        "reports",
        &[],
        r#"<h1>Compliance reports</h1>
<p>Who accessed what, when and for how long; failed logins; denied and flagged commands; file transfers; grant changes; credential rotations; and whether the audit trail verifies. Each report is audited.</p>
<form id="report-period" class="inline">
<label>From <input name="from" type="date" required></label>
<label>To (inclusive) <input name="to" type="date" required></label>
<button type="submit">Show</button>
</form>
<p id="report-links" hidden>Open the full report: <a id="report-html" target="_blank" rel="noopener">HTML</a> · <a id="report-csv" download>CSV</a> · <a id="report-pdf" download>PDF</a></p>
<h2 id="report-title"></h2>
<table id="report-summary"><thead><tr><th>Measure</th><th>Count</th><th>Controls</th></tr></thead><tbody></tbody></table>"#,
    )
}

pub async fn users() -> Response {
    page(
        "Users",
        "users",
        &[],
        r#"<h1>Users</h1>
<form id="user-add" class="inline admin-only">
<label>Name <input name="name" required></label>
<label>Role <select name="role"><option>user</option><option>auditor</option><option>admin</option></select></label>
<button type="submit">Add user</button>
</form>
<form id="user-key" class="inline admin-only">
<label>User <input name="user" required></label>
<label>SSH public key <input name="public_key" size="50" placeholder="ssh-ed25519 AAAA... alice@laptop" required></label>
<button type="submit">Add key</button>
</form>
<form id="user-password" class="inline admin-only" autocomplete="off">
<label>User <input name="user" required></label>
<label>New password <input name="password" type="password" autocomplete="new-password" required></label>
<button type="submit">Set password</button>
</form>
<table id="users"><thead><tr><th>Name</th><th>Role</th><th>State</th><th>Password</th><th>MFA</th><th>Keys</th><th>Groups</th><th></th></tr></thead><tbody></tbody></table>"#,
    )
}

pub async fn groups() -> Response {
    page(
        "Groups",
        "groups",
        &[],
        r#"<h1>Groups</h1>
<form id="group-add" class="inline admin-only">
<label>Name <input name="name" required></label>
<button type="submit">Add group</button>
</form>
<form id="group-member" class="inline admin-only">
<label>Group <input name="group" required></label>
<label>User <input name="user" required></label>
<button type="submit">Add member</button>
</form>
<table id="groups"><thead><tr><th>Group</th><th>Members</th><th></th></tr></thead><tbody></tbody></table>"#,
    )
}

pub async fn assets() -> Response {
    page(
        "Assets",
        "assets",
        &[],
        r#"<h1>Assets</h1>
<form id="asset-add" class="inline admin-only">
<label>Name <input name="name" required></label>
<label>Host <input name="host" required></label>
<label>SSH port <input name="port" value="22" size="5"></label>
<label>Labels <input name="labels" placeholder="env=prod,team=db"></label>
<button type="submit">Add asset</button>
</form>
<form id="asset-edit" class="inline" hidden aria-label="change an asset">
<strong id="asset-edit-title"></strong>
<input type="hidden" name="name">
<label>Host <input name="host" required></label>
<label>Labels <input name="labels" size="30" placeholder="env=prod,team=db (empty: none)"></label>
<button type="submit">Save changes</button>
<button type="button" id="asset-edit-cancel">Cancel</button>
</form>
<form id="asset-endpoint" class="inline admin-only">
<label>Asset <input name="asset" required></label>
<label>Protocol <select name="protocol"><option>ssh</option><option>postgres</option><option>mysql</option><option>redis</option><option>rdp</option><option>vnc</option><option>telnet</option><option>kubernetes</option><option>tcp</option></select></label>
<label>Port <input name="port" size="5" placeholder="usual"></label>
<button type="submit">Add endpoint</button>
</form>
<form id="asset-host-key" class="inline admin-only">
<label>Asset <input name="asset" required></label>
<label>Host key <input name="key" size="50" placeholder="ssh-ed25519 AAAA..." required></label>
<button type="submit">Pin host key</button>
</form>
<table id="assets"><thead><tr><th>Name</th><th>Host</th><th>Endpoints</th><th>Domain</th><th>Labels</th><th>Host key</th><th></th></tr></thead><tbody></tbody></table>"#,
    )
}

/// Network domains: each with its gateways and assets; the gateways with their health, last
/// error and a Test button (the step-by-step test, run by the server).
pub async fn domains() -> Response {
    page(
        "Network domains",
        "domains",
        &[],
        r#"<h1>Network domains</h1>
<form id="domain-add" class="inline admin-only">
<label>Name <input name="name" required></label>
<button type="submit">Add domain</button>
</form>
<table id="domains"><thead><tr><th>Domain</th><th>Gateways</th><th>Assets</th><th></th></tr></thead><tbody></tbody></table>
<h2>Gateways</h2>
<table id="gateways"><thead><tr><th>Gateway</th><th>Domain</th><th>Priority</th><th>Address</th><th>Login</th><th>Health</th><th>Last check</th><th>Test</th></tr></thead><tbody></tbody></table>"#,
    )
}

pub async fn accounts() -> Response {
    page(
        "Accounts",
        "accounts",
        &[],
        r#"<h1>Accounts</h1>
<p>Secrets go into the vault and are never shown again, here or anywhere.</p>
<form id="account-secret" class="inline admin-only" autocomplete="off">
<label>Account <input name="account" placeholder="root@web-01" required></label>
<label>Password <input name="password" type="password" autocomplete="new-password"></label>
<label>or private key <textarea name="private_key" rows="2" cols="30"></textarea></label>
<button type="submit" name="mode" value="add">Add account</button>
<button type="submit" name="mode" value="replace">Replace secret</button>
</form>
<table id="accounts"><thead><tr><th>Account</th><th>Secret</th><th>Created</th><th></th><th></th></tr></thead><tbody></tbody></table>
<section id="rotation" hidden>
<h2 id="rotation-title">Rotation</h2>
<p id="rotation-settings"></p>
<p class="admin-only"><button type="button" id="rotate-now">Rotate now</button></p>
<table id="rotations"><thead><tr><th>Started</th><th>Outcome</th><th>Why</th><th>By</th><th>Finished</th></tr></thead><tbody></tbody></table>
</section>"#,
    )
}

pub async fn grants() -> Response {
    page(
        "Grants",
        "grants",
        &[],
        r#"<h1>Grants</h1>
<form id="grant-add" class="inline admin-only">
<label>User <input name="user"></label>
<label>or group <input name="group"></label>
<label>Asset <input name="asset"></label>
<label>or labels <input name="labels" placeholder="env=prod"></label>
<label>Accounts <input name="accounts" placeholder="all"></label>
<label>Actions <input name="actions" placeholder="shell,exec"></label>
<label>Until <input name="until" placeholder="2026-12-31T00:00:00Z"></label>
<label><input name="require_mfa" type="checkbox" value="true"> MFA</label>
<button type="submit">Add grant</button>
</form>
<form id="grant-edit" class="inline" hidden aria-label="change a grant">
<strong id="grant-edit-title"></strong>
<input type="hidden" name="id">
<label>Actions <input name="actions" placeholder="shell,exec"></label>
<label>Until <input name="until" placeholder="empty: no end"></label>
<label>Schedule <input name="schedule" placeholder="Mon-Fri 08:00-18:00"></label>
<label>Idle timeout <input name="idle_timeout" placeholder="15m"></label>
<label>Max duration <input name="max_duration" placeholder="8h"></label>
<label><input name="require_mfa" type="checkbox" value="true"> MFA</label>
<label><input name="recording" type="checkbox" value="true"> recorded</label>
<button type="submit">Save changes</button>
<button type="button" id="grant-edit-cancel">Cancel</button>
</form>
<table id="grants"><thead><tr><th>Who</th><th>Target</th><th>Accounts</th><th>Actions</th><th>Valid</th><th>Rules</th><th></th></tr></thead><tbody></tbody></table>
<h2>Explain</h2>
<form id="grant-explain" class="inline">
<label>User <input name="user" required></label>
<label>Asset <input name="asset" required></label>
<label>Account <input name="account"></label>
<label>Action <input name="action" placeholder="shell"></label>
<button type="submit">Explain</button>
</form>
<table id="explanation"><thead><tr><th>Account</th><th>Decision</th><th>Reason</th><th>Grant by grant</th></tr></thead><tbody></tbody></table>"#,
    )
}

pub async fn settings() -> Response {
    page(
        "Settings",
        "settings",
        &[],
        r#"<h1>Settings</h1>
<p>The settings this node runs with, as it recorded them when it started (the <code>server_started</code> audit event; a configuration change shows as the difference between two of them). They are changed in the configuration file or environment, then a restart.</p>
<p id="started"></p>
<table id="settings"><thead><tr><th>Setting</th><th>Value</th></tr></thead><tbody></tbody></table>"#,
    )
}

/// For the tests: every embedded asset's path and size.
pub fn asset_paths() -> HashMap<&'static str, usize> {
    ASSETS.iter().map(|a| (a.path, a.bytes.len())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn every_asset_is_embedded_with_its_licence() {
        let paths = asset_paths();
        for package in ["xterm", "xterm-addon-fit", "asciinema-player"] {
            assert!(paths.contains_key(format!("vendor/{package}/LICENSE").as_str()));
        }
        assert!(paths.values().all(|size| *size > 0));
    }
}
