//! Step keys and scopes. A loop's body runs once per iteration, and each
//! iteration's steps are keyed by where they run: `charge_each[3].charge`,
//! `outer[1].inner[2].cell`. A scope names one iteration
//! (`charge_each[3]`) or every iteration of a loop (`charge_each`,
//! `outer[1].inner`); requests that address an iteration read them here.

use std::cmp::Ordering;
use std::fmt;

use crate::document::Node;
use crate::for_each::LoopSpec;
use crate::while_loop::WHILE;

/// One iteration of a loop: the loop node's id and the item's index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Iteration {
    pub node: String,
    pub index: usize,
}

/// Iterations, one within the other, then perhaps a loop there taken
/// across all its iterations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    pub iterations: Vec<Iteration>,
    pub every: Option<String>,
}

/// Why a scope or step key does not read; retrying it as it is will not help.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ScopeError(pub String);

/// A loop along a scope, as the document defines it.
#[derive(Clone, Debug)]
pub struct ScopeLevel {
    pub node: Node,
    pub spec: LoopSpec,
}

/// A step key read: the iterations its step runs in, and its node's id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepKey {
    pub iterations: Vec<Iteration>,
    pub node: String,
}

fn is_id(text: &str) -> bool {
    let mut chars = text.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `name[index]`, `name` (index none), or nothing that reads.
fn segment(text: &str) -> Option<(&str, Option<usize>)> {
    let Some(open) = text.find('[') else {
        return is_id(text).then_some((text, None));
    };
    let name = &text[..open];
    let digits = text[open + 1..].strip_suffix(']')?;
    // One spelling per index: keys are compared as text in the journal.
    // At most nine digits: no loop has more items than that.
    let canonical = (1..=9).contains(&digits.len())
        && digits.chars().all(|c| c.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    if !is_id(name) || !canonical {
        return None;
    }
    Some((name, Some(digits.parse().ok()?)))
}

const FORM: &str = "must read like `each[3]` or `outer[1].inner[2]` (loop node ids, each with an iteration's index from 0, at most nine digits)";

impl Scope {
    /// Reads `each[3]`, `outer[1].inner[2]`, `each` or `outer[1].inner`.
    pub fn parse(text: &str) -> Result<Scope, ScopeError> {
        let parts: Vec<&str> = text.split('.').collect();
        let mut scope = Scope {
            iterations: Vec::new(),
            every: None,
        };
        for (n, part) in parts.iter().enumerate() {
            match segment(part) {
                Some((node, Some(index))) => scope.iterations.push(Iteration {
                    node: node.to_owned(),
                    index,
                }),
                Some((node, None)) if n + 1 == parts.len() => scope.every = Some(node.to_owned()),
                _ => return Err(ScopeError(format!("{text:?} {FORM}"))),
            }
        }
        Ok(scope)
    }

    /// Whether the scope names one iteration (not a loop's every one).
    pub fn is_iteration(&self) -> bool {
        self.every.is_none() && !self.iterations.is_empty()
    }

    /// Whether the step keyed `key` runs within the scope.
    pub fn holds(&self, key: &str) -> bool {
        let text = self.to_string();
        key.strip_prefix(&text)
            .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
    }

    /// The loops along the scope, from the workflow's `nodes` inward; an
    /// id that is not a loop where the scope puts it is named.
    pub fn levels(&self, nodes: &[Node]) -> Result<Vec<ScopeLevel>, ScopeError> {
        let ids = self
            .iterations
            .iter()
            .map(|i| i.node.as_str())
            .chain(self.every.as_deref());
        let mut levels: Vec<ScopeLevel> = Vec::new();
        for id in ids {
            let within = levels
                .last()
                .map_or(nodes, |l| l.spec.body.nodes.as_slice());
            let found = within.iter().find(|n| n.id == id);
            let Some((node, spec)) = found.and_then(|n| Some((n, LoopSpec::of(n)?))) else {
                let place = match levels.last() {
                    Some(outer) => format!("in the body of {}", outer.node.id),
                    None => "in the workflow".to_owned(),
                };
                return Err(ScopeError(format!(
                    "{id:?} is not a for_each or while node {place}"
                )));
            };
            levels.push(ScopeLevel {
                node: node.clone(),
                spec,
            });
        }
        Ok(levels)
    }
}

impl ScopeLevel {
    pub fn is_while(&self) -> bool {
        self.node.kind == WHILE
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for i in &self.iterations {
            if !first {
                f.write_str(".")?;
            }
            first = false;
            write!(f, "{}[{}]", i.node, i.index)?;
        }
        if let Some(every) = &self.every {
            if !first {
                f.write_str(".")?;
            }
            f.write_str(every)?;
        }
        Ok(())
    }
}

impl StepKey {
    /// Reads `node` or `each[3].node`, `outer[1].inner[2].node`.
    pub fn parse(text: &str) -> Result<StepKey, ScopeError> {
        let scope = Scope::parse(text).ok();
        match scope {
            Some(Scope {
                iterations,
                every: Some(node),
            }) => Ok(StepKey { iterations, node }),
            _ => Err(ScopeError(format!(
                "{text:?} must be a node id, or one within an iteration such as `each[3].charge`"
            ))),
        }
    }

    /// The key as the journal writes it.
    pub fn text(&self) -> String {
        match self.scope() {
            Some(scope) => format!("{scope}.{}", self.node),
            None => self.node.clone(),
        }
    }

    /// The iteration the step runs in, as a scope; none for a node of the
    /// workflow itself.
    pub fn scope(&self) -> Option<Scope> {
        (!self.iterations.is_empty()).then(|| Scope {
            iterations: self.iterations.clone(),
            every: None,
        })
    }
}

/// The node id a step key ends with (`charge` of `charge_each[3].charge`).
pub fn node_of(key: &str) -> &str {
    key.rsplit('.').next().unwrap_or(key)
}

/// Whether a step key is an iteration's (not a node of the workflow itself).
pub fn in_iteration(key: &str) -> bool {
    key.contains('[')
}

/// Orders step keys as a reader expects: by loop, iterations by their
/// index as a number (`each[2]` before `each[10]`), then by node id.
pub fn key_order(a: &str, b: &str) -> Ordering {
    let parts = |key: &str| -> Vec<(String, Option<usize>)> {
        key.split('.')
            .map(|part| match segment(part) {
                Some((name, index)) => (name.to_owned(), index),
                None => (part.to_owned(), None),
            })
            .collect()
    };
    parts(a).cmp(&parts(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_read_and_write_back() {
        for text in [
            "each[3]",
            "outer[1].inner[2]",
            "each",
            "outer[0].inner",
            "each[999999999]",
        ] {
            assert_eq!(Scope::parse(text).unwrap().to_string(), text);
        }
        for bad in [
            "",
            "each[]",
            "each[03]",
            "each[-1]",
            "each.x[1]",
            "1x[2]",
            "a[1].",
            "each[1234567890]",
            "each[899305549913307024145]",
        ] {
            assert!(Scope::parse(bad).is_err(), "{bad}");
        }
        let scope = Scope::parse("each[3]").unwrap();
        assert!(scope.is_iteration());
        assert!(scope.holds("each[3].charge"));
        assert!(scope.holds("each[3].inner[0].cell"));
        assert!(!scope.holds("each[30].charge"));
        assert!(!scope.holds("each[3]"));
        let every = Scope::parse("each").unwrap();
        assert!(!every.is_iteration());
        assert!(every.holds("each[30].charge"));
        assert!(!every.holds("each_other[1].charge"));
    }

    #[test]
    fn step_keys_split_into_their_iteration_and_node() {
        let key = StepKey::parse("outer[1].inner[2].cell").unwrap();
        assert_eq!(key.node, "cell");
        assert_eq!(key.scope().unwrap().to_string(), "outer[1].inner[2]");
        assert_eq!(StepKey::parse("charge").unwrap().scope(), None);
        assert!(StepKey::parse("each[1]").is_err());
        assert_eq!(node_of("outer[1].inner[2].cell"), "cell");
    }

    #[test]
    fn indexes_order_as_numbers() {
        let mut keys = vec!["each[10].a", "each[2].b", "each[2].a", "after", "each[1].z"];
        keys.sort_by(|a, b| key_order(a, b));
        assert_eq!(
            keys,
            ["after", "each[1].z", "each[2].a", "each[2].b", "each[10].a"]
        );
    }
}
