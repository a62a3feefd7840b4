//! Open-loop load: requests are scheduled at a fixed rate and each latency
//! is measured from its scheduled start, so a slow server cannot hide its
//! queueing behind a slower client (no coordinated omission).

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, Semaphore};

/// Latency percentiles in milliseconds, and what was achieved.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Summary {
    pub requests: u64,
    pub errors: u64,
    pub rate_offered: f64,
    pub rate_achieved: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

pub fn summarize(h: &Histogram<u64>, errors: u64, offered: f64, elapsed: Duration) -> Summary {
    let ms = |v: u64| v as f64 / 1000.0;
    Summary {
        requests: h.len(),
        errors,
        rate_offered: offered,
        rate_achieved: h.len() as f64 / elapsed.as_secs_f64().max(1e-9),
        p50_ms: ms(h.value_at_quantile(0.50)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        max_ms: ms(h.max()),
    }
}

pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// Sends `rate` requests per second for `duration`; `send` returns whether
/// the request succeeded. In-flight requests are capped so that an engine
/// that stops answering cannot exhaust the client.
pub async fn fixed_rate<F, Fut>(rate: f64, duration: Duration, send: F) -> Summary
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let send = Arc::new(send);
    let hist = Arc::new(Mutex::new(histogram()));
    let errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let in_flight = Arc::new(Semaphore::new(20_000));
    let total = (rate * duration.as_secs_f64()).round() as u64;
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let scheduled = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(scheduled.into()).await;
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            break;
        };
        let (send, hist, errors) = (send.clone(), hist.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let ok = send(i).await;
            let micros = scheduled.elapsed().as_micros() as u64;
            drop(permit);
            if ok {
                let _ = hist.lock().await.record(micros.max(1));
            } else {
                errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = start.elapsed();
    let h = hist.lock().await;
    summarize(
        &h,
        errors.load(std::sync::atomic::Ordering::Relaxed),
        rate,
        elapsed,
    )
}

/// The highest of `rates` whose p99 stays under `p99_limit_ms` without errors.
pub async fn highest_rate<F, Fut>(
    rates: &[f64],
    duration: Duration,
    p99_limit_ms: f64,
    send: F,
) -> (Option<Summary>, Vec<Summary>)
where
    F: Fn(u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let mut best = None;
    let mut all = Vec::new();
    for &rate in rates {
        let s = fixed_rate(rate, duration, send.clone()).await;
        let ok = s.errors == 0 && s.p99_ms < p99_limit_ms;
        all.push(s.clone());
        if !ok {
            break;
        }
        best = Some(s);
    }
    (best, all)
}
