//! Test runs: any version of a workflow, published or not, started by hand
//! with some nodes' outputs given (mocked) instead of run.

use flowmesh_api::{StartRequest, TestRunRequest};
use flowmesh_model::for_each::LoopSpec;
use flowmesh_model::graph::WorkflowGraph;
use flowmesh_model::scope::{StepKey, node_of};
use flowmesh_model::validate::ValidationError;
use flowmesh_model::{Node, Primitive, WorkflowId};
use flowmesh_store::TestRun;
use serde_json::{Map, Value, json};

use super::EngineHandle;
use crate::api::{Accept, Fingerprint, Started};
use crate::error::Error;

/// The request field that carries mocks, refused where they do not apply.
pub(crate) const MOCKS: &str = "mocks";

impl EngineHandle {
    /// Starts `version` of a workflow as a test run: charged and admitted
    /// like any start, marked as a test, with `mocks` as the outputs of the
    /// nodes they name.
    pub async fn test_run(&self, request: TestRunRequest) -> Result<Started, Error> {
        self.get_workflow(request.tenant, request.workflow).await?;
        let graph = self
            .version_graph(request.workflow, request.version)
            .await?;
        let trigger = self.registry().api_trigger(&graph).ok_or_else(|| {
            Error::Conflict(format!(
                "version {} has no trigger that can be started through the API",
                request.version
            ))
        })?;
        check_mocks(&graph, &request.mocks).map_err(Error::Field)?;
        let data = json!({"body": request.input, "headers": {}, "query": {}});
        self.accept(Accept {
            tenant: request.tenant,
            workflow: request.workflow,
            version: request.version,
            graph,
            trigger,
            data,
            idempotency_key: None,
            request: Fingerprint::Api {
                input: request.input,
            },
            watch: request.wait,
            test: Some(TestRun {
                mocks: request.mocks,
            }),
        })
        .await
    }

    /// One version's graph; a version the workflow does not have is named
    /// in the answer.
    pub(crate) async fn version_graph(
        &self,
        workflow: WorkflowId,
        version: i64,
    ) -> Result<std::sync::Arc<WorkflowGraph>, Error> {
        self.graph(workflow, version).await.map_err(|e| match e {
            Error::NotFound(_) => Error::NotFound(if version < 1 {
                "workflow version (versions are numbered from 1)"
            } else {
                "workflow version (no such version of this workflow)"
            }),
            e => e,
        })
    }
}

/// Refuses mocks on the API's start route: only test runs take them, and
/// silently running the real nodes would surprise.
pub(crate) fn refuse_mocks(request: &StartRequest) -> Result<(), Error> {
    if request.input.get(MOCKS).is_some() {
        return Err(Error::Field(ValidationError::new(
            MOCKS,
            "not_a_test_run",
            "mocks are taken only by test runs: POST /v1/workflows/{id}/versions/{version}/executions \
             with {\"input\": ..., \"mocks\": ...}",
        )));
    }
    Ok(())
}

/// Whether a node of `graph` may be mocked: an action or data node (of
/// the workflow or of a loop's body; see [`check_mock`]).
pub(crate) fn mockable(graph: &WorkflowGraph, key: &str) -> bool {
    check_mock(graph, key).is_ok()
}

/// A test run's mock of the step keyed `key`: the one naming that step
/// (`each[3].charge`: that iteration only), else the one naming its node
/// (`charge`: every iteration).
pub fn mock_of<'m>(mocks: &'m Map<String, Value>, key: &str) -> Option<&'m Value> {
    mocks.get(key).or_else(|| mocks.get(node_of(key)))
}

/// Each mock must name an action or data node of the version (see
/// [`check_mock`]).
pub(crate) fn check_mocks(
    graph: &WorkflowGraph,
    mocks: &Map<String, Value>,
) -> Result<(), ValidationError> {
    mocks.keys().try_for_each(|key| check_mock(graph, key))
}

/// A mock names an action or data node: a trigger's output is the input,
/// a condition chooses a branch a mock cannot give, and a connection never
/// runs. A node of a loop's body is named by its id (mocked in every
/// iteration) or by its step key (`each[3].charge`: in that one).
fn check_mock(graph: &WorkflowGraph, key: &str) -> Result<(), ValidationError> {
    let path = format!("{MOCKS}.{key}");
    let unknown = |why: String| ValidationError::new(&path, "unknown_node", why);
    let node = match StepKey::parse(key)
        .ok()
        .and_then(|k| Some((k.scope()?, k.node)))
    {
        Some((scope, id)) => {
            let levels = scope
                .levels(&graph.document.nodes)
                .map_err(|e| unknown(e.0))?;
            let body = levels.last().map(|l| &l.spec.body.nodes);
            body.and_then(|nodes| nodes.iter().find(|n| n.id == id).cloned())
                .ok_or_else(|| unknown(format!("the body of {scope} has no node {id:?}")))?
        }
        None => find_node(&graph.document.nodes, key)
            .ok_or_else(|| unknown(format!("this version has no node {key:?}")))?,
    };
    let why = match node.primitive {
        Primitive::Action | Primitive::Data => return Ok(()),
        Primitive::Trigger => "is the trigger: give its data as `input` instead",
        Primitive::Condition => {
            "is a condition, which chooses a branch a mock cannot give: mock the nodes it reads instead"
        }
        Primitive::Connection => "is a connection, which never runs",
    };
    Err(ValidationError::new(
        path,
        "not_mockable",
        format!("node {key:?} {why}"),
    ))
}

/// The node with this id, in the workflow or in any loop's body.
fn find_node(nodes: &[Node], id: &str) -> Option<Node> {
    nodes.iter().find_map(|node| {
        if node.id == id {
            return Some(node.clone());
        }
        LoopSpec::of(node).and_then(|spec| find_node(&spec.body.nodes, id))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowmesh_model::WorkflowDocument;

    fn graph() -> WorkflowGraph {
        let document = WorkflowDocument::from_value(json!({"name": "t", "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual", "config": {}},
            {"id": "check", "type": "condition", "kind": "if_else", "config": {"logic": "true"}},
            {"id": "fetch", "type": "action", "kind": "http_request", "config": {"url": "http://example.com"}}
        ], "edges": [
            {"from": "start", "to": "check"},
            {"from": "check", "to": "fetch", "when": "true"}
        ]}))
        .unwrap();
        WorkflowGraph::new(document)
    }

    fn mocks(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn mocks_name_action_or_data_nodes_of_the_version() {
        let graph = graph();
        assert!(check_mocks(&graph, &mocks(json!({"fetch": {"status": 200}}))).is_ok());
        let unknown = check_mocks(&graph, &mocks(json!({"nope": 1}))).unwrap_err();
        assert_eq!(
            (unknown.path.as_str(), unknown.code.as_str()),
            ("mocks.nope", "unknown_node")
        );
        let trigger = check_mocks(&graph, &mocks(json!({"start": {}}))).unwrap_err();
        assert_eq!(
            (trigger.path.as_str(), trigger.code.as_str()),
            ("mocks.start", "not_mockable")
        );
        assert!(trigger.message.contains("input"), "{}", trigger.message);
        let condition = check_mocks(&graph, &mocks(json!({"check": true}))).unwrap_err();
        assert_eq!(condition.path, "mocks.check");
    }

    #[test]
    fn body_nodes_are_mocked_by_id_or_by_their_iteration() {
        let document = WorkflowDocument::from_value(json!({"name": "t", "nodes": [
            {"id": "start", "type": "trigger", "kind": "manual", "config": {}},
            {"id": "each", "type": "action", "kind": "for_each", "config": {
                "items": "trigger.body",
                "body": {"nodes": [{"id": "charge", "type": "action", "kind": "http_request",
                    "config": {"url": "http://example.com"}}]}}}
        ], "edges": [{"from": "start", "to": "each"}]}))
        .unwrap();
        let graph = WorkflowGraph::new(document);
        let ok = json!({"charge": {"status": 200}, "each[3].charge": {"status": 402}});
        assert!(check_mocks(&graph, &mocks(ok.clone())).is_ok());
        for (bad, path) in [
            (json!({"each[1].nope": 1}), "mocks.each[1].nope"),
            (json!({"start[1].charge": 1}), "mocks.start[1].charge"),
            (json!({"each[x].charge": 1}), "mocks.each[x].charge"),
        ] {
            let refused = check_mocks(&graph, &mocks(bad)).unwrap_err();
            assert_eq!(
                (refused.path.as_str(), refused.code.as_str()),
                (path, "unknown_node")
            );
        }
        let mocks = mocks(ok);
        assert_eq!(
            mock_of(&mocks, "each[3].charge"),
            Some(&json!({"status": 402}))
        );
        assert_eq!(
            mock_of(&mocks, "each[4].charge"),
            Some(&json!({"status": 200}))
        );
        assert_eq!(mock_of(&mocks, "each"), None);
    }

    #[test]
    fn the_start_route_refuses_mocks() {
        let request = |input: Value| StartRequest {
            tenant: flowmesh_model::TenantId::new(),
            workflow: WorkflowId::new(),
            input,
            idempotency_key: None,
            wait: false,
        };
        let refused = refuse_mocks(&request(json!({"mocks": {}}))).unwrap_err();
        assert!(matches!(refused, Error::Field(ref e) if e.path == "mocks"));
        assert!(refuse_mocks(&request(json!({"order": 1}))).is_ok());
    }
}
