//! What a template or expression reads, checked before it runs: the names
//! at its root against those bound where it runs, its filters, tests and
//! functions against the environment's. Names it binds itself (a loop's
//! variable, a `{% set %}`) are not read from the scope: minijinja's
//! `undeclared_variables` leaves them out.

use std::collections::HashSet;

use flowmesh_model::names::{Name, Names};
use minijinja::Environment;
use minijinja::machinery::{Instruction, Instructions};

use super::explain::list;

/// A problem with what a template or expression reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub code: &'static str,
    pub message: String,
}

impl Problem {
    fn new(code: &'static str, message: String) -> Self {
        Self { code, message }
    }
}

/// The problems of one compiled text: `undeclared` holds the names it
/// reads from its scope, `code` its instructions.
pub(super) fn problems<'a>(
    env: &Environment,
    undeclared: &HashSet<String>,
    code: impl IntoIterator<Item = &'a Instructions<'a>>,
    names: &Names<'_>,
) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut called = HashSet::new();
    for instructions in code {
        for instruction in (0..).map_while(|pc| instructions.get(pc)) {
            let (kind, name) = match *instruction {
                Instruction::ApplyFilter(name, ..) => (Callable::Filter, name),
                Instruction::PerformTest(name, ..) => (Callable::Test, name),
                // A function the text does not define (a macro) must be
                // one of the environment's.
                Instruction::CallFunction(name, _) if undeclared.contains(name) => {
                    called.insert(name);
                    (Callable::Function, name)
                }
                _ => continue,
            };
            if seen.insert((kind, name)) && !kind.known(env).any(|k| k == name) {
                out.push(kind.unknown(env, name));
            }
        }
    }
    let mut roots: Vec<&str> = undeclared
        .iter()
        .map(String::as_str)
        .filter(|name| !called.contains(name) && !Callable::Function.known(env).any(|g| g == *name))
        .collect();
    roots.sort_unstable();
    for name in roots {
        let (code, message) = match names.lookup(name) {
            Name::Bound => continue,
            Name::Itself => (
                "not_upstream",
                format!("`{name}` is this node: it has no output while it runs"),
            ),
            Name::NotUpstream => (
                "not_upstream",
                format!(
                    "`{name}` is not upstream of this node: it has no output yet when this node runs"
                ),
            ),
            Name::Unknown => (
                "unknown_name",
                format!(
                    "unknown name `{name}`; known here: {}",
                    list(names.bound().map(str::to_owned))
                ),
            ),
        };
        out.push(Problem::new(code, message));
    }
    out
}

/// What a text calls by name.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Callable {
    Filter,
    Test,
    Function,
}

impl Callable {
    /// The environment's, in order.
    fn known<'e>(self, env: &'e Environment) -> Box<dyn Iterator<Item = &'e str> + 'e> {
        match self {
            Callable::Filter => Box::new(env.filter_names()),
            Callable::Test => Box::new(env.test_names()),
            Callable::Function => Box::new(env.globals().map(|(name, _)| name)),
        }
    }

    fn unknown(self, env: &Environment, name: &str) -> Problem {
        let (code, what) = match self {
            Callable::Filter => ("unknown_filter", "filter"),
            Callable::Test => ("unknown_test", "test"),
            Callable::Function => ("unknown_function", "function"),
        };
        let known: Vec<&str> = self.known(env).collect();
        Problem::new(
            code,
            format!(
                "unknown {what} `{name}`; known {what}s: {}",
                known.join(", ")
            ),
        )
    }
}
