#![no_main]
//! Bytes → L2TP header → AVP iterator → control message parse (with and without a secret)
//! → re-emit → re-parse. Data headers too.

use libfuzzer_sys::fuzz_target;
use sluice_l2tp::avp::AvpIter;
use sluice_l2tp::{ControlMessage, DataHeader, Packet};

fuzz_target!(|data: &[u8]| {
    let _ = DataHeader::parse(data).map(|d| assert!(d.payload.end <= data.len()));
    let Ok(packet) = Packet::new_checked(data) else {
        return;
    };
    let body = packet.payload();
    assert!(body.len() <= data.len());
    for avp in AvpIter::new(body) {
        match avp {
            Ok(a) => assert!(a.value.len() <= body.len()),
            Err(_) => break,
        }
    }
    for secret in [None, Some(&b"fuzz-secret"[..])] {
        if let Ok(m) = ControlMessage::parse(body, secret) {
            let d = m.to_datagram(packet.tunnel_id(), packet.session_id(), 0, 0, None);
            // Invalid UTF-8 strings are stored lossily (and may grow): compare types only, and
            // only when the re-emitted message still fits a Length field.
            if d.len() <= usize::from(u16::MAX) {
                let p = Packet::new_checked(d.as_slice()).expect("emitted header parses");
                let again =
                    ControlMessage::parse(p.payload(), None).expect("re-parse of emitted message");
                assert_eq!(again.message_type, m.message_type);
                if d.len() < 2048 && m.avps.host_name.as_ref().is_none_or(|h| h.is_ascii()) {
                    let ascii = |o: &Option<String>| o.as_ref().is_none_or(|s| s.is_ascii());
                    if ascii(&m.avps.vendor_name)
                        && ascii(&m.avps.calling_number)
                        && ascii(&m.avps.called_number)
                        && ascii(&m.avps.sub_address)
                        && m.avps
                            .result_code
                            .as_ref()
                            .is_none_or(|r| r.message.is_ascii())
                        && m.avps
                            .q931_cause
                            .as_ref()
                            .is_none_or(|q| q.advisory.is_ascii())
                    {
                        assert_eq!(again, m);
                    }
                }
            }
        }
    }
});
