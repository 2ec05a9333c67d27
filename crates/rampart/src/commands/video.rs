//! `rampart recording export` of a desktop session: the recording played into frames
//! (`rampart_desktop::video`) and piped to ffmpeg as raw RGBA, which encodes the file. Why ffmpeg
//! and not a crate: encoding H.264 or VP9 is a codec library's job (ffmpeg links x264 and
//! libvpx); a Rust encoder would add minutes of compile time for what one installed tool does
//! better. Nothing but pixels reaches ffmpeg: no secret is in its argv or environment.

use anyhow::{Context, bail};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use uuid::Uuid;

/// The video formats an export writes, by the output's extension: the codec arguments for
/// ffmpeg.
fn codec(output: &Path) -> Option<&'static [&'static str]> {
    let extension = output.extension()?.to_str()?.to_ascii_lowercase();
    match extension.as_str() {
        "mp4" | "mkv" => Some(&["-c:v", "libx264", "-preset", "veryfast", "-crf", "23"]),
        "webm" => Some(&[
            "-c:v",
            "libvpx-vp9",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            "-b:v",
            "0",
            "-crf",
            "35",
        ]),
        _ => None,
    }
}

/// Whether `output` names a video file (what a desktop session exports to).
pub fn is_video(output: &Path) -> bool {
    codec(output).is_some()
}

/// ffmpeg on the PATH, or why not.
pub fn ffmpeg() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("ffmpeg"))
        .find(|candidate| candidate.is_file())
        .context(
            "a desktop recording is exported as video with ffmpeg, which is not installed \
             (Debian: apt install ffmpeg)",
        )
}

/// Checks the output before anything is written: a video extension ffmpeg can encode.
pub fn check_output(output: &Path) -> anyhow::Result<()> {
    if !is_video(output) {
        bail!(
            "a desktop session exports as video: name the file .mp4, .mkv or .webm (not {})",
            output.display()
        );
    }
    Ok(())
}

/// Encodes `session`'s desktop recording in `dir` into `output` (already created, empty) at
/// `fps` frames a second. Returns the frames encoded. Blocking: run it off the async threads.
pub fn export(
    ffmpeg: &Path,
    dir: &Path,
    session: Uuid,
    fps: u32,
    output: &Path,
) -> anyhow::Result<u64> {
    let codec = codec(output).context("not a video file name")?;
    let (width, height) =
        rampart_desktop::video::first_size(dir, session).map_err(anyhow::Error::msg)?;
    let log = tempfile::tempfile().context("cannot make a temporary file for ffmpeg's messages")?;
    let mut child = Command::new(ffmpeg)
        .args(["-hide_banner", "-loglevel", "error", "-nostdin"])
        .args(["-f", "rawvideo", "-pixel_format", "rgba"])
        .args(["-video_size", &format!("{width}x{height}")])
        .args(["-framerate", &fps.to_string(), "-i", "pipe:0"])
        .args(codec)
        // 4:2:0 (what players expect) needs even sides.
        .args([
            "-vf",
            "pad=ceil(iw/2)*2:ceil(ih/2)*2",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-metadata", &format!("comment=Rampart session {session}")])
        // The file was created (empty) by the caller, so it is never one that existed before.
        .arg("-y")
        .arg(output)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(log.try_clone().context("cannot pass ffmpeg its log")?)
        .spawn()
        .with_context(|| format!("cannot run {}", ffmpeg.display()))?;
    let mut stdin = child.stdin.take().context("ffmpeg has no input")?;
    let rendered =
        rampart_desktop::video::render(dir, session, fps, (width, height), &mut |frame| {
            stdin
                .write_all(frame)
                .map_err(|err| format!("ffmpeg stopped taking frames: {err}"))
        });
    drop(stdin);
    let status = child.wait().context("cannot wait for ffmpeg")?;
    let said = || {
        let mut log = log.try_clone().ok()?;
        std::io::Seek::rewind(&mut log).ok()?;
        let mut text = String::new();
        log.take(4096).read_to_string(&mut text).ok()?;
        Some(text.trim().to_owned())
    };
    if !status.success() {
        bail!(
            "ffmpeg could not encode the video ({status}): {}",
            said().unwrap_or_default()
        );
    }
    rendered.map_err(anyhow::Error::msg)
}
