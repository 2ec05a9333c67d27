//! `rampart replay`, `rampart recording export`: showing the evidence (`audit verify` is
//! `verify.rs`).

use crate::cli::{RecordingCommand, ReplayArgs};
use crate::output::done;
use anyhow::{Context, bail};
use rampart_audit::{
    PublicKey, has_recording, public_key_from_openssh, read_cast, verify_anchored_recording,
};
use rampart_core::audit::{Actor, AuditEvent};
use rampart_store::node_keys::public_key_of;
use rampart_store::{IdKind, Store};
use std::io::Write;
use std::time::Duration;
use uuid::Uuid;

pub(super) fn audit_public_key(store: &Store) -> anyhow::Result<PublicKey> {
    let text = public_key_of(&store.data_dir().audit_key_path())?;
    public_key_from_openssh(&text)
        .map_err(|err| anyhow::anyhow!("the audit key is unreadable: {err}"))
}

/// The session `text` names: its id, or a unique prefix of it.
pub(super) async fn session_id(store: &Store, text: &str) -> anyhow::Result<Uuid> {
    Ok(store.resolve_id(IdKind::Session, text).await?)
}

/// Refuses to show evidence that does not verify, or is not the recording the hash chain
/// anchors for the session, unless forced.
async fn check_before_use(store: &Store, id: Uuid, force: bool) -> anyhow::Result<()> {
    let key = audit_public_key(store)?;
    let dir = store.data_dir().recordings_dir();
    if !has_recording(&dir, id) {
        bail!("session {id} has no recording (only shell and exec sessions are recorded)");
    }
    let chain = store.chain_recording(id).await?;
    match verify_anchored_recording(&dir, id, &key, &chain) {
        Ok(_) => Ok(()),
        Err(problem) if force => {
            eprintln!("warning: the recording does not verify: {problem}");
            Ok(())
        }
        Err(problem) => {
            bail!("the recording does not verify: {problem} (use --force to use it anyway)")
        }
    }
}

pub async fn replay(store: &Store, actor: &Actor, args: &ReplayArgs) -> anyhow::Result<()> {
    let id = session_id(store, &args.id).await?;
    let session = store.session(id).await?;
    check_before_use(store, id, args.force).await?;
    if !(args.speed > 0.0 && args.speed.is_finite()) {
        bail!("--speed must be a positive number");
    }
    // Watching is itself audited (E5), before anything is shown.
    store
        .record_event(
            actor,
            &AuditEvent::RecordingViewed {
                session: id.to_string(),
            },
        )
        .await?;
    let (header, events) =
        read_cast(&store.data_dir().recordings_dir(), id).map_err(anyhow::Error::msg)?;
    eprintln!(
        "replaying session {id}: {} as {}@{} ({}x{}), started {}",
        session.user,
        session.account,
        session.asset,
        header.width,
        header.height,
        rampart_core::time_arg::format_rfc3339(session.started_at)
    );
    let mut stdout = std::io::stdout().lock();
    let mut clock = 0.0f64;
    for (at, code, data) in events {
        if code != "o" {
            continue;
        }
        if !args.no_wait {
            let mut wait = ((at - clock) / args.speed).max(0.0);
            if let Some(max) = args.max_wait {
                wait = wait.min(max.max(0.0));
            }
            stdout.flush()?;
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        }
        clock = at;
        stdout.write_all(data.as_bytes())?;
    }
    stdout.flush()?;
    eprintln!("\r\nend of session {id}");
    Ok(())
}

pub async fn run(
    store: &Store,
    actor: &Actor,
    json: bool,
    command: RecordingCommand,
) -> anyhow::Result<()> {
    match command {
        RecordingCommand::Export { id, output, force } => {
            let id = session_id(store, &id).await?;
            store.session(id).await?;
            check_before_use(store, id, force).await?;
            // The file first: an export that cannot even start is not an export. The event
            // then precedes the first byte written.
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&output)
                .with_context(|| format!("cannot create {}", output.display()))?;
            let event = AuditEvent::RecordingExported {
                session: id.to_string(),
                file: output.display().to_string(),
            };
            if let Err(err) = store.record_event(actor, &event).await {
                drop(file);
                let _ = std::fs::remove_file(&output);
                return Err(err.into());
            }
            // A command's raw input and output are merged into the asciicast as it is written.
            let mut writer = std::io::BufWriter::new(&mut file);
            let bytes =
                rampart_audit::write_cast(&store.data_dir().recordings_dir(), id, &mut writer)
                    .map_err(anyhow::Error::msg)?;
            writer.flush()?;
            drop(writer);
            done(
                json,
                &serde_json::json!({ "session": id, "file": output, "bytes": bytes }),
                &format!(
                    "wrote {} ({} bytes); play it with: asciinema play {}",
                    output.display(),
                    bytes,
                    output.display()
                ),
            )
        }
    }
}
