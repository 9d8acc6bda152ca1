//! Helpers shared by the unit tests.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

/// Decodes a hex string (test constants).
pub fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
