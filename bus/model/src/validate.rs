//! Validation of workflow documents: structure here, kind-specific
//! configuration through a [`KindCatalog`] supplied by the node handlers.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::document::{Node, Primitive, WorkflowDocument};
use crate::for_each;
use crate::names::{Names, Upstream};
use crate::on_error;
use crate::schema::SchemaCheck;

/// Most nodes one workflow may have.
pub const MAX_NODES: usize = 1_000;
/// Most characters in a node id or workflow name.
pub const MAX_NAME_CHARS: usize = 200;
/// Names expressions reserve (what started the run, a loop's item and
/// index, the execution and workflow, variables); node ids may not take them.
pub const RESERVED_IDS: [&str; 9] = [
    "trigger",
    "input",
    "secrets",
    "item",
    "index",
    "loop",
    "execution",
    "workflow",
    "vars",
];

/// One problem, located by its JSON path (for example `nodes[3].config.url`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationError {
    pub path: String,
    pub code: String,
    pub message: String,
}

impl ValidationError {
    pub fn new(
        path: impl Into<String>,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            path: path.into(),
            code: code.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every problem found in a document.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub struct ValidationErrors {
    pub errors: Vec<ValidationError>,
}

impl ValidationErrors {
    pub fn one(error: ValidationError) -> Self {
        Self {
            errors: vec![error],
        }
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        write!(
            f,
            "the workflow has {n} problem{}",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.errors {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

/// What the catalog knows about a node of a known kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outputs {
    /// One output; outgoing edges carry no `when`.
    Single,
    /// Named outputs; every outgoing edge names one in `when`.
    Named(Vec<String>),
    /// Unknown, as the config is wrong (and reported): the edges leaving
    /// the node are not checked against its outputs.
    Unchecked,
}

/// The node kinds an engine knows, and how to check their configuration.
pub trait KindCatalog {
    /// Checks `node.config`, pushing problems located under `path`
    /// (`nodes[i]`); its templates and expressions may read `names`.
    /// Returns `None` when the kind is unknown for the primitive.
    fn check(
        &self,
        node: &Node,
        path: &str,
        names: &Names<'_>,
        errors: &mut Vec<ValidationError>,
    ) -> Option<Outputs>;

    /// The kinds known for a primitive, for error messages.
    fn kinds(&self, primitive: Primitive) -> Vec<String>;
}

/// Parses and checks a document's JSON text, returning every problem found:
/// a document that does not parse is checked against the document's JSON
/// Schema, and each node that parses on its own is checked as well.
pub fn check_json(
    text: &[u8],
    catalog: &dyn KindCatalog,
) -> Result<WorkflowDocument, ValidationErrors> {
    let parse_error = match WorkflowDocument::from_json(text) {
        Ok(doc) => return validate(&doc, catalog).map(|()| doc),
        Err(e) => e,
    };
    if parse_error
        .errors
        .iter()
        .any(|e| matches!(e.code.as_str(), "malformed_json" | "too_large"))
    {
        return Err(parse_error);
    }
    let Ok(value) = serde_json::from_slice::<Value>(text) else {
        return Err(parse_error);
    };
    let mut errors = Vec::new();
    document_schema().check(&value, "", &mut errors);
    let nodes = value.get("nodes").and_then(Value::as_array);
    let edges = value.get("edges").and_then(Value::as_array);
    let upstream = Upstream::new(
        nodes
            .into_iter()
            .flatten()
            .map(|n| string_field(n, "id").unwrap_or_default()),
        edges
            .into_iter()
            .flatten()
            .filter_map(|e| Some((string_field(e, "from")?, string_field(e, "to")?))),
    );
    for (i, node) in nodes.into_iter().flatten().enumerate() {
        if let Ok(node) = Node::deserialize(node) {
            let at = Place {
                path: &format!("nodes[{i}]"),
                names: &upstream.names(i),
            };
            check_node(&node, &at, catalog, &mut errors);
        }
    }
    if errors.is_empty() {
        // The schema let through what serde refuses: its word stands.
        return Err(parse_error);
    }
    Err(ValidationErrors { errors })
}

fn document_schema() -> &'static SchemaCheck {
    static CHECK: LazyLock<SchemaCheck> = LazyLock::new(|| {
        SchemaCheck::new(WorkflowDocument::json_schema())
            .expect("the document's derived schema compiles")
    });
    &CHECK
}

/// A string field of a JSON object.
fn string_field<'v>(value: &'v Value, key: &str) -> Option<&'v str> {
    value.get(key)?.as_str()
}

/// Where a node is checked: its path, and the names it may read.
pub(crate) struct Place<'a> {
    pub path: &'a str,
    pub names: &'a Names<'a>,
}

/// A node's kind and config, as the catalog sees them; `None` when the
/// kind is unknown.
/// How far from the origin the console may place a node.
const MAX_POSITION: f64 = 1_000_000.0;

pub(crate) fn check_node(
    node: &Node,
    at: &Place<'_>,
    catalog: &dyn KindCatalog,
    errors: &mut Vec<ValidationError>,
) -> Option<Outputs> {
    if let Some(ui) = &node.ui {
        for (axis, value) in [("x", ui.x), ("y", ui.y)] {
            if !value.is_finite() || value.abs() > MAX_POSITION {
                errors.push(ValidationError::new(
                    format!("{}.ui.{axis}", at.path),
                    "out_of_range",
                    format!("a position lies within ±{MAX_POSITION}"),
                ));
            }
        }
    }
    let known = catalog.check(node, at.path, at.names, errors);
    if known.is_none() {
        errors.push(ValidationError::new(
            format!("{}.kind", at.path),
            "unknown_kind",
            format!(
                "{:?} is not a known {} kind; known kinds: {}",
                node.kind,
                node.primitive.as_str(),
                catalog.kinds(node.primitive).join(", ")
            ),
        ));
    }
    known
}

/// Checks a whole document, returning every problem found.
pub fn validate(doc: &WorkflowDocument, catalog: &dyn KindCatalog) -> Result<(), ValidationErrors> {
    let mut errors = Vec::new();
    if doc.name.trim().is_empty() {
        errors.push(ValidationError::new(
            "name",
            "required",
            "the workflow needs a name",
        ));
    } else if doc.name.chars().count() > MAX_NAME_CHARS {
        errors.push(ValidationError::new(
            "name",
            "too_long",
            format!("at most {MAX_NAME_CHARS} characters"),
        ));
    }
    if doc.nodes.is_empty() {
        errors.push(ValidationError::new(
            "nodes",
            "required",
            "a workflow needs at least one trigger node",
        ));
    }
    if doc.nodes.len() > MAX_NODES {
        errors.push(ValidationError::new(
            "nodes",
            "too_many",
            format!("at most {MAX_NODES} nodes"),
        ));
    }

    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut outputs: Vec<Option<Outputs>> = Vec::with_capacity(doc.nodes.len());
    let upstream = Upstream::new(
        doc.nodes.iter().map(|n| n.id.as_str()),
        doc.edges.iter().map(|e| (e.from.as_str(), e.to.as_str())),
    );
    // Ids are unique across the document, loop bodies included: a body
    // reads the outer scope beside its own nodes.
    let mut taken: HashSet<String> = doc.nodes.iter().map(|n| n.id.clone()).collect();
    for (i, node) in doc.nodes.iter().enumerate() {
        let path = format!("nodes[{i}]");
        check_node_id(&node.id, &format!("{path}.id"), &mut errors);
        if *index.entry(node.id.as_str()).or_insert(i) != i {
            errors.push(ValidationError::new(
                format!("{path}.id"),
                "duplicate_id",
                format!("node id {:?} is used more than once", node.id),
            ));
        }
        if let Some(retry) = &node.retry {
            check_retry(retry, &format!("{path}.retry"), &mut errors);
        }
        errors.extend(on_error::check_node(node, &format!("{path}.on_error")));
        let names = upstream.names(i);
        let body = for_each::LoopSpec::of(node);
        // A loop's body sees the loop's scope.
        let outer: Vec<String> = names.bound().map(str::to_owned).collect();
        let at = Place {
            path: &path,
            names: &names,
        };
        outputs.push(check_node(node, &at, catalog, &mut errors));
        if let Some(body) = &body {
            let within = for_each::Within {
                path: &path,
                outer: &outer,
                catalog,
            };
            for_each::check_body(body, &within, &mut taken, &mut errors);
        }
    }
    if !doc.nodes.is_empty() && !doc.nodes.iter().any(|n| n.primitive == Primitive::Trigger) {
        errors.push(ValidationError::new(
            "nodes",
            "no_trigger",
            "a workflow needs at least one trigger node",
        ));
    }

    check_connections(doc, &index, &mut errors);
    check_edges(doc, &index, &outputs, "", &mut errors);
    // A cycle is reported beside other problems; unreachable nodes only
    // when nothing else is wrong, as a broken edge makes them so.
    let successors = successors(doc, &index);
    check_cycles(doc, &successors, "", &mut errors);
    if errors.is_empty() {
        check_reachable(doc, &successors, &mut errors);
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors { errors })
    }
}

pub(crate) fn check_node_id(id: &str, path: &str, errors: &mut Vec<ValidationError>) {
    let mut chars = id.chars();
    let well_formed = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && id.len() <= MAX_NAME_CHARS;
    if !well_formed {
        errors.push(ValidationError::new(
            path,
            "invalid_id",
            format!("node id {id:?} must start with a letter or _ and hold only letters, digits and _ (at most {MAX_NAME_CHARS})"),
        ));
    } else if RESERVED_IDS.contains(&id) {
        errors.push(ValidationError::new(
            path,
            "reserved_id",
            format!("node id {id:?} is reserved for expressions"),
        ));
    }
}

pub(crate) fn check_retry(
    retry: &crate::RetryPolicy,
    path: &str,
    errors: &mut Vec<ValidationError>,
) {
    if retry.max_attempts == 0 || retry.max_attempts > crate::RetryPolicy::MAX_ATTEMPTS {
        errors.push(ValidationError::new(
            format!("{path}.max_attempts"),
            "out_of_range",
            format!("between 1 and {}", crate::RetryPolicy::MAX_ATTEMPTS),
        ));
    }
    if !(retry.multiplier.is_finite() && (1.0..=10.0).contains(&retry.multiplier)) {
        errors.push(ValidationError::new(
            format!("{path}.multiplier"),
            "out_of_range",
            "between 1.0 and 10.0",
        ));
    }
    if retry.initial_backoff > retry.max_backoff {
        errors.push(ValidationError::new(
            format!("{path}.initial_backoff"),
            "out_of_range",
            "initial_backoff may not exceed max_backoff",
        ));
    }
}

/// Actions name the connection they use in `config.connection`.
fn check_connections(
    doc: &WorkflowDocument,
    index: &HashMap<&str, usize>,
    errors: &mut Vec<ValidationError>,
) {
    for (i, node) in doc.nodes.iter().enumerate() {
        let Some(reference) = node.config.get("connection") else {
            continue;
        };
        let target = reference
            .as_str()
            .and_then(|id| index.get(id))
            .map(|&j| &doc.nodes[j]);
        if !target.is_some_and(|t| t.primitive == Primitive::Connection) {
            errors.push(ValidationError::new(
                format!("nodes[{i}].config.connection"),
                "unknown_connection",
                format!("{reference} is not the id of a connection node"),
            ));
        }
    }
}

/// Checks the edges of a document (or of a loop's body, whose edges are at
/// `prefix`, for example `nodes[2].config.body.`).
pub(crate) fn check_edges(
    doc: &WorkflowDocument,
    index: &HashMap<&str, usize>,
    outputs: &[Option<Outputs>],
    prefix: &str,
    errors: &mut Vec<ValidationError>,
) {
    let mut seen = HashSet::new();
    for (i, edge) in doc.edges.iter().enumerate() {
        let path = format!("{prefix}edges[{i}]");
        let from = index.get(edge.from.as_str()).copied();
        let to = index.get(edge.to.as_str()).copied();
        if from.is_none() {
            errors.push(ValidationError::new(
                format!("{path}.from"),
                "unknown_node",
                format!("no node has id {:?}", edge.from),
            ));
        }
        if to.is_none() {
            errors.push(ValidationError::new(
                format!("{path}.to"),
                "unknown_node",
                format!("no node has id {:?}", edge.to),
            ));
        }
        let (Some(from), Some(to)) = (from, to) else {
            continue;
        };
        if from == to {
            errors.push(ValidationError::new(
                path.clone(),
                "cycle",
                format!("node {:?} points at itself", edge.from),
            ));
        }
        if !seen.insert((from, to, edge.when.clone())) {
            errors.push(ValidationError::new(
                path.clone(),
                "duplicate_edge",
                "the same edge is listed twice",
            ));
        }
        if doc.nodes[to].primitive == Primitive::Trigger {
            errors.push(ValidationError::new(
                format!("{path}.to"),
                "edge_into_trigger",
                format!(
                    "trigger {:?} starts executions and cannot have incoming edges",
                    edge.to
                ),
            ));
        }
        for (end, node) in [("from", &doc.nodes[from]), ("to", &doc.nodes[to])] {
            if node.primitive == Primitive::Connection {
                errors.push(ValidationError::new(
                    format!("{path}.{end}"),
                    "edge_on_connection",
                    format!(
                        "connection {:?} is referenced by actions, not wired with edges",
                        node.id
                    ),
                ));
            }
        }
        match (&outputs[from], &edge.when) {
            (Some(Outputs::Named(names)), Some(when)) if !names.contains(when) => {
                errors.push(ValidationError::new(
                    format!("{path}.when"),
                    "unknown_output",
                    format!(
                        "{:?} has no output {when:?}; its outputs are {}",
                        edge.from,
                        names.join(", ")
                    ),
                ));
            }
            (Some(Outputs::Named(names)), None) => errors.push(ValidationError::new(
                format!("{path}.when"),
                "required",
                format!(
                    "edges leaving {:?} must name one of its outputs: {}",
                    edge.from,
                    names.join(", ")
                ),
            )),
            (Some(Outputs::Single), Some(when)) => {
                errors.extend(on_error::check_branch(
                    &doc.nodes[from],
                    when,
                    &format!("{path}.when"),
                ));
            }
            _ => {}
        }
    }
}

/// Reports each cycle of a document (or of a loop's body, at `prefix`).
pub(crate) fn check_cycles(
    doc: &WorkflowDocument,
    successors: &[Vec<usize>],
    prefix: &str,
    errors: &mut Vec<ValidationError>,
) {
    for cycle in &cycles(successors) {
        let names: Vec<&str> = cycle.iter().map(|&i| doc.nodes[i].id.as_str()).collect();
        errors.push(ValidationError::new(
            format!("{prefix}edges"),
            "cycle",
            format!(
                "the edges form a cycle: {} → {}; a workflow must be acyclic",
                names.join(" → "),
                names[0]
            ),
        ));
    }
}

/// The successors of each node, along the edges whose ends exist.
pub(crate) fn successors(doc: &WorkflowDocument, index: &HashMap<&str, usize>) -> Vec<Vec<usize>> {
    let mut successors = vec![Vec::new(); doc.nodes.len()];
    for edge in &doc.edges {
        if let (Some(&from), Some(&to)) =
            (index.get(edge.from.as_str()), index.get(edge.to.as_str()))
            && from != to
        {
            successors[from].push(to);
        }
    }
    successors
}

/// Disjoint cycles of the graph, each as the nodes on it in edge order,
/// starting at its first node in the document. Nodes only leading into or
/// out of a cycle are not on it.
fn cycles(successors: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let n = successors.len();
    let mut alive = vec![true; n];
    let mut found = Vec::new();
    loop {
        prune(successors, &mut alive);
        let Some(start) = (0..n).find(|&i| alive[i]) else {
            return found;
        };
        // Every live node has a live successor: walking them must repeat.
        let mut walk = vec![start];
        let mut position = HashMap::from([(start, 0)]);
        let first = loop {
            let at = *walk.last().unwrap_or(&start);
            let next = successors[at]
                .iter()
                .copied()
                .find(|&s| alive[s])
                .unwrap_or(start);
            if let Some(&p) = position.get(&next) {
                break p;
            }
            position.insert(next, walk.len());
            walk.push(next);
        };
        let mut cycle = walk.split_off(first);
        let lowest = (0..cycle.len()).min_by_key(|&k| cycle[k]).unwrap_or(0);
        cycle.rotate_left(lowest);
        for &i in &cycle {
            alive[i] = false;
        }
        found.push(cycle);
    }
}

/// Takes out, again and again, the live nodes with no live predecessor or
/// no live successor: what is left lies on cycles or between them.
fn prune(successors: &[Vec<usize>], alive: &mut [bool]) {
    let n = successors.len();
    loop {
        let mut has_in = vec![false; n];
        let mut has_out = vec![false; n];
        for from in (0..n).filter(|&i| alive[i]) {
            for &to in successors[from].iter().filter(|&&to| alive[to]) {
                has_out[from] = true;
                has_in[to] = true;
            }
        }
        let mut changed = false;
        for i in 0..n {
            if alive[i] && !(has_in[i] && has_out[i]) {
                alive[i] = false;
                changed = true;
            }
        }
        if !changed {
            return;
        }
    }
}

fn check_reachable(
    doc: &WorkflowDocument,
    successors: &[Vec<usize>],
    errors: &mut Vec<ValidationError>,
) {
    let n = doc.nodes.len();
    let mut reached = vec![false; n];
    let mut stack: Vec<usize> = (0..n)
        .filter(|&i| doc.nodes[i].primitive == Primitive::Trigger)
        .collect();
    while let Some(i) = stack.pop() {
        if std::mem::replace(&mut reached[i], true) {
            continue;
        }
        stack.extend(&successors[i]);
    }
    for (i, node) in doc.nodes.iter().enumerate() {
        if !reached[i] && node.primitive != Primitive::Connection {
            errors.push(ValidationError::new(
                format!("nodes[{i}]"),
                "unreachable",
                format!(
                    "no trigger leads to node {:?}; connect it or remove it",
                    node.id
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests;
