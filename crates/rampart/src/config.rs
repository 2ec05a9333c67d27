//! Configuration: an optional TOML file, environment variables and flags, merged in that order
//! of precedence (flag over environment over file over default) and validated completely before
//! anything is opened or bound.
//!
//! Every setting has one row in [`Setting`]'s table of sources, so an error can always say which
//! key was wrong and where the value came from.

use rampart_core::SecretString;
use rampart_core::login_rules::{AuthSettings, LockoutPolicy, LoginRules, parse_cidr_list};
use rampart_core::schedule::Schedule;
use rampart_core::time_arg::parse_duration;
use rampart_ssh::admission::{MaxStartups, PreAuthLimits};
use rampart_ssh::{TargetAnswerTimeout, TargetHostKeys};
use rampart_store::MasterKeySource;
use serde::Deserialize;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use tracing_subscriber::filter::LevelFilter;

use std::time::Duration;

mod agent;
mod alerts;
mod database;
mod mysql;
mod postgres;
pub use agent::AgentConfig;
pub use mysql::MysqlConfig;
pub use postgres::PostgresConfig;
mod redis;
pub use redis::RedisConfig;
mod vnc;
pub use vnc::{RdpConfig, VncConfig};
mod kube;
mod ldap;
mod node;
pub use node::NodeConfig;
mod oidc;
mod requests;
mod rules;
mod s3;
mod webauthn;
pub use kube::KubeConfig;
pub use s3::RecordingStore;
pub use webauthn::WebauthnConfig;

pub const DEFAULT_DATA_DIR: &str = "./rampart-data";
pub const DEFAULT_SSH_LISTEN: &str = "127.0.0.1:2222";
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:8080";

/// The configuration file as written; every key optional, unknown keys rejected.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<String>,
    #[serde(default)]
    ssh: SshSection,
    #[serde(default)]
    http: HttpSection,
    #[serde(default)]
    vault: VaultSection,
    #[serde(default)]
    store: StoreSection,
    #[serde(default)]
    log: LogSection,
    #[serde(default)]
    audit: AuditSection,
    #[serde(default)]
    session: SessionSection,
    #[serde(default)]
    auth: AuthSection,
    #[serde(default)]
    recording: RecordingSection,
    #[serde(default)]
    metrics: MetricsSection,
    #[serde(default)]
    postgres: postgres::PostgresSection,
    #[serde(default)]
    agent: agent::AgentSection,
    #[serde(default)]
    gateway: agent::GatewaySection,
    #[serde(default)]
    mysql: mysql::MysqlSection,
    #[serde(default)]
    redis: redis::RedisSection,
    #[serde(default)]
    vnc: vnc::NativeSection,
    #[serde(default)]
    rdp: vnc::NativeSection,
    #[serde(default)]
    requests: requests::RequestsSection,
    #[serde(default)]
    rules: rules::RulesSection,
    #[serde(default)]
    alerts: alerts::AlertsSection,
    #[serde(default)]
    kube: kube::KubeSection,
    #[serde(default)]
    ldap: ldap::LdapSection,
    #[serde(default)]
    oidc: oidc::OidcSection,
    #[serde(default)]
    webauthn: webauthn::WebauthnSection,
    #[serde(default)]
    node: node::NodeSection,
}

/// How session recordings are written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordingSection {
    fsync_interval: Option<String>,
    exec_cap: Option<toml::Value>,
    store: Option<String>,
    #[serde(default)]
    s3: s3::S3Section,
}

/// Who may log in from where and when, for every user, and the lockout after failed logins.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthSection {
    allow_from: Option<Vec<String>>,
    deny_from: Option<Vec<String>>,
    login_hours: Option<String>,
    trusted_proxies: Option<Vec<String>>,
    lockout_threshold: Option<i64>,
    lockout_window: Option<String>,
    lockout_duration: Option<String>,
    require_mfa: Option<bool>,
    ssh_cert_ttl: Option<String>,
    ssh_web_approval: Option<bool>,
    ssh_web_approval_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionSection {
    idle_timeout: Option<String>,
    max_duration: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditSection {
    retention_days: Option<i64>,
    seal_interval: Option<String>,
    syslog: Option<String>,
    webhook: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SshSection {
    listen: Option<String>,
    login_grace_time: Option<String>,
    max_startups: Option<String>,
    per_source_max_startups: Option<i64>,
    target_host_keys: Option<String>,
    target_answer_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpSection {
    listen: Option<String>,
    tls: Option<bool>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    session_idle_timeout: Option<String>,
    session_lifetime: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct VaultSection {
    master_key_file: Option<String>,
}

/// `[store]`: the shared database; without `url`, the data directory's SQLite file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreSection {
    url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogSection {
    level: Option<String>,
    access: Option<String>,
}

/// Values given on the command line; `None` when the flag was not used.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub master_key_file: Option<PathBuf>,
    pub ssh_listen: Option<String>,
    pub http_listen: Option<String>,
    pub log_level: Option<String>,
}

/// The validated configuration every command runs with.
#[derive(Debug)]
pub struct Config {
    pub data_dir: PathBuf,
    pub master_key: MasterKeySource,
    /// The shared PostgreSQL database (`store.url`, `RAMPART_STORE_URL`); `None`: the data
    /// directory's embedded SQLite. Shown only redacted.
    pub store_url: Option<rampart_store::DatabaseUrl>,
    pub ssh_listen: SocketAddr,
    pub http_listen: SocketAddr,
    pub log_level: LevelFilter,
    pub audit: AuditConfig,
    pub sessions: SessionConfig,
    pub http: HttpConfig,
    /// Global login rules, lockout and trusted proxies, for the listeners.
    pub auth: AuthSettings,
    /// How long an SSH user certificate from the portal or `rampart login` is valid
    /// (`auth.ssh_cert_ttl`, 8h unless configured, at most 7 days).
    pub ssh_cert_ttl: Duration,
    /// Web approval at SSH login (`auth.ssh_web_approval`): how long a login waits for the
    /// answer (`auth.ssh_web_approval_timeout`, 25s, below `ssh.login_grace_time`); `None`: off.
    pub ssh_web_approval: Option<Duration>,
    /// Whether targets whose host key is not pinned yet are pinned on first use or refused.
    pub target_host_keys: TargetHostKeys,
    /// The SSH listener's login grace time and caps on unauthenticated connections.
    pub ssh_pre_auth: PreAuthLimits,
    /// How long a target has to answer a new session (`ssh.target_answer_timeout`).
    pub target_answer_timeout: TargetAnswerTimeout,
    pub recording: RecordingConfig,
    /// Where recordings are kept (`recording.store`: local, or also an S3 bucket).
    pub recording_store: RecordingStore,
    /// The metrics listener and the access log.
    pub ops: OpsConfig,
    pub postgres: PostgresConfig,
    /// The listener dial-out agents connect to (`agent.listen`) and the gateways'
    /// health-check interval (`gateway.health_interval`).
    pub agent: AgentConfig,
    pub mysql: MysqlConfig,
    pub redis: RedisConfig,
    /// The native VNC listener for stock viewers (`vnc.listen`), off by default.
    pub vnc: VncConfig,
    /// The native RDP listener for stock RDP clients (`rdp.listen`), off by default.
    pub rdp: RdpConfig,
    /// Access requests: approver groups and the longest access asked for (`[requests]`).
    pub requests: rampart_core::requests::RequestSettings,
    /// How long a shell line an `approve` rule holds waits (`rules.approval_timeout`).
    pub approval_timeout: std::time::Duration,
    /// The anomaly detectors (`[alerts]`); the failed-login burst also rides in `auth`.
    pub detectors: rampart_core::detectors::DetectorSettings,
    /// The Kubernetes API listener (`kube.listen`), off by default.
    pub kube: KubeConfig,
    /// The LDAP directory (`[ldap]`), off unless `ldap.url` is set.
    pub ldap: Option<rampart_ldap::LdapSettings>,
    /// Portal sign-in through an OpenID Connect provider (`[oidc]`), off by default.
    pub oidc: Option<rampart_oidc::OidcSettings>,
    /// The passkeys' relying party (`[webauthn]`); by default `localhost` on the HTTP port.
    pub webauthn: WebauthnConfig,
    /// This server as a cluster node (`[node]`): its name, heartbeats, where others reach it.
    pub node: NodeConfig,
}

pub const DEFAULT_FSYNC_INTERVAL: Duration = Duration::from_secs(1);

/// How session recordings are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordingConfig {
    /// A live recording is fsynced at least this often: what a crash of the machine can lose.
    pub fsync_interval: Duration,
    /// Bytes of each direction a command's recording keeps (the rest counted and hashed);
    /// `None`: everything.
    pub exec_cap: Option<u64>,
}

/// How the HTTP listener serves: its TLS and its browser sessions' lifetimes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    pub tls: HttpTls,
    /// A browser session ends after this long without a request.
    pub session_idle: Duration,
    /// A browser session ends this long after login.
    pub session_lifetime: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpTls {
    /// Plain HTTP (only on loopback, behind a reverse proxy that terminates TLS).
    Off,
    /// A self-signed certificate generated into the data directory's `keys/`.
    SelfSigned,
    /// The operator's PEM files.
    Files { cert: PathBuf, key: PathBuf },
}

pub const DEFAULT_WEB_SESSION_IDLE: Duration = Duration::from_secs(30 * 60);
pub const DEFAULT_WEB_SESSION_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);

pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Session time limits where a grant sets none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    pub idle_timeout: Option<Duration>,
    pub max_duration: Option<Duration>,
}

pub const DEFAULT_RETENTION_DAYS: u32 = 365;
/// How often the server signs the audit chain head (and so the bound on what a crash leaves
/// unsigned, and on what `audit verify` accepts as not yet signed).
pub const DEFAULT_SEAL_INTERVAL: Duration = Duration::from_secs(5);

/// Where evidence goes besides the data directory, and how long it is kept.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// Recordings and session records older than this are deleted (the only deletion).
    pub retention_days: u32,
    /// The server signs the audit chain head this often (1 s to 60 s).
    pub seal_interval: Duration,
    /// RFC 5424 syslog receiver.
    pub syslog: Option<SyslogTarget>,
    /// HTTP endpoint that receives each event as a JSON POST.
    pub webhook: Option<WebhookTarget>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyslogTransport {
    Udp,
    Tcp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogTarget {
    pub transport: SyslogTransport,
    pub address: SocketAddr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookTarget {
    pub address: SocketAddr,
    pub host: String,
    pub path: String,
}

/// A configuration problem: names the key, where its value came from and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

/// Where a value came from, for error messages.
struct Sourced {
    value: String,
    source: String,
}

/// Reads one setting by precedence: flag, environment variable, file, default.
fn pick(
    key: &str,
    flag: (&str, Option<String>),
    env: &str,
    env_lookup: &dyn Fn(&str) -> Option<String>,
    file: Option<String>,
    file_name: &str,
) -> Option<Sourced> {
    if let Some(value) = flag.1 {
        return Some(Sourced {
            value,
            source: format!("flag {}", flag.0),
        });
    }
    if let Some(value) = env_lookup(env) {
        return Some(Sourced {
            value,
            source: format!("environment {env}"),
        });
    }
    file.map(|value| Sourced {
        value,
        source: format!("{file_name} key {key}"),
    })
}

impl Config {
    /// Loads the configuration from the real environment.
    pub fn load(overrides: Overrides) -> Result<Self, ConfigError> {
        Self::load_with(overrides, &|name| {
            std::env::var(name).ok().filter(|v| !v.is_empty())
        })
    }

    /// Loads the configuration with `env_lookup` standing in for the environment (for tests).
    pub fn load_with(
        overrides: Overrides,
        env_lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let config_path = overrides
            .config_file
            .clone()
            .or_else(|| env_lookup("RAMPART_CONFIG").map(PathBuf::from));
        let (file, file_name) = match &config_path {
            Some(path) => (read_file(path)?, path.display().to_string()),
            None => (FileConfig::default(), String::new()),
        };
        let path_flag = |p: Option<PathBuf>| p.map(|p| p.display().to_string());

        let data_dir = pick(
            "data_dir",
            ("--data-dir", path_flag(overrides.data_dir)),
            "RAMPART_DATA_DIR",
            env_lookup,
            file.data_dir,
            &file_name,
        );
        let data_dir = match data_dir {
            Some(Sourced { value, source }) if value.trim().is_empty() => {
                return Err(ConfigError(format!("data_dir (from {source}) is empty")));
            }
            Some(Sourced { value, .. }) => PathBuf::from(value),
            None => PathBuf::from(DEFAULT_DATA_DIR),
        };

        let ssh_listen = listen_address(
            "ssh.listen",
            pick(
                "ssh.listen",
                ("--ssh-listen", overrides.ssh_listen),
                "RAMPART_SSH_LISTEN",
                env_lookup,
                file.ssh.listen.clone(),
                &file_name,
            ),
            DEFAULT_SSH_LISTEN,
        )?;
        let http_listen = listen_address(
            "http.listen",
            pick(
                "http.listen",
                ("--http-listen", overrides.http_listen),
                "RAMPART_HTTP_LISTEN",
                env_lookup,
                file.http.listen.clone(),
                &file_name,
            ),
            DEFAULT_HTTP_LISTEN,
        )?;
        if ssh_listen == http_listen && ssh_listen.port() != 0 {
            return Err(ConfigError(format!(
                "ssh.listen and http.listen are both {ssh_listen}: give each its own port"
            )));
        }

        let log_level = match pick(
            "log.level",
            ("--log-level", overrides.log_level),
            "RAMPART_LOG",
            env_lookup,
            file.log.level,
            &file_name,
        ) {
            None => LevelFilter::INFO,
            Some(Sourced { value, source }) => value.parse().map_err(|_| {
                ConfigError(format!(
                    "log.level (from {source}): {value:?} is not one of off, error, warn, info, debug, trace"
                ))
            })?,
        };

        let key_file = pick(
            "vault.master_key_file",
            ("--master-key-file", path_flag(overrides.master_key_file)),
            "RAMPART_MASTER_KEY_FILE",
            env_lookup,
            file.vault.master_key_file,
            &file_name,
        );
        let inline_key = env_lookup("RAMPART_MASTER_KEY");
        let master_key = match (key_file, inline_key) {
            (Some(file), Some(_)) => {
                return Err(ConfigError(format!(
                    "vault.master_key_file (from {}) and RAMPART_MASTER_KEY are both set: use one",
                    file.source
                )));
            }
            (Some(Sourced { value, source }), None) => {
                let path = PathBuf::from(value);
                check_key_file(&path, &source)?;
                MasterKeySource::File(path)
            }
            (None, Some(key)) => MasterKeySource::Inline(SecretString::from(key)),
            (None, None) => MasterKeySource::DataDir,
        };

        let store_url = match pick(
            "store.url",
            ("", None),
            "RAMPART_STORE_URL",
            env_lookup,
            file.store.url,
            &file_name,
        ) {
            None => None,
            Some(Sourced { value, source }) => Some(
                rampart_store::DatabaseUrl::parse(value.trim())
                    .map_err(|err| ConfigError(format!("{err} (from {source})")))?,
            ),
        };

        let audit = audit_config(&file.audit, env_lookup, &file_name)?;
        let limit =
            |key: &str, env: &str, value: Option<String>, default: Option<Duration>| match pick(
                key,
                ("", None),
                env,
                env_lookup,
                value,
                &file_name,
            ) {
                None => Ok(default),
                Some(Sourced { value, .. }) if value == "off" => Ok(None),
                Some(Sourced { value, source }) => parse_duration(key, &value)
                    .map(Some)
                    .map_err(|err| ConfigError(format!("{key} (from {source}): {err} (or off)"))),
            };
        let sessions = SessionConfig {
            idle_timeout: limit(
                "session.idle_timeout",
                "RAMPART_SESSION_IDLE_TIMEOUT",
                file.session.idle_timeout,
                Some(DEFAULT_IDLE_TIMEOUT),
            )?,
            max_duration: limit(
                "session.max_duration",
                "RAMPART_SESSION_MAX_DURATION",
                file.session.max_duration,
                None,
            )?,
        };
        let ssh_cert_ttl = ssh_cert_ttl(file.auth.ssh_cert_ttl.clone(), env_lookup, &file_name)?;
        let web_approval_file = (
            file.auth.ssh_web_approval,
            file.auth.ssh_web_approval_timeout.clone(),
        );
        let mut auth = auth_settings(file.auth, env_lookup, &file_name)?;
        let detectors = alerts::alerts_config(&file.alerts, env_lookup, &file_name)?;
        auth.failure_burst = detectors.failed_logins;
        let recording = recording_config(&file.recording, env_lookup, &file_name)?;
        let recording_store = s3::recording_store(
            file.recording.store.clone(),
            &file.recording.s3,
            audit.retention_days,
            env_lookup,
            &file_name,
        )?;
        let ssh_pre_auth = ssh_pre_auth(&file.ssh, env_lookup, &file_name)?;
        let ssh_web_approval = ssh_web_approval(
            web_approval_file,
            ssh_pre_auth.login_grace_time,
            env_lookup,
            &file_name,
        )?;
        let target_host_keys = match pick(
            "ssh.target_host_keys",
            ("", None),
            "RAMPART_SSH_TARGET_HOST_KEYS",
            env_lookup,
            file.ssh.target_host_keys,
            &file_name,
        ) {
            None => TargetHostKeys::default(),
            Some(Sourced { value, source }) => value.parse().map_err(|err| {
                ConfigError(format!("ssh.target_host_keys (from {source}): {err}"))
            })?,
        };

        let target_answer_timeout = match pick(
            "ssh.target_answer_timeout",
            ("", None),
            "RAMPART_SSH_TARGET_ANSWER_TIMEOUT",
            env_lookup,
            file.ssh.target_answer_timeout,
            &file_name,
        ) {
            None => TargetAnswerTimeout::default(),
            Some(Sourced { value, source }) => {
                TargetAnswerTimeout(parse_duration("ssh.target_answer_timeout", &value).map_err(
                    |err| ConfigError(format!("ssh.target_answer_timeout (from {source}): {err}")),
                )?)
            }
        };

        let http = http_config(&file.http, http_listen, env_lookup, &file_name)?;
        let ops = ops_config(&file.metrics, file.log.access, env_lookup, &file_name)?;
        let postgres = postgres::postgres_config(&file.postgres, env_lookup, &file_name)?;
        let agent = agent::agent_config(&file.agent, &file.gateway, env_lookup, &file_name)?;
        let mysql = mysql::mysql_config(&file.mysql, env_lookup, &file_name)?;
        let redis = redis::redis_config(&file.redis, env_lookup, &file_name)?;
        let vnc = vnc::native_config("vnc", "127.0.0.1:5901", &file.vnc, env_lookup, &file_name)?;
        let rdp = vnc::native_config("rdp", "127.0.0.1:3390", &file.rdp, env_lookup, &file_name)?;
        let requests = requests::requests_config(&file.requests, env_lookup, &file_name)?;
        let approval_timeout = rules::approval_timeout(&file.rules, env_lookup, &file_name)?;
        let kube = kube::kube_config(&file.kube, env_lookup, &file_name)?;
        let ldap = ldap::ldap_config(file.ldap, env_lookup, &file_name)?;
        let oidc = oidc::oidc_config(&file.oidc, &file_name)?;
        let webauthn = webauthn::webauthn_config(&file.webauthn, env_lookup, &file_name)?;
        let node = node::node_config(&file.node, env_lookup, &file_name)?;

        Ok(Self {
            data_dir,
            master_key,
            store_url,
            ssh_listen,
            http_listen,
            log_level,
            audit,
            sessions,
            http,
            auth,
            ssh_cert_ttl,
            ssh_web_approval,
            recording,
            recording_store,
            ssh_pre_auth,
            target_host_keys,
            target_answer_timeout,
            ops,
            postgres,
            agent,
            mysql,
            redis,
            vnc,
            rdp,
            requests,
            approval_timeout,
            detectors,
            kube,
            ldap,
            oidc,
            webauthn,
            node,
        })
    }
}

impl Config {
    pub fn master_key_describe(&self) -> String {
        self.master_key.describe()
    }
}

fn http_config(
    section: &HttpSection,
    listen: SocketAddr,
    env_lookup: &dyn Fn(&str) -> Option<String>,
    file_name: &str,
) -> Result<HttpConfig, ConfigError> {
    let tls = pick(
        "http.tls",
        ("", None),
        "RAMPART_HTTP_TLS",
        env_lookup,
        section.tls.map(|b| b.to_string()),
        file_name,
    );
    let tls_on = match &tls {
        None => true,
        Some(Sourced { value, source }) => match value.as_str() {
            "true" => true,
            "false" => false,
            other => {
                return Err(ConfigError(format!(
                    "http.tls (from {source}): {other:?} is not true or false"
                )));
            }
        },
    };
    let file_key = |key: &str, env: &str, value: Option<String>| {
        pick(key, ("", None), env, env_lookup, value, file_name)
            .map(|Sourced { value, source }| {
                let path = PathBuf::from(&value);
                if !path.is_file() {
                    return Err(ConfigError(format!(
                        "{key} (from {source}): {value:?} is not a readable file"
                    )));
                }
                Ok((path, source))
            })
            .transpose()
    };
    let cert = file_key(
        "http.tls_cert",
        "RAMPART_HTTP_TLS_CERT",
        section.tls_cert.clone(),
    )?;
    let key = file_key(
        "http.tls_key",
        "RAMPART_HTTP_TLS_KEY",
        section.tls_key.clone(),
    )?;
    let tls = match (tls_on, cert, key) {
        (false, None, None) => {
            if !listen.ip().is_loopback() {
                let source = tls.map(|t| t.source).unwrap_or_default();
                return Err(ConfigError(format!(
                    "http.tls (from {source}) is false, but http.listen {listen} is not a loopback \
                     address: plain HTTP is allowed only on loopback, behind a reverse proxy"
                )));
            }
            HttpTls::Off
        }
        (false, Some((_, source)), _) | (false, None, Some((_, source))) => {
            return Err(ConfigError(format!(
                "http.tls is false, but a certificate or key is set (from {source}): remove one"
            )));
        }
        (true, None, None) => HttpTls::SelfSigned,
        (true, Some((cert, _)), Some((key, _))) => HttpTls::Files { cert, key },
        (true, Some((_, source)), None) => {
            return Err(ConfigError(format!(
                "http.tls_cert is set (from {source}) without http.tls_key: give both"
            )));
        }
        (true, None, Some((_, source))) => {
            return Err(ConfigError(format!(
                "http.tls_key is set (from {source}) without http.tls_cert: give both"
            )));
        }
    };
    let duration = |key: &str, env: &str, value: Option<String>, default: Duration| match pick(
        key,
        ("", None),
        env,
        env_lookup,
        value,
        file_name,
    ) {
        None => Ok(default),
        Some(Sourced { value, source }) => parse_duration(key, &value)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                ConfigError(format!(
                    "{key} (from {source}): {value:?} is not a duration such as 30m or 12h"
                ))
            }),
    };
    Ok(HttpConfig {
        tls,
        session_idle: duration(
            "http.session_idle_timeout",
            "RAMPART_HTTP_SESSION_IDLE_TIMEOUT",
            section.session_idle_timeout.clone(),
            DEFAULT_WEB_SESSION_IDLE,
        )?,
        session_lifetime: duration(
            "http.session_lifetime",
            "RAMPART_HTTP_SESSION_LIFETIME",
            section.session_lifetime.clone(),
            DEFAULT_WEB_SESSION_LIFETIME,
        )?,
    })
}

fn recording_config(
    section: &RecordingSection,
    env_lookup: &dyn Fn(&str) -> Option<String>,
    file_name: &str,
) -> Result<RecordingConfig, ConfigError> {
    let interval = pick(
        "recording.fsync_interval",
        ("", None),
        "RAMPART_RECORDING_FSYNC_INTERVAL",
        env_lookup,
        section.fsync_interval.clone(),
        file_name,
    );
    let fsync_interval = match interval {
        None => DEFAULT_FSYNC_INTERVAL,
        Some(Sourced { value, source }) => {
            let millis = value.trim().strip_suffix("ms").map(|n| n.parse::<u64>());
            let parsed = match millis {
                Some(Ok(ms)) => Ok(Duration::from_millis(ms)),
                Some(Err(_)) => Err(String::new()),
                None => {
                    parse_duration("recording.fsync_interval", &value).map_err(|e| e.to_string())
                }
            };
            parsed
                .ok()
                .filter(|d| *d >= Duration::from_millis(10) && *d <= Duration::from_secs(60))
                .ok_or_else(|| {
                    ConfigError(format!(
                        "recording.fsync_interval (from {source}): {value:?} is not a duration \
                         from 10ms to 60s (such as 1s or 250ms)"
                    ))
                })?
        }
    };
    let file_cap = section.exec_cap.as_ref().map(|value| match value {
        toml::Value::String(text) => text.clone(),
        toml::Value::Integer(bytes) => bytes.to_string(),
        other => format!("{other:?}"),
    });
    let cap = pick(
        "recording.exec_cap",
        ("", None),
        "RAMPART_RECORDING_EXEC_CAP",
        env_lookup,
        file_cap,
        file_name,
    );
    let exec_cap = match cap {
        None => None,
        Some(Sourced { value, .. }) if value == "off" => None,
        Some(Sourced { value, source }) => Some(parse_bytes(&value).ok_or_else(|| {
            ConfigError(format!(
                "recording.exec_cap (from {source}): {value:?} is not a size such as 1048576, \
                 64KiB, 100MiB or 1GiB (or off)"
            ))
        })?),
    };
    Ok(RecordingConfig {
        fsync_interval,
        exec_cap,
    })
}

/// A positive number of bytes, optionally with KiB, MiB or GiB.
fn parse_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let (number, unit) = [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)]
        .into_iter()
        .find_map(|(suffix, unit)| text.strip_suffix(suffix).map(|n| (n.trim(), unit)))
        .unwrap_or((text, 1));
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .filter(|n| *n > 0)
}

/// `ssh.login_grace_time`, `ssh.max_startups` and `ssh.per_source_max_startups`.
fn ssh_pre_auth(
    section: &SshSection,
    env_lookup: &dyn Fn(&str) -> Option<String>,
    file_name: &str,
) -> Result<PreAuthLimits, ConfigError> {
    let mut limits = PreAuthLimits::default();
    if let Some(Sourced { value, source }) = pick(
        "ssh.login_grace_time",
        ("", None),
        "RAMPART_SSH_LOGIN_GRACE_TIME",
        env_lookup,
        section.login_grace_time.clone(),
        file_name,
    ) {
        limits.login_grace_time = parse_duration("ssh.login_grace_time", &value)
            .map_err(|err| ConfigError(format!("ssh.login_grace_time (from {source}): {err}")))?;
    }
    if let Some(Sourced { value, source }) = pick(
        "ssh.max_startups",
        ("", None),
        "RAMPART_SSH_MAX_STARTUPS",
        env_lookup,
        section.max_startups.clone(),
        file_name,
    ) {
        limits.max_startups = MaxStartups::parse(&value)
            .map_err(|err| ConfigError(format!("ssh.max_startups (from {source}): {err}")))?;
    }
    if let Some(Sourced { value, source }) = pick(
        "ssh.per_source_max_startups",
        ("", None),
        "RAMPART_SSH_PER_SOURCE_MAX_STARTUPS",
        env_lookup,
        section.per_source_max_startups.map(|n| n.to_string()),
        file_name,
    ) {
        limits.per_source_max_startups = value
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                ConfigError(format!(
                    "ssh.per_source_max_startups (from {source}): {value:?} is not a whole number above 0"
                ))
            })?;
    }
    Ok(limits)
}

fn audit_config(
    section: &AuditSection,
    env_lookup: &dyn Fn(&str) -> Option<String>,
    file_name: &str,
) -> Result<AuditConfig, ConfigError> {
    let retention = pick(
        "audit.retention_days",
        ("", None),
        "RAMPART_RETENTION_DAYS",
        env_lookup,
        section.retention_days.map(|d| d.to_string()),
        file_name,
    );
    let retention_days = match retention {
        None => DEFAULT_RETENTION_DAYS,
        Some(Sourced { value, source }) => value
            .parse::<u32>()
            .ok()
            .filter(|days| (1..=36_500).contains(days))
            .ok_or_else(|| {
                ConfigError(format!("audit.retention_days (from {source}): {value:?} is not a number of days from 1 to 36500"))
            })?,
    };
    let syslog = pick("audit.syslog", ("", None), "RAMPART_SYSLOG", env_lookup, section.syslog.clone(), file_name)
        .map(|Sourced { value, source }| {
            let bad = || {
                ConfigError(format!(
                    "audit.syslog (from {source}): {value:?} is not udp://ADDRESS:PORT or tcp://ADDRESS:PORT"
                ))
            };
            let (transport, address) = match value.split_once("://") {
                Some(("udp", address)) => (SyslogTransport::Udp, address),
                Some(("tcp", address)) => (SyslogTransport::Tcp, address),
                _ => return Err(bad()),
            };
            Ok(SyslogTarget { transport, address: address.parse().map_err(|_| bad())? })
        })
        .transpose()?;
    let webhook = pick(
        "audit.webhook",
        ("", None),
        "RAMPART_WEBHOOK_URL",
        env_lookup,
        section.webhook.clone(),
        file_name,
    )
    .map(|Sourced { value, source }| {
        let bad =
            |why: &str| ConfigError(format!("audit.webhook (from {source}): {value:?} {why}"));
        let rest = value.strip_prefix("http://").ok_or_else(|| {
            bad("must start with http:// (send to a local collector; https is not supported yet)")
        })?;
        let (authority, path) = match rest.split_once('/') {
            Some((authority, path)) => (authority, format!("/{path}")),
            None => (rest, "/".to_owned()),
        };
        let address = authority.parse::<SocketAddr>().map_err(|_| {
            bad("must name an IP address and port, such as http://127.0.0.1:9000/events")
        })?;
        Ok(WebhookTarget {
            address,
            host: authority.to_owned(),
            path,
        })
    })
    .transpose()?;
    let seal_interval = match pick(
        "audit.seal_interval",
        ("", None),
        "RAMPART_AUDIT_SEAL_INTERVAL",
        env_lookup,
        section.seal_interval.clone(),
        file_name,
    ) {
        None => DEFAULT_SEAL_INTERVAL,
        Some(Sourced { value, source }) => parse_duration("audit.seal_interval", &value)
            .ok()
            .filter(|d| (Duration::from_secs(1)..=Duration::from_secs(60)).contains(d))
            .ok_or_else(|| {
                ConfigError(format!(
                    "audit.seal_interval (from {source}): {value:?} is not a duration from 1s to 60s"
                ))
            })?,
    };
    Ok(AuditConfig {
        retention_days,
        seal_interval,
        syslog,
        webhook,
    })
}

/// An SSH user certificate's life when none is configured.
pub const DEFAULT_SSH_CERT_TTL: Duration = Duration::from_secs(8 * 3600);

fn ssh_cert_ttl(
    file: Option<String>,
    env_lookup: &dyn Fn(&str) -> Option<String>,
    file_name: &str,
) -> Result<Duration, ConfigError> {
    let Some(Sourced { value, source }) = pick(
        "auth.ssh_cert_ttl",
        ("", None),
        "RAMPART_AUTH_SSH_CERT_TTL",
        env_lookup,
        file,
        file_name,
    ) else {
        return Ok(DEFAULT_SSH_CERT_TTL);
    };
    let ttl = parse_duration("auth.ssh_cert_ttl", &value)
        .map_err(|err| ConfigError(format!("auth.ssh_cert_ttl (from {source}): {err}")))?;
    if ttl.is_zero() || ttl > rampart_store::ssh_ca::MAX_USER_CERTIFICATE_VALIDITY {
        return Err(ConfigError(format!(
            "auth.ssh_cert_ttl (from {source}): {value:?} is not between 1s and 7d"
        )));
    }
    Ok(ttl)
}

fn ssh_web_approval(
    (on, timeout): (Option<bool>, Option<String>),
    login_grace_time: Duration,
    env_lookup: &dyn Fn(&str) -> Option<String>,
    file_name: &str,
) -> Result<Option<Duration>, ConfigError> {
    let on = match pick(
        "auth.ssh_web_approval",
        ("", None),
        "RAMPART_AUTH_SSH_WEB_APPROVAL",
        env_lookup,
        on.map(|b| b.to_string()),
        file_name,
    ) {
        None => false,
        Some(Sourced { value, source }) => value.parse::<bool>().map_err(|_| {
            ConfigError(format!(
                "auth.ssh_web_approval (from {source}): {value:?} is not true or false"
            ))
        })?,
    };
    let timeout = match pick(
        "auth.ssh_web_approval_timeout",
        ("", None),
        "RAMPART_AUTH_SSH_WEB_APPROVAL_TIMEOUT",
        env_lookup,
        timeout,
        file_name,
    ) {
        None => {
            Duration::from_secs(25).min(login_grace_time.saturating_sub(Duration::from_secs(1)))
        }
        Some(Sourced { value, source }) => {
            let timeout =
                parse_duration("auth.ssh_web_approval_timeout", &value).map_err(|err| {
                    ConfigError(format!(
                        "auth.ssh_web_approval_timeout (from {source}): {err}"
                    ))
                })?;
            if timeout.is_zero() || timeout >= login_grace_time {
                return Err(ConfigError(format!(
                    "auth.ssh_web_approval_timeout (from {source}): {value:?} must be above 0 and \
                     below ssh.login_grace_time (the connection is closed then)"
                )));
            }
            timeout
        }
    };
    Ok(on.then_some(timeout))
}

fn auth_settings(
    section: AuthSection,
    env_lookup: &dyn Fn(&str) -> Option<String>,
    file_name: &str,
) -> Result<AuthSettings, ConfigError> {
    // In the file a list; in the environment comma-separated.
    let networks = |key: &str, env: &str, file: Option<Vec<String>>, everyone_ok: bool| {
        let Some(Sourced { value, source }) = pick(
            key,
            ("", None),
            env,
            env_lookup,
            file.map(|l| l.join(",")),
            file_name,
        ) else {
            return Ok(Vec::new());
        };
        let nets = parse_cidr_list(key, &value)
            .map_err(|err| ConfigError(format!("{key} (from {source}): {err}")))?;
        // A trusted proxy may tell Rampart any client address: trusting everyone would let
        // every client choose the address the allow and deny lists see.
        match nets.iter().find(|net| net.prefix_len() == 0) {
            Some(everyone) if !everyone_ok => Err(ConfigError(format!(
                "{key} (from {source}): {everyone} would let every client name its own \
                 address: list only your proxies"
            ))),
            _ => Ok(nets),
        }
    };
    let allow_from = networks(
        "auth.allow_from",
        "RAMPART_AUTH_ALLOW_FROM",
        section.allow_from,
        true,
    )?;
    let deny_from = networks(
        "auth.deny_from",
        "RAMPART_AUTH_DENY_FROM",
        section.deny_from,
        true,
    )?;
    let trusted_proxies = networks(
        "auth.trusted_proxies",
        "RAMPART_AUTH_TRUSTED_PROXIES",
        section.trusted_proxies,
        false,
    )?;
    let hours = pick(
        "auth.login_hours",
        ("", None),
        "RAMPART_AUTH_LOGIN_HOURS",
        env_lookup,
        section.login_hours,
        file_name,
    )
    .map(|Sourced { value, source }| {
        Schedule::parse(&value)
            .map_err(|err| ConfigError(format!("auth.login_hours (from {source}): {err}")))
    })
    .transpose()?;

    let defaults = LockoutPolicy::default();
    let threshold = match pick(
        "auth.lockout_threshold",
        ("", None),
        "RAMPART_AUTH_LOCKOUT_THRESHOLD",
        env_lookup,
        section.lockout_threshold.map(|n| n.to_string()),
        file_name,
    ) {
        None => defaults.threshold,
        Some(Sourced { value, source }) => value
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| {
                ConfigError(format!(
                    "auth.lockout_threshold (from {source}): {value:?} is not a number of failed \
                     logins from 1 to 1000"
                ))
            })?,
    };
    let duration = |key: &str, env: &str, file: Option<String>, default| match pick(
        key,
        ("", None),
        env,
        env_lookup,
        file,
        file_name,
    ) {
        None => Ok(default),
        Some(Sourced { value, source }) => parse_duration("duration", &value)
            .map_err(|err| ConfigError(format!("{key} (from {source}): {err}"))),
    };
    let window = duration(
        "auth.lockout_window",
        "RAMPART_AUTH_LOCKOUT_WINDOW",
        section.lockout_window,
        defaults.window,
    )?;
    let lock_for = duration(
        "auth.lockout_duration",
        "RAMPART_AUTH_LOCKOUT_DURATION",
        section.lockout_duration,
        defaults.lock_for,
    )?;
    let require_mfa = match pick(
        "auth.require_mfa",
        ("", None),
        "RAMPART_AUTH_REQUIRE_MFA",
        env_lookup,
        section.require_mfa.map(|b| b.to_string()),
        file_name,
    ) {
        None => false,
        Some(Sourced { value, source }) => value.parse::<bool>().map_err(|_| {
            ConfigError(format!(
                "auth.require_mfa (from {source}): {value:?} is not true or false"
            ))
        })?,
    };
    Ok(AuthSettings {
        require_mfa,
        global: LoginRules {
            allow_from,
            deny_from,
            hours,
        },
        lockout: LockoutPolicy {
            threshold,
            window,
            lock_for,
        },
        trusted_proxies,
        failure_burst: None,
    })
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| ConfigError(format!("cannot read config file {}: {err}", path.display())))?;
    toml::from_str(&text).map_err(|err| {
        ConfigError(format!(
            "config file {}: {}",
            path.display(),
            err.to_string().trim_end()
        ))
    })
}

fn listen_address(
    key: &str,
    value: Option<Sourced>,
    default: &str,
) -> Result<SocketAddr, ConfigError> {
    let Some(Sourced { value, source }) = value else {
        return default
            .parse()
            .map_err(|_| ConfigError(format!("{key}: bad built-in default {default}")));
    };
    value.parse().map_err(|_| {
        ConfigError(format!(
            "{key} (from {source}): {value:?} is not an IP address and port, such as 127.0.0.1:2222 or [::1]:2222"
        ))
    })
}

fn check_key_file(path: &Path, source: &str) -> Result<(), ConfigError> {
    let meta = std::fs::metadata(path).map_err(|err| {
        ConfigError(format!(
            "vault.master_key_file (from {source}): cannot read {}: {err}",
            path.display()
        ))
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if !meta.is_file() || mode & 0o077 != 0 {
        return Err(ConfigError(format!(
            "vault.master_key_file (from {source}): {} must be a regular file that only its owner \
             can read (mode is {mode:04o}; run chmod 600)",
            path.display()
        )));
    }
    Ok(())
}

// --- Operations (issue 21): the metrics listener and the access log. ---

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricsSection {
    listen: Option<String>,
}

/// Where access records (one per SSH connection and HTTP request) go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLog {
    /// `logs/access.log` in the data directory, JSON lines (the default).
    File,
    /// With the other log lines (standard error and `logs/rampart.log`).
    Log,
    Off,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpsConfig {
    /// A separate plain-HTTP listener serving only `/metrics`, without authentication.
    pub metrics_listen: Option<SocketAddr>,
    pub access_log: AccessLog,
}

fn ops_config(
    metrics: &MetricsSection,
    access: Option<String>,
    env_lookup: &dyn Fn(&str) -> Option<String>,
    file_name: &str,
) -> Result<OpsConfig, ConfigError> {
    let metrics_listen = match pick(
        "metrics.listen",
        ("", None),
        "RAMPART_METRICS_LISTEN",
        env_lookup,
        metrics.listen.clone(),
        file_name,
    ) {
        None => None,
        Some(Sourced { value, .. }) if value == "off" => None,
        value => Some(listen_address("metrics.listen", value, "127.0.0.1:0")?),
    };
    let access_log = match pick(
        "log.access",
        ("", None),
        "RAMPART_LOG_ACCESS",
        env_lookup,
        access,
        file_name,
    ) {
        None => AccessLog::File,
        Some(Sourced { value, source }) => match value.as_str() {
            "file" => AccessLog::File,
            "log" => AccessLog::Log,
            "off" => AccessLog::Off,
            _ => {
                return Err(ConfigError(format!(
                    "log.access (from {source}): {value:?} is not one of file (logs/access.log), \
                     log (with the other log lines) or off"
                )));
            }
        },
    };
    Ok(OpsConfig {
        metrics_listen,
        access_log,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(overrides: Overrides, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load_with(overrides, &|name| env.get(name).cloned())
    }

    #[test]
    fn store_url_selects_postgres_and_its_password_never_shows() {
        assert!(load(Overrides::default(), &[]).unwrap().store_url.is_none());
        let config = load(
            Overrides::default(),
            &[(
                "RAMPART_STORE_URL",
                "postgres://rampart:pw-canary-1@db:5432/rampart",
            )],
        )
        .unwrap();
        let url = config.store_url.as_ref().unwrap();
        assert_eq!(url.redacted(), "postgres://rampart:***@db:5432/rampart");
        assert!(!format!("{config:?}").contains("pw-canary-1"));
        let (_dir, overrides) =
            file("[store]\nurl = \"postgresql://db/rampart?user=r&password=pw-canary-2\"\n");
        let config = load(overrides, &[]).unwrap();
        assert_eq!(
            config.store_url.unwrap().to_string(),
            "postgresql://db/rampart?user=r&password=***"
        );
        let err = load(
            Overrides::default(),
            &[(
                "RAMPART_STORE_URL",
                "mysql://rampart:pw-canary-3@db/rampart",
            )],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("store.url"), "{err}");
        assert!(err.contains("environment RAMPART_STORE_URL"), "{err}");
        assert!(!err.contains("pw-canary-3"), "{err}");
    }

    fn file(text: &str) -> (tempfile::TempDir, Overrides) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rampart.toml");
        std::fs::write(&path, text).unwrap();
        let overrides = Overrides {
            config_file: Some(path),
            ..Overrides::default()
        };
        (dir, overrides)
    }

    #[test]
    fn the_vnc_listener_is_off_by_default_and_set_by_file_or_environment() {
        let config = load(Overrides::default(), &[]).unwrap();
        assert!(config.vnc.listen.is_none());
        let (_dir, overrides) =
            file("[vnc]\nlisten = \"127.0.0.1:5901\"\nlogin_grace_time = \"10s\"\n");
        let config = load(overrides.clone(), &[]).unwrap();
        assert_eq!(config.vnc.listen.map(|a| a.port()), Some(5901));
        assert_eq!(
            config.vnc.settings.login_grace_time,
            std::time::Duration::from_secs(10)
        );
        let config = load(overrides, &[("RAMPART_VNC_LISTEN", "127.0.0.1:5902")]).unwrap();
        assert_eq!(config.vnc.listen.map(|a| a.port()), Some(5902));
        let err = load(Overrides::default(), &[("RAMPART_VNC_LISTEN", "desk:5900")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("vnc.listen") && err.contains("environment RAMPART_VNC_LISTEN"),
            "{err}"
        );
    }

    #[test]
    fn the_rdp_listener_is_off_by_default_and_set_by_file_or_environment() {
        let config = load(Overrides::default(), &[]).unwrap();
        assert!(config.rdp.listen.is_none());
        let (_dir, overrides) =
            file("[rdp]\nlisten = \"127.0.0.1:3390\"\nlogin_grace_time = \"12s\"\n");
        let config = load(overrides.clone(), &[]).unwrap();
        assert_eq!(config.rdp.listen.map(|a| a.port()), Some(3390));
        assert!(config.vnc.listen.is_none(), "[rdp] is not [vnc]");
        assert_eq!(
            config.rdp.settings.login_grace_time,
            std::time::Duration::from_secs(12)
        );
        let config = load(overrides, &[("RAMPART_RDP_LISTEN", "127.0.0.1:3391")]).unwrap();
        assert_eq!(config.rdp.listen.map(|a| a.port()), Some(3391));
        let err = load(Overrides::default(), &[("RAMPART_RDP_LISTEN", "desk:3389")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("rdp.listen") && err.contains("environment RAMPART_RDP_LISTEN"),
            "{err}"
        );
    }

    #[test]
    fn zero_configuration_is_loopback() {
        let config = load(Overrides::default(), &[]).unwrap();
        assert_eq!(config.data_dir, PathBuf::from("./rampart-data"));
        assert_eq!(config.ssh_listen.to_string(), "127.0.0.1:2222");
        assert_eq!(config.http_listen.to_string(), "127.0.0.1:8080");
        assert!(config.ssh_listen.ip().is_loopback() && config.http_listen.ip().is_loopback());
        assert!(matches!(config.master_key, MasterKeySource::DataDir));
    }

    #[test]
    fn flag_beats_environment_beats_file() {
        let (_dir, mut overrides) = file(
            "data_dir = \"/from/file\"\n[ssh]\nlisten = \"127.0.0.1:1\"\n[http]\nlisten = \"127.0.0.1:2\"\n",
        );
        let env = [
            ("RAMPART_DATA_DIR", "/from/env"),
            ("RAMPART_SSH_LISTEN", "127.0.0.1:3"),
        ];
        let config = load(overrides.clone(), &env).unwrap();
        assert_eq!(config.data_dir, PathBuf::from("/from/env"));
        assert_eq!(config.ssh_listen.port(), 3);
        assert_eq!(config.http_listen.port(), 2);
        overrides.data_dir = Some("/from/flag".into());
        overrides.ssh_listen = Some("127.0.0.1:4".into());
        let config = load(overrides, &env).unwrap();
        assert_eq!(config.data_dir, PathBuf::from("/from/flag"));
        assert_eq!(config.ssh_listen.port(), 4);
    }

    #[test]
    fn errors_name_the_key_and_the_source() {
        type Case = (Overrides, Vec<(&'static str, &'static str)>, &'static str);
        let cases: Vec<Case> = vec![
            (
                Overrides {
                    ssh_listen: Some("localhost:22".into()),
                    ..Overrides::default()
                },
                vec![],
                "ssh.listen (from flag --ssh-listen)",
            ),
            (
                Overrides::default(),
                vec![("RAMPART_HTTP_LISTEN", "8080")],
                "http.listen (from environment RAMPART_HTTP_LISTEN)",
            ),
            (
                Overrides::default(),
                vec![("RAMPART_LOG", "loud")],
                "log.level (from environment RAMPART_LOG)",
            ),
            (
                Overrides {
                    master_key_file: Some("/nonexistent/key".into()),
                    ..Overrides::default()
                },
                vec![],
                "vault.master_key_file (from flag --master-key-file)",
            ),
            (
                Overrides {
                    ssh_listen: Some("127.0.0.1:9000".into()),
                    http_listen: Some("127.0.0.1:9000".into()),
                    ..Overrides::default()
                },
                vec![],
                "both 127.0.0.1:9000",
            ),
        ];
        for (overrides, env, expected) in cases {
            let err = load(overrides, &env).unwrap_err().to_string();
            assert!(
                err.contains(expected),
                "{err:?} should contain {expected:?}"
            );
        }
    }

    #[test]
    fn file_errors_name_the_key() {
        let (_dir, overrides) = file("[ssh]\nlisten = \"nowhere\"\n");
        let err = load(overrides, &[]).unwrap_err().to_string();
        assert!(err.contains("rampart.toml key ssh.listen"), "{err}");
        let (_dir, overrides) = file("[ssh]\nlisen = \"127.0.0.1:22\"\n");
        let err = load(overrides, &[]).unwrap_err().to_string();
        assert!(err.contains("lisen"), "{err}");
        let (_dir, overrides) = file("data_dir = [\n");
        assert!(load(overrides, &[]).is_err());
    }

    #[test]
    fn target_host_keys_default_to_pin_on_first_use_and_are_validated() {
        let config = load(Overrides::default(), &[]).unwrap();
        assert_eq!(config.target_host_keys, TargetHostKeys::PinOnFirstUse);
        let (_dir, overrides) = file("[ssh]\ntarget_host_keys = \"require-pinned\"\n");
        let config = load(overrides, &[]).unwrap();
        assert_eq!(config.target_host_keys, TargetHostKeys::RequirePinned);
        // The environment wins over the file.
        let (_dir, overrides) = file("[ssh]\ntarget_host_keys = \"require-pinned\"\n");
        let config = load(
            overrides,
            &[("RAMPART_SSH_TARGET_HOST_KEYS", "pin-on-first-use")],
        )
        .unwrap();
        assert_eq!(config.target_host_keys, TargetHostKeys::PinOnFirstUse);
        let (_dir, overrides) = file("[ssh]\ntarget_host_keys = \"trust-all\"\n");
        let err = load(overrides, &[]).unwrap_err().to_string();
        assert!(
            err.contains("ssh.target_host_keys (from ")
                && err.contains("rampart.toml key ssh.target_host_keys")
                && err.contains("\"trust-all\" is not one of pin-on-first-use, require-pinned"),
            "{err}"
        );
    }

    #[test]
    fn session_limits() {
        let config = load(Overrides::default(), &[]).unwrap();
        assert_eq!(config.sessions.idle_timeout, Some(DEFAULT_IDLE_TIMEOUT));
        assert_eq!(config.sessions.max_duration, None);
        let (_dir, overrides) = file("[session]\nidle_timeout = \"off\"\nmax_duration = \"8h\"\n");
        let config = load(overrides, &[]).unwrap();
        assert_eq!(config.sessions.idle_timeout, None);
        assert_eq!(
            config.sessions.max_duration,
            Some(Duration::from_secs(8 * 3600))
        );
        let err = load(
            Overrides::default(),
            &[("RAMPART_SESSION_IDLE_TIMEOUT", "soon")],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("session.idle_timeout (from environment RAMPART_SESSION_IDLE_TIMEOUT)"),
            "{err}"
        );
    }

    #[test]
    fn ssh_pre_authentication_limits() {
        let config = load(Overrides::default(), &[]).unwrap();
        assert_eq!(config.ssh_pre_auth, PreAuthLimits::default());
        assert_eq!(
            config.ssh_pre_auth.login_grace_time,
            Duration::from_secs(30)
        );
        let (_dir, overrides) = file(
            "[ssh]\nlogin_grace_time = \"3s\"\nmax_startups = \"5:50:20\"\nper_source_max_startups = 4\n",
        );
        let config = load(overrides.clone(), &[]).unwrap();
        assert_eq!(config.ssh_pre_auth.login_grace_time, Duration::from_secs(3));
        assert_eq!(
            config.ssh_pre_auth.max_startups,
            MaxStartups {
                start: 5,
                rate: 50,
                full: 20
            }
        );
        assert_eq!(config.ssh_pre_auth.per_source_max_startups, 4);
        let config = load(overrides, &[("RAMPART_SSH_MAX_STARTUPS", "64")]).unwrap();
        assert_eq!(config.ssh_pre_auth.max_startups.full, 64);
        for (env, value) in [
            ("RAMPART_SSH_LOGIN_GRACE_TIME", "0s"),
            ("RAMPART_SSH_MAX_STARTUPS", "10:30"),
            ("RAMPART_SSH_MAX_STARTUPS", "50:30:10"),
            ("RAMPART_SSH_PER_SOURCE_MAX_STARTUPS", "0"),
        ] {
            let err = load(Overrides::default(), &[(env, value)])
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("(from environment {env})")), "{err}");
        }
    }

    #[test]
    fn audit_settings() {
        let (_dir, overrides) = file(
            "[audit]\nretention_days = 30\nsyslog = \"udp://127.0.0.1:5514\"\nwebhook = \"http://127.0.0.1:9000/hook\"\n",
        );
        let config = load(overrides, &[]).unwrap();
        assert_eq!(config.audit.retention_days, 30);
        assert_eq!(config.audit.syslog.unwrap().transport, SyslogTransport::Udp);
        let webhook = config.audit.webhook.unwrap();
        assert_eq!(
            (webhook.path.as_str(), webhook.address.port()),
            ("/hook", 9000)
        );
        assert_eq!(
            load(Overrides::default(), &[])
                .unwrap()
                .audit
                .retention_days,
            DEFAULT_RETENTION_DAYS
        );
        for (env, value, expected) in [
            (
                "RAMPART_RETENTION_DAYS",
                "0",
                "audit.retention_days (from environment RAMPART_RETENTION_DAYS)",
            ),
            ("RAMPART_SYSLOG", "syslog.example:514", "audit.syslog"),
            (
                "RAMPART_WEBHOOK_URL",
                "https://siem.example/x",
                "https is not supported yet",
            ),
            (
                "RAMPART_WEBHOOK_URL",
                "http://siem.example/x",
                "must name an IP address",
            ),
        ] {
            let err = load(Overrides::default(), &[(env, value)])
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{err}");
        }
    }

    #[test]
    fn recording_store_s3_takes_credentials_from_a_file_or_the_environment_only() {
        assert!(matches!(
            load(Overrides::default(), &[]).unwrap().recording_store,
            RecordingStore::Local
        ));
        let (dir, overrides) = file("");
        let credentials = dir.path().join("s3.toml");
        std::fs::write(
            &credentials,
            "access_key_id = \"AKID\"\nsecret_access_key = \"canary-s3-secret\"\n",
        )
        .unwrap();
        std::fs::write(
            overrides.config_file.as_ref().unwrap(),
            format!(
                "[audit]\nretention_days = 30\n[recording]\nstore = \"s3\"\n[recording.s3]\n\
                 endpoint = \"http://127.0.0.1:9000\"\nbucket = \"rec\"\nobject_lock = true\n\
                 credentials_file = \"{}\"\n",
                credentials.display()
            ),
        )
        .unwrap();
        let config = load(overrides, &[]).unwrap();
        let s3 = config.recording_store.s3().unwrap();
        assert_eq!(s3.access_key, "AKID");
        assert_eq!(s3.secret_key.as_str(), "canary-s3-secret");
        assert!(s3.object_lock && s3.path_style);
        assert_eq!(s3.retention_days, 30);
        assert_eq!(s3.prefix, "recordings/");
        assert!(!format!("{config:?}").contains("canary-s3-secret"));
        // From the environment; and the errors name the key.
        let env = [
            ("RAMPART_RECORDING_STORE", "s3"),
            ("RAMPART_S3_ENDPOINT", "http://127.0.0.1:9000"),
            ("RAMPART_S3_BUCKET", "rec"),
            ("RAMPART_S3_ACCESS_KEY_ID", "AKID"),
            ("RAMPART_S3_SECRET_ACCESS_KEY", "canary-s3-secret"),
        ];
        let config = load(Overrides::default(), &env).unwrap();
        assert_eq!(config.recording_store.s3().unwrap().bucket, "rec");
        for (drop, expected) in [
            ("RAMPART_S3_BUCKET", "recording.s3.bucket is required"),
            ("RAMPART_S3_SECRET_ACCESS_KEY", "no credentials"),
        ] {
            let partial: Vec<_> = env.iter().copied().filter(|(k, _)| *k != drop).collect();
            let err = load(Overrides::default(), &partial)
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{err}");
        }
        let err = load(Overrides::default(), &[("RAMPART_RECORDING_STORE", "tape")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("not local or s3"), "{err}");
    }

    #[test]
    fn recording_settings() {
        let config = load(Overrides::default(), &[]).unwrap();
        assert_eq!(
            config.recording,
            RecordingConfig {
                fsync_interval: DEFAULT_FSYNC_INTERVAL,
                exec_cap: None,
            }
        );
        let (_dir, overrides) =
            file("[recording]\nfsync_interval = \"250ms\"\nexec_cap = \"100MiB\"\n");
        let config = load(overrides, &[]).unwrap();
        assert_eq!(config.recording.fsync_interval, Duration::from_millis(250));
        assert_eq!(config.recording.exec_cap, Some(100 << 20));
        let (_dir, overrides) = file("[recording]\nexec_cap = 65536\n");
        let config = load(overrides, &[]).unwrap();
        assert_eq!(config.recording.exec_cap, Some(65536));
        let config = load(
            Overrides::default(),
            &[
                ("RAMPART_RECORDING_EXEC_CAP", "off"),
                ("RAMPART_RECORDING_FSYNC_INTERVAL", "2s"),
            ],
        )
        .unwrap();
        assert_eq!(config.recording.exec_cap, None);
        assert_eq!(config.recording.fsync_interval, Duration::from_secs(2));
        for (env, value, expected) in [
            (
                "RAMPART_RECORDING_FSYNC_INTERVAL",
                "5ms",
                "recording.fsync_interval (from environment RAMPART_RECORDING_FSYNC_INTERVAL)",
            ),
            ("RAMPART_RECORDING_FSYNC_INTERVAL", "2m", "from 10ms to 60s"),
            ("RAMPART_RECORDING_EXEC_CAP", "0", "recording.exec_cap"),
            ("RAMPART_RECORDING_EXEC_CAP", "lots", "is not a size"),
        ] {
            let err = load(Overrides::default(), &[(env, value)])
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{err}");
        }
    }

    #[test]
    fn http_tls_settings() {
        let config = load(Overrides::default(), &[]).unwrap();
        assert_eq!(config.http.tls, HttpTls::SelfSigned);
        let config = load(Overrides::default(), &[("RAMPART_HTTP_TLS", "false")]).unwrap();
        assert_eq!(config.http.tls, HttpTls::Off);
        let (_dir, overrides) = file("[http]\nlisten = \"0.0.0.0:8443\"\ntls = false\n");
        let err = load(overrides, &[]).unwrap_err().to_string();
        assert!(
            err.contains("http.tls (from") && err.contains("loopback"),
            "{err}"
        );
        let (dir, overrides) = file("[http]\ntls_cert = \"/nonexistent/cert.pem\"\n");
        let err = load(overrides, &[]).unwrap_err().to_string();
        assert!(err.contains("http.tls_cert (from"), "{err}");
        let cert = dir.path().join("cert.pem");
        std::fs::write(&cert, "x").unwrap();
        let err = load(
            Overrides::default(),
            &[("RAMPART_HTTP_TLS_CERT", cert.to_str().unwrap())],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("without http.tls_key"), "{err}");
        let config = load(
            Overrides::default(),
            &[
                ("RAMPART_HTTP_TLS_CERT", cert.to_str().unwrap()),
                ("RAMPART_HTTP_TLS_KEY", cert.to_str().unwrap()),
                ("RAMPART_HTTP_SESSION_IDLE_TIMEOUT", "5m"),
            ],
        )
        .unwrap();
        assert!(matches!(config.http.tls, HttpTls::Files { .. }));
        assert_eq!(config.http.session_idle, Duration::from_secs(300));
        let err = load(Overrides::default(), &[("RAMPART_HTTP_TLS", "maybe")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("http.tls (from environment RAMPART_HTTP_TLS)"),
            "{err}"
        );
    }

    #[test]
    fn auth_settings() {
        let defaults = load(Overrides::default(), &[]).unwrap().auth;
        assert_eq!(defaults, AuthSettings::default());
        assert_eq!(defaults.lockout.threshold, 5);

        let (_dir, overrides) = file(
            "[auth]\nallow_from = [\"10.0.0.0/8\", \"2001:db8::/32\"]\ndeny_from = [\"10.66.0.0/16\"]\n\
             login_hours = \"Mon-Fri 08:00-18:00 Europe/Berlin\"\ntrusted_proxies = [\"10.0.0.1\"]\n\
             lockout_threshold = 3\nlockout_window = \"5m\"\nlockout_duration = \"1h\"\n",
        );
        let auth = load(overrides.clone(), &[]).unwrap().auth;
        assert_eq!(
            rampart_core::login_rules::format_cidr_list(&auth.global.allow_from),
            "10.0.0.0/8,2001:db8::/32"
        );
        assert_eq!(auth.global.deny_from.len(), 1);
        assert_eq!(
            auth.global.hours.unwrap().to_string(),
            "Mon-Fri 08:00-18:00 Europe/Berlin"
        );
        assert_eq!(auth.trusted_proxies[0].to_string(), "10.0.0.1/32");
        assert_eq!(
            auth.lockout,
            LockoutPolicy {
                threshold: 3,
                window: std::time::Duration::from_secs(300),
                lock_for: std::time::Duration::from_secs(3600),
            }
        );
        // The environment beats the file; lists there are comma-separated.
        let env = [
            ("RAMPART_AUTH_ALLOW_FROM", "192.0.2.0/24, 198.51.100.7"),
            ("RAMPART_AUTH_LOCKOUT_THRESHOLD", "10"),
        ];
        let auth = load(overrides, &env).unwrap().auth;
        assert_eq!(auth.global.allow_from.len(), 2);
        assert_eq!(auth.lockout.threshold, 10);
        assert_eq!(auth.lockout.window.as_secs(), 300);
    }

    #[test]
    fn auth_errors_name_the_key_and_the_source() {
        for (env, value, expected) in [
            (
                "RAMPART_AUTH_ALLOW_FROM",
                "10.0.0.300",
                "auth.allow_from (from environment RAMPART_AUTH_ALLOW_FROM): invalid address \"10.0.0.300\"",
            ),
            (
                "RAMPART_AUTH_DENY_FROM",
                "10.0.0.1/8",
                "auth.deny_from (from environment RAMPART_AUTH_DENY_FROM): invalid network \"10.0.0.1/8\": host bits are set",
            ),
            (
                "RAMPART_AUTH_LOGIN_HOURS",
                "weekdays",
                "auth.login_hours (from environment RAMPART_AUTH_LOGIN_HOURS): invalid schedule",
            ),
            (
                "RAMPART_AUTH_TRUSTED_PROXIES",
                "0.0.0.0/0",
                "auth.trusted_proxies (from environment RAMPART_AUTH_TRUSTED_PROXIES): 0.0.0.0/0 would let every client",
            ),
            (
                "RAMPART_AUTH_LOCKOUT_THRESHOLD",
                "0",
                "auth.lockout_threshold (from environment RAMPART_AUTH_LOCKOUT_THRESHOLD)",
            ),
            (
                "RAMPART_AUTH_LOCKOUT_WINDOW",
                "10",
                "auth.lockout_window (from environment RAMPART_AUTH_LOCKOUT_WINDOW): invalid duration",
            ),
            (
                "RAMPART_AUTH_LOCKOUT_DURATION",
                "forever",
                "auth.lockout_duration (from environment RAMPART_AUTH_LOCKOUT_DURATION)",
            ),
        ] {
            let err = load(Overrides::default(), &[(env, value)])
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(expected),
                "{err:?} should contain {expected:?}"
            );
        }
        let (_dir, overrides) = file("[auth]\nallow_from = [\"10.0.0.0/8\", \"nowhere\"]\n");
        let err = load(overrides, &[]).unwrap_err().to_string();
        assert!(
            err.contains("rampart.toml key auth.allow_from): invalid address \"nowhere\""),
            "{err}"
        );
        let (_dir, overrides) = file("[auth]\nallow_from = \"10.0.0.0/8\"\n");
        let err = load(overrides, &[]).unwrap_err().to_string();
        assert!(err.contains("allow_from"), "{err}");
        let (_dir, overrides) = file("[auth]\nlockout = 5\n");
        let err = load(overrides, &[]).unwrap_err().to_string();
        assert!(err.contains("unknown field `lockout`"), "{err}");
    }

    #[test]
    fn master_key_file_must_be_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        std::fs::write(&path, "x").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let overrides = Overrides {
            master_key_file: Some(path.clone()),
            ..Overrides::default()
        };
        let err = load(overrides.clone(), &[]).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            load(overrides.clone(), &[]).unwrap().master_key,
            MasterKeySource::File(_)
        ));
        let err = load(overrides, &[("RAMPART_MASTER_KEY", "abc")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("use one"), "{err}");
    }
}
