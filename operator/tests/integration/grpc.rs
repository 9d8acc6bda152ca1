//! The control channel end to end in one process: the operator's config server (mTLS) and
//! real data-plane agents (`sluice_dataplane::mode::agent::channel`) with in-memory sinks. Users are added,
//! changed and removed through the same compile the reconciler uses; an agent NACKs; the
//! operator restarts mid-stream; session reports reach the hub the status writers read;
//! peers without the right certificate are refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_dataplane::mode::agent::channel::{
    AgentOptions, ApplyError, Backoff, ConfigSink, run_agent,
};
use sluice_dataplane::mode::agent::tls::client_config;
use sluice_operator::config::compile_gateway;
use sluice_operator::hub::Hub;
use sluice_operator::metrics::Metrics;
use sluice_operator::pki::{Ca, Issued};
use sluice_operator::serve::serve_tls;
use sluice_proto::v1 as pb;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

/// Max sessions value that makes the fake data plane refuse a configuration.
const POISON: u32 = 7;

#[derive(Default)]
struct FakeSink {
    applied: Mutex<Option<String>>,
    history: Mutex<Vec<String>>,
    applies: AtomicUsize,
    sessions: Mutex<Vec<pb::Session>>,
    events: Mutex<Vec<pb::SessionEvent>>,
    connected: AtomicBool,
    draining: AtomicBool,
}

impl ConfigSink for FakeSink {
    fn apply(&self, config: &pb::GatewayConfig) -> Result<(), ApplyError> {
        if config.max_sessions == POISON {
            return Err("rejected by the test data plane".into());
        }
        assert!(
            config
                .users
                .iter()
                .all(|u| u.password.is_empty() && u.nt_hash.len() == 16)
        );
        self.applies.fetch_add(1, Ordering::SeqCst);
        self.history.lock().unwrap().push(config.version.clone());
        *self.applied.lock().unwrap() = Some(config.version.clone());
        Ok(())
    }
    fn applied_version(&self) -> Option<String> {
        self.applied.lock().unwrap().clone()
    }
    fn snapshot(&self) -> Vec<pb::Session> {
        self.sessions.lock().unwrap().clone()
    }
    fn drain_events(&self) -> Vec<pb::SessionEvent> {
        std::mem::take(&mut *self.events.lock().unwrap())
    }
    fn counters(&self) -> pb::Counters {
        pb::Counters::default()
    }
    fn set_connected(&self, c: bool) {
        self.connected.store(c, Ordering::SeqCst);
    }
    fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}

fn manifests(users: &[(&str, &str)], max_sessions: u32) -> String {
    let mut y = format!(
        "apiVersion: sluice.dev/v1alpha1\nkind: VpnGateway\nmetadata: {{name: office, namespace: vpn}}\n\
         spec: {{maxSessions: {max_sessions}, ppp: {{localAddress: 10.200.0.1, addressPool: 10.200.0.0/24}}}}\n"
    );
    for (name, pw) in users {
        y.push_str(&format!(
            "---\napiVersion: sluice.dev/v1alpha1\nkind: VpnUser\nmetadata: {{name: {name}, namespace: vpn}}\n\
             spec: {{gatewayRef: {{name: office}}, passwordSecretRef: {{name: {name}}}}}\n\
             ---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: vpn}}\nstringData: {{password: {pw}}}\n"
        ));
    }
    y
}

/// Compiles and publishes like the gateway reconciler does; returns the version.
fn publish(hub: &Hub, users: &[(&str, &str)], max_sessions: u32) -> String {
    let m = sluice_api::parse_manifests(&manifests(users, max_sessions)).unwrap();
    let c = compile_gateway(&m.gateways[0], &m.users, &m.secrets).unwrap();
    let version = c.config.version.clone();
    let included: BTreeSet<String> = c.config.users.iter().map(|u| u.source.clone()).collect();
    hub.publish("vpn/office", c.config, c.rejected_users, included);
    version
}

struct Operator {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

async fn start_operator(
    listener: TcpListener,
    ca: &Ca,
    hub: Arc<Hub>,
    metrics: Arc<Metrics>,
) -> Operator {
    let server = ca
        .issue_server(&["localhost".into()], time::OffsetDateTime::now_utc())
        .unwrap();
    let ca_pem = ca.pem().cert_pem.clone();
    let (stop, rx) = oneshot::channel::<()>();
    let (_leader_tx, leader) = watch::channel(true);
    let task = tokio::spawn(async move {
        let _keep = _leader_tx;
        serve_tls(listener, &server, &ca_pem, hub, leader, metrics, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    Operator { stop, task }
}

fn agent_options(port: u16, ca: &Ca, cert: &Issued, gateway: &str, pod: &str) -> AgentOptions {
    let tls = client_config(
        ca.pem().cert_pem.as_bytes(),
        cert.cert_pem.as_bytes(),
        cert.key_pem.as_bytes(),
        "localhost",
    );
    let mut o = AgentOptions::new(
        format!("https://localhost:{port}"),
        Some(tls),
        gateway,
        format!("node-{pod}"),
        pod,
    );
    o.report_interval = Duration::from_millis(200);
    o.event_interval = Duration::from_millis(50);
    o.backoff = Backoff {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(400),
    };
    o
}

async fn eventually(what: &str, f: impl Fn() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting until {what}");
}

fn acked(hub: &Hub, pods: &[&str], version: &str) -> bool {
    let view = hub.gateway_view("vpn/office");
    pods.iter().all(|p| {
        view.agents
            .get(*p)
            .is_some_and(|a| a.connected && a.applied_version == version)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_follow_the_operator_through_changes_nacks_and_restarts() {
    let now = time::OffsetDateTime::now_utc();
    let ca = Ca::generate(now).unwrap();
    let cert = ca.issue_agent("vpn/office", now).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (hub, _dirty) = Hub::new(Duration::ZERO);
    let v1 = publish(&hub, &[("alice", "a1"), ("bob", "b1")], 0);
    let metrics = Metrics::new();
    let op = start_operator(listener, &ca, hub.clone(), metrics.clone()).await;

    let sinks: Vec<Arc<FakeSink>> = (0..2).map(|_| Arc::new(FakeSink::default())).collect();
    let (stop_agents, agents_stop) = watch::channel(false);
    for (i, sink) in sinks.iter().enumerate() {
        let opts = agent_options(addr.port(), &ca, &cert, "vpn/office", &format!("p{i}"));
        let sink: Arc<dyn ConfigSink> = sink.clone();
        let mut stop = agents_stop.clone();
        tokio::spawn(async move {
            run_agent(opts, sink, async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await
            .unwrap();
        });
    }
    let pods = ["p0", "p1"];
    eventually("both agents ACK v1", || acked(&hub, &pods, &v1)).await;

    // Add, change and remove users: each change is a new version both agents apply.
    let v2 = publish(&hub, &[("alice", "a1"), ("bob", "b1"), ("carol", "c1")], 0);
    eventually("v2 ACKed", || acked(&hub, &pods, &v2)).await;
    let v3 = publish(&hub, &[("alice", "a1"), ("bob", "b2"), ("carol", "c1")], 0);
    eventually("v3 ACKed", || acked(&hub, &pods, &v3)).await;
    let v4 = publish(&hub, &[("bob", "b2"), ("carol", "c1")], 0);
    eventually("v4 ACKed", || acked(&hub, &pods, &v4)).await;
    assert_eq!(
        BTreeSet::from([&v1, &v2, &v3, &v4]).len(),
        4,
        "every change is a new version"
    );
    for s in &sinks {
        assert_eq!(
            *s.history.lock().unwrap(),
            [v1.clone(), v2.clone(), v3.clone(), v4.clone()]
        );
    }

    // A configuration the data plane refuses: NACKed, the previous one stays in force.
    let v5 = publish(&hub, &[("bob", "b2"), ("carol", "c1")], POISON);
    eventually("v5 NACKed by both", || {
        let view = hub.gateway_view("vpn/office");
        pods.iter().all(|p| {
            view.agents.get(*p).is_some_and(|a| {
                a.nack
                    .as_ref()
                    .is_some_and(|(v, e)| v == &v5 && e.contains("rejected by the test"))
                    && a.applied_version == v4
            })
        })
    })
    .await;
    for s in &sinks {
        assert_eq!(s.applied_version().as_deref(), Some(v4.as_str()));
    }
    // Both NACKs and the 8 ACKs before them are counted.
    let text = metrics.encode(&hub);
    assert!(
        text.contains("sluice_operator_config_acks_total{result=\"rejected\"} 2\n")
            && text.contains("sluice_operator_config_acks_total{result=\"accepted\"} 8\n"),
        "{text}"
    );
    // Going back to v4's content: the same version, ACKed without applying it again.
    let applies: Vec<usize> = sinks
        .iter()
        .map(|s| s.applies.load(Ordering::SeqCst))
        .collect();
    assert_eq!(publish(&hub, &[("bob", "b2"), ("carol", "c1")], 0), v4);
    eventually("v4 ACKed again, NACK cleared", || {
        let view = hub.gateway_view("vpn/office");
        acked(&hub, &pods, &v4) && view.agents.values().all(|a| a.nack.is_none())
    })
    .await;

    // Session reports reach the hub.
    sinks[1].sessions.lock().unwrap().push(pb::Session {
        username: "bob".into(),
        source: "vpn/bob".into(),
        protocol: "pptp".into(),
        address: "10.200.0.9".into(),
        caller_address: "192.0.2.10".into(),
        since_unix: 1_780_000_000,
        encoding: "MPPE 128 bit, stateless".into(),
        ..Default::default()
    });
    sinks[0].events.lock().unwrap().push(pb::SessionEvent {
        kind: pb::SessionEventKind::AuthFailure as i32,
        username: "carol".into(),
        source: "vpn/carol".into(),
        time_unix: 1_780_000_100,
        caller_address: "192.0.2.11".into(),
        reason: "wrong password".into(),
        ..Default::default()
    });
    eventually("bob's session and carol's failure are reported", || {
        let bob = hub.user_view("vpn/office", "vpn/bob");
        let carol = hub.user_view("vpn/office", "vpn/carol");
        bob.sessions.len() == 1
            && bob.sessions[0].node == "node-p1"
            && carol
                .last_failure
                .as_ref()
                .is_some_and(|f| f.reason == "wrong password")
    })
    .await;
    assert_eq!(hub.gateway_view("vpn/office").sessions.pptp, 1);

    // The operator restarts (fresh memory, same port): agents keep their config meanwhile,
    // reconnect, say which version they run, and are not made to apply anything again.
    op.stop.send(()).unwrap();
    op.task.await.unwrap();
    eventually("agents notice the operator is gone", || {
        sinks.iter().all(|s| !s.connected.load(Ordering::SeqCst))
    })
    .await;
    let (hub2, _dirty2) = Hub::new(Duration::ZERO);
    assert_eq!(publish(&hub2, &[("bob", "b2"), ("carol", "c1")], 0), v4);
    // The same port again: the old listener's socket may take a moment to go.
    let mut listener = TcpListener::bind(addr).await;
    for _ in 0..100 {
        if listener.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        listener = TcpListener::bind(addr).await;
    }
    let listener = listener.unwrap();
    let op2 = start_operator(listener, &ca, hub2.clone(), Metrics::new()).await;
    eventually("agents reconnect and ACK v4", || acked(&hub2, &pods, &v4)).await;
    eventually("the new operator knows bob's session", || {
        hub2.user_view("vpn/office", "vpn/bob").sessions.len() == 1
    })
    .await;
    let after: Vec<usize> = sinks
        .iter()
        .map(|s| s.applies.load(Ordering::SeqCst))
        .collect();
    assert_eq!(
        after, applies,
        "a restart makes no agent re-apply (no session is touched)"
    );

    stop_agents.send(true).unwrap();
    op2.stop.send(()).unwrap();
}

async fn raw_connect(
    port: u16,
    ca: &Ca,
    cert: Option<&Issued>,
    gateway: &str,
) -> Result<(), tonic::Status> {
    raw_connect_pem(port, &ca.pem().cert_pem, cert, gateway).await
}

/// [`raw_connect`] trusting every CA of `trust_pem` (a bundle).
async fn raw_connect_pem(
    port: u16,
    trust_pem: &str,
    cert: Option<&Issued>,
    gateway: &str,
) -> Result<(), tonic::Status> {
    use sluice_proto::v1::control_client::ControlClient;
    let mut tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(trust_pem))
        .domain_name("localhost");
    if let Some(c) = cert {
        tls = tls.identity(tonic::transport::Identity::from_pem(
            &c.cert_pem,
            &c.key_pem,
        ));
    }
    let channel = tonic::transport::Endpoint::from_shared(format!("https://localhost:{port}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let hello = pb::AgentMessage {
        body: Some(pb::agent_message::Body::Hello(pb::Hello {
            gateway: gateway.into(),
            node: "n".into(),
            pod: "intruder".into(),
            ..Default::default()
        })),
    };
    let mut stream = ControlClient::new(channel)
        .connect(tokio_stream::iter([hello]))
        .await?
        .into_inner();
    match stream.message().await? {
        Some(_) => Ok(()),
        None => Err(tonic::Status::cancelled("no config")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_gateways_own_certificate_gets_its_config() {
    let now = time::OffsetDateTime::now_utc();
    let ca = Ca::generate(now).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (hub, _dirty) = Hub::new(Duration::ZERO);
    publish(&hub, &[("alice", "a1")], 0);
    let _op = start_operator(listener, &ca, hub.clone(), Metrics::new()).await;

    let own = ca.issue_agent("vpn/office", now).unwrap();
    raw_connect(port, &ca, Some(&own), "vpn/office")
        .await
        .expect("its own gateway");

    let other = ca.issue_agent("vpn/branch", now).unwrap();
    let e = raw_connect(port, &ca, Some(&other), "vpn/office")
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e}");

    let foreign_ca = Ca::generate(now).unwrap();
    let forged = foreign_ca.issue_agent("vpn/office", now).unwrap();
    assert!(
        raw_connect(port, &ca, Some(&forged), "vpn/office")
            .await
            .is_err(),
        "a certificate from another CA"
    );
    assert!(
        raw_connect(port, &ca, None, "vpn/office").await.is_err(),
        "no client certificate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_agent_says_so_before_its_next_snapshot() {
    let now = time::OffsetDateTime::now_utc();
    let ca = Ca::generate(now).unwrap();
    let cert = ca.issue_agent("vpn/office", now).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (hub, _dirty) = Hub::new(Duration::ZERO);
    let v1 = publish(&hub, &[("alice", "a1")], 0);
    let _op = start_operator(listener, &ca, hub.clone(), Metrics::new()).await;
    let sink = Arc::new(FakeSink::default());
    let mut opts = agent_options(port, &ca, &cert, "vpn/office", "p0");
    // Snapshots only every minute: the drain must be reported by itself.
    opts.report_interval = Duration::from_secs(60);
    let (stop_agent, agent_stop) = watch::channel(false);
    {
        let sink: Arc<dyn ConfigSink> = sink.clone();
        let mut stop = agent_stop.clone();
        tokio::spawn(async move {
            run_agent(opts, sink, async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await
            .unwrap();
        });
    }
    eventually("the agent ACKs v1 and sent its first snapshot", || {
        acked(&hub, &["p0"], &v1) && hub.gateway_view("vpn/office").agents["p0"].snapshot_seen
    })
    .await;
    assert!(hub.gateway_view("vpn/office").draining_pods().is_empty());
    let started = std::time::Instant::now();
    sink.draining.store(true, Ordering::SeqCst);
    eventually("the hub knows p0 drains", || {
        hub.gateway_view("vpn/office")
            .draining_pods()
            .contains("p0")
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "reported at the next event tick, not the next snapshot"
    );
    stop_agent.send(true).unwrap();
}

/// A CA rotation, step by step, against the real server TLS and a real agent: the agent's
/// stream survives every step; during the overlap client certificates of both CAs are
/// accepted; after the switch the server's certificate needs the new CA (a bundle works);
/// after the drop certificates of the old CA are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_rotation_keeps_agents_connected_and_moves_trust_step_by_step() {
    use sluice_operator::ca_set::{CaSet, Phase, Policy};
    use sluice_operator::rotation::server_tls;
    use sluice_operator::serve::serve_tls_dynamic;

    let t0 = time::OffsetDateTime::now_utc();
    let policy = Policy::default();
    let names = ["localhost".to_owned()];
    let old = CaSet::new(Ca::generate(t0).unwrap(), t0);
    let old_pem = old.signing.pem().cert_pem.clone();
    let old_cert = old.signing.issue_agent("vpn/office", t0).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (hub, _dirty) = Hub::new(Duration::ZERO);
    let v1 = publish(&hub, &[("alice", "a1")], 0);
    let (tls_tx, tls_rx) = watch::channel(server_tls(&old, &names, t0).unwrap().0);
    let (_leader_tx, leader) = watch::channel(true);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let metrics = Metrics::new();
    tokio::spawn(serve_tls_dynamic(
        listener,
        tls_rx,
        hub.clone(),
        leader,
        metrics,
        async {
            let _ = stop_rx.await;
        },
    ));

    // A long-lived agent of the old CA; it trusts both CAs once its Secret has the bundle,
    // but its open stream never reconnects here.
    let sink = Arc::new(FakeSink::default());
    let opts = agent_options(port, &old.signing, &old_cert, "vpn/office", "p0");
    let (stop_agent, agent_stop) = watch::channel(false);
    {
        let sink: Arc<dyn ConfigSink> = sink.clone();
        let mut stop = agent_stop.clone();
        tokio::spawn(async move {
            run_agent(opts, sink, async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await
            .unwrap();
        });
    }
    eventually("the agent ACKs v1", || acked(&hub, &["p0"], &v1)).await;
    let applies = sink.applies.load(Ordering::SeqCst);

    // 1. Introduce: the server still presents the old CA's certificate and accepts client
    //    certificates of both.
    let introduced = old.step(t0, &policy, true, false).unwrap().unwrap();
    assert_eq!(introduced.phase(), Phase::Introduced);
    let new_ca = introduced.next.as_ref().unwrap();
    let new_pem = new_ca.pem().cert_pem.clone();
    let new_cert = new_ca.issue_agent("vpn/office", t0).unwrap();
    tls_tx.send_replace(server_tls(&introduced, &names, t0).unwrap().0);
    raw_connect_pem(port, &old_pem, Some(&old_cert), "vpn/office")
        .await
        .expect("old client, old trust");
    raw_connect_pem(port, &old_pem, Some(&new_cert), "vpn/office")
        .await
        .expect("a client certificate of the new CA");

    // 2. Switch: the new CA signs the server's certificate; old client certificates still pass.
    let t1 = t0 + time::Duration::hours(2);
    let switched = introduced.step(t1, &policy, false, true).unwrap().unwrap();
    assert_eq!(switched.phase(), Phase::Switched);
    // (Certificates are issued at the real time; t1 and t2 only drive the steps.)
    tls_tx.send_replace(server_tls(&switched, &names, t0).unwrap().0);
    let bundle = switched.bundle();
    assert!(
        raw_connect_pem(port, &old_pem, Some(&old_cert), "vpn/office")
            .await
            .is_err(),
        "trusting only the old CA fails once the server's certificate is of the new one"
    );
    raw_connect_pem(port, &bundle, Some(&old_cert), "vpn/office")
        .await
        .expect("old client certificate during the overlap");
    raw_connect_pem(port, &bundle, Some(&new_cert), "vpn/office")
        .await
        .expect("new client certificate");
    let v2 = publish(&hub, &[("alice", "a2")], 0);
    eventually("the open stream still gets v2", || {
        acked(&hub, &["p0"], &v2)
    })
    .await;

    // 3. Drop: certificates of the old CA are refused; the open stream lives on.
    let t2 = t1 + time::Duration::hours(2);
    let stable = switched.step(t2, &policy, false, true).unwrap().unwrap();
    assert_eq!(stable.phase(), Phase::Stable);
    tls_tx.send_replace(server_tls(&stable, &names, t0).unwrap().0);
    assert!(
        raw_connect_pem(port, &new_pem, Some(&old_cert), "vpn/office")
            .await
            .is_err(),
        "a client certificate of the dropped CA"
    );
    raw_connect_pem(port, &new_pem, Some(&new_cert), "vpn/office")
        .await
        .expect("new CA only");
    let v3 = publish(&hub, &[("alice", "a3")], 0);
    eventually("the open stream still gets v3", || {
        acked(&hub, &["p0"], &v3)
    })
    .await;
    assert_eq!(
        sink.applies.load(Ordering::SeqCst),
        applies + 2,
        "only the two new versions were applied: no reconnect"
    );
    stop_agent.send(true).unwrap();
    let _ = stop_tx.send(());
}
