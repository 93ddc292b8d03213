//! The SQL of group-committed task writes on PostgreSQL ([`nexus_store_sql::TaskWriter`]): a
//! batch is one transaction of at most four statements besides `BEGIN` and `COMMIT`, each a
//! round trip, however many writes it holds; the commit's WAL flush is shared by all of them.

use async_trait::async_trait;
use nexus_store_sql::{
    BatchFailure, BatchWrites, EVENTS_PER_INSERT, EventRow, LockedTaskRow, PlannedTask,
    TASKS_PER_STATEMENT, TaskBatchSql, classify_batch_error, to_i64,
};
use sqlx::types::Json;
use sqlx::{PgPool, Postgres, QueryBuilder, Transaction};
use uuid::Uuid;

/// [`TaskBatchSql`] on a PostgreSQL pool.
#[derive(Debug)]
pub(crate) struct TaskBatches {
    pub(crate) pool: PgPool,
}

#[async_trait]
impl TaskBatchSql for TaskBatches {
    type Tx = Transaction<'static, Postgres>;
    type Error = sqlx::Error;

    async fn begin(&self) -> Result<Self::Tx, sqlx::Error> {
        self.pool.begin().await
    }

    async fn lock_tasks(
        &self,
        tx: &mut Self::Tx,
        ids: &[Uuid],
    ) -> Result<Vec<LockedTaskRow>, sqlx::Error> {
        let mut rows = Vec::with_capacity(ids.len());
        // `ids` are sorted, so concurrent batches lock rows in the same order, across chunks too.
        for chunk in ids.chunks(TASKS_PER_STATEMENT) {
            let mut select = QueryBuilder::<Postgres>::new(
                "SELECT id, tenant_id, agent_id, agent_revision, context_id, parent_task_id, \
                 state, status_message, started_by, created_at, updated_at, last_seq FROM tasks WHERE id IN (",
            );
            let mut list = select.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            select.push(") ORDER BY id FOR UPDATE");
            rows.extend(
                select
                    .build_query_as::<LockedTaskRow>()
                    .fetch_all(&mut **tx)
                    .await?,
            );
        }
        Ok(rows)
    }

    async fn write(&self, tx: &mut Self::Tx, writes: &BatchWrites<'_>) -> Result<(), sqlx::Error> {
        for chunk in writes.inserts.chunks(TASKS_PER_STATEMENT) {
            insert_tasks(chunk).build().execute(&mut **tx).await?;
        }
        for chunk in writes.updates.chunks(TASKS_PER_STATEMENT) {
            update_tasks(chunk).build().execute(&mut **tx).await?;
        }
        for chunk in writes.events.chunks(EVENTS_PER_INSERT) {
            insert_events(chunk).build().execute(&mut **tx).await?;
        }
        Ok(())
    }

    async fn commit(&self, tx: Self::Tx) -> Result<(), sqlx::Error> {
        tx.commit().await
    }

    fn classify(&self, error: &sqlx::Error) -> BatchFailure {
        classify_batch_error(error)
    }
}

/// The multi-row `INSERT` of created tasks.
fn insert_tasks(chunk: &[PlannedTask]) -> QueryBuilder<Postgres> {
    let mut query = QueryBuilder::new(
        "INSERT INTO tasks (id, tenant_id, agent_id, agent_revision, context_id, parent_task_id, \
         state, status_message, started_by, last_seq, created_at, updated_at) ",
    );
    query.push_values(chunk, |mut row, planned| {
        let task = &planned.task;
        row.push_bind(*task.id.as_uuid())
            .push_bind(*task.tenant_id.as_uuid())
            .push_bind(*task.agent_id.as_uuid())
            .push_bind(i64::from(task.agent_revision))
            .push_bind(task.context_id.as_str())
            .push_bind(task.parent_task_id.map(|p| *p.as_uuid()))
            .push_bind(task.state.as_str())
            .push_bind(task.status_message.as_deref())
            .push_bind(task.started_by.as_deref())
            .push_bind(to_i64(planned.last_seq))
            .push_bind(task.created_at)
            .push_bind(task.updated_at);
    });
    query
}

/// The one `UPDATE` of changed tasks; a `VALUES` list names its columns `column1`, `column2`, ….
fn update_tasks(chunk: &[PlannedTask]) -> QueryBuilder<Postgres> {
    let mut query = QueryBuilder::new(
        "UPDATE tasks SET state = v.column2, status_message = v.column3, \
         last_seq = v.column4, updated_at = v.column5 FROM (",
    );
    query.push_values(chunk, |mut row, planned| {
        let task = &planned.task;
        row.push_bind(*task.id.as_uuid())
            .push_bind(task.state.as_str())
            .push_bind(task.status_message.as_deref())
            .push_bind(to_i64(planned.last_seq))
            .push_bind(task.updated_at);
    });
    query.push(") AS v WHERE tasks.id = v.column1");
    query
}

/// The multi-row `INSERT` of a batch's events.
fn insert_events(chunk: &[EventRow<'_>]) -> QueryBuilder<Postgres> {
    let mut query = QueryBuilder::new(
        "INSERT INTO task_events (task_id, tenant_id, seq, kind, payload, created_at) ",
    );
    query.push_values(chunk, |mut row, event| {
        row.push_bind(*event.task_id.as_uuid())
            .push_bind(*event.tenant_id.as_uuid())
            .push_bind(to_i64(event.seq))
            .push_bind(event.kind.as_str())
            .push_bind(Json(&*event.payload))
            .push_bind(event.created_at);
    });
    query
}
