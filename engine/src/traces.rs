//! Traces exported over OTLP/HTTP (protobuf), as the OpenTelemetry SDKs do it: on when
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT` is set, off (no
//! exporter, no thread, nothing measured) when neither is. The runtime hands over one span per
//! delivery (`weir_runtime::spans`); they leave in batches from a bounded queue (the SDK's
//! `OTEL_BSP_*` variables), and what is queued is sent when the process stops.
//!
//! Sampling follows `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`, decided from the trace
//! id alone: every module a run crosses decides alike, so a run is kept whole or not at all
//! (the parent-based samplers behave as their root sampler, since a delivery's parent is
//! sampled exactly when its own trace is).

use std::borrow::Cow;

use opentelemetry::{
    InstrumentationScope, KeyValue,
    trace::{
        SamplingDecision, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
    },
};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::{
    Resource,
    trace::{
        BatchSpanProcessor, Config, ShouldSample, SpanData, SpanEvents, SpanLinks, SpanProcessor,
    },
};
use weir_runtime::spans::{DeliverySpan, Outcome, Spans};

/// The variables that turn exporting on; the first names the traces' own endpoint.
const ENDPOINTS: [&str; 2] = ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"];

/// Whether the variable `name` is set to something.
fn set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|value| !value.is_empty())
}

/// Why traces cannot be exported to the endpoint given or named by the variables.
#[derive(Debug, thiserror::Error)]
#[error("cannot export traces to the OTLP endpoint: {0}")]
pub struct TracesError(#[from] opentelemetry_otlp::ExporterBuildError);

/// Spans on their way to an OTLP receiver.
#[derive(Debug)]
pub struct Traces {
    processor: BatchSpanProcessor,
    sampler: Box<dyn ShouldSample>,
    scope: InstrumentationScope,
}

impl Traces {
    /// The exporter the environment asks for, named `service` unless `OTEL_SERVICE_NAME` (or
    /// `OTEL_RESOURCE_ATTRIBUTES`) names it; `None` when no endpoint is set.
    pub fn from_env(service: &str) -> Result<Option<Self>, TracesError> {
        if !ENDPOINTS.iter().any(|name| set(name)) {
            return Ok(None);
        }
        Self::exporting(service, None).map(Some)
    }

    /// The exporter sending to `endpoint`, a receiver's full traces URL (`…/v1/traces`),
    /// whatever the endpoint variables say; the other variables apply as in
    /// [`Traces::from_env`]. For a process that runs its own receiver, such as a benchmark.
    pub fn to_endpoint(service: &str, endpoint: &str) -> Result<Self, TracesError> {
        Self::exporting(service, Some(endpoint))
    }

    fn exporting(service: &str, endpoint: Option<&str>) -> Result<Self, TracesError> {
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary);
        if let Some(endpoint) = endpoint {
            exporter = exporter.with_endpoint(endpoint);
        }
        let mut processor = BatchSpanProcessor::builder(exporter.build()?).build();
        let mut resource = Resource::builder();
        if !set("OTEL_SERVICE_NAME") {
            resource = resource.with_service_name(service.to_owned());
        }
        processor.set_resource(&resource.build());
        let scope =
            InstrumentationScope::builder("weir").with_version(env!("CARGO_PKG_VERSION")).build();
        Ok(Self { processor, sampler: Config::default().sampler, scope })
    }

    /// Sends what is queued and stops the exporter; blocks until then (at most 5 s).
    pub fn shutdown(&self) {
        if let Err(err) = self.processor.shutdown() {
            tracing::warn!(error = %err, "the traces exporter did not stop cleanly");
        }
    }

    fn sampled(&self, trace_id: TraceId, name: &str) -> bool {
        let result =
            self.sampler.should_sample(None, trace_id, name, &SpanKind::Internal, &[], &[]);
        !matches!(result.decision, SamplingDecision::Drop)
    }
}

impl Spans for Traces {
    fn record(&self, span: &DeliverySpan) {
        let trace_id = TraceId::from(span.trace.trace_id);
        let name = format!("{}.{}", span.node.node, span.port);
        if !self.sampled(trace_id, &name) {
            return;
        }
        let context = SpanContext::new(
            trace_id,
            SpanId::from(span.trace.span_id),
            TraceFlags::SAMPLED,
            false,
            TraceState::NONE,
        );
        // Names and counts only: never the message, the node's settings or a failure's
        // message, which may hold or quote secrets.
        let attributes = vec![
            KeyValue::new("weir.namespace", span.node.namespace.clone()),
            KeyValue::new("weir.flow", span.node.flow.clone()),
            KeyValue::new("weir.node", span.node.node.clone()),
            KeyValue::new("weir.port", span.port.clone()),
            KeyValue::new("weir.attempt", i64::from(span.attempt)),
            KeyValue::new("weir.outcome", span.outcome.word()),
        ];
        let status = match &span.outcome {
            Outcome::Answered => Status::Ok,
            Outcome::Failed(kind) => Status::error(kind.as_str()),
            Outcome::Dropped => Status::error("dropped before it ended"),
        };
        let data = SpanData {
            span_context: context,
            parent_span_id: SpanId::from(span.trace.parent_id),
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: Cow::Owned(name),
            start_time: span.started,
            end_time: span.ended,
            attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status,
            instrumentation_scope: self.scope.clone(),
        };
        self.processor.on_end(data);
    }
}
