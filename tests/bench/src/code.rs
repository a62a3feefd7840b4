//! Code-node overhead: one small call in each sandbox, cold (a fresh
//! sandbox: a JavaScript worker process of the release binary started for
//! the call, or a Python process started for the call), warm (a running sandbox; for Python, a pool whose processes have
//! started and wait for their call) and, for Python, sustained (calls back to back, so
//! that each takes a process the pool has only just started).

use std::time::Instant;

use flowmesh_sandbox::{Call, Jail, JsSandbox, JsStart, Limits, Options, PythonSandbox};
use serde::{Deserialize, Serialize};

use crate::{engine, load};

#[derive(Debug, Serialize, Deserialize)]
pub struct Latency {
    pub calls: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct CodeNode {
    pub javascript_cold: Latency,
    pub javascript_warm: Latency,
    pub python_cold: Latency,
    pub python_warm: Latency,
    pub python_sustained: Latency,
}

fn call(source: &str) -> Call {
    Call {
        source: source.to_owned(),
        input: r#"{"trigger": {"body": {"a": 2, "b": 3}}}"#.to_owned(),
        limits: Limits::default(),
    }
}

const JS: &str = "return {sum: input.trigger.body.a + input.trigger.body.b};";
const PY: &str = "return {'sum': input['trigger']['body']['a'] + input['trigger']['body']['b']}";

async fn measure<F, Fut>(calls: usize, mut one: F) -> anyhow::Result<Latency>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut h = load::histogram();
    for _ in 0..calls {
        let started = Instant::now();
        one().await?;
        h.record(started.elapsed().as_micros().max(1) as u64)?;
    }
    Ok(latency(&h))
}

fn latency(h: &hdrhistogram::Histogram<u64>) -> Latency {
    Latency {
        calls: h.len() as usize,
        p50_ms: h.value_at_quantile(0.5) as f64 / 1000.0,
        p99_ms: h.value_at_quantile(0.99) as f64 / 1000.0,
    }
}

pub async fn code_node(cold: usize, warm: usize) -> anyhow::Result<CodeNode> {
    // In the jail, as the first tenant's uid when run as root.
    let jail = Jail::detect(&Options::default().jail);
    jail.check()?;
    let uid = jail.tenant_uid(0)?;
    let start = JsStart {
        program: engine::binary()?,
        jail: jail.clone(),
        uid,
    };
    let javascript_cold = measure(cold, || async {
        let sandbox = JsSandbox::start(start.clone());
        sandbox.run(call(JS)).await?;
        Ok(())
    })
    .await?;
    let js = JsSandbox::start(start.clone());
    let javascript_warm = measure(warm, || async {
        js.run(call(JS)).await?;
        Ok(())
    })
    .await?;
    let unpooled = PythonSandbox::start(
        &Options {
            python_warm: 0,
            ..Options::default()
        },
        jail.clone(),
        uid,
    );
    let python_cold = measure(cold, || async {
        unpooled.run(call(PY)).await?;
        Ok(())
    })
    .await?;
    let pooled = PythonSandbox::start(&Options::default(), jail, uid);
    let python_sustained = measure(warm, || async {
        pooled.run(call(PY)).await?;
        Ok(())
    })
    .await?;
    let mut h = load::histogram();
    for _ in 0..warm.min(200) {
        // The pool's processes have started and wait for their call.
        pooled.warmed().await?;
        let started = Instant::now();
        pooled.run(call(PY)).await?;
        h.record(started.elapsed().as_micros().max(1) as u64)?;
    }
    let python_warm = latency(&h);
    Ok(CodeNode {
        javascript_cold,
        javascript_warm,
        python_cold,
        python_warm,
        python_sustained,
    })
}
