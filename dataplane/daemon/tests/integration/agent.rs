//! The agent's control channel against a fake operator (a tonic `Control`
//! server on 127.0.0.1) and a fake sink: Hello, ACK/NACK, idempotent re-sends,
//! event and snapshot reports, reconnect after the operator restarts, mTLS.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_dataplane::config::Runtime;
use sluice_dataplane::mode::agent::channel::{
    AgentError, AgentOptions, ApplyError, Backoff, ConfigSink, run_agent,
};
use sluice_dataplane::mode::agent::tls;
use sluice_proto::v1 as pb;
use sluice_proto::v1::agent_message::Body;
use sluice_proto::v1::control_server::{Control, ControlServer};
use sluice_proto::v1::operator_message;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status, Streaming};

/// Guards against a hang; never a timing assertion.
const GUARD: Duration = Duration::from_secs(30);
const GATEWAY: &str = "vpn/office";

// ---- fake sink ----------------------------------------------------------------

struct FakeSink {
    version: Mutex<Option<String>>,
    applies: AtomicUsize,
    events: Mutex<Vec<pb::SessionEvent>>,
    sessions: Mutex<Vec<pb::Session>>,
    connected: watch::Sender<bool>,
}

impl FakeSink {
    fn new() -> Arc<FakeSink> {
        Arc::new(FakeSink {
            version: Mutex::new(None),
            applies: AtomicUsize::new(0),
            events: Mutex::new(Vec::new()),
            sessions: Mutex::new(Vec::new()),
            connected: watch::channel(false).0,
        })
    }

    fn applies(&self) -> usize {
        self.applies.load(Ordering::SeqCst)
    }

    fn version(&self) -> Option<String> {
        self.version.lock().unwrap().clone()
    }

    async fn wait_connected(&self, want: bool) {
        let mut rx = self.connected.subscribe();
        timeout(GUARD, rx.wait_for(|c| *c == want))
            .await
            .expect("connection state never changed")
            .unwrap();
    }
}

impl ConfigSink for FakeSink {
    fn apply(&self, config: &pb::GatewayConfig) -> Result<(), ApplyError> {
        self.applies.fetch_add(1, Ordering::SeqCst);
        Runtime::from_proto(config).map_err(|e| e.to_string())?;
        *self.version.lock().unwrap() = Some(config.version.clone());
        Ok(())
    }

    fn applied_version(&self) -> Option<String> {
        self.version()
    }

    fn snapshot(&self) -> Vec<pb::Session> {
        self.sessions.lock().unwrap().clone()
    }

    fn drain_events(&self) -> Vec<pb::SessionEvent> {
        std::mem::take(&mut *self.events.lock().unwrap())
    }

    fn counters(&self) -> pb::Counters {
        pb::Counters {
            setups_ok: 7,
            active_sessions: self.sessions.lock().unwrap().len() as u32,
            ..pb::Counters::default()
        }
    }

    fn set_connected(&self, connected: bool) {
        self.connected.send_replace(connected);
    }
}

// ---- configurations -------------------------------------------------------------

fn user(password: &[u8], nt_hash: &[u8]) -> pb::User {
    pb::User {
        username: "alice".into(),
        password: password.to_vec(),
        services: vec![pb::Service::Pptp as i32],
        source: "vpn/alice".into(),
        nt_hash: nt_hash.to_vec(),
        ..pb::User::default()
    }
}

fn config(version: &str, users: Vec<pb::User>) -> pb::GatewayConfig {
    pb::GatewayConfig {
        gateway: GATEWAY.into(),
        version: version.into(),
        pptp: Some(pb::PptpSettings {
            enabled: true,
            port: 1723,
            authentication: vec![pb::AuthMethod::MschapV2 as i32],
            encryption: pb::EncryptionPolicy::Require as i32,
            mppe_key_lengths: vec![pb::MppeKeyLength::Bits128 as i32],
            mppe_stateful: pb::StatefulMppe::Refuse as i32,
        }),
        l2tp: None,
        ppp: Some(pb::PppSettings {
            mtu: 1400,
            mru: 1400,
            keepalive_timeout_seconds: 30,
            local_address: Some(sluice_api::wire::ipv4_to_wire([10, 200, 0, 1].into())),
            address_pool: Some(pb::Ipv4Prefix {
                address: u32::from(std::net::Ipv4Addr::new(10, 200, 0, 0)),
                length: 24,
            }),
            dns_servers: vec![],
            static_addresses: vec![],
        }),
        nat: None,
        max_sessions: 0,
        users,
        per_user_metrics: false,
        clients: vec![],
    }
}

fn good(version: &str) -> pb::GatewayConfig {
    config(version, vec![user(b"", &[0x5a; 16])])
}

fn message(config: pb::GatewayConfig) -> Result<pb::OperatorMessage, Status> {
    Ok(pb::OperatorMessage {
        body: Some(operator_message::Body::Config(config)),
    })
}

// ---- fake operator ----------------------------------------------------------------

type Outbound = mpsc::Sender<Result<pb::OperatorMessage, Status>>;

/// Messages are tagged with the number of the stream they came on.
struct FakeOperator {
    seen: mpsc::UnboundedSender<(usize, pb::AgentMessage)>,
    conns: mpsc::UnboundedSender<(usize, Outbound)>,
    streams: AtomicUsize,
    client_certs: Arc<Mutex<Vec<usize>>>,
}

#[tonic::async_trait]
impl Control for FakeOperator {
    type ConnectStream = ReceiverStream<Result<pb::OperatorMessage, Status>>;

    async fn connect(
        &self,
        request: Request<Streaming<pb::AgentMessage>>,
    ) -> Result<Response<Self::ConnectStream>, Status> {
        let certs = request.peer_certs().map_or(0, |c| c.len());
        self.client_certs.lock().unwrap().push(certs);
        let n = self.streams.fetch_add(1, Ordering::SeqCst);
        let mut inbound = request.into_inner();
        let seen = self.seen.clone();
        tokio::spawn(async move {
            while let Ok(Some(m)) = inbound.message().await {
                if seen.send((n, m)).is_err() {
                    break;
                }
            }
        });
        let (tx, rx) = mpsc::channel(16);
        let _ = self.conns.send((n, tx));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

struct Operator {
    addr: SocketAddr,
    seen: mpsc::UnboundedReceiver<(usize, pb::AgentMessage)>,
    conns: mpsc::UnboundedReceiver<(usize, Outbound)>,
    /// The stream last accepted; messages of older ones are skipped.
    current: usize,
    client_certs: Arc<Mutex<Vec<usize>>>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Operator {
    async fn start(listener: TcpListener, tls: Option<ServerTlsConfig>) -> Operator {
        let addr = listener.local_addr().unwrap();
        let (seen_tx, seen) = mpsc::unbounded_channel();
        let (conns_tx, conns) = mpsc::unbounded_channel();
        let client_certs = Arc::new(Mutex::new(Vec::new()));
        let svc = ControlServer::new(FakeOperator {
            seen: seen_tx,
            conns: conns_tx,
            streams: AtomicUsize::new(0),
            client_certs: client_certs.clone(),
        });
        let mut builder = Server::builder();
        if let Some(tls) = tls {
            builder = builder.tls_config(tls).unwrap();
        }
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            builder
                .serve_with_incoming_shutdown(svc, TcpIncoming::from(listener), async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Operator {
            addr,
            seen,
            conns,
            current: 0,
            client_certs,
            stop,
            task,
        }
    }

    async fn plaintext() -> Operator {
        Operator::start(TcpListener::bind("127.0.0.1:0").await.unwrap(), None).await
    }

    /// The next control stream an agent opened.
    async fn accept(&mut self) -> Outbound {
        let (n, out) = timeout(GUARD, self.conns.recv())
            .await
            .expect("no agent connected")
            .unwrap();
        self.current = n;
        out
    }

    /// The next message on the current stream.
    async fn next(&mut self) -> Body {
        loop {
            let (n, m) = timeout(GUARD, self.seen.recv())
                .await
                .expect("the agent went silent")
                .unwrap();
            if n == self.current {
                return m.body.unwrap();
            }
        }
    }

    async fn hello(&mut self) -> pb::Hello {
        match self.next().await {
            Body::Hello(h) => h,
            other => panic!("expected hello first, got {other:?}"),
        }
    }

    async fn ack(&mut self) -> pb::ConfigAck {
        loop {
            if let Body::Ack(a) = self.next().await {
                return a;
            }
        }
    }

    async fn report(&mut self, want: impl Fn(&pb::SessionReport) -> bool) -> pb::SessionReport {
        loop {
            if let Body::Report(r) = self.next().await
                && want(&r)
            {
                return r;
            }
        }
    }

    /// Stops serving: the listener closes, then the open streams end.
    async fn shut_down(self, open: Vec<Outbound>) -> SocketAddr {
        let _ = self.stop.send(());
        drop(open);
        drop(self.conns);
        timeout(GUARD, self.task)
            .await
            .expect("operator did not stop")
            .unwrap();
        self.addr
    }
}

// ---- agent -----------------------------------------------------------------------

struct Agent {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), AgentError>>,
}

impl Agent {
    fn start(opts: AgentOptions, sink: Arc<FakeSink>) -> Agent {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run_agent(opts, sink, async {
            let _ = stopped.await;
        }));
        Agent { stop, task }
    }

    fn plaintext(addr: SocketAddr, sink: Arc<FakeSink>, report: Duration) -> Agent {
        Agent::start(options(format!("http://{addr}"), None, report), sink)
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let result = timeout(GUARD, self.task)
            .await
            .expect("agent did not stop")
            .unwrap();
        assert!(result.is_ok(), "{result:?}");
    }
}

fn options(
    endpoint: String,
    tls: Option<tonic::transport::ClientTlsConfig>,
    report: Duration,
) -> AgentOptions {
    let mut opts = AgentOptions::new(endpoint, tls, GATEWAY, "node-1", "pod-1");
    opts.report_interval = report;
    opts.event_interval = Duration::from_millis(20);
    opts.backoff = Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
    };
    opts
}

const LONG: Duration = Duration::from_secs(3600);

// ---- tests -----------------------------------------------------------------------

#[tokio::test]
async fn hello_then_ack_nack_and_idempotent_resend() {
    let mut op = Operator::plaintext().await;
    let sink = FakeSink::new();
    let agent = Agent::plaintext(op.addr, sink.clone(), LONG);
    let out = op.accept().await;

    let hello = op.hello().await;
    assert_eq!(hello.gateway, GATEWAY);
    assert_eq!(hello.node, "node-1");
    assert_eq!(hello.pod, "pod-1");
    assert_eq!(hello.applied_version, "");
    assert_eq!(hello.agent_version, env!("CARGO_PKG_VERSION"));
    sink.wait_connected(true).await;

    // The first configuration is applied and ACKed.
    out.send(message(good("v1"))).await.unwrap();
    let ack = op.ack().await;
    assert_eq!(
        (ack.version.as_str(), ack.accepted, ack.error.as_str()),
        ("v1", true, "")
    );
    assert_eq!(sink.version().as_deref(), Some("v1"));
    assert_eq!(sink.applies(), 1);

    // A configuration that does not convert is NACKed with the reason; v1 stays.
    out.send(message(config("v2", vec![user(b"", &[1, 2, 3])])))
        .await
        .unwrap();
    let nack = op.ack().await;
    assert_eq!((nack.version.as_str(), nack.accepted), ("v2", false));
    assert!(nack.error.contains("NT hash is 3 octets"), "{}", nack.error);
    assert_eq!(sink.version().as_deref(), Some("v1"));
    assert_eq!(sink.applies(), 2);

    // Neither nor both credentials: NACKed too.
    for users in [vec![user(b"", b"")], vec![user(b"pw", &[9; 16])]] {
        out.send(message(config("v3", users))).await.unwrap();
        let nack = op.ack().await;
        assert!(!nack.accepted, "{nack:?}");
    }
    assert_eq!(sink.applies(), 4);

    // The version in force again: ACKed without re-applying.
    out.send(message(good("v1"))).await.unwrap();
    let ack = op.ack().await;
    assert_eq!((ack.version.as_str(), ack.accepted), ("v1", true));
    assert_eq!(sink.applies(), 4);

    // Another gateway's configuration is refused without reaching the sink.
    let mut other = good("v9");
    other.gateway = "vpn/elsewhere".into();
    out.send(message(other)).await.unwrap();
    let nack = op.ack().await;
    assert!(
        !nack.accepted && nack.error.contains("vpn/elsewhere"),
        "{nack:?}"
    );
    assert_eq!(sink.applies(), 4);
    assert_eq!(sink.version().as_deref(), Some("v1"));

    // A later good version is applied.
    out.send(message(good("v2"))).await.unwrap();
    assert!(op.ack().await.accepted);
    assert_eq!(sink.version().as_deref(), Some("v2"));

    agent.stop().await;
    sink.wait_connected(false).await;
}

fn session(user: &str) -> pb::Session {
    pb::Session {
        username: user.into(),
        source: format!("vpn/{user}"),
        protocol: "pptp".into(),
        address: "10.200.0.2".into(),
        caller_address: "192.0.2.10".into(),
        since_unix: 1_700_000_000,
        bytes_in: 10,
        bytes_out: 20,
        encoding: "MPPE 128 bit, stateless".into(),
    }
}

fn event(kind: pb::SessionEventKind, user: &str) -> pb::SessionEvent {
    pb::SessionEvent {
        kind: kind as i32,
        username: user.into(),
        source: String::new(),
        time_unix: 1_700_000_001,
        protocol: "pptp".into(),
        caller_address: "192.0.2.10".into(),
        address: String::new(),
        reason: "wrong password".into(),
    }
}

#[tokio::test]
async fn events_are_sent_promptly_and_snapshots_on_connect() {
    let mut op = Operator::plaintext().await;
    let sink = FakeSink::new();
    sink.sessions.lock().unwrap().push(session("alice"));
    sink.events
        .lock()
        .unwrap()
        .push(event(pb::SessionEventKind::Up, "queued-before-connect"));
    let agent = Agent::plaintext(op.addr, sink.clone(), LONG);
    let _out = op.accept().await;
    op.hello().await;

    // Right after connecting: a full snapshot, counters, and what queued meanwhile.
    let first = op.report(|_| true).await;
    assert!(first.has_snapshot);
    assert_eq!(first.sessions, vec![session("alice")]);
    assert_eq!(
        first.counters.map(|c| (c.setups_ok, c.active_sessions)),
        Some((7, 1))
    );
    assert_eq!(first.events.len(), 1);
    assert_eq!(first.events[0].username, "queued-before-connect");

    // Events go out on their own, without waiting for the (hour-long) snapshot interval.
    sink.events.lock().unwrap().extend([
        event(pb::SessionEventKind::AuthFailure, "mallory"),
        event(pb::SessionEventKind::Down, "alice"),
    ]);
    let mut got = Vec::new();
    while got.len() < 2 {
        let r = op.report(|r| !r.events.is_empty()).await;
        assert!(!r.has_snapshot && r.sessions.is_empty() && r.counters.is_none());
        got.extend(r.events);
    }
    let kinds: Vec<_> = got
        .iter()
        .map(|e| (e.kind(), e.username.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            (pb::SessionEventKind::AuthFailure, "mallory"),
            (pb::SessionEventKind::Down, "alice"),
        ]
    );
    agent.stop().await;
}

#[tokio::test]
async fn snapshots_repeat_every_report_interval() {
    let mut op = Operator::plaintext().await;
    let sink = FakeSink::new();
    let agent = Agent::plaintext(op.addr, sink.clone(), Duration::from_millis(50));
    let _out = op.accept().await;
    op.hello().await;
    assert!(op.report(|r| r.has_snapshot).await.sessions.is_empty());
    sink.sessions.lock().unwrap().push(session("bob"));
    let later = op
        .report(|r| r.has_snapshot && !r.sessions.is_empty())
        .await;
    assert_eq!(later.sessions, vec![session("bob")]);
    assert!(later.counters.is_some());
    agent.stop().await;
}

#[tokio::test]
async fn reconnects_after_the_operator_restarts_and_keeps_its_state() {
    let mut op = Operator::plaintext().await;
    let sink = FakeSink::new();
    let agent = Agent::plaintext(op.addr, sink.clone(), LONG);
    let out = op.accept().await;
    assert_eq!(op.hello().await.applied_version, "");
    out.send(message(good("v7"))).await.unwrap();
    assert!(op.ack().await.accepted);
    sink.wait_connected(true).await;

    // The operator goes away: the agent notices, keeps v7, and retries.
    let addr = op.shut_down(vec![out]).await;
    sink.wait_connected(false).await;
    assert_eq!(sink.version().as_deref(), Some("v7"));

    // Back on the same port: the new Hello carries the version in force.
    let mut op = Operator::start(TcpListener::bind(addr).await.unwrap(), None).await;
    let out = op.accept().await;
    let hello = op.hello().await;
    assert_eq!(hello.applied_version, "v7");
    assert_eq!(hello.gateway, GATEWAY);
    sink.wait_connected(true).await;
    assert!(op.report(|r| r.has_snapshot).await.counters.is_some());

    // The operator re-sends what it has: ACKed, not re-applied; nothing was dropped.
    out.send(message(good("v7"))).await.unwrap();
    let ack = op.ack().await;
    assert_eq!((ack.version.as_str(), ack.accepted), ("v7", true));
    assert_eq!(sink.applies(), 1);
    assert_eq!(sink.version().as_deref(), Some("v7"));
    agent.stop().await;
}

#[tokio::test]
async fn operator_errors_are_retried() {
    // An operator that ends the stream with an error (e.g. not the leader) is retried.
    let mut op = Operator::plaintext().await;
    let sink = FakeSink::new();
    let agent = Agent::plaintext(op.addr, sink.clone(), LONG);
    let out = op.accept().await;
    op.hello().await;
    out.send(Err(Status::unavailable("not the leader")))
        .await
        .unwrap();
    drop(out);
    let _out = op.accept().await;
    op.hello().await;
    agent.stop().await;
}

#[tokio::test]
async fn refuses_options_that_cannot_work() {
    let sink = FakeSink::new();
    let tls = tls::client_config(b"", b"", b"", "operator");
    let plain_with_tls = run_agent(
        options("http://127.0.0.1:1".into(), Some(tls), LONG),
        sink.clone(),
        std::future::pending(),
    )
    .await;
    assert!(
        matches!(plain_with_tls, Err(AgentError::PlaintextWithTls(_))),
        "{plain_with_tls:?}"
    );
    let https_without_tls = run_agent(
        options("https://127.0.0.1:1".into(), None, LONG),
        sink.clone(),
        std::future::pending(),
    )
    .await;
    assert!(
        matches!(https_without_tls, Err(AgentError::MissingTls(_))),
        "{https_without_tls:?}"
    );
    let bad_pem = run_agent(
        options(
            "https://127.0.0.1:1".into(),
            Some(tls::client_config(b"junk", b"junk", b"junk", "operator")),
            LONG,
        ),
        sink.clone(),
        std::future::pending(),
    )
    .await;
    assert!(matches!(bad_pem, Err(AgentError::Tls(_))), "{bad_pem:?}");
    assert_eq!(sink.applies(), 0);
}

// ---- mTLS ------------------------------------------------------------------------

struct Pki {
    ca_pem: String,
    server: (String, String),
    client: (String, String),
}

fn pki() -> Pki {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose,
    };
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "sluice test CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let leaf = |name: &str, usage: ExtendedKeyUsagePurpose| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &ca).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    Pki {
        server: leaf("operator.sluice.test", ExtendedKeyUsagePurpose::ServerAuth),
        client: leaf("agent.sluice.test", ExtendedKeyUsagePurpose::ClientAuth),
        ca_pem: ca.pem(),
    }
}

fn server_tls(pki: &Pki) -> ServerTlsConfig {
    ServerTlsConfig::new()
        .identity(Identity::from_pem(&pki.server.0, &pki.server.1))
        .client_ca_root(Certificate::from_pem(&pki.ca_pem))
}

fn client_tls(pki: &Pki) -> tonic::transport::ClientTlsConfig {
    tls::client_config(
        pki.ca_pem.as_bytes(),
        pki.client.0.as_bytes(),
        pki.client.1.as_bytes(),
        "operator.sluice.test",
    )
}

#[tokio::test]
async fn connects_over_mutual_tls_and_picks_up_renewed_certificates() {
    let first = pki();
    let mut op = Operator::start(
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        Some(server_tls(&first)),
    )
    .await;
    // What the agent's TLS files hold; the reload hook reads it before each reconnect.
    let files = Arc::new(Mutex::new(client_tls(&first)));
    let mut opts = options(
        format!("https://{}", op.addr),
        Some(client_tls(&first)),
        LONG,
    );
    let source = files.clone();
    opts.tls_reload = Some(Arc::new(move || Ok(source.lock().unwrap().clone())));
    let sink = FakeSink::new();
    let agent = Agent::start(opts, sink.clone());
    let out = op.accept().await;
    assert_eq!(op.hello().await.gateway, GATEWAY);
    assert_eq!(*op.client_certs.lock().unwrap(), vec![1]);
    out.send(message(good("v1"))).await.unwrap();
    assert!(op.ack().await.accepted);

    // Everything is re-issued by a new CA while the operator restarts.
    let second = pki();
    *files.lock().unwrap() = client_tls(&second);
    let addr = op.shut_down(vec![out]).await;
    let mut op = Operator::start(
        TcpListener::bind(addr).await.unwrap(),
        Some(server_tls(&second)),
    )
    .await;
    let _out = op.accept().await;
    assert_eq!(op.hello().await.applied_version, "v1");
    agent.stop().await;
}
