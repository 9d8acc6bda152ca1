//! PPP frame header (RFC 1661 §2, RFC 1662 §3.1 address/control), control packets
//! (RFC 1661 §5) and configuration options (RFC 1661 §6).

use crate::error::{Error, Layer};

/// PPP protocol numbers used by this crate.
pub mod proto {
    /// IPv4 datagram.
    pub const IPV4: u16 = 0x0021;
    /// IPv6 datagram.
    pub const IPV6: u16 = 0x0057;
    /// MPPE/MPPC compressed/encrypted datagram (RFC 3078 §3).
    pub const COMP: u16 = 0x00FD;
    /// IP Control Protocol.
    pub const IPCP: u16 = 0x8021;
    /// IPv6 Control Protocol.
    pub const IPV6CP: u16 = 0x8057;
    /// Compression Control Protocol.
    pub const CCP: u16 = 0x80FD;
    /// Link Control Protocol.
    pub const LCP: u16 = 0xC021;
    /// Password Authentication Protocol.
    pub const PAP: u16 = 0xC023;
    /// Challenge Handshake Authentication Protocol.
    pub const CHAP: u16 = 0xC223;
}

/// Length of the header we emit: `FF 03` + 2-octet protocol.
pub const HEADER_LEN: usize = 4;

/// Splits a frame into its protocol number and information field.
///
/// Accepts an optional `FF 03` and a 1- or 2-octet protocol field (RFC 1661 §2/§6.5).
pub fn parse(frame: &mut [u8]) -> Result<(u16, &mut [u8]), Error> {
    let rest = match frame {
        [0xFF, 0x03, ..] => frame.get_mut(2..).unwrap_or_default(),
        _ => frame,
    };
    let first = *rest.first().ok_or(Error::FrameTooShort)?;
    let (protocol, skip) = if first & 1 == 1 {
        // Compressed (1-octet) protocol field.
        (u16::from(first), 1)
    } else {
        let second = *rest.get(1).ok_or(Error::FrameTooShort)?;
        (u16::from_be_bytes([first, second]), 2)
    };
    if protocol & 1 == 0 || protocol & 0x0100 != 0 {
        return Err(Error::BadProtocol(protocol));
    }
    let info = rest.get_mut(skip..).unwrap_or_default();
    Ok((protocol, info))
}

/// Appends `FF 03` and the 2-octet protocol field.
pub fn emit_header(protocol: u16, out: &mut Vec<u8>) {
    out.extend_from_slice(&[0xFF, 0x03]);
    out.extend_from_slice(&protocol.to_be_bytes());
}

/// Control packet codes shared by LCP and the NCPs (RFC 1661 §5).
pub mod code {
    /// Configure-Request.
    pub const CONF_REQ: u8 = 1;
    /// Configure-Ack.
    pub const CONF_ACK: u8 = 2;
    /// Configure-Nak.
    pub const CONF_NAK: u8 = 3;
    /// Configure-Reject.
    pub const CONF_REJ: u8 = 4;
    /// Terminate-Request.
    pub const TERM_REQ: u8 = 5;
    /// Terminate-Ack.
    pub const TERM_ACK: u8 = 6;
    /// Code-Reject.
    pub const CODE_REJ: u8 = 7;
    /// LCP Protocol-Reject.
    pub const PROTO_REJ: u8 = 8;
    /// LCP Echo-Request.
    pub const ECHO_REQ: u8 = 9;
    /// LCP Echo-Reply.
    pub const ECHO_REPLY: u8 = 10;
    /// LCP Discard-Request.
    pub const DISCARD_REQ: u8 = 11;
    /// LCP Identification (RFC 1570).
    pub const IDENTIFICATION: u8 = 12;
    /// LCP Time-Remaining (RFC 1570).
    pub const TIME_REMAINING: u8 = 13;
    /// CCP Reset-Request (RFC 1962 §2).
    pub const RESET_REQ: u8 = 14;
    /// CCP Reset-Ack (RFC 1962 §2).
    pub const RESET_ACK: u8 = 15;
}

/// A checked view of a control packet: Code, Identifier, Length, Data (RFC 1661 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlPacket<'a> {
    /// Code.
    pub code: u8,
    /// Identifier.
    pub id: u8,
    /// Data (Length − 4 octets; trailing padding beyond Length is dropped).
    pub data: &'a [u8],
}

impl<'a> ControlPacket<'a> {
    /// Validates the header and Length field (4 ≤ Length ≤ buffer).
    pub fn parse(info: &'a [u8], layer: Layer) -> Result<Self, Error> {
        let (hdr, _) = info
            .split_first_chunk::<4>()
            .ok_or(Error::malformed(layer, "packet shorter than 4 octets"))?;
        let len = usize::from(u16::from_be_bytes([hdr[2], hdr[3]]));
        if len < 4 {
            return Err(Error::malformed(layer, "length field below 4"));
        }
        let data = info
            .get(4..len)
            .ok_or(Error::malformed(layer, "length field exceeds frame"))?;
        Ok(ControlPacket {
            code: hdr[0],
            id: hdr[1],
            data,
        })
    }
}

/// Appends a complete framed control packet; data longer than 65531 octets is truncated.
pub fn emit_control(protocol: u16, code: u8, id: u8, data: &[u8], out: &mut Vec<u8>) {
    let data = data.get(..data.len().min(65531)).unwrap_or_default();
    emit_header(protocol, out);
    out.push(code);
    out.push(id);
    out.extend_from_slice(&((data.len() + 4) as u16).to_be_bytes());
    out.extend_from_slice(data);
}

/// Builds a framed control packet into a new buffer.
pub fn control_frame(protocol: u16, code: u8, id: u8, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER_LEN + 4 + data.len());
    emit_control(protocol, code, id, data, &mut v);
    v
}

/// One configuration option: Type, Length, Data (RFC 1661 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigOption<'a> {
    /// Type.
    pub kind: u8,
    /// Data (Length − 2 octets).
    pub data: &'a [u8],
}

/// Validates an options field: every option has Length ≥ 2 and fits.
pub fn check_options(opts: &[u8], layer: Layer) -> Result<(), Error> {
    let mut rest = opts;
    while !rest.is_empty() {
        let len = usize::from(
            *rest
                .get(1)
                .ok_or(Error::malformed(layer, "truncated option"))?,
        );
        if len < 2 {
            return Err(Error::malformed(layer, "option length below 2"));
        }
        rest = rest
            .get(len..)
            .ok_or(Error::malformed(layer, "option length exceeds packet"))?;
    }
    Ok(())
}

/// Iterates over options; stops at the first malformed one (use [`check_options`] first).
pub fn options(opts: &[u8]) -> impl Iterator<Item = ConfigOption<'_>> {
    let mut rest = opts;
    core::iter::from_fn(move || {
        let kind = *rest.first()?;
        let len = usize::from(*rest.get(1)?);
        if len < 2 {
            return None;
        }
        let data = rest.get(2..len)?;
        rest = rest.get(len..)?;
        Some(ConfigOption { kind, data })
    })
}

/// Appends one option.
pub fn push_option(out: &mut Vec<u8>, kind: u8, data: &[u8]) {
    let data = data.get(..data.len().min(253)).unwrap_or_default();
    out.push(kind);
    out.push((data.len() + 2) as u8);
    out.extend_from_slice(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_field_forms() {
        let mut f = [0xFF, 0x03, 0xC0, 0x21, 1, 2];
        let (p, info) = parse(&mut f).unwrap();
        assert_eq!((p, &info[..]), (proto::LCP, &[1u8, 2][..]));
        let mut f = [0x21, 0x45];
        let (p, info) = parse(&mut f).unwrap();
        assert_eq!((p, &info[..]), (proto::IPV4, &[0x45u8][..]));
        let mut f = [0x00, 0x21, 0x45];
        assert_eq!(parse(&mut f).unwrap().0, proto::IPV4);
        assert_eq!(parse(&mut []), Err(Error::FrameTooShort));
        assert_eq!(parse(&mut [0xFF, 0x03]), Err(Error::FrameTooShort));
        assert_eq!(parse(&mut [0x00]), Err(Error::FrameTooShort));
        assert_eq!(parse(&mut [0x00, 0x20]), Err(Error::BadProtocol(0x20)));
        assert_eq!(parse(&mut [0x01, 0x21]).unwrap().0, 0x01);
        assert_eq!(parse(&mut [0xC0, 0x22]), Err(Error::BadProtocol(0xC022)));
    }

    #[test]
    fn control_packet_lengths() {
        let p = ControlPacket::parse(&[1, 7, 0, 6, 0xAA, 0xBB, 0xCC], Layer::Lcp).unwrap();
        assert_eq!((p.code, p.id, p.data), (1, 7, &[0xAA, 0xBB][..]));
        assert!(ControlPacket::parse(&[1, 7, 0, 3], Layer::Lcp).is_err());
        assert!(ControlPacket::parse(&[1, 7, 0, 9, 1], Layer::Lcp).is_err());
        assert!(ControlPacket::parse(&[1, 7, 0], Layer::Lcp).is_err());
        let f = control_frame(proto::LCP, 9, 3, &[1, 2, 3, 4]);
        assert_eq!(f, [0xFF, 0x03, 0xC0, 0x21, 9, 3, 0, 8, 1, 2, 3, 4]);
    }

    #[test]
    fn option_walk() {
        let opts = [1, 4, 5, 0xDC, 7, 2, 8, 2];
        check_options(&opts, Layer::Lcp).unwrap();
        let v: Vec<_> = options(&opts).map(|o| (o.kind, o.data.len())).collect();
        assert_eq!(v, [(1, 2), (7, 0), (8, 0)]);
        assert!(check_options(&[1, 1], Layer::Lcp).is_err());
        assert!(check_options(&[1, 5, 0], Layer::Lcp).is_err());
        assert!(check_options(&[1], Layer::Lcp).is_err());
        assert_eq!(options(&[1, 0, 1, 2]).count(), 0);
    }
}
