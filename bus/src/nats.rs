//! The NATS JetStream transport.

use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, AckKind, consumer, stream};
use flowmesh_model::{Command, ExecutionEvent, ExecutionId, TenantId};
use futures::StreamExt;

use crate::shared::{Hub, SharedReader};
use crate::subjects::{COMMAND_CONSUMER, Subjects};
use crate::{Acker, Delivery, Envelope, Error, Options, auth};

const HEADER_SCHEMA: &str = "Flowmesh-Schema";
const HEADER_ENCODING: &str = "Flowmesh-Encoding";
const HEADER_TRACE: &str = "traceparent";
const HEADER_MSG_ID: &str = "Nats-Msg-Id";
const CONTROL_MAX_AGE: Duration = Duration::from_secs(600);

pub(crate) fn unavailable(e: impl Into<crate::Cause>) -> Error {
    Error::Unavailable(e.into())
}

/// The address without its user information, which the client would not
/// use anyway (credentials go through the connect options) and which must
/// not reach its logs.
fn without_credentials(server: async_nats::ServerAddr) -> Result<async_nats::ServerAddr, Error> {
    let mut url = server.into_inner();
    let stripped = url.set_password(None).is_ok() && url.set_username("").is_ok();
    if !stripped {
        return Err(Error::Config(
            "a NATS URL with credentials must have a host".into(),
        ));
    }
    url.as_str()
        .parse()
        .map_err(|e: std::io::Error| Error::Refused {
            what: "a NATS URL".into(),
            source: e.into(),
        })
}

#[derive(Clone)]
pub struct Nats {
    client: async_nats::Client,
    js: jetstream::Context,
    subjects: Subjects,
    hub: Arc<Hub>,
}

fn headers(envelope: &Envelope) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(HEADER_SCHEMA, envelope.schema.to_string().as_str());
    h.insert(HEADER_ENCODING, envelope.encoding.as_str());
    if let Some(trace) = &envelope.trace {
        h.insert(HEADER_TRACE, trace.as_str());
    }
    if let Some(key) = &envelope.key {
        h.insert(HEADER_MSG_ID, key.as_str());
    }
    h
}

fn envelope(message: &async_nats::Message) -> Result<Envelope, Error> {
    envelope_of(message.headers.as_ref(), &message.payload)
}

pub(crate) fn decode_event(message: &async_nats::Message) -> Result<ExecutionEvent, Error> {
    envelope(message)?.decode()
}

fn envelope_of(
    headers: Option<&async_nats::HeaderMap>,
    payload: &bytes::Bytes,
) -> Result<Envelope, Error> {
    let h = headers.ok_or_else(|| Error::Codec("a message without headers".into()))?;
    let get = |name: &str| h.get(name).map(|v| v.as_str().to_owned());
    let schema = get(HEADER_SCHEMA)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| {
            Error::Codec(format!("a message without a valid {HEADER_SCHEMA} header").into())
        })?;
    Ok(Envelope {
        schema,
        encoding: get(HEADER_ENCODING).unwrap_or_default(),
        trace: get(HEADER_TRACE),
        key: get(HEADER_MSG_ID),
        body: payload.clone(),
    })
}

impl Nats {
    /// Connects to one server, or to the first reachable of a
    /// comma-separated list (the seeds of a cluster), logged in as
    /// `options.auth` (or the URL) says.
    pub async fn connect(url: &str, options: &Options) -> Result<Self, Error> {
        let timeout = options.connect_timeout.0;
        let servers = url
            .split(',')
            .enumerate()
            .map(|(i, u)| {
                u.trim().parse::<async_nats::ServerAddr>().map_err(|e| {
                    // The URL itself may hold a password: never repeat it.
                    Error::Refused {
                        what: format!("NATS URL number {}", i + 1),
                        source: e.into(),
                    }
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let (connect_options, how) = options.auth.connect_options(&servers).await?;
        let shown: Vec<String> = servers.iter().map(auth::shown).collect();
        let servers = servers
            .into_iter()
            .map(without_credentials)
            .collect::<Result<Vec<_>, Error>>()?;
        let connect = connect_options.connection_timeout(timeout).connect(servers);
        let client = tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| unavailable(format!("no answer from NATS within {timeout:?}")))?
            .map_err(|e| match e.kind() {
                async_nats::ConnectErrorKind::AuthorizationViolation
                | async_nats::ConnectErrorKind::Authentication => Error::Refused {
                    what: format!(
                        "NATS at {} refused the engine's login {how}",
                        shown.join(",")
                    ),
                    source: e.into(),
                },
                _ => unavailable(e),
            })?;
        let js = jetstream::new(client.clone());
        let subjects = Subjects::new(&options.prefix);
        let nats = Nats {
            client,
            js,
            subjects,
            hub: Arc::new(Hub::new(options.stream_buffer)),
        };
        nats.ensure(options).await?;
        Ok(nats)
    }

    /// Creates the streams and the shared consumer if they do not exist.
    async fn ensure(&self, options: &Options) -> Result<(), Error> {
        let s = &self.subjects;
        let commands = self
            .js
            .get_or_create_stream(stream::Config {
                name: s.command_stream(),
                subjects: vec![s.all("cmd")],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                num_replicas: options.replicas,
                duplicate_window: options.duplicate_window.0,
                ..Default::default()
            })
            .await
            .map_err(unavailable)?;
        self.js
            .get_or_create_stream(stream::Config {
                name: s.control_stream(),
                subjects: vec![s.all("ctl")],
                retention: stream::RetentionPolicy::Limits,
                storage: stream::StorageType::File,
                num_replicas: options.replicas,
                max_age: CONTROL_MAX_AGE,
                duplicate_window: options.duplicate_window.0.min(CONTROL_MAX_AGE),
                ..Default::default()
            })
            .await
            .map_err(unavailable)?;
        self.js
            .get_or_create_stream(stream::Config {
                name: s.event_stream(),
                subjects: vec![s.all("evt")],
                retention: stream::RetentionPolicy::Limits,
                storage: stream::StorageType::File,
                num_replicas: options.replicas,
                max_age: options.event_max_age.0,
                duplicate_window: options.duplicate_window.0.min(options.event_max_age.0),
                ..Default::default()
            })
            .await
            .map_err(unavailable)?;
        commands
            .get_or_create_consumer(
                COMMAND_CONSUMER,
                consumer::pull::Config {
                    durable_name: Some(COMMAND_CONSUMER.to_owned()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: options.ack_wait.0,
                    max_deliver: -1,
                    max_ack_pending: 20_000,
                    ..Default::default()
                },
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    pub async fn health(&self) -> Result<(), Error> {
        if self.client.connection_state() != async_nats::connection::State::Connected {
            return Err(unavailable("not connected to NATS"));
        }
        tokio::time::timeout(
            Duration::from_secs(2),
            self.js.get_stream(self.subjects.command_stream()),
        )
        .await
        .map_err(|_| unavailable("JetStream did not answer in time"))?
        .map_err(unavailable)?;
        Ok(())
    }

    pub async fn publish_command(
        &self,
        command: &Command,
        envelope: Envelope,
        broadcast: bool,
    ) -> Result<(), Error> {
        let (tenant, execution) = (command.tenant(), command.execution());
        let subject = if broadcast {
            self.subjects.control(tenant, execution)
        } else {
            self.subjects.command(tenant, execution)
        };
        let ack = self
            .js
            .publish_with_headers(subject, headers(&envelope), envelope.body.clone())
            .await
            .map_err(unavailable)?;
        ack.await.map_err(unavailable)?;
        Ok(())
    }

    /// Start commands held and not yet acknowledged (a work queue keeps a
    /// message until it is acknowledged).
    pub async fn queued_commands(&self) -> Result<u64, Error> {
        let stream = self
            .js
            .get_stream(self.subjects.command_stream())
            .await
            .map_err(unavailable)?;
        Ok(stream.cached_info().state.messages)
    }

    pub async fn commands(&self) -> Result<CommandReader, Error> {
        let stream = self
            .js
            .get_stream(self.subjects.command_stream())
            .await
            .map_err(unavailable)?;
        let consumer: consumer::PullConsumer = stream
            .get_consumer(COMMAND_CONSUMER)
            .await
            .map_err(unavailable)?;
        let messages = consumer.messages().await.map_err(unavailable)?;
        Ok(CommandReader { messages })
    }

    pub(crate) async fn ordered(
        &self,
        stream: String,
        filter: String,
        policy: consumer::DeliverPolicy,
    ) -> Result<consumer::push::Ordered, Error> {
        let stream = self.js.get_stream(stream).await.map_err(unavailable)?;
        let consumer = stream
            .create_consumer(consumer::push::OrderedConfig {
                deliver_subject: self.client.new_inbox(),
                filter_subject: filter,
                deliver_policy: policy,
                ..Default::default()
            })
            .await
            .map_err(unavailable)?;
        consumer.messages().await.map_err(unavailable)
    }

    pub async fn control(&self) -> Result<ControlReader, Error> {
        let messages = self
            .ordered(
                self.subjects.control_stream(),
                self.subjects.all("ctl"),
                consumer::DeliverPolicy::New,
            )
            .await?;
        Ok(ControlReader { messages })
    }

    pub async fn publish_event(
        &self,
        event: &ExecutionEvent,
        envelope: Envelope,
    ) -> Result<(), Error> {
        let subject = self.subjects.event(event.tenant, event.execution);
        // A plain publish on a subject the events stream captures: sent in
        // order on this connection, stored by the stream, no acknowledgement
        // to wait for or to read (events are notifications; the journal is
        // the record).
        self.client
            .publish_with_headers(subject, headers(&envelope), envelope.body.clone())
            .await
            .map_err(unavailable)
    }

    pub async fn events(
        &self,
        tenant: TenantId,
        execution: ExecutionId,
    ) -> Result<EventReader, Error> {
        let messages = self
            .ordered(
                self.subjects.event_stream(),
                self.subjects.event(tenant, execution),
                consumer::DeliverPolicy::All,
            )
            .await?;
        Ok(EventReader {
            source: Source::Ordered(Box::new(messages)),
        })
    }

    /// A tenant's live events, through this process's one shared consumer
    /// of the tenant's events.
    pub async fn tenant_events(&self, tenant: TenantId) -> Result<EventReader, Error> {
        Ok(EventReader {
            source: Source::Shared(Box::new(SharedReader::open(self, tenant).await?)),
        })
    }

    pub(crate) fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Messages on the public trigger subjects, shared by every process
    /// through a queue group.
    pub async fn triggers(&self) -> Result<async_nats::Subscriber, Error> {
        self.client
            .queue_subscribe(self.subjects.triggers(), self.subjects.trigger_group())
            .await
            .map_err(unavailable)
    }

    /// A plain publish (replies and public events): no stream keeps it.
    pub async fn publish_plain(
        &self,
        subject: String,
        headers: HeaderMap,
        body: bytes::Bytes,
    ) -> Result<(), Error> {
        self.client
            .publish_with_headers(subject, headers, body)
            .await
            .map_err(unavailable)
    }

    pub fn subjects(&self) -> &Subjects {
        &self.subjects
    }

    /// Live events of one execution through a plain subscription: no
    /// JetStream consumer to create, so it costs no round trip.
    pub async fn watch(
        &self,
        tenant: TenantId,
        execution: ExecutionId,
    ) -> Result<EventReader, Error> {
        let subscriber = self
            .client
            .subscribe(self.subjects.event(tenant, execution))
            .await
            .map_err(unavailable)?;
        Ok(EventReader {
            source: Source::Live(subscriber),
        })
    }

    pub async fn shutdown(&self) {
        let _ = self.client.flush().await;
    }
}

pub struct CommandReader {
    messages: consumer::pull::Stream,
}

impl CommandReader {
    pub async fn next(&mut self) -> Option<Result<Delivery, Error>> {
        loop {
            let message = match self.messages.next().await? {
                Ok(m) => m,
                Err(e) => return Some(Err(unavailable(e))),
            };
            let decoded =
                envelope(&message).and_then(|env| Ok((env.decode::<Command>()?, env.trace)));
            match decoded {
                Ok((command, trace)) => {
                    let redelivered = message.info().map(|i| i.delivered > 1).unwrap_or(false);
                    return Some(Ok(Delivery {
                        command,
                        trace,
                        redelivered,
                        acker: Acker::Nats(Box::new(message)),
                    }));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "terminating an undecodable command");
                    let _ = message.ack_with(AckKind::Term).await;
                }
            }
        }
    }
}

pub struct ControlReader {
    messages: consumer::push::Ordered,
}

impl ControlReader {
    pub async fn next(&mut self) -> Option<Result<Delivery, Error>> {
        loop {
            let message = match self.messages.next().await? {
                Ok(m) => m,
                Err(e) => return Some(Err(unavailable(e))),
            };
            match envelope(&message).and_then(|env| Ok((env.decode::<Command>()?, env.trace))) {
                Ok((command, trace)) => {
                    return Some(Ok(Delivery {
                        command,
                        trace,
                        redelivered: false,
                        acker: Acker::None,
                    }));
                }
                Err(e) => tracing::warn!(error = %e, "skipping an undecodable control command"),
            }
        }
    }
}

pub struct EventReader {
    source: Source,
}

enum Source {
    Ordered(Box<consumer::push::Ordered>),
    Live(async_nats::Subscriber),
    Shared(Box<SharedReader>),
}

impl EventReader {
    pub async fn next(&mut self) -> Option<Result<ExecutionEvent, Error>> {
        loop {
            let decoded = match &mut self.source {
                Source::Ordered(messages) => match messages.next().await? {
                    Ok(m) => envelope(&m),
                    Err(e) => return Some(Err(unavailable(e))),
                },
                Source::Live(subscriber) => envelope(&subscriber.next().await?),
                Source::Shared(reader) => return reader.next().await,
            };
            match decoded.and_then(|env| env.decode::<ExecutionEvent>()) {
                Ok(event) => return Some(Ok(event)),
                Err(e) => tracing::warn!(error = %e, "skipping an undecodable event"),
            }
        }
    }
}
