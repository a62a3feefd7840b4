//! Size limits of one render (a patch of this vendored copy; not upstream).
//!
//! Fuel counts instructions, not bytes: `'a' * 100000000` is one instruction.
//! While [`with_limits`] runs on a thread, the operations that build large
//! values from small ones (repetition, concatenation, `join`, `replace`,
//! padding widths, ...) refuse before they allocate past the value limit;
//! strings and sequences created are counted against the total limit, and
//! output, captured blocks and formatted values are bounded as they are
//! written. Once a limit is exceeded every later check fails too, and the
//! render returns the limit's error whatever else it returned, so a path that
//! only truncates (formatting cannot fail without panicking) still fails.
//!
//! The budget is a thread-local: rendering is synchronous and stays on the
//! thread that started it (`stacker` grows the stack in place).

use std::cell::Cell;
use std::fmt;

use crate::error::{Error, ErrorKind};
use crate::value::Value;

/// Limits of one render, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest value: a string's length, a sequence's items times the size
    /// of one value, the output, a captured block, one formatted value.
    pub value_bytes: usize,
    /// Most bytes of strings and sequences created during the render.
    pub total_bytes: usize,
}

#[derive(Clone, Copy)]
enum Exceeded {
    Value,
    Total,
}

#[derive(Clone, Copy)]
struct Budget {
    limits: Limits,
    used: usize,
    exceeded: Option<Exceeded>,
}

thread_local! {
    static BUDGET: Cell<Option<Budget>> = const { Cell::new(None) };
}

/// Puts back the budget of an enclosing render, also when a render panics.
struct Restore(Option<Budget>);

impl Drop for Restore {
    fn drop(&mut self) {
        BUDGET.with(|b| b.set(self.0));
    }
}

/// Runs `f` (a render, an evaluation) within `limits`; its error, or the
/// limit's error if a limit was exceeded.
pub fn with_limits<T>(limits: Limits, f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    let outer = BUDGET.with(|b| {
        b.replace(Some(Budget {
            limits,
            used: 0,
            exceeded: None,
        }))
    });
    let restore = Restore(outer);
    let rv = f();
    let exceeded = exceeded_error();
    drop(restore);
    match exceeded {
        Some(err) => Err(err),
        None => rv,
    }
}

/// The error of the limit exceeded in the current render, if any.
fn exceeded_error() -> Option<Error> {
    BUDGET
        .with(|b| b.get())
        .and_then(|b| b.exceeded.map(|e| error(b.limits, e)))
}

fn error(limits: Limits, exceeded: Exceeded) -> Error {
    Error::new(
        ErrorKind::SizeLimitExceeded,
        match exceeded {
            Exceeded::Value => format!(
                "the template built a value of more than {} bytes",
                limits.value_bytes
            ),
            Exceeded::Total => format!(
                "the template built more than {} bytes of values in all",
                limits.total_bytes
            ),
        },
    )
}

fn exceed(mut budget: Budget, exceeded: Exceeded) -> Error {
    let exceeded = budget.exceeded.unwrap_or(exceeded);
    budget.exceeded = Some(exceeded);
    BUDGET.with(|b| b.set(Some(budget)));
    error(budget.limits, exceeded)
}

/// Refuses a value of `bytes` before it is built (always, once a limit was
/// exceeded). Without limits, everything passes.
pub fn check(bytes: usize) -> Result<(), Error> {
    match BUDGET.with(|b| b.get()) {
        None => Ok(()),
        Some(budget) if budget.exceeded.is_some() => Err(exceed(budget, Exceeded::Value)),
        Some(budget) if bytes > budget.limits.value_bytes => Err(exceed(budget, Exceeded::Value)),
        Some(_) => Ok(()),
    }
}

/// The size of a sequence of `items` values.
pub fn items_bytes(items: usize) -> usize {
    items.saturating_mul(std::mem::size_of::<Value>())
}

/// Like [`check`], for a sequence of `items` values.
pub fn check_items(items: usize) -> Result<(), Error> {
    check(items_bytes(items))
}

/// Checks a value of `bytes` about to be built and counts it against the
/// total.
pub fn charge(bytes: usize) -> Result<(), Error> {
    ok!(check(bytes));
    BUDGET.with(|b| match b.get() {
        None => Ok(()),
        Some(mut budget) => {
            budget.used = budget.used.saturating_add(bytes);
            if budget.used > budget.limits.total_bytes {
                return Err(exceed(budget, Exceeded::Total));
            }
            b.set(Some(budget));
            Ok(())
        }
    })
}

/// The value, or an invalid value if a value of `bytes` is over the limits.
pub(crate) fn admit(bytes: usize, value: impl FnOnce() -> Value) -> Value {
    match charge(bytes) {
        Ok(()) => value(),
        Err(err) => Value::from(err),
    }
}

/// Whether a limit was exceeded in the current render.
pub(crate) fn is_exceeded() -> bool {
    BUDGET
        .with(|b| b.get())
        .is_some_and(|b| b.exceeded.is_some())
}

/// Whether limits apply on this thread.
pub(crate) fn is_active() -> bool {
    BUDGET.with(|b| b.get()).is_some()
}

/// A writer that refuses to grow past the value limit: what is written
/// through it, wherever it goes, is one value.
pub struct Limited<W> {
    inner: W,
    written: usize,
}

impl<W: fmt::Write> Limited<W> {
    /// Wraps a writer that has nothing written yet.
    pub fn new(inner: W) -> Self {
        Limited { inner, written: 0 }
    }

    /// The wrapped writer.
    pub fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: fmt::Write> fmt::Write for Limited<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let written = self.written.saturating_add(s.len());
        check(written).map_err(|_| fmt::Error)?;
        self.written = written;
        self.inner.write_str(s)
    }
}

/// The error of a write that failed: the exceeded limit, if that was why.
pub fn write_error() -> Error {
    exceeded_error().unwrap_or_else(|| Error::from(ErrorKind::WriteFailure))
}

/// Builds a string by writing into it, within the value limit.
pub fn build_string(f: impl FnOnce(&mut dyn fmt::Write) -> fmt::Result) -> Result<String, Error> {
    let mut out = Limited::new(String::new());
    match f(&mut out) {
        Ok(()) => Ok(out.into_inner()),
        Err(_) => Err(write_error()),
    }
}

/// Refuses a replacement of `from` by `to` in `s` (at most `count` times)
/// whose result would be over the value limit.
pub fn check_replace(s: &str, from: &str, to: &str, count: Option<usize>) -> Result<(), Error> {
    if !is_active() || to.len() <= from.len() {
        return Ok(());
    }
    let found = if from.is_empty() {
        s.chars().count() + 1
    } else {
        s.matches(from).count()
    };
    let replaced = count.map_or(found, |count| found.min(count));
    check(
        replaced
            .saturating_mul(to.len() - from.len())
            .saturating_add(s.len()),
    )
}

/// Formats an object within the value limit. Formatting cannot fail without
/// making `to_string` panic, so a format cut short is reported as written:
/// the exceeded limit fails the render instead.
pub(crate) fn fmt_limited(f: &mut fmt::Formatter<'_>, object: &dyn fmt::Display) -> fmt::Result {
    if !is_active() {
        return object.fmt(f);
    }
    let mut out = Limited::new(&mut *f);
    let rv = if out.inner.alternate() {
        fmt::write(&mut out, format_args!("{object:#}"))
    } else {
        fmt::write(&mut out, format_args!("{object}"))
    };
    match rv {
        Err(_) if is_exceeded() => Ok(()),
        other => other,
    }
}
