//! The target model: the protocols an asset speaks (its endpoints), how each proves its identity,
//! the kinds of session a protocol carries, and how a request that names a host and a port is
//! matched to an asset and one of its endpoints.
//!
//! An asset is one host (a DNS name or an address) in at most one network domain. It has one or
//! more endpoints: a protocol on a port. An asset has at most one endpoint per protocol and one
//! protocol per port, so `web-01`'s `postgres` endpoint is one thing; two database clusters on one
//! host are two assets.

use crate::model::Asset;
use crate::name::InvalidInput;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A wire protocol Rampart reaches targets with. `Tcp` is an endpoint reached only by port
/// forwarding, with nothing understood of what it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    Ssh,
    Postgres,
    Mysql,
    Redis,
    Rdp,
    Vnc,
    Telnet,
    Kubernetes,
    Tcp,
}

impl Protocol {
    pub const ALL: [Protocol; 9] = [
        Protocol::Ssh,
        Protocol::Postgres,
        Protocol::Mysql,
        Protocol::Redis,
        Protocol::Rdp,
        Protocol::Vnc,
        Protocol::Telnet,
        Protocol::Kubernetes,
        Protocol::Tcp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Ssh => "ssh",
            Protocol::Postgres => "postgres",
            Protocol::Mysql => "mysql",
            Protocol::Redis => "redis",
            Protocol::Rdp => "rdp",
            Protocol::Vnc => "vnc",
            Protocol::Telnet => "telnet",
            Protocol::Kubernetes => "kubernetes",
            Protocol::Tcp => "tcp",
        }
    }

    pub fn parse(text: &str) -> Result<Self, InvalidInput> {
        Protocol::ALL
            .into_iter()
            .find(|p| p.as_str() == text)
            .ok_or_else(|| {
                let known: Vec<&str> = Protocol::ALL.iter().map(|p| p.as_str()).collect();
                InvalidInput::new(format!(
                    "unknown protocol {text:?}: expected one of {}",
                    known.join(", ")
                ))
            })
    }

    /// The port the protocol usually listens on, for `asset endpoint add` without a port.
    pub fn default_port(self) -> Option<u16> {
        match self {
            Protocol::Ssh => Some(22),
            Protocol::Postgres => Some(5432),
            Protocol::Mysql => Some(3306),
            Protocol::Redis => Some(6379),
            Protocol::Rdp => Some(3389),
            Protocol::Vnc => Some(5900),
            Protocol::Telnet => Some(23),
            Protocol::Kubernetes => Some(6443),
            Protocol::Tcp => None,
        }
    }

    /// How a target speaking this protocol proves who it is, if Rampart can check it.
    pub fn identity_kind(self) -> Option<IdentityKind> {
        match self {
            Protocol::Ssh => Some(IdentityKind::SshHostKey),
            Protocol::Postgres
            | Protocol::Mysql
            | Protocol::Redis
            | Protocol::Rdp
            | Protocol::Vnc
            | Protocol::Kubernetes => Some(IdentityKind::TlsCertificate),
            Protocol::Telnet | Protocol::Tcp => None,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of proof a target's protocol offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityKind {
    /// The SSH host key, pinned per asset (`asset hostkey`).
    SshHostKey,
    /// The SHA-256 fingerprint of the certificate the target presents in TLS, pinned per
    /// endpoint.
    TlsCertificate,
}

/// What Rampart has pinned of a target endpoint's identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum TargetIdentity {
    /// The host key in `authorized_keys` form.
    SshHostKey(String),
    /// `SHA256:` and the hex SHA-256 of the certificate's DER.
    TlsCertificate(String),
}

/// Parses a TLS certificate fingerprint: 64 hex digits, optionally with `:` separators and a
/// `SHA256:` prefix, kept as `SHA256:` and lowercase hex.
pub fn parse_tls_fingerprint(text: &str) -> Result<String, InvalidInput> {
    let bare = text.strip_prefix("SHA256:").unwrap_or(text);
    let hex: String = bare.chars().filter(|c| *c != ':').collect();
    if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(format!("SHA256:{}", hex.to_ascii_lowercase()))
    } else {
        Err(InvalidInput::new(format!(
            "invalid certificate fingerprint {text:?}: expected the 64 hex digits of its SHA-256"
        )))
    }
}

/// Parses a port: 1 to 65535.
pub fn parse_port(text: &str) -> Result<u16, InvalidInput> {
    match text.parse::<u16>() {
        Ok(port) if port != 0 => Ok(port),
        _ => Err(InvalidInput::new(format!(
            "invalid port {text:?}: expected 1 to 65535"
        ))),
    }
}

/// How Rampart logs in to an RDP endpoint. Both run inside TLS with the endpoint's pinned
/// certificate, checked before anything of the credential is sent; standard RDP security (no
/// TLS) is never offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RdpSecurity {
    /// NLA (CredSSP): the password goes inside CredSSP, bound to the certificate's key. The
    /// default, and what Windows servers do.
    Nla,
    /// TLS without NLA, for servers that have no NLA (xrdp 0.9): the password goes in the
    /// Client Info PDU inside the pinned TLS (an automatic logon).
    Tls,
}

impl RdpSecurity {
    pub fn as_str(self) -> &'static str {
        match self {
            RdpSecurity::Nla => "nla",
            RdpSecurity::Tls => "tls",
        }
    }

    pub fn parse(text: &str) -> Result<Self, InvalidInput> {
        match text {
            "nla" => Ok(RdpSecurity::Nla),
            "tls" => Ok(RdpSecurity::Tls),
            _ => Err(InvalidInput::new(format!(
                "unknown RDP security {text:?}: expected nla (the default) or tls (TLS without \
                 NLA, for xrdp)"
            ))),
        }
    }
}

impl fmt::Display for RdpSecurity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One protocol an asset speaks, on one port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    pub protocol: Protocol,
    pub port: u16,
    /// The pinned TLS certificate fingerprint, for protocols that use TLS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_fingerprint: Option<String>,
    /// For RDP endpoints, the login's security when it was set (`None`: NLA, the default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rdp_security: Option<RdpSecurity>,
}

impl Endpoint {
    pub fn new(protocol: Protocol, port: u16) -> Self {
        Self {
            protocol,
            port,
            tls_fingerprint: None,
            rdp_security: None,
        }
    }

    /// The RDP login's security: the endpoint's setting, NLA when none was set.
    pub fn rdp_security(&self) -> RdpSecurity {
        self.rdp_security.unwrap_or(RdpSecurity::Nla)
    }

    /// `PROTOCOL:PORT` (`postgres:5432`) or `PROTOCOL` alone for its usual port.
    pub fn parse(text: &str) -> Result<Self, InvalidInput> {
        let (protocol, port) = match text.split_once(':') {
            Some((protocol, port)) => (Protocol::parse(protocol)?, Some(parse_port(port)?)),
            None => (Protocol::parse(text)?, None),
        };
        let port = port.or(protocol.default_port()).ok_or_else(|| {
            InvalidInput::new(format!("endpoint {text:?} needs a port: {protocol}:PORT"))
        })?;
        Ok(Self::new(protocol, port))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.protocol, self.port)
    }
}

/// Checks a set of endpoints for one asset: at least one, at most one per protocol, at most one
/// protocol per port.
pub fn check_endpoints(endpoints: &[Endpoint]) -> Result<(), InvalidInput> {
    if endpoints.is_empty() {
        return Err(InvalidInput::new(
            "an asset needs at least one endpoint (PROTOCOL:PORT)",
        ));
    }
    for (i, endpoint) in endpoints.iter().enumerate() {
        for earlier in endpoints.iter().take(i) {
            if earlier.protocol == endpoint.protocol {
                return Err(InvalidInput::new(format!(
                    "protocol {} given twice: an asset has one endpoint per protocol",
                    endpoint.protocol
                )));
            }
            if earlier.port == endpoint.port {
                return Err(InvalidInput::new(format!(
                    "port {} given for both {} and {}",
                    endpoint.port, earlier.protocol, endpoint.protocol
                )));
            }
        }
    }
    Ok(())
}

impl Asset {
    /// The asset's endpoint for `protocol`, if it speaks it.
    pub fn endpoint(&self, protocol: Protocol) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.protocol == protocol)
    }

    /// The endpoint on `port`, if any.
    pub fn endpoint_on(&self, port: u16) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.port == port)
    }

    /// What Rampart has pinned of the identity of the asset's `protocol` endpoint.
    pub fn identity(&self, protocol: Protocol) -> Option<TargetIdentity> {
        match protocol.identity_kind()? {
            IdentityKind::SshHostKey => self.host_key.clone().map(TargetIdentity::SshHostKey),
            IdentityKind::TlsCertificate => self
                .endpoint(protocol)?
                .tls_fingerprint
                .clone()
                .map(TargetIdentity::TlsCertificate),
        }
    }

    /// `host:port` of the asset's `protocol` endpoint, for messages.
    pub fn address(&self, protocol: Protocol) -> Option<String> {
        self.endpoint(protocol)
            .map(|e| socket_address(&self.host, e.port))
    }
}

/// The asset label that limits a Kubernetes asset to namespaces: `kubernetes/namespaces=web:api`
/// (namespaces separated by `:`; several such labels add up). A Kubernetes asset is then a view
/// of its cluster: requests through it may name only those namespaces, and cluster-wide
/// requests for resources (nodes, every namespace's pods) are refused; discovery stays allowed.
pub const KUBE_NAMESPACES_LABEL: &str = "kubernetes/namespaces";

impl Asset {
    /// The namespaces a Kubernetes asset is limited to (`None`: not limited).
    pub fn kube_namespaces(&self) -> Option<Vec<&str>> {
        let mut limited = false;
        let mut namespaces = Vec::new();
        for label in self
            .labels
            .iter()
            .filter(|l| l.key == KUBE_NAMESPACES_LABEL)
        {
            limited = true;
            namespaces.extend(label.value.split(':').filter(|ns| !ns.is_empty()));
        }
        limited.then_some(namespaces)
    }

    /// Whether a Kubernetes request may go through this asset: `resource` and `namespace` as
    /// the request names them (`None`, `None`: a non-resource request such as discovery);
    /// `name` for the namespace object itself. The refusal says why.
    pub fn kube_request_allowed(
        &self,
        resource: Option<&str>,
        namespace: Option<&str>,
        name: Option<&str>,
    ) -> Result<(), String> {
        let Some(allowed) = self.kube_namespaces() else {
            return Ok(());
        };
        let Some(resource) = resource else {
            return Ok(());
        };
        let named = match (namespace, resource, name) {
            (Some(ns), _, _) => Some(ns),
            (None, "namespaces", Some(name)) => Some(name),
            _ => None,
        };
        match named {
            Some(ns) if allowed.contains(&ns) => Ok(()),
            Some(ns) => Err(format!(
                "{} allows the namespaces {} only, not {ns}",
                self.name,
                allowed.join(", ")
            )),
            None => Err(format!(
                "{} allows the namespaces {} only, not cluster-wide requests for {resource}",
                self.name,
                allowed.join(", ")
            )),
        }
    }
}

/// `host:port`, with brackets around an IPv6 address.
pub fn socket_address(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The SSH hop of a ProxyJump (`ssh -J bastion user@HOST -p PORT`): the asset named `host`
/// whose ssh endpoint is on `port` or, by name only, port 22 for "the asset's ssh endpoint
/// wherever it listens" (the port `ssh -J` sends when none is given); or the asset whose address
/// is `host` and whose ssh endpoint is exactly on `port`.
pub fn find_jump_target<'a>(assets: &'a [Asset], host: &str, port: u32) -> Option<&'a Asset> {
    let port = u16::try_from(port).ok()?;
    let by_name = assets.iter().find(|a| a.name.as_str() == host).filter(|a| {
        a.endpoint(Protocol::Ssh)
            .is_some_and(|ssh| ssh.port == port || (port == 22 && a.endpoint_on(22).is_none()))
    });
    by_name.or_else(|| {
        assets.iter().find(|a| {
            a.host.eq_ignore_ascii_case(host)
                && a.endpoint(Protocol::Ssh)
                    .is_some_and(|ssh| ssh.port == port)
        })
    })
}

/// The asset a port forward (`ssh -L ...:HOST:PORT`) reaches, with its endpoint on `port` when
/// it declares one: by asset name, or by address. Several assets may share an address (two
/// database clusters on one host); the one with an endpoint on `port` wins, then the first by
/// name.
pub fn find_forward_target<'a>(
    assets: &'a [Asset],
    host: &str,
    port: u16,
) -> Option<(&'a Asset, Option<&'a Endpoint>)> {
    if let Some(asset) = assets.iter().find(|a| a.name.as_str() == host) {
        return Some((asset, asset.endpoint_on(port)));
    }
    let mut at_address = assets.iter().filter(|a| a.host.eq_ignore_ascii_case(host));
    let first = at_address.clone().next()?;
    match at_address.find_map(|a| a.endpoint_on(port).map(|e| (a, e))) {
        Some((asset, endpoint)) => Some((asset, Some(endpoint))),
        None => Some((first, None)),
    }
}

/// What a session does, as its record says (`shell`, `exec`, `scp`, `sftp`, `port_forward:PORT`).
/// New protocol fronts add their kinds here (a database session, a desktop session).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionKind {
    /// An interactive SSH shell (also the browser terminal).
    Shell,
    /// One SSH command.
    Exec,
    /// A legacy scp transfer.
    Scp,
    /// An SFTP subsystem session.
    Sftp,
    /// One forwarded TCP connection to this port of the asset.
    PortForward(u16),
    /// A PostgreSQL session (its statements are the recording).
    Postgres,
    /// A MySQL/MariaDB session (its statements are the recording).
    Mysql,
    /// A Redis session (its commands are the recording).
    Redis,
    /// Requests to a Kubernetes API over one client connection (each request is a record).
    Kubernetes,
    /// `kubectl exec` or `attach` in a Kubernetes container (a terminal recording).
    KubernetesExec,
    /// `kubectl port-forward` to a Kubernetes pod (each forwarded connection a record with its
    /// port and bytes; the bytes themselves in the raw-stream recording).
    KubernetesPortForward,
    /// A VNC desktop in the portal (a recording of screen updates and input).
    Vnc,
    /// An RDP desktop in the portal (the same recording as a VNC desktop's).
    Rdp,
}

impl SessionKind {
    /// Whether sessions of this kind keep a terminal recording (file transfers and forwards are
    /// logged, not recorded).
    pub fn is_recorded(self) -> bool {
        matches!(
            self,
            SessionKind::Shell
                | SessionKind::Exec
                | SessionKind::Postgres
                | SessionKind::Mysql
                | SessionKind::Redis
                | SessionKind::Kubernetes
                | SessionKind::KubernetesExec
                | SessionKind::KubernetesPortForward
                | SessionKind::Vnc
                | SessionKind::Rdp
        )
    }

    /// Whether this is a desktop session (VNC or RDP: a recording of screen updates, replayed
    /// on a canvas).
    pub fn is_desktop(self) -> bool {
        matches!(self, SessionKind::Vnc | SessionKind::Rdp)
    }

    /// Whether this is a database session (one record per statement, at the client's pace:
    /// their searchable rows are written in batches).
    pub fn is_database(self) -> bool {
        matches!(
            self,
            SessionKind::Postgres | SessionKind::Mysql | SessionKind::Redis
        )
    }

    /// The protocol the session speaks to the target.
    pub fn protocol(self) -> Protocol {
        match self {
            SessionKind::Shell | SessionKind::Exec | SessionKind::Scp | SessionKind::Sftp => {
                Protocol::Ssh
            }
            SessionKind::PortForward(_) => Protocol::Tcp,
            SessionKind::Postgres => Protocol::Postgres,
            SessionKind::Mysql => Protocol::Mysql,
            SessionKind::Redis => Protocol::Redis,
            SessionKind::Kubernetes
            | SessionKind::KubernetesExec
            | SessionKind::KubernetesPortForward => Protocol::Kubernetes,
            SessionKind::Vnc => Protocol::Vnc,
            SessionKind::Rdp => Protocol::Rdp,
        }
    }

    pub fn parse(text: &str) -> Result<Self, InvalidInput> {
        match text {
            "shell" => Ok(SessionKind::Shell),
            "exec" => Ok(SessionKind::Exec),
            "scp" => Ok(SessionKind::Scp),
            "sftp" => Ok(SessionKind::Sftp),
            "postgres" => Ok(SessionKind::Postgres),
            "mysql" => Ok(SessionKind::Mysql),
            "redis" => Ok(SessionKind::Redis),
            "kubernetes" => Ok(SessionKind::Kubernetes),
            "kubernetes_exec" => Ok(SessionKind::KubernetesExec),
            "kubernetes_port_forward" => Ok(SessionKind::KubernetesPortForward),
            "vnc" => Ok(SessionKind::Vnc),
            "rdp" => Ok(SessionKind::Rdp),
            other => other
                .strip_prefix("port_forward:")
                .and_then(|port| parse_port(port).ok())
                .map(SessionKind::PortForward)
                .ok_or_else(|| InvalidInput::new(format!("unknown session kind {other:?}"))),
        }
    }
}

impl fmt::Display for SessionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionKind::Shell => f.write_str("shell"),
            SessionKind::Exec => f.write_str("exec"),
            SessionKind::Scp => f.write_str("scp"),
            SessionKind::Sftp => f.write_str("sftp"),
            SessionKind::PortForward(port) => write!(f, "port_forward:{port}"),
            SessionKind::Postgres => f.write_str("postgres"),
            SessionKind::Mysql => f.write_str("mysql"),
            SessionKind::Redis => f.write_str("redis"),
            SessionKind::Kubernetes => f.write_str("kubernetes"),
            SessionKind::KubernetesExec => f.write_str("kubernetes_exec"),
            SessionKind::KubernetesPortForward => f.write_str("kubernetes_port_forward"),
            SessionKind::Vnc => f.write_str("vnc"),
            SessionKind::Rdp => f.write_str("rdp"),
        }
    }
}

impl Serialize for SessionKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::name::Name;
    use time::OffsetDateTime;
    use uuid::Uuid;

    fn asset(name: &str, host: &str, endpoints: &[(Protocol, u16)]) -> Asset {
        Asset {
            id: Uuid::nil(),
            name: Name::parse("asset", name).unwrap(),
            host: host.into(),
            domain: None,
            endpoints: endpoints
                .iter()
                .map(|(p, port)| Endpoint::new(*p, *port))
                .collect(),
            labels: vec![],
            host_key: None,
            created_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_namespace_label_limits_kubernetes_requests_to_its_namespaces() {
        let mut view = asset("k8s-web", "10.0.0.1", &[(Protocol::Kubernetes, 6443)]);
        assert!(
            view.kube_request_allowed(Some("pods"), Some("default"), None)
                .is_ok()
        );
        view.labels
            .push(crate::Label::parse("kubernetes/namespaces=web:api").unwrap());
        assert!(
            view.kube_request_allowed(Some("pods"), Some("web"), None)
                .is_ok()
        );
        assert!(
            view.kube_request_allowed(Some("pods"), Some("api"), Some("x"))
                .is_ok()
        );
        assert!(
            view.kube_request_allowed(Some("namespaces"), None, Some("web"))
                .is_ok()
        );
        assert!(view.kube_request_allowed(None, None, None).is_ok());
        let refused = view
            .kube_request_allowed(Some("pods"), Some("default"), None)
            .unwrap_err();
        assert_eq!(
            refused,
            "k8s-web allows the namespaces web, api only, not default"
        );
        assert!(view.kube_request_allowed(Some("pods"), None, None).is_err());
        assert!(
            view.kube_request_allowed(Some("nodes"), None, Some("n1"))
                .is_err()
        );
        assert!(
            view.kube_request_allowed(Some("namespaces"), None, None)
                .is_err()
        );
    }

    #[test]
    fn protocols_and_endpoints_parse_and_print_back() {
        for protocol in Protocol::ALL {
            assert_eq!(Protocol::parse(protocol.as_str()).unwrap(), protocol);
        }
        assert_eq!(
            Endpoint::parse("postgres").unwrap().to_string(),
            "postgres:5432"
        );
        assert_eq!(Endpoint::parse("ssh:2222").unwrap().to_string(), "ssh:2222");
        for bad in [
            "",
            "SSH",
            "postgres:0",
            "postgres:70000",
            "tcp",
            "ftp:21",
            "ssh:",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad:?}");
        }
        let fp = "AB".repeat(32);
        assert_eq!(
            parse_tls_fingerprint(&fp).unwrap(),
            format!("SHA256:{}", "ab".repeat(32))
        );
        assert!(parse_tls_fingerprint("SHA256:abc").is_err());
    }

    #[test]
    fn an_asset_has_one_endpoint_per_protocol_and_one_protocol_per_port() {
        let ok = [
            Endpoint::new(Protocol::Ssh, 22),
            Endpoint::new(Protocol::Postgres, 5432),
        ];
        assert!(check_endpoints(&ok).is_ok());
        assert!(check_endpoints(&[]).is_err());
        let twice = [
            Endpoint::new(Protocol::Ssh, 22),
            Endpoint::new(Protocol::Ssh, 2222),
        ];
        assert!(check_endpoints(&twice).is_err());
        let shared = [
            Endpoint::new(Protocol::Ssh, 22),
            Endpoint::new(Protocol::Tcp, 22),
        ];
        assert!(check_endpoints(&shared).is_err());
    }

    #[test]
    fn session_kinds_print_as_the_records_always_did() {
        for kind in [
            SessionKind::Shell,
            SessionKind::Exec,
            SessionKind::Scp,
            SessionKind::Sftp,
            SessionKind::PortForward(5432),
        ] {
            assert_eq!(SessionKind::parse(&kind.to_string()).unwrap(), kind);
        }
        assert_eq!(SessionKind::PortForward(80).to_string(), "port_forward:80");
        assert!(SessionKind::parse("terminal").is_err());
        assert!(SessionKind::Shell.is_recorded() && !SessionKind::Sftp.is_recorded());
    }

    #[test]
    fn proxyjump_matches_the_ssh_endpoint_by_name_or_address() {
        let assets = [
            asset("db-01", "10.0.0.5", &[(Protocol::Postgres, 5432)]),
            asset("web-01", "10.0.0.5", &[(Protocol::Ssh, 2222)]),
        ];
        let found = |host, port| find_jump_target(&assets, host, port).map(|a| a.name.as_str());
        assert_eq!(found("web-01", 2222), Some("web-01"));
        // By name, 22 means the asset's ssh endpoint wherever it listens.
        assert_eq!(found("web-01", 22), Some("web-01"));
        // By address, only the exact ssh port: db-01 shares the address but speaks no ssh.
        assert_eq!(found("10.0.0.5", 2222), Some("web-01"));
        assert_eq!(found("10.0.0.5", 22), None);
        assert_eq!(found("10.0.0.5", 5432), None);
        assert_eq!(found("db-01", 22), None);
        assert_eq!(found("web-01", 80), None);
        assert_eq!(found("other", 22), None);
    }

    #[test]
    fn forwards_prefer_the_asset_with_an_endpoint_on_the_port() {
        let assets = [
            asset("db-01", "10.0.0.5", &[(Protocol::Postgres, 5432)]),
            asset("db-02", "10.0.0.5", &[(Protocol::Postgres, 5433)]),
        ];
        let found = |host, port| {
            find_forward_target(&assets, host, port)
                .map(|(a, e)| (a.name.to_string(), e.map(ToString::to_string)))
        };
        assert_eq!(
            found("10.0.0.5", 5433),
            Some(("db-02".into(), Some("postgres:5433".into())))
        );
        assert_eq!(found("10.0.0.5", 8080), Some(("db-01".into(), None)));
        assert_eq!(found("db-02", 5432), Some(("db-02".into(), None)));
        assert_eq!(found("10.0.0.6", 5432), None);
    }
}
