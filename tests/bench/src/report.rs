//! The markdown table of a run, each flowmesh figure beside its limit.

use serde::{Deserialize, Serialize};

use crate::Results;

#[derive(Debug, Serialize, Deserialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_gb: f64,
}

impl Machine {
    pub fn detect() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
            })
            .unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let kb: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0);
        Machine {
            cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            cpu_model,
            memory_gb: kb / 1_048_576.0,
        }
    }
}

/// Requests per second with p50 / p99, and errors if any.
fn closed_figure(c: &crate::closed::Closed) -> String {
    let errors = match c.errors {
        0 => String::new(),
        n => format!(", {n} errors"),
    };
    format!(
        "{:.0}/s, p50 / p99 {:.1} / {:.1} ms{errors}",
        c.requests_per_s, c.p50_ms, c.p99_ms
    )
}

fn ratio(value: f64, limit: f64) -> String {
    if limit > 0.0 {
        format!("{:.1}%", 100.0 * value / limit)
    } else {
        "n/a".to_owned()
    }
}

pub fn markdown(r: &Results) -> String {
    let l = &r.limits;
    let http_limit = l
        .http_bare_axum
        .as_ref()
        .map(|s| s.rate_achieved)
        .unwrap_or(0.0);
    let mut out = String::new();
    out.push_str(&format!(
        "Machine: {} CPUs ({}), {:.0} GiB. Mode: {}.\n\n",
        r.machine.cpus,
        r.machine.cpu_model,
        r.machine.memory_gb,
        if r.quick {
            "quick (sizes too small to judge speed)"
        } else {
            "full"
        }
    ));
    let closed_limit = l.http_bare_axum_closed.as_ref();
    let mut limits = vec![(
        "bare axum, highest rate with p99 < 100 ms".to_owned(),
        format!("{http_limit:.0}/s"),
    )];
    if let Some(c) = closed_limit {
        limits.push((
            format!(
                "bare axum, closed loop at {} connections (wrk)",
                c.connections
            ),
            closed_figure(c),
        ));
    }
    let mut jetstreams = vec![("", &l.jetstream)];
    if let Some(flushed) = &l.jetstream_flushed {
        jetstreams.push((" (sync_interval: always)", flushed));
    }
    for (label, js) in jetstreams {
        limits.push((
            format!("JetStream acknowledged publishes, pipelined{label}"),
            format!("{:.0}/s", js.pipelined_per_s),
        ));
        limits.push((
            format!("JetStream publish-and-ack round trip, p50{label}"),
            format!("{:.2} ms", js.round_trip_p50_ms),
        ));
    }
    limits.extend([
        (
            "PostgreSQL rows, batched (UNNEST, 1000 a statement)".to_owned(),
            format!("{:.0}/s", l.postgres_batched_rows_per_s),
        ),
        (
            format!(
                "PostgreSQL single-row commits (synchronous_commit = {})",
                l.postgres_synchronous_commit
            ),
            format!("{:.0}/s", l.postgres_single_commit_per_s),
        ),
        (
            "SQLite rows, batched (1000 a transaction)".to_owned(),
            format!("{:.0}/s", l.sqlite_batched_rows_per_s),
        ),
        (
            "SQLite single-row commits".to_owned(),
            format!("{:.0}/s", l.sqlite_single_commit_per_s),
        ),
    ]);
    out.push_str("| limit | value |\n| --- | --- |\n");
    for (label, value) in limits {
        out.push_str(&format!("| {label} | {value} |\n"));
    }
    out.push('\n');
    let names: Vec<&str> = r.modes.iter().map(|m| m.mode.name()).collect();
    out.push_str(&format!(
        "| scenario | figure | {} |\n| --- | --- |{}\n",
        names.join(" | "),
        " --- |".repeat(names.len())
    ));
    let row = |name: &str, figure: &str, f: &dyn Fn(&crate::ModeResults) -> String| {
        let cells: Vec<String> = r.modes.iter().map(f).collect();
        format!("| {name} | {figure} | {} |\n", cells.join(" | "))
    };
    out.push_str(&row(
        "webhook-sync",
        "highest rate with p99 < 100 ms (share of bare axum)",
        &|m| match &m.webhook_sync.highest_rate_under_100ms {
            Some(s) => format!(
                "{:.0}/s ({})",
                s.rate_achieved,
                ratio(s.rate_achieved, http_limit)
            ),
            None => "below the lowest step".to_owned(),
        },
    ));
    if let Some(limit) = closed_limit {
        out.push_str(&row(
            "webhook-sync",
            &format!(
                "closed loop at {} connections (share of bare axum's)",
                limit.connections
            ),
            &|m| match &m.webhook_sync.closed {
                Some(c) => format!(
                    "{} ({})",
                    closed_figure(c),
                    ratio(c.requests_per_s, limit.requests_per_s)
                ),
                None => "not run".to_owned(),
            },
        ));
    }
    out.push_str(&row("webhook-sync", "p50 / p99 at the fixed rate", &|m| {
        let s = &m.webhook_sync.fixed_rate;
        format!(
            "{:.1} / {:.1} ms at {:.0}/s",
            s.p50_ms, s.p99_ms, s.rate_offered
        )
    }));
    out.push_str(&row(
        "durable-latency",
        "p50 / p99, three HTTP steps",
        &|m| {
            format!(
                "{:.1} / {:.1} ms",
                m.durable_latency.p50_ms, m.durable_latency.p99_ms
            )
        },
    ));
    // The store each mode writes to: one commit's time, and rows per
    // second written in batches.
    let commit_ms = |m: &crate::ModeResults| match m.mode {
        crate::engine::Mode::Embedded => 1000.0 / l.sqlite_single_commit_per_s.max(1e-9),
        _ => 1000.0 / l.postgres_single_commit_per_s.max(1e-9),
    };
    let batched = |m: &crate::ModeResults| match m.mode {
        crate::engine::Mode::Embedded => l.sqlite_batched_rows_per_s,
        _ => l.postgres_batched_rows_per_s,
    };
    out.push_str(&row(
        "durable-latency",
        "engine overhead per step, p50 (in single-row commits of the store)",
        &|m| {
            let overhead = m.durable_latency.overhead_per_step_p50_ms;
            format!("{overhead:.2} ms ({:.1}×)", overhead / commit_ms(m))
        },
    ));
    out.push_str(&row(
        "saturation",
        "executions / steps per second, ten-node chains (steps as a share of the store's batched rows)",
        &|m| {
            format!(
                "{:.0} / {:.0} ({})",
                m.saturation.executions_per_s,
                m.saturation.steps_per_s,
                ratio(m.saturation.steps_per_s, batched(m))
            )
        },
    ));
    out.push_str(&row(
        "fan-out",
        "100 branches into a merge, p50; per branch (in single-row commits)",
        &|m| {
            let branch = m.fan_out.overhead_per_branch_ms;
            format!(
                "{:.1} ms; {branch:.2} ms ({:.2}×)",
                m.fan_out.p50_ms,
                branch / commit_ms(m)
            )
        },
    ));
    out.push_str(&row(
        "control flow",
        "for_each, overhead per item: pure body; HTTP body at concurrency 10 (× the per-step overhead)",
        &|m| match &m.control_flow {
            Some(c) => format!(
                "{:.3} ms; {:.3} ms (×{:.2}) for {} items",
                c.pure_per_item_ms,
                c.http_per_item_ms,
                c.http_per_item_ms / c.per_step_ms.max(f64::MIN_POSITIVE),
                c.items
            ),
            None => "not run".to_owned(),
        },
    ));
    out.push_str(&row(
        "control flow",
        "call_workflow round trip, p50: parent calling a one-node child / the child alone",
        &|m| match &m.control_flow {
            Some(c) => format!("{:.1} / {:.1} ms", c.call_p50_ms, c.child_p50_ms),
            None => "not run".to_owned(),
        },
    ));
    out.push_str(&row(
        "parked",
        "memory above idle for the waiting executions (per execution)",
        &|m| {
            format!(
                "{:.0} MB for {} ({:.1} KB)",
                m.parked.above_idle_mb,
                m.parked.executions,
                m.parked.above_idle_mb * 1024.0 / m.parked.executions.max(1) as f64
            )
        },
    ));
    out.push_str(&row(
        "parked",
        "after kill -9: ready again; every one resumed through the API and finished",
        &|m| {
            format!(
                "{:.1} s; {:.1} s",
                m.parked.ready_after_kill_s, m.parked.resumed_all_after_kill_s
            )
        },
    ));
    out.push_str(&row(
        "recovery",
        "all finished after kill -9 and restart",
        &|m| {
            format!(
                "{:.1} s for {}",
                m.recovery.finished_after_restart_s, m.recovery.executions
            )
        },
    ));
    out.push_str(&row(
        "recovery",
        "lost executions / outbound retries seen by the sink",
        &|m| {
            format!(
                "{} / {}",
                m.recovery.lost, m.recovery.outbound_retries_seen_by_sink
            )
        },
    ));
    out.push_str(&row(
        "fairness",
        "quiet tenants' p99 alone / while a fourth sends ten times its share (each share: twice a quiet rate)",
        &|m| match &m.fairness {
            Some(f) => format!(
                "{:.1} / {:.1} ms (x{:.2}); flood {:.0}/s: {} refused",
                f.quiet_alone.p99_ms,
                f.quiet_flooded.p99_ms,
                f.p99_ratio,
                f.noisy_rate,
                f.noisy.errors
            ),
            None => "not run".to_owned(),
        },
    ));
    out.push_str(&row(
        "code fairness",
        "a tenant's small code nodes, p50 alone / while another's JavaScript and Python loops run to their limits",
        &|m| match m.fairness.as_ref().and_then(|f| f.code.as_ref()) {
            Some(c) => format!(
                "{:.1} / {:.1} ms (x{:.2})",
                c.alone.p50_ms, c.flooded.p50_ms, c.p50_ratio
            ),
            None => "not run".to_owned(),
        },
    ));
    let c = &r.code_node;
    out.push_str("\n| code node (one small call) | p50 | p99 |\n| --- | --- | --- |\n");
    for (name, l) in [
        ("JavaScript, cold (new runtime)", &c.javascript_cold),
        ("JavaScript, warm", &c.javascript_warm),
        (
            "Python, cold (process started for the call)",
            &c.python_cold,
        ),
        (
            "Python, warm (a started process from the pool)",
            &c.python_warm,
        ),
        ("Python, sustained (back to back)", &c.python_sustained),
    ] {
        out.push_str(&format!(
            "| {name} | {:.2} ms | {:.2} ms |\n",
            l.p50_ms, l.p99_ms
        ));
    }
    let t = &r.tracing;
    out.push_str(&format!(
        "\n| tracing (embedded, per-step overhead p50) | off | on, exported over OTLP/HTTP |\n| --- | --- | --- |\n| three-call workflow | {:.2} ms | {:.2} ms |\n",
        t.off_per_step_ms, t.on_per_step_ms
    ));
    for why in &r.skipped {
        out.push_str(&format!("\nSkipped: {why}.\n"));
    }
    out
}
