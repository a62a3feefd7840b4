//! The engine as callers see it: a cheap-to-clone handle with one method per
//! request. It validates, records in the store, then publishes commands.

use flowmesh_api::{Outcome, StartRequest, Until};
use std::sync::Arc;
use std::time::Duration;

use flowmesh_model::graph::WorkflowGraph;
use flowmesh_model::validate::{ValidationError, ValidationErrors, check_json};
use flowmesh_model::{
    Command, EventKind, ExecutionId, ExecutionStatus, TenantId, WorkflowDocument, WorkflowId,
};
use flowmesh_node_handlers::{Bounds, KindInfo, NATS_ROUTE, Registry};
use flowmesh_store::{
    ExecutionPage, ExecutionQuery, ExecutionRecord, NewExecution, WorkflowRecord, WorkflowSummary,
    now_ms,
};
use serde_json::{Value, json};

use flowmesh_store::failpoints::crash_point;

use tracing::Instrument;

use crate::cache::{Bound, Cache};
use crate::error::Error;
use crate::metrics;
use crate::shared::Shared;

#[derive(Clone, Debug)]
pub struct Started {
    pub tenant: TenantId,
    pub execution: ExecutionId,
    /// False when an idempotency key matched an earlier execution.
    pub created: bool,
    /// Whether the workflow has a respond node.
    pub responds: bool,
    /// Live events of a fresh execution, subscribed before it was asked to run.
    watch: Watch,
}

/// A subscription taken before the start command, so that a synchronous
/// caller needs no replay. Used once.
#[derive(Clone, Default)]
struct Watch(Arc<tokio::sync::Mutex<Option<flowmesh_bus::Events>>>);

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Watch")
    }
}

/// Whether the dependencies answer.
#[derive(Clone, Debug)]
pub struct Readiness {
    pub store: Result<(), String>,
    pub bus: Result<(), String>,
    pub transport: &'static str,
    pub executions_here: usize,
    /// What the jail of sandboxed code found on this host.
    pub sandbox: flowmesh_sandbox::Jail,
    /// What this process runs.
    pub role: crate::ProcessRole,
}

/// Compiled graphs by (workflow, published version).
type GraphCache = Cache<(WorkflowId, i64), Arc<WorkflowGraph>>;

/// Most compiled graphs kept.
const GRAPHS_KEPT: u64 = 10_000;

#[derive(Clone)]
pub struct EngineHandle {
    pub(super) shared: Arc<Shared>,
    pub(super) registry: Registry,
    /// Published versions are immutable, so their graphs are kept while
    /// they are used.
    pub(super) graphs: GraphCache,
    pub(super) auth: Arc<crate::accounts::AuthCache>,
    pub(super) logins: Arc<crate::logins::Logins>,
    pub(super) registrations: Arc<crate::registrations::Registrations>,
    pub(super) limits: Arc<crate::admission::RateLimits>,
    pub(super) credits: Arc<crate::admission::CreditCache>,
}

impl EngineHandle {
    /// The services of one process. Start their loops with
    /// [`crate::spawn_loops`].
    pub fn new(parts: crate::Parts) -> Self {
        let registry = parts.registry;
        let shared = Arc::new(Shared {
            endpoints: crate::StoreEndpoints::new(parts.store.clone()),
            store: parts.store,
            bus: parts.bus,
            options: parts.options,
            sealing_key: parts.sealing_key,
            secrets: parts.secrets,
            payments: parts.payments,
            settings: parts.settings,
            runtime: parts.runtime,
            sandbox: parts.sandbox,
            stopping: tokio::sync::watch::Sender::new(false),
            backlog: crate::capacity::Backlog::default(),
        });
        let options = &shared.options;
        let logins = crate::logins::Logins::new(options.tenancy.logins.clone());
        let registrations = Arc::new(crate::registrations::Registrations::new(
            options.tenancy.registrations.clone(),
        ));
        let idle = options.cache_idle_after.0;
        let graphs = Bound {
            entries: GRAPHS_KEPT,
            live: None,
            idle: Some(idle),
        }
        .build();
        Self {
            graphs,
            auth: Arc::default(),
            logins,
            registrations,
            limits: Arc::new(crate::admission::RateLimits::new(idle)),
            credits: Arc::default(),
            shared,
            registry,
        }
    }

    pub async fn ready(&self) -> Readiness {
        let (store, bus) = tokio::join!(self.shared.store.ping(), self.shared.bus.health());
        Readiness {
            store: store.map_err(|e| e.to_string()),
            bus: bus.map_err(|e| e.to_string()),
            transport: self.shared.bus.transport_name(),
            executions_here: self.shared.runtime.executions_here(),
            sandbox: self.shared.runtime.jail().clone(),
            role: self.shared.options.role,
        }
    }

    /// The metrics in Prometheus text format (none if not installed), with
    /// the store's counts of unfinished executions read now.
    pub async fn metrics_text(&self) -> Option<String> {
        let counts = tokio::time::timeout(Duration::from_secs(2), self.shared.store.unfinished());
        match counts.await {
            Ok(Ok(counts)) => metrics::unfinished(&counts),
            Ok(Err(e)) => tracing::warn!(error = %e, "could not count unfinished executions"),
            Err(_) => tracing::warn!("counting unfinished executions took too long"),
        }
        metrics::render()
    }

    pub(super) fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The node kinds this engine knows.
    pub fn kinds(&self) -> Vec<KindInfo> {
        self.registry.kinds()
    }

    /// The limits a tenant's workflows are checked against when saved: its
    /// own maxima, or the instance's.
    pub(super) async fn bounds(&self, tenant: TenantId) -> Result<Bounds, Error> {
        let sandbox = &self.shared.sandbox;
        // Most instances set no tenant maxima: no lookup then.
        let slug = match sandbox.tenant_maxima.is_empty() {
            true => None,
            false => self.shared.store.tenant_slug(tenant).await?,
        };
        Ok(Bounds {
            code_defaults: sandbox.defaults.clone(),
            code_maxima: match &slug {
                Some(slug) => sandbox.maxima_for(slug),
                None => &sandbox.maxima,
            }
            .clone(),
        })
    }

    /// Parses and validates a tenant's workflow document, listing every
    /// problem.
    pub async fn check_document(
        &self,
        tenant: TenantId,
        body: &[u8],
    ) -> Result<WorkflowDocument, Error> {
        let bounds = self.bounds(tenant).await?;
        // Off the request threads: a large document's templates and code
        // take milliseconds to compile, which would hold up other requests.
        let registry = self.registry.clone();
        let body = body.to_vec();
        let checked =
            tokio::task::spawn_blocking(move || check_json(&body, &registry.bounded(&bounds)))
                .await
                .map_err(|e| Error::Internal(Box::new(e)))?;
        let document = checked.map_err(|e| match e.errors.first() {
            Some(first) if first.code == "malformed_json" => {
                Error::Malformed(first.message.clone().into())
            }
            _ => Error::Invalid(e),
        })?;
        if let Some(handler) = document.settings.on_error_workflow
            && self
                .shared
                .store
                .get_workflow(tenant, handler)
                .await?
                .is_none()
        {
            return Err(Error::Invalid(ValidationErrors::one(ValidationError::new(
                "settings.on_error_workflow",
                "unknown_workflow",
                format!("this tenant has no workflow {handler}"),
            ))));
        }
        self.check_call_targets(tenant, &document).await?;
        Ok(document)
    }

    pub async fn create_workflow(
        &self,
        tenant: TenantId,
        body: &[u8],
    ) -> Result<WorkflowSummary, Error> {
        let document = self.check_document(tenant, body).await?;
        Ok(self.shared.store.create_workflow(tenant, &document).await?)
    }

    pub async fn list_workflows(&self, tenant: TenantId) -> Result<Vec<WorkflowSummary>, Error> {
        Ok(self.shared.store.list_workflows(tenant).await?)
    }

    pub async fn get_workflow(
        &self,
        tenant: TenantId,
        id: WorkflowId,
    ) -> Result<WorkflowRecord, Error> {
        self.shared
            .store
            .get_workflow(tenant, id)
            .await?
            .ok_or(Error::NotFound("workflow"))
    }

    pub async fn delete_workflow(&self, tenant: TenantId, id: WorkflowId) -> Result<(), Error> {
        if self.shared.store.delete_workflow(tenant, id).await? {
            Ok(())
        } else {
            Err(Error::NotFound("workflow"))
        }
    }

    pub(super) async fn graph(
        &self,
        workflow: WorkflowId,
        version: i64,
    ) -> Result<Arc<WorkflowGraph>, Error> {
        let key = (workflow, version);
        if let Some(graph) = self.graphs.get(&key) {
            return Ok(graph);
        }
        let document = self
            .shared
            .store
            .workflow_version(workflow, version)
            .await?
            .ok_or(Error::NotFound("workflow version"))?;
        let graph = Arc::new(WorkflowGraph::new(document));
        self.graphs.insert(key, graph.clone());
        Ok(graph)
    }

    /// Starts the published version of a workflow with `input` as the trigger body.
    pub async fn start_execution(&self, request: StartRequest) -> Result<Started, Error> {
        crate::test_runs::refuse_mocks(&request)?;
        let record = self.get_workflow(request.tenant, request.workflow).await?;
        let version = record.summary.published_version.ok_or_else(|| {
            Error::Conflict("the workflow has no published version; publish it first".into())
        })?;
        let graph = self.graph(request.workflow, version).await?;
        let trigger = self.registry.api_trigger(&graph).ok_or_else(|| {
            Error::Conflict(
                "the workflow has no trigger that can be started through the API".into(),
            )
        })?;
        let fingerprint = Fingerprint::Api {
            input: request.input.clone(),
        };
        let data = json!({"body": request.input, "headers": {}, "query": {}});
        self.accept(Accept {
            tenant: request.tenant,
            workflow: request.workflow,
            version,
            graph,
            trigger,
            data,
            idempotency_key: request.idempotency_key,
            request: fingerprint,
            watch: request.wait,
            test: None,
        })
        .await
    }

    /// Starts the published workflow whose `nats` trigger has the subject.
    pub async fn nats_trigger(
        &self,
        message: &flowmesh_bus::TriggerMessage,
    ) -> Result<Started, Error> {
        let body: Value =
            serde_json::from_slice(&message.payload).map_err(|e| Error::Malformed(Box::new(e)))?;
        let Routed {
            tenant,
            workflow,
            version,
            graph,
            trigger,
        } = self
            .routed(TriggerRoute {
                slug: &message.tenant_slug,
                public: false,
                method: NATS_ROUTE,
                path: &message.subject,
                missing: "trigger",
            })
            .await?;
        let fingerprint = Fingerprint::Nats {
            subject: message.subject.clone(),
            body: body.clone(),
        };
        let data = json!({"body": body, "subject": message.subject});
        let watch = self.registry.responds(&graph) && message.reply.is_some();
        self.accept(Accept {
            tenant,
            workflow,
            version,
            graph,
            trigger,
            data,
            idempotency_key: message.idempotency_key.clone(),
            request: fingerprint,
            watch,
            test: None,
        })
        .await
    }

    /// The published workflow and trigger node a routed message starts,
    /// once its tenant is found and admitted.
    pub(super) async fn routed(&self, route: TriggerRoute<'_>) -> Result<Routed, Error> {
        let missing = || Error::NotFound(route.missing);
        let found = self
            .shared
            .store
            .find_route(route.slug, route.method, route.path)
            .await?
            .ok_or_else(missing)?;
        let tenant = found.tenant;
        // Webhooks are public: their limits are their own (in the gateway),
        // so anonymous callers never spend the tenant's API allowance.
        if !route.public {
            self.admit(tenant).await?;
        }
        let (workflow, version) = found.workflow.ok_or_else(missing)?;
        let graph = self.graph(workflow, version).await?;
        let wanted = Some((route.method.to_owned(), route.path.to_owned()));
        let trigger = graph
            .find_trigger(|n| self.registry.route(n) == wanted)
            .ok_or_else(missing)?;
        Ok(Routed {
            tenant,
            workflow,
            version,
            graph,
            trigger,
        })
    }

    /// Records the execution (the durable acceptance), then asks for it to
    /// run. If the bus is down the execution is still accepted: a claim sweep
    /// picks up executions nobody started.
    pub(super) async fn accept(&self, accept: Accept) -> Result<Started, Error> {
        // Mocks are the caller's input as much as the trigger data.
        let payload_bytes = accept.data.to_string().len()
            + accept
                .test
                .as_ref()
                .map_or(0, |t| Value::from(t.mocks.clone()).to_string().len());
        let id = ExecutionId::new();
        let deadline_ms = accept
            .graph
            .document
            .settings
            .timeout
            .map(|t| now_ms() + t.0.as_millis() as i64);
        let claim = self.shared.runtime.claim_here();
        // What runs here at once never waits in the queue.
        if claim.is_none() {
            let bound = self.shared.options.max_queued_starts;
            self.shared.backlog.admit(bound)?;
        }
        // The hand-over (onto the bus, or to this process's actors); the
        // run's later spans hang under it.
        let hop = match claim {
            Some(_) => tracing::info_span!("execution.hand_over", execution = %id),
            None => {
                tracing::info_span!("bus.publish", otel.kind = "producer", message = "start_execution", execution = %id)
            }
        };
        let traceparent = crate::trace::traceparent_of(&hop);
        let new = NewExecution {
            id,
            tenant: accept.tenant,
            workflow: accept.workflow,
            version: accept.version,
            trigger_node: accept.graph.node(accept.trigger).id.clone(),
            trigger: accept.data,
            idempotency_key: accept.idempotency_key,
            fingerprint: Some(accept.request.fingerprint()),
            deadline_ms,
            origin: None,
            steps: Vec::new(),
            traceparent: traceparent.clone(),
            test: accept.test,
            handles: None,
            called_by: None,
        };
        self.admit_start(new.tenant, payload_bytes).await?;
        let (created, here) = match &claim {
            Some(claim) => {
                self.shared
                    .store
                    .create_claimed_execution(&new, &claim.claim)
                    .await?
            }
            None => (self.shared.store.create_execution(&new).await?, None),
        };
        crash_point("engine::accept::recorded");
        if created.created {
            metrics::execution_started(accept.tenant, accept.workflow);
        }
        let watch = Watch::default();
        if accept.watch && here.is_some() {
            *watch.0.lock().await = Some(self.shared.bus.watch_here(created.id));
        } else if accept.watch && created.created {
            match self
                .shared
                .bus
                .watch_execution(accept.tenant, created.id)
                .await
            {
                Ok(events) => *watch.0.lock().await = Some(events),
                Err(e) => {
                    tracing::debug!(error = %e, "no live watch; the caller will replay events")
                }
            }
        }
        match here.zip(claim) {
            Some((record, claim)) => {
                hop.in_scope(|| self.shared.runtime.run_here(record, claim.place));
                metrics::execution_placed("here");
            }
            None => {
                let command = Command::start(accept.tenant, accept.workflow, created.id);
                self.publish_start(&command, hop, traceparent).await
            }
        }
        Ok(Started {
            tenant: accept.tenant,
            execution: created.id,
            created: created.created,
            responds: self.registry.responds(&accept.graph),
            watch,
        })
    }

    /// Sends the start command of an accepted execution; a lost one is
    /// made up for by the claim sweep.
    async fn publish_start(
        &self,
        command: &Command,
        hop: tracing::Span,
        traceparent: Option<String>,
    ) {
        let execution = command.execution();
        let started = std::time::Instant::now();
        let published = self
            .shared
            .bus
            .publish_command(command, traceparent.as_deref())
            .instrument(hop)
            .await;
        metrics::bus_publish("command", started.elapsed());
        match published {
            Ok(()) => metrics::execution_placed("bus"),
            Err(e) => {
                tracing::warn!(%execution, error = %e, "start command not published; the claim sweep will start it")
            }
        }
    }

    pub async fn get_execution(
        &self,
        tenant: TenantId,
        id: ExecutionId,
    ) -> Result<ExecutionRecord, Error> {
        self.shared
            .store
            .get_execution(tenant, id)
            .await?
            .ok_or(Error::NotFound("execution"))
    }

    /// Whether a node that acts outside the engine (an HTTP call, a model
    /// call) has started in an execution: if not, running it again from the
    /// start repeats nothing, so a caller may safely retry.
    pub async fn outside_effects_started(&self, started: &Started) -> Result<bool, Error> {
        let record = self
            .get_execution(started.tenant, started.execution)
            .await?;
        let graph = self.graph(record.workflow, record.version).await?;
        Ok(record.steps.iter().any(|step| {
            step.started_at.is_some()
                && graph
                    .document
                    .node(&step.node)
                    .is_some_and(|node| self.registry.behaviour(node).outside_effects)
        }))
    }

    pub async fn list_executions(
        &self,
        tenant: TenantId,
        query: &ExecutionQuery,
    ) -> Result<ExecutionPage, Error> {
        Ok(self.shared.store.list_executions(tenant, query).await?)
    }

    /// Asks for an execution to stop. Returns its status at that moment; a
    /// finished execution stays as it ended.
    pub async fn cancel_execution(
        &self,
        tenant: TenantId,
        id: ExecutionId,
    ) -> Result<ExecutionStatus, Error> {
        let status = self
            .shared
            .store
            .request_cancel(tenant, id)
            .await?
            .ok_or(Error::NotFound("execution"))?;
        if !status.is_terminal() {
            let record = self.get_execution(tenant, id).await?;
            let command = Command::CancelExecution {
                tenant,
                workflow: record.workflow,
                execution: id,
            };
            // The flag in the store is the durable part; the command makes it prompt.
            if let Err(e) = self.shared.bus.publish_command(&command, None).await {
                tracing::warn!(execution = %id, error = %e, "cancel command not published; the execution stops when resumed");
            }
        }
        Ok(status)
    }

    /// The events of one execution: those kept so far, then live ones.
    pub(super) async fn events(
        &self,
        tenant: TenantId,
        id: ExecutionId,
    ) -> Result<flowmesh_bus::Events, Error> {
        Ok(self.shared.bus.execution_events(tenant, id).await?)
    }

    /// Live events of every execution of a tenant from now on (the record
    /// has the rest).
    pub async fn tenant_events(&self, tenant: TenantId) -> Result<flowmesh_bus::Events, Error> {
        Ok(self.shared.bus.tenant_events(tenant).await?)
    }

    /// Waits (at most `timeout`, capped by the engine's limit) for an
    /// execution to respond or finish. `None` when it did not in time, or
    /// when its events cannot be read now: the execution is accepted all
    /// the same, and its caller is answered with its id, never told to
    /// send it again.
    pub async fn await_outcome(
        &self,
        started: &Started,
        until: Until,
        timeout: Duration,
    ) -> Option<Outcome> {
        let timeout = timeout.min(self.shared.options.max_sync_wait.0);
        let watched = started.watch.0.lock().await.take();
        let mut replayed = watched.is_none();
        let wait = async {
            let mut events = match watched {
                Some(events) => events,
                None => self.replay(started).await?,
            };
            loop {
                let Some(event) = events.next().await else {
                    if replayed {
                        return None;
                    }
                    // The live watch ended early (the execution moved on
                    // elsewhere): the record has what it missed.
                    events = self.replay(started).await?;
                    replayed = true;
                    continue;
                };
                let event = event
                    .inspect_err(|e| {
                        tracing::warn!(execution = %started.execution, error = %e, "lost the events of a waited-for execution; its caller gets its id")
                    })
                    .ok()?;
                match event.kind {
                    EventKind::Responded {
                        status,
                        headers,
                        body,
                    } if until == Until::Responded => {
                        return Some(Outcome::Responded {
                            status,
                            headers,
                            body: body.to_value(),
                        });
                    }
                    EventKind::ExecutionFinished {
                        status,
                        output,
                        error,
                    } => {
                        return Some(Outcome::Finished {
                            status,
                            output: output.map(|o| o.to_value()),
                            error,
                        });
                    }
                    _ => {}
                }
            }
        };
        let mut stopping = self.shared.stopping.subscribe();
        tokio::select! {
            waited = tokio::time::timeout(timeout, wait) => waited.ok().flatten(),
            // The execution is recorded and runs on: the caller learns its
            // id now rather than losing its connection when the process exits.
            _ = stopping.wait_for(|stopping| *stopping) => None,
        }
    }

    /// A waited-for execution's events from its start; `None` when the bus
    /// cannot give them now.
    async fn replay(&self, started: &Started) -> Option<flowmesh_bus::Events> {
        self.events(started.tenant, started.execution)
            .await
            .inspect_err(|e| {
                tracing::warn!(execution = %started.execution, error = %e, "cannot read the events of a waited-for execution; its caller gets its id")
            })
            .ok()
    }

    /// Answers every synchronous caller still waiting, and any that starts
    /// waiting from now on, with its execution's id: called when the
    /// process stops serving, before its connections are closed.
    pub fn stop_waiting(&self) {
        self.shared.stopping.send_replace(true);
    }
}

/// Where a webhook or NATS message is addressed.
pub(super) struct TriggerRoute<'a> {
    pub slug: &'a str,
    /// Anyone may call it (a webhook): its limits are its own, and the
    /// tenant's API allowance is not spent.
    pub public: bool,
    /// The HTTP method, or [`NATS_ROUTE`].
    pub method: &'a str,
    /// The webhook path or NATS subject.
    pub path: &'a str,
    /// What a miss is reported as not finding.
    pub missing: &'static str,
}

/// What a [`TriggerRoute`] leads to.
pub(super) struct Routed {
    pub tenant: TenantId,
    pub workflow: WorkflowId,
    pub version: i64,
    pub graph: Arc<WorkflowGraph>,
    pub trigger: usize,
}

pub(super) struct Accept {
    pub tenant: TenantId,
    pub workflow: WorkflowId,
    pub version: i64,
    pub graph: Arc<WorkflowGraph>,
    pub trigger: usize,
    pub data: Value,
    pub idempotency_key: Option<String>,
    /// What the request was, for its idempotency key.
    pub request: Fingerprint,
    /// Subscribe to the execution's events before asking for it to run.
    pub watch: bool,
    /// Set for a test run.
    pub test: Option<flowmesh_store::TestRun>,
}

/// The parts of a request that make it the same request again: a repeat
/// with the same idempotency key must match them.
pub(super) enum Fingerprint {
    Api {
        input: Value,
    },
    Webhook {
        method: String,
        path: String,
        body: Value,
    },
    Nats {
        subject: String,
        body: Value,
    },
}

impl Fingerprint {
    /// SHA-256 of a canonical JSON form (object keys sorted), in hex.
    fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let canonical = match self {
            Fingerprint::Api { input } => json!({"source": "api", "input": input}),
            Fingerprint::Webhook { method, path, body } => {
                json!({"source": "webhook", "method": method, "path": path, "body": body})
            }
            Fingerprint::Nats { subject, body } => {
                json!({"source": "nats", "subject": subject, "body": body})
            }
        };
        format!("{:x}", Sha256::digest(canonical.to_string().as_bytes()))
    }
}
