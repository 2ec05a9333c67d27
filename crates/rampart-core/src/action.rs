//! What a grant allows a user to do on a target.
//!
//! Actions are per protocol: each [`Action`] belongs to one [`Protocol`], and a grant's list may
//! name an action plainly (`shell`) or qualified by its protocol (`ssh:shell`). The SSH actions
//! keep their plain names; the actions of later protocols (`postgres:read`, `redis:write`) are
//! written and printed qualified, so two protocols can use the same word.

use crate::name::InvalidInput;
use crate::target::Protocol;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// One kind of use of an account. New protocols add variants here, so that every front end asks
/// the policy the same question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// An interactive shell with a terminal.
    Shell,
    /// A single remote command (`ssh host 'cmd'`).
    Exec,
    /// Legacy `scp -O` transfers (both directions).
    Scp,
    /// Reading files over SFTP (download, listing).
    SftpRead,
    /// Writing files over SFTP (upload, rename, remove, mkdir).
    SftpWrite,
    /// TCP forwarding other than the ProxyJump hop to the asset's own SSH port.
    PortForward,
    /// A PostgreSQL session (`postgres:connect`, the full grant): every statement the account
    /// may run, logged one by one.
    PostgresConnect,
    /// A read-only PostgreSQL session (`postgres:read`): statements that only read; writes are
    /// refused in the protocol and the session goes on (`rampart_session::statement_control`).
    PostgresRead,
    /// A MySQL/MariaDB session (`mysql:connect`): every statement the account may run, logged
    /// one by one.
    MysqlConnect,
    /// A read-only MySQL/MariaDB session (`mysql:read`).
    MysqlRead,
    /// A Redis session (`redis:connect`): every command the account may run except the node's
    /// denied ones (`redis.deny_commands`), logged one by one.
    RedisConnect,
    /// A read-only Redis session (`redis:read`): read commands only.
    RedisRead,
    /// Reading a Kubernetes API (`kubernetes:read`): get, list and watch requests.
    KubernetesRead,
    /// Changing objects through a Kubernetes API (`kubernetes:write`): create, update, patch,
    /// delete.
    KubernetesWrite,
    /// A command in a Kubernetes container (`kubernetes:exec`): `kubectl exec` and `attach`,
    /// recorded as a terminal.
    KubernetesExec,
    /// A port of a Kubernetes pod (`kubernetes:port_forward`): `kubectl port-forward`, each
    /// forwarded connection recorded with its port and bytes. Apart from exec: reaching a
    /// pod's ports is not running commands in it, as SSH's `port_forward` is not `exec`.
    KubernetesPortForward,
    /// A VNC desktop (`vnc:connect`): the screen, keyboard and mouse in the portal's desktop
    /// view, recorded as screen updates; the clipboard is `vnc:clipboard`.
    VncConnect,
    /// Copy and paste between the browser and a VNC desktop (`vnc:clipboard`), each transfer
    /// audited with its size. Without it the clipboard is refused both ways.
    VncClipboard,
    /// An RDP desktop (`rdp:connect`): the screen, keyboard and mouse in the portal's desktop
    /// view, recorded as screen updates like a VNC desktop. Rampart logs in with the vaulted
    /// password over TLS and NLA (CredSSP). The clipboard is `rdp:clipboard`.
    RdpConnect,
    /// Copy and paste of text between the browser and an RDP desktop (`rdp:clipboard`, the
    /// CLIPRDR channel), each transfer audited with its size, as `vnc:clipboard` for VNC.
    /// Without it the clipboard is refused both ways.
    RdpClipboard,
}

impl Action {
    pub const ALL: [Action; 20] = [
        Action::Shell,
        Action::Exec,
        Action::Scp,
        Action::SftpRead,
        Action::SftpWrite,
        Action::PortForward,
        Action::PostgresConnect,
        Action::MysqlConnect,
        Action::RedisConnect,
        Action::PostgresRead,
        Action::MysqlRead,
        Action::RedisRead,
        Action::KubernetesRead,
        Action::KubernetesWrite,
        Action::KubernetesExec,
        Action::KubernetesPortForward,
        Action::VncConnect,
        Action::VncClipboard,
        Action::RdpConnect,
        Action::RdpClipboard,
    ];

    /// The protocol the action is a use of.
    pub fn protocol(self) -> Protocol {
        match self {
            Action::Shell
            | Action::Exec
            | Action::Scp
            | Action::SftpRead
            | Action::SftpWrite
            | Action::PortForward => Protocol::Ssh,
            Action::PostgresConnect | Action::PostgresRead => Protocol::Postgres,
            Action::MysqlConnect | Action::MysqlRead => Protocol::Mysql,
            Action::RedisConnect | Action::RedisRead => Protocol::Redis,
            Action::KubernetesRead
            | Action::KubernetesWrite
            | Action::KubernetesExec
            | Action::KubernetesPortForward => Protocol::Kubernetes,
            Action::VncConnect | Action::VncClipboard => Protocol::Vnc,
            Action::RdpConnect | Action::RdpClipboard => Protocol::Rdp,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Shell => "shell",
            Action::Exec => "exec",
            Action::Scp => "scp",
            Action::SftpRead => "sftp_read",
            Action::SftpWrite => "sftp_write",
            Action::PortForward => "port_forward",
            Action::PostgresConnect
            | Action::MysqlConnect
            | Action::RedisConnect
            | Action::VncConnect
            | Action::RdpConnect => "connect",
            Action::VncClipboard | Action::RdpClipboard => "clipboard",
            Action::KubernetesRead => "read",
            Action::KubernetesWrite => "write",
            Action::KubernetesExec => "exec",
            Action::KubernetesPortForward => "port_forward",
            Action::PostgresRead | Action::MysqlRead | Action::RedisRead => "read",
        }
    }

    /// A database protocol's two actions: the full one (`connect`) and the read-only one
    /// (`read`). `None` for protocols without database sessions.
    pub fn database_pair(protocol: Protocol) -> Option<(Action, Action)> {
        match protocol {
            Protocol::Postgres => Some((Action::PostgresConnect, Action::PostgresRead)),
            Protocol::Mysql => Some((Action::MysqlConnect, Action::MysqlRead)),
            Protocol::Redis => Some((Action::RedisConnect, Action::RedisRead)),
            _ => None,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A non-empty set of actions, written as a comma-separated list (`shell,exec,sftp`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionSet(BTreeSet<Action>);

impl ActionSet {
    /// What a grant allows when no actions are given: a shell, commands and file transfer, never
    /// port forwarding.
    pub fn default_for_grant() -> Self {
        Self(
            [
                Action::Shell,
                Action::Exec,
                Action::Scp,
                Action::SftpRead,
                Action::SftpWrite,
            ]
            .into_iter()
            .collect(),
        )
    }

    /// Parses `shell,exec,sftp`. Besides the action names, `sftp` means `sftp_read,sftp_write`
    /// and `file_transfer` means `scp,sftp_read,sftp_write`.
    pub fn parse(list: &str) -> Result<Self, InvalidInput> {
        let mut set = BTreeSet::new();
        for written in list.split(',').map(str::trim) {
            // `ssh:shell` is `shell`; `mysql:connect` is the `connect` of that protocol.
            let (protocol, word) = match written.split_once(':') {
                Some((protocol, word)) => {
                    let protocol = Protocol::parse(protocol)?;
                    let known = ["sftp", "file_transfer"].contains(&word)
                        || Action::ALL
                            .iter()
                            .any(|a| a.protocol() == protocol && a.as_str() == word);
                    if !known {
                        return Err(InvalidInput::new(format!(
                            "unknown action {written:?}: {protocol} has no action {word:?}"
                        )));
                    }
                    (Some(protocol), word)
                }
                None => (None, written),
            };
            let actions: &[Action] = match word {
                "sftp" => &[Action::SftpRead, Action::SftpWrite],
                "file_transfer" => &[Action::Scp, Action::SftpRead, Action::SftpWrite],
                // An unqualified word is an SSH action, or `connect`: PostgreSQL's, as grants
                // written before other database fronts say. Every later action (`read` of a
                // database, Kubernetes') is only ever written qualified: a bare `read` would
                // not say which protocol it reads.
                other => match Action::ALL.iter().find(|a| {
                    a.as_str() == other
                        && match protocol {
                            Some(p) => a.protocol() == p,
                            None => a.protocol() == Protocol::Ssh || **a == Action::PostgresConnect,
                        }
                }) {
                    Some(action) => std::slice::from_ref(action),
                    None => {
                        let known: Vec<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
                        return Err(InvalidInput::new(format!(
                            "unknown action {other:?}: expected a comma-separated list of {}, \
                             sftp or file_transfer",
                            known.join(", ")
                        )));
                    }
                },
            };
            set.extend(actions.iter().copied());
        }
        Ok(Self(set))
    }

    /// The actions of the set that belong to `protocol`.
    pub fn for_protocol(&self, protocol: Protocol) -> impl Iterator<Item = Action> + '_ {
        self.iter().filter(move |a| a.protocol() == protocol)
    }

    pub fn contains(&self, action: Action) -> bool {
        self.0.contains(&action)
    }

    pub fn iter(&self) -> impl Iterator<Item = Action> + '_ {
        self.0.iter().copied()
    }
}

impl fmt::Display for ActionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Actions of protocols other than SSH are written qualified (`mysql:connect`), so the
        // text parses back to the same set.
        let words: Vec<String> = self
            .iter()
            .map(|a| match a.protocol() {
                Protocol::Ssh => a.as_str().to_owned(),
                protocol => format!("{protocol}:{}", a.as_str()),
            })
            .collect();
        f.write_str(&words.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_actions_are_written_qualified() {
        let set = ActionSet::parse("kubernetes:read,kubernetes:exec").unwrap();
        assert!(set.contains(Action::KubernetesRead));
        assert!(set.contains(Action::KubernetesExec));
        assert!(!set.contains(Action::Exec));
        assert_eq!(set.to_string(), "kubernetes:read,kubernetes:exec");
        assert_eq!(ActionSet::parse("exec").unwrap().to_string(), "exec");
        assert!(ActionSet::parse("read").is_err());
        assert!(ActionSet::parse("kubernetes:shell").is_err());
    }

    #[test]
    fn parse_lists_and_aliases() {
        let set = ActionSet::parse("shell, sftp").unwrap();
        assert_eq!(set.to_string(), "shell,sftp_read,sftp_write");
        assert_eq!(
            ActionSet::parse("file_transfer,exec").unwrap().to_string(),
            "exec,scp,sftp_read,sftp_write"
        );
        assert!(
            ActionSet::parse("port_forward")
                .unwrap()
                .contains(Action::PortForward)
        );
        assert_eq!(
            ActionSet::parse("ssh:shell,ssh:sftp").unwrap(),
            ActionSet::parse("shell,sftp").unwrap()
        );
        for bad in [
            "",
            "shell,",
            "root",
            "Shell",
            "postgres:shell",
            "ssh:root",
            "ftp:shell",
        ] {
            assert!(ActionSet::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn database_actions_of_two_protocols_stay_apart_and_round_trip() {
        let set = ActionSet::parse("mysql:connect").unwrap();
        assert!(set.contains(Action::MysqlConnect) && !set.contains(Action::PostgresConnect));
        assert_eq!(set.to_string(), "mysql:connect");
        let both = ActionSet::parse("postgres:connect,mysql:connect,shell").unwrap();
        assert_eq!(ActionSet::parse(&both.to_string()).unwrap(), both);
        let read = ActionSet::parse("postgres:read,redis:read").unwrap();
        assert!(read.contains(Action::PostgresRead) && read.contains(Action::RedisRead));
        assert!(!read.contains(Action::PostgresConnect) && !read.contains(Action::MysqlRead));
        assert_eq!(read.to_string(), "postgres:read,redis:read");
        assert_eq!(ActionSet::parse(&read.to_string()).unwrap(), read);
        // Grants stored before the MySQL front say `connect` for PostgreSQL.
        assert!(
            ActionSet::parse("connect")
                .unwrap()
                .contains(Action::PostgresConnect)
        );
    }

    #[test]
    fn each_desktop_protocol_has_its_own_clipboard_action() {
        let set = ActionSet::parse("rdp:connect,rdp:clipboard").unwrap();
        assert!(set.contains(Action::RdpClipboard) && !set.contains(Action::VncClipboard));
        assert_eq!(set.to_string(), "rdp:connect,rdp:clipboard");
        assert_eq!(
            ActionSet::parse("vnc:clipboard").unwrap().to_string(),
            "vnc:clipboard"
        );
        assert!(ActionSet::parse("clipboard").is_err());
    }

    #[test]
    fn default_never_forwards_ports() {
        let set = ActionSet::default_for_grant();
        assert!(!set.contains(Action::PortForward));
        assert!(set.contains(Action::Shell) && set.contains(Action::Exec));
        assert!(set.contains(Action::Scp) && set.contains(Action::SftpWrite));
    }
}
