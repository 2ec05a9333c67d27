//! `rampart replay`, `rampart recording export`: showing the evidence (`audit verify` is
//! `verify.rs`).

use crate::cli::{ExportArgs, RecordingCommand, ReplayArgs};
use crate::config::Config;
use crate::output::done;
use anyhow::{Context, bail};
use rampart_audit::{
    PublicKey, has_recording, public_key_from_openssh, read_cast, verify_anchored_recording,
};
use rampart_core::audit::{Actor, AuditEvent};
use rampart_store::node_keys::public_key_of;
use rampart_store::{IdKind, Store};
use std::io::Write;
use std::path::{Path, PathBuf};
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

/// Where a recording is read from: the node's recordings directory, or (with
/// `recording.store = "s3"`, when the node has no copy) a temporary directory it was fetched
/// into from the bucket.
enum Source {
    Local(PathBuf),
    Bucket(tempfile::TempDir),
}

impl Source {
    fn dir(&self) -> &Path {
        match self {
            Source::Local(dir) => dir,
            Source::Bucket(dir) => dir.path(),
        }
    }
}

fn find_recording(store: &Store, config: &Config, id: Uuid) -> anyhow::Result<Source> {
    let dir = store.data_dir().recordings_dir();
    if has_recording(&dir, id) {
        return Ok(Source::Local(dir));
    }
    let Some(settings) = config.recording_store.s3() else {
        bail!("session {id} has no recording (only shell and exec sessions are recorded)");
    };
    let client = rampart_s3::Client::new(settings.clone())?;
    let fetched = tempfile::tempdir().context("cannot make a temporary directory")?;
    match rampart_s3::fetch(&client, id, fetched.path()) {
        Ok(()) => Ok(Source::Bucket(fetched)),
        Err(rampart_s3::FetchError::Missing(_)) => bail!(
            "session {id} has no recording here nor in the bucket {} (only shell and exec \
             sessions are recorded)",
            settings.bucket
        ),
        Err(err) => Err(err.into()),
    }
}

/// Refuses to show evidence that does not verify, or is not the recording the hash chain
/// anchors for the session, unless forced.
async fn check_before_use(
    store: &Store,
    config: &Config,
    id: Uuid,
    force: bool,
) -> anyhow::Result<Source> {
    let key = audit_public_key(store)?;
    let source = find_recording(store, config, id)?;
    let chain = store.chain_recording(id).await?;
    let checked = verify_anchored_recording(source.dir(), id, &key, &chain).map(|_| ());
    match checked {
        Ok(()) => Ok(source),
        Err(problem) if force => {
            eprintln!("warning: the recording does not verify: {problem}");
            Ok(source)
        }
        Err(problem) => {
            bail!("the recording does not verify: {problem} (use --force to use it anyway)")
        }
    }
}

pub async fn replay(
    store: &Store,
    config: &Config,
    actor: &Actor,
    args: &ReplayArgs,
) -> anyhow::Result<()> {
    let id = session_id(store, &args.id).await?;
    let session = store.session(id).await?;
    let source = check_before_use(store, config, id, args.force).await?;
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
    let (header, events) = read_cast(source.dir(), id).map_err(anyhow::Error::msg)?;
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
    config: &Config,
    actor: &Actor,
    json: bool,
    command: RecordingCommand,
) -> anyhow::Result<()> {
    match command {
        RecordingCommand::CheckBucket => check_bucket(config, json),
        RecordingCommand::Export(args) => export(store, config, actor, json, &args).await,
    }
}

/// `rampart recording export`: a terminal or command session as an asciicast file, a desktop
/// session as a video.
async fn export(
    store: &Store,
    config: &Config,
    actor: &Actor,
    json: bool,
    args: &ExportArgs,
) -> anyhow::Result<()> {
    let ExportArgs {
        id,
        output,
        force,
        fps,
    } = args;
    let (output, force, fps) = (output.as_path(), *force, *fps);
    let id = session_id(store, id).await?;
    let session = store.session(id).await?;
    // What the export needs is checked before the recording is: a desktop needs ffmpeg and a
    // video file name; a terminal session is not a video.
    let ffmpeg = if session.kind.is_desktop() {
        super::video::check_output(output)?;
        Some(super::video::ffmpeg()?)
    } else {
        if super::video::is_video(output) {
            bail!("session {id} is not a desktop session: export it as an asciicast file (.cast)");
        }
        None
    };
    let source = check_before_use(store, config, id, force).await?;
    // The file first: an export that cannot even start is not an export. The event then
    // precedes the first byte written.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(output)
        .with_context(|| format!("cannot create {}", output.display()))?;
    let event = AuditEvent::RecordingExported {
        session: id.to_string(),
        file: output.display().to_string(),
    };
    if let Err(err) = store.record_event(actor, &event).await {
        drop(file);
        let _ = std::fs::remove_file(output);
        return Err(err.into());
    }
    if let Some(ffmpeg) = ffmpeg {
        drop(file);
        let path = output.to_owned();
        let encoded = tokio::task::spawn_blocking(move || {
            super::video::export(&ffmpeg, source.dir(), id, fps, &path)
        })
        .await
        .context("the export stopped")?;
        let frames = match encoded {
            Ok(frames) => frames,
            Err(err) => {
                let _ = std::fs::remove_file(output);
                return Err(err);
            }
        };
        let bytes = std::fs::metadata(output).map(|m| m.len()).unwrap_or(0);
        return done(
            json,
            &serde_json::json!({ "session": id, "file": output, "bytes": bytes, "frames": frames, "fps": fps }),
            &format!(
                "wrote {} ({} frames at {fps} per second, {bytes} bytes)",
                output.display(),
                frames
            ),
        );
    }
    // A command's raw input and output are merged into the asciicast as it is written.
    let mut writer = std::io::BufWriter::new(&mut file);
    let bytes =
        rampart_audit::write_cast(source.dir(), id, &mut writer).map_err(anyhow::Error::msg)?;
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

/// `rampart recording check-bucket`: the bucket's versioning and Object Lock, and whether WORM
/// mode (`recording.s3.object_lock`) may run on it.
pub fn check_bucket(config: &Config, json: bool) -> anyhow::Result<()> {
    let Some(settings) = config.recording_store.s3() else {
        bail!(
            "recording.store is not s3: recordings stay in the data directory, there is no bucket to check"
        );
    };
    let client = rampart_s3::Client::new(settings.clone())?;
    let facts = client.bucket_facts()?;
    let on = |flag: bool| if flag { "on" } else { "off" };
    let worm_ready = facts.versioning && facts.object_lock;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "bucket": settings.bucket,
                "versioning": facts.versioning,
                "object_lock": facts.object_lock,
                "worm_mode": settings.object_lock,
            })
        );
    } else {
        println!("bucket: {}", settings.bucket);
        println!("versioning: {}", on(facts.versioning));
        println!("object lock: {}", on(facts.object_lock));
        println!(
            "worm mode (recording.s3.object_lock): {}",
            on(settings.object_lock)
        );
    }
    if settings.object_lock && !worm_ready {
        bail!("{}", worm_refusal(&settings.bucket, facts));
    }
    Ok(())
}

/// Why WORM mode cannot run on a bucket (`serve` says the same).
pub fn worm_refusal(bucket: &str, facts: rampart_s3::BucketFacts) -> String {
    let mut missing = Vec::new();
    if !facts.versioning {
        missing.push("versioning");
    }
    if !facts.object_lock {
        missing.push("Object Lock");
    }
    format!(
        "recording.s3.object_lock is set but the bucket {bucket} has {} off: recordings could be \
         deleted or overwritten there. Create the bucket with Object Lock enabled (which turns \
         versioning on), or unset recording.s3.object_lock",
        missing.join(" and ")
    )
}
