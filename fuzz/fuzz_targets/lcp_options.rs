#![no_main]
//! The control-packet and option parsers, then the same bytes as an LCP frame into an engine.

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use sluice_ppp::frame::{self, ControlPacket};
use sluice_ppp::{ClientConfig, Layer, Ppp};

fuzz_target!(|data: &[u8]| {
    if let Ok(pkt) = ControlPacket::parse(data, Layer::Lcp) {
        if frame::check_options(pkt.data, Layer::Lcp).is_ok() {
            let n = frame::options(pkt.data).count();
            assert!(n <= pkt.data.len() / 2);
        }
    }
    let _ = frame::check_options(data, Layer::Lcp);
    for o in frame::options(data) {
        assert!(o.data.len() <= 253);
    }
    let now = Instant::now();
    let mut ppp = Ppp::client(ClientConfig::default(), now, [3; 32]);
    let mut f = vec![0xFF, 0x03, 0xC0, 0x21];
    f.extend_from_slice(data);
    let _ = ppp.handle_input(now, &mut f);
    while ppp.poll_transmit().is_some() {}
});
