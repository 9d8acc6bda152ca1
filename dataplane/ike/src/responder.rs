//! The IKEv1 responder: Main Mode with pre-shared keys (RFC 2409 §5.4), Quick Mode for
//! transport-mode ESP protecting L2TP (§5.5), Informational exchanges (§5.7: DELETE,
//! INITIAL-CONTACT, notify errors), DPD (RFC 3706) and NAT-T (RFC 3947).
//!
//! State is keyed by our responder cookie, and every IKE SA remembers the client's address
//! *and port*, so any number of clients behind one NAT get their own IKE SA and ESP SAs. An
//! IKE SA follows its client when an authenticated message arrives from a new address (the
//! float to UDP 4500, or a NAT rebinding).
//!
//! Sans-IO: [`Responder::handle_input`] takes a UDP payload exactly as received on port 500 or
//! on the NAT-T port (with its non-ESP marker), [`Responder::poll_transmit`] yields UDP
//! payloads exactly as to be sent, [`Responder::poll_event`] the SA changes the data plane
//! must apply, and [`Responder::poll_timeout`] / [`Responder::handle_timeout`] drive timers.

pub use crate::endpoint::{
    ChildKeys, ChildSa, DownReason, DropReason, Event, IkeSaId, Responder, SaChange, Stats,
    Transmit,
};
