//! Load shedding. Executions that cannot run at once wait as start
//! commands on the bus; past `max_queued_starts` of them, a new start is
//! refused before anything is recorded (503 with Retry-After), so that a
//! flood meets a clear answer early instead of a queue that grows without
//! bound. The depth is read from the bus a few times a second, not per
//! request: the bound may be passed by what arrives between two readings.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::error::Error;
use crate::metrics;
use crate::shared::Shared;

/// How often the depth of the start queue is read.
const READ_EVERY: Duration = Duration::from_millis(200);

/// The start queue's depth as last read.
#[derive(Default)]
pub(crate) struct Backlog {
    queued: AtomicU64,
}

impl Backlog {
    /// Refuses a start bound for the bus while the queue is full.
    pub(crate) fn admit(&self, bound: u64) -> Result<(), Error> {
        let queued = self.queued.load(Ordering::Relaxed);
        if queued < bound {
            return Ok(());
        }
        metrics::start_shed();
        Err(Error::Unavailable(
            format!(
                "the engine is past its capacity: {queued} accepted executions are waiting \
                 to run, at most {bound}"
            )
            .into(),
        ))
    }

    fn set(&self, queued: u64) {
        self.queued.store(queued, Ordering::Relaxed);
        metrics::starts_queued(queued);
    }
}

/// Reads the start queue's depth for the process's acceptance; a failed
/// read keeps the last one (the bus being down is answered elsewhere).
pub(crate) async fn watch_queue(shared: Arc<Shared>) {
    metrics::starts_shed_exported();
    let mut tick = tokio::time::interval(READ_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match shared.bus.queued_starts().await {
            Ok(queued) => shared.backlog.set(queued),
            Err(e) => tracing::debug!(error = %e, "could not read the start queue's depth"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_only_at_the_bound() {
        let backlog = Backlog::default();
        backlog.set(9);
        assert!(backlog.admit(10).is_ok());
        backlog.set(10);
        let refused = backlog
            .admit(10)
            .expect_err("a full queue refuses the start");
        assert!(refused.is_retryable());
        let message = refused.to_string();
        assert!(
            message.contains("10 accepted executions are waiting"),
            "{message}"
        );
        backlog.set(0);
        assert!(backlog.admit(10).is_ok());
    }
}
