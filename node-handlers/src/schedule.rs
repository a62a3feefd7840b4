//! Schedule triggers: a cron expression read in a time zone, and a policy
//! for ticks that passed while no engine process was running.

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;

/// A tick found later than this after its time counts as missed: the
/// engine was down (the firing loop itself runs every claim interval).
pub const MISSED_AFTER_MS: i64 = 60_000;

/// What happens to ticks missed while no process ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missed {
    /// They are dropped; the schedule goes on from the next tick.
    Skip,
    /// One execution runs for them (for the earliest), then the schedule
    /// goes on.
    RunOnce,
}

impl Missed {
    pub fn as_str(self) -> &'static str {
        match self {
            Missed::Skip => "skip",
            Missed::RunOnce => "run_once",
        }
    }
}

impl FromStr for Missed {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "skip" => Ok(Missed::Skip),
            "run_once" => Ok(Missed::RunOnce),
            other => Err(format!(
                "{other:?} is not a missed-tick policy; use \"skip\" or \"run_once\""
            )),
        }
    }
}

/// A field of a schedule trigger's config that is wrong, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub field: &'static str,
    pub message: String,
}

/// A parsed schedule trigger.
#[derive(Clone, Debug)]
pub struct Schedule {
    cron: Cron,
    pub expression: String,
    pub timezone: Tz,
    pub missed: Missed,
}

/// What to do with a tick that came due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Firing {
    /// The tick to run an execution for; none when it is skipped.
    pub fire: Option<i64>,
    /// The schedule's next tick (`i64::MAX`: none).
    pub next: i64,
}

impl Schedule {
    /// Parses the three settings as a schedule trigger's config holds them.
    pub fn new(expression: &str, timezone: &str, missed: &str) -> Result<Self, Problem> {
        let cron = Cron::from_str(expression.trim()).map_err(|e| Problem {
            field: "cron",
            message: format!(
                "{expression:?} is not a cron expression ({e}); write it like \"0 9 * * MON-FRI\""
            ),
        })?;
        let timezone = Tz::from_str(timezone).map_err(|_| Problem {
            field: "timezone",
            message: format!(
                "{timezone:?} is not a time zone; use an IANA name such as \"Europe/Paris\" or \"UTC\""
            ),
        })?;
        let missed = missed.parse().map_err(|message| Problem {
            field: "missed",
            message,
        })?;
        Ok(Self {
            cron,
            expression: expression.trim().to_owned(),
            timezone,
            missed,
        })
    }

    /// The first tick strictly after `after_ms` (ms since the Unix epoch).
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        let after = self
            .timezone
            .from_utc_datetime(&DateTime::<Utc>::from_timestamp_millis(after_ms)?.naive_utc());
        self.cron
            .find_next_occurrence(&after, false)
            .ok()
            .map(|t| t.timestamp_millis())
    }

    /// What to do, at `now_ms`, with the tick that was due at `due_ms`.
    /// A tick only a little late fires and the schedule moves to the tick
    /// after it (a backlog of such ticks is caught up one by one); a missed
    /// one follows the policy and the schedule moves past now.
    pub fn decide(&self, due_ms: i64, now_ms: i64) -> Firing {
        if now_ms - due_ms <= MISSED_AFTER_MS {
            return Firing {
                fire: Some(due_ms),
                next: self.next_after(due_ms).unwrap_or(i64::MAX),
            };
        }
        Firing {
            fire: (self.missed == Missed::RunOnce).then_some(due_ms),
            next: self.next_after(now_ms).unwrap_or(i64::MAX),
        }
    }

    /// A tick as the time zone of the schedule writes it (RFC 3339).
    pub fn local_time(&self, at_ms: i64) -> String {
        DateTime::<Utc>::from_timestamp_millis(at_ms)
            .map(|t| t.with_timezone(&self.timezone).to_rfc3339())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> i64 {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn ticks_follow_the_time_zone() {
        let s = Schedule::new("0 9 * * *", "Europe/Paris", "skip").unwrap();
        // 09:00 in Paris is 08:00 UTC in winter and 07:00 UTC in summer.
        assert_eq!(
            s.next_after(ms("2026-01-10T12:00:00Z")),
            Some(ms("2026-01-11T08:00:00Z"))
        );
        assert_eq!(
            s.next_after(ms("2026-07-10T12:00:00Z")),
            Some(ms("2026-07-11T07:00:00Z"))
        );
        assert_eq!(
            s.local_time(ms("2026-07-11T07:00:00Z")),
            "2026-07-11T09:00:00+02:00"
        );
    }

    #[test]
    fn seconds_are_optional() {
        let s = Schedule::new("*/10 * * * * *", "UTC", "skip").unwrap();
        assert_eq!(
            s.next_after(ms("2026-01-10T12:00:01Z")),
            Some(ms("2026-01-10T12:00:10Z"))
        );
    }

    #[test]
    fn a_tick_on_time_fires_and_the_next_follows() {
        let s = Schedule::new("*/5 * * * *", "UTC", "skip").unwrap();
        let due = ms("2026-01-10T12:05:00Z");
        let firing = s.decide(due, due + 800);
        assert_eq!(firing.fire, Some(due));
        assert_eq!(firing.next, ms("2026-01-10T12:10:00Z"));
    }

    #[test]
    fn a_late_tick_fires_and_the_one_after_follows() {
        let s = Schedule::new("* * * * * *", "UTC", "skip").unwrap();
        let due = ms("2026-01-10T12:05:00Z");
        let firing = s.decide(due, due + 2_500);
        assert_eq!(firing.fire, Some(due));
        assert_eq!(firing.next, due + 1_000, "no tick is jumped over");
    }

    #[test]
    fn missed_ticks_follow_the_policy() {
        let due = ms("2026-01-10T12:05:00Z");
        let now = ms("2026-01-10T15:02:00Z");
        let skip = Schedule::new("*/5 * * * *", "UTC", "skip").unwrap();
        assert_eq!(
            skip.decide(due, now),
            Firing {
                fire: None,
                next: ms("2026-01-10T15:05:00Z")
            }
        );
        let once = Schedule::new("*/5 * * * *", "UTC", "run_once").unwrap();
        assert_eq!(
            once.decide(due, now),
            Firing {
                fire: Some(due),
                next: ms("2026-01-10T15:05:00Z")
            }
        );
    }

    #[test]
    fn bad_settings_name_their_field() {
        let field = |e: &str, tz: &str, m: &str| Schedule::new(e, tz, m).unwrap_err().field;
        assert_eq!(field("not cron", "UTC", "skip"), "cron");
        assert_eq!(field("61 * * * *", "UTC", "skip"), "cron");
        assert_eq!(field("* * * * *", "Mars/Olympus", "skip"), "timezone");
        assert_eq!(field("* * * * *", "UTC", "sometimes"), "missed");
    }
}
