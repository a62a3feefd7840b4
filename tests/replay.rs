//! Events replay exactly: each is recorded with the turn that produced it,
//! numbered per execution (`seq`) and per tenant (its stream position), so
//! a stream is told from the record (after a restart too) and then goes on
//! live, with no gap and no repeat.

mod common;

use common::sse::{SseReader, three_steps, until_finished};
use common::{ADMIN_KEY, Engine, Mode, error_message};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A request for a stream that must be refused: its status and message.
async fn refused(engine: &Engine, key: &str, path: &str, last_id: &str) -> (StatusCode, String) {
    let response = engine
        .client()
        .get(engine.url(path))
        .bearer_auth(key)
        .header("Last-Event-ID", last_id)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap_or_default();
    (status, error_message(&body).to_owned())
}

async fn a_finished_execution_replays_exactly(mode: Mode) {
    let engine = Engine::start(mode).await;
    let workflow = engine.deploy(three_steps()).await;
    let id = engine.start_execution(&workflow, json!({})).await;
    engine.finished(&id).await;
    let path = format!("/v1/executions/{id}/events");
    let all = SseReader::open(&engine, ADMIN_KEY, &path, None)
        .await
        .until_closed()
        .await;
    let kinds: Vec<(&str, &str)> = all
        .iter()
        .map(|e| (e.event.as_str(), e.data["node"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        kinds,
        [
            ("execution_started", ""),
            ("node_started", "a"),
            ("node_succeeded", "a"),
            ("node_started", "b"),
            ("node_succeeded", "b"),
            ("execution_finished", ""),
        ],
        "every event, in the order it happened"
    );
    for (n, event) in (1..).zip(&all) {
        assert_eq!(event.number(), n, "ids are the seqs 1, 2, 3, …");
        assert_eq!(event.data["seq"], n);
    }

    // Resuming after an id gives exactly the rest, and the end.
    let rest = SseReader::open(&engine, ADMIN_KEY, &path, Some("2"))
        .await
        .until_closed()
        .await;
    assert_eq!(rest, all[2..]);
    let none = SseReader::open(&engine, ADMIN_KEY, &path, Some(&all.len().to_string()))
        .await
        .until_closed()
        .await;
    assert!(none.is_empty(), "{none:?}");

    // An id the execution never reached is refused, not met with silence.
    let (status, message) = refused(&engine, ADMIN_KEY, &path, "99").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{message}");
    assert!(
        message.contains("99 is not an event of this execution yet"),
        "{message}"
    );
}
both_modes!(
    a_finished_execution_replays_exactly_from_the_record,
    a_finished_execution_replays_exactly
);

async fn the_tenant_stream_is_recorded(mode: Mode) {
    let mut engine = Engine::start(mode).await;
    let stranger = engine.create_tenant("Stranger").await;
    let workflow = engine.deploy(three_steps()).await;
    let first = engine.start_execution(&workflow, json!({})).await;
    engine.finished(&first).await;

    // From the start of the record: positions 1, 2, 3, … of this tenant.
    let mut from_start = SseReader::open(&engine, ADMIN_KEY, "/v1/events", Some("0")).await;
    let recorded = until_finished(&mut from_start, 1).await;
    drop(from_start);
    for (n, event) in (1..).zip(&recorded) {
        assert_eq!(event.number(), n);
        assert_eq!(event.data["execution_id"], first.as_str());
    }
    assert_eq!(recorded[0].event, "execution_started");
    let last = recorded.len() as u64;

    // After a restart, a reader resuming two events back gets those two
    // from the record, then the next execution's live, numbered on.
    engine.kill_and_restart().await;
    let mut resumed = SseReader::open(
        &engine,
        ADMIN_KEY,
        "/v1/events",
        Some(&(last - 2).to_string()),
    )
    .await;
    let second = engine.start_execution(&workflow, json!({})).await;
    let mut seen = vec![resumed.next().await, resumed.next().await];
    assert_eq!(seen, recorded[recorded.len() - 2..]);
    seen.extend(until_finished(&mut resumed, 1).await);
    for (n, event) in (last - 1..).zip(&seen) {
        assert_eq!(event.number(), n, "no gap, no repeat: {seen:?}");
    }
    assert!(
        seen[2..]
            .iter()
            .all(|e| e.data["execution_id"] == second.as_str())
    );

    // Positions are each tenant's own: another tenant's first is 1.
    let theirs = engine.deploy_as(&stranger, three_steps()).await;
    let mut stream = SseReader::open(&engine, &stranger, "/v1/events", None).await;
    engine
        .start_execution_as(&stranger, &theirs, json!({}))
        .await;
    assert_eq!(stream.next().await.number(), 1);

    // A position the stream has not reached is refused, not met with silence.
    let (status, message) = refused(&engine, ADMIN_KEY, "/v1/events", "1000").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{message}");
    assert!(
        message.contains("1000 is not an event of this stream yet"),
        "{message}"
    );
}
both_modes!(
    the_tenant_stream_is_recorded_and_survives_restarts,
    the_tenant_stream_is_recorded
);
