//! The route table: every route the listener serves, with who may call it. The router, the
//! OpenAPI document and the authorization test are all built from this one list, so none of
//! them can miss a route (B1).

use crate::auth::{self, Guard};
use crate::{WebState, api};
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter};
use rampart_core::access::Access;

/// One route: method, path (axum syntax, `{param}`), access, and its documentation.
#[derive(Debug, Clone)]
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    pub tag: &'static str,
    pub summary: &'static str,
    /// Query parameters it reads.
    pub query: &'static [&'static str],
    /// Fields of its JSON request body, if it takes one.
    pub body: Option<&'static [&'static str]>,
    /// Content type of its success answer.
    pub produces: &'static str,
    /// Status of its success answer.
    pub success: u16,
    pub(crate) handler: MethodRouter<WebState>,
}

impl Route {
    fn new<H, T>(
        method: Method,
        path: &'static str,
        access: Access,
        tag: &'static str,
        summary: &'static str,
        handler: H,
    ) -> Self
    where
        H: Handler<T, WebState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).unwrap_or(MethodFilter::GET);
        Self {
            method,
            path,
            access,
            tag,
            summary,
            query: &[],
            body: None,
            produces: "application/json",
            success: 200,
            handler: axum::routing::on(filter, handler),
        }
    }

    fn query(mut self, names: &'static [&'static str]) -> Self {
        self.query = names;
        self
    }

    fn body(mut self, fields: &'static [&'static str]) -> Self {
        self.body = Some(fields);
        self
    }

    fn produces(mut self, content_type: &'static str) -> Self {
        self.produces = content_type;
        self
    }

    fn status(mut self, status: u16) -> Self {
        self.success = status;
        self
    }

    /// The handler behind the route's guard.
    pub(crate) fn guarded(&self, state: &WebState) -> MethodRouter<WebState> {
        self.handler
            .clone()
            .route_layer(axum::middleware::from_fn_with_state(
                Guard {
                    state: state.clone(),
                    access: self.access,
                },
                auth::guard,
            ))
    }
}

/// Every route, in the order the OpenAPI document lists them.
pub fn table() -> Vec<Route> {
    use Access::{Admin, Auditor, Public, User};
    let get = || Method::GET;
    let post = || Method::POST;
    let put = || Method::PUT;
    let delete = || Method::DELETE;
    let patch = || Method::PATCH;
    vec![
        Route::new(
            get(),
            "/healthz",
            Public,
            "health",
            "Liveness: the process answers",
            || async { "ok\n" },
        )
        .produces("text/plain"),
        Route::new(get(), "/metrics", Auditor, "health", "Prometheus metrics (text format 0.0.4)", crate::metrics::serve).produces(crate::metrics::CONTENT_TYPE),
        Route::new(
            get(),
            "/readyz",
            Public,
            "health",
            "Readiness: the node reaches its database (and, with recordings in S3, its bucket)",
            crate::ready,
        )
        .produces("text/plain"),
        Route::new(
            get(),
            "/api/v1/openapi.json",
            Public,
            "meta",
            "This OpenAPI document",
            crate::openapi::serve,
        ),
        Route::new(
            post(),
            "/api/v1/login",
            Public,
            "auth",
            "Log in with password (and TOTP code): sets the session cookie, returns the CSRF token; 202 with a passkey challenge when no code came and a passkey can complete the login",
            auth::login,
        )
        .body(&["username", "password", "totp"]),
        Route::new(
            post(),
            "/api/v1/login/passkey/start",
            Public,
            "auth",
            "Passwordless login: a challenge any passkey registered here may answer (its login_id and options)",
            crate::passkey_login::passwordless_start,
        ),
        Route::new(
            post(),
            "/api/v1/login/passkey",
            Public,
            "auth",
            "Answer a waiting login with a passkey (after the password's 202, or passwordless): sets the session cookie",
            crate::passkey_login::passkey_finish,
        )
        .body(&["login_id", "credential"]),
        Route::new(
            get(),
            "/api/v1/oidc/start",
            Public,
            "auth",
            "Single sign-on: to the OpenID Connect provider (404 when none is configured), back to ?next= after",
            crate::oidc::start,
        )
        .query(&["next"])
        .status(303),
        Route::new(
            get(),
            "/api/v1/oidc/callback",
            Public,
            "auth",
            "Single sign-on: the provider's answer (code and state); sets the session cookie or asks for the TOTP code",
            crate::oidc::callback,
        )
        .query(&["code", "state", "error"])
        .status(303),
        Route::new(
            post(),
            "/api/v1/oidc/second-factor",
            Public,
            "auth",
            "Single sign-on: the TOTP code of a sign-in that needs one; sets the session cookie, returns the CSRF token",
            crate::oidc::second_factor,
        )
        .body(&["code"]),
        Route::new(
            post(),
            "/api/v1/logout",
            User,
            "auth",
            "End the browser session",
            auth::logout,
        )
        .status(204),
        Route::new(
            get(),
            "/api/v1/me",
            User,
            "me",
            "Who am I: the user, how they authenticated, the CSRF token",
            api::me,
        ),
        Route::new(
            get(),
            "/api/v1/me/accounts",
            User,
            "me",
            "The accounts I may use now",
            api::my_accounts,
        )
        .query(&["action", "limit", "cursor"]),
        Route::new(
            post(),
            "/api/v1/me/password",
            User,
            "me",
            "Change my password (the current one is checked like a login; my web sessions and tokens end)",
            api::my_password,
        )
        .body(&["current_password", "new_password"]),
        Route::new(
            post(),
            "/api/v1/me/totp",
            User,
            "me",
            "Start enrolling (or replacing) my TOTP second factor: its otpauth:// URI, for my app only",
            api::my_totp_start,
        )
        .body(&["replace"]),
        Route::new(
            post(),
            "/api/v1/me/totp/confirm",
            User,
            "me",
            "Confirm my new TOTP second factor with a code from my app (my web sessions end)",
            api::my_totp_confirm,
        )
        .body(&["code"]),
        Route::new(
            post(),
            "/api/v1/me/keys",
            User,
            "me",
            "Add SSH public keys of mine (a browser session, with my second factor if I have one)",
            api::my_key_add,
        )
        .body(&["public_key"]),
        Route::new(
            post(),
            "/api/v1/me/keys/remove",
            User,
            "me",
            "Remove an SSH key of mine by fingerprint (my web sessions and tokens end)",
            api::my_key_remove,
        )
        .body(&["fingerprint"]),
        Route::new(
            get(),
            "/api/v1/me/passkeys",
            User,
            "me",
            "My passkeys: names, when registered and last used",
            api::my_passkeys,
        ),
        Route::new(
            post(),
            "/api/v1/me/passkeys/start",
            User,
            "me",
            "Start registering a passkey (a browser session, with my second factor if I have one): the options for the browser",
            api::my_passkey_start,
        ),
        Route::new(
            post(),
            "/api/v1/me/passkeys",
            User,
            "me",
            "Finish registering a passkey under a name (my web sessions end)",
            api::my_passkey_add,
        )
        .body(&["name", "credential"]),
        Route::new(
            delete(),
            "/api/v1/me/passkeys/{id}",
            User,
            "me",
            "Remove one of my passkeys (my web sessions end)",
            api::my_passkey_remove,
        ),
        Route::new(
            post(),
            "/api/v1/me/ssh-certificate",
            User,
            "me",
            "Sign my SSH public key with the user CA (a browser session, with my second factor if I have one)",
            api::ssh_certificate_create,
        )
        .body(&["public_key"])
        .status(201),
        Route::new(
            get(),
            "/api/v1/me/ssh-logins/{code}",
            User,
            "me",
            "A `rampart login` request waiting under this code (its key's fingerprint and source)",
            api::ssh_login_show,
        ),
        Route::new(
            post(),
            "/api/v1/me/ssh-logins/{code}",
            User,
            "me",
            "Approve (its key is signed for me) or deny a `rampart login` request",
            api::ssh_login_answer,
        )
        .body(&["approve"]),
        Route::new(
            get(),
            "/api/v1/me/ssh-approvals/{id}",
            User,
            "me",
            "An SSH login of mine waiting for its web approval (login name, source)",
            api::ssh_approval_show,
        ),
        Route::new(
            post(),
            "/api/v1/me/ssh-approvals/{id}",
            User,
            "me",
            "Approve (a browser session, with my second factor if I have one) or deny my waiting SSH login",
            api::ssh_approval_answer,
        )
        .body(&["approve"]),
        Route::new(
            post(),
            "/api/v1/users/{name}/invites",
            Admin,
            "users",
            "Make a one-time enrolment link for a user (the token is shown once)",
            api::invite_create,
        )
        .body(&["ttl"])
        .status(201),
        Route::new(
            post(),
            "/api/v1/invites/{token}/start",
            Public,
            "auth",
            "Open an enrolment link: who it is for, and a new TOTP secret (otpauth:// URI) for their app",
            api::invite_start,
        ),
        Route::new(
            post(),
            "/api/v1/invites/{token}",
            Public,
            "auth",
            "Use an enrolment link: my new password and a code from my app (the link then stops working)",
            api::invite_accept,
        )
        .body(&["password", "code"]),
        Route::new(
            post(),
            "/api/v1/ssh-login",
            Public,
            "auth",
            "`rampart login` starts: a public key to certify; answers a device code and the user code to approve in the portal",
            api::ssh_login_start,
        )
        .body(&["public_key"])
        .status(201),
        Route::new(
            post(),
            "/api/v1/ssh-login/poll",
            Public,
            "auth",
            "`rampart login` polls with its device code: 202 pending, the certificate once approved (once), 403 denied",
            api::ssh_login_poll,
        )
        .body(&["device_code"]),
        Route::new(
            get(),
            "/api/v1/terminal",
            User,
            "terminal",
            "WebSocket: a browser terminal on an account, through the SSH path (policy, vault, recording); browser session and same Origin only",
            crate::ws::terminal,
        )
        .query(&["account", "cols", "rows"])
        .produces("application/octet-stream")
        .status(101),
        Route::new(
            get(),
            "/api/v1/desktop",
            User,
            "terminal",
            "WebSocket: a desktop on an account, VNC (vnc:connect) or with ?protocol=rdp RDP (rdp:connect): screen updates to the browser, keyboard, mouse and clipboard from it (vnc:clipboard, rdp:clipboard); policy, vault, recording and live enforcement through the session core; browser session and same Origin only",
            crate::desktop::desktop,
        )
        .query(&["account"])
        .produces("application/octet-stream")
        .status(101),
        Route::new(
            get(),
            "/api/v1/tokens",
            User,
            "tokens",
            "API tokens (my own; every user's for auditors and administrators)",
            api::tokens_list,
        )
        .query(&["user", "limit", "cursor"]),
        Route::new(
            post(),
            "/api/v1/tokens",
            User,
            "tokens",
            "Issue an API token (shown once)",
            api::tokens_create,
        )
        .body(&["user", "scope", "expires", "description"])
        .status(201),
        Route::new(
            delete(),
            "/api/v1/tokens/{id}",
            User,
            "tokens",
            "Revoke an API token",
            api::tokens_revoke,
        ),
        Route::new(
            get(),
            "/api/v1/sessions",
            User,
            "sessions",
            "Sessions, newest first (my own for users)",
            api::sessions_list,
        )
        .query(&["live", "user", "asset", "since", "until", "limit", "cursor"]),
        Route::new(
            get(),
            "/api/v1/sessions/{id}",
            User,
            "sessions",
            "One session",
            api::session_show,
        ),
        Route::new(
            get(),
            "/api/v1/cluster/sessions/{id}/stream",
            Public,
            "sessions",
            "Node to node: a live session's output, for a watcher on another node (signed with the cluster's audit key)",
            crate::relay::session_stream,
        )
        .produces("application/octet-stream"),
        Route::new(
            get(),
            "/api/v1/nodes",
            Auditor,
            "sessions",
            "The cluster's nodes: state (up, stopped, lost), last heartbeat, live sessions",
            api::nodes_list,
        ),
        Route::new(
            post(),
            "/api/v1/sessions/{id}/kill",
            Auditor,
            "sessions",
            "End a live session",
            api::session_kill,
        )
        .body(&["reason"])
        .status(202),
        Route::new(
            get(),
            "/api/v1/sessions/{id}/watch",
            User,
            "sessions",
            "WebSocket: follow a live session's output read-only (auditors and administrators; 404 for others); browser session and same Origin only",
            crate::ws::watch,
        )
        .produces("application/octet-stream")
        .status(101),
        Route::new(
            get(),
            "/api/v1/sessions/{id}/recording",
            User,
            "recordings",
            "The session's recording (asciicast v2); the download is audited",
            api::recording_get,
        )
        .produces("application/x-asciicast"),
        Route::new(
            get(),
            "/api/v1/sessions/{id}/recording/stream",
            User,
            "recordings",
            "A desktop (VNC) session's recording as its raw stream (screen updates with key frames, input metadata), verified against the chain once the session ended; for the portal's desktop replay; viewing is audited",
            api::recording_stream,
        )
        .produces("application/octet-stream"),
        Route::new(
            get(),
            "/api/v1/sessions/{id}/recording/verification",
            User,
            "recordings",
            "Whether the recording verifies against the node's audit key",
            api::recording_verify,
        ),
        Route::new(
            get(),
            "/api/v1/commands",
            User,
            "commands",
            "Search the command log (my own for users)",
            api::commands,
        )
        .query(&["user", "asset", "since", "grep", "limit", "cursor"]),
        Route::new(
            get(),
            "/api/v1/queries",
            User,
            "databases",
            "The query log of database sessions, oldest first (my own for users)",
            api::queries,
        )
        .query(&["user", "asset", "session", "since", "grep", "limit", "cursor"]),
        Route::new(
            get(),
            "/api/v1/db-tokens",
            User,
            "databases",
            "Database tokens (my own; every user's for auditors and administrators)",
            api::db_tokens_list,
        )
        .query(&["user", "limit", "cursor"]),
        Route::new(
            post(),
            "/api/v1/db-tokens",
            User,
            "databases",
            "Mint my database token (shown once; needs a login with the second factor if I have one)",
            api::db_tokens_create,
        )
        .body(&["ttl"])
        .status(201),
        Route::new(
            delete(),
            "/api/v1/db-tokens/{id}",
            User,
            "databases",
            "Revoke a database token",
            api::db_tokens_revoke,
        ),
        Route::new(
            post(),
            "/api/v1/kube/config",
            User,
            "kubernetes",
            "Mint my kubeconfig for a Kubernetes asset (a personal token, shown once; needs a login with the second factor if I have one)",
            api::kube_config_create,
        )
        .body(&["asset", "ttl", "namespace"])
        .status(201),
        Route::new(
            get(),
            "/api/v1/audit/events",
            Auditor,
            "audit",
            "Search audit events",
            api::audit_events,
        )
        .query(&["limit", "kind", "actor", "since", "until", "contains", "cursor"]),
        Route::new(
            get(),
            "/api/v1/audit/sinks",
            Auditor,
            "audit",
            "Each SIEM sink's progress against the chain head, with its last error",
            api::audit_sinks,
        ),
        Route::new(
            get(),
            "/api/v1/audit/export",
            Auditor,
            "audit",
            "Export audit events as JSON lines or CSV; the export is audited",
            api::audit_export,
        )
        .query(&["format", "since", "until", "limit", "cursor"])
        .produces("application/jsonl"),
        Route::new(
            get(),
            "/api/v1/reports",
            Auditor,
            "audit",
            "A compliance report for the period [from, to) (default: the last 30 days) as json (default), html, csv or pdf; each report is audited",
            crate::reports::report,
        )
        .query(&["from", "to", "format"])
        .produces("application/json"),
        Route::new(
            get(),
            "/api/v1/users",
            Auditor,
            "users",
            "List users",
            api::users_list,
        )
        .query(&["limit", "cursor"]),
        Route::new(
            post(),
            "/api/v1/users",
            Admin,
            "users",
            "Add a user",
            api::user_add,
        )
        .body(&["name", "role", "keys"])
        .status(201),
        Route::new(
            get(),
            "/api/v1/users/{name}",
            Auditor,
            "users",
            "Show a user, with lock state",
            api::user_show,
        ),
        Route::new(
            delete(),
            "/api/v1/users/{name}",
            Admin,
            "users",
            "Remove a user (sessions and audit events stay)",
            api::user_remove,
        ),
        Route::new(
            put(),
            "/api/v1/users/{name}/role",
            Admin,
            "users",
            "Give a user another role (admin, auditor or user)",
            api::user_role_set,
        )
        .body(&["role"]),
        Route::new(
            post(),
            "/api/v1/users/{name}/disable",
            Admin,
            "users",
            "Disable a user",
            api::user_disable,
        ),
        Route::new(
            post(),
            "/api/v1/users/{name}/enable",
            Admin,
            "users",
            "Enable a user",
            api::user_enable,
        ),
        Route::new(
            post(),
            "/api/v1/users/{name}/keys",
            Admin,
            "users",
            "Add SSH public keys",
            api::user_key_add,
        )
        .body(&["public_key"]),
        Route::new(
            post(),
            "/api/v1/users/{name}/keys/remove",
            Admin,
            "users",
            "Remove an SSH key by fingerprint",
            api::user_key_remove,
        )
        .body(&["fingerprint"]),
        Route::new(
            put(),
            "/api/v1/users/{name}/password",
            Admin,
            "users",
            "Set a user's password",
            api::user_password,
        )
        .body(&["password"]),
        Route::new(
            delete(),
            "/api/v1/users/{name}/mfa",
            Admin,
            "users",
            "Remove every second factor of a user (TOTP and passkeys)",
            api::user_mfa_reset,
        ),
        Route::new(
            post(),
            "/api/v1/users/{name}/unlock",
            Admin,
            "users",
            "Lift a user's lockout",
            api::user_unlock,
        ),
        Route::new(
            put(),
            "/api/v1/users/{name}/login-rules",
            Admin,
            "users",
            "Set a user's source address and login-hours rules",
            api::user_login_rules,
        )
        .body(&["allow_from", "deny_from", "login_hours"]),
        Route::new(
            get(),
            "/api/v1/groups",
            Auditor,
            "groups",
            "List groups",
            api::groups_list,
        )
        .query(&["limit", "cursor"]),
        Route::new(
            post(),
            "/api/v1/groups",
            Admin,
            "groups",
            "Add a group",
            api::group_add,
        )
        .body(&["name"])
        .status(201),
        Route::new(
            post(),
            "/api/v1/groups/{name}/members",
            Admin,
            "groups",
            "Add a user to a group",
            api::group_member_add,
        )
        .body(&["user"]),
        Route::new(
            delete(),
            "/api/v1/groups/{name}/members/{user}",
            Admin,
            "groups",
            "Take a user out of a group",
            api::group_member_remove,
        ),
        Route::new(
            delete(),
            "/api/v1/groups/{name}",
            Admin,
            "groups",
            "Remove a group and the grants that name it",
            api::group_remove,
        ),
        Route::new(
            get(),
            "/api/v1/assets",
            Auditor,
            "assets",
            "List assets",
            api::assets_list,
        )
        .query(&["limit", "cursor"]),
        Route::new(
            post(),
            "/api/v1/assets",
            Admin,
            "assets",
            "Add an asset",
            api::asset_add,
        )
        .body(&["name", "host", "port", "endpoints", "domain", "labels"])
        .status(201),
        Route::new(
            get(),
            "/api/v1/assets/{name}",
            Auditor,
            "assets",
            "Show an asset",
            api::asset_show,
        ),
        Route::new(
            delete(),
            "/api/v1/assets/{name}",
            Admin,
            "assets",
            "Remove an asset with its accounts and grants",
            api::asset_remove,
        ),
        Route::new(
            put(),
            "/api/v1/assets/{name}",
            Admin,
            "assets",
            "Change an asset's host, network domain (null: none) or labels",
            api::asset_set,
        )
        .body(&["host", "domain", "labels"]),
        Route::new(
            post(),
            "/api/v1/assets/{name}/endpoints",
            Admin,
            "assets",
            "Add an endpoint (a protocol on a port) to an asset",
            api::asset_endpoint_add,
        )
        .body(&["protocol", "port"])
        .status(201),
        Route::new(
            put(),
            "/api/v1/assets/{name}/endpoints/{protocol}",
            Admin,
            "assets",
            "Change an endpoint's port, pinned TLS certificate fingerprint (null: none) or RDP \
             security (rdp endpoints: nla, the default, or tls: TLS without NLA, for xrdp)",
            api::asset_endpoint_set,
        )
        .body(&["port", "tls_fingerprint", "rdp_security"]),
        Route::new(
            delete(),
            "/api/v1/assets/{name}/endpoints/{protocol}",
            Admin,
            "assets",
            "Remove an endpoint (an asset keeps at least one)",
            api::asset_endpoint_remove,
        ),
        Route::new(
            put(),
            "/api/v1/assets/{name}/host-key",
            Admin,
            "assets",
            "Pin the asset's SSH host key",
            api::asset_host_key_pin,
        )
        .body(&["key"]),
        Route::new(
            delete(),
            "/api/v1/assets/{name}/host-key",
            Admin,
            "assets",
            "Forget the pinned host key",
            api::asset_host_key_clear,
        ),
        Route::new(
            get(),
            "/api/v1/domains",
            Auditor,
            "domains",
            "List network domains with their gateways and assets",
            api::domains_list,
        )
        .query(&["limit", "cursor"]),
        Route::new(
            get(),
            "/api/v1/domains/{name}",
            Auditor,
            "domains",
            "Show a network domain: its gateways in priority order (never their secrets) and its assets",
            api::domain_show,
        ),
        Route::new(
            post(),
            "/api/v1/domains",
            Admin,
            "domains",
            "Add a network domain",
            api::domain_add,
        )
        .body(&["name"]),
        Route::new(
            delete(),
            "/api/v1/domains/{name}",
            Admin,
            "domains",
            "Remove an empty network domain (one holding assets, gateways or agents is refused)",
            api::domain_remove,
        ),
        Route::new(
            get(),
            "/api/v1/gateways",
            Auditor,
            "domains",
            "List SSH-hop gateways with their health (never their secrets)",
            api::gateways_list,
        )
        .query(&["limit", "cursor"]),
        Route::new(
            get(),
            "/api/v1/gateways/{name}",
            Auditor,
            "domains",
            "Show a gateway: address, login, priority, pinned host key, health and last error",
            api::gateway_show,
        ),
        Route::new(
            post(),
            "/api/v1/gateways",
            Admin,
            "domains",
            "Add an SSH-hop gateway to a domain; its password or private key goes into the vault",
            api::gateway_add,
        )
        .body(&[
            "name",
            "domain",
            "host",
            "port",
            "login",
            "password",
            "private_key",
            "priority",
            "host_key",
        ]),
        Route::new(
            delete(),
            "/api/v1/gateways/{name}",
            Admin,
            "domains",
            "Remove a gateway and its secret",
            api::gateway_remove,
        ),
        Route::new(
            post(),
            "/api/v1/gateways/{name}/test",
            Admin,
            "domains",
            "Test a gateway step by step: TCP reach, host key, authentication and (with asset) reaching it",
            api::gateway_test,
        )
        .body(&["asset"]),
        Route::new(
            get(),
            "/api/v1/accounts",
            Auditor,
            "accounts",
            "List accounts (never their secrets)",
            api::accounts_list,
        )
        .query(&["asset", "limit", "cursor"]),
        Route::new(
            post(),
            "/api/v1/accounts",
            Admin,
            "accounts",
            "Add an account; its secret goes into the vault",
            api::account_add,
        )
        .body(&["account", "password", "private_key"])
        .status(201),
        Route::new(
            put(),
            "/api/v1/accounts/{account}/secret",
            Admin,
            "accounts",
            "Replace an account's secret",
            api::account_secret,
        )
        .body(&["password", "private_key"]),
        Route::new(
            delete(),
            "/api/v1/accounts/{account}",
            Admin,
            "accounts",
            "Remove an account and its secret",
            api::account_remove,
        ),
        Route::new(
            get(),
            "/api/v1/accounts/{account}/rotations",
            Auditor,
            "accounts",
            "An account's rotation settings and rotation history (never a secret)",
            api::account_rotations,
        ),
        Route::new(
            post(),
            "/api/v1/accounts/{account}/rotations",
            Admin,
            "accounts",
            "Rotate an account's password now (200 committed, 409 not committed, with the reason)",
            api::account_rotate,
        ),
        Route::new(
            post(),
            "/api/v1/accounts/{account}/rotate",
            Admin,
            "accounts",
            "Rotate an account's password now: the same as POST .../rotations",
            api::account_rotate,
        ),
        Route::new(
            get(),
            "/api/v1/breakglass/kits",
            Auditor,
            "breakglass",
            "Break-glass kits: file, accounts, custodians' names, threshold (never a secret or a share)",
            api::breakglass_kits,
        ),
        Route::new(
            get(),
            "/api/v1/breakglass/requests",
            Auditor,
            "breakglass",
            "Break-glass access requests and their approvals",
            api::breakglass_requests,
        ),
        Route::new(
            post(),
            "/api/v1/breakglass/requests",
            Admin,
            "breakglass",
            "Request break-glass access for a user to an asset (two other administrators approve)",
            api::breakglass_request,
        )
        .body(&["user", "asset", "reason", "duration"])
        .status(201),
        Route::new(
            post(),
            "/api/v1/breakglass/requests/{id}/approve",
            Admin,
            "breakglass",
            "Approve a break-glass request as the caller; the second approval opens the access",
            api::breakglass_approve,
        ),
        Route::new(
            get(),
            "/api/v1/grants",
            Auditor,
            "grants",
            "List grants",
            api::grants_list,
        )
        .query(&["limit", "cursor"]),
        Route::new(
            post(),
            "/api/v1/grants",
            Admin,
            "grants",
            "Add a grant",
            api::grant_add,
        )
        .body(&[
            "user",
            "group",
            "asset",
            "labels",
            "accounts",
            "actions",
            "from",
            "until",
            "schedule",
            "require_mfa",
            "idle_timeout",
            "max_duration",
            "no_recording",
        ])
        .status(201),
        Route::new(
            get(),
            "/api/v1/grants/explain",
            Auditor,
            "grants",
            "Explain whether a user may use an account, grant by grant",
            api::grant_explain,
        )
        .query(&["user", "asset", "account", "action", "at", "mfa", "from", "namespace"]),
        Route::new(
            delete(),
            "/api/v1/grants/{id}",
            Admin,
            "grants",
            "Remove a grant",
            api::grant_remove,
        ),
        Route::new(
            patch(),
            "/api/v1/grants/{id}",
            Admin,
            "grants",
            "Change a grant's conditions (\"\" unsets one)",
            api::grant_change,
        )
        .body(&[
            "actions",
            "from",
            "until",
            "schedule",
            "require_mfa",
            "idle_timeout",
            "max_duration",
            "recording",
        ]),
        Route::new(
            get(),
            "/api/v1/alerts",
            Auditor,
            "alerts",
            "List alerts, newest first, with who acknowledged them (`open=true`: only those nobody has)",
            api::alerts_list,
        )
        .query(&["open", "limit", "cursor"]),
        Route::new(
            post(),
            "/api/v1/alerts/{id}/acknowledge",
            Auditor,
            "alerts",
            "Acknowledge an alert",
            api::alert_acknowledge,
        ),
        Route::new(
            get(),
            "/api/v1/requests",
            User,
            "requests",
            "Access requests: my own and those I may approve (every one for auditors and administrators), newest first, each with `mine` and `can_decide`",
            api::requests_list,
        )
        .query(&["state", "limit", "cursor"]),
        Route::new(
            post(),
            "/api/v1/requests",
            User,
            "requests",
            "Ask for time-bound access (asset or labels, accounts, actions, duration, reason); approvers are told through every sink",
            api::request_create,
        )
        .body(&["asset", "labels", "accounts", "actions", "duration", "reason"])
        .status(201),
        Route::new(
            post(),
            "/api/v1/requests/{id}/approve",
            User,
            "requests",
            "Approve a pending request (administrators and configured approver groups; never one's own): creates a grant that ends on its own",
            api::request_approve,
        )
        .body(&["note"]),
        Route::new(
            post(),
            "/api/v1/requests/{id}/deny",
            User,
            "requests",
            "Deny a pending request (administrators and configured approver groups; never one's own)",
            api::request_deny,
        )
        .body(&["note"]),
        Route::new(
            post(),
            "/api/v1/requests/{id}/cancel",
            User,
            "requests",
            "Withdraw my own pending request",
            api::request_cancel,
        ),
        Route::new(
            get(),
            "/api/v1/command-approvals",
            User,
            "command approvals",
            "Shell lines an approve rule holds: my own, those I may decide and those I decided (every one for auditors and administrators), newest first, each with `mine` and `can_decide`; `state=all` includes decided ones",
            api::command_approvals_list,
        )
        .query(&["state", "limit", "cursor"]),
        Route::new(
            post(),
            "/api/v1/command-approvals/{id}/approve",
            User,
            "command approvals",
            "Approve a held shell line (administrators and configured approver groups; never one's own): the session sends it",
            api::command_approval_approve,
        )
        .body(&["note"]),
        Route::new(
            post(),
            "/api/v1/command-approvals/{id}/deny",
            User,
            "command approvals",
            "Deny a held shell line with an optional note the user sees (administrators and configured approver groups; never one's own)",
            api::command_approval_deny,
        )
        .body(&["note"]),
        Route::new(
            get(),
            "/api/v1/command-rules",
            Auditor,
            "command rules",
            "List command rules in the order they are asked",
            api::command_rules_list,
        )
        .query(&["limit", "cursor"]),
        Route::new(
            post(),
            "/api/v1/command-rules",
            Admin,
            "command rules",
            "Add a command rule to a grant or an asset label (match: any, prefix:WORDS, \
             glob:PATTERN, regex:EXPR, list:NAME; action: allow, warn, deny)",
            api::command_rule_add,
        )
        .body(&["grant", "label", "match", "action", "position"])
        .status(201),
        Route::new(
            delete(),
            "/api/v1/command-rules/{id}",
            Admin,
            "command rules",
            "Remove a command rule",
            api::command_rule_remove,
        ),
        Route::new(
            get(),
            "/",
            Public,
            "portal",
            "Portal: home, the accounts the user may reach now (the script sends anonymous visitors to the login page)",
            crate::portal::home,
        )
        .produces("text/html"),
        Route::new(
            get(),
            "/login",
            Public,
            "portal",
            "Portal: the login page (password and TOTP code)",
            crate::portal::login,
        )
        .produces("text/html"),
        Route::new(
            get(),
            "/terminal",
            Public,
            "portal",
            "Portal: a full-page browser terminal on ?account=LOGIN@ASSET",
            crate::portal::terminal,
        )
        .query(&["account"])
        .produces("text/html"),
        Route::new(
            get(),
            "/desktop",
            Public,
            "portal",
            "Portal: a desktop on ?account=LOGIN@ASSET (and ?protocol=rdp for RDP), drawn on a canvas",
            crate::portal::desktop,
        )
        .query(&["account"])
        .produces("text/html"),
        Route::new(
            get(),
            "/sessions",
            Public,
            "portal",
            "Portal: sessions, filterable, with watch, kill and replay",
            crate::portal::sessions,
        )
        .produces("text/html"),
        Route::new(
            get(),
            "/replay",
            Public,
            "portal",
            "Portal: replay ?session=ID with its verification status",
            crate::portal::replay,
        )
        .query(&["session"])
        .produces("text/html"),
        Route::new(
            get(),
            "/watch",
            Public,
            "portal",
            "Portal: watch the live ?session=ID read-only",
            crate::portal::watch,
        )
        .query(&["session"])
        .produces("text/html"),
        Route::new(
            get(),
            "/commands",
            Public,
            "portal",
            "Portal: search the command log",
            crate::portal::commands,
        )
        .produces("text/html"),
        Route::new(
            get(),
            "/databases",
            Public,
            "portal",
            "Portal: my database token and the query log; ?session=ID replays one database session as a timeline",
            crate::portal::databases,
        )
        .query(&["session"])
        .produces("text/html"),
        Route::new(
            get(),
            "/kubernetes",
            Public,
            "portal",
            "Portal: the Kubernetes clusters I may reach, each with a kubeconfig download",
            crate::portal::kubernetes,
        )
        .produces("text/html"),
        Route::new(
            get(),
            "/alerts",
            Public,
            "portal",
            "Portal: alerts (open or all) with their sessions and events, and acknowledgement",
            crate::portal::alerts,
        )
        .produces("text/html"),
        Route::new(
            get(),
            "/invite",
            Public,
            "portal",
            "Portal: an enrolment link (?token=): set my password and second factor",
            crate::portal::invite,
        )
        .query(&["token"])
        .produces("text/html"),
        Route::new(
            get(),
            "/account",
            Public,
            "portal",
            "Portal: my account: change my password, my SSH keys",
            crate::portal::account,
        )
        .produces("text/html"),
        Route::new(
            get(),
            "/ssh",
            Public,
            "portal",
            "Portal: my SSH certificate (sign a pasted public key), approving a `rampart login` (?code=) or an SSH login (?approve=)",
            crate::portal::ssh,
        )
        .query(&["code", "approve"])
        .produces("text/html"),
        Route::new(
            get(),
            "/audit",
            Public,
            "portal",
            "Portal: audit events and their export",
            crate::portal::audit,
        )
        .produces("text/html"),
        Route::new(
            get(),
            "/reports",
            Public,
            "portal",
            "Portal: compliance reports for a period (summary, HTML, CSV and PDF)",
            crate::portal::reports,
        )
        .produces("text/html"),
        Route::new(
            get(),
            "/requests",
            Public,
            "portal",
            "Portal: ask for time-bound access; approve or deny others' requests",
            crate::portal::requests,
        )
        .produces("text/html"),
        Route::new(
            get(),
            "/admin/users",
            Public,
            "portal",
            "Portal: users",
            crate::portal::users,
        )
        .produces("text/html"),
        Route::new(
            get(),
            "/admin/groups",
            Public,
            "portal",
            "Portal: groups",
            crate::portal::groups,
        )
        .produces("text/html"),
        Route::new(
            get(),
            "/admin/assets",
            Public,
            "portal",
            "Portal: assets",
            crate::portal::assets,
        )
        .produces("text/html"),
        Route::new(
            get(),
            "/admin/domains",
            Public,
            "portal",
            "Portal: network domains, their gateways (health, test) and assets",
            crate::portal::domains,
        )
        .produces("text/html"),
        Route::new(
            get(),
            "/admin/accounts",
            Public,
            "portal",
            "Portal: accounts and their secrets (set, never shown)",
            crate::portal::accounts,
        )
        .produces("text/html"),
        Route::new(
            get(),
            "/admin/grants",
            Public,
            "portal",
            "Portal: grants and the explain view",
            crate::portal::grants,
        )
        .produces("text/html"),
        Route::new(
            get(),
            "/admin/settings",
            Public,
            "portal",
            "Portal: the settings the node runs with (read-only)",
            crate::portal::settings,
        )
        .produces("text/html"),
        Route::new(
            get(),
            "/assets/{file}",
            Public,
            "portal",
            "Portal: the portal's script and style sheet",
            crate::portal::asset,
        )
        .produces("text/javascript"),
        Route::new(
            get(),
            "/assets/vendor/{package}/{file}",
            Public,
            "portal",
            "Portal: vendored xterm.js and asciinema-player files, with their licences",
            crate::portal::vendor_asset,
        )
        .produces("text/javascript"),
    ]
}
