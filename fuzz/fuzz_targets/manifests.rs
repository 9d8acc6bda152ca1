//! Arbitrary bytes → YAML manifests → compile (and the bad-user policy): errors are fine,
//! panics and hangs are not.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(manifests) = sluice_api::parse_manifests(text)
    {
        let _ = sluice_api::compile_from_manifests(&manifests, None);
        // The bad-user policy: compiles again without each user that fails.
        let _ = sluice_api::compile_manifests(&manifests, None);
        for gw in &manifests.gateways {
            let _ = sluice_api::compile(gw, &manifests.users, &manifests.secrets);
        }
    }
});
