//! AVP framing (RFC 2661 §4.1) and the IETF attribute numbers (§4.4).
//!
//! ```text
//!  |M|H| rsvd  |      Length       |           Vendor ID           |
//!  |         Attribute Type        |        Attribute Value...
//! ```
//!
//! [`AvpIter`] walks the AVPs of a message body, yielding an error (and then stopping) instead
//! of panicking when a Length is below 6 or runs past the body. Reserved bits are reported in
//! [`RawAvp::reserved`]; §4.1 says such an AVP is treated as unrecognised.

use crate::error::ParseError;

/// Size of the AVP header (flags/Length, Vendor ID, Attribute Type).
pub const AVP_HEADER_LEN: usize = 6;
/// Largest AVP: the Length field has 10 bits (§4.1).
pub const MAX_AVP_LEN: usize = 1023;
/// Largest Attribute Value.
pub const MAX_VALUE_LEN: usize = MAX_AVP_LEN - AVP_HEADER_LEN;
/// Vendor ID of IETF-defined AVPs.
pub const IETF_VENDOR: u16 = 0;

const FLAG_M: u16 = 0x8000;
const FLAG_H: u16 = 0x4000;
const RESERVED_MASK: u16 = 0x3C00;
const LENGTH_MASK: u16 = 0x03FF;

/// IETF Attribute Types (RFC 2661 §4.4.1–§4.4.6). 20 is not defined by RFC 2661.
pub mod attr {
    /// Message Type (§4.4.1).
    pub const MESSAGE_TYPE: u16 = 0;
    /// Result Code (§4.4.2).
    pub const RESULT_CODE: u16 = 1;
    /// Protocol Version (§4.4.3).
    pub const PROTOCOL_VERSION: u16 = 2;
    /// Framing Capabilities (§4.4.3).
    pub const FRAMING_CAPABILITIES: u16 = 3;
    /// Bearer Capabilities (§4.4.3).
    pub const BEARER_CAPABILITIES: u16 = 4;
    /// Tie Breaker (§4.4.3).
    pub const TIE_BREAKER: u16 = 5;
    /// Firmware Revision (§4.4.3).
    pub const FIRMWARE_REVISION: u16 = 6;
    /// Host Name (§4.4.3).
    pub const HOST_NAME: u16 = 7;
    /// Vendor Name (§4.4.3).
    pub const VENDOR_NAME: u16 = 8;
    /// Assigned Tunnel ID (§4.4.3).
    pub const ASSIGNED_TUNNEL_ID: u16 = 9;
    /// Receive Window Size (§4.4.3).
    pub const RECEIVE_WINDOW_SIZE: u16 = 10;
    /// Challenge (§4.4.3).
    pub const CHALLENGE: u16 = 11;
    /// Q.931 Cause Code (§4.4.4).
    pub const Q931_CAUSE_CODE: u16 = 12;
    /// Challenge Response (§4.4.3).
    pub const CHALLENGE_RESPONSE: u16 = 13;
    /// Assigned Session ID (§4.4.4).
    pub const ASSIGNED_SESSION_ID: u16 = 14;
    /// Call Serial Number (§4.4.4).
    pub const CALL_SERIAL_NUMBER: u16 = 15;
    /// Minimum BPS (§4.4.4).
    pub const MINIMUM_BPS: u16 = 16;
    /// Maximum BPS (§4.4.4).
    pub const MAXIMUM_BPS: u16 = 17;
    /// Bearer Type (§4.4.4).
    pub const BEARER_TYPE: u16 = 18;
    /// Framing Type (§4.4.4).
    pub const FRAMING_TYPE: u16 = 19;
    /// Called Number (§4.4.4).
    pub const CALLED_NUMBER: u16 = 21;
    /// Calling Number (§4.4.4).
    pub const CALLING_NUMBER: u16 = 22;
    /// Sub-Address (§4.4.4).
    pub const SUB_ADDRESS: u16 = 23;
    /// (Tx) Connect Speed (§4.4.4).
    pub const TX_CONNECT_SPEED: u16 = 24;
    /// Physical Channel ID (§4.4.4).
    pub const PHYSICAL_CHANNEL_ID: u16 = 25;
    /// Initial Received LCP CONFREQ (§4.4.5).
    pub const INITIAL_RECEIVED_LCP_CONFREQ: u16 = 26;
    /// Last Sent LCP CONFREQ (§4.4.5).
    pub const LAST_SENT_LCP_CONFREQ: u16 = 27;
    /// Last Received LCP CONFREQ (§4.4.5).
    pub const LAST_RECEIVED_LCP_CONFREQ: u16 = 28;
    /// Proxy Authen Type (§4.4.5).
    pub const PROXY_AUTHEN_TYPE: u16 = 29;
    /// Proxy Authen Name (§4.4.5).
    pub const PROXY_AUTHEN_NAME: u16 = 30;
    /// Proxy Authen Challenge (§4.4.5).
    pub const PROXY_AUTHEN_CHALLENGE: u16 = 31;
    /// Proxy Authen ID (§4.4.5).
    pub const PROXY_AUTHEN_ID: u16 = 32;
    /// Proxy Authen Response (§4.4.5).
    pub const PROXY_AUTHEN_RESPONSE: u16 = 33;
    /// Call Errors (§4.4.6).
    pub const CALL_ERRORS: u16 = 34;
    /// ACCM (§4.4.6).
    pub const ACCM: u16 = 35;
    /// Random Vector (§4.4.1).
    pub const RANDOM_VECTOR: u16 = 36;
    /// Private Group ID (§4.4.4).
    pub const PRIVATE_GROUP_ID: u16 = 37;
    /// Rx Connect Speed (§4.4.4).
    pub const RX_CONNECT_SPEED: u16 = 38;
    /// Sequencing Required (§4.4.4).
    pub const SEQUENCING_REQUIRED: u16 = 39;

    /// Whether RFC 2661 defines this IETF attribute (0..=39 except 20).
    pub fn is_known(attribute: u16) -> bool {
        attribute <= SEQUENCING_REQUIRED && attribute != 20
    }

    /// Whether §4.4 allows the attribute to be hidden ("the H-bit may be 0 or 1"). Used to pick
    /// what we hide when hiding is enabled.
    pub fn may_be_hidden(attribute: u16) -> bool {
        matches!(
            attribute,
            FRAMING_CAPABILITIES
                | BEARER_CAPABILITIES
                | FIRMWARE_REVISION
                | VENDOR_NAME
                | ASSIGNED_TUNNEL_ID
                | CHALLENGE
                | CHALLENGE_RESPONSE
                | ASSIGNED_SESSION_ID
                | CALL_SERIAL_NUMBER
                | MINIMUM_BPS
                | MAXIMUM_BPS
                | BEARER_TYPE
                | FRAMING_TYPE
                | CALLED_NUMBER
                | CALLING_NUMBER
                | SUB_ADDRESS
                | TX_CONNECT_SPEED
                | PHYSICAL_CHANNEL_ID
                | PRIVATE_GROUP_ID
                | RX_CONNECT_SPEED
                | CALL_ERRORS
                | ACCM
        )
    }

    /// Whether §4.4 requires M=1 on this attribute (what we send).
    pub fn is_mandatory(attribute: u16) -> bool {
        !matches!(
            attribute,
            TIE_BREAKER
                | FIRMWARE_REVISION
                | VENDOR_NAME
                | PHYSICAL_CHANNEL_ID
                | PRIVATE_GROUP_ID
                | RX_CONNECT_SPEED
        )
    }
}

/// One AVP as found on the wire (value still hidden if `hidden`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawAvp<'a> {
    /// M bit.
    pub mandatory: bool,
    /// H bit.
    pub hidden: bool,
    /// Any of the four reserved bits set (the AVP must be treated as unrecognised).
    pub reserved: bool,
    /// Vendor ID (0 = IETF).
    pub vendor_id: u16,
    /// Attribute Type.
    pub attribute: u16,
    /// Attribute Value (Length − 6 octets).
    pub value: &'a [u8],
}

impl RawAvp<'_> {
    /// Whether this is an IETF AVP RFC 2661 defines, with no reserved bits set.
    pub fn is_recognised(&self) -> bool {
        !self.reserved && self.vendor_id == IETF_VENDOR && attr::is_known(self.attribute)
    }
}

/// Iterator over the AVPs of a control message body. After the first error it yields nothing.
#[derive(Debug, Clone)]
pub struct AvpIter<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> AvpIter<'a> {
    /// Iterates over `body` (the bytes after the control header).
    pub fn new(body: &'a [u8]) -> Self {
        Self {
            rest: body,
            failed: false,
        }
    }
}

impl<'a> Iterator for AvpIter<'a> {
    type Item = Result<RawAvp<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let result = parse_one(self.rest);
        match result {
            Ok((avp, rest)) => {
                self.rest = rest;
                Some(Ok(avp))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

fn parse_one(buf: &[u8]) -> Result<(RawAvp<'_>, &[u8]), ParseError> {
    let (head, _) = buf
        .split_first_chunk::<AVP_HEADER_LEN>()
        .ok_or(ParseError::AvpTruncated)?;
    let [f0, f1, v0, v1, a0, a1] = *head;
    let bits = u16::from_be_bytes([f0, f1]);
    let length = bits & LENGTH_MASK;
    if usize::from(length) < AVP_HEADER_LEN {
        return Err(ParseError::AvpLength(length));
    }
    let (avp, rest) = buf
        .split_at_checked(usize::from(length))
        .ok_or(ParseError::AvpTruncated)?;
    let value = avp.get(AVP_HEADER_LEN..).unwrap_or_default();
    Ok((
        RawAvp {
            mandatory: bits & FLAG_M != 0,
            hidden: bits & FLAG_H != 0,
            reserved: bits & RESERVED_MASK != 0,
            vendor_id: u16::from_be_bytes([v0, v1]),
            attribute: u16::from_be_bytes([a0, a1]),
            value,
        },
        rest,
    ))
}

/// Appends one AVP. Values longer than [`MAX_VALUE_LEN`] are truncated (our own values are
/// configuration strings; nothing we build gets near the limit otherwise).
pub fn emit_avp(
    out: &mut Vec<u8>,
    mandatory: bool,
    hidden: bool,
    vendor_id: u16,
    attribute: u16,
    value: &[u8],
) {
    let value = value
        .get(..value.len().min(MAX_VALUE_LEN))
        .unwrap_or_default();
    let mut bits = (AVP_HEADER_LEN + value.len()) as u16 & LENGTH_MASK;
    if mandatory {
        bits |= FLAG_M;
    }
    if hidden {
        bits |= FLAG_H;
    }
    out.extend_from_slice(&bits.to_be_bytes());
    out.extend_from_slice(&vendor_id.to_be_bytes());
    out.extend_from_slice(&attribute.to_be_bytes());
    out.extend_from_slice(value);
}
