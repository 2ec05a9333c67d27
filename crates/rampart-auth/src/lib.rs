//! The one authenticator for every login (SSH, web, and later database and desktop fronts).
//!
//! A front speaks its wire protocol (SSH auth methods, an HTTP form) and asks the
//! [`Authenticator`]; it maps the outcome to its own answer. The authenticator does, in order:
//! 1. source rules and lockout ([`rampart_core::login_rules`], counters in the store);
//! 2. the first factor: a password (Argon2id), or a public key whose signature the front verified;
//! 3. the second factor (TOTP), for users who have one or when the node requires one.
//!
//! INVARIANTS:
//! - Unknown user, locked, refused by the rules, disabled and wrong credential give the same
//!   [`Refusal::Denied`], and a password attempt costs exactly one Argon2id check in each case
//!   (A2).
//! - Failure counters and locks are the store's, keyed by factor, user and source, so they are
//!   shared by every front (A1). A key that is not the user's counts for the source only.
//! - A first factor alone grants nothing: it is a [`PendingSecondFactor`], which only
//!   [`Authenticator::second_factor`] completes, for the same login name (A6, A7).
//! - Password checks run on the blocking pool behind one process-wide limit sized to the cores
//!   (`hashing`), never on an async worker thread.
//! - A store that cannot answer is [`Refusal::Unavailable`]: refused, never counted as a guess.
//! - Audit events: `login_failed`, `login_locked` and `login_refused` are written here (through
//!   the store, bounded under a storm); `login_succeeded` is written by the front together with
//!   what the login opens (an SSH connection, a browser session).
#![forbid(unsafe_code)]

mod authenticator;
mod hashing;
mod passkey_logins;
pub mod passkeys;

pub use authenticator::{
    Attempt, Authenticator, Credential, DirectoryUnavailable, FirstFactor, Front, Login,
    MAX_FAILED_CODES, PasswordDirectory, PendingSecondFactor, Refusal, SecondFactor,
};
pub use passkey_logins::PasskeyError;
pub use passkeys::Passkeys;
