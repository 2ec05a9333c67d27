//! The user's window size as a resize of the remote desktop: what size may be asked for
//! ([`requested_size`]) and how often ([`ResizeRequests`]). No I/O: the relay (`session`)
//! asks its clock and sends what these decide.
//!
//! INVARIANTS:
//! - A requested size is at least [`MIN_SIDE`] and at most [`MAX_SIDE`] on each side and at
//!   most [`MAX_PIXELS`] in all, whatever the browser sent: the target is never asked for a
//!   desktop Rampart would then refuse to draw.
//! - At most one request per [`RESIZE_EVERY`] reaches the target; sizes arriving faster are
//!   coalesced, and only the latest is sent once the interval has passed.

use crate::rfb::MAX_PIXELS;
use std::time::Duration;
use tokio::time::Instant;

/// The smallest side asked for (RDP's Display Control has the same floor).
pub const MIN_SIDE: u16 = 200;
/// The largest side asked for (RDP's Display Control has the same ceiling).
pub const MAX_SIDE: u16 = 8192;
/// At most one resize request per this interval.
pub const RESIZE_EVERY: Duration = Duration::from_secs(1);

/// The size to ask the target for when the user's view is `width`×`height`: each side
/// clamped to [`MIN_SIDE`]..=[`MAX_SIDE`], then the height cut so the whole stays within
/// [`MAX_PIXELS`].
pub fn requested_size(width: u32, height: u32) -> (u16, u16) {
    let side = |v: u32| {
        u16::try_from(v.clamp(u32::from(MIN_SIDE), u32::from(MAX_SIDE))).unwrap_or(MAX_SIDE)
    };
    let width = side(width);
    let most_rows = u16::try_from(MAX_PIXELS / u32::from(width)).unwrap_or(MAX_SIDE);
    (width, side(height).min(most_rows))
}

/// The resize requests of one session: when the last went, and the size waiting for its turn.
#[derive(Debug, Default)]
pub struct ResizeRequests {
    last_sent: Option<Instant>,
    waiting: Option<(u16, u16)>,
}

impl ResizeRequests {
    /// A size the user wants at `now`: returned when it may go now, else kept (replacing any
    /// size kept before) until [`Self::due`].
    pub fn offer(&mut self, size: (u16, u16), now: Instant) -> Option<(u16, u16)> {
        if self
            .last_sent
            .is_some_and(|at| now.saturating_duration_since(at) < RESIZE_EVERY)
        {
            self.waiting = Some(size);
            return None;
        }
        self.waiting = None;
        self.last_sent = Some(now);
        Some(size)
    }

    /// When the kept size may go, if one is kept.
    pub fn deadline(&self) -> Option<Instant> {
        self.waiting?;
        self.last_sent.map(|at| at + RESIZE_EVERY)
    }

    /// The kept size, once its time has come at `now`.
    pub fn due(&mut self, now: Instant) -> Option<(u16, u16)> {
        let waiting = self.waiting?;
        self.offer(waiting, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_requested_size_is_clamped_to_the_sides_and_the_pixels_rampart_draws() {
        for ((width, height), want) in [
            ((1024, 768), (1024, 768)),
            ((0, 0), (MIN_SIDE, MIN_SIDE)),
            ((1, 100_000), (MIN_SIDE, MAX_SIDE)),
            ((u32::MAX, u32::MAX), (MAX_SIDE, 1012)),
            ((3840, 2160), (3840, 2160)),
            ((3840, 2161), (3840, 2160)),
            ((5000, 5000), (5000, 1658)),
        ] {
            let got = requested_size(width, height);
            assert_eq!(got, want, "{width}x{height}");
            assert!(u32::from(got.0) * u32::from(got.1) <= MAX_PIXELS);
        }
    }

    #[test]
    fn resizes_faster_than_one_a_second_are_coalesced_to_the_latest() {
        let start = Instant::now();
        let mut requests = ResizeRequests::default();
        assert_eq!(requests.offer((800, 600), start), Some((800, 600)));
        assert_eq!(requests.deadline(), None);
        let soon = start + Duration::from_millis(100);
        assert_eq!(requests.offer((900, 600), soon), None);
        assert_eq!(requests.offer((1000, 700), soon), None);
        assert_eq!(requests.deadline(), Some(start + RESIZE_EVERY));
        assert_eq!(requests.due(start + Duration::from_millis(999)), None);
        let then = start + RESIZE_EVERY;
        assert_eq!(requests.due(then), Some((1000, 700)));
        assert_eq!(requests.due(then), None);
        assert_eq!(requests.deadline(), None);
        // The interval counts from the last sent: a size right after waits again.
        assert_eq!(requests.offer((640, 480), then), None);
        let later = then + RESIZE_EVERY;
        assert_eq!(requests.offer((640, 480), later), Some((640, 480)));
    }
}
