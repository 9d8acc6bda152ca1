//! Received LCP, authentication and IPCP packets; Code- and Protocol-Reject (RFC 1661 §5.6, §5.7).

use std::time::{Duration, Instant};

use super::{DownReason, PROTO_REJ_PER_SEC, Phase, Ppp};
use crate::error::{Error, Layer};
use crate::frame::{ControlPacket, code, proto};

impl Ppp {
    // ----- input dispatch -----

    pub(super) fn handle_lcp(&mut self, now: Instant, info: &[u8]) -> Result<(), Error> {
        let pkt = ControlPacket::parse(info, Layer::Lcp)?;
        if self.phase == Phase::Terminate {
            // Only the terminate exchange matters now.
            if matches!(pkt.code, code::TERM_REQ | code::TERM_ACK) {
                let ev = self
                    .lcp_fsm
                    .handle_packet(now, &pkt, &mut self.lcp, &mut self.tx)?;
                self.on_lcp_event(now, ev, pkt.code);
            }
            return Ok(());
        }
        match pkt.code {
            1..=7 => {
                let ev = self
                    .lcp_fsm
                    .handle_packet(now, &pkt, &mut self.lcp, &mut self.tx)?;
                self.on_lcp_event(now, ev, pkt.code);
                Ok(())
            }
            code::PROTO_REJ => {
                if !self.lcp_fsm.is_opened() {
                    return Err(Error::unexpected(
                        Layer::Lcp,
                        "Protocol-Reject before Opened",
                    ));
                }
                let rejected = pkt
                    .data
                    .first_chunk::<2>()
                    .map(|b| u16::from_be_bytes(*b))
                    .ok_or(Error::malformed(Layer::Lcp, "short Protocol-Reject"))?;
                match rejected {
                    proto::CCP => {
                        let ev = self.ccp_fsm.finish();
                        self.on_ccp_event(now, ev);
                    }
                    proto::IPCP => self.close_link(
                        now,
                        DownReason::NegotiationFailed("peer rejected IPCP".to_owned()),
                    ),
                    proto::COMP if self.mppe_tx.is_some() => self.close_link(
                        now,
                        DownReason::NegotiationFailed("peer rejected MPPE data".to_owned()),
                    ),
                    _ => {}
                }
                Ok(())
            }
            code::ECHO_REQ => {
                if !self.lcp_fsm.is_opened() {
                    return Ok(());
                }
                let magic = pkt
                    .data
                    .first_chunk::<4>()
                    .map(|b| u32::from_be_bytes(*b))
                    .ok_or(Error::malformed(Layer::Lcp, "short Echo-Request"))?;
                if magic == self.lcp.magic && magic != 0 {
                    return Err(Error::unexpected(
                        Layer::Lcp,
                        "Echo-Request with our magic (loop)",
                    ));
                }
                let max = usize::from(self.lcp.peer_mru).saturating_sub(4);
                let mut data = Vec::with_capacity(pkt.data.len().min(max));
                data.extend_from_slice(&self.lcp.magic.to_be_bytes());
                let rest = pkt.data.get(4..).unwrap_or_default();
                data.extend_from_slice(
                    rest.get(..rest.len().min(max.saturating_sub(4)))
                        .unwrap_or_default(),
                );
                self.tx.control(proto::LCP, code::ECHO_REPLY, pkt.id, &data);
                Ok(())
            }
            code::ECHO_REPLY | code::DISCARD_REQ | code::IDENTIFICATION | code::TIME_REMAINING => {
                Ok(())
            }
            _ => {
                self.code_reject(proto::LCP, info);
                Err(Error::unexpected(Layer::Lcp, "unknown code"))
            }
        }
    }

    pub(super) fn code_reject(&mut self, protocol: u16, info: &[u8]) {
        let max = usize::from(self.lcp.peer_mru).saturating_sub(4);
        let rejected = info.get(..info.len().min(max)).unwrap_or_default();
        let id = self.next_aux_id();
        self.tx.control(protocol, code::CODE_REJ, id, rejected);
    }

    pub(super) fn protocol_reject(&mut self, now: Instant, protocol: u16, info: &[u8]) {
        if !self.lcp_fsm.is_opened() || self.phase == Phase::Terminate {
            return;
        }
        if now.saturating_duration_since(self.prej_window) >= Duration::from_secs(1) {
            self.prej_window = now;
            self.prej_count = 0;
        }
        if self.prej_count >= PROTO_REJ_PER_SEC {
            return;
        }
        self.prej_count += 1;
        let max = usize::from(self.lcp.peer_mru).saturating_sub(6);
        let mut data = Vec::with_capacity(2 + info.len().min(max));
        data.extend_from_slice(&protocol.to_be_bytes());
        data.extend_from_slice(info.get(..info.len().min(max)).unwrap_or_default());
        let id = self.next_aux_id();
        self.tx.control(proto::LCP, code::PROTO_REJ, id, &data);
    }

    pub(super) fn handle_auth(
        &mut self,
        now: Instant,
        protocol: u16,
        info: &[u8],
    ) -> Result<(), Error> {
        let pkt = ControlPacket::parse(info, Layer::Auth)?;
        if self.phase != Phase::Authenticate
            && self.phase != Phase::Network
            && self.phase != Phase::Running
        {
            return Err(Error::unexpected(
                Layer::Auth,
                "authentication packet outside its phase",
            ));
        }
        let r = if let Some(a) = &mut self.server_auth {
            a.handle_packet(protocol, &pkt, &mut self.tx)?
        } else if let Some(a) = &mut self.client_auth {
            a.handle_packet(now, protocol, &pkt, &mut self.rng, &mut self.tx)?
        } else {
            return Err(Error::unexpected(
                Layer::Auth,
                "no authentication was negotiated",
            ));
        };
        self.on_auth_result(now, r);
        Ok(())
    }

    pub(super) fn in_network(&self) -> bool {
        matches!(self.phase, Phase::Network | Phase::Running)
    }

    pub(super) fn handle_ipcp(&mut self, now: Instant, info: &[u8]) -> Result<(), Error> {
        let pkt = ControlPacket::parse(info, Layer::Ipcp)?;
        if !self.in_network() {
            return Ok(()); // RFC 1661 §3.4: NCP packets before the Network phase are discarded
        }
        if !(1..=7).contains(&pkt.code) {
            self.code_reject(proto::IPCP, info);
            return Err(Error::unexpected(Layer::Ipcp, "unknown code"));
        }
        self.open_deferred_ipcp(now);
        let ev = self
            .ipcp_fsm
            .handle_packet(now, &pkt, &mut self.ipcp, &mut self.tx)?;
        self.on_ipcp_event(now, ev);
        Ok(())
    }
}
