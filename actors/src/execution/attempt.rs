//! Running one attempt of a node: as a task of its own (anything that may
//! wait on the outside world), or within the actor's turn (pure, instant
//! kinds). Either way a panic or a timeout becomes the node's error.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use flowmesh_model::{Node, RetryPolicy};
use flowmesh_node_handlers::{ErrorClass, LogSink, NodeError, Outcome, RunRequest, TokenMeter};
use flowmesh_store::failpoints::crash_point;
use futures::FutureExt;
use ractor::ActorRef;
use serde_json::{Map, Value};
use tracing::Instrument;

use super::{ExecutionMsg, ExecutionState};
use crate::context::Context;
use flowmesh_services::metrics;

/// Longest one attempt of a node may take when the node sets no timeout.
const DEFAULT_NODE_TIMEOUT: Duration = Duration::from_secs(300);

/// What one attempt needs, owned so that it can move into a task.
struct Attempt {
    tenant: flowmesh_model::TenantId,
    graph: std::sync::Arc<flowmesh_model::graph::WorkflowGraph>,
    node: Node,
    scope: Map<String, Value>,
    /// The tenant's cap on one node's output, in bytes.
    max_output_bytes: usize,
    inputs: Vec<String>,
    idempotency_key: String,
    timeout: Duration,
    /// The attempt's span, and its context for outbound calls.
    span: tracing::Span,
    traceparent: Option<String>,
}

/// What an attempt left behind.
struct Ran {
    result: Result<Outcome, NodeError>,
    /// What it printed (code nodes).
    logs: Vec<String>,
    /// Tokens language models used, whatever the result.
    llm_tokens: u64,
}

impl Attempt {
    async fn run(&self, ctx: &Context) -> Ran {
        let logs = LogSink::default();
        let meter = TokenMeter::default();
        let started = std::time::Instant::now();
        let result = self
            .run_logged(ctx, &logs, &meter)
            .instrument(self.span.clone())
            .await;
        let node = &self.node;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.class.as_str(),
        };
        metrics::node_attempt(&node.kind, outcome, started.elapsed());
        self.span
            .in_scope(|| tracing::debug!(outcome, took = ?started.elapsed(), "node attempt ended"));
        if ctx.runner.behaviour(node).sandboxed
            && let Err(e) = &result
            && matches!(
                e.class,
                ErrorClass::Timeout
                    | ErrorClass::Memory
                    | ErrorClass::OutputTooLarge
                    | ErrorClass::Crashed
            )
        {
            metrics::sandbox_kill(e.class.as_str());
        }
        Ran {
            result,
            logs: logs.take(),
            llm_tokens: meter.total(),
        }
    }

    async fn run_logged(
        &self,
        ctx: &Context,
        logs: &LogSink,
        meter: &TokenMeter,
    ) -> Result<Outcome, NodeError> {
        let request = RunRequest {
            tenant: self.tenant,
            node: &self.node,
            document: &self.graph.document,
            scope: &self.scope,
            max_output_bytes: self.max_output_bytes,
            inputs: &self.inputs,
            secrets: &ctx.secrets,
            idempotency_key: &self.idempotency_key,
            sandboxes: ctx,
            logs,
            endpoints: &ctx.endpoints,
            meter,
            traceparent: self.traceparent.as_deref(),
        };
        let attempt = AssertUnwindSafe(ctx.runner.run(request)).catch_unwind();
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(Ok(result)) => result,
            Ok(Err(_panic)) => Err(NodeError {
                class: ErrorClass::Permanent,
                message: "the node handler crashed".into(),
            }),
            Err(_) => Err(NodeError {
                class: ErrorClass::Timeout,
                message: format!(
                    "the attempt passed its timeout of {}",
                    humantime::format_duration(self.timeout)
                ),
            }),
        }
    }
}

impl ExecutionState {
    fn attempt(&self, i: usize) -> Attempt {
        let graph = self.progress.graph.clone();
        let node = self.progress.node(i).clone();
        let key = &self.progress.nodes[i].node;
        let span = tracing::info_span!(
            "node",
            otel.name = %format!("node {key}"),
            node = %key,
            kind = %node.kind,
            attempt = self.progress.nodes[i].attempts,
            tenant = %self.record.tenant,
            workflow = %self.record.workflow,
            execution = %self.record.id,
        );
        flowmesh_services::trace::set_parent(&span, self.record.traceparent.as_deref());
        let traceparent = flowmesh_services::trace::traceparent_of(&span);
        Attempt {
            span,
            traceparent,
            tenant: self.record.tenant,
            idempotency_key: match self.progress.frame(i) {
                None => format!("{}:{}", self.record.id, node.id),
                Some(frame) => format!("{}:{}:{}", self.record.id, frame.key, node.id),
            },
            timeout: node.timeout.map(|t| t.0).unwrap_or(DEFAULT_NODE_TIMEOUT),
            scope: self.progress.scope_of(i),
            max_output_bytes: self.output_cap,
            inputs: self.progress.inputs(i),
            node,
            graph,
        }
    }

    /// Starts an attempt as a task; its result comes back as a message.
    pub(super) fn spawn_attempt(
        &mut self,
        myself: &ActorRef<ExecutionMsg>,
        i: usize,
        attempt: u32,
    ) {
        let run = self.attempt(i);
        let sandboxed = self.ctx.runner.behaviour(self.progress.node(i)).sandboxed;
        let ctx = self.ctx.clone();
        let reply = myself.clone();
        let task = tokio::spawn(async move {
            let started = std::time::Instant::now();
            let ran = run.run(&ctx).await;
            let sandbox_ms = if sandboxed {
                started.elapsed().as_millis() as u64
            } else {
                0
            };
            crash_point("engine::attempt::returned");
            let _ = reply.cast(ExecutionMsg::NodeDone {
                node: i,
                attempt,
                result: ran.result,
                logs: ran.logs,
                sandbox_ms,
                llm_tokens: ran.llm_tokens,
            });
        });
        self.running.insert(i, task.abort_handle());
    }

    /// An output over the tenant's cap fails the node (no retry: the same
    /// call would give the same output) instead of bloating the store.
    pub(super) fn within_output_cap(
        &self,
        result: Result<Outcome, NodeError>,
    ) -> Result<Outcome, NodeError> {
        let Ok(Outcome::Output { value, .. }) = &result else {
            return result;
        };
        match self.over_output_cap(value) {
            Some(error) => Err(error),
            None => result,
        }
    }

    /// The failure of an output over the tenant's cap; none within it.
    pub(super) fn over_output_cap(&self, value: &serde_json::Value) -> Option<NodeError> {
        let size = serde_json::to_vec(value).map_or(0, |v| v.len());
        if size <= self.output_cap {
            return None;
        }
        Some(NodeError {
            class: flowmesh_node_handlers::ErrorClass::OutputTooLarge,
            message: format!(
                "the output is {size} bytes, over this tenant's cap of {} bytes; return less (select the fields you need) or raise max_output_bytes in the tenant's settings",
                self.output_cap
            ),
        })
    }

    /// Runs an attempt of a pure, instant kind within the current turn.
    pub(super) async fn run_inline(&self, i: usize) -> Result<Outcome, NodeError> {
        self.attempt(i).run(&self.ctx).await.result
    }
}

pub(super) fn backoff_with_jitter(policy: &RetryPolicy, next_attempt: u32) -> Duration {
    let base = policy.backoff_before(next_attempt);
    if policy.jitter && !base.is_zero() {
        base.mul_f64(rand::random_range(0.5..=1.0))
    } else {
        base
    }
}
