//! PPTP control messages (RFC 2637 §1.4, §2.1–§2.16).
//!
//! [`ControlPacket`] is a checked view of one message; [`ControlMessage`] is the validated
//! representation with `parse`/`emit`. All values are big-endian. Reserved fields are sent as
//! zero and ignored on receipt. Strings are NUL-padded fixed fields: received text ends at the
//! first NUL (or the field end) and is decoded as lossy UTF-8; sent text is truncated to the field.

use crate::error::ParseError;

mod message;

pub use message::{
    CallClearRequest, CallDisconnectNotify, ControlMessage, EchoReply, EchoRequest, Iccn, Icrp,
    Icrq, Ocrp, Ocrq, Sccrp, Sccrq, SetLinkInfo, StopCcrp, StopCcrq, WanErrorNotify,
};

/// Magic Cookie carried by every control message (§1.4).
pub const MAGIC_COOKIE: u32 = 0x1A2B_3C4D;
/// PPTP Message Type of control messages (§1.4).
pub const PPTP_CONTROL_MESSAGE: u16 = 1;
/// Length of the common header: Length, PPTP Message Type, Magic Cookie, Control Message Type, Reserved0.
pub const HEADER_LEN: usize = 12;
/// Largest control message (Incoming-Call-Request, §2.9).
pub const MAX_MESSAGE_LEN: usize = 220;
/// Protocol version 1.0 (§2.1: major version in the high octet).
pub const PROTOCOL_VERSION: u16 = 0x0100;

/// Length of host name, vendor, phone number and subaddress fields.
const STRING_LEN: usize = 64;
/// Length of the Call Statistics field of Call-Disconnect-Notify (§2.13).
const CALL_STATS_LEN: usize = 128;

macro_rules! code_enum {
    ($(#[$m:meta])* $name:ident : $repr:ty { $($(#[$vm:meta])* $var:ident = $val:literal,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $var,)*
            /// A value RFC 2637 does not define.
            Unknown($repr),
        }
        impl From<$repr> for $name {
            fn from(v: $repr) -> Self {
                match v {
                    $($val => Self::$var,)*
                    other => Self::Unknown(other),
                }
            }
        }
        impl From<$name> for $repr {
            fn from(v: $name) -> $repr {
                match v {
                    $($name::$var => $val,)*
                    $name::Unknown(other) => other,
                }
            }
        }
    };
}

code_enum! {
    /// Start-Control-Connection-Reply Result Code (§2.2).
    SccrpResult: u8 {
        /// 1: Successful channel establishment.
        Success = 1,
        /// 2: General error; Error Code indicates the problem.
        GeneralError = 2,
        /// 3: Command channel already exists.
        AlreadyExists = 3,
        /// 4: Requester is not authorized to establish a command channel.
        NotAuthorized = 4,
        /// 5: The protocol version of the requester is not supported.
        UnsupportedVersion = 5,
    }
}

code_enum! {
    /// Stop-Control-Connection-Request Reason (§2.3).
    StopReason: u8 {
        /// 1: General request to clear the control connection.
        None = 1,
        /// 2: Can't support the peer's version of the protocol.
        StopProtocol = 2,
        /// 3: Requester is being shut down.
        LocalShutdown = 3,
    }
}

code_enum! {
    /// Stop-Control-Connection-Reply and Echo-Reply Result Code (§2.4, §2.6).
    OkResult: u8 {
        /// 1: OK.
        Ok = 1,
        /// 2: General error; Error Code indicates the problem.
        GeneralError = 2,
    }
}

code_enum! {
    /// Outgoing-Call-Reply Result Code (§2.8).
    OcrpResult: u8 {
        /// 1: Call established with no errors.
        Connected = 1,
        /// 2: General error; Error Code indicates the problem.
        GeneralError = 2,
        /// 3: Outgoing call failed due to no carrier.
        NoCarrier = 3,
        /// 4: Outgoing call failed due to a busy signal.
        Busy = 4,
        /// 5: Outgoing call failed due to lack of a dial tone.
        NoDialTone = 5,
        /// 6: Outgoing call not established within the time allotted by the PAC.
        Timeout = 6,
        /// 7: Outgoing call administratively prohibited.
        DoNotAccept = 7,
    }
}

code_enum! {
    /// Incoming-Call-Reply Result Code (§2.10).
    IcrpResult: u8 {
        /// 1: The PAC should answer the incoming call.
        Connect = 1,
        /// 2: General error; Error Code indicates the problem.
        GeneralError = 2,
        /// 3: The PAC should not accept the incoming call.
        DoNotAccept = 3,
    }
}

code_enum! {
    /// Call-Disconnect-Notify Result Code (§2.13).
    CdnResult: u8 {
        /// 1: Call disconnected due to loss of carrier.
        LostCarrier = 1,
        /// 2: General error; Error Code indicates the problem.
        GeneralError = 2,
        /// 3: Call disconnected for administrative reasons.
        AdminShutdown = 3,
        /// 4: Call disconnected due to receipt of a Call-Clear-Request.
        Request = 4,
    }
}

code_enum! {
    /// General Error Codes (§2.16), carried in the Error Code fields.
    GeneralError: u8 {
        /// 0: No general error.
        None = 0,
        /// 1: No control connection exists yet for this PAC-PNS pair.
        NotConnected = 1,
        /// 2: Length is wrong or Magic Cookie value is incorrect.
        BadFormat = 2,
        /// 3: A field value was out of range or a reserved field was non-zero.
        BadValue = 3,
        /// 4: Insufficient resources to handle this command now.
        NoResource = 4,
        /// 5: The Call ID is invalid in this context.
        BadCallId = 5,
        /// 6: A generic vendor-specific error occurred in the PAC.
        PacError = 6,
    }
}

code_enum! {
    /// Bearer Type of Outgoing-Call-Request / Incoming-Call-Request (§2.7, §2.9).
    BearerType: u32 {
        /// 1: Call on an analog channel.
        Analog = 1,
        /// 2: Call on a digital channel.
        Digital = 2,
        /// 3: Call on any type of channel.
        Any = 3,
    }
}

code_enum! {
    /// Framing Type of Outgoing-Call-Request / Incoming-Call-Connected (§2.7, §2.11).
    FramingType: u32 {
        /// 1: Asynchronous framing.
        Async = 1,
        /// 2: Synchronous framing.
        Sync = 2,
        /// 3: Either framing.
        Any = 3,
    }
}

/// Framing Capabilities bit set of SCCRQ/SCCRP (§2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FramingCapabilities(pub u32);

impl FramingCapabilities {
    /// Asynchronous framing supported.
    pub const ASYNC: Self = Self(1);
    /// Synchronous framing supported.
    pub const SYNC: Self = Self(2);
    /// Both.
    pub const ALL: Self = Self(3);
}

/// Bearer Capabilities bit set of SCCRQ/SCCRP (§2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct BearerCapabilities(pub u32);

impl BearerCapabilities {
    /// Analog access supported.
    pub const ANALOG: Self = Self(1);
    /// Digital access supported.
    pub const DIGITAL: Self = Self(2);
    /// Both.
    pub const ALL: Self = Self(3);
}

/// Control Message Type (§1.4) with its fixed message length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// 1, §2.1.
    StartControlConnectionRequest,
    /// 2, §2.2.
    StartControlConnectionReply,
    /// 3, §2.3.
    StopControlConnectionRequest,
    /// 4, §2.4.
    StopControlConnectionReply,
    /// 5, §2.5.
    EchoRequest,
    /// 6, §2.6.
    EchoReply,
    /// 7, §2.7.
    OutgoingCallRequest,
    /// 8, §2.8.
    OutgoingCallReply,
    /// 9, §2.9.
    IncomingCallRequest,
    /// 10, §2.10.
    IncomingCallReply,
    /// 11, §2.11.
    IncomingCallConnected,
    /// 12, §2.12.
    CallClearRequest,
    /// 13, §2.13.
    CallDisconnectNotify,
    /// 14, §2.14.
    WanErrorNotify,
    /// 15, §2.15.
    SetLinkInfo,
}

impl MessageType {
    /// Decodes a Control Message Type value.
    pub fn from_u16(v: u16) -> Option<Self> {
        use MessageType::*;
        Some(match v {
            1 => StartControlConnectionRequest,
            2 => StartControlConnectionReply,
            3 => StopControlConnectionRequest,
            4 => StopControlConnectionReply,
            5 => EchoRequest,
            6 => EchoReply,
            7 => OutgoingCallRequest,
            8 => OutgoingCallReply,
            9 => IncomingCallRequest,
            10 => IncomingCallReply,
            11 => IncomingCallConnected,
            12 => CallClearRequest,
            13 => CallDisconnectNotify,
            14 => WanErrorNotify,
            15 => SetLinkInfo,
            _ => return None,
        })
    }

    /// The Control Message Type value.
    pub fn to_u16(self) -> u16 {
        use MessageType::*;
        match self {
            StartControlConnectionRequest => 1,
            StartControlConnectionReply => 2,
            StopControlConnectionRequest => 3,
            StopControlConnectionReply => 4,
            EchoRequest => 5,
            EchoReply => 6,
            OutgoingCallRequest => 7,
            OutgoingCallReply => 8,
            IncomingCallRequest => 9,
            IncomingCallReply => 10,
            IncomingCallConnected => 11,
            CallClearRequest => 12,
            CallDisconnectNotify => 13,
            WanErrorNotify => 14,
            SetLinkInfo => 15,
        }
    }

    /// The RFC's name of the message.
    pub fn name(self) -> &'static str {
        use MessageType::*;
        match self {
            StartControlConnectionRequest => "Start-Control-Connection-Request",
            StartControlConnectionReply => "Start-Control-Connection-Reply",
            StopControlConnectionRequest => "Stop-Control-Connection-Request",
            StopControlConnectionReply => "Stop-Control-Connection-Reply",
            EchoRequest => "Echo-Request",
            EchoReply => "Echo-Reply",
            OutgoingCallRequest => "Outgoing-Call-Request",
            OutgoingCallReply => "Outgoing-Call-Reply",
            IncomingCallRequest => "Incoming-Call-Request",
            IncomingCallReply => "Incoming-Call-Reply",
            IncomingCallConnected => "Incoming-Call-Connected",
            CallClearRequest => "Call-Clear-Request",
            CallDisconnectNotify => "Call-Disconnect-Notify",
            WanErrorNotify => "WAN-Error-Notify",
            SetLinkInfo => "Set-Link-Info",
        }
    }

    /// Total message length including the header, fixed per type by the §2 field tables.
    pub fn fixed_len(self) -> usize {
        use MessageType::*;
        match self {
            StartControlConnectionRequest | StartControlConnectionReply => 156,
            StopControlConnectionRequest | StopControlConnectionReply | EchoRequest => 16,
            EchoReply => 20,
            OutgoingCallRequest => 168,
            OutgoingCallReply => 32,
            IncomingCallRequest => 220,
            IncomingCallReply => 24,
            IncomingCallConnected => 28,
            CallClearRequest => 16,
            CallDisconnectNotify => 148,
            WanErrorNotify => 40,
            SetLinkInfo => 24,
        }
    }
}

/// Validates the 12-byte common header (§1.4) and returns the message type and its length.
///
/// Used by the framer to reject a bad stream before buffering the body.
pub fn check_header(header: &[u8; HEADER_LEN]) -> Result<(MessageType, usize), ParseError> {
    let [l0, l1, t0, t1, m0, m1, m2, m3, c0, c1, _, _] = *header;
    let length = u16::from_be_bytes([l0, l1]);
    if usize::from(length) < HEADER_LEN || usize::from(length) > MAX_MESSAGE_LEN {
        return Err(ParseError::LengthOutOfRange(length));
    }
    let pptp_type = u16::from_be_bytes([t0, t1]);
    if pptp_type != PPTP_CONTROL_MESSAGE {
        return Err(ParseError::BadPptpMessageType(pptp_type));
    }
    let magic = u32::from_be_bytes([m0, m1, m2, m3]);
    if magic != MAGIC_COOKIE {
        return Err(ParseError::BadMagicCookie(magic));
    }
    let ctype = u16::from_be_bytes([c0, c1]);
    let message =
        MessageType::from_u16(ctype).ok_or(ParseError::UnknownControlMessageType(ctype))?;
    if usize::from(length) != message.fixed_len() {
        return Err(ParseError::BadLength { message, length });
    }
    Ok((message, usize::from(length)))
}

/// Checked view of one control message in a buffer.
///
/// After [`ControlPacket::new_checked`] the header is valid, the buffer holds at least `length()`
/// bytes and no accessor can panic (none can panic even unchecked: they return defaults).
#[derive(Debug, Clone)]
pub struct ControlPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ControlPacket<T> {
    /// Wraps a buffer without validation.
    pub fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps and validates a buffer (header fields, fixed length, enough bytes).
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let packet = Self::new_unchecked(buffer);
        packet.check()?;
        Ok(packet)
    }

    /// Validates the header and that the buffer holds the whole message.
    pub fn check(&self) -> Result<(), ParseError> {
        let header = self
            .buffer
            .as_ref()
            .first_chunk::<HEADER_LEN>()
            .ok_or(ParseError::Truncated)?;
        let (_, len) = check_header(header)?;
        if self.buffer.as_ref().len() < len {
            return Err(ParseError::Truncated);
        }
        Ok(())
    }

    fn header(&self) -> [u8; HEADER_LEN] {
        self.buffer
            .as_ref()
            .first_chunk::<HEADER_LEN>()
            .copied()
            .unwrap_or([0; HEADER_LEN])
    }

    /// Length field.
    pub fn length(&self) -> u16 {
        let [a, b, ..] = self.header();
        u16::from_be_bytes([a, b])
    }

    /// PPTP Message Type field.
    pub fn pptp_message_type(&self) -> u16 {
        let [_, _, a, b, ..] = self.header();
        u16::from_be_bytes([a, b])
    }

    /// Magic Cookie field.
    pub fn magic_cookie(&self) -> u32 {
        let [_, _, _, _, a, b, c, d, ..] = self.header();
        u32::from_be_bytes([a, b, c, d])
    }

    /// Raw Control Message Type field.
    pub fn control_message_type(&self) -> u16 {
        let [_, _, _, _, _, _, _, _, a, b, _, _] = self.header();
        u16::from_be_bytes([a, b])
    }

    /// Decoded Control Message Type, if known.
    pub fn message_type(&self) -> Option<MessageType> {
        MessageType::from_u16(self.control_message_type())
    }

    /// Bytes after the header up to Length (empty if the buffer is shorter).
    pub fn body(&self) -> &[u8] {
        self.buffer
            .as_ref()
            .get(HEADER_LEN..usize::from(self.length()))
            .unwrap_or(&[])
    }

    /// Consumes the view, returning the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

/// Sequential big-endian reader that fails (never panics) on short input.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], ParseError> {
        let (head, rest) = self
            .buf
            .split_first_chunk::<N>()
            .ok_or(ParseError::Truncated)?;
        self.buf = rest;
        Ok(*head)
    }
    fn u8(&mut self) -> Result<u8, ParseError> {
        Ok(u8::from_be_bytes(self.take()?))
    }
    fn u16(&mut self) -> Result<u16, ParseError> {
        Ok(u16::from_be_bytes(self.take()?))
    }
    fn u32(&mut self) -> Result<u32, ParseError> {
        Ok(u32::from_be_bytes(self.take()?))
    }
    fn string<const N: usize>(&mut self) -> Result<String, ParseError> {
        let raw = self.take::<N>()?;
        let text = raw.split(|&b| b == 0).next().unwrap_or_default();
        Ok(String::from_utf8_lossy(text).into_owned())
    }
}

/// Longest prefix of `s` that fits `max` bytes without splitting a character.
fn truncated(s: &str, max: usize) -> &[u8] {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end = end.saturating_sub(1);
    }
    s.as_bytes().get(..end).unwrap_or_default()
}

fn put_u8(out: &mut Vec<u8>, v: u8) {
    out.push(v);
}
fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}
fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}
fn put_str(out: &mut Vec<u8>, s: &str, field_len: usize) {
    let bytes = truncated(s, field_len);
    out.extend_from_slice(bytes);
    out.resize(out.len() + (field_len - bytes.len()), 0);
}
fn str_len(s: &str, field_len: usize) -> u16 {
    u16::try_from(truncated(s, field_len).len()).unwrap_or(0)
}
