#![no_main]
//! Bytes → leaf and up to 5 intermediate certificates (u16 big-endian length prefixes) →
//! `TrustStore::verify` against the test CAs; the same bytes as a PEM bundle.

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sluice_ike::cert::TrustStore;
use sluice_ike::identity::{Identification, id_type};

/// 2026-01-01T00:00:00Z: the test certificates are valid then.
const NOW: u64 = 1_767_225_600;

fn store() -> &'static TrustStore {
    static STORE: OnceLock<TrustStore> = OnceLock::new();
    STORE.get_or_init(|| {
        let mut pem = include_bytes!("../../dataplane/ike/tests/certs/ca.pem").to_vec();
        pem.extend_from_slice(include_bytes!("../../dataplane/ike/tests/certs/int.pem"));
        pem.extend_from_slice(include_bytes!("../../dataplane/ike/tests/certs/ec-ca.pem"));
        TrustStore::from_pem(&pem).expect("test CAs load")
    })
}

fuzz_target!(|data: &[u8]| {
    let mut certs = Vec::new();
    let mut rest = data;
    while certs.len() < 6 {
        let Some((len, tail)) = rest.split_first_chunk::<2>() else {
            break;
        };
        let len = usize::from(u16::from_be_bytes(*len)).min(tail.len());
        let (cert, tail) = tail.split_at(len);
        certs.push(cert);
        rest = tail;
    }
    if let Some((leaf, intermediates)) = certs.split_first() {
        if let Ok(peer) = store().verify(leaf, intermediates, NOW) {
            let _ = peer.subject_display();
            let _ = peer.verify_hash_signature(rest, rest);
            for t in [
                id_type::DER_ASN1_DN,
                id_type::FQDN,
                id_type::USER_FQDN,
                id_type::IPV4_ADDR,
            ] {
                let id = Identification {
                    id_type: t,
                    protocol: 0,
                    port: 0,
                    data: rest.to_vec(),
                };
                let _ = peer.matches_id(&id);
            }
        }
    }
    let _ = TrustStore::from_pem(data);
});
