//! `rampart user ...`

use super::{name, read_secret_from_stdin, read_small_file, time_text};
use crate::cli::{UserCommand, UserKeyCommand, UserMfaCommand};
use crate::output::{Table, done, join_or_dash, print_fields, print_json};
use anyhow::{Context, bail};
use rampart_core::audit::Actor;
use rampart_core::login_rules::{IpNet, LoginRules, format_cidr_list, parse_cidr_list};
use rampart_core::schedule::Schedule;
use rampart_core::{Name, Role, User, mfa};
use rampart_store::ssh_keys::{ParsedPublicKey, parse_public_keys};
use rampart_store::{Named, Store};
use serde::Serialize;
use std::io::{BufRead, IsTerminal, Read};
use std::path::Path;
use zeroize::Zeroizing;

/// The issuer authenticator apps show beside the user name.
const TOTP_ISSUER: &str = "Rampart";
/// The longest line read as a code: a code is six digits, anything much longer is a mistake.
const MAX_CODE_LINE_BYTES: u64 = 64;

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
            let token = rampart_core::ExposeSecret::expose_secret(&token).to_owned();
            let path = format!("/invite?token={token}");
            let expires = rampart_core::time_arg::format_rfc3339(expires_at);
            done(
                json,
                &serde_json::json!({ "user": user, "path": path, "expires_at": expires }),
                &format!(
                    "enrolment link for {user} (works once, until {expires}); append to the portal's address:\n{path}"
                ),
            )
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
                    if user.has_password { "set" } else { "-" }.to_owned(),
                    if user.mfa_enrolled { "totp" } else { "-" }.to_owned(),
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
                (
                    "password",
                    if user.has_password { "set" } else { "not set" }.to_owned(),
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
        }) => enroll_totp(store, actor, json, &name("user", &user)?, replace).await,
        UserCommand::Mfa(UserMfaCommand::Reset { name: user }) => {
            let user = name("user", &user)?;
            store.reset_totp(actor, &user).await?;
            let result = serde_json::json!({ "user": user, "mfa": "not enrolled" });
            done(
                json,
                &result,
                &format!("removed the second factor of user {user}: they must enroll again"),
            )
        }
    }
}

/// Shows a new secret as a QR code and URI, and stores it only once a code from the user's app
/// matches it: an enrolment the app cannot answer would lock the user out.
async fn enroll_totp(
    store: &Store,
    actor: &Actor,
    json: bool,
    user: &Name,
    replace: bool,
) -> anyhow::Result<()> {
    // Fail on an unknown or already enrolled user before showing a secret.
    if store.user(user).await?.mfa_enrolled && !replace {
        bail!(
            "user {user} already has a second factor: use --replace to enroll a new one \
             (the old one stops working)"
        );
    }
    let secret = rampart_store::new_totp_secret()?;
    let uri = Zeroizing::new(mfa::otpauth_uri(&secret, user.as_str(), TOTP_ISSUER));
    if json {
        #[derive(Serialize)]
        struct Enrollment<'a> {
            user: &'a Name,
            otpauth_uri: &'a str,
        }
        let line = Zeroizing::new(serde_json::to_string(&Enrollment {
            user,
            otpauth_uri: &uri,
        })?);
        println!("{}", line.as_str());
    } else {
        let qr = Zeroizing::new(qr_code(&uri)?);
        eprintln!(
            "Scan this QR code with {user}'s authenticator app, or enter the URI below in it:"
        );
        println!("{}\n\n{}", qr.as_str(), uri.as_str());
    }
    let code = read_code("Code from the authenticator app: ")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("the system clock is before 1970")?
        .as_secs();
    let Some(step) = mfa::verify(&secret, &code, now) else {
        bail!(
            "the code does not match: nothing was stored (check that the app's clock is right, \
             then enroll again)"
        );
    };
    store
        .enroll_totp(actor, user, &secret, replace, Some(step))
        .await?;
    let result = serde_json::json!({ "user": user, "mfa": "totp" });
    done(
        json,
        &result,
        &format!("enrolled a TOTP second factor for user {user}"),
    )
}

/// The QR code of `text` in Unicode half blocks, two modules per character cell. Drawn light on
/// dark (dark modules blank), for the usual dark terminal background; the quiet zone stays.
fn qr_code(text: &str) -> anyhow::Result<String> {
    use qrcode::render::unicode::Dense1x2;
    let code = qrcode::QrCode::new(text.as_bytes()).context("cannot draw the QR code")?;
    Ok(code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .build())
}

/// Reads one line from standard input (a terminal or a pipe) as a code. Apps show codes as
/// `123 456`, so spaces are dropped.
fn read_code(prompt: &str) -> anyhow::Result<String> {
    eprint!("{prompt}");
    let mut line = Zeroizing::new(String::new());
    let read = std::io::stdin()
        .lock()
        .take(MAX_CODE_LINE_BYTES)
        .read_line(&mut line)
        .context("cannot read the code from standard input")?;
    // Nothing echoed a newline after the prompt: end its line so errors start on their own.
    if !std::io::stdin().is_terminal() {
        eprintln!();
    }
    if read == 0 {
        bail!("no code on standard input: nothing was stored");
    }
    Ok(line.split_whitespace().collect())
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

fn status(user: &User) -> &'static str {
    if user.disabled { "disabled" } else { "active" }
}
