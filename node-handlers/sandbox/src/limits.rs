//! The limits of one call, as configured and as a node asks for them.

use flowmesh_model::HumanDuration;
use serde::{Deserialize, Serialize};

/// Hard limits of one call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Wall-clock time (and, for Python, CPU time).
    pub wall: HumanDuration,
    /// Memory: the JavaScript heap, or Python's address space above its
    /// start-up size. In MiB.
    pub memory_mb: u64,
    /// Size of the returned value as JSON, and of the logs, in bytes.
    pub output_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            wall: HumanDuration::from_millis(2_000),
            memory_mb: 64,
            output_bytes: 1 << 20,
        }
    }
}

impl Limits {
    /// The default maxima: what a node may raise its limits to.
    pub fn maxima() -> Self {
        Limits {
            wall: HumanDuration::from_millis(30_000),
            memory_mb: 512,
            output_bytes: 16 << 20,
        }
    }
}

/// The `limits` a node sets; what it leaves out comes from the defaults.
/// Code has no network (outbound calls go through `http_request`), so there
/// is no `network` limit: a node that sets one is refused.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend(
    "x-flowmesh-hint" = "code has no network: outbound calls go through an http_request node (and its SSRF guard)"
))]
pub struct LimitsOverride {
    pub wall: Option<HumanDuration>,
    /// In MiB, at least 8.
    #[schemars(range(min = 8))]
    pub memory_mb: Option<u64>,
    pub output_bytes: Option<u64>,
}

/// A limit asked for beyond what is allowed: the field and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OverLimit {
    pub field: &'static str,
    pub message: String,
    /// Above the maxima (rather than below what works at all).
    pub above_maximum: bool,
}

impl LimitsOverride {
    /// The limits of a call: the defaults, overridden.
    fn apply(&self, defaults: &Limits) -> Limits {
        Limits {
            wall: self.wall.unwrap_or(defaults.wall),
            memory_mb: self.memory_mb.unwrap_or(defaults.memory_mb),
            output_bytes: self.output_bytes.unwrap_or(defaults.output_bytes),
        }
    }

    /// Every limit of a call (the defaults, overridden) that is beyond the
    /// maxima or below what works.
    pub fn problems(&self, defaults: &Limits, maxima: &Limits) -> Vec<OverLimit> {
        let limits = self.apply(defaults);
        let over = |field, asked: String, max: String| OverLimit {
            field,
            message: format!("{asked} is more than the allowed {max}"),
            above_maximum: true,
        };
        let under = |field, message: &str| OverLimit {
            field,
            message: message.to_owned(),
            above_maximum: false,
        };
        let mut problems = Vec::new();
        if limits.wall.0 > maxima.wall.0 {
            problems.push(over(
                "wall",
                limits.wall.to_string(),
                maxima.wall.to_string(),
            ));
        } else if limits.wall.0.is_zero() {
            problems.push(under("wall", "must be more than zero"));
        }
        if limits.memory_mb > maxima.memory_mb {
            problems.push(over(
                "memory_mb",
                format!("{} MiB", limits.memory_mb),
                format!("{} MiB", maxima.memory_mb),
            ));
        } else if limits.memory_mb < 8 {
            problems.push(under("memory_mb", "must be at least 8 MiB"));
        }
        if limits.output_bytes > maxima.output_bytes {
            problems.push(over(
                "output_bytes",
                format!("{} bytes", limits.output_bytes),
                format!("{} bytes", maxima.output_bytes),
            ));
        }
        problems
    }

    /// The limits of a call: the defaults, overridden, each checked against
    /// the maxima.
    pub fn resolve(&self, defaults: &Limits, maxima: &Limits) -> Result<Limits, OverLimit> {
        match self.problems(defaults, maxima).into_iter().next() {
            Some(problem) => Err(problem),
            None => Ok(self.apply(defaults)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_and_maxima_bound_what_a_node_asks() {
        let (defaults, maxima) = (Limits::default(), Limits::maxima());
        let none = LimitsOverride::default();
        assert_eq!(none.resolve(&defaults, &maxima), Ok(defaults.clone()));
        let more = LimitsOverride {
            memory_mb: Some(128),
            ..Default::default()
        };
        assert_eq!(more.resolve(&defaults, &maxima).unwrap().memory_mb, 128);
        for (asked, field) in [
            (
                LimitsOverride {
                    wall: Some(HumanDuration::from_millis(60_000)),
                    ..Default::default()
                },
                "wall",
            ),
            (
                LimitsOverride {
                    memory_mb: Some(4_096),
                    ..Default::default()
                },
                "memory_mb",
            ),
            (
                LimitsOverride {
                    output_bytes: Some(1 << 30),
                    ..Default::default()
                },
                "output_bytes",
            ),
        ] {
            assert_eq!(asked.resolve(&defaults, &maxima).unwrap_err().field, field);
        }
    }

    #[test]
    fn every_limit_out_of_bounds_is_named_with_its_maximum() {
        let asked = LimitsOverride {
            wall: Some(HumanDuration::from_millis(0)),
            memory_mb: Some(4_096),
            output_bytes: Some(1 << 30),
        };
        let problems = asked.problems(&Limits::default(), &Limits::maxima());
        let fields: Vec<_> = problems.iter().map(|p| p.field).collect();
        assert_eq!(fields, ["wall", "memory_mb", "output_bytes"]);
        assert!(!problems[0].above_maximum);
        assert_eq!(
            problems[1].message,
            "4096 MiB is more than the allowed 512 MiB"
        );
        assert!(problems[1].above_maximum);
    }

    #[test]
    fn a_network_limit_is_an_unknown_field() {
        let error = serde_json::from_value::<LimitsOverride>(serde_json::json!({"network": true}))
            .unwrap_err()
            .to_string();
        assert!(error.contains("unknown field `network`"), "{error}");
        let error = serde_json::from_value::<Limits>(serde_json::json!({"network": false}))
            .unwrap_err()
            .to_string();
        assert!(error.contains("unknown field `network`"), "{error}");
    }
}
