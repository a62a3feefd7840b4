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

use crate::context::Context;
use crate::error::Error;
use crate::root::RootMsg;
use crate::workflow::WorkflowMsg;

/// Commands handled at once by one process.
const MAX_CONCURRENT_STARTS: usize = 256;
/// Unowned executions claimed per sweep.
const CLAIM_BATCH: u32 = 200;

pub(super) async fn spawn_all(
    ctx: Arc<Context>,
    root: ActorRef<RootMsg>,
) -> Result<Vec<JoinHandle<()>>, Error> {
    let commands = ctx.bus.commands().await?;
    let control = ctx.bus.control().await?;
    Ok(vec![
        tokio::spawn(consume_commands(ctx.clone(), root.clone(), commands)),
        tokio::spawn(consume_control(root.clone(), control)),
        tokio::spawn(claim_unowned(ctx.clone(), root)),
        tokio::spawn(renew_leases(ctx)),
    ])
}

async fn consume_commands(
    ctx: Arc<Context>,
    root: ActorRef<RootMsg>,
    mut commands: flowmesh_bus::Commands,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONCURRENT_STARTS));
    while let Some(next) = commands.next().await {
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
    let Command::StartExecution {
        tenant,
        workflow,
        execution,
    } = delivery.command.clone()
    else {
        let _ = delivery.ack().await;
        return;
    };
    let lease = ctx.options.lease.0;
    let outcome = match ctx
        .store
        .claim_execution(execution, &ctx.options.node_id, lease)
        .await
    {
        Ok(None) => Ok(()),
        Ok(Some(record)) if record.tenant == tenant && record.workflow == workflow => {
            route_start(root, record).await
        }
        Ok(Some(_)) => Err(Error::NotFound("execution")),
        Err(e) => Err(Error::from(e)),
    };
    let settled = match outcome {
        Ok(()) | Err(Error::NotFound(_)) => delivery.ack().await,
        Err(e) => {
            tracing::warn!(%execution, error = %e, "could not start execution; the command will be delivered again");
            delivery.nak(Duration::from_secs(1)).await
        }
    };
    if let Err(e) = settled {
        tracing::warn!(%execution, error = %e, "could not settle command; it may be delivered again");
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
            },
        },
        Some(Duration::from_secs(30)),
    );
    match call.await {
        Ok(CallResult::Success(result)) => result,
        Ok(CallResult::Timeout) => Err(Error::Unavailable(
            "the execution did not start in time".into(),
        )),
        Ok(CallResult::SenderError) | Err(_) => {
            Err(Error::Internal("the actor tree is not running".into()))
        }
    }
}

async fn consume_control(root: ActorRef<RootMsg>, mut control: flowmesh_bus::Commands) {
    while let Some(next) = control.next().await {
        match next {
            Ok(delivery) => {
                if let Command::CancelExecution {
                    tenant,
                    workflow,
                    execution,
                } = delivery.command
                {
                    let _ = root.cast(RootMsg::Route {
                        tenant,
                        workflow,
                        msg: WorkflowMsg::Cancel { execution },
                    });
                }
            }
            Err(e) => tracing::warn!(error = %e, "control stream error"),
        }
    }
}

/// Picks up executions nobody owns: left by a crashed process, accepted while
/// the bus was down, or whose start command was lost. At start-up it first
/// takes back, batch after batch, what this node id held before a restart.
async fn claim_unowned(ctx: Arc<Context>, root: ActorRef<RootMsg>) {
    loop {
        match sweep(&ctx, &root, true).await {
            Some(n) if n >= CLAIM_BATCH as usize => continue,
            Some(_) => break,
            None => tokio::time::sleep(ctx.options.claim_interval.0).await,
        }
    }
    let mut tick = tokio::time::interval(ctx.options.claim_interval.0);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        sweep(&ctx, &root, false).await;
    }
}

/// One claim and the resumption of what it got; `None` if the claim failed.
async fn sweep(ctx: &Context, root: &ActorRef<RootMsg>, include_own: bool) -> Option<usize> {
    let request = ClaimRequest {
        owner: &ctx.options.node_id,
        lease: ctx.options.lease.0,
        limit: CLAIM_BATCH,
        include_own,
    };
    let claimed = match ctx.store.claim_executions(&request).await {
        Ok(ids) => ids,
        Err(e) => {
            tracing::warn!(error = %e, "could not claim executions");
            return None;
        }
    };
    let count = claimed.len();
    if count > 0 {
        tracing::debug!(count, include_own, "claimed executions nobody owned");
    }
    for id in claimed.into_iter().filter(|id| !ctx.is_local(*id)) {
        match ctx.store.load_execution(id).await {
            Ok(Some(record)) => {
                let (tenant, workflow) = (record.tenant, record.workflow);
                let msg = WorkflowMsg::Start {
                    record: Box::new(record),
                    reply: None,
                };
                let _ = root.cast(RootMsg::Route {
                    tenant,
                    workflow,
                    msg,
                });
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(execution = %id, error = %e, "could not load a claimed execution")
            }
        }
    }
    Some(count)
}

/// Keeps the leases of the executions running here; the others expire and
/// a sweep (here or elsewhere) picks them up again.
async fn renew_leases(ctx: Arc<Context>) {
    let period = ctx.options.lease.0 / 3;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tick.tick().await;
        let running = ctx.local_ids();
        if let Err(e) = ctx
            .store
            .renew_leases(&ctx.options.node_id, &running, ctx.options.lease.0)
            .await
        {
            tracing::warn!(error = %e, "could not renew leases");
        }
    }
}
