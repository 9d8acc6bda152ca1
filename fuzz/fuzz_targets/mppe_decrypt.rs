#![no_main]
//! MPPE receive path (stateless and stateful) on arbitrary packets.

use libfuzzer_sys::fuzz_target;
use sluice_ppp::mppe::{KeyBits, MppeRx, MppeTx};

fuzz_target!(|data: &[u8]| {
    let key = [0x42u8; 16];
    for stateful in [false, true] {
        let mut rx = MppeRx::new(key, KeyBits::B128, stateful);
        let mut tx = MppeTx::new(key, KeyBits::B128, stateful);
        for chunk in data.chunks(64) {
            let mut p = chunk.to_vec();
            let _ = rx.decrypt(&mut p);
            // Interleave a genuine packet: the receiver must still accept it or report loss.
            let mut good = Vec::new();
            tx.encrypt(0x0021, &[0x45, 0, 0, 20], &mut good);
            let _ = rx.decrypt(&mut good);
        }
    }
});
