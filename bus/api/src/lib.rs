//! The vocabulary of flowmesh's API, shared by the gateway (HTTP), the
//! NATS trigger replies and the services that answer them: the requests
//! callers make, the answers they get, and one [`ErrorCode`] per kind of
//! refusal.

mod error_code;
mod requests;

pub use error_code::ErrorCode;
pub use requests::*;
