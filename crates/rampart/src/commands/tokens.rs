//! `rampart token ...`: API tokens for the REST API. The token is printed once; the store keeps
//! only its hash.

use super::{name, time_text};
use crate::cli::TokenCommand;
use crate::output::{Table, done, or_dash, print_json};
use rampart_core::ExposeSecret;
use rampart_core::access::TokenScope;
use rampart_core::audit::Actor;
use rampart_store::IdKind;
use rampart_store::Store;

pub async fn run(
    store: &Store,
    actor: &Actor,
    json: bool,
    command: TokenCommand,
) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create {
            user,
            scope,
            expires,
            description,
        } => {
            let user = name("user", &user)?;
            let scope = TokenScope::parse(&scope)?;
            let expires_at = expires
                .as_deref()
                .map(|text| rampart_web::api::expiry(text, time::OffsetDateTime::now_utc()))
                .transpose()?;
            let (token, secret) = store
                .create_api_token(actor, &user, scope, &description, expires_at)
                .await?;
            if json {
                return print_json(
                    &serde_json::json!({ "token": token, "secret": secret.expose_secret() }),
                );
            }
            eprintln!(
                "issued token {} for user {} (scope {}, {}); it is shown only now:",
                token.id,
                token.user,
                token.scope,
                token
                    .expires_at
                    .map_or("no expiry".to_owned(), |at| format!(
                        "expires {}",
                        time_text(at)
                    ))
            );
            println!("{}", secret.expose_secret());
            Ok(())
        }
        TokenCommand::List { user } => {
            let user = user.map(|u| name("user", &u)).transpose()?;
            let tokens = store.api_tokens(user.as_ref()).await?;
            if json {
                return print_json(&tokens);
            }
            let now = time::OffsetDateTime::now_utc();
            let mut table = Table::new([
                "ID",
                "USER",
                "SCOPE",
                "STATUS",
                "EXPIRES",
                "LAST USED",
                "DESCRIPTION",
            ]);
            for t in &tokens {
                let status = status(t.revoked_at.is_some(), t.superseded, t.is_active(now));
                table.row([
                    t.id.to_string(),
                    t.user.to_string(),
                    t.scope.to_string(),
                    status.to_owned(),
                    or_dash(t.expires_at.map(time_text)),
                    or_dash(t.last_used_at.map(time_text)),
                    or_dash((!t.description.is_empty()).then(|| t.description.clone())),
                ]);
            }
            table.print(
                "no API tokens: issue one with `rampart token create --user NAME --scope read`",
            );
            Ok(())
        }
        TokenCommand::Revoke { id } => {
            let id = store.resolve_id(IdKind::ApiToken, &id).await?;
            let token = store.revoke_api_token(actor, id).await?;
            done(
                json,
                &token,
                &format!("revoked token {id} of user {}", token.user),
            )
        }
    }
}

/// What a token list says of a token (API and database tokens alike).
pub(super) fn status(revoked: bool, superseded: bool, active: bool) -> &'static str {
    if revoked {
        "revoked"
    } else if superseded {
        "superseded (credentials changed)"
    } else if !active {
        "expired"
    } else {
        "active"
    }
}
