//! The bodies of the `/v1` REST API that are not domain types of `nexus-core`: what clients
//! send, and the responses the API assembles. The server (`nexus-api`) deserializes requests and
//! serializes responses with these types, the CLI does the opposite, and their `ToSchema`
//! derives are the OpenAPI document's schemas.
//!
//! Request bodies refuse unknown fields; response bodies accept them, so an older client reads
//! a newer server's answers. Serde only: no IO.

pub mod agents;
pub mod keys;
pub mod members;
pub mod policies;
pub mod problem;
pub mod secrets;
pub mod service_accounts;
pub mod state;
pub mod tasks;
pub mod teams;
pub mod tenants;
pub mod users;

pub use agents::{
    AgentDetail, DeployBody, Deployment, GrantsBody, Invocation, InvokeBody, LlmUsage, Reply,
    RollbackBody, TaskError, TaskResult, Usage,
};
pub use keys::{CreateKey, CreatedKeyBody};
pub use members::AddMember;
pub use policies::{CreatePolicy, ExplainBody, Explanation, PolicyList};
pub use problem::Problem;
pub use secrets::{SecretInfo, SecretList};
pub use service_accounts::CreateServiceAccount;
pub use state::{StateCleared, StateEncoding, StateKey, StateKeys, StateValue};
pub use tasks::ListedTask;
pub use teams::{AddTeamMember, CreateTeam};
pub use tenants::{CreateTenant, ExportTrailer};
pub use users::{ChangePassword, Login, ResetPassword, Session, WhoAmI};
