//! Why a value is undefined, in words: the lookup that found nothing
//! (`trigger.body.emial`), resolved against the scope step by step, gives
//! "trigger.body has no field "emial"; it has: email, name".
//!
//! minijinja remembers where each undefined value came from (in debug mode)
//! and names that lookup in its error (`` `trigger.body.emial` is
//! undefined ``); the lookup is parsed back with minijinja's own parser.

use minijinja::machinery::{ast, parse_expr};
use minijinja::value::{Value as MjValue, ValueKind};
use minijinja::{Environment, Error, ErrorKind};

/// Most names one message lists; the others are counted.
const LISTED: usize = 10;
/// Longest name a message shows whole.
const NAME_CHARS: usize = 40;

/// The text an error came from, which tells names of the scope from those
/// a template binds itself (`{% for x in … %}`, `{% set x = … %}`).
#[derive(Clone, Copy)]
pub(super) enum Source<'a> {
    Expression,
    Template(&'a str),
}

/// One step of a lookup: `.name`, `["name"]` or `[3]`.
#[derive(Clone, Debug, PartialEq)]
enum Step {
    Field(String),
    Index(i64),
}

/// A lookup from a name of the scope: `trigger.body["emial"]`.
#[derive(Debug, PartialEq)]
struct Chain {
    root: String,
    steps: Vec<Step>,
}

/// `error` said again, when it comes from an undefined value that the
/// scope explains: what was missing and what exists there.
pub(super) fn explain(env: &Environment, error: Error, source: Source, scope: &MjValue) -> Error {
    let explained = error
        .detail()
        .and_then(origin)
        .and_then(|text| parse_expr(text).ok())
        .and_then(|expr| chain(&expr))
        .filter(|chain| from_scope(env, source, &chain.root))
        .and_then(|chain| missing(&chain, scope));
    match explained {
        Some(message) => Error::new(ErrorKind::UndefinedError, message),
        None => error,
    }
}

/// What the first lookup of an expression that finds nothing is missing,
/// for an undefined value held inside a value (`[trigger.body.emial]`),
/// whose origin minijinja does not name. Lookups whose undefined value is
/// allowed (under `default`, `is defined`, a truth test) are passed over.
pub(super) fn first_missing(expr: &str, scope: &MjValue) -> Option<String> {
    let expr = parse_expr(expr).ok()?;
    let mut chains = Vec::new();
    lookups(&expr, false, &mut chains);
    chains.iter().find_map(|chain| missing(chain, scope))
}

/// The lookup named in minijinja's detail: `` `trigger.body.x` is undefined ``.
fn origin(detail: &str) -> Option<&str> {
    let end = detail.rfind("` is undefined")?;
    let start = detail[..end].rfind('`')? + 1;
    Some(&detail[start..end])
}

/// A lookup expression as a chain; none for anything else.
fn chain(expr: &ast::Expr) -> Option<Chain> {
    match expr {
        ast::Expr::Var(var) => Some(Chain {
            root: var.id.to_owned(),
            steps: Vec::new(),
        }),
        ast::Expr::GetAttr(get) => {
            let mut chain = chain(&get.expr)?;
            chain.steps.push(Step::Field(get.name.to_owned()));
            Some(chain)
        }
        ast::Expr::GetItem(get) => {
            let key = get.subscript_expr.as_const()?;
            let step = match key.as_str() {
                Some(name) => Step::Field(name.to_owned()),
                None => Step::Index(i64::try_from(key).ok()?),
            };
            let mut chain = chain(&get.expr)?;
            chain.steps.push(step);
            Some(chain)
        }
        _ => None,
    }
}

/// Every whole lookup of an expression, in the order written; `allowed`
/// marks a place where an undefined value is allowed.
fn lookups(expr: &ast::Expr, allowed: bool, out: &mut Vec<Chain>) {
    if let Some(found) = chain(expr) {
        if !allowed {
            out.push(found);
        }
        return;
    }
    let args = |args: &[ast::CallArg], out: &mut Vec<Chain>| {
        for arg in args {
            match arg {
                ast::CallArg::Pos(e)
                | ast::CallArg::Kwarg(_, e)
                | ast::CallArg::PosSplat(e)
                | ast::CallArg::KwargSplat(e) => lookups(e, false, out),
            }
        }
    };
    match expr {
        ast::Expr::Var(_) | ast::Expr::Const(_) => {}
        ast::Expr::Slice(s) => {
            lookups(&s.expr, false, out);
            for part in [&s.start, &s.stop, &s.step].into_iter().flatten() {
                lookups(part, false, out);
            }
        }
        ast::Expr::UnaryOp(op) => lookups(&op.expr, matches!(op.op, ast::UnaryOpKind::Not), out),
        ast::Expr::BinOp(op) => {
            let truth = matches!(op.op, ast::BinOpKind::ScAnd | ast::BinOpKind::ScOr);
            lookups(&op.left, truth, out);
            lookups(&op.right, false, out);
        }
        ast::Expr::Compare(c) => {
            lookups(&c.expr, false, out);
            c.ops.iter().for_each(|op| lookups(&op.expr, false, out));
        }
        ast::Expr::IfExpr(e) => {
            lookups(&e.test_expr, true, out);
            lookups(&e.true_expr, false, out);
            if let Some(f) = &e.false_expr {
                lookups(f, false, out);
            }
        }
        ast::Expr::Filter(f) => {
            if let Some(e) = &f.expr {
                lookups(e, matches!(f.name, "default" | "d"), out);
            }
            args(&f.args, out);
        }
        ast::Expr::Test(t) => {
            lookups(&t.expr, matches!(t.name, "defined" | "undefined"), out);
            args(&t.args, out);
        }
        ast::Expr::GetAttr(g) => lookups(&g.expr, false, out),
        ast::Expr::GetItem(g) => {
            lookups(&g.expr, false, out);
            lookups(&g.subscript_expr, false, out);
        }
        ast::Expr::Call(c) => {
            lookups(&c.expr, false, out);
            args(&c.args, out);
        }
        ast::Expr::List(l) => l.items.iter().for_each(|e| lookups(e, false, out)),
        ast::Expr::Tuple(t) => t.items.iter().for_each(|e| lookups(e, false, out)),
        ast::Expr::Map(m) => m
            .keys
            .iter()
            .chain(&m.values)
            .for_each(|e| lookups(e, false, out)),
    }
}

/// Whether `root` is read from the scope: always in an expression; in a
/// template, unless the template binds it itself.
fn from_scope(env: &Environment, source: Source, root: &str) -> bool {
    match source {
        Source::Expression => true,
        Source::Template(text) => env
            .template_from_str(text)
            .is_ok_and(|t| t.undeclared_variables(false).contains(root)),
    }
}

/// The first step of `chain` that finds nothing in `scope`, in words.
fn missing(chain: &Chain, scope: &MjValue) -> Option<String> {
    let mut value = scope.get_attr(&chain.root).ok()?;
    if value.is_undefined() {
        return Some(format!(
            "unknown name `{}`; known here: {}",
            shown(&chain.root),
            listing(scope)
        ));
    }
    let mut path = shown(&chain.root);
    for (i, step) in chain.steps.iter().enumerate() {
        let next = match step {
            Step::Field(name) => value.get_attr(name),
            Step::Index(n) => value.get_item(&MjValue::from(*n)),
        };
        match next {
            Ok(next) if !next.is_undefined() => {
                push_step(&mut path, step);
                value = next;
            }
            _ => {
                return Some(nothing_at(
                    &path,
                    step,
                    &value,
                    i == 0 && chain.root != "trigger",
                ));
            }
        }
    }
    None
}

/// Why `value` (at `path`) has nothing at `step`; `a_node` when it is a
/// node's whole output.
fn nothing_at(path: &str, step: &Step, value: &MjValue, a_node: bool) -> String {
    let what = match step {
        Step::Field(name) => format!("field {:?}", shorten(name)),
        Step::Index(n) => format!("item {n}"),
    };
    match value.kind() {
        ValueKind::Map => match value.len() {
            Some(0) => format!("{path} has no {what}; it has no fields"),
            _ => format!("{path} has no {what}; it has: {}", listing(value)),
        },
        ValueKind::Seq => match value.len().unwrap_or_default() {
            0 => format!("{path} has no {what}; it is an empty array"),
            1 => format!("{path} has no {what}; it is an array of 1 item"),
            n => format!("{path} has no {what}; it is an array of {n} items"),
        },
        ValueKind::None if a_node => {
            format!("{path} is null (as a skipped node's output is), so it has no {what}")
        }
        kind => format!("{path} is {}, so it has no {what}", kind_name(kind)),
    }
}

fn kind_name(kind: ValueKind) -> &'static str {
    match kind {
        ValueKind::None => "null",
        ValueKind::Bool => "a boolean",
        ValueKind::Number => "a number",
        ValueKind::String => "a string",
        ValueKind::Seq => "an array",
        ValueKind::Map => "an object",
        _ => "a value of another kind",
    }
}

/// The keys of a map, as [`list`] gives them.
fn listing(map: &MjValue) -> String {
    match map.try_iter() {
        Ok(keys) => list(keys.map(|k| k.as_str().map_or_else(|| k.to_string(), str::to_owned))),
        Err(_) => String::new(),
    }
}

/// Names as a message lists them: at most [`LISTED`], each shortened, and
/// how many more there are.
pub(super) fn list(mut names: impl Iterator<Item = String>) -> String {
    let mut listed: Vec<String> = names.by_ref().take(LISTED).map(|n| shown(&n)).collect();
    let more = names.count();
    if more > 0 {
        listed.push(format!("… ({more} more)"));
    }
    listed.join(", ")
}

/// A name as a message shows it: shortened, control characters escaped.
fn shown(name: &str) -> String {
    let mut out = String::new();
    for c in shorten(name).chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

/// A name cut to [`NAME_CHARS`].
fn shorten(name: &str) -> String {
    match name.char_indices().nth(NAME_CHARS) {
        Some((at, _)) => format!("{}…", &name[..at]),
        None => name.to_owned(),
    }
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn push_step(path: &mut String, step: &Step) {
    match step {
        Step::Field(name) if is_identifier(name) => {
            path.push('.');
            path.push_str(&shorten(name));
        }
        Step::Field(name) => path.push_str(&format!("[{:?}]", shorten(name))),
        Step::Index(n) => path.push_str(&format!("[{n}]")),
    }
}

#[cfg(test)]
mod tests;
