//! `rampart db token ...`: personal database tokens, the password a database client types
//! through Rampart. The token is printed once; the store keeps only its hash.

use super::{name, time_text};
use crate::cli::DbTokenCommand;
use crate::output::{Table, done, or_dash, print_json};
use rampart_core::ExposeSecret;
use rampart_core::audit::Actor;
use rampart_core::time_arg::parse_duration;
use rampart_store::IdKind;
use rampart_store::Store;

pub async fn run(
    store: &Store,
    actor: &Actor,
    json: bool,
    command: DbTokenCommand,
) -> anyhow::Result<()> {
    match command {
        DbTokenCommand::Create { user, ttl } => {
            let user = name("user", &user)?;
            let ttl = parse_duration("--ttl", &ttl)?;
            let (token, secret) = store.create_db_token(actor, &user, ttl).await?;
            if json {
                return print_json(
                    &serde_json::json!({ "token": token, "secret": secret.expose_secret() }),
                );
            }
            eprintln!(
                "issued database token {} for user {} (expires {}); it is shown only now:",
                token.id,
                token.user,
                time_text(token.expires_at)
            );
            println!("{}", secret.expose_secret());
            Ok(())
        }
        DbTokenCommand::List { user } => {
            let user = user.map(|u| name("user", &u)).transpose()?;
            let tokens = store.db_tokens(user.as_ref()).await?;
            if json {
                return print_json(&tokens);
            }
            let now = time::OffsetDateTime::now_utc();
            let mut table = Table::new(["ID", "USER", "KIND", "STATUS", "EXPIRES", "LAST USED"]);
            for t in &tokens {
                let status =
                    super::tokens::status(t.revoked_at.is_some(), t.superseded, t.is_active(now));
                table.row([
                    t.id.to_string(),
                    t.user.to_string(),
                    t.kind.as_str().to_owned(),
                    status.to_owned(),
                    time_text(t.expires_at),
                    or_dash(t.last_used_at.map(time_text)),
                ]);
            }
            table.print("no database tokens: issue one with `rampart db token create --user NAME`");
            Ok(())
        }
        DbTokenCommand::Revoke { id } => {
            let id = store.resolve_id(IdKind::DbToken, &id).await?;
            let token = store.revoke_db_token(actor, id).await?;
            done(
                json,
                &token,
                &format!("revoked database token {id} of user {}", token.user),
            )
        }
    }
}
