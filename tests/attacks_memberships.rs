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

/// The id of the member of `owner`'s tenant with `email`, if any.
async fn member_id(engine: &Engine, owner: &str, email: &str) -> Option<String> {
    let (status, body) = engine
        .request_as(owner, Method::GET, "/v1/users", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == email)
        .map(|u| u["id"].as_str().unwrap().to_owned())
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
        let id = member_id(&engine, &owner, &email).await.expect("a member");
        let (status, body) = engine
            .request_as(&owner, Method::DELETE, &format!("/v1/users/{id}"), None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

        let (status, body) = accept(&engine, &stale).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{keeps_account}: {body}");
        assert!(
            member_id(&engine, &owner, &email).await.is_none(),
            "{keeps_account}: the removed person is back"
        );
    }
}
both_modes!(
    removal_withdraws_invitations_for_the_removed,
    removal_withdraws_invitations_for_the_removed
);

/// An account removed from its last tenant while it accepts an invitation
/// with its password: the acceptance is refused clearly, never a 500, and
/// nothing is left half-made.
async fn accepting_while_removed(mode: Mode) {
    let engine = Engine::start(mode).await;
    let last = engine.create_tenant("Last").await;
    let joining = engine.create_tenant("Joining").await;
    for round in 0..3 {
        let email = format!("{round}-{EMAIL}");
        let token = engine.invitation_as(&last, &email, "viewer").await;
        let (status, body) = accept(&engine, &token).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let id = member_id(&engine, &last, &email).await.expect("a member");
        let token = engine.invitation_as(&joining, &email, "viewer").await;
        let path = format!("/v1/users/{id}");
        let ((status, body), (removed, _)) = tokio::join!(
            accept(&engine, &token),
            engine.request_as(&last, Method::DELETE, &path, None)
        );
        assert_eq!(removed, StatusCode::NO_CONTENT);
        match status {
            StatusCode::ACCEPTED => {}
            // The account went first: the invitation is still good, for
            // a new account.
            StatusCode::CONFLICT => {
                let (status, body) = accept(&engine, &token).await;
                assert_eq!(status, StatusCode::ACCEPTED, "{body}");
            }
            other => panic!("{other} {body}"),
        }
        assert!(
            member_id(&engine, &joining, &email).await.is_some(),
            "round {round}: the acceptance was lost"
        );
        let (status, body) = engine
            .post_public(
                "/v1/auth/login",
                json!({"email": email, "password": PASSWORD}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "round {round}: {body}");
    }
}
both_modes!(accepting_while_removed, accepting_while_removed);
