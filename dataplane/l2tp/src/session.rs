//! Per-session state kept by a tunnel (RFC 2661 §7.4.1 LAC, §7.4.2 LNS incoming calls).

use std::time::Instant;

use crate::endpoint::SessionState;

/// A session with a local Session ID (LNS: after `accept_session`; LAC: after `open_session`).
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub local_id: u16,
    /// The peer's Session ID (0 until known: LAC before ICRP).
    pub peer_id: u16,
    pub state: SessionState,
    pub serial: u32,
    /// Setup must complete before this (wait-reply / wait-connect).
    pub deadline: Option<Instant>,
    pub sequencing: bool,
    pub tx_connect_speed: u32,
}

/// LNS: an ICRQ reported as `SessionRequested`, not answered yet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PendingCall {
    pub serial: u32,
    pub deadline: Option<Instant>,
}
