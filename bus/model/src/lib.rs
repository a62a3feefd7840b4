//! The shared vocabulary of flowmesh: identifiers, the workflow document and
//! its validation, execution and node lifecycles, and the commands and events
//! that cross the bus. Pure data: serde and JSON Schema only, no I/O.

pub mod access;
pub mod call_workflow;
pub mod command;
pub mod document;
pub mod duration;
pub mod event;
pub mod for_each;
pub mod graph;
pub mod ids;
pub mod json;
pub mod lifecycle;
pub mod names;
pub mod on_error;
pub mod schema;
pub mod scope;
pub mod validate;
pub mod while_loop;

pub use access::Role;
pub use command::{Command, StartCause};
pub use document::{Edge, Node, NodeUi, Primitive, RetryPolicy, WorkflowDocument};
pub use duration::HumanDuration;
pub use event::{EventKind, ExecutionEvent};
pub use graph::WorkflowGraph;
pub use ids::{ExecutionId, TenantId, WorkflowId};
pub use json::JsonText;
pub use lifecycle::{ExecutionStatus, IllegalTransition, NodeStatus};
pub use on_error::OnError;
pub use schema::SchemaCheck;
pub use validate::{KindCatalog, ValidationError, ValidationErrors};
