//! The in-process transport: the bus semantics of JetStream, in memory, for
//! the embedded mode.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use flowmesh_model::{Command, ExecutionEvent, ExecutionId, TenantId};
use tokio::sync::{Notify, broadcast};
use tokio::time::Instant;

use crate::{Acker, Delivery, Envelope, Error, Options};

/// How long a finished execution's events stay after its last event.
const FINISHED_LINGER: Duration = Duration::from_secs(60);
/// Most events kept per execution; older ones are dropped first.
const MAX_EVENTS_PER_EXECUTION: usize = 10_000;
/// How often quiet logs are dropped.
const PRUNE_EVERY: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Memory {
    inner: Arc<Inner>,
}

struct Inner {
    ack_wait: Duration,
    duplicate_window: Duration,
    event_max_age: Duration,
    /// Events kept per tenant for its slowest live reader (the store
    /// records them all for replay).
    tenant_buffer: usize,
    queue: Mutex<Queue>,
    queue_signal: Notify,
    control: broadcast::Sender<Envelope>,
    /// Every event twice: in its execution's log and in its tenant's. Each
    /// log has its own signal, so that an event wakes only its readers
    /// (with one signal for all, thousands of waiting callers made every
    /// event cost thousands of wake-ups).
    logs: Mutex<Logs>,
}

#[derive(Default)]
struct Queue {
    next_seq: u64,
    ready: VecDeque<Entry>,
    inflight: BTreeMap<u64, (Entry, Instant)>,
    seen: HashMap<String, Instant>,
    seen_order: VecDeque<(Instant, String)>,
}

#[derive(Clone)]
struct Entry {
    seq: u64,
    envelope: Envelope,
    deliveries: u32,
}

struct Logs {
    by_execution: HashMap<ExecutionId, Log>,
    by_tenant: HashMap<TenantId, TenantLog>,
    /// Readers' cursor: the next event's place, counted from 1 across all
    /// tenants (never shown; streams show recorded positions).
    next_position: u64,
    last_prune: Instant,
}

#[derive(Default)]
struct TenantLog {
    added: Arc<Notify>,
    /// Held by each live reader of the tenant's stream. Readers start at
    /// the next event (replay reads the store), so a tenant nobody reads
    /// keeps no events: with thousands of tenants, an hour of their
    /// events would be memory nobody can ask for.
    readers: Arc<()>,
    /// (position, when, event), in position order.
    events: VecDeque<(u64, Instant, Envelope)>,
}

impl TenantLog {
    fn is_read(&self) -> bool {
        Arc::strong_count(&self.readers) > 1
    }
}

struct Log {
    /// Told whenever an event is added.
    added: Arc<Notify>,
    events: VecDeque<Envelope>,
    /// Events dropped from the front, so reader positions stay absolute.
    dropped: usize,
    last_at: Instant,
    finished: bool,
}

impl Log {
    fn new(now: Instant) -> Log {
        Log {
            added: Arc::new(Notify::new()),
            events: VecDeque::new(),
            dropped: 0,
            last_at: now,
            finished: false,
        }
    }
}

impl Logs {
    /// Drops the logs of executions gone quiet, the events of each tenant
    /// older than the events' lifetime, and the tenant logs left empty that
    /// no reader waits on (a waiting reader holds the signal).
    fn prune(&mut self, now: Instant, max_age: Duration) {
        self.by_execution.retain(|_, l| {
            let age = now.duration_since(l.last_at);
            age < max_age && !(l.finished && age > FINISHED_LINGER)
        });
        self.by_tenant.retain(|_, l| {
            while l
                .events
                .front()
                .is_some_and(|(_, at, _)| now.duration_since(*at) > max_age)
            {
                l.events.pop_front();
            }
            l.is_read() || Arc::strong_count(&l.added) > 1
        });
        self.last_prune = now;
    }
}

/// Prunes the logs while the bus lives, so that what a burst of tenants
/// left goes even when nothing is published afterwards.
async fn prune_while_alive(inner: Weak<Inner>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        lock(&inner.logs).prune(Instant::now(), inner.event_max_age);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Memory {
    pub fn new(options: &Options) -> Self {
        let memory = Self {
            inner: Arc::new(Inner {
                ack_wait: options.ack_wait.0,
                duplicate_window: options.duplicate_window.0,
                event_max_age: options.event_max_age.0,
                tenant_buffer: options.stream_buffer.max(1),
                queue: Mutex::default(),
                queue_signal: Notify::new(),
                control: broadcast::channel(4096).0,
                logs: Mutex::new(Logs {
                    by_execution: HashMap::new(),
                    by_tenant: HashMap::new(),
                    next_position: 1,
                    last_prune: Instant::now(),
                }),
            }),
        };
        let every = PRUNE_EVERY
            .min(options.event_max_age.0)
            .max(Duration::from_millis(10));
        tokio::spawn(prune_while_alive(Arc::downgrade(&memory.inner), every));
        memory
    }

    pub fn publish_command(&self, envelope: Envelope, broadcast: bool) {
        if broadcast {
            // No subscriber is fine: the store holds the durable part.
            let _ = self.inner.control.send(envelope);
            return;
        }
        let now = Instant::now();
        let mut q = lock(&self.inner.queue);
        while q
            .seen_order
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > self.inner.duplicate_window)
        {
            if let Some((_, key)) = q.seen_order.pop_front() {
                q.seen.remove(&key);
            }
        }
        if let Some(key) = &envelope.key {
            if q.seen.contains_key(key) {
                return;
            }
            q.seen.insert(key.clone(), now);
            q.seen_order.push_back((now, key.clone()));
        }
        q.next_seq += 1;
        let seq = q.next_seq;
        q.ready.push_back(Entry {
            seq,
            envelope,
            deliveries: 0,
        });
        drop(q);
        self.inner.queue_signal.notify_one();
    }

    /// Start commands held and not yet acknowledged.
    pub fn queued_commands(&self) -> u64 {
        let q = lock(&self.inner.queue);
        (q.ready.len() + q.inflight.len()) as u64
    }

    pub fn commands(&self) -> CommandReader {
        CommandReader {
            inner: self.inner.clone(),
        }
    }

    pub fn control(&self) -> ControlReader {
        ControlReader {
            rx: self.inner.control.subscribe(),
        }
    }

    pub fn publish_event(&self, event: &ExecutionEvent, envelope: Envelope) {
        let now = Instant::now();
        let mut logs = lock(&self.inner.logs);
        let position = logs.next_position;
        logs.next_position += 1;
        let max_age = self.inner.event_max_age;
        if let Some(tenant_log) = logs
            .by_tenant
            .get_mut(&event.tenant)
            .filter(|l| l.is_read())
        {
            while tenant_log.events.len() >= self.inner.tenant_buffer
                || tenant_log
                    .events
                    .front()
                    .is_some_and(|(_, at, _)| now.duration_since(*at) > max_age)
            {
                tenant_log.events.pop_front();
            }
            tenant_log
                .events
                .push_back((position, now, envelope.clone()));
            tenant_log.added.notify_waiters();
        }
        let log = logs
            .by_execution
            .entry(event.execution)
            .or_insert_with(|| Log::new(now));
        if log.events.len() >= MAX_EVENTS_PER_EXECUTION {
            log.events.pop_front();
            log.dropped += 1;
        }
        log.events.push_back(envelope);
        log.last_at = now;
        log.finished |= event.kind.is_final();
        log.added.notify_waiters();
        if now.duration_since(logs.last_prune) > PRUNE_EVERY {
            logs.prune(now, max_age);
        }
    }

    /// How many executions and tenants have logs.
    #[cfg(test)]
    pub fn logs(&self) -> (usize, usize) {
        let logs = lock(&self.inner.logs);
        (logs.by_execution.len(), logs.by_tenant.len())
    }

    pub fn execution_events(&self, _tenant: TenantId, execution: ExecutionId) -> EventReader {
        EventReader {
            inner: self.inner.clone(),
            filter: Filter::Execution { execution, next: 0 },
            _reader: None,
        }
    }

    /// One execution's events from now on (no replay).
    pub fn watch(&self, execution: ExecutionId) -> EventReader {
        let next = lock(&self.inner.logs)
            .by_execution
            .get(&execution)
            .map_or(0, |l| l.dropped + l.events.len());
        EventReader {
            inner: self.inner.clone(),
            filter: Filter::Execution { execution, next },
            _reader: None,
        }
    }

    /// A tenant's events from now on.
    pub fn tenant_events(&self, tenant: TenantId) -> EventReader {
        let mut logs = lock(&self.inner.logs);
        let next = logs.next_position;
        let reader = logs.by_tenant.entry(tenant).or_default().readers.clone();
        EventReader {
            inner: self.inner.clone(),
            filter: Filter::Tenant { tenant, next },
            _reader: Some(reader),
        }
    }
}

pub struct CommandReader {
    inner: Arc<Inner>,
}

impl CommandReader {
    pub async fn next(&mut self) -> Option<Result<Delivery, Error>> {
        loop {
            let notified = self.inner.queue_signal.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let wake_at = {
                let now = Instant::now();
                let mut q = lock(&self.inner.queue);
                let expired: Vec<u64> = q
                    .inflight
                    .iter()
                    .filter(|(_, (_, at))| *at <= now)
                    .map(|(s, _)| *s)
                    .collect();
                for seq in expired.into_iter().rev() {
                    if let Some((entry, _)) = q.inflight.remove(&seq) {
                        q.ready.push_front(entry);
                    }
                }
                if let Some(mut entry) = q.ready.pop_front() {
                    entry.deliveries += 1;
                    q.inflight
                        .insert(entry.seq, (entry.clone(), now + self.inner.ack_wait));
                    drop(q);
                    match entry.envelope.decode::<Command>() {
                        Ok(command) => {
                            let ack = Ack {
                                inner: self.inner.clone(),
                                seq: entry.seq,
                            };
                            return Some(Ok(Delivery {
                                command,
                                trace: entry.envelope.trace.clone(),
                                redelivered: entry.deliveries > 1,
                                acker: Acker::Memory(ack),
                            }));
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "dropping an undecodable command");
                            lock(&self.inner.queue).inflight.remove(&entry.seq);
                            continue;
                        }
                    }
                }
                q.inflight.values().map(|(_, at)| *at).min()
            };
            match wake_at {
                Some(at) => {
                    tokio::select! {
                        () = &mut notified => {}
                        () = tokio::time::sleep_until(at) => {}
                    }
                }
                None => notified.await,
            }
        }
    }
}

/// Settles one in-process delivery.
pub struct Ack {
    inner: Arc<Inner>,
    seq: u64,
}

impl Ack {
    pub fn ack(self) {
        lock(&self.inner.queue).inflight.remove(&self.seq);
    }

    pub fn nak(self, delay: Duration) {
        if let Some((_, at)) = lock(&self.inner.queue).inflight.get_mut(&self.seq) {
            *at = Instant::now() + delay;
        }
        // Waiting readers recompute when the next redelivery is due.
        self.inner.queue_signal.notify_waiters();
    }
}

pub struct ControlReader {
    rx: broadcast::Receiver<Envelope>,
}

impl ControlReader {
    pub async fn next(&mut self) -> Option<Result<Delivery, Error>> {
        loop {
            match self.rx.recv().await {
                Ok(envelope) => match envelope.decode::<Command>() {
                    Ok(command) => {
                        return Some(Ok(Delivery {
                            command,
                            trace: envelope.trace,
                            redelivered: false,
                            acker: Acker::None,
                        }));
                    }
                    Err(e) => tracing::warn!(error = %e, "dropping an undecodable control command"),
                },
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "control reader fell behind")
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

enum Filter {
    /// `next` counts events of the execution.
    Execution { execution: ExecutionId, next: usize },
    /// `next` is a position.
    Tenant { tenant: TenantId, next: u64 },
}

pub struct EventReader {
    inner: Arc<Inner>,
    filter: Filter,
    /// A tenant reader's hold on its tenant's log (see [`TenantLog`]).
    _reader: Option<Arc<()>>,
}

/// Longest a reader of one execution waits before looking at its log again
/// (in case the log was pruned and made anew while it waited).
const RECHECK: Duration = Duration::from_secs(1);

impl EventReader {
    pub async fn next(&mut self) -> Option<Result<ExecutionEvent, Error>> {
        match &mut self.filter {
            Filter::Execution { execution, next } => loop {
                // The log is the source; its signal only says something was added.
                let added = {
                    let mut logs = lock(&self.inner.logs);
                    let log = logs
                        .by_execution
                        .entry(*execution)
                        .or_insert_with(|| Log::new(Instant::now()));
                    *next = (*next).max(log.dropped);
                    if let Some(envelope) = log.events.get(*next - log.dropped).cloned() {
                        *next += 1;
                        return Some(envelope.decode());
                    }
                    log.added.clone()
                };
                let notified = added.notified();
                tokio::pin!(notified);
                // Registered before the log is read again: an event added in
                // between still wakes this reader.
                notified.as_mut().enable();
                let again = {
                    let logs = lock(&self.inner.logs);
                    logs.by_execution
                        .get(execution)
                        .is_some_and(|log| log.dropped + log.events.len() > *next)
                };
                if !again {
                    let _ = tokio::time::timeout(RECHECK, notified).await;
                }
            },
            Filter::Tenant { tenant, next } => loop {
                let added = {
                    let mut logs = lock(&self.inner.logs);
                    let log = logs.by_tenant.entry(*tenant).or_default();
                    let from = log.events.partition_point(|(p, _, _)| *p < *next);
                    if let Some((position, _, envelope)) = log.events.get(from).cloned() {
                        *next = position + 1;
                        return Some(envelope.decode());
                    }
                    log.added.clone()
                };
                let notified = added.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                let again = lock(&self.inner.logs)
                    .by_tenant
                    .get(tenant)
                    .and_then(|l| l.events.back())
                    .is_some_and(|(p, _, _)| *p >= *next);
                if !again {
                    let _ = tokio::time::timeout(RECHECK, notified).await;
                }
            },
        }
    }
}
