//! One conformance suite for both transports: every body runs against the
//! in-process bus and against NATS JetStream (with a prefix of its own whose
//! streams are deleted afterwards).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use flowmesh_model::{
    Command, EventKind, ExecutionEvent, ExecutionId, HumanDuration, TenantId, WorkflowId,
};

use crate::subjects::Subjects;
use crate::{Bus, Error, Options};

const NATS_URL: &str = "nats://127.0.0.1:4222";

fn options(nats: bool) -> Options {
    Options {
        nats_url: nats.then(|| NATS_URL.to_owned()),
        prefix: format!("t{}", uuid::Uuid::new_v4().simple()),
        ack_wait: HumanDuration::from_millis(1_000),
        ..Default::default()
    }
}

async fn cleanup(options: &Options) {
    if options.nats_url.is_none() {
        return;
    }
    let client = async_nats::connect(NATS_URL).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let s = Subjects::new(&options.prefix);
    for name in [s.command_stream(), s.control_stream(), s.event_stream()] {
        let _ = js.delete_stream(name).await;
    }
}

fn start(tenant: TenantId) -> Command {
    Command::start(tenant, WorkflowId::new(), ExecutionId::new())
}

/// The workflow of every test event.
const WORKFLOW: WorkflowId = WorkflowId(uuid::Uuid::from_u128(7));

fn event(tenant: TenantId, execution: ExecutionId, n: u32) -> ExecutionEvent {
    ExecutionEvent {
        tenant,
        workflow: WORKFLOW,
        execution,
        at_ms: i64::from(n),
        seq: u64::from(n),
        position: u64::from(n),
        kind: EventKind::NodeStarted {
            node: format!("n{n}"),
            attempt: n,
        },
    }
}

/// Waits for the next item, failing the test after a deadline.
async fn within<T>(limit: Duration, f: impl Future<Output = Option<T>>) -> T {
    tokio::time::timeout(limit, f)
        .await
        .expect("timed out")
        .expect("stream ended")
}

macro_rules! both_transports {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn in_process() {
                let options = super::options(false);
                super::$name(&options).await;
            }

            #[tokio::test]
            async fn nats() {
                let options = super::options(true);
                super::$name(&options).await;
                super::cleanup(&options).await;
            }
        }
    };
}

async fn publish_then_consume(options: &Options) {
    let bus = Bus::connect(options).await.unwrap();
    let mut commands = bus.commands().await.unwrap();
    let cmd = start(TenantId::new());
    bus.publish_command(&cmd, Some("00-trace-01"))
        .await
        .unwrap();
    let delivery = within(Duration::from_secs(5), commands.next())
        .await
        .unwrap();
    assert_eq!(delivery.command, cmd);
    assert_eq!(delivery.trace.as_deref(), Some("00-trace-01"));
    assert!(!delivery.redelivered);
    delivery.ack().await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(1_500), commands.next())
            .await
            .is_err(),
        "acknowledged: never again"
    );
}
both_transports!(publish_then_consume);

async fn unacknowledged_and_nacked_commands_come_back(options: &Options) {
    let bus = Bus::connect(options).await.unwrap();
    let mut commands = bus.commands().await.unwrap();
    let cmd = start(TenantId::new());
    bus.publish_command(&cmd, None).await.unwrap();
    let first = within(Duration::from_secs(5), commands.next())
        .await
        .unwrap();
    drop(first);
    let again = within(Duration::from_secs(5), commands.next())
        .await
        .unwrap();
    assert_eq!(again.command, cmd);
    assert!(again.redelivered);
    again.nak(Duration::from_millis(100)).await.unwrap();
    let third = within(Duration::from_secs(5), commands.next())
        .await
        .unwrap();
    assert_eq!(third.command, cmd);
    third.ack().await.unwrap();
}
both_transports!(unacknowledged_and_nacked_commands_come_back);

async fn duplicates_are_dropped(options: &Options) {
    let bus = Bus::connect(options).await.unwrap();
    let mut commands = bus.commands().await.unwrap();
    let cmd = start(TenantId::new());
    for _ in 0..3 {
        bus.publish_command(&cmd, None).await.unwrap();
    }
    let other = start(TenantId::new());
    bus.publish_command(&other, None).await.unwrap();
    let a = within(Duration::from_secs(5), commands.next())
        .await
        .unwrap();
    let b = within(Duration::from_secs(5), commands.next())
        .await
        .unwrap();
    assert_eq!((a.command.clone(), b.command.clone()), (cmd, other));
    a.ack().await.unwrap();
    b.ack().await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(500), commands.next())
            .await
            .is_err()
    );
}
both_transports!(duplicates_are_dropped);

async fn consumers_share_the_work(options: &Options) {
    let bus = Bus::connect(options).await.unwrap();
    let other_process = Bus::connect(options).await.unwrap();
    let (mut one, mut two) = (
        bus.commands().await.unwrap(),
        other_process.commands().await.unwrap(),
    );
    let tenant = TenantId::new();
    let sent: HashSet<ExecutionId> = futures::future::join_all((0..20).map(|_| {
        let bus = bus.clone();
        async move {
            let cmd = start(tenant);
            bus.publish_command(&cmd, None).await.unwrap();
            cmd.execution()
        }
    }))
    .await
    .into_iter()
    .collect();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.len() < 20 && Instant::now() < deadline {
        let next = tokio::select! {
            d = one.next() => d,
            d = two.next() => d,
        };
        let delivery = next.unwrap().unwrap();
        seen.push(delivery.command.execution());
        delivery.ack().await.unwrap();
    }
    assert_eq!(seen.len(), 20);
    assert_eq!(
        seen.iter().copied().collect::<HashSet<_>>(),
        sent,
        "each command exactly once"
    );
}
both_transports!(consumers_share_the_work);

async fn control_reaches_every_subscriber(options: &Options) {
    let bus = Bus::connect(options).await.unwrap();
    let (mut a, mut b) = (bus.control().await.unwrap(), bus.control().await.unwrap());
    let cancel = Command::CancelExecution {
        tenant: TenantId::new(),
        workflow: WorkflowId::new(),
        execution: ExecutionId::new(),
    };
    bus.publish_command(&cancel, None).await.unwrap();
    for reader in [&mut a, &mut b] {
        let delivery = within(Duration::from_secs(5), reader.next()).await.unwrap();
        assert_eq!(delivery.command, cancel);
        delivery.ack().await.unwrap();
    }
}
both_transports!(control_reaches_every_subscriber);

async fn execution_events_replay_then_follow(options: &Options) {
    let bus = Bus::connect(options).await.unwrap();
    let (tenant, execution) = (TenantId::new(), ExecutionId::new());
    for n in 0..3 {
        bus.publish_event(&event(tenant, execution, n))
            .await
            .unwrap();
    }
    bus.publish_event(&event(tenant, ExecutionId::new(), 99))
        .await
        .unwrap();
    let mut events = bus.execution_events(tenant, execution).await.unwrap();
    for n in 0..3 {
        assert_eq!(
            within(Duration::from_secs(5), events.next()).await.unwrap(),
            event(tenant, execution, n)
        );
    }
    bus.publish_event(&event(tenant, execution, 3))
        .await
        .unwrap();
    assert_eq!(
        within(Duration::from_secs(5), events.next()).await.unwrap(),
        event(tenant, execution, 3)
    );
}
both_transports!(execution_events_replay_then_follow);

async fn watching_sees_what_follows_only(options: &Options) {
    let bus = Bus::connect(options).await.unwrap();
    let (tenant, execution) = (TenantId::new(), ExecutionId::new());
    bus.publish_event(&event(tenant, execution, 0))
        .await
        .unwrap();
    let mut replay = bus.execution_events(tenant, execution).await.unwrap();
    assert_eq!(
        within(Duration::from_secs(5), replay.next()).await.unwrap(),
        event(tenant, execution, 0)
    );
    let mut watch = bus.watch_execution(tenant, execution).await.unwrap();
    bus.publish_event(&event(tenant, ExecutionId::new(), 5))
        .await
        .unwrap();
    bus.publish_event(&event(tenant, execution, 1))
        .await
        .unwrap();
    assert_eq!(
        within(Duration::from_secs(5), watch.next()).await.unwrap(),
        event(tenant, execution, 1)
    );
}
both_transports!(watching_sees_what_follows_only);

async fn tenant_events_are_the_tenants_own(options: &Options) {
    let bus = Bus::connect(options).await.unwrap();
    let (mine, theirs) = (TenantId::new(), TenantId::new());
    let mut events = bus.tenant_events(mine).await.unwrap();
    bus.publish_event(&event(theirs, ExecutionId::new(), 1))
        .await
        .unwrap();
    let expected = event(mine, ExecutionId::new(), 2);
    bus.publish_event(&expected).await.unwrap();
    assert_eq!(
        within(Duration::from_secs(5), events.next()).await.unwrap(),
        expected
    );
}
both_transports!(tenant_events_are_the_tenants_own);

/// Consumers on the events stream.
async fn event_consumers(options: &Options) -> usize {
    let client = async_nats::connect(NATS_URL).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut stream = js
        .get_stream(Subjects::new(&options.prefix).event_stream())
        .await
        .unwrap();
    stream.info().await.unwrap().state.consumer_count
}

/// A process's readers of one tenant share one JetStream consumer, and
/// each still gets every event.
#[tokio::test]
async fn tenant_readers_share_one_consumer() {
    let options = options(true);
    let bus = Bus::connect(&options).await.unwrap();
    let tenant = TenantId::new();
    let mut readers = Vec::new();
    for _ in 0..20 {
        readers.push(bus.tenant_events(tenant).await.unwrap());
    }
    assert_eq!(event_consumers(&options).await, 1);
    let expected = event(tenant, ExecutionId::new(), 1);
    bus.publish_event(&expected).await.unwrap();
    for reader in &mut readers {
        assert_eq!(
            within(Duration::from_secs(5), reader.next()).await.unwrap(),
            expected
        );
    }
    cleanup(&options).await;
}

/// A tenant's feed, and its entry in the process's table, go with its
/// last reader: a process that served many tenants' streams keeps nothing
/// for those no longer read.
#[tokio::test]
async fn a_tenant_feed_goes_with_its_last_reader() {
    let options = options(true);
    let bus = Bus::connect(&options).await.unwrap();
    let crate::Transport::Nats(nats) = &bus.transport else {
        unreachable!("connected to NATS");
    };
    let (a, b) = (TenantId::new(), TenantId::new());
    let first = bus.tenant_events(a).await.unwrap();
    let second = bus.tenant_events(a).await.unwrap();
    let other = bus.tenant_events(b).await.unwrap();
    assert_eq!(nats.hub().entries(), 2);
    drop(first);
    assert_eq!(nats.hub().entries(), 2, "a reader of the tenant is left");
    drop((second, other));
    assert_eq!(nats.hub().entries(), 0);
    cleanup(&options).await;
}

/// The in-process bus keeps a tenant's events only while its stream has a
/// reader, and drops the logs of executions gone quiet past the events'
/// lifetime, even when nothing is published afterwards.
#[tokio::test]
async fn quiet_logs_go_without_new_events() {
    let options = Options {
        event_max_age: HumanDuration::from_millis(100),
        ..options(false)
    };
    let bus = Bus::connect(&options).await.unwrap();
    let crate::Transport::Memory(memory) = &bus.transport else {
        unreachable!("in-process");
    };
    let read = TenantId::new();
    let mut reader = bus.tenant_events(read).await.unwrap();
    for _ in 0..10 {
        let tenant = TenantId::new();
        bus.publish_event(&event(tenant, ExecutionId::new(), 1))
            .await
            .unwrap();
    }
    assert_eq!(
        memory.logs(),
        (10, 1),
        "no tenant log kept for tenants nobody reads"
    );
    bus.publish_event(&event(read, ExecutionId::new(), 1))
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), reader.next())
        .await
        .expect("the reader's event")
        .expect("open")
        .unwrap();
    assert_eq!(got.tenant, read);
    drop(reader);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    while memory.logs() != (0, 0) {
        assert!(Instant::now() < deadline, "kept: {:?}", memory.logs());
        tick.tick().await;
    }
}

/// A reader further behind than the stream buffer is cut off, while a
/// reader keeping up gets everything.
#[tokio::test]
async fn a_lagging_reader_is_cut_off() {
    let options = Options {
        stream_buffer: 4,
        ..options(true)
    };
    let bus = Bus::connect(&options).await.unwrap();
    let tenant = TenantId::new();
    let execution = ExecutionId::new();
    let mut slow = bus.tenant_events(tenant).await.unwrap();
    let mut fast = bus.tenant_events(tenant).await.unwrap();
    let (got, mut seen_by_fast) = tokio::sync::mpsc::unbounded_channel();
    let keeping_up = tokio::spawn(async move {
        for _ in 1..=20 {
            let event = within(Duration::from_secs(5), fast.next()).await.unwrap();
            got.send(event).unwrap();
        }
    });
    let mut seen = Vec::new();
    // Each event published once the fast reader has the one before.
    for n in 1..=20 {
        bus.publish_event(&event(tenant, execution, n))
            .await
            .unwrap();
        seen.push(seen_by_fast.recv().await.unwrap());
    }
    keeping_up.await.unwrap();
    assert_eq!(
        seen,
        (1..=20)
            .map(|n| event(tenant, execution, n))
            .collect::<Vec<_>>()
    );
    let cut = within(Duration::from_secs(5), slow.next()).await;
    let Err(Error::Lagged { missed }) = cut else {
        panic!("the slow reader is cut off, not {cut:?}");
    };
    assert!(missed > 0);
    assert!(slow.next().await.is_none(), "and its stream ends");
    cleanup(&options).await;
}

#[tokio::test]
async fn connecting_twice_at_once_is_fine() {
    let options = options(true);
    let (a, b) = tokio::join!(Bus::connect(&options), Bus::connect(&options));
    a.unwrap().health().await.unwrap();
    b.unwrap().health().await.unwrap();
    cleanup(&options).await;
}

#[tokio::test]
async fn an_unreachable_nats_is_unavailable() {
    let options = Options {
        nats_url: Some("nats://127.0.0.1:1".into()),
        connect_timeout: HumanDuration::from_millis(1_000),
        ..Default::default()
    };
    let started = Instant::now();
    assert!(matches!(
        Bus::connect(&options).await,
        Err(Error::Unavailable(_))
    ));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_bad_prefix_is_refused() {
    let options = Options {
        prefix: "a.*".into(),
        ..Default::default()
    };
    assert!(matches!(
        Bus::connect(&options).await,
        Err(Error::Config(_))
    ));
}
