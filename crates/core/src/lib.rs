//! NexusCore domain types.
//!
//! This crate is the shared vocabulary of the platform: typed ids, the nouns of DESIGN.md §3
//! and the stable error codes. It does no IO: storage, HTTP and the runtime depend on it, never
//! the other way round.

pub mod agent;
pub mod audit;
pub mod error;
pub mod id;
pub mod id_prefix;
pub mod identity;
pub mod message;
pub mod name;
pub mod net;
pub mod package;
pub mod page;
pub mod policy;
pub mod task;
pub mod tenant;
pub mod user;

pub use agent::{Agent, AgentRevision, Grants, NewAgentRevision};
pub use audit::{AuditEvent, NewAuditEvent};
pub use error::ErrorCode;
pub use id::{
    AgentId, ApiKeyId, AuditEventId, IdParseError, PackageId, PolicyId, ServiceAccountId, TaskId,
    TeamId, TenantId, UserId,
};
pub use id_prefix::IdPrefix;
pub use identity::{ApiKey, Caller, NewApiKey, Principal};
pub use message::{Artifact, Message, Part, Role};
pub use name::{Name, NameError};
pub use package::{NewPackage, Package, PackageRef, PackageRefError};
pub use page::{Cursor, Page, PageRequest};
pub use policy::{NewPolicy, Policy};
pub use task::{IllegalTransition, NewTask, Task, TaskEvent, TaskEventKind, TaskState};
pub use tenant::{NewTenant, Tenant};
pub use user::{Membership, NewUser, ServiceAccount, Team, User};
