//! Lifecycles of executions and nodes: explicit states, one transition
//! function each. Every status change in the engine goes through these.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A transition that the lifecycle does not allow from the current state.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("illegal transition {transition} from {from}")]
pub struct IllegalTransition {
    pub from: &'static str,
    pub transition: &'static str,
}

macro_rules! str_enum {
    ($name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownStatus;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s { $($text => Ok($name::$variant),)+ _ => Err(UnknownStatus(s.to_owned())) }
            }
        }
    };
}

/// A status string that names no state.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown status {0:?}")]
pub struct UnknownStatus(pub String);

/// Where an execution stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    TimedOut,
}

str_enum!(ExecutionStatus {
    Queued => "queued",
    Running => "running",
    Succeeded => "succeeded",
    Failed => "failed",
    Cancelled => "cancelled",
    TimedOut => "timed_out",
});

/// What can happen to an execution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExecutionTransition {
    Start,
    Succeed,
    Fail,
    Cancel,
    TimeOut,
}

str_enum!(ExecutionTransition {
    Start => "start",
    Succeed => "succeed",
    Fail => "fail",
    Cancel => "cancel",
    TimeOut => "time_out",
});

impl ExecutionStatus {
    pub fn is_terminal(self) -> bool {
        !matches!(self, ExecutionStatus::Queued | ExecutionStatus::Running)
    }

    /// The one transition function of executions.
    pub fn apply(self, t: ExecutionTransition) -> Result<Self, IllegalTransition> {
        use ExecutionStatus as S;
        use ExecutionTransition as T;
        match (self, t) {
            (S::Queued, T::Start) => Ok(S::Running),
            // A queued execution can fail before it starts (its workflow was deleted).
            (S::Queued | S::Running, T::Fail) => Ok(S::Failed),
            (S::Queued | S::Running, T::Cancel) => Ok(S::Cancelled),
            (S::Queued | S::Running, T::TimeOut) => Ok(S::TimedOut),
            (S::Running, T::Succeed) => Ok(S::Succeeded),
            _ => Err(IllegalTransition {
                from: self.as_str(),
                transition: t.as_str(),
            }),
        }
    }
}

/// Where one node of an execution stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    Pending,
    Running,
    /// Waiting for a time (a `wait` node) or for a resume (`wait_for_event`).
    Waiting,
    Retrying,
    Succeeded,
    Failed,
    Skipped,
    /// Was running, retrying or waiting when its execution was cancelled.
    Cancelled,
}

str_enum!(NodeStatus {
    Pending => "pending",
    Running => "running",
    Waiting => "waiting",
    Retrying => "retrying",
    Succeeded => "succeeded",
    Failed => "failed",
    Skipped => "skipped",
    Cancelled => "cancelled",
});

/// What can happen to a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NodeTransition {
    /// An attempt begins.
    Start,
    Succeed,
    /// The attempt failed and no retry is left (or the failure is permanent).
    Fail,
    /// The attempt failed transiently; another is scheduled.
    ScheduleRetry,
    /// The attempt parks until a time or a resume.
    Wait,
    /// The node's branch was not taken.
    Skip,
    /// The execution ended (timed out, failed elsewhere) before the node did.
    Abort,
    /// The execution was cancelled before the node ended.
    Cancel,
}

str_enum!(NodeTransition {
    Start => "start",
    Succeed => "succeed",
    Fail => "fail",
    ScheduleRetry => "schedule_retry",
    Wait => "wait",
    Skip => "skip",
    Abort => "abort",
    Cancel => "cancel",
});

impl NodeStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            NodeStatus::Succeeded
                | NodeStatus::Failed
                | NodeStatus::Skipped
                | NodeStatus::Cancelled
        )
    }

    /// The one transition function of nodes.
    pub fn apply(self, t: NodeTransition) -> Result<Self, IllegalTransition> {
        use NodeStatus as S;
        use NodeTransition as T;
        match (self, t) {
            (S::Pending | S::Retrying, T::Start) => Ok(S::Running),
            (S::Running | S::Waiting, T::Succeed) => Ok(S::Succeeded),
            (S::Running | S::Waiting, T::Fail) => Ok(S::Failed),
            (S::Running, T::ScheduleRetry) => Ok(S::Retrying),
            (S::Running, T::Wait) => Ok(S::Waiting),
            (S::Pending, T::Skip) => Ok(S::Skipped),
            (S::Pending, T::Abort | T::Cancel) => Ok(S::Skipped),
            (S::Running | S::Waiting | S::Retrying, T::Abort) => Ok(S::Failed),
            (S::Running | S::Waiting | S::Retrying, T::Cancel) => Ok(S::Cancelled),
            _ => Err(IllegalTransition {
                from: self.as_str(),
                transition: t.as_str(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks every (state, transition) pair: the legal ones lead where the
    /// table says, every other one is refused and leaves the state as it was.
    fn check_table<S, T>(
        states: &[S],
        transitions: &[T],
        legal: &[(S, T, S)],
        apply: impl Fn(S, T) -> Result<S, IllegalTransition>,
    ) where
        S: Copy + PartialEq + fmt::Debug + fmt::Display,
        T: Copy + PartialEq + fmt::Display,
    {
        for &from in states {
            for &t in transitions {
                let expected = legal
                    .iter()
                    .find(|(f, tr, _)| *f == from && *tr == t)
                    .map(|l| l.2);
                match (apply(from, t), expected) {
                    (Ok(to), Some(want)) => assert_eq!(to, want, "{from} --{t}-->"),
                    (Err(e), None) => assert_eq!(
                        (e.from.to_owned(), e.transition.to_owned()),
                        (from.to_string(), t.to_string())
                    ),
                    (got, want) => panic!("{from} --{t}--> gave {got:?}, expected {want:?}"),
                }
            }
        }
    }

    #[test]
    fn every_execution_transition_is_decided() {
        use ExecutionStatus as S;
        use ExecutionTransition as T;
        let legal = [
            (S::Queued, T::Start, S::Running),
            (S::Queued, T::Fail, S::Failed),
            (S::Queued, T::Cancel, S::Cancelled),
            (S::Queued, T::TimeOut, S::TimedOut),
            (S::Running, T::Succeed, S::Succeeded),
            (S::Running, T::Fail, S::Failed),
            (S::Running, T::Cancel, S::Cancelled),
            (S::Running, T::TimeOut, S::TimedOut),
        ];
        check_table(S::ALL, T::ALL, &legal, S::apply);
    }

    #[test]
    fn every_node_transition_is_decided() {
        use NodeStatus as S;
        use NodeTransition as T;
        let legal = [
            (S::Pending, T::Start, S::Running),
            (S::Retrying, T::Start, S::Running),
            (S::Running, T::Succeed, S::Succeeded),
            (S::Running, T::Fail, S::Failed),
            (S::Running, T::ScheduleRetry, S::Retrying),
            (S::Running, T::Wait, S::Waiting),
            (S::Waiting, T::Succeed, S::Succeeded),
            (S::Waiting, T::Fail, S::Failed),
            (S::Waiting, T::Abort, S::Failed),
            (S::Pending, T::Skip, S::Skipped),
            (S::Pending, T::Abort, S::Skipped),
            (S::Running, T::Abort, S::Failed),
            (S::Retrying, T::Abort, S::Failed),
            (S::Pending, T::Cancel, S::Skipped),
            (S::Running, T::Cancel, S::Cancelled),
            (S::Waiting, T::Cancel, S::Cancelled),
            (S::Retrying, T::Cancel, S::Cancelled),
        ];
        check_table(S::ALL, T::ALL, &legal, S::apply);
    }

    #[test]
    fn terminal_states_have_no_way_out() {
        for &s in ExecutionStatus::ALL.iter().filter(|s| s.is_terminal()) {
            assert!(
                ExecutionTransition::ALL
                    .iter()
                    .all(|&t| s.apply(t).is_err()),
                "{s}"
            );
        }
        for &s in NodeStatus::ALL.iter().filter(|s| s.is_terminal()) {
            assert!(
                NodeTransition::ALL.iter().all(|&t| s.apply(t).is_err()),
                "{s}"
            );
        }
    }

    #[test]
    fn statuses_round_trip_through_text() {
        for &s in ExecutionStatus::ALL {
            assert_eq!(s.as_str().parse::<ExecutionStatus>().unwrap(), s);
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::json!(s.as_str())
            );
        }
        for &s in NodeStatus::ALL {
            assert_eq!(s.as_str().parse::<NodeStatus>().unwrap(), s);
        }
        assert!("done".parse::<NodeStatus>().is_err());
    }
}
