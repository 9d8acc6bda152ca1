//! The ISAKMP header (RFC 2408 §3.1).

use crate::error::WireError;

/// Length of the fixed header.
pub const HEADER_LEN: usize = 28;
/// Largest message accepted or produced (RFC 2408 leaves this open; certificates chains fit).
pub const MAX_MESSAGE_LEN: usize = 16 * 1024;

/// Exchange types (RFC 2408 §3.1, RFC 2409 §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExchangeType {
    /// 1: Base.
    Base,
    /// 2: Identity Protection (Main Mode).
    IdentityProtection,
    /// 3: Authentication Only.
    AuthenticationOnly,
    /// 4: Aggressive.
    Aggressive,
    /// 5: Informational.
    Informational,
    /// 6: Transaction (Mode Config / XAUTH, draft-ietf-ipsec-isakmp-mode-cfg).
    Transaction,
    /// 32: Quick Mode (RFC 2409 §5.5).
    QuickMode,
    /// 33: New Group Mode (RFC 2409 §5.6).
    NewGroup,
    /// Anything else.
    Other(u8),
}

impl ExchangeType {
    /// The wire value.
    pub fn value(self) -> u8 {
        match self {
            ExchangeType::Base => 1,
            ExchangeType::IdentityProtection => 2,
            ExchangeType::AuthenticationOnly => 3,
            ExchangeType::Aggressive => 4,
            ExchangeType::Informational => 5,
            ExchangeType::Transaction => 6,
            ExchangeType::QuickMode => 32,
            ExchangeType::NewGroup => 33,
            ExchangeType::Other(v) => v,
        }
    }

    /// From the wire value.
    pub fn from_value(v: u8) -> ExchangeType {
        match v {
            1 => ExchangeType::Base,
            2 => ExchangeType::IdentityProtection,
            3 => ExchangeType::AuthenticationOnly,
            4 => ExchangeType::Aggressive,
            5 => ExchangeType::Informational,
            6 => ExchangeType::Transaction,
            32 => ExchangeType::QuickMode,
            33 => ExchangeType::NewGroup,
            v => ExchangeType::Other(v),
        }
    }
}

/// Header flags (RFC 2408 §3.1).
pub mod flags {
    /// E: payloads after the header are encrypted.
    pub const ENCRYPTION: u8 = 0x01;
    /// C: commit (RFC 2408 §4.6); accepted and ignored.
    pub const COMMIT: u8 = 0x02;
    /// A: authentication only.
    pub const AUTH_ONLY: u8 = 0x04;
}

/// A validated ISAKMP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Initiator cookie (CKY-I).
    pub cky_i: [u8; 8],
    /// Responder cookie (CKY-R); zero in the first message.
    pub cky_r: [u8; 8],
    /// Type of the first payload.
    pub next_payload: u8,
    /// Exchange type.
    pub exchange: ExchangeType,
    /// Flags.
    pub flags: u8,
    /// Message ID (zero in Phase 1).
    pub message_id: u32,
    /// Length of the whole message, header included.
    pub length: u32,
}

impl Header {
    /// Parses the header and returns it with the payload bytes it covers (the Length field is
    /// checked against the datagram: shorter than the header or longer than the datagram are
    /// errors; trailing bytes after Length are ignored).
    pub fn parse(buf: &[u8]) -> Result<(Header, &[u8]), WireError> {
        let h: &[u8; HEADER_LEN] = buf
            .get(..HEADER_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(WireError::Truncated)?;
        let [
            c0,
            c1,
            c2,
            c3,
            c4,
            c5,
            c6,
            c7,
            r0,
            r1,
            r2,
            r3,
            r4,
            r5,
            r6,
            r7,
            next,
            version,
            exch,
            fl,
            m0,
            m1,
            m2,
            m3,
            l0,
            l1,
            l2,
            l3,
        ] = *h;
        // Major version 1 (RFC 2408 §3.1); a different minor version is tolerated.
        if version >> 4 != 1 {
            return Err(WireError::Version(version));
        }
        let length = u32::from_be_bytes([l0, l1, l2, l3]);
        let len = usize::try_from(length).map_err(|_| WireError::Length(length))?;
        if len < HEADER_LEN || len > buf.len() || len > MAX_MESSAGE_LEN {
            return Err(WireError::Length(length));
        }
        let body = buf.get(HEADER_LEN..len).ok_or(WireError::Length(length))?;
        Ok((
            Header {
                cky_i: [c0, c1, c2, c3, c4, c5, c6, c7],
                cky_r: [r0, r1, r2, r3, r4, r5, r6, r7],
                next_payload: next,
                exchange: ExchangeType::from_value(exch),
                flags: fl,
                message_id: u32::from_be_bytes([m0, m1, m2, m3]),
                length,
            },
            body,
        ))
    }

    /// Whether the E flag is set.
    pub fn encrypted(&self) -> bool {
        self.flags & flags::ENCRYPTION != 0
    }

    /// Appends the header (with `self.length`) to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.cky_i);
        out.extend_from_slice(&self.cky_r);
        out.push(self.next_payload);
        out.push(0x10);
        out.push(self.exchange.value());
        out.push(self.flags);
        out.extend_from_slice(&self.message_id.to_be_bytes());
        out.extend_from_slice(&self.length.to_be_bytes());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample() -> Header {
        Header {
            cky_i: [1, 2, 3, 4, 5, 6, 7, 8],
            cky_r: [0; 8],
            next_payload: 1,
            exchange: ExchangeType::IdentityProtection,
            flags: 0,
            message_id: 0,
            length: 32,
        }
    }

    #[test]
    fn round_trip_and_limits() {
        let mut b = Vec::new();
        sample().emit(&mut b);
        b.extend_from_slice(&[9, 9, 9, 9, 7]);
        let (h, body) = Header::parse(&b).unwrap();
        assert_eq!(h, sample());
        assert_eq!(body, &[9, 9, 9, 9]);
        for n in 0..HEADER_LEN {
            assert_eq!(Header::parse(&b[..n]), Err(WireError::Truncated));
        }
        let mut lie = b.clone();
        lie[27] = 200;
        assert_eq!(Header::parse(&lie), Err(WireError::Length(200)));
        lie[27] = 27;
        assert_eq!(Header::parse(&lie), Err(WireError::Length(27)));
        let mut v2 = b.clone();
        v2[17] = 0x20;
        assert_eq!(Header::parse(&v2), Err(WireError::Version(0x20)));
    }
}
