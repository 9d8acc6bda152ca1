//! A minimal OTLP/gRPC trace receiver (`TraceService/Export`) for tests: it keeps every
//! span it is sent, flattened to [`ReceivedSpan`]. A crate of its own, used as a
//! dev-dependency only, so neither the binaries nor their feature sets carry it.
//! [`terminate`] stops an exporting child process the way Kubernetes does (SIGTERM), so
//! a test can check what its exporter flushes on the way out.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus};
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use tonic::transport::server::TcpIncoming;

/// One span as the receiver got it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedSpan {
    /// `service.name` of the resource the span came with.
    pub service: String,
    /// Instrumentation scope (the tracer's name).
    pub scope: String,
    pub name: String,
    pub trace_id: Vec<u8>,
    pub span_id: Vec<u8>,
    /// Empty for a root span.
    pub parent_span_id: Vec<u8>,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    /// Attributes rendered as strings (strings unquoted).
    pub attributes: BTreeMap<String, String>,
}

impl ReceivedSpan {
    /// An attribute's value.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

#[derive(Default)]
struct Sink {
    spans: Mutex<Vec<ReceivedSpan>>,
}

fn render(v: Option<&AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn attributes(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), render(kv.value.as_ref())))
        .collect()
}

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut got = Vec::new();
        for rs in request.into_inner().resource_spans {
            let resource = rs
                .resource
                .map(|r| attributes(&r.attributes))
                .unwrap_or_default();
            let service = resource.get("service.name").cloned().unwrap_or_default();
            for ss in rs.scope_spans {
                let scope = ss.scope.map(|s| s.name).unwrap_or_default();
                for s in ss.spans {
                    got.push(ReceivedSpan {
                        service: service.clone(),
                        scope: scope.clone(),
                        name: s.name,
                        trace_id: s.trace_id,
                        span_id: s.span_id,
                        parent_span_id: s.parent_span_id,
                        start_unix_nanos: s.start_time_unix_nano,
                        end_unix_nanos: s.end_time_unix_nano,
                        attributes: attributes(&s.attributes),
                    });
                }
            }
        }
        if let Ok(mut spans) = self.spans.lock() {
            spans.extend(got);
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// A running receiver, on a runtime of its own; stops when dropped.
pub struct Collector {
    addr: SocketAddr,
    sink: Arc<Sink>,
    task: tokio::task::JoinHandle<()>,
    _runtime: tokio::runtime::Runtime,
}

impl Collector {
    /// Listens on `bind` (port 0 picks one) and serves OTLP/gRPC.
    pub fn start(bind: SocketAddr) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let incoming = runtime.block_on(async { TcpIncoming::bind(bind) })?;
        let addr = incoming.local_addr()?;
        let sink = Arc::new(Sink::default());
        let service = TraceServiceServer::from_arc(sink.clone());
        let task = runtime.spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming)
                .await;
        });
        Ok(Collector {
            addr,
            sink,
            task,
            _runtime: runtime,
        })
    }

    /// The `OTEL_EXPORTER_OTLP_ENDPOINT` value that reaches this receiver.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Points `cmd`'s exporter here through the standard variables only, with a batch
    /// delay longer than any test: spans then arrive only through the flush at shutdown.
    pub fn export_to_me<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", self.endpoint())
            .env("OTEL_BSP_SCHEDULE_DELAY", "600000")
            .env_remove("OTEL_SERVICE_NAME")
            .env_remove("OTEL_SDK_DISABLED")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    }

    /// Every span received so far, in arrival order.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.sink
            .spans
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Why [`terminate`] could not end a child cleanly.
#[derive(Debug, thiserror::Error)]
pub enum TerminateError {
    #[error("pid {0} does not fit pid_t")]
    Pid(u32),
    #[error("SIGTERM: {0}")]
    Signal(std::io::Error),
    #[error("waiting: {0}")]
    Wait(std::io::Error),
    #[error("pid {pid} did not exit within {timeout:?} of SIGTERM (killed)")]
    Timeout {
        pid: libc::pid_t,
        timeout: std::time::Duration,
    },
}

/// Sends SIGTERM to `child` and waits up to `timeout` for it to exit; kills it and
/// returns an error if it does not.
pub fn terminate(
    child: &mut Child,
    timeout: std::time::Duration,
) -> Result<ExitStatus, TerminateError> {
    let pid = libc::pid_t::try_from(child.id()).map_err(|_| TerminateError::Pid(child.id()))?;
    // SAFETY: kill(2) takes no pointers; the pid is our own child's.
    if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
        return Err(TerminateError::Signal(std::io::Error::last_os_error()));
    }
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().map_err(TerminateError::Wait)? {
            return Ok(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            return Err(TerminateError::Timeout { pid, timeout });
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
