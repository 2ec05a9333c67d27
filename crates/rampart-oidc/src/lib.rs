//! OpenID Connect sign-in (issue 20): the node as a relying party of one provider.
//!
//! - [`settings`]: the `[oidc]` configuration as the node uses it, and the group map's
//!   decision (which Rampart groups and role the provider's groups give).
//! - [`jwt`]: ID tokens verified against the provider's keys and checked (pure).
//! - [`provider`]: discovery, the authorization request (PKCE, state, nonce), the code and
//!   refresh grants, and the provider's keys, fetched again when a token names a key id the
//!   node does not know (key rotation), at most once per [`provider::JWKS_MISS_INTERVAL`] while
//!   the id stays unknown.
//! - [`provision`]: just-in-time provisioning of the signed-in user, their groups and role.
//! - [`check`]: the periodic refresh-token check that disables a user the provider no longer
//!   gives tokens to (their sessions end through the auth epoch).
//!
//! The provider is reached with ureq on tokio's blocking pool (bounded answers, timeouts, no
//! redirects followed), over TLS checked against the system's roots or the configured CA file;
//! plain HTTP only to a loopback address.
#![forbid(unsafe_code)]

pub mod check;
pub mod jwt;
pub mod provider;
pub mod provision;
pub mod settings;

pub use provider::{Provider, ProviderError};
pub use settings::{GroupTarget, OidcSettings};
