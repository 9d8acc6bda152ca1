//! Whatever the operator's stream carries: a `GatewayConfig` is decoded and converted to the
//! data plane's typed configuration, or rejected with an error; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = sluice_proto::v1::GatewayConfig::decode(data) {
        let _ = sluice_dataplane::config::Runtime::from_proto(&c);
    }
});
