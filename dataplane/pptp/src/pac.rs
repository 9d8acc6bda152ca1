//! PAC (server) side of a PPTP control connection (RFC 2637 §2, §3.1–§3.2), sans-IO.
//!
//! Policy choices where the RFC leaves room:
//! - The first message must be Start-Control-Connection-Request; anything else closes. A second
//!   SCCRQ on an established connection is a protocol error (closes).
//! - Protocol version other than 1.0 → SCCRP result 5, then close (§2.2).
//! - Messages only a PAC may send (SCCRP, OCRP, ICRQ, ICCN, Call-Disconnect-Notify) arriving from
//!   the PNS are protocol errors and close the connection: there is no reply the RFC defines for
//!   them. Incoming-Call-Reply is silently discarded (we never send Incoming-Call-Request, so it
//!   names an unknown call). WAN-Error-Notify is reported as an event.
//! - Call-Clear-Request for an unknown call is silently ignored (no reply amplification).
//!   For a call still awaiting [`ControlConnection::accept_call`] the PAC answers with
//!   Call-Disconnect-Notify carrying Call ID 0 and reports [`ControlEvent::CallRequestCancelled`].
//! - Outgoing-Call-Request with a Call ID already used on this connection → OCRP General Error /
//!   Bad-Call ID; beyond `max_calls` → OCRP Busy; beyond [`MAX_PENDING_CALLS`] unanswered
//!   requests → OCRP General Error / No-Resource.
//! - Any received message counts as liveness for the Echo keepalive (§2.5).
//! - On close all calls are implicitly cleared (§2.3): no per-call events are emitted.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::control::{
    BearerCapabilities, CallDisconnectNotify, CdnResult, ControlMessage, EchoReply, EchoRequest,
    FramingCapabilities, GeneralError, Ocrp, OcrpResult, Ocrq, OkResult, PROTOCOL_VERSION, Sccrp,
    SccrpResult, Sccrq, StopCcrp, StopCcrq, StopReason, WanErrorNotify,
};
use crate::error::Error;
use crate::framer::Framer;
use crate::link::{Keepalive, KeepaliveAction, Outbox, deadline, expired};

/// Most Outgoing-Call-Requests awaiting accept/reject at once on one connection.
pub const MAX_PENDING_CALLS: usize = 16;
/// How long [`ControlConnection::shutdown`] waits for Stop-Control-Connection-Reply.
pub const STOP_REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// Informational events (LinkInfo, WanError) are dropped while this many events are queued.
pub const MAX_QUEUED_INFO_EVENTS: usize = 1024;

/// PAC configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacConfig {
    /// Host name sent in SCCRP.
    pub hostname: String,
    /// Vendor string sent in SCCRP.
    pub vendor: String,
    /// Firmware revision sent in SCCRP.
    pub firmware_revision: u16,
    /// SCCRQ must arrive within this time after [`ControlConnection::new`].
    pub setup_timeout: Duration,
    /// Idle time before we send an Echo-Request.
    pub echo_interval: Duration,
    /// Time to wait for any message after our Echo-Request before closing.
    pub echo_timeout: Duration,
    /// Calls allowed on this control connection (also sent as Maximum Channels).
    pub max_calls: u16,
    /// Our GRE receive window, advertised in OCRP.
    pub recv_window: u16,
    /// Our packet processing delay (1/10 s), advertised in OCRP.
    pub processing_delay: u16,
}

impl Default for PacConfig {
    fn default() -> Self {
        Self {
            hostname: "sluice".into(),
            vendor: "Sluice".into(),
            firmware_revision: 1,
            setup_timeout: Duration::from_secs(10),
            echo_interval: Duration::from_secs(60),
            echo_timeout: Duration::from_secs(60),
            max_calls: 1,
            recv_window: 64,
            processing_delay: 0,
        }
    }
}

/// Something the daemon must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlEvent {
    /// SCCRP sent; the control connection is up.
    Established {
        /// Peer's Host Name.
        peer_hostname: String,
        /// Peer's Vendor String.
        peer_vendor: String,
    },
    /// Outgoing-Call-Request received: answer with `accept_call` or `reject_call`.
    CallRequested {
        /// The PNS's Call ID (goes into GRE headers we send).
        peer_call_id: u16,
        /// Call Serial Number.
        serial: u16,
        /// The PNS's receive window (limits our GRE sending).
        peer_recv_window: u16,
        /// The PNS's processing delay.
        processing_delay: u16,
        /// Phone Number.
        phone: String,
        /// Maximum BPS.
        max_bps: u32,
        /// Minimum BPS.
        min_bps: u32,
    },
    /// The PNS cleared a call before it was accepted; it is gone.
    CallRequestCancelled {
        /// The PNS's Call ID.
        peer_call_id: u16,
    },
    /// The PNS sent Call-Clear-Request; the engine already answered with Call-Disconnect-Notify.
    CallCleared {
        /// Our Call ID of the cleared call.
        local_call_id: u16,
    },
    /// Set-Link-Info for a call.
    LinkInfo {
        /// Our Call ID.
        local_call_id: u16,
        /// Send ACCM.
        send_accm: u32,
        /// Receive ACCM.
        recv_accm: u32,
    },
    /// WAN-Error-Notify received (informational).
    WanError {
        /// The Call ID field of the message (our Call ID).
        local_call_id: u16,
        /// The counters.
        counters: WanErrorNotify,
    },
    /// Terminal: the connection is closed and all calls are gone. Close TCP.
    Closed {
        /// Human-readable cause.
        reason: String,
    },
}

/// State of a call on this connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallState {
    /// OCRQ received, not answered yet.
    Pending,
    /// OCRP Connected sent.
    Connected,
}

/// Snapshot of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallInfo {
    /// The PNS's Call ID.
    pub peer_call_id: u16,
    /// Our Call ID (once accepted).
    pub local_call_id: Option<u16>,
    /// Call Serial Number.
    pub serial: u16,
    /// The PNS's receive window.
    pub peer_recv_window: u16,
    /// The PNS's processing delay.
    pub processing_delay: u16,
    /// Maximum BPS requested; reported back as Connect Speed in OCRP.
    pub max_bps: u32,
    /// Pending or connected.
    pub state: CallState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    WaitSccrq { deadline: Option<Instant> },
    Established,
    Stopping { deadline: Option<Instant> },
    Closed,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::WaitSccrq { .. } => "wait-sccrq",
            State::Established => "established",
            State::Stopping { .. } => "stopping",
            State::Closed => "closed",
        }
    }
}

/// A PAC-role control connection.
#[derive(Debug)]
pub struct ControlConnection {
    cfg: PacConfig,
    state: State,
    framer: Framer,
    outbox: Outbox,
    events: VecDeque<ControlEvent>,
    keepalive: Keepalive,
    calls: Vec<CallInfo>,
    peer_hostname: String,
}

impl ControlConnection {
    /// A connection that just accepted TCP at `now` and waits for SCCRQ.
    pub fn new(cfg: PacConfig, now: Instant) -> Self {
        let keepalive = Keepalive::new(now, cfg.echo_interval, cfg.echo_timeout);
        Self {
            state: State::WaitSccrq {
                deadline: deadline(now, cfg.setup_timeout),
            },
            cfg,
            framer: Framer::new(),
            outbox: Outbox::default(),
            events: VecDeque::new(),
            keepalive,
            calls: Vec::new(),
            peer_hostname: String::new(),
        }
    }

    /// Feeds bytes read from TCP. `Err` is fatal: the engine is closed (a `Closed` event is
    /// queued); drain `poll_transmit` and `poll_event`, then close TCP.
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
                // Orderly stop: bytes after StopCCRQ/StopCCRP are ignored.
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
            State::WaitSccrq { .. } => match msg {
                ControlMessage::Sccrq(req) => self.on_sccrq(now, req),
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
                    ControlMessage::EchoReply(_)
                    | ControlMessage::Icrp(_)
                    | ControlMessage::StopCcrp(_) => Ok(()),
                    ControlMessage::StopCcrq(req) => {
                        self.outbox.push(&stop_reply())?;
                        self.close(format!(
                            "peer sent Stop-Control-Connection-Request ({:?})",
                            req.reason
                        ));
                        Ok(())
                    }
                    ControlMessage::Ocrq(req) => self.on_ocrq(req),
                    ControlMessage::CallClearRequest(req) => self.on_call_clear(req.call_id),
                    ControlMessage::SetLinkInfo(sli) => {
                        if self.find_local(sli.peer_call_id).is_some() {
                            self.push_info(ControlEvent::LinkInfo {
                                local_call_id: sli.peer_call_id,
                                send_accm: sli.send_accm,
                                recv_accm: sli.recv_accm,
                            });
                        }
                        Ok(())
                    }
                    ControlMessage::WanErrorNotify(wen) => {
                        self.push_info(ControlEvent::WanError {
                            local_call_id: wen.peer_call_id,
                            counters: wen,
                        });
                        Ok(())
                    }
                    other @ (ControlMessage::Sccrq(_)
                    | ControlMessage::Sccrp(_)
                    | ControlMessage::Ocrp(_)
                    | ControlMessage::Icrq(_)
                    | ControlMessage::Iccn(_)
                    | ControlMessage::CallDisconnectNotify(_)) => {
                        Err(unexpected(self.state, &other))
                    }
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

    fn on_sccrq(&mut self, now: Instant, req: Sccrq) -> Result<(), Error> {
        if req.protocol_version != PROTOCOL_VERSION {
            self.outbox
                .push(&self.sccrp(SccrpResult::UnsupportedVersion))?;
            return Err(Error::UnsupportedVersion(req.protocol_version));
        }
        self.outbox.push(&self.sccrp(SccrpResult::Success))?;
        self.state = State::Established;
        self.keepalive.on_rx(now);
        self.peer_hostname = req.host_name.clone();
        self.events.push_back(ControlEvent::Established {
            peer_hostname: req.host_name,
            peer_vendor: req.vendor,
        });
        Ok(())
    }

    fn sccrp(&self, result: SccrpResult) -> ControlMessage {
        ControlMessage::Sccrp(Sccrp {
            protocol_version: PROTOCOL_VERSION,
            result,
            error: GeneralError::None,
            framing_capabilities: FramingCapabilities::ALL,
            bearer_capabilities: BearerCapabilities::ALL,
            maximum_channels: self.cfg.max_calls,
            firmware_revision: self.cfg.firmware_revision,
            host_name: self.cfg.hostname.clone(),
            vendor: self.cfg.vendor.clone(),
        })
    }

    fn on_ocrq(&mut self, req: Ocrq) -> Result<(), Error> {
        let refusal = if self.calls.iter().any(|c| c.peer_call_id == req.call_id) {
            Some((OcrpResult::GeneralError, GeneralError::BadCallId))
        } else if self.calls.len() >= usize::from(self.cfg.max_calls) {
            Some((OcrpResult::Busy, GeneralError::None))
        } else if self
            .calls
            .iter()
            .filter(|c| c.state == CallState::Pending)
            .count()
            >= MAX_PENDING_CALLS
        {
            Some((OcrpResult::GeneralError, GeneralError::NoResource))
        } else {
            None
        };
        if let Some((result, error)) = refusal {
            return self
                .outbox
                .push(&self.ocrp(0, req.call_id, result, error, 0));
        }
        self.calls.push(CallInfo {
            peer_call_id: req.call_id,
            local_call_id: None,
            serial: req.call_serial_number,
            peer_recv_window: req.recv_window,
            processing_delay: req.processing_delay,
            max_bps: req.maximum_bps,
            state: CallState::Pending,
        });
        self.events.push_back(ControlEvent::CallRequested {
            peer_call_id: req.call_id,
            serial: req.call_serial_number,
            peer_recv_window: req.recv_window,
            processing_delay: req.processing_delay,
            phone: req.phone_number,
            max_bps: req.maximum_bps,
            min_bps: req.minimum_bps,
        });
        Ok(())
    }

    fn ocrp(
        &self,
        call_id: u16,
        peer_call_id: u16,
        result: OcrpResult,
        error: GeneralError,
        speed: u32,
    ) -> ControlMessage {
        ControlMessage::Ocrp(Ocrp {
            call_id,
            peer_call_id,
            result,
            error,
            cause: 0,
            connect_speed: speed,
            recv_window: self.cfg.recv_window,
            processing_delay: self.cfg.processing_delay,
            physical_channel_id: 0,
        })
    }

    fn on_call_clear(&mut self, peer_call_id: u16) -> Result<(), Error> {
        let Some(pos) = self
            .calls
            .iter()
            .position(|c| c.peer_call_id == peer_call_id)
        else {
            return Ok(());
        };
        let call = self.calls.swap_remove(pos);
        let call_id = call.local_call_id.unwrap_or(0);
        self.outbox.push(&ControlMessage::CallDisconnectNotify(
            CallDisconnectNotify {
                call_id,
                result: CdnResult::Request,
                error: GeneralError::None,
                cause: 0,
                call_statistics: String::new(),
            },
        ))?;
        self.events.push_back(match call.local_call_id {
            Some(local_call_id) => ControlEvent::CallCleared { local_call_id },
            None => ControlEvent::CallRequestCancelled { peer_call_id },
        });
        Ok(())
    }

    fn find_local(&self, local_call_id: u16) -> Option<usize> {
        self.calls
            .iter()
            .position(|c| c.local_call_id == Some(local_call_id))
    }

    fn push_info(&mut self, ev: ControlEvent) {
        if self.events.len() < MAX_QUEUED_INFO_EVENTS {
            self.events.push_back(ev);
        }
    }

    fn close(&mut self, reason: String) {
        if self.state != State::Closed {
            self.state = State::Closed;
            self.calls.clear();
            self.events.push_back(ControlEvent::Closed { reason });
        }
    }

    fn push_or_close(&mut self, msg: &ControlMessage) -> Result<(), Error> {
        let r = self.outbox.push(msg);
        if let Err(e) = &r {
            self.close(e.to_string());
        }
        r
    }

    /// Processes expired timers (setup, keepalive, stop).
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::WaitSccrq { deadline } if expired(deadline, now) => {
                self.close("no Start-Control-Connection-Request within setup timeout".into());
            }
            State::Established => match self.keepalive.on_timeout(now) {
                KeepaliveAction::SendEcho(identifier) => {
                    let _ = self
                        .push_or_close(&ControlMessage::EchoRequest(EchoRequest { identifier }));
                }
                KeepaliveAction::Dead => self.close("echo timeout".into()),
                KeepaliveAction::Nothing => {}
            },
            State::Stopping { deadline } if expired(deadline, now) => {
                self.close("no Stop-Control-Connection-Reply".into());
            }
            _ => {}
        }
    }

    /// The peer's calls carried data (GRE from the control connection's peer) at `now`: as
    /// good as a control message for liveness (§2.5 leaves when to send Echo-Request to the
    /// sender), so no Echo-Request goes out while the calls are live. An idle session's PPP
    /// keep-alives then stand for the control connection's too, which halves the keep-alive
    /// traffic of idle sessions. An outstanding Echo-Request is answered by it as well.
    pub fn note_peer_alive(&mut self, now: Instant) {
        if self.state == State::Established {
            self.keepalive.on_rx(now);
        }
    }

    /// Next instant `handle_timeout` must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::WaitSccrq { deadline } | State::Stopping { deadline } => deadline,
            State::Established => self.keepalive.poll_timeout(),
            State::Closed => None,
        }
    }

    /// Bytes to write to the TCP stream.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.outbox.take()
    }

    /// Next event.
    pub fn poll_event(&mut self) -> Option<ControlEvent> {
        self.events.pop_front()
    }

    /// Answers a pending Outgoing-Call-Request with OCRP Connected, assigning `local_call_id`
    /// (must be unique among the daemon's calls: GRE packets are demultiplexed by it).
    pub fn accept_call(
        &mut self,
        now: Instant,
        peer_call_id: u16,
        local_call_id: u16,
    ) -> Result<(), Error> {
        let _ = now;
        match self.state {
            State::Established => {}
            State::Closed => return Err(Error::Closed),
            _ => return Err(Error::NotEstablished),
        }
        if self.find_local(local_call_id).is_some() {
            return Err(Error::CallIdInUse(local_call_id));
        }
        let pos = self
            .calls
            .iter()
            .position(|c| c.peer_call_id == peer_call_id && c.state == CallState::Pending)
            .ok_or(Error::UnknownCall(peer_call_id))?;
        let speed = self.calls.get(pos).map_or(0, |c| c.max_bps);
        let msg = self.ocrp(
            local_call_id,
            peer_call_id,
            OcrpResult::Connected,
            GeneralError::None,
            speed,
        );
        self.push_or_close(&msg)?;
        if let Some(call) = self.calls.get_mut(pos) {
            call.local_call_id = Some(local_call_id);
            call.state = CallState::Connected;
        }
        Ok(())
    }

    /// Refuses a pending Outgoing-Call-Request with OCRP `result`/`error`. Unknown ids are ignored.
    pub fn reject_call(
        &mut self,
        now: Instant,
        peer_call_id: u16,
        result: OcrpResult,
        error: Option<GeneralError>,
    ) {
        let _ = now;
        if self.state != State::Established {
            return;
        }
        let Some(pos) = self
            .calls
            .iter()
            .position(|c| c.peer_call_id == peer_call_id && c.state == CallState::Pending)
        else {
            return;
        };
        self.calls.swap_remove(pos);
        let msg = self.ocrp(
            0,
            peer_call_id,
            result,
            error.unwrap_or(GeneralError::None),
            0,
        );
        let _ = self.push_or_close(&msg);
    }

    /// Ends a connected call from our side with Call-Disconnect-Notify (Admin Shutdown);
    /// `cause` goes into Call Statistics. Unknown ids are ignored.
    pub fn disconnect_call(&mut self, now: Instant, local_call_id: u16, cause: &str) {
        let _ = now;
        if self.state != State::Established {
            return;
        }
        let Some(pos) = self.find_local(local_call_id) else {
            return;
        };
        self.calls.swap_remove(pos);
        let _ = self.push_or_close(&ControlMessage::CallDisconnectNotify(
            CallDisconnectNotify {
                call_id: local_call_id,
                result: CdnResult::AdminShutdown,
                error: GeneralError::None,
                cause: 0,
                call_statistics: cause.into(),
            },
        ));
    }

    /// Sends Stop-Control-Connection-Request and waits (at most [`STOP_REPLY_TIMEOUT`]) for the
    /// reply, then `Closed`. Before establishment it closes at once.
    pub fn shutdown(&mut self, now: Instant, reason: StopReason) {
        match self.state {
            State::WaitSccrq { .. } => self.close("shut down before establishment".into()),
            State::Established => {
                self.calls.clear();
                if self
                    .push_or_close(&ControlMessage::StopCcrq(StopCcrq { reason }))
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

    /// Calls on this connection.
    pub fn calls(&self) -> impl Iterator<Item = CallInfo> + '_ {
        self.calls.iter().copied()
    }

    /// Peer's Host Name from SCCRQ (empty before).
    pub fn peer_hostname(&self) -> &str {
        &self.peer_hostname
    }

    /// Whether SCCRP was sent and the connection is not stopping or closed.
    pub fn is_established(&self) -> bool {
        self.state == State::Established
    }

    /// Whether the connection is closed.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }
}

fn stop_reply() -> ControlMessage {
    ControlMessage::StopCcrp(StopCcrp {
        result: OkResult::Ok,
        error: GeneralError::None,
    })
}
