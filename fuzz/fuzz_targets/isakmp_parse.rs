#![no_main]
//! Bytes → ISAKMP header → payload chain → every payload body parser (SA/proposal/transform
//! with the IKE and ESP interpretations, ID, NAT-OA, N, D) → re-emit → re-parse.

use libfuzzer_sys::fuzz_target;
use sluice_ike::header::Header;
use sluice_ike::identity::{Identification, parse_nat_oa};
use sluice_ike::notify::{Delete, Notify};
use sluice_ike::payload::{kind, parse_chain};
use sluice_ike::sa::{EspTransform, IkeTransform, SaPayload};

fuzz_target!(|data: &[u8]| {
    let Ok((hdr, body)) = Header::parse(data) else {
        return;
    };
    assert!(body.len() <= data.len());
    let Ok(chain) = parse_chain(hdr.next_payload, body) else {
        return;
    };
    for p in &chain {
        assert!(p.end <= body.len() && p.start < p.end);
        match p.kind {
            kind::SA => {
                if let Ok(sa) = SaPayload::parse(p.body) {
                    for prop in &sa.proposals {
                        for t in &prop.transforms {
                            let _ = IkeTransform::from_transform(t);
                            let _ = EspTransform::from_transform(t);
                        }
                    }
                    let again = SaPayload::parse(&sa.emit()).expect("emitted SA parses");
                    assert_eq!(again, sa);
                }
            }
            kind::ID => {
                if let Ok(id) = Identification::parse(p.body) {
                    let _ = id.single_address();
                    let _ = id.display();
                    assert_eq!(Identification::parse(&id.emit()).expect("re-parse"), id);
                }
            }
            kind::N => {
                if let Ok(n) = Notify::parse(p.body) {
                    assert_eq!(Notify::parse(&n.emit()).expect("re-parse"), n);
                }
            }
            kind::D => {
                if let Ok(d) = Delete::parse(p.body) {
                    assert_eq!(Delete::parse(&d.emit()).expect("re-parse"), d);
                }
            }
            kind::NAT_OA | kind::NAT_OA_DRAFT => {
                let _ = parse_nat_oa(p.body);
            }
            _ => {}
        }
    }
});
