//! What every actor of one engine process shares.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

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
    /// Node attempts running now, and a signal when one ends.
    attempts: AtomicUsize,
    attempt_ended: Notify,
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
            attempts: AtomicUsize::new(0),
            attempt_ended: Notify::new(),
        }
    }

    pub fn mark_local(&self, id: ExecutionId, present: bool) {
        let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        if present {
            local.insert(id);
        } else {
            local.remove(&id);
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

    pub fn attempt_started(&self) {
        self.attempts.fetch_add(1, Ordering::SeqCst);
    }

    pub fn attempt_finished(&self) {
        self.attempts.fetch_sub(1, Ordering::SeqCst);
        self.attempt_ended.notify_waiters();
    }

    /// Waits until no node attempt is running.
    pub async fn attempts_idle(&self) {
        loop {
            let notified = self.attempt_ended.notified();
            if self.attempts.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
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
