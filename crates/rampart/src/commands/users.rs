//! `rampart user ...`

use super::{name, read_secret_from_stdin, read_small_file, time_text};
use crate::cli::{UserCommand, UserKeyCommand, UserMfaCommand};
use crate::output::{Table, done, join_or_dash, print_fields, print_json};
use anyhow::bail;
use rampart_core::audit::Actor;
use rampart_core::login_rules::{IpNet, LoginRules, format_cidr_list, parse_cidr_list};
use rampart_core::schedule::Schedule;
use rampart_core::{Name, Role, User, UserSource};
use rampart_store::ssh_keys::{ParsedPublicKey, parse_public_keys};
use rampart_store::{Named, Store};
use std::path::Path;
use zeroize::Zeroizing;

pub async fn run(
    store: &Store,
    actor: &Actor,
    json: bool,
    command: UserCommand,
) -> anyhow::Result<()> {
    match command {
        UserCommand::Invite { name: user, ttl } => {
            let user = name("user", &user)?;
            let ttl = rampart_core::time_arg::parse_duration("--ttl", &ttl)?;
            let (expires_at, token) = store.create_invite(actor, &user, ttl).await?;
            print_enrolment_link(json, &user, expires_at, &token)
        }
        UserCommand::Add {
            name: user,
            role,
            keys,
        } => {
            let user = name("user", &user)?;
            let role = Role::parse(&role)?;
            let mut parsed = Vec::new();
            for path in &keys {
                parsed.extend(read_keys(path)?);
            }
            let added = store.add_user(actor, &user, role, &parsed).await?;
            done(
                json,
                &added,
                &format!(
                    "added user {} (role {}, {} key(s))",
                    added.name,
                    added.role,
                    added.keys.len()
                ),
            )
        }
        UserCommand::List => {
            let users = store.list_users().await?;
            if json {
                return print_json(&users);
            }
            let mut table = Table::new([
                "NAME", "ROLE", "STATUS", "KEYS", "PASSWORD", "MFA", "GROUPS", "CREATED",
            ]);
            for user in &users {
                table.row([
                    user.name.to_string(),
                    user.role.to_string(),
                    status(user).to_owned(),
                    user.keys.len().to_string(),
                    password_column(user).to_owned(),
                    mfa_column(user).to_owned(),
                    join_or_dash(user.groups.iter().map(ToString::to_string)),
                    time_text(user.created_at),
                ]);
            }
            table.print("no users yet: add one with `rampart user add NAME --key FILE`");
            Ok(())
        }
        UserCommand::Show { name: user } => {
            let user = store.user(&name("user", &user)?).await?;
            let locks = store
                .user_locks(&user.name, time::OffsetDateTime::now_utc())
                .await?;
            if json {
                let mut shown = serde_json::to_value(&user)?;
                if let Some(fields) = shown.as_object_mut() {
                    let locked_until = locks.iter().map(|lock| lock.until).max();
                    fields.insert(
                        "locked_until".into(),
                        serde_json::json!(locked_until.map(time_text)),
                    );
                    let by_factor: Vec<_> = locks
                        .iter()
                        .map(|lock| {
                            serde_json::json!({
                                "factor": lock.factor.as_str(),
                                "until": time_text(lock.until),
                            })
                        })
                        .collect();
                    fields.insert("locks".into(), serde_json::json!(by_factor));
                }
                return print_json(&shown);
            }
            let [allow_from, deny_from, login_hours] = rule_texts(&user.login_rules);
            print_fields(&[
                ("name", user.name.to_string()),
                ("id", user.id.to_string()),
                ("role", user.role.to_string()),
                ("status", status(&user).to_owned()),
                ("source", user.source.to_string()),
                (
                    "password",
                    match user.source {
                        UserSource::Ldap => "the LDAP directory's (bind)",
                        UserSource::Local if user.has_password => "set",
                        UserSource::Local => "not set",
                    }
                    .to_owned(),
                ),
                ("mfa", mfa_status(&user).to_owned()),
                (
                    "groups",
                    join_or_dash(user.groups.iter().map(ToString::to_string)),
                ),
                ("allow from", allow_from),
                ("deny from", deny_from),
                ("login hours", login_hours),
                (
                    "lock",
                    if locks.is_empty() {
                        "not locked".to_owned()
                    } else {
                        locks
                            .iter()
                            .map(|lock| {
                                format!(
                                    "{} logins locked until {}",
                                    lock.factor,
                                    time_text(lock.until)
                                )
                            })
                            .collect::<Vec<_>>()
                            .join("; ")
                    },
                ),
                ("created", time_text(user.created_at)),
            ]);
            println!();
            let mut table = Table::new(["FINGERPRINT", "TYPE", "COMMENT", "ADDED"]);
            for key in &user.keys {
                table.row([
                    key.fingerprint.clone(),
                    key.algorithm.clone(),
                    key.comment.clone(),
                    time_text(key.added_at),
                ]);
            }
            table.print("no SSH keys");
            Ok(())
        }
        UserCommand::Set {
            name: user,
            role,
            allow_from,
            deny_from,
            login_hours,
        } => {
            let user = name("user", &user)?;
            if allow_from.is_none() && deny_from.is_none() && login_hours.is_none() {
                // Only the role (the argument group asks for one of the four).
                let role = Role::parse(role.as_deref().unwrap_or_default())?;
                let updated = store.set_user_role(actor, &user, role).await?;
                return done(
                    json,
                    &updated,
                    &format!("user {user} now has role {}", updated.role),
                );
            }
            // Everything is parsed before anything changes.
            let networks = |flag: &str, text: Option<String>| {
                text.map(|text| {
                    parse_cidr_list(flag, &text).map_err(|err| anyhow::anyhow!("{flag}: {err}"))
                })
                .transpose()
            };
            let allow_from = networks("--allow-from", allow_from)?;
            let deny_from = networks("--deny-from", deny_from)?;
            let login_hours = login_hours
                .map(|text| match text.trim() {
                    "" => Ok(None),
                    text => Schedule::parse(text)
                        .map(Some)
                        .map_err(|err| anyhow::anyhow!("--login-hours: {err}")),
                })
                .transpose()?;
            let mut rules = store.user(&user).await?.login_rules;
            if let Some(allow_from) = allow_from {
                rules.allow_from = allow_from;
            }
            if let Some(deny_from) = deny_from {
                rules.deny_from = deny_from;
            }
            if let Some(login_hours) = login_hours {
                rules.hours = login_hours;
            }
            let role = role.as_deref().map(Role::parse).transpose()?;
            if let Some(role) = role {
                store.set_user_role(actor, &user, role).await?;
            }
            let updated = store.set_user_login_rules(actor, &user, &rules).await?;
            done(
                json,
                &updated,
                &format!(
                    "set the login rules of user {user}: {}",
                    describe_rules(&updated.login_rules)
                ),
            )
        }
        UserCommand::Unlock { name: user } => {
            let user = name("user", &user)?;
            store.unlock_user(actor, &user).await?;
            let result = serde_json::json!({ "user": user, "unlocked": true });
            done(json, &result, &format!("unlocked user {user}"))
        }
        UserCommand::Disable { name: user } => {
            let user = store
                .set_user_disabled(actor, &name("user", &user)?, true)
                .await?;
            done(json, &user, &format!("disabled user {}", user.name))
        }
        UserCommand::Enable { name: user } => {
            let user = store
                .set_user_disabled(actor, &name("user", &user)?, false)
                .await?;
            done(json, &user, &format!("enabled user {}", user.name))
        }
        UserCommand::Remove { name: user, yes } => {
            let user = name("user", &user)?;
            let cascade = store.cascade_of(Named::User, &user).await?;
            super::confirm_cascade(&format!("user {user}"), cascade, yes)?;
            let grants_removed = store.remove_user(actor, &user).await?;
            let result = serde_json::json!({ "removed": user, "grants_removed": grants_removed });
            done(
                json,
                &result,
                &format!("removed user {user} and {grants_removed} personal grant(s)"),
            )
        }
        UserCommand::Key(UserKeyCommand::Add { name: user, file }) => {
            let user = name("user", &user)?;
            let keys = read_keys(&file)?;
            let mut updated = None;
            for key in &keys {
                updated = Some(store.add_user_key(actor, &user, key).await?);
            }
            let fingerprints: Vec<&str> = keys.iter().map(|k| k.fingerprint.as_str()).collect();
            let message = format!("added key {} to user {user}", fingerprints.join(", "));
            match updated {
                Some(updated) => done(json, &updated, &message),
                None => Ok(()),
            }
        }
        UserCommand::Key(UserKeyCommand::Remove {
            name: user,
            fingerprint,
        }) => {
            let user = store
                .remove_user_key(actor, &name("user", &user)?, &fingerprint)
                .await?;
            done(
                json,
                &user,
                &format!("removed key {fingerprint} from user {}", user.name),
            )
        }
        UserCommand::Password { name: user } => {
            let user = name("user", &user)?;
            // Fail on an unknown user before asking for a password.
            store.user(&user).await?;
            let password = read_secret_from_stdin(&format!("New password for {user}: "), true)?;
            store.set_user_password(actor, &user, &password).await?;
            let result = serde_json::json!({ "user": user, "password": "set" });
            done(json, &result, &format!("set the password of user {user}"))
        }
        UserCommand::Mfa(UserMfaCommand::Enroll {
            name: user,
            replace,
            ttl,
        }) => enroll_totp(store, actor, json, &name("user", &user)?, replace, &ttl).await,
        UserCommand::Mfa(UserMfaCommand::Reset { name: user }) => {
            let user = name("user", &user)?;
            let removed = store.reset_second_factors(actor, &user).await?;
            let result = serde_json::json!({
                "user": user,
                "mfa": "not enrolled",
                "passkeys_removed": removed.passkeys,
            });
            let message = match (removed.totp, removed.passkeys) {
                (true, 0) => format!("removed the second factor of user {user}"),
                (totp, passkeys) => {
                    let passkeys = match passkeys {
                        1 => "1 passkey".to_owned(),
                        n => format!("{n} passkeys"),
                    };
                    let what = if totp {
                        format!("TOTP and {passkeys}")
                    } else {
                        passkeys
                    };
                    format!("removed the second factors of user {user} ({what})")
                }
            };
            done(json, &result, &format!("{message}: they must enroll again"))
        }
    }
}

/// Sends the user an enrolment link for their own TOTP second factor: they open it in the
/// portal and set their password and second factor there; no administrator ever sees the
/// secret. Also the bootstrap of the first administrator (README, "First administrator").
async fn enroll_totp(
    store: &Store,
    actor: &Actor,
    json: bool,
    user: &Name,
    replace: bool,
    ttl: &str,
) -> anyhow::Result<()> {
    let ttl = rampart_core::time_arg::parse_duration("--ttl", ttl)?;
    // Fail on an unknown or already enrolled user before making a link.
    let existing = store.user(user).await?;
    if existing.mfa_enrolled && !replace {
        bail!(
            "user {user} already has a second factor: use --replace to send a link for a new one \
             (the old one works until the link is used), or `rampart user mfa reset {user}`"
        );
    }
    let (expires_at, token) = store.create_invite(actor, user, ttl).await?;
    print_enrolment_link(json, user, expires_at, &token)
}

/// Prints a one-time enrolment link (`/invite?token=...`) for `user`.
fn print_enrolment_link(
    json: bool,
    user: &Name,
    expires_at: time::OffsetDateTime,
    token: &rampart_core::SecretString,
) -> anyhow::Result<()> {
    let token = rampart_core::ExposeSecret::expose_secret(token);
    let path = Zeroizing::new(format!("/invite?token={token}"));
    let expires = rampart_core::time_arg::format_rfc3339(expires_at);
    done(
        json,
        &serde_json::json!({ "user": user, "path": path.as_str(), "expires_at": expires }),
        &format!(
            "enrolment link for {user} (works once, until {expires}): they set their own password \
             and TOTP second factor there, which no administrator sees; append to the portal's \
             address:\n{}",
            path.as_str()
        ),
    )
}

fn mfa_status(user: &User) -> &'static str {
    if user.mfa_enrolled {
        "totp"
    } else {
        "not enrolled"
    }
}

fn read_keys(path: &Path) -> anyhow::Result<Vec<ParsedPublicKey>> {
    let text = read_small_file(path)?;
    Ok(parse_public_keys(&path.display().to_string(), &text)?)
}

/// Allow list, deny list and login hours for people, saying what an unset rule means.
fn rule_texts(rules: &LoginRules) -> [String; 3] {
    let list = |nets: &[IpNet], none: &str| match format_cidr_list(nets) {
        text if text.is_empty() => none.to_owned(),
        text => text,
    };
    [
        list(&rules.allow_from, "any address"),
        list(&rules.deny_from, "-"),
        rules
            .hours
            .as_ref()
            .map_or_else(|| "any time".to_owned(), ToString::to_string),
    ]
}

/// One line for people: `allow from 10.0.0.0/8, deny from -, login hours any time`.
fn describe_rules(rules: &LoginRules) -> String {
    let [allow_from, deny_from, login_hours] = rule_texts(rules);
    format!("allow from {allow_from}, deny from {deny_from}, login hours {login_hours}")
}

/// The PASSWORD column: `ldap` for a directory user (their password is the directory's).
/// The user's second factors, as the user list shows them.
fn mfa_column(user: &User) -> &'static str {
    match (user.mfa_enrolled, user.passkeys) {
        (true, true) => "totp+passkey",
        (true, false) => "totp",
        (false, true) => "passkey",
        (false, false) => "-",
    }
}

fn password_column(user: &User) -> &'static str {
    match user.source {
        UserSource::Ldap => "ldap",
        UserSource::Local if user.has_password => "set",
        UserSource::Local => "-",
    }
}

fn status(user: &User) -> &'static str {
    if user.disabled { "disabled" } else { "active" }
}
