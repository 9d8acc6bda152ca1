//! The gateway's side of the data path: admission (who may log in, limits),
//! address assignment, routes, accounting, teardown and live reload.

pub mod admission;
pub mod events;
pub mod log_budget;
pub mod login;
pub mod login_throttle;
pub mod policy;
pub mod pool;
pub mod snapshot;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use ipnet::Ipv4Net;
use sluice_ppp::{AuthProto, DownReason, Encoding, Event};
use sluice_proto::v1::SessionEventKind;
use tokio::sync::{mpsc, watch};
use tracing::{Span, info, warn};

use crate::config::{Credential, Runtime, UserEntry};
use crate::datapath::callid::CallIds;
use crate::datapath::link::{CtlCmd, Framing, Link, LinkState};
use crate::datapath::{self, DataPath, Hooks, drive};
use crate::gateway::admission::SetupSlot;
use crate::gateway::admission::{Admission, AdmissionLimits};
use crate::gateway::login::LoginGuard;
use crate::gateway::login_throttle::Verdict;
use crate::gateway::policy::{
    CallContext, LoginRefusal, OpenRefusal, admit_authenticated, admit_call, admit_login,
    keeps_session,
};
use crate::gateway::pool::Pool;
use crate::io::netcfg::RouteCmd;
use crate::metrics::{MethodLabels, ProtoLabels, Protocol, SessionLabels, SetupResult, UserSeries};
use crate::sync::lock;
use events::{Details, EventQueue};

/// Shared state of one running gateway.
pub struct Gateway {
    pub dp: DataPath,
    cfg: RwLock<Arc<Runtime>>,
    pool: Mutex<Pool>,
    pub call_ids: Mutex<CallIds>,
    user_sessions: Mutex<HashMap<String, u32>>,
    routes: Option<mpsc::UnboundedSender<RouteCmd>>,
    /// Calls one PPTP control connection may hold (stock clients use one; each call costs a
    /// Call ID and a PPP engine before anyone has authenticated).
    pub max_calls_per_connection: u16,
    /// Agent mode: session events for the operator (`None` standalone, which then pays nothing).
    pub events: Option<EventQueue>,
    /// The tunnels this node dials as a client (`VpnClient`s; issue 22).
    pub diallers: crate::client::dialler::Diallers,
    /// Tells the L2TP control task to close every tunnel (StopCCN) and end.
    pub l2tp_shutdown: watch::Sender<bool>,
    /// While draining: when the remaining sessions are closed anyway.
    drain: Mutex<Option<Instant>>,
    /// Bytes (from, to) the clients of each user moved in sessions that ended; held
    /// while a session's bytes move here from the link table, so a scrape of the
    /// per-user series never counts them twice.
    user_bytes: Mutex<HashMap<String, (u64, u64)>>,
    /// Per-source caps before authentication; authenticated-session count.
    pub admission: Arc<Admission>,
    /// Password-guessing throttle and the failed-login log.
    pub login: LoginGuard,
    /// A PPTP control connection without a call is closed after this.
    pub control_idle_timeout: Duration,
}

/// Default for [`Gateway::max_calls_per_connection`].
pub const DEFAULT_MAX_CALLS_PER_CONNECTION: u16 = 16;

/// Name of an authentication method for logs and metric labels.
pub fn method_name(m: AuthProto) -> &'static str {
    match m {
        AuthProto::Pap => "pap",
        AuthProto::ChapMd5 => "chap",
        AuthProto::MsChapV1 => "mschapv1",
        AuthProto::MsChapV2 => "mschapv2",
    }
}

/// The `encoding` label of a session: its PPP encryption, under IPsec or not.
fn encoding_label(encoding: Encoding, ipsec: bool) -> &'static str {
    match (ipsec, encoding) {
        (false, Encoding::None) => "none",
        (false, Encoding::Mppe { bits: 128, .. }) => "mppe128",
        (false, Encoding::Mppe { bits: 56, .. }) => "mppe56",
        (false, Encoding::Mppe { .. }) => "mppe40",
        (true, Encoding::None) => "ipsec",
        (true, Encoding::Mppe { bits: 128, .. }) => "ipsec+mppe128",
        (true, Encoding::Mppe { bits: 56, .. }) => "ipsec+mppe56",
        (true, Encoding::Mppe { .. }) => "ipsec+mppe40",
    }
}

fn classify(reason: &DownReason) -> SetupResult {
    match reason {
        DownReason::AuthFailed => SetupResult::AuthFailed,
        DownReason::EncryptionRequired => SetupResult::EncryptionRequired,
        DownReason::NegotiationFailed(_) => SetupResult::NegotiationFailed,
        DownReason::KeepaliveTimeout | DownReason::AuthTimeout => SetupResult::Timeout,
        DownReason::PeerTerminated => SetupResult::PeerClosed,
        _ => SetupResult::Error,
    }
}

impl Gateway {
    pub fn new(
        dp: DataPath,
        cfg: Runtime,
        routes: Option<mpsc::UnboundedSender<RouteCmd>>,
        call_id_seed: u64,
    ) -> Gateway {
        let pool = Pool::new(cfg.pool, cfg.reserved_addresses());
        dp.metrics.set_config(&cfg.gateway, &cfg.version);
        let gw = Gateway {
            dp,
            pool: Mutex::new(pool),
            cfg: RwLock::new(Arc::new(cfg)),
            call_ids: Mutex::new(CallIds::new(call_id_seed)),
            user_sessions: Mutex::new(HashMap::new()),
            routes,
            max_calls_per_connection: DEFAULT_MAX_CALLS_PER_CONNECTION,
            events: None,
            diallers: Default::default(),
            l2tp_shutdown: watch::channel(false).0,
            drain: Mutex::new(None),
            user_bytes: Mutex::new(HashMap::new()),
            admission: Admission::new(AdmissionLimits::default()),
            login: LoginGuard::default(),
            control_idle_timeout: crate::control::pptp::NO_CALL_TIMEOUT,
        };
        gw.dp.l2tp_plain.store(
            gw.config().l2tp.plain_allowed(),
            std::sync::atomic::Ordering::Relaxed,
        );
        gw.update_pool_metrics();
        gw
    }

    /// Starts draining: new sessions are refused (PPTP Outgoing-Call-Reply "busy", L2TP CDN
    /// "temporary lack of facilities"), existing ones carry on, and the process ends once
    /// none is left or at `now + timeout`, closing what remains properly (Call-Clear /
    /// StopCCN / LCP Terminate) so clients reconnect elsewhere. A later call may bring the
    /// deadline forward, never push it back; draining cannot be undone. Returns the deadline.
    pub fn start_drain(&self, now: Instant, timeout: Duration) -> Instant {
        let mut d = lock(&self.drain);
        let asked = now + timeout;
        let deadline = d.map_or(asked, |earlier| earlier.min(asked));
        *d = Some(deadline);
        self.dp.metrics.draining.set(1);
        deadline
    }

    /// Whether the gateway is draining.
    pub fn draining(&self) -> bool {
        lock(&self.drain).is_some()
    }

    /// When the remaining sessions are closed, while draining.
    pub fn drain_deadline(&self) -> Option<Instant> {
        *lock(&self.drain)
    }

    /// While draining: why the gateway should stop now (no session left, or the deadline).
    pub fn drain_finished(&self, now: Instant) -> Option<&'static str> {
        let deadline = self.drain_deadline()?;
        if self.dp.links.served() == 0 {
            Some("drained: no session left")
        } else if now >= deadline {
            Some("drain timeout: closing the remaining sessions")
        } else {
            None
        }
    }

    /// Per-user series for `/metrics`, when the gateway enables them (`metrics.perUser`):
    /// sessions up and bytes by user, ended sessions' bytes included.
    ///
    /// Lock order is the teardown's (link, then `user_bytes`, then the table): live links
    /// are read first, then, under `user_bytes`, a link no longer in the table is left
    /// out because its bytes have moved to the totals.
    pub fn user_series(&self) -> Option<Vec<(String, UserSeries)>> {
        if !self.config().per_user_metrics {
            return None;
        }
        let live: Vec<(Arc<Link>, String)> = self
            .dp
            .links
            .served_links()
            .into_iter()
            .filter_map(|link| {
                let user = {
                    let st = link.lock();
                    st.up_at.and(st.username.clone())?
                };
                Some((link, user))
            })
            .collect();
        let totals = lock(&self.user_bytes);
        let mut out: HashMap<String, UserSeries> = totals
            .iter()
            .map(|(u, &(rx_bytes, tx_bytes))| {
                let s = UserSeries {
                    sessions: 0,
                    rx_bytes,
                    tx_bytes,
                };
                (u.clone(), s)
            })
            .collect();
        for (link, user) in live {
            if !self
                .dp
                .links
                .get(link.local_call_id)
                .is_some_and(|l| Arc::ptr_eq(&l, &link))
            {
                continue;
            }
            let s = out.entry(user).or_default();
            s.sessions += 1;
            s.rx_bytes += link.stats.rx_bytes.load(Ordering::Relaxed);
            s.tx_bytes += link.stats.tx_bytes.load(Ordering::Relaxed);
        }
        drop(totals);
        let mut out: Vec<_> = out.into_iter().collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Some(out)
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<Runtime> {
        self.cfg.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn update_pool_metrics(&self) {
        let pool = lock(&self.pool);
        let used = pool.leased() as i64;
        self.dp.metrics.pool_used.set(used);
        self.dp
            .metrics
            .pool_free
            .set(i64::from(pool.capacity()).saturating_sub(used).max(0));
    }

    /// Admits a new PPTP call or L2TP session from `caller` by the rules both protocols
    /// share ([`admit_call`]), then takes its place among the sessions in setup and a call
    /// ID. A refusal is counted (`sluice_session_setups_total`, and the dropped reason of
    /// an admission slot) before it is returned.
    pub fn open_call(
        &self,
        protocol: Protocol,
        caller: Ipv4Addr,
        stopping: bool,
    ) -> Result<(SetupSlot, u16), OpenRefusal> {
        let cfg = self.config();
        let opened = admit_call(&CallContext {
            serves: cfg.serves(protocol),
            stopping,
            draining: self.draining(),
            authenticated: self.admission.authenticated(),
            max_sessions: cfg.max_sessions,
        })
        .map_err(OpenRefusal::Call)
        .and_then(|()| {
            self.admission.setup(caller).map_err(|r| {
                self.dp.metrics.dropped(r.as_str());
                OpenRefusal::Setups(r)
            })
        })
        .and_then(|slot| {
            let id = lock(&self.call_ids).allocate().ok_or(OpenRefusal::NoIds)?;
            Ok((slot, id))
        });
        if let Err(why) = opened {
            self.dp.metrics.setup(protocol, why.setup_result());
        }
        opened
    }

    /// The user's sessions now.
    fn user_sessions(&self, username: &str) -> u32 {
        lock(&self.user_sessions)
            .get(username)
            .copied()
            .unwrap_or(0)
    }

    /// Counts an authenticated session of `user` if the gateway's and the user's
    /// `maxSessions` allow it ([`admit_authenticated`], checked under the count's lock).
    fn count_user(&self, cfg: &Runtime, user: &UserEntry) -> Result<(), LoginRefusal> {
        let mut map = lock(&self.user_sessions);
        let n = map.entry(user.username.clone()).or_insert(0);
        admit_authenticated(cfg.max_sessions, self.admission.authenticated(), user, *n)?;
        *n += 1;
        self.admission.add_authenticated();
        Ok(())
    }

    fn uncount_user(&self, username: &str) {
        let mut map = lock(&self.user_sessions);
        if let Some(n) = map.get_mut(username) {
            self.admission.remove_authenticated();
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(username);
            }
        }
    }

    /// Counts the setup's outcome (once) and closes its trace.
    fn record_setup(&self, link: &Link, st: &mut LinkState, result: SetupResult) {
        if st.session.record() {
            self.emit_setup(link, st, result);
        }
    }

    fn emit_setup(&self, link: &Link, st: &mut LinkState, result: SetupResult) {
        self.dp.metrics.setup(link.protocol, result);
        st.setup_span.record("result", result.as_str());
        st.phase_span = Span::none();
        st.setup_span = Span::none();
    }

    /// Queues a session event for the operator (agent mode only).
    fn report(&self, kind: SessionEventKind, details: Details<'_>) {
        if let Some(q) = &self.events {
            q.push(events::session_event(kind, details));
        }
    }

    fn route(&self, cmd: RouteCmd) {
        if let Some(tx) = &self.routes {
            let _ = tx.send(cmd);
        }
    }

    /// Routes a session needs beyond the pool route.
    fn session_routes(cfg: &Runtime, addr: Ipv4Addr, user_routes: &[Ipv4Net]) -> Vec<Ipv4Net> {
        let mut routes = Vec::new();
        if !cfg.pool.contains(&addr) {
            routes.push(Ipv4Net::from(addr));
        }
        routes.extend_from_slice(user_routes);
        routes
    }

    /// Releases everything a link holds. Idempotent.
    pub fn teardown(&self, link: &Arc<Link>, st: &mut LinkState, cause: &str, result: SetupResult) {
        let Some(closing) = st.session.close(result) else {
            return;
        };
        st.down_reason = Some(cause.to_owned());
        st.held_auth = None;
        if st.setup_slot.take().is_some() {
            self.note_setups();
        }
        link.dead.store(true, Ordering::Relaxed);
        if st.up_at.is_some() {
            self.report(
                SessionEventKind::Down,
                Details {
                    protocol: link.protocol,
                    username: st.username.as_deref().unwrap_or(""),
                    source: &st.source,
                    caller: link.peer,
                    address: st.address,
                    reason: cause,
                },
            );
        }
        if let Some(addr) = st.address.take() {
            self.dp.links.unbind_address(addr, link.local_call_id);
            lock(&self.pool).release(addr);
        }
        if st.up_at.is_some() {
            self.dp.links.unbind_nets(link.local_call_id);
            for r in std::mem::take(&mut st.routes) {
                self.route(RouteCmd::Del(r));
            }
        }
        if closing.counted
            && let Some(u) = &st.username
        {
            self.uncount_user(u);
        }
        if let Some(labels) = st.active.take() {
            self.dp.metrics.sessions_active.get_or_create(&labels).dec();
            self.dp.metrics.sessions_up.dec();
        }
        if let Some((up, _)) = st.up_at {
            info!(
                protocol = link.protocol.as_str(),
                user = st.username.as_deref().unwrap_or(""),
                caller = %link.peer,
                call_id = link.local_call_id,
                duration_s = up.elapsed().as_secs(),
                rx_bytes = link.stats.rx_bytes.load(Ordering::Relaxed),
                tx_bytes = link.stats.tx_bytes.load(Ordering::Relaxed),
                %cause,
                "session down"
            );
        } else {
            if !closing.recorded {
                self.emit_setup(link, st, closing.result);
            }
            // Failed setups are attacker-driven: through the failed-login log budget.
            let user = st.username.as_deref().unwrap_or("");
            self.login.log(user, link.peer, Instant::now(), || {
                info!(
                    protocol = link.protocol.as_str(),
                    user,
                    caller = %link.peer,
                    call_id = link.local_call_id,
                    %cause,
                    "session setup failed"
                );
            });
        }
        {
            let mut totals = lock(&self.user_bytes);
            if let (Some(user), Some(_)) = (&st.username, st.up_at) {
                let t = totals.entry(user.clone()).or_default();
                t.0 += link.stats.rx_bytes.load(Ordering::Relaxed);
                t.1 += link.stats.tx_bytes.load(Ordering::Relaxed);
            }
            self.dp.links.remove(link.local_call_id);
        }
        lock(&self.call_ids).release(link.local_call_id);
        let _ = link.ctl.send(CtlCmd::CallDown {
            local_call_id: link.local_call_id,
            cause: cause.to_owned(),
        });
        self.update_pool_metrics();
    }

    /// Ends a link gracefully: LCP Terminate-Request; teardown follows on the
    /// engine's Down event (or its terminate timer).
    pub fn close(self: &Arc<Self>, link: &Arc<Link>, reason: &str) {
        let now = Instant::now();
        let mut st = link.lock();
        if st.session.is_closed() {
            return;
        }
        st.ppp.close(now, reason);
        drive(&**self, link, &mut st, now);
    }

    /// Ends a link at once (its control connection is gone or cleared it).
    pub fn abort(self: &Arc<Self>, link: &Arc<Link>, reason: &str) {
        let now = Instant::now();
        let mut st = link.lock();
        if st.session.is_closed() {
            return;
        }
        st.ppp.close(now, reason);
        drive(&**self, link, &mut st, now);
        self.teardown(link, &mut st, reason, SetupResult::PeerClosed);
    }

    /// Applies a new configuration: new logins use it at once; sessions of
    /// users that were removed, disabled or lost the service (or whose protocol
    /// was disabled) are closed; every other session is left alone.
    pub fn apply(self: &Arc<Self>, new: Runtime) {
        let new = Arc::new(new);
        let old = {
            let mut guard = self.cfg.write().unwrap_or_else(|p| p.into_inner());
            std::mem::replace(&mut *guard, new.clone())
        };
        self.dp.l2tp_plain.store(
            new.l2tp.plain_allowed(),
            std::sync::atomic::Ordering::Relaxed,
        );
        lock(&self.pool).reconfigure(new.pool, new.reserved_addresses());
        self.update_pool_metrics();
        self.dp.metrics.set_config(&new.gateway, &new.version);
        if old.pptp_port != new.pptp_port {
            warn!(
                old = old.pptp_port,
                new = new.pptp_port,
                "spec.pptp.port changed: the listener keeps the old port until restart"
            );
        }
        if old.l2tp.enabled && new.l2tp.enabled && old.l2tp.port != new.l2tp.port {
            warn!(
                old = old.l2tp.port,
                new = new.l2tp.port,
                "spec.l2tp.port changed: the L2TP port stays the old one until restart"
            );
        }
        let mut closed = 0;
        // The calls this node dialled are its diallers' (`Diallers::apply`), not users'.
        for link in self.dp.links.served_links() {
            let user = link.lock().username.clone();
            let Some(user) = user else { continue };
            if !keeps_session(&old, &new, link.protocol, &user) {
                info!(%user, call_id = link.local_call_id, "user removed, disabled or changed address: disconnecting");
                self.close(&link, "user removed or disabled by configuration");
                closed += 1;
                continue;
            }
            // A changed rate limit applies to the user's live sessions at once.
            let limit = new.users.get(&user).and_then(|u| u.rate_limit);
            let mut st = link.lock();
            if st.rate_limit.as_ref().map(|(r, _)| *r) != limit {
                let now_ns = self.dp.clock.now_nanos(Instant::now());
                st.rate_limit = limit.map(|r| (r, r.buckets(now_ns)));
            }
        }
        info!(version = %new.version, users = new.users.len(), closed, "configuration applied");
    }
}

impl Gateway {
    /// Looks the user up and lets the PPP authenticator check the password (or fail an
    /// unknown or refused user without a check).
    fn answer_auth(&self, link: &Link, st: &mut LinkState, now: Instant) {
        let username = st.username.clone().unwrap_or_default();
        let cfg = self.config();
        let current = self.user_sessions(&username);
        let credential = match admit_login(cfg.users.get(&username), link.protocol, current) {
            Ok(user) => Some(user.credential.as_ppp()),
            Err(why) => {
                self.login.log(&username, link.peer, now, || {
                    info!(user = %username, caller = %link.peer, reason = %why, "login refused");
                });
                let result = why.setup_result();
                if result != SetupResult::AuthFailed {
                    // Refused by policy: count it as such, not as a bad password.
                    st.session.login_refused();
                    self.record_setup(link, st, result);
                }
                st.refusal = Some(why.to_string());
                None
            }
        };
        st.ppp.provide_credential(now, credential);
    }

    /// Updates the sessions-in-setup gauge.
    pub fn note_setups(&self) {
        self.dp
            .metrics
            .setups_pending
            .set(i64::from(self.admission.setups()));
    }
}

impl Hooks for Gateway {
    fn on_timer(&self, link: &Arc<Link>, st: &mut LinkState, now: Instant) {
        if let Some(owner) = &link.owner {
            return owner.on_timer(link, st, now);
        }
        if st.held_auth.is_some_and(|at| now >= at) {
            st.held_auth = None;
            self.answer_auth(link, st, now);
        }
    }

    fn dp(&self) -> &DataPath {
        &self.dp
    }

    fn accept_source(&self, st: &LinkState, ip: &[u8]) -> datapath::SourceCheck {
        datapath::check_source(st, ip)
    }

    fn on_event(&self, link: &Arc<Link>, st: &mut LinkState, ev: Event, now: Instant) {
        // A call this node dialled (VpnClient): its dialler handles it.
        if let Some(owner) = &link.owner {
            return owner.on_event(link, st, ev, now);
        }
        match ev {
            Event::AuthRequest { username, method } => {
                st.setup_span.record("user", username.as_str());
                st.refusal = None;
                st.auth_method = Some(method);
                let verdict = self
                    .login
                    .admit(&self.dp.metrics, &username, link.peer, now);
                st.username = Some(username);
                match verdict {
                    Verdict::Now => self.answer_auth(link, st, now),
                    // Answered from the link's timer (on_timer).
                    Verdict::At(at) => st.held_auth = Some(at),
                    Verdict::Refuse => {
                        st.refusal = Some("too many failed logins: try again later".to_owned());
                        st.ppp.provide_credential(now, None);
                    }
                }
            }
            Event::Authenticated { username, method } => {
                st.session.login_succeeded();
                self.login.succeeded(&username, link.peer, now);
                let cfg = self.config();
                st.username = Some(username.clone());
                st.auth_method = Some(method);
                st.setup_slot = None;
                self.note_setups();
                let Some(user) = cfg.users.get(&username) else {
                    st.ppp.close(now, "user removed");
                    return;
                };
                if let Err(why) = self.count_user(&cfg, user) {
                    info!(user = %username, reason = %why, "session limit reached");
                    self.record_setup(link, st, why.setup_result());
                    st.ppp.close(now, &why.to_string());
                    return;
                }
                st.session.count();
                st.source.clone_from(&user.source);
                st.rate_limit = user
                    .rate_limit
                    .map(|r| (r, r.buckets(self.dp.clock.now_nanos(now))));
                let leased = {
                    let mut pool = lock(&self.pool);
                    match user.remote_address {
                        Some(a) => pool.claim(a),
                        None => pool.allocate(),
                    }
                };
                match leased {
                    Ok(addr) => {
                        st.address = Some(addr);
                        st.address_from_pool = user.remote_address.is_none();
                        st.routes = Self::session_routes(&cfg, addr, &user.routes);
                        st.ppp.set_peer_address(addr);
                        self.update_pool_metrics();
                    }
                    Err(e) => {
                        warn!(user = %username, error = %e, "no address for session");
                        self.record_setup(link, st, SetupResult::PoolExhausted);
                        st.ppp.close(now, &e.to_string());
                    }
                }
            }
            Event::AuthFailed {
                username,
                method,
                reason,
            } => {
                // Recorded when the setup ends: MS-CHAP peers may retry and succeed.
                if st.session.login_failed() {
                    // A password guess (or an unknown user), not a policy refusal.
                    self.dp
                        .metrics
                        .auth_failures
                        .get_or_create(&MethodLabels {
                            method: method_name(method),
                        })
                        .inc();
                    self.login
                        .failed(&self.dp.metrics, &username, link.peer, now);
                }
                self.login.log(&username, link.peer, now, || {
                    info!(user = %username, method = method_name(method), caller = %link.peer, %reason, "authentication failed");
                });
                if self.events.is_some() {
                    let cfg = self.config();
                    let user = cfg.users.get(&username);
                    let hash_only =
                        user.is_some_and(|u| matches!(u.credential, Credential::NtHash(_)));
                    let why = match &st.refusal {
                        Some(why) => why.as_str(),
                        None if reason == "authentication timeout" => "authentication timeout",
                        None if hash_only
                            && matches!(method, AuthProto::Pap | AuthProto::ChapMd5) =>
                        {
                            "only an NT hash is configured, which PAP and CHAP-MD5 cannot use"
                        }
                        None => "wrong password",
                    };
                    self.report(
                        SessionEventKind::AuthFailure,
                        Details {
                            protocol: link.protocol,
                            username: &username,
                            source: user.map_or("", |u| u.source.as_str()),
                            caller: link.peer,
                            address: None,
                            reason: why,
                        },
                    );
                }
            }
            Event::Up {
                local: _,
                peer,
                dns: _,
                encoding,
            } => {
                st.encoding = encoding;
                st.up_at = Some((now, SystemTime::now()));
                self.dp.links.bind_address(peer, link.clone());
                for r in &st.routes {
                    if r.prefix_len() < 32 || r.addr() != peer {
                        self.dp.links.bind_net(*r, link.clone());
                    }
                    self.route(RouteCmd::Add(*r));
                }
                let ipsec = match &st.framing {
                    Framing::L2tp(f) => self.dp.ipsec.get().is_some_and(|io| io.is_peer(f.remote)),
                    Framing::Gre(_) => false,
                };
                let labels = SessionLabels {
                    gateway: self.config().gateway.clone(),
                    protocol: link.protocol,
                    encoding: encoding_label(encoding, ipsec),
                };
                self.dp.metrics.sessions_active.get_or_create(&labels).inc();
                self.dp.metrics.sessions_up.inc();
                st.active = Some(labels);
                self.record_setup(link, st, SetupResult::Ok);
                self.dp
                    .metrics
                    .setup_duration
                    .get_or_create(&ProtoLabels {
                        protocol: link.protocol,
                    })
                    .observe(now.saturating_duration_since(link.created).as_secs_f64());
                info!(
                    protocol = link.protocol.as_str(),
                    user = st.username.as_deref().unwrap_or(""),
                    address = %peer,
                    caller = %link.peer,
                    call_id = link.local_call_id,
                    encoding = %encoding,
                    "session up"
                );
                self.report(
                    SessionEventKind::Up,
                    Details {
                        protocol: link.protocol,
                        username: st.username.as_deref().unwrap_or(""),
                        source: &st.source,
                        caller: link.peer,
                        address: Some(peer),
                        reason: "",
                    },
                );
            }
            Event::Down { reason } => {
                let result = classify(&reason);
                self.teardown(link, st, &reason.to_string(), result);
            }
        }
    }

    fn route(&self, ip: &[u8]) -> Option<Arc<Link>> {
        let dst = ip.get(16..20)?;
        let dst = Ipv4Addr::new(*dst.first()?, *dst.get(1)?, *dst.get(2)?, *dst.get(3)?);
        if let Some(link) = self.dp.links.by_address(dst) {
            return Some(link);
        }
        // Networks behind clients (spec.routes) and into dialled tunnels (never covering
        // the pool: `client::without`): longest prefix wins.
        self.dp.links.by_net(dst)
    }
}
