//! One client connection to the Kubernetes listener, from TLS to the session's end.
//!
//! Every request: its cluster and verb from the path ([`ApiRequest`]); the bearer token (the
//! connection's first through `rampart_auth::Authenticator`, which puts the login on record;
//! later ones checked again against the store, so a revoked token, a disabled user or changed
//! credentials refuse the next request); the policy's decision for the action it needs
//! (`rampart_session::database::authorize`: one decision point, denials audited); then the
//! connection's session (started at its first allowed request: kind `kubernetes`, one record
//! per request, a sealed recording of the request lines) and the forward to the API server.
//!
//! INVARIANT: what reaches the API server carries Rampart's service-account token and the
//! person's `Impersonate-User`/`Impersonate-Group`, never the client's `Authorization`,
//! `Impersonate-*` or hop-by-hop headers; the record of a request is written before its
//! response reaches the client.

use crate::KubeFront;
use crate::api::ApiRequest;
use crate::log::{ApiLog, ApiRecord, Pending};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use rampart_audit::Stream;
use rampart_audit::recording::CastHeader;
use rampart_auth::{Attempt, Credential, FirstFactor, Front, Refusal};
use rampart_core::audit::{Actor, AuditEvent};
use rampart_core::policy::KubeScope;
use rampart_core::{ExposeSecret, SecretString, SessionKind, User};
use rampart_session::database::{self as db, DbLogin, QueryRecord};
use rampart_session::{Authorized, RecordingPlan, SessionGuard, SessionTap, Source, StartRequest};
use rampart_store::TokenKind;
use sha2::{Digest, Sha256};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::TcpStream;
use tokio::sync::{Mutex, OwnedSemaphorePermit, watch};

/// The body of every response the listener gives.
pub type Body = http_body_util::combinators::BoxBody<Bytes, hyper::Error>;

/// Headers that end at Rampart (hop-by-hop, or identity Rampart sets itself).
const NOT_FORWARDED: [&str; 10] = [
    "authorization",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "host",
];

/// One connection's state.
pub(crate) struct Conn {
    pub(crate) front: KubeFront,
    pub(crate) peer: SocketAddr,
    /// Its place among the connections not logged in (released at the first login).
    permit: std::sync::Mutex<Option<OwnedSemaphorePermit>>,
    state: Mutex<State>,
    /// Live enforcement stopped the connection's session: its reason.
    stop: watch::Sender<Option<String>>,
}

#[derive(Default)]
struct State {
    /// The SHA-256 of the token the connection logged in with, and its user.
    login: Option<([u8; 32], User)>,
    session: Option<Open>,
}

/// The connection's session: one cluster, one account.
struct Open {
    authorized: Authorized,
    guard: SessionGuard,
    tap: SessionTap,
    pending: Pending,
    seq: u64,
    /// The vaulted service-account token (revealed once, on record).
    token: SecretString,
    upstream: Option<SendRequest<Full<Bytes>>>,
}

/// Serves one connection until the client leaves, the grace time passes without a request, or
/// live enforcement stops its session.
pub async fn serve(
    front: KubeFront,
    stream: TcpStream,
    peer: SocketAddr,
    permit: OwnedSemaphorePermit,
) {
    let Some(acceptor) = front.base.tls.clone() else {
        return;
    };
    let grace = front.settings.login_grace_time;
    let tls = match tokio::time::timeout(grace, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        _ => return,
    };
    let (stop, mut stopped) = watch::channel(None);
    let conn = Arc::new(Conn {
        front,
        peer,
        permit: std::sync::Mutex::new(Some(permit)),
        state: Mutex::new(State::default()),
        stop,
    });
    let handler = conn.clone();
    let service = hyper::service::service_fn(move |request| {
        let conn = handler.clone();
        async move { Ok::<_, Infallible>(conn.handle(request).await) }
    });
    let http = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(grace)
        .serve_connection(TokioIo::new(tls), service)
        .with_upgrades();
    let reason = tokio::select! {
        _ = http => "client disconnected".to_owned(),
        why = stopped.wait_for(Option::is_some) => match why {
            Ok(why) => why.clone().unwrap_or_default(),
            Err(_) => "client disconnected".to_owned(),
        },
    };
    let session = conn.state.lock().await.session.take();
    if let Some(open) = session {
        open.guard.end(reason, None).await;
    }
}

impl Conn {
    async fn handle(self: &Arc<Self>, request: Request<Incoming>) -> Response<Body> {
        let method = request.method().as_str().to_owned();
        let path = request.uri().path().to_owned();
        let query = request.uri().query().map(str::to_owned);
        let (cluster, api) = match ApiRequest::parse(&method, &path, query.as_deref()) {
            Ok(parsed) => parsed,
            Err(why) => return status(StatusCode::NOT_FOUND, "NotFound", &why),
        };
        let Some(token) = bearer(request.headers()) else {
            return status(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "a Rampart token is needed: get a kubeconfig with rampart kube config --asset ASSET",
            );
        };
        let user = match self.login(&token).await {
            Ok(user) => user,
            Err(response) => return response,
        };
        drop(token);
        let source = Source {
            text: self.peer.ip().to_string(),
            ip: self.peer.ip(),
        };
        let store = &self.front.base.core.store;
        let login = DbLogin {
            user: user.name.clone(),
            account: cluster.account.clone(),
            asset: cluster.asset.clone(),
        };
        let action = api.action();
        let scope = KubeScope::of(
            api.resource.as_deref(),
            api.namespace.as_deref(),
            api.name.as_deref(),
        );
        let authorized =
            match db::authorize_kube(store, &user, &login, &source, action, scope).await {
                Ok(authorized) => authorized,
                Err(reason) => {
                    self.record_refused(&method, query.as_deref(), &api, &reason)
                        .await;
                    return status(StatusCode::FORBIDDEN, "Forbidden", &reason);
                }
            };
        // A view of the cluster (`kubernetes/namespaces` label) keeps to its namespaces.
        if let Err(reason) = authorized.asset.kube_request_allowed(
            api.resource.as_deref(),
            api.namespace.as_deref(),
            api.name.as_deref(),
        ) {
            let reason = format!("{} may not {}: {reason}", user.name, api.summary());
            let event = AuditEvent::AccessDenied {
                user: user.name.to_string(),
                target: cluster.target(),
                action: format!("{}:{action}", action.protocol()),
                reason: reason.clone(),
                source: source.text.clone(),
            };
            let actor = Actor::User {
                name: user.name.to_string(),
            };
            if let Err(err) = store.record_event(&actor, &event).await {
                tracing::error!(error = %err, "cannot record a denied kubernetes request");
            }
            self.record_refused(&method, query.as_deref(), &api, &reason)
                .await;
            return status(StatusCode::FORBIDDEN, "Forbidden", &reason);
        }
        if api.is_streaming()
            && let Err(refused) =
                crate::exec::check_command(self, &authorized, query.as_deref()).await
        {
            return refused;
        }
        if is_spdy(request.headers()) {
            let why = "Rampart relays exec, attach and port-forward over WebSockets only \
                       (v5.channel.k8s.io): use kubectl 1.31 or newer, or a client that speaks \
                       WebSockets; SPDY is refused";
            self.record_refused(&method, query.as_deref(), &api, why)
                .await;
            return status(StatusCode::BAD_REQUEST, "BadRequest", why);
        }
        if api.is_streaming() {
            return crate::exec::open(self, request, authorized, api, query).await;
        }
        self.forward(request, authorized, &method, query.as_deref(), api)
            .await
    }

    /// The user the token belongs to: the connection's first request logs in through the
    /// authenticator (lockout, login rules, the token's kind, expiry and revocation; the login
    /// on record); later requests with the same token are checked again against the store.
    async fn login(&self, token: &SecretString) -> Result<User, Response<Body>> {
        let hash: [u8; 32] = Sha256::digest(token.expose_secret().as_bytes()).into();
        let store = &self.front.base.core.store;
        let refused = || {
            status(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "the Rampart token is not valid (expired, revoked or unknown): get a new kubeconfig with rampart kube config",
            )
        };
        let mut state = self.state.lock().await;
        if let Some((known, user)) = &state.login {
            if *known != hash {
                return Err(status(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "one connection serves one token",
                ));
            }
            return match store
                .check_token(&user.name, token.expose_secret(), TokenKind::Kubernetes)
                .await
            {
                Ok(true) => match store.user(&user.name).await {
                    Ok(user) if !user.disabled => Ok(user),
                    _ => Err(refused()),
                },
                Ok(false) => Err(refused()),
                Err(err) => {
                    tracing::error!(error = %err, "cannot check a kubernetes token");
                    Err(unavailable())
                }
            };
        }
        let owner = match store
            .token_owner(token.expose_secret(), TokenKind::Kubernetes)
            .await
        {
            Ok(owner) => owner,
            Err(err) => {
                tracing::error!(error = %err, "cannot look up a kubernetes token");
                return Err(unavailable());
            }
        };
        let login_text = owner.as_ref().map(ToString::to_string).unwrap_or_default();
        let attempt = Attempt {
            front: Front::Kubernetes,
            login: &login_text,
            user: owner.as_ref(),
            source: self.peer.ip(),
        };
        let done = match self
            .front
            .base
            .auth
            .first_factor(&attempt, Credential::KubernetesToken(token))
            .await
        {
            FirstFactor::Authenticated(done) => done,
            FirstFactor::Refused(Refusal::Unavailable) => return Err(unavailable()),
            _ => return Err(refused()),
        };
        if let Err(why) =
            db::record_login(store, &done.user.name, &done.method, self.peer.ip()).await
        {
            return Err(status(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                &why,
            ));
        }
        if let Ok(mut permit) = self.permit.lock() {
            permit.take();
        }
        state.login = Some((hash, done.user.clone()));
        Ok(done.user)
    }

    /// A refused request is on record as `access_denied` already; inside a session it is a
    /// record of the session's log too.
    async fn record_refused(&self, method: &str, query: Option<&str>, api: &ApiRequest, why: &str) {
        let mut state = self.state.lock().await;
        if let Some(open) = state.session.as_mut() {
            let mut record = open.record(method, query, api, None);
            record.query.status = vec!["403".to_owned()];
            record.query.error = Some(why.to_owned());
            if let Err(err) = open.write(&record).await {
                tracing::warn!(error = %err, "cannot record a refused kubernetes request");
            }
        }
    }

    async fn forward(
        self: &Arc<Self>,
        request: Request<Incoming>,
        authorized: Authorized,
        method: &str,
        query: Option<&str>,
        api: ApiRequest,
    ) -> Response<Body> {
        let (parts, body) = request.into_parts();
        let body = match Limited::new(body, self.front.settings.max_body)
            .collect()
            .await
        {
            Ok(body) => body.to_bytes(),
            Err(_) => {
                return status(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "RequestEntityTooLarge",
                    "the request body is larger than Rampart forwards",
                );
            }
        };
        let mut state = self.state.lock().await;
        if let Some(open) = &state.session
            && (open.authorized.asset.name != authorized.asset.name
                || open.authorized.account != authorized.account)
        {
            return status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "one connection serves one cluster",
            );
        }
        if state.session.is_none() {
            match self.start(authorized.clone()).await {
                Ok(open) => state.session = Some(open),
                Err(why) => {
                    return status(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", &why);
                }
            }
        }
        let Some(open) = state.session.as_mut() else {
            return unavailable();
        };
        let mut record = open.record(method, query, &api, Some(&body));
        let upstream_request = match outgoing(
            &parts.method,
            &api.path,
            query,
            &parts.headers,
            &open.authorized,
            &open.token,
            Full::new(body),
        ) {
            Ok(request) => request,
            Err(why) => return status(StatusCode::BAD_REQUEST, "BadRequest", &why),
        };
        let started = Instant::now();
        let sent = match open.sender(self).await {
            Ok(sender) => sender.send_request(upstream_request).await.map_err(|err| {
                open.upstream = None;
                format!("the API server did not answer: {err}")
            }),
            Err(why) => Err(why),
        };
        record.query.duration_ms =
            Some(started.elapsed().as_millis().try_into().unwrap_or(u64::MAX));
        match sent {
            Ok(response) => {
                record.query.status = vec![response.status().as_u16().to_string()];
                if let Err(why) = open.write(&record).await {
                    return self.fail(&mut state, why).await;
                }
                // A watch lasts: while its body streams, live enforcement asks again whether
                // its namespace (or the whole cluster) is still allowed, and the connection
                // closes when it is not.
                let watched = match KubeScope::of(
                    api.resource.as_deref(),
                    api.namespace.as_deref(),
                    api.name.as_deref(),
                ) {
                    _ if api.verb != "watch" => None,
                    KubeScope::NonResource => None,
                    KubeScope::Namespace(namespace) => Some(Some(namespace)),
                    KubeScope::Cluster => Some(None),
                };
                let hold = watched.map(|namespace| {
                    open.guard
                        .tap()
                        .live()
                        .hold_namespace(api.action(), namespace)
                });
                response.map(move |body| match hold {
                    Some(hold) => body
                        .map_frame(move |frame| {
                            let _held = &hold;
                            frame
                        })
                        .boxed(),
                    None => body.boxed(),
                })
            }
            Err(why) => {
                record.query.status = vec!["502".to_owned()];
                record.query.error = Some(why.clone());
                if let Err(why) = open.write(&record).await {
                    return self.fail(&mut state, why).await;
                }
                status(StatusCode::BAD_GATEWAY, "ServiceUnavailable", &why)
            }
        }
    }

    /// A session that cannot record ends, and so does the connection.
    async fn fail(&self, state: &mut State, why: String) -> Response<Body> {
        if let Some(open) = state.session.take() {
            open.guard.end(why.clone(), None).await;
        }
        let _ = self.stop.send(Some(why.clone()));
        status(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", &why)
    }

    /// Starts the connection's session: recording and record first, then the vaulted token
    /// (its use on record), and a watcher that closes the connection when live enforcement
    /// stops the session.
    async fn start(&self, authorized: Authorized) -> Result<Open, String> {
        let core = &self.front.base.core;
        let title = format!(
            "{}@{}@{} (kubernetes)",
            authorized.user.name, authorized.account, authorized.asset.name
        );
        let pending = Pending::default();
        // The connection's session outlives its first request: each request is decided for
        // its own namespace, so the session is asked again without one.
        let connection = Authorized {
            kube_namespace: None,
            ..authorized.clone()
        };
        let mut guard = core
            .start(StartRequest {
                authorized: connection,
                kind: SessionKind::Kubernetes,
                interactive: false,
                command: None,
                recording: Some(RecordingPlan {
                    header: CastHeader::new(120, 24, None, Some("kubernetes".to_owned()), title),
                    raw_streams: true,
                }),
                inspectors: vec![Box::new(ApiLog(pending.clone()))],
            })
            .await
            .map_err(|refused| refused.to_string())?;
        let token = match db::vaulted_password(&core.store, &authorized).await {
            Ok(token) => token,
            Err(why) => {
                guard.end(why.clone(), None).await;
                return Err(why);
            }
        };
        if let Some(mut control) = guard.take_control() {
            let stop = self.stop.clone();
            let ended = guard.ended();
            tokio::spawn(async move {
                tokio::select! {
                    why = control.stopped() => {
                        let _ = stop.send(Some(why));
                    }
                    _ = ended.wait() => {}
                }
            });
        }
        let tap = guard.tap();
        Ok(Open {
            authorized,
            guard,
            tap,
            pending,
            seq: 0,
            token,
            upstream: None,
        })
    }
}

impl Open {
    /// The record of a request (status, duration and error filled in by the caller).
    fn record(
        &mut self,
        method: &str,
        query: Option<&str>,
        api: &ApiRequest,
        body: Option<&Bytes>,
    ) -> ApiRecord {
        self.seq += 1;
        let mut statement = format!("{method} {}", api.path);
        if let Some(query) = query {
            statement.push('?');
            statement.push_str(query);
        }
        let statement = db::bounded(&statement, db::MAX_TEXT);
        let params = body
            .and_then(|body| crate::redact::body_for_record(body, api.is_secret()))
            .into_iter()
            .collect();
        ApiRecord {
            query: QueryRecord::new(self.seq, api.verb, &statement, params),
            resource: api.resource.clone(),
            namespace: api.namespace.clone(),
            name: api.name.clone(),
            subresource: api.subresource.clone(),
        }
    }

    /// Writes the record: its line into the recording, the record into the command log.
    async fn write(&self, record: &ApiRecord) -> Result<(), String> {
        self.pending.push(record)?;
        let line = format!(
            "{} {} -> {}\r\n",
            record.query.seq,
            record.query.statement,
            record.query.status.first().map_or("-", String::as_str)
        );
        self.tap
            .target_sent(&[(Stream::Output, Bytes::from(line))])
            .await
    }

    /// The HTTP/1.1 connection to the API server, made again when the last one closed.
    async fn sender(&mut self, conn: &Conn) -> Result<&mut SendRequest<Full<Bytes>>, String> {
        if let Some(sender) = &mut self.upstream
            && sender.ready().await.is_ok()
        {
            return self
                .upstream
                .as_mut()
                .ok_or_else(|| "no connection to the API server".to_owned());
        }
        self.upstream = None;
        let upstream =
            crate::upstream::connect(&conn.front.base.dialer, &self.authorized.asset).await?;
        let store = &conn.front.base.core.store;
        if let Err(err) = store
            .set_session_route(self.guard.id(), &upstream.route.to_string())
            .await
        {
            tracing::warn!(error = %err, "cannot record the route of a kubernetes session");
        }
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(upstream.stream))
                .await
                .map_err(|err| format!("the API server {}: {err}", upstream.target))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(self.upstream.insert(sender))
    }
}

/// The request to the API server: the client's method, path, query, headers (less those that
/// end at Rampart and every `Impersonate-*`) and body; the service-account token and the
/// person's identity set by Rampart.
pub(crate) fn outgoing<B>(
    method: &hyper::Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    authorized: &Authorized,
    token: &SecretString,
    body: B,
) -> Result<Request<B>, String> {
    let uri = match query {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    let mut request = Request::builder()
        .method(method.clone())
        .uri(uri)
        .body(body)
        .map_err(|err| format!("cannot forward the request: {err}"))?;
    let out = request.headers_mut();
    copy_headers(headers, out);
    identity_headers(out, authorized, token)?;
    // HTTP/1.1 needs a Host (the API server refuses a request without one); the client's was
    // Rampart's.
    let host = authorized
        .asset
        .address(rampart_core::Protocol::Kubernetes)
        .ok_or_else(|| format!("{} has no kubernetes endpoint", authorized.asset.name))?;
    out.insert(
        header::HOST,
        HeaderValue::from_str(&host).map_err(|_| "invalid API server address".to_owned())?,
    );
    Ok(request)
}

/// The client's headers that may pass: never identity (`Authorization`, `Impersonate-*`), never
/// hop-by-hop ones (nor those `Connection` names), never the WebSocket handshake's.
pub(crate) fn copy_headers(from: &HeaderMap, to: &mut HeaderMap) {
    let named_by_connection: Vec<String> = from
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_ascii_lowercase())
        .collect();
    for (name, value) in from {
        let lower = name.as_str();
        if NOT_FORWARDED.contains(&lower)
            || lower == "upgrade"
            || lower.starts_with("impersonate-")
            || lower.starts_with("sec-websocket-")
            || named_by_connection.iter().any(|n| n == lower)
        {
            continue;
        }
        to.append(name.clone(), value.clone());
    }
}

/// Rampart's own identity headers: the vaulted token and the person (user and groups).
pub(crate) fn identity_headers(
    to: &mut HeaderMap,
    authorized: &Authorized,
    token: &SecretString,
) -> Result<(), String> {
    let mut bearer = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
        .map_err(|_| "the vaulted token is not a valid header value".to_owned())?;
    bearer.set_sensitive(true);
    to.insert(header::AUTHORIZATION, bearer);
    let user = HeaderValue::from_str(authorized.user.name.as_str())
        .map_err(|_| "the user name is not a valid header value".to_owned())?;
    to.insert(HeaderName::from_static("impersonate-user"), user);
    for group in &authorized.user.groups {
        if let Ok(value) = HeaderValue::from_str(group.as_str()) {
            to.append(HeaderName::from_static("impersonate-group"), value);
        }
    }
    Ok(())
}

/// The bearer token of a request, if it has one.
fn bearer(headers: &HeaderMap) -> Option<SecretString> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.len() > 256 {
        return None;
    }
    Some(SecretString::from(token.trim().to_owned()))
}

/// Whether the client asks for a SPDY stream (kubectl before WebSockets).
fn is_spdy(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("spdy"))
}

fn unavailable() -> Response<Body> {
    status(
        StatusCode::SERVICE_UNAVAILABLE,
        "ServiceUnavailable",
        "Rampart cannot check logins now",
    )
}

/// A Kubernetes `Status` object, as kubectl prints it (`Error from server (Forbidden): ...`).
pub(crate) fn status(code: StatusCode, reason: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    let mut response = Response::new(full(Bytes::from(body.to_string())));
    *response.status_mut() = code;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

pub(crate) fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_and_hop_by_hop_headers_never_pass() {
        let mut from = HeaderMap::new();
        for (name, value) in [
            ("authorization", "Bearer user-token"),
            ("impersonate-user", "admin"),
            ("Impersonate-Group", "system:masters"),
            ("impersonate-extra-scopes", "x"),
            ("impersonate-uid", "0"),
            ("connection", "keep-alive, x-secret-hop"),
            ("x-secret-hop", "1"),
            ("host", "rampart"),
            ("accept", "application/json"),
        ] {
            from.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static(value),
            );
        }
        let mut to = HeaderMap::new();
        copy_headers(&from, &mut to);
        let names: Vec<&str> = to.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["accept"]);
    }

    #[test]
    fn bearer_tokens_are_read_from_the_authorization_header() {
        let mut headers = HeaderMap::new();
        assert!(bearer(&headers).is_none());
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert!(bearer(&headers).is_none());
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer rampartkube_x"),
        );
        assert_eq!(bearer(&headers).unwrap().expose_secret(), "rampartkube_x");
    }
}
