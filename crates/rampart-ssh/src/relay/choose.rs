//! The menu glue: a bare `ssh alice@bastion` with a terminal gets the menu of what alice may
//! open now.

use super::SessionContext;
use super::requests::PtyRequest;
use crate::menu::{Menu, MenuItem, MenuOutcome};
use rampart_core::{AccountRef, Action};
use rampart_session::authorize::Snapshot;
use russh::server::Msg;
use russh::{Channel, ChannelMsg};
use time::OffsetDateTime;

/// Shows the menu of accounts the user may open a shell on now, until they choose one (returned)
/// or leave (`None`). The terminal size follows window changes.
pub(super) async fn run_menu(
    context: &SessionContext,
    channel: &mut Channel<Msg>,
    pty: &mut PtyRequest,
) -> Option<AccountRef> {
    let choices = shell_choices(context).await;
    let items = choices
        .iter()
        .map(|(account, asset)| MenuItem {
            label: account.to_string(),
            detail: asset
                .address(rampart_core::Protocol::Ssh)
                .or_else(|| {
                    super::telnet::is_telnet_asset(asset).then(|| {
                        let address = asset.address(rampart_core::Protocol::Telnet);
                        format!("{} (telnet)", address.unwrap_or_else(|| asset.host.clone()))
                    })
                })
                .unwrap_or_else(|| asset.host.clone()),
        })
        .collect();
    let mut menu = Menu::new(context.user.name.as_str(), items, pty.cols, pty.rows);
    channel.data_bytes(menu.render().into_bytes()).await.ok()?;
    loop {
        let outcome = match channel.wait().await? {
            ChannelMsg::Data { data } => menu.input(&data),
            ChannelMsg::WindowChange {
                col_width,
                row_height,
                pix_width,
                pix_height,
            } => {
                pty.resize(col_width, row_height, pix_width, pix_height);
                menu.resize(col_width, row_height);
                MenuOutcome::Pending
            }
            ChannelMsg::Eof | ChannelMsg::Close => return None,
            _ => continue,
        };
        match outcome {
            MenuOutcome::Pending => channel.data_bytes(menu.render().into_bytes()).await.ok()?,
            MenuOutcome::Quit => {
                channel.data_bytes(&b"\x1b[H\x1b[2J"[..]).await.ok()?;
                return None;
            }
            MenuOutcome::Chosen(index) => {
                let (account, _) = choices.into_iter().nth(index)?;
                let line = format!("\x1b[H\x1b[2JConnecting to {account}...\r\n");
                channel.data_bytes(line.into_bytes()).await.ok()?;
                return Some(account);
            }
        }
    }
}

/// The accounts the user may open a shell on now, with their assets, by asset then login.
pub(super) async fn shell_choices(
    context: &SessionContext,
) -> Vec<(AccountRef, rampart_core::Asset)> {
    let Ok(snapshot) = Snapshot::for_user(&context.store, &context.user.name).await else {
        tracing::error!("cannot load the menu's targets");
        return Vec::new();
    };
    let Some(access) = snapshot.as_user(&context.user.name, context.mfa, OffsetDateTime::now_utc())
    else {
        return Vec::new();
    };
    access
        .allowed_accounts(Action::Shell)
        .into_iter()
        .map(|(asset, login)| {
            (
                AccountRef {
                    login: login.clone(),
                    asset: asset.name.clone(),
                },
                asset.clone(),
            )
        })
        .collect()
}
