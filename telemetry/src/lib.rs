//! Logs and traces of the Sluice binaries.
//!
//! * **Logs** go to stderr as text or one JSON object per line (`--log-format json`),
//!   filtered by `RUST_LOG` (default `info`).
//! * **Traces**: when `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
//!   is set (and `OTEL_SDK_DISABLED` is not `true`), spans are also exported over OTLP/gRPC.
//!   The exporter reads the standard variables (`OTEL_EXPORTER_OTLP_*`: endpoint, headers,
//!   timeout, compression); the resource takes `OTEL_SERVICE_NAME` (default: the binary's
//!   name) and `OTEL_RESOURCE_ATTRIBUTES`. Without those variables nothing is exported and
//!   nothing is connected to.
//!
//! The OTLP exporter uses tonic, so [`init`] must run inside a Tokio runtime context
//! (`Runtime::enter`); the batch span processor exports from its own thread.

use std::sync::OnceLock;
use std::time::SystemTime;

use opentelemetry::trace::{
    Span as _, SpanContext, TraceContextExt, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

pub use opentelemetry;
pub use opentelemetry_sdk;
pub use tracing_opentelemetry;

/// Log line format.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (fields, span context, level, target, timestamp).
    Json,
}

/// Keeps the trace pipeline alive; dropping it flushes the spans not yet exported.
#[must_use = "dropping the guard stops trace export"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported over OTLP.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            let _ = p.shutdown();
        }
    }
}

/// The instrumentation scope of [`record_span`]'s spans: the service name given to [`init`].
static SCOPE: OnceLock<&'static str> = OnceLock::new();

/// Records a span that has already happened, from `start` to `end`, for phases a sans-IO
/// engine reports only once they complete (IKE Phase 1 and 2 come with their duration).
/// `parent` puts the span into that span's trace. The span goes to the global tracer
/// provider, which [`init`] installs only when it exports: without OTLP this is a no-op
/// and the returned context is invalid (a harmless `parent` for the next call).
pub fn record_span(
    name: &'static str,
    start: SystemTime,
    end: SystemTime,
    attributes: Vec<KeyValue>,
    parent: Option<&SpanContext>,
) -> SpanContext {
    let tracer = opentelemetry::global::tracer(*SCOPE.get().unwrap_or(&"sluice"));
    let cx = parent.map_or_else(Context::new, |p| {
        Context::new().with_remote_span_context(p.clone())
    });
    let mut span = tracer
        .span_builder(name)
        .with_start_time(start)
        .with_attributes(attributes)
        .start_with_context(&tracer, &cx);
    let context = span.span_context().clone();
    span.end_with_timestamp(end);
    context
}

/// Whether the standard OTEL environment asks for trace export.
pub fn otlp_requested() -> bool {
    let set = |k: &str| std::env::var(k).is_ok_and(|v| !v.trim().is_empty());
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    !disabled && (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
}

/// The tracing layer that turns spans into OpenTelemetry spans of `provider`.
pub fn otel_layer<S>(provider: &SdkTracerProvider, service: &'static str) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    tracing_opentelemetry::layer().with_tracer(provider.tracer(service))
}

/// A tracer provider exporting over OTLP/gRPC as the environment says.
fn otlp_provider(service: &'static str) -> Result<SdkTracerProvider, String> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
        .map_err(|e| e.to_string())?;
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(service);
    }
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

/// Installs the global subscriber: logs in `format` and, when `export` is set and the
/// environment asks for it (see the module docs), OTLP trace export. Call once; with
/// `export`, inside a Tokio runtime. Short-lived commands pass `export: false`.
pub fn init(service: &'static str, format: LogFormat, export: bool) -> Telemetry {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour only on a terminal: log collectors would keep the escape codes.
    let text = (format == LogFormat::Text).then(|| {
        tracing_subscriber::fmt::layer()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
    });
    let json = (format == LogFormat::Json).then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
    });
    let (provider, error) = if export && otlp_requested() {
        match otlp_provider(service) {
            Ok(p) => (Some(p), None),
            Err(e) => (None, Some(e)),
        }
    } else {
        (None, None)
    };
    let otel = provider.as_ref().map(|p| otel_layer(p, service));
    if let Some(p) = &provider {
        let _ = SCOPE.set(service);
        opentelemetry::global::set_tracer_provider(p.clone());
    }
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(text)
        .with(json)
        .with(otel)
        .try_init();
    if let Some(e) = error {
        tracing::warn!(error = %e, "OTLP trace export is configured but could not start; logging only");
    } else if provider.is_some() {
        tracing::info!("exporting traces over OTLP");
    }
    Telemetry { provider }
}
