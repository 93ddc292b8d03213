//! The SQL implementation of the NexusCore store, shared by the SQLite and PostgreSQL backends.
//!
//! Both backends speak the same SQL here: numbered parameters (`$1`, which SQLite accepts too),
//! `ON CONFLICT`, `RETURNING`. What differs — the pool set-up, the migrations' column types and
//! row locking (`FOR UPDATE` exists only in PostgreSQL; SQLite serialises writers instead) — stays
//! in each backend crate, which invokes [`impl_store!`] for its own concrete `sqlx` database.
//! A macro rather than generics keeps each expansion concrete: sqlx's generic executor bounds
//! would otherwise spread over every method.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use nexus_core::identity::Role;
use nexus_core::{
    Agent, AgentId, AgentRevision, ApiKey, ApiKeyId, AuditEvent, AuditEventId, Cursor, Grants,
    Membership, Name, Package, PackageId, Policy, PolicyId, Task, TaskEvent, TaskId, TaskState,
    Tenant, TenantId, User, UserId,
};
use nexus_store::{ListedTask, StoreError};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::types::Json;
use sqlx::{FromRow, SqlSafeStr};
use uuid::Uuid;

mod names;
mod store_macro;
mod task_writer;

pub use names::{AgentCaching, AgentGeneration, MAX_CACHED_NAMES, NameCache, TenantGeneration};

pub use task_writer::{
    BatchFailure, BatchWrites, EventRow, MAX_TASK_WRITES_PER_BATCH, PlannedTask, TASK_WRITE_QUEUE,
    TaskBatchSql, TaskWriter,
};

#[doc(hidden)]
pub mod __private {
    pub use async_trait::async_trait;
    pub use chrono;
    pub use nexus_core;
    pub use nexus_store;
    pub use serde_json;
    pub use sqlx;
    pub use uuid;
}

/// Task events written per multi-row `INSERT`: 6 bound parameters each keeps a statement far
/// below SQLite's 32,766 and PostgreSQL's 65,535 parameter limits.
pub const EVENTS_PER_INSERT: usize = 1000;

/// Task rows per multi-row statement of a write batch (`INSERT`, `UPDATE … FROM (VALUES …)`,
/// `IN (…)`): at most 11 bound parameters each keeps a statement far below SQLite's 32,766 and
/// PostgreSQL's 65,535 parameter limits. A batch has at most [`MAX_TASK_WRITES_PER_BATCH`]
/// tasks, so this bound is a guard, not a split that happens.
pub const TASKS_PER_STATEMENT: usize = 1000;

/// States in which a task is running on some node: the ones a crash leaves behind.
pub const RUNNING_STATES: [TaskState; 2] = [TaskState::Submitted, TaskState::Working];

/// Builds a migrator from migrations embedded in the binary: `(version, description, sql)`.
pub fn migrator(migrations: &[(i64, &'static str, &'static str)]) -> Migrator {
    Migrator::with_migrations(
        migrations
            .iter()
            .map(|(version, description, sql)| {
                Migration::new(
                    *version,
                    Cow::Borrowed(*description),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

/// Maps a driver error that the caller did not handle specifically.
pub fn map_err(err: sqlx::Error) -> StoreError {
    map_err_ref(&err)
}

/// [`map_err`] for an error that several callers share (a failed batch).
pub fn map_err_ref(err: &sqlx::Error) -> StoreError {
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            StoreError::Unavailable(err.to_string())
        }
        sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) => StoreError::Unavailable(err.to_string()),
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
            StoreError::Corrupt(err.to_string())
        }
        other => StoreError::Backend(other.to_string()),
    }
}

/// [`TaskBatchSql::classify`] for an sqlx driver's error.
pub fn classify_batch_error(err: &sqlx::Error) -> BatchFailure {
    if is_foreign_key_violation(err) {
        BatchFailure::MissingAgent
    } else if is_unique_violation(err) {
        BatchFailure::TakenId
    } else {
        BatchFailure::Database(map_err_ref(err))
    }
}

/// Whether `err` is a unique-constraint violation.
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Whether `err` is a foreign-key violation (the referenced row does not exist).
pub fn is_foreign_key_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_foreign_key_violation())
}

/// Decodes a page cursor: the id of the last row of the previous page.
pub fn parse_cursor(cursor: Option<&Cursor>) -> Result<Option<Uuid>, StoreError> {
    cursor
        .map(|Cursor(text)| {
            Uuid::try_parse(text)
                .map_err(|_| StoreError::InvalidCursor(text.chars().take(64).collect()))
        })
        .transpose()
}

/// Converts a stored non-negative integer.
pub fn to_u32(value: i64, column: &str) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt(format!("{column} = {value}")))
}

/// Converts a stored non-negative integer.
pub fn to_u64(value: i64, column: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{column} = {value}")))
}

/// Converts a count or size for storage (SQL integers are signed 64-bit).
pub fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A stored name, or `Corrupt` naming the column.
pub fn name(value: String, column: &str) -> Result<Name, StoreError> {
    Name::parse(&value).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

fn parse<T: std::str::FromStr>(value: &str, column: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|e: T::Err| StoreError::Corrupt(format!("{column}: {e}")))
}

/// A `tenants` row.
#[derive(Debug, FromRow)]
pub struct TenantRow {
    pub id: Uuid,
    pub name: String,
    pub display_name: String,
    pub created_at: DateTime<Utc>,
}

impl TryFrom<TenantRow> for Tenant {
    type Error = StoreError;
    fn try_from(row: TenantRow) -> Result<Self, StoreError> {
        Ok(Tenant {
            id: TenantId::from_uuid(row.id),
            name: name(row.name, "tenants.name")?,
            display_name: row.display_name,
            created_at: row.created_at,
        })
    }
}

/// An `agents` row.
#[derive(Debug, FromRow)]
pub struct AgentRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub current_revision: i64,
    pub owner: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<AgentRow> for Agent {
    type Error = StoreError;
    fn try_from(row: AgentRow) -> Result<Self, StoreError> {
        Ok(Agent {
            id: AgentId::from_uuid(row.id),
            tenant_id: TenantId::from_uuid(row.tenant_id),
            name: name(row.name, "agents.name")?,
            current_revision: to_u32(row.current_revision, "agents.current_revision")?,
            owner: row.owner,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// An `agent_revisions` row.
#[derive(Debug, FromRow)]
pub struct RevisionRow {
    pub agent_id: Uuid,
    pub revision: i64,
    pub package_ref: String,
    pub package_digest: String,
    pub config: Json<std::collections::BTreeMap<String, String>>,
    pub secret_names: Json<Vec<String>>,
    pub grants: Json<Grants>,
    pub deployed_by: String,
    pub created_at: DateTime<Utc>,
}

impl TryFrom<RevisionRow> for AgentRevision {
    type Error = StoreError;
    fn try_from(row: RevisionRow) -> Result<Self, StoreError> {
        Ok(AgentRevision {
            agent_id: AgentId::from_uuid(row.agent_id),
            revision: to_u32(row.revision, "agent_revisions.revision")?,
            package: parse(&row.package_ref, "agent_revisions.package_ref")?,
            package_digest: row.package_digest,
            config: row.config.0,
            secret_names: row.secret_names.0,
            grants: row.grants.0,
            deployed_by: row.deployed_by,
            created_at: row.created_at,
        })
    }
}

/// A `packages` row.
#[derive(Debug, FromRow)]
pub struct PackageRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub namespace: String,
    pub name: String,
    pub version: String,
    pub digest: String,
    pub size_bytes: i64,
    pub manifest: Json<serde_json::Value>,
    pub published: bool,
    pub created_at: DateTime<Utc>,
}

impl TryFrom<PackageRow> for Package {
    type Error = StoreError;
    fn try_from(row: PackageRow) -> Result<Self, StoreError> {
        Ok(Package {
            id: PackageId::from_uuid(row.id),
            tenant_id: TenantId::from_uuid(row.tenant_id),
            reference: nexus_core::PackageRef {
                namespace: name(row.namespace, "packages.namespace")?,
                name: name(row.name, "packages.name")?,
                version: parse(&row.version, "packages.version")?,
            },
            digest: row.digest,
            size_bytes: to_u64(row.size_bytes, "packages.size_bytes")?,
            manifest: row.manifest.0,
            published: row.published,
            created_at: row.created_at,
        })
    }
}

/// A `tasks` row.
#[derive(Debug, FromRow)]
pub struct TaskRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub agent_id: Uuid,
    pub agent_revision: i64,
    pub context_id: String,
    pub parent_task_id: Option<Uuid>,
    pub state: String,
    pub status_message: Option<String>,
    pub started_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<TaskRow> for Task {
    type Error = StoreError;
    fn try_from(row: TaskRow) -> Result<Self, StoreError> {
        Ok(Task {
            id: TaskId::from_uuid(row.id),
            tenant_id: TenantId::from_uuid(row.tenant_id),
            agent_id: AgentId::from_uuid(row.agent_id),
            agent_revision: to_u32(row.agent_revision, "tasks.agent_revision")?,
            context_id: row.context_id,
            parent_task_id: row.parent_task_id.map(TaskId::from_uuid),
            state: parse(&row.state, "tasks.state")?,
            status_message: row.status_message,
            started_by: row.started_by,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// A `tasks` row as the task list reads it: with its agent's name and the ids next to it.
#[derive(Debug, FromRow)]
pub struct ListedTaskRow {
    #[sqlx(flatten)]
    pub task: TaskRow,
    pub agent_name: String,
    /// The tenant's task with the next smaller id, if any.
    pub before_id: Option<Uuid>,
    /// The tenant's task with the next larger id, if any.
    pub after_id: Option<Uuid>,
}

impl TryFrom<ListedTaskRow> for ListedTask {
    type Error = StoreError;
    fn try_from(row: ListedTaskRow) -> Result<Self, StoreError> {
        let neighbours: Vec<Uuid> = row.before_id.into_iter().chain(row.after_id).collect();
        let short_id = nexus_core::id_prefix::short_id(&row.task.id, &neighbours);
        Ok(ListedTask {
            task: row.task.try_into()?,
            agent: row.agent_name,
            short_id,
        })
    }
}

/// A `tasks` row with its last event number, as a write batch reads it.
#[derive(Debug, FromRow)]
pub struct LockedTaskRow {
    #[sqlx(flatten)]
    pub task: TaskRow,
    pub last_seq: i64,
}

/// A `task_events` row.
#[derive(Debug, FromRow)]
pub struct TaskEventRow {
    pub task_id: Uuid,
    pub seq: i64,
    pub kind: String,
    pub payload: Json<serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

impl TryFrom<TaskEventRow> for TaskEvent {
    type Error = StoreError;
    fn try_from(row: TaskEventRow) -> Result<Self, StoreError> {
        Ok(TaskEvent {
            task_id: TaskId::from_uuid(row.task_id),
            seq: to_u64(row.seq, "task_events.seq")?,
            kind: parse(&row.kind, "task_events.kind")?,
            payload: row.payload.0,
            created_at: row.created_at,
        })
    }
}

/// An `audit_events` row.
#[derive(Debug, FromRow)]
pub struct AuditRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub seq: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub details: Json<serde_json::Value>,
    pub at: DateTime<Utc>,
    pub prev_hash: String,
    pub hash: String,
}

impl TryFrom<AuditRow> for AuditEvent {
    type Error = StoreError;
    fn try_from(row: AuditRow) -> Result<Self, StoreError> {
        Ok(AuditEvent {
            id: AuditEventId::from_uuid(row.id),
            tenant_id: TenantId::from_uuid(row.tenant_id),
            seq: to_u64(row.seq, "audit_events.seq")?,
            actor: row.actor,
            action: row.action,
            target: row.target,
            details: row.details.0,
            at: row.at,
            prev_hash: row.prev_hash,
            hash: row.hash,
        })
    }
}

/// An `api_keys` row, without its `secret_hash` (which nothing reads back).
#[derive(Debug, FromRow)]
pub struct ApiKeyRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub role: String,
    pub platform_admin: bool,
    pub prefix: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub user_id: Option<Uuid>,
    pub service_account_id: Option<Uuid>,
    pub service_account: Option<String>,
    pub teams: Json<Vec<String>>,
}

impl TryFrom<ApiKeyRow> for ApiKey {
    type Error = StoreError;
    fn try_from(row: ApiKeyRow) -> Result<Self, StoreError> {
        Ok(ApiKey {
            id: ApiKeyId::from_uuid(row.id),
            tenant_id: TenantId::from_uuid(row.tenant_id),
            name: row.name,
            role: parse::<Role>(&row.role, "api_keys.role")?,
            platform_admin: row.platform_admin,
            prefix: row.prefix,
            created_by: row.created_by,
            created_at: row.created_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
            user_id: row.user_id.map(UserId::from_uuid),
            service_account_id: row
                .service_account_id
                .map(nexus_core::ServiceAccountId::from_uuid),
            service_account: row
                .service_account
                .map(|n| name(n, "api_keys.service_account"))
                .transpose()?,
            teams: row
                .teams
                .0
                .into_iter()
                .map(|n| name(n, "api_keys.teams"))
                .collect::<Result<_, _>>()?,
        })
    }
}

/// A `policies` row.
#[derive(Debug, FromRow)]
pub struct PolicyRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub description: String,
    pub text: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

impl TryFrom<PolicyRow> for Policy {
    type Error = StoreError;
    fn try_from(row: PolicyRow) -> Result<Self, StoreError> {
        Ok(Policy {
            id: PolicyId::from_uuid(row.id),
            tenant_id: TenantId::from_uuid(row.tenant_id),
            name: name(row.name, "policies.name")?,
            description: row.description,
            text: row.text,
            created_by: row.created_by,
            created_at: row.created_at,
        })
    }
}

/// A `memberships` row joined with its `users` row.
#[derive(Debug, FromRow)]
pub struct MembershipRow {
    pub tenant_id: Uuid,
    pub role: String,
    pub created_at: DateTime<Utc>,
    pub user_id: Uuid,
    pub user_name: String,
    pub display_name: String,
    pub user_created_at: DateTime<Utc>,
}

/// The columns of a [`MembershipRow`], for `SELECT … FROM memberships m JOIN users u`.
pub const MEMBERSHIP_COLUMNS: &str = "m.tenant_id, m.role, m.created_at, u.id AS user_id, \
     u.name AS user_name, u.display_name, u.created_at AS user_created_at";

impl TryFrom<MembershipRow> for Membership {
    type Error = StoreError;
    fn try_from(row: MembershipRow) -> Result<Self, StoreError> {
        Ok(Membership {
            tenant_id: TenantId::from_uuid(row.tenant_id),
            role: parse::<Role>(&row.role, "memberships.role")?,
            created_at: row.created_at,
            user: User {
                id: UserId::from_uuid(row.user_id),
                name: name(row.user_name, "users.name")?,
                display_name: row.display_name,
                created_at: row.user_created_at,
            },
        })
    }
}

/// A `service_accounts` row.
#[derive(Debug, FromRow)]
pub struct ServiceAccountRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub role: String,
    pub description: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

impl TryFrom<ServiceAccountRow> for nexus_core::ServiceAccount {
    type Error = StoreError;
    fn try_from(row: ServiceAccountRow) -> Result<Self, StoreError> {
        Ok(nexus_core::ServiceAccount {
            id: nexus_core::ServiceAccountId::from_uuid(row.id),
            tenant_id: TenantId::from_uuid(row.tenant_id),
            name: name(row.name, "service_accounts.name")?,
            role: parse::<Role>(&row.role, "service_accounts.role")?,
            description: row.description,
            created_by: row.created_by,
            created_at: row.created_at,
        })
    }
}

/// A team from its row and its members' names.
pub fn team_from_parts(
    tenant: TenantId,
    id: Uuid,
    name: String,
    role: &str,
    created_at: DateTime<Utc>,
    members: Vec<(String,)>,
) -> Result<nexus_core::Team, StoreError> {
    Ok(nexus_core::Team {
        id: nexus_core::TeamId::from_uuid(id),
        tenant_id: tenant,
        name: self::name(name, "teams.name")?,
        role: parse::<Role>(role, "teams.role")?,
        members: members
            .into_iter()
            .map(|(member,)| self::name(member, "users.name"))
            .collect::<Result<_, _>>()?,
        created_at,
    })
}

/// A `users` row with its password hash.
#[derive(Debug, FromRow)]
pub struct UserRow {
    pub id: Uuid,
    pub name: String,
    pub display_name: String,
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
}

impl TryFrom<UserRow> for (User, String) {
    type Error = StoreError;
    fn try_from(row: UserRow) -> Result<Self, StoreError> {
        Ok((
            User {
                id: UserId::from_uuid(row.id),
                name: name(row.name, "users.name")?,
                display_name: row.display_name,
                created_at: row.created_at,
            },
            row.password_hash,
        ))
    }
}

/// A `task_push_configs` row.
#[derive(Debug, FromRow)]
pub struct PushConfigRow {
    pub task_id: Uuid,
    pub id: String,
    pub protocol_version: String,
    pub url: String,
    pub token: Option<Vec<u8>>,
    pub auth_scheme: Option<String>,
    pub auth_credentials: Option<Vec<u8>>,
    pub created_at: DateTime<Utc>,
}

impl TryFrom<PushConfigRow> for nexus_store::PushConfig {
    type Error = StoreError;
    fn try_from(row: PushConfigRow) -> Result<Self, StoreError> {
        Ok(nexus_store::PushConfig {
            task_id: TaskId::from_uuid(row.task_id),
            id: row.id,
            protocol_version: row.protocol_version,
            url: row.url,
            token: row.token,
            auth_scheme: row.auth_scheme,
            auth_credentials: row.auth_credentials,
            created_at: row.created_at,
        })
    }
}

/// Converts every row, failing on the first that does not decode.
pub fn convert<R, T>(rows: Vec<R>) -> Result<Vec<T>, StoreError>
where
    T: TryFrom<R, Error = StoreError>,
{
    rows.into_iter().map(T::try_from).collect()
}

/// The payload of a `status` event.
pub fn status_payload(state: TaskState, message: Option<&str>) -> serde_json::Value {
    serde_json::json!({ "state": state.as_str(), "message": message })
}

/// `details` of a deployment's audit event with the revision number the store assigned:
/// `"revision"` added to an object (replacing one already there), any other value wrapped as
/// `{"details": value, "revision": revision}`.
pub fn with_revision(details: serde_json::Value, revision: u32) -> serde_json::Value {
    let mut object = match details {
        serde_json::Value::Object(object) => object,
        other => serde_json::Map::from_iter([("details".to_owned(), other)]),
    };
    object.insert("revision".to_owned(), revision.into());
    serde_json::Value::Object(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_revision_goes_into_the_details_object_or_wraps_other_values() {
        use serde_json::json;
        assert_eq!(
            with_revision(json!({ "package": "a/b@1.0.0", "revision": 9 }), 3),
            json!({ "package": "a/b@1.0.0", "revision": 3 })
        );
        assert_eq!(with_revision(json!({}), 1), json!({ "revision": 1 }));
        for other in [json!(null), json!("x"), json!([1, 2]), json!(7)] {
            assert_eq!(
                with_revision(other.clone(), 2),
                json!({ "details": other, "revision": 2 })
            );
        }
    }

    fn key_row(role: &str) -> ApiKeyRow {
        ApiKeyRow {
            id: *ApiKeyId::new().as_uuid(),
            tenant_id: *TenantId::new().as_uuid(),
            name: "ci".into(),
            role: role.into(),
            platform_admin: false,
            prefix: "nxk_abcdefgh".into(),
            created_by: "system".into(),
            created_at: nexus_core::page::now(),
            expires_at: None,
            revoked_at: None,
            user_id: None,
            service_account_id: None,
            service_account: None,
            teams: Json(Vec::new()),
        }
    }

    fn policy_row(name: &str) -> PolicyRow {
        PolicyRow {
            id: *PolicyId::new().as_uuid(),
            tenant_id: *TenantId::new().as_uuid(),
            name: name.into(),
            description: "readers read".into(),
            text: "permit(principal, action, resource);".into(),
            created_by: "key:admin".into(),
            created_at: nexus_core::page::now(),
        }
    }

    #[test]
    fn a_policy_row_decodes_its_name_and_refuses_a_bad_one() {
        let row = policy_row("readers");
        let (id, tenant_id, created_at) = (row.id, row.tenant_id, row.created_at);
        let policy = Policy::try_from(row);
        assert!(
            matches!(
                &policy,
                Ok(p) if p.name.as_str() == "readers"
                    && *p.id.as_uuid() == id
                    && *p.tenant_id.as_uuid() == tenant_id
                    && p.created_at == created_at
            ),
            "{policy:?}"
        );
        for bad in ["", "Readers", "has space", "-dash"] {
            let policy = Policy::try_from(policy_row(bad));
            assert!(
                matches!(policy, Err(StoreError::Corrupt(_))),
                "{bad}: {policy:?}"
            );
        }
    }

    #[test]
    fn a_key_row_decodes_its_role_and_refuses_an_unknown_one() {
        for role in Role::ALL {
            let key = ApiKey::try_from(key_row(role.as_str()));
            assert!(
                matches!(key, Ok(ApiKey { role: r, .. }) if r == role),
                "{key:?}"
            );
        }
        let unknown = ApiKey::try_from(key_row("root"));
        assert!(
            matches!(unknown, Err(StoreError::Corrupt(_))),
            "{unknown:?}"
        );
    }
}
