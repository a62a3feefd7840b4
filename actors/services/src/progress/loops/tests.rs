use std::sync::Arc;

use flowmesh_model::graph::WorkflowGraph;
use flowmesh_model::lifecycle::NodeTransition;
use flowmesh_model::{NodeStatus, WorkflowDocument};
use flowmesh_store::StepRecord;
use serde_json::{Value, json};

use super::super::tests::record;
use super::super::{Decision, Progress};

/// `t → each`, whose body is `a → b`, with this config besides.
fn looped(config: Value) -> Arc<WorkflowGraph> {
    let mut config = config;
    config["items"] = json!("trigger.body");
    config["body"] = json!({"nodes": [
        {"id": "a", "type": "data", "kind": "mapping"},
        {"id": "b", "type": "data", "kind": "mapping"}
    ], "edges": [{"from": "a", "to": "b"}]});
    Arc::new(WorkflowGraph::new(
        WorkflowDocument::from_value(json!({"name": "l", "nodes": [
            {"id": "t", "type": "trigger", "kind": "manual"},
            {"id": "each", "type": "action", "kind": "for_each", "config": config}
        ], "edges": [{"from": "t", "to": "each"}]}))
        .unwrap(),
    ))
}

fn entry(p: &Progress, key: &str) -> usize {
    p.index[key]
}

fn succeed(p: &mut Progress, key: &str) {
    let i = entry(p, key);
    p.apply(i, NodeTransition::Start).unwrap();
    p.apply(i, NodeTransition::Succeed).unwrap();
    p.nodes[i].output = Some(json!({"node": p.nodes[i].node}));
}

fn fail(p: &mut Progress, key: &str) {
    let i = entry(p, key);
    p.apply(i, NodeTransition::Start).unwrap();
    p.apply(i, NodeTransition::Fail).unwrap();
    p.nodes[i].error = Some("permanent: no".into());
}

/// Starts the loop node and gives it its items.
fn started(graph: Arc<WorkflowGraph>, items: Vec<Value>) -> Progress {
    let mut p = Progress::new(graph, &record(json!({}), vec![]));
    assert_eq!(p.decide(), vec![Decision::Run(1)]);
    p.apply(1, NodeTransition::Start).unwrap();
    p.set_items(1, items);
    p
}

/// Progress rebuilt from what was journaled: the loop with its items, and
/// every instance that changed.
fn reloaded(graph: Arc<WorkflowGraph>, p: &Progress) -> Progress {
    let steps: Vec<StepRecord> = p
        .nodes
        .iter()
        .filter(|s| s.status != NodeStatus::Pending && s.node != "t")
        .cloned()
        .collect();
    Progress::new(graph, &record(json!({}), steps))
}

fn runs(p: &Progress) -> Vec<String> {
    p.decide()
        .into_iter()
        .filter_map(|d| match d {
            Decision::Run(i) => Some(p.nodes[i].node.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn iterations_start_up_to_the_concurrency_and_the_loop_finishes_in_input_order() {
    let mut p = started(
        looped(json!({"concurrency": 2})),
        vec![json!("x"), json!("y"), json!("z")],
    );
    assert!(p.admit());
    assert_eq!(runs(&p), ["each[0].a", "each[1].a"]);
    assert!(!p.admit(), "two iterations unsettled: no room");
    succeed(&mut p, "each[1].a");
    assert_eq!(runs(&p), ["each[0].a", "each[1].b"]);
    let b1 = entry(&p, "each[1].b");
    assert_eq!(p.scope_of(b1)["item"], json!("y"));
    assert_eq!(p.scope_of(b1)["index"], json!(1));
    assert_eq!(p.scope_of(b1)["a"], json!({"node": "each[1].a"}));
    succeed(&mut p, "each[1].b");
    assert!(p.admit(), "iteration 1 settled: iteration 2 starts");
    assert_eq!(runs(&p), ["each[0].a", "each[2].a"]);
    for key in ["each[0].a", "each[0].b", "each[2].a", "each[2].b"] {
        assert!(!p.decide().contains(&Decision::Finish(1)));
        succeed(&mut p, key);
    }
    assert_eq!(p.decide(), vec![Decision::Finish(1)]);
    let iterations = p.scope_of(1)["loop"]["iterations"].clone();
    let indexes: Vec<&Value> = iterations
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["index"])
        .collect();
    assert_eq!(indexes, [&json!(0), &json!(1), &json!(2)]);
    assert_eq!(iterations[2]["scope"]["b"], json!({"node": "each[2].b"}));
    assert!(
        !p.scope().contains_key("a"),
        "a body's nodes are not in the outer scope"
    );
}

#[test]
fn no_items_finish_at_once() {
    let p = started(looped(json!({})), vec![]);
    assert_eq!(p.decide(), vec![Decision::Finish(1)]);
}

#[test]
fn a_failed_item_stops_the_loop_once_the_started_ones_settle() {
    let mut p = started(
        looped(json!({"concurrency": 2})),
        vec![json!(1), json!(2), json!(3)],
    );
    p.admit();
    fail(&mut p, "each[0].a");
    // b is skipped as after any unrouted failure; iteration 1 still runs.
    assert_eq!(
        p.decide(),
        vec![
            Decision::Skip(entry(&p, "each[0].b")),
            Decision::Run(entry(&p, "each[1].a"))
        ]
    );
    p.apply(entry(&p, "each[0].b"), NodeTransition::Skip)
        .unwrap();
    assert!(!p.admit(), "no iteration starts after a failure");
    succeed(&mut p, "each[1].a");
    succeed(&mut p, "each[1].b");
    assert_eq!(p.decide(), vec![Decision::Finish(1)]);
    let iterations = p.scope_of(1)["loop"]["iterations"].clone();
    assert_eq!(
        iterations[0]["error"],
        json!("node a failed: permanent: no")
    );
    assert_eq!(iterations.as_array().unwrap().len(), 2);
}

#[test]
fn with_continue_a_failed_item_does_not_stop_the_others() {
    let mut p = started(
        looped(json!({"on_item_error": "continue"})),
        vec![json!(1), json!(2)],
    );
    p.admit();
    fail(&mut p, "each[0].a");
    p.apply(entry(&p, "each[0].b"), NodeTransition::Skip)
        .unwrap();
    assert!(p.admit());
    assert_eq!(runs(&p), ["each[1].a"]);
}

#[test]
fn the_journal_gives_back_started_iterations_and_never_reruns_finished_ones() {
    let graph = looped(json!({"concurrency": 2}));
    let mut p = started(graph.clone(), vec![json!("x"), json!("y"), json!("z")]);
    p.admit();
    succeed(&mut p, "each[0].a");
    succeed(&mut p, "each[0].b");
    p.admit();
    p.apply(entry(&p, "each[1].a"), NodeTransition::Start)
        .unwrap();
    let mut back = reloaded(graph, &p);
    assert!(back.is_looping(1));
    let a0 = entry(&back, "each[0].a");
    assert_eq!(back.nodes[a0].status, NodeStatus::Succeeded);
    assert_eq!(
        back.nodes[entry(&back, "each[1].a")].status,
        NodeStatus::Running
    );
    assert!(
        !back.index.contains_key("each[2].a"),
        "iteration 2 had started unjournaled"
    );
    assert!(back.admit(), "it starts again: one unsettled, room for two");
    assert!(!back.admit());
    assert_eq!(runs(&back), ["each[2].a"]);
}

/// `t → outer`, whose body is `inner`, a loop over `item.parts` whose
/// body is `x`; the outer loop runs `concurrency` iterations at once.
fn nested(concurrency: u32) -> Arc<WorkflowGraph> {
    let inner = json!({"id": "inner", "type": "action", "kind": "for_each", "config": {
        "items": "item.parts",
        "body": {"nodes": [{"id": "x", "type": "data", "kind": "mapping"}]}
    }});
    Arc::new(WorkflowGraph::new(
        WorkflowDocument::from_value(json!({"name": "n", "nodes": [
            {"id": "t", "type": "trigger", "kind": "manual"},
            {"id": "outer", "type": "action", "kind": "for_each", "config": {
                "items": "trigger.body", "concurrency": concurrency, "body": {"nodes": [inner]}
            }}
        ], "edges": [{"from": "t", "to": "outer"}]}))
        .unwrap(),
    ))
}

#[test]
fn steps_count_the_iterations_every_loop_has_yet_to_start() {
    let mut p = started(nested(3), vec![json!({}), json!({}), json!({})]);
    assert_eq!(p.steps_after(1, 0), 2 + 3, "the outer loop's three to come");
    p.admit();
    let inner: Vec<usize> = (0..3)
        .map(|k| entry(&p, &format!("outer[{k}].inner")))
        .collect();
    for &i in &inner {
        p.apply(i, NodeTransition::Start).unwrap();
    }
    // Each inner loop of 9,000 items is judged with the others' iterations
    // still to come counted: the first two fit in 20,000 steps, the third
    // would not, though few iterations have started yet.
    assert!(p.steps_after(inner[0], 9_000) <= super::MAX_STEPS);
    p.set_items(inner[0], vec![json!(0); 9_000]);
    p.admit();
    assert!(p.steps_after(inner[1], 9_000) <= super::MAX_STEPS);
    p.set_items(inner[1], vec![json!(0); 9_000]);
    p.admit();
    assert_eq!(p.steps_after(inner[2], 9_000), 5 + 27_000);
}

#[test]
fn nested_loops_key_their_steps_by_both_scopes() {
    let graph = nested(1);
    let mut p = started(
        graph.clone(),
        vec![json!({"parts": [1, 2]}), json!({"parts": [3]})],
    );
    p.admit();
    let inner0 = entry(&p, "outer[0].inner");
    assert_eq!(p.decide(), vec![Decision::Run(inner0)]);
    p.apply(inner0, NodeTransition::Start).unwrap();
    p.set_items(inner0, vec![json!(1), json!(2)]);
    p.admit();
    let x = entry(&p, "outer[0].inner[0].x");
    assert_eq!(
        p.scope_of(x)["item"],
        json!(1),
        "the inner item hides the outer one"
    );
    succeed(&mut p, "outer[0].inner[0].x");
    let mut back = reloaded(graph, &p);
    let x = entry(&back, "outer[0].inner[0].x");
    assert_eq!(back.nodes[x].status, NodeStatus::Succeeded);
    assert_eq!(
        back.nodes[x].output,
        Some(json!({"node": "outer[0].inner[0].x"}))
    );
    // The inner loop carries on from its finished iteration.
    assert!(back.admit());
    assert_eq!(runs(&back), ["outer[0].inner[1].x"]);
}

#[test]
fn a_while_runs_one_iteration_per_state_and_hands_on_only_its_last() {
    let graph = Arc::new(WorkflowGraph::new(
        WorkflowDocument::from_value(json!({"name": "w", "nodes": [
            {"id": "t", "type": "trigger", "kind": "manual"},
            {"id": "w", "type": "action", "kind": "while", "config": {
                "state": "0", "next_state": "state + 1", "until": "state > 1",
                "max_iterations": 5,
                "body": {"nodes": [{"id": "x", "type": "data", "kind": "mapping"}]}}}
        ], "edges": [{"from": "t", "to": "w"}]}))
        .unwrap(),
    ));
    let mut p = started(graph.clone(), vec![json!(0)]);
    assert!(p.admit());
    let x0 = entry(&p, "w[0].x");
    assert_eq!(p.scope_of(x0)["state"], json!(0));
    assert!(!p.scope_of(x0).contains_key("item"));
    succeed(&mut p, "w[0].x");
    assert_eq!(p.decide(), vec![Decision::Finish(1)]);
    p.push_state(1, json!(1));
    assert!(p.admit());
    assert!(!p.decide().contains(&Decision::Finish(1)));
    succeed(&mut p, "w[1].x");
    let iterations = p.scope_of(1)["loop"]["iterations"].clone();
    assert_eq!(iterations.as_array().map(Vec::len), Some(1), "{iterations}");
    assert_eq!(iterations[0]["index"], json!(1));
    assert_eq!(iterations[0]["scope"]["state"], json!(1));
    // Only the last state is journaled, with how many came before.
    assert_eq!(p.nodes[1].input, Some(json!({"items": [1], "before": 1})));
    let mut back = reloaded(graph, &p);
    assert_eq!(
        back.nodes[1].input,
        Some(json!({"items": [1], "before": 1}))
    );
    assert_eq!(
        back.nodes[entry(&back, "w[1].x")].status,
        NodeStatus::Succeeded
    );
    assert_eq!(back.decide(), vec![Decision::Finish(1)]);
    let iterations = back.scope_of(1)["loop"]["iterations"].clone();
    assert_eq!(iterations[0]["scope"]["state"], json!(1), "{iterations}");
    // And the next state after a restore goes on from there.
    back.push_state(1, json!(2));
    assert_eq!(
        back.nodes[1].input,
        Some(json!({"items": [2], "before": 2}))
    );
    assert!(back.admit());
    assert_eq!(back.scope_of(entry(&back, "w[2].x"))["state"], json!(2));
}
