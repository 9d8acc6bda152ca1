//! `sluice.v1.Control`: the config server agents stream from. Only the leading replica
//! serves; every stream is bound to the gateway named by the agent's client certificate.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use sluice_proto::v1::agent_message::Body as AgentBody;
use sluice_proto::v1::control_server::{Control, ControlServer};
use sluice_proto::v1::operator_message::Body as OperatorBody;
use sluice_proto::v1::{AgentMessage, Hello, OperatorMessage};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, info, warn};

use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::pki;

/// Longest a new stream may take to send its `Hello`.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest pod or node name accepted (a DNS subdomain).
const MAX_NAME: usize = 253;
/// Largest message accepted from an agent (a session snapshot of many sessions).
pub const MAX_AGENT_MESSAGE: usize = 64 * 1024 * 1024;
/// Largest message sent to an agent (a configuration with many users).
pub const MAX_CONFIG_MESSAGE: usize = 256 * 1024 * 1024;

/// How agents are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerAuth {
    /// mTLS: the client certificate's URI SAN must name the gateway of the Hello.
    ClientCertificate,
    /// No authentication (in-process tests over plaintext only; never offered by the CLI).
    InsecureNone,
}

/// The service implementation.
pub struct ControlService {
    hub: Arc<Hub>,
    leader: watch::Receiver<bool>,
    closing: Option<watch::Receiver<bool>>,
    auth: PeerAuth,
    metrics: Arc<Metrics>,
}

impl ControlService {
    /// A service answering only while `leader` is true.
    pub fn new(
        hub: Arc<Hub>,
        leader: watch::Receiver<bool>,
        auth: PeerAuth,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            hub,
            leader,
            closing: None,
            auth,
            metrics,
        }
    }

    /// Ends every open stream (with UNAVAILABLE, so agents reconnect) once `closing` is true:
    /// a server shutting down must not wait for streams that never end by themselves.
    pub fn closing_on(mut self, closing: watch::Receiver<bool>) -> Self {
        self.closing = Some(closing);
        self
    }

    /// Wrapped for tonic's router, with message size bounds.
    pub fn into_server(self) -> ControlServer<Self> {
        ControlServer::new(self)
            .max_decoding_message_size(MAX_AGENT_MESSAGE)
            .max_encoding_message_size(MAX_CONFIG_MESSAGE)
    }
}

fn check_hello(hello: &Hello, identity: Option<&str>) -> Result<(), Status> {
    if hello.pod.is_empty() || hello.pod.len() > MAX_NAME || hello.node.len() > MAX_NAME {
        return Err(Status::invalid_argument(
            "hello.pod must be 1..=253 bytes and hello.node at most 253",
        ));
    }
    if pki::identity_uri(&hello.gateway).is_none() {
        return Err(Status::invalid_argument(
            "hello.gateway must be namespace/name",
        ));
    }
    match identity {
        Some(id) if id != hello.gateway => Err(Status::permission_denied(format!(
            "this client certificate is for gateway {id}, not {}",
            hello.gateway
        ))),
        _ => Ok(()),
    }
}

type ConnectStream = Pin<Box<dyn Stream<Item = Result<OperatorMessage, Status>> + Send>>;

#[tonic::async_trait]
impl Control for ControlService {
    type ConnectStream = ConnectStream;

    async fn connect(
        &self,
        request: Request<Streaming<AgentMessage>>,
    ) -> Result<Response<ConnectStream>, Status> {
        if !*self.leader.borrow() {
            return Err(Status::unavailable(
                "this operator replica is not the leader; retry",
            ));
        }
        let identity = match self.auth {
            PeerAuth::InsecureNone => None,
            PeerAuth::ClientCertificate => {
                let certs = request
                    .peer_certs()
                    .ok_or_else(|| Status::unauthenticated("a client certificate is required"))?;
                let id = certs
                    .first()
                    .and_then(|c| pki::identity_from_der(c.as_ref()))
                    .ok_or_else(|| {
                        Status::unauthenticated("the client certificate names no gateway")
                    })?;
                Some(id)
            }
        };
        let mut inbound = request.into_inner();
        let hello = match tokio::time::timeout(HELLO_TIMEOUT, inbound.message()).await {
            Err(_) => return Err(Status::deadline_exceeded("no hello within 10 s")),
            Ok(Err(e)) => return Err(e),
            Ok(Ok(None)) => return Err(Status::cancelled("stream closed before hello")),
            Ok(Ok(Some(AgentMessage {
                body: Some(AgentBody::Hello(h)),
            }))) => h,
            Ok(Ok(Some(_))) => {
                return Err(Status::invalid_argument("the first message must be hello"));
            }
        };
        check_hello(&hello, identity.as_deref())?;
        let gateway = hello.gateway.clone();
        let pod = hello.pod.clone();
        info!(%gateway, %pod, node = %hello.node, applied = %hello.applied_version, "agent connected");
        let stream = self.hub.agent_connected(&gateway, &hello);
        self.metrics.agents_connected.inc();
        let mut configs = self.hub.subscribe(&gateway);
        let (tx, rx) = mpsc::channel(4);
        let hub = self.hub.clone();
        let metrics = self.metrics.clone();
        let mut leader = self.leader.clone();
        let (_never, idle) = watch::channel(false);
        let mut closing = self.closing.clone().unwrap_or(idle);
        tokio::spawn(async move {
            let _never = _never;
            // The current configuration first (the agent ACKs it even when it already has it).
            let mut pending = configs.borrow_and_update().clone();
            loop {
                if let Some(c) = pending.take() {
                    debug!(%gateway, %pod, version = %c.version, "sending configuration");
                    let msg = OperatorMessage {
                        body: Some(OperatorBody::Config((**c).clone())),
                    };
                    if tx.send(Ok(msg)).await.is_err() {
                        break;
                    }
                    metrics.configs_sent.inc();
                }
                tokio::select! {
                    changed = configs.changed() => {
                        if changed.is_err() {
                            info!(%gateway, %pod, "gateway deleted: closing agent stream");
                            break;
                        }
                        pending = configs.borrow_and_update().clone();
                    }
                    msg = inbound.message() => match msg {
                        Ok(Some(AgentMessage { body: Some(AgentBody::Ack(ack)) })) => {
                            if !ack.accepted {
                                warn!(%gateway, %pod, version = %ack.version, error = %ack.error, "agent rejected configuration");
                            }
                            metrics.config_ack(ack.accepted);
                            hub.agent_ack(&gateway, &pod, stream, &ack);
                        }
                        Ok(Some(AgentMessage { body: Some(AgentBody::Report(r)) })) => {
                            hub.agent_report(&gateway, &pod, stream, r);
                        }
                        Ok(Some(_)) => {
                            let _ = tx.send(Err(Status::invalid_argument("hello may be sent only once"))).await;
                            break;
                        }
                        Ok(None) => break,
                        Err(e) => {
                            debug!(%gateway, %pod, error = %e, "agent stream failed");
                            break;
                        }
                    },
                    _ = leader.changed() => {
                        if !*leader.borrow() {
                            let _ = tx.send(Err(Status::unavailable("leadership lost; reconnect"))).await;
                            break;
                        }
                    }
                    r = closing.changed() => {
                        if r.is_err() || *closing.borrow() {
                            let _ = tx.send(Err(Status::unavailable("operator shutting down; reconnect"))).await;
                            break;
                        }
                    }
                }
            }
            hub.agent_gone(&gateway, &pod, stream);
            metrics.agents_connected.dec();
            info!(%gateway, %pod, "agent disconnected");
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
