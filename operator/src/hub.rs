//! The operator's in-memory view shared by the reconcilers and the gRPC server: the
//! configuration compiled for each gateway (a watch channel every agent stream of that
//! gateway follows), and what each connected agent reported (applied version, NACKs, live
//! sessions, whether it drains, logins and failed logins). Pure state: no I/O; changes are announced on a
//! channel so status writers can batch them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_api::{AuthFailure, GatewayConfig, SessionCounts, UserSession};
use sluice_proto::v1::{self as pb, SessionEventKind};
use tokio::sync::{mpsc, watch};

use crate::config::WipedConfig;
use crate::gateway_state::GatewayStates;

/// `namespace/name` of a gateway or user.
pub type Key = String;

/// The [`Key`] of an object.
pub fn key_of<K: kube::Resource>(obj: &K) -> Key {
    let meta = obj.meta();
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

/// Something whose status should be rewritten.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dirty {
    /// A `VpnGateway`, by key.
    Gateway(Key),
    /// A `VpnUser`, by key.
    User(Key),
}

/// Most sessions one agent report may carry (a bound on what a peer can make us hold).
pub const MAX_SESSIONS_PER_AGENT: usize = 100_000;
/// Most events one agent report may carry.
pub const MAX_EVENTS_PER_REPORT: usize = 10_000;

#[derive(Debug, Default, Clone)]
struct Activity {
    last_login: Option<i64>,
    last_failure: Option<AuthFailure>,
}

/// What the operator knows about one agent (data-plane pod).
#[derive(Debug, Clone, Default)]
pub struct Agent {
    /// Node the pod runs on.
    pub node: String,
    /// Whether its stream is open.
    pub connected: bool,
    /// Version it last ACKed.
    pub applied_version: String,
    /// Last NACK: (version, error).
    pub nack: Option<(String, String)>,
    /// Live sessions (from the last snapshot, updated by events since).
    pub sessions: Vec<pb::Session>,
    /// Whether a snapshot arrived since it connected.
    pub snapshot_seen: bool,
    /// Its cumulative counters.
    pub counters: Option<pb::Counters>,
    /// Whether it reported draining (refuses new sessions, exits once empty).
    pub draining: bool,
    pub(crate) stream: u64,
}

impl Agent {
    /// Its live session count, once a snapshot made it trustworthy.
    pub fn live_sessions(&self) -> Option<usize> {
        self.snapshot_seen.then_some(self.sessions.len())
    }
}

struct Entry {
    config: watch::Sender<Option<Arc<WipedConfig>>>,
    published_at: Option<Instant>,
    rejected_users: BTreeMap<Key, String>,
    included_users: BTreeSet<Key>,
    agents: BTreeMap<String, Agent>,
    activity: HashMap<Key, Activity>,
}

impl Entry {
    fn new() -> Self {
        Self {
            config: watch::Sender::new(None),
            published_at: None,
            rejected_users: BTreeMap::new(),
            included_users: BTreeSet::new(),
            agents: BTreeMap::new(),
            activity: HashMap::new(),
        }
    }
}

/// A gateway as the status writer needs it.
#[derive(Debug, Clone, Default)]
pub struct GatewayView {
    /// Version currently published (`None` before the first successful compile).
    pub version: Option<String>,
    /// Agents by pod name.
    pub agents: BTreeMap<String, Agent>,
    /// Users left out of the configuration, with why.
    pub rejected_users: BTreeMap<Key, String>,
    /// Live sessions across connected agents.
    pub sessions: SessionCounts,
    /// Set while `sessions` is not yet known: shortly after start-up, before every agent
    /// has reported (the status then keeps what it says).
    pub sessions_unknown: bool,
}

impl GatewayView {
    /// Pods whose connected agent reported draining.
    pub fn draining_pods(&self) -> BTreeSet<String> {
        self.agents
            .iter()
            .filter(|(_, a)| a.connected && a.draining)
            .map(|(pod, _)| pod.clone())
            .collect()
    }
}

/// A user's live state across the agents of its gateway.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserView {
    /// Whether every connected agent has sent a snapshot (or the start-up grace is over);
    /// until then the session fields are not rewritten, so an operator restart does not
    /// flip users to "disconnected".
    pub known: bool,
    /// Live sessions.
    pub sessions: Vec<UserSession>,
    /// Last successful login (Unix seconds).
    pub last_login: Option<i64>,
    /// Last failed login.
    pub last_failure: Option<AuthFailure>,
    /// Why the user was left out of the configuration.
    pub rejected: Option<String>,
    /// Whether the published configuration serves the user.
    pub included: bool,
    /// Whether the gateway has a published configuration.
    pub configured: bool,
}

/// Shared operator state. Cheap to clone behind an `Arc`.
pub struct Hub {
    entries: Mutex<HashMap<Key, Entry>>,
    dirty: mpsc::UnboundedSender<Dirty>,
    started: Instant,
    grace: Duration,
    next_stream: std::sync::atomic::AtomicU64,
    /// Observed change-to-ACK delays (seconds), drained by the metrics.
    ack_latency: Mutex<Vec<f64>>,
    /// The reconcilers' bookkeeping per gateway (compile error, agent TLS, workloads,
    /// autoscaler, deletion costs), dropped with the gateway in [`Hub::remove`].
    pub states: GatewayStates,
}

/// Formats Unix seconds as RFC 3339 (what the status fields hold).
pub fn timestamp(unix: i64) -> String {
    jiff::Timestamp::from_second(unix)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn user_session(s: &pb::Session, node: &str) -> UserSession {
    UserSession {
        protocol: s.protocol.clone(),
        node: node.to_owned(),
        address: s.address.clone(),
        caller_address: s.caller_address.clone(),
        since: timestamp(s.since_unix),
        bytes_in: s.bytes_in,
        bytes_out: s.bytes_out,
        encoding: s.encoding.clone(),
    }
}

impl Hub {
    /// A hub and the receiving end of its change notifications. Session fields count as
    /// known `grace` after start-up even if some agent never reports.
    pub fn new(grace: Duration) -> (Arc<Hub>, mpsc::UnboundedReceiver<Dirty>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Arc::new(Hub {
                entries: Mutex::new(HashMap::new()),
                dirty: tx,
                started: Instant::now(),
                grace,
                next_stream: std::sync::atomic::AtomicU64::new(1),
                ack_latency: Mutex::new(Vec::new()),
                states: GatewayStates::default(),
            }),
            rx,
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn mark(&self, d: Dirty) {
        let _ = self.dirty.send(d);
    }

    /// Publishes a compiled configuration (`included`: the users it serves, `rejected`: the
    /// users left out and why); returns whether its version is new. Users whose standing
    /// changed are marked dirty.
    pub fn publish(
        &self,
        gateway: &str,
        config: GatewayConfig,
        rejected_users: BTreeMap<Key, String>,
        included: BTreeSet<Key>,
    ) -> bool {
        let config = WipedConfig(config);
        let mut map = self.lock();
        let e = map.entry(gateway.to_owned()).or_insert_with(Entry::new);
        let old_rejected = std::mem::replace(&mut e.rejected_users, rejected_users);
        for user in old_rejected.keys().chain(e.rejected_users.keys()) {
            if old_rejected.get(user) != e.rejected_users.get(user) {
                self.mark(Dirty::User(user.clone()));
            }
        }
        let old_included = std::mem::replace(&mut e.included_users, included);
        for user in old_included.symmetric_difference(&e.included_users) {
            self.mark(Dirty::User(user.clone()));
        }
        let changed = e
            .config
            .borrow()
            .as_ref()
            .is_none_or(|c| c.version != config.version);
        if changed {
            e.published_at = Some(Instant::now());
            e.config.send_replace(Some(Arc::new(config)));
        }
        changed
    }

    /// Forgets a deleted gateway; its agent streams see the channel close and its users
    /// are marked dirty.
    pub fn remove(&self, gateway: &str) {
        self.states.forget(gateway);
        let removed = self.lock().remove(gateway);
        for user in removed
            .iter()
            .flat_map(|e| e.included_users.iter().chain(e.rejected_users.keys()))
        {
            self.mark(Dirty::User(user.clone()));
        }
    }

    /// The gateways the hub holds state for.
    pub fn gateways(&self) -> Vec<Key> {
        self.lock().keys().cloned().collect()
    }

    /// Marks every user the last configuration of `gateway` served or left out dirty (their
    /// `Ready` follows the gateway's).
    pub fn mark_users(&self, gateway: &str) {
        let users: Vec<Key> = self
            .lock()
            .get(gateway)
            .into_iter()
            .flat_map(|e| e.included_users.iter().chain(e.rejected_users.keys()))
            .cloned()
            .collect();
        for user in users {
            self.mark(Dirty::User(user));
        }
    }

    /// The configuration channel of a gateway (created empty if unknown).
    pub fn subscribe(&self, gateway: &str) -> watch::Receiver<Option<Arc<WipedConfig>>> {
        self.lock()
            .entry(gateway.to_owned())
            .or_insert_with(Entry::new)
            .config
            .subscribe()
    }

    /// An agent opened a stream; returns a stream id for the calls below.
    pub fn agent_connected(&self, gateway: &str, hello: &pb::Hello) -> u64 {
        let id = self
            .next_stream
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut map = self.lock();
        let e = map.entry(gateway.to_owned()).or_insert_with(Entry::new);
        e.agents.insert(
            hello.pod.clone(),
            Agent {
                node: hello.node.clone(),
                connected: true,
                applied_version: hello.applied_version.clone(),
                stream: id,
                ..Agent::default()
            },
        );
        drop(map);
        self.mark(Dirty::Gateway(gateway.to_owned()));
        id
    }

    /// The stream `stream` of `pod` ended. A newer stream of the same pod is left alone.
    pub fn agent_gone(&self, gateway: &str, pod: &str, stream: u64) {
        let mut map = self.lock();
        let Some(e) = map.get_mut(gateway) else {
            return;
        };
        if e.agents.get(pod).is_some_and(|a| a.stream == stream) {
            if let Some(a) = e.agents.remove(pod) {
                for s in &a.sessions {
                    self.mark(Dirty::User(s.source.clone()));
                }
            }
            drop(map);
            self.mark(Dirty::Gateway(gateway.to_owned()));
        }
    }

    /// An ACK or NACK from `pod`.
    pub fn agent_ack(&self, gateway: &str, pod: &str, stream: u64, ack: &pb::ConfigAck) {
        let mut map = self.lock();
        let Some(e) = map.get_mut(gateway) else {
            return;
        };
        let current = e.config.borrow().as_ref().map(|c| c.version.clone());
        let published_at = e.published_at;
        let Some(a) = e.agents.get_mut(pod).filter(|a| a.stream == stream) else {
            return;
        };
        if ack.accepted {
            a.applied_version = ack.version.clone();
            a.nack = None;
            if current.as_deref() == Some(ack.version.as_str())
                && let Some(t) = published_at
            {
                let mut l = self.ack_latency.lock().unwrap_or_else(|p| p.into_inner());
                if l.len() < 100_000 {
                    l.push(t.elapsed().as_secs_f64());
                }
            }
        } else {
            a.nack = Some((ack.version.clone(), ack.error.clone()));
        }
        drop(map);
        self.mark(Dirty::Gateway(gateway.to_owned()));
    }

    /// A session report from `pod`.
    pub fn agent_report(&self, gateway: &str, pod: &str, stream: u64, report: pb::SessionReport) {
        let mut touched: Vec<Key> = Vec::new();
        let mut map = self.lock();
        let Some(e) = map.get_mut(gateway) else {
            return;
        };
        let Some(a) = e.agents.get_mut(pod).filter(|a| a.stream == stream) else {
            return;
        };
        for ev in report.events.iter().take(MAX_EVENTS_PER_REPORT) {
            match ev.kind() {
                SessionEventKind::Up => {
                    if !report.has_snapshot && a.sessions.len() < MAX_SESSIONS_PER_AGENT {
                        a.sessions.push(pb::Session {
                            username: ev.username.clone(),
                            source: ev.source.clone(),
                            protocol: ev.protocol.clone(),
                            address: ev.address.clone(),
                            caller_address: ev.caller_address.clone(),
                            since_unix: ev.time_unix,
                            ..pb::Session::default()
                        });
                    }
                    if e.included_users.contains(&ev.source) {
                        let act = e.activity.entry(ev.source.clone()).or_default();
                        act.last_login = act.last_login.max(Some(ev.time_unix));
                    }
                }
                SessionEventKind::Down => {
                    if !report.has_snapshot {
                        a.sessions
                            .retain(|s| !(s.username == ev.username && s.address == ev.address));
                    }
                }
                SessionEventKind::AuthFailure => {
                    // Only users of this gateway: activity never grows with what a peer makes up.
                    if !e.included_users.contains(&ev.source)
                        && !e.rejected_users.contains_key(&ev.source)
                    {
                        continue;
                    }
                    e.activity
                        .entry(ev.source.clone())
                        .or_default()
                        .last_failure = Some(AuthFailure {
                        time: timestamp(ev.time_unix),
                        caller_address: ev.caller_address.clone(),
                        reason: ev.reason.clone(),
                    });
                }
                SessionEventKind::Unspecified => continue,
            }
            if !ev.source.is_empty() {
                touched.push(ev.source.clone());
            }
        }
        if report.has_snapshot {
            let mut sessions = report.sessions;
            sessions.truncate(MAX_SESSIONS_PER_AGENT);
            // Users whose sessions changed: everyone in the old or the new list.
            touched.extend(a.sessions.iter().map(|s| s.source.clone()));
            touched.extend(sessions.iter().map(|s| s.source.clone()));
            a.sessions = sessions;
            a.snapshot_seen = true;
        }
        if report.counters.is_some() {
            a.counters = report.counters;
        }
        a.draining = report.draining;
        touched.sort();
        touched.dedup();
        touched.retain(|u| e.included_users.contains(u) || e.rejected_users.contains_key(u));
        drop(map);
        for u in touched {
            self.mark(Dirty::User(u));
        }
        self.mark(Dirty::Gateway(gateway.to_owned()));
    }

    fn grace_over(&self) -> bool {
        self.started.elapsed() >= self.grace
    }

    /// Whether the live sessions of a gateway are known: once some agent has connected and
    /// every connected one has sent a snapshot, or once the start-up grace is over (agents
    /// that never come back). Before that, an operator restart would show no sessions.
    fn sessions_known(&self, e: &Entry) -> bool {
        self.grace_over() || (!e.agents.is_empty() && e.agents.values().all(|a| a.snapshot_seen))
    }

    /// What the gateway status writer needs.
    pub fn gateway_view(&self, gateway: &str) -> GatewayView {
        let map = self.lock();
        let Some(e) = map.get(gateway) else {
            return GatewayView {
                sessions_unknown: !self.grace_over(),
                ..GatewayView::default()
            };
        };
        let mut sessions = SessionCounts::default();
        for s in e.agents.values().flat_map(|a| &a.sessions) {
            sessions.total = sessions.total.saturating_add(1);
            match s.protocol.as_str() {
                "pptp" => sessions.pptp = sessions.pptp.saturating_add(1),
                "l2tp" => sessions.l2tp = sessions.l2tp.saturating_add(1),
                _ => {}
            }
        }
        GatewayView {
            version: e.config.borrow().as_ref().map(|c| c.version.clone()),
            agents: e.agents.clone(),
            rejected_users: e.rejected_users.clone(),
            sessions,
            sessions_unknown: !self.sessions_known(e),
        }
    }

    /// What the user status writer needs for user `user` of gateway `gateway`.
    pub fn user_view(&self, gateway: &str, user: &str) -> UserView {
        let map = self.lock();
        let Some(e) = map.get(gateway) else {
            return UserView {
                known: self.grace_over(),
                ..UserView::default()
            };
        };
        let mut sessions: Vec<UserSession> = e
            .agents
            .values()
            .flat_map(|a| {
                a.sessions
                    .iter()
                    .filter(|s| s.source == user)
                    .map(|s| user_session(s, &a.node))
            })
            .collect();
        sessions.sort_by(|a, b| (&a.since, &a.address).cmp(&(&b.since, &b.address)));
        let act = e.activity.get(user).cloned().unwrap_or_default();
        UserView {
            known: self.sessions_known(e),
            sessions,
            last_login: act.last_login,
            last_failure: act.last_failure,
            rejected: e.rejected_users.get(user).cloned(),
            included: e.included_users.contains(user),
            configured: e.config.borrow().is_some(),
        }
    }

    /// Change-to-ACK delays observed since the last call (seconds).
    pub fn take_ack_latencies(&self) -> Vec<f64> {
        std::mem::take(&mut *self.ack_latency.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn hello(pod: &str) -> pb::Hello {
        pb::Hello {
            gateway: "ns/gw".into(),
            node: "n".into(),
            pod: pod.into(),
            ..pb::Hello::default()
        }
    }

    fn event(kind: SessionEventKind, source: &str, address: &str) -> pb::SessionEvent {
        pb::SessionEvent {
            kind: kind as i32,
            username: source.rsplit('/').next().unwrap_or("").into(),
            source: source.into(),
            address: address.into(),
            time_unix: 100,
            ..pb::SessionEvent::default()
        }
    }

    fn hub_with_users() -> (Arc<Hub>, mpsc::UnboundedReceiver<Dirty>) {
        let (hub, rx) = Hub::new(Duration::from_secs(3600));
        let cfg = GatewayConfig {
            version: "v1".into(),
            ..GatewayConfig::default()
        };
        hub.publish(
            "ns/gw",
            cfg,
            BTreeMap::new(),
            ["ns/alice".to_owned()].into(),
        );
        (hub, rx)
    }

    #[test]
    fn events_update_sessions_between_snapshots() {
        let (hub, _rx) = hub_with_users();
        let s = hub.agent_connected("ns/gw", &hello("p"));
        let report = |events| pb::SessionReport {
            events,
            ..pb::SessionReport::default()
        };
        hub.agent_report(
            "ns/gw",
            "p",
            s,
            report(vec![event(SessionEventKind::Up, "ns/alice", "10.0.0.2")]),
        );
        let v = hub.user_view("ns/gw", "ns/alice");
        assert_eq!(v.sessions.len(), 1);
        assert_eq!(v.last_login, Some(100));
        assert!(!v.known, "no snapshot yet and the grace is long");
        hub.agent_report(
            "ns/gw",
            "p",
            s,
            report(vec![event(SessionEventKind::Down, "ns/alice", "10.0.0.2")]),
        );
        assert!(hub.user_view("ns/gw", "ns/alice").sessions.is_empty());
        hub.agent_report(
            "ns/gw",
            "p",
            s,
            pb::SessionReport {
                has_snapshot: true,
                ..pb::SessionReport::default()
            },
        );
        assert!(hub.user_view("ns/gw", "ns/alice").known);
    }

    #[test]
    fn the_drain_state_and_live_counts_follow_the_reports() {
        let (hub, _rx) = hub_with_users();
        let s = hub.agent_connected("ns/gw", &hello("p"));
        let v = hub.gateway_view("ns/gw");
        assert_eq!(v.agents["p"].live_sessions(), None, "no snapshot yet");
        hub.agent_report(
            "ns/gw",
            "p",
            s,
            pb::SessionReport {
                has_snapshot: true,
                sessions: vec![pb::Session::default(); 3],
                draining: true,
                ..pb::SessionReport::default()
            },
        );
        let v = hub.gateway_view("ns/gw");
        assert_eq!(v.agents["p"].live_sessions(), Some(3));
        assert_eq!(v.draining_pods(), BTreeSet::from(["p".to_owned()]));
        // An events-only report carries the state too.
        hub.agent_report("ns/gw", "p", s, pb::SessionReport::default());
        assert!(hub.gateway_view("ns/gw").draining_pods().is_empty());
    }

    #[test]
    fn a_stale_stream_cannot_touch_a_newer_one() {
        let (hub, _rx) = hub_with_users();
        let old = hub.agent_connected("ns/gw", &hello("p"));
        let new = hub.agent_connected("ns/gw", &hello("p"));
        hub.agent_gone("ns/gw", "p", old);
        assert!(hub.gateway_view("ns/gw").agents.contains_key("p"));
        hub.agent_ack(
            "ns/gw",
            "p",
            old,
            &pb::ConfigAck {
                version: "v1".into(),
                accepted: true,
                error: String::new(),
            },
        );
        assert_eq!(hub.gateway_view("ns/gw").agents["p"].applied_version, "");
        hub.agent_ack(
            "ns/gw",
            "p",
            new,
            &pb::ConfigAck {
                version: "v1".into(),
                accepted: true,
                error: String::new(),
            },
        );
        assert_eq!(hub.gateway_view("ns/gw").agents["p"].applied_version, "v1");
        hub.agent_gone("ns/gw", "p", new);
        assert!(hub.gateway_view("ns/gw").agents.is_empty());
    }

    #[test]
    fn made_up_users_and_floods_stay_bounded() {
        let (hub, mut rx) = hub_with_users();
        let s = hub.agent_connected("ns/gw", &hello("p"));
        while rx.try_recv().is_ok() {}
        let events: Vec<_> = (0..(MAX_SESSIONS_PER_AGENT + 10))
            .map(|i| event(SessionEventKind::Up, &format!("ns/u{i}"), "x"))
            .collect();
        hub.agent_report(
            "ns/gw",
            "p",
            s,
            pb::SessionReport {
                events,
                ..pb::SessionReport::default()
            },
        );
        assert!(hub.gateway_view("ns/gw").agents["p"].sessions.len() <= MAX_EVENTS_PER_REPORT);
        let mut users = 0;
        while let Ok(d) = rx.try_recv() {
            if matches!(d, Dirty::User(_)) {
                users += 1;
            }
        }
        assert_eq!(users, 0, "unknown users are not marked");
        let fail = event(SessionEventKind::AuthFailure, "ns/mallory", "");
        hub.agent_report(
            "ns/gw",
            "p",
            s,
            pb::SessionReport {
                events: vec![fail],
                ..pb::SessionReport::default()
            },
        );
        assert!(hub.user_view("ns/gw", "ns/mallory").last_failure.is_none());
    }
}
