//! Durations written as strings such as `"250ms"`, `"5s"` or `"2h"`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration that reads and writes as a human string (`"250ms"`, `"2h"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub const fn from_millis(ms: u64) -> Self {
        Self(Duration::from_millis(ms))
    }

    pub fn as_duration(self) -> Duration {
        self.0
    }
}

impl From<Duration> for HumanDuration {
    fn from(d: Duration) -> Self {
        Self(d)
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        humantime::format_duration(self.0).fmt(f)
    }
}

impl FromStr for HumanDuration {
    type Err = humantime::DurationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        humantime::parse_duration(s.trim()).map(Self)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid duration {text:?} ({e}); write it like \"250ms\", \"5s\" or \"2h\""
            ))
        })
    }
}

impl schemars::JsonSchema for HumanDuration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    // Inline, so that an optional duration is a string or null rather than
    // a choice whose mismatch says nothing of durations.
    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "format": "duration",
            "description": "A duration such as \"250ms\", \"5s\", \"2h\" or \"1h 30m\".",
            "examples": ["250ms", "5s", "2h"]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        for (text, ms) in [
            ("250ms", 250),
            ("5s", 5_000),
            ("2h", 7_200_000),
            ("1m 30s", 90_000),
        ] {
            let d: HumanDuration = serde_json::from_value(serde_json::json!(text)).unwrap();
            assert_eq!(d.0.as_millis(), ms, "{text}");
        }
    }

    #[test]
    fn rejects_garbage_with_a_hint() {
        let err = serde_json::from_value::<HumanDuration>(serde_json::json!("soon")).unwrap_err();
        assert!(err.to_string().contains("250ms"));
    }

    #[test]
    fn round_trips() {
        let d = HumanDuration::from_millis(1500);
        let text = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<HumanDuration>(&text).unwrap(), d);
    }
}
