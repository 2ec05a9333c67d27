//! A desktop recording played into still frames at a fixed rate, for a video export: the
//! recorded desktop stream (see [`crate::screen`]) applied to a [`Framebuffer`] in time order,
//! the screen emitted every `1/fps` seconds of the session. Reads one recorded frame at a
//! time: memory stays one screen whatever the recording's length.

use crate::screen::Framebuffer;
use rampart_audit::{RawFrames, Stream};
use std::path::Path;
use uuid::Uuid;

/// The first screen size of a desktop recording (what a video of it is sized by).
pub fn first_size(dir: &Path, session: Uuid) -> Result<(u16, u16), String> {
    let mut frames = open(dir, session)?;
    while let Some((stream, _, data)) = frames.next_frame()? {
        if stream != Stream::Output {
            continue;
        }
        if let [b'I' | b'K', w0, w1, h0, h1, ..] = data.as_slice() {
            let (width, height) = (
                u16::from_be_bytes([*w0, *w1]),
                u16::from_be_bytes([*h0, *h1]),
            );
            crate::rfb::check_size(width, height).map_err(|err| err.to_string())?;
            return Ok((width, height));
        }
    }
    Err("the recording holds no screen".to_owned())
}

fn open(dir: &Path, session: Uuid) -> Result<RawFrames, String> {
    RawFrames::open(dir, session)?
        .ok_or_else(|| format!("session {session} has no desktop recording"))
}

/// Plays `session`'s recording and calls `emit` with the screen (RGBA, `size` wide and high:
/// a screen of another size is cropped or padded with black at the top left) at every
/// `1/fps` seconds of the session, and once more at its end. Returns the frames emitted.
pub fn render(
    dir: &Path,
    session: Uuid,
    fps: u32,
    size: (u16, u16),
    emit: &mut dyn FnMut(&[u8]) -> Result<(), String>,
) -> Result<u64, String> {
    if fps == 0 {
        return Err("the frame rate must be at least 1".to_owned());
    }
    let mut frames = open(dir, session)?;
    let mut screen = Framebuffer::new(size.0, size.1);
    let mut canvas = vec![0u8; usize::from(size.0) * usize::from(size.1) * 4];
    let mut emitted = 0u64;
    // The time of the next video frame, in microseconds of the session.
    let at = |n: u64| n.saturating_mul(1_000_000) / u64::from(fps);
    while let Some((stream, micros, data)) = frames.next_frame()? {
        if stream != Stream::Output {
            continue;
        }
        while at(emitted) < micros {
            emit(paint(&screen, size, &mut canvas))?;
            emitted += 1;
        }
        screen.apply_message(&data).map_err(|why| {
            format!(
                "the recording's screen at {:.1} s is unreadable: {why}",
                micros as f64 / 1e6
            )
        })?;
    }
    emit(paint(&screen, size, &mut canvas))?;
    Ok(emitted + 1)
}

/// The screen as a `size` frame: itself when the sizes agree, else copied row by row into
/// `canvas` (cropped or padded).
fn paint<'a>(screen: &'a Framebuffer, size: (u16, u16), canvas: &'a mut [u8]) -> &'a [u8] {
    if screen.size() == size {
        return screen.pixels();
    }
    canvas.fill(0);
    let (width, _) = screen.size();
    let from_row = usize::from(width) * 4;
    let to_row = usize::from(size.0) * 4;
    let row = from_row.min(to_row);
    for (src, dst) in screen
        .pixels()
        .chunks_exact(from_row.max(1))
        .zip(canvas.chunks_exact_mut(to_row.max(1)))
    {
        if let (Some(dst), Some(src)) = (dst.get_mut(..row), src.get(..row)) {
            dst.copy_from_slice(src);
        }
    }
    canvas
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::screen::{copy_message, pixels_message, size_message};
    use bytes::Bytes;
    use rampart_audit::{CastHeader, Recorder, RecordingOptions};

    /// A recorded 4x2 desktop: green at the start, a red pixel at 0.25 s copied right at
    /// 0.45 s; played at 10 frames a second, the frames show each change from its moment on.
    #[test]
    fn frames_show_each_recorded_change_from_its_moment_on() {
        let tmp = tempfile::tempdir().unwrap();
        let session = Uuid::now_v7();
        let header = CastHeader::new(4, 2, None, None, "desktop".into());
        let options = RecordingOptions {
            raw_streams: true,
            cap: None,
        };
        let mut recorder = Recorder::create_with(tmp.path(), session, &header, options).unwrap();
        let green: Vec<u8> = [0u8, 200, 0, 255].repeat(8);
        let started = std::time::Instant::now();
        let mut write = |message: Bytes, at_ms: u64| {
            let until = started + std::time::Duration::from_millis(at_ms);
            std::thread::sleep(until.saturating_duration_since(std::time::Instant::now()));
            recorder.stream(Stream::Output, &message).unwrap();
        };
        write(size_message(4, 2), 0);
        write(pixels_message(0, 0, 4, 2, &green), 0);
        write(pixels_message(0, 0, 1, 1, &[255, 0, 0, 255]), 250);
        write(copy_message(3, 1, 1, 1, 0, 0), 450);
        recorder.flush_chunk().unwrap();
        let mut frames = Vec::new();
        let emitted = render(tmp.path(), session, 10, (4, 2), &mut |frame| {
            frames.push(frame.to_vec());
            Ok(())
        })
        .unwrap();
        assert_eq!(emitted as usize, frames.len());
        let pixel = |frame: &[u8], x: usize, y: usize| frame[(y * 4 + x) * 4..][..4].to_vec();
        let red = vec![255, 0, 0, 255];
        // The recorded times are at least the intended ones (sleeps never end early).
        assert!(frames.len() >= 5, "{} frames", frames.len());
        assert_eq!(pixel(&frames[1], 0, 0), vec![0, 200, 0, 255]);
        let first_red = frames.iter().position(|f| pixel(f, 0, 0) == red).unwrap();
        assert!(first_red >= 3, "red from frame {first_red}");
        let first_copy = frames.iter().position(|f| pixel(f, 3, 1) == red).unwrap();
        assert!(first_copy > first_red, "{first_copy} {first_red}");
        assert_eq!(pixel(frames.last().unwrap(), 3, 1), red);
        assert_eq!(first_size(tmp.path(), session).unwrap(), (4, 2));
    }

    /// A recorded message that does not fit the screen stops the export with an error.
    #[test]
    fn a_rectangle_outside_the_screen_is_an_error_not_a_panic() {
        let mut screen = Framebuffer::new(4, 2);
        let err = screen
            .apply_message(&pixels_message(3, 1, 2, 2, &[0; 16]))
            .unwrap_err();
        assert!(err.contains("outside the screen"), "{err}");
        assert!(screen.apply_message(&[b'Z', 0, 0]).is_err());
        assert!(
            screen
                .apply_message(&[b'C', 0, 0, 0, 0, 0, 1, 0, 1, 0, 9, 0, 0])
                .is_err()
        );
        // Pixels that decompress to more than the rectangle holds.
        let err = screen
            .apply_message(&pixels_message(0, 0, 1, 1, &[0; 64]))
            .unwrap_err();
        assert!(err.contains("bytes of pixels"), "{err}");
    }
}
