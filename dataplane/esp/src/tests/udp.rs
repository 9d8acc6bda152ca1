//! RFC 3948 classification and inner-checksum helpers.

use core::net::Ipv4Addr;

use super::hex;
use crate::ChecksumError;
use crate::udp_encap::{
    NAT_KEEPALIVE, NON_ESP_MARKER, Udp4500Payload, append_ike_with_marker, classify,
    fix_inner_udp_checksum_ipv4, udp_checksum_ipv4, zero_inner_udp_checksum_ipv4,
};

#[test]
fn classify_udp_4500() {
    assert_eq!(classify(&NAT_KEEPALIVE), Udp4500Payload::Keepalive);
    assert_eq!(classify(&[]), Udp4500Payload::Malformed);
    assert_eq!(classify(&[0xFE]), Udp4500Payload::Malformed);
    assert_eq!(classify(&[0xFF, 0xFF]), Udp4500Payload::Malformed);
    assert_eq!(classify(&[0, 0, 0, 0]), Udp4500Payload::Malformed);
    let ike = [7u8; 28];
    let mut dgram = Vec::new();
    append_ike_with_marker(&mut dgram, &ike);
    assert_eq!(&dgram[..4], &NON_ESP_MARKER);
    assert_eq!(classify(&dgram), Udp4500Payload::Ike(&ike));
    assert_eq!(
        classify(&dgram[..31]),
        Udp4500Payload::Malformed,
        "IKE header is 28 octets"
    );
    let esp = [0, 0, 0x12, 0x34, 0, 0, 0, 1];
    assert_eq!(classify(&esp), Udp4500Payload::Esp(&esp));
    assert_eq!(classify(&esp[..7]), Udp4500Payload::Malformed);
    // A zero SPI is never ESP: with 4+ zero octets it is the non-ESP marker.
    assert_eq!(
        classify(&[0, 0, 0, 0, 1, 2, 3, 4]),
        Udp4500Payload::Malformed
    );
}

/// The inner IPv4/UDP datagram of draft-mcgrew-gcm-test-01 page 8 (a DNS
/// query 192.168.1.2 -> 192.168.1.1) carries checksum 0x2343; gen_vectors.py
/// recomputes it independently, and also for NAT'ed addresses.
const DNS: &str = "0a980035002a2343b2d0010000010000000000000373697009637962\
                   65726369747902646b0000010001";

#[test]
fn udp_checksum_matches_captured_packet() {
    let udp = hex(DNS);
    let (src, dst) = (Ipv4Addr::new(192, 168, 1, 2), Ipv4Addr::new(192, 168, 1, 1));
    assert_eq!(udp_checksum_ipv4(&udp, src, dst), Ok(0x2343));
    let mut zeroed = udp.clone();
    zeroed[6..8].fill(0);
    fix_inner_udp_checksum_ipv4(&mut zeroed, src, dst).unwrap();
    assert_eq!(zeroed, udp);
}

#[test]
fn udp_checksum_after_nat() {
    // RFC 3948 §3.1.2: re-checksum for the addresses the packet is delivered with.
    let mut udp = hex(DNS);
    fix_inner_udp_checksum_ipv4(
        &mut udp,
        Ipv4Addr::new(100, 64, 0, 7),
        Ipv4Addr::new(10, 0, 0, 1),
    )
    .unwrap();
    assert_eq!(&udp[6..8], &[0x38, 0x4f]);
    zero_inner_udp_checksum_ipv4(&mut udp).unwrap();
    assert_eq!(&udp[6..8], &[0, 0]);
}

#[test]
fn udp_checksum_odd_length_and_trailing_bytes() {
    let odd = hex("123400350 00baabb010203".replace(' ', "").as_str());
    let (src, dst) = (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(198, 51, 100, 2));
    assert_eq!(udp_checksum_ipv4(&odd, src, dst), Ok(0xfd35));
    // Octets beyond the UDP length (e.g. IP padding) are ignored.
    let mut longer = odd.clone();
    longer.extend_from_slice(&[0xff; 5]);
    assert_eq!(udp_checksum_ipv4(&longer, src, dst), Ok(0xfd35));
}

#[test]
fn udp_checksum_errors() {
    let a = Ipv4Addr::UNSPECIFIED;
    assert_eq!(
        udp_checksum_ipv4(&[0; 7], a, a),
        Err(ChecksumError::Truncated)
    );
    assert_eq!(
        udp_checksum_ipv4(&[0, 1, 0, 2, 0, 7, 0, 0], a, a),
        Err(ChecksumError::BadLength(7))
    );
    assert_eq!(
        udp_checksum_ipv4(&[0, 1, 0, 2, 0, 9, 0, 0], a, a),
        Err(ChecksumError::BadLength(9))
    );
    let mut short = [0u8; 7];
    assert_eq!(
        zero_inner_udp_checksum_ipv4(&mut short),
        Err(ChecksumError::Truncated)
    );
    let mut bad = [0, 1, 0, 2, 0, 9, 0xaa, 0xbb];
    assert!(fix_inner_udp_checksum_ipv4(&mut bad, a, a).is_err());
    assert_eq!(bad[6..8], [0xaa, 0xbb], "unchanged on error");
}

#[test]
fn udp_checksum_zero_becomes_ffff() {
    // Find a payload whose sum is 0xFFFF so the complement is 0: RFC 768
    // transmits that as 0xFFFF. Adjust the last data word to force it.
    let (src, dst) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
    let mut udp = vec![0x10, 0x00, 0x20, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x00];
    let c = udp_checksum_ipv4(&udp, src, dst).unwrap();
    // Adding the checksum value as data makes the total sum 0xFFFF.
    udp[8..10].copy_from_slice(&c.to_be_bytes());
    assert_eq!(udp_checksum_ipv4(&udp, src, dst), Ok(0xFFFF));
}
