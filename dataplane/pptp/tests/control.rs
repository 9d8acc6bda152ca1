//! Control message codec and framer tests (RFC 2637 §2).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use sluice_pptp::control::*;
use sluice_pptp::{Framer, ParseError};

fn header(len: u16, ctype: u16) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&len.to_be_bytes());
    v.extend_from_slice(&1u16.to_be_bytes());
    v.extend_from_slice(&[0x1A, 0x2B, 0x3C, 0x4D]);
    v.extend_from_slice(&ctype.to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    v
}

fn padded(s: &[u8], n: usize) -> Vec<u8> {
    let mut v = s.to_vec();
    v.resize(n, 0);
    v
}

/// §2.1 field table, built by hand.
#[test]
fn sccrq_known_layout() {
    let mut expected = header(156, 1);
    expected.extend_from_slice(&[0x01, 0x00]); // Protocol Version 1.0
    expected.extend_from_slice(&[0, 0]); // Reserved1
    expected.extend_from_slice(&[0, 0, 0, 3]); // Framing Capabilities: async|sync
    expected.extend_from_slice(&[0, 0, 0, 3]); // Bearer Capabilities: analog|digital
    expected.extend_from_slice(&[0, 0]); // Maximum Channels
    expected.extend_from_slice(&[0, 1]); // Firmware Revision
    expected.extend_from_slice(&padded(b"host", 64));
    expected.extend_from_slice(&padded(b"vend", 64));
    assert_eq!(expected.len(), 156);

    let msg = ControlMessage::Sccrq(Sccrq {
        protocol_version: PROTOCOL_VERSION,
        framing_capabilities: FramingCapabilities::ALL,
        bearer_capabilities: BearerCapabilities::ALL,
        maximum_channels: 0,
        firmware_revision: 1,
        host_name: "host".into(),
        vendor: "vend".into(),
    });
    assert_eq!(msg.to_bytes(), expected);
    assert_eq!(ControlMessage::parse_bytes(&expected).unwrap(), msg);
}

/// §2.7 field table, built by hand.
#[test]
fn ocrq_known_layout() {
    let mut expected = header(168, 7);
    expected.extend_from_slice(&[0x12, 0x34]); // Call ID
    expected.extend_from_slice(&[0x00, 0x05]); // Call Serial Number
    expected.extend_from_slice(&2400u32.to_be_bytes()); // Minimum BPS
    expected.extend_from_slice(&10_000_000u32.to_be_bytes()); // Maximum BPS
    expected.extend_from_slice(&[0, 0, 0, 3]); // Bearer Type: any
    expected.extend_from_slice(&[0, 0, 0, 3]); // Framing Type: any
    expected.extend_from_slice(&[0, 64]); // Packet Recv. Window Size
    expected.extend_from_slice(&[0, 0]); // Packet Processing Delay
    expected.extend_from_slice(&[0, 3]); // Phone Number Length
    expected.extend_from_slice(&[0, 0]); // Reserved1
    expected.extend_from_slice(&padded(b"555", 64));
    expected.extend_from_slice(&[0; 64]); // Subaddress
    assert_eq!(expected.len(), 168);

    let msg = ControlMessage::Ocrq(Ocrq {
        call_id: 0x1234,
        call_serial_number: 5,
        minimum_bps: 2400,
        maximum_bps: 10_000_000,
        bearer_type: BearerType::Any,
        framing_type: FramingType::Any,
        recv_window: 64,
        processing_delay: 0,
        phone_number: "555".into(),
        subaddress: String::new(),
    });
    assert_eq!(msg.to_bytes(), expected);
    assert_eq!(ControlMessage::parse_bytes(&expected).unwrap(), msg);
}

/// §2.8 and §2.13 known layouts.
#[test]
fn ocrp_and_cdn_known_layout() {
    let mut expected = header(32, 8);
    expected.extend_from_slice(&[0, 9, 0x12, 0x34, 1, 0, 0, 0]);
    expected.extend_from_slice(&64000u32.to_be_bytes());
    expected.extend_from_slice(&[0, 64, 0, 0, 0, 0, 0, 0]);
    let msg = ControlMessage::Ocrp(Ocrp {
        call_id: 9,
        peer_call_id: 0x1234,
        result: OcrpResult::Connected,
        error: GeneralError::None,
        cause: 0,
        connect_speed: 64000,
        recv_window: 64,
        processing_delay: 0,
        physical_channel_id: 0,
    });
    assert_eq!(msg.to_bytes(), expected);

    let mut cdn = header(148, 13);
    cdn.extend_from_slice(&[0, 9, 4, 0, 0, 0, 0, 0]);
    cdn.extend_from_slice(&padded(b"bye", 128));
    let msg = ControlMessage::CallDisconnectNotify(CallDisconnectNotify {
        call_id: 9,
        result: CdnResult::Request,
        error: GeneralError::None,
        cause: 0,
        call_statistics: "bye".into(),
    });
    assert_eq!(msg.to_bytes(), cdn);
}

pub fn all_messages() -> Vec<ControlMessage> {
    vec![
        ControlMessage::Sccrq(Sccrq {
            protocol_version: PROTOCOL_VERSION,
            framing_capabilities: FramingCapabilities::SYNC,
            bearer_capabilities: BearerCapabilities::ANALOG,
            maximum_channels: 7,
            firmware_revision: 0x0203,
            host_name: "h".repeat(64),
            vendor: "Ünïcode".into(),
        }),
        ControlMessage::Sccrp(Sccrp {
            protocol_version: PROTOCOL_VERSION,
            result: SccrpResult::UnsupportedVersion,
            error: GeneralError::BadValue,
            framing_capabilities: FramingCapabilities::ASYNC,
            bearer_capabilities: BearerCapabilities::DIGITAL,
            maximum_channels: 100,
            firmware_revision: 9,
            host_name: "pac".into(),
            vendor: String::new(),
        }),
        ControlMessage::StopCcrq(StopCcrq {
            reason: StopReason::LocalShutdown,
        }),
        ControlMessage::StopCcrp(StopCcrp {
            result: OkResult::GeneralError,
            error: GeneralError::NotConnected,
        }),
        ControlMessage::EchoRequest(EchoRequest {
            identifier: 0xDEAD_BEEF,
        }),
        ControlMessage::EchoReply(EchoReply {
            identifier: 7,
            result: OkResult::Ok,
            error: GeneralError::None,
        }),
        ControlMessage::Ocrq(Ocrq {
            call_id: 1,
            call_serial_number: 2,
            minimum_bps: 3,
            maximum_bps: 4,
            bearer_type: BearerType::Digital,
            framing_type: FramingType::Sync,
            recv_window: 5,
            processing_delay: 6,
            phone_number: "12345".into(),
            subaddress: "sub".into(),
        }),
        ControlMessage::Ocrp(Ocrp {
            call_id: 1,
            peer_call_id: 2,
            result: OcrpResult::Unknown(99),
            error: GeneralError::PacError,
            cause: 3,
            connect_speed: 4,
            recv_window: 5,
            processing_delay: 6,
            physical_channel_id: 7,
        }),
        ControlMessage::Icrq(Icrq {
            call_id: 1,
            call_serial_number: 2,
            bearer_type: BearerType::Analog,
            physical_channel_id: 3,
            dialed_number: "dialed".into(),
            dialing_number: "dialing".into(),
            subaddress: "s".into(),
        }),
        ControlMessage::Icrp(Icrp {
            call_id: 1,
            peer_call_id: 2,
            result: IcrpResult::DoNotAccept,
            error: GeneralError::None,
            recv_window: 3,
            transmit_delay: 4,
        }),
        ControlMessage::Iccn(Iccn {
            peer_call_id: 1,
            connect_speed: 2,
            recv_window: 3,
            transmit_delay: 4,
            framing_type: FramingType::Async,
        }),
        ControlMessage::CallClearRequest(CallClearRequest { call_id: 0xFFFF }),
        ControlMessage::CallDisconnectNotify(CallDisconnectNotify {
            call_id: 1,
            result: CdnResult::AdminShutdown,
            error: GeneralError::None,
            cause: 2,
            call_statistics: "x".repeat(128),
        }),
        ControlMessage::WanErrorNotify(WanErrorNotify {
            peer_call_id: 1,
            crc_errors: 2,
            framing_errors: 3,
            hardware_overruns: 4,
            buffer_overruns: 5,
            timeout_errors: 6,
            alignment_errors: 7,
        }),
        ControlMessage::SetLinkInfo(SetLinkInfo {
            peer_call_id: 1,
            send_accm: 0xFFFF_FFFF,
            recv_accm: 0,
        }),
    ]
}

#[test]
fn round_trip_every_message() {
    let msgs = all_messages();
    assert_eq!(msgs.len(), 15);
    for msg in msgs {
        let bytes = msg.to_bytes();
        assert_eq!(bytes.len(), msg.message_type().fixed_len(), "{msg:?}");
        let pkt = ControlPacket::new_checked(&bytes[..]).unwrap();
        assert_eq!(pkt.length() as usize, bytes.len());
        assert_eq!(pkt.magic_cookie(), MAGIC_COOKIE);
        assert_eq!(pkt.message_type(), Some(msg.message_type()));
        assert_eq!(ControlMessage::parse(&pkt).unwrap(), msg);
        let mut buf = [0u8; MAX_MESSAGE_LEN];
        let n = msg.emit_into(&mut buf).unwrap();
        assert_eq!(&buf[..n], &bytes[..]);
        assert!(msg.emit_into(&mut buf[..n - 1]).is_err());
    }
}

#[test]
fn long_strings_truncate_at_char_boundary() {
    let msg = ControlMessage::Sccrq(Sccrq {
        protocol_version: PROTOCOL_VERSION,
        framing_capabilities: FramingCapabilities::ALL,
        bearer_capabilities: BearerCapabilities::ALL,
        maximum_channels: 0,
        firmware_revision: 0,
        host_name: "é".repeat(40), // 80 bytes
        vendor: "v".repeat(100),
    });
    let bytes = msg.to_bytes();
    assert_eq!(bytes.len(), 156);
    let ControlMessage::Sccrq(p) = ControlMessage::parse_bytes(&bytes).unwrap() else {
        panic!()
    };
    assert_eq!(p.host_name, "é".repeat(32));
    assert_eq!(p.vendor, "v".repeat(64));
}

#[test]
fn strings_stop_at_nul_and_decode_lossily() {
    let mut bytes = ControlMessage::EchoRequest(EchoRequest { identifier: 1 }).to_bytes();
    bytes.clear();
    bytes = header(156, 1);
    bytes.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 3, 0, 0, 0, 0]);
    let mut host = padded(b"ab\xFFc", 64);
    host[10] = b'z'; // after the NUL: ignored
    bytes.extend_from_slice(&host);
    bytes.extend_from_slice(&[b'q'; 64]); // no NUL at all
    let ControlMessage::Sccrq(p) = ControlMessage::parse_bytes(&bytes).unwrap() else {
        panic!()
    };
    assert_eq!(p.host_name, "ab\u{FFFD}c");
    assert_eq!(p.vendor, "q".repeat(64));
}

#[test]
fn header_errors() {
    let good = ControlMessage::EchoRequest(EchoRequest { identifier: 1 }).to_bytes();
    let mut b = good.clone();
    b[1] = 11;
    assert_eq!(
        ControlPacket::new_checked(&b[..]).unwrap_err(),
        ParseError::LengthOutOfRange(11)
    );
    let mut b = good.clone();
    b[0] = 2;
    assert!(matches!(
        ControlPacket::new_checked(&b[..]),
        Err(ParseError::LengthOutOfRange(_))
    ));
    let mut b = good.clone();
    b[3] = 2;
    assert_eq!(
        ControlPacket::new_checked(&b[..]).unwrap_err(),
        ParseError::BadPptpMessageType(2)
    );
    let mut b = good.clone();
    b[4] = 0;
    assert!(matches!(
        ControlPacket::new_checked(&b[..]),
        Err(ParseError::BadMagicCookie(_))
    ));
    let mut b = good.clone();
    b[9] = 16;
    assert_eq!(
        ControlPacket::new_checked(&b[..]).unwrap_err(),
        ParseError::UnknownControlMessageType(16)
    );
    let mut b = good.clone();
    b[9] = 6; // Echo-Reply is 20 bytes, not 16
    assert!(matches!(
        ControlPacket::new_checked(&b[..]),
        Err(ParseError::BadLength { .. })
    ));
    assert_eq!(
        ControlPacket::new_checked(&good[..15]).unwrap_err(),
        ParseError::Truncated
    );
    assert_eq!(
        ControlPacket::new_checked(&good[..5]).unwrap_err(),
        ParseError::Truncated
    );
    // Unchecked accessors on garbage never panic.
    let p = ControlPacket::new_unchecked(&[1u8, 2, 3][..]);
    assert_eq!(p.body(), &[] as &[u8]);
    assert_eq!(p.length(), 0);
}

#[test]
fn framer_reassembles_split_and_batched_reads() {
    let msgs = all_messages();
    let stream: Vec<u8> = msgs.iter().flat_map(|m| m.to_bytes()).collect();
    for chunk in [1usize, 2, 3, 7, 12, 13, 100, 219, 1000, stream.len()] {
        let mut f = Framer::new();
        let mut got = Vec::new();
        for piece in stream.chunks(chunk) {
            got.extend(f.push(piece).unwrap());
            assert!(f.buffered() <= MAX_MESSAGE_LEN);
        }
        assert_eq!(got, msgs, "chunk {chunk}");
        assert_eq!(f.buffered(), 0);
    }
}

#[test]
fn framer_rejects_bad_header_early_and_stays_failed() {
    let mut f = Framer::new();
    // A huge Length must be rejected after 12 bytes, not buffered.
    let mut bad = header(0xFFFF, 1);
    bad.extend_from_slice(&[0; 100]);
    assert_eq!(
        f.push(&bad).unwrap_err(),
        ParseError::LengthOutOfRange(0xFFFF)
    );
    assert_eq!(f.buffered(), 0);
    assert!(f.has_failed());
    let good = ControlMessage::EchoRequest(EchoRequest { identifier: 1 }).to_bytes();
    assert_eq!(f.push(&good).unwrap_err(), ParseError::StreamFailed);

    // Length equal to another type's size is rejected.
    let mut f = Framer::new();
    assert!(matches!(
        f.push(&header(156, 5)),
        Err(ParseError::BadLength { .. })
    ));
}

#[test]
fn framer_keeps_partial_then_valid_message_after() {
    let a = ControlMessage::EchoRequest(EchoRequest { identifier: 1 }).to_bytes();
    let b = ControlMessage::EchoRequest(EchoRequest { identifier: 2 }).to_bytes();
    let mut f = Framer::new();
    let mut input: &[u8] = &a[..10];
    assert_eq!(f.next_message(&mut input).unwrap(), None);
    assert!(input.is_empty());
    let mut both = a[10..].to_vec();
    both.extend_from_slice(&b);
    let mut input: &[u8] = &both;
    assert!(f.next_message(&mut input).unwrap().is_some());
    assert_eq!(input.len(), b.len());
    assert!(f.next_message(&mut input).unwrap().is_some());
    assert_eq!(f.next_message(&mut input).unwrap(), None);
}
