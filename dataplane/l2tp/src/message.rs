//! Control messages (RFC 2661 §3.2, §6) and Result Codes (§4.4.2).
//!
//! [`ControlMessage`] is the validated representation of a control message body (the AVPs after
//! the 12-octet control header): its [`MessageType`] and the decoded [`Avps`]. Parsing follows
//! §4.1/§7.1:
//! - the first AVP must be a cleartext IETF Message Type AVP;
//! - unrecognised AVPs (unknown attribute, vendor-specific, or reserved bits set) are ignored
//!   when M=0 and fatal when M=1; a known AVP with a malformed value is likewise ignored when
//!   M=0 and fatal when M=1 (e.g. a 2-octet Rx Connect Speed with M=0 is dropped);
//! - hidden AVPs (H=1) are decoded with the secret and the most recent Random Vector AVP;
//! - every AVP §6 lists as required for the message type must be present;
//! - when an AVP appears twice the last one wins.
//!
//! A fatal problem gives a [`MessageError`] that still carries the message type and the
//! Assigned Session/Tunnel ID when they decoded, so the caller can answer with a CDN for the
//! session or a StopCCN for the tunnel (§4.1).

use std::fmt;

use crate::avp::{AvpIter, IETF_VENDOR, attr, emit_avp};
use crate::error::ParseError;
use crate::header::{CONTROL_HEADER_LEN, HeaderRepr, put16};
use crate::hidden;

/// At most this many AVPs are examined per message; more is an error (a real message has a few
/// dozen). Bounds work on "AVP storms" together with the 64 KiB message size.
pub const MAX_AVPS_PER_MESSAGE: usize = 256;

/// Protocol Version AVP value we speak: version 1, revision 0 (§4.4.3).
pub const PROTOCOL_VERSION: (u8, u8) = (1, 0);
/// Framing Capabilities/Type bit: synchronous framing (§4.4.3).
pub const FRAMING_SYNC: u32 = 1;
/// Framing Capabilities/Type bit: asynchronous framing (§4.4.3).
pub const FRAMING_ASYNC: u32 = 2;
/// Bearer Capabilities/Type bit: digital (§4.4.3).
pub const BEARER_DIGITAL: u32 = 1;
/// Bearer Capabilities/Type bit: analog (§4.4.3).
pub const BEARER_ANALOG: u32 = 2;

/// Control message types (§3.2). 0, 5 and 13 are reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MessageType {
    /// 1: Start-Control-Connection-Request.
    Sccrq,
    /// 2: Start-Control-Connection-Reply.
    Sccrp,
    /// 3: Start-Control-Connection-Connected.
    Scccn,
    /// 4: Stop-Control-Connection-Notification.
    StopCcn,
    /// 6: Hello.
    Hello,
    /// 7: Outgoing-Call-Request.
    Ocrq,
    /// 8: Outgoing-Call-Reply.
    Ocrp,
    /// 9: Outgoing-Call-Connected.
    Occn,
    /// 10: Incoming-Call-Request.
    Icrq,
    /// 11: Incoming-Call-Reply.
    Icrp,
    /// 12: Incoming-Call-Connected.
    Iccn,
    /// 14: Call-Disconnect-Notify.
    Cdn,
    /// 15: WAN-Error-Notify.
    Wen,
    /// 16: Set-Link-Info.
    Sli,
}

impl MessageType {
    /// Decodes a Message Type value.
    pub fn from_u16(v: u16) -> Option<Self> {
        use MessageType::*;
        Some(match v {
            1 => Sccrq,
            2 => Sccrp,
            3 => Scccn,
            4 => StopCcn,
            6 => Hello,
            7 => Ocrq,
            8 => Ocrp,
            9 => Occn,
            10 => Icrq,
            11 => Icrp,
            12 => Iccn,
            14 => Cdn,
            15 => Wen,
            16 => Sli,
            _ => return None,
        })
    }

    /// The Message Type value.
    pub fn to_u16(self) -> u16 {
        use MessageType::*;
        match self {
            Sccrq => 1,
            Sccrp => 2,
            Scccn => 3,
            StopCcn => 4,
            Hello => 6,
            Ocrq => 7,
            Ocrp => 8,
            Occn => 9,
            Icrq => 10,
            Icrp => 11,
            Iccn => 12,
            Cdn => 14,
            Wen => 15,
            Sli => 16,
        }
    }

    /// The RFC's abbreviation.
    pub fn name(self) -> &'static str {
        use MessageType::*;
        match self {
            Sccrq => "SCCRQ",
            Sccrp => "SCCRP",
            Scccn => "SCCCN",
            StopCcn => "StopCCN",
            Hello => "HELLO",
            Ocrq => "OCRQ",
            Ocrp => "OCRP",
            Occn => "OCCN",
            Icrq => "ICRQ",
            Icrp => "ICRP",
            Iccn => "ICCN",
            Cdn => "CDN",
            Wen => "WEN",
            Sli => "SLI",
        }
    }

    /// Whether the message belongs to a session (call management, error reporting, PPP session
    /// control) rather than to the tunnel as a whole; decides CDN vs StopCCN on errors (§4.1).
    pub fn is_session_scoped(self) -> bool {
        use MessageType::*;
        matches!(
            self,
            Ocrq | Ocrp | Occn | Icrq | Icrp | Iccn | Cdn | Wen | Sli
        )
    }

    /// AVPs §6 requires besides Message Type.
    pub fn required_avps(self) -> &'static [u16] {
        use MessageType::*;
        use attr::*;
        match self {
            Sccrq | Sccrp => &[
                PROTOCOL_VERSION,
                HOST_NAME,
                FRAMING_CAPABILITIES,
                ASSIGNED_TUNNEL_ID,
            ],
            Scccn | Hello => &[],
            StopCcn => &[ASSIGNED_TUNNEL_ID, RESULT_CODE],
            Icrq => &[ASSIGNED_SESSION_ID, CALL_SERIAL_NUMBER],
            Icrp | Ocrp => &[ASSIGNED_SESSION_ID],
            Iccn | Occn => &[TX_CONNECT_SPEED, FRAMING_TYPE],
            Ocrq => &[
                ASSIGNED_SESSION_ID,
                CALL_SERIAL_NUMBER,
                MINIMUM_BPS,
                MAXIMUM_BPS,
                BEARER_TYPE,
                FRAMING_TYPE,
                CALLED_NUMBER,
            ],
            Cdn => &[RESULT_CODE, ASSIGNED_SESSION_ID],
            Wen => &[CALL_ERRORS],
            Sli => &[ACCM],
        }
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

macro_rules! code_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident = $val:literal => $text:literal,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $var,)*
            /// A value RFC 2661 does not define.
            Other(u16),
        }
        impl From<u16> for $name {
            fn from(v: u16) -> Self {
                match v {
                    $($val => Self::$var,)*
                    other => Self::Other(other),
                }
            }
        }
        impl From<$name> for u16 {
            fn from(v: $name) -> u16 {
                match v {
                    $($name::$var => $val,)*
                    $name::Other(other) => other,
                }
            }
        }
        impl $name {
            /// The RFC's description of the code.
            pub fn description(self) -> &'static str {
                match self {
                    $($name::$var => $text,)*
                    $name::Other(_) => "undefined code",
                }
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{} ({})", self.description(), u16::from(*self))
            }
        }
    };
}

code_enum! {
    /// StopCCN Result Codes (§4.4.2).
    StopCcnResult {
        /// 1.
        GeneralRequest = 1 => "general request to clear control connection",
        /// 2: the Error Code indicates the problem.
        GeneralError = 2 => "general error",
        /// 3.
        AlreadyExists = 3 => "control channel already exists",
        /// 4.
        NotAuthorized = 4 => "requester is not authorized to establish a control channel",
        /// 5: the Error Code carries the highest version supported.
        UnsupportedVersion = 5 => "protocol version of the requester is not supported",
        /// 6.
        Shutdown = 6 => "requester is being shut down",
        /// 7.
        FsmError = 7 => "finite state machine error",
    }
}

code_enum! {
    /// CDN Result Codes (§4.4.2).
    CdnResult {
        /// 1.
        LostCarrier = 1 => "call disconnected due to loss of carrier",
        /// 2: the Error Code indicates the problem.
        GeneralError = 2 => "call disconnected for the reason indicated in error code",
        /// 3.
        AdminDisconnect = 3 => "call disconnected for administrative reasons",
        /// 4.
        TemporaryNoFacilities = 4 => "call failed due to lack of appropriate facilities (temporary)",
        /// 5.
        PermanentNoFacilities = 5 => "call failed due to lack of appropriate facilities (permanent)",
        /// 6.
        InvalidDestination = 6 => "invalid destination",
        /// 7.
        NoCarrier = 7 => "call failed due to no carrier detected",
        /// 8.
        Busy = 8 => "call failed due to detection of a busy signal",
        /// 9.
        NoDialTone = 9 => "call failed due to lack of a dial tone",
        /// 10.
        Timeout = 10 => "call was not established within time allotted",
        /// 11.
        NoFraming = 11 => "call was connected but no appropriate framing was detected",
    }
}

code_enum! {
    /// General Error Codes (§4.4.2).
    ErrorCode {
        /// 0.
        NoError = 0 => "no general error",
        /// 1.
        NoControlConnection = 1 => "no control connection exists yet for this LAC-LNS pair",
        /// 2.
        LengthWrong = 2 => "length is wrong",
        /// 3.
        BadValue = 3 => "a field value was out of range or a reserved field was non-zero",
        /// 4.
        NoResources = 4 => "insufficient resources to handle this operation now",
        /// 5.
        InvalidSessionId = 5 => "the session id is invalid in this context",
        /// 6.
        VendorError = 6 => "a generic vendor-specific error occurred",
        /// 7.
        TryAnother = 7 => "try another LNS",
        /// 8.
        UnknownMandatoryAvp = 8 => "unknown AVP with the M bit set",
    }
}

impl ErrorCode {
    /// The Error Code that best describes a parse failure in a StopCCN/CDN we send.
    pub fn for_parse_error(e: &ParseError) -> Self {
        match e {
            ParseError::UnknownMandatoryAvp { .. } => ErrorCode::UnknownMandatoryAvp,
            ParseError::AvpLength(_)
            | ParseError::AvpTruncated
            | ParseError::TooManyAvps
            | ParseError::BadMessageTypeAvp
            | ParseError::Truncated => ErrorCode::LengthWrong,
            _ => ErrorCode::BadValue,
        }
    }
}

/// Result Code AVP value (§4.4.2): result, optional error code, optional UTF-8 message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResultCode {
    /// Result Code (interpret with [`StopCcnResult`] or [`CdnResult`]).
    pub result: u16,
    /// Error Code, if present.
    pub error: Option<u16>,
    /// Error Message (lossy UTF-8), empty when absent.
    pub message: String,
}

impl ResultCode {
    fn parse(v: &[u8]) -> Option<Self> {
        match v {
            [r0, r1] => Some(Self {
                result: u16::from_be_bytes([*r0, *r1]),
                error: None,
                message: String::new(),
            }),
            [r0, r1, e0, e1, msg @ ..] => Some(Self {
                result: u16::from_be_bytes([*r0, *r1]),
                error: Some(u16::from_be_bytes([*e0, *e1])),
                message: String::from_utf8_lossy(msg).into_owned(),
            }),
            _ => None,
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut v = self.result.to_be_bytes().to_vec();
        if self.error.is_some() || !self.message.is_empty() {
            v.extend_from_slice(&self.error.unwrap_or(0).to_be_bytes());
            v.extend_from_slice(self.message.as_bytes());
        }
        v
    }

    /// Human-readable text, interpreting the code for `message_type` (StopCCN or CDN).
    pub fn describe(&self, message_type: MessageType) -> String {
        let result = if message_type == MessageType::StopCcn {
            StopCcnResult::from(self.result).to_string()
        } else {
            CdnResult::from(self.result).to_string()
        };
        let mut s = result;
        if let Some(e) = self.error.filter(|e| *e != 0) {
            s.push_str(&format!(", error: {}", ErrorCode::from(e)));
        }
        if !self.message.is_empty() {
            s.push_str(&format!(", \"{}\"", self.message));
        }
        s
    }
}

/// Q.931 Cause Code AVP value (§4.4.4).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Q931Cause {
    /// Cause Code.
    pub cause: u16,
    /// Cause Msg.
    pub message: u8,
    /// Advisory Msg (lossy UTF-8).
    pub advisory: String,
}

/// Call Errors AVP value (§4.4.6), cumulative counters from WEN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CallErrors {
    /// CRC errors.
    pub crc_errors: u32,
    /// Framing errors.
    pub framing_errors: u32,
    /// Hardware overruns.
    pub hardware_overruns: u32,
    /// Buffer overruns.
    pub buffer_overruns: u32,
    /// Time-out errors.
    pub timeout_errors: u32,
    /// Alignment errors.
    pub alignment_errors: u32,
}

/// ACCM AVP value (§4.4.6) from SLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Accm {
    /// Send ACCM.
    pub send: u32,
    /// Receive ACCM.
    pub recv: u32,
}

/// Decoded AVPs of a message (all optional; [`MessageType::required_avps`] is checked by
/// [`ControlMessage::parse`]). Proxy LCP/authentication AVPs (26–33) are accepted and ignored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Avps {
    /// Result Code (1).
    pub result_code: Option<ResultCode>,
    /// Protocol Version (2) as (Ver, Rev).
    pub protocol_version: Option<(u8, u8)>,
    /// Framing Capabilities (3).
    pub framing_capabilities: Option<u32>,
    /// Bearer Capabilities (4).
    pub bearer_capabilities: Option<u32>,
    /// Tie Breaker (5).
    pub tie_breaker: Option<[u8; 8]>,
    /// Firmware Revision (6).
    pub firmware_revision: Option<u16>,
    /// Host Name (7), lossy UTF-8.
    pub host_name: Option<String>,
    /// Vendor Name (8), lossy UTF-8.
    pub vendor_name: Option<String>,
    /// Assigned Tunnel ID (9).
    pub assigned_tunnel_id: Option<u16>,
    /// Receive Window Size (10).
    pub receive_window_size: Option<u16>,
    /// Challenge (11).
    pub challenge: Option<Vec<u8>>,
    /// Q.931 Cause Code (12).
    pub q931_cause: Option<Q931Cause>,
    /// Challenge Response (13).
    pub challenge_response: Option<[u8; 16]>,
    /// Assigned Session ID (14).
    pub assigned_session_id: Option<u16>,
    /// Call Serial Number (15).
    pub call_serial_number: Option<u32>,
    /// Minimum BPS (16).
    pub minimum_bps: Option<u32>,
    /// Maximum BPS (17).
    pub maximum_bps: Option<u32>,
    /// Bearer Type (18).
    pub bearer_type: Option<u32>,
    /// Framing Type (19).
    pub framing_type: Option<u32>,
    /// Called Number (21), lossy UTF-8.
    pub called_number: Option<String>,
    /// Calling Number (22), lossy UTF-8.
    pub calling_number: Option<String>,
    /// Sub-Address (23), lossy UTF-8.
    pub sub_address: Option<String>,
    /// (Tx) Connect Speed (24).
    pub tx_connect_speed: Option<u32>,
    /// Physical Channel ID (25).
    pub physical_channel_id: Option<u32>,
    /// Call Errors (34).
    pub call_errors: Option<CallErrors>,
    /// ACCM (35).
    pub accm: Option<Accm>,
    /// Private Group ID (37).
    pub private_group_id: Option<Vec<u8>>,
    /// Rx Connect Speed (38).
    pub rx_connect_speed: Option<u32>,
    /// Sequencing Required (39).
    pub sequencing_required: bool,
}

fn u16_of(v: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes(*<&[u8; 2]>::try_from(v).ok()?))
}

fn u32_of(v: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(*<&[u8; 4]>::try_from(v).ok()?))
}

fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

fn u32_at(v: &[u8], at: usize) -> Option<u32> {
    u32_of(v.get(at..at + 4)?)
}

impl Avps {
    /// Stores one recognised IETF AVP value; `None` when the value is malformed.
    fn set(&mut self, attribute: u16, v: &[u8]) -> Option<()> {
        use attr::*;
        match attribute {
            RESULT_CODE => self.result_code = Some(ResultCode::parse(v)?),
            PROTOCOL_VERSION => {
                let [ver, rev] = *<&[u8; 2]>::try_from(v).ok()?;
                self.protocol_version = Some((ver, rev));
            }
            FRAMING_CAPABILITIES => self.framing_capabilities = Some(u32_of(v)?),
            BEARER_CAPABILITIES => self.bearer_capabilities = Some(u32_of(v)?),
            TIE_BREAKER => self.tie_breaker = Some(*<&[u8; 8]>::try_from(v).ok()?),
            FIRMWARE_REVISION => self.firmware_revision = Some(u16_of(v)?),
            HOST_NAME => {
                if v.is_empty() {
                    return None;
                }
                self.host_name = Some(text(v));
            }
            VENDOR_NAME => self.vendor_name = Some(text(v)),
            ASSIGNED_TUNNEL_ID => self.assigned_tunnel_id = Some(u16_of(v)?),
            RECEIVE_WINDOW_SIZE => self.receive_window_size = Some(u16_of(v)?),
            CHALLENGE => {
                if v.is_empty() {
                    return None;
                }
                self.challenge = Some(v.to_vec());
            }
            Q931_CAUSE_CODE => match v {
                [c0, c1, m, adv @ ..] => {
                    self.q931_cause = Some(Q931Cause {
                        cause: u16::from_be_bytes([*c0, *c1]),
                        message: *m,
                        advisory: text(adv),
                    })
                }
                _ => return None,
            },
            CHALLENGE_RESPONSE => self.challenge_response = Some(*<&[u8; 16]>::try_from(v).ok()?),
            ASSIGNED_SESSION_ID => self.assigned_session_id = Some(u16_of(v)?),
            CALL_SERIAL_NUMBER => self.call_serial_number = Some(u32_of(v)?),
            MINIMUM_BPS => self.minimum_bps = Some(u32_of(v)?),
            MAXIMUM_BPS => self.maximum_bps = Some(u32_of(v)?),
            BEARER_TYPE => self.bearer_type = Some(u32_of(v)?),
            FRAMING_TYPE => self.framing_type = Some(u32_of(v)?),
            CALLED_NUMBER => self.called_number = Some(text(v)),
            CALLING_NUMBER => self.calling_number = Some(text(v)),
            SUB_ADDRESS => self.sub_address = Some(text(v)),
            TX_CONNECT_SPEED => self.tx_connect_speed = Some(u32_of(v)?),
            PHYSICAL_CHANNEL_ID => self.physical_channel_id = Some(u32_of(v)?),
            INITIAL_RECEIVED_LCP_CONFREQ
            | LAST_SENT_LCP_CONFREQ
            | LAST_RECEIVED_LCP_CONFREQ
            | PROXY_AUTHEN_TYPE
            | PROXY_AUTHEN_NAME
            | PROXY_AUTHEN_CHALLENGE
            | PROXY_AUTHEN_ID
            | PROXY_AUTHEN_RESPONSE => {}
            CALL_ERRORS => {
                if v.len() != 26 {
                    return None;
                }
                self.call_errors = Some(CallErrors {
                    crc_errors: u32_at(v, 2)?,
                    framing_errors: u32_at(v, 6)?,
                    hardware_overruns: u32_at(v, 10)?,
                    buffer_overruns: u32_at(v, 14)?,
                    timeout_errors: u32_at(v, 18)?,
                    alignment_errors: u32_at(v, 22)?,
                });
            }
            ACCM => {
                if v.len() != 10 {
                    return None;
                }
                self.accm = Some(Accm {
                    send: u32_at(v, 2)?,
                    recv: u32_at(v, 6)?,
                });
            }
            PRIVATE_GROUP_ID => self.private_group_id = Some(v.to_vec()),
            RX_CONNECT_SPEED => self.rx_connect_speed = Some(u32_of(v)?),
            SEQUENCING_REQUIRED => {
                if !v.is_empty() {
                    return None;
                }
                self.sequencing_required = true;
            }
            _ => return None,
        }
        Some(())
    }

    fn has(&self, attribute: u16) -> bool {
        use attr::*;
        match attribute {
            RESULT_CODE => self.result_code.is_some(),
            PROTOCOL_VERSION => self.protocol_version.is_some(),
            FRAMING_CAPABILITIES => self.framing_capabilities.is_some(),
            HOST_NAME => self.host_name.is_some(),
            ASSIGNED_TUNNEL_ID => self.assigned_tunnel_id.is_some(),
            ASSIGNED_SESSION_ID => self.assigned_session_id.is_some(),
            CALL_SERIAL_NUMBER => self.call_serial_number.is_some(),
            MINIMUM_BPS => self.minimum_bps.is_some(),
            MAXIMUM_BPS => self.maximum_bps.is_some(),
            BEARER_TYPE => self.bearer_type.is_some(),
            FRAMING_TYPE => self.framing_type.is_some(),
            CALLED_NUMBER => self.called_number.is_some(),
            TX_CONNECT_SPEED => self.tx_connect_speed.is_some(),
            CALL_ERRORS => self.call_errors.is_some(),
            ACCM => self.accm.is_some(),
            _ => false,
        }
    }

    /// (attribute, value) pairs in attribute order, for emission.
    fn encode(&self) -> Vec<(u16, Vec<u8>)> {
        use attr::*;
        let mut v: Vec<(u16, Vec<u8>)> = Vec::new();
        let mut push = |a: u16, b: Vec<u8>| v.push((a, b));
        if let Some(r) = &self.result_code {
            push(RESULT_CODE, r.encode());
        }
        if let Some((ver, rev)) = self.protocol_version {
            push(PROTOCOL_VERSION, vec![ver, rev]);
        }
        if let Some(x) = self.framing_capabilities {
            push(FRAMING_CAPABILITIES, x.to_be_bytes().to_vec());
        }
        if let Some(x) = self.bearer_capabilities {
            push(BEARER_CAPABILITIES, x.to_be_bytes().to_vec());
        }
        if let Some(x) = self.tie_breaker {
            push(TIE_BREAKER, x.to_vec());
        }
        if let Some(x) = self.firmware_revision {
            push(FIRMWARE_REVISION, x.to_be_bytes().to_vec());
        }
        if let Some(x) = &self.host_name {
            push(HOST_NAME, x.as_bytes().to_vec());
        }
        if let Some(x) = &self.vendor_name {
            push(VENDOR_NAME, x.as_bytes().to_vec());
        }
        if let Some(x) = self.assigned_tunnel_id {
            push(ASSIGNED_TUNNEL_ID, x.to_be_bytes().to_vec());
        }
        if let Some(x) = self.receive_window_size {
            push(RECEIVE_WINDOW_SIZE, x.to_be_bytes().to_vec());
        }
        if let Some(x) = &self.challenge {
            push(CHALLENGE, x.clone());
        }
        if let Some(q) = &self.q931_cause {
            let mut b = q.cause.to_be_bytes().to_vec();
            b.push(q.message);
            b.extend_from_slice(q.advisory.as_bytes());
            push(Q931_CAUSE_CODE, b);
        }
        if let Some(x) = self.challenge_response {
            push(CHALLENGE_RESPONSE, x.to_vec());
        }
        if let Some(x) = self.assigned_session_id {
            push(ASSIGNED_SESSION_ID, x.to_be_bytes().to_vec());
        }
        if let Some(x) = self.call_serial_number {
            push(CALL_SERIAL_NUMBER, x.to_be_bytes().to_vec());
        }
        if let Some(x) = self.minimum_bps {
            push(MINIMUM_BPS, x.to_be_bytes().to_vec());
        }
        if let Some(x) = self.maximum_bps {
            push(MAXIMUM_BPS, x.to_be_bytes().to_vec());
        }
        if let Some(x) = self.bearer_type {
            push(BEARER_TYPE, x.to_be_bytes().to_vec());
        }
        if let Some(x) = self.framing_type {
            push(FRAMING_TYPE, x.to_be_bytes().to_vec());
        }
        if let Some(x) = &self.called_number {
            push(CALLED_NUMBER, x.as_bytes().to_vec());
        }
        if let Some(x) = &self.calling_number {
            push(CALLING_NUMBER, x.as_bytes().to_vec());
        }
        if let Some(x) = &self.sub_address {
            push(SUB_ADDRESS, x.as_bytes().to_vec());
        }
        if let Some(x) = self.tx_connect_speed {
            push(TX_CONNECT_SPEED, x.to_be_bytes().to_vec());
        }
        if let Some(x) = self.physical_channel_id {
            push(PHYSICAL_CHANNEL_ID, x.to_be_bytes().to_vec());
        }
        if let Some(c) = self.call_errors {
            let mut b = vec![0, 0];
            for x in [
                c.crc_errors,
                c.framing_errors,
                c.hardware_overruns,
                c.buffer_overruns,
                c.timeout_errors,
                c.alignment_errors,
            ] {
                b.extend_from_slice(&x.to_be_bytes());
            }
            push(CALL_ERRORS, b);
        }
        if let Some(a) = self.accm {
            let mut b = vec![0, 0];
            b.extend_from_slice(&a.send.to_be_bytes());
            b.extend_from_slice(&a.recv.to_be_bytes());
            push(ACCM, b);
        }
        if let Some(x) = &self.private_group_id {
            push(PRIVATE_GROUP_ID, x.clone());
        }
        if let Some(x) = self.rx_connect_speed {
            push(RX_CONNECT_SPEED, x.to_be_bytes().to_vec());
        }
        if self.sequencing_required {
            push(SEQUENCING_REQUIRED, Vec::new());
        }
        v
    }
}

/// A control message body that failed validation, with what could be recovered from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageError {
    /// The failure.
    pub error: ParseError,
    /// Message type, when the Message Type AVP decoded.
    pub message_type: Option<MessageType>,
    /// Assigned Session ID, when it decoded (identifies the session for a CDN).
    pub assigned_session_id: Option<u16>,
    /// Assigned Tunnel ID, when it decoded (identifies the peer's tunnel for a StopCCN).
    pub assigned_tunnel_id: Option<u16>,
}

impl fmt::Display for MessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.message_type {
            Some(t) => write!(f, "{t}: {}", self.error),
            None => write!(f, "{}", self.error),
        }
    }
}

impl std::error::Error for MessageError {}

impl From<ParseError> for MessageError {
    fn from(error: ParseError) -> Self {
        Self {
            error,
            message_type: None,
            assigned_session_id: None,
            assigned_tunnel_id: None,
        }
    }
}

/// Parameters for hiding AVPs on emission (§4.3). `Debug` never shows the secret.
#[derive(Clone, Copy)]
pub struct Hiding<'a> {
    /// The tunnel secret.
    pub secret: &'a [u8],
    /// Random Vector placed before the hidden AVPs.
    pub random_vector: &'a [u8],
    /// Which attributes to hide (each must also satisfy [`attr::may_be_hidden`]).
    pub hide: fn(u16) -> bool,
}

impl fmt::Debug for Hiding<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hiding")
            .field("secret", &"<redacted>")
            .field("random_vector", &self.random_vector)
            .finish_non_exhaustive()
    }
}

/// A validated control message: type and AVPs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlMessage {
    /// Message Type.
    pub message_type: MessageType,
    /// AVPs.
    pub avps: Avps,
}

impl ControlMessage {
    /// A message with no AVPs besides Message Type.
    pub fn new(message_type: MessageType) -> Self {
        Self {
            message_type,
            avps: Avps::default(),
        }
    }

    /// Parses a message body (the AVPs after the control header). `secret` decodes hidden AVPs.
    pub fn parse(body: &[u8], secret: Option<&[u8]>) -> Result<Self, MessageError> {
        let mut iter = AvpIter::new(body);
        let first = match iter.next() {
            None => return Err(ParseError::MissingMessageType.into()),
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(a)) => a,
        };
        if first.vendor_id != IETF_VENDOR || first.attribute != attr::MESSAGE_TYPE {
            return Err(ParseError::MissingMessageType.into());
        }
        if first.hidden || first.reserved {
            return Err(ParseError::BadMessageTypeAvp.into());
        }
        let code = u16_of(first.value).ok_or(ParseError::BadMessageTypeAvp)?;
        let message_type = MessageType::from_u16(code).ok_or(ParseError::UnknownMessageType {
            code,
            mandatory: first.mandatory,
        })?;

        let mut avps = Avps::default();
        let mut fatal: Option<ParseError> = None;
        let mut random_vector: Option<&[u8]> = None;
        for (n, item) in iter.enumerate() {
            if n + 2 > MAX_AVPS_PER_MESSAGE {
                fatal = fatal.or(Some(ParseError::TooManyAvps));
                break;
            }
            let avp = match item {
                Ok(a) => a,
                Err(e) => {
                    fatal = fatal.or(Some(e));
                    break;
                }
            };
            if !avp.is_recognised() {
                if avp.mandatory {
                    fatal = fatal.or(Some(ParseError::UnknownMandatoryAvp {
                        vendor: avp.vendor_id,
                        attribute: avp.attribute,
                    }));
                }
                continue;
            }
            if avp.attribute == attr::RANDOM_VECTOR {
                if avp.hidden {
                    if avp.mandatory {
                        fatal = fatal.or(Some(ParseError::MalformedAvp(avp.attribute)));
                    }
                } else {
                    random_vector = Some(avp.value);
                }
                continue;
            }
            if avp.attribute == attr::MESSAGE_TYPE {
                // A second Message Type AVP is malformed.
                if avp.mandatory {
                    fatal = fatal.or(Some(ParseError::MalformedAvp(avp.attribute)));
                }
                continue;
            }
            let decoded;
            let value: &[u8] = if avp.hidden {
                let r = match (secret, random_vector) {
                    (None, _) => Err(ParseError::HiddenWithoutSecret(avp.attribute)),
                    (Some(_), None) => Err(ParseError::HiddenWithoutRandomVector(avp.attribute)),
                    (Some(s), Some(rv)) => hidden::unhide(avp.attribute, s, rv, avp.value),
                };
                match r {
                    Ok(v) => {
                        decoded = v;
                        &decoded
                    }
                    Err(e) => {
                        if avp.mandatory {
                            fatal = fatal.or(Some(e));
                        }
                        continue;
                    }
                }
            } else {
                avp.value
            };
            if avps.set(avp.attribute, value).is_none() && avp.mandatory {
                fatal = fatal.or(Some(ParseError::MalformedAvp(avp.attribute)));
            }
        }
        if fatal.is_none()
            && let Some(missing) = message_type.required_avps().iter().find(|a| !avps.has(**a))
        {
            fatal = Some(ParseError::MissingAvp {
                message: message_type,
                attribute: *missing,
            });
        }
        match fatal {
            Some(error) => Err(MessageError {
                error,
                message_type: Some(message_type),
                assigned_session_id: avps.assigned_session_id,
                assigned_tunnel_id: avps.assigned_tunnel_id,
            }),
            None => Ok(Self { message_type, avps }),
        }
    }

    /// Appends the message body (AVPs). With `hiding`, a Random Vector AVP follows the Message
    /// Type AVP and every attribute selected by `hiding.hide` that may be hidden is hidden.
    pub fn emit(&self, out: &mut Vec<u8>, hiding: Option<&Hiding<'_>>) {
        emit_avp(
            out,
            true,
            false,
            IETF_VENDOR,
            attr::MESSAGE_TYPE,
            &self.message_type.to_u16().to_be_bytes(),
        );
        let encoded = self.avps.encode();
        let hides = |a: u16| hiding.is_some_and(|h| attr::may_be_hidden(a) && (h.hide)(a));
        if let Some(h) = hiding
            && encoded.iter().any(|(a, _)| hides(*a))
        {
            emit_avp(
                out,
                true,
                false,
                IETF_VENDOR,
                attr::RANDOM_VECTOR,
                h.random_vector,
            );
        }
        for (a, value) in &encoded {
            match hiding {
                Some(h) if hides(*a) => {
                    let hidden = hidden::hide(*a, h.secret, h.random_vector, value, &[]);
                    emit_avp(out, attr::is_mandatory(*a), true, IETF_VENDOR, *a, &hidden);
                }
                _ => emit_avp(out, attr::is_mandatory(*a), false, IETF_VENDOR, *a, value),
            }
        }
    }

    /// A complete control datagram: header (`tunnel_id`, `session_id`, `ns`, `nr`) + body.
    pub fn to_datagram(
        &self,
        tunnel_id: u16,
        session_id: u16,
        ns: u16,
        nr: u16,
        hiding: Option<&Hiding<'_>>,
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        HeaderRepr::control(tunnel_id, session_id, ns, nr).emit(&mut out, 0);
        self.emit(&mut out, hiding);
        let len = u16::try_from(out.len()).unwrap_or(u16::MAX);
        put16(&mut out, 2, len);
        debug_assert!(out.len() >= CONTROL_HEADER_LEN);
        out
    }
}
