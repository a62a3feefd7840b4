//! The bus: commands and events between the engine's actors and processes.
//!
//! Two transports with the same semantics: NATS JetStream (distributed) and
//! an in-process one (embedded). Subjects and streams are named in
//! [`subjects`]; bodies are encoded only by [`codec`].
//!
//! Delivery guarantees:
//! - Commands are published durably (the call returns once JetStream, or the
//!   in-process queue, holds them) and delivered **at least once**. A
//!   repeated publish with the same idempotency key inside the duplicate
//!   window is dropped. A start command goes to exactly one consumer among
//!   all processes at a time and comes back after `ack_wait` unless it is
//!   acknowledged; consumers acknowledge only after their effect is persisted.
//! - Control commands (cancel) reach every process subscribed at the time.
//! - Events are notifications, published without waiting for their
//!   acknowledgement and kept for `event_max_age`; per execution they are
//!   delivered in publish order, from the first one kept.

mod auth;
pub mod codec;
mod local;
mod memory;
mod nats;
mod shared;
pub mod subjects;

use std::time::Duration;

use bytes::Bytes;
use flowmesh_model::{Command, ExecutionEvent, ExecutionId, HumanDuration, TenantId};
use serde::{Deserialize, Serialize};

use subjects::Subjects;

pub use auth::NatsAuth;

/// Settings of the bus.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Options {
    /// NATS server with JetStream; `None` for the in-process transport.
    pub nats_url: Option<String>,
    /// How the engine logs in to NATS.
    pub auth: NatsAuth,
    /// Prefix of subjects and streams; deployments sharing a NATS differ by it.
    pub prefix: String,
    /// How long events stay replayable.
    pub event_max_age: HumanDuration,
    /// An unacknowledged command is delivered again after this long.
    pub ack_wait: HumanDuration,
    /// Window within which a repeated idempotency key is dropped.
    pub duplicate_window: HumanDuration,
    /// How long to try reaching NATS at start-up.
    pub connect_timeout: HumanDuration,
    /// Copies of each stream in a NATS cluster (1, or 3 for a three-node
    /// cluster); applies when the streams are created.
    pub replicas: usize,
    /// Events kept, per tenant, for the slowest of the tenant's stream
    /// readers in this process (NATS: they share one consumer). A reader
    /// further behind is cut off with [`Error::Lagged`] (NATS), or skips
    /// what was dropped (in-process); its stream reads those from the
    /// store's record.
    pub stream_buffer: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            nats_url: None,
            auth: NatsAuth::default(),
            prefix: "flowmesh".to_owned(),
            event_max_age: HumanDuration::from_millis(3_600_000),
            ack_wait: HumanDuration::from_millis(30_000),
            duplicate_window: HumanDuration::from_millis(120_000),
            connect_timeout: HumanDuration::from_millis(5_000),
            replicas: 1,
            stream_buffer: 1_024,
        }
    }
}

/// What an error was caused by: the client's or codec's own error, or what
/// was seen when there is none (a timeout).
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// NATS is unreachable or did not answer in time; retrying is safe.
    #[error("the bus is unavailable: {0}")]
    Unavailable(#[source] Cause),
    /// A message could not be encoded or decoded; retrying will not help.
    #[error("codec error: {0}")]
    Codec(#[source] Cause),
    /// The settings are wrong.
    #[error("invalid bus configuration: {0}")]
    Config(String),
    /// The settings are wrong, as `source` says: `what` could not be used.
    #[error("invalid bus configuration: {what}: {source}")]
    Refused {
        what: String,
        #[source]
        source: Cause,
    },
    /// A reader of a tenant's live events fell further behind than the
    /// stream buffer and was cut off; it resumes from the record.
    #[error("this reader fell {missed} events behind the tenant's stream and was cut off")]
    Lagged { missed: u64 },
}

impl Error {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable(_) | Error::Lagged { .. })
    }
}

/// A message with its envelope, as both transports carry it.
#[derive(Clone, Debug)]
pub(crate) struct Envelope {
    pub schema: u16,
    pub encoding: String,
    pub trace: Option<String>,
    pub key: Option<String>,
    pub body: Bytes,
}

impl Envelope {
    fn new<T: Serialize>(
        value: &T,
        trace: Option<&str>,
        key: Option<String>,
    ) -> Result<Self, Error> {
        Ok(Self {
            schema: codec::SCHEMA_VERSION,
            encoding: codec::ENCODING.to_owned(),
            trace: trace.map(str::to_owned),
            key,
            body: Bytes::from(codec::encode(value)?),
        })
    }

    fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error> {
        codec::decode(&self.encoding, self.schema, &self.body)
    }
}

#[derive(Clone)]
enum Transport {
    Memory(memory::Memory),
    Nats(Box<nats::Nats>),
}

/// A cheap-to-clone handle on the bus.
#[derive(Clone)]
pub struct Bus {
    transport: Transport,
    /// Watchers of executions running in this process.
    here: local::LocalWatches,
}

impl Bus {
    /// Connects (NATS) or creates (in-process) the bus, and makes sure its
    /// streams and consumers exist. Safe to run from many processes at once.
    pub async fn connect(options: &Options) -> Result<Bus, Error> {
        if !Subjects::valid_prefix(&options.prefix) {
            return Err(Error::Config(format!(
                "prefix {:?} must be dot-separated letters, digits, _ and -",
                options.prefix
            )));
        }
        let transport = match &options.nats_url {
            None => Transport::Memory(memory::Memory::new(options)),
            Some(url) => Transport::Nats(Box::new(nats::Nats::connect(url, options).await?)),
        };
        Ok(Bus {
            transport,
            here: local::LocalWatches::default(),
        })
    }

    pub fn transport_name(&self) -> &'static str {
        match self.transport {
            Transport::Memory(_) => "in-process",
            Transport::Nats(_) => "nats",
        }
    }

    pub async fn health(&self) -> Result<(), Error> {
        match &self.transport {
            Transport::Memory(_) => Ok(()),
            Transport::Nats(n) => n.health().await,
        }
    }

    /// Publishes a command durably; returns once it is held.
    pub async fn publish_command(
        &self,
        command: &Command,
        trace: Option<&str>,
    ) -> Result<(), Error> {
        let envelope = Envelope::new(command, trace, Some(command.idempotency_key()))?;
        let broadcast = matches!(
            command,
            Command::CancelExecution { .. } | Command::SignalExecution { .. }
        );
        match &self.transport {
            Transport::Memory(m) => {
                m.publish_command(envelope, broadcast);
                Ok(())
            }
            Transport::Nats(n) => n.publish_command(command, envelope, broadcast).await,
        }
    }

    /// Start commands waiting for a process to take them, or taken and not
    /// yet acknowledged: the backlog of accepted executions not yet running.
    pub async fn queued_starts(&self) -> Result<u64, Error> {
        match &self.transport {
            Transport::Memory(m) => Ok(m.queued_commands()),
            Transport::Nats(n) => n.queued_commands().await,
        }
    }

    /// Start commands, shared with every other process (work queue).
    pub async fn commands(&self) -> Result<Commands, Error> {
        match &self.transport {
            Transport::Memory(m) => Ok(Commands {
                inner: CommandsInner::Memory(m.commands()),
            }),
            Transport::Nats(n) => Ok(Commands {
                inner: CommandsInner::Nats(Box::new(n.commands().await?)),
            }),
        }
    }

    /// Control commands, each seen by every process.
    pub async fn control(&self) -> Result<Commands, Error> {
        match &self.transport {
            Transport::Memory(m) => Ok(Commands {
                inner: CommandsInner::MemoryControl(m.control()),
            }),
            Transport::Nats(n) => Ok(Commands {
                inner: CommandsInner::NatsControl(Box::new(n.control().await?)),
            }),
        }
    }

    pub async fn publish_event(&self, event: &ExecutionEvent) -> Result<(), Error> {
        self.here.deliver(event);
        let envelope = Envelope::new(event, None, None)?;
        match &self.transport {
            Transport::Memory(m) => {
                m.publish_event(event, envelope);
                Ok(())
            }
            Transport::Nats(n) => n.publish_event(event, envelope).await,
        }
    }

    /// One execution's events: those still kept, then live ones, in order.
    pub async fn execution_events(
        &self,
        tenant: TenantId,
        execution: ExecutionId,
    ) -> Result<Events, Error> {
        match &self.transport {
            Transport::Memory(m) => Ok(Events {
                inner: EventsInner::Memory(m.execution_events(tenant, execution)),
            }),
            Transport::Nats(n) => Ok(Events {
                inner: EventsInner::Nats(Box::new(n.events(tenant, execution).await?)),
            }),
        }
    }

    /// Live events of one execution from now on, without replay: cheaper
    /// than [`Bus::execution_events`] for a caller that subscribes before
    /// causing the events (a synchronous start).
    pub async fn watch_execution(
        &self,
        tenant: TenantId,
        execution: ExecutionId,
    ) -> Result<Events, Error> {
        match &self.transport {
            Transport::Memory(m) => Ok(Events {
                inner: EventsInner::Memory(m.watch(execution)),
            }),
            Transport::Nats(n) => Ok(Events {
                inner: EventsInner::Nats(Box::new(n.watch(tenant, execution).await?)),
            }),
        }
    }

    /// Live events of one execution that runs in this process, from now
    /// on, handed over by [`Bus::publish_event`] without a trip through
    /// NATS. The stream ends when the execution leaves the process
    /// ([`Bus::left_here`]) or the reader falls too far behind: what
    /// follows is then read with [`Bus::execution_events`].
    pub fn watch_here(&self, execution: ExecutionId) -> Events {
        Events {
            inner: EventsInner::Here(self.here.watch(execution)),
        }
    }

    /// An execution stopped running in this process: its watchers' streams end.
    pub fn left_here(&self, execution: ExecutionId) {
        self.here.left(execution);
    }

    /// Live events of every execution of one tenant, from now on (the
    /// store records them for replay).
    pub async fn tenant_events(&self, tenant: TenantId) -> Result<Events, Error> {
        match &self.transport {
            Transport::Memory(m) => Ok(Events {
                inner: EventsInner::Memory(m.tenant_events(tenant)),
            }),
            Transport::Nats(n) => Ok(Events {
                inner: EventsInner::Nats(Box::new(n.tenant_events(tenant).await?)),
            }),
        }
    }

    /// Messages on the public trigger subjects (NATS only: the embedded
    /// bus has no outside publishers).
    pub async fn triggers(&self) -> Result<Option<Triggers>, Error> {
        match &self.transport {
            Transport::Memory(_) => Ok(None),
            Transport::Nats(n) => Ok(Some(Triggers {
                subscriber: n.triggers().await?,
                subjects: n.subjects().clone(),
            })),
        }
    }

    /// Answers a trigger request with a JSON body and headers.
    pub async fn reply(
        &self,
        to: &str,
        extra: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<(), Error> {
        if let Transport::Nats(n) = &self.transport {
            let mut headers = async_nats::HeaderMap::new();
            for (name, value) in extra {
                headers.insert(*name, *value);
            }
            headers.insert("Content-Type", "application/json");
            n.publish_plain(to.to_owned(), headers, body.into()).await?;
        }
        Ok(())
    }

    /// Sends an event as JSON to the tenant's public event subject (NATS
    /// only).
    pub async fn publish_public_event(
        &self,
        tenant_slug: &str,
        event: &ExecutionEvent,
    ) -> Result<(), Error> {
        if let Transport::Nats(n) = &self.transport {
            let subject = n.subjects().public_event(tenant_slug, event.execution);
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Content-Type", "application/json");
            headers.insert(HEADER_EVENT, event.kind.name());
            let body = serde_json::to_vec(&event.to_json()).map_err(|e| Error::Codec(e.into()))?;
            n.publish_plain(subject, headers, body.into()).await?;
        }
        Ok(())
    }

    /// Flushes what is pending and closes.
    pub async fn shutdown(&self) {
        if let Transport::Nats(n) = &self.transport {
            n.shutdown().await;
        }
    }
}

/// A stream of command deliveries.
pub struct Commands {
    inner: CommandsInner,
}

enum CommandsInner {
    Memory(memory::CommandReader),
    MemoryControl(memory::ControlReader),
    Nats(Box<nats::CommandReader>),
    NatsControl(Box<nats::ControlReader>),
}

impl Commands {
    pub async fn next(&mut self) -> Option<Result<Delivery, Error>> {
        match &mut self.inner {
            CommandsInner::Memory(r) => r.next().await,
            CommandsInner::MemoryControl(r) => r.next().await,
            CommandsInner::Nats(r) => r.next().await,
            CommandsInner::NatsControl(r) => r.next().await,
        }
    }
}

/// One delivered command; acknowledge it once its effect is persisted.
pub struct Delivery {
    pub command: Command,
    pub trace: Option<String>,
    /// Whether this command was delivered before.
    pub redelivered: bool,
    pub(crate) acker: Acker,
}

pub(crate) enum Acker {
    /// Broadcast deliveries need no acknowledgement.
    None,
    Memory(memory::Ack),
    Nats(Box<async_nats::jetstream::Message>),
}

impl Delivery {
    pub async fn ack(self) -> Result<(), Error> {
        match self.acker {
            Acker::None => Ok(()),
            Acker::Memory(a) => {
                a.ack();
                Ok(())
            }
            Acker::Nats(m) => m.ack().await.map_err(Error::Unavailable),
        }
    }

    /// Hands the command back, to be delivered again after `delay`.
    pub async fn nak(self, delay: Duration) -> Result<(), Error> {
        match self.acker {
            Acker::None => Ok(()),
            Acker::Memory(a) => {
                a.nak(delay);
                Ok(())
            }
            Acker::Nats(m) => m
                .ack_with(async_nats::jetstream::AckKind::Nak(Some(delay)))
                .await
                .map_err(Error::Unavailable),
        }
    }
}

/// The reply header with the status a respond node chose, or 202 for a
/// started execution; an error reply has none and a JSON `error`.
pub const HEADER_STATUS: &str = "Flowmesh-Status";
/// The header naming a public event's type.
pub const HEADER_EVENT: &str = "Flowmesh-Event";

/// One message on a public trigger subject.
#[derive(Clone, Debug)]
pub struct TriggerMessage {
    pub tenant_slug: String,
    /// The subject after `{prefix}.trigger.{tenant}.`.
    pub subject: String,
    pub payload: Bytes,
    /// Where a request wants its answer.
    pub reply: Option<String>,
    /// The reply subject is not under the tenant's inbox prefix
    /// (`{prefix}.inbox.{tenant-slug}`): the engine neither answers nor
    /// starts such a request, since any NATS user may name any reply
    /// subject and the engine's answer would land where the requester
    /// cannot publish.
    pub foreign_reply: bool,
    pub traceparent: Option<String>,
    /// The `Idempotency-Key` (or `Nats-Msg-Id`) header: a message sent
    /// again with the same key starts no second execution.
    pub idempotency_key: Option<String>,
}

/// Messages on the public trigger subjects.
pub struct Triggers {
    subscriber: async_nats::Subscriber,
    subjects: Subjects,
}

impl Triggers {
    /// The next message addressed to a tenant's trigger; others are skipped.
    pub async fn next(&mut self) -> Option<TriggerMessage> {
        use futures::StreamExt;
        loop {
            let message = self.subscriber.next().await?;
            let Some((slug, subject)) = self.subjects.parse_trigger(message.subject.as_str())
            else {
                continue;
            };
            let header = |name: &str| {
                message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(name))
                    .map(|v| v.as_str().to_owned())
            };
            let reply = message.reply.as_ref().map(|r| r.to_string());
            let foreign_reply = reply
                .as_deref()
                .is_some_and(|r| !self.subjects.in_inbox(slug, r));
            return Some(TriggerMessage {
                foreign_reply,
                tenant_slug: slug.to_owned(),
                subject: subject.to_owned(),
                traceparent: header("traceparent"),
                idempotency_key: header("Idempotency-Key").or_else(|| header("Nats-Msg-Id")),
                reply,
                payload: message.payload.clone(),
            });
        }
    }
}

/// A stream of execution events.
pub struct Events {
    inner: EventsInner,
}

enum EventsInner {
    Memory(memory::EventReader),
    Nats(Box<nats::EventReader>),
    Here(tokio::sync::mpsc::Receiver<ExecutionEvent>),
}

impl Events {
    pub async fn next(&mut self) -> Option<Result<ExecutionEvent, Error>> {
        match &mut self.inner {
            EventsInner::Here(r) => r.recv().await.map(Ok),
            EventsInner::Memory(r) => r.next().await,
            EventsInner::Nats(r) => r.next().await,
        }
    }
}

#[cfg(test)]
mod conformance;
