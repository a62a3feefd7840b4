//! A tenant's live events, read from NATS once per process and fanned out
//! in-process to every reader of that tenant: a thousand open streams cost
//! one JetStream consumer, not a thousand. A reader resuming after a
//! position replays what it missed through a consumer of its own, dropped
//! as soon as it has caught up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use async_nats::jetstream::consumer;
use flowmesh_model::{ExecutionEvent, TenantId};
use futures::StreamExt;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::Error;
use crate::nats::{Nats, decode_event, unavailable};

/// What the feed passes on: an event at its stream position, or a fault
/// of the shared consumer.
#[derive(Clone)]
enum Item {
    Event(u64, Arc<ExecutionEvent>),
    Broken(Arc<dyn std::error::Error + Send + Sync>),
}

/// The feeds of this process, by tenant; a feed lives while a reader
/// holds it, and its entry goes with it.
pub(crate) struct Hub {
    feeds: Mutex<HashMap<TenantId, Weak<Feed>>>,
    /// Held while a feed is made, so that readers joining at once make one.
    joining: tokio::sync::Mutex<()>,
    /// Events a feed keeps for its slowest reader.
    capacity: usize,
}

/// One tenant's shared consumer and the channel it fills.
struct Feed {
    sender: broadcast::Sender<Item>,
    pump: JoinHandle<()>,
    tenant: TenantId,
    hub: Weak<Hub>,
}

impl Drop for Feed {
    fn drop(&mut self) {
        // Ends the consumer's subscription; NATS drops the consumer.
        self.pump.abort();
        // Its entry goes too, unless a new feed of the tenant took it.
        if let Some(hub) = self.hub.upgrade() {
            let mut feeds = hub.feeds.lock().unwrap_or_else(|p| p.into_inner());
            if feeds
                .get(&self.tenant)
                .is_some_and(|f| f.strong_count() == 0)
            {
                feeds.remove(&self.tenant);
            }
        }
    }
}

impl Hub {
    pub fn new(capacity: usize) -> Self {
        Self {
            feeds: Mutex::default(),
            joining: tokio::sync::Mutex::default(),
            capacity: capacity.max(1),
        }
    }

    /// The tenant's feed while a reader holds it. The lock is let go
    /// before the feed is returned: dropping the last hold on a feed takes
    /// the lock.
    fn live(&self, tenant: TenantId) -> Option<Arc<Feed>> {
        let weak = self
            .feeds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&tenant)
            .cloned();
        weak.and_then(|f| f.upgrade())
    }

    /// Tenants with a feed entry.
    #[cfg(test)]
    pub fn entries(&self) -> usize {
        self.feeds.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// A receiver of the tenant's live events, and the feed it keeps alive.
    async fn join(
        self: &Arc<Self>,
        nats: &Nats,
        tenant: TenantId,
    ) -> Result<(Arc<Feed>, broadcast::Receiver<Item>), Error> {
        let _joining = self.joining.lock().await;
        if let Some(feed) = self.live(tenant)
            && !feed.pump.is_finished()
        {
            let receiver = feed.sender.subscribe();
            return Ok((feed, receiver));
        }
        let messages = nats
            .ordered(
                nats.subjects().event_stream(),
                nats.subjects().tenant_events(tenant),
                consumer::DeliverPolicy::New,
            )
            .await?;
        let (sender, receiver) = broadcast::channel(self.capacity);
        let pump = tokio::spawn(pump(messages, sender.clone()));
        let feed = Arc::new(Feed {
            sender,
            pump,
            tenant,
            hub: Arc::downgrade(self),
        });
        self.feeds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tenant, Arc::downgrade(&feed));
        Ok((feed, receiver))
    }
}

async fn pump(mut messages: consumer::push::Ordered, sender: broadcast::Sender<Item>) {
    while let Some(next) = messages.next().await {
        let item = match next {
            Ok(m) => {
                let position = m.info().map(|i| i.stream_sequence).unwrap_or(0);
                match decode_event(&m) {
                    Ok(event) => Item::Event(position, Arc::new(event)),
                    Err(e) => {
                        tracing::warn!(error = %e, "skipping an undecodable event");
                        continue;
                    }
                }
            }
            Err(e) => Item::Broken(Arc::new(e)),
        };
        // No receiver now: the feed is being dropped.
        let _ = sender.send(item);
    }
    let closed: crate::Cause = "the bus closed the tenant's event feed".into();
    let _ = sender.send(Item::Broken(closed.into()));
}

/// A reader of a tenant's events through the shared feed.
pub(crate) struct SharedReader {
    _feed: Arc<Feed>,
    receiver: broadcast::Receiver<Item>,
    replay: Option<consumer::push::Ordered>,
    /// The last position given out: the feed's events up to it came
    /// through the replay already.
    last: u64,
    done: bool,
}

impl SharedReader {
    /// The tenant's events after `after`, or from now on.
    pub async fn open(nats: &Nats, tenant: TenantId, after: Option<u64>) -> Result<Self, Error> {
        // Joined first: whatever is published from now on reaches the
        // receiver, so the replay below can stop once it has caught up.
        let (feed, receiver) = nats.hub().join(nats, tenant).await?;
        let replay = match after {
            Some(position) => nats.replay(tenant, position + 1).await?,
            None => None,
        };
        Ok(Self {
            _feed: feed,
            receiver,
            replay,
            last: after.unwrap_or(0),
            done: false,
        })
    }

    pub async fn next(&mut self) -> Option<Result<(u64, ExecutionEvent), Error>> {
        if self.done {
            return None;
        }
        loop {
            if let Some(replay) = &mut self.replay {
                let message = match replay.next().await {
                    Some(Ok(m)) => m,
                    Some(Err(e)) => return Some(Err(unavailable(e))),
                    None => {
                        self.replay = None;
                        continue;
                    }
                };
                let info = message.info().map(|i| (i.stream_sequence, i.pending));
                let (position, pending) = info.unwrap_or((self.last, 0));
                if pending == 0 {
                    // Caught up: the feed has everything after this.
                    self.replay = None;
                }
                if position <= self.last {
                    continue;
                }
                self.last = position;
                match decode_event(&message) {
                    Ok(event) => return Some(Ok((position, event))),
                    Err(e) => {
                        tracing::warn!(error = %e, "skipping an undecodable event");
                        continue;
                    }
                }
            }
            match self.receiver.recv().await {
                Ok(Item::Event(position, _)) if position <= self.last => {}
                Ok(Item::Event(position, event)) => {
                    self.last = position;
                    return Some(Ok((position, ExecutionEvent::clone(&event))));
                }
                Ok(Item::Broken(e)) => return Some(Err(Error::Unavailable(Box::new(e)))),
                Err(broadcast::error::RecvError::Closed) => return None,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    // Never held back for a slow reader, never buffered
                    // without bound: it is cut off, to resume from its
                    // last position.
                    self.done = true;
                    return Some(Err(Error::Lagged {
                        missed,
                        last: self.last,
                    }));
                }
            }
        }
    }
}
