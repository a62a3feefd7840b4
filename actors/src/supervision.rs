//! The one table of restart policies, and the bookkeeping that applies it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What a supervisor does when a child of one kind fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestartPolicy {
    pub kind: &'static str,
    /// Restarts allowed inside `window` before giving up.
    pub max_restarts: usize,
    pub window: Duration,
    /// Delay before the first restart; doubles with each restart in the window.
    pub initial_backoff: Duration,
    /// What giving up means for this kind.
    pub on_give_up: GiveUp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GiveUp {
    /// The execution is marked failed ("crashed") and its lease released.
    FailExecution,
    /// The actor stays down; it is spawned again by the next message for it.
    SpawnOnDemand,
}

/// Every actor kind and its policy. The root has none: if it fails the
/// process exits, and executions resume from the journal at the next start.
pub const RESTART_POLICIES: &[RestartPolicy] = &[
    RestartPolicy {
        kind: "tenant",
        max_restarts: 0,
        window: Duration::from_secs(60),
        initial_backoff: Duration::ZERO,
        on_give_up: GiveUp::SpawnOnDemand,
    },
    RestartPolicy {
        kind: "workflow",
        max_restarts: 0,
        window: Duration::from_secs(60),
        initial_backoff: Duration::ZERO,
        on_give_up: GiveUp::SpawnOnDemand,
    },
    RestartPolicy {
        kind: "sandbox",
        max_restarts: 0,
        window: Duration::from_secs(60),
        initial_backoff: Duration::ZERO,
        on_give_up: GiveUp::SpawnOnDemand,
    },
    RestartPolicy {
        kind: "execution",
        max_restarts: 3,
        window: Duration::from_secs(60),
        initial_backoff: Duration::from_millis(100),
        on_give_up: GiveUp::FailExecution,
    },
];

pub fn policy(kind: &str) -> &'static RestartPolicy {
    RESTART_POLICIES
        .iter()
        .find(|p| p.kind == kind)
        .unwrap_or(&RESTART_POLICIES[0])
}

/// Recent restarts of one child, to apply a policy's window.
#[derive(Debug, Default)]
pub struct RestartHistory {
    restarts: VecDeque<Instant>,
}

impl RestartHistory {
    /// Records a failure; returns the delay before restarting, or `None` to give up.
    pub fn next_restart(&mut self, policy: &RestartPolicy, now: Instant) -> Option<Duration> {
        while self
            .restarts
            .front()
            .is_some_and(|t| now.duration_since(*t) > policy.window)
        {
            self.restarts.pop_front();
        }
        if self.restarts.len() >= policy.max_restarts {
            return None;
        }
        let delay = policy.initial_backoff * 2u32.pow(self.restarts.len() as u32);
        self.restarts.push_back(now);
        Some(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_policy() {
        for kind in ["tenant", "workflow", "execution"] {
            assert_eq!(policy(kind).kind, kind);
        }
    }

    #[test]
    fn execution_restarts_back_off_then_give_up() {
        let p = policy("execution");
        let mut h = RestartHistory::default();
        let t = Instant::now();
        assert_eq!(h.next_restart(p, t), Some(Duration::from_millis(100)));
        assert_eq!(h.next_restart(p, t), Some(Duration::from_millis(200)));
        assert_eq!(h.next_restart(p, t), Some(Duration::from_millis(400)));
        assert_eq!(h.next_restart(p, t), None);
        // Outside the window the budget is back.
        assert_eq!(
            h.next_restart(p, t + Duration::from_secs(61)),
            Some(Duration::from_millis(100))
        );
    }
}
