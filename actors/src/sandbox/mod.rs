//! SandboxActor: owns one sandbox of one tenant and language. It creates the
//! sandbox in `pre_start`, hands cheap handles to code nodes through its
//! tenant, and tears it down when it stops: idle too long or deleted by an
//! operator (its tenant forgets it, so the next code node gets a fresh one).

mod messages;

use std::sync::Arc;
use std::time::{Duration, Instant};

use flowmesh_sandbox::{
    Call, Failure, JsSandbox, JsStart, Language, PythonSandbox, Returned, Usage,
};
use flowmesh_services::SandboxInfo;
use flowmesh_store::now_ms;
use ractor::{Actor, ActorProcessingErr, ActorRef};

pub(crate) use messages::SandboxMsg;

use crate::context::Context;

/// How often a sandbox is checked.
const CHECK_EVERY: Duration = Duration::from_secs(5);
/// A sandbox that served no call for this long is torn down.
const IDLE_FOR: Duration = Duration::from_secs(300);

/// A running sandbox; clones share it.
#[derive(Clone)]
pub(crate) enum SandboxHandle {
    Javascript(JsSandbox),
    Python(PythonSandbox),
}

impl SandboxHandle {
    pub async fn run(&self, call: Call) -> Result<Returned, Failure> {
        match self {
            SandboxHandle::Javascript(js) => js.run(call).await,
            SandboxHandle::Python(py) => py.run(call).await,
        }
    }

    fn usage(&self) -> Usage {
        match self {
            SandboxHandle::Javascript(js) => js.usage(),
            SandboxHandle::Python(py) => py.usage(),
        }
    }
}

/// A sandbox as its tenant keeps it.
#[derive(Clone)]
pub(crate) struct SandboxEntry {
    pub id: uuid::Uuid,
    pub language: Language,
    pub handle: SandboxHandle,
    pub created_at: i64,
}

impl SandboxEntry {
    pub fn info(&self) -> SandboxInfo {
        let usage = self.handle.usage();
        SandboxInfo {
            id: self.id,
            language: self.language,
            created_at: self.created_at,
            age_ms: (now_ms() - self.created_at).max(0) as u64,
            executions_served: usage.calls,
            failures: usage.failures,
            memory_bytes: usage.memory_bytes,
            busy_ms: usage.busy_ms,
        }
    }
}

pub(crate) struct SandboxActor;

pub(crate) struct SandboxState {
    handle: SandboxHandle,
    calls_seen: u64,
    idle_since: Instant,
    _live: flowmesh_services::metrics::Live,
}

impl Actor for SandboxActor {
    type Msg = SandboxMsg;
    type State = SandboxState;
    /// The context, the language, and the host uid of the tenant's code.
    type Arguments = (Arc<Context>, Language, Option<u32>);

    async fn pre_start(
        &self,
        myself: ActorRef<SandboxMsg>,
        (ctx, language, uid): (Arc<Context>, Language, Option<u32>),
    ) -> Result<SandboxState, ActorProcessingErr> {
        let handle = match language {
            Language::Javascript => SandboxHandle::Javascript(JsSandbox::start(JsStart {
                program: ctx.options.sandbox.javascript_worker()?,
                jail: ctx.jail.clone(),
                uid,
            })),
            Language::Python => SandboxHandle::Python(PythonSandbox::start(
                &ctx.options.sandbox,
                ctx.jail.clone(),
                uid,
            )),
        };
        myself.send_interval(CHECK_EVERY, || SandboxMsg::Check);
        Ok(SandboxState {
            calls_seen: handle.usage().calls,
            handle,
            idle_since: Instant::now(),
            _live: flowmesh_services::metrics::Live::new("sandbox"),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<SandboxMsg>,
        msg: SandboxMsg,
        state: &mut SandboxState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SandboxMsg::Handle(reply) => {
                let _ = reply.send(state.handle.clone());
            }
            SandboxMsg::Check => {
                let calls = state.handle.usage().calls;
                if calls != state.calls_seen {
                    state.calls_seen = calls;
                    state.idle_since = Instant::now();
                } else if state.idle_since.elapsed() >= IDLE_FOR {
                    myself.stop(Some("idle".into()));
                }
            }
        }
        Ok(())
    }
}
