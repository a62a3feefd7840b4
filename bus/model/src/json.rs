//! JSON carried inside bus messages.
//!
//! The binary codec cannot describe free-form JSON values (it has no
//! self-describing `deserialize_any`), so payloads travel as JSON text.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A JSON value kept as its text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JsonText(pub String);

impl JsonText {
    pub fn from_value(value: &Value) -> Self {
        Self(value.to_string())
    }

    /// Parses the text; text that is not JSON (which no part of flowmesh
    /// writes) reads as a JSON string so that nothing is silently dropped.
    pub fn to_value(&self) -> Value {
        serde_json::from_str(&self.0).unwrap_or_else(|_| Value::String(self.0.clone()))
    }
}

impl From<&Value> for JsonText {
    fn from(value: &Value) -> Self {
        Self::from_value(value)
    }
}
