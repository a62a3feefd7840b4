//! The names a node's templates and expressions may read at their root:
//! `trigger`, the ids of the nodes upstream of it (whose outputs exist when
//! it runs; a skipped one's is null), and what a kind binds for one field.

use std::collections::HashMap;

/// The name under which every node sees what started the run.
pub const TRIGGER: &str = "trigger";

/// What a name at the root of a node's template or expression is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Name {
    /// It has a value when the node runs.
    Bound,
    /// The node itself, whose output does not exist while it runs.
    Itself,
    /// Another node, not upstream of this one: it has no output yet when
    /// this one runs.
    NotUpstream,
    /// Neither bound nor a node.
    Unknown,
}

/// Which nodes lead to which along a document's edges; edges whose ends do
/// not exist are left out.
#[derive(Debug)]
pub struct Upstream<'a> {
    ids: Vec<&'a str>,
    index: HashMap<&'a str, usize>,
    predecessors: Vec<Vec<usize>>,
}

impl<'a> Upstream<'a> {
    /// The nodes by id, in document order, and the edges as (from, to).
    pub fn new(
        ids: impl IntoIterator<Item = &'a str>,
        edges: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        let ids: Vec<&str> = ids.into_iter().collect();
        let mut index = HashMap::with_capacity(ids.len());
        for (i, id) in ids.iter().enumerate() {
            index.entry(*id).or_insert(i);
        }
        let mut predecessors = vec![Vec::new(); ids.len()];
        for (from, to) in edges {
            if let (Some(&from), Some(&to)) = (index.get(from), index.get(to)) {
                predecessors[to].push(from);
            }
        }
        Self {
            ids,
            index,
            predecessors,
        }
    }

    /// The names node `node` (its place in the document) may read.
    pub fn names(&self, node: usize) -> Names<'_> {
        let mut reaches = vec![false; self.ids.len()];
        let mut stack: Vec<usize> = self.predecessors.get(node).cloned().unwrap_or_default();
        while let Some(i) = stack.pop() {
            if !std::mem::replace(&mut reaches[i], true) {
                stack.extend(&self.predecessors[i]);
            }
        }
        Names {
            upstream: self,
            node,
            reaches,
            bound: vec![TRIGGER],
        }
    }
}

/// The names one node's templates and expressions may read at their root.
#[derive(Clone, Debug)]
pub struct Names<'a> {
    upstream: &'a Upstream<'a>,
    node: usize,
    /// Whether each node of the document is upstream of this one.
    reaches: Vec<bool>,
    /// Names bound besides the upstream nodes' ids.
    bound: Vec<&'a str>,
}

impl<'a> Names<'a> {
    /// Binds one more name (a filter binds `item` for its condition).
    pub fn bind(&mut self, name: &'a str) {
        if !self.bound.contains(&name) {
            self.bound.push(name);
        }
    }

    pub fn lookup(&self, name: &str) -> Name {
        if self.bound.contains(&name) {
            return Name::Bound;
        }
        match self.upstream.index.get(name) {
            Some(&i) if self.reaches[i] => Name::Bound,
            Some(&i) if i == self.node => Name::Itself,
            Some(_) => Name::NotUpstream,
            None => Name::Unknown,
        }
    }

    /// Every bound name: the bound ones first, then the upstream nodes' ids
    /// in document order.
    pub fn bound(&self) -> impl Iterator<Item = &str> {
        let upstream = self.upstream.ids.iter().enumerate();
        let nodes = upstream
            .filter(|(i, _)| self.reaches[*i])
            .map(|(_, id)| *id);
        self.bound.iter().copied().chain(nodes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_edges_upstream() {
        let graph = Upstream::new(
            ["start", "check", "yes", "no", "after", "key"],
            [
                ("start", "check"),
                ("check", "yes"),
                ("check", "no"),
                ("yes", "after"),
                ("no", "after"),
                ("ghost", "after"),
            ],
        );
        let mut names = graph.names(4);
        assert_eq!(
            names.bound().collect::<Vec<_>>(),
            ["trigger", "start", "check", "yes", "no"]
        );
        assert_eq!(names.lookup("check"), Name::Bound);
        assert_eq!(names.lookup("after"), Name::Itself);
        assert_eq!(names.lookup("key"), Name::NotUpstream);
        assert_eq!(names.lookup("ghost"), Name::Unknown);
        assert_eq!(names.lookup("item"), Name::Unknown);
        names.bind("item");
        assert_eq!(names.lookup("item"), Name::Bound);
        let yes = graph.names(2);
        assert_eq!(yes.lookup("no"), Name::NotUpstream);
        assert_eq!(yes.lookup("trigger"), Name::Bound);
    }

    #[test]
    fn a_node_on_a_cycle_is_upstream_of_itself() {
        let graph = Upstream::new(["t", "a", "b"], [("t", "a"), ("a", "b"), ("b", "a")]);
        assert_eq!(graph.names(1).lookup("a"), Name::Bound);
    }
}
