//! WorkflowActor: one per workflow with executions in this process. It holds
//! the compiled versions its executions are pinned to and supervises them.

mod messages;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use flowmesh_model::graph::WorkflowGraph;
use flowmesh_model::lifecycle::ExecutionTransition;
use flowmesh_model::{EventKind, ExecutionEvent, ExecutionId, WorkflowId};
use flowmesh_store::{Ending, ExecutionChange, ExecutionRecord, NewExecution, now_ms};
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tracing::Instrument;

pub(crate) use messages::WorkflowMsg;

use crate::context::Context;
use crate::execution::{ExecutionActor, ExecutionArgs, ExecutionMsg};
use crate::idle::Idleness;
use crate::supervision::{RestartHistory, policy};
use crate::tenant::TenantMsg;
use flowmesh_services::{Error, Place};

pub(crate) struct WorkflowActor;

pub(crate) struct WorkflowArgs {
    pub ctx: Arc<Context>,
    /// Its parent, told when it is idle.
    pub tenant: ActorRef<TenantMsg>,
    pub workflow: WorkflowId,
}

pub(crate) struct WorkflowState {
    ctx: Arc<Context>,
    tenant: ActorRef<TenantMsg>,
    workflow: WorkflowId,
    versions: HashMap<i64, Arc<WorkflowGraph>>,
    executions: HashMap<ExecutionId, ActorRef<ExecutionMsg>>,
    by_actor: HashMap<ActorId, ExecutionId>,
    restarts: HashMap<ExecutionId, RestartHistory>,
    idle: Idleness,
    _live: flowmesh_services::metrics::Live,
}

impl Actor for WorkflowActor {
    type Msg = WorkflowMsg;
    type State = WorkflowState;
    type Arguments = WorkflowArgs;

    async fn pre_start(
        &self,
        _: ActorRef<WorkflowMsg>,
        args: WorkflowArgs,
    ) -> Result<WorkflowState, ActorProcessingErr> {
        Ok(WorkflowState {
            idle: Idleness::new(args.ctx.options.actor_idle_after.0),
            ctx: args.ctx,
            tenant: args.tenant,
            workflow: args.workflow,
            versions: HashMap::new(),
            executions: HashMap::new(),
            by_actor: HashMap::new(),
            restarts: HashMap::new(),
            _live: flowmesh_services::metrics::Live::new("workflow"),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<WorkflowMsg>,
        msg: WorkflowMsg,
        state: &mut WorkflowState,
    ) -> Result<(), ActorProcessingErr> {
        if msg.is_from_parent() {
            state.idle.handled();
        }
        match msg {
            WorkflowMsg::Start {
                record,
                reply,
                place,
            } => {
                let execution = record.id;
                let span = tracing::info_span!(
                    "workflow.start",
                    tenant = %record.tenant,
                    workflow = %record.workflow,
                    %execution,
                );
                flowmesh_services::trace::set_parent(&span, record.traceparent.as_deref());
                // A new actor takes the reply, to send once its first turn is in.
                let mut reply = reply;
                let result = state
                    .start(&myself, *record, &mut reply, place)
                    .instrument(span)
                    .await;
                match (reply, result) {
                    (Some(reply), result) => {
                        let _ = reply.send(result);
                    }
                    (None, Err(e)) => {
                        tracing::warn!(%execution, error = %e, "could not start execution");
                    }
                    (None, Ok(())) => {}
                }
            }
            WorkflowMsg::Restart { execution } => {
                if let Err(e) = state.restart(&myself, execution).await {
                    tracing::warn!(%execution, error = %e, "could not restart execution; its lease will expire and it will be claimed again");
                }
                // Not running here after all (finished, or its journal could
                // not be read): its history goes, so the actor can go idle.
                if !state.executions.contains_key(&execution) {
                    state.restarts.remove(&execution);
                }
            }
            WorkflowMsg::Cancel { execution } => {
                if let Some(actor) = state.executions.get(&execution) {
                    let _ = actor.cast(ExecutionMsg::Cancel);
                }
            }
            WorkflowMsg::Signal { execution } => {
                if let Some(actor) = state.executions.get(&execution) {
                    let _ = actor.cast(ExecutionMsg::CheckSignals);
                }
            }
            WorkflowMsg::Drain => {
                for actor in state.executions.values() {
                    let _ = actor.cast(ExecutionMsg::Drain);
                }
            }
            WorkflowMsg::IdleCheck => {
                let idle = state.is_idle();
                if let Some(handled) = state.idle.check(&myself, idle, || WorkflowMsg::IdleCheck) {
                    let _ = state.tenant.cast(TenantMsg::WorkflowIdle {
                        workflow: state.workflow,
                        actor: myself.get_id(),
                        handled,
                    });
                }
                return Ok(());
            }
        }
        let idle = state.is_idle();
        state.idle.arm(&myself, idle, || WorkflowMsg::IdleCheck);
        Ok(())
    }

    /// The one place where failures of executions are handled, by the policy table.
    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<WorkflowMsg>,
        event: SupervisionEvent,
        state: &mut WorkflowState,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                if let Some(id) = state.by_actor.remove(&cell.get_id()) {
                    state.ctx.mark_local(id, false);
                    state.executions.remove(&id);
                    state.restarts.remove(&id);
                    // The compiled versions are kept for the idle period
                    // after the last execution, for the next one.
                    state.idle.touch();
                }
            }
            SupervisionEvent::ActorFailed(cell, error) => {
                let Some(id) = state.by_actor.remove(&cell.get_id()) else {
                    return Ok(());
                };
                state.executions.remove(&id);
                // A failed actor runs no post_stop: until its restart it is
                // not here, so the orphan check can find it if that fails.
                state.ctx.mark_local(id, false);
                let history = state.restarts.entry(id).or_default();
                match history.next_restart(policy("execution"), Instant::now()) {
                    Some(delay) => {
                        tracing::warn!(execution = %id, %error, ?delay, "execution actor failed; restarting from the journal");
                        myself.send_after(delay, move || WorkflowMsg::Restart { execution: id });
                    }
                    None => {
                        tracing::error!(execution = %id, %error, "execution actor keeps failing; failing the execution");
                        state.restarts.remove(&id);
                        state.give_up(id, error.to_string()).await;
                    }
                }
            }
            _ => {}
        }
        let idle = state.is_idle();
        state.idle.arm(&myself, idle, || WorkflowMsg::IdleCheck);
        Ok(())
    }
}

impl WorkflowState {
    /// No execution runs here, and none waits to be restarted.
    fn is_idle(&self) -> bool {
        self.executions.is_empty() && self.restarts.is_empty()
    }

    async fn graph(&mut self, version: i64) -> Result<Arc<WorkflowGraph>, Error> {
        if let Some(graph) = self.versions.get(&version) {
            return Ok(graph.clone());
        }
        let document = self
            .ctx
            .store
            .workflow_version(self.workflow, version)
            .await?
            .ok_or(Error::NotFound("workflow version"))?;
        let graph = Arc::new(WorkflowGraph::new(document));
        self.versions.insert(version, graph.clone());
        Ok(graph)
    }

    /// Spawns a failed execution's actor again, from the journal.
    async fn restart(
        &mut self,
        myself: &ActorRef<WorkflowMsg>,
        id: ExecutionId,
    ) -> Result<(), Error> {
        let record = self
            .ctx
            .store
            .load_execution(id)
            .await?
            .ok_or(Error::NotFound("execution"))?;
        self.start(myself, record, &mut None, None).await
    }

    /// Spawns the execution's actor unless it has one here or is finished.
    /// A new actor takes `reply`, to answer once its first turn is
    /// committed (a failed spawn drops it, which its caller hears), and
    /// `place`, to give back once it counts as here.
    async fn start(
        &mut self,
        myself: &ActorRef<WorkflowMsg>,
        record: ExecutionRecord,
        reply: &mut Option<RpcReplyPort<Result<(), Error>>>,
        place: Option<Place>,
    ) -> Result<(), Error> {
        let id = record.id;
        if self.executions.contains_key(&id) || record.status.is_terminal() {
            return Ok(());
        }
        let graph = self.graph(record.version).await?;
        let args = ExecutionArgs {
            ctx: self.ctx.clone(),
            graph,
            record,
            started: reply.take(),
            place,
        };
        // Named so that an execution's actor can be found (and is unique) in the process.
        let name = format!("execution:{id}");
        let (actor, _) =
            ExecutionActor::spawn_linked(Some(name), ExecutionActor, args, myself.get_cell())
                .await
                .map_err(|e| Error::Internal(Box::new(e)))?;
        self.by_actor.insert(actor.get_id(), id);
        self.executions.insert(id, actor);
        Ok(())
    }

    /// Records a crashed execution as failed, if it is still running.
    async fn give_up(&self, id: ExecutionId, error: String) {
        let Ok(Some(record)) = self.ctx.store.load_execution(id).await else {
            return;
        };
        let Ok(to) = record.status.apply(ExecutionTransition::Fail) else {
            return;
        };
        let message = format!("the execution crashed repeatedly: {error}");
        let change = ExecutionChange {
            id,
            from: record.status,
            to,
            output: None,
            error: Some(message.clone()),
        };
        let Ok(seq) = crate::events::last_seq(&self.ctx, &record).await else {
            return;
        };
        let mut event = ExecutionEvent {
            tenant: record.tenant,
            workflow: record.workflow,
            execution: id,
            at_ms: now_ms(),
            seq: seq + 1,
            position: 0,
            kind: EventKind::ExecutionFinished {
                status: to,
                output: None,
                error: Some(message),
            },
        };
        // As after any end by failure: a parent waiting for it learns of
        // it, its failure handler starts, its children that asked are
        // cancelled.
        let to_parent =
            crate::execution::end_for_parent(&record, to, None, change.error.as_deref());
        let handler = self.failure_handler(&record, change.error.as_deref()).await;
        let ending = Ending {
            owner: &self.ctx.options.node_id,
            change: &change,
            events: std::slice::from_ref(&event),
            to_parent: to_parent.as_ref(),
            handler: handler.as_ref(),
        };
        let Ok(Some((position, parent_told))) =
            self.ctx.store.transition_with_events(&ending).await
        else {
            return;
        };
        if let Some(position) = position {
            event.position = position;
            self.ctx.emit(event).await;
        }
        if parent_told {
            crate::execution::wake_parent(&self.ctx, &record).await;
        }
        if let Some(handler) = &handler {
            crate::execution::start_handler(&self.ctx, handler).await;
        }
        crate::execution::cancel_children(&self.ctx, &record, to).await;
    }

    /// The failure handler a given-up run starts, if its version names one.
    async fn failure_handler(
        &self,
        record: &ExecutionRecord,
        error: Option<&str>,
    ) -> Option<NewExecution> {
        let document = self
            .ctx
            .store
            .workflow_version(record.workflow, record.version)
            .await
            .ok()
            .flatten()?;
        let failure = crate::execution::Failure {
            record,
            handler: document.settings.on_error_workflow?,
            status: "failed",
            failed_node: None,
            error,
        };
        crate::execution::handler_run(&self.ctx, &failure).await
    }
}
