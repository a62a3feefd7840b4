//! Memberships under attack: ways back into a tenant after removal.

mod common;

use common::{Engine, Mode};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const PASSWORD: &str = "a long enough password";
const EMAIL: &str = "mallory@members.example.com";

async fn accept(engine: &Engine, token: &str) -> (StatusCode, Value) {
    engine
        .post_public(
            "/v1/auth/accept",
            json!({"token": token, "password": PASSWORD}),
        )
        .await
}

/// The members of `owner`'s tenant: (id, email, role).
async fn members(engine: &Engine, owner: &str) -> Vec<(String, String, String)> {
    let (status, body) = engine
        .request_as(owner, Method::GET, "/v1/users", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let field = |u: &Value, f: &str| u[f].as_str().unwrap().to_owned();
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (field(u, "id"), field(u, "email"), field(u, "role")))
        .collect()
}

/// A second invitation for an email, left pending while its person was a
/// member (accepting it then is refused), must not bring them back once
/// they are removed: a removal withdraws the tenant's invitations for the
/// removed person's email, whether or not the account outlives it.
async fn removal_withdraws_invitations_for_the_removed(mode: Mode) {
    let engine = Engine::start(mode).await;
    let owner = engine.create_tenant("Removing").await;
    let other = engine.create_tenant("Elsewhere").await;

    for keeps_account in [false, true] {
        let email = format!("{keeps_account}-{EMAIL}");
        if keeps_account {
            let token = engine.invitation_as(&other, &email, "viewer").await;
            let (status, body) = accept(&engine, &token).await;
            assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        }
        let first = engine.invitation_as(&owner, &email, "viewer").await;
        let stale = engine
            .invitation_as(&owner, &email.to_uppercase(), "admin")
            .await;
        let (status, body) = accept(&engine, &first).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let (id, _, _) = members(&engine, &owner)
            .await
            .into_iter()
            .find(|(_, e, _)| *e == email)
            .expect("a member");
        let (status, body) = engine
            .request_as(&owner, Method::DELETE, &format!("/v1/users/{id}"), None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

        let (status, body) = accept(&engine, &stale).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{keeps_account}: {body}");
        assert!(
            !members(&engine, &owner)
                .await
                .iter()
                .any(|(_, e, _)| *e == email),
            "{keeps_account}: the removed person is back"
        );
    }
}
both_modes!(
    removal_withdraws_invitations_for_the_removed,
    removal_withdraws_invitations_for_the_removed
);
