//! One account in several tenants: an invitation for an email that has an
//! account adds a membership with that account's own password, a login
//! names its tenant, and each session and removal concerns one tenant.

mod common;

use std::time::Duration;

use common::{Engine, Mode, eventually};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const PASSWORD: &str = "a long enough password";
const EMAIL: &str = "ada@members.example.com";

async fn login(engine: &Engine, body: Value) -> (StatusCode, Value) {
    engine.post_public("/v1/auth/login", body).await
}

/// Invites `email` with `role` as `owner`: (status, answer).
async fn invite(engine: &Engine, owner: &str, email: &str, role: &str) -> (StatusCode, Value) {
    engine
        .request_as(
            owner,
            Method::POST,
            "/v1/invitations",
            Some(json!({"email": email, "role": role})),
        )
        .await
}

async fn accept(engine: &Engine, token: &str, password: &str) -> (StatusCode, Value) {
    engine
        .post_public(
            "/v1/auth/accept",
            json!({"token": token, "password": password}),
        )
        .await
}

/// The tenant id a credential acts in.
async fn tenant_of(engine: &Engine, credential: &str) -> String {
    let (status, me) = engine
        .request_as(credential, Method::GET, "/v1/me", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{me}");
    me["tenant"]["id"].as_str().unwrap().to_owned()
}

/// The items a credential is given by a list route.
async fn items(engine: &Engine, credential: &str, path: &str) -> Vec<Value> {
    let (status, mut body) = engine.request_as(credential, Method::GET, path, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_value(body["items"].take()).unwrap()
}

/// The names of the workflows a credential sees.
async fn workflow_names(engine: &Engine, credential: &str) -> Vec<String> {
    let workflows = items(engine, credential, "/v1/workflows").await;
    workflows
        .iter()
        .map(|w| w["name"].as_str().unwrap().to_owned())
        .collect()
}

/// (email, role) of the users a credential's tenant lists.
async fn users(engine: &Engine, credential: &str) -> Vec<(String, String)> {
    let users = items(engine, credential, "/v1/users").await;
    let field = |u: &Value, f: &str| u[f].as_str().unwrap().to_owned();
    users
        .iter()
        .map(|u| (field(u, "email"), field(u, "role")))
        .collect()
}

fn manual(name: &str) -> Value {
    json!({"name": name, "nodes": [
        {"id": "start", "type": "trigger", "kind": "manual"},
        {"id": "shape", "type": "data", "kind": "mapping", "config": {"mapping": {"ok": true}}}
    ], "edges": [{"from": "start", "to": "shape"}]})
}

async fn one_account_in_two_tenants(mode: Mode) {
    let engine = Engine::start(mode).await;
    let alpha_owner = engine.create_tenant("Alpha").await;
    let beta_owner = engine.create_tenant("Beta").await;
    let (alpha, beta) = (
        tenant_of(&engine, &alpha_owner).await,
        tenant_of(&engine, &beta_owner).await,
    );
    engine.deploy_as(&alpha_owner, manual("alpha's")).await;
    engine.deploy_as(&beta_owner, manual("beta's")).await;

    // A new account in Alpha signs in without naming it.
    let token = engine.invitation_as(&alpha_owner, EMAIL, "editor").await;
    let (status, body) = accept(&engine, &token, PASSWORD).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, session) = login(&engine, json!({"email": EMAIL, "password": PASSWORD})).await;
    assert_eq!(status, StatusCode::OK, "{session}");
    assert_eq!(session["tenant"]["id"], alpha.as_str());

    // Beta invites the same email: a wrong password adds nothing, and the
    // invitation stays usable; the account's password joins it.
    let token = engine
        .invitation_as(&beta_owner, &EMAIL.to_uppercase(), "viewer")
        .await;
    let (status, body) = accept(&engine, &token, "not the account's password").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["code"], "unauthorized");
    assert!(
        !users(&engine, &beta_owner)
            .await
            .iter()
            .any(|(email, _)| email == EMAIL),
        "no membership"
    );
    let (status, _) = login(
        &engine,
        json!({"email": EMAIL, "password": "not the account's password"}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the password is unchanged"
    );
    let (status, body) = accept(&engine, &token, PASSWORD).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, body) = invite(&engine, &beta_owner, EMAIL, "admin").await;
    assert_eq!(status, StatusCode::CONFLICT, "a member already: {body}");

    // Without a tenant: the tenants, and no session.
    let (status, body) = login(&engine, json!({"email": EMAIL, "password": PASSWORD})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "tenant_required");
    assert!(body.get("token").is_none());
    let listed: Vec<(&str, &str)> = body["error"]["details"]["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["id"].as_str().unwrap(), t["name"].as_str().unwrap()))
        .collect();
    assert_eq!(
        listed,
        [(alpha.as_str(), "Alpha"), (beta.as_str(), "Beta")],
        "{body}"
    );

    // Naming each tenant: a session there, with the role held there, that
    // sees that tenant alone.
    let mut sessions = Vec::new();
    for (tenant, role, workflow) in [(&alpha, "editor", "alpha's"), (&beta, "viewer", "beta's")] {
        let (status, session) = login(
            &engine,
            json!({"email": EMAIL, "password": PASSWORD, "tenant": tenant}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{session}");
        assert_eq!(session["tenant"]["id"], tenant.as_str());
        assert_eq!(session["role"], role);
        let token = session["token"].as_str().unwrap().to_owned();
        assert_eq!(tenant_of(&engine, &token).await, *tenant);
        assert_eq!(workflow_names(&engine, &token).await, [workflow]);
        sessions.push(token);
    }
    let (status, _) = engine
        .request_as(
            &sessions[1],
            Method::POST,
            "/v1/workflows",
            Some(manual("no")),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a viewer in Beta");
    assert!(
        users(&engine, &alpha_owner)
            .await
            .contains(&(EMAIL.to_owned(), "editor".to_owned()))
    );
    assert!(
        users(&engine, &beta_owner)
            .await
            .contains(&(EMAIL.to_owned(), "viewer".to_owned()))
    );

    // A wrong password, or a tenant the account is not in, is refused alike.
    let (wrong_status, wrong) = login(
        &engine,
        json!({"email": EMAIL, "password": "not the account's password", "tenant": alpha}),
    )
    .await;
    assert_eq!(wrong_status, StatusCode::UNAUTHORIZED, "{wrong}");
    let stranger = tenant_of(&engine, &engine.create_tenant("Gamma").await).await;
    let (status, body) = login(
        &engine,
        json!({"email": EMAIL, "password": PASSWORD, "tenant": stranger}),
    )
    .await;
    assert_eq!((status, &body), (wrong_status, &wrong));

    // Beta removes the account: Beta's session ends, Alpha's does not.
    let (_, me) = engine
        .request_as(&sessions[1], Method::GET, "/v1/me", None)
        .await;
    let id = me["actor"].as_str().unwrap().strip_prefix("user:").unwrap();
    let (status, body) = engine
        .request_as(
            &beta_owner,
            Method::DELETE,
            &format!("/v1/users/{id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    eventually("Beta's session ends", Duration::from_secs(10), || async {
        let (status, _) = engine
            .request_as(&sessions[1], Method::GET, "/v1/me", None)
            .await;
        (status == StatusCode::UNAUTHORIZED).then_some(())
    })
    .await;
    assert_eq!(workflow_names(&engine, &sessions[0]).await, ["alpha's"]);
    let (status, session) = login(&engine, json!({"email": EMAIL, "password": PASSWORD})).await;
    assert_eq!(status, StatusCode::OK, "one tenant left: {session}");
    assert_eq!(session["tenant"]["id"], alpha.as_str());
    let (status, _) = login(
        &engine,
        json!({"email": EMAIL, "password": PASSWORD, "tenant": beta}),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
both_modes!(one_account_in_two_tenants, one_account_in_two_tenants);

/// Two invitations of one tenant for one email: the second, accepted after
/// the first, is refused clearly and adds nothing.
async fn a_member_cannot_join_twice(mode: Mode) {
    let engine = Engine::start(mode).await;
    let owner = engine.create_tenant("Twice").await;
    let first = engine.invitation_as(&owner, EMAIL, "viewer").await;
    let second = engine.invitation_as(&owner, EMAIL, "admin").await;
    let (status, body) = accept(&engine, &first, PASSWORD).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, body) = accept(&engine, &second, PASSWORD).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("member of this tenant already"),
        "{body}"
    );
    assert!(
        users(&engine, &owner)
            .await
            .contains(&(EMAIL.to_owned(), "viewer".to_owned()))
    );
}
both_modes!(a_member_cannot_join_twice, a_member_cannot_join_twice);
