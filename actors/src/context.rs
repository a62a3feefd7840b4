//! What every actor of one engine process shares.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use flowmesh_bus::Bus;
use flowmesh_model::{ExecutionEvent, ExecutionId};
use flowmesh_node_handlers::SecretSource;
use flowmesh_store::Store;
use tokio::sync::Notify;

use crate::options::Options;
use crate::runner::NodeRunner;

pub(crate) struct Context {
    pub store: Store,
    pub bus: Bus,
    pub runner: Arc<dyn NodeRunner>,
    pub secrets: Arc<dyn SecretSource>,
    pub options: Options,
    /// Executions with a live actor in this process.
    local: Mutex<HashSet<ExecutionId>>,
    /// Set on shutdown: executions start no new node attempts.
    draining: AtomicBool,
    /// Signalled whenever an execution actor leaves this process.
    execution_left: Notify,
}

impl Context {
    pub fn new(
        store: Store,
        bus: Bus,
        runner: Arc<dyn NodeRunner>,
        secrets: Arc<dyn SecretSource>,
        options: Options,
    ) -> Self {
        Self {
            store,
            bus,
            runner,
            secrets,
            options,
            local: Mutex::default(),
            draining: AtomicBool::new(false),
            execution_left: Notify::new(),
        }
    }

    pub fn mark_local(&self, id: ExecutionId, present: bool) {
        let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        if present {
            local.insert(id);
        } else {
            local.remove(&id);
            self.execution_left.notify_waiters();
        }
    }

    pub fn is_local(&self, id: ExecutionId) -> bool {
        self.local
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&id)
    }

    pub fn local_count(&self) -> usize {
        self.local.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Waits until no execution actor is left in this process.
    pub async fn executions_gone(&self) {
        loop {
            let left = self.execution_left.notified();
            if self.local_count() == 0 {
                return;
            }
            left.await;
        }
    }

    /// Events are notifications; the journal is the record. A lost event is
    /// logged, never fatal.
    pub async fn emit(&self, event: ExecutionEvent) {
        if let Err(e) = self.bus.publish_event(&event).await {
            tracing::warn!(execution = %event.execution, error = %e, "could not publish event");
        }
    }
}
