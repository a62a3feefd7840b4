//! Watchers of executions that run in this process, fed by the process's
//! own publishes: a synchronous caller waits for an execution started
//! here without a subscription at the NATS server or a trip through it.
//!
//! A watcher's stream ends, having missed nothing it was sent, when the
//! execution leaves the process unfinished (it parked, or the process is
//! draining) or when the watcher fell [`BUFFER`] events behind: the
//! caller then reads the execution's events from the record.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use flowmesh_model::{ExecutionEvent, ExecutionId};
use tokio::sync::mpsc;

/// Events a watcher may fall behind before it is cut off.
const BUFFER: usize = 256;

#[derive(Clone, Default)]
pub(crate) struct LocalWatches {
    watchers: Arc<Mutex<HashMap<ExecutionId, Vec<mpsc::Sender<ExecutionEvent>>>>>,
}

impl LocalWatches {
    pub fn watch(&self, execution: ExecutionId) -> mpsc::Receiver<ExecutionEvent> {
        let (sender, receiver) = mpsc::channel(BUFFER);
        self.lock().entry(execution).or_default().push(sender);
        receiver
    }

    /// Hands an event to the watchers of its execution; those gone or too
    /// far behind are dropped.
    pub fn deliver(&self, event: &ExecutionEvent) {
        let mut watchers = self.lock();
        let Some(senders) = watchers.get_mut(&event.execution) else {
            return;
        };
        senders.retain(|sender| sender.try_send(event.clone()).is_ok());
        if senders.is_empty() {
            watchers.remove(&event.execution);
        }
    }

    /// Ends the streams of an execution's watchers.
    pub fn left(&self, execution: ExecutionId) {
        self.lock().remove(&execution);
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<ExecutionId, Vec<mpsc::Sender<ExecutionEvent>>>> {
        self.watchers.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use flowmesh_model::{EventKind, TenantId, WorkflowId};

    use super::*;

    fn event(execution: ExecutionId, seq: u64) -> ExecutionEvent {
        ExecutionEvent {
            tenant: TenantId::new(),
            workflow: WorkflowId::new(),
            execution,
            at_ms: 0,
            seq,
            position: 0,
            kind: EventKind::ExecutionStarted,
        }
    }

    #[tokio::test]
    async fn a_watcher_gets_its_executions_events_until_it_leaves() {
        let watches = LocalWatches::default();
        let (one, other) = (ExecutionId::new(), ExecutionId::new());
        let mut watcher = watches.watch(one);
        watches.deliver(&event(other, 1));
        watches.deliver(&event(one, 1));
        watches.deliver(&event(one, 2));
        watches.left(one);
        assert_eq!(watcher.recv().await.map(|e| e.seq), Some(1));
        assert_eq!(watcher.recv().await.map(|e| e.seq), Some(2));
        assert!(watcher.recv().await.is_none());
    }

    #[tokio::test]
    async fn a_watcher_too_far_behind_is_cut_off_and_a_dropped_one_forgotten() {
        let watches = LocalWatches::default();
        let execution = ExecutionId::new();
        let mut slow = watches.watch(execution);
        drop(watches.watch(execution));
        for seq in 0..=BUFFER as u64 {
            watches.deliver(&event(execution, seq));
        }
        let mut seen = 0;
        while slow.recv().await.is_some() {
            seen += 1;
        }
        assert_eq!(seen, BUFFER);
        assert!(watches.lock().is_empty());
    }
}
