//! `/v1/tenants/{tenant}/tasks`: the task list.

use nexus_core::Task;
use serde::{Deserialize, Serialize};

/// A task in the task list (newest first): the task's fields, its agent's name and a short id
/// to type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ListedTask {
    #[serde(flatten)]
    pub task: Task,
    /// The name of the task's agent.
    pub agent: String,
    /// The shortest leading part of `id` (at least 8 hex digits, hyphens kept) that no other
    /// task of the tenant started with when the list was read. Every route that takes a task
    /// id takes such a prefix: one that several tasks start with is refused
    /// (`validation_failed`), one that none does is `not_found`.
    pub short_id: String,
}
