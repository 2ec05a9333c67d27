//! [`Directory`]: the connection to the LDAP server, a login's password check (search the entry
//! as the service account, then bind as the entry), and the read of the whole directory for
//! the sync.
//!
//! INVARIANTS:
//! - Every connection is TLS (LDAPS, or StartTLS before anything else) with the configured CA,
//!   except an explicitly allowed loopback directory.
//! - A login name reaches a filter only escaped (`ldap_escape`); an empty password never binds
//!   (an LDAP "unauthenticated bind" would succeed without one).
//! - Entries are decoded by [`entry`], which refuses anything unexpected instead of panicking
//!   (ldap3's `SearchEntry::construct` panics on a malformed entry); the sync reads at most
//!   [`MAX_ENTRIES`] entries and fails whole rather than act on part of a directory.

use crate::settings::{GroupTarget, LdapSettings, Transport};
use ldap3::asn1::{PL, StructureTag};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, ResultEntry, Scope};
use rampart_core::{ExposeSecret, Name, Role, SecretString};
use rampart_store::ssh_keys::parse_public_keys;
use rampart_store::{DirectorySnapshot, DirectoryUser};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// The most entries one sync reads (users, then groups); a larger directory is refused whole.
pub const MAX_ENTRIES: usize = 100_000;
/// LDAP result code `invalidCredentials`.
const INVALID_CREDENTIALS: u32 = 49;

/// Why the directory could not answer. Never holds a password.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("cannot reach the LDAP directory at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("the LDAP service bind as {dn:?} failed: {reason}")]
    ServiceBind { dn: String, reason: String },
    #[error("LDAP search under {base:?} failed: {reason}")]
    Search { base: String, reason: String },
    #[error(
        "the LDAP directory returned more than {MAX_ENTRIES} entries under {base:?}: refusing a partial sync"
    )]
    TooMany { base: String },
}

/// The configured directory. Cloning shares it.
#[derive(Debug, Clone)]
pub struct Directory {
    settings: Arc<LdapSettings>,
}

/// One entry as the directory returned it.
#[derive(Debug, Default)]
struct Entry {
    dn: String,
    /// Attribute names lower-cased; values that are UTF-8.
    attrs: HashMap<String, Vec<String>>,
}

impl Entry {
    fn values(&self, attribute: &str) -> &[String] {
        self.attrs
            .get(&attribute.to_ascii_lowercase())
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

impl Directory {
    pub fn new(settings: LdapSettings) -> Self {
        Self {
            settings: Arc::new(settings),
        }
    }

    pub fn settings(&self) -> &LdapSettings {
        &self.settings
    }

    /// A connection, TLS set up (LDAPS or StartTLS), with every operation under the timeout.
    async fn connect(&self) -> Result<Ldap, DirectoryError> {
        let settings = &self.settings;
        let conn_settings = LdapConnSettings::new()
            .set_conn_timeout(settings.timeout)
            .set_config(settings.tls.clone())
            .set_starttls(settings.transport == Transport::StartTls);
        let connected = tokio::time::timeout(
            settings.timeout,
            LdapConnAsync::with_settings(conn_settings, &settings.url),
        )
        .await;
        let (conn, mut ldap) = match connected {
            Ok(Ok(pair)) => pair,
            Ok(Err(err)) => {
                return Err(DirectoryError::Connect {
                    url: settings.url.clone(),
                    reason: err.to_string(),
                });
            }
            Err(_) => {
                return Err(DirectoryError::Connect {
                    url: settings.url.clone(),
                    reason: "timed out".into(),
                });
            }
        };
        tokio::spawn(async move {
            if let Err(err) = conn.drive().await {
                tracing::debug!(error = %err, "LDAP connection ended");
            }
        });
        ldap.with_timeout(settings.timeout);
        Ok(ldap)
    }

    /// A connection bound as the service account (or anonymous without one).
    async fn service_connection(&self) -> Result<Ldap, DirectoryError> {
        let mut ldap = self.connect().await?;
        if let Some(service) = &self.settings.service {
            let bound = ldap
                .simple_bind(&service.dn, service.password.expose_secret())
                .await
                .and_then(ldap3::LdapResult::success);
            if let Err(err) = bound {
                let _ = ldap.unbind().await;
                return Err(DirectoryError::ServiceBind {
                    dn: service.dn.clone(),
                    reason: err.to_string(),
                });
            }
        }
        Ok(ldap)
    }

    /// Every entry under `base` matching `filter`, with `attrs`; at most [`MAX_ENTRIES`].
    async fn search(
        &self,
        ldap: &mut Ldap,
        base: &str,
        filter: &str,
        attrs: Vec<String>,
    ) -> Result<Vec<Entry>, DirectoryError> {
        let failed = |reason: String| DirectoryError::Search {
            base: base.to_owned(),
            reason,
        };
        let mut stream = ldap
            .streaming_search(base, Scope::Subtree, filter, attrs)
            .await
            .map_err(|err| failed(err.to_string()))?;
        let mut entries = Vec::new();
        loop {
            match stream.next().await {
                Ok(Some(raw)) => {
                    if entries.len() >= MAX_ENTRIES {
                        let _ = stream.finish().await;
                        return Err(DirectoryError::TooMany {
                            base: base.to_owned(),
                        });
                    }
                    // Referrals and other messages are not entries: skipped.
                    if let Some(found) = entry(raw) {
                        entries.push(found);
                    }
                }
                Ok(None) => break,
                Err(err) => return Err(failed(err.to_string())),
            }
        }
        stream
            .finish()
            .await
            .success()
            .map_err(|err| failed(err.to_string()))?;
        Ok(entries)
    }

    /// Whether `password` is the password of the one entry the user filter finds for `name`.
    /// No entry, several entries, an empty password or a refused bind: `Ok(false)`.
    pub async fn check_password(
        &self,
        name: &Name,
        password: &SecretString,
    ) -> Result<bool, DirectoryError> {
        let password = password.expose_secret();
        if password.is_empty() {
            return Ok(false);
        }
        let mut ldap = self.service_connection().await?;
        let found = self
            .search(
                &mut ldap,
                &self.settings.user_base,
                &self.settings.filter_for(name.as_str()),
                vec!["1.1".to_owned()],
            )
            .await;
        let _ = ldap.unbind().await;
        let found = found?;
        let [entry] = found.as_slice() else {
            if found.len() > 1 {
                tracing::warn!(user = %name, entries = found.len(), "the LDAP user filter finds several entries for one name; refusing");
            }
            return Ok(false);
        };
        let mut ldap = self.connect().await?;
        let bound = ldap.simple_bind(&entry.dn, password).await;
        let _ = ldap.unbind().await;
        match bound {
            Ok(result) if result.rc == 0 => Ok(true),
            Ok(result) => {
                if result.rc != INVALID_CREDENTIALS {
                    tracing::info!(user = %name, rc = result.rc, "LDAP bind refused");
                }
                Ok(false)
            }
            Err(err) => Err(DirectoryError::Connect {
                url: self.settings.url.clone(),
                reason: err.to_string(),
            }),
        }
    }

    /// The whole directory, mapped to Rampart's terms: every user the filter lists (with a
    /// valid name), their keys, mapped groups and role.
    pub async fn snapshot(&self) -> Result<DirectorySnapshot, DirectoryError> {
        let settings = &self.settings;
        let mut ldap = self.service_connection().await?;
        let read = self.read(&mut ldap).await;
        let _ = ldap.unbind().await;
        let (users, groups) = read?;

        // Directory group -> who is in it (member DNs, memberUid names).
        let mut targets_of_user: BTreeMap<String, Vec<&GroupTarget>> = BTreeMap::new();
        let mut targets_of_dn: BTreeMap<String, Vec<&GroupTarget>> = BTreeMap::new();
        for group in &groups {
            let cn = group.values("cn");
            let targets: Vec<&GroupTarget> = settings
                .group_map
                .iter()
                .filter(|(key, _)| {
                    normalize_dn(key) == normalize_dn(&group.dn)
                        || cn.iter().any(|cn| cn.eq_ignore_ascii_case(key))
                })
                .map(|(_, target)| target)
                .collect();
            if targets.is_empty() {
                continue;
            }
            for member in group
                .values("member")
                .iter()
                .chain(group.values("uniqueMember"))
            {
                targets_of_dn
                    .entry(normalize_dn(member))
                    .or_default()
                    .extend(&targets);
            }
            for uid in group.values("memberUid") {
                targets_of_user
                    .entry(uid.clone())
                    .or_default()
                    .extend(&targets);
            }
        }

        let mut snapshot = DirectorySnapshot {
            users: Vec::new(),
            managed_groups: settings.managed_groups().cloned().collect(),
        };
        let mut seen = BTreeSet::new();
        for user in users {
            let Some(text) = user.values(&settings.username_attribute).first() else {
                continue;
            };
            let Ok(name) = Name::parse("user", text) else {
                tracing::warn!(dn = %user.dn, "an LDAP user whose name is not a Rampart name; skipped");
                continue;
            };
            if !seen.insert(name.to_string()) {
                tracing::warn!(user = %name, "several LDAP entries have this name; the first is kept");
                continue;
            }
            let mut keys = Vec::new();
            for value in user.values(&settings.ssh_key_attribute) {
                match parse_public_keys(&settings.ssh_key_attribute, value) {
                    Ok(parsed) => keys.extend(parsed),
                    Err(err) => {
                        tracing::warn!(user = %name, error = %err, "an LDAP SSH key that does not parse; skipped");
                    }
                }
            }
            let mut groups = BTreeSet::new();
            let mut role = Role::User;
            let targets = targets_of_dn
                .get(&normalize_dn(&user.dn))
                .into_iter()
                .chain(targets_of_user.get(text))
                .flatten();
            for target in targets {
                match target {
                    GroupTarget::Group(group) => {
                        groups.insert(group.clone());
                    }
                    GroupTarget::Role(mapped) => role = higher(role, *mapped),
                }
            }
            snapshot.users.push(DirectoryUser {
                name,
                dn: user.dn,
                keys,
                groups,
                role,
            });
        }
        // In name order, whatever order the directory answers in: summaries read the same.
        snapshot.users.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(snapshot)
    }

    async fn read(&self, ldap: &mut Ldap) -> Result<(Vec<Entry>, Vec<Entry>), DirectoryError> {
        let settings = &self.settings;
        let users = self
            .search(
                ldap,
                &settings.user_base,
                &settings.filter_for_all(),
                vec![
                    settings.username_attribute.clone(),
                    settings.ssh_key_attribute.clone(),
                ],
            )
            .await?;
        let groups = match &settings.group_base {
            Some(base) if !settings.group_map.is_empty() => {
                self.search(
                    ldap,
                    base,
                    &settings.group_filter,
                    ["cn", "member", "uniqueMember", "memberUid"]
                        .map(str::to_owned)
                        .to_vec(),
                )
                .await?
            }
            _ => Vec::new(),
        };
        Ok((users, groups))
    }
}

impl rampart_auth::PasswordDirectory for Directory {
    fn check_password<'a>(
        &'a self,
        user: &'a Name,
        password: &'a SecretString,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<bool, rampart_auth::DirectoryUnavailable>>
                + Send
                + 'a,
        >,
    > {
        Box::pin(async move {
            Directory::check_password(self, user, password)
                .await
                .map_err(|err| {
                    tracing::error!(error = %err, "LDAP password check failed");
                    rampart_auth::DirectoryUnavailable
                })
        })
    }
}

fn higher(a: Role, b: Role) -> Role {
    let rank = |role: Role| match role {
        Role::Admin => 2,
        Role::Auditor => 1,
        Role::User => 0,
    };
    if rank(b) > rank(a) { b } else { a }
}

/// A DN compared without case and without spaces around separators.
fn normalize_dn(dn: &str) -> String {
    dn.split(',')
        .map(|part| part.split('=').map(str::trim).collect::<Vec<_>>().join("="))
        .collect::<Vec<_>>()
        .join(",")
        .to_lowercase()
}

/// A search result entry (`[APPLICATION 4] SEQUENCE { objectName, attributes }`), or `None`
/// for anything else (a referral) or anything malformed. Never panics.
fn entry(raw: ResultEntry) -> Option<Entry> {
    let StructureTag {
        id: 4,
        payload: PL::C(parts),
        ..
    } = raw.0
    else {
        return None;
    };
    let mut parts = parts.into_iter();
    let dn = primitive_text(parts.next()?)?;
    let PL::C(attributes) = parts.next()?.payload else {
        return None;
    };
    let mut found = Entry {
        dn,
        attrs: HashMap::new(),
    };
    for attribute in attributes {
        let PL::C(pair) = attribute.payload else {
            return None;
        };
        let mut pair = pair.into_iter();
        let name = primitive_text(pair.next()?)?.to_ascii_lowercase();
        let PL::C(values) = pair.next()?.payload else {
            return None;
        };
        let texts = found.attrs.entry(name).or_default();
        for value in values {
            // Binary values (not UTF-8) are not names or keys: left out.
            if let PL::P(bytes) = value.payload
                && let Ok(text) = String::from_utf8(bytes)
            {
                texts.push(text);
            }
        }
    }
    Some(found)
}

fn primitive_text(tag: StructureTag) -> Option<String> {
    match tag.payload {
        PL::P(bytes) => String::from_utf8(bytes).ok(),
        PL::C(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ldap3::asn1::TagClass;

    fn prim(text: &str) -> StructureTag {
        StructureTag {
            class: TagClass::Universal,
            id: 4,
            payload: PL::P(text.as_bytes().to_vec()),
        }
    }

    fn seq(items: Vec<StructureTag>) -> StructureTag {
        StructureTag {
            class: TagClass::Universal,
            id: 16,
            payload: PL::C(items),
        }
    }

    #[test]
    fn entries_are_decoded_and_malformed_ones_refused_without_panic() {
        let good = StructureTag {
            class: TagClass::Application,
            id: 4,
            payload: PL::C(vec![
                prim("uid=alice,ou=people,dc=example,dc=org"),
                seq(vec![seq(vec![
                    prim("UID"),
                    StructureTag {
                        class: TagClass::Universal,
                        id: 17,
                        payload: PL::C(vec![prim("alice")]),
                    },
                ])]),
            ]),
        };
        let decoded = entry(ResultEntry::new(good)).unwrap();
        assert_eq!(decoded.dn, "uid=alice,ou=people,dc=example,dc=org");
        assert_eq!(decoded.values("uid"), ["alice".to_owned()]);

        let malformed = [
            StructureTag {
                class: TagClass::Application,
                id: 4,
                payload: PL::C(vec![]),
            },
            StructureTag {
                class: TagClass::Application,
                id: 4,
                payload: PL::P(vec![1, 2]),
            },
            StructureTag {
                class: TagClass::Application,
                id: 4,
                payload: PL::C(vec![prim("dn"), prim("not a sequence")]),
            },
            StructureTag {
                class: TagClass::Application,
                id: 4,
                payload: PL::C(vec![prim("dn"), seq(vec![seq(vec![prim("uid")])])]),
            },
            StructureTag {
                class: TagClass::Application,
                id: 19,
                payload: PL::C(vec![prim("ldap://elsewhere")]),
            },
        ];
        for tag in malformed {
            assert!(entry(ResultEntry::new(tag)).is_none());
        }
    }

    #[test]
    fn dns_compare_without_case_or_spaces() {
        assert_eq!(
            normalize_dn("CN=Ops, OU=Groups,dc=Example ,DC=org"),
            normalize_dn("cn=ops,ou=groups,dc=example,dc=org")
        );
    }

    #[test]
    fn the_highest_mapped_role_wins() {
        assert_eq!(higher(Role::User, Role::Auditor), Role::Auditor);
        assert_eq!(higher(Role::Admin, Role::Auditor), Role::Admin);
        assert_eq!(higher(Role::User, Role::User), Role::User);
    }
}
