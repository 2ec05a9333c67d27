//! The Telnet wire protocol (RFC 854, 855), client side, sans I/O: bytes from the device in,
//! the device's data and the answers to send back out; what the user types in, escaped bytes
//! out. Options negotiated: ECHO (RFC 857) and SUPPRESS-GO-AHEAD (RFC 858) from the device,
//! TERMINAL-TYPE (RFC 1091) and NAWS (RFC 1073) from Rampart; every other option is refused.
//!
//! INVARIANT: nothing from the device can grow memory without bound or panic: a
//! subnegotiation keeps at most [`MAX_SUBNEGOTIATION`] bytes (the rest is dropped), one that
//! never ends only swallows data, and an answer is sent only when an option's state changes, so
//! a device repeating itself cannot start a negotiation loop.

/// Interpret As Command.
pub const IAC: u8 = 255;
pub const DONT: u8 = 254;
pub const DO: u8 = 253;
pub const WONT: u8 = 252;
pub const WILL: u8 = 251;
/// Subnegotiation Begin.
pub const SB: u8 = 250;
/// Subnegotiation End.
pub const SE: u8 = 240;

pub const OPTION_ECHO: u8 = 1;
pub const OPTION_SUPPRESS_GO_AHEAD: u8 = 3;
pub const OPTION_TERMINAL_TYPE: u8 = 24;
pub const OPTION_NAWS: u8 = 31;

/// TERMINAL-TYPE subnegotiation commands.
const TTYPE_IS: u8 = 0;
const TTYPE_SEND: u8 = 1;

/// The longest subnegotiation kept; longer ones are cut (and ignored: nothing Rampart
/// understands is that long).
pub const MAX_SUBNEGOTIATION: usize = 256;

/// The longest terminal type sent (RFC 1091 allows 40 characters).
const MAX_TERMINAL_TYPE: usize = 40;

/// Where an option stands on one side (a simplified RFC 1143: a request we made is
/// `Requested` until answered, so the answer is not answered again).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum OptionState {
    #[default]
    Off,
    Requested,
    On,
}

/// Where the parser is in the device's byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    #[default]
    Data,
    /// A CR in data: a NUL after it is the NVT's bare carriage return and is dropped.
    CarriageReturn,
    Command,
    /// `IAC WILL|WONT|DO|DONT`, waiting for the option byte.
    Negotiation(u8),
    /// `IAC SB`, waiting for the option byte.
    SubnegotiationOption,
    Subnegotiation,
    /// An `IAC` inside a subnegotiation.
    SubnegotiationCommand,
}

/// What a chunk of the device's bytes held.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Received {
    /// The device's data, unescaped, commands removed.
    pub data: Vec<u8>,
    /// Answers to write to the device (negotiation, subnegotiations).
    pub reply: Vec<u8>,
}

/// One Telnet connection's protocol state, client side.
#[derive(Debug)]
pub struct Telnet {
    state: State,
    subnegotiation_option: u8,
    subnegotiation: Vec<u8>,
    /// The device's side (it echoes, it suppresses go-ahead).
    remote_echo: OptionState,
    remote_suppress_go_ahead: OptionState,
    /// Rampart's side (it tells the terminal type, the window size).
    local_terminal_type: OptionState,
    local_naws: OptionState,
    terminal_type: Vec<u8>,
    columns: u16,
    rows: u16,
}

impl Telnet {
    /// A connection for a terminal of type `term` (the user's `TERM`; none: `UNKNOWN`) and
    /// size `columns` x `rows`.
    pub fn new(term: Option<&str>, columns: u32, rows: u32) -> Self {
        Self {
            state: State::Data,
            subnegotiation_option: 0,
            subnegotiation: Vec::new(),
            remote_echo: OptionState::Off,
            remote_suppress_go_ahead: OptionState::Off,
            local_terminal_type: OptionState::Off,
            local_naws: OptionState::Off,
            terminal_type: terminal_type(term),
            columns: clamp(columns),
            rows: clamp(rows),
        }
    }

    /// What Rampart offers first: the device echoes and suppresses go-ahead (character at a
    /// time, what a user's terminal in raw mode expects), Rampart tells its terminal type and
    /// window size.
    pub fn start(&mut self) -> Vec<u8> {
        self.remote_echo = OptionState::Requested;
        self.remote_suppress_go_ahead = OptionState::Requested;
        self.local_terminal_type = OptionState::Requested;
        self.local_naws = OptionState::Requested;
        vec![
            IAC,
            DO,
            OPTION_SUPPRESS_GO_AHEAD,
            IAC,
            DO,
            OPTION_ECHO,
            IAC,
            WILL,
            OPTION_TERMINAL_TYPE,
            IAC,
            WILL,
            OPTION_NAWS,
        ]
    }

    /// Whether the device echoes what is typed.
    pub fn device_echoes(&self) -> bool {
        self.remote_echo == OptionState::On
    }

    /// Whether the window size is being told to the device.
    pub fn naws_enabled(&self) -> bool {
        self.local_naws == OptionState::On
    }

    /// Parses a chunk of the device's bytes.
    pub fn receive(&mut self, input: &[u8]) -> Received {
        let mut received = Received {
            data: Vec::with_capacity(input.len()),
            reply: Vec::new(),
        };
        for &byte in input {
            self.state = match self.state {
                State::Data | State::CarriageReturn => {
                    let after_cr = self.state == State::CarriageReturn;
                    match byte {
                        IAC => State::Command,
                        0 if after_cr => State::Data,
                        b'\r' => {
                            received.data.push(byte);
                            State::CarriageReturn
                        }
                        _ => {
                            received.data.push(byte);
                            State::Data
                        }
                    }
                }
                State::Command => match byte {
                    IAC => {
                        received.data.push(IAC);
                        State::Data
                    }
                    WILL | WONT | DO | DONT => State::Negotiation(byte),
                    SB => State::SubnegotiationOption,
                    // NOP, GA, DM, BRK, AYT, ... and a stray SE: nothing to do.
                    _ => State::Data,
                },
                State::Negotiation(verb) => {
                    self.negotiate(verb, byte, &mut received.reply);
                    State::Data
                }
                State::SubnegotiationOption => {
                    self.subnegotiation_option = byte;
                    self.subnegotiation.clear();
                    State::Subnegotiation
                }
                State::Subnegotiation => {
                    if byte == IAC {
                        State::SubnegotiationCommand
                    } else {
                        self.keep_subnegotiation_byte(byte);
                        State::Subnegotiation
                    }
                }
                State::SubnegotiationCommand => match byte {
                    SE => {
                        self.subnegotiated(&mut received.reply);
                        State::Data
                    }
                    IAC => {
                        self.keep_subnegotiation_byte(IAC);
                        State::Subnegotiation
                    }
                    // Not allowed inside a subnegotiation (RFC 855): ends it unanswered.
                    _ => {
                        self.subnegotiation.clear();
                        State::Data
                    }
                },
            };
        }
        received
    }

    fn keep_subnegotiation_byte(&mut self, byte: u8) {
        if self.subnegotiation.len() < MAX_SUBNEGOTIATION {
            self.subnegotiation.push(byte);
        }
    }

    /// Answers one `IAC verb option`, only when the option's state changes.
    fn negotiate(&mut self, verb: u8, option: u8, reply: &mut Vec<u8>) {
        match verb {
            WILL | WONT => {
                let state = match option {
                    OPTION_ECHO => Some(&mut self.remote_echo),
                    OPTION_SUPPRESS_GO_AHEAD => Some(&mut self.remote_suppress_go_ahead),
                    _ => None,
                };
                match (verb, state) {
                    (WILL, Some(state)) => {
                        if *state == OptionState::Off {
                            reply.extend_from_slice(&[IAC, DO, option]);
                        }
                        *state = OptionState::On;
                    }
                    // Refused: an option Rampart does not want from the device.
                    (WILL, None) => reply.extend_from_slice(&[IAC, DONT, option]),
                    (_, Some(state)) => {
                        if *state == OptionState::On {
                            reply.extend_from_slice(&[IAC, DONT, option]);
                        }
                        *state = OptionState::Off;
                    }
                    // WONT for something never enabled: nothing to say.
                    (_, None) => {}
                }
            }
            _ => {
                let is_naws = option == OPTION_NAWS;
                let state = match option {
                    OPTION_TERMINAL_TYPE => Some(&mut self.local_terminal_type),
                    OPTION_NAWS => Some(&mut self.local_naws),
                    _ => None,
                };
                match (verb, state) {
                    (DO, Some(state)) => {
                        let was = *state;
                        if was == OptionState::Off {
                            reply.extend_from_slice(&[IAC, WILL, option]);
                        }
                        *state = OptionState::On;
                        if is_naws && was != OptionState::On {
                            reply.extend_from_slice(&self.window_size());
                        }
                    }
                    (DO, None) => reply.extend_from_slice(&[IAC, WONT, option]),
                    (_, Some(state)) => {
                        if *state == OptionState::On {
                            reply.extend_from_slice(&[IAC, WONT, option]);
                        }
                        *state = OptionState::Off;
                    }
                    (_, None) => {}
                }
            }
        }
    }

    /// Answers a complete subnegotiation: `TERMINAL-TYPE SEND` only (while enabled).
    fn subnegotiated(&mut self, reply: &mut Vec<u8>) {
        let asks_terminal_type = self.subnegotiation_option == OPTION_TERMINAL_TYPE
            && self.subnegotiation.first() == Some(&TTYPE_SEND);
        self.subnegotiation.clear();
        if asks_terminal_type && self.local_terminal_type == OptionState::On {
            reply.extend_from_slice(&[IAC, SB, OPTION_TERMINAL_TYPE, TTYPE_IS]);
            // INVARIANT: the terminal type holds printable ASCII only, never IAC.
            reply.extend_from_slice(&self.terminal_type);
            reply.extend_from_slice(&[IAC, SE]);
        }
    }

    /// `IAC SB NAWS width height IAC SE`, with an IAC in the numbers doubled.
    fn window_size(&self) -> Vec<u8> {
        let mut out = vec![IAC, SB, OPTION_NAWS];
        for byte in self
            .columns
            .to_be_bytes()
            .into_iter()
            .chain(self.rows.to_be_bytes())
        {
            out.push(byte);
            if byte == IAC {
                out.push(IAC);
            }
        }
        out.extend_from_slice(&[IAC, SE]);
        out
    }

    /// The user's terminal changed size: what to tell the device (nothing unless NAWS is on).
    pub fn resize(&mut self, columns: u32, rows: u32) -> Vec<u8> {
        self.columns = clamp(columns);
        self.rows = clamp(rows);
        if self.naws_enabled() {
            self.window_size()
        } else {
            Vec::new()
        }
    }

    /// What the user typed, as NVT bytes: IAC doubled, a carriage return not followed by a
    /// line feed sent as CR NUL (RFC 854).
    pub fn encode(&self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() + 8);
        let mut bytes = data.iter().peekable();
        while let Some(&byte) = bytes.next() {
            out.push(byte);
            match byte {
                IAC => out.push(IAC),
                b'\r' if bytes.peek() != Some(&&b'\n') => out.push(0),
                _ => {}
            }
        }
        out
    }
}

fn clamp(size: u32) -> u16 {
    u16::try_from(size).unwrap_or(u16::MAX)
}

/// The terminal type sent: the user's `TERM` if it is short printable ASCII, else `UNKNOWN`.
fn terminal_type(term: Option<&str>) -> Vec<u8> {
    match term {
        Some(term)
            if !term.is_empty()
                && term.len() <= MAX_TERMINAL_TYPE
                && term
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.+/".contains(&b)) =>
        {
            term.as_bytes().to_vec()
        }
        _ => b"UNKNOWN".to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started() -> Telnet {
        let mut telnet = Telnet::new(Some("xterm-256color"), 100, 40);
        telnet.start();
        telnet
    }

    #[test]
    fn data_passes_and_doubled_iac_is_one_byte() {
        let mut telnet = started();
        let received = telnet.receive(b"hello \xff\xff world");
        assert_eq!(received.data, b"hello \xff world");
        assert!(received.reply.is_empty());
    }

    #[test]
    fn cr_nul_is_a_bare_carriage_return_and_cr_lf_stays() {
        let mut telnet = started();
        assert_eq!(telnet.receive(b"a\r\0b\r\nc").data, b"a\rb\r\nc");
        // Split across chunks too.
        assert_eq!(telnet.receive(b"d\r").data, b"d\r");
        assert_eq!(telnet.receive(b"\0e").data, b"e");
    }

    #[test]
    fn offered_options_are_not_answered_again_and_naws_sends_the_size() {
        let mut telnet = started();
        let received = telnet.receive(&[
            IAC,
            WILL,
            OPTION_ECHO,
            IAC,
            WILL,
            OPTION_SUPPRESS_GO_AHEAD,
            IAC,
            DO,
            OPTION_TERMINAL_TYPE,
            IAC,
            DO,
            OPTION_NAWS,
        ]);
        assert!(received.data.is_empty());
        // Only the window size: every other answer would repeat a request already made.
        assert_eq!(
            received.reply,
            [IAC, SB, OPTION_NAWS, 0, 100, 0, 40, IAC, SE]
        );
        assert!(telnet.device_echoes());
        // The same again changes nothing, so nothing is answered (no loop).
        let again = telnet.receive(&[IAC, WILL, OPTION_ECHO, IAC, DO, OPTION_NAWS]);
        assert!(again.reply.is_empty(), "{:?}", again.reply);
    }

    #[test]
    fn unknown_options_are_refused_once_each_time_asked() {
        let mut telnet = started();
        let received = telnet.receive(&[IAC, WILL, 0, IAC, DO, 34, IAC, WONT, 99, IAC, DONT, 98]);
        assert_eq!(received.reply, [IAC, DONT, 0, IAC, WONT, 34]);
    }

    #[test]
    fn the_terminal_type_is_sent_when_asked() {
        let mut telnet = started();
        telnet.receive(&[IAC, DO, OPTION_TERMINAL_TYPE]);
        let received = telnet.receive(&[IAC, SB, OPTION_TERMINAL_TYPE, TTYPE_SEND, IAC, SE]);
        let mut expected = vec![IAC, SB, OPTION_TERMINAL_TYPE, TTYPE_IS];
        expected.extend_from_slice(b"xterm-256color");
        expected.extend_from_slice(&[IAC, SE]);
        assert_eq!(received.reply, expected);
        // A hostile TERM never reaches the device.
        let mut odd = Telnet::new(Some("x\u{ff}\r\n"), 80, 24);
        odd.start();
        odd.receive(&[IAC, DO, OPTION_TERMINAL_TYPE]);
        let received = odd.receive(&[IAC, SB, OPTION_TERMINAL_TYPE, TTYPE_SEND, IAC, SE]);
        assert!(received.reply.windows(7).any(|w| w == b"UNKNOWN"));
    }

    #[test]
    fn refused_terminal_type_is_not_sent() {
        let mut telnet = started();
        telnet.receive(&[IAC, DONT, OPTION_TERMINAL_TYPE]);
        let received = telnet.receive(&[IAC, SB, OPTION_TERMINAL_TYPE, TTYPE_SEND, IAC, SE]);
        assert!(received.reply.is_empty());
    }

    #[test]
    fn resize_sends_naws_only_once_enabled_and_doubles_iac() {
        let mut telnet = Telnet::new(None, 80, 24);
        assert!(telnet.resize(120, 50).is_empty());
        telnet.receive(&[IAC, DO, OPTION_NAWS]);
        assert_eq!(
            telnet.resize(255, 70_000),
            [
                IAC,
                SB,
                OPTION_NAWS,
                0,
                IAC,
                IAC,
                IAC,
                IAC,
                IAC,
                IAC,
                IAC,
                SE
            ]
        );
    }

    #[test]
    fn typed_bytes_are_escaped() {
        let telnet = started();
        assert_eq!(telnet.encode(b"ls\r"), b"ls\r\0");
        assert_eq!(telnet.encode(b"a\r\nb\xff"), b"a\r\nb\xff\xff");
    }

    #[test]
    fn subnegotiation_without_end_is_bounded_and_swallows_only_itself() {
        let mut telnet = started();
        let mut hostile = vec![IAC, SB, OPTION_TERMINAL_TYPE];
        hostile.extend(std::iter::repeat_n(b'x', 1_000_000));
        let received = telnet.receive(&hostile);
        assert!(received.data.is_empty());
        assert!(telnet.subnegotiation.len() <= MAX_SUBNEGOTIATION);
        // An IAC SE ends it; data flows again.
        let received = telnet.receive(&[IAC, SE, b'o', b'k']);
        assert_eq!(received.data, b"ok");
    }

    #[test]
    fn malformed_sequences_never_panic_and_end_in_a_known_state() {
        let cases: Vec<Vec<u8>> = vec![
            vec![IAC],
            vec![IAC, WILL],
            vec![IAC, SB],
            vec![IAC, SB, OPTION_NAWS, IAC],
            vec![IAC, SB, OPTION_NAWS, IAC, WILL, b'a'],
            vec![IAC, SE, IAC, 0, IAC, 241, IAC, 249],
            vec![IAC, SB, OPTION_TERMINAL_TYPE, IAC, SE],
            vec![IAC, SB, IAC, SE],
            (0..=255).collect(),
            (0..=255).rev().cycle().take(10_000).collect(),
        ];
        for case in cases {
            let mut telnet = started();
            // Whole, and byte by byte: the same result.
            let whole = telnet.receive(&case);
            let mut split = started();
            let mut data = Vec::new();
            let mut reply = Vec::new();
            for byte in &case {
                let received = split.receive(std::slice::from_ref(byte));
                data.extend(received.data);
                reply.extend(received.reply);
            }
            assert_eq!(whole.data, data, "{case:?}");
            assert_eq!(whole.reply, reply, "{case:?}");
            assert!(telnet.subnegotiation.len() <= MAX_SUBNEGOTIATION);
        }
    }

    #[test]
    fn a_device_repeating_negotiation_gets_bounded_answers() {
        // Flip-flopping WILL/WONT is answered per change, never more than once per byte triple.
        let mut telnet = started();
        let mut flood = Vec::new();
        for _ in 0..10_000 {
            flood.extend_from_slice(&[IAC, WILL, OPTION_ECHO, IAC, WONT, OPTION_ECHO]);
        }
        let received = telnet.receive(&flood);
        assert!(received.reply.len() <= flood.len());
        assert!(received.data.is_empty());
    }
}
