//! Addressing one loop iteration: an execution's steps a page at a time or
//! within a scope, its logs by scope, a re-run of one iteration that
//! repeats no other iteration's effects, test-run mocks of body nodes, and
//! a resume of the wait in one iteration.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::stub::StubServer;
use common::{Engine, Mode, error_message, eventually, node};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// `start → each` over `trigger.body` (unless the config says), with this
/// body and config besides, then `after` reading the loop.
fn looped(body: Value, config: Value) -> Value {
    let mut config = config;
    if config.get("items").is_none() {
        config["items"] = json!("trigger.body");
    }
    config["body"] = body;
    json!({"name": "loop", "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "each", "type": "action", "kind": "for_each", "config": config},
        {"id": "after", "type": "data", "kind": "mapping", "config": {"mapping": {"count": "{{ each.count }}"}}}
    ], "edges": [{"from": "start", "to": "each"}, {"from": "each", "to": "after"}]})
}

/// The step keys an answer lists.
fn keys(answer: &Value) -> Vec<String> {
    answer["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["node"].as_str().map(str::to_owned))
        .collect()
}

/// Asks for `path`, which must be refused with `status`; its message.
async fn refused(engine: &Engine, path: &str, status: StatusCode) -> String {
    let (got, body) = engine.get(path).await;
    assert_eq!(got, status, "{path}: {body}");
    error_message(&body).to_owned()
}

async fn paged(mode: Mode) {
    let engine = Engine::start(mode).await;
    let body = json!({"nodes": [
        {"id": "double", "type": "data", "kind": "mapping", "config": {"mapping": {"n": "{{ item * 2 }}"}}},
        {"id": "label", "type": "data", "kind": "mapping", "config": {"mapping": {"text": "#{{ index }}"}}}
    ], "edges": [{"from": "double", "to": "label"}]});
    let workflow = engine.deploy(looped(body, json!({}))).await;
    let items: Vec<u32> = (0..25).collect();
    let id = engine.start_execution(&workflow, json!(items)).await;
    let done = engine.finished(&id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(keys(&done).len(), 3 + 50, "{done}");
    assert_eq!(done["next_steps_after"], Value::Null, "one page: {done}");

    // Pages of 20 iteration steps: the workflow's own nodes come with the
    // first, and every iteration step comes once, in index order.
    let base = format!("/v1/executions/{id}");
    let (status, first) = engine.get(&format!("{base}?steps_limit=20")).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let listed = keys(&first);
    for own in ["start", "each", "after"] {
        assert!(listed.contains(&own.to_owned()), "{listed:?}");
    }
    assert_eq!(first["next_steps_after"], "each[9].label", "{first}");
    let mut seen: Vec<String> = listed.into_iter().filter(|k| k.contains('[')).collect();
    let mut after = first["next_steps_after"].as_str().map(str::to_owned);
    let mut pages = 1;
    while let Some(cursor) = after {
        let (status, page) = engine
            .get(&format!("{base}?steps_limit=20&steps_after={cursor}"))
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let listed = keys(&page);
        assert!(listed.iter().all(|k| k.contains('[')), "{listed:?}");
        seen.extend(listed);
        after = page["next_steps_after"].as_str().map(str::to_owned);
        pages += 1;
    }
    assert_eq!(pages, 3);
    let mut expected: Vec<String> = (0..25)
        .flat_map(|k| [format!("each[{k}].double"), format!("each[{k}].label")])
        .collect();
    seen.sort();
    expected.sort();
    assert_eq!(seen, expected);

    // A scope: one iteration's steps, or every iteration of the loop.
    let (status, third) = engine.get(&format!("{base}?scope=each[3]")).await;
    assert_eq!(status, StatusCode::OK, "{third}");
    let mut listed = keys(&third);
    listed.sort();
    assert_eq!(listed, ["each[3].double", "each[3].label"]);
    assert_eq!(third["next_steps_after"], Value::Null);
    assert_eq!(node(&third, "each[3].double")["output"], json!({"n": 6}));
    assert_eq!(third["status"], "succeeded");
    let (_, every) = engine.get(&format!("{base}?scope=each")).await;
    assert_eq!(keys(&every).len(), 50, "{every}");

    // The logs take the same scope.
    let (status, logs) = engine.get(&format!("{base}/logs?scope=each[3]")).await;
    assert_eq!(status, StatusCode::OK, "{logs}");
    let mut logged = keys(&logs);
    logged.sort();
    assert_eq!(logged, ["each[3].double", "each[3].label"]);

    for (path, wanted) in [
        (
            format!("{base}?steps_limit=0"),
            "query parameter steps_limit: must be between 1 and 1000",
        ),
        (
            format!("{base}?steps_limit=1001"),
            "query parameter steps_limit: must be between 1 and 1000",
        ),
        (
            format!("{base}?scope=each[x]"),
            "query parameter scope: \"each[x]\" must read like",
        ),
        (
            format!("{base}?steps_after=each"),
            "query parameter steps_after: must be a next_steps_after value",
        ),
        (
            format!("{base}?scope=after[1]"),
            "query parameter scope: \"after\" is not a for_each or while node in the workflow",
        ),
        (
            format!("{base}/logs?scope=nope[1]"),
            "query parameter scope: \"nope\" is not a for_each or while node",
        ),
    ] {
        let message = refused(&engine, &path, StatusCode::BAD_REQUEST).await;
        assert!(message.starts_with(wanted), "{path}: {message}");
    }

    // A workflow without loops answers as it always did.
    let plain = engine
        .deploy(json!({"name": "plain", "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual"},
            {"id": "m", "type": "data", "kind": "mapping", "config": {"mapping": {"x": 1}}}
        ], "edges": [{"from": "start", "to": "m"}]}))
        .await;
    let id = engine.start_execution(&plain, json!({})).await;
    let done = engine.finished(&id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert!(done.get("next_steps_after").is_none(), "{done}");
    assert_eq!(keys(&done).len(), 2, "{done}");
}
both_modes!(iteration_steps_are_paged_and_read_by_scope, paged);

/// Calls to the stub, by path.
fn calls_by_path(stub: &StubServer) -> BTreeMap<String, usize> {
    let mut calls = BTreeMap::new();
    for hit in stub.hits("/") {
        *calls.entry(hit.path).or_default() += 1;
    }
    calls
}

/// Asserts how many calls each path got.
fn assert_calls(stub: &StubServer, expected: &[(&str, usize)]) {
    let calls = calls_by_path(stub);
    let got: Vec<(&str, usize)> = expected
        .iter()
        .map(|&(path, _)| (path, calls.get(path).copied().unwrap_or(0)))
        .collect();
    assert_eq!(got, expected, "{calls:?}");
}

async fn rerun(engine: &Engine, id: &str, body: Value) -> (StatusCode, Value) {
    engine
        .post(&format!("/v1/executions/{id}/rerun"), body)
        .await
}

/// Re-runs `id` as `body` asks, which must be taken; the new execution
/// once it ended, which must have succeeded.
async fn rerun_done(engine: &Engine, id: &str, body: Value) -> Value {
    let (status, answer) = rerun(engine, id, body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let new = answer["execution_id"].as_str().unwrap_or_default();
    let done = engine.finished(new).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    done
}

async fn rerun_iteration(mode: Mode) {
    let stub = StubServer::start().await;
    let engine = Engine::start(mode).await;
    let body = json!({"nodes": [
        {"id": "prepare", "type": "data", "kind": "mapping", "config": {"mapping": {"url": "{{ item }}"}}},
        {"id": "call", "type": "action", "kind": "http_request", "retry": {"max_attempts": 1},
         "config": {"method": "POST", "url": "{{ prepare.url }}", "body": {"index": "{{ index }}"}}}
    ], "edges": [{"from": "prepare", "to": "call"}]});
    let workflow = engine
        .deploy(looped(body, json!({"result": "call.status"})))
        .await;
    // The third item fails once (503, no retry); the loop stops there.
    let items = json!([
        stub.url("/ok/a"),
        stub.url("/ok/b"),
        stub.url("/flaky/c/1"),
        stub.url("/ok/d")
    ]);
    let id = engine.start_execution(&workflow, items).await;
    let done = engine.finished(&id).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(node(&done, "each[2].call")["status"], "failed", "{done}");
    let before = calls_by_path(&stub);
    assert_eq!(before.get("/ok/d"), None, "d never started: {before:?}");

    for (request, path) in [
        (json!({"from_node": "call", "scope": "each[9]"}), "scope"),
        (json!({"from_node": "call", "scope": "each"}), "scope"),
        (json!({"from_node": "call", "scope": "after[0]"}), "scope"),
        (
            json!({"from_node": "nope", "scope": "each[1]"}),
            "from_node",
        ),
        (json!({"from_node": "each[1].nope"}), "from_node"),
        (
            json!({"from_node": "each[1].call", "scope": "each[1]"}),
            "scope",
        ),
    ] {
        let (status, body) = rerun(&engine, &id, request.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{request}: {body}"
        );
        assert_eq!(
            body["error"]["details"][0]["path"], path,
            "{request}: {body}"
        );
    }
    // The original's own version, named: the third item runs again (its
    // second call succeeds) and the fourth for the first time.
    let body = json!({"from_node": "call", "scope": "each[2]", "version": 1});
    rerun_done(&engine, &id, body).await;
    let first = [("/ok/a", 1), ("/ok/b", 1), ("/flaky/c", 2), ("/ok/d", 1)];
    assert_calls(&stub, &first);

    // Again from the failed original, by step key: the same two items run,
    // no other.
    let done = rerun_done(&engine, &id, json!({"from_node": "each[2].call"})).await;
    let new = done["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(done["rerun_of"]["from_node"], "each[2].call", "{done}");
    assert_eq!(
        node(&done, "after")["output"],
        json!({"count": 4}),
        "the nodes after the loop ran: {done}"
    );
    assert_eq!(
        node(&done, "each")["output"]["results"],
        json!([200, 200, 200, 200])
    );
    assert_calls(
        &stub,
        &[("/ok/a", 1), ("/ok/b", 1), ("/flaky/c", 3), ("/ok/d", 2)],
    );
    let keys: Vec<String> = stub
        .hits("/")
        .into_iter()
        .filter_map(|h| h.idempotency_key)
        .filter(|k| k.starts_with(&new))
        .collect();
    assert_eq!(
        keys,
        [format!("{new}:each[2]:call"), format!("{new}:each[3]:call")]
    );

    // From a succeeded run, one finished iteration runs again alone.
    rerun_done(
        &engine,
        &new,
        json!({"from_node": "prepare", "scope": "each[0]"}),
    )
    .await;
    assert_calls(
        &stub,
        &[("/ok/a", 2), ("/ok/b", 1), ("/flaky/c", 3), ("/ok/d", 2)],
    );
}
both_modes!(a_rerun_of_one_iteration_repeats_no_other, rerun_iteration);

async fn rerun_nested(mode: Mode) {
    let stub = StubServer::start().await;
    let engine = Engine::start(mode).await;
    let url = format!("{}{{{{ row.n }}}}c{{{{ index }}}}", stub.url("/ok/r"));
    let inner = json!({"id": "inner", "type": "action", "kind": "for_each", "config": {
        "items": "item", "result": "cell.status",
        "body": {"nodes": [{"id": "cell", "type": "action", "kind": "http_request",
            "config": {"method": "POST", "url": url, "body": {}}}]}}});
    let body = json!({"nodes": [
        {"id": "row", "type": "data", "kind": "mapping", "config": {"mapping": {"n": "{{ index }}"}}},
        inner
    ], "edges": [{"from": "row", "to": "inner"}]});
    let workflow = engine
        .deploy(looped(body, json!({"result": "inner.results"})))
        .await;
    let id = engine
        .start_execution(&workflow, json!([[0, 0, 0], [0, 0, 0]]))
        .await;
    assert_eq!(engine.finished(&id).await["status"], "succeeded");
    assert_eq!(stub.hits("/ok/").len(), 6);
    let body = json!({"from_node": "cell", "scope": "outer[1].inner[2]"});
    let (status, answer) = rerun(&engine, &id, body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let done = rerun_done(
        &engine,
        &id,
        json!({"from_node": "cell", "scope": "each[1].inner[2]"}),
    )
    .await;
    assert_eq!(
        node(&done, "each")["output"]["results"],
        json!([[200, 200, 200], [200, 200, 200]])
    );
    let calls: Vec<(String, usize)> = (0..6)
        .map(|k| (format!("/ok/r{}c{}", k / 3, k % 3), 1 + usize::from(k == 5)))
        .collect();
    let calls: Vec<(&str, usize)> = calls.iter().map(|(p, n)| (p.as_str(), *n)).collect();
    assert_calls(&stub, &calls);

    // A while's iteration cannot run again alone.
    let repeated = json!({"name": "while", "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "w", "type": "action", "kind": "while", "config": {
            "state": "0", "next_state": "state + 1", "until": "state >= 2", "max_iterations": 5,
            "body": {"nodes": [{"id": "step", "type": "data", "kind": "mapping",
                "config": {"mapping": {"n": "{{ state }}"}}}]}}}
    ], "edges": [{"from": "start", "to": "w"}]});
    let workflow = engine.deploy(repeated).await;
    let id = engine.start_execution(&workflow, json!({})).await;
    assert_eq!(engine.finished(&id).await["status"], "succeeded");
    let (status, answer) = rerun(&engine, &id, json!({"from_node": "w[0].step"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["error"]["details"][0]["code"], "not_rerunnable");
}
both_modes!(
    a_nested_iteration_is_rerun_alone_and_a_while_is_not,
    rerun_nested
);

async fn mocked_bodies(mode: Mode) {
    let stub = StubServer::start().await;
    let engine = Engine::start(mode).await;
    let body = json!({"nodes": [{"id": "call", "type": "action", "kind": "http_request",
        "config": {"method": "POST", "url": stub.url("/ok/charge"), "body": {"index": "{{ index }}"}}}]});
    let workflow = engine
        .deploy(looped(
            body,
            json!({"items": "trigger.body.items", "result": "call.status"}),
        ))
        .await;
    let test_run = format!("/v1/workflows/{workflow}/versions/1/executions");
    let run = |mocks: Value| {
        let engine = &engine;
        let test_run = test_run.clone();
        async move {
            let (status, body) = engine
                .post(
                    &test_run,
                    json!({"input": {"items": [1, 2, 3]}, "mocks": mocks}),
                )
                .await;
            assert_eq!(status, StatusCode::ACCEPTED, "{body}");
            let id = body["execution_id"].as_str().unwrap_or_default().to_owned();
            engine.finished(&id).await
        }
    };
    // By node id: every iteration; by step key: that one, first.
    let done = run(json!({
        "call": {"status": 299, "body": {}},
        "each[1].call": {"status": 201, "body": {}}
    }))
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["output"], json!({"count": 3}));
    assert_eq!(
        node(&done, "each")["output"]["results"],
        json!([299, 201, 299])
    );
    assert!(stub.hits("/").is_empty(), "nothing was called");
    assert_eq!(node(&done, "each[2].call")["mocked"], true, "{done}");

    // Only one iteration mocked: the others call out.
    let done = run(json!({"each[1].call": {"status": 201, "body": {}}})).await;
    assert_eq!(
        node(&done, "each")["output"]["results"],
        json!([200, 201, 200])
    );
    assert_eq!(node(&done, "each[1].call")["mocked"], true, "{done}");
    assert_eq!(node(&done, "each[0].call")["mocked"], false, "{done}");
    let indexes: Vec<Value> = stub
        .hits("/")
        .into_iter()
        .map(|h| h.body["index"].clone())
        .collect();
    assert_eq!(indexes.len(), 2, "{indexes:?}");
    assert!(!indexes.contains(&json!(1)), "{indexes:?}");

    for (mocks, path) in [
        (json!({"each[1].nope": {}}), "mocks.each[1].nope"),
        (json!({"after[1].call": {}}), "mocks.after[1].call"),
        (json!({"each[x].call": {}}), "mocks.each[x].call"),
    ] {
        let (status, body) = engine
            .post(&test_run, json!({"input": {"items": [1]}, "mocks": mocks}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["error"]["details"][0]["path"], path, "{body}");
    }
}
both_modes!(test_runs_mock_body_nodes_by_id_or_iteration, mocked_bodies);

async fn resume_iteration(mode: Mode) {
    let engine = Engine::start(mode).await;
    let body = json!({"nodes": [
        {"id": "approve", "type": "action", "kind": "wait_for_event"},
        {"id": "note", "type": "data", "kind": "mapping",
         "config": {"mapping": {"by": "{{ approve.payload.by }}"}}}
    ], "edges": [{"from": "approve", "to": "note"}]});
    let workflow = engine
        .deploy(looped(body, json!({"concurrency": 2, "result": "note.by"})))
        .await;
    let id = engine.start_execution(&workflow, json!(["x", "y"])).await;
    eventually("both iterations wait", Duration::from_secs(20), || async {
        let e = engine.execution(&id).await;
        let waiting = |key: &str| node(&e, key)["status"] == "waiting";
        (waiting("each[0].approve") && waiting("each[1].approve")).then_some(())
    })
    .await;
    let resume = format!("/v1/executions/{id}/resume");
    for (request, status, path) in [
        (
            json!({"node": "nope", "scope": "each[0]"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "node",
        ),
        (
            json!({"node": "approve", "scope": "after[0]"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "scope",
        ),
        (
            json!({"scope": "each[0]"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "node",
        ),
    ] {
        let (got, body) = engine.post(&resume, request.clone()).await;
        assert_eq!(got, status, "{request}: {body}");
        assert_eq!(
            body["error"]["details"][0]["path"], path,
            "{request}: {body}"
        );
    }
    let (status, body) = engine.post(&resume, json!({"node": "approve"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let (status, body) = engine
        .post(
            &resume,
            json!({"node": "approve", "scope": "each[1]", "payload": {"by": "ada"}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["node"], "each[1].approve");
    let e = eventually(
        "the second iteration ends",
        Duration::from_secs(20),
        || async {
            let e = engine.execution(&id).await;
            (node(&e, "each[1].note")["status"] == "succeeded").then_some(e)
        },
    )
    .await;
    assert_eq!(node(&e, "each[0].approve")["status"], "waiting", "{e}");

    let (status, body) = engine
        .post(
            &resume,
            json!({"node": "each[0].approve", "payload": {"by": "bob"}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let done = engine.finished(&id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        node(&done, "each")["output"]["results"],
        json!(["bob", "ada"])
    );
}
both_modes!(
    a_wait_in_one_iteration_is_resumed_by_its_scope,
    resume_iteration
);
