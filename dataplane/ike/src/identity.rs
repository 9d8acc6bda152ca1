//! Identification payloads (RFC 2407 §4.6.2) and NAT-OA (RFC 3947 §5.2).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::WireError;

/// Identification types (RFC 2407 §4.6.2.1).
pub mod id_type {
    /// ID_IPV4_ADDR.
    pub const IPV4_ADDR: u8 = 1;
    /// ID_FQDN.
    pub const FQDN: u8 = 2;
    /// ID_USER_FQDN.
    pub const USER_FQDN: u8 = 3;
    /// ID_IPV4_ADDR_SUBNET.
    pub const IPV4_ADDR_SUBNET: u8 = 4;
    /// ID_IPV6_ADDR.
    pub const IPV6_ADDR: u8 = 5;
    /// ID_IPV6_ADDR_SUBNET.
    pub const IPV6_ADDR_SUBNET: u8 = 6;
    /// ID_IPV4_ADDR_RANGE.
    pub const IPV4_ADDR_RANGE: u8 = 7;
    /// ID_DER_ASN1_DN.
    pub const DER_ASN1_DN: u8 = 9;
    /// ID_KEY_ID.
    pub const KEY_ID: u8 = 11;
}

/// Longest identification data accepted.
pub const MAX_ID_LEN: usize = 1024;

/// An ID payload body: type, protocol, port and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identification {
    /// ID type.
    pub id_type: u8,
    /// IP protocol (0 = any; Quick Mode selectors use 17 for L2TP).
    pub protocol: u8,
    /// Port (0 = any).
    pub port: u16,
    /// Identification data.
    pub data: Vec<u8>,
}

impl Identification {
    /// An ID for one address.
    pub fn address(addr: IpAddr, protocol: u8, port: u16) -> Identification {
        match addr {
            IpAddr::V4(a) => Identification {
                id_type: id_type::IPV4_ADDR,
                protocol,
                port,
                data: a.octets().to_vec(),
            },
            IpAddr::V6(a) => Identification {
                id_type: id_type::IPV6_ADDR,
                protocol,
                port,
                data: a.octets().to_vec(),
            },
        }
    }

    /// Parses an ID payload body.
    pub fn parse(body: &[u8]) -> Result<Identification, WireError> {
        let (&[id_type, protocol, p0, p1], data) = body
            .split_first_chunk::<4>()
            .ok_or(WireError::Malformed("ID"))?;
        if data.len() > MAX_ID_LEN {
            return Err(WireError::Malformed("ID (too long)"));
        }
        Ok(Identification {
            id_type,
            protocol,
            port: u16::from_be_bytes([p0, p1]),
            data: data.to_vec(),
        })
    }

    /// The ID payload body.
    pub fn emit(&self) -> Vec<u8> {
        let mut out = vec![self.id_type, self.protocol];
        out.extend_from_slice(&self.port.to_be_bytes());
        out.extend_from_slice(&self.data);
        out
    }

    /// The single address this ID names, for ID_IPV4_ADDR / ID_IPV6_ADDR and for subnets or
    /// ranges that contain exactly one address (a /32, or a range from A to A).
    pub fn single_address(&self) -> Option<IpAddr> {
        let d = self.data.as_slice();
        match (self.id_type, d.len()) {
            (id_type::IPV4_ADDR, 4) => v4(d).map(IpAddr::V4),
            (id_type::IPV6_ADDR, 16) => v6(d).map(IpAddr::V6),
            (id_type::IPV4_ADDR_SUBNET, 8) => {
                let (a, m) = d.split_at(4);
                (m == [0xff; 4]).then(|| v4(a).map(IpAddr::V4)).flatten()
            }
            (id_type::IPV4_ADDR_RANGE, 8) => {
                let (a, b) = d.split_at(4);
                (a == b).then(|| v4(a).map(IpAddr::V4)).flatten()
            }
            _ => None,
        }
    }

    /// A printable form for logs (printable FQDNs as text, addresses as addresses, other
    /// types by type number and length — identities are not secrets).
    pub fn display(&self) -> String {
        if let Some(a) = self.single_address() {
            return a.to_string();
        }
        match self.id_type {
            id_type::FQDN | id_type::USER_FQDN
                if self.data.iter().all(|c| c.is_ascii_graphic()) =>
            {
                String::from_utf8_lossy(&self.data).into_owned()
            }
            t => format!("id-type-{t} ({} octets)", self.data.len()),
        }
    }
}

fn v4(d: &[u8]) -> Option<Ipv4Addr> {
    let a: [u8; 4] = d.try_into().ok()?;
    Some(Ipv4Addr::from(a))
}

fn v6(d: &[u8]) -> Option<Ipv6Addr> {
    let a: [u8; 16] = d.try_into().ok()?;
    Some(Ipv6Addr::from(a))
}

/// A NAT-OA payload body (RFC 3947 §5.2): ID type, 3 reserved octets, address.
pub fn emit_nat_oa(addr: IpAddr) -> Vec<u8> {
    match addr {
        IpAddr::V4(a) => {
            let mut out = vec![id_type::IPV4_ADDR, 0, 0, 0];
            out.extend_from_slice(&a.octets());
            out
        }
        IpAddr::V6(a) => {
            let mut out = vec![id_type::IPV6_ADDR, 0, 0, 0];
            out.extend_from_slice(&a.octets());
            out
        }
    }
}

/// Parses a NAT-OA payload body.
pub fn parse_nat_oa(body: &[u8]) -> Result<IpAddr, WireError> {
    match body.split_first_chunk::<4>() {
        Some((&[id_type::IPV4_ADDR, ..], a)) => v4(a).map(IpAddr::V4),
        Some((&[id_type::IPV6_ADDR, ..], a)) => v6(a).map(IpAddr::V6),
        _ => None,
    }
    .ok_or(WireError::Malformed("NAT-OA"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        let a: IpAddr = "192.0.2.7".parse().unwrap();
        let id = Identification::address(a, 17, 1701);
        let back = Identification::parse(&id.emit()).unwrap();
        assert_eq!(back, id);
        assert_eq!(back.single_address(), Some(a));
        let subnet = Identification {
            id_type: id_type::IPV4_ADDR_SUBNET,
            protocol: 17,
            port: 1701,
            data: vec![192, 0, 2, 7, 255, 255, 255, 255],
        };
        assert_eq!(subnet.single_address(), Some(a));
        let wide = Identification {
            data: vec![192, 0, 2, 0, 255, 255, 255, 0],
            ..subnet
        };
        assert_eq!(wide.single_address(), None);
        assert!(Identification::parse(&[1, 2, 3]).is_err());
        let fqdn = Identification {
            id_type: id_type::FQDN,
            protocol: 0,
            port: 0,
            data: b"vpn.example".to_vec(),
        };
        assert_eq!(fqdn.display(), "vpn.example");
        assert_eq!(parse_nat_oa(&emit_nat_oa(a)).unwrap(), a);
        assert!(parse_nat_oa(&[1, 0, 0, 0, 1]).is_err());
    }
}
