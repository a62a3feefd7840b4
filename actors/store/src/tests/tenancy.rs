//! Users, sessions, invitations, keys, credits, secrets, audit and
//! concurrency slots.

use super::*;
use crate::{
    Acceptance, Accepted, AuditQuery, AuditRecord, ClaimRequest, Committed, Credit, LoginAttempt,
    LoginOutcome, NewInvitation, NewKey, NewSession, Registration, SealingKey, Slots, TenantLimits,
    Usage, Woken, now_ms,
};
use flowmesh_model::Role;

fn attempt<'a>(email: &'a str, password: &'a str, expires_at: i64) -> LoginAttempt<'a> {
    LoginAttempt {
        email,
        password,
        tenant: None,
        expires_at,
    }
}

impl LoginOutcome {
    fn opened(self) -> NewSession {
        match self {
            LoginOutcome::Opened(session) => session,
            other => panic!("not opened: {other:?}"),
        }
    }

    fn refused(self) -> bool {
        matches!(self, LoginOutcome::Refused)
    }
}

async fn accounts_sessions_and_invitations(store: &Store) {
    let (tenant, slug) = store
        .register(Registration {
            email: "Ada@Example.com ",
            password: "correct horse battery",
            tenant_name: "Analytical Engines",
            initial_credits: 500,
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(slug, "analytical-engines");
    assert!(
        store
            .register(Registration {
                email: "ada@example.com",
                password: "another one",
                tenant_name: "Second",
                initial_credits: 0,
            })
            .await
            .unwrap()
            .is_none(),
        "a known email registers nothing"
    );
    assert!(
        store.tenant_by_slug("second").await.unwrap().is_none(),
        "all or nothing"
    );
    let later = now_ms() + 60_000;
    assert!(
        store
            .login(attempt("ada@example.com", "wrong", later))
            .await
            .unwrap()
            .refused()
    );
    assert!(
        store
            .login(attempt("nobody@example.com", "x", later))
            .await
            .unwrap()
            .refused()
    );
    let session = store
        .login(attempt("ADA@example.com", "correct horse battery", later))
        .await
        .unwrap()
        .opened();
    let who = store.authenticate(&session.token).await.unwrap().unwrap();
    assert_eq!((who.tenant, who.role), (tenant, Role::Owner));
    store
        .revoke_session(who.session.as_deref().unwrap())
        .await
        .unwrap();
    assert!(store.authenticate(&session.token).await.unwrap().is_none());
    let expired = store
        .login(attempt(
            "ada@example.com",
            "correct horse battery",
            now_ms() - 1,
        ))
        .await
        .unwrap()
        .opened();
    assert!(store.authenticate(&expired.token).await.unwrap().is_none());

    let (_, token) = store
        .invite(NewInvitation {
            tenant,
            email: "bob@example.com",
            role: Role::Editor,
            created_by: &who.actor,
            expires_at: later,
        })
        .await
        .unwrap();
    let invitation = store.pending_invitation(&token).await.unwrap().unwrap();
    let accept = Acceptance {
        invitation: &invitation,
        password: "bobs password",
    };
    assert_eq!(
        store.accept_invitation(accept.clone()).await.unwrap(),
        Accepted::Joined(tenant)
    );
    assert!(
        matches!(store.accept_invitation(accept).await, Err(Error::NotFound)),
        "once"
    );
    assert!(store.pending_invitation(&token).await.unwrap().is_none());
    let users = store.list_users(tenant).await.unwrap();
    assert_eq!(users.len(), 2);
    let bob = users.iter().find(|u| u.email == "bob@example.com").unwrap();
    assert_eq!(bob.role, Role::Editor);
    let bobs = store
        .login(attempt("bob@example.com", "bobs password", later))
        .await
        .unwrap()
        .opened();
    // Bob's key, a key that key made, and one of Ada's.
    let bob_principal = store.authenticate(&bobs.token).await.unwrap().unwrap();
    let (_, bobs_key) = store
        .create_key(NewKey {
            tenant,
            name: "bob's",
            role: Role::Editor,
            creator: &bob_principal,
        })
        .await
        .unwrap();
    let bobs_key_principal = store.authenticate(&bobs_key).await.unwrap().unwrap();
    let (_, grandchild) = store
        .create_key(NewKey {
            tenant,
            name: "made by bob's key",
            role: Role::Viewer,
            creator: &bobs_key_principal,
        })
        .await
        .unwrap();
    let ada = store
        .login(attempt("ada@example.com", "correct horse battery", later))
        .await
        .unwrap()
        .opened()
        .principal;
    let (_, adas_key) = store
        .create_key(NewKey {
            tenant,
            name: "ada's",
            role: Role::Viewer,
            creator: &ada,
        })
        .await
        .unwrap();
    store.remove_user(tenant, &bob.id).await.unwrap();
    assert!(store.authenticate(&bobs.token).await.unwrap().is_none());
    assert!(store.authenticate(&bobs_key).await.unwrap().is_none());
    assert!(
        store.authenticate(&grandchild).await.unwrap().is_none(),
        "keys made by a removed user's keys go too"
    );
    assert!(store.authenticate(&adas_key).await.unwrap().is_some());

    let (key, secret) = store
        .create_key(NewKey {
            tenant,
            name: "ci",
            role: Role::Operator,
            creator: &ada,
        })
        .await
        .unwrap();
    assert_eq!(key.created_by.as_deref(), Some(ada.actor.as_str()));
    assert!(secret.starts_with(&key.prefix));
    let listed = store.list_keys(tenant).await.unwrap();
    assert_eq!(listed.len(), 4);
    assert_eq!(listed[3].created_by, key.created_by);
    assert_eq!(listed[3].creator_role, Some(Role::Owner));
    assert_eq!(
        store.authenticate(&secret).await.unwrap().unwrap().role,
        Role::Operator
    );
    let (stranger, _) = store.create_tenant("Stranger").await.unwrap();
    assert!(matches!(
        store.revoke_key(stranger, &key.id).await,
        Err(Error::NotFound)
    ));
    assert!(
        store
            .revoke_key(tenant, &key.id)
            .await
            .unwrap()
            .revoked_at
            .is_some()
    );
    assert!(store.authenticate(&secret).await.unwrap().is_none());
}
both_backends!(accounts_sessions_and_invitations);

async fn credits_are_charged_once_and_settled(store: &Store) {
    let (tenant, id) = one_execution(store).await;
    let workflow = store
        .get_execution(tenant, id)
        .await
        .unwrap()
        .unwrap()
        .workflow;
    let grant = Credit {
        tenant,
        amount: 100,
        kind: "grant",
        reference: Some("order-1"),
        actor: Some("user:x"),
        note: None,
    };
    let first = store.credit(grant.clone()).await.unwrap();
    let again = store.credit(grant).await.unwrap();
    assert_eq!(first.id, again.id, "a reference is credited once");
    assert_eq!(store.balance(tenant).await.unwrap().balance, 100);
    let usage = Usage {
        workflow,
        executions: 1,
        node_runs: 3,
        sandbox_ms: 40,
        llm_tokens: 0,
        credits: 13,
    };
    for _ in 0..2 {
        let turn = Turn {
            owner: OWNER,
            tenant,
            execution: id,
            transition: None,
            steps: &[],
            consumed_signals: &[],
            usage: Some(&usage),
            slots: Slots::Unlimited,
            in_process: Mark::Keep,
            events: &[],
            handler: None,
            children: &[],
            to_parent: None,
            take_slot: false,
        };
        assert_eq!(
            store.commit_turn(&turn).await.unwrap(),
            Committed::Written {
                woke: None,
                first_position: None,
                parent_told: false,
            }
        );
    }
    let fenced = Turn {
        owner: "someone-else",
        tenant,
        execution: id,
        transition: None,
        steps: &[],
        consumed_signals: &[],
        usage: Some(&usage),
        slots: Slots::Unlimited,
        in_process: Mark::Keep,
        events: &[],
        handler: None,
        children: &[],
        to_parent: None,
        take_slot: false,
    };
    assert_eq!(store.commit_turn(&fenced).await.unwrap(), Committed::Fenced);
    let balance = store.balance(tenant).await.unwrap();
    assert_eq!(
        (balance.balance, balance.pending),
        (74, 26),
        "a fenced turn charges nothing"
    );
    store.set_auto_refill(tenant, Some((80, 50))).await.unwrap();
    let (settled, refill) = store.settle_usage().await.unwrap();
    assert_eq!(settled, 2);
    let refill = refill.expect("below the threshold");
    assert_eq!(
        (refill.tenant, refill.amount, refill.balance),
        (tenant, 50, 74)
    );
    assert_eq!(store.settle_usage().await.unwrap().0, 0);
    let balance = store.balance(tenant).await.unwrap();
    assert_eq!((balance.balance, balance.pending), (74, 0));
    let today = crate::day_of(now_ms());
    let usage = store.usage(tenant, &today, &today).await.unwrap();
    assert_eq!(usage.len(), 1);
    assert_eq!(
        (usage[0].executions, usage[0].node_runs, usage[0].credits),
        (2, 6, 26)
    );
    let ledger = store.ledger(tenant, 10, None).await.unwrap();
    let kinds: Vec<&str> = ledger.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["usage", "grant"]);
    assert_eq!(ledger[0].balance_after, 74);
}
both_backends!(credits_are_charged_once_and_settled);

async fn secrets_are_sealed_per_tenant(store: &Store) {
    let key = SealingKey::generate();
    let (a, _) = store.create_tenant("A").await.unwrap();
    let (b, _) = store.create_tenant("B").await.unwrap();
    assert!(store.put_secret(&key, a, "token", "one").await.unwrap());
    assert!(!store.put_secret(&key, a, "token", "two").await.unwrap());
    assert_eq!(
        store
            .secret_value(&key, a, "token")
            .await
            .unwrap()
            .as_deref(),
        Some("two")
    );
    assert_eq!(store.secret_value(&key, b, "token").await.unwrap(), None);
    assert!(matches!(
        store
            .secret_value(&SealingKey::generate(), a, "token")
            .await,
        Err(Error::Corrupt(_))
    ));
    assert_eq!(store.list_secrets(a).await.unwrap().len(), 1);
    assert!(store.list_secrets(b).await.unwrap().is_empty());
    assert!(matches!(
        store.delete_secret(b, "token").await,
        Err(Error::NotFound)
    ));
    store.delete_secret(a, "token").await.unwrap();
    assert_eq!(store.secret_value(&key, a, "token").await.unwrap(), None);
}
both_backends!(secrets_are_sealed_per_tenant);

async fn secrets_are_resealed_all_or_nothing(store: &Store) {
    let (old, new) = (SealingKey::generate(), SealingKey::generate());
    let (a, _) = store.create_tenant("A").await.unwrap();
    let (b, _) = store.create_tenant("B").await.unwrap();
    store.put_secret(&old, a, "token", "one").await.unwrap();
    store.put_secret(&old, b, "token", "two").await.unwrap();
    // A row under a third key: the rotation stops and nothing moves.
    store
        .put_secret(&SealingKey::generate(), b, "stray", "x")
        .await
        .unwrap();
    assert!(matches!(
        store.reseal_secrets(&old, &new).await,
        Err(Error::Corrupt(m)) if m.contains("\"stray\"") && !m.contains("one")
    ));
    assert_eq!(
        store
            .secret_value(&old, a, "token")
            .await
            .unwrap()
            .as_deref(),
        Some("one")
    );
    store.delete_secret(b, "stray").await.unwrap();
    let done = store.reseal_secrets(&old, &new).await.unwrap();
    assert_eq!((done.resealed, done.already), (2, 0));
    assert_eq!(
        store
            .secret_value(&new, b, "token")
            .await
            .unwrap()
            .as_deref(),
        Some("two")
    );
    assert!(store.secret_value(&old, a, "token").await.is_err());
    let again = store.reseal_secrets(&old, &new).await.unwrap();
    assert_eq!((again.resealed, again.already), (0, 2));
}
both_backends!(secrets_are_resealed_all_or_nothing);

async fn audit_is_filtered_and_paged(store: &Store) {
    let (a, _) = store.create_tenant("A").await.unwrap();
    let (b, _) = store.create_tenant("B").await.unwrap();
    for (n, action) in ["workflow.create", "workflow.publish", "key.create"]
        .iter()
        .enumerate()
    {
        let record = AuditRecord {
            id: uuid::Uuid::now_v7().to_string(),
            at: now_ms(),
            actor: format!("user:{n}"),
            action: (*action).into(),
            target: None,
            source: Some("127.0.0.1".into()),
            outcome: "ok".into(),
            status: 200,
        };
        store.audit(a, &record).await.unwrap();
    }
    let all = store
        .audit_log(
            a,
            &AuditQuery {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].action, "key.create", "newest first");
    let workflows = AuditQuery {
        action: Some("workflow.".into()),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(store.audit_log(a, &workflows).await.unwrap().len(), 2);
    let page = AuditQuery {
        before: Some(all[0].id.clone()),
        limit: 1,
        ..Default::default()
    };
    assert_eq!(
        store.audit_log(a, &page).await.unwrap()[0].action,
        "workflow.publish"
    );
    let by_actor = AuditQuery {
        actor: Some("user:0".into()),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(store.audit_log(a, &by_actor).await.unwrap().len(), 1);
    assert!(
        store
            .audit_log(
                b,
                &AuditQuery {
                    limit: 10,
                    ..Default::default()
                }
            )
            .await
            .unwrap()
            .is_empty()
    );
}
both_backends!(audit_is_filtered_and_paged);

async fn starts_take_slots_and_ends_give_them_back(store: &Store) {
    let (tenant, first) = one_execution(store).await;
    let limits = TenantLimits {
        max_concurrent: Some(1),
        ..Default::default()
    };
    assert!(store.set_tenant_limits(tenant, &limits).await.unwrap());
    let workflow = store
        .get_execution(tenant, first)
        .await
        .unwrap()
        .unwrap()
        .workflow;
    let second = store
        .create_execution(&new_execution(tenant, workflow, None))
        .await
        .unwrap()
        .id;
    own(store, second).await;
    let (first_start, second_start) = (start_change(first), start_change(second));
    let end = ExecutionChange {
        id: first,
        from: ExecutionStatus::Running,
        to: ExecutionStatus::Succeeded,
        output: None,
        error: None,
    };
    let commit = async |change: &ExecutionChange| {
        let turn = slot_turn(tenant, change);
        store.commit_turn(&turn).await.unwrap()
    };
    assert_eq!(
        commit(&first_start).await,
        Committed::Written {
            woke: None,
            first_position: None,
            parent_told: false,
        }
    );
    assert_eq!(commit(&second_start).await, Committed::NoSlot);
    // It waits unowned, not due for a while: the first one's end wakes it.
    let sweep = ClaimRequest {
        owner: OWNER,
        incarnation: "test-run",
        limit: 10,
        lookahead: Duration::from_secs(1),
    };
    assert!(store.claim_executions(&sweep).await.unwrap().is_empty());
    let woke = Some(Woken {
        execution: second,
        workflow,
    });
    assert_eq!(
        commit(&end).await,
        Committed::Written {
            woke,
            first_position: None,
            parent_told: false,
        }
    );
    assert_eq!(store.claim_executions(&sweep).await.unwrap(), [second]);
    assert_eq!(
        commit(&second_start).await,
        Committed::Written {
            woke: None,
            first_position: None,
            parent_told: false,
        }
    );
}

fn slot_turn(tenant: TenantId, change: &ExecutionChange) -> Turn<'_> {
    Turn {
        owner: OWNER,
        tenant,
        execution: change.id,
        transition: Some(change),
        steps: &[],
        consumed_signals: &[],
        usage: None,
        slots: Slots::Limited { instance: None },
        in_process: Mark::Keep,
        events: &[],
        handler: None,
        children: &[],
        to_parent: None,
        take_slot: false,
    }
}
both_backends!(starts_take_slots_and_ends_give_them_back);

async fn sandbox_numbers_are_assigned_once_and_never_shared(store: &Store) {
    let mut tenants = Vec::new();
    for i in 0..6 {
        let (tenant, _) = store
            .register(Registration {
                email: &format!("numbers{i}@example.com"),
                password: "correct horse battery",
                tenant_name: &format!("Numbers {i}"),
                initial_credits: 0,
            })
            .await
            .unwrap()
            .unwrap();
        tenants.push(tenant);
    }
    // Every tenant asked for at once, twice each, as several engines would.
    let asked = futures::future::join_all(
        tenants
            .iter()
            .chain(tenants.iter())
            .map(|&tenant| store.sandbox_number(tenant)),
    )
    .await;
    let numbers: Vec<i64> = asked.into_iter().map(Result::unwrap).collect();
    let (first, again) = numbers.split_at(tenants.len());
    assert_eq!(first, again, "a tenant keeps its number");
    let distinct: std::collections::BTreeSet<_> = first.iter().collect();
    assert_eq!(
        distinct.len(),
        tenants.len(),
        "no two tenants share one: {first:?}"
    );
    assert_eq!(store.sandbox_number(tenants[0]).await.unwrap(), first[0]);
}
both_backends!(sandbox_numbers_are_assigned_once_and_never_shared);

/// A database of users from before memberships, migrated: each user is a
/// member of its tenant with its role, and its session still works.
async fn users_become_members(url: &str, data_dir: &std::path::Path) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let before = sqlx::migrate::Migrator {
        migrations: crate::MIGRATOR
            .migrations
            .iter()
            .filter(|m| m.version < 18)
            .cloned()
            .collect::<Vec<_>>()
            .into(),
        ..sqlx::migrate::Migrator::DEFAULT
    };
    before.run(&pool).await.unwrap();
    let tenant = TenantId::new();
    let token = "fms_oldsession0000";
    for sql in [
        "INSERT INTO tenants (id, slug, name, created_at) VALUES ($1, 'old', 'Old', 1)",
        "INSERT INTO users (id, tenant_id, email, password_hash, role, created_at) \
         VALUES ('u1', $1, 'old@example.com', 'x', 'editor', 7)",
    ] {
        sqlx::query(sql)
            .bind(tenant.to_string())
            .execute(&pool)
            .await
            .unwrap();
    }
    sqlx::query(
        "INSERT INTO sessions (id, user_id, tenant_id, prefix, hash, created_at, expires_at) \
         VALUES ('s1', 'u1', $1, $2, $3, 1, $4)",
    )
    .bind(tenant.to_string())
    .bind(crate::credentials::prefix(token))
    .bind(crate::credentials::digest(token))
    .bind(now_ms() + 60_000)
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let store = Store::connect(&Options {
        database_url: url.starts_with("postgres").then(|| url.to_owned()),
        data_dir: data_dir.to_owned(),
        ..Default::default()
    })
    .await
    .unwrap();
    let users = store.list_users(tenant).await.unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(
        (users[0].email.as_str(), users[0].role, users[0].created_at),
        ("old@example.com", Role::Editor, 7)
    );
    let who = store.authenticate(token).await.unwrap().unwrap();
    assert_eq!((who.tenant, who.role), (tenant, Role::Editor));
    store.close().await;
}

#[tokio::test]
async fn users_become_members_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("flowmesh.db").display()
    );
    users_become_members(&url, dir.path()).await;
}

#[tokio::test]
async fn users_become_members_postgres() {
    let name = format!("flowmesh_t_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(POSTGRES_ADMIN).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    users_become_members(
        &format!("postgres://postgres@127.0.0.1:5432/{name}"),
        dir.path(),
    )
    .await;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
}
