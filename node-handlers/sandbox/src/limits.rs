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
}

impl LimitsOverride {
    /// The limits of a call: the defaults, overridden, each checked against
    /// the maxima.
    pub fn resolve(&self, defaults: &Limits, maxima: &Limits) -> Result<Limits, OverLimit> {
        let limits = Limits {
            wall: self.wall.unwrap_or(defaults.wall),
            memory_mb: self.memory_mb.unwrap_or(defaults.memory_mb),
            output_bytes: self.output_bytes.unwrap_or(defaults.output_bytes),
        };
        let over = |field, asked: String, max: String| OverLimit {
            field,
            message: format!("{asked} is more than the allowed {max}"),
        };
        if limits.wall.0 > maxima.wall.0 {
            return Err(over(
                "wall",
                limits.wall.to_string(),
                maxima.wall.to_string(),
            ));
        }
        if limits.wall.0.is_zero() {
            return Err(OverLimit {
                field: "wall",
                message: "must be more than zero".into(),
            });
        }
        if limits.memory_mb > maxima.memory_mb {
            return Err(over(
                "memory_mb",
                format!("{} MiB", limits.memory_mb),
                format!("{} MiB", maxima.memory_mb),
            ));
        }
        if limits.memory_mb < 8 {
            return Err(OverLimit {
                field: "memory_mb",
                message: "must be at least 8 MiB".into(),
            });
        }
        if limits.output_bytes > maxima.output_bytes {
            return Err(over(
                "output_bytes",
                format!("{} bytes", limits.output_bytes),
                format!("{} bytes", maxima.output_bytes),
            ));
        }
        Ok(limits)
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
