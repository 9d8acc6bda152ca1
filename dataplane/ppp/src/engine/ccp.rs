//! CCP (RFC 1962) and MPPE (RFC 3078): CCP input, Reset-Request/Ack, MPPE receive, CCP events.

use std::time::Instant;

use super::{CcpMode, DownReason, HeldResetAck, Phase, Ppp, RESET_ACK_HOLD, RESET_REQ_INTERVAL};
use crate::config::{Encoding, EncryptionPolicy};
use crate::error::{Error, Layer};
use crate::frame::{ControlPacket, code, proto};
use crate::fsm::LayerEvent;
use crate::mppe::{MppeError, MppeRx, MppeTx};

impl Ppp {
    // ----- input dispatch -----

    pub(super) fn handle_ccp(&mut self, now: Instant, info: &[u8]) -> Result<(), Error> {
        let pkt = ControlPacket::parse(info, Layer::Ccp)?;
        if !self.in_network() {
            return Ok(());
        }
        if self.ccp_mode == CcpMode::Disabled {
            self.protocol_reject(now, proto::CCP, info);
            return Ok(());
        }
        match pkt.code {
            1..=7 => {
                let ev = self
                    .ccp_fsm
                    .handle_packet(now, &pkt, &mut self.ccp, &mut self.tx)?;
                self.on_ccp_event(now, ev);
                Ok(())
            }
            code::RESET_REQ => {
                if let Some(tx) = &mut self.mppe_tx {
                    // RFC 1962 §2: reset, then acknowledge. The Ack is held for the flushed
                    // packet (`encapsulate_ip`) or `RESET_ACK_HOLD`; a repeated Request while it
                    // is held is answered once, with the latest Identifier (pppd matches it).
                    tx.reset_requested();
                    self.resets.received += 1;
                    let until = self.reset_ack.map_or(now + RESET_ACK_HOLD, |a| a.until);
                    self.reset_ack = Some(HeldResetAck { id: pkt.id, until });
                }
                Ok(())
            }
            code::RESET_ACK => Ok(()),
            _ => {
                self.code_reject(proto::CCP, info);
                Err(Error::unexpected(Layer::Ccp, "unknown code"))
            }
        }
    }

    pub(super) fn handle_mppe<'a>(
        &mut self,
        now: Instant,
        info: &'a mut [u8],
    ) -> Result<Option<&'a [u8]>, Error> {
        let Some(rx) = self.mppe_rx.as_mut() else {
            return Err(Error::unexpected(
                Layer::Mppe,
                "MPPE data without CCP Opened",
            ));
        };
        match rx.decrypt(info) {
            Ok(d) => {
                if self.up && d.protocol == proto::IPV4 {
                    Ok(Some(d.data))
                } else {
                    Ok(None)
                }
            }
            Err(e) => {
                let send_reset = match e {
                    MppeError::Lost { .. } => true,
                    MppeError::Discarding => self
                        .last_reset_req
                        .is_none_or(|t| now.saturating_duration_since(t) >= RESET_REQ_INTERVAL),
                    _ => false,
                };
                if send_reset {
                    self.last_reset_req = Some(now);
                    self.resets.sent += 1;
                    let id = self.next_aux_id();
                    self.tx.control(proto::CCP, code::RESET_REQ, id, &[]);
                }
                Err(e.into())
            }
        }
    }

    // ----- layer events -----

    pub(super) fn on_ccp_event(&mut self, now: Instant, ev: Option<LayerEvent>) {
        match ev {
            None => {}
            Some(LayerEvent::Up) => {
                let (Some(choice), Some(keys)) = (self.ccp.agreed(), self.keys) else {
                    self.close_link(
                        now,
                        DownReason::NegotiationFailed(
                            "MPPE options differ per direction".to_owned(),
                        ),
                    );
                    return;
                };
                let stateful = !choice.stateless;
                self.mppe_tx = Some(MppeTx::new(keys.send, choice.bits, stateful));
                self.mppe_rx = Some(MppeRx::new(keys.recv, choice.bits, stateful));
                self.encoding = Encoding::Mppe {
                    bits: choice.bits.bits(),
                    stateful,
                };
                self.open_deferred_ipcp(now);
                self.check_up(now);
            }
            Some(LayerEvent::Down) => self.close_link(
                now,
                DownReason::NegotiationFailed("CCP went down".to_owned()),
            ),
            Some(LayerEvent::Finished(_)) => {
                if self.phase == Phase::Terminate || self.phase == Phase::Dead {
                    return;
                }
                self.ccp_failed = true;
                if self.policy == EncryptionPolicy::Require {
                    self.close_link(now, DownReason::EncryptionRequired);
                } else {
                    self.check_up(now);
                }
            }
        }
    }
}
