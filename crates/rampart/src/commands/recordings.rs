//! `rampart audit verify`, `rampart replay`, `rampart recording export`: the evidence.

use crate::cli::{RecordingCommand, ReplayArgs};
use crate::output::{done, print_json};
use anyhow::{Context, bail};
use rampart_audit::{
    PublicKey, has_recording, public_key_from_openssh, read_cast, verify_recording,
};
use rampart_core::audit::{Actor, AuditEvent};
use rampart_store::Store;
use rampart_store::node_keys::public_key_of;
use serde::Serialize;
use std::io::Write;
use std::time::Duration;
use uuid::Uuid;

/// Session kinds that are recorded (file transfers and forwards are logged, not recorded).
const RECORDED_KINDS: [&str; 2] = ["shell", "exec"];

fn audit_public_key(store: &Store) -> anyhow::Result<PublicKey> {
    let text = public_key_of(&store.data_dir().audit_key_path())?;
    public_key_from_openssh(&text)
        .map_err(|err| anyhow::anyhow!("the audit key is unreadable: {err}"))
}

fn session_id(text: &str) -> anyhow::Result<Uuid> {
    Uuid::parse_str(text).with_context(|| {
        format!("invalid session id {text:?}: expected the id `rampart session list` prints")
    })
}

#[derive(Debug, Serialize)]
struct VerifyLine {
    item: String,
    ok: bool,
    detail: String,
}

/// Checks the chain and the recordings; prints one line per item; fails if anything fails.
pub async fn verify(store: &Store, json: bool, only: Option<&str>) -> anyhow::Result<()> {
    let key = audit_public_key(store)?;
    let mut lines = Vec::new();
    match store.verify_audit_chain().await? {
        Ok(count) => lines.push(VerifyLine {
            item: "audit chain".into(),
            ok: true,
            detail: format!("{count} events"),
        }),
        Err(problem) => lines.push(VerifyLine {
            item: "audit chain".into(),
            ok: false,
            detail: problem.to_string(),
        }),
    }
    lines.push(verify_seals(store, &key).await?);
    let dir = store.data_dir().recordings_dir();
    let sessions = match only {
        Some(id) => vec![store.session(session_id(id)?).await?],
        None => store.list_sessions(false).await?,
    };
    for session in sessions {
        let expected = session.recorded && RECORDED_KINDS.contains(&session.kind.as_str());
        if !expected && !has_recording(&dir, session.id) {
            continue;
        }
        let item = format!("recording {}", session.id);
        match verify_recording(&dir, session.id, &key) {
            Ok(report) => lines.push(VerifyLine {
                item,
                ok: true,
                detail: report.describe(),
            }),
            Err(_) if session.is_live() => lines.push(VerifyLine {
                item,
                ok: true,
                detail: "live: sealed when the session ends".into(),
            }),
            Err(problem) => lines.push(VerifyLine {
                item,
                ok: false,
                detail: problem.to_string(),
            }),
        }
    }
    let failures = lines.iter().filter(|l| !l.ok).count();
    if json {
        print_json(&lines)?;
    } else {
        for line in &lines {
            println!(
                "{} {}: {}",
                if line.ok { "ok  " } else { "FAIL" },
                line.item,
                line.detail
            );
        }
    }
    if failures > 0 {
        bail!("{failures} item(s) failed verification");
    }
    if !json {
        println!("everything verifies");
    }
    Ok(())
}

/// Checks the signatures over the chain head: each must be the audit key's, over a hash the
/// chain still has, and the chain must reach at least the newest signed head.
async fn verify_seals(store: &Store, key: &PublicKey) -> anyhow::Result<VerifyLine> {
    let item = "audit chain signatures".to_owned();
    let seals = store.audit_seals().await?;
    let head = store.audit_head().await?.map_or(0, |(seq, _)| seq);
    for seal in &seals {
        if !rampart_audit::chain_head_signed(key, seal.seq, &seal.hash, &seal.signature) {
            return Ok(VerifyLine {
                item,
                ok: false,
                detail: format!("the signature over event {} is not valid", seal.seq),
            });
        }
        match store.audit_event_hash(seal.seq).await? {
            Some(hash) if hash == seal.hash => {}
            Some(_) => {
                return Ok(VerifyLine {
                    item,
                    ok: false,
                    detail: format!(
                        "event {} no longer matches its signed hash: the chain was rewritten",
                        seal.seq
                    ),
                });
            }
            None => {
                return Ok(VerifyLine {
                    item,
                    ok: false,
                    detail: format!(
                        "the chain was signed up to event {} but ends at {head}: events were deleted",
                        seal.seq
                    ),
                });
            }
        }
    }
    let detail = match seals.last() {
        Some(last) => format!(
            "{} signature(s), signed up to event {}",
            seals.len(),
            last.seq
        ),
        None => {
            "no signature yet (the server signs the head every minute and at shutdown)".to_owned()
        }
    };
    Ok(VerifyLine {
        item,
        ok: true,
        detail,
    })
}

/// Refuses to show evidence that does not verify, unless forced.
fn check_before_use(store: &Store, id: Uuid, force: bool) -> anyhow::Result<()> {
    let key = audit_public_key(store)?;
    let dir = store.data_dir().recordings_dir();
    if !has_recording(&dir, id) {
        bail!("session {id} has no recording (only shell and exec sessions are recorded)");
    }
    match verify_recording(&dir, id, &key) {
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
    let id = session_id(&args.id)?;
    let session = store.session(id).await?;
    check_before_use(store, id, args.force)?;
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
            let id = session_id(&id)?;
            store.session(id).await?;
            check_before_use(store, id, force)?;
            let event = AuditEvent::RecordingExported {
                session: id.to_string(),
                file: output.display().to_string(),
            };
            store.record_event(actor, &event).await?;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&output)
                .with_context(|| format!("cannot create {}", output.display()))?;
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
