//! Whether a code node's JavaScript parses, checked when the workflow is
//! saved, in the engine itself: so nothing of the code may run. QuickJS
//! compiles the call's script as a module without evaluating it (a script
//! cannot be compiled alone through a safe interface, and a textual wrapper
//! cannot keep the code from closing it and running at the top level). The
//! runtime is fresh and small: a heap and a stack limit, and only the
//! intrinsics that compiling needs (evaluation and the RegExp compiler),
//! no globals of the engine's. Parsing is linear in the source, which the
//! request body limit bounds; QuickJS's parser polls no interrupt handler.

use rquickjs::context::intrinsic;
use rquickjs::{CatchResultExt, CaughtError, Context, Module, Runtime};

use super::quickjs::{SOURCE_LINE, script};

/// Heap the compiler may use: well beyond what a source under the request
/// body limit compiles to.
const HEAP_BYTES: usize = 64 << 20;
/// Stack the parser may use, well within a thread's: deeply nested code is
/// refused before it could exhaust the engine's own stack.
const STACK_BYTES: usize = 256 * 1024;

/// Where and why a source does not parse. Lines and columns count from 1,
/// in the node's `source`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", place(*position))]
pub struct SyntaxError {
    pub message: String,
    pub position: Option<(u32, u32)>,
}

fn place(position: Option<(u32, u32)>) -> String {
    position.map_or_else(String::new, |(line, column)| {
        format!("line {line}, column {column}: ")
    })
}

/// Parses a code node's JavaScript as the sandbox would run it.
pub fn check_javascript(source: &str) -> Result<(), SyntaxError> {
    // QuickJS takes C strings: the sandbox could not run such a source.
    if let Some(at) = source.find('\0') {
        return Err(SyntaxError {
            message: "a NUL character (U+0000), which JavaScript code cannot hold".to_owned(),
            position: Some(position_of(source, at)),
        });
    }
    let unchecked = |e: rquickjs::Error| SyntaxError {
        message: format!("the JavaScript engine could not check the code: {e}"),
        position: None,
    };
    let runtime = Runtime::new().map_err(unchecked)?;
    runtime.set_memory_limit(HEAP_BYTES);
    runtime.set_max_stack_size(STACK_BYTES);
    let context = Context::custom::<(intrinsic::Eval, intrinsic::RegExpCompiler)>(&runtime)
        .map_err(unchecked)?;
    context.with(
        |ctx| match Module::declare(ctx.clone(), "code", script(source)).catch(&ctx) {
            Ok(_) => Ok(()),
            Err(CaughtError::Exception(e)) => Err(located(
                source,
                &e.message().unwrap_or_default(),
                &e.stack().unwrap_or_default(),
            )),
            Err(CaughtError::Error(rquickjs::Error::Allocation)) => Err(SyntaxError {
                message: format!(
                    "the code is too large to compile within {} MiB",
                    HEAP_BYTES >> 20
                ),
                position: None,
            }),
            Err(CaughtError::Error(e)) => Err(unchecked(e)),
            Err(CaughtError::Value(v)) => Err(SyntaxError {
                message: format!("the code does not compile ({:?})", v.type_of()),
                position: None,
            }),
        },
    )
}

/// The error, placed in the node's source: QuickJS's stack names
/// `code:LINE:COLUMN` (the column in bytes) in the wrapped script. A place
/// past the source (something left open) is its end.
fn located(source: &str, message: &str, stack: &str) -> SyntaxError {
    let place = stack.lines().find_map(|line| {
        let (line, column) = line.trim().strip_prefix("at code:")?.split_once(':')?;
        let line = line.parse::<usize>().ok()?;
        let column = column.trim_end_matches(')').parse::<usize>().ok()?;
        Some((
            line.checked_sub(SOURCE_LINE as usize)?,
            column.saturating_sub(1),
        ))
    });
    let position = place.map(|(line, column)| {
        let offset = source
            .split_inclusive('\n')
            .take(line)
            .map(str::len)
            .sum::<usize>();
        let within = source[offset..].split('\n').next().unwrap_or_default();
        position_of(
            source,
            (offset + column.min(within.len())).min(source.len()),
        )
    });
    let message = match message {
        "Maximum call stack size exceeded" => "the code is nested too deeply".to_owned(),
        other => other.to_owned(),
    };
    SyntaxError { message, position }
}

/// The line and column (in characters, from 1) of a byte offset.
fn position_of(source: &str, offset: usize) -> (u32, u32) {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[start..].chars().count() + 1;
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    (count(line), count(column))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(source: &str) -> (Option<(u32, u32)>, String) {
        let error = check_javascript(source).unwrap_err();
        (error.position, error.message)
    }

    #[test]
    fn code_that_parses_passes() {
        for source in [
            "return 1;",
            "// a comment\nconst xs = input.trigger.body.items;\nreturn {n: xs.length};",
            "return [/a+b/g.test('aab'), new RegExp('(').source];",
            "function f(n) { return n < 2 ? n : f(n - 1) + f(n - 2); }\nreturn f(10);",
        ] {
            assert_eq!(check_javascript(source), Ok(()), "{source}");
        }
    }

    #[test]
    fn a_syntax_error_is_placed_in_the_source() {
        let (position, message) = at("let a = 1;\nlet b = (2;\nreturn a;");
        assert_eq!(position, Some((2, 11)));
        assert_eq!(message, "Unexpected token ';'");
        // Columns count characters, not bytes.
        assert_eq!(at("return 'é' +;").0, Some((1, 13)));
        // Something left open is found at the end of the source.
        assert_eq!(at("return {a: 1,\n  b: 2").0, Some((2, 7)));
        let (position, message) = at("const ok = 1;\nreturn 'a\u{0}';");
        assert_eq!(position, Some((2, 10)));
        assert!(message.contains("NUL"), "{message}");
        assert!(!at("return [/a{2,1}/];").1.is_empty());
    }

    #[test]
    fn nothing_of_the_code_runs() {
        // The code closes the wrapper and would run at the top level of a
        // script; compiled as a module it is only parsed.
        assert_eq!(
            check_javascript("}); while (true) {} (function () {"),
            Ok(())
        );
    }

    #[test]
    fn deep_nesting_is_refused_within_the_stack_limit() {
        for source in [
            format!("return {}1{};", "(".repeat(200_000), ")".repeat(200_000)),
            format!("{}{}", "{".repeat(200_000), "}".repeat(200_000)),
        ] {
            assert_eq!(at(&source).1, "the code is nested too deeply");
        }
    }
}
