//! Crash points at the durable boundaries of the engine, for tests that
//! kill the process exactly there and check the outcome after a restart.
//!
//! They exist only in builds with the `failpoints` feature (test builds);
//! elsewhere [`crash_point`] is an empty function. A test arms them with
//! the `FAILPOINTS` environment variable, for example
//! `FAILPOINTS=store::turn::committed=1*return`: the first time the
//! process passes that point it aborts.

/// Every crash point, and what has happened when the process dies there.
pub const POINTS: &[(&str, &str)] = &[
    (
        "engine::accept::recorded",
        "an execution is in the store; its start command is not published and the caller has no answer",
    ),
    (
        "engine::command::started",
        "an execution runs here; its start command is not acknowledged",
    ),
    (
        "store::turn::before_commit",
        "a turn is written but not committed",
    ),
    (
        "store::turn::committed",
        "a turn is committed; its events and attempts have not gone out",
    ),
    (
        "engine::attempt::returned",
        "a node attempt's outside effect happened; its result is not journaled",
    ),
    (
        "engine::park::parked",
        "an execution is parked in the store; its actor still runs",
    ),
];

/// Arms the crash points named in `FAILPOINTS` for the life of the process.
pub fn arm() {
    #[cfg(feature = "failpoints")]
    std::mem::forget(fail::FailScenario::setup());
}

/// Aborts the process here if the point is armed.
#[inline(always)]
pub fn crash_point(name: &'static str) {
    debug_assert!(POINTS.iter().any(|(point, _)| *point == name), "{name}");
    #[cfg(feature = "failpoints")]
    if fail::eval(name, |_| ()).is_some() {
        std::process::abort();
    }
}
