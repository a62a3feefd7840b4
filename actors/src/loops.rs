//! The background loops of an engine process.

use std::sync::Arc;
use std::time::Duration;

use flowmesh_bus::Delivery;
use flowmesh_model::Command;
use flowmesh_store::{ClaimRequest, ExecutionRecord};
use ractor::ActorRef;
use ractor::rpc::CallResult;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use flowmesh_store::failpoints::crash_point;

use tracing::Instrument;

use crate::context::Context;
use crate::root::RootMsg;
use crate::workflow::WorkflowMsg;
use flowmesh_services::{Error, metrics};

/// Commands handled at once by one process.
const MAX_CONCURRENT_STARTS: usize = 256;
/// Unowned executions claimed per sweep.
const CLAIM_BATCH: u32 = 200;

pub(crate) async fn spawn_all(
    ctx: Arc<Context>,
    root: ActorRef<RootMsg>,
) -> Result<Vec<JoinHandle<()>>, Error> {
    // A live lease before anything is claimed.
    ctx.store
        .heartbeat(&ctx.options.node_id, ctx.options.lease.0)
        .await?;
    let commands = ctx.bus.commands().await?;
    let control = ctx.bus.control().await?;
    Ok(vec![
        tokio::spawn(consume_commands(ctx.clone(), root.clone(), commands)),
        tokio::spawn(consume_control(ctx.clone(), root.clone(), control)),
        tokio::spawn(claim_unowned(ctx.clone())),
        tokio::spawn(sweep_caches(ctx.clone())),
        tokio::spawn(keep_lease(ctx)),
    ])
}

async fn consume_commands(
    ctx: Arc<Context>,
    root: ActorRef<RootMsg>,
    mut commands: flowmesh_bus::Commands,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONCURRENT_STARTS));
    loop {
        // What this process cannot run yet stays on the bus, for another
        // process to take and for acceptance to see (and shed past its own
        // bound) instead of piling up here.
        ctx.room(|| MAX_CONCURRENT_STARTS - permits.available_permits())
            .await;
        let Some(next) = commands.next().await else {
            return;
        };
        let delivery = match next {
            Ok(delivery) => delivery,
            Err(e) => {
                tracing::warn!(error = %e, "command stream error");
                continue;
            }
        };
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let (ctx, root) = (ctx.clone(), root.clone());
        tokio::spawn(async move {
            handle_start(&ctx, &root, delivery).await;
            drop(permit);
        });
    }
}

/// Starts an execution and acknowledges the command only once the execution
/// is running here (persisted), owned elsewhere, or already finished.
async fn handle_start(ctx: &Context, root: &ActorRef<RootMsg>, delivery: Delivery) {
    let execution = delivery.command.execution();
    let hop = tracing::info_span!("bus.consume", otel.kind = "consumer", message = "start_execution", %execution);
    flowmesh_services::trace::set_parent(&hop, delivery.trace.as_deref());
    let settled = match start(ctx, root, &delivery.command).instrument(hop).await {
        Ok(()) | Err(Error::NotFound(_)) => {
            crash_point("engine::command::started");
            delivery.ack().await
        }
        Err(e) => {
            tracing::warn!(%execution, error = %e, "could not start execution; the command will be delivered again");
            delivery.nak(Duration::from_secs(1)).await
        }
    };
    if let Err(e) = settled {
        tracing::warn!(%execution, error = %e, "could not settle command; it may be delivered again");
    }
}

/// What a start command does, however often and late it arrives: claim the
/// execution (only one live owner wins; a finished one is never claimed)
/// and make sure it has its actor here.
pub(super) async fn start(
    ctx: &Context,
    root: &ActorRef<RootMsg>,
    command: &Command,
) -> Result<(), Error> {
    let Command::StartExecution {
        tenant,
        workflow,
        execution,
        ..
    } = *command
    else {
        return Ok(());
    };
    let started = std::time::Instant::now();
    let claimed = ctx
        .store
        .claim_execution(execution, &ctx.options.node_id, &ctx.incarnation)
        .await;
    metrics::store_call("claim_one", started.elapsed());
    match claimed? {
        None => Ok(()),
        Some(record) if record.tenant == tenant && record.workflow == workflow => {
            if record.status == flowmesh_model::ExecutionStatus::Queued {
                metrics::consume_lag(record.created_at);
            }
            route_start(root, record).await
        }
        Some(_) => Err(Error::NotFound("execution")),
    }
}

async fn route_start(root: &ActorRef<RootMsg>, record: ExecutionRecord) -> Result<(), Error> {
    let (tenant, workflow) = (record.tenant, record.workflow);
    let call = root.call(
        |reply| RootMsg::Route {
            tenant,
            workflow,
            msg: WorkflowMsg::Start {
                record: Box::new(record),
                reply: Some(reply),
                place: None,
            },
        },
        Some(Duration::from_secs(30)),
    );
    match call.await {
        Ok(CallResult::Success(result)) => result,
        Ok(CallResult::Timeout) => Err(Error::Unavailable(
            "the execution did not start in time".into(),
        )),
        Ok(CallResult::SenderError) | Err(_) => Err(Error::Internal(
            "the execution's actor stopped before its start was committed".into(),
        )),
    }
}

/// Control commands go to the execution's actor if it runs here.
async fn consume_control(
    ctx: Arc<Context>,
    root: ActorRef<RootMsg>,
    mut control: flowmesh_bus::Commands,
) {
    while let Some(next) = control.next().await {
        match next {
            Ok(delivery) => {
                let command = &delivery.command;
                if !ctx.is_local(command.execution()) {
                    continue;
                }
                let (tenant, workflow) = (command.tenant(), command.workflow());
                let msg = match delivery.command {
                    Command::CancelExecution { execution, .. } => WorkflowMsg::Cancel { execution },
                    Command::SignalExecution { execution, .. } => WorkflowMsg::Signal { execution },
                    Command::StartExecution { .. } => continue,
                };
                let _ = root.cast(RootMsg::Route {
                    tenant,
                    workflow,
                    msg,
                });
            }
            Err(e) => tracing::warn!(error = %e, "control stream error"),
        }
    }
}

/// Picks up executions nobody owns: left by a crashed process, accepted while
/// the bus was down, or whose start command was lost. At start-up it first
/// resumes what this node id held before a restart.
async fn claim_unowned(ctx: Arc<Context>) {
    // The first tick is at once; a failed start-up listing is tried again
    // at the next.
    let mut tick = tokio::time::interval(ctx.options.claim_interval.0);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut resumed = false;
    loop {
        tick.tick().await;
        if !resumed {
            match ctx.store.owned_executions(&ctx.options.node_id).await {
                Ok(owned) => {
                    let here = owned.into_iter().filter(|id| !ctx.is_local(*id));
                    resume(&ctx, here).await;
                    resumed = true;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not list this process's executions");
                    continue;
                }
            }
        }
        // Batch after batch while there is a backlog (and room for it).
        while sweep(&ctx).await.is_some_and(|n| n >= CLAIM_BATCH as usize) {}
    }
}

/// One claim, within the room this process has for live executions, and
/// the resumption of what it got; `None` if the claim failed.
async fn sweep(ctx: &Context) -> Option<usize> {
    let room = ctx.options.max_executions_here.saturating_sub(ctx.held());
    let limit = CLAIM_BATCH.min(u32::try_from(room).unwrap_or(u32::MAX));
    if limit == 0 {
        return Some(0);
    }
    let request = ClaimRequest {
        owner: &ctx.options.node_id,
        incarnation: &ctx.incarnation,
        limit,
        lookahead: ctx.options.claim_interval.0 * 2,
    };
    let started = std::time::Instant::now();
    let claimed = ctx.store.claim_executions(&request).await;
    metrics::store_call("claim_sweep", started.elapsed());
    let claimed = match claimed {
        Ok(ids) => ids,
        Err(e) => {
            tracing::warn!(error = %e, "could not claim executions");
            return None;
        }
    };
    let count = claimed.len();
    if count > 0 {
        tracing::debug!(count, "claimed executions nobody owned");
    }
    resume(ctx, claimed.into_iter().filter(|id| !ctx.is_local(*id))).await;
    Some(count)
}

/// Loads executions this process holds and starts their actors.
async fn resume(ctx: &Context, ids: impl Iterator<Item = flowmesh_model::ExecutionId>) {
    for id in ids {
        match ctx.store.load_execution(id).await {
            Ok(Some(record)) => ctx.start_here(record, None),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(execution = %id, error = %e, "could not load a claimed execution")
            }
        }
    }
}

/// Renews this process's lease (one row, whatever it holds) every third
/// of its length, and repairs what a lost message left behind: executions
/// it owns without an actor for them, seen so twice in a row (a start in
/// progress is never seen so twice), get their actor.
async fn keep_lease(ctx: Arc<Context>) {
    let period = ctx.options.lease.0 / 3;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let mut orphans_before = std::collections::HashSet::new();
    loop {
        tick.tick().await;
        if let Err(e) = ctx
            .store
            .heartbeat(&ctx.options.node_id, ctx.options.lease.0)
            .await
        {
            tracing::warn!(error = %e, "could not renew this process's lease");
            continue;
        }
        if ctx.is_draining() {
            continue;
        }
        let owned = match ctx.store.owned_executions(&ctx.options.node_id).await {
            Ok(owned) => owned,
            Err(e) => {
                tracing::warn!(error = %e, "could not list this process's executions");
                continue;
            }
        };
        let orphans: std::collections::HashSet<_> =
            owned.into_iter().filter(|id| !ctx.is_local(*id)).collect();
        let lost: Vec<_> = orphans.intersection(&orphans_before).copied().collect();
        if !lost.is_empty() {
            tracing::warn!(
                count = lost.len(),
                "executions owned here had no actor; resuming them"
            );
        }
        resume(&ctx, lost.into_iter()).await;
        orphans_before = orphans;
    }
}

/// Drops what expired from the actors' caches, however idle the process is.
async fn sweep_caches(ctx: Arc<Context>) {
    let every = flowmesh_services::cache::sweep_every(ctx.options.actor_idle_after.0);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        ctx.sweep_caches();
    }
}
