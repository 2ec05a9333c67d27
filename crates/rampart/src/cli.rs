//! The command line: every command, flag and help text.

use clap::{ArgGroup, Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "rampart",
    version,
    about = "Rampart: a privileged-access gateway (bastion host and PAM) in one binary",
    long_about = "Rampart: a privileged-access gateway (bastion host and PAM) in one binary.\n\n\
        `rampart serve` runs the gateway on an embedded store in the data directory. Every other \
        command administers that data directory directly and may run while the server does.",
    after_help = "Settings come from flags, then RAMPART_* environment variables, then the file \
        given with --config, then built-in defaults (data in ./rampart-data, listeners on loopback)."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// TOML configuration file [env: RAMPART_CONFIG]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory [env: RAMPART_DATA_DIR] [default: ./rampart-data]
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// File holding the vault master key in base64, instead of the data directory's own
    /// [env: RAMPART_MASTER_KEY_FILE]
    #[arg(long, global = true, value_name = "FILE")]
    pub master_key_file: Option<PathBuf>,
    /// Print JSON instead of a table
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway: create the data directory on first start, then serve until SIGINT/SIGTERM
    Serve(ServeArgs),
    /// Create a new data directory (database and keys) without serving; every other command
    /// needs one that exists
    Init,
    /// Manage users (people with their own identity)
    #[command(subcommand)]
    User(UserCommand),
    /// Manage groups of users
    #[command(subcommand)]
    Group(GroupCommand),
    /// Manage assets (target hosts)
    #[command(subcommand)]
    Asset(AssetCommand),
    /// Manage accounts (logins on assets whose secrets live in the vault)
    #[command(subcommand)]
    Account(AccountCommand),
    /// Manage network domains (places whose assets are reached through gateways)
    #[command(subcommand)]
    Domain(DomainCommand),
    /// Manage SSH-hop gateways of network domains
    #[command(subcommand)]
    Gateway(GatewayCommand),
    /// Dial-out agents of network domains: run one in the remote network (`rampart agent
    /// --server HOST:PORT --token-file FILE`), or manage them (`token create`, `list`, `revoke`)
    Agent(AgentArgs),
    /// Manage grants (who may use which accounts, for what, when)
    #[command(subcommand)]
    Grant(GrantCommand),
    /// Manage command rules (allow, warn, approve or deny commands in exec and shell sessions)
    #[command(subcommand)]
    Rule(RuleCommand),
    /// Alerts (a warned or refused command, ...) and their acknowledgement
    #[command(subcommand)]
    Alert(AlertCommand),
    /// Access requests: time-bound access asked for by a user and approved (a grant that ends
    /// on its own) or denied
    #[command(subcommand)]
    Request(RequestCommand),
    /// Shell lines an `approve` command rule holds: list them, approve or deny them
    #[command(subcommand)]
    Approval(ApprovalCommand),
    /// Inspect sessions
    #[command(subcommand)]
    Session(SessionCommand),
    /// Inspect and rotate the vault's master key
    #[command(subcommand)]
    Vault(VaultCommand),
    /// Read and verify the audit log and the recordings
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Play a session's recording in this terminal, with its real timing
    Replay(ReplayArgs),
    /// Export session recordings; check the S3 bucket they go to
    #[command(subcommand, visible_alias = "recordings")]
    Recording(RecordingCommand),
    /// Manage API tokens (for scripts calling the REST API with Authorization: Bearer)
    #[command(subcommand)]
    Token(TokenCommand),
    /// Back up the data directory (database, keys, recordings) while the server runs
    Backup(BackupArgs),
    /// Restore a backup into a new data directory (--data-dir), which must not exist or be empty
    Restore(RestoreArgs),
    /// Check the deployment (listeners, TLS certificate, file modes, vault key, audit evidence,
    /// SIEM sinks, disk space, clock) and print a checklist with a fix for each finding; exits
    /// non-zero when anything needs attention
    Doctor,
    /// Make a compliance report for a period: who accessed which assets, when and for how long;
    /// privileged sessions; failed and refused logins; denied and flagged commands; file
    /// transfers; grant changes; credential rotations; and whether the audit trail verifies.
    /// Each section names the SOC 2, ISO 27001 and PCI DSS controls it supports
    Report(ReportArgs),
    /// Print a shell completion script: `source <(rampart completion bash)`, or save it where
    /// your shell loads completions from
    Completion {
        /// The shell to complete in
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Database access: personal database tokens (the password psql, mariadb, redis-cli and VNC
    /// viewers type through Rampart)
    #[command(subcommand)]
    Db(DbCommand),
    /// The node's SSH certificate authorities (host CA for ProxyJump hops, user CA for logins)
    #[command(subcommand)]
    Ca(CaCommand),
    /// Get a short-lived SSH certificate from a Rampart server (no data directory needed):
    /// prints a link and a code, you approve it in the portal where you are signed in, and the
    /// certificate is written as KEY-cert.pub next to your key, where ssh finds it
    Login(LoginArgs),
    /// Kubernetes access through Rampart: kubeconfigs with personal, short-lived tokens
    #[command(subcommand)]
    Kube(KubeCommand),
    /// Break-glass: offline emergency kits that any THRESHOLD custodians together can open
    /// when Rampart is down (`seal`, `share`, `open`)
    #[command(subcommand)]
    Breakglass(BreakglassCommand),
    /// Credential rotation beyond one account: schedules per asset label and generated-password
    /// policies per asset (one account: `rampart account rotate|set|history`)
    #[command(subcommand)]
    Rotation(RotationCommand),
    /// The LDAP directory (`[ldap]` in the configuration): sync its users now
    #[command(subcommand)]
    Ldap(LdapCommand),
    /// The cluster's nodes (every `rampart serve` on this store): their state, last heartbeat
    /// and live sessions
    #[command(subcommand)]
    Node(NodeCommand),
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// List the nodes: up (sending heartbeats), stopped (cleanly), or lost (silent longer than
    /// node.lost_after; their sessions were ended as "node lost")
    List,
}

#[derive(Debug, Subcommand)]
pub enum RotationCommand {
    /// Rotate every account of the assets with a label on a schedule (an account's own
    /// `--rotate-every` wins; of several labels, the shortest interval)
    Schedule {
        /// The label, KEY=VALUE (for example env=prod)
        #[arg(long, value_name = "KEY=VALUE")]
        label: String,
        /// The interval (30d, 12h, ...), or `never` to remove the schedule
        #[arg(long, value_name = "DURATION")]
        every: String,
    },
    /// List the label schedules
    Schedules,
    /// Set how passwords generated for an asset's accounts look, where the target needs it
    Policy {
        /// The asset
        asset: String,
        /// Password length (8 to 128; without it, each account's own length)
        #[arg(long, value_name = "N")]
        length: Option<u32>,
        /// Character classes, comma-separated: lower, upper, digits, symbols (default: all)
        #[arg(long, value_name = "LIST", default_value = "")]
        classes: String,
        /// Characters never used in generated passwords
        #[arg(long, value_name = "CHARS", default_value = "")]
        exclude: String,
        /// Remove the asset's policy (back to the default)
        #[arg(long, conflicts_with_all = ["length", "classes", "exclude"])]
        clear: bool,
    },
    /// Show an asset's generated-password policy
    ShowPolicy {
        /// The asset
        asset: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum LdapCommand {
    /// Read the directory now and make Rampart agree: create its users, update their SSH keys,
    /// role and mapped groups, and disable the directory users it no longer lists (their live
    /// sessions end); prints what was created, updated and disabled
    Sync,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The Rampart portal's address, e.g. https://bastion.example.com:8443
    #[arg(long, value_name = "URL")]
    pub server: String,
    /// Your SSH private key; its public half (KEY.pub) is what gets certified
    /// [default: ~/.ssh/id_ed25519]
    #[arg(long, value_name = "KEY")]
    pub key: Option<PathBuf>,
    /// Trust this PEM certificate for the server's TLS (a self-signed server certificate)
    /// instead of the system's roots
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Print a certificate authority's public key: with --host, the known_hosts line
    /// (`@cert-authority * ...`) that trusts every asset's ProxyJump hop; with --user, the key
    /// that signs users' SSH certificates
    Show {
        /// The host CA, as a known_hosts line (the default)
        #[arg(long, conflicts_with = "user")]
        host: bool,
        /// The user CA's public key
        #[arg(long)]
        user: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KubeCommand {
    /// Write a kubeconfig for a Kubernetes asset: the server is Rampart's Kubernetes listener,
    /// the CA the node's certificate, the user a fresh personal token (shown only in this file)
    Config {
        /// The Kubernetes asset (ASSET, or ACCOUNT@ASSET when the user may use several
        /// accounts there)
        #[arg(long, value_name = "ASSET")]
        asset: String,
        /// The Rampart user the token logs in as [default: the operating-system user's name]
        #[arg(long)]
        user: Option<String>,
        /// How long the token lives (at most 30d)
        #[arg(long, default_value = "8h", value_name = "DURATION")]
        ttl: String,
        /// The listener's URL as clients reach it [default: https://kube.public_address, or
        /// https://kube.listen]
        #[arg(long, value_name = "URL")]
        server: Option<String>,
        /// The namespace kubectl uses when none is given
        #[arg(long)]
        namespace: Option<String>,
        /// Write the kubeconfig to this new file (mode 0600) instead of standard output
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<std::path::PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum BreakglassCommand {
    /// Seal the named accounts' current secrets into an offline kit file: any THRESHOLD of the
    /// custodians together can open it; sealed again to the same file after those accounts
    /// rotate
    Seal {
        /// Accounts to hold, comma-separated: root@web-01,postgres@db-01
        #[arg(
            long,
            value_delimiter = ',',
            required = true,
            value_name = "LOGIN@ASSET,..."
        )]
        accounts: Vec<String>,
        /// Custodians' public key files, comma-separated (OpenSSH ed25519/rsa `.pub` lines or
        /// age recipients); a custodian's name is the file's stem: alice.pub is alice
        #[arg(long, value_delimiter = ',', required = true, value_name = "FILE,...")]
        custodians: Vec<PathBuf>,
        /// How many custodians must come together to open the kit
        #[arg(long)]
        threshold: u8,
        /// The kit file to write (replaced atomically when it is a kit sealed before)
        #[arg(long, value_name = "KIT")]
        out: PathBuf,
    },
    /// Decrypt your own share of a kit with your private key and print it (needs no data
    /// directory): give it to whoever opens the kit
    Share {
        /// The kit file
        kit: PathBuf,
        /// Your private key: an OpenSSH private key (asks for its passphrase) or an age
        /// identity file
        #[arg(long, required = true, value_name = "KEY")]
        identity: Vec<PathBuf>,
        /// Write the share to this new file (0600) instead of standard output
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Open a kit with THRESHOLD custodians' shares (share files, or their private keys with
    /// --identity) and print the secrets (needs no data directory and no running Rampart)
    Open {
        /// The kit file
        kit: PathBuf,
        /// Share files made by `rampart breakglass share`
        shares: Vec<PathBuf>,
        /// A custodian's private key, to decrypt their share here (repeat for each)
        #[arg(long, value_name = "KEY")]
        identity: Vec<PathBuf>,
        /// Write each secret to its own new file (0600) in this directory, named LOGIN@ASSET,
        /// instead of printing it
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
    /// Ask for emergency access of a user to an asset: nothing is given until two
    /// administrators other than the user approve (`breakglass approve`); alerts every sink
    Grant {
        /// The user who needs the access
        #[arg(long)]
        user: String,
        /// The asset
        #[arg(long)]
        asset: String,
        /// Why (shown in the alert and the audit trail)
        #[arg(long)]
        reason: String,
        /// How long the access lasts once approved (at most 24h)
        #[arg(long = "for", default_value = "1h", value_name = "DURATION")]
        duration: String,
    },
    /// Approve a break-glass request as an administrator; the second distinct administrator's
    /// approval opens the access (a grant until the request's duration is over)
    Approve {
        /// The request's id
        id: String,
        /// The approving administrator (a Rampart user with the admin role, not the request's
        /// user)
        #[arg(long = "as", value_name = "ADMIN")]
        admin: String,
    },
    /// List break-glass requests, newest first, with their approvals
    Requests,
    /// List the kits sealed on this node (paths, accounts, custodians; no secrets)
    List,
    /// Stop sealing a kit again after rotations (the file is left where it is)
    Forget {
        /// The kit file, as sealed
        kit: PathBuf,
    },
}

impl BreakglassCommand {
    /// `share` and `open` work with the kit file alone: no configuration, no data directory.
    pub fn is_offline(&self) -> bool {
        matches!(self, Self::Share { .. } | Self::Open { .. })
    }
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Personal database tokens (also a native VNC viewer's password, user name
    /// USER@ACCOUNT@ASSET)
    #[command(subcommand)]
    Token(DbTokenCommand),
}

#[derive(Debug, Subcommand)]
pub enum DbTokenCommand {
    /// Issue a database token for a user; printed once, only its hash is kept
    Create {
        /// The user the token logs in as
        #[arg(long)]
        user: String,
        /// How long the token lives (at most 30d)
        #[arg(long, default_value = "8h", value_name = "DURATION")]
        ttl: String,
    },
    /// List database tokens (never the tokens themselves)
    List {
        /// Only this user's tokens
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke a database token by id; it stops working for new logins at once
    Revoke {
        /// The token's id, as `rampart db token list` shows it
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue an API token for a user; the token is printed once and only its hash is kept
    Create {
        /// The user the token acts as
        #[arg(long)]
        user: String,
        /// read (GET only), write (also the user's own changes and, for auditors, killing
        /// sessions) or admin (everything the user's role allows; administrators only)
        #[arg(long, value_parser = ["read", "write", "admin"])]
        scope: String,
        /// How long the token lives (30d, 12h) or an RFC 3339 end time [default: no end]
        #[arg(long, value_name = "DURATION|TIME")]
        expires: Option<String>,
        /// What the token is for, shown in listings
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List API tokens (never the tokens themselves)
    List {
        /// Only this user's tokens
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke an API token by id (as `rampart token list` prints it); it stops working at once
    Revoke {
        /// The token's id, as `rampart token list` prints it
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Session id (as `rampart session list` prints it)
    pub id: String,
    /// Play faster (2 = twice as fast) or slower (0.5)
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Print everything at once instead of waiting between events
    #[arg(long)]
    pub no_wait: bool,
    /// Never wait longer than this many seconds between two events
    #[arg(long, value_name = "SECONDS")]
    pub max_wait: Option<f64>,
    /// Play even if the recording does not verify
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum RecordingCommand {
    /// Write a session's recording to a file: a terminal or command session as an asciicast
    /// v2 file that asciinema plays, a desktop session as a video (.mp4, .mkv or .webm, made
    /// with ffmpeg, which must be installed)
    Export(ExportArgs),
    /// Report whether the configured S3 bucket (recording.store = "s3") has versioning and
    /// Object Lock on; fails when recording.s3.object_lock is set and either is off
    CheckBucket,
}

/// What `rampart recording export` writes, and how.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Session id
    pub id: String,
    /// The file to write (must not exist)
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: PathBuf,
    /// Export even if the recording does not verify
    #[arg(long)]
    pub force: bool,
    /// Desktop sessions: video frames per second
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=60))]
    pub fps: u32,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address for SSH clients [env: RAMPART_SSH_LISTEN] [default: 127.0.0.1:2222]
    #[arg(long, value_name = "ADDR:PORT")]
    pub ssh_listen: Option<String>,
    /// Address for the web UI and API [env: RAMPART_HTTP_LISTEN] [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR:PORT")]
    pub http_listen: Option<String>,
    /// Log level: error, warn, info, debug or trace [env: RAMPART_LOG] [default: info]
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Make a one-time enrolment link for an existing user: they open it and set their own
    /// password and TOTP second factor (printed once; give it to them privately)
    Invite {
        /// User name
        name: String,
        /// How long the link works
        #[arg(long, value_name = "DURATION", default_value = "72h")]
        ttl: String,
    },
    /// Add a user
    Add {
        /// The user's name (letters, digits, `.`, `-`, `_`): their SSH login name at Rampart
        name: String,
        /// What the user may do with Rampart itself
        #[arg(long, default_value = "user", value_parser = ["admin", "auditor", "user"])]
        role: String,
        /// SSH public key file (.pub); repeat for several
        #[arg(long = "key", value_name = "FILE")]
        keys: Vec<PathBuf>,
    },
    /// List users
    List,
    /// Show one user with keys, groups, login rules and lock state
    Show {
        /// The user
        name: String,
    },
    /// Set where from and when a user may log in (on top of the configuration's [auth] rules).
    /// A flag left out keeps that rule; an empty value ("") removes it
    #[command(group(
        ArgGroup::new("rules")
            .required(true)
            .multiple(true)
            .args(["role", "allow_from", "deny_from", "login_hours"])
    ))]
    Set {
        /// The user whose role or rules change
        name: String,
        /// Give the user this role: admin, auditor or user (from their next request)
        #[arg(long, value_parser = ["admin", "auditor", "user"])]
        role: Option<String>,
        /// Comma-separated networks the user may log in from, such as 10.0.0.0/8,2001:db8::/32
        /// (an address alone is one host); "" allows every address
        #[arg(long, value_name = "CIDRS")]
        allow_from: Option<String>,
        /// Comma-separated networks the user may never log in from; wins over --allow-from
        #[arg(long, value_name = "CIDRS")]
        deny_from: Option<String>,
        /// Weekly windows when the user may log in, such as "Mon-Fri 08:00-18:00 Europe/Berlin"
        /// (zone defaults to UTC); "" allows any time
        #[arg(long, value_name = "SCHEDULE")]
        login_hours: Option<String>,
    },
    /// Lift a user's lock after failed logins and clear their failure count (locks on source
    /// addresses stay until they expire)
    Unlock {
        /// The locked user
        name: String,
    },
    /// Disable a user: they can no longer log in
    Disable {
        /// The user
        name: String,
    },
    /// Enable a disabled user
    Enable {
        /// The user
        name: String,
    },
    /// Remove a user, their keys, memberships and personal grants (their sessions and audit events stay)
    Remove {
        /// The user
        name: String,
        /// Also remove their personal grants without asking (needed when not on a terminal)
        #[arg(long)]
        yes: bool,
    },
    /// Manage a user's SSH public keys
    #[command(subcommand)]
    Key(UserKeyCommand),
    /// Set a user's password, read from standard input (prompted without echo on a terminal)
    Password {
        /// The user
        name: String,
    },
    /// Manage a user's second factor (TOTP codes from an authenticator app)
    #[command(subcommand)]
    Mfa(UserMfaCommand),
}

#[derive(Debug, Subcommand)]
pub enum UserMfaCommand {
    /// Send a user a one-time enrolment link: they open it in the portal and set their own
    /// password and TOTP second factor, which no administrator sees (also how the first
    /// administrator enrols); users signed in to the portal enrol on their Account page
    Enroll {
        /// The user
        name: String,
        /// Send a link for a new second factor although the user has one (the old one works
        /// until the link is used)
        #[arg(long)]
        replace: bool,
        /// How long the link works
        #[arg(long, value_name = "DURATION", default_value = "72h")]
        ttl: String,
    },
    /// Remove every second factor of a user (TOTP and passkeys); they must enroll again
    Reset {
        /// The user
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserKeyCommand {
    /// Add the public key(s) in FILE to a user
    Add {
        /// The user
        name: String,
        /// The public key file (.pub, or several keys one per line)
        file: PathBuf,
    },
    /// Remove a user's key by fingerprint (SHA256:..., as `rampart user show` prints it)
    Remove {
        /// The user
        name: String,
        /// The key's fingerprint, SHA256:...
        fingerprint: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Add a group
    Add {
        /// The group's name
        name: String,
    },
    /// Manage group members
    #[command(subcommand)]
    Member(GroupMemberCommand),
    /// List groups with their members
    List,
    /// Remove a group and the grants that name it (its members stay users)
    Remove {
        /// The group's name
        name: String,
        /// Also remove the grants that name it without asking (needed when not on a terminal)
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum GroupMemberCommand {
    /// Add a user to a group
    Add {
        /// The group
        group: String,
        /// The user who joins it
        user: String,
    },
    /// Take a user out of a group (sessions the group's grants allowed them end)
    Remove {
        /// The group
        group: String,
        /// The user who leaves it
        user: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AlertCommand {
    /// List alerts, newest first
    List {
        /// Only alerts nobody acknowledged yet
        #[arg(long)]
        open: bool,
    },
    /// Acknowledge an alert
    Ack {
        /// The alert's id, as `rampart alert list` prints it
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum RequestCommand {
    /// Ask for time-bound access on a user's behalf (users ask for themselves in the portal or
    /// with POST /api/v1/requests); approvers are told through every audit sink
    #[command(
        after_help = "Example:\n  rampart request create --user alice --asset web-01 --account root --duration 2h --reason 'INC-1234: restart nginx'"
    )]
    Create {
        /// The user who will get the access
        #[arg(long)]
        user: String,
        /// The asset asked for (or --label)
        #[arg(long, conflicts_with = "label")]
        asset: Option<String>,
        /// Assets with this label (KEY=VALUE; repeatable: assets with all of them)
        #[arg(long)]
        label: Vec<String>,
        /// An account login on the asset (repeatable); default: every account
        #[arg(long)]
        account: Vec<String>,
        /// Comma-separated actions; default: the default set of a grant
        #[arg(long)]
        actions: Option<String>,
        /// How long the access lasts once approved (such as 30m, 2h), at most
        /// requests.max_duration
        #[arg(long)]
        duration: String,
        /// Why (a ticket, what will be done): shown to approvers and kept in the audit trail
        #[arg(long)]
        reason: String,
    },
    /// List access requests, newest first
    List {
        /// Only requests in this state
        #[arg(long, value_parser = ["pending", "approved", "denied", "cancelled"])]
        state: Option<String>,
        /// Only this user's requests
        #[arg(long)]
        user: Option<String>,
    },
    /// Approve a pending request as the node's operator: a grant for the requested time starts
    /// now and ends on its own
    Approve {
        /// The request's id (or a unique prefix of it), as `rampart request list` prints it
        id: String,
        /// A note kept with the decision
        #[arg(long)]
        note: Option<String>,
    },
    /// Deny a pending request as the node's operator
    Deny {
        /// The request's id (or a unique prefix of it)
        id: String,
        /// A note kept with the decision (the requester sees it)
        #[arg(long)]
        note: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApprovalCommand {
    /// List held shell lines, newest first (default: those still waiting)
    List {
        /// Also the decided, timed-out and cancelled ones
        #[arg(long)]
        all: bool,
    },
    /// Approve a held shell line as the node's operator: the session sends it to the target
    Approve {
        /// The approval's id (or a unique prefix of it), as `rampart approval list` prints it
        id: String,
        /// A note kept with the decision
        #[arg(long)]
        note: Option<String>,
    },
    /// Deny a held shell line as the node's operator: the line is cleared on the target
    Deny {
        /// The approval's id (or a unique prefix of it)
        id: String,
        /// Why: the user sees it in their session
        #[arg(long)]
        note: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum RuleCommand {
    /// Add a command rule to a grant or to assets with a label. Rules are asked in position
    /// order; for each command the first rule that matches decides, and a command no rule
    /// matches is allowed (end with `--match any --action deny` for an allow-list)
    #[command(
        after_help = "Examples:\n  rampart rule add --label env=prod --match 'prefix:rm -rf' --action deny\n  \
        rampart rule add --grant ID --match 'list:privilege-escalation' --action warn\n  \
        rampart rule add --grant ID --match 'prefix:systemctl status' --action allow\n  \
        rampart rule add --grant ID --match any --action deny\n  \
        rampart rule add --label env=prod --match 'prefix:systemctl restart' --action approve\n\n\
        Matches: any, prefix:WORDS (the command's first words), glob:PATTERN (* and ?, the whole \
        command), regex:EXPR (found anywhere; anchor with ^ $), list:privilege-escalation, \
        list:package-managers; for database statements also sql:KIND (drop, truncate, alter, \
        grant, delete-without-where, update-without-where, write, ...) and redis:COMMAND \
        (flushall, config, write, ...).\n\
        Exec commands (ssh host 'cmd') are checked exactly before they run; shell lines are \
        checked when Enter is pressed, a guardrail that aliases and scripts can get around. \
        An approve rule holds a shell line until an approver decides (rampart approval, the \
        portal's Requests page, the API; no decision within rules.approval_timeout denies it); \
        an exec or a database statement it matches is refused, since nothing can wait there."
    )]
    Add {
        /// The grant the rule applies to (its id, as `rampart grant list` prints it)
        #[arg(long, conflicts_with = "label", required_unless_present = "label")]
        grant: Option<String>,
        /// The asset label the rule applies to (KEY=VALUE): sessions to assets carrying it
        #[arg(long, value_name = "KEY=VALUE")]
        label: Option<String>,
        /// What the rule matches: any, prefix:WORDS, glob:PATTERN, regex:EXPR, list:NAME,
        /// sql:KIND or redis:COMMAND
        #[arg(long = "match", value_name = "MATCH")]
        matcher: String,
        /// What happens to a matching command: allow, warn (run it, audit an alert), approve
        /// (hold a shell line until an approver decides) or deny
        #[arg(long)]
        action: String,
        /// Where the rule goes in the order (lower first) [default: after the last rule]
        #[arg(long)]
        position: Option<i64>,
    },
    /// List command rules in the order they are asked
    List,
    /// Remove a command rule by id
    Remove {
        /// The rule's id, as `rampart rule list` prints it
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum DomainCommand {
    /// Add a network domain; put assets in it with `asset add/set --domain NAME`
    Add {
        /// The network domain's name
        name: String,
    },
    /// List network domains with their gateways and assets
    List,
    /// Show a network domain: its gateways in priority order and its assets
    Show {
        /// The network domain's name
        name: String,
    },
    /// Remove an empty network domain (one holding assets or gateways is refused)
    Remove {
        /// The network domain's name
        name: String,
    },
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AgentArgs {
    #[command(subcommand)]
    pub command: Option<AgentCommand>,
    #[command(flatten)]
    pub run: AgentRunArgs,
}

/// Agent mode: connect out to Rampart and carry its streams to this network's assets.
#[derive(Debug, Args)]
pub struct AgentRunArgs {
    /// Rampart's agent listener (its agent.listen) to connect out to, as HOST:PORT
    #[arg(long, value_name = "HOST:PORT")]
    pub server: Option<String>,
    /// File holding the one-time enrolment token from `rampart agent token create` (`-`:
    /// standard input); needed for the first connection only
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Directory keeping this agent's identity (its key) and Rampart's pinned host key
    #[arg(long, value_name = "DIR", default_value = "rampart-agent")]
    pub state_dir: PathBuf,
    /// Only these destinations may be reached through this agent, comma-separated: networks
    /// (`10.0.0.0/8`, `192.0.2.7`) and `HOST:PORT` (`db.internal:5432`) [default: any]
    #[arg(long, value_name = "LIST")]
    pub allow: Option<String>,
    /// The longest wait between reconnection attempts (they back off from 1s)
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    pub max_backoff: String,
}

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// One-time enrolment tokens for new agents
    #[command(subcommand)]
    Token(AgentTokenCommand),
    /// List enrolled agents, of one domain or all
    List {
        /// Only this network domain's agents
        #[arg(long, value_name = "DOMAIN")]
        domain: Option<String>,
    },
    /// Revoke an agent: refused from now on, its connection and live streams end
    Revoke {
        /// The agent's name
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AgentTokenCommand {
    /// Make a one-time, expiring enrolment token for an agent of a domain; printed once, only
    /// its hash is kept
    Create {
        /// The network domain the agent reaches assets in
        #[arg(long, value_name = "DOMAIN")]
        domain: String,
        /// The agent's name (sessions record the route `agent NAME`) [default: DOMAIN-agent-N]
        #[arg(long)]
        name: Option<String>,
        /// How long the token may be used (at most 7d)
        #[arg(long, value_name = "DURATION", default_value = "1h")]
        ttl: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum GatewayCommand {
    /// Add an SSH-hop gateway to a domain: Rampart logs in to it over SSH and opens TCP
    /// connections (direct-tcpip) to the domain's assets through it. Its credential goes into
    /// the vault; its host key is pinned on first use (or as ssh.target_host_keys says)
    #[command(
        after_help = "Example:\n  rampart gateway add sg-gw-01 --domain singapore --host 203.0.113.7 \
        --account jump --key-file jump.key"
    )]
    Add {
        /// The gateway's name
        name: String,
        /// The network domain whose assets it reaches
        #[arg(long, value_name = "DOMAIN")]
        domain: String,
        /// The gateway's DNS name or IP address, as Rampart reaches it
        #[arg(long)]
        host: String,
        /// The gateway's SSH port
        #[arg(long, default_value_t = 22)]
        port: u16,
        /// The login Rampart uses on the gateway
        #[arg(long, value_name = "LOGIN")]
        account: String,
        /// Read the password from standard input (prompted without echo on a terminal)
        #[arg(
            long,
            conflicts_with = "key_file",
            required_unless_present = "key_file"
        )]
        password_stdin: bool,
        /// Unencrypted OpenSSH private key file to log in with
        #[arg(long, value_name = "FILE")]
        key_file: Option<PathBuf>,
        /// Order among the domain's gateways (lower first) [default: after the last]
        #[arg(long)]
        priority: Option<u32>,
        /// Pin this host key now (a `.pub` file or `ssh-keyscan` line) instead of on first use;
        /// needed when ssh.target_host_keys is require-pinned
        #[arg(long, value_name = "FILE")]
        host_key_file: Option<PathBuf>,
    },
    /// List gateways, of one domain or all
    List {
        /// Only this network domain's gateways
        #[arg(long, value_name = "DOMAIN")]
        domain: Option<String>,
    },
    /// Show a gateway (never its secret)
    Show {
        /// The gateway's name
        name: String,
    },
    /// Remove a gateway and its secret
    Remove {
        /// The gateway's name
        name: String,
    },
    /// Check a gateway step by step: TCP reach, host key, authentication and, with --asset,
    /// reaching the asset's ssh endpoint (or its first endpoint) through it
    Test {
        /// The gateway's name
        name: String,
        /// Also reach this asset's endpoint through the gateway
        #[arg(long, value_name = "ASSET")]
        asset: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AssetCommand {
    /// Add an asset: a host with one or more endpoints (protocol and port). Without --endpoint
    /// it gets an ssh endpoint on --port
    #[command(
        after_help = "Examples:\n  rampart asset add web-01 --host 10.0.0.5 --port 22\n  \
        rampart asset add db-01 --host 10.0.0.7 --endpoint postgres:5432\n  \
        rampart asset add app-01 --host app.internal --port 2222 --endpoint redis"
    )]
    Add {
        /// The asset's name, used in logins (`USER@ACCOUNT@ASSET`) and grants
        name: String,
        /// DNS name or IP address
        #[arg(long)]
        host: String,
        /// Port of the ssh endpoint [default: 22, unless --endpoint is given]
        #[arg(long)]
        port: Option<u16>,
        /// Another endpoint, PROTOCOL[:PORT] (ssh, postgres, mysql, redis, rdp, vnc, telnet,
        /// kubernetes, tcp; the protocol's usual port when none is given); repeat for several
        #[arg(long = "endpoint", value_name = "PROTOCOL[:PORT]")]
        endpoints: Vec<String>,
        /// The network domain the asset is reached through
        #[arg(long, value_name = "NAME")]
        domain: Option<String>,
        /// Label KEY=VALUE (grants can select assets by label); repeat for several
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
    },
    /// Change an asset's host or network domain
    #[command(group(ArgGroup::new("change").required(true).multiple(true).args(["host", "domain", "no_domain", "label", "remove_label"])))]
    Set {
        /// The asset
        name: String,
        /// New DNS name or IP address (every endpoint moves with it)
        #[arg(long)]
        host: Option<String>,
        /// Put the asset in this network domain
        #[arg(long, value_name = "NAME", conflicts_with = "no_domain")]
        domain: Option<String>,
        /// Take the asset out of its network domain (dialled directly)
        #[arg(long)]
        no_domain: bool,
        /// Set a label KEY=VALUE (repeat for several; an existing key gets the new value)
        #[arg(long, value_name = "KEY=VALUE")]
        label: Vec<String>,
        /// Remove the label with this key (repeat for several)
        #[arg(long, value_name = "KEY")]
        remove_label: Vec<String>,
    },
    /// Add, change, remove or list an asset's endpoints (the protocols it speaks, one port each)
    #[command(subcommand)]
    Endpoint(EndpointCommand),
    /// List assets
    List,
    /// Show one asset
    Show {
        /// The asset
        name: String,
    },
    /// Remove an asset with its accounts and the grants that name it
    Remove {
        /// The asset
        name: String,
        /// Also remove its accounts and grants without asking (needed when not on a terminal)
        #[arg(long)]
        yes: bool,
    },
    /// Pin the asset's SSH host key (from a .pub file or `ssh-keyscan` output, or as fetched with
    /// --scan once an administrator has confirmed its fingerprint), or forget it so the next
    /// connection pins what it sees
    #[command(group(
        ArgGroup::new("how")
            .required(true)
            .args(["key_file", "clear", "scan"])
    ))]
    Hostkey {
        /// The asset
        name: String,
        /// File with the host's public key
        #[arg(long, value_name = "FILE")]
        key_file: Option<PathBuf>,
        /// Forget the pinned key
        #[arg(long)]
        clear: bool,
        /// Connect to the asset, fetch its host key and show its fingerprint (nothing is sent
        /// but the handshake, and nothing is pinned without --pin)
        #[arg(long)]
        scan: bool,
        /// With --scan: pin the fetched key, only if its fingerprint is this one (compare it
        /// with `ssh-keygen -lf` of the host's key, on the host itself)
        #[arg(long, value_name = "SHA256:...", requires = "scan")]
        pin: Option<String>,
    },
    /// Show or change how Rampart logs in to the asset over Telnet: the regular expressions of
    /// its login prompt, password prompt, success and failure, and the login's timeout (each
    /// flag changes one setting; an empty value puts it back to the default)
    #[command(
        after_help = "Example:\n  rampart asset telnet switch-01 --login-prompt 'User Name:\\s*$' --timeout 10s"
    )]
    Telnet {
        /// The asset (it must have a telnet endpoint)
        name: String,
        /// What the device shows when it asks for the account's name (default: login:,
        /// Username:, User Name:, user: at the end of its output)
        #[arg(long, value_name = "REGEX")]
        login_prompt: Option<String>,
        /// What the device shows when it asks for the password (default: Password:, Passcode:)
        #[arg(long, value_name = "REGEX")]
        password_prompt: Option<String>,
        /// What the device shows once logged in (default: a prompt ending in $, #, >, % or ])
        #[arg(long, value_name = "REGEX")]
        success: Option<String>,
        /// What the device shows when it refuses the login (default: Login incorrect,
        /// Authentication failed, Access denied, Bad password, Invalid login/password/user,
        /// Login failed)
        #[arg(long, value_name = "REGEX")]
        failure: Option<String>,
        /// How long the whole login may take (default: ssh.target_answer_timeout), e.g. 20s
        #[arg(long, value_name = "DURATION")]
        timeout: Option<String>,
        /// Put every setting back to its default first
        #[arg(long)]
        reset: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum EndpointCommand {
    /// Add an endpoint: PROTOCOL (ssh, postgres, mysql, redis, rdp, vnc, telnet, kubernetes,
    /// tcp) on PORT (the protocol's usual port when none is given)
    #[command(after_help = "Example:\n  rampart asset endpoint add web-01 postgres 5432")]
    Add {
        /// The asset
        name: String,
        /// The protocol: ssh, postgres, mysql, redis, rdp, vnc, telnet, kubernetes or tcp
        protocol: String,
        /// The port (the protocol's usual port when omitted)
        port: Option<String>,
    },
    /// Change an endpoint's port, its pinned TLS certificate fingerprint, or an RDP endpoint's
    /// login security
    #[command(
        group(ArgGroup::new("change").required(true).multiple(true).args(["port", "tls_fingerprint", "clear_tls_fingerprint", "rdp_security"])),
        after_help = "Examples:\n  rampart asset endpoint set win-01 rdp --tls-fingerprint SHA256:5f...\n  rampart asset endpoint set xrdp-01 rdp --rdp-security tls   # xrdp 0.9: TLS without NLA"
    )]
    Set {
        /// The asset
        name: String,
        /// The protocol: ssh, postgres, mysql, redis, rdp, vnc, telnet, kubernetes or tcp
        protocol: String,
        /// New port
        #[arg(long)]
        port: Option<String>,
        /// Pin the SHA-256 fingerprint of the certificate the target presents in TLS
        #[arg(
            long,
            value_name = "SHA256:HEX",
            conflicts_with = "clear_tls_fingerprint"
        )]
        tls_fingerprint: Option<String>,
        /// Forget the pinned certificate fingerprint
        #[arg(long)]
        clear_tls_fingerprint: bool,
        /// RDP endpoints only: how Rampart logs in. `nla` (the default): NLA (CredSSP), the
        /// password bound to the certificate's key; `tls`: TLS without NLA, for servers that
        /// have none (xrdp 0.9), the password in the RDP logon info inside the pinned TLS.
        /// Standard RDP security (no TLS) is never offered
        #[arg(long, value_name = "nla|tls")]
        rdp_security: Option<String>,
    },
    /// Remove an endpoint (an asset keeps at least one)
    Remove {
        /// The asset
        name: String,
        /// The protocol: ssh, postgres, mysql, redis, rdp, vnc, telnet, kubernetes or tcp
        protocol: String,
    },
    /// List an asset's endpoints
    List {
        /// The asset
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Add an account; its secret goes into the vault and is never printed
    Add {
        /// ACCOUNT@ASSET, for example root@web-01
        account: String,
        /// Read the password from standard input (prompted without echo on a terminal)
        #[arg(
            long,
            conflicts_with = "key_file",
            required_unless_present = "key_file"
        )]
        password_stdin: bool,
        /// Unencrypted OpenSSH private key file to log in with
        #[arg(long, value_name = "FILE")]
        key_file: Option<PathBuf>,
    },
    /// List accounts (never their secrets)
    List {
        /// Only the accounts of this asset
        #[arg(long, value_name = "NAME")]
        asset: Option<String>,
    },
    /// Remove an account and its secret
    Remove {
        /// ACCOUNT@ASSET, as `rampart account list` prints it
        account: String,
    },
    /// Rotate an account's password now (a rotation a crash left is resumed instead)
    Rotate {
        /// ACCOUNT@ASSET
        account: String,
    },
    /// Show an account's rotation settings and rotation history
    History {
        /// ACCOUNT@ASSET
        account: String,
    },
    /// Change how an account rotates: its schedule, rotation account and password length
    Set {
        /// ACCOUNT@ASSET
        account: String,
        /// Rotate on a schedule (30d, 12h, ...), or `never`
        #[arg(long, value_name = "DURATION")]
        rotate_every: Option<String>,
        /// Change the password through this privileged account of the same asset (chpasswd),
        /// or `self` to change it as the account itself (passwd)
        #[arg(long, value_name = "LOGIN")]
        rotate_via: Option<String>,
        /// Length of generated passwords (12 to 128)
        #[arg(long, value_name = "N")]
        password_length: Option<u32>,
        /// Rotate the account after every session that used it (true), from now on, or not
        /// (false)
        #[arg(long, value_name = "BOOL")]
        rotate_after_sessions: Option<bool>,
    },
}

#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("change")
        .required(true)
        .multiple(true)
        .args(["actions", "from", "until", "schedule", "require_mfa", "idle_timeout", "max_duration", "recording"])
))]
pub struct GrantSetArgs {
    /// The grant's id as `rampart grant list` prints it, or its first characters
    pub id: String,
    /// Comma-separated actions, replacing the grant's (e.g. shell,exec,scp)
    #[arg(long, value_name = "LIST")]
    pub actions: Option<String>,
    /// Valid from this RFC 3339 time or date (YYYY-MM-DD, UTC); "" removes the start
    #[arg(long, value_name = "TIME|DATE")]
    pub from: Option<String>,
    /// Valid until this RFC 3339 time or the end of this date (YYYY-MM-DD, UTC); "" removes the end
    #[arg(long, value_name = "TIME|DATE")]
    pub until: Option<String>,
    /// Weekly windows such as "Mon-Fri 08:00-18:00 Europe/Berlin"; "" allows any time
    #[arg(long, value_name = "SCHEDULE")]
    pub schedule: Option<String>,
    /// Whether sessions need a login with a second factor (true or false)
    #[arg(long, value_name = "BOOL")]
    pub require_mfa: Option<bool>,
    /// End sessions idle this long, such as 15m; "" uses the global default
    #[arg(long, value_name = "DURATION")]
    pub idle_timeout: Option<String>,
    /// End sessions this long after they start, such as 8h; "" uses the global default
    #[arg(long, value_name = "DURATION")]
    pub max_duration: Option<String>,
    /// Whether shell and exec sessions are recorded (true or false)
    #[arg(long, value_name = "BOOL")]
    pub recording: Option<bool>,
}

#[derive(Debug, Subcommand)]
pub enum GrantCommand {
    /// Allow a user or group to use accounts on an asset or on assets with labels
    Add(GrantAddArgs),
    /// List grants
    List,
    /// Change a grant's conditions (who and what it covers stay: remove it and add another);
    /// "" unsets a condition. Live sessions it allowed are judged again by the new conditions
    Set(GrantSetArgs),
    /// Remove a grant by id (live sessions it allowed end within seconds)
    Remove {
        /// The grant's id, as `rampart grant list` prints it
        id: String,
    },
    /// Say whether a user may use an account now (or at --at), which grants decide it, and the
    /// session rules in force (the strictest of every allowing grant)
    Explain(GrantExplainArgs),
}

#[derive(Debug, Args)]
pub struct GrantAddArgs {
    /// The user the grant is for
    #[arg(long, conflicts_with = "group", required_unless_present = "group")]
    pub user: Option<String>,
    /// The group the grant is for
    #[arg(long)]
    pub group: Option<String>,
    /// The asset the grant covers
    #[arg(long, conflicts_with = "labels", required_unless_present = "labels")]
    pub asset: Option<String>,
    /// Cover every asset with this label KEY=VALUE; repeat to require several
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Account login the grant allows; repeat for several [default: every account]
    #[arg(long = "account", value_name = "NAME")]
    pub accounts: Vec<String>,
    /// Comma-separated actions: shell, exec, scp, sftp_read, sftp_write, port_forward
    /// (sftp = sftp_read,sftp_write); databases: postgres:connect, mysql:connect,
    /// redis:connect (everything) or postgres:read, mysql:read, redis:read (read-only);
    /// desktops: vnc:connect, vnc:clipboard (copy and paste), rdp:connect, rdp:clipboard
    /// [default: shell,exec,scp,sftp_read,sftp_write]
    #[arg(long, value_name = "LIST")]
    pub actions: Option<String>,
    /// Comma-separated Kubernetes namespaces the grant's kubernetes: actions are limited to;
    /// cluster-wide requests (nodes, lists across namespaces) are then refused
    /// [default: every namespace]
    #[arg(long, value_name = "LIST")]
    pub namespaces: Option<String>,
    /// Valid from this RFC 3339 time, or from the start of this date (YYYY-MM-DD, UTC)
    /// [default: now]
    #[arg(long, value_name = "TIME|DATE")]
    pub from: Option<String>,
    /// Valid until this RFC 3339 time, or to the end of this date (YYYY-MM-DD, UTC: the whole
    /// day included) [default: no end]
    #[arg(long, value_name = "TIME|DATE")]
    pub until: Option<String>,
    /// Weekly windows the grant applies in, e.g. "Mon-Fri 08:00-18:00 Europe/Berlin"
    /// [default: always]
    #[arg(long, value_name = "SCHEDULE")]
    pub schedule: Option<String>,
    /// Only for logins that used a second factor (TOTP)
    #[arg(long)]
    pub require_mfa: bool,
    /// End sessions after this long without input, e.g. 15m [default: session.idle_timeout]
    #[arg(long, value_name = "DURATION")]
    pub idle_timeout: Option<String>,
    /// End sessions this long after they start, e.g. 8h [default: session.max_duration]
    #[arg(long, value_name = "DURATION")]
    pub max_duration: Option<String>,
    /// Do not record shell and exec sessions under this grant (they are still logged as
    /// sessions with their commands and file transfers; the grant shows it in the audit trail).
    /// Another grant that allows the same session and records wins: the strictest applies
    #[arg(long)]
    pub no_recording: bool,
}

#[derive(Debug, Args)]
pub struct GrantExplainArgs {
    /// The user who would connect
    #[arg(long)]
    pub user: String,
    /// The asset they would connect to
    #[arg(long)]
    pub asset: String,
    /// The account on the asset [default: every account on it]
    #[arg(long)]
    pub account: Option<String>,
    /// shell, exec, scp, sftp_read, sftp_write or port_forward
    #[arg(long, default_value = "shell")]
    pub action: String,
    /// Decide for this RFC 3339 time, or the start of this date (YYYY-MM-DD, UTC)
    /// [default: now]
    #[arg(long, value_name = "TIME|DATE")]
    pub at: Option<String>,
    /// Whether the login used a second factor [default: whether the user has one enrolled]
    #[arg(long, value_name = "BOOL")]
    pub mfa: Option<bool>,
    /// Also check the login rules (global and the user's) for a login from this address
    #[arg(long, value_name = "IP")]
    pub from: Option<std::net::IpAddr>,
    /// For a Kubernetes action: decide for a request in this namespace (grants limited to
    /// other namespaces do not count)
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
}

/// Paging of a long list.
#[derive(Debug, Clone, clap::Args)]
pub struct PageArgs {
    /// Show at most this many (the newest)
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Go on from where the previous page stopped (the cursor its last line names)
    #[arg(long, value_name = "CURSOR")]
    pub cursor: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// List sessions, newest first, a page at a time
    List {
        /// Only sessions still open
        #[arg(long)]
        live: bool,
        /// Only this user's sessions
        #[arg(long)]
        user: Option<String>,
        /// Only sessions on this asset
        #[arg(long)]
        asset: Option<String>,
        /// Only sessions started at or after this RFC 3339 time, or from the start of this
        /// date (YYYY-MM-DD, UTC)
        #[arg(long, value_name = "TIME|DATE")]
        since: Option<String>,
        /// Only sessions started before this RFC 3339 time, or to the end of this date
        /// (YYYY-MM-DD, UTC: the whole day included)
        #[arg(long, value_name = "TIME|DATE")]
        until: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show one session
    Show {
        /// The session's id as `rampart session list` prints it, or its first characters
        id: String,
    },
    /// End a live session; its user sees the reason, and the kill is an audit event
    Kill {
        /// The live session's id as `rampart session list --live` prints it, or its first
        /// characters
        id: String,
        /// Shown to the user and kept in the audit trail
        #[arg(long, default_value = "ended by an administrator")]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum VaultCommand {
    /// Show which master key seals the secrets, and check that every secret opens
    Status,
    /// Re-encrypt every secret under a new master key
    RotateKey {
        /// The new key, when the master key is supplied by file or environment
        #[arg(long, value_name = "FILE")]
        new_key_file: Option<PathBuf>,
    },
    /// Write a new random master key to FILE (mode 0600), for --master-key-file
    GenerateKey {
        /// The new key file (must not exist)
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Show the newest audit events (oldest of them first), a page at a time; --cursor goes
    /// further back
    List {
        /// Only events of this kind (`login_failed`, `session_started`, ...)
        #[arg(long)]
        kind: Option<String>,
        /// Only events by this actor, as the list shows it (`user:alice`, `cli:root`, `system`)
        #[arg(long)]
        actor: Option<String>,
        /// Only events whose details contain this text
        #[arg(long, value_name = "TEXT")]
        contains: Option<String>,
        /// Only events at or after this RFC 3339 time, or from the start of this date
        /// (YYYY-MM-DD, UTC)
        #[arg(long, value_name = "TIME|DATE")]
        since: Option<String>,
        /// Only events before this RFC 3339 time, or to the end of this date (YYYY-MM-DD,
        /// UTC: the whole day included)
        #[arg(long, value_name = "TIME|DATE")]
        until: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Search the command log: commands typed in interactive shells
    Commands {
        /// Only this user's commands
        #[arg(long)]
        user: Option<String>,
        /// Only commands on this asset
        #[arg(long)]
        asset: Option<String>,
        /// Only commands at or after this RFC 3339 time, or from the start of this date
        /// (YYYY-MM-DD, UTC)
        #[arg(long, value_name = "TIME|DATE")]
        since: Option<String>,
        /// Only commands matching this regular expression
        #[arg(long, value_name = "RE")]
        grep: Option<String>,
    },
    /// Search the query log: statements run through the database listeners
    Queries {
        /// Only this user's statements
        #[arg(long)]
        user: Option<String>,
        /// Only statements on this asset
        #[arg(long)]
        asset: Option<String>,
        /// Only statements at or after this RFC 3339 time
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Only statements matching this regular expression
        #[arg(long, value_name = "RE")]
        grep: Option<String>,
    },
    /// Write audit events as JSON lines or CSV (the export is itself an audit event)
    Export {
        /// Events at or after this RFC 3339 time, or from the start of this date (YYYY-MM-DD,
        /// UTC)
        #[arg(long, value_name = "TIME|DATE")]
        since: Option<String>,
        /// Events before this RFC 3339 time, or to the end of this date (YYYY-MM-DD, UTC: the
        /// whole day included)
        #[arg(long, value_name = "TIME|DATE")]
        until: Option<String>,
        /// jsonl or csv
        #[arg(long, default_value = "jsonl", value_parser = ["jsonl", "csv"])]
        format: String,
        /// Write to this file (must not exist) instead of standard output
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Delete recordings and session records older than the retention period (audit.retention_days,
    /// default 365); the server does this daily. The deletion is itself an audit event
    Retention,
    /// Show each SIEM sink's progress and how many events it could not deliver
    Sinks,
    /// Check the audit chain, its signed heads and every recording the chain says was made (or
    /// one session's); exit 0 only if all verify
    Verify {
        /// Only this session's recording (the chain is always checked)
        #[arg(long, value_name = "ID")]
        session: Option<String>,
        /// Also check the log against signed heads kept outside the node: a file or an
        /// http(s) URL of JSON lines as `rampart audit anchor` prints them (repeatable)
        #[arg(long, value_name = "FILE|URL")]
        anchor: Vec<String>,
    },
    /// Print the newest signed chain head (seq, hash, time, signature) as one JSON line, to
    /// keep outside the node and check later with `audit verify --anchor`
    Anchor {
        /// Append the line to this file instead of printing it
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Where to write the backup (must not exist): a directory, or one tar archive when the
    /// name ends in .tar. It holds the database snapshot, the keys, the recordings and
    /// backup.json listing every file's SHA-256
    #[arg(long, value_name = "DIR|FILE.tar")]
    pub to: PathBuf,
    /// Leave the vault master key out of the backup; keep it apart and give it to `rampart
    /// restore` with --master-key-file
    #[arg(long)]
    pub without_master_key: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The first day or time of the period (a date such as 2026-11-01, UTC, or an RFC 3339
    /// time); default: 30 days before --to
    #[arg(long, value_name = "DATE|TIME")]
    pub from: Option<String>,
    /// The last day of the period, included (a date), or the time it ends (RFC 3339,
    /// excluded); default: now
    #[arg(long, value_name = "DATE|TIME")]
    pub to: Option<String>,
    /// The form: html (one self-contained page with charts), csv (one table for
    /// spreadsheets), pdf (the HTML printed by Chromium, which must be installed) or json
    #[arg(long, value_name = "FORMAT", default_value = "html", value_parser = ["html", "csv", "pdf", "json"])]
    pub format: String,
    /// Write the report to this file instead of standard output (a PDF needs it when standard
    /// output is a terminal)
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup, as `rampart backup --to` wrote it: its directory or its .tar archive
    #[arg(value_name = "BACKUP")]
    pub from: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// Every argument of every command, as `rampart help CMD` shows them, has a help text.
    #[test]
    fn every_argument_has_help_text() {
        fn walk(command: &clap::Command, path: &str, blank: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    blank.push(format!("{path} {id}"));
                }
            }
            for sub in command.get_subcommands() {
                if sub.get_about().is_none() && sub.get_name() != "help" {
                    blank.push(format!("{path} {} (the command)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), blank);
            }
        }
        let mut blank = Vec::new();
        walk(&Cli::command(), "rampart", &mut blank);
        assert!(blank.is_empty(), "arguments without help text: {blank:#?}");
    }
}
