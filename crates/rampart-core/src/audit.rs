//! Audit events: typed facts about what happened, one variant per fact.
//!
//! Each event is stored as one row of the hash-chained audit log (see `rampart-store`), in the
//! same transaction as the change it describes, so a change without its event cannot exist.
//! Names are noun + past-tense verb.

use serde::{Deserialize, Serialize};

fn recorded_by_default() -> bool {
    true
}

/// Who caused an event: a Rampart user, or an operator using the CLI on the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Actor {
    /// The node itself (first start, sealing, retention).
    System,
    /// Someone running `rampart ...` on the node with access to its data directory.
    LocalCli {
        os_user: String,
    },
    User {
        name: String,
    },
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Actor::System => f.write_str("system"),
            Actor::LocalCli { os_user } => write!(f, "cli:{os_user}"),
            Actor::User { name } => write!(f, "user:{name}"),
        }
    }
}

/// A sealed recording as the chain holds it: its id (the session's) and the SHA-256 of its
/// sealed manifest, which covers every chunk's hash, the running chain and the seal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingAnchor {
    pub id: String,
    pub manifest_sha256: String,
    /// False when the session was cut short (a crash) and sealed at the next start.
    pub complete: bool,
}

/// What the hash chain says about a session's recording: what replay, export and every
/// verification check a recording against (the `sessions` table is never trusted for this).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainRecording {
    /// No `session_ended` event yet: live, or cut by a crash and not sealed yet.
    Unfinished,
    /// The session's `session_ended` event (its sequence number) and the recording it anchors,
    /// if any.
    Ended {
        event: i64,
        recording: Option<RecordingAnchor>,
    },
}

/// One field of a record, before and after a change (`None`: unset).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    pub field: String,
    pub from: Option<String>,
    pub to: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum AuditEvent {
    NodeInitialized {
        data_dir: String,
    },
    UserAdded {
        user: String,
        role: String,
        keys: Vec<String>,
    },
    UserRemoved {
        user: String,
        grants_removed: u64,
    },
    UserDisabled {
        user: String,
    },
    /// A user's role changed; it applies from their next request or login.
    UserRoleChanged {
        user: String,
        from: String,
        to: String,
    },
    UserEnabled {
        user: String,
    },
    UserKeyAdded {
        user: String,
        fingerprint: String,
    },
    UserKeyRemoved {
        user: String,
        fingerprint: String,
    },
    UserPasswordChanged {
        user: String,
    },
    /// A TOTP second factor was enrolled (or replaced) for the user; never the secret.
    MfaEnrolled {
        user: String,
    },
    /// The user's second factors were removed (TOTP, and `passkeys` passkeys): they must enroll
    /// again.
    MfaReset {
        user: String,
        #[serde(default, skip_serializing_if = "is_zero")]
        passkeys: u64,
    },
    /// A passkey (WebAuthn credential) was registered for the user, under `name`; never its key.
    PasskeyAdded {
        user: String,
        name: String,
    },
    /// One of the user's passkeys was removed.
    PasskeyRemoved {
        user: String,
        name: String,
    },
    /// A user's source address and login-hours rules were replaced (`None`: no such rule).
    UserLoginRulesChanged {
        user: String,
        allow_from: Option<String>,
        deny_from: Option<String>,
        login_hours: Option<String>,
    },
    /// An operator lifted a user's lockout and cleared their failure count.
    UserUnlocked {
        user: String,
    },
    GroupAdded {
        group: String,
    },
    GroupMemberAdded {
        group: String,
        user: String,
    },
    GroupMemberRemoved {
        group: String,
        user: String,
    },
    /// A group and the grants that named it (its members stay users).
    GroupRemoved {
        group: String,
        grants_removed: u64,
    },
    AssetAdded {
        asset: String,
        host: String,
        /// The ssh endpoint's port, if the asset has one (every endpoint is in `endpoints`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        port: Option<u16>,
        labels: Vec<String>,
        /// Every endpoint, `PROTOCOL:PORT`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        endpoints: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        domain: Option<String>,
    },
    /// An asset's host or network domain changed (the values after the change).
    AssetChanged {
        asset: String,
        host: String,
        domain: Option<String>,
        /// The labels after the change (`env=prod,team=web`), when they changed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        labels: Option<String>,
    },
    AssetEndpointAdded {
        asset: String,
        protocol: String,
        port: u16,
    },
    /// An endpoint's port, pinned certificate fingerprint or RDP security changed (the values
    /// after).
    AssetEndpointChanged {
        asset: String,
        protocol: String,
        port: u16,
        tls_fingerprint: Option<String>,
        /// An RDP endpoint's login security once set (`nla` or `tls`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rdp_security: Option<String>,
    },
    AssetEndpointRemoved {
        asset: String,
        protocol: String,
        port: u16,
    },
    /// An asset's Telnet login settings changed (the values after the change; `None`: the
    /// built-in default).
    TelnetLoginChanged {
        asset: String,
        login_prompt: Option<String>,
        password_prompt: Option<String>,
        success: Option<String>,
        failure: Option<String>,
        timeout_seconds: Option<u32>,
    },
    AssetRemoved {
        asset: String,
        accounts_removed: u64,
        grants_removed: u64,
    },
    AccountAdded {
        account: String,
        secret_kind: String,
    },
    AccountRemoved {
        account: String,
    },
    /// An account's vaulted secret was replaced (never the secret).
    AccountSecretReplaced {
        account: String,
        secret_kind: String,
    },
    GrantAdded {
        grant: String,
        subject: String,
        target: String,
        accounts: Vec<String>,
        actions: String,
        /// Kubernetes namespaces the grant is limited to (none: every namespace).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        namespaces: Vec<String>,
        valid_from: Option<String>,
        valid_until: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        schedule: Option<String>,
        #[serde(default)]
        require_mfa: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        idle_timeout: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_duration: Option<String>,
        /// False when the grant's sessions are not recorded.
        #[serde(default = "recorded_by_default")]
        recorded: bool,
    },
    GrantRemoved {
        grant: String,
    },
    /// A grant's conditions changed (who and what it covers never change: that is another
    /// grant). Each change names the field with its old and new value.
    GrantChanged {
        grant: String,
        changes: Vec<FieldChange>,
    },
    VaultKeyRotated {
        old_key_ids: Vec<String>,
        new_key_id: String,
        secrets_reencrypted: u64,
    },
    LoginSucceeded {
        user: String,
        method: String,
        source: String,
    },
    /// A failed login that opened a new counting window for its source or user. Later failures
    /// in the same window are counted, not logged, so a brute-force storm cannot flood the log;
    /// reaching the threshold is `login_locked`.
    LoginFailed {
        /// The login as attempted (attacker-controlled: truncated, control characters removed).
        login: String,
        source: String,
        method: String,
        /// Failures in the current window, for the user if the login names one, else the source.
        failures: u32,
    },
    /// Too many failed logins: `key` (`FACTOR:user:NAME` or `FACTOR:source:ADDRESS`, FACTOR
    /// being `password` or `publickey`) is locked until `until`: logins with that factor, by
    /// that user or from that source, are refused until then.
    LoginLocked {
        key: String,
        until: String,
        failures: u32,
    },
    /// A login refused by the login rules (source address or login hours) before any credential
    /// was checked. Bounded like `login_failed`: one per user and one per source per window.
    LoginRefused {
        /// The login as attempted (attacker-controlled: truncated, control characters removed).
        login: String,
        source: String,
        method: String,
        /// Which rule refused it.
        reason: String,
    },
    AccessDenied {
        user: String,
        target: String,
        action: String,
        reason: String,
        source: String,
    },
    SessionStarted {
        session: String,
        user: String,
        target: String,
        kind: String,
        grant: String,
        source: String,
        /// False when the grant says the session is not recorded.
        #[serde(default = "recorded_by_default")]
        recorded: bool,
        /// A command recorded up to this many bytes each way (the rest counted and hashed).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recording_cap: Option<u64>,
        /// An exec session's command (bounded, control characters escaped).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        command: Option<String>,
    },
    /// Someone asked for a live session to end; the server carrying it ends it within seconds.
    SessionKillRequested {
        session: String,
        user: String,
        reason: String,
    },
    SessionEnded {
        session: String,
        reason: String,
        bytes_from_client: u64,
        bytes_to_client: u64,
        exit_status: Option<i64>,
        /// The sealed recording, anchored in the chain: `audit verify` requires exactly this
        /// manifest for a session `session_started` says is recorded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recording: Option<RecordingAnchor>,
    },
    HostKeyPinned {
        asset: String,
        fingerprint: String,
        how: String,
    },
    HostKeyCleared {
        asset: String,
    },
    HostKeyRejected {
        asset: String,
        expected: String,
        presented: String,
    },
    /// A database target presented a TLS certificate other than the one pinned on its
    /// endpoint; the connection was refused before anything was sent.
    TlsCertificateRejected {
        asset: String,
        protocol: String,
        expected: String,
        presented: String,
    },
    RecordingViewed {
        session: String,
    },
    RecordingExported {
        session: String,
        file: String,
    },
    /// Someone (the event's actor) started watching a live session's output.
    SessionWatched {
        session: String,
        source: String,
    },
    /// Clipboard text between a user and a desktop session (`to_target` or `to_user`), with
    /// its size, never its text; `allowed: false` when the grant refused it.
    ClipboardTransfer {
        session: String,
        account: String,
        direction: String,
        bytes: u64,
        allowed: bool,
    },
    FileTransferred {
        session: String,
        user: String,
        target: String,
        path: String,
        direction: String,
        bytes: u64,
        sha256: Option<String>,
    },
    FileChanged {
        session: String,
        user: String,
        target: String,
        operation: String,
        path: String,
        new_path: Option<String>,
        succeeded: bool,
    },
    CommandRun {
        session: String,
        user: String,
        target: String,
        command: String,
    },
    /// A vaulted secret was decrypted to log in to a target (never the secret itself).
    SecretUsed {
        account: String,
        for_user: String,
    },
    /// The server started, with the settings it runs with: a change of configuration shows as
    /// the difference between two of these.
    ServerStarted {
        version: String,
        settings: serde_json::Value,
    },
    RetentionApplied {
        before: String,
        sessions_removed: u64,
        /// The sessions whose records and recordings were deleted.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        sessions: Vec<String>,
        /// Each deleted recording as the chain anchored it (id and manifest SHA-256): what
        /// `audit verify` accepts as legitimately gone, and nothing else.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        recordings: Vec<RecordingAnchor>,
    },
    /// The server stopped cleanly; the chain head is signed right after this event.
    ServerStopped {
        version: String,
        /// The cluster node that stopped (issue 19); absent in events from before nodes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node: Option<String>,
    },
    /// A cluster node stopped sending heartbeats and was declared lost by another node, which
    /// ended the lost node's live sessions with the reason "node lost".
    NodeLost {
        node: String,
        /// The lost node's last heartbeat.
        last_heartbeat: String,
        /// The node that declared it lost.
        declared_by: String,
        /// The sessions it carried that were still live.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        sessions: Vec<String>,
    },
    /// At start, the previous run was found to have stopped without a clean shutdown (a crash,
    /// `kill -9`, power loss): the events after its last signed head were not signed then; the
    /// head is signed now.
    UncleanStopDetected {
        /// The newest signed head before this start (`None`: the log was never signed).
        last_signed_seq: Option<i64>,
        last_signed_at: Option<String>,
        /// The log's head when the previous run stopped.
        head_seq: i64,
    },
    AuditExported {
        since: Option<String>,
        until: Option<String>,
        events: u64,
        file: String,
    },
    RecordingFailed {
        session: String,
        reason: String,
    },
    /// A browser session ended: logged out, expired, or ended by a credential change.
    WebSessionEnded {
        user: String,
        reason: String,
    },
    /// An API token was issued (never the token itself).
    ApiTokenCreated {
        token: String,
        user: String,
        scope: String,
        expires_at: Option<String>,
    },
    ApiTokenRevoked {
        token: String,
        user: String,
    },
    /// A personal database token was issued (never the token itself).
    DbTokenCreated {
        token: String,
        user: String,
        expires_at: String,
    },
    DbTokenRevoked {
        token: String,
        user: String,
    },
    /// An administrator made a one-time enrolment link for a user (never the link itself).
    InviteCreated {
        user: String,
        expires_at: String,
    },
    /// A user set their password and second factor through their enrolment link.
    InviteUsed {
        user: String,
    },
    /// The user CA signed a user's SSH public key (the certificate's serial, the key's
    /// fingerprint, its end).
    SshCertificateIssued {
        user: String,
        serial: String,
        fingerprint: String,
        valid_before: String,
        /// How it was asked for: `portal`, `rampart login`.
        via: String,
    },
    TargetConnectionFailed {
        session: String,
        target: String,
        reason: String,
    },
    /// `rampart backup` copied the database, keys and recordings (with or without the vault
    /// master key) to a directory.
    BackupMade {
        to: String,
        master_key_included: bool,
        files: u64,
        bytes: u64,
    },
    DomainAdded {
        domain: String,
    },
    DomainRemoved {
        domain: String,
    },
    GatewayAdded {
        gateway: String,
        domain: String,
        host: String,
        port: u16,
        login: String,
        secret_kind: String,
        priority: u32,
    },
    GatewayRemoved {
        gateway: String,
        domain: String,
    },
    GatewayHostKeyPinned {
        gateway: String,
        fingerprint: String,
        how: String,
    },
    /// A gateway could not be used (connection, host key, authentication, or the channel to the
    /// asset); sessions fail over to the next gateway of the domain.
    GatewayFailed {
        gateway: String,
        reason: String,
    },
    /// A one-time enrolment token for a dial-out agent was issued (never the token).
    AgentTokenCreated {
        agent: String,
        domain: String,
        expires_at: String,
    },
    /// A dial-out agent enrolled with a token; its key is pinned from now on.
    AgentEnrolled {
        agent: String,
        domain: String,
        fingerprint: String,
        source: String,
    },
    AgentConnected {
        agent: String,
        source: String,
    },
    AgentDisconnected {
        agent: String,
        reason: String,
    },
    /// A dial-out agent was revoked: refused from now on, its connection and streams ended.
    AgentRevoked {
        agent: String,
    },
    /// A gateway's background health check changed its verdict (`ok`, `failing` with why).
    GatewayHealthChanged {
        gateway: String,
        health: String,
        reason: Option<String>,
    },
    /// A step of an account's credential rotation (issue 17): `state` is where it got
    /// (`pending`, `applied`, `committed`, `failed`, `unknown`, `resumed`, `settings`), `severity`
    /// is `info` or `alert` (an alert needs a person). Never holds a secret.
    AccountRotationChanged {
        account: String,
        rotation: String,
        state: String,
        severity: String,
        reason: String,
    },
    /// An offline break-glass kit was sealed (issue 17) to `path` for these accounts, any
    /// `threshold` of these custodians (names) opening it; `reason`: `sealed` by a person, or
    /// `resealed after the rotation of ACCOUNT`. `kit` is the id written in the file.
    BreakglassKitSealed {
        path: String,
        kit: String,
        accounts: Vec<String>,
        custodians: Vec<String>,
        threshold: u32,
        reason: String,
    },
    /// A kit is no longer sealed again after rotations (the file is left where it is).
    BreakglassKitForgotten {
        path: String,
    },
    /// Emergency access was asked for (issue 17); it needs two administrators' approval.
    BreakglassRequested {
        request: String,
        user: String,
        asset: String,
        reason: String,
        duration: String,
    },
    /// An administrator approved a break-glass request (`approvals`: how many so far).
    BreakglassApproved {
        request: String,
        admin: String,
        approvals: u32,
    },
    /// A break-glass session ended and its account was rotated (`state`: the rotation's
    /// outcome, `committed` or why not).
    BreakglassAccountRotated {
        session: String,
        account: String,
        state: String,
    },
    /// A session of an account that rotates after every session ended, and its account was
    /// rotated (issue 17; `state`: the rotation's outcome, `committed` or why not).
    SessionAccountRotated {
        session: String,
        account: String,
        state: String,
    },
    /// A rotation policy changed (issue 17): `scope` is `label KEY=VALUE` (a schedule for the
    /// accounts of the assets with that label) or `asset NAME` (its generated-password policy);
    /// `policy` says what it is now (`removed` when it is gone).
    RotationPolicyChanged {
        scope: String,
        policy: String,
    },
    /// A break-glass request got its two approvals: `grant` gives the access until `until`.
    BreakglassActivated {
        request: String,
        user: String,
        asset: String,
        grant: String,
        until: String,
    },
    /// A command rule matched a command of a session (`action`: allow, warn, deny); `rule` is
    /// how the rule reads (`#3 deny prefix:rm -rf`), `line` what the user sent. A line that could
    /// not be checked is denied with `rule` `unparsable: WHY`.
    CommandRuleMatched {
        /// None: an exec refused before its session started.
        session: Option<String>,
        user: String,
        target: String,
        line: String,
        command: String,
        rule: String,
        rule_id: Option<String>,
        action: String,
    },
    /// Something a security team should look at (a `warn` or `deny` command rule matched, ...).
    /// `severity`: `warning` or `critical` (syslog sinks map it to the message's severity).
    AlertRaised {
        alert: String,
        severity: String,
        user: String,
        session: Option<String>,
        target: Option<String>,
        detail: String,
    },
    /// Someone looked at an alert (`alert`: the sequence number of its `alert_raised` event).
    AlertAcknowledged {
        alert: i64,
    },
    CommandRuleAdded {
        rule: String,
        scope: String,
        position: i64,
        matcher: String,
        action: String,
    },
    CommandRuleRemoved {
        rule: String,
        scope: String,
        matcher: String,
        action: String,
    },
    /// A user asked for time-bound access (`duration` such as `2h`); approvers are told through
    /// every sink and the portal.
    AccessRequested {
        request: String,
        user: String,
        target: String,
        accounts: Vec<String>,
        actions: String,
        duration: String,
        reason: String,
    },
    /// An access request was `approved` (with the grant it created and when that grant ends),
    /// `denied` or `cancelled` (by its requester); the actor decided.
    AccessRequestDecided {
        request: String,
        user: String,
        decision: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        grant: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        valid_until: Option<String>,
    },
    /// A shell line matched an `approve` rule and waits for an approver (`approval`: the
    /// pending approval's id; `timeout`: how long it waits, then it is denied).
    CommandApprovalRequested {
        approval: String,
        session: String,
        user: String,
        target: String,
        line: String,
        command: String,
        rule: String,
        timeout: String,
    },
    /// A held shell line was `approved` or `denied` (the actor decided), `timed_out` (no
    /// decision in time) or `cancelled` (the session ended while it waited).
    CommandApprovalDecided {
        approval: String,
        session: String,
        user: String,
        line: String,
        decision: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// A compliance report was made for the period `[from, to)` (`via`: the CLI, or the API
    /// and the caller's address).
    ReportGenerated {
        from: String,
        to: String,
        format: String,
        via: String,
    },
    /// A sync from a directory (`ldap`) finished: how many users it created, updated, disabled
    /// and enabled again, and how many it skipped (a local user of the same name). Each change
    /// is its own event (`user_added`, `user_disabled`, ...) before this one.
    DirectorySynced {
        directory: String,
        created: u64,
        updated: u64,
        disabled: u64,
        enabled: u64,
        skipped: u64,
    },
}

impl AuditEvent {
    /// The event's stable name, as stored and searched (`user_added`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            AuditEvent::NodeInitialized { .. } => "node_initialized",
            AuditEvent::UserAdded { .. } => "user_added",
            AuditEvent::UserRemoved { .. } => "user_removed",
            AuditEvent::UserDisabled { .. } => "user_disabled",
            AuditEvent::UserRoleChanged { .. } => "user_role_changed",
            AuditEvent::UserEnabled { .. } => "user_enabled",
            AuditEvent::UserKeyAdded { .. } => "user_key_added",
            AuditEvent::UserKeyRemoved { .. } => "user_key_removed",
            AuditEvent::UserPasswordChanged { .. } => "user_password_changed",
            AuditEvent::MfaEnrolled { .. } => "mfa_enrolled",
            AuditEvent::MfaReset { .. } => "mfa_reset",
            AuditEvent::PasskeyAdded { .. } => "passkey_added",
            AuditEvent::PasskeyRemoved { .. } => "passkey_removed",
            AuditEvent::UserLoginRulesChanged { .. } => "user_login_rules_changed",
            AuditEvent::UserUnlocked { .. } => "user_unlocked",
            AuditEvent::GroupAdded { .. } => "group_added",
            AuditEvent::GroupMemberAdded { .. } => "group_member_added",
            AuditEvent::GroupMemberRemoved { .. } => "group_member_removed",
            AuditEvent::GroupRemoved { .. } => "group_removed",
            AuditEvent::AssetAdded { .. } => "asset_added",
            AuditEvent::AssetChanged { .. } => "asset_changed",
            AuditEvent::AssetEndpointAdded { .. } => "asset_endpoint_added",
            AuditEvent::AssetEndpointChanged { .. } => "asset_endpoint_changed",
            AuditEvent::AssetEndpointRemoved { .. } => "asset_endpoint_removed",
            AuditEvent::TelnetLoginChanged { .. } => "telnet_login_changed",
            AuditEvent::AssetRemoved { .. } => "asset_removed",
            AuditEvent::AccountAdded { .. } => "account_added",
            AuditEvent::AccountRemoved { .. } => "account_removed",
            AuditEvent::AccountSecretReplaced { .. } => "account_secret_replaced",
            AuditEvent::GrantAdded { .. } => "grant_added",
            AuditEvent::GrantRemoved { .. } => "grant_removed",
            AuditEvent::GrantChanged { .. } => "grant_changed",
            AuditEvent::VaultKeyRotated { .. } => "vault_key_rotated",
            AuditEvent::LoginSucceeded { .. } => "login_succeeded",
            AuditEvent::LoginFailed { .. } => "login_failed",
            AuditEvent::LoginLocked { .. } => "login_locked",
            AuditEvent::LoginRefused { .. } => "login_refused",
            AuditEvent::AccessDenied { .. } => "access_denied",
            AuditEvent::SessionStarted { .. } => "session_started",
            AuditEvent::SessionKillRequested { .. } => "session_kill_requested",
            AuditEvent::SessionEnded { .. } => "session_ended",
            AuditEvent::HostKeyPinned { .. } => "host_key_pinned",
            AuditEvent::HostKeyCleared { .. } => "host_key_cleared",
            AuditEvent::HostKeyRejected { .. } => "host_key_rejected",
            AuditEvent::TlsCertificateRejected { .. } => "tls_certificate_rejected",
            AuditEvent::TargetConnectionFailed { .. } => "target_connection_failed",
            AuditEvent::RecordingViewed { .. } => "recording_viewed",
            AuditEvent::RecordingExported { .. } => "recording_exported",
            AuditEvent::SessionWatched { .. } => "session_watched",
            AuditEvent::ClipboardTransfer { .. } => "clipboard_transfer",
            AuditEvent::RecordingFailed { .. } => "recording_failed",
            AuditEvent::WebSessionEnded { .. } => "web_session_ended",
            AuditEvent::ApiTokenCreated { .. } => "api_token_created",
            AuditEvent::ApiTokenRevoked { .. } => "api_token_revoked",
            AuditEvent::DbTokenCreated { .. } => "db_token_created",
            AuditEvent::DbTokenRevoked { .. } => "db_token_revoked",
            AuditEvent::SshCertificateIssued { .. } => "ssh_certificate_issued",
            AuditEvent::InviteCreated { .. } => "invite_created",
            AuditEvent::InviteUsed { .. } => "invite_used",
            AuditEvent::AuditExported { .. } => "audit_exported",
            AuditEvent::RetentionApplied { .. } => "retention_applied",
            AuditEvent::SecretUsed { .. } => "secret_used",
            AuditEvent::ServerStarted { .. } => "server_started",
            AuditEvent::ServerStopped { .. } => "server_stopped",
            AuditEvent::NodeLost { .. } => "node_lost",
            AuditEvent::UncleanStopDetected { .. } => "unclean_stop_detected",
            AuditEvent::CommandRun { .. } => "command_run",
            AuditEvent::FileTransferred { .. } => "file_transferred",
            AuditEvent::FileChanged { .. } => "file_changed",
            AuditEvent::BackupMade { .. } => "backup_made",
            AuditEvent::DomainAdded { .. } => "domain_added",
            AuditEvent::DomainRemoved { .. } => "domain_removed",
            AuditEvent::GatewayAdded { .. } => "gateway_added",
            AuditEvent::GatewayRemoved { .. } => "gateway_removed",
            AuditEvent::GatewayHostKeyPinned { .. } => "gateway_host_key_pinned",
            AuditEvent::GatewayFailed { .. } => "gateway_failed",
            AuditEvent::AgentTokenCreated { .. } => "agent_token_created",
            AuditEvent::AgentEnrolled { .. } => "agent_enrolled",
            AuditEvent::AgentConnected { .. } => "agent_connected",
            AuditEvent::AgentDisconnected { .. } => "agent_disconnected",
            AuditEvent::AgentRevoked { .. } => "agent_revoked",
            AuditEvent::GatewayHealthChanged { .. } => "gateway_health_changed",
            AuditEvent::AccountRotationChanged { .. } => "account_rotation_changed",
            AuditEvent::BreakglassKitSealed { .. } => "breakglass_kit_sealed",
            AuditEvent::BreakglassKitForgotten { .. } => "breakglass_kit_forgotten",
            AuditEvent::BreakglassRequested { .. } => "breakglass_requested",
            AuditEvent::BreakglassApproved { .. } => "breakglass_approved",
            AuditEvent::BreakglassActivated { .. } => "breakglass_activated",
            AuditEvent::BreakglassAccountRotated { .. } => "breakglass_account_rotated",
            AuditEvent::SessionAccountRotated { .. } => "session_account_rotated",
            AuditEvent::RotationPolicyChanged { .. } => "rotation_policy_changed",
            AuditEvent::CommandRuleMatched { .. } => "command_rule_matched",
            AuditEvent::CommandRuleAdded { .. } => "command_rule_added",
            AuditEvent::AlertRaised { .. } => "alert_raised",
            AuditEvent::AlertAcknowledged { .. } => "alert_acknowledged",
            AuditEvent::ReportGenerated { .. } => "report_generated",
            AuditEvent::DirectorySynced { .. } => "directory_synced",
            AuditEvent::AccessRequested { .. } => "access_requested",
            AuditEvent::AccessRequestDecided { .. } => "access_request_decided",
            AuditEvent::CommandApprovalRequested { .. } => "command_approval_requested",
            AuditEvent::CommandApprovalDecided { .. } => "command_approval_decided",
            AuditEvent::CommandRuleRemoved { .. } => "command_rule_removed",
        }
    }
}

/// For counts an event leaves out when they are zero (older events never had them).
#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_zero(count: &u64) -> bool {
    *count == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_matches_serialized_tag() {
        let events = [
            AuditEvent::UserDisabled { user: "a".into() },
            AuditEvent::GrantRemoved { grant: "g".into() },
            AuditEvent::MfaEnrolled { user: "a".into() },
            AuditEvent::MfaReset {
                user: "a".into(),
                passkeys: 0,
            },
            AuditEvent::PasskeyAdded {
                user: "a".into(),
                name: "laptop".into(),
            },
            AuditEvent::PasskeyRemoved {
                user: "a".into(),
                name: "laptop".into(),
            },
            AuditEvent::UserLoginRulesChanged {
                user: "a".into(),
                allow_from: Some("10.0.0.0/8".into()),
                deny_from: None,
                login_hours: None,
            },
            AuditEvent::UserUnlocked { user: "a".into() },
            AuditEvent::LoginFailed {
                login: "a".into(),
                source: "192.0.2.1".into(),
                method: "password".into(),
                failures: 1,
            },
            AuditEvent::LoginLocked {
                key: "password:user:a".into(),
                until: "2026-06-01T12:15:00Z".into(),
                failures: 5,
            },
            AuditEvent::LoginRefused {
                login: "a".into(),
                source: "192.0.2.1".into(),
                method: "publickey".into(),
                reason: "source 192.0.2.1 is in the user's deny_from list (192.0.2.0/24)".into(),
            },
            AuditEvent::VaultKeyRotated {
                old_key_ids: vec![],
                new_key_id: "k".into(),
                secrets_reencrypted: 0,
            },
        ];
        for event in events {
            let json = serde_json::to_value(&event).unwrap();
            assert_eq!(json["event"], event.kind());
        }
    }
}
