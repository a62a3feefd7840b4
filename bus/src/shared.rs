//! A tenant's live events, read from NATS once per process and fanned out
//! in-process to every reader of that tenant: a thousand open streams cost
//! one JetStream consumer, not a thousand. (A reader resuming after an
//! event replays what it missed from the store's record.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use async_nats::jetstream::consumer;
use flowmesh_model::{ExecutionEvent, TenantId};
use futures::StreamExt;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::Error;
use crate::nats::{Nats, decode_event};

/// What the feed passes on: an event, or a fault of the shared consumer.
#[derive(Clone)]
enum Item {
    Event(Arc<ExecutionEvent>),
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
            Ok(m) => match decode_event(&m) {
                Ok(event) => Item::Event(Arc::new(event)),
                Err(e) => {
                    tracing::warn!(error = %e, "skipping an undecodable event");
                    continue;
                }
            },
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
    done: bool,
}

impl SharedReader {
    /// The tenant's events from now on.
    pub async fn open(nats: &Nats, tenant: TenantId) -> Result<Self, Error> {
        let (feed, receiver) = nats.hub().join(nats, tenant).await?;
        Ok(Self {
            _feed: feed,
            receiver,
            done: false,
        })
    }

    pub async fn next(&mut self) -> Option<Result<ExecutionEvent, Error>> {
        if self.done {
            return None;
        }
        match self.receiver.recv().await {
            Ok(Item::Event(event)) => Some(Ok(ExecutionEvent::clone(&event))),
            Ok(Item::Broken(e)) => Some(Err(Error::Unavailable(Box::new(e)))),
            Err(broadcast::error::RecvError::Closed) => None,
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                // Never held back for a slow reader, never buffered
                // without bound: it is cut off.
                self.done = true;
                Some(Err(Error::Lagged { missed }))
            }
        }
    }
}
