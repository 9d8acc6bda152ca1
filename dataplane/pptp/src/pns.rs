//! PNS (client) side of a PPTP control connection (RFC 2637 §2, §3.1–§3.2), sans-IO.
//!
//! Used by the in-repo test client and load generator. [`Pns::new`] queues SCCRQ; calls are
//! opened with Outgoing-Call-Request. Incoming-Call-Requests from the PAC are refused with
//! Incoming-Call-Reply "Do Not Accept". Messages only a PNS may send (SCCRQ, OCRQ,
//! Call-Clear-Request, Incoming-Call-Reply) arriving from the PAC are protocol errors.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::control::{
    BearerCapabilities, BearerType, CallClearRequest, CdnResult, ControlMessage, EchoReply,
    EchoRequest, FramingCapabilities, FramingType, GeneralError, Icrp, IcrpResult, OcrpResult,
    Ocrq, OkResult, PROTOCOL_VERSION, SccrpResult, Sccrq, SetLinkInfo, StopCcrp, StopCcrq,
    StopReason,
};
use crate::error::Error;
use crate::framer::Framer;
use crate::link::{Keepalive, KeepaliveAction, Outbox, deadline, earliest, expired};

/// How long [`Pns::shutdown`] waits for Stop-Control-Connection-Reply.
pub const STOP_REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// PNS configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PnsConfig {
    /// Host name sent in SCCRQ.
    pub hostname: String,
    /// Vendor string sent in SCCRQ.
    pub vendor: String,
    /// Firmware revision sent in SCCRQ.
    pub firmware_revision: u16,
    /// SCCRP must arrive within this time.
    pub setup_timeout: Duration,
    /// Idle time before we send an Echo-Request.
    pub echo_interval: Duration,
    /// Time to wait for any message after our Echo-Request before closing.
    pub echo_timeout: Duration,
    /// OCRP (after `open_call`) or Call-Disconnect-Notify (after `clear_call`) must arrive within this.
    pub call_timeout: Duration,
    /// Minimum BPS in OCRQ.
    pub min_bps: u32,
    /// Maximum BPS in OCRQ.
    pub max_bps: u32,
    /// Packet processing delay in OCRQ.
    pub processing_delay: u16,
    /// Phone number in OCRQ.
    pub phone: String,
}

impl Default for PnsConfig {
    fn default() -> Self {
        Self {
            hostname: "sluice-client".into(),
            vendor: "Sluice".into(),
            firmware_revision: 1,
            setup_timeout: Duration::from_secs(10),
            echo_interval: Duration::from_secs(60),
            echo_timeout: Duration::from_secs(60),
            call_timeout: Duration::from_secs(30),
            min_bps: 2400,
            max_bps: 10_000_000,
            processing_delay: 0,
            phone: String::new(),
        }
    }
}

/// Something the client must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PnsEvent {
    /// SCCRP Success received.
    Established {
        /// PAC's Host Name.
        peer_hostname: String,
        /// PAC's Vendor String.
        peer_vendor: String,
    },
    /// OCRP Connected: GRE may flow.
    CallConnected {
        /// Our Call ID.
        local_call_id: u16,
        /// The PAC's Call ID (goes into GRE headers we send).
        peer_call_id: u16,
        /// The PAC's receive window.
        peer_recv_window: u16,
    },
    /// OCRP with another result, or no OCRP in time ([`OcrpResult::Timeout`]).
    CallFailed {
        /// Our Call ID.
        local_call_id: u16,
        /// Result Code.
        result: OcrpResult,
        /// Error Code.
        error: GeneralError,
    },
    /// The call is gone (Call-Disconnect-Notify, or our clear completed/timed out).
    CallDisconnected {
        /// Our Call ID.
        local_call_id: u16,
        /// Result Code of the Call-Disconnect-Notify.
        result: CdnResult,
        /// Call Statistics text, or a local explanation.
        cause: String,
    },
    /// Terminal: close TCP; all calls are gone.
    Closed {
        /// Human-readable cause.
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallState {
    Dialing {
        deadline: Option<Instant>,
    },
    Connected {
        peer_call_id: u16,
    },
    Clearing {
        peer_call_id: u16,
        deadline: Option<Instant>,
    },
}

#[derive(Debug, Clone, Copy)]
struct Call {
    local_call_id: u16,
    state: CallState,
}

impl Call {
    fn peer_call_id(&self) -> Option<u16> {
        match self.state {
            CallState::Connected { peer_call_id } | CallState::Clearing { peer_call_id, .. } => {
                Some(peer_call_id)
            }
            CallState::Dialing { .. } => None,
        }
    }
    fn deadline(&self) -> Option<Instant> {
        match self.state {
            CallState::Dialing { deadline } | CallState::Clearing { deadline, .. } => deadline,
            CallState::Connected { .. } => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    WaitSccrp { deadline: Option<Instant> },
    Established,
    Stopping { deadline: Option<Instant> },
    Closed,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::WaitSccrp { .. } => "wait-sccrp",
            State::Established => "established",
            State::Stopping { .. } => "stopping",
            State::Closed => "closed",
        }
    }
}

/// A PNS-role control connection.
#[derive(Debug)]
pub struct Pns {
    cfg: PnsConfig,
    state: State,
    framer: Framer,
    outbox: Outbox,
    events: VecDeque<PnsEvent>,
    keepalive: Keepalive,
    calls: Vec<Call>,
    next_serial: u16,
}

impl Pns {
    /// A connection whose TCP just connected at `now`; SCCRQ is queued.
    pub fn new(cfg: PnsConfig, now: Instant) -> Self {
        let mut outbox = Outbox::default();
        let sccrq = ControlMessage::Sccrq(Sccrq {
            protocol_version: PROTOCOL_VERSION,
            framing_capabilities: FramingCapabilities::ALL,
            bearer_capabilities: BearerCapabilities::ALL,
            maximum_channels: 0,
            firmware_revision: cfg.firmware_revision,
            host_name: cfg.hostname.clone(),
            vendor: cfg.vendor.clone(),
        });
        // An empty outbox always has room for one message.
        let _ = outbox.push(&sccrq);
        Self {
            state: State::WaitSccrp {
                deadline: deadline(now, cfg.setup_timeout),
            },
            keepalive: Keepalive::new(now, cfg.echo_interval, cfg.echo_timeout),
            cfg,
            framer: Framer::new(),
            outbox,
            events: VecDeque::new(),
            calls: Vec::new(),
            next_serial: 1,
        }
    }

    /// Feeds bytes read from TCP. `Err` is fatal (engine closed, `Closed` event queued).
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) -> Result<(), Error> {
        if self.state == State::Closed {
            return Err(Error::Closed);
        }
        let mut input = bytes;
        loop {
            let result = match self.framer.next_message(&mut input) {
                Ok(Some(msg)) => self.on_message(now, msg),
                Ok(None) => return Ok(()),
                Err(e) => Err(Error::from(e)),
            };
            if let Err(e) = result {
                self.close(e.to_string());
                return Err(e);
            }
            if self.state == State::Closed {
                return Ok(());
            }
        }
    }

    fn on_message(&mut self, now: Instant, msg: ControlMessage) -> Result<(), Error> {
        let unexpected = |state: State, msg: &ControlMessage| Error::Unexpected {
            message: msg.message_type(),
            state: state.name(),
        };
        match self.state {
            State::WaitSccrp { .. } => match msg {
                ControlMessage::Sccrp(rep) => {
                    if rep.result != SccrpResult::Success
                        || rep.protocol_version != PROTOCOL_VERSION
                    {
                        return Err(Error::Refused(format!(
                            "result {:?}, error {:?}, version {:#06x}",
                            rep.result, rep.error, rep.protocol_version
                        )));
                    }
                    self.state = State::Established;
                    self.keepalive.on_rx(now);
                    self.events.push_back(PnsEvent::Established {
                        peer_hostname: rep.host_name,
                        peer_vendor: rep.vendor,
                    });
                    Ok(())
                }
                other => Err(unexpected(self.state, &other)),
            },
            State::Established => {
                self.keepalive.on_rx(now);
                match msg {
                    ControlMessage::EchoRequest(req) => {
                        self.outbox.push(&ControlMessage::EchoReply(EchoReply {
                            identifier: req.identifier,
                            result: OkResult::Ok,
                            error: GeneralError::None,
                        }))
                    }
                    ControlMessage::StopCcrq(req) => {
                        self.outbox.push(&stop_reply())?;
                        self.close(format!(
                            "peer sent Stop-Control-Connection-Request ({:?})",
                            req.reason
                        ));
                        Ok(())
                    }
                    ControlMessage::Ocrp(rep) => {
                        let pos = self.calls.iter().position(|c| {
                            c.local_call_id == rep.peer_call_id
                                && matches!(c.state, CallState::Dialing { .. })
                        });
                        if let Some(pos) = pos {
                            if rep.result == OcrpResult::Connected {
                                if let Some(call) = self.calls.get_mut(pos) {
                                    call.state = CallState::Connected {
                                        peer_call_id: rep.call_id,
                                    };
                                }
                                self.events.push_back(PnsEvent::CallConnected {
                                    local_call_id: rep.peer_call_id,
                                    peer_call_id: rep.call_id,
                                    peer_recv_window: rep.recv_window,
                                });
                            } else {
                                self.calls.swap_remove(pos);
                                self.events.push_back(PnsEvent::CallFailed {
                                    local_call_id: rep.peer_call_id,
                                    result: rep.result,
                                    error: rep.error,
                                });
                            }
                        }
                        Ok(())
                    }
                    ControlMessage::CallDisconnectNotify(cdn) => {
                        if let Some(pos) = self
                            .calls
                            .iter()
                            .position(|c| c.peer_call_id() == Some(cdn.call_id))
                        {
                            let call = self.calls.swap_remove(pos);
                            self.events.push_back(PnsEvent::CallDisconnected {
                                local_call_id: call.local_call_id,
                                result: cdn.result,
                                cause: cdn.call_statistics,
                            });
                        }
                        Ok(())
                    }
                    ControlMessage::Icrq(req) => self.outbox.push(&ControlMessage::Icrp(Icrp {
                        call_id: 0,
                        peer_call_id: req.call_id,
                        result: IcrpResult::DoNotAccept,
                        error: GeneralError::None,
                        recv_window: 0,
                        transmit_delay: 0,
                    })),
                    ControlMessage::EchoReply(_)
                    | ControlMessage::StopCcrp(_)
                    | ControlMessage::Iccn(_)
                    | ControlMessage::WanErrorNotify(_)
                    | ControlMessage::SetLinkInfo(_) => Ok(()),
                    other @ (ControlMessage::Sccrq(_)
                    | ControlMessage::Sccrp(_)
                    | ControlMessage::Ocrq(_)
                    | ControlMessage::Icrp(_)
                    | ControlMessage::CallClearRequest(_)) => Err(unexpected(self.state, &other)),
                }
            }
            State::Stopping { .. } => match msg {
                ControlMessage::StopCcrp(_) => {
                    self.close("control connection stopped".into());
                    Ok(())
                }
                ControlMessage::StopCcrq(_) => {
                    self.outbox.push(&stop_reply())?;
                    self.close("control connection stopped (both sides)".into());
                    Ok(())
                }
                _ => Ok(()),
            },
            State::Closed => Err(Error::Closed),
        }
    }

    fn close(&mut self, reason: String) {
        if self.state != State::Closed {
            self.state = State::Closed;
            self.calls.clear();
            self.events.push_back(PnsEvent::Closed { reason });
        }
    }

    fn push_or_close(&mut self, msg: &ControlMessage) -> Result<(), Error> {
        let r = self.outbox.push(msg);
        if let Err(e) = &r {
            self.close(e.to_string());
        }
        r
    }

    fn require_established(&self) -> Result<(), Error> {
        match self.state {
            State::Established => Ok(()),
            State::Closed => Err(Error::Closed),
            _ => Err(Error::NotEstablished),
        }
    }

    /// Sends Outgoing-Call-Request for `local_call_id` (our GRE receive id) and returns its serial.
    pub fn open_call(
        &mut self,
        now: Instant,
        local_call_id: u16,
        recv_window: u16,
    ) -> Result<u16, Error> {
        self.require_established()?;
        if self.calls.iter().any(|c| c.local_call_id == local_call_id) {
            return Err(Error::CallIdInUse(local_call_id));
        }
        let serial = self.next_serial;
        self.next_serial = self.next_serial.wrapping_add(1);
        self.push_or_close(&ControlMessage::Ocrq(Ocrq {
            call_id: local_call_id,
            call_serial_number: serial,
            minimum_bps: self.cfg.min_bps,
            maximum_bps: self.cfg.max_bps,
            bearer_type: BearerType::Any,
            framing_type: FramingType::Any,
            recv_window,
            processing_delay: self.cfg.processing_delay,
            phone_number: self.cfg.phone.clone(),
            subaddress: String::new(),
        }))?;
        self.calls.push(Call {
            local_call_id,
            state: CallState::Dialing {
                deadline: deadline(now, self.cfg.call_timeout),
            },
        });
        Ok(serial)
    }

    /// Sends Call-Clear-Request. A connected call ends with `CallDisconnected` when the PAC's
    /// Call-Disconnect-Notify arrives (or after `call_timeout`); a call still dialing ends at once.
    pub fn clear_call(&mut self, now: Instant, local_call_id: u16) -> Result<(), Error> {
        self.require_established()?;
        let pos = self
            .calls
            .iter()
            .position(|c| c.local_call_id == local_call_id)
            .ok_or(Error::UnknownCall(local_call_id))?;
        let call = self
            .calls
            .get(pos)
            .copied()
            .ok_or(Error::UnknownCall(local_call_id))?;
        match call.state {
            CallState::Clearing { .. } => return Ok(()),
            CallState::Dialing { .. } => {
                self.push_or_close(&ControlMessage::CallClearRequest(CallClearRequest {
                    call_id: local_call_id,
                }))?;
                self.calls.swap_remove(pos);
                self.events.push_back(PnsEvent::CallDisconnected {
                    local_call_id,
                    result: CdnResult::Request,
                    cause: "cleared while dialing".into(),
                });
            }
            CallState::Connected { peer_call_id } => {
                self.push_or_close(&ControlMessage::CallClearRequest(CallClearRequest {
                    call_id: local_call_id,
                }))?;
                if let Some(c) = self.calls.get_mut(pos) {
                    c.state = CallState::Clearing {
                        peer_call_id,
                        deadline: deadline(now, self.cfg.call_timeout),
                    };
                }
            }
        }
        Ok(())
    }

    /// Sends Set-Link-Info for a connected call.
    pub fn set_link_info(
        &mut self,
        now: Instant,
        local_call_id: u16,
        send_accm: u32,
        recv_accm: u32,
    ) -> Result<(), Error> {
        let _ = now;
        self.require_established()?;
        let peer_call_id = self
            .calls
            .iter()
            .find(|c| c.local_call_id == local_call_id)
            .and_then(Call::peer_call_id)
            .ok_or(Error::UnknownCall(local_call_id))?;
        self.push_or_close(&ControlMessage::SetLinkInfo(SetLinkInfo {
            peer_call_id,
            send_accm,
            recv_accm,
        }))
    }

    /// Sends Stop-Control-Connection-Request and waits (at most [`STOP_REPLY_TIMEOUT`]) for the reply.
    pub fn shutdown(&mut self, now: Instant) {
        match self.state {
            State::WaitSccrp { .. } => self.close("shut down before establishment".into()),
            State::Established => {
                self.calls.clear();
                if self
                    .push_or_close(&ControlMessage::StopCcrq(StopCcrq {
                        reason: StopReason::None,
                    }))
                    .is_ok()
                {
                    self.state = State::Stopping {
                        deadline: deadline(now, STOP_REPLY_TIMEOUT),
                    };
                }
            }
            State::Stopping { .. } | State::Closed => {}
        }
    }

    /// Processes expired timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::WaitSccrp { deadline } if expired(deadline, now) => {
                self.close("no Start-Control-Connection-Reply within setup timeout".into());
                return;
            }
            State::Stopping { deadline } if expired(deadline, now) => {
                self.close("no Stop-Control-Connection-Reply".into());
                return;
            }
            State::Established => match self.keepalive.on_timeout(now) {
                KeepaliveAction::SendEcho(identifier) => {
                    let _ = self
                        .push_or_close(&ControlMessage::EchoRequest(EchoRequest { identifier }));
                }
                KeepaliveAction::Dead => {
                    self.close("echo timeout".into());
                    return;
                }
                KeepaliveAction::Nothing => {}
            },
            _ => {}
        }
        let mut i = 0;
        while let Some(call) = self.calls.get(i).copied() {
            if !expired(call.deadline(), now) {
                i += 1;
                continue;
            }
            self.calls.swap_remove(i);
            self.events.push_back(match call.state {
                CallState::Dialing { .. } => PnsEvent::CallFailed {
                    local_call_id: call.local_call_id,
                    result: OcrpResult::Timeout,
                    error: GeneralError::None,
                },
                _ => PnsEvent::CallDisconnected {
                    local_call_id: call.local_call_id,
                    result: CdnResult::Request,
                    cause: "no Call-Disconnect-Notify in time".into(),
                },
            });
        }
    }

    /// Next instant `handle_timeout` must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let state = match self.state {
            State::WaitSccrp { deadline } | State::Stopping { deadline } => deadline,
            State::Established => self.keepalive.poll_timeout(),
            State::Closed => return None,
        };
        self.calls
            .iter()
            .fold(state, |acc, c| earliest(acc, c.deadline()))
    }

    /// Bytes to write to the TCP stream.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.outbox.take()
    }

    /// Next event.
    pub fn poll_event(&mut self) -> Option<PnsEvent> {
        self.events.pop_front()
    }

    /// Whether SCCRP Success was received and we are not stopping or closed.
    pub fn is_established(&self) -> bool {
        self.state == State::Established
    }

    /// Whether the connection is closed.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Number of calls not yet ended.
    pub fn call_count(&self) -> usize {
        self.calls.len()
    }
}

fn stop_reply() -> ControlMessage {
    ControlMessage::StopCcrp(StopCcrp {
        result: OkResult::Ok,
        error: GeneralError::None,
    })
}
