//! NCAP, the NexusCore Agent Protocol, is A2A: this crate holds its wire format.
//!
//! - [`jsonrpc`]: JSON-RPC 2.0 envelopes and the A2A error codes.
//! - [`a2a`]: one neutral view of a task ([`a2a::TaskView`]) built from a NexusCore task and its
//!   event log, rendered in the A2A 1.0 shape (ProtoJSON: camelCase, `TASK_STATE_*` enums,
//!   `oneof` parts) or the 0.3 shape (`kind` discriminators, lowercase states), and message
//!   parsing from either.
//! - [`stream`]: a task's log events as A2A stream responses (SSE payloads).
//! - [`proto_json`]: accepting 1.0 requests written with proto field names (`task_id`).
//!
//! No IO: the HTTP routes live in `nexus-api`.

pub mod a2a;
pub mod jsonrpc;
pub mod proto_json;
pub mod stream;
