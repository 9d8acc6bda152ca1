//! Notification and Delete payloads (RFC 2408 §3.14–3.15) and the notify message types of
//! RFC 2408 §3.14.1, RFC 2407 §4.6.3, RFC 3706 (DPD).

use crate::error::WireError;
use crate::payload::{be16, be32};
use crate::sa::DOI_IPSEC;

/// Notify message types.
pub mod code {
    /// INVALID-PAYLOAD-TYPE.
    pub const INVALID_PAYLOAD_TYPE: u16 = 1;
    /// DOI-NOT-SUPPORTED.
    pub const DOI_NOT_SUPPORTED: u16 = 2;
    /// SITUATION-NOT-SUPPORTED.
    pub const SITUATION_NOT_SUPPORTED: u16 = 3;
    /// INVALID-COOKIE.
    pub const INVALID_COOKIE: u16 = 4;
    /// INVALID-EXCHANGE-TYPE.
    pub const INVALID_EXCHANGE_TYPE: u16 = 7;
    /// INVALID-FLAGS.
    pub const INVALID_FLAGS: u16 = 8;
    /// INVALID-MESSAGE-ID.
    pub const INVALID_MESSAGE_ID: u16 = 9;
    /// INVALID-SPI.
    pub const INVALID_SPI: u16 = 11;
    /// NO-PROPOSAL-CHOSEN.
    pub const NO_PROPOSAL_CHOSEN: u16 = 14;
    /// PAYLOAD-MALFORMED.
    pub const PAYLOAD_MALFORMED: u16 = 16;
    /// INVALID-KEY-INFORMATION.
    pub const INVALID_KEY_INFORMATION: u16 = 17;
    /// INVALID-ID-INFORMATION.
    pub const INVALID_ID_INFORMATION: u16 = 18;
    /// INVALID-HASH-INFORMATION.
    pub const INVALID_HASH_INFORMATION: u16 = 23;
    /// AUTHENTICATION-FAILED.
    pub const AUTHENTICATION_FAILED: u16 = 24;
    /// INVALID-SIGNATURE.
    pub const INVALID_SIGNATURE: u16 = 25;
    /// RESPONDER-LIFETIME (RFC 2407 §4.6.3.1).
    pub const RESPONDER_LIFETIME: u16 = 24576;
    /// REPLAY-STATUS (RFC 2407 §4.6.3.2).
    pub const REPLAY_STATUS: u16 = 24577;
    /// INITIAL-CONTACT (RFC 2407 §4.6.3.3).
    pub const INITIAL_CONTACT: u16 = 24578;
    /// R-U-THERE (RFC 3706 §5).
    pub const R_U_THERE: u16 = 36136;
    /// R-U-THERE-ACK (RFC 3706 §5).
    pub const R_U_THERE_ACK: u16 = 36137;

    /// A name for logs.
    pub fn name(c: u16) -> &'static str {
        match c {
            INVALID_PAYLOAD_TYPE => "INVALID-PAYLOAD-TYPE",
            DOI_NOT_SUPPORTED => "DOI-NOT-SUPPORTED",
            SITUATION_NOT_SUPPORTED => "SITUATION-NOT-SUPPORTED",
            INVALID_COOKIE => "INVALID-COOKIE",
            INVALID_EXCHANGE_TYPE => "INVALID-EXCHANGE-TYPE",
            INVALID_FLAGS => "INVALID-FLAGS",
            INVALID_MESSAGE_ID => "INVALID-MESSAGE-ID",
            INVALID_SPI => "INVALID-SPI",
            NO_PROPOSAL_CHOSEN => "NO-PROPOSAL-CHOSEN",
            PAYLOAD_MALFORMED => "PAYLOAD-MALFORMED",
            INVALID_KEY_INFORMATION => "INVALID-KEY-INFORMATION",
            INVALID_ID_INFORMATION => "INVALID-ID-INFORMATION",
            INVALID_HASH_INFORMATION => "INVALID-HASH-INFORMATION",
            AUTHENTICATION_FAILED => "AUTHENTICATION-FAILED",
            INVALID_SIGNATURE => "INVALID-SIGNATURE",
            RESPONDER_LIFETIME => "RESPONDER-LIFETIME",
            REPLAY_STATUS => "REPLAY-STATUS",
            INITIAL_CONTACT => "INITIAL-CONTACT",
            R_U_THERE => "R-U-THERE",
            R_U_THERE_ACK => "R-U-THERE-ACK",
            _ => "unknown",
        }
    }
}

/// Longest notification data accepted.
pub const MAX_NOTIFY_DATA: usize = 512;
/// Most SPIs accepted in one Delete payload.
pub const MAX_DELETE_SPIS: usize = 64;

/// A Notification payload body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    /// Protocol ID.
    pub protocol: u8,
    /// Notify message type.
    pub code: u16,
    /// SPI (ISAKMP: the 16 octets of both cookies, or empty; ESP: 4 octets).
    pub spi: Vec<u8>,
    /// Notification data.
    pub data: Vec<u8>,
}

impl Notify {
    /// Parses a Notification payload body.
    pub fn parse(body: &[u8]) -> Result<Notify, WireError> {
        let _doi = be32(body, 0).ok_or(WireError::Malformed("N"))?;
        let (&[protocol, spi_size], rest) = body
            .get(4..)
            .and_then(|r| r.split_first_chunk::<2>())
            .ok_or(WireError::Malformed("N"))?;
        let code = be16(rest, 0).ok_or(WireError::Malformed("N"))?;
        let rest = rest.get(2..).unwrap_or_default();
        let spi = rest
            .get(..usize::from(spi_size))
            .ok_or(WireError::Malformed("N (SPI)"))?;
        let data = rest.get(usize::from(spi_size)..).unwrap_or_default();
        if data.len() > MAX_NOTIFY_DATA {
            return Err(WireError::Malformed("N (data too long)"));
        }
        Ok(Notify {
            protocol,
            code,
            spi: spi.to_vec(),
            data: data.to_vec(),
        })
    }

    /// The Notification payload body.
    pub fn emit(&self) -> Vec<u8> {
        let mut out = DOI_IPSEC.to_be_bytes().to_vec();
        out.push(self.protocol);
        out.push(u8::try_from(self.spi.len()).unwrap_or(0));
        out.extend_from_slice(&self.code.to_be_bytes());
        out.extend_from_slice(&self.spi);
        out.extend_from_slice(&self.data);
        out
    }
}

/// A Delete payload body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delete {
    /// Protocol ID (1: the ISAKMP SA named by the cookies, 3: ESP SAs).
    pub protocol: u8,
    /// SPIs, each of the same size.
    pub spis: Vec<Vec<u8>>,
}

impl Delete {
    /// Parses a Delete payload body.
    pub fn parse(body: &[u8]) -> Result<Delete, WireError> {
        let _doi = be32(body, 0).ok_or(WireError::Malformed("D"))?;
        let (&[protocol, spi_size], rest) = body
            .get(4..)
            .and_then(|r| r.split_first_chunk::<2>())
            .ok_or(WireError::Malformed("D"))?;
        let n = usize::from(be16(rest, 0).ok_or(WireError::Malformed("D"))?);
        if n > MAX_DELETE_SPIS {
            return Err(WireError::TooMany("SPIs"));
        }
        let spis_bytes = rest.get(2..).unwrap_or_default();
        let size = usize::from(spi_size);
        if size == 0 || n == 0 || spis_bytes.len() != n * size {
            return Err(WireError::Malformed("D (SPI list)"));
        }
        Ok(Delete {
            protocol,
            spis: spis_bytes.chunks_exact(size).map(<[u8]>::to_vec).collect(),
        })
    }

    /// The Delete payload body.
    pub fn emit(&self) -> Vec<u8> {
        let mut out = DOI_IPSEC.to_be_bytes().to_vec();
        out.push(self.protocol);
        out.push(
            self.spis
                .first()
                .map_or(0, |s| u8::try_from(s.len()).unwrap_or(0)),
        );
        out.extend_from_slice(&u16::try_from(self.spis.len()).unwrap_or(0).to_be_bytes());
        for s in &self.spis {
            out.extend_from_slice(s);
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn notify_and_delete_round_trip() {
        let n = Notify {
            protocol: 1,
            code: code::R_U_THERE,
            spi: vec![7; 16],
            data: vec![0, 0, 0, 9],
        };
        assert_eq!(Notify::parse(&n.emit()).unwrap(), n);
        let e = n.emit();
        for k in 0..8 {
            assert!(Notify::parse(&e[..k]).is_err(), "{k}");
        }
        let d = Delete {
            protocol: 3,
            spis: vec![vec![1, 2, 3, 4], vec![5, 6, 7, 8]],
        };
        assert_eq!(Delete::parse(&d.emit()).unwrap(), d);
        let mut lie = d.emit();
        lie[7] = 3;
        assert!(Delete::parse(&lie).is_err());
        assert_eq!(code::name(code::INITIAL_CONTACT), "INITIAL-CONTACT");
    }
}
