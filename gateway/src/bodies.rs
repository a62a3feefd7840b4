//! The JSON bodies routes take: read with serde (unknown fields refused)
//! and described in the OpenAPI document through their schemars schemas.

use flowmesh_model::Role;
use flowmesh_services::VISIBLE;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// Whole numbers, written as integers or (as JSON Schema allows) as
/// numbers with no fraction such as `5.0`.
mod whole {
    use super::*;

    fn from_f64<E: serde::de::Error>(n: f64) -> Result<i64, E> {
        // Beyond 2^53 a float no longer holds every whole number exactly.
        if n.fract() == 0.0 && n.abs() <= 9_007_199_254_740_992.0 {
            Ok(n as i64)
        } else {
            Err(E::custom(format!("expected a whole number, got {n}")))
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Number {
        Int(i64),
        Float(f64),
    }

    pub fn i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        match Number::deserialize(d)? {
            Number::Int(n) => Ok(n),
            Number::Float(f) => from_f64(f),
        }
    }

    pub fn option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        match Option::<Number>::deserialize(d)? {
            None => Ok(None),
            Some(Number::Int(n)) => Ok(Some(n)),
            Some(Number::Float(f)) => from_f64(f).map(Some),
        }
    }

    /// A whole number of 0 or more, or null, told apart from a field left
    /// out (see `present`).
    pub fn present_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
        let n = option(d)?;
        let n = n
            .map(|n| {
                u64::try_from(n).map_err(|_| {
                    serde::de::Error::custom(format!("expected a number of 0 or more, got {n}"))
                })
            })
            .transpose()?;
        Ok(Some(n))
    }
}

/// `POST /v1/workflows/{id}/publish`: which version to publish.
#[derive(Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Publish {
    /// An earlier version rolls back to it; the latest when absent.
    #[schemars(range(min = 1, max = 9_007_199_254_740_992i64))]
    #[serde(default, deserialize_with = "whole::option")]
    pub version: Option<i64>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Register {
    #[schemars(
        length(max = 254),
        pattern(r"^[^@ \t\n\r\f\v]+@[^ \t\n\r\f\v]*\.[^ \t\n\r\f\v]*$")
    )]
    pub email: String,
    #[schemars(length(min = 10, max = 1024))]
    pub password: String,
    /// The tenant's name; its slug is made from it.
    #[schemars(length(max = 100), pattern(VISIBLE))]
    pub tenant: String,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub email: String,
    pub password: String,
    /// The id of the tenant to open the session for; needed only when the
    /// account belongs to several (without it, the answer lists them).
    #[serde(default)]
    pub tenant: Option<flowmesh_model::TenantId>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Accept {
    /// The invitation's token.
    pub token: String,
    /// The password of the email's account when it has one (an invitation
    /// never replaces it); else the password of the new account.
    #[schemars(length(min = 10, max = 1024))]
    pub password: String,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Invite {
    #[schemars(
        length(max = 254),
        pattern(r"^[^@ \t\n\r\f\v]+@[^ \t\n\r\f\v]*\.[^ \t\n\r\f\v]*$")
    )]
    pub email: String,
    pub role: Role,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    #[schemars(length(max = 100), pattern(VISIBLE))]
    pub name: String,
    pub role: Role,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PutSecret {
    /// At most 65536 characters.
    #[schemars(length(min = 1, max = 65536))]
    pub value: String,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AutoRefill {
    /// Refill when the balance falls below this.
    #[schemars(range(min = 0))]
    #[serde(deserialize_with = "whole::i64")]
    pub threshold: i64,
    /// Credits bought each time.
    #[schemars(range(min = 1))]
    #[serde(deserialize_with = "whole::i64")]
    pub amount: i64,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// Credits to add (negative to take back); not zero.
    #[schemars(range(min = -1_000_000_000_000i64, max = 1_000_000_000_000i64), extend("not" = {"const": 0}))]
    #[serde(deserialize_with = "whole::i64")]
    pub amount: i64,
    #[serde(default)]
    pub note: Option<String>,
}

/// Each limit, or null for the instance default.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[schemars(range(min = 1))]
    #[serde(default, deserialize_with = "whole::option")]
    pub rate_limit: Option<i64>,
    #[schemars(range(min = 1))]
    #[serde(default, deserialize_with = "whole::option")]
    pub max_concurrent: Option<i64>,
    #[schemars(range(min = 1))]
    #[serde(default, deserialize_with = "whole::option")]
    pub max_payload_bytes: Option<i64>,
}

#[derive(Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resume {
    /// The waiting node; needed only when several wait. A node of a loop's
    /// body is named with `scope`, or by its step key (`each[3].approve`).
    #[serde(default)]
    pub node: Option<String>,
    /// The loop iteration the node waits in (`each[3]`).
    #[serde(default)]
    pub scope: Option<String>,
    /// Becomes the node's output.
    #[serde(default)]
    pub payload: Value,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rerun {
    /// A node of the workflow, or of a loop's body with `scope`; or a step
    /// key within an iteration (`charge_each[3].charge`).
    pub from_node: String,
    /// The loop iteration `from_node` is in (`charge_each[3]`,
    /// `outer[1].inner[2]`): only that iteration runs again, from that node.
    #[serde(default)]
    pub scope: Option<String>,
    /// Outputs to use instead of the recorded ones, by node id.
    #[serde(default)]
    pub input_override: Option<Map<String, Value>>,
    /// The version to run: a number, or `"published"` for the one published
    /// now (the original execution's when absent).
    #[serde(default, deserialize_with = "rerun_version")]
    pub version: Option<RerunVersion>,
}

/// A version number, or `"published"`.
#[derive(JsonSchema)]
#[serde(untagged)]
pub enum RerunVersion {
    Number(#[schemars(range(min = 1))] i64),
    Published(Published),
}

#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Published {
    Published,
}

/// Read by hand so that a wrong value is named plainly, not as "no variant
/// of an untagged enum matched".
fn rerun_version<'de, D: Deserializer<'de>>(d: D) -> Result<Option<RerunVersion>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) if s == "published" => {
            Ok(Some(RerunVersion::Published(Published::Published)))
        }
        // A whole number, also written as `5.0` (JSON Schema's integer).
        Value::Number(ref n) if let Some(v) = whole_at_least_one(n) => {
            Ok(Some(RerunVersion::Number(v)))
        }
        other => Err(serde::de::Error::custom(format!(
            "must be a version number (1 or more) or \"published\", not {other}"
        ))),
    }
}

fn whole_at_least_one(n: &serde_json::Number) -> Option<i64> {
    whole::i64(n.clone()).ok().filter(|&v| v >= 1)
}

impl RerunVersion {
    pub fn into_api(self) -> flowmesh_api::RerunVersion {
        match self {
            RerunVersion::Number(n) => flowmesh_api::RerunVersion::Number(n),
            RerunVersion::Published(Published::Published) => flowmesh_api::RerunVersion::Published,
        }
    }
}

/// A test run of one version: `{"input": ..., "mocks": ...}`, both optional.
#[derive(Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestRun {
    /// The input, which becomes `trigger.body`.
    #[serde(default)]
    pub input: Option<Map<String, Value>>,
    /// Outputs of action or data nodes, by node id: those nodes are not run
    /// and their mock is their output.
    #[serde(default)]
    pub mocks: Option<Map<String, Value>>,
}

/// A change to the tenant's data settings: a field left out keeps its
/// value, a field set to null goes back to its default.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// How long finished executions are kept, such as `30d` (at most
    /// 3650d); null: the default, 30 days.
    #[schemars(pattern(r"^[1-9][0-9]{0,2}(ms|s|m|h|d)$"))]
    #[serde(default, deserialize_with = "present")]
    pub retention: Option<Option<String>>,
    /// Largest output of one node, in bytes (1 KiB to the instance's cap,
    /// `--tenant-max-output-bytes`, which the served document states);
    /// null: the default, 8 MiB or the instance's cap if lower.
    #[schemars(range(min = 1024))]
    #[serde(default, deserialize_with = "whole::present_u64")]
    pub max_output_bytes: Option<Option<u64>>,
}

/// A field that may be null, told apart from one left out (which
/// `#[serde(default)]` makes `None`).
fn present<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Describe a workflow in plain language.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Generate {
    /// What the workflow should do.
    #[schemars(length(min = 1, max = 4000), pattern(VISIBLE))]
    pub prompt: String,
    /// How many times the model may repair an invalid answer (default 2).
    #[serde(default, deserialize_with = "whole::option")]
    #[schemars(range(min = 0, max = 5))]
    pub repairs: Option<i64>,
}

/// Parameters of a template (see `GET /v1/templates`).
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Instantiate {
    #[serde(default)]
    pub parameters: Map<String, Value>,
    /// The draft's name; the template's otherwise.
    #[serde(default)]
    #[schemars(length(min = 1, max = 200), pattern(VISIBLE))]
    pub name: Option<String>,
}

/// The tenant's language-model endpoint; null fields take the instance's.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelSettings {
    /// An OpenAI-compatible API, such as `https://api.openai.com/v1`.
    #[serde(default)]
    #[schemars(pattern(r"^https?://[^/?#\s]+([/?#]\S*)?$"))]
    pub base_url: Option<String>,
    #[serde(default)]
    #[schemars(length(min = 1, max = 200), pattern(VISIBLE))]
    pub model: Option<String>,
    /// The name of the tenant's secret holding the API key.
    #[serde(default)]
    #[schemars(pattern(r"^[A-Za-z0-9_.-]{1,128}$"))]
    pub api_key_secret: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn version(v: Value) -> Result<Option<i64>, String> {
        serde_json::from_value::<Rerun>(json!({"from_node": "a", "version": v}))
            .map(|r| {
                r.version.map(|v| match v {
                    RerunVersion::Number(n) => n,
                    RerunVersion::Published(_) => 0,
                })
            })
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_rerun_version_is_a_whole_number_of_one_or_more_or_published() {
        assert_eq!(version(json!(3)), Ok(Some(3)));
        // JSON Schema's integer: a number with no fraction.
        assert_eq!(version(json!(345188.0)), Ok(Some(345188)));
        assert_eq!(version(json!("published")), Ok(Some(0)));
        assert_eq!(version(Value::Null), Ok(None));
        for bad in [
            json!(0),
            json!(-3),
            json!(1.5),
            json!(1e300),
            json!("Published"),
            json!(true),
        ] {
            assert!(version(bad.clone()).is_err(), "{bad} was accepted");
        }
    }
}
