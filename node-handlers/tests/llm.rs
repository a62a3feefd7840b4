//! The OpenAI-compatible client through the registry's `Llm`: retries,
//! Retry-After, timeouts, streaming faults, the cache and configuration,
//! against a local server answering from a script.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use flowmesh_model::{HumanDuration, TenantId};
use flowmesh_node_handlers::llm::{
    self, Call, ChatRequest, Message, TenantEndpoint, TenantEndpoints,
};
use flowmesh_node_handlers::{HttpOptions, Options, Registry, SecretError, SecretSource};
use futures::future::BoxFuture;
use serde_json::{Value, json};

/// One scripted answer.
#[derive(Clone)]
enum Answer {
    Status(u16, Option<String>),
    Text(&'static str),
    Late(Duration),
    StreamWithoutEnd,
}

#[derive(Default)]
struct Script {
    answers: VecDeque<Answer>,
    seen: Vec<(Instant, Value)>,
}

type Shared = Arc<Mutex<Script>>;

async fn answer(State(script): State<Shared>, Json(body): Json<Value>) -> Response {
    let next = {
        let mut s = script.lock().unwrap();
        s.seen.push((Instant::now(), body));
        s.answers.pop_front().unwrap_or(Answer::Text("default"))
    };
    match next {
        Answer::Status(code, retry_after) => {
            let mut r = (
                axum::http::StatusCode::from_u16(code).unwrap(),
                Json(json!({"error": {"message": format!("scripted {code}")}})),
            )
                .into_response();
            if let Some(after) = retry_after {
                r.headers_mut()
                    .insert("retry-after", after.parse().unwrap());
            }
            r
        }
        Answer::Text(text) => Json(json!({
            "model": "m", "choices": [{"message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
        }))
        .into_response(),
        Answer::Late(delay) => {
            // The stand-in plays a provider that answers too late; the
            // test asserts the client's timeout, and never waits this out.
            tokio::time::sleep(delay).await;
            Json(json!({"choices": [{"message": {"content": "late"}}]})).into_response()
        }
        Answer::StreamWithoutEnd => (
            [("content-type", "text/event-stream")],
            "data: {\"choices\": [{\"delta\": {\"content\": \"cut\"}}]}\n\n",
        )
            .into_response(),
    }
}

struct Fixture {
    registry: Registry,
    script: Shared,
}

impl Fixture {
    async fn start(answers: Vec<Answer>, tune: impl FnOnce(&mut llm::Options)) -> Fixture {
        let script = Shared::default();
        script.lock().unwrap().answers = answers.into();
        let app = Router::new()
            .route("/v1/chat/completions", post(answer))
            .with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let mut options = Options {
            http: HttpOptions {
                allow_hosts: vec!["127.0.0.1".into()],
                ..Default::default()
            },
            ..Default::default()
        };
        options.llm.base_url = Some(format!("http://{addr}/v1"));
        options.llm.model = Some("m".into());
        tune(&mut options.llm);
        Fixture {
            registry: Registry::new(&options).unwrap(),
            script,
        }
    }

    async fn ask(&self, request: ChatRequest) -> Result<llm::Completion, llm::Error> {
        self.registry
            .llm()
            .chat(Call {
                tenant: TenantId::new(),
                request: &request,
                endpoints: &InstanceOnly,
                secrets: &NoSecrets,
            })
            .await
    }

    fn seen(&self) -> Vec<Instant> {
        self.script
            .lock()
            .unwrap()
            .seen
            .iter()
            .map(|(at, _)| *at)
            .collect()
    }
}

struct InstanceOnly;

impl TenantEndpoints for InstanceOnly {
    fn tenant_endpoint(&self, _: TenantId) -> BoxFuture<'_, Result<TenantEndpoint, llm::Error>> {
        Box::pin(async { Ok(TenantEndpoint::default()) })
    }
}

struct NoSecrets;

impl SecretSource for NoSecrets {
    fn secret<'a>(
        &'a self,
        _: TenantId,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, SecretError>> {
        Box::pin(async { Ok(None) })
    }
}

fn hello() -> ChatRequest {
    ChatRequest {
        messages: vec![Message::new("user", "hello")],
        ..ChatRequest::default()
    }
}

#[tokio::test]
async fn server_errors_are_retried_until_an_answer() {
    let f = Fixture::start(
        vec![
            Answer::Status(503, None),
            Answer::Status(500, None),
            Answer::Text("hi"),
        ],
        |o| o.max_retries = 3,
    )
    .await;
    let answer = f.ask(hello()).await.unwrap();
    assert_eq!(answer.content, "hi");
    assert_eq!(answer.usage.total_tokens, 5);
    assert_eq!(f.seen().len(), 3);
}

#[tokio::test]
async fn retry_after_as_an_http_date_is_waited_out() {
    let at = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(2));
    let f = Fixture::start(
        vec![Answer::Status(429, Some(at)), Answer::Text("hi")],
        |_| {},
    )
    .await;
    assert_eq!(f.ask(hello()).await.unwrap().content, "hi");
    let seen = f.seen();
    assert!(
        seen[1] - seen[0] >= Duration::from_millis(900),
        "{:?}",
        seen[1] - seen[0]
    );
}

#[tokio::test]
async fn a_retry_after_beyond_the_limit_fails_at_once_and_retryable() {
    let f = Fixture::start(vec![Answer::Status(429, Some("3600".into()))], |_| {}).await;
    let e = f.ask(hello()).await.unwrap_err();
    assert!(
        matches!(
            e,
            llm::Error::Status {
                status: 429,
                retryable: true,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.is_retryable());
    assert_eq!(f.seen().len(), 1);
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let f = Fixture::start(vec![Answer::Status(400, None)], |_| {}).await;
    let e = f.ask(hello()).await.unwrap_err();
    assert!(
        matches!(&e, llm::Error::Status { status: 400, retryable: false, message } if message == "scripted 400"),
        "{e}"
    );
    assert_eq!(f.seen().len(), 1);
}

#[tokio::test]
async fn a_slow_provider_times_out() {
    let f = Fixture::start(vec![Answer::Late(Duration::from_secs(5))], |o| {
        o.timeout = HumanDuration::from_millis(300);
        o.max_retries = 0;
    })
    .await;
    let e = f.ask(hello()).await.unwrap_err();
    assert!(matches!(e, llm::Error::Unreachable(_)), "{e}");
    assert!(e.is_retryable());
}

#[tokio::test]
async fn a_stream_cut_short_is_malformed() {
    let f = Fixture::start(vec![Answer::StreamWithoutEnd], |o| o.max_retries = 0).await;
    let e = f
        .ask(ChatRequest {
            stream: true,
            ..hello()
        })
        .await
        .unwrap_err();
    assert!(matches!(e, llm::Error::Malformed(_)), "{e}");
}

#[tokio::test]
async fn only_deterministic_answers_are_cached() {
    let f = Fixture::start(
        vec![
            Answer::Text("one"),
            Answer::Text("two"),
            Answer::Text("three"),
        ],
        |_| {},
    )
    .await;
    let tenant = TenantId::new();
    let ask = async |temperature: f64| {
        let request = ChatRequest {
            temperature: Some(temperature),
            ..hello()
        };
        f.registry
            .llm()
            .chat(Call {
                tenant,
                request: &request,
                endpoints: &InstanceOnly,
                secrets: &NoSecrets,
            })
            .await
            .unwrap()
    };
    let first = ask(0.0).await;
    let again = ask(0.0).await;
    assert_eq!((first.content.as_str(), first.cached), ("one", false));
    assert_eq!((again.content.as_str(), again.cached), ("one", true));
    assert_eq!(again.usage.total_tokens, 0, "a cached answer costs nothing");
    assert_eq!(ask(0.7).await.content, "two");
    assert_eq!(ask(0.7).await.content, "three");
}

#[tokio::test]
async fn without_an_endpoint_the_error_says_what_to_set() {
    let f = Fixture::start(vec![], |o| o.base_url = None).await;
    let e = f.ask(hello()).await.unwrap_err();
    assert!(matches!(e, llm::Error::NotConfigured(_)), "{e}");
    assert!(!e.is_retryable());
    assert!(f.seen().is_empty());
}
