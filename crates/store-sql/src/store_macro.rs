//! [`impl_store!`](crate::impl_store): the store traits implemented once over SQL.

/// Implements every `nexus_store` trait for `$store` on the sqlx database `$db`.
///
/// `$store` must have inherent methods `reader(&self) -> &sqlx::Pool<$db>` (queries),
/// `writer(&self) -> &sqlx::Pool<$db>` (transactions), `task_writer(&self) -> &TaskWriter`
/// (the group commit of task writes, [`TaskWriter`](crate::TaskWriter)),
/// `names(&self) -> &NameCache` (tenant and agent rows in memory, [`NameCache`](crate::NameCache)),
/// `async scrub(&self)` (removes what the database keeps of deleted rows, as far as it can) and
/// `async close_pools(&self)`. The task writer's SQL ([`TaskBatchSql`](crate::TaskBatchSql))
/// is each store's own, tuned to its driver.
/// `lock` is appended to the `SELECT`s that read a row a transaction will update: `" FOR UPDATE"`
/// where the database has row locks, `""` where writers are serialised anyway. `begin` starts a
/// write transaction: `"BEGIN IMMEDIATE"` on SQLite, which takes the write lock up front, so a
/// transaction that reads before it writes waits for another writer instead of failing with
/// `SQLITE_BUSY` when that writer commits in between.
#[macro_export]
macro_rules! impl_store {
    ($store:ty, $db:ty, lock = $lock:literal, begin = $begin:literal, backend = $backend:literal) => {
        const _: () = {
            use $crate::__private::async_trait;
            use $crate::__private::nexus_core::{
                Agent, AgentId, AgentRevision, ApiKey, ApiKeyId, AuditEvent, Name,
                NewAgentRevision, NewApiKey, NewAuditEvent, NewPackage, NewPolicy, NewTask,
                NewTenant, Package, PackageRef, Page, PageRequest, Policy, Task, TaskEvent, TaskId,
                TaskState, Tenant, TenantId, IdPrefix, audit::GENESIS_HASH, page::now, Membership, NewUser,
                User, UserId, identity::Role, Team, TeamId, ServiceAccount,
            };
            use $crate::__private::nexus_store::{
                AgentStore, ApiKeyStore, AuditStore, NewTaskEvent, PackageStore, PolicyStore,
                Result, SealedSecret, SecretInfo, SecretStore, StateEntry, StateScope, StateStore, Store, StoreError,
                TaskFilter, TaskStore, TenantStore, UserStore, ListedTask,
            };
            use $crate::__private::sqlx::{self, types::Json};
            use $crate::__private::uuid::Uuid;
            use $crate::{
                AgentRow, ApiKeyRow, AuditRow, MembershipRow, PackageRow, PolicyRow, RevisionRow,
                TaskEventRow, TaskRow, ListedTaskRow, UserRow, MEMBERSHIP_COLUMNS, ServiceAccountRow,
                TenantRow, convert, is_foreign_key_violation, is_unique_violation, map_err,
                parse_cursor, status_payload, to_i64, name as parse_name, to_u64, with_revision, EVENTS_PER_INSERT,
                RUNNING_STATES,
            };

            type Tx = sqlx::Transaction<'static, $db>;

            async fn insert_events(
                tx: &mut Tx,
                tenant: TenantId,
                task: TaskId,
                first_seq: u64,
                events: Vec<NewTaskEvent>,
            ) -> Result<Vec<TaskEvent>> {
                let created_at = now();
                let stored: Vec<TaskEvent> = events
                    .into_iter()
                    .enumerate()
                    .map(|(offset, event)| TaskEvent {
                        task_id: task,
                        seq: first_seq + offset as u64,
                        kind: event.kind,
                        payload: event.payload,
                        created_at,
                    })
                    .collect();
                // One multi-row statement per call, in chunks that stay well under either
                // backend's limit on bound parameters (6 per row).
                for chunk in stored.chunks(EVENTS_PER_INSERT) {
                    let mut insert = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO task_events (task_id, tenant_id, seq, kind, payload, created_at) ",
                    );
                    insert.push_values(chunk, |mut row, event| {
                        row.push_bind(*task.as_uuid())
                            .push_bind(*tenant.as_uuid())
                            .push_bind(to_i64(event.seq))
                            .push_bind(event.kind.as_str())
                            .push_bind(Json(event.payload.clone()))
                            .push_bind(created_at);
                    });
                    insert.build().execute(&mut **tx).await.map_err(map_err)?;
                }
                Ok(stored)
            }

            /// Locks `tenant`'s row within `tx` (where the database has row locks): the lock that
            /// makes appends to one tenant's audit chain take turns. `NotFound` if there is no
            /// such tenant. An audited write takes it before it writes anything else, so it holds
            /// the lock before any foreign-key check takes a weaker one on that row: two writers
            /// that each held the weaker lock and then waited for the strong one deadlocked on
            /// PostgreSQL.
            async fn lock_audit_chain(tx: &mut Tx, tenant: TenantId) -> Result<()> {
                let exists: Option<(Uuid,)> = sqlx::query_as(concat!(
                    "SELECT id FROM tenants WHERE id = $1",
                    $lock
                ))
                .bind(tenant.as_uuid())
                .fetch_optional(&mut **tx)
                .await
                .map_err(map_err)?;
                if exists.is_none() {
                    return Err(StoreError::not_found("tenant", tenant));
                }
                Ok(())
            }

            /// Appends `event` to `tenant`'s audit chain within `tx`: the one place that seals and
            /// inserts audit events. Takes the chain's lock first (`lock_audit_chain`; taking
            /// it again in a transaction that holds it is a no-op). Audited writes call this
            /// before their own writes, or call `lock_audit_chain` first when the event depends
            /// on what they write; if the write then fails, dropping `tx` rolls the event back.
            async fn append_audit_in_tx(
                tx: &mut Tx,
                tenant: TenantId,
                event: NewAuditEvent,
            ) -> Result<AuditEvent> {
                lock_audit_chain(tx, tenant).await?;
                let last: Option<(i64, String)> = sqlx::query_as(
                    "SELECT seq, hash FROM audit_events WHERE tenant_id = $1 ORDER BY seq DESC LIMIT 1",
                )
                .bind(tenant.as_uuid())
                .fetch_optional(&mut **tx)
                .await
                .map_err(map_err)?;
                let (seq, prev_hash) = match last {
                    Some((seq, hash)) => (to_u64(seq, "audit_events.seq")? + 1, hash),
                    None => (1, GENESIS_HASH.to_owned()),
                };
                let sealed = event.seal(tenant, seq, prev_hash);
                sqlx::query(
                    "INSERT INTO audit_events (id, tenant_id, seq, actor, action, target, details, at, prev_hash, hash) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(sealed.id.as_uuid())
                .bind(tenant.as_uuid())
                .bind(to_i64(sealed.seq))
                .bind(&sealed.actor)
                .bind(&sealed.action)
                .bind(&sealed.target)
                .bind(Json(&sealed.details))
                .bind(sealed.at)
                .bind(&sealed.prev_hash)
                .bind(&sealed.hash)
                .execute(&mut **tx)
                .await
                .map_err(map_err)?;
                Ok(sealed)
            }

            /// Reads a task's state and last event number, locking the row where supported.
            async fn lock_task(tx: &mut Tx, tenant: TenantId, id: TaskId) -> Result<(TaskState, u64)> {
                let row: Option<(String, i64)> = sqlx::query_as(concat!(
                    "SELECT state, last_seq FROM tasks WHERE tenant_id = $1 AND id = $2",
                    $lock
                ))
                .bind(tenant.as_uuid())
                .bind(id.as_uuid())
                .fetch_optional(&mut **tx)
                .await
                .map_err(map_err)?;
                let (state, last_seq) = row.ok_or_else(|| StoreError::not_found("task", id))?;
                let state = state
                    .parse::<TaskState>()
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                Ok((state, to_u64(last_seq, "tasks.last_seq")?))
            }

            /// Creates the agent or its next revision and makes that revision current. With
            /// `secrets`, also creates or replaces those secrets of the agent, and the revision
            /// names all the agent's secrets.
            async fn deploy_in_tx(
                tx: &mut Tx,
                tenant: TenantId,
                mut new: NewAgentRevision,
                secrets: Option<Vec<SealedSecret>>,
            ) -> Result<(Agent, AgentRevision)> {
                let at = now();
                let (agent_id,): (Uuid,) = sqlx::query_as(
                    "INSERT INTO agents (id, tenant_id, name, current_revision, owner, created_at, updated_at) \
                     VALUES ($1, $2, $3, 0, $5, $4, $4) \
                     ON CONFLICT (tenant_id, name) DO UPDATE SET updated_at = excluded.updated_at \
                     RETURNING id",
                )
                .bind(AgentId::new().as_uuid())
                .bind(tenant.as_uuid())
                .bind(new.name.as_str())
                .bind(at)
                .bind(&new.deployed_by)
                .fetch_one(&mut **tx)
                .await
                .map_err(|e| {
                    if is_foreign_key_violation(&e) {
                        StoreError::not_found("tenant", tenant)
                    } else {
                        map_err(e)
                    }
                })?;
                if let Some(secrets) = secrets {
                    for secret in secrets {
                        upsert_secret(tx, tenant, agent_id, &secret, at).await?;
                    }
                    let names: Vec<(String,)> = sqlx::query_as(
                        "SELECT name FROM agent_secrets WHERE tenant_id = $1 AND agent_id = $2 ORDER BY name",
                    )
                    .bind(tenant.as_uuid())
                    .bind(agent_id)
                    .fetch_all(&mut **tx)
                    .await
                    .map_err(map_err)?;
                    new.secret_names = names.into_iter().map(|(name,)| name).collect();
                }
                let (revision,): (i64,) = sqlx::query_as(
                    "SELECT COALESCE(MAX(revision), 0) + 1 FROM agent_revisions WHERE agent_id = $1",
                )
                .bind(agent_id)
                .fetch_one(&mut **tx)
                .await
                .map_err(map_err)?;
                let stored: AgentRevision = sqlx::query_as::<_, RevisionRow>(
                    "INSERT INTO agent_revisions \
                     (tenant_id, agent_id, revision, package_ref, package_digest, config, secret_names, grants, deployed_by, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $10, $9) \
                     RETURNING agent_id, revision, package_ref, package_digest, config, secret_names, grants, deployed_by, created_at",
                )
                .bind(tenant.as_uuid())
                .bind(agent_id)
                .bind(revision)
                .bind(new.package.to_string())
                .bind(&new.package_digest)
                .bind(Json(&new.config))
                .bind(Json(&new.secret_names))
                .bind(Json(&new.grants))
                .bind(at)
                .bind(&new.deployed_by)
                .fetch_one(&mut **tx)
                .await
                .map_err(map_err)?
                .try_into()?;
                let agent: Agent = sqlx::query_as::<_, AgentRow>(
                    "UPDATE agents SET current_revision = $1 WHERE id = $2 \
                     RETURNING id, tenant_id, name, current_revision, owner, created_at, updated_at",
                )
                .bind(revision)
                .bind(agent_id)
                .fetch_one(&mut **tx)
                .await
                .map_err(map_err)?
                .try_into()?;
                Ok((agent, stored))
            }

            async fn upsert_secret(
                tx: &mut Tx,
                tenant: TenantId,
                agent: Uuid,
                secret: &SealedSecret,
                at: $crate::__private::chrono::DateTime<$crate::__private::chrono::Utc>,
            ) -> Result<()> {
                sqlx::query(
                    "INSERT INTO agent_secrets (tenant_id, agent_id, name, ciphertext, updated_at) \
                     VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (tenant_id, agent_id, name) DO UPDATE \
                     SET ciphertext = excluded.ciphertext, updated_at = excluded.updated_at",
                )
                .bind(tenant.as_uuid())
                .bind(agent)
                .bind(&secret.name)
                .bind(&secret.ciphertext)
                .bind(at)
                .execute(&mut **tx)
                .await
                .map_err(|e| {
                    if is_foreign_key_violation(&e) {
                        StoreError::not_found("agent", AgentId::from_uuid(agent))
                    } else {
                        map_err(e)
                    }
                })?;
                Ok(())
            }

            #[async_trait]
            impl TenantStore for $store {
                async fn create_tenant(&self, new: NewTenant, audit: NewAuditEvent) -> Result<Tenant> {
                    let tenant = new.into_tenant();
                    let mut tx = self.writer().begin_with($begin).await.map_err(map_err)?;
                    // The tenant row comes first here: the event goes into its chain. No other
                    // transaction sees the row before the commit, so none can hold a lock on it.
                    sqlx::query(
                        "INSERT INTO tenants (id, name, display_name, created_at) VALUES ($1, $2, $3, $4)",
                    )
                    .bind(tenant.id.as_uuid())
                    .bind(tenant.name.as_str())
                    .bind(&tenant.display_name)
                    .bind(tenant.created_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| {
                        if is_unique_violation(&e) {
                            StoreError::already_exists("tenant", &tenant.name)
                        } else {
                            map_err(e)
                        }
                    })?;
                    append_audit_in_tx(&mut tx, tenant.id, audit).await?;
                    tx.commit().await.map_err(map_err)?;
                    self.names().put_tenant(&tenant);
                    Ok(tenant)
                }

                async fn ensure_tenant(&self, new: NewTenant) -> Result<Tenant> {
                    let name = new.name.clone();
                    let tenant = new.into_tenant();
                    sqlx::query(
                        "INSERT INTO tenants (id, name, display_name, created_at) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (name) DO NOTHING",
                    )
                    .bind(tenant.id.as_uuid())
                    .bind(tenant.name.as_str())
                    .bind(&tenant.display_name)
                    .bind(tenant.created_at)
                    .execute(self.writer())
                    .await
                    .map_err(map_err)?;
                    self.get_tenant_by_name(&name).await
                }

                async fn get_tenant(&self, id: TenantId) -> Result<Tenant> {
                    if let Some(tenant) = self.names().tenant_by_id(id) {
                        return Ok(tenant);
                    }
                    let start = self.names().tenant_generation();
                    let tenant: Tenant = sqlx::query_as::<_, TenantRow>(
                        "SELECT id, name, display_name, created_at FROM tenants WHERE id = $1",
                    )
                    .bind(id.as_uuid())
                    .fetch_optional(self.reader())
                    .await
                    .map_err(map_err)?
                    .ok_or_else(|| StoreError::not_found("tenant", id))?
                    .try_into()?;
                    self.names().put_tenant_read(start, &tenant);
                    Ok(tenant)
                }

                async fn get_tenant_by_name(&self, name: &Name) -> Result<Tenant> {
                    if let Some(tenant) = self.names().tenant_by_name(name) {
                        return Ok(tenant);
                    }
                    let start = self.names().tenant_generation();
                    let tenant: Tenant = sqlx::query_as::<_, TenantRow>(
                        "SELECT id, name, display_name, created_at FROM tenants WHERE name = $1",
                    )
                    .bind(name.as_str())
                    .fetch_optional(self.reader())
                    .await
                    .map_err(map_err)?
                    .ok_or_else(|| StoreError::not_found("tenant", name))?
                    .try_into()?;
                    self.names().put_tenant_read(start, &tenant);
                    Ok(tenant)
                }

                async fn list_tenants(&self, page: PageRequest) -> Result<Page<Tenant>> {
                    let after = parse_cursor(page.after.as_ref())?;
                    let rows = sqlx::query_as::<_, TenantRow>(
                        "SELECT id, name, display_name, created_at FROM tenants \
                         WHERE ($1 IS NULL OR id > $1) ORDER BY id LIMIT $2",
                    )
                    .bind(after)
                    .bind(i64::from(page.limit) + 1)
                    .fetch_all(self.reader())
                    .await
                    .map_err(map_err)?;
                    Ok(Page::from_overfetch(convert(rows)?, page.limit, |t: &Tenant| t.id.to_string()))
                }

                async fn delete_tenant(
                    &self,
                    tenant: TenantId,
                    audit_tenant: TenantId,
                    mut audit: NewAuditEvent,
                ) -> Result<bool> {
                    let start = self.names().agent_generation();
                    let deleted = async {
                        let mut tx = self.writer().begin_with($begin).await.map_err(map_err)?;
                        // The deleting caller's chain's lock first, as every audited write
                        // takes it; the event says whether a key was destroyed, so it is
                        // appended once that is known.
                        lock_audit_chain(&mut tx, audit_tenant).await?;
                        lock_audit_chain(&mut tx, tenant).await?;
                        // The data key first (crypto-shredding), in the same transaction as the
                        // rows: a failure leaves the tenant whole, never keyless.
                        let shredded = sqlx::query("DELETE FROM tenant_keys WHERE tenant_id = $1")
                            .bind(tenant.as_uuid())
                            .execute(&mut *tx)
                            .await
                            .map_err(map_err)?
                            .rows_affected()
                            > 0;
                        if let serde_json::Value::Object(details) = &mut audit.details {
                            details.insert("data_key_destroyed".into(), shredded.into());
                        }
                        append_audit_in_tx(&mut tx, audit_tenant, audit).await?;
                        // The audit chain is the one table that does not cascade: it must
                        // outlive agents and keys, but not the tenant.
                        sqlx::query("DELETE FROM audit_events WHERE tenant_id = $1")
                            .bind(tenant.as_uuid())
                            .execute(&mut *tx)
                            .await
                            .map_err(map_err)?;
                        // Everything else goes with the tenant row (ON DELETE CASCADE).
                        sqlx::query("DELETE FROM tenants WHERE id = $1")
                            .bind(tenant.as_uuid())
                            .execute(&mut *tx)
                            .await
                            .map_err(map_err)?;
                        tx.commit().await.map_err(map_err)?;
                        Ok(shredded)
                    }
                    .await;
                    if deleted.is_ok() {
                        self.names().forget_tenant(tenant);
                        self.scrub().await;
                    }
                    self.names().agents_written(start, None);
                    deleted
                }
            }

            #[async_trait]
            impl AgentStore for $store {
                async fn deploy_revision(
                    &self,
                    tenant: TenantId,
                    new: NewAgentRevision,
                ) -> Result<(Agent, AgentRevision)> {
                    let start = self.names().agent_generation();
                    let written = async {
                        let mut tx = self.writer().begin_with($begin).await.map_err(map_err)?;
                        let deployed = deploy_in_tx(&mut tx, tenant, new, None).await?;
                        tx.commit().await.map_err(map_err)?;
                        Ok(deployed)
                    }
                    .await;
                    self.names().agents_written(start, written.as_ref().ok().map(|(agent, _)| agent));
                    written
                }

                async fn get_agent(&self, tenant: TenantId, name: &Name) -> Result<Agent> {
                    let start = match self.names().agent(tenant, name) {
                        Ok(agent) => return Ok(agent),
                        Err(start) => start,
                    };
                    let agent: Agent = sqlx::query_as::<_, AgentRow>(
                        "SELECT id, tenant_id, name, current_revision, owner, created_at, updated_at FROM agents \
                         WHERE tenant_id = $1 AND name = $2",
                    )
                    .bind(tenant.as_uuid())
                    .bind(name.as_str())
                    .fetch_optional(self.reader())
                    .await
                    .map_err(map_err)?
                    .ok_or_else(|| StoreError::not_found("agent", name))?
                    .try_into()?;
                    self.names().put_agent(start, &agent);
                    Ok(agent)
                }

                async fn get_agent_by_id(&self, tenant: TenantId, id: AgentId) -> Result<Agent> {
                    sqlx::query_as::<_, AgentRow>(
                        "SELECT id, tenant_id, name, current_revision, owner, created_at, updated_at FROM agents \
                         WHERE tenant_id = $1 AND id = $2",
                    )
                    .bind(tenant.as_uuid())
                    .bind(id.as_uuid())
                    .fetch_optional(self.reader())
                    .await
                    .map_err(map_err)?
                    .ok_or_else(|| StoreError::not_found("agent", id))?
                    .try_into()
                }

                async fn list_agents(&self, tenant: TenantId, page: PageRequest) -> Result<Page<Agent>> {
                    let after = parse_cursor(page.after.as_ref())?;
                    let rows = sqlx::query_as::<_, AgentRow>(
                        "SELECT id, tenant_id, name, current_revision, owner, created_at, updated_at FROM agents \
                         WHERE tenant_id = $1 AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3",
                    )
                    .bind(tenant.as_uuid())
                    .bind(after)
                    .bind(i64::from(page.limit) + 1)
                    .fetch_all(self.reader())
                    .await
                    .map_err(map_err)?;
                    Ok(Page::from_overfetch(convert(rows)?, page.limit, |a: &Agent| a.id.to_string()))
                }

                async fn get_revision(
                    &self,
                    tenant: TenantId,
                    agent: AgentId,
                    revision: u32,
                ) -> Result<AgentRevision> {
                    sqlx::query_as::<_, RevisionRow>(
                        "SELECT agent_id, revision, package_ref, package_digest, config, secret_names, grants, deployed_by, created_at \
                         FROM agent_revisions WHERE tenant_id = $1 AND agent_id = $2 AND revision = $3",
                    )
                    .bind(tenant.as_uuid())
                    .bind(agent.as_uuid())
                    .bind(i64::from(revision))
                    .fetch_optional(self.reader())
                    .await
                    .map_err(map_err)?
                    .ok_or_else(|| StoreError::not_found("agent revision", format!("{agent}@{revision}")))?
                    .try_into()
                }

                async fn list_revisions(&self, tenant: TenantId, agent: AgentId) -> Result<Vec<AgentRevision>> {
                    let rows = sqlx::query_as::<_, RevisionRow>(
                        "SELECT agent_id, revision, package_ref, package_digest, config, secret_names, grants, deployed_by, created_at \
                         FROM agent_revisions WHERE tenant_id = $1 AND agent_id = $2 ORDER BY revision DESC",
                    )
                    .bind(tenant.as_uuid())
                    .bind(agent.as_uuid())
                    .fetch_all(self.reader())
                    .await
                    .map_err(map_err)?;
                    if rows.is_empty() {
                        // Every agent has a revision, so no rows means no such agent here.
                        return Err(StoreError::not_found("agent", agent));
                    }
                    convert(rows)
                }

                async fn set_current_revision(
                    &self,
                    tenant: TenantId,
                    agent: AgentId,
                    revision: u32,
                    audit: NewAuditEvent,
                ) -> Result<Agent> {
                    let start = self.names().agent_generation();
                    let written = async {
                        let mut tx = self.writer().begin_with($begin).await.map_err(map_err)?;
                        // As in `create_api_key`: the event first, locking the tenant row; if
                        // the revision is not found, dropping `tx` rolls the event back.
                        append_audit_in_tx(&mut tx, tenant, audit).await?;
                        let updated: Agent = sqlx::query_as::<_, AgentRow>(
                            "UPDATE agents SET current_revision = $1, updated_at = $2 \
                             WHERE tenant_id = $3 AND id = $4 AND EXISTS \
                             (SELECT 1 FROM agent_revisions r WHERE r.agent_id = $4 AND r.revision = $1) \
                             RETURNING id, tenant_id, name, current_revision, owner, created_at, updated_at",
                        )
                        .bind(i64::from(revision))
                        .bind(now())
                        .bind(tenant.as_uuid())
                        .bind(agent.as_uuid())
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(map_err)?
                        .ok_or_else(|| StoreError::not_found("agent revision", format!("{agent}@{revision}")))?
                        .try_into()?;
                        tx.commit().await.map_err(map_err)?;
                        Ok(updated)
                    }
                    .await;
                    self.names().agents_written(start, written.as_ref().ok());
                    written
                }

                async fn delete_agent(
                    &self,
                    tenant: TenantId,
                    agent: AgentId,
                    audit: NewAuditEvent,
                ) -> Result<()> {
                    let start = self.names().agent_generation();
                    let deleted = async {
                        let mut tx = self.writer().begin_with($begin).await.map_err(map_err)?;
                        // The event first, as in `set_current_revision`.
                        append_audit_in_tx(&mut tx, tenant, audit).await?;
                        let deleted = sqlx::query("DELETE FROM agents WHERE tenant_id = $1 AND id = $2")
                            .bind(tenant.as_uuid())
                            .bind(agent.as_uuid())
                            .execute(&mut *tx)
                            .await
                            .map_err(map_err)?
                            .rows_affected();
                        if deleted == 0 {
                            return Err(StoreError::not_found("agent", agent));
                        }
                        tx.commit().await.map_err(map_err)
                    }
                    .await;
                    self.names().agents_written(start, None);
                    deleted
                }
            }

            #[async_trait]
            impl PackageStore for $store {
                async fn put_package(
                    &self,
                    tenant: TenantId,
                    new: NewPackage,
                    audit: NewAuditEvent,
                ) -> Result<Package> {
                    let mut tx = self.writer().begin_with($begin).await.map_err(map_err)?;
                    // The event first, locking the tenant row (and failing if there is no such
                    // tenant) before the package's foreign-key check touches it. A repeated
                    // upload is audited too; a refused one rolls its event back with `tx`.
                    append_audit_in_tx(&mut tx, tenant, audit).await?;
                    let reference = &new.reference;
                    // A published version takes no new build (one stored already is fine).
                    let frozen = sqlx::query(
                        "SELECT 1 FROM packages WHERE tenant_id = $1 AND namespace = $2 AND name = $3 \
                         AND version = $4 AND published \
                         AND NOT EXISTS (SELECT 1 FROM packages WHERE tenant_id = $1 AND digest = $5) LIMIT 1",
                    )
                    .bind(tenant.as_uuid())
                    .bind(reference.namespace.as_str())
                    .bind(reference.name.as_str())
                    .bind(reference.version.to_string())
                    .bind(&new.digest)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?;
                    if frozen.is_some() {
                        return Err(StoreError::already_exists("package", reference));
                    }
                    sqlx::query(
                        "INSERT INTO packages (id, tenant_id, namespace, name, version, digest, size_bytes, manifest, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                         ON CONFLICT (tenant_id, digest) DO NOTHING",
                    )
                    .bind(nexus_core_package_id())
                    .bind(tenant.as_uuid())
                    .bind(reference.namespace.as_str())
                    .bind(reference.name.as_str())
                    .bind(reference.version.to_string())
                    .bind(&new.digest)
                    .bind(to_i64(new.size_bytes))
                    .bind(Json(&new.manifest))
                    .bind(now())
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| {
                        if is_foreign_key_violation(&e) {
                            StoreError::not_found("tenant", tenant)
                        } else {
                            map_err(e)
                        }
                    })?;
                    let stored: Package = sqlx::query_as::<_, PackageRow>(
                        "SELECT id, tenant_id, namespace, name, version, digest, size_bytes, manifest, published, created_at \
                         FROM packages WHERE tenant_id = $1 AND digest = $2",
                    )
                    .bind(tenant.as_uuid())
                    .bind(&new.digest)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?
                    .ok_or_else(|| StoreError::not_found("package", &new.digest))?
                    .try_into()?;
                    // A digest names its contents, manifest included; another reference under
                    // a stored digest is a caller's bug, not a new build.
                    if stored.reference != new.reference {
                        return Err(StoreError::already_exists("package", &new.digest));
                    }
                    tx.commit().await.map_err(map_err)?;
                    Ok(stored)
                }

                async fn get_package(&self, tenant: TenantId, reference: &PackageRef) -> Result<Package> {
                    sqlx::query_as::<_, PackageRow>(
                        "SELECT id, tenant_id, namespace, name, version, digest, size_bytes, manifest, published, created_at \
                         FROM packages WHERE tenant_id = $1 AND namespace = $2 AND name = $3 AND version = $4 \
                         ORDER BY id DESC LIMIT 1",
                    )
                    .bind(tenant.as_uuid())
                    .bind(reference.namespace.as_str())
                    .bind(reference.name.as_str())
                    .bind(reference.version.to_string())
                    .fetch_optional(self.reader())
                    .await
                    .map_err(map_err)?
                    .ok_or_else(|| StoreError::not_found("package", reference))?
                    .try_into()
                }

                async fn get_package_by_digest(&self, tenant: TenantId, digest: &str) -> Result<Package> {
                    sqlx::query_as::<_, PackageRow>(
                        "SELECT id, tenant_id, namespace, name, version, digest, size_bytes, manifest, published, created_at \
                         FROM packages WHERE tenant_id = $1 AND digest = $2",
                    )
                    .bind(tenant.as_uuid())
                    .bind(digest)
                    .fetch_optional(self.reader())
                    .await
                    .map_err(map_err)?
                    .ok_or_else(|| StoreError::not_found("package", digest))?
                    .try_into()
                }

                async fn publish_package(
                    &self,
                    tenant: TenantId,
                    digest: &str,
                    audit: NewAuditEvent,
                ) -> Result<Package> {
                    let mut tx = self.writer().begin_with($begin).await.map_err(map_err)?;
                    // The event first, as in `put_package`; an unknown digest rolls it back.
                    append_audit_in_tx(&mut tx, tenant, audit).await?;
                    let published: Package = sqlx::query_as::<_, PackageRow>(
                        "UPDATE packages SET published = TRUE WHERE tenant_id = $1 AND digest = $2 \
                         RETURNING id, tenant_id, namespace, name, version, digest, size_bytes, manifest, published, created_at",
                    )
                    .bind(tenant.as_uuid())
                    .bind(digest)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?
                    .ok_or_else(|| StoreError::not_found("package", digest))?
                    .try_into()?;
                    tx.commit().await.map_err(map_err)?;
                    Ok(published)
                }

                async fn list_packages(&self, tenant: TenantId, page: PageRequest) -> Result<Page<Package>> {
                    let after = parse_cursor(page.after.as_ref())?;
                    let rows = sqlx::query_as::<_, PackageRow>(
                        "SELECT id, tenant_id, namespace, name, version, digest, size_bytes, manifest, published, created_at \
                         FROM packages WHERE tenant_id = $1 AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3",
                    )
                    .bind(tenant.as_uuid())
                    .bind(after)
                    .bind(i64::from(page.limit) + 1)
                    .fetch_all(self.reader())
                    .await
                    .map_err(map_err)?;
                    Ok(Page::from_overfetch(convert(rows)?, page.limit, |p: &Package| p.id.to_string()))
                }
            }

            fn nexus_core_package_id() -> Uuid {
                *$crate::__private::nexus_core::PackageId::new().as_uuid()
            }

            #[async_trait]
            impl TaskStore for $store {
                async fn create_task(
                    &self,
                    tenant: TenantId,
                    new: NewTask,
                    events: Vec<NewTaskEvent>,
                ) -> Result<(Task, Vec<TaskEvent>)> {
                    self.task_writer().create(tenant, new, events).await
                }

                async fn queue_create_task(
                    &self,
                    tenant: TenantId,
                    new: NewTask,
                    events: Vec<NewTaskEvent>,
                ) -> Result<$crate::__private::nexus_store::QueuedCreate> {
                    self.task_writer().queue_create(tenant, new, events).await
                }

                async fn create_ended_task(
                    &self,
                    tenant: TenantId,
                    new: NewTask,
                    events: Vec<NewTaskEvent>,
                    end: $crate::__private::nexus_store::TaskEnd,
                ) -> Result<(
                    $crate::__private::nexus_store::TaskWritten,
                    $crate::__private::nexus_store::TaskWritten,
                )> {
                    self.task_writer().create_ended(tenant, new, events, end).await
                }

                async fn get_task(&self, tenant: TenantId, id: TaskId) -> Result<Task> {
                    sqlx::query_as::<_, TaskRow>(
                        "SELECT id, tenant_id, agent_id, agent_revision, context_id, parent_task_id, \
                         state, status_message, started_by, created_at, updated_at FROM tasks WHERE tenant_id = $1 AND id = $2",
                    )
                    .bind(tenant.as_uuid())
                    .bind(id.as_uuid())
                    .fetch_optional(self.reader())
                    .await
                    .map_err(map_err)?
                    .ok_or_else(|| StoreError::not_found("task", id))?
                    .try_into()
                }

                async fn list_tasks(
                    &self,
                    tenant: TenantId,
                    filter: &TaskFilter,
                    page: PageRequest,
                ) -> Result<Page<Task>> {
                    let after = parse_cursor(page.after.as_ref())?;
                    let rows = sqlx::query_as::<_, TaskRow>(
                        "SELECT id, tenant_id, agent_id, agent_revision, context_id, parent_task_id, \
                         state, status_message, started_by, created_at, updated_at FROM tasks \
                         WHERE tenant_id = $1 AND ($2 IS NULL OR id > $2) \
                         AND ($3 IS NULL OR agent_id = $3) AND ($4 IS NULL OR context_id = $4) \
                         AND ($5 IS NULL OR state = $5) ORDER BY id LIMIT $6",
                    )
                    .bind(tenant.as_uuid())
                    .bind(after)
                    .bind(filter.agent_id.map(|a| *a.as_uuid()))
                    .bind(filter.context_id.as_deref())
                    .bind(filter.state.map(TaskState::as_str))
                    .bind(i64::from(page.limit) + 1)
                    .fetch_all(self.reader())
                    .await
                    .map_err(map_err)?;
                    Ok(Page::from_overfetch(convert(rows)?, page.limit, |t: &Task| t.id.to_string()))
                }

                async fn list_tasks_newest(
                    &self,
                    tenant: TenantId,
                    filter: &TaskFilter,
                    page: PageRequest,
                ) -> Result<Page<ListedTask>> {
                    let after = parse_cursor(page.after.as_ref())?;
                    // The neighbours in id order across the tenant's tasks (not only the
                    // filtered ones) decide the short id: two index seeks per listed row.
                    let rows = sqlx::query_as::<_, ListedTaskRow>(
                        "SELECT t.id, t.tenant_id, t.agent_id, t.agent_revision, t.context_id, \
                         t.parent_task_id, t.state, t.status_message, t.started_by, t.created_at, \
                         t.updated_at, a.name AS agent_name, \
                         (SELECT p.id FROM tasks p WHERE p.tenant_id = t.tenant_id AND p.id < t.id \
                          ORDER BY p.id DESC LIMIT 1) AS before_id, \
                         (SELECT n.id FROM tasks n WHERE n.tenant_id = t.tenant_id AND n.id > t.id \
                          ORDER BY n.id LIMIT 1) AS after_id \
                         FROM tasks t JOIN agents a ON a.tenant_id = t.tenant_id AND a.id = t.agent_id \
                         WHERE t.tenant_id = $1 AND ($2 IS NULL OR t.id < $2) \
                         AND ($3 IS NULL OR t.agent_id = $3) AND ($4 IS NULL OR t.context_id = $4) \
                         AND ($5 IS NULL OR t.state = $5) ORDER BY t.id DESC LIMIT $6",
                    )
                    .bind(tenant.as_uuid())
                    .bind(after)
                    .bind(filter.agent_id.map(|a| *a.as_uuid()))
                    .bind(filter.context_id.as_deref())
                    .bind(filter.state.map(TaskState::as_str))
                    .bind(i64::from(page.limit) + 1)
                    .fetch_all(self.reader())
                    .await
                    .map_err(map_err)?;
                    Ok(Page::from_overfetch(convert(rows)?, page.limit, |t: &ListedTask| {
                        t.task.id.to_string()
                    }))
                }

                async fn task_ids_with_prefix(
                    &self,
                    tenant: TenantId,
                    prefix: &IdPrefix,
                    limit: u32,
                ) -> Result<Vec<TaskId>> {
                    // A prefix is a range of ids, which the (tenant_id, id) index seeks.
                    let (low, high) = prefix.range();
                    let ids: Vec<(Uuid,)> = sqlx::query_as(
                        "SELECT id FROM tasks WHERE tenant_id = $1 AND id >= $2 AND id <= $3 \
                         ORDER BY id LIMIT $4",
                    )
                    .bind(tenant.as_uuid())
                    .bind(low)
                    .bind(high)
                    .bind(i64::from(limit))
                    .fetch_all(self.reader())
                    .await
                    .map_err(map_err)?;
                    Ok(ids.into_iter().map(|(id,)| TaskId::from_uuid(id)).collect())
                }

                async fn transition_task(
                    &self,
                    tenant: TenantId,
                    id: TaskId,
                    to: TaskState,
                    message: Option<String>,
                    events: Vec<NewTaskEvent>,
                ) -> Result<(Task, Vec<TaskEvent>)> {
                    self.task_writer()
                        .transition(tenant, id, to, message, events)
                        .await
                }

                async fn append_task_events(
                    &self,
                    tenant: TenantId,
                    id: TaskId,
                    events: Vec<NewTaskEvent>,
                ) -> Result<Vec<TaskEvent>> {
                    self.task_writer().append(tenant, id, events).await
                }

                async fn list_task_events(
                    &self,
                    tenant: TenantId,
                    id: TaskId,
                    after_seq: u64,
                    limit: u32,
                ) -> Result<Vec<TaskEvent>> {
                    let rows = sqlx::query_as::<_, TaskEventRow>(
                        "SELECT task_id, seq, kind, payload, created_at FROM task_events \
                         WHERE tenant_id = $1 AND task_id = $2 AND seq > $3 ORDER BY seq LIMIT $4",
                    )
                    .bind(tenant.as_uuid())
                    .bind(id.as_uuid())
                    .bind(to_i64(after_seq))
                    .bind(i64::from(limit))
                    .fetch_all(self.reader())
                    .await
                    .map_err(map_err)?;
                    if rows.is_empty() {
                        // Tell "no newer events" from "no such task".
                        self.get_task(tenant, id).await?;
                    }
                    convert(rows)
                }

                async fn fail_unfinished_tasks(&self, reason: &str) -> Result<u64> {
                    let mut tx = self.writer().begin_with($begin).await.map_err(map_err)?;
                    let running: Vec<(Uuid, Uuid, i64)> = sqlx::query_as(concat!(
                        "SELECT id, tenant_id, last_seq FROM tasks WHERE state IN ($1, $2)",
                        $lock
                    ))
                    .bind(RUNNING_STATES[0].as_str())
                    .bind(RUNNING_STATES[1].as_str())
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(map_err)?;
                    let at = now();
                    for (id, tenant, last_seq) in &running {
                        sqlx::query(
                            "UPDATE tasks SET state = $1, status_message = $2, last_seq = last_seq + 1, updated_at = $3 \
                             WHERE id = $4",
                        )
                        .bind(TaskState::Failed.as_str())
                        .bind(reason)
                        .bind(at)
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                        let status = NewTaskEvent {
                            kind: $crate::__private::nexus_core::TaskEventKind::Status,
                            payload: status_payload(TaskState::Failed, Some(reason)),
                        };
                        insert_events(
                            &mut tx,
                            TenantId::from_uuid(*tenant),
                            TaskId::from_uuid(*id),
                            to_u64(*last_seq, "tasks.last_seq")? + 1,
                            vec![status],
                        )
                        .await?;
                    }
                    tx.commit().await.map_err(map_err)?;
                    Ok(running.len() as u64)
                }
            }

            #[async_trait]
            impl AuditStore for $store {
                async fn append_audit(&self, tenant: TenantId, event: NewAuditEvent) -> Result<AuditEvent> {
                    let mut tx = self.writer().begin_with($begin).await.map_err(map_err)?;
                    let sealed = append_audit_in_tx(&mut tx, tenant, event).await?;
                    tx.commit().await.map_err(map_err)?;
                    Ok(sealed)
                }

                async fn list_audit(
                    &self,
                    tenant: TenantId,
                    after_seq: u64,
                    limit: u32,
                ) -> Result<Vec<AuditEvent>> {
                    let rows = sqlx::query_as::<_, AuditRow>(
                        "SELECT id, tenant_id, seq, actor, action, target, details, at, prev_hash, hash \
                         FROM audit_events WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                    )
                    .bind(tenant.as_uuid())
                    .bind(to_i64(after_seq))
                    .bind(i64::from(limit))
                    .fetch_all(self.reader())
                    .await
                    .map_err(map_err)?;
                    convert(rows)
                }
            }

            #[async_trait]
            impl ApiKeyStore for $store {
                async fn create_api_key(
                    &self,
                    tenant: TenantId,
                    new: NewApiKey,
                    audit: NewAuditEvent,
                ) -> Result<ApiKey> {
                    let mut tx = self.writer().begin_with($begin).await.map_err(map_err)?;
                    // The audit append goes first: it locks the tenant row (and fails if there
                    // is no such tenant) before the key's foreign-key check touches that row.
                    append_audit_in_tx(&mut tx, tenant, audit).await?;
                    let key: ApiKey = sqlx::query_as::<_, ApiKeyRow>(
                        "INSERT INTO api_keys (id, tenant_id, name, role, platform_admin, prefix, \
                         secret_hash, created_by, created_at, expires_at, revoked_at, user_id, service_account_id, service_account, teams) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL, $11, $12, $13, $14) \
                         RETURNING id, tenant_id, name, role, platform_admin, prefix, created_by, \
                         created_at, expires_at, revoked_at, user_id, service_account_id, service_account, teams",
                    )
                    .bind(new.id.as_uuid())
                    .bind(tenant.as_uuid())
                    .bind(&new.name)
                    .bind(new.role.as_str())
                    .bind(new.platform_admin)
                    .bind(&new.prefix)
                    .bind(&new.secret_hash)
                    .bind(&new.created_by)
                    .bind(now())
                    .bind(new.expires_at)
                    .bind(new.user_id.map(|id| *id.as_uuid()))
                    .bind(new.service_account.as_ref().map(|(id, _)| *id.as_uuid()))
                    .bind(new.service_account.as_ref().map(|(_, name)| name.as_str()))
                    .bind(Json(&new.teams))
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| {
                        if is_unique_violation(&e) {
                            // The id or the secret hash is taken; name the key by its prefix,
                            // never by its hash.
                            StoreError::already_exists("api key", &new.prefix)
                        } else {
                            map_err(e)
                        }
                    })?
                    .try_into()?;
                    tx.commit().await.map_err(map_err)?;
                    Ok(key)
                }

                async fn find_api_key_by_hash(&self, secret_hash: &str) -> Result<Option<ApiKey>> {
                    sqlx::query_as::<_, ApiKeyRow>(
                        "SELECT id, tenant_id, name, role, platform_admin, prefix, created_by, \
                         created_at, expires_at, revoked_at, user_id, service_account_id, service_account, teams FROM api_keys WHERE secret_hash = $1",
                    )
                    .bind(secret_hash)
                    .fetch_optional(self.reader())
                    .await
                    .map_err(map_err)?
                    .map(ApiKey::try_from)
                    .transpose()
                }

                async fn get_api_key(&self, tenant: TenantId, id: ApiKeyId) -> Result<ApiKey> {
                    sqlx::query_as::<_, ApiKeyRow>(
                        "SELECT id, tenant_id, name, role, platform_admin, prefix, created_by, \
                         created_at, expires_at, revoked_at, user_id, service_account_id, service_account, teams FROM api_keys WHERE tenant_id = $1 AND id = $2",
                    )
                    .bind(tenant.as_uuid())
                    .bind(id.as_uuid())
                    .fetch_optional(self.reader())
                    .await
                    .map_err(map_err)?
                    .ok_or_else(|| StoreError::not_found("api key", id))?
                    .try_into()
                }

                async fn list_api_keys(&self, tenant: TenantId, page: PageRequest) -> Result<Page<ApiKey>> {
                    let after = parse_cursor(page.after.as_ref())?;
                    let rows = sqlx::query_as::<_, ApiKeyRow>(
                        "SELECT id, tenant_id, name, role, platform_admin, prefix, created_by, \
                         created_at, expires_at, revoked_at, user_id, service_account_id, service_account, teams FROM api_keys \
                         WHERE tenant_id = $1 AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3",
                    )
                    .bind(tenant.as_uuid())
                    .bind(after)
                    .bind(i64::from(page.limit) + 1)
                    .fetch_all(self.reader())
                    .await
                    .map_err(map_err)?;
                    Ok(Page::from_overfetch(convert(rows)?, page.limit, |k: &ApiKey| k.id.to_string()))
                }

                async fn revoke_api_key(
                    &self,
                    tenant: TenantId,
                    id: ApiKeyId,
                    audit: NewAuditEvent,
                ) -> Result<ApiKey> {
                    let mut tx = self.writer().begin_with($begin).await.map_err(map_err)?;
                    // As in `create_api_key`: the tenant row is locked before the key row. If
                    // the key is not found, dropping `tx` rolls the audit event back.
                    append_audit_in_tx(&mut tx, tenant, audit).await?;
                    let key: ApiKey = sqlx::query_as::<_, ApiKeyRow>(
                        "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) \
                         WHERE tenant_id = $2 AND id = $3 \
                         RETURNING id, tenant_id, name, role, platform_admin, prefix, created_by, \
                         created_at, expires_at, revoked_at, user_id, service_account_id, service_account, teams",
                    )
                    .bind(now())
                    .bind(tenant.as_uuid())
                    .bind(id.as_uuid())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?
                    .ok_or_else(|| StoreError::not_found("api key", id))?
                    .try_into()?;
                    tx.commit().await.map_err(map_err)?;
                    Ok(key)
                }

                async fn create_service_account(
                    &self,
                    account: ServiceAccount,
                    audit: NewAuditEvent,
                ) -> Result<ServiceAccount> {
                    let mut tx = self.writer().begin_with($begin).await.map_err(map_err)?;
                    append_audit_in_tx(&mut tx, account.tenant_id, audit).await?;
                    sqlx::query(
                        "INSERT INTO service_accounts (id, tenant_id, name, role, description, created_by, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(account.id.as_uuid())
                    .bind(account.tenant_id.as_uuid())
                    .bind(account.name.as_str())
                    .bind(account.role.as_str())
                    .bind(&account.description)
                    .bind(&account.created_by)
                    .bind(account.created_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| {
                        if is_unique_violation(&e) {
                            StoreError::already_exists("service account", &account.name)
                        } else {
                            map_err(e)
                        }
                    })?;
                    tx.commit().await.map_err(map_err)?;
                    Ok(account)
                }

                async fn list_service_accounts(&self, tenant: TenantId) -> Result<Vec<ServiceAccount>> {
                    let rows = sqlx::query_as::<_, ServiceAccountRow>(
                        "SELECT id, tenant_id, name, role, description, created_by, created_at \
                         FROM service_accounts WHERE tenant_id = $1 ORDER BY name",
                    )
                    .bind(tenant.as_uuid())
                    .fetch_all(self.reader())
                    .await
                    .map_err(map_err)?;
                    convert(rows)
                }

                async fn get_service_account(&self, tenant: TenantId, name: &Name) -> Result<ServiceAccount> {
                    sqlx::query_as::<_, ServiceAccountRow>(
                        "SELECT id, tenant_id, name, role, description, created_by, created_at \
                         FROM service_accounts WHERE tenant_id = $1 AND name = $2",
                    )
                    .bind(tenant.as_uuid())
                    .bind(name.as_str())
                    .fetch_optional(self.reader())
                    .await
                    .map_err(map_err)?
                    .ok_or_else(|| StoreError::not_found("service account", name))?
                    .try_into()
                }

                async fn delete_service_account(
                    &self,
                    tenant: TenantId,
                    name: &Name,
                    audit: NewAuditEvent,
                ) -> Result<ServiceAccount> {
                    let mut tx = self.writer().begin_with($begin).await.map_err(map_err)?;
                    append_audit_in_tx(&mut tx, tenant, audit).await?;
                    let account: ServiceAccount = sqlx::query_as::<_, ServiceAccountRow>(
                        "DELETE FROM service_accounts WHERE tenant_id = $1 AND name = $2 \
                         RETURNING id, tenant_id, name, role, description, created_by, created_at",
                    )
                    .bind(tenant.as_uuid())
                    .bind(name.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?
                    .ok_or_else(|| StoreError::not_found("service account", name))?
                    .try_into()?;
                    tx.commit().await.map_err(map_err)?;
                    Ok(account)
                }

                async fn any_api_key(&self) -> Result<bool> {
                    let row = sqlx::query("SELECT 1 FROM api_keys LIMIT 1")
                        .fetch_optional(self.reader())
                        .await
                        .map_err(map_err)?;
                    Ok(row.is_some())
                }
            }

            /// The membership of `user` in `tenant`, read within `tx`.
            async fn membership_in_tx(tx: &mut Tx, tenant: TenantId, user: Uuid) -> Result<Membership> {
                sqlx::query_as::<_, MembershipRow>(sqlx::AssertSqlSafe(format!(
                    "SELECT {MEMBERSHIP_COLUMNS} FROM memberships m JOIN users u ON u.id = m.user_id \
                     WHERE m.tenant_id = $1 AND m.user_id = $2"
                )))
                .bind(tenant.as_uuid())
                .bind(user)
                .fetch_optional(&mut **tx)
                .await
                .map_err(map_err)?
                .ok_or_else(|| StoreError::not_found("membership", user))?
                .try_into()
            }

            /// Revokes the sessions of `user` in `tenant` within `tx`.
            async fn revoke_sessions_in_tx(tx: &mut Tx, tenant: TenantId, user: Uuid) -> Result<()> {
                sqlx::query(
                    "UPDATE api_keys SET revoked_at = $1 \
                     WHERE tenant_id = $2 AND user_id = $3 AND revoked_at IS NULL",
                )
                .bind(now())
                .bind(tenant.as_uuid())
                .bind(user)
                .execute(&mut **tx)
                .await
                .map_err(map_err)?;
                Ok(())
            }

            /// The team `name` of `tenant` with its members, read within `tx`.
            async fn team_in_tx(tx: &mut Tx, tenant: TenantId, name: &Name) -> Result<Team> {
                let row: Option<(Uuid, String, String, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
                    "SELECT id, name, role, created_at FROM teams WHERE tenant_id = $1 AND name = $2",
                )
                .bind(tenant.as_uuid())
                .bind(name.as_str())
                .fetch_optional(&mut **tx)
                .await
                .map_err(map_err)?;
                let (id, team_name, role, created_at) =
                    row.ok_or_else(|| StoreError::not_found("team", name))?;
                let members: Vec<(String,)> = sqlx::query_as(
                    "SELECT u.name FROM team_members m JOIN users u ON u.id = m.user_id \
                     WHERE m.team_id = $1 ORDER BY u.name",
                )
                .bind(id)
                .fetch_all(&mut **tx)
                .await
                .map_err(map_err)?;
                $crate::team_from_parts(tenant, id, team_name, &role, created_at, members)
            }

            /// Revokes the API keys `user` created in `tenant`: they were made with the access
            /// it is losing, and must not outlive it.
            async fn revoke_created_keys_in_tx(tx: &mut Tx, tenant: TenantId, user: Uuid) -> Result<()> {
                sqlx::query(
                    "UPDATE api_keys SET revoked_at = $1 WHERE tenant_id = $2 AND revoked_at IS NULL \
                     AND created_by = (SELECT 'user:' || name FROM users WHERE id = $3)",
                )
                .bind(now())
                .bind(tenant.as_uuid())
                .bind(user)
                .execute(&mut **tx)
                .await
                .map_err(map_err)?;
                Ok(())
            }

            #[async_trait]
            impl UserStore for $store {
                async fn create_user(
                    &self,
                    tenant: TenantId,
                    new: NewUser,
                    role: Role,
                    audit: NewAuditEvent,
                ) -> Result<Membership> {
                    let mut tx = self.writer().begin_with($begin).await.map_err(map_err)?;
                    append_audit_in_tx(&mut tx, tenant, audit).await?;
                    sqlx::query(
                        "INSERT INTO users (id, name, display_name, password_hash, created_at) \
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(new.id.as_uuid())
                    .bind(new.name.as_str())
                    .bind(&new.display_name)
                    .bind(&new.password_hash)
                    .bind(now())
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| {
                        if is_unique_violation(&e) {
                            StoreError::already_exists("user", &new.name)
                        } else {
                            map_err(e)
                        }
                    })?;
                    sqlx::query(
                        "INSERT INTO memberships (tenant_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
                    )
                    .bind(tenant.as_uuid())
                    .bind(new.id.as_uuid())
                    .bind(role.as_str())
                    .bind(now())
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                    let membership = membership_in_tx(&mut tx, tenant, *new.id.as_uuid()).await?;
                    tx.commit().await.map_err(map_err)?;
                    Ok(membership)
                }

                async fn put_membership(
                    &self,
                    tenant: TenantId,
                    name: &Name,
                    role: Role,
                    audit: NewAuditEvent,
                ) -> Result<Membership> {
                    let mut tx = self.writer().begin_with($begin).await.map_err(map_err)?;
                    append_audit_in_tx(&mut tx, tenant, audit).await?;
                    let (user,): (Uuid,) = sqlx::query_as("SELECT id FROM users WHERE name = $1")
                        .bind(name.as_str())
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(map_err)?
                        .ok_or_else(|| StoreError::not_found("user", name))?;
                    sqlx::query(
                        "INSERT INTO memberships (tenant_id, user_id, role, created_at) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (tenant_id, user_id) DO UPDATE SET role = excluded.role",
                    )
                    .bind(tenant.as_uuid())
                    .bind(user)
                    .bind(role.as_str())
                    .bind(now())
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                    // Sessions carry the role they were opened with, keys the user made the
                    // access it had.
                    revoke_sessions_in_tx(&mut tx, tenant, user).await?;
                    revoke_created_keys_in_tx(&mut tx, tenant, user).await?;
                    let membership = membership_in_tx(&mut tx, tenant, user).await?;
                    tx.commit().await.map_err(map_err)?;
                    Ok(membership)
                }

                async fn remove_membership(
                    &self,
                    tenant: TenantId,
                    name: &Name,
                    audit: NewAuditEvent,
                ) -> Result<Membership> {
                    let mut tx = self.writer().begin_with($begin).await.map_err(map_err)?;
                    append_audit_in_tx(&mut tx, tenant, audit).await?;
                    let (user,): (Uuid,) = sqlx::query_as("SELECT id FROM users WHERE name = $1")
                        .bind(name.as_str())
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(map_err)?
                        .ok_or_else(|| StoreError::not_found("member", name))?;
                    let membership = membership_in_tx(&mut tx, tenant, user)
                        .await
                        .map_err(|_| StoreError::not_found("member", name))?;
                    sqlx::query("DELETE FROM memberships WHERE tenant_id = $1 AND user_id = $2")
                        .bind(tenant.as_uuid())
                        .bind(user)
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    sqlx::query(
                        "DELETE FROM team_members WHERE user_id = $1 \
                         AND team_id IN (SELECT id FROM teams WHERE tenant_id = $2)",
                    )
                    .bind(user)
                    .bind(tenant.as_uuid())
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                    revoke_sessions_in_tx(&mut tx, tenant, user).await?;
                    revoke_created_keys_in_tx(&mut tx, tenant, user).await?;
                    tx.commit().await.map_err(map_err)?;
                    Ok(membership)
                }

                async fn list_members(&self, tenant: TenantId, page: PageRequest) -> Result<Page<Membership>> {
                    let after = page.after.as_ref().map(|cursor| cursor.0.clone());
                    let rows = sqlx::query_as::<_, MembershipRow>(sqlx::AssertSqlSafe(format!(
                        "SELECT {MEMBERSHIP_COLUMNS} FROM memberships m JOIN users u ON u.id = m.user_id \
                         WHERE m.tenant_id = $1 AND ($2 IS NULL OR u.name > $2) ORDER BY u.name LIMIT $3"
                    )))
                    .bind(tenant.as_uuid())
                    .bind(after)
                    .bind(i64::from(page.limit) + 1)
                    .fetch_all(self.reader())
                    .await
                    .map_err(map_err)?;
                    Ok(Page::from_overfetch(convert(rows)?, page.limit, |m: &Membership| m.user.name.to_string()))
                }

                async fn find_user(&self, name: &Name) -> Result<Option<(User, String)>> {
                    sqlx::query_as::<_, UserRow>(
                        "SELECT id, name, display_name, password_hash, created_at FROM users WHERE name = $1",
                    )
                    .bind(name.as_str())
                    .fetch_optional(self.reader())
                    .await
                    .map_err(map_err)?
                    .map(TryInto::try_into)
                    .transpose()
                }

                async fn create_team(
                    &self,
                    tenant: TenantId,
                    id: TeamId,
                    name: &Name,
                    role: Role,
                    audit: NewAuditEvent,
                ) -> Result<Team> {
                    let mut tx = self.writer().begin_with($begin).await.map_err(map_err)?;
                    append_audit_in_tx(&mut tx, tenant, audit).await?;
                    sqlx::query(
                        "INSERT INTO teams (id, tenant_id, name, role, created_at) VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(id.as_uuid())
                    .bind(tenant.as_uuid())
                    .bind(name.as_str())
                    .bind(role.as_str())
                    .bind(now())
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| {
                        if is_unique_violation(&e) {
                            StoreError::already_exists("team", name)
                        } else {
                            map_err(e)
                        }
                    })?;
                    let team = team_in_tx(&mut tx, tenant, name).await?;
                    tx.commit().await.map_err(map_err)?;
                    Ok(team)
                }

                async fn list_teams(&self, tenant: TenantId) -> Result<Vec<Team>> {
                    let mut tx = self.reader().begin().await.map_err(map_err)?;
                    let names: Vec<(String,)> =
                        sqlx::query_as("SELECT name FROM teams WHERE tenant_id = $1 ORDER BY name")
                            .bind(tenant.as_uuid())
                            .fetch_all(&mut *tx)
                            .await
                            .map_err(map_err)?;
                    let mut teams = Vec::with_capacity(names.len());
                    for (name,) in names {
                        let name = Name::parse(&name)
                            .map_err(|e| StoreError::Corrupt(format!("teams.name: {e}")))?;
                        teams.push(team_in_tx(&mut tx, tenant, &name).await?);
                    }
                    Ok(teams)
                }

                async fn delete_team(
                    &self,
                    tenant: TenantId,
                    name: &Name,
                    audit: NewAuditEvent,
                ) -> Result<Team> {
                    let mut tx = self.writer().begin_with($begin).await.map_err(map_err)?;
                    append_audit_in_tx(&mut tx, tenant, audit).await?;
                    let team = team_in_tx(&mut tx, tenant, name).await?;
                    sqlx::query(
                        "UPDATE api_keys SET revoked_at = $1 WHERE tenant_id = $2 AND revoked_at IS NULL \
                         AND user_id IN (SELECT user_id FROM team_members WHERE team_id = $3)",
                    )
                    .bind(now())
                    .bind(tenant.as_uuid())
                    .bind(team.id.as_uuid())
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                    sqlx::query("DELETE FROM teams WHERE id = $1")
                        .bind(team.id.as_uuid())
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    tx.commit().await.map_err(map_err)?;
                    Ok(team)
                }

                async fn set_team_member(
                    &self,
                    tenant: TenantId,
                    team: &Name,
                    user: &Name,
                    add: bool,
                    audit: NewAuditEvent,
                ) -> Result<Team> {
                    let mut tx = self.writer().begin_with($begin).await.map_err(map_err)?;
                    append_audit_in_tx(&mut tx, tenant, audit).await?;
                    let found = team_in_tx(&mut tx, tenant, team).await?;
                    // Only members of the tenant join its teams.
                    let member: Option<(Uuid,)> = sqlx::query_as(
                        "SELECT u.id FROM users u JOIN memberships m ON m.user_id = u.id \
                         WHERE u.name = $1 AND m.tenant_id = $2",
                    )
                    .bind(user.as_str())
                    .bind(tenant.as_uuid())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?;
                    let (user_id,) = member.ok_or_else(|| StoreError::not_found("member", user))?;
                    let changed = if add {
                        sqlx::query(
                            "INSERT INTO team_members (team_id, user_id, created_at) VALUES ($1, $2, $3) \
                             ON CONFLICT (team_id, user_id) DO NOTHING",
                        )
                        .bind(found.id.as_uuid())
                        .bind(user_id)
                        .bind(now())
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?
                        .rows_affected()
                    } else {
                        sqlx::query("DELETE FROM team_members WHERE team_id = $1 AND user_id = $2")
                            .bind(found.id.as_uuid())
                            .bind(user_id)
                            .execute(&mut *tx)
                            .await
                            .map_err(map_err)?
                            .rows_affected()
                    };
                    if !add && changed == 0 {
                        return Err(StoreError::not_found("team member", user));
                    }
                    revoke_sessions_in_tx(&mut tx, tenant, user_id).await?;
                    let team = team_in_tx(&mut tx, tenant, team).await?;
                    tx.commit().await.map_err(map_err)?;
                    Ok(team)
                }

                async fn user_teams(&self, tenant: TenantId, user: UserId) -> Result<Vec<(Name, Role)>> {
                    let rows: Vec<(String, String)> = sqlx::query_as(
                        "SELECT t.name, t.role FROM teams t JOIN team_members m ON m.team_id = t.id \
                         WHERE t.tenant_id = $1 AND m.user_id = $2 ORDER BY t.name",
                    )
                    .bind(tenant.as_uuid())
                    .bind(user.as_uuid())
                    .fetch_all(self.reader())
                    .await
                    .map_err(map_err)?;
                    rows.into_iter()
                        .map(|(team, role)| {
                            let role = role
                                .parse::<Role>()
                                .map_err(|e| StoreError::Corrupt(format!("teams.role: {e}")))?;
                            Ok((parse_name(team, "teams.name")?, role))
                        })
                        .collect()
                }

                async fn set_password(
                    &self,
                    user: UserId,
                    password_hash: &str,
                    audit_tenant: TenantId,
                    audit: NewAuditEvent,
                ) -> Result<()> {
                    let mut tx = self.writer().begin_with($begin).await.map_err(map_err)?;
                    // Every tenant the account belongs to learns of it, and the caller's; in
                    // one order, so concurrent changes lock the tenants' chains alike.
                    let member_of: Vec<(Uuid,)> =
                        sqlx::query_as("SELECT tenant_id FROM memberships WHERE user_id = $1")
                            .bind(user.as_uuid())
                            .fetch_all(&mut *tx)
                            .await
                            .map_err(map_err)?;
                    let mut tenants: Vec<TenantId> = member_of
                        .into_iter()
                        .map(|(id,)| TenantId::from_uuid(id))
                        .chain(std::iter::once(audit_tenant))
                        .collect();
                    tenants.sort_by_key(|t| *t.as_uuid());
                    tenants.dedup();
                    for tenant in tenants {
                        append_audit_in_tx(&mut tx, tenant, audit.clone()).await?;
                    }
                    let changed = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
                        .bind(password_hash)
                        .bind(user.as_uuid())
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?
                        .rows_affected();
                    if changed == 0 {
                        return Err(StoreError::not_found("user", user));
                    }
                    // Every session, and every key the user made: a password change is how a
                    // compromised account is taken back.
                    sqlx::query(
                        "UPDATE api_keys SET revoked_at = $1 WHERE revoked_at IS NULL \
                         AND (user_id = $2 OR created_by = (SELECT 'user:' || name FROM users WHERE id = $2))",
                    )
                    .bind(now())
                    .bind(user.as_uuid())
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                    tx.commit().await.map_err(map_err)
                }

                async fn user_memberships(&self, user: UserId) -> Result<Vec<Membership>> {
                    let rows = sqlx::query_as::<_, MembershipRow>(sqlx::AssertSqlSafe(format!(
                        "SELECT {MEMBERSHIP_COLUMNS} FROM memberships m JOIN users u ON u.id = m.user_id \
                         WHERE m.user_id = $1 ORDER BY m.created_at, m.tenant_id"
                    )))
                    .bind(user.as_uuid())
                    .fetch_all(self.reader())
                    .await
                    .map_err(map_err)?;
                    convert(rows)
                }
            }

            #[async_trait]
            impl PolicyStore for $store {
                async fn create_policy(
                    &self,
                    tenant: TenantId,
                    new: NewPolicy,
                    max_per_tenant: usize,
                    audit: NewAuditEvent,
                ) -> Result<Policy> {
                    let policy = new.into_policy(tenant);
                    let mut tx = self.writer().begin_with($begin).await.map_err(map_err)?;
                    // As in `create_api_key`: the audit append goes first and locks the tenant
                    // row, so concurrent creations in one tenant count in turn and the limit
                    // holds. Any refusal below drops `tx`, which rolls the event back.
                    append_audit_in_tx(&mut tx, tenant, audit).await?;
                    // Policies of other names: a duplicate name is `AlreadyExists` even at the
                    // limit, as it would be under it.
                    let (others,): (i64,) = sqlx::query_as(
                        "SELECT COUNT(*) FROM policies WHERE tenant_id = $1 AND name <> $2",
                    )
                    .bind(tenant.as_uuid())
                    .bind(policy.name.as_str())
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(map_err)?;
                    if usize::try_from(others).unwrap_or(usize::MAX) >= max_per_tenant {
                        return Err(StoreError::TooMany {
                            kind: "policies",
                            limit: max_per_tenant,
                        });
                    }
                    let stored: Policy = sqlx::query_as::<_, PolicyRow>(
                        "INSERT INTO policies (id, tenant_id, name, description, text, created_by, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7) \
                         RETURNING id, tenant_id, name, description, text, created_by, created_at",
                    )
                    .bind(policy.id.as_uuid())
                    .bind(tenant.as_uuid())
                    .bind(policy.name.as_str())
                    .bind(&policy.description)
                    .bind(&policy.text)
                    .bind(&policy.created_by)
                    .bind(policy.created_at)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| {
                        if is_unique_violation(&e) {
                            // The name is taken in this tenant (or, never in practice, the id).
                            StoreError::already_exists("policy", &policy.name)
                        } else {
                            map_err(e)
                        }
                    })?
                    .try_into()?;
                    tx.commit().await.map_err(map_err)?;
                    Ok(stored)
                }

                async fn list_policies(&self, tenant: TenantId) -> Result<Vec<Policy>> {
                    let rows = sqlx::query_as::<_, PolicyRow>(
                        "SELECT id, tenant_id, name, description, text, created_by, created_at \
                         FROM policies WHERE tenant_id = $1 ORDER BY id",
                    )
                    .bind(tenant.as_uuid())
                    .fetch_all(self.reader())
                    .await
                    .map_err(map_err)?;
                    convert(rows)
                }

                async fn delete_policy(
                    &self,
                    tenant: TenantId,
                    name: &Name,
                    audit: NewAuditEvent,
                ) -> Result<Policy> {
                    let mut tx = self.writer().begin_with($begin).await.map_err(map_err)?;
                    // As in `revoke_api_key`: the tenant row is locked before the policy row. If
                    // there is no such policy, dropping `tx` rolls the audit event back.
                    append_audit_in_tx(&mut tx, tenant, audit).await?;
                    let deleted: Policy = sqlx::query_as::<_, PolicyRow>(
                        "DELETE FROM policies WHERE tenant_id = $1 AND name = $2 \
                         RETURNING id, tenant_id, name, description, text, created_by, created_at",
                    )
                    .bind(tenant.as_uuid())
                    .bind(name.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?
                    .ok_or_else(|| StoreError::not_found("policy", name))?
                    .try_into()?;
                    tx.commit().await.map_err(map_err)?;
                    Ok(deleted)
                }
            }

            #[async_trait]
            impl StateStore for $store {
                async fn state_get(&self, scope: &StateScope, key: &str) -> Result<Option<Vec<u8>>> {
                    let row: Option<(Vec<u8>,)> = sqlx::query_as(
                        "SELECT value FROM agent_state \
                         WHERE tenant_id = $1 AND agent_id = $2 AND session = $3 AND key = $4",
                    )
                    .bind(scope.tenant.as_uuid())
                    .bind(scope.agent.as_uuid())
                    .bind(&scope.session)
                    .bind(key)
                    .fetch_optional(self.reader())
                    .await
                    .map_err(map_err)?;
                    Ok(row.map(|(value,)| value))
                }

                async fn state_put(&self, scope: &StateScope, key: &str, value: &[u8]) -> Result<()> {
                    sqlx::query(
                        "INSERT INTO agent_state (tenant_id, agent_id, session, key, value, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6) \
                         ON CONFLICT (agent_id, session, key) DO UPDATE \
                         SET value = excluded.value, updated_at = excluded.updated_at",
                    )
                    .bind(scope.tenant.as_uuid())
                    .bind(scope.agent.as_uuid())
                    .bind(&scope.session)
                    .bind(key)
                    .bind(value)
                    .bind(now())
                    .execute(self.writer())
                    .await
                    .map_err(|e| {
                        if is_foreign_key_violation(&e) {
                            StoreError::not_found("agent", scope.agent)
                        } else {
                            map_err(e)
                        }
                    })?;
                    Ok(())
                }

                async fn state_delete(&self, scope: &StateScope, key: &str) -> Result<()> {
                    sqlx::query(
                        "DELETE FROM agent_state \
                         WHERE tenant_id = $1 AND agent_id = $2 AND session = $3 AND key = $4",
                    )
                    .bind(scope.tenant.as_uuid())
                    .bind(scope.agent.as_uuid())
                    .bind(&scope.session)
                    .bind(key)
                    .execute(self.writer())
                    .await
                    .map_err(map_err)?;
                    Ok(())
                }

                async fn state_compare_and_swap(
                    &self,
                    scope: &StateScope,
                    key: &str,
                    expected: Option<&[u8]>,
                    new: Option<&[u8]>,
                ) -> Result<bool> {
                    // Each case is one conditional statement, atomic on its own.
                    let affected = match (expected, new) {
                        (None, None) => return Ok(self.state_get(scope, key).await?.is_none()),
                        (None, Some(new)) => sqlx::query(
                            "INSERT INTO agent_state (tenant_id, agent_id, session, key, value, updated_at) \
                             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (agent_id, session, key) DO NOTHING",
                        )
                        .bind(scope.tenant.as_uuid())
                        .bind(scope.agent.as_uuid())
                        .bind(&scope.session)
                        .bind(key)
                        .bind(new)
                        .bind(now())
                        .execute(self.writer())
                        .await,
                        (Some(expected), Some(new)) => sqlx::query(
                            "UPDATE agent_state SET value = $5, updated_at = $6 \
                             WHERE tenant_id = $1 AND agent_id = $2 AND session = $3 AND key = $4 AND value = $7",
                        )
                        .bind(scope.tenant.as_uuid())
                        .bind(scope.agent.as_uuid())
                        .bind(&scope.session)
                        .bind(key)
                        .bind(new)
                        .bind(now())
                        .bind(expected)
                        .execute(self.writer())
                        .await,
                        (Some(expected), None) => sqlx::query(
                            "DELETE FROM agent_state \
                             WHERE tenant_id = $1 AND agent_id = $2 AND session = $3 AND key = $4 AND value = $5",
                        )
                        .bind(scope.tenant.as_uuid())
                        .bind(scope.agent.as_uuid())
                        .bind(&scope.session)
                        .bind(key)
                        .bind(expected)
                        .execute(self.writer())
                        .await,
                    };
                    let affected = affected
                        .map_err(|e| {
                            if is_foreign_key_violation(&e) {
                                StoreError::not_found("agent", scope.agent)
                            } else {
                                map_err(e)
                            }
                        })?
                        .rows_affected();
                    Ok(affected == 1)
                }

                async fn state_list_keys(
                    &self,
                    scope: &StateScope,
                    prefix: &str,
                    limit: u32,
                ) -> Result<Vec<String>> {
                    let rows: Vec<(String,)> = sqlx::query_as(
                        "SELECT key FROM agent_state \
                         WHERE tenant_id = $1 AND agent_id = $2 AND session = $3 \
                         AND substr(key, 1, length($4)) = $4 ORDER BY key LIMIT $5",
                    )
                    .bind(scope.tenant.as_uuid())
                    .bind(scope.agent.as_uuid())
                    .bind(&scope.session)
                    .bind(prefix)
                    .bind(i64::from(limit))
                    .fetch_all(self.reader())
                    .await
                    .map_err(map_err)?;
                    Ok(rows.into_iter().map(|(key,)| key).collect())
                }

                async fn state_clear(
                    &self,
                    tenant: TenantId,
                    agent: AgentId,
                    session: Option<&str>,
                    audit: NewAuditEvent,
                ) -> Result<u64> {
                    let mut tx = self.writer().begin_with($begin).await.map_err(map_err)?;
                    append_audit_in_tx(&mut tx, tenant, audit).await?;
                    let deleted = sqlx::query(
                        "DELETE FROM agent_state WHERE tenant_id = $1 AND agent_id = $2 \
                         AND ($3 IS NULL OR session = $3)",
                    )
                    .bind(tenant.as_uuid())
                    .bind(agent.as_uuid())
                    .bind(session)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?
                    .rows_affected();
                    tx.commit().await.map_err(map_err)?;
                    Ok(deleted)
                }

                async fn state_entries(
                    &self,
                    tenant: TenantId,
                    agent: AgentId,
                    after: Option<(&str, &str)>,
                    limit: u32,
                ) -> Result<Vec<StateEntry>> {
                    let (session, key) = after.unwrap_or(("", ""));
                    let rows: Vec<(String, String, Vec<u8>)> = sqlx::query_as(
                        "SELECT session, key, value FROM agent_state \
                         WHERE tenant_id = $1 AND agent_id = $2 \
                         AND (session > $3 OR (session = $3 AND key > $4)) \
                         ORDER BY session, key LIMIT $5",
                    )
                    .bind(tenant.as_uuid())
                    .bind(agent.as_uuid())
                    .bind(session)
                    .bind(key)
                    .bind(i64::from(limit))
                    .fetch_all(self.reader())
                    .await
                    .map_err(map_err)?;
                    Ok(rows
                        .into_iter()
                        .map(|(session, key, value)| StateEntry { session, key, value })
                        .collect())
                }
            }

            #[async_trait]
            impl SecretStore for $store {
                async fn put_tenant_key(&self, tenant: TenantId, wrapped: &[u8]) -> Result<Vec<u8>> {
                    sqlx::query(
                        "INSERT INTO tenant_keys (tenant_id, wrapped, created_at) VALUES ($1, $2, $3) \
                         ON CONFLICT (tenant_id) DO NOTHING",
                    )
                    .bind(tenant.as_uuid())
                    .bind(wrapped)
                    .bind(now())
                    .execute(self.writer())
                    .await
                    .map_err(|e| {
                        if is_foreign_key_violation(&e) {
                            StoreError::not_found("tenant", tenant)
                        } else {
                            map_err(e)
                        }
                    })?;
                    // Read through the writer: a reader might not see the row just written yet.
                    let (stored,): (Vec<u8>,) =
                        sqlx::query_as("SELECT wrapped FROM tenant_keys WHERE tenant_id = $1")
                            .bind(tenant.as_uuid())
                            .fetch_one(self.writer())
                            .await
                            .map_err(map_err)?;
                    Ok(stored)
                }

                async fn delete_tenant_key(&self, tenant: TenantId) -> Result<bool> {
                    let deleted = sqlx::query("DELETE FROM tenant_keys WHERE tenant_id = $1")
                        .bind(tenant.as_uuid())
                        .execute(self.writer())
                        .await
                        .map_err(map_err)?
                        .rows_affected();
                    self.scrub().await;
                    Ok(deleted > 0)
                }

                async fn get_tenant_key(&self, tenant: TenantId) -> Result<Option<Vec<u8>>> {
                    let row: Option<(Vec<u8>,)> =
                        sqlx::query_as("SELECT wrapped FROM tenant_keys WHERE tenant_id = $1")
                            .bind(tenant.as_uuid())
                            .fetch_optional(self.reader())
                            .await
                            .map_err(map_err)?;
                    Ok(row.map(|(wrapped,)| wrapped))
                }

                async fn deploy_revision_with_secrets(
                    &self,
                    tenant: TenantId,
                    new: NewAgentRevision,
                    secrets: Vec<SealedSecret>,
                    mut audit: NewAuditEvent,
                ) -> Result<(Agent, AgentRevision)> {
                    let start = self.names().agent_generation();
                    let written = async {
                        let mut tx = self.writer().begin_with($begin).await.map_err(map_err)?;
                        // The event names the revision, which is numbered only as it is written,
                        // so the event is appended after the deployment; but the chain's lock,
                        // on the tenant row, is taken first, as every audited write does.
                        lock_audit_chain(&mut tx, tenant).await?;
                        let deployed = deploy_in_tx(&mut tx, tenant, new, Some(secrets)).await?;
                        audit.details = with_revision(audit.details, deployed.1.revision);
                        append_audit_in_tx(&mut tx, tenant, audit).await?;
                        tx.commit().await.map_err(map_err)?;
                        Ok(deployed)
                    }
                    .await;
                    self.names().agents_written(start, written.as_ref().ok().map(|(agent, _)| agent));
                    written
                }

                async fn put_secret(
                    &self,
                    tenant: TenantId,
                    agent: AgentId,
                    secret: SealedSecret,
                ) -> Result<()> {
                    let mut tx = self.writer().begin_with($begin).await.map_err(map_err)?;
                    upsert_secret(&mut tx, tenant, *agent.as_uuid(), &secret, now()).await?;
                    tx.commit().await.map_err(map_err)
                }

                async fn get_secret(
                    &self,
                    tenant: TenantId,
                    agent: AgentId,
                    name: &str,
                ) -> Result<Option<Vec<u8>>> {
                    let row: Option<(Vec<u8>,)> = sqlx::query_as(
                        "SELECT ciphertext FROM agent_secrets \
                         WHERE tenant_id = $1 AND agent_id = $2 AND name = $3",
                    )
                    .bind(tenant.as_uuid())
                    .bind(agent.as_uuid())
                    .bind(name)
                    .fetch_optional(self.reader())
                    .await
                    .map_err(map_err)?;
                    Ok(row.map(|(ciphertext,)| ciphertext))
                }

                async fn list_secrets(&self, tenant: TenantId, agent: AgentId) -> Result<Vec<SealedSecret>> {
                    let rows: Vec<(String, Vec<u8>)> = sqlx::query_as(
                        "SELECT name, ciphertext FROM agent_secrets \
                         WHERE tenant_id = $1 AND agent_id = $2 ORDER BY name",
                    )
                    .bind(tenant.as_uuid())
                    .bind(agent.as_uuid())
                    .fetch_all(self.reader())
                    .await
                    .map_err(map_err)?;
                    Ok(rows
                        .into_iter()
                        .map(|(name, ciphertext)| SealedSecret { name, ciphertext })
                        .collect())
                }

                async fn list_secret_names(
                    &self,
                    tenant: TenantId,
                    agent: AgentId,
                ) -> Result<Vec<SecretInfo>> {
                    let rows: Vec<(String, $crate::__private::chrono::DateTime<$crate::__private::chrono::Utc>)> =
                        sqlx::query_as(
                            "SELECT name, updated_at FROM agent_secrets \
                             WHERE tenant_id = $1 AND agent_id = $2 ORDER BY name",
                        )
                        .bind(tenant.as_uuid())
                        .bind(agent.as_uuid())
                        .fetch_all(self.reader())
                        .await
                        .map_err(map_err)?;
                    Ok(rows
                        .into_iter()
                        .map(|(name, updated_at)| SecretInfo { name, updated_at })
                        .collect())
                }

                async fn delete_secret(
                    &self,
                    tenant: TenantId,
                    agent: AgentId,
                    name: &str,
                    audit: NewAuditEvent,
                ) -> Result<bool> {
                    let mut tx = self.writer().begin_with($begin).await.map_err(map_err)?;
                    // The event first, locking the chain; without a secret to delete, dropping
                    // `tx` rolls it back.
                    append_audit_in_tx(&mut tx, tenant, audit).await?;
                    let deleted = sqlx::query(
                        "DELETE FROM agent_secrets WHERE tenant_id = $1 AND agent_id = $2 AND name = $3",
                    )
                    .bind(tenant.as_uuid())
                    .bind(agent.as_uuid())
                    .bind(name)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?
                    .rows_affected();
                    if deleted == 0 {
                        return Ok(false);
                    }
                    tx.commit().await.map_err(map_err)?;
                    Ok(true)
                }
            }

            #[async_trait]
            impl $crate::__private::nexus_store::PushConfigStore for $store {
                async fn put_push_config(
                    &self,
                    tenant: TenantId,
                    config: $crate::__private::nexus_store::PushConfig,
                    max_per_task: usize,
                ) -> Result<$crate::__private::nexus_store::PushConfig> {
                    let mut tx = self.writer().begin_with($begin).await.map_err(map_err)?;
                    // Locking the task row makes concurrent puts for one task count in turn,
                    // so the limit holds.
                    lock_task(&mut tx, tenant, config.task_id).await?;
                    let (others,): (i64,) = sqlx::query_as(
                        "SELECT COUNT(*) FROM task_push_configs \
                         WHERE tenant_id = $1 AND task_id = $2 AND id <> $3",
                    )
                    .bind(tenant.as_uuid())
                    .bind(config.task_id.as_uuid())
                    .bind(&config.id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(map_err)?;
                    if usize::try_from(others).unwrap_or(usize::MAX) >= max_per_task {
                        return Err(StoreError::TooMany {
                            kind: "push notification configs for one task",
                            limit: max_per_task,
                        });
                    }
                    let at = now();
                    let stored: $crate::PushConfigRow = sqlx::query_as(
                        "INSERT INTO task_push_configs (tenant_id, task_id, id, protocol_version, url, \
                         token, auth_scheme, auth_credentials, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                         ON CONFLICT (tenant_id, task_id, id) DO UPDATE SET \
                         protocol_version = excluded.protocol_version, url = excluded.url, \
                         token = excluded.token, auth_scheme = excluded.auth_scheme, \
                         auth_credentials = excluded.auth_credentials, updated_at = excluded.updated_at \
                         RETURNING task_id, id, protocol_version, url, token, auth_scheme, \
                         auth_credentials, created_at",
                    )
                    .bind(tenant.as_uuid())
                    .bind(config.task_id.as_uuid())
                    .bind(&config.id)
                    .bind(&config.protocol_version)
                    .bind(&config.url)
                    .bind(config.token.as_deref())
                    .bind(config.auth_scheme.as_deref())
                    .bind(config.auth_credentials.as_deref())
                    .bind(at)
                    .bind(at)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(map_err)?;
                    tx.commit().await.map_err(map_err)?;
                    stored.try_into()
                }

                async fn get_push_config(
                    &self,
                    tenant: TenantId,
                    task: TaskId,
                    id: &str,
                ) -> Result<$crate::__private::nexus_store::PushConfig> {
                    let row: Option<$crate::PushConfigRow> = sqlx::query_as(
                        "SELECT task_id, id, protocol_version, url, token, auth_scheme, \
                         auth_credentials, created_at FROM task_push_configs \
                         WHERE tenant_id = $1 AND task_id = $2 AND id = $3",
                    )
                    .bind(tenant.as_uuid())
                    .bind(task.as_uuid())
                    .bind(id)
                    .fetch_optional(self.reader())
                    .await
                    .map_err(map_err)?;
                    row.ok_or_else(|| {
                        StoreError::not_found("push notification config", format!("{task}/{id}"))
                    })?
                    .try_into()
                }

                async fn list_push_configs(
                    &self,
                    tenant: TenantId,
                    task: TaskId,
                ) -> Result<Vec<$crate::__private::nexus_store::PushConfig>> {
                    let rows: Vec<$crate::PushConfigRow> = sqlx::query_as(
                        "SELECT task_id, id, protocol_version, url, token, auth_scheme, \
                         auth_credentials, created_at FROM task_push_configs \
                         WHERE tenant_id = $1 AND task_id = $2 ORDER BY created_at, id",
                    )
                    .bind(tenant.as_uuid())
                    .bind(task.as_uuid())
                    .fetch_all(self.reader())
                    .await
                    .map_err(map_err)?;
                    convert(rows)
                }

                async fn delete_push_config(
                    &self,
                    tenant: TenantId,
                    task: TaskId,
                    id: &str,
                ) -> Result<bool> {
                    let deleted = sqlx::query(
                        "DELETE FROM task_push_configs WHERE tenant_id = $1 AND task_id = $2 AND id = $3",
                    )
                    .bind(tenant.as_uuid())
                    .bind(task.as_uuid())
                    .bind(id)
                    .execute(self.writer())
                    .await
                    .map_err(map_err)?
                    .rows_affected();
                    Ok(deleted > 0)
                }
            }

            #[async_trait]
            impl Store for $store {
                fn backend(&self) -> &'static str {
                    $backend
                }

                async fn ping(&self) -> Result<()> {
                    sqlx::query("SELECT 1")
                        .execute(self.reader())
                        .await
                        .map(|_| ())
                        .map_err(|e| StoreError::Unavailable(e.to_string()))
                }

                async fn close(&self) {
                    // Queued task writes finish on the pool before it closes.
                    self.task_writer().close().await;
                    self.close_pools().await;
                }
            }
        };
    };
}
