//! Anonymous password traffic: a flood of logins cannot grow the engine
//! without bound, and guessing is slowed per account and address without
//! locking the account's owner out from elsewhere.

mod common;

use common::{Engine, Mode};
use reqwest::StatusCode;
use serde_json::json;

async fn login(
    client: &reqwest::Client,
    engine: &Engine,
    email: &str,
    password: &str,
) -> StatusCode {
    client
        .post(engine.url("/v1/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
        .status()
}

async fn login_flood(mode: Mode) {
    let engine = Engine::start_with(mode, &[("FLOWMESH_PASSWORD_HASHING_CONCURRENCY", "2")]).await;
    let before = engine.peak_rss();
    // Unknown accounts from many addresses: each costs a hash (a decoy).
    let attempts = (0..300).map(|i| {
        let client = common::client_from(&format!("127.0.{}.{}", 1 + i / 200, 1 + i % 200));
        let engine = &engine;
        async move {
            login(
                &client,
                engine,
                &format!("nobody{i}@example.com"),
                "not the password",
            )
            .await
        }
    });
    let statuses = futures::future::join_all(attempts).await;
    for status in &statuses {
        assert!(
            [StatusCode::UNAUTHORIZED, StatusCode::SERVICE_UNAVAILABLE].contains(status),
            "{status}"
        );
    }
    let grown = engine.peak_rss().saturating_sub(before);
    assert!(
        grown < 300 << 20,
        "300 logins at once grew the engine by {} MiB",
        grown >> 20
    );
    // The engine still serves.
    let (status, _) = engine.get("/health").await;
    assert_eq!(status, StatusCode::OK);
}
both_modes!(a_login_flood_is_bounded, login_flood);

async fn guessing(mode: Mode) {
    let engine = Engine::start_with(
        mode,
        &[
            ("FLOWMESH_LOGIN_PAIR_FAILURES", "3"),
            ("FLOWMESH_LOGIN_ADDRESS_FAILURES", "20"),
        ],
    )
    .await;
    engine.create_tenant("Guarded").await;
    let email = "owner@Guarded.example.com";
    let password = "a long enough password";
    let attacker = common::client_from("127.0.0.1");
    let mut delayed = 0;
    for _ in 0..10 {
        match login(&attacker, &engine, email, "guess").await {
            StatusCode::UNAUTHORIZED => {}
            StatusCode::TOO_MANY_REQUESTS => delayed += 1,
            other => panic!("{other}"),
        }
    }
    assert!(delayed >= 6, "only {delayed} of 10 guesses were delayed");
    // The right password from the guessing address waits too...
    assert_eq!(
        login(&attacker, &engine, email, password).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // ...but the owner, elsewhere, signs in.
    let owner = common::client_from("127.0.0.2");
    assert_eq!(
        login(&owner, &engine, email, password).await,
        StatusCode::OK
    );
}
both_modes!(guesses_are_delayed_per_account_and_address, guessing);
