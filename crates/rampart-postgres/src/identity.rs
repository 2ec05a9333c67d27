//! Who the client is and what they want, from the startup message's `user` parameter:
//! `USER@ASSET` (the one account the user may use there) or `USER@ACCOUNT@ASSET`.
//! libpq and every driver pass it through unchanged (`psql "user=alice@pg-01 ..."`).

use rampart_core::Name;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbLogin {
    pub user: Name,
    pub account: Option<Name>,
    pub asset: Name,
}

/// Parses `alice@pg-01` or `alice@dbuser@pg-01`.
pub fn parse(login: &str) -> Result<DbLogin, String> {
    let parts: Vec<&str> = login.split('@').collect();
    let name = |what: &str, text: &str| {
        Name::parse(what, text).map_err(|_| format!("invalid {what} in user name {login:?}"))
    };
    match parts.as_slice() {
        [user, asset] => Ok(DbLogin {
            user: name("user", user)?,
            account: None,
            asset: name("asset", asset)?,
        }),
        [user, account, asset] => Ok(DbLogin {
            user: name("user", user)?,
            account: Some(name("account", account)?),
            asset: name("asset", asset)?,
        }),
        _ => Err(
            "the user name must be USER@ASSET or USER@ACCOUNT@ASSET (e.g. alice@pg-01)".to_owned(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_forms_and_refuses_others() {
        let one = parse("alice@pg-01").unwrap();
        assert_eq!(
            (one.user.as_str(), one.account, one.asset.as_str()),
            ("alice", None, "pg-01")
        );
        let two = parse("alice@app@pg-01").unwrap();
        assert_eq!(two.account.unwrap().as_str(), "app");
        for bad in ["alice", "a@b@c@d", "@pg-01", "alice@"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
