//! The RDP clipboard, text only: our backend for IronRDP's CLIPRDR static channel
//! (`ironrdp-cliprdr`, MS-RDPECLIP), and the guard that keeps the channel's reassembly bounded.
//! The same backend serves both of Rampart's sides of the channel: the client's towards RDP
//! targets ([`channel`], driven by `rdp`) and the server's towards native RDP clients
//! ([`server_channel`], driven by `native_rdp`), where "the browser's text" below is the
//! target's and "the server's text" the client's.
//!
//! Rampart decides nothing here: the relay (`session`) lets the browser's text through only
//! when the grant allows `rdp:clipboard`, and the server's text comes out of here as the same
//! [`ServerEvent::CutText`] a VNC server's does, for the relay to pass or refuse and audit. So
//! the backend only speaks the channel: it announces the browser's text as `CF_UNICODETEXT`,
//! answers the server's request for it, and asks for the server's text whenever the server
//! announces some, with or without the grant: as a VNC server's cut text, it reaches the relay
//! (bounded), which refuses it with its size when the grant does not allow it.
//!
//! IronRDP calls the backend synchronously and the backend cannot send, so each callback leaves
//! a [`Todo`], which [`next_step`] turns into the channel's messages (or text for the relay)
//! for the active stage's task to send. No I/O here: the tests drive the backend directly and
//! converse with IronRDP's own server side of the channel.
//!
//! INVARIANTS:
//! - Only `CF_UNICODETEXT` is ever announced, requested or answered; file lists, images and
//!   locks are not offered (no capability flags for them), and a request for anything else is
//!   answered with a failure.
//! - Every Format Data Request of the server's gets an answer: when IronRDP will not build it
//!   (its side of the channel is not Ready), [`next_step`] sends a failure in its place, since
//!   the server's reader (xrdp-chansrv, for `xclip -o` on the desktop) waits without a timeout.
//! - The server's data is bounded before IronRDP reassembles it: the channel's chunks declare
//!   their total length, and a sequence declaring more than [`MAX_CHANNEL_PDU`] is skipped
//!   whole ([`ChannelGuard`]), so reassembly never holds more than that. Compressed channel data
//!   (never negotiated) ends the session.

use crate::screen::ServerEvent;
use crate::session::MAX_CLIPBOARD;
use ironrdp_cliprdr::backend::CliprdrBackend;
use ironrdp_cliprdr::pdu::{
    ClipboardFormat, ClipboardFormatId, ClipboardGeneralCapabilityFlags, ClipboardPdu,
    FileContentsRequest, FileContentsResponse, FormatDataRequest, FormatDataResponse, LockDataId,
    OwnedFormatDataResponse,
};
use ironrdp_cliprdr::{Cliprdr, CliprdrClient, CliprdrServer, Role};
use ironrdp_svc::{SvcMessage, SvcProcessor};

/// The largest CLIPRDR message the server may send (reassembled): the largest clipboard text in
/// UTF-16 (two bytes for each byte Rampart passes; the relay checks the text's own size), with
/// room for the message's header and the terminating NUL.
pub const MAX_CHANNEL_PDU: usize = 2 * MAX_CLIPBOARD + 64;

/// `CB_FORMAT_DATA_RESPONSE`, the message type that carries the clipboard's data.
const FORMAT_DATA_RESPONSE: u16 = 0x0005;

/// What the active stage's task does next on the channel.
#[derive(Debug)]
pub enum Todo {
    /// Send our format list: `CF_UNICODETEXT` when the browser's text is on offer, else none.
    Announce(Vec<ClipboardFormat>),
    /// Ask the server for its text (it announced some).
    Fetch,
    /// Answer the server's request for our text.
    Answer(OwnedFormatDataResponse),
    /// The server's text arrived: for the relay.
    Deliver(ServerEvent),
}

/// The text-only clipboard backend.
#[derive(Debug, Default)]
pub struct TextClipboard {
    /// The browser's text on offer to the server (the relay already let it through).
    offered: Option<String>,
    /// Whether the server has been told about `offered`.
    announced: bool,
    todo: std::collections::VecDeque<Todo>,
}

impl TextClipboard {
    /// The next thing to do on the channel, oldest first.
    pub fn take_todo(&mut self) -> Option<Todo> {
        self.todo.pop_front()
    }

    /// The browser's text, to put on the server's clipboard. `ready` is whether the channel has
    /// finished its initialization: before that, the text goes with the first format list.
    pub fn offer(&mut self, text: String, ready: bool) {
        self.offered = Some(text);
        self.announced = false;
        if ready {
            self.announce();
        }
    }

    fn announce(&mut self) {
        let formats = if self.offered.is_some() {
            self.announced = true;
            vec![ClipboardFormat::new(ClipboardFormatId::CF_UNICODETEXT)]
        } else {
            Vec::new()
        };
        self.todo.push_back(Todo::Announce(formats));
    }
}

/// The clipboard channel with our backend, for the connector.
pub fn channel() -> CliprdrClient {
    CliprdrClient::new(Box::new(TextClipboard::default()))
}

/// The clipboard channel with our backend, for the acceptor (native RDP clients).
pub fn server_channel() -> CliprdrServer {
    CliprdrServer::new(Box::new(TextClipboard::default()))
}

/// What the channel's driver (the active stage's task) does next.
#[derive(Debug)]
pub enum Step {
    /// Send these messages on the channel.
    Send(Vec<SvcMessage>),
    /// Hand the server's text to the relay.
    Deliver(ServerEvent),
}

/// The backend's next [`Todo`] carried out on the channel, `None` when none is left. A format
/// list or a request IronRDP refuses to build (the channel not started, too many unanswered
/// requests) is left out: the clipboard is not worth the session. An answer never is: when
/// IronRDP refuses to build it (the channel is not Ready: the server refused our first format
/// list, or asked before accepting it), a failure goes in its place.
pub fn next_step<R: Role>(cliprdr: &mut Cliprdr<R>) -> Option<Step> {
    loop {
        let todo = cliprdr
            .downcast_backend_mut::<TextClipboard>()
            .and_then(TextClipboard::take_todo)?;
        let messages = match todo {
            Todo::Deliver(event) => return Some(Step::Deliver(event)),
            Todo::Announce(formats) => cliprdr.initiate_copy(&formats).map(Vec::from),
            Todo::Fetch => cliprdr
                .initiate_paste(ClipboardFormatId::CF_UNICODETEXT)
                .map(Vec::from),
            // INVARIANT: every Format Data Request of the server's is answered: its reader
            // (xrdp-chansrv, for `xclip -o` on the desktop) waits for the answer with no timeout.
            Todo::Answer(answer) => Ok(cliprdr
                .submit_format_data(answer)
                .map(Vec::from)
                .unwrap_or_else(|err| {
                    tracing::debug!(error = %err, "RDP clipboard: a failure answers the request");
                    vec![failed_answer()]
                })),
        };
        match messages {
            Ok(messages) => return Some(Step::Send(messages)),
            Err(err) => tracing::debug!(error = %err, "RDP clipboard: a message was left out"),
        }
    }
}

/// A failed Format Data Response, built without IronRDP's channel state (as IronRDP builds
/// its clipboard messages: with `CHANNEL_FLAG_SHOW_PROTOCOL`).
fn failed_answer() -> SvcMessage {
    SvcMessage::from(ClipboardPdu::FormatDataResponse(
        FormatDataResponse::new_error(),
    ))
    .with_flags(ironrdp_svc::ChannelFlags::SHOW_PROTOCOL)
}

/// The browser's text (the relay let it through) on offer to the server's clipboard.
pub fn offer<R: Role>(cliprdr: &mut Cliprdr<R>, text: String) {
    let ready = cliprdr.is_ready();
    if let Some(backend) = cliprdr.downcast_backend_mut::<TextClipboard>() {
        backend.offer(text, ready);
    }
}

/// A data answer was skipped ([`Chunk::SkipData`]): IronRDP is handed a failed answer in its
/// place, so the requests it still waits on stay paired with their answers.
pub fn skipped_answer<R: Role>(cliprdr: &mut Cliprdr<R>) {
    let failed = ironrdp_pdu::encode_vec(&ClipboardPdu::FormatDataResponse(
        FormatDataResponse::new_error(),
    ));
    if let Ok(failed) = failed {
        // A failed answer asks for nothing back.
        let _ = cliprdr.process(&failed);
    }
}

/// The server's `CF_UNICODETEXT` data as the relay's event: the text up to its terminating NUL
/// with its size in bytes (UTF-8, as the browser's are counted), or no text when it is larger
/// than [`MAX_CLIPBOARD`] (then the size is the bytes received).
pub fn server_text(data: &[u8]) -> ServerEvent {
    let too_large = || ServerEvent::CutText {
        text: None,
        len: u32::try_from(data.len()).unwrap_or(u32::MAX),
    };
    if data.len() > 2 * MAX_CLIPBOARD + 2 {
        return too_large();
    }
    let units = data
        .chunks_exact(2)
        .map(|pair| match pair {
            [lo, hi] => u16::from_le_bytes([*lo, *hi]),
            _ => 0,
        })
        .take_while(|unit| *unit != 0);
    let text: String = char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect();
    if text.len() > MAX_CLIPBOARD {
        return too_large();
    }
    ServerEvent::CutText {
        len: u32::try_from(text.len()).unwrap_or(u32::MAX),
        text: Some(text),
    }
}

// IronRDP hands the backend back by its type (`downcast_backend_mut`).
impl ironrdp_pdu::AsAny for TextClipboard {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

impl CliprdrBackend for TextClipboard {
    fn temporary_directory(&self) -> &str {
        // Sent because IronRDP always sends the PDU; no file is ever transferred.
        ""
    }

    fn client_capabilities(&self) -> ClipboardGeneralCapabilityFlags {
        ClipboardGeneralCapabilityFlags::USE_LONG_FORMAT_NAMES
    }

    fn on_ready(&mut self) {
        // Text the browser sent while the channel was starting, after the first format list.
        if self.offered.is_some() && !self.announced {
            self.announce();
        }
    }

    fn on_request_format_list(&mut self) {
        self.announce();
    }

    fn on_process_negotiated_capabilities(&mut self, _: ClipboardGeneralCapabilityFlags) {}

    fn on_remote_copy(&mut self, available_formats: &[ClipboardFormat]) {
        if available_formats
            .iter()
            .any(|format| format.id == ClipboardFormatId::CF_UNICODETEXT)
        {
            self.todo.push_back(Todo::Fetch);
        }
    }

    fn on_format_data_request(&mut self, request: FormatDataRequest) {
        let answer = match &self.offered {
            Some(text) if request.format == ClipboardFormatId::CF_UNICODETEXT => {
                OwnedFormatDataResponse::new_unicode_string(text)
            }
            _ => OwnedFormatDataResponse::new_error(),
        };
        self.todo.push_back(Todo::Answer(answer));
    }

    fn on_format_data_response(&mut self, response: FormatDataResponse<'_>) {
        if !response.is_error() {
            self.todo
                .push_back(Todo::Deliver(server_text(response.data())));
        }
    }

    // No file is offered: a request for one is left unanswered, as for a format never
    // announced.
    fn on_file_contents_request(&mut self, _: FileContentsRequest) {}

    fn on_file_contents_response(&mut self, _: FileContentsResponse<'_>) {}

    fn on_lock(&mut self, _: LockDataId) {}

    fn on_unlock(&mut self, _: LockDataId) {}
}

/// What to do with one chunk of the clipboard channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk {
    /// Hand it to IronRDP.
    Pass,
    /// Drop it: part of a sequence too large to reassemble.
    Skip,
    /// The first chunk of a clipboard data response too large to reassemble: drop it, tell the
    /// relay its size (the `bytes` of data it declares), and fail the request towards IronRDP.
    SkipData { bytes: u32 },
    /// Not a channel chunk Rampart accepts (compressed, or too short for its header).
    Malformed,
}

/// Bounds the clipboard channel's reassembly: IronRDP buffers a chunk sequence up to the total
/// length its first chunk declares (a `u32`), so sequences declaring more than
/// [`MAX_CHANNEL_PDU`] are skipped here, whole, before IronRDP sees any of their chunks.
#[derive(Debug, Default)]
pub struct ChannelGuard {
    skipping: bool,
}

/// The CLIPRDR header (msgType, msgFlags, dataLen) before a message's data.
const CLIPRDR_HEADER: u32 = 8;
const CHANNEL_FLAG_FIRST: u32 = 0x0000_0001;
const CHANNEL_FLAG_LAST: u32 = 0x0000_0002;
const CHANNEL_PACKET_COMPRESSED: u32 = 0x0020_0000;

impl ChannelGuard {
    /// Decides on one chunk (`CHANNEL_PDU_HEADER` then data) of the clipboard channel.
    pub fn check(&mut self, chunk: &[u8]) -> Chunk {
        let u32_at = |at: usize| {
            chunk
                .get(at..at + 4)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(u32::from_le_bytes)
        };
        let (Some(declared), Some(flags)) = (u32_at(0), u32_at(4)) else {
            return Chunk::Malformed;
        };
        if flags & CHANNEL_PACKET_COMPRESSED != 0 {
            return Chunk::Malformed;
        }
        let first = flags & CHANNEL_FLAG_FIRST != 0;
        let last = flags & CHANNEL_FLAG_LAST != 0;
        if first {
            self.skipping = usize::try_from(declared).unwrap_or(usize::MAX) > MAX_CHANNEL_PDU;
            if self.skipping {
                self.skipping = !last;
                // The CLIPRDR header follows the channel's: msgType (u16) first.
                let msg_type = chunk
                    .get(8..10)
                    .and_then(|b| <[u8; 2]>::try_from(b).ok())
                    .map(u16::from_le_bytes);
                return if msg_type == Some(FORMAT_DATA_RESPONSE) {
                    Chunk::SkipData {
                        bytes: declared.saturating_sub(CLIPRDR_HEADER),
                    }
                } else {
                    Chunk::Skip
                };
            }
            return Chunk::Pass;
        }
        if self.skipping {
            if last {
                self.skipping = false;
            }
            return Chunk::Skip;
        }
        Chunk::Pass
    }
}

/// The longest dynamic virtual channel message (its DataFirst PDU declares the length) that
/// IronRDP may reassemble: Display Control's messages are a few hundred bytes.
pub const MAX_DVC_MESSAGE: u32 = 64 * 1024;

impl ChannelGuard {
    /// Decides on one chunk of the DRDYNVC static channel: its chunk sequences are bounded as
    /// the clipboard's (one declaring more than [`MAX_CHANNEL_PDU`] is skipped whole), and a
    /// dynamic channel message whose first block declares more than [`MAX_DVC_MESSAGE`]
    /// (DataFirst, which IronRDP would reassemble up to that length) is malformed.
    pub fn check_dynamic(&mut self, chunk: &[u8]) -> Chunk {
        match self.check(chunk) {
            Chunk::Pass => {}
            // Not the clipboard's: no size for the relay.
            Chunk::SkipData { .. } => return Chunk::Skip,
            other => return other,
        }
        // CHANNEL_PDU_HEADER (length, flags), then, in a sequence's first chunk, the DVC header.
        let first = chunk
            .get(4..8)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .is_some_and(|flags| u32::from_le_bytes(flags) & CHANNEL_FLAG_FIRST != 0);
        if first && dvc_declared_length(chunk.get(8..).unwrap_or_default()) > Some(MAX_DVC_MESSAGE)
        {
            return Chunk::Malformed;
        }
        Chunk::Pass
    }
}

/// The total length a DVC DataFirst PDU (compressed or not) declares (MS-RDPEDYC 2.2.3.1):
/// the header byte (Cmd, Sp, cbChId), the channel id (1, 2 or 4 bytes), then the length (1, 2
/// or 4 bytes, by Sp). `None` for other PDUs, and for a header IronRDP will refuse.
pub fn dvc_declared_length(pdu: &[u8]) -> Option<u32> {
    let header = *pdu.first()?;
    let cmd = header >> 4;
    if cmd != 0x02 && cmd != 0x06 {
        return None;
    }
    let width = |field: u8| match field {
        0 => Some(1usize),
        1 => Some(2),
        2 => Some(4),
        _ => None,
    };
    let at = 1 + width(header & 0b11)?;
    let len = width((header >> 2) & 0b11)?;
    let bytes = pdu.get(at..at + len)?;
    Some(
        bytes
            .iter()
            .rev()
            .fold(0u32, |value, byte| (value << 8) | u32::from(*byte)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_of(event: &ServerEvent) -> (Option<&str>, u32) {
        match event {
            ServerEvent::CutText { text, len } => (text.as_deref(), *len),
            other => panic!("not clipboard text: {other:?}"),
        }
    }

    fn utf16(text: &str) -> Vec<u8> {
        text.encode_utf16().flat_map(u16::to_le_bytes).collect()
    }

    #[test]
    fn the_browsers_text_is_announced_once_the_channel_starts_and_answers_the_servers_request() {
        let mut clipboard = TextClipboard::default();
        // Pasted before the server's Monitor Ready: it goes with the first format list.
        clipboard.offer("héllo".to_owned(), false);
        assert!(clipboard.take_todo().is_none());
        clipboard.on_request_format_list();
        let Some(Todo::Announce(formats)) = clipboard.take_todo() else {
            panic!("no format list");
        };
        assert_eq!(
            formats,
            [ClipboardFormat::new(ClipboardFormatId::CF_UNICODETEXT)]
        );
        clipboard.on_ready();
        assert!(clipboard.take_todo().is_none(), "announced twice");
        clipboard.on_format_data_request(FormatDataRequest {
            format: ClipboardFormatId::CF_UNICODETEXT,
        });
        let Some(Todo::Answer(answer)) = clipboard.take_todo() else {
            panic!("no answer");
        };
        assert!(!answer.is_error());
        let mut expected = utf16("héllo");
        expected.extend([0, 0]);
        assert_eq!(answer.data(), expected);
        // Another format than text: a failure, never our text.
        clipboard.on_format_data_request(FormatDataRequest {
            format: ClipboardFormatId::CF_TEXT,
        });
        let Some(Todo::Answer(answer)) = clipboard.take_todo() else {
            panic!("no answer");
        };
        assert!(answer.is_error());
        // Pasted once the channel is up: announced at once.
        clipboard.offer("again".to_owned(), true);
        assert!(matches!(clipboard.take_todo(), Some(Todo::Announce(f)) if f.len() == 1));
    }

    #[test]
    fn with_nothing_pasted_the_first_format_list_is_empty_and_requests_fail() {
        let mut clipboard = TextClipboard::default();
        clipboard.on_request_format_list();
        assert!(matches!(clipboard.take_todo(), Some(Todo::Announce(f)) if f.is_empty()));
        clipboard.on_ready();
        clipboard.on_format_data_request(FormatDataRequest {
            format: ClipboardFormatId::CF_UNICODETEXT,
        });
        assert!(matches!(clipboard.take_todo(), Some(Todo::Answer(a)) if a.is_error()));
    }

    #[test]
    fn the_servers_text_is_fetched_when_announced_and_delivered_decoded() {
        let mut clipboard = TextClipboard::default();
        clipboard.on_remote_copy(&[ClipboardFormat::new(ClipboardFormatId::new(49_321))]);
        assert!(
            clipboard.take_todo().is_none(),
            "fetched a format that is not text"
        );
        clipboard.on_remote_copy(&[
            ClipboardFormat::new(ClipboardFormatId::CF_TEXT),
            ClipboardFormat::new(ClipboardFormatId::CF_UNICODETEXT),
        ]);
        assert!(matches!(clipboard.take_todo(), Some(Todo::Fetch)));
        let mut data = utf16("copied on the target ✓");
        data.extend([0, 0, b'x', 0]);
        clipboard.on_format_data_response(FormatDataResponse::new_data(data));
        let Some(Todo::Deliver(event)) = clipboard.take_todo() else {
            panic!("nothing delivered");
        };
        assert_eq!(
            text_of(&event),
            (
                Some("copied on the target ✓"),
                "copied on the target ✓".len() as u32
            )
        );
        clipboard.on_format_data_response(FormatDataResponse::new_error());
        assert!(clipboard.take_todo().is_none());
    }

    #[test]
    fn server_text_that_is_too_large_or_not_utf16_is_bounded() {
        let big = vec![b'a'; 2 * MAX_CLIPBOARD + 4];
        assert_eq!(text_of(&server_text(&big)), (None, big.len() as u32));
        // Within the bytes, but more than MAX_CLIPBOARD once UTF-8 (three bytes a character).
        let wide = utf16(&"€".repeat(MAX_CLIPBOARD / 2));
        assert_eq!(text_of(&server_text(&wide)), (None, wide.len() as u32));
        // A lone surrogate and an odd byte: replaced and dropped, no panic.
        assert_eq!(
            text_of(&server_text(&[0x00, 0xd8, b'a', 0, 7])),
            (Some("\u{fffd}a"), 4)
        );
        assert_eq!(text_of(&server_text(&[])), (Some(""), 0));
    }

    /// The other end of the channel in these tests: IronRDP's own server side of CLIPRDR, whose
    /// backend notes what reached it.
    #[derive(Debug, Default)]
    struct ServerNotes {
        announced: Vec<Vec<ClipboardFormatId>>,
        requested: Vec<ClipboardFormatId>,
        received: Vec<Vec<u8>>,
        /// Failed answers to the server's requests.
        failed: usize,
    }

    impl ironrdp_pdu::AsAny for ServerNotes {
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }

        fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
            self
        }
    }

    impl CliprdrBackend for ServerNotes {
        fn temporary_directory(&self) -> &str {
            ""
        }
        fn client_capabilities(&self) -> ClipboardGeneralCapabilityFlags {
            ClipboardGeneralCapabilityFlags::USE_LONG_FORMAT_NAMES
        }
        fn on_ready(&mut self) {}
        fn on_request_format_list(&mut self) {}
        fn on_process_negotiated_capabilities(&mut self, _: ClipboardGeneralCapabilityFlags) {}
        fn on_remote_copy(&mut self, formats: &[ClipboardFormat]) {
            self.announced
                .push(formats.iter().map(|format| format.id).collect());
        }
        fn on_format_data_request(&mut self, request: FormatDataRequest) {
            self.requested.push(request.format);
        }
        fn on_format_data_response(&mut self, response: FormatDataResponse<'_>) {
            if response.is_error() {
                self.failed += 1;
            } else {
                self.received.push(response.data().to_vec());
            }
        }
        fn on_file_contents_request(&mut self, _: FileContentsRequest) {}
        fn on_file_contents_response(&mut self, _: FileContentsResponse<'_>) {}
        fn on_lock(&mut self, _: LockDataId) {}
        fn on_unlock(&mut self, _: LockDataId) {}
    }

    type Server = ironrdp_cliprdr::CliprdrServer;

    fn notes(server: &Server) -> &ServerNotes {
        server.downcast_backend::<ServerNotes>().unwrap()
    }

    /// Carries messages both ways until neither side has anything left to send; returns what
    /// our side delivered for the relay.
    fn converse(
        client: &mut CliprdrClient,
        server: &mut Server,
        mut to_client: Vec<SvcMessage>,
    ) -> Vec<ServerEvent> {
        let mut delivered = Vec::new();
        for _ in 0..32 {
            let mut to_server = Vec::new();
            for message in to_client.drain(..) {
                let bytes = message.encode_unframed_pdu().unwrap();
                to_server.extend(client.process(&bytes).unwrap());
            }
            while let Some(step) = next_step(client) {
                match step {
                    Step::Send(messages) => to_server.extend(messages),
                    Step::Deliver(event) => delivered.push(event),
                }
            }
            if to_server.is_empty() {
                return delivered;
            }
            for message in to_server {
                let bytes = message.encode_unframed_pdu().unwrap();
                to_client.extend(server.process(&bytes).unwrap());
            }
        }
        panic!("the conversation does not end");
    }

    /// The channel started as a server starts it (capabilities, Monitor Ready).
    fn started() -> (CliprdrClient, Server) {
        let mut client = channel();
        let mut server = Server::new(Box::new(ServerNotes::default()));
        let opening = server.start().unwrap();
        assert!(converse(&mut client, &mut server, opening).is_empty());
        (client, server)
    }

    #[test]
    fn against_ironrdps_server_side_a_paste_reaches_the_server_and_its_copy_comes_back() {
        let (mut client, mut server) = started();
        assert!(client.is_ready(), "the channel did not start");
        assert_eq!(notes(&server).announced, [Vec::<ClipboardFormatId>::new()]);

        // The browser's paste: announced, then asked for and answered.
        offer(&mut client, "pasted in the browser ✓".to_owned());
        assert!(converse(&mut client, &mut server, Vec::new()).is_empty());
        assert_eq!(
            notes(&server).announced.last().unwrap(),
            &[ClipboardFormatId::CF_UNICODETEXT]
        );
        let ask = server
            .initiate_paste(ClipboardFormatId::CF_UNICODETEXT)
            .unwrap();
        assert!(converse(&mut client, &mut server, ask.into()).is_empty());
        let mut expected = utf16("pasted in the browser ✓");
        expected.extend([0, 0]);
        assert_eq!(notes(&server).received, [expected]);

        // A copy on the server: fetched at once, delivered decoded.
        let copy = server
            .initiate_copy(&[
                ClipboardFormat::new(ClipboardFormatId::CF_TEXT),
                ClipboardFormat::new(ClipboardFormatId::CF_UNICODETEXT),
            ])
            .unwrap();
        assert!(converse(&mut client, &mut server, copy.into()).is_empty());
        assert_eq!(
            notes(&server).requested,
            [ClipboardFormatId::CF_UNICODETEXT]
        );
        let answer = server
            .submit_format_data(OwnedFormatDataResponse::new_unicode_string(
                "copied on the target",
            ))
            .unwrap();
        let delivered = converse(&mut client, &mut server, answer.into());
        assert_eq!(delivered.len(), 1, "{delivered:?}");
        assert_eq!(text_of(&delivered[0]), (Some("copied on the target"), 20));
    }

    #[test]
    fn a_skipped_answer_delivers_nothing_and_the_next_copy_still_arrives() {
        let (mut client, mut server) = started();
        let copy = server
            .initiate_copy(&[ClipboardFormat::new(ClipboardFormatId::CF_UNICODETEXT)])
            .unwrap();
        assert!(converse(&mut client, &mut server, copy.into()).is_empty());
        // Its answer was too large and dropped before reassembly: a failed one in its place.
        skipped_answer(&mut client);
        assert!(
            next_step(&mut client).is_none(),
            "a failed answer delivers nothing"
        );
        // The next copy's answer is delivered as the answer to the next request.
        let copy = server
            .initiate_copy(&[ClipboardFormat::new(ClipboardFormatId::CF_UNICODETEXT)])
            .unwrap();
        assert!(converse(&mut client, &mut server, copy.into()).is_empty());
        let answer = server
            .submit_format_data(OwnedFormatDataResponse::new_unicode_string("second"))
            .unwrap();
        let delivered = converse(&mut client, &mut server, answer.into());
        assert_eq!(text_of(&delivered[0]), (Some("second"), 6));
    }

    #[test]
    fn a_paste_before_the_channel_starts_goes_with_its_first_format_list() {
        let mut client = channel();
        let mut server = Server::new(Box::new(ServerNotes::default()));
        offer(&mut client, "early".to_owned());
        assert!(
            next_step(&mut client).is_none(),
            "sent before the channel started"
        );
        let opening = server.start().unwrap();
        converse(&mut client, &mut server, opening);
        assert_eq!(
            notes(&server).announced,
            [vec![ClipboardFormatId::CF_UNICODETEXT]]
        );
    }

    /// A server that refuses our first format list leaves IronRDP's side of the channel short of
    /// Ready, where IronRDP builds no answer; the server's request for our text still gets
    /// one (a failure), or its reader would wait for ever.
    #[test]
    fn a_request_while_the_channel_is_not_ready_is_answered_with_a_failure() {
        let mut client = channel();
        let mut server = Server::new(Box::new(ServerNotes::default()));
        offer(&mut client, "pasted early".to_owned());
        // The opening, by hand: the server's capabilities and Monitor Ready to our side, our
        // capabilities and first format list to the server, and a refusal of that list back.
        for message in server.start().unwrap() {
            let bytes = message.encode_unframed_pdu().unwrap();
            assert!(client.process(&bytes).unwrap().is_empty());
        }
        let Some(Step::Send(first)) = next_step(&mut client) else {
            panic!("no first format list");
        };
        for message in first {
            let bytes = message.encode_unframed_pdu().unwrap();
            server.process(&bytes).unwrap();
        }
        let refused = ironrdp_pdu::encode_vec(&ClipboardPdu::FormatListResponse(
            ironrdp_cliprdr::pdu::FormatListResponse::Fail,
        ))
        .unwrap();
        assert!(client.process(&refused).unwrap().is_empty());
        assert!(!client.is_ready());
        assert!(next_step(&mut client).is_none());

        // The server asks for our text anyway: a failure answers it.
        let ask = server
            .initiate_paste(ClipboardFormatId::CF_UNICODETEXT)
            .unwrap();
        assert!(converse(&mut client, &mut server, ask.into()).is_empty());
        assert_eq!(notes(&server).failed, 1, "the request was not answered");
        assert!(notes(&server).received.is_empty(), "{:?}", notes(&server));
    }

    fn chunk(declared: u32, flags: u32, body: &[u8]) -> Vec<u8> {
        let mut chunk = declared.to_le_bytes().to_vec();
        chunk.extend(flags.to_le_bytes());
        chunk.extend(body);
        chunk
    }

    #[test]
    fn the_channel_guard_skips_whole_sequences_declaring_too_much() {
        let (first, last) = (CHANNEL_FLAG_FIRST, CHANNEL_FLAG_LAST);
        let mut guard = ChannelGuard::default();
        let small = MAX_CHANNEL_PDU as u32;
        let huge = u32::MAX;
        assert_eq!(guard.check(&chunk(12, first | last, &[5, 0])), Chunk::Pass);
        assert_eq!(guard.check(&chunk(small, first, &[2, 0])), Chunk::Pass);
        assert_eq!(guard.check(&chunk(small, 0, &[0; 9])), Chunk::Pass);
        assert_eq!(guard.check(&chunk(small, last, &[0; 9])), Chunk::Pass);
        // A clipboard data response declaring 4 GiB: skipped, its size told once.
        assert_eq!(
            guard.check(&chunk(huge, first, &[5, 0, 1, 0])),
            Chunk::SkipData { bytes: huge - 8 }
        );
        for _ in 0..3 {
            assert_eq!(guard.check(&chunk(huge, 0, &[0; 100])), Chunk::Skip);
        }
        assert_eq!(guard.check(&chunk(huge, last, &[0; 100])), Chunk::Skip);
        // Over: the next sequence passes again.
        assert_eq!(guard.check(&chunk(12, first | last, &[2, 0])), Chunk::Pass);
        // Another message declaring too much (a format list), in one chunk.
        assert_eq!(
            guard.check(&chunk(small + 1, first | last, &[2, 0])),
            Chunk::Skip
        );
        assert_eq!(guard.check(&chunk(12, first | last, &[2, 0])), Chunk::Pass);
        // A new first chunk ends a skipped sequence that never had its last.
        assert_eq!(guard.check(&chunk(huge, first, &[2, 0])), Chunk::Skip);
        assert_eq!(guard.check(&chunk(12, first | last, &[2, 0])), Chunk::Pass);
        assert_eq!(
            guard.check(&chunk(12, first | CHANNEL_PACKET_COMPRESSED, &[])),
            Chunk::Malformed
        );
        assert_eq!(guard.check(&[1, 2, 3]), Chunk::Malformed);
    }

    #[test]
    fn a_dynamic_channel_message_declaring_over_its_bound_is_malformed() {
        // DataFirst (Cmd 2), a 1-byte channel id (7), a 4-byte length (Sp 2).
        let data_first = |length: u32| {
            let mut pdu = vec![0x28, 7];
            pdu.extend(length.to_le_bytes());
            pdu.extend(b"data");
            pdu
        };
        assert_eq!(dvc_declared_length(&data_first(70_000)), Some(70_000));
        assert_eq!(dvc_declared_length(&data_first(u32::MAX)), Some(u32::MAX));
        // A 2-byte length (Sp 1), compressed DataFirst (Cmd 6).
        assert_eq!(dvc_declared_length(&[0x64, 3, 0x34, 0x12]), Some(0x1234));
        // Data (Cmd 3) declares nothing; truncated or impossible headers neither.
        assert_eq!(dvc_declared_length(&[0x30, 7, 1, 2]), None);
        assert_eq!(dvc_declared_length(&[0x2b, 3]), None);
        assert_eq!(dvc_declared_length(&[0x28, 3, 1]), None);
        assert_eq!(dvc_declared_length(&[]), None);
        let whole = CHANNEL_FLAG_FIRST | CHANNEL_FLAG_LAST;
        let mut guard = ChannelGuard::default();
        let huge = data_first(MAX_DVC_MESSAGE + 1);
        assert_eq!(
            guard.check_dynamic(&chunk(huge.len() as u32, whole, &huge)),
            Chunk::Malformed
        );
        let fine = data_first(MAX_DVC_MESSAGE);
        assert_eq!(
            guard.check_dynamic(&chunk(fine.len() as u32, whole, &fine)),
            Chunk::Pass
        );
        // A channel sequence too large is skipped whole, as the clipboard's.
        let declared = (MAX_CHANNEL_PDU + 1) as u32;
        assert_eq!(
            guard.check_dynamic(&chunk(declared, CHANNEL_FLAG_FIRST, &[5, 0, 0, 0])),
            Chunk::Skip
        );
        assert_eq!(
            guard.check_dynamic(&chunk(declared, CHANNEL_FLAG_LAST, b"rest")),
            Chunk::Skip
        );
    }
}
