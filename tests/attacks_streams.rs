//! Event streams under attack: stream tickets that outlive the credential
//! that asked for them.

mod common;

use common::{ADMIN_KEY, Engine, Mode};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const PASSWORD: &str = "a long enough password";

/// A fresh stream ticket of `credential`.
async fn ticket(engine: &Engine, credential: &str) -> String {
    let (status, body) = engine
        .request_as(credential, Method::POST, "/v1/stream-tickets", None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["ticket"].as_str().expect("ticket").to_owned()
}

/// The status `GET /v1/events?ticket=` answers (the stream is dropped at once).
async fn open_with(engine: &Engine, ticket: &str) -> StatusCode {
    engine
        .client()
        .get(engine.url(&format!("/v1/events?ticket={ticket}")))
        .send()
        .await
        .expect("open the stream")
        .status()
}

async fn post_public(engine: &Engine, path: &str, body: Value) -> Value {
    let resp = engine
        .client()
        .post(engine.url(path))
        .json(&body)
        .send()
        .await
        .expect("post");
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
    resp.json().await.unwrap_or(Value::Null)
}

/// A viewer of the platform tenant, signed in: (session, user id).
async fn viewer(engine: &Engine, email: &str) -> (String, String) {
    let (status, invitation) = engine
        .post("/v1/invitations", json!({"email": email, "role": "viewer"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{invitation}");
    post_public(
        engine,
        "/v1/auth/accept",
        json!({"token": invitation["token"], "password": PASSWORD}),
    )
    .await;
    let session = post_public(
        engine,
        "/v1/auth/login",
        json!({"email": email, "password": PASSWORD}),
    )
    .await;
    let session = session["token"].as_str().expect("token").to_owned();
    let (_, me) = engine
        .request_as(&session, Method::GET, "/v1/me", None)
        .await;
    let id = me["actor"].as_str().expect("actor").strip_prefix("user:");
    (session, id.expect("a user").to_owned())
}

/// A ticket speaks for its credential only while that credential is
/// good: revoking the key, signing out, or removing the user ends the
/// tickets it asked for, which would otherwise open a stream of every
/// event of the tenant after access was taken away.
async fn tickets_end_with_their_credential(mode: Mode) {
    let engine = Engine::start(mode).await;

    let (status, key) = engine
        .post(
            "/v1/api-keys",
            json!({"name": "dashboard", "role": "viewer"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let (revoked, kept) = (
        ticket(&engine, key["key"].as_str().unwrap()).await,
        ticket(&engine, ADMIN_KEY).await,
    );
    let (status, _) = engine
        .request(
            Method::DELETE,
            &format!("/v1/api-keys/{}", key["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(open_with(&engine, &revoked).await, StatusCode::UNAUTHORIZED);
    assert_eq!(open_with(&engine, &kept).await, StatusCode::OK);

    let (session, _) = viewer(&engine, "leaves@example.com").await;
    let signed_out = ticket(&engine, &session).await;
    let (status, _) = engine
        .request_as(&session, Method::POST, "/v1/auth/logout", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        open_with(&engine, &signed_out).await,
        StatusCode::UNAUTHORIZED
    );

    let (session, id) = viewer(&engine, "removed@example.com").await;
    let removed = ticket(&engine, &session).await;
    let (status, _) = engine
        .request(Method::DELETE, &format!("/v1/users/{id}"), None)
        .await;
    assert!(status.is_success(), "{status}");
    assert_eq!(open_with(&engine, &removed).await, StatusCode::UNAUTHORIZED);
}
both_modes!(
    tickets_end_with_their_credential,
    tickets_end_with_their_credential
);
