//! The LDAP directory (issue 20): logins by bind and the periodic sync of users, their SSH
//! public keys and group memberships.
//!
//! - [`settings`]: `[ldap]`, validated (TLS unless a loopback directory is allowed in clear).
//! - [`Directory`]: the client (ldap3 over rustls). As a [`rampart_auth::PasswordDirectory`] it
//!   checks a directory user's password for the one authenticator, which keeps lockout, login
//!   rules, identical refusals and the second factor.
//! - [`sync`]: the directory read whole and applied by the store (`Store::apply_ldap_sync`).
#![forbid(unsafe_code)]

mod directory;
pub mod settings;
pub mod sync;

pub use directory::{Directory, DirectoryError, MAX_ENTRIES};
pub use rampart_auth::PasswordDirectory;
pub use settings::{GroupTarget, LdapSettings, ServiceBind, Transport};
pub use sync::{SyncError, sync_once};
