//! PAP packets (RFC 1334 §2.2).

use crate::error::{Error, Layer};

/// Authenticate-Request.
pub const AUTH_REQ: u8 = 1;
/// Authenticate-Ack.
pub const AUTH_ACK: u8 = 2;
/// Authenticate-Nak.
pub const AUTH_NAK: u8 = 3;

/// Authenticate-Request data: Peer-ID and Password (RFC 1334 §2.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// Peer-ID.
    pub peer_id: &'a [u8],
    /// Password.
    pub password: &'a [u8],
}

impl<'a> Request<'a> {
    /// Parses the Data of an Authenticate-Request.
    pub fn parse(data: &'a [u8]) -> Result<Self, Error> {
        let bad = Error::malformed(Layer::Auth, "PAP Authenticate-Request lengths");
        let (&id_len, rest) = data.split_first().ok_or(bad.clone())?;
        let (peer_id, rest) = rest
            .split_at_checked(usize::from(id_len))
            .ok_or(bad.clone())?;
        let (&pw_len, rest) = rest.split_first().ok_or(bad.clone())?;
        let password = rest.get(..usize::from(pw_len)).ok_or(bad)?;
        Ok(Request { peer_id, password })
    }

    /// Appends the Data (each field truncated to 255 octets).
    pub fn emit(&self, out: &mut Vec<u8>) {
        for f in [self.peer_id, self.password] {
            let f = f.get(..f.len().min(255)).unwrap_or_default();
            out.push(f.len() as u8);
            out.extend_from_slice(f);
        }
    }
}

/// Parses the Message of an Authenticate-Ack/Nak (RFC 1334 §2.2.2); lenient on length.
pub fn parse_message(data: &[u8]) -> &[u8] {
    match data.split_first() {
        Some((&len, rest)) => rest.get(..usize::from(len)).unwrap_or(rest),
        None => &[],
    }
}

/// Appends an Ack/Nak Data field with `msg`.
pub fn emit_message(msg: &[u8], out: &mut Vec<u8>) {
    let msg = msg.get(..msg.len().min(255)).unwrap_or_default();
    out.push(msg.len() as u8);
    out.extend_from_slice(msg);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_errors() {
        let mut v = Vec::new();
        Request {
            peer_id: b"bob",
            password: b"pw",
        }
        .emit(&mut v);
        assert_eq!(v, b"\x03bob\x02pw");
        assert_eq!(
            Request::parse(&v).unwrap(),
            Request {
                peer_id: b"bob",
                password: b"pw"
            }
        );
        assert!(Request::parse(b"\x05bob").is_err());
        assert!(Request::parse(b"\x03bob\x05pw").is_err());
        assert!(Request::parse(b"").is_err());
        assert_eq!(parse_message(b"\x02okXX"), b"ok");
        assert_eq!(parse_message(b"\x09ok"), b"ok");
    }
}
