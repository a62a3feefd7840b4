//! The template library: every template is listed, instantiated with its
//! parameters, validated, published and run against local stand-ins for
//! the outside services (and the recorded model answers).

mod common;

use std::time::Duration;

use common::llm::LlmServer;
use common::stub::StubServer;
use common::{Engine, Mode, eventually};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// How a template's workflow is started in the test.
enum Start {
    /// POST to its webhook; the answer's status.
    Hook {
        path: &'static str,
        body: Value,
        status: u16,
    },
    /// Its schedule fires (every second in the test).
    Schedule,
}

struct Case {
    id: &'static str,
    parameters: Value,
    start: Start,
    /// Stand-in paths the run must call.
    calls: &'static [&'static str],
}

fn cases(stub: &StubServer) -> Vec<Case> {
    let api = |name: &str| stub.url(&format!("/api/{name}"));
    let every_second = "* * * * * *";
    vec![
        Case {
            id: "signup-welcome",
            parameters: json!({"slack_webhook_url": api("slack"), "welcome_email_url": api("email")}),
            start: Start::Hook {
                path: "welcome/signup",
                body: json!({"email": "ada@acme.io", "name": "Ada"}),
                status: 200,
            },
            calls: &["/api/slack"],
        },
        Case {
            id: "webhook-to-slack",
            parameters: json!({"slack_webhook_url": api("slack-notify")}),
            start: Start::Hook {
                path: "notify/slack",
                body: json!({"text": "deploy done", "severity": "INFO"}),
                status: 200,
            },
            calls: &["/api/slack-notify"],
        },
        Case {
            id: "nightly-http-sync",
            parameters: json!({"source_url": api("source"), "destination_url": api("destination"), "cron": every_second}),
            start: Start::Schedule,
            calls: &["/api/source", "/api/destination"],
        },
        Case {
            id: "approval-with-resume",
            parameters: json!({"approver_notify_url": api("approver"), "approved_url": api("approved"), "rejected_url": api("rejected")}),
            start: Start::Hook {
                path: "approvals/request",
                body: json!({"title": "New laptop", "requester": "ada", "amount": 1800}),
                status: 202,
            },
            calls: &["/api/approver", "/api/approved"],
        },
        Case {
            id: "llm-ticket-triage",
            parameters: json!({"billing_team_url": api("billing-team"), "technical_team_url": api("tech-team"),
                               "account_team_url": api("account-team"), "general_queue_url": api("general")}),
            start: Start::Hook {
                path: "support/tickets",
                body: json!({"id": "T-9", "subject": "Refund", "customer_email": "c@x.io", "body": "I was charged twice"}),
                status: 200,
            },
            calls: &["/api/billing-team"],
        },
        Case {
            id: "uptime-monitor",
            parameters: json!({"health_url": api("health"), "alert_url": api("alert"), "cron": every_second}),
            start: Start::Schedule,
            calls: &["/api/health"],
        },
        Case {
            id: "lead-enrichment",
            parameters: json!({"enrichment_url": api("enrich"), "crm_contacts_url": api("crm-contacts")}),
            start: Start::Hook {
                path: "leads/new",
                body: json!({"email": "Ada@Acme.io"}),
                status: 201,
            },
            calls: &["/api/enrich", "/api/crm-contacts"],
        },
        Case {
            id: "daily-ai-digest",
            parameters: json!({"items_url": api("items"), "slack_webhook_url": api("digest"), "cron": every_second}),
            start: Start::Schedule,
            calls: &["/api/items", "/api/digest"],
        },
        Case {
            id: "multi-agent-research-brief",
            parameters: json!({}),
            start: Start::Hook {
                path: "research/brief",
                body: json!({"topic": "the four-day week"}),
                status: 200,
            },
            calls: &[],
        },
        Case {
            id: "order-fulfillment-router",
            parameters: json!({"express_warehouse_url": api("express"), "domestic_warehouse_url": api("domestic"),
                               "international_warehouse_url": api("international")}),
            start: Start::Hook {
                path: "orders/created",
                body: json!({"id": "O-1", "shipping": {"country": "fr", "tier": "standard"},
                                 "items": [{"sku": "A", "quantity": 1}], "total": 10, "currency": "EUR"}),
                status: 200,
            },
            calls: &["/api/international"],
        },
        Case {
            id: "form-to-crm-with-filter",
            parameters: json!({"crm_import_url": api("crm-import")}),
            start: Start::Hook {
                path: "forms/submissions",
                body: json!({"submissions": [
                {"email": "ada@acme.io", "consent": true, "website": ""},
                {"email": "spam@bot.io", "consent": true, "website": "http://spam"}]}),
                status: 200,
            },
            calls: &["/api/crm-import"],
        },
        Case {
            id: "invoice-code-transform",
            parameters: json!({"accounting_url": api("accounting")}),
            start: Start::Hook {
                path: "invoices/new",
                body: json!({"invoice_number": "INV-7", "customer": "Acme",
                                 "lines": [{"description": "Widget", "quantity": 2, "unit_price": 10.1}]}),
                status: 201,
            },
            calls: &["/api/accounting"],
        },
        Case {
            id: "github-issue-labeler",
            parameters: json!({"github_api_url": stub.url("/api/github")}),
            start: Start::Hook {
                path: "github/issues",
                body: json!({"action": "opened",
                                 "issue": {"number": 42, "title": "Crash when saving", "body": "It crashes.", "labels": []},
                                 "repository": {"full_name": "acme/app"}}),
                status: 202,
            },
            calls: &["/api/github/repos/acme/app/issues/42"],
        },
        Case {
            id: "payment-failure-followup",
            parameters: json!({"email_api_url": api("email-api"), "billing_api_url": stub.url("/api/billing"),
                               "escalation_url": api("escalate"), "grace_period": "1s"}),
            start: Start::Hook {
                path: "billing/payment-failed",
                body: json!({"invoice_id": "in_1",
                                 "customer": {"email": "c@x.io", "name": "C"}, "amount_due": 900, "currency": "usd"}),
                status: 202,
            },
            calls: &[
                "/api/email-api",
                "/api/billing/invoices/in_1",
                "/api/escalate",
            ],
        },
    ]
}

async fn every_template_runs(mode: Mode) {
    let stub = StubServer::start().await;
    let llm = LlmServer::start("templates").await;
    let env = llm.env();
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // The schedule templates run with every-second ticks here.
    env.push(("FLOWMESH_SCHEDULE_MIN_INTERVAL", "1s"));
    let engine = Engine::start_with(mode, &env).await;
    for secret in [
        "crm_token",
        "enrichment_api_key",
        "accounting_token",
        "github_token",
        "billing_token",
        "sync_destination_token",
    ] {
        engine.put_secret(secret, &format!("{secret}-value")).await;
    }
    let (status, listed) = engine.get("/v1/templates").await;
    assert_eq!(status, StatusCode::OK);
    let listed = listed["items"].as_array().unwrap().clone();
    let cases = cases(&stub);
    assert!(listed.len() >= 10);
    assert_eq!(listed.len(), cases.len(), "every template has a case here");
    for case in cases {
        let template = listed
            .iter()
            .find(|t| t["id"] == case.id)
            .unwrap_or_else(|| panic!("{} listed", case.id));
        assert!(
            !template["parameters"].as_array().unwrap().is_empty()
                || case.parameters == json!({})
                || case.id == "multi-agent-research-brief"
        );
        let (status, created) = engine
            .post(
                &format!("/v1/templates/{}/instantiate", case.id),
                json!({"parameters": case.parameters}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{}: {created}", case.id);
        assert_eq!(created["published_version"], Value::Null, "a draft");
        let id = created["id"].as_str().unwrap().to_owned();
        let (status, body) = engine
            .post(&format!("/v1/workflows/{id}/publish"), json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{}: {body}", case.id);
        match &case.start {
            Start::Hook { path, body, status } => {
                let resp = engine
                    .client()
                    .post(engine.url(&format!("/hooks/default/{path}")))
                    .json(body)
                    .send()
                    .await
                    .unwrap();
                let got = resp.status().as_u16();
                let answer: Value = resp.json().await.unwrap_or(Value::Null);
                assert_eq!(got, *status, "{}: {answer}", case.id);
                if case.id == "approval-with-resume" {
                    let execution = answer["execution_id"].as_str().unwrap().to_owned();
                    eventually("the approver is asked", Duration::from_secs(20), || async {
                        (!stub.hits("/api/approver").is_empty()).then_some(())
                    })
                    .await;
                    let resume = || async {
                        let (status, _) = engine
                            .post(
                                &format!("/v1/executions/{execution}/resume"),
                                json!({"payload": {"approved": true, "by": "boss"}}),
                            )
                            .await;
                        (status == StatusCode::ACCEPTED).then_some(())
                    };
                    eventually("the approval is taken", Duration::from_secs(20), resume).await;
                    let done = engine.finished(&execution).await;
                    assert_eq!(done["status"], "succeeded", "{done:#}");
                }
                if case.id == "multi-agent-research-brief" {
                    assert!(
                        answer["brief"].as_str().unwrap().contains("Reviewed"),
                        "{answer}"
                    );
                }
            }
            Start::Schedule => {}
        }
        for call in case.calls {
            eventually(
                &format!("{} calls {call}", case.id),
                Duration::from_secs(30),
                || async { (!stub.hits(call).is_empty()).then_some(()) },
            )
            .await;
        }
        // Every run of the workflow so far succeeded (schedules stop with it).
        let finished = eventually(
            &format!("{} finishes", case.id),
            Duration::from_secs(30),
            || async {
                let (_, page) = engine
                    .get(&format!("/v1/executions?workflow_id={id}"))
                    .await;
                let items = page["items"].as_array().cloned().unwrap_or_default();
                (!items.is_empty()
                    && items
                        .iter()
                        .all(|e| !matches!(e["status"].as_str(), Some("queued" | "running"))))
                .then_some(items)
            },
        )
        .await;
        if matches!(case.start, Start::Schedule) {
            let (status, _) = engine
                .request(Method::DELETE, &format!("/v1/workflows/{id}"), None)
                .await;
            assert_eq!(status, StatusCode::NO_CONTENT);
        }
        for e in finished {
            assert_eq!(e["status"], "succeeded", "{}: {e:#}", case.id);
        }
    }
    // The outside services got what the templates promise.
    assert!(
        stub.hits("/api/slack")[0].body["text"]
            .as_str()
            .unwrap()
            .contains("ada@acme.io")
    );
    assert_eq!(
        stub.hits("/api/crm-import")[0].body["contacts"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(stub.hits("/api/accounting")[0].body["total"], 24.24);
    assert_eq!(
        stub.hits("/api/billing-team")[0].body["category"],
        "billing"
    );
    assert_eq!(
        stub.hits("/api/github/repos/acme/app/issues/42")[0]
            .authorization
            .as_deref(),
        Some("Bearer github_token-value")
    );
    // Bad parameters are refused with their name; unknown templates are 404.
    let (status, body) = engine
        .post(
            "/v1/templates/webhook-to-slack/instantiate",
            json!({"parameters": {"slack_webhook_url": "not a url"}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        common::error_message(&body).starts_with("parameters.slack_webhook_url"),
        "{body}"
    );
    let (status, body) = engine
        .post(
            "/v1/templates/webhook-to-slack/instantiate",
            json!({"parameters": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = engine
        .post("/v1/templates/nope/instantiate", json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

both_modes!(every_template_validates_and_runs, every_template_runs);
