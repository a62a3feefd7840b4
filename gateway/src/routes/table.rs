//! The route table: every route, the role it needs, what it takes and
//! answers, and its handler. The one place access is decided, and what the
//! OpenAPI description is made from.

use axum::routing::{MethodRouter, any, delete, get, post, put};
use flowmesh_model::{Role, WorkflowDocument};
use flowmesh_services::records::{
    AuditRecord, KeyInfo, LedgerEntry, SecretInfo, StreamTicket, TenantInfo, TenantLimits, UserInfo,
};
use flowmesh_services::{SandboxInfo, Template, WorkflowStats};
use serde_json::{Map, Value};

use super::{IDEMPOTENCY_KEY, IF_MATCH, LAST_EVENT_ID, RouteInfo, public, role};
use crate::answers::*;
use crate::bodies;
use crate::extract::AppState;
use crate::queries::{
    AuditQuery, ExecutionStepsQuery, ExecutionsQuery, LedgerQuery, LogsQuery, StartQuery,
    StreamQuery, TicketQuery, UsageQuery, VersionsQuery, WorkflowsQuery,
};
use crate::{
    accounts, ai, billing, executions, hooks, operate, operations, session, sse, stream, workflows,
};

pub(super) fn table() -> Vec<(RouteInfo, MethodRouter<AppState>)> {
    use Role::{Admin, Editor, Operator, Viewer};
    vec![
        (
            public("GET", "/health", "Whether the process is up").answers::<Health>(200),
            get(operations::health),
        ),
        (
            public("GET", "/ready", "Whether the store and the bus answer (503 when not)")
                .answers::<Ready>(200)
                .or_answers::<Ready>(503),
            get(operations::ready),
        ),
        (
            public(
                "GET",
                "/metrics",
                "Prometheus metrics, with the instance's metrics token (404 when it has none)",
            )
            .text("text/plain")
            .metrics_token(),
            get(operations::metrics),
        ),
        (
            public(
                "GET",
                "/v1/schema/workflow",
                "The JSON Schema of the workflow document",
            )
            .answers::<JsonSchemaDocument>(200),
            get(workflows::schema),
        ),
        (
            public("GET", "/openapi.json", "This description").answers::<OpenApiDocument>(200),
            get(operations::openapi),
        ),
        (
            public(
                "POST",
                "/v1/auth/register",
                "Create a tenant and its owner, then sign in (the same answer whether or not the email has an account)",
            )
            .answers::<Pending>(202)
            .body::<bodies::Register>()
            .audited("tenant.register"),
            post(accounts::register),
        ),
        (
            public("POST", "/v1/auth/login", "Open a session")
                .answers::<Session>(200)
                .body::<bodies::Login>(),
            post(accounts::login),
        ),
        (
            public(
                "POST",
                "/v1/auth/session",
                "Open a session for the console: the session goes into an HttpOnly cookie, the answer carries its CSRF token",
            )
            .answers::<session::ConsoleSession>(200)
            .body::<bodies::Login>(),
            post(session::open),
        ),
        (
            public(
                "POST",
                "/v1/auth/accept",
                "Accept an invitation, then sign in (an email with an account joins with its own password)",
            )
            .answers::<Pending>(202)
            .body::<bodies::Accept>()
            .audited("user.join"),
            post(accounts::accept),
        ),
        (
            role("POST", "/v1/auth/logout", Viewer, "End the caller's session").no_content(),
            post(accounts::logout),
        ),
        (
            role("GET", "/v1/me", Viewer, "Who the credential is").answers::<Me>(200),
            get(accounts::me),
        ),
        (
            role("GET", "/v1/node-kinds", Viewer, "The node kinds").answers::<Items<NodeKind>>(200),
            get(workflows::node_kinds),
        ),
        (
            role("GET", "/v1/workflows", Viewer, "List workflows, newest first (search, filters, statistics)")
                .answers::<Items<WorkflowSummary>>(200)
                .query::<WorkflowsQuery>(),
            get(workflows::list),
        ),
        (
            role("POST", "/v1/workflows", Editor, "Create a workflow (a draft)")
                .answers::<WorkflowSummary>(201)
                .body::<WorkflowDocument>()
                .audited("workflow.create"),
            post(workflows::create),
        ),
        (
            role(
                "POST",
                "/v1/workflows/generate",
                Editor,
                "Generate a draft workflow from a description (422 when none could be built)",
            )
            .answers::<Generated>(201)
            .body::<bodies::Generate>()
            // The model provider failed (503 when retrying is safe).
            .fails_with(&[502])
            .audited("workflow.generate"),
            post(ai::generate),
        ),
        (
            role(
                "GET",
                "/v1/templates",
                Viewer,
                "The template library, with each template's parameters",
            )
            .answers::<Items<Template>>(200),
            get(ai::templates),
        ),
        (
            role(
                "POST",
                "/v1/templates/{id}/instantiate",
                Editor,
                "Create a draft workflow from a template",
            )
            .answers::<Workflow>(201)
            .body::<bodies::Instantiate>()
            .audited("workflow.instantiate"),
            post(ai::instantiate),
        ),
        (
            role(
                "GET",
                "/v1/workflows/{id}",
                Viewer,
                "Read a workflow and its latest document",
            )
            .answers::<Workflow>(200),
            get(workflows::read),
        ),
        (
            role(
                "PUT",
                "/v1/workflows/{id}",
                Editor,
                "Save a new draft version (with `If-Match`, only over that version: 412 when another was saved since)",
            )
            .answers::<WorkflowSummary>(200)
            .body::<WorkflowDocument>()
            .fails_with(&[412])
            .headers(&[IF_MATCH])
            .audited("workflow.update"),
            put(workflows::update),
        ),
        (
            role("DELETE", "/v1/workflows/{id}", Editor, "Delete a workflow")
                .no_content()
                .audited("workflow.delete"),
            delete(workflows::delete),
        ),
        (
            role(
                "POST",
                "/v1/workflows/{id}/publish",
                Editor,
                "Publish the latest version, or the one named (an earlier one: a rollback)",
            )
            .answers::<WorkflowSummary>(200)
            .optional_body::<bodies::Publish>()
            .audited("workflow.publish"),
            post(workflows::publish),
        ),
        (
            role(
                "POST",
                "/v1/workflows/{id}/unpublish",
                Editor,
                "Take the workflow out of service: its triggers stop; running executions go on",
            )
            .answers::<WorkflowSummary>(200)
            .audited("workflow.unpublish"),
            post(workflows::unpublish),
        ),
        (
            role(
                "GET",
                "/v1/workflows/{id}/versions",
                Viewer,
                "A workflow's versions, newest first, and which is published",
            )
            .answers::<Page<WorkflowVersion>>(200)
            .query::<VersionsQuery>(),
            get(workflows::versions),
        ),
        (
            role(
                "GET",
                "/v1/workflows/{id}/versions/{version}",
                Viewer,
                "One version of a workflow and its document",
            )
            .answers::<WorkflowVersionDocument>(200),
            get(workflows::version),
        ),
        (
            role(
                "POST",
                "/v1/workflows/{id}/executions",
                Operator,
                "Start an execution of the published version (`?wait=true` answers with the result, or the workflow's own response; an `Idempotency-Key` sent again with another input: 422)",
            )
            .answers::<Started>(202)
            .or_answers::<Finished>(200)
            .or_the_workflows_answer()
            // The input, which becomes `trigger.body`.
            .optional_body::<Map<String, Value>>()
            .query::<StartQuery>()
            .headers(&[IDEMPOTENCY_KEY]),
            post(executions::start),
        ),
        (
            role(
                "POST",
                "/v1/workflows/{id}/versions/{version}/executions",
                Operator,
                "Test-run one version, published or not, with mocked nodes (`{\"input\", \"mocks\"}`; charged like a start; `?wait=true` as for a start)",
            )
            .answers::<Started>(202)
            .or_answers::<Finished>(200)
            .or_the_workflows_answer()
            .optional_body::<bodies::TestRun>()
            .query::<StartQuery>()
            .audited("execution.test_run"),
            post(executions::test_run),
        ),
        (
            role(
                "GET",
                "/v1/workflows/{id}/stats",
                Viewer,
                "Execution statistics of a workflow",
            )
            .answers::<WorkflowStats>(200),
            get(operate::workflow_stats),
        ),
        (
            role("GET", "/v1/executions", Viewer, "List executions, newest first")
                .answers::<Page<ExecutionItem>>(200)
                .query::<ExecutionsQuery>(),
            get(executions::list),
        ),
        (
            role(
                "GET",
                "/v1/executions/{id}",
                Viewer,
                "An execution and each node's state (loop iterations' steps a page at a time, or within a scope)",
            )
            .answers::<Execution>(200)
            .query::<ExecutionStepsQuery>(),
            get(executions::read),
        ),
        (
            role(
                "POST",
                "/v1/executions/{id}/cancel",
                Operator,
                "Cancel an execution",
            )
            .answers::<Cancelling>(202)
            .audited("execution.cancel"),
            post(executions::cancel),
        ),
        (
            role(
                "POST",
                "/v1/executions/{id}/resume",
                Operator,
                "Resume a wait_for_event node (the first resume wins; the same one again: 202, any other: 409)",
            )
            .answers::<Resumed>(202)
            .optional_body::<bodies::Resume>()
            .audited("execution.resume")
            .headers(&[IDEMPOTENCY_KEY]),
            post(executions::resume),
        ),
        (
            role(
                "GET",
                "/v1/executions/{id}/events",
                Viewer,
                "Server-Sent Events of one execution, replayed from the record (after Last-Event-ID), until it ends",
            )
            .text("text/event-stream")
            .streaming()
            .query::<TicketQuery>()
            .headers(&[LAST_EVENT_ID]),
            get(sse::execution_events),
        ),
        (
            role(
                "GET",
                "/v1/executions/{id}/logs",
                Viewer,
                "Each node's attempts, input, output and logs (or only those within a scope)",
            )
            .answers::<Logs>(200)
            .query::<LogsQuery>(),
            get(operate::execution_logs),
        ),
        (
            role(
                "POST",
                "/v1/executions/{id}/rerun",
                Operator,
                "Run again from a node, reusing recorded outputs upstream (admitted like a start: 402, 413)",
            )
            .answers::<Rerunning>(202)
            .body::<bodies::Rerun>()
            .audited("execution.rerun"),
            post(operate::rerun),
        ),
        (
            role(
                "GET",
                "/v1/settings",
                Viewer,
                "The tenant's retention and output cap",
            )
            .answers::<flowmesh_api::Settings>(200),
            get(operate::get_settings),
        ),
        (
            role(
                "PUT",
                "/v1/settings",
                Admin,
                "Change the tenant's retention or output cap (fields left out are kept; null: the default)",
            )
            .answers::<flowmesh_api::Settings>(200)
            .body::<bodies::Settings>()
            .audited("settings.update"),
            put(operate::put_settings),
        ),
        (
            role(
                "GET",
                "/v1/settings/llm",
                Viewer,
                "The tenant's language-model endpoint (null: the instance's)",
            )
            .answers::<ModelEndpoint>(200),
            get(ai::get_model_settings),
        ),
        (
            role(
                "PUT",
                "/v1/settings/llm",
                Admin,
                "Set the tenant's language-model endpoint",
            )
            .answers::<ModelEndpoint>(200)
            .body::<bodies::ModelSettings>()
            .audited("settings.llm"),
            put(ai::put_model_settings),
        ),
        (
            role(
                "GET",
                "/v1/sandboxes",
                Viewer,
                "The tenant's live code sandboxes in this process",
            )
            .answers::<Items<SandboxInfo>>(200),
            get(operate::sandboxes),
        ),
        (
            role("DELETE", "/v1/sandboxes/{id}", Operator, "Tear a sandbox down")
                .no_content()
                .audited("sandbox.delete"),
            delete(operate::delete_sandbox),
        ),
        (
            role(
                "GET",
                "/v1/api-keys",
                Admin,
                "List API keys (by prefix) and who created each",
            )
            .answers::<Items<KeyInfo>>(200),
            get(accounts::keys),
        ),
        (
            role("POST", "/v1/api-keys", Admin, "Create an API key (shown once)")
                .answers::<NewApiKey>(201)
                .body::<bodies::NewKey>()
                .audited("key.create"),
            post(accounts::create_key),
        ),
        (
            role(
                "DELETE",
                "/v1/api-keys/{id}",
                Admin,
                "Revoke an API key (a key an owner made: only an owner)",
            )
            .answers::<KeyInfo>(200)
            .audited("key.revoke"),
            delete(accounts::revoke_key),
        ),
        (
            role(
                "GET",
                "/v1/users",
                Admin,
                "List the tenant's members, with their role here",
            )
            .answers::<Items<UserInfo>>(200),
            get(accounts::users),
        ),
        (
            role(
                "DELETE",
                "/v1/users/{id}",
                Admin,
                "Remove a user from the tenant (their other tenants keep them)",
            )
            .no_content()
            .audited("user.remove"),
            delete(accounts::remove_user),
        ),
        (
            role(
                "POST",
                "/v1/invitations",
                Admin,
                "Invite someone with a role (the token is shown once)",
            )
            .answers::<Invitation>(201)
            .body::<bodies::Invite>()
            .audited("user.invite"),
            post(accounts::invite),
        ),
        (
            role(
                "GET",
                "/v1/secrets",
                Editor,
                "List the tenant's secrets (names only)",
            )
            .answers::<Items<SecretInfo>>(200),
            get(accounts::secrets),
        ),
        (
            role(
                "PUT",
                "/v1/secrets/{name}",
                Admin,
                "Create (201) or replace (200) a secret",
            )
            .answers::<SecretStored>(200)
            .or_answers::<SecretStored>(201)
            .body::<bodies::PutSecret>()
            .audited("secret.put"),
            put(accounts::put_secret),
        ),
        (
            role("DELETE", "/v1/secrets/{name}", Admin, "Delete a secret")
                .no_content()
                .audited("secret.delete"),
            delete(accounts::delete_secret),
        ),
        (
            role("GET", "/v1/audit", Admin, "The audit log, newest first")
                .answers::<Page<AuditRecord>>(200)
                .query::<AuditQuery>(),
            get(accounts::audit),
        ),
        (
            role(
                "GET",
                "/v1/events",
                Viewer,
                "Every execution event of the tenant from now on, or replayed from the record after Last-Event-ID",
            )
            .text("text/event-stream")
            .streaming()
            .query::<StreamQuery>()
            .headers(&[LAST_EVENT_ID]),
            get(stream::tenant_events),
        ),
        (
            role(
                "GET",
                "/v1/events/ws",
                Viewer,
                "The same events over a WebSocket",
            )
            .upgrades()
            .streaming()
            .query::<StreamQuery>()
            .headers(&[LAST_EVENT_ID]),
            get(stream::tenant_events_ws),
        ),
        (
            role(
                "POST",
                "/v1/stream-tickets",
                Viewer,
                "A single-use ticket (60 s) that opens one event stream as `?ticket=`, for clients that cannot send a header",
            )
            .answers::<StreamTicket>(201),
            post(stream::stream_ticket),
        ),
        (
            role("GET", "/v1/usage", Viewer, "Usage per day and workflow")
                .answers::<UsageReport>(200)
                .query::<UsageQuery>(),
            get(billing::usage),
        ),
        (
            role(
                "GET",
                "/v1/billing",
                Viewer,
                "Balance, automatic refill and ledger",
            )
            .answers::<Billing>(200)
            .query::<LedgerQuery>(),
            get(billing::billing),
        ),
        (
            role(
                "PUT",
                "/v1/billing/auto-refill",
                Admin,
                "Set (or with null, clear) the automatic refill",
            )
            .answers::<AutoRefillSet>(200)
            .body::<Option<bodies::AutoRefill>>()
            .audited("credits.auto_refill"),
            put(billing::put_auto_refill),
        ),
        (
            role(
                "GET",
                "/v1/admin/tenants",
                Admin,
                "Every tenant (the instance's administrators)",
            )
            .answers::<Items<TenantInfo>>(200)
            .platform(),
            get(billing::tenants),
        ),
        (
            role(
                "POST",
                "/v1/admin/tenants/{slug}/credits",
                Admin,
                "Grant credits to a tenant",
            )
            .answers::<LedgerEntry>(201)
            .body::<bodies::Grant>()
            .platform()
            .audited("credits.grant")
            .headers(&[IDEMPOTENCY_KEY]),
            post(billing::grant),
        ),
        (
            role(
                "PUT",
                "/v1/admin/tenants/{slug}/limits",
                Admin,
                "Set a tenant's limits",
            )
            .answers::<TenantLimits>(200)
            .body::<bodies::Limits>()
            .platform()
            .audited("tenant.limits"),
            put(billing::put_limits),
        ),
        (
            public(
                "ANY",
                "/hooks/{tenant}/{*path}",
                "A webhook of a published workflow (any method; an `Idempotency-Key` sent again with another request: 422)",
            )
            .answers::<Started>(202)
            .or_the_workflows_answer()
            // JSON, a form, or text: what the workflow reads as `trigger.body`.
            .optional_body::<Value>()
            .headers(&[IDEMPOTENCY_KEY]),
            any(hooks::webhook),
        ),
    ]
}
