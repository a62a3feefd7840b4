//! The one place that encodes bus messages. Today: bincode 2.0.1 through its
//! serde API. Every message is tagged with its encoding and schema version,
//! so a new codec can be added here and read side by side with the old one
//! while messages in flight drain.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;

/// Schema version of the model's commands and events.
/// 2: events carry their per-execution `seq`.
/// 3: start commands carry their cause.
/// 4: events carry their recorded tenant-stream `position`.
pub const SCHEMA_VERSION: u16 = 4;
/// The encoding written today.
pub const ENCODING: &str = "bincode2";

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map_err(|e| Error::Codec(e.into()))
}

/// Decodes a message, refusing encodings and schema versions it does not know.
pub fn decode<T: DeserializeOwned>(encoding: &str, schema: u16, bytes: &[u8]) -> Result<T, Error> {
    if encoding != ENCODING {
        return Err(Error::Codec(
            format!("unknown encoding {encoding:?}").into(),
        ));
    }
    if schema != SCHEMA_VERSION {
        return Err(Error::Codec(
            format!("unknown schema version {schema}").into(),
        ));
    }
    let (value, read) = bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .map_err(|e| Error::Codec(e.into()))?;
    if read != bytes.len() {
        return Err(Error::Codec(
            format!("{} trailing bytes", bytes.len() - read).into(),
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowmesh_model::{
        Command, EventKind, ExecutionEvent, ExecutionId, ExecutionStatus, JsonText, StartCause,
        TenantId, WorkflowId,
    };

    #[test]
    fn commands_and_events_round_trip() {
        let cmd = Command::StartExecution {
            tenant: TenantId::new(),
            workflow: WorkflowId::new(),
            execution: ExecutionId::new(),
            cause: StartCause::Resumed {
                signal: "s1".into(),
            },
        };
        let back: Command = decode(ENCODING, SCHEMA_VERSION, &encode(&cmd).unwrap()).unwrap();
        assert_eq!(back, cmd);
        let event = ExecutionEvent {
            tenant: TenantId::new(),
            workflow: WorkflowId::new(),
            execution: ExecutionId::new(),
            at_ms: 42,
            seq: 3,
            position: 9,
            kind: EventKind::ExecutionFinished {
                status: ExecutionStatus::Succeeded,
                output: Some(JsonText("{\"a\":[1,2]}".into())),
                error: None,
            },
        };
        let back: ExecutionEvent =
            decode(ENCODING, SCHEMA_VERSION, &encode(&event).unwrap()).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn unknown_encodings_versions_and_garbage_are_refused() {
        let bytes = encode(&Command::CancelExecution {
            tenant: TenantId::new(),
            workflow: WorkflowId::new(),
            execution: ExecutionId::new(),
        })
        .unwrap();
        assert!(matches!(
            decode::<Command>("json", SCHEMA_VERSION, &bytes),
            Err(Error::Codec(_))
        ));
        assert!(matches!(
            decode::<Command>(ENCODING, 99, &bytes),
            Err(Error::Codec(_))
        ));
        assert!(matches!(
            decode::<Command>(ENCODING, SCHEMA_VERSION, &[0xff, 0xff, 0xff]),
            Err(Error::Codec(_))
        ));
    }
}
