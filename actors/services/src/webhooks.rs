//! Webhooks in two steps: find the trigger and authenticate the caller on
//! the raw request, then start the run once the body is read as data. A
//! refused caller starts nothing and spends nothing: no execution, no
//! credits, no idempotency key.

use flowmesh_api::WebhookRequest;
use flowmesh_node_handlers::webhook_auth::{Presented, WebhookAuth};
use flowmesh_node_handlers::{NATS_ROUTE, SecretError, SecretSource};
use flowmesh_store::now_ms;
use serde_json::{Map, Value, json};

use super::api::{Accept, EngineHandle, Fingerprint, Routed, Started, TriggerRoute};
use crate::error::Error;

/// Headers that carry credentials: kept out of trigger data and the journal.
const HIDDEN_HEADERS: [&str; 4] = [
    "authorization",
    "cookie",
    "proxy-authorization",
    "x-api-key",
];

/// A webhook request whose trigger is found and whose caller is
/// authenticated: its body may now be read and the run started.
pub struct AuthenticatedWebhook {
    routed: Routed,
    method: String,
    path: String,
    /// The headers, less those that carry credentials.
    headers: Map<String, Value>,
    query: Map<String, Value>,
}

impl std::fmt::Debug for AuthenticatedWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthenticatedWebhook")
            .field("tenant", &self.routed.tenant)
            .field("workflow", &self.routed.workflow)
            .field("method", &self.method)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl EngineHandle {
    /// Finds the published workflow whose webhook trigger matches, and
    /// checks the caller against the trigger's `auth`. A refusal is
    /// [`Error::Unauthenticated`] whatever failed, so a caller learns
    /// nothing of the secret or the check.
    pub async fn authenticate_webhook(
        &self,
        request: WebhookRequest,
    ) -> Result<AuthenticatedWebhook, Error> {
        let method = request.method.to_ascii_uppercase();
        // NATS triggers share the routing table under a method HTTP never sends.
        if method == NATS_ROUTE {
            return Err(Error::NotFound("webhook"));
        }
        let path = request.path.trim_matches('/').to_owned();
        let routed = self
            .routed(TriggerRoute {
                slug: &request.tenant_slug,
                public: true,
                method: &method,
                path: &path,
                missing: "webhook",
            })
            .await?;
        let node = routed.graph.node(routed.trigger);
        let mut hidden: Vec<String> = HIDDEN_HEADERS.iter().map(|h| h.to_string()).collect();
        match self.registry().webhook_auth(node) {
            None => {}
            // Refused when the workflow was saved; a version stored before
            // that rule opens to no one rather than to everyone.
            Some(Err(_)) => {
                tracing::warn!(tenant = %routed.tenant, workflow = %routed.workflow, node = %node.id, "webhook refused: its trigger's auth is invalid; save the workflow again");
                return Err(Error::Unauthenticated { challenge: None });
            }
            Some(Ok(auth)) => {
                self.check_caller(&routed, &auth, &request).await?;
                hidden.extend(auth.credential_headers());
            }
        }
        let headers = request
            .headers
            .into_iter()
            .filter(|(name, _)| !hidden.contains(&name.to_ascii_lowercase()))
            .collect();
        Ok(AuthenticatedWebhook {
            routed,
            method,
            path,
            headers,
            query: request.query,
        })
    }

    /// Starts the run of an authenticated webhook with its body read as data.
    pub async fn start_webhook(
        &self,
        hook: AuthenticatedWebhook,
        body: Value,
        idempotency_key: Option<String>,
    ) -> Result<Started, Error> {
        let AuthenticatedWebhook {
            routed,
            method,
            path,
            headers,
            query,
        } = hook;
        let request = Fingerprint::Webhook {
            method: method.clone(),
            path: path.clone(),
            body: body.clone(),
        };
        let data = json!({"body": body, "headers": headers, "query": query, "method": method, "path": path});
        let watch = self.registry().responds(&routed.graph);
        self.accept(Accept {
            tenant: routed.tenant,
            workflow: routed.workflow,
            version: routed.version,
            graph: routed.graph,
            trigger: routed.trigger,
            data,
            idempotency_key,
            request,
            watch,
            test: None,
        })
        .await
    }

    async fn check_caller(
        &self,
        routed: &Routed,
        auth: &WebhookAuth,
        request: &WebhookRequest,
    ) -> Result<(), Error> {
        let refused = Error::Unauthenticated {
            challenge: auth.challenge(),
        };
        let node = &routed.graph.node(routed.trigger).id;
        let secret = match self
            .shared
            .secrets
            .secret(routed.tenant, &auth.secret)
            .await
        {
            Ok(Some(secret)) => secret,
            Ok(None) => {
                tracing::warn!(tenant = %routed.tenant, workflow = %routed.workflow, %node, secret = %auth.secret, "webhook refused: the secret its trigger's auth names is not set");
                return Err(refused);
            }
            Err(SecretError::Retryable(e)) => return Err(Error::Unavailable(Box::new(e))),
            Err(SecretError::Unavailable(e)) => {
                tracing::warn!(tenant = %routed.tenant, workflow = %routed.workflow, %node, secret = %auth.secret, error = %e, "webhook refused: the secret its trigger's auth names cannot be read");
                return Err(refused);
            }
        };
        let presented = Presented {
            headers: &request.headers,
            body: &request.body,
            secret: &secret,
            now: now_ms().div_euclid(1000),
            tolerance: self.shared.options.webhook_signature_tolerance.0,
        };
        auth.verify(&presented).map_err(|reason| {
            tracing::info!(tenant = %routed.tenant, workflow = %routed.workflow, %node, %reason, "webhook caller refused");
            refused
        })
    }
}
