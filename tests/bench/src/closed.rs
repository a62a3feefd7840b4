//! Closed-loop throughput: `wrk` (Debian's package, the reference HTTP load
//! generator) keeps a fixed number of connections busy, each sending its
//! next request as soon as the last is answered, and reports requests per
//! second with latency percentiles. The harness's own open-loop generator
//! measures latency at chosen rates without coordinated omission, but it
//! cannot drive a fast server to its limit on two cores; this can, so
//! every share of the machine's HTTP capacity is taken against this
//! figure for bare axum, measured in the same run.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Connections kept busy, as in the issue's and README's comparisons.
pub const CONNECTIONS: u32 = 32;
/// Load threads (one per core here).
const THREADS: u32 = 2;

/// What one closed-loop run achieved.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Closed {
    pub connections: u32,
    pub seconds: f64,
    pub requests_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Answers that were not 2xx or 3xx, and socket errors.
    pub errors: u64,
}

/// The signup request the README's workflow (and the bare handler) takes.
const SCRIPT: &str = r#"wrk.method = "POST"
wrk.body = '{"email":"ada@example.com","name":"Ada"}'
wrk.headers["Content-Type"] = "application/json"
"#;

/// Runs wrk against `url` for `duration`; `Err` says why it could not
/// (no wrk installed, or an output it could not read).
pub async fn run(url: &str, duration: Duration) -> Result<Closed, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("no temporary directory: {e}"))?;
    let script = dir.path().join("signup.lua");
    std::fs::write(&script, SCRIPT).map_err(|e| format!("cannot write the wrk script: {e}"))?;
    let seconds = duration.as_secs().max(1);
    let output = tokio::process::Command::new("wrk")
        .arg(format!("-t{THREADS}"))
        .arg(format!("-c{CONNECTIONS}"))
        .arg(format!("-d{seconds}s"))
        .arg("--latency")
        .arg("-s")
        .arg(&script)
        .arg(url)
        .output()
        .await
        .map_err(|e| format!("wrk could not be run ({e}); install Debian's `wrk` package"))?;
    if !output.status.success() {
        return Err(format!(
            "wrk failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    parse(&String::from_utf8_lossy(&output.stdout), seconds as f64)
}

/// Reads wrk's report: `Requests/sec:`, the `--latency` distribution and
/// the error lines.
fn parse(text: &str, seconds: f64) -> Result<Closed, String> {
    let mut requests_per_s = None;
    let (mut p50_ms, mut p99_ms) = (None, None);
    let mut errors = 0;
    for line in text.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("Requests/sec:") => requests_per_s = words.next().and_then(|v| v.parse().ok()),
            Some("50%") => p50_ms = words.next().and_then(millis),
            Some("99%") => p99_ms = words.next().and_then(millis),
            Some("Non-2xx") => {
                errors += line
                    .rsplit(' ')
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            }
            Some("Socket") => {
                errors += line
                    .split(',')
                    .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                    .sum::<u64>()
            }
            _ => {}
        }
    }
    match (requests_per_s, p50_ms, p99_ms) {
        (Some(requests_per_s), Some(p50_ms), Some(p99_ms)) => Ok(Closed {
            connections: CONNECTIONS,
            seconds,
            requests_per_s,
            p50_ms,
            p99_ms,
            errors,
        }),
        _ => Err(format!("wrk's report could not be read: {text}")),
    }
}

/// `26.07ms`, `812.00us`, `1.02s` in milliseconds.
fn millis(value: &str) -> Option<f64> {
    let split = value.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse().ok()?;
    match unit {
        "us" => Some(number / 1000.0),
        "ms" => Some(number),
        "s" => Some(number * 1000.0),
        "m" => Some(number * 60_000.0),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "Running 8s test @ http://127.0.0.1:18080/hooks/default/signup
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    27.01ms    6.39ms  80.31ms   73.12%
    Req/Sec   601.89     83.02   800.00     70.62%
  Latency Distribution
     50%   26.07ms
     75%   30.12ms
     90%   34.80ms
     99%    1.02s
  9618 requests in 8.03s, 1.60MB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 4
Requests/sec:   1197.92
Transfer/sec:    204.21KB
";

    #[test]
    fn reads_wrks_report() {
        let closed = parse(REPORT, 8.0).unwrap();
        assert_eq!(closed.requests_per_s, 1197.92);
        assert_eq!(closed.p50_ms, 26.07);
        assert_eq!(closed.p99_ms, 1020.0);
        assert_eq!(closed.errors, 9);
    }

    #[test]
    fn a_report_without_its_figures_is_an_error() {
        assert!(parse("wrk: command not found", 8.0).is_err());
        assert_eq!(millis("812.00us"), Some(0.812));
    }
}
