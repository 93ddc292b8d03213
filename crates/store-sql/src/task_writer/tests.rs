//! The batching itself, on an in-memory stand-in for the database whose transactions can be
//! held back, so batches form deterministically. The SQL is covered by the conformance suite on
//! both backends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::sync::Mutex as StdMutex;
use std::time::Duration;

use nexus_core::AgentId;
use serde_json::json;
use tokio::sync::Semaphore;

use super::*;
use crate::TaskRow;

/// What the stand-in has committed.
#[derive(Debug, Default, Clone)]
struct Data {
    tasks: HashMap<Uuid, PlannedTask>,
    events: HashMap<(Uuid, u64), (TaskEventKind, serde_json::Value)>,
}

#[derive(Debug, Default)]
struct Stats {
    /// Transactions begun.
    begun: usize,
    /// Per `write` call: (inserted tasks, updated tasks, events).
    writes: Vec<(usize, usize, usize)>,
}

/// An in-memory [`TaskBatchSql`]: a transaction works on a copy of the data, committed whole.
/// Creates for `doomed` agents fail the statement, like a foreign key would; so do taken
/// task ids and event numbers, like the primary keys.
#[derive(Debug, Clone)]
struct Mock {
    data: Arc<StdMutex<Data>>,
    stats: Arc<StdMutex<Stats>>,
    /// One permit per transaction allowed to begin.
    gate: Arc<Semaphore>,
    doomed: Arc<StdMutex<HashSet<AgentId>>>,
    /// Commits after the first this many fail as if the connection dropped.
    commits_before_loss: Arc<std::sync::atomic::AtomicUsize>,
}

impl Mock {
    fn new() -> Self {
        Self {
            data: Arc::default(),
            stats: Arc::default(),
            gate: Arc::new(Semaphore::new(0)),
            doomed: Arc::default(),
            commits_before_loss: Arc::new(std::sync::atomic::AtomicUsize::new(usize::MAX)),
        }
    }

    fn open(&self) {
        self.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    }

    fn begun(&self) -> usize {
        self.stats.lock().unwrap().begun
    }

    fn writes(&self) -> Vec<(usize, usize, usize)> {
        self.stats.lock().unwrap().writes.clone()
    }

    /// Waits until `n` transactions have begun (the loop is blocked in the last one).
    async fn wait_begun(&self, n: usize) {
        for _ in 0..1000 {
            if self.begun() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("the loop never began transaction {n}");
    }
}

fn failed(what: &str) -> sqlx::Error {
    sqlx::Error::InvalidArgument(what.to_owned())
}

#[async_trait]
impl TaskBatchSql for Mock {
    type Tx = Data;
    type Error = sqlx::Error;

    fn classify(&self, error: &sqlx::Error) -> BatchFailure {
        match error {
            sqlx::Error::InvalidArgument(what) if what == "foreign key" => {
                BatchFailure::MissingAgent
            }
            sqlx::Error::InvalidArgument(what) if what.starts_with("unique") => {
                BatchFailure::TakenId
            }
            other => BatchFailure::Database(StoreError::Backend(other.to_string())),
        }
    }

    async fn begin(&self) -> Result<Data, sqlx::Error> {
        self.stats.lock().unwrap().begun += 1;
        self.gate.acquire().await.unwrap().forget();
        Ok(self.data.lock().unwrap().clone())
    }

    async fn lock_tasks(
        &self,
        tx: &mut Data,
        ids: &[Uuid],
    ) -> Result<Vec<LockedTaskRow>, sqlx::Error> {
        assert!(
            ids.windows(2).all(|pair| pair[0] < pair[1]),
            "sorted, distinct"
        );
        Ok(ids
            .iter()
            .filter_map(|id| tx.tasks.get(id))
            .map(|planned| {
                let task = planned.task.clone();
                LockedTaskRow {
                    task: TaskRow {
                        id: *task.id.as_uuid(),
                        tenant_id: *task.tenant_id.as_uuid(),
                        agent_id: *task.agent_id.as_uuid(),
                        agent_revision: i64::from(task.agent_revision),
                        context_id: task.context_id,
                        parent_task_id: task.parent_task_id.map(|id| *id.as_uuid()),
                        state: task.state.as_str().to_owned(),
                        status_message: task.status_message,
                        started_by: task.started_by,
                        created_at: task.created_at,
                        updated_at: task.updated_at,
                    },
                    last_seq: i64::try_from(planned.last_seq).unwrap(),
                }
            })
            .collect())
    }

    async fn write(&self, tx: &mut Data, writes: &BatchWrites<'_>) -> Result<(), sqlx::Error> {
        self.stats.lock().unwrap().writes.push((
            writes.inserts.len(),
            writes.updates.len(),
            writes.events.len(),
        ));
        let doomed = self.doomed.lock().unwrap().clone();
        for row in &writes.inserts {
            if doomed.contains(&row.task.agent_id) {
                return Err(failed("foreign key"));
            }
            if tx
                .tasks
                .insert(*row.task.id.as_uuid(), row.clone())
                .is_some()
            {
                return Err(failed("unique task id"));
            }
        }
        for row in &writes.updates {
            let stored = tx.tasks.get_mut(row.task.id.as_uuid()).unwrap();
            assert!(row.last_seq >= stored.last_seq);
            *stored = row.clone();
        }
        for event in &writes.events {
            let key = (*event.task_id.as_uuid(), event.seq);
            let value = (event.kind, event.payload.clone().into_owned());
            if tx.events.insert(key, value).is_some() {
                return Err(failed("unique event seq"));
            }
        }
        Ok(())
    }

    async fn commit(&self, tx: Data) -> Result<(), sqlx::Error> {
        let left = self
            .commits_before_loss
            .fetch_update(
                std::sync::atomic::Ordering::SeqCst,
                std::sync::atomic::Ordering::SeqCst,
                |left| Some(left.saturating_sub(1)),
            )
            .unwrap_or(0);
        if left == 0 {
            return Err(failed("connection lost"));
        }
        *self.data.lock().unwrap() = tx;
        Ok(())
    }
}

fn new_task(agent: AgentId) -> NewTask {
    NewTask {
        id: TaskId::new(),
        agent_id: agent,
        agent_revision: 1,
        context_id: "s".into(),
        parent_task_id: None,
        started_by: "key:test".into(),
        start_working: false,
    }
}

fn log(text: &str) -> NewTaskEvent {
    NewTaskEvent {
        kind: TaskEventKind::Log,
        payload: json!({ "text": text }),
    }
}

/// Holds the loop in a first transaction, runs `queue` (whose writes pile up behind it), lets
/// everything through.
async fn behind_a_held_transaction<F: std::future::Future>(
    mock: &Mock,
    writer: &TaskWriter,
    tenant: TenantId,
    queue: F,
) -> F::Output {
    let opener = {
        let writer = writer.clone();
        tokio::spawn(async move {
            writer
                .create(tenant, new_task(AgentId::new()), vec![])
                .await
        })
    };
    mock.wait_begun(1).await;
    let output = queue.await;
    mock.open();
    opener.await.unwrap().unwrap();
    output
}

type Boxed<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// Spawns each write in order (on the current-thread runtime they enqueue in that order) and
/// gives them time to enqueue.
async fn spawn_in_order<F>(
    writes: impl IntoIterator<Item = F>,
) -> Vec<tokio::task::JoinHandle<F::Output>>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles = writes.into_iter().map(tokio::spawn).collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    handles
}

#[tokio::test]
async fn queued_writes_share_one_transaction() {
    let mock = Mock::new();
    let writer = TaskWriter::spawn(mock.clone()).unwrap();
    let tenant = TenantId::new();
    let agent = AgentId::new();
    let handles = behind_a_held_transaction(&mock, &writer, tenant, async {
        let writes = (0..50)
            .map(|i| {
                let writer = writer.clone();
                async move {
                    writer
                        .create(tenant, new_task(agent), vec![log(&format!("{i}"))])
                        .await
                }
            })
            .collect::<Vec<_>>();
        spawn_in_order(writes).await
    })
    .await;
    for handle in handles {
        let (task, events) = handle.await.unwrap().unwrap();
        assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(
            mock.data.lock().unwrap().tasks[task.id.as_uuid()].task,
            task
        );
    }
    // The opener alone, then the fifty together: one insert of 50 tasks and 100 events.
    assert_eq!(mock.writes(), [(1, 0, 1), (50, 0, 100)]);
    assert_eq!(mock.begun(), 2);
}

#[tokio::test]
async fn a_lone_write_runs_at_once() {
    let mock = Mock::new();
    mock.open();
    let writer = TaskWriter::spawn(mock.clone()).unwrap();
    let started = std::time::Instant::now();
    writer
        .create(TenantId::new(), new_task(AgentId::new()), vec![])
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(mock.begun(), 1);
}

#[tokio::test]
async fn writes_to_one_task_in_one_batch_apply_in_queue_order() {
    let mock = Mock::new();
    let writer = TaskWriter::spawn(mock.clone()).unwrap();
    let tenant = TenantId::new();
    let new = new_task(AgentId::new());
    let id = new.id;
    let create = |new: NewTask| -> Boxed<String> {
        let writer = writer.clone();
        Box::pin(async move {
            match writer.create(tenant, new, vec![log("hi")]).await {
                Ok((task, events)) => format!("{} {:?}", task.state, seqs(&events)),
                Err(e) => error_kind(&e),
            }
        })
    };
    let transition = |to: TaskState, tenant: TenantId| -> Boxed<String> {
        let writer = writer.clone();
        Box::pin(async move {
            match writer
                .transition(tenant, id, to, Some(to.to_string()), vec![])
                .await
            {
                Ok((task, events)) => format!("{} {:?}", task.state, seqs(&events)),
                Err(e) => error_kind(&e),
            }
        })
    };
    let append = |n: usize| -> Boxed<String> {
        let writer = writer.clone();
        Box::pin(async move {
            match writer.append(tenant, id, vec![log("x"); n]).await {
                Ok(events) => format!("appended {:?}", seqs(&events)),
                Err(e) => error_kind(&e),
            }
        })
    };
    let handles = behind_a_held_transaction(&mock, &writer, tenant, async {
        spawn_in_order(vec![
            // Before the create in the queue: no such task yet.
            append(1),
            create(new.clone()),
            transition(TaskState::Working, tenant),
            append(2),
            // Another tenant's view of the task: absent.
            transition(TaskState::Failed, TenantId::new()),
            append(0),
            transition(TaskState::Completed, tenant),
            transition(TaskState::Canceled, tenant),
            append(1),
            create(new.clone()),
        ])
        .await
    })
    .await;
    let mut outcomes = Vec::new();
    for handle in handles {
        outcomes.push(handle.await.unwrap());
    }
    assert_eq!(
        outcomes,
        [
            "not found",
            "submitted [1, 2]",
            "working [3]",
            "appended [4, 5]",
            "not found",
            "appended []",
            "completed [6]",
            "illegal transition",
            "task ended",
            "already exists",
        ]
    );
    // One row, inserted in its final state; one insert for the six events.
    assert_eq!(mock.writes()[1], (1, 0, 6));
    let data = mock.data.lock().unwrap();
    let stored = &data.tasks[id.as_uuid()];
    assert_eq!(stored.task.state, TaskState::Completed);
    assert_eq!(stored.task.status_message.as_deref(), Some("completed"));
    assert_eq!(stored.last_seq, 6);
    let statuses: Vec<_> = (1..=6)
        .filter_map(|seq| data.events.get(&(*id.as_uuid(), seq)))
        .filter(|(kind, _)| *kind == TaskEventKind::Status)
        .map(|(_, payload)| payload["state"].clone())
        .collect();
    assert_eq!(
        statuses,
        [json!("submitted"), json!("working"), json!("completed")]
    );
}

#[tokio::test]
async fn a_batch_that_fails_as_a_whole_runs_again_write_by_write() {
    let mock = Mock::new();
    let writer = TaskWriter::spawn(mock.clone()).unwrap();
    let tenant = TenantId::new();
    let good = AgentId::new();
    let doomed = AgentId::new();
    mock.doomed.lock().unwrap().insert(doomed);
    let handles = behind_a_held_transaction(&mock, &writer, tenant, async {
        let writes = [good, good, doomed, good]
            .into_iter()
            .map(|agent| {
                let writer = writer.clone();
                async move { writer.create(tenant, new_task(agent), vec![]).await }
            })
            .collect::<Vec<_>>();
        spawn_in_order(writes).await
    })
    .await;
    let mut outcomes = Vec::new();
    for handle in handles {
        outcomes.push(handle.await.unwrap().map(|(task, _)| task.agent_id));
    }
    assert_eq!(outcomes[0].as_ref().unwrap(), &good);
    assert_eq!(outcomes[1].as_ref().unwrap(), &good);
    // The doomed write alone fails, named as the missing agent it is.
    assert!(
        matches!(outcomes[2], Err(StoreError::NotFound { kind: "agent", .. })),
        "{:?}",
        outcomes[2]
    );
    assert_eq!(outcomes[3].as_ref().unwrap(), &good);
    // The opener; the batch of four, rolled back; then each write alone.
    assert_eq!(
        mock.writes(),
        [
            (1, 0, 1),
            (4, 0, 4),
            (1, 0, 1),
            (1, 0, 1),
            (1, 0, 1),
            (1, 0, 1)
        ]
    );
    let data = mock.data.lock().unwrap();
    assert_eq!(data.tasks.len(), 4, "the opener and the three good creates");
    assert!(data.tasks.values().all(|row| row.task.agent_id != doomed));
}

#[tokio::test]
async fn close_finishes_queued_writes_then_refuses_more() {
    let mock = Mock::new();
    let writer = TaskWriter::spawn(mock.clone()).unwrap();
    let tenant = TenantId::new();
    let (handles, closing) = behind_a_held_transaction(&mock, &writer, tenant, async {
        let writes = (0..3)
            .map(|_| {
                let writer = writer.clone();
                async move {
                    writer
                        .create(tenant, new_task(AgentId::new()), vec![])
                        .await
                }
            })
            .collect::<Vec<_>>();
        let handles = spawn_in_order(writes).await;
        let closing = {
            let writer = writer.clone();
            tokio::spawn(async move { writer.close().await })
        };
        (handles, closing)
    })
    .await;
    closing.await.unwrap();
    for handle in handles {
        handle.await.unwrap().unwrap();
    }
    let late = writer
        .create(tenant, new_task(AgentId::new()), vec![])
        .await;
    assert!(matches!(late, Err(StoreError::Unavailable(_))), "{late:?}");
    // Closing twice is harmless.
    writer.close().await;
}

fn seqs(events: &[TaskEvent]) -> Vec<u64> {
    events.iter().map(|e| e.seq).collect()
}

fn error_kind(error: &StoreError) -> String {
    match error {
        StoreError::NotFound { .. } => "not found",
        StoreError::AlreadyExists { .. } => "already exists",
        StoreError::IllegalTransition(_) => "illegal transition",
        StoreError::TaskEnded(_) => "task ended",
        other => panic!("{other:?}"),
    }
    .to_owned()
}

/// A failure that is not one write's fault (here, a commit on a lost connection) fails the
/// whole batch at once: no write-by-write retry that could stall or apply a write twice.
#[tokio::test]
async fn a_batch_lost_with_its_connection_fails_without_retrying() {
    let mock = Mock::new();
    let writer = TaskWriter::spawn(mock.clone()).unwrap();
    let tenant = TenantId::new();
    // The opener commits; the batch behind it finds the connection gone.
    mock.commits_before_loss
        .store(1, std::sync::atomic::Ordering::SeqCst);
    let handles = behind_a_held_transaction(&mock, &writer, tenant, async {
        let writes = (0..3)
            .map(|_| {
                let writer = writer.clone();
                async move {
                    writer
                        .create(tenant, new_task(AgentId::new()), vec![])
                        .await
                }
            })
            .collect::<Vec<_>>();
        spawn_in_order(writes).await
    })
    .await;
    for handle in handles {
        assert!(matches!(handle.await.unwrap(), Err(StoreError::Backend(_))));
    }
    // The opener, then the batch of three once: nothing written one by one.
    assert_eq!(mock.writes().len(), 2, "{:?}", mock.writes());
    assert_eq!(mock.writes()[1], (3, 0, 3));
}

fn working_task(agent: AgentId) -> NewTask {
    NewTask {
        start_working: true,
        ..new_task(agent)
    }
}

fn completed() -> TaskEnd {
    TaskEnd {
        state: TaskState::Completed,
        message: None,
        events: vec![log("done")],
    }
}

#[tokio::test]
async fn a_group_is_refused_whole_when_one_of_its_writes_is() {
    let mock = Mock::new();
    let writer = TaskWriter::spawn(mock.clone()).unwrap();
    let tenant = TenantId::new();
    let agent = AgentId::new();
    let taken = working_task(agent);
    let fresh = working_task(agent);
    let handles = behind_a_held_transaction(&mock, &writer, tenant, async {
        let writes: Vec<Boxed<Result<TaskWritten>>> = vec![
            Box::pin({
                let (writer, new) = (writer.clone(), taken.clone());
                async move { writer.create(tenant, new, vec![]).await }
            }),
            // The same id again, created and ended: its creation is refused in the batch, and
            // its end must not touch the task that has the id.
            Box::pin({
                let (writer, new) = (writer.clone(), taken.clone());
                async move {
                    let (created, _) = writer
                        .create_ended(tenant, new, vec![], completed())
                        .await?;
                    Ok(created)
                }
            }),
            Box::pin({
                let (writer, new) = (writer.clone(), fresh.clone());
                async move {
                    let (_, ended) = writer
                        .create_ended(tenant, new, vec![], completed())
                        .await?;
                    Ok(ended)
                }
            }),
        ];
        spawn_in_order(writes).await
    })
    .await;
    let mut outcomes = Vec::new();
    for handle in handles {
        outcomes.push(handle.await.unwrap());
    }
    assert_eq!(outcomes[0].as_ref().unwrap().0.state, TaskState::Working);
    assert!(
        matches!(
            outcomes[1],
            Err(StoreError::AlreadyExists { kind: "task", .. })
        ),
        "{:?}",
        outcomes[1]
    );
    let (ended, events) = outcomes[2].as_ref().unwrap();
    assert_eq!(ended.state, TaskState::Completed);
    assert_eq!(seqs(events), [3, 4]);
    // One batch: the two creations inserted (the fresh one already ended), no update, and
    // the events of the accepted writes only.
    assert_eq!(mock.writes(), [(1, 0, 1), (2, 0, 6)]);
    let data = mock.data.lock().unwrap();
    let row = &data.tasks[taken.id.as_uuid()];
    assert_eq!((row.task.state, row.last_seq), (TaskState::Working, 2));
    assert_eq!(
        data.tasks[fresh.id.as_uuid()].task.state,
        TaskState::Completed
    );
}

#[tokio::test]
async fn a_failed_batch_runs_its_groups_again_each_whole() {
    let mock = Mock::new();
    let writer = TaskWriter::spawn(mock.clone()).unwrap();
    let tenant = TenantId::new();
    let good = AgentId::new();
    let doomed = AgentId::new();
    mock.doomed.lock().unwrap().insert(doomed);
    let handles = behind_a_held_transaction(&mock, &writer, tenant, async {
        let writes = [doomed, good]
            .into_iter()
            .map(|agent| {
                let writer = writer.clone();
                async move {
                    writer
                        .create_ended(tenant, working_task(agent), vec![], completed())
                        .await
                }
            })
            .collect::<Vec<_>>();
        spawn_in_order(writes).await
    })
    .await;
    let mut outcomes = Vec::new();
    for handle in handles {
        outcomes.push(handle.await.unwrap());
    }
    assert!(
        matches!(outcomes[0], Err(StoreError::NotFound { kind: "agent", .. })),
        "{:?}",
        outcomes[0]
    );
    let ((created, first), (ended, last)) = outcomes[1].as_ref().unwrap();
    assert_eq!(created.state, TaskState::Working);
    assert_eq!(ended.state, TaskState::Completed);
    assert_eq!(seqs(first), [1, 2]);
    assert_eq!(seqs(last), [3, 4]);
    // The opener; both groups, rolled back; then each group in a transaction of its own.
    assert_eq!(mock.writes(), [(1, 0, 1), (2, 0, 8), (1, 0, 4), (1, 0, 4)]);
    let data = mock.data.lock().unwrap();
    assert_eq!(data.tasks.len(), 2, "the opener and the good task");
    assert!(data.tasks.values().all(|row| row.task.agent_id != doomed));
}

#[tokio::test]
async fn an_end_the_state_machine_refuses_queues_nothing() {
    let mock = Mock::new();
    mock.open();
    let writer = TaskWriter::spawn(mock.clone()).unwrap();
    let end = TaskEnd {
        state: TaskState::Working,
        ..completed()
    };
    let refused = writer
        .create_ended(TenantId::new(), working_task(AgentId::new()), vec![], end)
        .await;
    assert!(
        matches!(refused, Err(StoreError::IllegalTransition(_))),
        "{refused:?}"
    );
    assert_eq!(mock.begun(), 0);
}
