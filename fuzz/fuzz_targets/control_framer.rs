#![no_main]
//! Bytes → framer (in chunks whose sizes come from the input) → messages → re-emit.

use libfuzzer_sys::fuzz_target;
use sluice_pptp::Framer;
use sluice_pptp::control::{ControlMessage, MAX_MESSAGE_LEN};

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let mut framer = Framer::new();
    for piece in rest.chunks(chunk) {
        match framer.push(piece) {
            Ok(msgs) => {
                for m in msgs {
                    let bytes = m.to_bytes();
                    assert_eq!(bytes.len(), m.buffer_len());
                    let again =
                        ControlMessage::parse_bytes(&bytes).expect("re-parse of emitted message");
                    assert_eq!(again.message_type(), m.message_type());
                }
            }
            Err(_) => break,
        }
        assert!(framer.buffered() <= MAX_MESSAGE_LEN);
    }
});
