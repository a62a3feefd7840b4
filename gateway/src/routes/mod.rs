//! What a route is: its method, path, access, and what it takes and
//! answers, as types (the OpenAPI description is made from these); and
//! the router built from the table (`table.rs`).

mod table;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath};
use axum::middleware;
use axum::response::Response;
use flowmesh_api::ErrorCode;
use flowmesh_model::Role;
use flowmesh_services::EngineHandle;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use tower_http::trace::TraceLayer;

use crate::Options;
use crate::access::{self, Access, Guard};
use crate::error::ApiError;
use crate::extract::AppState;
use crate::hooks;

pub(crate) type ApiResult = Result<Response, ApiError>;

/// A type's schema, made by the description's generator: a `$ref` to the
/// type's component.
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

fn schema_of<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// One route: method, path, what it requires, takes and answers.
#[derive(Clone, Debug)]
pub struct RouteInfo {
    /// `GET`, `POST`, `PUT`, `DELETE`, or `ANY` for webhooks.
    pub method: &'static str,
    pub path: &'static str,
    pub guard: Guard,
    /// What it does, in a line.
    pub summary: &'static str,
    /// The JSON body it reads, if any.
    pub body: Option<Body>,
    /// Its answers on success, the usual one first.
    pub replies: Vec<Reply>,
    /// It may answer with a workflow's own response instead (a `respond`
    /// node's status, headers and body).
    pub workflow_answers: bool,
    /// Error statuses beyond those every route may answer with.
    pub errors: &'static [u16],
    /// The schema of the query parameters its handler reads, if any.
    pub query: Option<fn() -> Schema>,
    /// The request headers it reads, beside `Authorization`.
    pub headers: &'static [Header],
}

/// A request body: its type's schema, and whether it may be left out.
#[derive(Clone, Copy, Debug)]
pub struct Body {
    pub schema: SchemaFn,
    pub required: bool,
}

/// One success answer: its status and what it carries.
#[derive(Clone, Copy, Debug)]
pub struct Reply {
    pub status: u16,
    pub content: Content,
}

#[derive(Clone, Copy, Debug)]
pub enum Content {
    /// JSON of a type.
    Json(SchemaFn),
    /// Text of a media type (metrics, Server-Sent Events).
    Text(&'static str),
    /// No content (204), or a switch of protocols (101).
    None,
}

/// A request header a route reads.
#[derive(Clone, Copy, Debug)]
pub struct Header {
    pub name: &'static str,
    pub description: &'static str,
    /// What a value the route accepts looks like.
    pub pattern: &'static str,
}

const IDEMPOTENCY_KEY: Header = Header {
    name: "Idempotency-Key",
    description: "Makes a retried request count once: the same key again answers as the first did",
    // Visible ASCII, 1 to 255 characters, as `idempotency_key` checks.
    pattern: "^[!-~]([ -~]{0,253}[!-~])?$",
};

const IF_MATCH: Header = Header {
    name: "If-Match",
    description: "The version the edit was made on, as the workflow's ETag gives it (`*`: any)",
    pattern: "^(\\*|[1-9][0-9]{0,17}|\"[1-9][0-9]{0,17}\")$",
};

const LAST_EVENT_ID: Header = Header {
    name: "Last-Event-ID",
    description: "The id of the last event received: the stream resumes after it",
    pattern: "^[0-9]{1,19}$",
};

/// A route whose success answer is not stated yet: only stating it
/// ([`Unanswered::answers`] and the others) makes a [`RouteInfo`], so the
/// table cannot hold a route the description would not know.
pub(crate) struct Unanswered {
    method: &'static str,
    path: &'static str,
    guard: Guard,
    summary: &'static str,
}

fn public(method: &'static str, path: &'static str, summary: &'static str) -> Unanswered {
    Unanswered {
        method,
        path,
        guard: Guard {
            access: Access::Public,
            audit: None,
            tickets: false,
        },
        summary,
    }
}

fn role(method: &'static str, path: &'static str, role: Role, summary: &'static str) -> Unanswered {
    let mut route = public(method, path, summary);
    route.guard.access = Access::Role(role);
    route
}

impl Unanswered {
    fn replies(self, reply: Reply) -> RouteInfo {
        RouteInfo {
            method: self.method,
            path: self.path,
            guard: self.guard,
            summary: self.summary,
            body: None,
            replies: vec![reply],
            workflow_answers: false,
            errors: &[],
            query: None,
            headers: &[],
        }
    }

    /// Answers with a `T` as JSON.
    fn answers<T: JsonSchema>(self, status: u16) -> RouteInfo {
        self.replies(Reply {
            status,
            content: Content::Json(schema_of::<T>),
        })
    }

    /// Answers 204 with no content.
    fn no_content(self) -> RouteInfo {
        self.replies(Reply {
            status: 204,
            content: Content::None,
        })
    }

    /// Answers with text of a media type.
    fn text(self, media: &'static str) -> RouteInfo {
        self.replies(Reply {
            status: 200,
            content: Content::Text(media),
        })
    }

    /// Switches protocols to a WebSocket.
    fn upgrades(self) -> RouteInfo {
        self.replies(Reply {
            status: 101,
            content: Content::None,
        })
    }
}

impl RouteInfo {
    /// Also answers with a `T` as JSON, with another status.
    fn or_answers<T: JsonSchema>(mut self, status: u16) -> RouteInfo {
        self.replies.push(Reply {
            status,
            content: Content::Json(schema_of::<T>),
        });
        self
    }

    /// May answer with the workflow's own response.
    fn or_the_workflows_answer(mut self) -> RouteInfo {
        self.workflow_answers = true;
        self
    }

    /// Reads a JSON `T`.
    fn body<T: JsonSchema>(mut self) -> RouteInfo {
        self.body = Some(Body {
            schema: schema_of::<T>,
            required: true,
        });
        self
    }

    /// Reads a JSON `T`, or nothing.
    fn optional_body<T: JsonSchema>(mut self) -> RouteInfo {
        self.body = Some(Body {
            schema: schema_of::<T>,
            required: false,
        });
        self
    }

    /// May fail with these statuses, too.
    fn fails_with(mut self, statuses: &'static [u16]) -> RouteInfo {
        self.errors = statuses;
        self
    }

    /// Writes an audit record named `action` for every call.
    fn audited(mut self, action: &'static str) -> RouteInfo {
        self.guard.audit = Some(action);
        self
    }

    /// An event stream: it also takes a stream ticket as `?ticket=`.
    fn streaming(mut self) -> RouteInfo {
        self.guard.tickets = true;
        self
    }

    /// Its handler reads the query parameters `T` describes.
    fn query<T: JsonSchema>(mut self) -> RouteInfo {
        self.query = Some(crate::queries::schema_of::<T>);
        self
    }

    fn headers(mut self, headers: &'static [Header]) -> RouteInfo {
        self.headers = headers;
        self
    }

    fn metrics_token(mut self) -> RouteInfo {
        self.guard.access = Access::MetricsToken;
        self
    }

    fn platform(mut self) -> RouteInfo {
        self.guard.access = Access::Platform;
        self
    }
}

/// The route table without handlers: what each route requires, takes and
/// answers.
pub fn routes() -> Vec<RouteInfo> {
    table::table().into_iter().map(|(info, _)| info).collect()
}

pub fn router(engine: EngineHandle, options: &Options) -> Router {
    let state = AppState {
        engine,
        streams: crate::stream::StreamSlots::new(options.max_streams_per_tenant),
        webhook_limits: crate::hook_limits::WebhookLimits::new(options.webhook_limits.clone()),
        metrics_token: options
            .metrics_token
            .as_deref()
            .filter(|t| !t.is_empty())
            .map(access::token_digest),
        surface: options.surface,
        secure_cookies: options.secure_cookies,
    };
    let mut router = Router::new();
    for (info, handler) in table::table() {
        if !options.surface.serves(info.path) {
            continue;
        }
        let guard = middleware::from_fn_with_state((state.clone(), info.guard), access::guard);
        // `any` routes all methods through its fallback, which only `layer` wraps.
        let handler = if info.method == "ANY" {
            handler.layer(guard)
        } else {
            handler.route_layer(guard)
        };
        router = router.route(info.path, handler);
    }
    router = if options.surface == crate::Surface::Operations {
        router.fallback(|| async { ApiError::not_found("route") })
    } else {
        router.fallback(crate::console::serve)
    };
    router
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                ErrorCode::MethodNotAllowed,
                "this route does not take that method",
            )
        })
        .layer(DefaultBodyLimit::max(options.max_body_bytes))
        .layer(middleware::from_fn(crate::extract::refuse_nul_in_url))
        .layer(middleware::from_fn(hooks::secure_answers))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .with_state(state)
}

/// One span per request, named by its route (never by ids in the path),
/// joining the caller's trace when it sends a valid `traceparent`.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    let span = tracing::info_span!(
        "http.request",
        otel.name = %format!("{} {route}", request.method()),
        otel.kind = "server",
        http.request.method = %request.method(),
        http.route = route,
    );
    let parent = request
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok());
    flowmesh_services::trace::set_parent(&span, parent);
    span
}
