//! CHAP packets (RFC 1994 §4) shared by CHAP-MD5, MS-CHAPv1 and MS-CHAPv2.

use md5::{Digest as _, Md5};

use crate::error::{Error, Layer};

/// Challenge.
pub const CHALLENGE: u8 = 1;
/// Response.
pub const RESPONSE: u8 = 2;
/// Success.
pub const SUCCESS: u8 = 3;
/// Failure.
pub const FAILURE: u8 = 4;

/// Challenge/Response Data: Value-Size, Value, Name (RFC 1994 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueName<'a> {
    /// Value (challenge or response).
    pub value: &'a [u8],
    /// Name (rest of the packet).
    pub name: &'a [u8],
}

impl<'a> ValueName<'a> {
    /// Parses Challenge/Response Data.
    pub fn parse(data: &'a [u8]) -> Result<Self, Error> {
        let bad = Error::malformed(Layer::Auth, "CHAP Value-Size exceeds packet");
        let (&size, rest) = data.split_first().ok_or(bad.clone())?;
        let (value, name) = rest.split_at_checked(usize::from(size)).ok_or(bad)?;
        Ok(ValueName { value, name })
    }

    /// Appends the Data (value truncated to 255 octets, name to 255).
    pub fn emit(&self, out: &mut Vec<u8>) {
        let v = self
            .value
            .get(..self.value.len().min(255))
            .unwrap_or_default();
        out.push(v.len() as u8);
        out.extend_from_slice(v);
        out.extend_from_slice(
            self.name
                .get(..self.name.len().min(255))
                .unwrap_or_default(),
        );
    }
}

/// CHAP-MD5 response value: MD5(Identifier || secret || challenge) (RFC 1994 §4.1).
pub fn md5_response(id: u8, secret: &[u8], challenge: &[u8]) -> [u8; 16] {
    let mut h = Md5::new();
    h.update([id]);
    h.update(secret);
    h.update(challenge);
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_name_roundtrip() {
        let mut v = Vec::new();
        ValueName {
            value: &[1, 2, 3],
            name: b"srv",
        }
        .emit(&mut v);
        assert_eq!(v, [3, 1, 2, 3, b's', b'r', b'v']);
        assert_eq!(ValueName::parse(&v).unwrap().name, b"srv");
        assert!(ValueName::parse(&[4, 1, 2]).is_err());
        assert!(ValueName::parse(&[]).is_err());
    }

    /// CHAP-MD5 from the RFC 1994 definition with a fixed vector:
    /// MD5(0x01 || "secret" || 00 01 .. 0f) computed independently
    /// (python: hashlib.md5(b"\x01secret" + bytes(range(16))).hexdigest()).
    #[test]
    fn md5_response_vector() {
        let challenge: Vec<u8> = (0u8..16).collect();
        let r = md5_response(1, b"secret", &challenge);
        let mut expect = [0u8; 16];
        assert!(crate::mschap::parse_hex(
            b"740e86463bda3a4d7017d6e0fba0699d",
            &mut expect
        ));
        assert_eq!(r, expect);
    }
}
