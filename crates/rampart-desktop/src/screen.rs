//! The desktop stream: what the browser draws and what the recording keeps, the same bytes.
//! Each message is binary, big-endian:
//!
//! - `I` width height: the screen's size (at the start and when it changes)
//! - `Z` x y w h, then the rectangle's RGBA pixels, zlib-compressed
//! - `C` x y w h sx sy: copy the rectangle at (sx, sy) to (x, y)
//! - `K` width height: a key frame follows (one `Z` of the whole screen; recordings only), so
//!   a replay can start drawing from the last key frame before the moment it seeks to
//!
//! [`Framebuffer`] keeps Rampart's copy of the screen (bounded by `rfb::MAX_PIXELS`) for the
//! key frames.

use bytes::{BufMut, Bytes, BytesMut};
use std::io::Write;

/// One thing the desktop server said, whatever its protocol: what the framebuffer applies and
/// the desktop stream carries (RFB's reader and RDP's decoder both produce these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// Pixels (RGBA, alpha 255) for a rectangle of the screen.
    Raw {
        x: u16,
        y: u16,
        w: u16,
        h: u16,
        rgba: Bytes,
    },
    /// Copy the rectangle at (`sx`, `sy`) to (`x`, `y`).
    Copy {
        x: u16,
        y: u16,
        w: u16,
        h: u16,
        sx: u16,
        sy: u16,
    },
    /// The desktop has a new size (its content follows).
    Resize {
        width: u16,
        height: u16,
    },
    /// The target takes the client's resize requests, naming the screen they resize (VNC: the
    /// server's ExtendedDesktopSize layout, whose first screen SetDesktopSize names).
    Resizable(TargetScreen),
    /// The end of one framebuffer update (VNC: time to ask for the next; both: a key frame may
    /// follow).
    UpdateEnd,
    Bell,
    /// The server's clipboard (Latin-1 decoded); `None` when it was longer than [`crate::rfb::MAX_TEXT`]
    /// (its bytes were skipped), with its length.
    CutText {
        text: Option<String>,
        len: u32,
    },
}

/// The target's screen that a resize request names (VNC: its id and flags in the server's
/// ExtendedDesktopSize layout).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetScreen {
    pub id: u32,
    pub flags: u32,
}

/// The screen as the server last drew it, RGBA.
#[derive(Debug)]
pub struct Framebuffer {
    width: u16,
    height: u16,
    pixels: Vec<u8>,
}

impl Framebuffer {
    /// A black screen; the size was checked by `rfb::check_size`.
    pub fn new(width: u16, height: u16) -> Self {
        let len = usize::from(width) * usize::from(height) * 4;
        Self {
            width,
            height,
            pixels: vec![0; len],
        }
    }

    pub fn size(&self) -> (u16, u16) {
        (self.width, self.height)
    }

    /// The screen's pixels, RGBA, row by row.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// Applies one message of the desktop stream as a recording keeps it (a replay outside
    /// the browser: the video export). Every length is checked: a message that does not fit
    /// the screen is an error, never a panic or an allocation the message sized.
    pub fn apply_message(&mut self, message: &[u8]) -> Result<(), String> {
        let field = |i: usize| match (message.get(1 + 2 * i), message.get(2 + 2 * i)) {
            (Some(high), Some(low)) => Ok(u16::from_be_bytes([*high, *low])),
            _ => Err("a truncated desktop message".to_owned()),
        };
        let inside = |x: u16, y: u16, w: u16, h: u16, fb: &Self| {
            u32::from(x) + u32::from(w) <= u32::from(fb.width)
                && u32::from(y) + u32::from(h) <= u32::from(fb.height)
        };
        match message.first() {
            Some(b'I' | b'K') => {
                let (width, height) = (field(0)?, field(1)?);
                crate::rfb::check_size(width, height).map_err(|err| err.to_string())?;
                if (width, height) != self.size() {
                    *self = Self::new(width, height);
                }
            }
            Some(b'Z') => {
                let (x, y, w, h) = (field(0)?, field(1)?, field(2)?, field(3)?);
                if !inside(x, y, w, h, self) {
                    return Err(format!("a rectangle {w}x{h} at {x},{y} outside the screen"));
                }
                let expected = usize::from(w) * usize::from(h) * 4;
                let mut rgba = Vec::with_capacity(expected);
                let compressed = message.get(9..).unwrap_or_default();
                std::io::Read::read_to_end(
                    &mut std::io::Read::take(
                        flate2::read::ZlibDecoder::new(compressed),
                        expected as u64 + 1,
                    ),
                    &mut rgba,
                )
                .map_err(|err| format!("a rectangle that does not decompress: {err}"))?;
                if rgba.len() != expected {
                    return Err(format!(
                        "a {w}x{h} rectangle with {} bytes of pixels",
                        rgba.len()
                    ));
                }
                self.apply(&ServerEvent::Raw {
                    x,
                    y,
                    w,
                    h,
                    rgba: rgba.into(),
                });
            }
            Some(b'C') => {
                let (x, y, w, h, sx, sy) = (
                    field(0)?,
                    field(1)?,
                    field(2)?,
                    field(3)?,
                    field(4)?,
                    field(5)?,
                );
                if !inside(x, y, w, h, self) || !inside(sx, sy, w, h, self) {
                    return Err(format!("a copy {w}x{h} outside the screen"));
                }
                self.apply(&ServerEvent::Copy { x, y, w, h, sx, sy });
            }
            Some(other) => return Err(format!("an unknown desktop message {other:#04x}")),
            None => return Err("an empty desktop message".to_owned()),
        }
        Ok(())
    }

    fn stride(&self) -> usize {
        usize::from(self.width) * 4
    }

    /// Applies one event the reader checked (rectangles inside the screen).
    pub fn apply(&mut self, event: &ServerEvent) {
        match event {
            ServerEvent::Resize { width, height } => *self = Self::new(*width, *height),
            ServerEvent::Raw { x, y, w, h, rgba } => {
                let stride = self.stride();
                let row = usize::from(*w) * 4;
                for (i, src) in rgba
                    .chunks_exact(row.max(1))
                    .take(usize::from(*h))
                    .enumerate()
                {
                    let at = (usize::from(*y) + i) * stride + usize::from(*x) * 4;
                    if let Some(dst) = self.pixels.get_mut(at..at + row) {
                        dst.copy_from_slice(src);
                    }
                }
            }
            ServerEvent::Copy { x, y, w, h, sx, sy } => {
                let stride = self.stride();
                let row = usize::from(*w) * 4;
                let rows: Vec<usize> = (0..usize::from(*h)).collect();
                // Overlapping copies: rows in the direction that does not overwrite the source.
                let order: Box<dyn Iterator<Item = &usize>> = if sy < y {
                    Box::new(rows.iter().rev())
                } else {
                    Box::new(rows.iter())
                };
                for i in order {
                    let from = (usize::from(*sy) + i) * stride + usize::from(*sx) * 4;
                    let to = (usize::from(*y) + i) * stride + usize::from(*x) * 4;
                    if from + row <= self.pixels.len() && to + row <= self.pixels.len() {
                        self.pixels.copy_within(from..from + row, to);
                    }
                }
            }
            _ => {}
        }
    }

    /// A key frame: `K` then the whole screen as one `Z`.
    pub fn key_frame(&self) -> (Bytes, Bytes) {
        let mut k = BytesMut::with_capacity(5);
        k.put_u8(b'K');
        k.put_u16(self.width);
        k.put_u16(self.height);
        (
            k.freeze(),
            pixels_message(0, 0, self.width, self.height, &self.pixels),
        )
    }
}

/// `I` width height.
pub fn size_message(width: u16, height: u16) -> Bytes {
    let mut m = BytesMut::with_capacity(5);
    m.put_u8(b'I');
    m.put_u16(width);
    m.put_u16(height);
    m.freeze()
}

/// `Z` x y w h zlib(rgba). CPU work: callers run large ones off the async threads.
pub fn pixels_message(x: u16, y: u16, w: u16, h: u16, rgba: &[u8]) -> Bytes {
    let mut m = BytesMut::with_capacity(9 + rgba.len() / 8);
    m.put_u8(b'Z');
    for v in [x, y, w, h] {
        m.put_u16(v);
    }
    let mut z = flate2::write::ZlibEncoder::new(m.writer(), flate2::Compression::fast());
    // Writing into memory cannot fail.
    let _ = z.write_all(rgba);
    match z.finish() {
        Ok(writer) => writer.into_inner().freeze(),
        Err(_) => Bytes::new(),
    }
}

/// `C` x y w h sx sy.
pub fn copy_message(x: u16, y: u16, w: u16, h: u16, sx: u16, sy: u16) -> Bytes {
    let mut m = BytesMut::with_capacity(13);
    m.put_u8(b'C');
    for v in [x, y, w, h, sx, sy] {
        m.put_u16(v);
    }
    m.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn raw_and_overlapping_copies_land_where_the_server_says() {
        let mut fb = Framebuffer::new(3, 3);
        let px = |v: u8| [v, v, v, 255];
        let row: Vec<u8> = [1u8, 2, 3].iter().flat_map(|v| px(*v)).collect();
        fb.apply(&ServerEvent::Raw {
            x: 0,
            y: 0,
            w: 3,
            h: 1,
            rgba: row.into(),
        });
        // Shift the first row down by one, twice (overlapping the second time).
        fb.apply(&ServerEvent::Copy {
            x: 0,
            y: 1,
            w: 3,
            h: 1,
            sx: 0,
            sy: 0,
        });
        fb.apply(&ServerEvent::Copy {
            x: 0,
            y: 1,
            w: 3,
            h: 2,
            sx: 0,
            sy: 0,
        });
        let at = |x: usize, y: usize| fb.pixels[(y * 3 + x) * 4];
        assert_eq!([at(0, 0), at(1, 1), at(2, 2)], [1, 2, 3]);
    }

    #[test]
    fn a_key_frame_carries_the_whole_screen() {
        let mut fb = Framebuffer::new(2, 1);
        fb.apply(&ServerEvent::Raw {
            x: 1,
            y: 0,
            w: 1,
            h: 1,
            rgba: Bytes::from_static(&[9, 8, 7, 255]),
        });
        let (k, z) = fb.key_frame();
        assert_eq!(&k[..], &[b'K', 0, 2, 0, 1]);
        assert_eq!(&z[..9], &[b'Z', 0, 0, 0, 0, 0, 2, 0, 1]);
        let mut out = Vec::new();
        flate2::read::ZlibDecoder::new(&z[9..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, [0, 0, 0, 0, 9, 8, 7, 255]);
    }
}
