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
            match *instruction {
                Instruction::ApplyFilter(name, ..)
                    if seen.insert(("filter", name)) && !env.filter_names().any(|f| f == name) =>
                {
                    out.push(Problem::new(
                        "unknown_filter",
                        format!(
                            "unknown filter `{name}`; known filters: {}",
                            env.filter_names().collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
                Instruction::PerformTest(name, ..)
                    if seen.insert(("test", name)) && !env.test_names().any(|t| t == name) =>
                {
                    out.push(Problem::new(
                        "unknown_test",
                        format!(
                            "unknown test `{name}`; known tests: {}",
                            env.test_names().collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
                // A function the text does not define (a macro) must be
                // one of the environment's.
                Instruction::CallFunction(name, _)
                    if undeclared.contains(name) && called.insert(name) =>
                {
                    if !is_global(env, name) {
                        out.push(Problem::new(
                            "unknown_function",
                            format!(
                                "unknown function `{name}`; known functions: {}",
                                env.globals().map(|(g, _)| g).collect::<Vec<_>>().join(", ")
                            ),
                        ));
                    }
                }
                _ => {}
            }
        }
    }
    let mut roots: Vec<&str> = undeclared
        .iter()
        .map(String::as_str)
        .filter(|name| !called.contains(name) && !is_global(env, name))
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

fn is_global(env: &Environment, name: &str) -> bool {
    env.globals().any(|(global, _)| global == name)
}
