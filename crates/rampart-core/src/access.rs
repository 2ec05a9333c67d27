//! What a caller of the web API may do: the user's role narrowed by the scope of the API token
//! they present (a browser session carries the role's full rights).
//!
//! Pure: the web crate asks [`Rights::allows`] with the access level a route declares in its
//! route table and whether the request changes anything.

use crate::model::Role;
use crate::name::InvalidInput;
use serde::{Deserialize, Serialize};
use std::fmt;

/// What an API token may be used for, at most. Ordered: `Read < Write < Admin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenScope {
    /// Read-only requests (`GET`).
    Read,
    /// Also changes that are not administration: the caller's own tokens, killing sessions for
    /// auditors.
    Write,
    /// Everything the user's role allows, administration included.
    Admin,
}

impl TokenScope {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::Read => "read",
            TokenScope::Write => "write",
            TokenScope::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Result<Self, InvalidInput> {
        match text {
            "read" => Ok(TokenScope::Read),
            "write" => Ok(TokenScope::Write),
            "admin" => Ok(TokenScope::Admin),
            other => Err(InvalidInput::new(format!(
                "unknown token scope {other:?}: expected read, write or admin"
            ))),
        }
    }

    /// The widest scope a token of a user with `role` can usefully have: only administrators
    /// administer.
    pub fn widest_for(role: Role) -> Self {
        match role {
            Role::Admin => TokenScope::Admin,
            Role::Auditor | Role::User => TokenScope::Write,
        }
    }
}

impl fmt::Display for TokenScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who may call a route at all, as the route table declares it. Object-level checks (a user
/// sees only their own sessions) come on top, in the handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// No authentication (health checks, the OpenAPI document, the login itself).
    Public,
    /// Any authenticated user; the handler restricts them to their own objects.
    User,
    /// Auditors and administrators.
    Auditor,
    /// Administrators only.
    Admin,
}

/// The rights of one authenticated request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rights {
    pub role: Role,
    /// `None` for a browser session: the role's full rights.
    pub scope: Option<TokenScope>,
}

/// Why [`Rights::allows`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The role does not reach the route.
    Role,
    /// The role would, the token's scope does not.
    Scope,
}

impl Rights {
    /// Whether a request to a route declared with `access` may proceed; `mutates` is true for
    /// anything but a read. A read needs scope `read`; a change needs `write`, and a change on
    /// an administrators' route needs `admin`.
    pub fn allows(&self, access: Access, mutates: bool) -> Result<(), Refusal> {
        let role_ok = match access {
            Access::Public | Access::User => true,
            Access::Auditor => matches!(self.role, Role::Admin | Role::Auditor),
            Access::Admin => self.role == Role::Admin,
        };
        if !role_ok {
            return Err(Refusal::Role);
        }
        let needed = match (access, mutates) {
            (_, false) => TokenScope::Read,
            (Access::Admin, true) => TokenScope::Admin,
            (_, true) => TokenScope::Write,
        };
        match self.scope {
            Some(scope) if scope < needed => Err(Refusal::Scope),
            _ => Ok(()),
        }
    }

    /// Whether the caller sees every user's objects (sessions, recordings, commands, tokens for
    /// reading), rather than only their own.
    pub fn sees_everyone(&self) -> bool {
        matches!(self.role, Role::Admin | Role::Auditor)
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin && self.scope.is_none_or(|s| s == TokenScope::Admin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_narrows_role() {
        let admin_read = Rights {
            role: Role::Admin,
            scope: Some(TokenScope::Read),
        };
        assert!(admin_read.allows(Access::Admin, false).is_ok());
        assert_eq!(admin_read.allows(Access::Admin, true), Err(Refusal::Scope));
        let admin_write = Rights {
            role: Role::Admin,
            scope: Some(TokenScope::Write),
        };
        assert_eq!(admin_write.allows(Access::Admin, true), Err(Refusal::Scope));
        assert!(admin_write.allows(Access::Auditor, true).is_ok());
        let user_admin_scope = Rights {
            role: Role::User,
            scope: Some(TokenScope::Admin),
        };
        assert_eq!(
            user_admin_scope.allows(Access::Auditor, false),
            Err(Refusal::Role)
        );
        let auditor = Rights {
            role: Role::Auditor,
            scope: None,
        };
        assert!(auditor.allows(Access::Auditor, true).is_ok());
        assert_eq!(auditor.allows(Access::Admin, false), Err(Refusal::Role));
        for scope in ["read", "write", "admin"] {
            assert_eq!(TokenScope::parse(scope).unwrap().as_str(), scope);
        }
        assert!(TokenScope::parse("root").is_err());
    }
}
