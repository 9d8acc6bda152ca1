//! Validated control messages (RFC 2637 §2.1–§2.15): one struct each, and [`ControlMessage`].

use super::{
    BearerCapabilities, BearerType, CALL_STATS_LEN, CdnResult, ControlPacket, FramingCapabilities,
    FramingType, GeneralError, IcrpResult, MAGIC_COOKIE, MAX_MESSAGE_LEN, MessageType, OcrpResult,
    OkResult, PPTP_CONTROL_MESSAGE, Reader, STRING_LEN, SccrpResult, StopReason, put_str, put_u8,
    put_u16, put_u32, str_len,
};
use crate::error::{BufferTooSmall, ParseError};

/// Start-Control-Connection-Request (§2.1), 156 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sccrq {
    /// Protocol Version ([`PROTOCOL_VERSION`](super::PROTOCOL_VERSION)).
    pub protocol_version: u16,
    /// Framing Capabilities.
    pub framing_capabilities: FramingCapabilities,
    /// Bearer Capabilities.
    pub bearer_capabilities: BearerCapabilities,
    /// Maximum Channels (a PNS sends 0).
    pub maximum_channels: u16,
    /// Firmware Revision.
    pub firmware_revision: u16,
    /// Host Name (64 octets).
    pub host_name: String,
    /// Vendor String (64 octets).
    pub vendor: String,
}

/// Start-Control-Connection-Reply (§2.2), 156 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sccrp {
    /// Protocol Version.
    pub protocol_version: u16,
    /// Result Code.
    pub result: SccrpResult,
    /// Error Code.
    pub error: GeneralError,
    /// Framing Capabilities.
    pub framing_capabilities: FramingCapabilities,
    /// Bearer Capabilities.
    pub bearer_capabilities: BearerCapabilities,
    /// Maximum Channels.
    pub maximum_channels: u16,
    /// Firmware Revision.
    pub firmware_revision: u16,
    /// Host Name (64 octets).
    pub host_name: String,
    /// Vendor String (64 octets).
    pub vendor: String,
}

/// Stop-Control-Connection-Request (§2.3), 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopCcrq {
    /// Reason.
    pub reason: StopReason,
}

/// Stop-Control-Connection-Reply (§2.4), 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopCcrp {
    /// Result Code.
    pub result: OkResult,
    /// Error Code.
    pub error: GeneralError,
}

/// Echo-Request (§2.5), 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EchoRequest {
    /// Identifier, copied into the reply.
    pub identifier: u32,
}

/// Echo-Reply (§2.6), 20 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EchoReply {
    /// Identifier of the answered request.
    pub identifier: u32,
    /// Result Code.
    pub result: OkResult,
    /// Error Code.
    pub error: GeneralError,
}

/// Outgoing-Call-Request (§2.7), 168 bytes, PNS → PAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ocrq {
    /// Call ID assigned by the PNS (used by the PAC in GRE headers towards the PNS).
    pub call_id: u16,
    /// Call Serial Number.
    pub call_serial_number: u16,
    /// Minimum BPS.
    pub minimum_bps: u32,
    /// Maximum BPS.
    pub maximum_bps: u32,
    /// Bearer Type.
    pub bearer_type: BearerType,
    /// Framing Type.
    pub framing_type: FramingType,
    /// Packet Recv. Window Size of the PNS.
    pub recv_window: u16,
    /// Packet Processing Delay (1/10 s units).
    pub processing_delay: u16,
    /// Phone Number (the Phone Number Length field is derived from it on emit and ignored on parse).
    pub phone_number: String,
    /// Subaddress.
    pub subaddress: String,
}

/// Outgoing-Call-Reply (§2.8), 32 bytes, PAC → PNS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ocrp {
    /// Call ID assigned by the PAC.
    pub call_id: u16,
    /// Peer's Call ID: the PNS's Call ID from the request.
    pub peer_call_id: u16,
    /// Result Code.
    pub result: OcrpResult,
    /// Error Code.
    pub error: GeneralError,
    /// Cause Code.
    pub cause: u16,
    /// Connect Speed (bps).
    pub connect_speed: u32,
    /// Packet Recv. Window Size of the PAC.
    pub recv_window: u16,
    /// Packet Processing Delay.
    pub processing_delay: u16,
    /// Physical Channel ID.
    pub physical_channel_id: u32,
}

/// Incoming-Call-Request (§2.9), 220 bytes, PAC → PNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Icrq {
    /// Call ID assigned by the PAC.
    pub call_id: u16,
    /// Call Serial Number.
    pub call_serial_number: u16,
    /// Call Bearer Type.
    pub bearer_type: BearerType,
    /// Physical Channel ID.
    pub physical_channel_id: u32,
    /// Dialed Number (DNIS); length field derived on emit.
    pub dialed_number: String,
    /// Dialing Number (CLID); length field derived on emit.
    pub dialing_number: String,
    /// Subaddress.
    pub subaddress: String,
}

/// Incoming-Call-Reply (§2.10), 24 bytes, PNS → PAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Icrp {
    /// Call ID assigned by the PNS.
    pub call_id: u16,
    /// Peer's Call ID: the PAC's Call ID from the request.
    pub peer_call_id: u16,
    /// Result Code.
    pub result: IcrpResult,
    /// Error Code.
    pub error: GeneralError,
    /// Packet Recv. Window Size of the PNS.
    pub recv_window: u16,
    /// Packet Transmit Delay.
    pub transmit_delay: u16,
}

/// Incoming-Call-Connected (§2.11), 28 bytes, PAC → PNS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Iccn {
    /// Peer's Call ID (the PNS's).
    pub peer_call_id: u16,
    /// Connect Speed.
    pub connect_speed: u32,
    /// Packet Recv. Window Size of the PAC.
    pub recv_window: u16,
    /// Packet Transmit Delay.
    pub transmit_delay: u16,
    /// Framing Type.
    pub framing_type: FramingType,
}

/// Call-Clear-Request (§2.12), 16 bytes, PNS → PAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallClearRequest {
    /// Call ID assigned by the PNS.
    pub call_id: u16,
}

/// Call-Disconnect-Notify (§2.13), 148 bytes, PAC → PNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallDisconnectNotify {
    /// Call ID assigned by the PAC.
    pub call_id: u16,
    /// Result Code.
    pub result: CdnResult,
    /// Error Code.
    pub error: GeneralError,
    /// Cause Code.
    pub cause: u16,
    /// Call Statistics (128 octets of text).
    pub call_statistics: String,
}

/// WAN-Error-Notify (§2.14), 40 bytes, PAC → PNS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WanErrorNotify {
    /// Peer's Call ID (the PNS's).
    pub peer_call_id: u16,
    /// CRC Errors.
    pub crc_errors: u32,
    /// Framing Errors.
    pub framing_errors: u32,
    /// Hardware Overruns.
    pub hardware_overruns: u32,
    /// Buffer Overruns.
    pub buffer_overruns: u32,
    /// Time-out Errors.
    pub timeout_errors: u32,
    /// Alignment Errors.
    pub alignment_errors: u32,
}

/// Set-Link-Info (§2.15), 24 bytes, PNS → PAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetLinkInfo {
    /// Peer's Call ID (the PAC's).
    pub peer_call_id: u16,
    /// Send ACCM.
    pub send_accm: u32,
    /// Receive ACCM.
    pub recv_accm: u32,
}

/// A validated control message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlMessage {
    /// §2.1.
    Sccrq(Sccrq),
    /// §2.2.
    Sccrp(Sccrp),
    /// §2.3.
    StopCcrq(StopCcrq),
    /// §2.4.
    StopCcrp(StopCcrp),
    /// §2.5.
    EchoRequest(EchoRequest),
    /// §2.6.
    EchoReply(EchoReply),
    /// §2.7.
    Ocrq(Ocrq),
    /// §2.8.
    Ocrp(Ocrp),
    /// §2.9.
    Icrq(Icrq),
    /// §2.10.
    Icrp(Icrp),
    /// §2.11.
    Iccn(Iccn),
    /// §2.12.
    CallClearRequest(CallClearRequest),
    /// §2.13.
    CallDisconnectNotify(CallDisconnectNotify),
    /// §2.14.
    WanErrorNotify(WanErrorNotify),
    /// §2.15.
    SetLinkInfo(SetLinkInfo),
}

impl ControlMessage {
    /// The message's type.
    pub fn message_type(&self) -> MessageType {
        use ControlMessage as M;
        use MessageType as T;
        match self {
            M::Sccrq(_) => T::StartControlConnectionRequest,
            M::Sccrp(_) => T::StartControlConnectionReply,
            M::StopCcrq(_) => T::StopControlConnectionRequest,
            M::StopCcrp(_) => T::StopControlConnectionReply,
            M::EchoRequest(_) => T::EchoRequest,
            M::EchoReply(_) => T::EchoReply,
            M::Ocrq(_) => T::OutgoingCallRequest,
            M::Ocrp(_) => T::OutgoingCallReply,
            M::Icrq(_) => T::IncomingCallRequest,
            M::Icrp(_) => T::IncomingCallReply,
            M::Iccn(_) => T::IncomingCallConnected,
            M::CallClearRequest(_) => T::CallClearRequest,
            M::CallDisconnectNotify(_) => T::CallDisconnectNotify,
            M::WanErrorNotify(_) => T::WanErrorNotify,
            M::SetLinkInfo(_) => T::SetLinkInfo,
        }
    }

    /// Encoded length in bytes (the fixed length of the type).
    pub fn buffer_len(&self) -> usize {
        self.message_type().fixed_len()
    }

    /// Parses a checked packet.
    pub fn parse<T: AsRef<[u8]>>(packet: &ControlPacket<T>) -> Result<Self, ParseError> {
        packet.check()?;
        let ty = packet
            .message_type()
            .ok_or(ParseError::UnknownControlMessageType(
                packet.control_message_type(),
            ))?;
        let mut r = Reader { buf: packet.body() };
        Self::parse_body(ty, &mut r)
    }

    /// Parses one complete message from `bytes` (trailing bytes beyond Length are ignored).
    pub fn parse_bytes(bytes: &[u8]) -> Result<Self, ParseError> {
        Self::parse(&ControlPacket::new_checked(bytes)?)
    }

    fn parse_body(ty: MessageType, r: &mut Reader<'_>) -> Result<Self, ParseError> {
        use MessageType as T;
        Ok(match ty {
            T::StartControlConnectionRequest => {
                let protocol_version = r.u16()?;
                let _reserved1 = r.u16()?;
                Self::Sccrq(Sccrq {
                    protocol_version,
                    framing_capabilities: FramingCapabilities(r.u32()?),
                    bearer_capabilities: BearerCapabilities(r.u32()?),
                    maximum_channels: r.u16()?,
                    firmware_revision: r.u16()?,
                    host_name: r.string::<STRING_LEN>()?,
                    vendor: r.string::<STRING_LEN>()?,
                })
            }
            T::StartControlConnectionReply => Self::Sccrp(Sccrp {
                protocol_version: r.u16()?,
                result: r.u8()?.into(),
                error: r.u8()?.into(),
                framing_capabilities: FramingCapabilities(r.u32()?),
                bearer_capabilities: BearerCapabilities(r.u32()?),
                maximum_channels: r.u16()?,
                firmware_revision: r.u16()?,
                host_name: r.string::<STRING_LEN>()?,
                vendor: r.string::<STRING_LEN>()?,
            }),
            T::StopControlConnectionRequest => Self::StopCcrq(StopCcrq {
                reason: r.u8()?.into(),
            }),
            T::StopControlConnectionReply => Self::StopCcrp(StopCcrp {
                result: r.u8()?.into(),
                error: r.u8()?.into(),
            }),
            T::EchoRequest => Self::EchoRequest(EchoRequest {
                identifier: r.u32()?,
            }),
            T::EchoReply => Self::EchoReply(EchoReply {
                identifier: r.u32()?,
                result: r.u8()?.into(),
                error: r.u8()?.into(),
            }),
            T::OutgoingCallRequest => {
                let call_id = r.u16()?;
                let call_serial_number = r.u16()?;
                let minimum_bps = r.u32()?;
                let maximum_bps = r.u32()?;
                let bearer_type = r.u32()?.into();
                let framing_type = r.u32()?.into();
                let recv_window = r.u16()?;
                let processing_delay = r.u16()?;
                let _phone_number_length = r.u16()?;
                let _reserved1 = r.u16()?;
                Self::Ocrq(Ocrq {
                    call_id,
                    call_serial_number,
                    minimum_bps,
                    maximum_bps,
                    bearer_type,
                    framing_type,
                    recv_window,
                    processing_delay,
                    phone_number: r.string::<STRING_LEN>()?,
                    subaddress: r.string::<STRING_LEN>()?,
                })
            }
            T::OutgoingCallReply => Self::Ocrp(Ocrp {
                call_id: r.u16()?,
                peer_call_id: r.u16()?,
                result: r.u8()?.into(),
                error: r.u8()?.into(),
                cause: r.u16()?,
                connect_speed: r.u32()?,
                recv_window: r.u16()?,
                processing_delay: r.u16()?,
                physical_channel_id: r.u32()?,
            }),
            T::IncomingCallRequest => {
                let call_id = r.u16()?;
                let call_serial_number = r.u16()?;
                let bearer_type = r.u32()?.into();
                let physical_channel_id = r.u32()?;
                let _dialed_len = r.u16()?;
                let _dialing_len = r.u16()?;
                Self::Icrq(Icrq {
                    call_id,
                    call_serial_number,
                    bearer_type,
                    physical_channel_id,
                    dialed_number: r.string::<STRING_LEN>()?,
                    dialing_number: r.string::<STRING_LEN>()?,
                    subaddress: r.string::<STRING_LEN>()?,
                })
            }
            T::IncomingCallReply => Self::Icrp(Icrp {
                call_id: r.u16()?,
                peer_call_id: r.u16()?,
                result: r.u8()?.into(),
                error: r.u8()?.into(),
                recv_window: r.u16()?,
                transmit_delay: r.u16()?,
            }),
            T::IncomingCallConnected => {
                let peer_call_id = r.u16()?;
                let _reserved1 = r.u16()?;
                Self::Iccn(Iccn {
                    peer_call_id,
                    connect_speed: r.u32()?,
                    recv_window: r.u16()?,
                    transmit_delay: r.u16()?,
                    framing_type: r.u32()?.into(),
                })
            }
            T::CallClearRequest => Self::CallClearRequest(CallClearRequest { call_id: r.u16()? }),
            T::CallDisconnectNotify => {
                let call_id = r.u16()?;
                let result = r.u8()?.into();
                let error = r.u8()?.into();
                let cause = r.u16()?;
                let _reserved1 = r.u16()?;
                Self::CallDisconnectNotify(CallDisconnectNotify {
                    call_id,
                    result,
                    error,
                    cause,
                    call_statistics: r.string::<CALL_STATS_LEN>()?,
                })
            }
            T::WanErrorNotify => {
                let peer_call_id = r.u16()?;
                let _reserved1 = r.u16()?;
                Self::WanErrorNotify(WanErrorNotify {
                    peer_call_id,
                    crc_errors: r.u32()?,
                    framing_errors: r.u32()?,
                    hardware_overruns: r.u32()?,
                    buffer_overruns: r.u32()?,
                    timeout_errors: r.u32()?,
                    alignment_errors: r.u32()?,
                })
            }
            T::SetLinkInfo => {
                let peer_call_id = r.u16()?;
                let _reserved1 = r.u16()?;
                Self::SetLinkInfo(SetLinkInfo {
                    peer_call_id,
                    send_accm: r.u32()?,
                    recv_accm: r.u32()?,
                })
            }
        })
    }

    /// Appends the encoded message (header included) to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        let ty = self.message_type();
        out.reserve(ty.fixed_len());
        put_u16(out, u16::try_from(ty.fixed_len()).unwrap_or(u16::MAX));
        put_u16(out, PPTP_CONTROL_MESSAGE);
        put_u32(out, MAGIC_COOKIE);
        put_u16(out, ty.to_u16());
        put_u16(out, 0); // Reserved0
        match self {
            Self::Sccrq(m) => {
                put_u16(out, m.protocol_version);
                put_u16(out, 0);
                put_u32(out, m.framing_capabilities.0);
                put_u32(out, m.bearer_capabilities.0);
                put_u16(out, m.maximum_channels);
                put_u16(out, m.firmware_revision);
                put_str(out, &m.host_name, STRING_LEN);
                put_str(out, &m.vendor, STRING_LEN);
            }
            Self::Sccrp(m) => {
                put_u16(out, m.protocol_version);
                put_u8(out, m.result.into());
                put_u8(out, m.error.into());
                put_u32(out, m.framing_capabilities.0);
                put_u32(out, m.bearer_capabilities.0);
                put_u16(out, m.maximum_channels);
                put_u16(out, m.firmware_revision);
                put_str(out, &m.host_name, STRING_LEN);
                put_str(out, &m.vendor, STRING_LEN);
            }
            Self::StopCcrq(m) => {
                put_u8(out, m.reason.into());
                put_u8(out, 0);
                put_u16(out, 0);
            }
            Self::StopCcrp(m) => {
                put_u8(out, m.result.into());
                put_u8(out, m.error.into());
                put_u16(out, 0);
            }
            Self::EchoRequest(m) => put_u32(out, m.identifier),
            Self::EchoReply(m) => {
                put_u32(out, m.identifier);
                put_u8(out, m.result.into());
                put_u8(out, m.error.into());
                put_u16(out, 0);
            }
            Self::Ocrq(m) => {
                put_u16(out, m.call_id);
                put_u16(out, m.call_serial_number);
                put_u32(out, m.minimum_bps);
                put_u32(out, m.maximum_bps);
                put_u32(out, m.bearer_type.into());
                put_u32(out, m.framing_type.into());
                put_u16(out, m.recv_window);
                put_u16(out, m.processing_delay);
                put_u16(out, str_len(&m.phone_number, STRING_LEN));
                put_u16(out, 0);
                put_str(out, &m.phone_number, STRING_LEN);
                put_str(out, &m.subaddress, STRING_LEN);
            }
            Self::Ocrp(m) => {
                put_u16(out, m.call_id);
                put_u16(out, m.peer_call_id);
                put_u8(out, m.result.into());
                put_u8(out, m.error.into());
                put_u16(out, m.cause);
                put_u32(out, m.connect_speed);
                put_u16(out, m.recv_window);
                put_u16(out, m.processing_delay);
                put_u32(out, m.physical_channel_id);
            }
            Self::Icrq(m) => {
                put_u16(out, m.call_id);
                put_u16(out, m.call_serial_number);
                put_u32(out, m.bearer_type.into());
                put_u32(out, m.physical_channel_id);
                put_u16(out, str_len(&m.dialed_number, STRING_LEN));
                put_u16(out, str_len(&m.dialing_number, STRING_LEN));
                put_str(out, &m.dialed_number, STRING_LEN);
                put_str(out, &m.dialing_number, STRING_LEN);
                put_str(out, &m.subaddress, STRING_LEN);
            }
            Self::Icrp(m) => {
                put_u16(out, m.call_id);
                put_u16(out, m.peer_call_id);
                put_u8(out, m.result.into());
                put_u8(out, m.error.into());
                put_u16(out, m.recv_window);
                put_u16(out, m.transmit_delay);
                put_u16(out, 0);
            }
            Self::Iccn(m) => {
                put_u16(out, m.peer_call_id);
                put_u16(out, 0);
                put_u32(out, m.connect_speed);
                put_u16(out, m.recv_window);
                put_u16(out, m.transmit_delay);
                put_u32(out, m.framing_type.into());
            }
            Self::CallClearRequest(m) => {
                put_u16(out, m.call_id);
                put_u16(out, 0);
            }
            Self::CallDisconnectNotify(m) => {
                put_u16(out, m.call_id);
                put_u8(out, m.result.into());
                put_u8(out, m.error.into());
                put_u16(out, m.cause);
                put_u16(out, 0);
                put_str(out, &m.call_statistics, CALL_STATS_LEN);
            }
            Self::WanErrorNotify(m) => {
                put_u16(out, m.peer_call_id);
                put_u16(out, 0);
                put_u32(out, m.crc_errors);
                put_u32(out, m.framing_errors);
                put_u32(out, m.hardware_overruns);
                put_u32(out, m.buffer_overruns);
                put_u32(out, m.timeout_errors);
                put_u32(out, m.alignment_errors);
            }
            Self::SetLinkInfo(m) => {
                put_u16(out, m.peer_call_id);
                put_u16(out, 0);
                put_u32(out, m.send_accm);
                put_u32(out, m.recv_accm);
            }
        }
    }

    /// Writes the encoded message to the start of `buf`, returning its length.
    pub fn emit_into(&self, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
        let mut tmp = Vec::with_capacity(MAX_MESSAGE_LEN);
        self.emit(&mut tmp);
        let available = buf.len();
        let dst = buf.get_mut(..tmp.len()).ok_or(BufferTooSmall {
            needed: tmp.len(),
            available,
        })?;
        dst.copy_from_slice(&tmp);
        Ok(tmp.len())
    }

    /// The encoded message as a new vector.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.buffer_len());
        self.emit(&mut out);
        out
    }
}
