//! Accounts that answer to who made them: a removed user's keys stop
//! working, an admin cannot revoke an owner's keys, registration never
//! tells who has an account, an invitation never hands one over, and one
//! address registers only so many tenants.

mod common;

use std::time::Duration;

use common::{ADMIN_KEY, Engine, Mode, eventually};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const PASSWORD: &str = "a long enough password";

async fn login(engine: &Engine, email: &str, password: &str) -> (StatusCode, Value) {
    engine
        .post_public(
            "/v1/auth/login",
            json!({"email": email, "password": password}),
        )
        .await
}

/// A user of the owner's tenant with `role`, signed in: (session, user id).
async fn member(engine: &Engine, owner: &str, email: &str, role: &str) -> (String, String) {
    let token = engine.invitation_as(owner, email, role).await;
    let (status, body) = engine
        .post_public(
            "/v1/auth/accept",
            json!({"token": token, "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, session) = login(engine, email, PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{session}");
    let token = session["token"].as_str().unwrap().to_owned();
    let (_, me) = engine.request_as(&token, Method::GET, "/v1/me", None).await;
    let id = me["actor"].as_str().unwrap().strip_prefix("user:").unwrap();
    (token, id.to_owned())
}

/// Creates a key as `creator`: (key, id).
async fn key(engine: &Engine, creator: &str, name: &str, role: &str) -> (String, String) {
    let (status, body) = engine
        .request_as(
            creator,
            Method::POST,
            "/v1/api-keys",
            Some(json!({"name": name, "role": role})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (
        body["key"].as_str().unwrap().to_owned(),
        body["id"].as_str().unwrap().to_owned(),
    )
}

async fn revoke(engine: &Engine, caller: &str, id: &str) -> (StatusCode, Value) {
    engine
        .request_as(caller, Method::DELETE, &format!("/v1/api-keys/{id}"), None)
        .await
}

async fn works(engine: &Engine, key: &str) -> bool {
    let (status, _) = engine
        .request_as(key, Method::GET, "/v1/workflows", None)
        .await;
    status == StatusCode::OK
}

/// A removed user's keys (and the keys those keys made) stop working,
/// on every process; listings say who made each key.
async fn removed_users_keys_stop_working(mode: Mode) {
    let engine = Engine::start(mode).await;
    let owner = engine.create_tenant("Keyed").await;
    let (eve, eve_id) = member(&engine, &owner, "eve@keyed.example.com", "admin").await;
    let (eves_key, eves_key_id) = key(&engine, &eve, "eve's", "admin").await;
    let (grandchild, _) = key(&engine, &eves_key, "made by eve's key", "viewer").await;
    let (owners_key, _) = key(&engine, &owner, "owner's", "viewer").await;

    let (status, listed) = engine
        .request_as(&owner, Method::GET, "/v1/api-keys", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let created_by = |id: &str| {
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["id"] == id)
            .map(|k| k["created_by"].clone())
            .unwrap()
    };
    assert_eq!(created_by(&eves_key_id), json!(format!("user:{eve_id}")));

    let other = if mode == Mode::Distributed {
        Some(engine.peer().await)
    } else {
        None
    };
    let serving = other.as_ref().unwrap_or(&engine);
    assert!(works(serving, &eves_key).await && works(serving, &grandchild).await);
    let (status, body) = engine
        .request_as(&owner, Method::DELETE, &format!("/v1/users/{eve_id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    eventually(
        "the removed user's keys are refused everywhere",
        Duration::from_secs(5),
        || async {
            let gone = !works(serving, &eves_key).await && !works(serving, &grandchild).await;
            gone.then_some(())
        },
    )
    .await;
    assert!(
        !works(&engine, &eves_key).await,
        "refused at once where the user was removed"
    );
    assert!(works(serving, &owners_key).await, "others' keys stay");
    let (_, listed) = engine
        .request_as(&owner, Method::GET, "/v1/api-keys", None)
        .await;
    let revoked = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == eves_key_id.as_str())
        .unwrap();
    assert!(revoked["revoked_at"].is_i64(), "{revoked}");
}
both_modes!(
    a_removed_users_keys_are_revoked,
    removed_users_keys_stop_working
);

/// An admin revokes neither an owner's keys nor owner keys; an owner
/// revokes anyone's; an admin revokes what admins made.
async fn admins_cannot_revoke_owners_keys(mode: Mode) {
    let engine = Engine::start(mode).await;
    let owner = engine.create_tenant("Ranked").await;
    let (admin, _) = member(&engine, &owner, "ada@ranked.example.com", "admin").await;
    let (owners_ci, owners_ci_id) = key(&engine, &owner, "ci", "viewer").await;
    let (_, admins_ci_id) = key(&engine, &admin, "admin's ci", "viewer").await;

    let (status, body) = revoke(&engine, &admin, &owners_ci_id).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&owners_ci_id) && message.contains("only an owner"),
        "{message}"
    );
    assert!(
        works(&engine, &owners_ci).await,
        "the owner's key still works"
    );

    let (status, body) = revoke(&engine, &admin, &admins_ci_id).await;
    assert_eq!(status, StatusCode::OK, "an admin revokes its own: {body}");
    let (status, body) = revoke(&engine, &owner, &owners_ci_id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, other_admins_id) = key(&engine, &admin, "another", "viewer").await;
    let (status, body) = revoke(&engine, &owner, &other_admins_id).await;
    assert_eq!(status, StatusCode::OK, "an owner revokes anyone's: {body}");
}
both_modes!(
    an_admin_cannot_revoke_an_owners_keys,
    admins_cannot_revoke_owners_keys
);

/// Registering a known email answers exactly as for a new email, and
/// creates nothing; accepting an invitation for one without its password
/// is refused and changes nothing.
async fn accounts_are_not_revealed(mode: Mode) {
    let engine = Engine::start(mode).await;
    let register =
        |email: &str, tenant: &str| json!({"email": email, "password": PASSWORD, "tenant": tenant});
    let (new_status, new_body) = engine
        .post_public(
            "/v1/auth/register",
            register("first@known.example.com", "Known"),
        )
        .await;
    assert_eq!(new_status, StatusCode::ACCEPTED, "{new_body}");
    let (again_status, again_body) = engine.post_public("/v1/auth/register",
        json!({"email": "FIRST@known.example.com", "password": "another long password", "tenant": "Squatter"}),
    )
    .await;
    assert_eq!(
        (again_status, &again_body),
        (new_status, &new_body),
        "a known email answers as a new one"
    );
    let (_, tenants) = engine.get("/v1/admin/tenants").await;
    let slugs = tenants.to_string();
    assert!(
        slugs.contains("\"known\"") && !slugs.contains("squatter"),
        "{slugs}"
    );
    let (status, _) = login(&engine, "first@known.example.com", "another long password").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the first password stays");
    let (status, session) = login(&engine, "first@known.example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(session["tenant"]["slug"], "known");

    // An inviter who accepts their own invitations takes no account over.
    let inviter = engine.create_tenant("Curious").await;
    let mut answers = Vec::new();
    for email in ["first@known.example.com", "fresh@curious.example.com"] {
        let token = engine.invitation_as(&inviter, email, "viewer").await;
        answers.push(
            engine
                .post_public(
                    "/v1/auth/accept",
                    json!({"token": token, "password": "the inviter's guess"}),
                )
                .await,
        );
    }
    assert_eq!(answers[0].0, StatusCode::UNAUTHORIZED, "{:?}", answers[0]);
    assert_eq!(answers[1].0, StatusCode::ACCEPTED);
    let (status, session) = login(&engine, "first@known.example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(session["tenant"]["slug"], "known", "still Known's alone");
    let (status, session) =
        login(&engine, "fresh@curious.example.com", "the inviter's guess").await;
    assert_eq!(status, StatusCode::OK, "a new email joined");
    assert_eq!(session["tenant"]["slug"], "curious");
}
both_modes!(
    registration_hides_accounts_and_invitations_take_none,
    accounts_are_not_revealed
);

/// One address registers at most its allowance per window; others still can.
async fn registrations_per_address(mode: Mode) {
    let engine = Engine::start_with(
        mode,
        &[
            ("FLOWMESH_REGISTRATIONS_PER_ADDRESS", "2"),
            ("FLOWMESH_REGISTRATION_WINDOW", "1h"),
        ],
    )
    .await;
    let register = |client: reqwest::Client, i: u32| {
        let engine = &engine;
        async move {
            let resp = client
                .post(engine.url("/v1/auth/register"))
                .json(&json!({"email": format!("free{i}@example.com"), "password": PASSWORD, "tenant": format!("Free {i}")}))
                .send()
                .await
                .unwrap();
            (resp.status(), resp.headers().get("retry-after").cloned())
        }
    };
    let farmer = common::client_from("127.0.0.7");
    for i in 0..2 {
        assert_eq!(register(farmer.clone(), i).await.0, StatusCode::ACCEPTED);
    }
    let (status, retry_after) = register(farmer.clone(), 2).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after.is_some());
    let (status, _) = login(&engine, "free2@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "nothing was created");
    let neighbour = common::client_from("127.0.0.8");
    assert_eq!(register(neighbour, 3).await.0, StatusCode::ACCEPTED);
    let (status, tenants) = engine
        .request_as(ADMIN_KEY, Method::GET, "/v1/admin/tenants", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        tenants["items"].as_array().unwrap().len(),
        4,
        "the platform tenant and three free ones: {tenants}"
    );
}
both_modes!(
    registrations_are_limited_per_address,
    registrations_per_address
);

/// The instance's administrators see each tenant's credits left and its
/// own limits in the tenant list.
async fn admins_see_balances_and_limits(mode: Mode) {
    let engine = Engine::start(mode).await;
    engine.create_tenant("Metered").await;
    let (_, before) = engine.get("/v1/admin/tenants").await;
    let metered = |list: &Value| {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["slug"] == "metered")
            .cloned()
            .expect("the tenant is listed")
    };
    let start = metered(&before)["balance"].as_i64().expect("a balance");
    let (status, body) = engine
        .post("/v1/admin/tenants/metered/credits", json!({"amount": 500}))
        .await;
    assert!(status.is_success(), "{body}");
    let limits = json!({"rate_limit": 7, "max_concurrent": 2, "max_payload_bytes": null});
    let (status, body) = engine
        .request(
            Method::PUT,
            "/v1/admin/tenants/metered/limits",
            Some(limits.clone()),
        )
        .await;
    assert!(status.is_success(), "{body}");
    let (_, after) = engine.get("/v1/admin/tenants").await;
    let listed = metered(&after);
    assert_eq!(listed["balance"], start + 500, "{listed}");
    assert_eq!(listed["limits"], limits, "{listed}");
}
both_modes!(
    administrators_see_each_tenants_balance_and_limits,
    admins_see_balances_and_limits
);
