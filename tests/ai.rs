//! Language models: generating workflows from a description, the `ai` and
//! `agents` nodes, retries, streaming, caching, metering and tenants' own
//! endpoints, against a local server replaying recorded answers.

mod common;

use std::time::Duration;

use common::llm::LlmServer;
use common::{Engine, Mode, node};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn engine_with(mode: Mode, llm: &LlmServer) -> Engine {
    let env = llm.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Engine::start_with(mode, &env).await
}

/// Total usage of the tenant of `key`, once settled or not.
async fn usage(engine: &Engine, key: &str) -> Value {
    let (status, body) = engine.request_as(key, Method::GET, "/v1/usage", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["total"].clone()
}

async fn generates_drafts(mode: Mode) {
    let llm = LlmServer::start("generate").await;
    let engine = engine_with(mode, &llm).await;
    let key = engine.create_tenant("writer").await;
    let prompt = "When a signup webhook arrives, check the email domain, post to Slack if it is a company address";
    let (status, body) = engine
        .request_as(
            key.as_str(),
            Method::POST,
            "/v1/workflows/generate",
            Some(json!({"prompt": prompt})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["rounds"], 2, "one repair: {body}");
    assert!(body["explanation"].as_str().unwrap().contains("Slack"));
    assert_eq!(body["usage"]["total_tokens"], 1950);
    // A draft, never published.
    let id = body["workflow"]["id"].as_str().unwrap();
    let (_, saved) = engine
        .request_as(&key, Method::GET, &format!("/v1/workflows/{id}"), None)
        .await;
    assert_eq!(saved["published_version"], Value::Null);
    assert_eq!(saved["document"]["nodes"][2]["kind"], "http_request");
    // The model was offered every kind of the registry, with the schema,
    // and was shown where its first answer broke the rules.
    let requests = llm.requests();
    assert_eq!(requests.len(), 2);
    let (_, kinds) = engine
        .request_as(&key, Method::GET, "/v1/node-kinds", None)
        .await;
    let system = requests[0].body["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    for kind in kinds["items"].as_array().unwrap() {
        let name = format!(
            "{}/{}",
            kind["type"].as_str().unwrap(),
            kind["kind"].as_str().unwrap()
        );
        assert!(system.contains(&name), "{name} not offered");
    }
    assert_eq!(requests[0].body["response_format"]["type"], "json_schema");
    let repair = requests[1].text();
    assert!(repair.contains("workflow.nodes[1].kind"), "{repair}");
    assert_eq!(
        requests[0].authorization.as_deref(),
        Some("Bearer instance-key")
    );
    // Tokens are metered and charged.
    let total = usage(&engine, &key).await;
    assert_eq!(total["llm_tokens"], 1950, "{total}");
    assert!(total["credits"].as_i64().unwrap() >= 4, "{total}");

    // What cannot be built is a 422 that says why, and nothing is saved.
    let before = engine
        .request_as(&key, Method::GET, "/v1/workflows", None)
        .await
        .1["items"]
        .as_array()
        .unwrap()
        .len();
    let (status, body) = engine
        .request_as(
            &key,
            Method::POST,
            "/v1/workflows/generate",
            Some(json!({"prompt": "Book me a flight to Lisbon"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "not_generated");
    assert!(
        body["error"]["details"]["explanation"]
            .as_str()
            .unwrap()
            .contains("flights")
    );
    let (status, body) = engine
        .request_as(
            &key,
            Method::POST,
            "/v1/workflows/generate",
            Some(json!({"prompt": "Always wrong", "repairs": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["details"]["rounds"], 2);
    assert_eq!(body["error"]["details"]["errors"][0]["code"], "not_json");
    let after = engine
        .request_as(&key, Method::GET, "/v1/workflows", None)
        .await
        .1["items"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(before, after);
    // Bad requests name the field.
    let (status, body) = engine
        .request_as(
            &key,
            Method::POST,
            "/v1/workflows/generate",
            Some(json!({"prompt": ""})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(common::error_message(&body).contains("prompt"), "{body}");
}

both_modes!(generate_a_workflow_from_a_description, generates_drafts);

/// A model that ignores the structured-output request: a bare workflow
/// document is taken (and validated as usual); anything else is named.
async fn answers_out_of_shape(mode: Mode) {
    let llm = LlmServer::start("generate").await;
    let engine = engine_with(mode, &llm).await;
    let key = engine.create_tenant("bare").await;
    let generate = |prompt: &str| {
        let body = json!({"prompt": prompt, "repairs": 0});
        let (engine, key) = (&engine, key.as_str());
        async move {
            engine
                .request_as(key, Method::POST, "/v1/workflows/generate", Some(body))
                .await
        }
    };
    let (status, body) = generate("Greet every new signup by name").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["rounds"], 1, "{body}");
    assert_eq!(
        body["workflow"]["document"]["name"], "Greet signups",
        "{body}"
    );
    assert_eq!(
        body["workflow"]["document"]["nodes"][1]["kind"], "respond",
        "{body}"
    );

    for (prompt, path, code, says) in [
        (
            "Tidy my inbox",
            "workflow",
            "required",
            "the answer has no `workflow` (the document, or null when it cannot be built); it has: result, steps",
        ),
        (
            "List the steps",
            "",
            "invalid_answer",
            "the answer is a list, not an object {\"workflow\": <the document>, \"explanation\": <text>}",
        ),
    ] {
        let (status, body) = generate(prompt).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["error"]["code"], "not_generated");
        let errors = &body["error"]["details"]["errors"];
        assert_eq!(errors[0]["path"], path, "{body}");
        assert_eq!(errors[0]["code"], code, "{body}");
        assert_eq!(errors[0]["message"], says, "{body}");
    }
}

both_modes!(
    a_bare_workflow_from_the_model_is_taken_and_other_answers_named,
    answers_out_of_shape
);

fn ai_workflow(config: Value) -> Value {
    json!({"name": "ai", "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "ask", "type": "action", "kind": "ai", "config": config,
         "retry": {"max_attempts": 3, "initial_backoff": "10ms", "jitter": false}}
    ], "edges": [{"from": "start", "to": "ask"}]})
}

async fn run(engine: &Engine, key: &str, workflow: &str, input: Value) -> Value {
    engine.run_as(key, workflow, input).await
}

async fn ai_nodes(mode: Mode) {
    let llm = LlmServer::start("nodes").await;
    let engine = engine_with(mode, &llm).await;
    let key = engine.create_tenant("asker").await;
    // Structured output: a mismatch fails the attempt and is retried; a
    // 429 is waited out as its Retry-After says.
    let classify = engine
        .deploy_as(
            &key,
            ai_workflow(json!({
                "system": "You sort support tickets.",
                "prompt": "Classify ticket {{ trigger.body.id }}: {{ trigger.body.text }}",
                "schema": {"type": "object", "required": ["category", "urgency"], "properties": {
                    "category": {"enum": ["billing", "technical"]},
                    "urgency": {"enum": ["low", "high"]}}}
            })),
        )
        .await;
    let done = run(
        &engine,
        &key,
        &classify,
        json!({"id": "T-1", "text": "I was charged twice"}),
    )
    .await;
    assert_eq!(done["status"], "succeeded", "{done:#}");
    let ask = node(&done, "ask");
    assert_eq!(ask["attempts"], 2, "{ask:#}");
    assert_eq!(
        ask["output"]["json"],
        json!({"category": "billing", "urgency": "high"})
    );
    let requests = llm.requests();
    assert_eq!(requests.len(), 3);
    assert!(
        requests[2].at - requests[1].at >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    assert!(
        requests[0]
            .text()
            .contains("Classify ticket T-1: I was charged twice")
    );
    assert_eq!(
        requests[0].body["response_format"]["json_schema"]["schema"]["required"][1],
        "urgency"
    );
    assert_eq!(usage(&engine, &key).await["llm_tokens"], 125);

    // Streaming gathers the chunks and their usage.
    let hello = engine
        .deploy_as(
            &key,
            ai_workflow(json!({"prompt": "Say hello to {{ trigger.body.who }}", "stream": true})),
        )
        .await;
    let done = run(&engine, &key, &hello, json!({"who": "the world"})).await;
    assert_eq!(
        node(&done, "ask")["output"]["text"],
        "Hello, world! Streaming works.",
        "{done:#}"
    );
    assert_eq!(node(&done, "ask")["output"]["usage"]["total_tokens"], 16);
    assert_eq!(llm.requests().last().unwrap().body["stream"], true);

    // Identical deterministic requests are answered once per tenant.
    let translate = json!({"prompt": "Translate to French: good morning", "temperature": 0});
    let wf = engine.deploy_as(&key, ai_workflow(translate.clone())).await;
    let before = llm.requests().len();
    for _ in 0..2 {
        let done = run(&engine, &key, &wf, json!({})).await;
        assert_eq!(node(&done, "ask")["output"]["text"], "Bonjour");
    }
    assert_eq!(
        llm.requests().len(),
        before + 1,
        "the second answer came from the cache"
    );
    let other = engine.create_tenant("other asker").await;
    let theirs = engine.deploy_as(&other, ai_workflow(translate)).await;
    run(&engine, &other, &theirs, json!({})).await;
    assert_eq!(llm.requests().len(), before + 2, "the cache is per tenant");

    // A tenant's own endpoint, with its key from its secrets.
    let own = LlmServer::start("nodes").await;
    let (status, body) = engine
        .request_as(
            &other,
            Method::PUT,
            "/v1/secrets/llm_key",
            Some(json!({"value": "tenant-secret-key"})),
        )
        .await;
    assert!(status.is_success(), "{body}");
    let (status, body) = engine
        .request_as(
            &other,
            Method::PUT,
            "/v1/settings/llm",
            Some(json!({
            "base_url": own.base_url(), "model": "their-model", "api_key_secret": "llm_key"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let hello_theirs = engine
        .deploy_as(
            &other,
            ai_workflow(json!({"prompt": "Say hello to {{ trigger.body.who }}"})),
        )
        .await;
    let done = run(&engine, &other, &hello_theirs, json!({"who": "them"})).await;
    assert_eq!(done["status"], "succeeded", "{done:#}");
    let seen = own.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].authorization.as_deref(),
        Some("Bearer tenant-secret-key")
    );
    assert_eq!(seen[0].body["model"], "their-model");
    assert!(!done.to_string().contains("tenant-secret-key"));
    assert!(
        !engine.log_text().contains("tenant-secret-key"),
        "the key is not logged"
    );
    // A tenant's endpoint at a private address the instance does not allow.
    let (status, _) = engine
        .request_as(
            &other,
            Method::PUT,
            "/v1/settings/llm",
            Some(json!({"base_url": "http://10.1.2.3/v1"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let done = run(&engine, &other, &hello_theirs, json!({"who": "them"})).await;
    assert_eq!(done["status"], "failed");
    let error = node(&done, "ask")["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(error.starts_with("denied:"), "{error}");
    let (status, body) = engine
        .request_as(
            &other,
            Method::PUT,
            "/v1/settings/llm",
            Some(json!({"base_url": "ftp://x"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        common::error_message(&body).starts_with("base_url"),
        "{body}"
    );
}

both_modes!(ai_nodes_answer_retry_stream_and_cache, ai_nodes);

/// A tenant that points the model at a server of its own, without a key
/// of its own, gets no key sent there: never the instance's.
async fn tenant_endpoints_never_get_the_instance_key(mode: Mode) {
    let llm = LlmServer::start("nodes").await;
    let engine = engine_with(mode, &llm).await;
    let key = engine.create_tenant("collector").await;
    let theirs = LlmServer::start("nodes").await;
    let (status, body) = engine
        .request_as(
            &key,
            Method::PUT,
            "/v1/settings/llm",
            Some(json!({"base_url": theirs.base_url()})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let hello = engine
        .deploy_as(
            &key,
            ai_workflow(json!({"prompt": "Say hello to {{ trigger.body.who }}"})),
        )
        .await;
    let done = run(&engine, &key, &hello, json!({"who": "them"})).await;
    assert_eq!(done["status"], "succeeded", "{done:#}");
    // Workflow generation goes to the tenant's endpoint the same way
    // (whatever that server answers).
    engine
        .request_as(
            &key,
            Method::POST,
            "/v1/workflows/generate",
            Some(json!({"prompt": "Summarise the news every morning"})),
        )
        .await;
    let seen = theirs.requests();
    assert_eq!(seen.len(), 2, "the ai node and the generation");
    for request in &seen {
        assert_eq!(request.authorization, None, "no key to the tenant's server");
        assert_eq!(
            request.body["model"], "replay-1",
            "the instance's model name"
        );
    }
    assert!(llm.requests().is_empty(), "nothing went to the instance's");
}

both_modes!(
    a_tenant_endpoint_never_gets_the_instance_key,
    tenant_endpoints_never_get_the_instance_key
);

fn agents_workflow(process: &str) -> Value {
    json!({"name": "team", "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "team", "type": "action", "kind": "agents", "retry": {"max_attempts": 1}, "config": {
            "process": process,
            "max_rounds": 4,
            "agents": [
                {"id": "researcher", "role": "a researcher", "goal": "find the facts"},
                {"id": "writer", "role": "a writer", "goal": "write clearly"},
                {"id": "editor", "role": "an editor", "goal": "make it right", "instructions": "Be brief."}
            ],
            "tasks": [
                {"id": "research", "agent": "researcher", "description": "Collect facts about the {{ trigger.body.topic }}"},
                {"id": "draft", "agent": "writer", "description": "Write a note about the {{ trigger.body.topic }}"},
                {"id": "review", "agent": "editor", "description": "Review the note about the {{ trigger.body.topic }}", "expected_output": "The final note"}
            ]
        }}
    ], "edges": [{"from": "start", "to": "team"}]})
}

async fn agents(mode: Mode) {
    let llm = LlmServer::start("nodes").await;
    let engine = engine_with(mode, &llm).await;
    let key = engine.create_tenant("team").await;
    let topic = json!({"topic": "launch of the Orbit app"});
    let sequential = engine.deploy_as(&key, agents_workflow("sequential")).await;
    let done = run(&engine, &key, &sequential, topic.clone()).await;
    assert_eq!(done["status"], "succeeded", "{done:#}");
    let out = &node(&done, "team")["output"];
    assert_eq!(
        out["final"],
        "Final: Orbit launches Monday on iOS, Android and web."
    );
    let by: Vec<&str> = out["contributions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["agent"].as_str().unwrap())
        .collect();
    assert_eq!(by, ["researcher", "writer", "editor"]);
    assert_eq!(out["rounds"], 3);
    assert_eq!(out["usage"]["total_tokens"], 360);
    // Each agent saw the work before it.
    let last = llm.requests().last().unwrap().text();
    assert!(
        last.contains("Facts: Orbit ships on Monday") && last.contains("Be brief."),
        "{last}"
    );

    // A coordinator plans: the writer, then the editor.
    let planned = engine.deploy_as(&key, agents_workflow("plan")).await;
    let done = run(&engine, &key, &planned, topic.clone()).await;
    assert_eq!(done["status"], "succeeded", "{done:#}");
    let out = &node(&done, "team")["output"];
    assert_eq!(
        out["plan"],
        json!([{"task": "draft", "agent": "writer"}, {"task": "review", "agent": "editor"}])
    );
    assert_eq!(out["final"], "Final (planned): Orbit is coming soon.");
    assert_eq!(out["rounds"], 3);

    // The budget holds: two rounds are not enough for three tasks.
    let mut tight = agents_workflow("sequential");
    tight["nodes"][1]["config"]["max_rounds"] = json!(2);
    let tight = engine.deploy_as(&key, tight).await;
    let done = run(&engine, &key, &tight, topic).await;
    assert_eq!(done["status"], "failed");
    assert!(
        node(&done, "team")["error"]
            .as_str()
            .unwrap()
            .contains("max_rounds"),
        "{done:#}"
    );

    // Configuration mistakes are found before publishing, with their place.
    let mut wrong = agents_workflow("sequential");
    wrong["nodes"][1]["config"]["tasks"][1]["agent"] = json!("nobody");
    let (status, body) = engine
        .request_as(&key, Method::POST, "/v1/workflows", Some(wrong))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        body["error"]["details"][0]["path"],
        "nodes[1].config.tasks[1].agent"
    );
    let (status, body) = engine
        .request_as(
            &key,
            Method::POST,
            "/v1/workflows",
            Some(ai_workflow(json!({"prompt": "x", "schema": {"type": 12}}))),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        body["error"]["details"][0]["path"],
        "nodes[1].config.schema"
    );
}

both_modes!(agents_work_in_order_or_by_plan, agents);
