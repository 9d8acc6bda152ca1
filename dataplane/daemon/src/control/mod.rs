//! The control planes, one per protocol: PPTP control connections (RFC 2637 §3), the L2TP
//! network server (RFC 2661) and the IKEv1 responder (RFC 2409). Each drives its sans-IO
//! engine and creates or closes the data path's links.

pub mod ike;
pub mod lns;
pub mod pptp;
