//! W3C trace context across hops. The context of a request travels as a
//! `traceparent` string: into the bus envelope, onto the execution row (so
//! that every later turn and node of the run, on whatever process, joins
//! the same trace), and out with outbound HTTP requests.
//!
//! Without an OpenTelemetry layer (no `OTEL_*` configuration) spans have no
//! context: these functions return none and cost next to nothing.

use std::collections::HashMap;

use opentelemetry::trace::TraceContextExt;
use tracing_opentelemetry::OpenTelemetrySpanExt;

const HEADER: &str = "traceparent";

/// The `traceparent` of a span, if it is recorded.
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut carrier));
    carrier.remove(HEADER)
}

/// Makes `traceparent` the parent of `span`. A value that is not a valid
/// W3C trace context (it may come from a caller) is ignored.
pub fn set_parent(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(value) = traceparent else {
        return;
    };
    let carrier = HashMap::from([(HEADER.to_owned(), value.to_owned())]);
    let cx = opentelemetry::global::get_text_map_propagator(|p| p.extract(&carrier));
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}
