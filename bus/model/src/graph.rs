//! The compiled shape of a validated workflow: nodes by index with their
//! incoming and outgoing edges, ready for an execution to walk.

use std::collections::HashMap;

use crate::document::{Edge, Node, Primitive, WorkflowDocument};

/// One end of an edge, seen from the other end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub node: usize,
    /// The output of the source that takes this edge; `None` for plain edges.
    pub when: Option<String>,
}

#[derive(Clone, Debug)]
pub struct WorkflowGraph {
    pub document: WorkflowDocument,
    pub index: HashMap<String, usize>,
    pub incoming: Vec<Vec<Link>>,
    pub outgoing: Vec<Vec<Link>>,
}

impl WorkflowGraph {
    /// Builds the graph of a document that passed validation.
    pub fn new(document: WorkflowDocument) -> Self {
        let n = document.nodes.len();
        let index: HashMap<String, usize> = document
            .nodes
            .iter()
            .enumerate()
            .map(|(i, node)| (node.id.clone(), i))
            .collect();
        let mut incoming = vec![Vec::new(); n];
        let mut outgoing = vec![Vec::new(); n];
        for edge in &document.edges {
            let (Some(&from), Some(&to)) = (index.get(&edge.from), index.get(&edge.to)) else {
                continue;
            };
            outgoing[from].push(Link {
                node: to,
                when: edge.when.clone(),
            });
            incoming[to].push(Link {
                node: from,
                when: edge.when.clone(),
            });
        }
        Self {
            document,
            index,
            incoming,
            outgoing,
        }
    }

    /// The graph of nodes and edges outside a document (a loop's body).
    pub fn from_parts(nodes: Vec<Node>, edges: Vec<Edge>) -> Self {
        Self::new(WorkflowDocument {
            name: String::new(),
            description: None,
            nodes,
            edges,
            settings: Default::default(),
        })
    }

    pub fn node(&self, i: usize) -> &Node {
        &self.document.nodes[i]
    }

    pub fn len(&self) -> usize {
        self.document.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.document.nodes.is_empty()
    }

    /// Nodes that take part in executions (connections are only referenced).
    pub fn flow_nodes(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.len()).filter(|&i| self.node(i).primitive != Primitive::Connection)
    }

    /// The first trigger node for which `pred` holds.
    pub fn find_trigger(&self, pred: impl Fn(&Node) -> bool) -> Option<usize> {
        (0..self.len()).find(|&i| {
            let n = self.node(i);
            n.primitive == Primitive::Trigger && pred(n)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn links_both_ways() {
        let doc = WorkflowDocument::from_value(json!({"name": "g", "nodes": [
            {"id": "t", "type": "trigger", "kind": "manual"},
            {"id": "c", "type": "condition", "kind": "if_else"},
            {"id": "a", "type": "data", "kind": "mapping"},
            {"id": "k", "type": "connection", "kind": "credentials"}
        ], "edges": [{"from": "t", "to": "c"}, {"from": "c", "to": "a", "when": "true"}]}))
        .unwrap();
        let g = WorkflowGraph::new(doc);
        assert_eq!(
            g.outgoing[0],
            vec![Link {
                node: 1,
                when: None
            }]
        );
        assert_eq!(
            g.incoming[2],
            vec![Link {
                node: 1,
                when: Some("true".into())
            }]
        );
        assert_eq!(g.flow_nodes().collect::<Vec<_>>(), vec![0, 1, 2]);
        assert_eq!(g.find_trigger(|_| true), Some(0));
    }
}
