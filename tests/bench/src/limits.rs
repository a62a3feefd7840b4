//! The physical limits of this machine, measured the same way as flowmesh:
//! a bare HTTP handler, JetStream publishes, and database inserts.

use std::time::{Duration, Instant};

use axum::Json;
use axum::routing::post;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::closed::{self, Closed};
use crate::engine::POSTGRES;
use crate::load::{self, Summary};

/// Acknowledgements awaited at most at once by the pipelined publisher.
const ACK_WINDOW: usize = 1_000;

#[derive(Debug, Serialize, Deserialize)]
pub struct Limits {
    pub http_bare_axum: Option<Summary>,
    /// Bare axum driven by wrk at 32 connections (none without wrk).
    #[serde(default)]
    pub http_bare_axum_closed: Option<Closed>,
    pub jetstream: JetStream,
    /// The same against the harness's flushing NATS server, when there is one.
    pub jetstream_flushed: Option<JetStream>,
    /// PostgreSQL's `synchronous_commit` setting during the run.
    pub postgres_synchronous_commit: String,
    pub postgres_batched_rows_per_s: f64,
    pub postgres_single_commit_per_s: f64,
    pub sqlite_batched_rows_per_s: f64,
    pub sqlite_single_commit_per_s: f64,
}

/// A handler doing what the webhook-sync workflow does, without an engine.
async fn bare_server() -> anyhow::Result<String> {
    let app = axum::Router::new().route(
        "/signup",
        post(|Json(body): Json<Value>| async move {
            let name = body["name"].as_str().unwrap_or_default().to_uppercase();
            Json(json!({"welcome": name}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://{addr}/signup"))
}

pub async fn http(rates: &[f64], duration: Duration) -> anyhow::Result<Option<Summary>> {
    let url = bare_server().await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .build()?;
    let (best, _) = load::highest_rate(rates, duration, 100.0, move |i| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let body = json!({"email": format!("u{i}@example.com"), "name": "ada"});
            matches!(client.post(&url).json(&body).send().await, Ok(r) if r.status().is_success())
        }
    })
    .await;
    Ok(best)
}

/// The same handler driven closed-loop by wrk; `Err` says why not.
pub async fn http_closed(duration: Duration) -> anyhow::Result<Closed, String> {
    let url = bare_server().await.map_err(|e| e.to_string())?;
    closed::run(&url, duration).await
}

#[derive(Debug, Serialize, Deserialize)]
pub struct JetStream {
    pub pipelined_per_s: f64,
    pub round_trip_p50_ms: f64,
}

pub async fn jetstream(url: &str, messages: usize) -> anyhow::Result<JetStream> {
    let client = async_nats::connect(url).await?;
    let js = async_nats::jetstream::new(client);
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let name = format!("BENCHLIMIT_{tag}");
    js.get_or_create_stream(async_nats::jetstream::stream::Config {
        name: name.clone(),
        subjects: vec![format!("benchlimit.{tag}.>")],
        ..Default::default()
    })
    .await?;
    let subject = format!("benchlimit.{tag}.x");
    let payload = bytes::Bytes::from(vec![7u8; 128]);
    let start = Instant::now();
    // A window of acknowledgements in flight: the client bounds how many it
    // keeps pending, and a publish past that bound waits for one to be read.
    let mut acks = std::collections::VecDeque::with_capacity(ACK_WINDOW);
    for _ in 0..messages {
        if acks.len() == ACK_WINDOW
            && let Some(ack) = acks.pop_front()
        {
            ack.await?;
        }
        acks.push_back(js.publish(subject.clone(), payload.clone()).await?);
    }
    for ack in acks {
        ack.await?;
    }
    let pipelined = messages as f64 / start.elapsed().as_secs_f64();
    let mut h = load::histogram();
    for _ in 0..200 {
        let t = Instant::now();
        js.publish(subject.clone(), payload.clone()).await?.await?;
        h.record(t.elapsed().as_micros() as u64)?;
    }
    js.delete_stream(&name).await?;
    Ok(JetStream {
        pipelined_per_s: pipelined,
        round_trip_p50_ms: h.value_at_quantile(0.5) as f64 / 1000.0,
    })
}

pub async fn postgres_synchronous_commit() -> anyhow::Result<String> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&format!("{POSTGRES}/postgres")).await?;
    let (value,): (String,) = sqlx::query_as("SHOW synchronous_commit")
        .fetch_one(&mut conn)
        .await?;
    Ok(value)
}

pub async fn postgres(rows: usize) -> anyhow::Result<(f64, f64)> {
    use sqlx::Connection;
    let name = format!("flowmesh_benchlimit_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&format!("{POSTGRES}/postgres")).await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await?;
    let result = async {
        let pool = sqlx::PgPool::connect(&format!("{POSTGRES}/{name}")).await?;
        sqlx::query("CREATE TABLE t (id TEXT PRIMARY KEY, v TEXT NOT NULL)")
            .execute(&pool)
            .await?;
        let start = Instant::now();
        for batch in (0..rows).collect::<Vec<_>>().chunks(1000) {
            let ids: Vec<String> = batch.iter().map(|i| format!("b{i}")).collect();
            let values: Vec<String> = batch.iter().map(|_| "x".repeat(200)).collect();
            sqlx::query("INSERT INTO t SELECT * FROM UNNEST($1::text[], $2::text[])")
                .bind(&ids)
                .bind(&values)
                .execute(&pool)
                .await?;
        }
        let batched = rows as f64 / start.elapsed().as_secs_f64();
        let singles = 500;
        let start = Instant::now();
        for i in 0..singles {
            sqlx::query("INSERT INTO t VALUES ($1, $2)")
                .bind(format!("s{i}"))
                .bind("x".repeat(200))
                .execute(&pool)
                .await?;
        }
        let single = singles as f64 / start.elapsed().as_secs_f64();
        pool.close().await;
        anyhow::Ok((batched, single))
    }
    .await;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await?;
    result
}

pub async fn sqlite(rows: usize) -> anyhow::Result<(f64, f64)> {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
    let dir = tempfile::tempdir()?;
    let options = SqliteConnectOptions::new()
        .filename(dir.path().join("limit.db"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal);
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await?;
    sqlx::query("CREATE TABLE t (id TEXT PRIMARY KEY, v TEXT NOT NULL)")
        .execute(&pool)
        .await?;
    let start = Instant::now();
    for batch in (0..rows).collect::<Vec<_>>().chunks(1000) {
        let mut tx = pool.begin().await?;
        for i in batch {
            sqlx::query("INSERT INTO t VALUES ($1, $2)")
                .bind(format!("b{i}"))
                .bind("x".repeat(200))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
    }
    let batched = rows as f64 / start.elapsed().as_secs_f64();
    let singles = 2000;
    let start = Instant::now();
    for i in 0..singles {
        sqlx::query("INSERT INTO t VALUES ($1, $2)")
            .bind(format!("s{i}"))
            .bind("x".repeat(200))
            .execute(&pool)
            .await?;
    }
    let single = singles as f64 / start.elapsed().as_secs_f64();
    pool.close().await;
    Ok((batched, single))
}
