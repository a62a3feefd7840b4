//! The engine's metrics, every one named and described here, and nowhere
//! else. They are recorded through the `metrics` facade (free when no
//! recorder is installed) and rendered in Prometheus text format for
//! `GET /metrics` once [`install`] has run.
//!
//! Label values are bounded: at most twice [`MAX_LABEL_VALUES`] distinct
//! tenant and workflow ids get their own series; the rest share `other`.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use flowmesh_model::{ExecutionStatus, TenantId, WorkflowId};
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Distinct tenants (and as many workflows) labelled before `other`.
pub const MAX_LABEL_VALUES: usize = 500;

/// Kind of a metric, as Prometheus names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One metric: name, kind, labels, meaning.
#[derive(Clone, Copy, Debug)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub labels: &'static [&'static str],
    pub help: &'static str,
}

const fn metric(
    name: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    help: &'static str,
) -> Metric {
    Metric {
        name,
        kind,
        labels,
        help,
    }
}

pub const EXECUTIONS_STARTED: &str = "flowmesh_executions_started_total";
pub const EXECUTIONS_PLACED: &str = "flowmesh_executions_placed_total";
pub const EXECUTIONS_FINISHED: &str = "flowmesh_executions_finished_total";
pub const STARTS_QUEUED: &str = "flowmesh_starts_queued";
pub const STARTS_SHED: &str = "flowmesh_starts_shed_total";
pub const EXECUTIONS_IN_FLIGHT: &str = "flowmesh_executions_in_flight";
pub const EXECUTIONS_PARKED: &str = "flowmesh_executions_parked_total";
pub const EXECUTIONS_UNFINISHED: &str = "flowmesh_executions_unfinished";
pub const NODE_DURATION: &str = "flowmesh_node_duration_seconds";
pub const NODE_RETRIES: &str = "flowmesh_node_retries_total";
pub const BUS_PUBLISH: &str = "flowmesh_bus_publish_seconds";
pub const BUS_CONSUME_LAG: &str = "flowmesh_bus_consume_lag_seconds";
pub const ACTORS: &str = "flowmesh_actors";
pub const SANDBOX_KILLS: &str = "flowmesh_sandbox_kills_total";
pub const STORE_QUERY: &str = "flowmesh_store_query_seconds";
pub const CREDITS_USED: &str = "flowmesh_credits_used_total";
pub const STARTS_DEFERRED: &str = "flowmesh_executions_deferred_total";
pub const REQUESTS_LIMITED: &str = "flowmesh_requests_rate_limited_total";
pub const TICKS_SKIPPED: &str = "flowmesh_schedule_ticks_skipped_total";
pub const REFILLS_CAPPED: &str = "flowmesh_refills_capped_total";
pub const TRIGGERS_REFUSED: &str = "flowmesh_nats_triggers_refused_total";

/// Every metric the engine exports.
pub const METRICS: &[Metric] = &[
    metric(
        EXECUTIONS_STARTED,
        Kind::Counter,
        &["tenant", "workflow"],
        "Executions accepted (created; a repeated idempotency key does not count).",
    ),
    metric(
        EXECUTIONS_PLACED,
        Kind::Counter,
        &["path"],
        "Executions accepted here, by how they were sent to run: here (at once, by this process) or bus (a start command for whichever process takes it).",
    ),
    metric(
        STARTS_QUEUED,
        Kind::Gauge,
        &[],
        "Accepted executions waiting on the bus for a process to run them (or taken and not yet started), as this process last read it.",
    ),
    metric(
        STARTS_SHED,
        Kind::Counter,
        &[],
        "Starts refused with 503 because the engine was past capacity: as many executions waited on the bus as --max-queued-starts allows.",
    ),
    metric(
        EXECUTIONS_FINISHED,
        Kind::Counter,
        &["tenant", "workflow", "status"],
        "Executions that ended here, by final status.",
    ),
    metric(
        EXECUTIONS_IN_FLIGHT,
        Kind::Gauge,
        &[],
        "Executions with an actor in this process (parked ones have none).",
    ),
    metric(
        EXECUTIONS_PARKED,
        Kind::Counter,
        &[],
        "Times an execution with nothing to do parked in the store.",
    ),
    metric(
        EXECUTIONS_UNFINISHED,
        Kind::Gauge,
        &["tenant", "workflow", "status"],
        "Unfinished executions in the store, queued or running (parked included), read at each scrape.",
    ),
    metric(
        NODE_DURATION,
        Kind::Histogram,
        &["kind", "outcome"],
        "Duration of node attempts by kind; outcome is ok or the error class.",
    ),
    metric(
        NODE_RETRIES,
        Kind::Counter,
        &["kind"],
        "Node attempts that failed transiently and were scheduled again.",
    ),
    metric(
        BUS_PUBLISH,
        Kind::Histogram,
        &["message"],
        "Time to publish to the bus (command: until stored; event: until sent).",
    ),
    metric(
        BUS_CONSUME_LAG,
        Kind::Histogram,
        &[],
        "From an execution's acceptance to its start command being handled.",
    ),
    metric(
        ACTORS,
        Kind::Gauge,
        &["kind"],
        "Live actors in this process, by kind (root, tenant, workflow, execution, sandbox).",
    ),
    metric(
        SANDBOX_KILLS,
        Kind::Counter,
        &["reason"],
        "Code-node runs stopped by a sandbox limit (timeout, memory, output_too_large, crashed).",
    ),
    metric(
        STORE_QUERY,
        Kind::Histogram,
        &["op"],
        "Duration of the engine's store calls on its hot paths.",
    ),
    metric(
        CREDITS_USED,
        Kind::Counter,
        &["tenant"],
        "Credits charged for executions, node runs and sandbox time (as turns are written).",
    ),
    metric(
        STARTS_DEFERRED,
        Kind::Counter,
        &["tenant"],
        "Starts put back in the queue because the tenant's concurrency slots were all taken.",
    ),
    metric(
        REQUESTS_LIMITED,
        Kind::Counter,
        &["tenant"],
        "Requests refused with 429 by the tenant's rate limit.",
    ),
    metric(
        TICKS_SKIPPED,
        Kind::Counter,
        &["tenant", "reason"],
        "Schedule ticks that started nothing because admission refused them (no_credits, payload_too_large).",
    ),
    metric(
        REFILLS_CAPPED,
        Kind::Counter,
        &["tenant"],
        "Automatic refills not paid because the tenant had reached its refills per day.",
    ),
    metric(
        TRIGGERS_REFUSED,
        Kind::Counter,
        &["reason"],
        "NATS trigger messages that started nothing: busy (no slot free in this process or for the tenant) or the error code.",
    ),
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Histogram buckets, in seconds: from half a millisecond to a minute.
const BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// Installs the Prometheus recorder for this process (once; later calls do
/// nothing). Without it, recording costs next to nothing.
pub fn install() {
    HANDLE.get_or_init(|| {
        // Buckets make histograms real Prometheus histograms, which add up
        // across processes (the default would be per-process summaries).
        let builder = PrometheusBuilder::new()
            .set_buckets(&BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let handle = builder
            .install_recorder()
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder().handle());
        for m in METRICS {
            match m.kind {
                Kind::Counter => metrics::describe_counter!(m.name, m.help),
                Kind::Gauge => metrics::describe_gauge!(m.name, m.help),
                Kind::Histogram => metrics::describe_histogram!(m.name, m.help),
            }
        }
        handle
    });
}

/// The metrics in Prometheus text format, if [`install`] ran.
pub fn render() -> Option<String> {
    HANDLE.get().map(PrometheusHandle::render)
}

/// Label values for tenants and workflows, bounded.
fn bounded(value: String) -> String {
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let mut seen = SEEN
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if seen.contains(&value) {
        return value;
    }
    if seen.len() < MAX_LABEL_VALUES * 2 {
        seen.insert(value.clone());
        return value;
    }
    "other".to_owned()
}

pub fn execution_started(tenant: TenantId, workflow: WorkflowId) {
    counter!(EXECUTIONS_STARTED, "tenant" => bounded(tenant.to_string()), "workflow" => bounded(workflow.to_string())).increment(1);
}

/// Where an accepted execution was sent to run: `here` or `bus`.
pub fn execution_placed(path: &'static str) {
    counter!(EXECUTIONS_PLACED, "path" => path).increment(1);
}

pub fn starts_queued(count: u64) {
    gauge!(STARTS_QUEUED).set(count as f64);
}

pub fn start_shed() {
    counter!(STARTS_SHED).increment(1);
}

/// Exports the shed counter before any refusal, so that its rate exists
/// (as zero) wherever starts are accepted.
pub fn starts_shed_exported() {
    counter!(STARTS_SHED).increment(0);
}

pub fn execution_finished(tenant: TenantId, workflow: WorkflowId, status: ExecutionStatus) {
    counter!(EXECUTIONS_FINISHED, "tenant" => bounded(tenant.to_string()), "workflow" => bounded(workflow.to_string()), "status" => status.as_str()).increment(1);
}

pub fn in_flight(count: usize) {
    gauge!(EXECUTIONS_IN_FLIGHT).set(count as f64);
}

/// (tenant, workflow, status) of one unfinished-executions series.
type Series = (String, String, &'static str);

/// Sets the unfinished-executions gauge from a store count; series that
/// dropped to nothing are set to 0.
pub fn unfinished(counts: &[flowmesh_store::Unfinished]) {
    static SHOWN: OnceLock<Mutex<HashSet<Series>>> = OnceLock::new();
    let mut shown = SHOWN
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let mut now = HashSet::new();
    for c in counts {
        let key = (
            bounded(c.tenant.to_string()),
            bounded(c.workflow.to_string()),
            c.status.as_str(),
        );
        gauge!(EXECUTIONS_UNFINISHED, "tenant" => key.0.clone(), "workflow" => key.1.clone(), "status" => key.2)
            .set(c.count as f64);
        now.insert(key);
    }
    for gone in shown.difference(&now) {
        gauge!(EXECUTIONS_UNFINISHED, "tenant" => gone.0.clone(), "workflow" => gone.1.clone(), "status" => gone.2)
            .set(0.0);
    }
    *shown = now;
}

pub fn parked() {
    counter!(EXECUTIONS_PARKED).increment(1);
}

pub fn node_attempt(kind: &str, outcome: &'static str, took: Duration) {
    histogram!(NODE_DURATION, "kind" => kind.to_owned(), "outcome" => outcome)
        .record(took.as_secs_f64());
}

pub fn node_retry(kind: &str) {
    counter!(NODE_RETRIES, "kind" => kind.to_owned()).increment(1);
}

pub fn bus_publish(message: &'static str, took: Duration) {
    histogram!(BUS_PUBLISH, "message" => message).record(took.as_secs_f64());
}

pub fn consume_lag(accepted_at_ms: i64) {
    let lag = (flowmesh_store::now_ms() - accepted_at_ms).max(0) as f64 / 1000.0;
    histogram!(BUS_CONSUME_LAG).record(lag);
}

pub fn sandbox_kill(reason: &'static str) {
    counter!(SANDBOX_KILLS, "reason" => reason).increment(1);
}

pub fn credits_used(tenant: TenantId, credits: i64) {
    if credits > 0 {
        counter!(CREDITS_USED, "tenant" => bounded(tenant.to_string())).increment(credits as u64);
    }
}

pub fn start_deferred(tenant: TenantId) {
    counter!(STARTS_DEFERRED, "tenant" => bounded(tenant.to_string())).increment(1);
}

pub fn rate_limited(tenant: TenantId) {
    counter!(REQUESTS_LIMITED, "tenant" => bounded(tenant.to_string())).increment(1);
}

pub fn tick_skipped(tenant: TenantId, reason: &'static str) {
    counter!(TICKS_SKIPPED, "tenant" => bounded(tenant.to_string()), "reason" => reason)
        .increment(1);
}

pub fn trigger_refused(reason: &'static str) {
    counter!(TRIGGERS_REFUSED, "reason" => reason).increment(1);
}

pub fn refill_capped(tenant: TenantId) {
    counter!(REFILLS_CAPPED, "tenant" => bounded(tenant.to_string())).increment(1);
}

pub fn store_call(op: &'static str, took: Duration) {
    histogram!(STORE_QUERY, "op" => op).record(took.as_secs_f64());
}

/// Counts one live actor of a kind for as long as it is held (kept in the
/// actor's state, so it goes when the actor does, failed or not).
pub struct Live(&'static str);

impl Live {
    pub fn new(kind: &'static str) -> Self {
        gauge!(ACTORS, "kind" => kind).increment(1.0);
        Live(kind)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        gauge!(ACTORS, "kind" => self.0).decrement(1.0);
    }
}
