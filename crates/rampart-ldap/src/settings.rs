//! `[ldap]` as the directory client uses it: parsed and checked once, at configuration time.

use rampart_core::{Name, Role, SecretString};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// The placeholder in `ldap.user_filter` that a login name (escaped) replaces.
pub const USERNAME_PLACEHOLDER: &str = "{username}";
/// The directory attribute holding SSH public keys unless configured (openssh-lpk's).
pub const DEFAULT_SSH_KEY_ATTRIBUTE: &str = "sshPublicKey";
/// Groups unless `ldap.group_filter` says otherwise.
pub const DEFAULT_GROUP_FILTER: &str =
    "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=posixGroup))";
/// How long one directory operation (connect, TLS, bind, search) may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How the connection to the directory is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `ldaps://`: TLS from the first byte.
    Ldaps,
    /// `ldap://` upgraded with StartTLS before anything else is sent.
    StartTls,
    /// `ldap://` in clear: only to a loopback address, and only when allowed explicitly
    /// (`ldap.allow_plain_loopback`).
    PlainLoopback,
}

impl Transport {
    /// The transport for `url` and the `start_tls` / `allow_plain_loopback` switches: TLS
    /// always, unless the directory is on loopback and plain text is allowed explicitly.
    pub fn choose(url: &str, start_tls: bool, allow_plain_loopback: bool) -> Result<Self, String> {
        let parsed = url::Url::parse(url).map_err(|err| format!("{url:?} is not a URL: {err}"))?;
        let host = parsed
            .host_str()
            .ok_or_else(|| format!("{url:?} names no host"))?;
        if !parsed.path().is_empty() && parsed.path() != "/" || parsed.query().is_some() {
            return Err(format!(
                "{url:?}: give the server only (ldaps://HOST:PORT); bases and filters have their own keys"
            ));
        }
        match parsed.scheme() {
            "ldaps" if start_tls => Err(format!(
                "{url:?} is already TLS (ldaps://): StartTLS is for ldap:// URLs"
            )),
            "ldaps" => Ok(Transport::Ldaps),
            "ldap" if start_tls => Ok(Transport::StartTls),
            "ldap" => {
                let loopback = host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
                if allow_plain_loopback && loopback {
                    Ok(Transport::PlainLoopback)
                } else {
                    Err(format!(
                        "{url:?} would send passwords in clear: use ldaps://, or set ldap.start_tls = true \
                         (plain ldap:// only to a loopback address with ldap.allow_plain_loopback = true)"
                    ))
                }
            }
            other => Err(format!(
                "{url:?}: the scheme {other:?} is not ldaps or ldap"
            )),
        }
    }
}

/// What a directory group maps to in Rampart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupTarget {
    /// Membership of this Rampart group.
    Group(Name),
    /// This role (the highest mapped role a user's groups give wins; `user` when none).
    Role(Role),
}

impl GroupTarget {
    /// `GROUP` or `role:ROLE`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.strip_prefix("role:") {
            Some(role) => Role::parse(role)
                .map(GroupTarget::Role)
                .map_err(|err| err.to_string()),
            None => Name::parse("group", text)
                .map(GroupTarget::Group)
                .map_err(|err| err.to_string()),
        }
    }
}

/// The service account the directory is searched as (`ldap.bind_dn`, `ldap.bind_password_file`).
#[derive(Debug, Clone)]
pub struct ServiceBind {
    pub dn: String,
    pub password: SecretString,
}

/// The validated `[ldap]` section.
#[derive(Debug, Clone)]
pub struct LdapSettings {
    /// `ldaps://HOST:PORT` or `ldap://HOST:PORT`.
    pub url: String,
    pub transport: Transport,
    /// Whom the client trusts: `ldap.ca_file`'s certificates, or the system's.
    pub tls: Arc<rustls::ClientConfig>,
    /// `None`: searches bind anonymously.
    pub service: Option<ServiceBind>,
    pub user_base: String,
    /// A filter with `{username}`: who may log in, and (with `*`) whom the sync lists.
    pub user_filter: String,
    /// The attribute `{username}` stands for (`uid` in `(uid={username})`): a user's name.
    pub username_attribute: String,
    /// Where groups are searched; `None`: no group sync.
    pub group_base: Option<String>,
    pub group_filter: String,
    /// Directory group (its DN or `cn`, compared without case) to Rampart group or role.
    pub group_map: Vec<(String, GroupTarget)>,
    pub ssh_key_attribute: String,
    /// How often `serve` syncs; `None`: only `rampart ldap sync`.
    pub sync_interval: Option<Duration>,
    pub timeout: Duration,
}

impl LdapSettings {
    /// The filter for the login `name` (escaped: a name cannot change the filter).
    pub fn filter_for(&self, name: &str) -> String {
        self.user_filter
            .replace(USERNAME_PLACEHOLDER, &ldap3::ldap_escape(name))
    }

    /// The filter that lists every user the sync keeps.
    pub fn filter_for_all(&self) -> String {
        self.user_filter.replace(USERNAME_PLACEHOLDER, "*")
    }

    /// Every Rampart group the map names.
    pub fn managed_groups(&self) -> impl Iterator<Item = &Name> {
        self.group_map
            .iter()
            .filter_map(|(_, target)| match target {
                GroupTarget::Group(name) => Some(name),
                GroupTarget::Role(_) => None,
            })
    }
}

/// The attribute `{username}` is compared with in `filter` (`uid` in `(&(uid={username})...)`),
/// after checking that the filter parses.
pub fn username_attribute(filter: &str) -> Result<String, String> {
    let Some(at) = filter.find(&format!("={USERNAME_PLACEHOLDER}")) else {
        return Err(format!(
            "{filter:?} must compare an attribute with {USERNAME_PLACEHOLDER}, as in (uid={USERNAME_PLACEHOLDER})"
        ));
    };
    let before = filter.get(..at).unwrap_or_default();
    let attribute: String = before
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == ';')
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    if attribute.is_empty() {
        return Err(format!(
            "{filter:?}: no attribute before ={USERNAME_PLACEHOLDER}"
        ));
    }
    check_filter(filter)?;
    Ok(attribute)
}

/// Whether `filter` (with `{username}` standing for a name) is an LDAP filter.
pub fn check_filter(filter: &str) -> Result<(), String> {
    let sample = filter.replace(USERNAME_PLACEHOLDER, "x");
    ldap3::parse_filter(&sample)
        .map(|_| ())
        .map_err(|_| format!("{filter:?} is not an LDAP filter"))
}

/// The TLS client configuration: the certificates of the PEM `ca_pem` if given (a private CA),
/// else the system's trust store (which must not be empty when `needs_roots`).
pub fn tls_config(
    ca_pem: Option<&[u8]>,
    needs_roots: bool,
) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|err| format!("not a PEM certificate file: {err}"))?;
                roots
                    .add(cert)
                    .map_err(|err| format!("a certificate cannot be used as a CA: {err}"))?;
            }
            if roots.is_empty() {
                return Err("holds no certificate".into());
            }
        }
        None => {
            let native = rustls_native_roots();
            if native.is_empty() && needs_roots {
                return Err(
                    "the system has no trusted certificates: set ldap.ca_file to the directory's CA"
                        .into(),
                );
            }
            roots = native;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| format!("TLS: {err}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The system's CA certificates (Debian's `/etc/ssl/certs/ca-certificates.crt`).
fn rustls_native_roots() -> rustls::RootCertStore {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for path in [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
    ] {
        if let Ok(pem) = std::fs::read(path) {
            for cert in CertificateDer::pem_slice_iter(&pem).flatten() {
                let _ = roots.add(cert);
            }
            break;
        }
    }
    roots
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_ldap_is_refused_unless_loopback_and_allowed() {
        let cases = [
            (
                "ldaps://dir.example:636",
                false,
                false,
                Ok(Transport::Ldaps),
            ),
            (
                "ldap://dir.example:389",
                true,
                false,
                Ok(Transport::StartTls),
            ),
            (
                "ldap://127.0.0.1:389",
                false,
                true,
                Ok(Transport::PlainLoopback),
            ),
            (
                "ldap://[::1]:389",
                false,
                true,
                Ok(Transport::PlainLoopback),
            ),
            ("ldap://dir.example:389", false, false, Err("in clear")),
            ("ldap://dir.example:389", false, true, Err("in clear")),
            ("ldap://127.0.0.1:389", false, false, Err("in clear")),
            ("ldaps://dir.example", true, false, Err("already TLS")),
            ("http://dir.example", false, false, Err("not ldaps")),
            ("ldaps://dir.example/dc=x", false, false, Err("server only")),
        ];
        for (url, start_tls, plain, want) in cases {
            let got = Transport::choose(url, start_tls, plain);
            match (got, want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{url}"),
                (Err(err), Err(part)) => assert!(err.contains(part), "{url}: {err}"),
                (got, want) => panic!("{url}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn the_username_attribute_comes_from_the_filter() {
        assert_eq!(username_attribute("(uid={username})").unwrap(), "uid");
        assert_eq!(
            username_attribute("(&(objectClass=inetOrgPerson)(sAMAccountName={username}))")
                .unwrap(),
            "sAMAccountName"
        );
        assert!(username_attribute("(uid=alice)").is_err());
        assert!(username_attribute("(uid={username}").is_err());
    }

    #[test]
    fn a_login_name_cannot_change_the_filter() {
        let filter = "(&(uid={username})(objectClass=person))";
        let escaped = filter.replace(USERNAME_PLACEHOLDER, &ldap3::ldap_escape("*)(uid=*"));
        assert_eq!(escaped, "(&(uid=\\2a\\29\\28uid=\\2a)(objectClass=person))");
    }

    #[test]
    fn group_targets_are_groups_or_roles() {
        assert_eq!(
            GroupTarget::parse("role:admin").unwrap(),
            GroupTarget::Role(Role::Admin)
        );
        assert!(matches!(
            GroupTarget::parse("ops").unwrap(),
            GroupTarget::Group(_)
        ));
        assert!(GroupTarget::parse("role:root").is_err());
        assert!(GroupTarget::parse("bad name!").is_err());
    }
}
