//! A stream of recorded events: what the record holds after the reader's
//! last event, a bounded page at a time, then live events from the bus;
//! each event once, in recorded order.
//!
//! Live events can arrive out of order (turns of different executions
//! commit in one order and publish in another) or not at all (a publish
//! that failed): a live event that does not follow the last one given out
//! sends the reader back to the record, which has everything up to it.

use std::collections::VecDeque;
use std::time::Duration;

use flowmesh_model::{ExecutionEvent, TenantId};
use flowmesh_services::EngineHandle;
use flowmesh_services::records::EventScope;

/// A stream with no live event for this long reads the record again: a
/// publish can be lost, or overtake the subscription it was meant for.
const RECHECK: Duration = Duration::from_secs(10);

/// Why a stream stopped early, as its reader is told.
pub(crate) enum Broken {
    /// The reader fell too far behind the live events.
    Lagged(String),
    Failed(String),
}

/// Where a recorded stream starts.
pub(crate) struct Start {
    pub tenant: TenantId,
    pub scope: EventScope,
    /// The key (tenant position, or `seq` of the execution) of the last
    /// event the reader has.
    pub after: u64,
    /// Whether the record may hold events after `after` (false for a
    /// reader that starts from now on).
    pub replay: bool,
    /// The stream ends once the record is read through (an execution that
    /// had finished when it was opened).
    pub ends: bool,
}

pub(crate) struct Recorded {
    engine: EngineHandle,
    start: Start,
    /// Subscribed before the record is first read, so that nothing
    /// committed after that read is missed.
    live: flowmesh_bus::Events,
    page: VecDeque<ExecutionEvent>,
    done: bool,
}

impl Recorded {
    pub fn new(engine: EngineHandle, live: flowmesh_bus::Events, start: Start) -> Recorded {
        Recorded {
            engine,
            start,
            live,
            page: VecDeque::new(),
            done: false,
        }
    }

    fn key(&self, event: &ExecutionEvent) -> u64 {
        match self.start.scope {
            EventScope::Tenant => event.position,
            EventScope::Execution(_) => event.seq,
        }
    }

    /// Reads the record after the last event given out into the page;
    /// whether it held any.
    async fn read_record(&mut self) -> Result<bool, Broken> {
        let page = self
            .engine
            .recorded_events(self.start.tenant, self.start.scope, self.start.after)
            .await
            .map_err(|e| Broken::Failed(e.to_string()))?;
        self.page.extend(page);
        Ok(!self.page.is_empty())
    }

    fn give(&mut self, event: ExecutionEvent) -> Option<Result<ExecutionEvent, Broken>> {
        self.start.after = self.key(&event);
        // One execution's stream ends with its last event.
        self.done = matches!(self.start.scope, EventScope::Execution(_)) && event.kind.is_final();
        Some(Ok(event))
    }

    pub async fn next(&mut self) -> Option<Result<ExecutionEvent, Broken>> {
        loop {
            if self.done {
                return None;
            }
            if let Some(event) = self.page.pop_front() {
                return self.give(event);
            }
            if self.start.replay {
                match self.read_record().await {
                    Ok(true) => continue,
                    Ok(false) => self.start.replay = false,
                    Err(e) => return Some(Err(e)),
                }
                if self.start.ends {
                    return None;
                }
            }
            let next = tokio::time::timeout(RECHECK, self.live.next()).await;
            let event = match next {
                Err(_) => {
                    self.start.replay = true;
                    continue;
                }
                Ok(next) => next?,
            };
            let event = match event {
                Ok(event) => event,
                Err(e @ flowmesh_bus::Error::Lagged { .. }) => {
                    return Some(Err(Broken::Lagged(e.to_string())));
                }
                Err(e) => return Some(Err(Broken::Failed(e.to_string()))),
            };
            let key = self.key(&event);
            if key <= self.start.after {
                continue;
            }
            if key == self.start.after + 1 {
                return self.give(event);
            }
            match self.read_record().await {
                Ok(true) => self.start.replay = true,
                // Nothing recorded in between: this one is next.
                Ok(false) => return self.give(event),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}
