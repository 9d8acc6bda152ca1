//! Prometheus metrics of the data plane (text exposition via prometheus-client).

use std::fmt::Write;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Tunnel protocol label.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Protocol {
    Pptp,
    L2tp,
}

/// Which side of a tunnel this node is: a session it serves, or a call it dialled
/// (`VpnClient`, issue 22).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Role {
    Server,
    Client,
}

/// Outcome of a session setup attempt.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum SetupResult {
    Ok,
    AuthFailed,
    NegotiationFailed,
    EncryptionRequired,
    Timeout,
    Limit,
    PoolExhausted,
    PeerClosed,
    Error,
    /// Refused because the gateway is draining.
    Draining,
}

impl SetupResult {
    /// Every outcome, for sums over the label set.
    pub const ALL: [SetupResult; 10] = [
        SetupResult::Ok,
        SetupResult::AuthFailed,
        SetupResult::NegotiationFailed,
        SetupResult::EncryptionRequired,
        SetupResult::Timeout,
        SetupResult::Limit,
        SetupResult::PoolExhausted,
        SetupResult::PeerClosed,
        SetupResult::Error,
        SetupResult::Draining,
    ];
}

/// A phase of session setup, timed from its start to its successful end.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum SetupPhase {
    /// Call signalling: PPTP Outgoing-Call-Request → Reply, L2TP ICRQ → ICCN; the first
    /// call of a control connection (PPTP: from the TCP accept) or tunnel (L2TP: from
    /// its SCCCN) includes that setup.
    Control,
    /// LCP negotiation (RFC 1661 §3.2 Link Establishment), from the call being connected.
    Lcp,
    /// PAP/CHAP/MS-CHAP exchange.
    Auth,
    /// IPCP (and CCP when encryption is negotiated) until the network phase is up.
    Ncp,
    /// IKE Phase 1 (Main or Aggressive Mode), first message to completion.
    IkePhase1,
    /// IKE Phase 2 (Quick Mode), first message to completion.
    IkePhase2,
}

impl SetupPhase {
    /// Every phase; PPTP sessions have the first four.
    pub const ALL: [SetupPhase; 6] = [
        SetupPhase::Control,
        SetupPhase::Lcp,
        SetupPhase::Auth,
        SetupPhase::Ncp,
        SetupPhase::IkePhase1,
        SetupPhase::IkePhase2,
    ];
}

/// Packet direction relative to the tunnel.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Direction {
    /// From clients, decapsulated toward the network.
    Rx,
    /// From the network, encapsulated toward clients.
    Tx,
}

/// Protocol layer a malformed packet was dropped at.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Layer {
    Ip,
    Pptp,
    Gre,
    L2tp,
    Esp,
    Ike,
    Ppp,
    Lcp,
    Ipcp,
    Ccp,
    Mppe,
    Auth,
    Tun,
}

impl Layer {
    /// Every layer.
    pub const ALL: [Layer; 13] = [
        Layer::Ip,
        Layer::Pptp,
        Layer::Gre,
        Layer::L2tp,
        Layer::Esp,
        Layer::Ike,
        Layer::Ppp,
        Layer::Lcp,
        Layer::Ipcp,
        Layer::Ccp,
        Layer::Mppe,
        Layer::Auth,
        Layer::Tun,
    ];
}

impl From<sluice_ppp::Layer> for Layer {
    fn from(l: sluice_ppp::Layer) -> Layer {
        match l {
            sluice_ppp::Layer::Lcp => Layer::Lcp,
            sluice_ppp::Layer::Ipcp => Layer::Ipcp,
            sluice_ppp::Layer::Ccp => Layer::Ccp,
            sluice_ppp::Layer::Mppe => Layer::Mppe,
            sluice_ppp::Layer::Auth => Layer::Auth,
            _ => Layer::Ppp,
        }
    }
}

/// Label values are the snake_case names Prometheus users expect.
macro_rules! label_values {
    ($($ty:ident { $($variant:ident => $name:literal),* $(,)? })*) => {$(
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $name),* }
            }
        }
        impl EncodeLabelValue for $ty {
            fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
                encoder.write_str(self.as_str())
            }
        }
    )*};
}

label_values! {
    Protocol { Pptp => "pptp", L2tp => "l2tp" }
    Role { Server => "server", Client => "client" }
    SetupResult {
        Ok => "ok",
        AuthFailed => "auth_failed",
        NegotiationFailed => "negotiation_failed",
        EncryptionRequired => "encryption_required",
        Timeout => "timeout",
        Limit => "limit",
        PoolExhausted => "pool_exhausted",
        PeerClosed => "peer_closed",
        Error => "error",
        Draining => "draining",
    }
    Direction { Rx => "rx", Tx => "tx" }
    SetupPhase {
        Control => "control",
        Lcp => "lcp",
        Auth => "auth",
        Ncp => "ncp",
        IkePhase1 => "ike_phase1",
        IkePhase2 => "ike_phase2",
    }
    Layer {
        Ip => "ip",
        Pptp => "pptp",
        Gre => "gre",
        L2tp => "l2tp",
        Esp => "esp",
        Ike => "ike",
        Ppp => "ppp",
        Lcp => "lcp",
        Ipcp => "ipcp",
        Ccp => "ccp",
        Mppe => "mppe",
        Auth => "auth",
        Tun => "tun",
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProtoLabels {
    pub protocol: Protocol,
}

/// Labels of `sluice_sessions_active`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SessionLabels {
    /// "namespace/name" (or the manifest's name) of the gateway.
    pub gateway: String,
    pub protocol: Protocol,
    /// Data encryption: `mppe128`, `mppe40`, `ipsec`, `ipsec+mppe128`, … or `none`.
    pub encoding: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    pub protocol: Protocol,
    pub phase: SetupPhase,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UserLabels {
    pub user: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UserDirLabels {
    pub user: String,
    pub direction: Direction,
}

/// One user's per-user series (`metrics.perUser`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UserSeries {
    /// Sessions up now.
    pub sessions: u64,
    /// IP bytes from the user's clients, sessions that ended included.
    pub rx_bytes: u64,
    /// IP bytes to the user's clients, sessions that ended included.
    pub tx_bytes: u64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SetupLabels {
    pub protocol: Protocol,
    pub result: SetupResult,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirLabels {
    pub direction: Direction,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LayerLabels {
    pub layer: Layer,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    pub method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConfigLabels {
    pub gateway: String,
    pub version: String,
}

/// Labels of `sluice_client_dials_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DialLabels {
    pub protocol: Protocol,
    /// `connected`, or the failure's reason (`ServerUnreachable`, `AuthenticationRejected`, …).
    pub result: &'static str,
}

/// Labels of `sluice_client_tunnels`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClientPhaseLabels {
    /// `Connecting`, `Connected`, `BackingOff` or `Failed`.
    pub phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

/// All data-plane metrics.
pub struct Metrics {
    pub sessions_active: Family<SessionLabels, Gauge>,
    /// Sessions up, all protocols (not exported: the sum of `sessions_active`).
    pub sessions_up: Gauge,
    pub setups: Family<SetupLabels, Counter>,
    pub auth_failures: Family<MethodLabels, Counter>,
    /// Login attempts the password-guessing throttle held back or failed unchecked.
    pub login_throttled: Family<ReasonLabels, Counter>,
    /// Keys (user, source, pair) the throttle tracks.
    pub login_throttle_entries: Gauge,
    /// Sessions in setup (not yet authenticated).
    pub setups_pending: Gauge,
    pub setup_duration: Family<ProtoLabels, Histogram>,
    /// Setup time of each phase that completed.
    pub setup_phase_duration: Family<PhaseLabels, Histogram>,
    /// Control messages sent again because no acknowledgement or answer came
    /// (`l2tp`, `ppp`), or replies resent to a retransmitted request (`ike`).
    pub retransmissions: Family<LayerLabels, Counter>,
    /// IKE exchanges not yet authenticated (Main Mode in progress).
    pub ike_half_open: Gauge,
    pub bytes: Family<DirLabels, Counter>,
    pub packets: Family<DirLabels, Counter>,
    pub malformed: Family<LayerLabels, Counter>,
    pub dropped: Family<ReasonLabels, Counter>,
    pub control_connections: Gauge,
    /// L2TP tunnels established (SCCCN exchanged) and not yet down.
    pub l2tp_tunnels: Gauge,
    /// IKE SAs established (Main Mode done) and not yet deleted.
    pub ike_sas: Gauge,
    /// ESP SA pairs installed.
    pub esp_sas: Gauge,
    /// ESP packets that overtook Quick Mode message 3 and were held until their SA was up.
    pub esp_held: Counter,
    /// IPsec clients followed to a new address or port (NAT rebinding, RFC 3948 §2.3).
    pub ipsec_peer_moves: Counter,
    /// Inner packets marked CE by the receive queues' CoDel (`datapath::aqm`).
    pub aqm_marked: Counter,
    /// GRE data packets sent while the peer's advertised receive window was full (sent anyway,
    /// as deployed PPTP stacks do: `sluice_pptp::channel`).
    pub gre_beyond_window: Counter,
    /// Stateful MPPE: gaps of lost packets recovered without a CCP reset.
    pub mppe_gaps_recovered: Counter,
    /// Stateful MPPE: CCP Reset-Requests sent (tx: our receiver lost sync) and received (rx).
    pub mppe_reset_requests: Family<DirLabels, Counter>,
    /// IKE messages by direction.
    pub ike_messages: Family<DirLabels, Counter>,
    /// L2TP control messages (ZLB acknowledgements included) by direction.
    pub l2tp_control: Family<DirLabels, Counter>,
    pub reloads: Family<ResultLabels, Counter>,
    pub config: Family<ConfigLabels, Gauge>,
    /// Users the standalone configuration left out (their own fields are wrong).
    pub users_left_out: Gauge,
    pub pool_used: Gauge,
    pub pool_free: Gauge,
    /// 1 while draining (no new sessions; exits when empty or at the drain timeout).
    pub draining: Gauge,
    /// Agent mode: 1 while the control stream to the operator is open.
    pub operator_connected: Gauge,
    /// Agent mode: session events dropped because the queue toward the operator was full.
    pub events_dropped: Counter,
    /// Client tunnels (`VpnClient`s) by dialler phase.
    pub client_tunnels: Family<ClientPhaseLabels, Gauge>,
    /// Dial attempts of client tunnels by result.
    pub client_dials: Family<DialLabels, Counter>,
    /// Time from dialling to the client tunnel's network phase up.
    pub client_setup_duration: Family<ProtoLabels, Histogram>,
    /// Pre-resolved hot-path counters (one atomic add per packet).
    pub rx_bytes: Counter,
    pub rx_packets: Counter,
    pub tx_bytes: Counter,
    pub tx_packets: Counter,
    registry: Registry,
}

fn setup_histogram() -> Histogram {
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ])
}

impl Metrics {
    /// Metrics of the standalone gateway.
    pub fn new() -> Self {
        Self::build(false)
    }

    /// Metrics of agent mode: the standalone set plus the operator connection.
    pub fn new_agent() -> Self {
        Self::build(true)
    }

    fn build(agent: bool) -> Self {
        let mut registry = Registry::with_prefix("sluice");
        let m = Metrics {
            sessions_active: Family::default(),
            sessions_up: Gauge::default(),
            setups: Family::default(),
            auth_failures: Family::default(),
            login_throttled: Family::default(),
            login_throttle_entries: Gauge::default(),
            setups_pending: Gauge::default(),
            setup_duration: Family::new_with_constructor(setup_histogram),
            setup_phase_duration: Family::new_with_constructor(setup_histogram),
            retransmissions: Family::default(),
            ike_half_open: Gauge::default(),
            bytes: Family::default(),
            packets: Family::default(),
            malformed: Family::default(),
            dropped: Family::default(),
            control_connections: Gauge::default(),
            l2tp_tunnels: Gauge::default(),
            ike_sas: Gauge::default(),
            esp_sas: Gauge::default(),
            esp_held: Counter::default(),
            ipsec_peer_moves: Counter::default(),
            aqm_marked: Counter::default(),
            gre_beyond_window: Counter::default(),
            mppe_gaps_recovered: Counter::default(),
            mppe_reset_requests: Family::default(),
            ike_messages: Family::default(),
            l2tp_control: Family::default(),
            reloads: Family::default(),
            config: Family::default(),
            users_left_out: Gauge::default(),
            client_tunnels: Family::default(),
            client_dials: Family::default(),
            client_setup_duration: Family::new_with_constructor(setup_histogram),
            pool_used: Gauge::default(),
            pool_free: Gauge::default(),
            draining: Gauge::default(),
            operator_connected: Gauge::default(),
            events_dropped: Counter::default(),
            rx_bytes: Counter::default(),
            rx_packets: Counter::default(),
            tx_bytes: Counter::default(),
            tx_packets: Counter::default(),
            registry: Registry::default(),
        };
        let rx = DirLabels {
            direction: Direction::Rx,
        };
        let tx = DirLabels {
            direction: Direction::Tx,
        };
        let (rx_bytes, rx_packets) = (
            m.bytes.get_or_create(&rx).clone(),
            m.packets.get_or_create(&rx).clone(),
        );
        let (tx_bytes, tx_packets) = (
            m.bytes.get_or_create(&tx).clone(),
            m.packets.get_or_create(&tx).clone(),
        );
        let m = Metrics {
            rx_bytes,
            rx_packets,
            tx_bytes,
            tx_packets,
            ..m
        };
        // Series of known label values exist from the start, so the first event of each
        // is a visible increase to `rate()` (a series born at 1 is not).
        for protocol in [Protocol::Pptp, Protocol::L2tp] {
            for result in SetupResult::ALL {
                let _ = m.setups.get_or_create(&SetupLabels { protocol, result });
            }
            let _ = m.setup_duration.get_or_create(&ProtoLabels { protocol });
            let phases: &[SetupPhase] = match protocol {
                Protocol::Pptp => &SetupPhase::ALL[..4],
                Protocol::L2tp => &SetupPhase::ALL,
            };
            for &phase in phases {
                let _ = m
                    .setup_phase_duration
                    .get_or_create(&PhaseLabels { protocol, phase });
            }
        }
        for method in ["pap", "chap", "mschapv1", "mschapv2"] {
            let _ = m.auth_failures.get_or_create(&MethodLabels { method });
        }
        for layer in Layer::ALL {
            let _ = m.malformed.get_or_create(&LayerLabels { layer });
        }
        for reason in ["delayed", "refused"] {
            let _ = m.login_throttled.get_or_create(&ReasonLabels { reason });
        }
        for layer in [Layer::L2tp, Layer::Ike, Layer::Ppp] {
            let _ = m.retransmissions.get_or_create(&LayerLabels { layer });
        }
        // IKE under flood (docs/security.md): drops of the receive side and of the IKE thread.
        let ike_flood = crate::datapath::ipsec::guard::DROP_REASONS.into_iter();
        for reason in ike_flood.chain(crate::control::ike::DROP_REASONS) {
            let _ = m.dropped.get_or_create(&ReasonLabels { reason });
        }
        registry.register(
            "sessions_active",
            "Sessions whose network phase is up",
            m.sessions_active.clone(),
        );
        registry.register(
            "session_setups",
            "Session setup attempts by result",
            m.setups.clone(),
        );
        registry.register(
            "auth_failures",
            "Failed PPP authentications by method",
            m.auth_failures.clone(),
        );
        registry.register(
            "login_throttled",
            "Login attempts held back (delayed) or failed unchecked (refused) by the password-guessing throttle",
            m.login_throttled.clone(),
        );
        registry.register(
            "login_throttle_entries",
            "Users, sources and user/source pairs the password-guessing throttle tracks",
            m.login_throttle_entries.clone(),
        );
        registry.register(
            "sessions_in_setup",
            "Sessions not yet authenticated",
            m.setups_pending.clone(),
        );
        registry.register(
            "session_setup_duration_seconds",
            "Time from call request to network phase up",
            m.setup_duration.clone(),
        );
        registry.register(
            "session_setup_phase_duration_seconds",
            "Time each setup phase took (control, lcp, auth, ncp, ike_phase1, ike_phase2), when it completed",
            m.setup_phase_duration.clone(),
        );
        registry.register(
            "retransmissions",
            "Control messages retransmitted, by protocol layer",
            m.retransmissions.clone(),
        );
        registry.register(
            "ipsec_ike_sas_half_open",
            "IKE exchanges in progress, not yet authenticated",
            m.ike_half_open.clone(),
        );
        registry.register(
            "tunnel_bytes",
            "IP payload bytes carried through tunnels",
            m.bytes.clone(),
        );
        registry.register(
            "tunnel_packets",
            "IP packets carried through tunnels",
            m.packets.clone(),
        );
        registry.register(
            "malformed_packets",
            "Malformed packets dropped, by protocol layer",
            m.malformed.clone(),
        );
        registry.register(
            "dropped_packets",
            "Well-formed packets dropped, by reason",
            m.dropped.clone(),
        );
        registry.register(
            "control_connections",
            "Open PPTP control connections",
            m.control_connections.clone(),
        );
        registry.register(
            "l2tp_tunnels",
            "Established L2TP tunnels",
            m.l2tp_tunnels.clone(),
        );
        registry.register(
            "ipsec_ike_sas",
            "Established IKE (ISAKMP) SAs",
            m.ike_sas.clone(),
        );
        registry.register("ipsec_esp_sas", "Installed ESP SA pairs", m.esp_sas.clone());
        registry.register(
            "ipsec_esp_held",
            "ESP packets that arrived before Quick Mode message 3 had installed their SA, held and passed on after it",
            m.esp_held.clone(),
        );
        registry.register(
            "ipsec_peer_moves",
            "IPsec clients followed to a new address or port on an authenticated packet (NAT rebinding)",
            m.ipsec_peer_moves.clone(),
        );
        registry.register(
            "aqm_ce_marked",
            "Inner packets marked Congestion Experienced because a receive queue stood above the CoDel target (the ones not ECN-capable are dropped{reason=queue_delay})",
            m.aqm_marked.clone(),
        );
        registry.register(
            "gre_beyond_peer_window",
            "GRE data packets sent while the peer's advertised receive window was full (sent anyway)",
            m.gre_beyond_window.clone(),
        );
        registry.register(
            "mppe_gaps_recovered",
            "Stateful MPPE: gaps of lost packets recovered without a CCP reset",
            m.mppe_gaps_recovered.clone(),
        );
        registry.register(
            "mppe_reset_requests",
            "Stateful MPPE: CCP Reset-Requests sent (tx) and received (rx)",
            m.mppe_reset_requests.clone(),
        );
        registry.register(
            "ipsec_ike_messages",
            "IKE messages, by direction",
            m.ike_messages.clone(),
        );
        registry.register(
            "l2tp_control_messages",
            "L2TP control messages (ZLB acknowledgements included), by direction",
            m.l2tp_control.clone(),
        );
        registry.register(
            "config_reloads",
            "Configuration reloads (standalone) or applies from the operator (agent), by result",
            m.reloads.clone(),
        );
        registry.register(
            "config_info",
            "The configuration applied (value 1), labelled with its version",
            m.config.clone(),
        );
        for phase in crate::client::policy::Phase::ALL {
            let phase = phase.as_str();
            let _ = m.client_tunnels.get_or_create(&ClientPhaseLabels { phase });
        }
        registry.register(
            "client_tunnels",
            "Tunnels this node dials (VpnClient) by phase",
            m.client_tunnels.clone(),
        );
        registry.register(
            "client_dials",
            "Dial attempts of client tunnels by result (connected, or the failure's reason)",
            m.client_dials.clone(),
        );
        registry.register(
            "client_setup_duration_seconds",
            "Time from dialling to a client tunnel's network phase up",
            m.client_setup_duration.clone(),
        );
        registry.register(
            "config_users_left_out",
            "Users the standalone configuration left out because their own fields are wrong \
             (the log names each and why)",
            m.users_left_out.clone(),
        );
        registry.register(
            "pool_addresses_used",
            "Tunnel addresses leased",
            m.pool_used.clone(),
        );
        registry.register(
            "draining",
            "1 while the data plane is draining: no new sessions, exit once none is left",
            m.draining.clone(),
        );
        registry.register(
            "pool_addresses_free",
            "Tunnel addresses free in the dynamic pool",
            m.pool_free.clone(),
        );
        if agent {
            registry.register(
                "operator_connected",
                "Whether the control stream to the operator is open (1) or not (0)",
                m.operator_connected.clone(),
            );
            registry.register(
                "session_events_dropped",
                "Session events dropped because the queue toward the operator was full",
                m.events_dropped.clone(),
            );
        }
        Metrics { registry, ..m }
    }

    /// Records the configuration now applied.
    pub fn set_config(&self, gateway: &str, version: &str) {
        self.config.clear();
        self.config
            .get_or_create(&ConfigLabels {
                gateway: gateway.to_owned(),
                version: version.to_owned(),
            })
            .set(1);
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        self.encode_with_users(None::<std::iter::Empty<(&str, UserSeries)>>)
    }

    /// The exposition with per-user series (`sluice_user_sessions_active`,
    /// `sluice_user_bytes_total`) when `users` is given (`metrics.perUser`).
    pub fn encode_with_users<'a>(
        &self,
        users: Option<impl IntoIterator<Item = (&'a str, UserSeries)>>,
    ) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode_registry(&mut out, &self.registry).is_err() {
            out.clear();
            return out;
        }
        if let Some(users) = users {
            let sessions = Family::<UserLabels, Gauge>::default();
            let bytes = Family::<UserDirLabels, Counter>::default();
            for (user, s) in users {
                let user = user.to_owned();
                sessions
                    .get_or_create(&UserLabels { user: user.clone() })
                    .set(i64::try_from(s.sessions).unwrap_or(i64::MAX));
                for (direction, n) in [(Direction::Rx, s.rx_bytes), (Direction::Tx, s.tx_bytes)] {
                    bytes
                        .get_or_create(&UserDirLabels {
                            user: user.clone(),
                            direction,
                        })
                        .inc_by(n);
                }
            }
            let mut reg = Registry::with_prefix("sluice");
            reg.register(
                "user_sessions_active",
                "Sessions up, by user (metrics.perUser)",
                sessions,
            );
            reg.register(
                "user_bytes",
                "IP payload bytes by user and direction, ended sessions included (metrics.perUser)",
                bytes,
            );
            if prometheus_client::encoding::text::encode_registry(&mut out, &reg).is_err() {
                out.clear();
                return out;
            }
        }
        if prometheus_client::encoding::text::encode_eof(&mut out).is_err() {
            out.clear();
        }
        out
    }

    /// Records how long a setup phase took.
    pub fn phase(&self, protocol: Protocol, phase: SetupPhase, took: std::time::Duration) {
        self.setup_phase_duration
            .get_or_create(&PhaseLabels { protocol, phase })
            .observe(took.as_secs_f64());
    }

    pub fn retransmitted(&self, layer: Layer, n: u64) {
        if n > 0 {
            self.retransmissions
                .get_or_create(&LayerLabels { layer })
                .inc_by(n);
        }
    }

    /// Counts the stateful MPPE repairs between two readings of a link's counters.
    pub fn mppe_repaired(&self, before: &sluice_ppp::MppeRepairs, now: &sluice_ppp::MppeRepairs) {
        self.mppe_gaps_recovered
            .inc_by(now.gaps_recovered.saturating_sub(before.gaps_recovered));
        for (direction, after, was) in [
            (Direction::Tx, now.resets_sent, before.resets_sent),
            (Direction::Rx, now.resets_received, before.resets_received),
        ] {
            if after > was {
                self.mppe_reset_requests
                    .get_or_create(&DirLabels { direction })
                    .inc_by(after - was);
            }
        }
    }

    pub fn malformed(&self, layer: Layer) {
        self.malformed.get_or_create(&LayerLabels { layer }).inc();
    }

    pub fn dropped(&self, reason: &'static str) {
        self.dropped_n(reason, 1);
    }

    pub fn dropped_n(&self, reason: &'static str, n: u64) {
        self.dropped
            .get_or_create(&ReasonLabels { reason })
            .inc_by(n);
    }

    pub fn setup(&self, protocol: Protocol, result: SetupResult) {
        self.setups
            .get_or_create(&SetupLabels { protocol, result })
            .inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
