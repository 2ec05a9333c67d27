//! The seam between the pump and the target: what the pump reads from the target
//! ([`TargetReader`]) and what it sends there ([`TargetWriter`]), in SSH channel terms. An SSH
//! target is a russh channel's two halves; a Telnet device is `super::telnet`'s adapter over a
//! `rampart_telnet::Connection`. The pump, the tap and everything they do (recording, command
//! log and rules, live enforcement) are the same for both.

use bytes::Bytes;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Sig};
use std::future::Future;

/// The target's messages towards the user (the user's channel half reads the same way: the
/// pump reads ahead of both alike).
pub(super) trait TargetReader: Send {
    /// The next message; `None` once the target is gone. Must be cancel-safe: the pump polls it
    /// in `select!` and once without waiting.
    fn wait(&mut self) -> impl Future<Output = Option<ChannelMsg>> + Send;
}

/// What the user's side sends to the target.
pub(super) trait TargetWriter: Send + 'static {
    fn data_bytes(&self, data: Bytes) -> impl Future<Output = Result<(), russh::Error>> + Send;
    fn eof(&self) -> impl Future<Output = Result<(), russh::Error>> + Send;
    fn window_change(
        &self,
        columns: u32,
        rows: u32,
        pix_width: u32,
        pix_height: u32,
    ) -> impl Future<Output = Result<(), russh::Error>> + Send;
    fn signal(&self, signal: Sig) -> impl Future<Output = Result<(), russh::Error>> + Send;
    fn close(&self) -> impl Future<Output = Result<(), russh::Error>> + Send;
}

impl TargetReader for ChannelReadHalf {
    fn wait(&mut self) -> impl Future<Output = Option<ChannelMsg>> + Send {
        ChannelReadHalf::wait(self)
    }
}

impl TargetWriter for ChannelWriteHalf<russh::client::Msg> {
    fn data_bytes(&self, data: Bytes) -> impl Future<Output = Result<(), russh::Error>> + Send {
        ChannelWriteHalf::data_bytes(self, data)
    }

    fn eof(&self) -> impl Future<Output = Result<(), russh::Error>> + Send {
        ChannelWriteHalf::eof(self)
    }

    fn window_change(
        &self,
        columns: u32,
        rows: u32,
        pix_width: u32,
        pix_height: u32,
    ) -> impl Future<Output = Result<(), russh::Error>> + Send {
        ChannelWriteHalf::window_change(self, columns, rows, pix_width, pix_height)
    }

    fn signal(&self, signal: Sig) -> impl Future<Output = Result<(), russh::Error>> + Send {
        ChannelWriteHalf::signal(self, signal)
    }

    fn close(&self) -> impl Future<Output = Result<(), russh::Error>> + Send {
        ChannelWriteHalf::close(self)
    }
}
