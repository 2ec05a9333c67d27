//! The SSH user name carries the target: `alice`, `alice@web-01` or `alice@root@web-01`.

use rampart_core::{AccountRef, InvalidInput, Name};

/// What the user asked for in their SSH user name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    /// `alice`: show the menu of what alice may use.
    Menu,
    /// `alice@web-01`: the one account alice may use on web-01.
    Asset(Name),
    /// `alice@root@web-01`: account root on web-01.
    Account(AccountRef),
}

/// A parsed SSH login name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginName {
    pub user: Name,
    pub target: TargetSpec,
}

impl LoginName {
    pub fn parse(text: &str) -> Result<Self, InvalidInput> {
        let parts: Vec<&str> = text.split('@').collect();
        let (user, target) = match parts.as_slice() {
            [user] => (user, TargetSpec::Menu),
            [user, asset] => (user, TargetSpec::Asset(Name::parse("asset", asset)?)),
            [user, login, asset] => (
                user,
                TargetSpec::Account(AccountRef {
                    login: Name::parse("account", login)?,
                    asset: Name::parse("asset", asset)?,
                }),
            ),
            _ => {
                return Err(InvalidInput::new(
                    "expected USER, USER@ASSET or USER@ACCOUNT@ASSET as the SSH user name",
                ));
            }
        };
        Ok(Self {
            user: Name::parse("user", user)?,
            target,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_names() {
        assert_eq!(LoginName::parse("alice").unwrap().target, TargetSpec::Menu);
        let asset = LoginName::parse("alice@web-01").unwrap();
        assert_eq!(asset.user.as_str(), "alice");
        assert_eq!(
            asset.target,
            TargetSpec::Asset(Name::parse("a", "web-01").unwrap())
        );
        let account = LoginName::parse("alice@root@web-01").unwrap();
        assert_eq!(
            account.target,
            TargetSpec::Account(AccountRef::parse("root@web-01").unwrap())
        );
        for bad in ["", "@web", "a@b@c@d", "alice@", "al ice", "alice@root@"] {
            assert!(LoginName::parse(bad).is_err(), "{bad:?}");
        }
    }
}
