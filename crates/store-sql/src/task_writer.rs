//! Group commit of task writes: [`TaskWriter`].
//!
//! Every invocation writes its task at least twice (created `working` with the user message;
//! the outcome with the reply and usage), and streaming agents append events in between. Run
//! as one transaction each, those writes cost four or five statements apiece and one commit,
//! while the database takes one writer at a time. So `create_task`, `transition_task` and
//! `append_task_events` are queued instead to one writer loop per store, which takes everything
//! pending (up to [`MAX_TASK_WRITES_PER_BATCH`]) and runs it in one transaction:
//!
//! 1. read the rows of the tasks the batch transitions or appends to (locked with
//!    `FOR UPDATE` on PostgreSQL), full rows, so nothing is read back later;
//! 2. insert the created tasks;
//! 3. update the changed ones;
//! 4. insert every event of the batch.
//!
//! The state machine is checked in Rust, inside the transaction, between steps 1 and 2. The
//! SQL is each store's own ([`TaskBatchSql`]): PostgreSQL sends each step as one multi-row
//! statement, to save round trips; SQLite runs the batch on the loop's own thread, on a
//! connection of its own, one prepared statement per row ([`TaskWriter::spawn_on_own_thread`]).
//!
//! **Semantics** are those of running the batch's writes one after another in queue order, each
//! in its own transaction: writes to one task in one batch see each other (a create then a
//! transition of the same id; two racing terminal transitions: the first wins, the second is an
//! `IllegalTransition`), sequence numbers stay gapless per task, and a write that the state
//! machine refuses (or that names no task) fails alone, for its caller only. If the batch's SQL
//! fails as a whole (a create for an agent deleted meanwhile violates a foreign key, a task id
//! is taken, the connection drops), the transaction is rolled back and the batch's writes are
//! run again one by one, so only the bad one fails. Each caller gets exactly its own result:
//! the task row and its events as stored, with their sequence numbers.
//!
//! **Latency**: the loop never waits to fill a batch. A lone write runs as soon as it arrives;
//! batches form only from writes that queued while the previous batch was in the database.
//!
//! **Lifetime**: the loop is spawned when the store opens and stops on [`TaskWriter::close`]
//! (after finishing what is queued; later writes fail as `Unavailable`) or when the last handle
//! is dropped. A write that was queued is carried out even if its caller stops waiting.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use nexus_core::page::now;
use nexus_core::{NewTask, Task, TaskEvent, TaskEventKind, TaskId, TaskState, TenantId};
use nexus_store::{NewTaskEvent, Result, StoreError, TaskEnd, TaskWritten};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::{LockedTaskRow, status_payload, to_u64};

/// Most writes committed in one transaction. Bounds the bound parameters of the batch's
/// statements (11 per created task, 5 per changed task, ids in the `IN` list: far below
/// SQLite's 32,766 and PostgreSQL's 65,535; events are chunked separately) and how long one
/// transaction holds the writer connection (and, on PostgreSQL, the row locks), so other writes
/// (deploys, agent state) interleave. A batch's fixed cost (a transaction, its commit and, on
/// PostgreSQL, a round trip per statement) is already small per write at a few dozen writes;
/// larger batches would only lengthen the transaction. Measured under load on 2 cores: 7 writes per batch on average at 16 concurrent
/// requests, 19 at 64, so the cap is rarely reached.
pub const MAX_TASK_WRITES_PER_BATCH: usize = 256;

/// Writes that may wait for the loop before callers wait to enqueue (back-pressure): four full
/// batches, so the queue never starves the loop but cannot grow without bound under overload.
pub const TASK_WRITE_QUEUE: usize = 4 * MAX_TASK_WRITES_PER_BATCH;

/// A `tasks` row as a batch leaves it: the task and its last event number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedTask {
    /// The task as it is at the end of the batch.
    pub task: Task,
    /// Its last event number at the end of the batch.
    pub last_seq: u64,
}

/// One event a batch appends.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow<'a> {
    pub task_id: TaskId,
    pub tenant_id: TenantId,
    pub seq: u64,
    pub kind: TaskEventKind,
    pub payload: Cow<'a, serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

/// Everything one batch writes, for [`TaskBatchSql::write`].
#[derive(Debug, Default)]
pub struct BatchWrites<'a> {
    /// Tasks created by the batch, in their state at its end, in creation order.
    pub inserts: Vec<PlannedTask>,
    /// Existing tasks the batch changed (state, status message, last event number, update
    /// time), in their state at its end.
    pub updates: Vec<PlannedTask>,
    /// Every event the batch appends.
    pub events: Vec<EventRow<'a>>,
}

impl BatchWrites<'_> {
    /// Whether the batch writes nothing (all its writes were refused).
    pub fn is_empty(&self) -> bool {
        self.inserts.is_empty() && self.updates.is_empty() && self.events.is_empty()
    }
}

/// The SQL of one database for [`TaskWriter`]: a transaction, the rows it locks, the rows it
/// writes. Errors are the driver's own, told apart by [`classify`](Self::classify), so the
/// writer can tell a batch that failed as a whole and name the cause per write.
#[async_trait]
pub trait TaskBatchSql: Send + Sync + 'static {
    /// An open transaction.
    type Tx: Send;
    /// The driver's error.
    type Error: fmt::Display + Send;
    /// Begins a transaction.
    async fn begin(&self) -> Result<Self::Tx, Self::Error>;
    /// The rows of the tasks with these ids (sorted, distinct), locked until the transaction
    /// ends where the database has row locks. Absent ids are left out.
    async fn lock_tasks(
        &self,
        tx: &mut Self::Tx,
        ids: &[Uuid],
    ) -> Result<Vec<LockedTaskRow>, Self::Error>;
    /// Writes the batch's rows.
    async fn write(&self, tx: &mut Self::Tx, writes: &BatchWrites<'_>) -> Result<(), Self::Error>;
    /// Commits.
    async fn commit(&self, tx: Self::Tx) -> Result<(), Self::Error>;
    /// What `error` means for the batch's writes.
    fn classify(&self, error: &Self::Error) -> BatchFailure;
}

/// What a batch's failed SQL means for its writes ([`TaskBatchSql::classify`]).
#[derive(Debug)]
pub enum BatchFailure {
    /// A created task's agent does not exist (a foreign key): one write's fault.
    MissingAgent,
    /// A created task's id is taken (a primary key): one write's fault.
    TakenId,
    /// The database or the connection failed (or a commit's outcome is unknown): the whole
    /// batch fails with this error.
    Database(StoreError),
}

impl BatchFailure {
    /// Whether the failure comes from one write's data rather than from the database or the
    /// connection; only then is a failed batch retried write by write.
    fn belongs_to_one_write(&self) -> bool {
        matches!(self, Self::MissingAgent | Self::TakenId)
    }
}

/// The handle of a store's task-write loop: queues writes and waits for their results.
/// Cloning shares the loop.
#[derive(Debug, Clone)]
pub struct TaskWriter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    sender: mpsc::Sender<Message>,
    /// Resolves when the loop has ended; taken by the first `close`.
    ended: Mutex<Option<oneshot::Receiver<()>>>,
}

impl TaskWriter {
    /// Spawns the loop on the current tokio runtime, writing through `sql`.
    pub fn spawn<S: TaskBatchSql>(sql: S) -> Result<Self> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| {
            StoreError::Unavailable(format!("no async runtime for the task writer: {e}"))
        })?;
        let (sender, receiver) = mpsc::channel(TASK_WRITE_QUEUE);
        let (ended, ended_receiver) = oneshot::channel();
        runtime.spawn(async move {
            write_loop(sql, receiver).await;
            // Nobody waiting for the end is fine.
            let _ = ended.send(());
        });
        Ok(Self::new(sender, ended_receiver))
    }

    /// Starts the loop on a thread of its own, with its own single-threaded runtime, writing
    /// through `sql`. For SQL that runs in process and blocks the thread (SQLite's), which
    /// must stay off the server's runtime.
    ///
    /// The loop runs one batch at a time, so its latency bounds throughput; on its own thread
    /// it never waits behind the request tasks ready on the server's runtime
    /// (docs/BENCHMARKS.md).
    pub fn spawn_on_own_thread<S: TaskBatchSql>(sql: S) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot start the task writer's runtime: {e}"))
            })?;
        let (sender, receiver) = mpsc::channel(TASK_WRITE_QUEUE);
        let (ended, ended_receiver) = oneshot::channel();
        std::thread::Builder::new()
            .name("nexus-task-writer".into())
            .spawn(move || {
                runtime.block_on(write_loop(sql, receiver));
                // Nobody waiting for the end is fine.
                let _ = ended.send(());
            })
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot start the task writer's thread: {e}"))
            })?;
        Ok(Self::new(sender, ended_receiver))
    }

    fn new(sender: mpsc::Sender<Message>, ended: oneshot::Receiver<()>) -> Self {
        Self {
            inner: Arc::new(Inner {
                sender,
                ended: Mutex::new(Some(ended)),
            }),
        }
    }

    /// [`TaskStore::create_task`](nexus_store::TaskStore::create_task), group-committed.
    pub async fn create(
        &self,
        tenant: TenantId,
        new: NewTask,
        events: Vec<NewTaskEvent>,
    ) -> Result<(Task, Vec<TaskEvent>)> {
        self.queue_create(tenant, new, events).await?.await
    }

    /// [`TaskStore::queue_create_task`](nexus_store::TaskStore::queue_create_task): returns
    /// once the creation is in the queue, ahead of whatever is queued after.
    pub async fn queue_create(
        &self,
        tenant: TenantId,
        new: NewTask,
        events: Vec<NewTaskEvent>,
    ) -> Result<nexus_store::QueuedCreate> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(Pending {
            tenant,
            op: Op::Create { new },
            events,
            reply: Reply::Task(reply),
        })
        .await?;
        Ok(Box::pin(
            async move { answer.await.map_err(|_| stopped())? },
        ))
    }

    /// [`TaskStore::create_ended_task`](nexus_store::TaskStore::create_ended_task):
    /// the creation and the transition go to the loop as one group, which is always committed
    /// in one transaction, whole or not at all.
    pub async fn create_ended(
        &self,
        tenant: TenantId,
        new: NewTask,
        events: Vec<NewTaskEvent>,
        end: TaskEnd,
    ) -> Result<(TaskWritten, TaskWritten)> {
        // Nothing else can write the task between the two (the group is never split), so the
        // state machine can be checked here, before anything is queued.
        let created = if new.start_working {
            TaskState::Working
        } else {
            TaskState::Submitted
        };
        created.transition(end.state)?;
        let id = new.id;
        let (create_reply, created) = oneshot::channel();
        let (end_reply, ended) = oneshot::channel();
        self.inner
            .sender
            .send(Message::Group(vec![
                Pending {
                    tenant,
                    op: Op::Create { new },
                    events,
                    reply: Reply::Task(create_reply),
                },
                Pending {
                    tenant,
                    op: Op::Transition {
                        id,
                        to: end.state,
                        message: end.message,
                    },
                    events: end.events,
                    reply: Reply::Task(end_reply),
                },
            ]))
            .await
            .map_err(|_| stopped())?;
        let created = created.await.map_err(|_| stopped())?;
        let ended = ended.await.map_err(|_| stopped())?;
        // A refused creation refuses its end too; the creation says why.
        Ok((created?, ended?))
    }

    /// [`TaskStore::transition_task`](nexus_store::TaskStore::transition_task), group-committed.
    pub async fn transition(
        &self,
        tenant: TenantId,
        id: TaskId,
        to: TaskState,
        message: Option<String>,
        events: Vec<NewTaskEvent>,
    ) -> Result<(Task, Vec<TaskEvent>)> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(Pending {
            tenant,
            op: Op::Transition { id, to, message },
            events,
            reply: Reply::Task(reply),
        })
        .await?;
        answer.await.map_err(|_| stopped())?
    }

    /// [`TaskStore::append_task_events`](nexus_store::TaskStore::append_task_events),
    /// group-committed.
    pub async fn append(
        &self,
        tenant: TenantId,
        id: TaskId,
        events: Vec<NewTaskEvent>,
    ) -> Result<Vec<TaskEvent>> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(Pending {
            tenant,
            op: Op::Append { id },
            events,
            reply: Reply::Events(reply),
        })
        .await?;
        answer.await.map_err(|_| stopped())?
    }

    /// Finishes the queued writes and stops the loop; later writes fail as `Unavailable`.
    /// Returns once the loop has ended, so the caller may close the pool after it.
    pub async fn close(&self) {
        // Fails only if the loop is gone already.
        let _ = self.inner.sender.send(Message::Close).await;
        let ended = match self.inner.ended.lock() {
            Ok(mut ended) => ended.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(ended) = ended {
            // A loop that panicked has nothing left to finish.
            let _ = ended.await;
        }
    }

    async fn enqueue(&self, pending: Pending) -> Result<()> {
        self.inner
            .sender
            .send(Message::Write(pending))
            .await
            .map_err(|_| stopped())
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the store is closed (task writer stopped)".into())
}

#[derive(Debug)]
enum Message {
    Write(Pending),
    /// Writes that commit together or not at all, in this order, with nothing between them.
    Group(Vec<Pending>),
    /// Finish what is queued, accept nothing more, stop.
    Close,
}

/// A queued write with the channel for its result.
#[derive(Debug)]
struct Pending {
    tenant: TenantId,
    op: Op,
    /// The caller's events; the store adds `status` events around them (see [`Pending::log`]).
    events: Vec<NewTaskEvent>,
    reply: Reply,
}

#[derive(Debug)]
enum Op {
    Create {
        new: NewTask,
    },
    Transition {
        id: TaskId,
        to: TaskState,
        message: Option<String>,
    },
    Append {
        id: TaskId,
    },
}

enum Reply {
    Task(oneshot::Sender<Result<(Task, Vec<TaskEvent>)>>),
    Events(oneshot::Sender<Result<Vec<TaskEvent>>>),
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Task(_) => "Reply::Task",
            Self::Events(_) => "Reply::Events",
        })
    }
}

/// What a write that the state machine accepted will store: the task afterwards and the
/// sequence number of its first event.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Plan {
    task: Task,
    first_seq: u64,
}

impl Pending {
    fn task_id(&self) -> TaskId {
        match &self.op {
            Op::Create { new } => new.id,
            Op::Transition { id, .. } | Op::Append { id } => *id,
        }
    }

    /// The `status` events the store writes before and after the caller's events: a task's
    /// log starts with `submitted` (then `working` after the creation events when created
    /// working); a transition logs its status change after the events it ends with.
    fn statuses(&self) -> (Option<serde_json::Value>, Option<serde_json::Value>) {
        match &self.op {
            Op::Create { new } => (
                Some(status_payload(TaskState::Submitted, None)),
                new.start_working
                    .then(|| status_payload(TaskState::Working, None)),
            ),
            Op::Transition { to, message, .. } => {
                (None, Some(status_payload(*to, message.as_deref())))
            }
            Op::Append { .. } => (None, None),
        }
    }

    /// How many events the write appends: the caller's and the [`statuses`](Self::statuses).
    fn event_count(&self) -> u64 {
        let statuses = match &self.op {
            Op::Create { new } => 1 + usize::from(new.start_working),
            Op::Transition { .. } => 1,
            Op::Append { .. } => 0,
        };
        (self.events.len() + statuses) as u64
    }

    /// The write's events as they go into the log, borrowing the caller's payloads.
    fn log(&self, first_seq: u64, at: DateTime<Utc>) -> Vec<EventRow<'_>> {
        let (before, after) = self.statuses();
        let status = |payload| (TaskEventKind::Status, Cow::Owned(payload));
        before
            .map(status)
            .into_iter()
            .chain(
                self.events
                    .iter()
                    .map(|event| (event.kind, Cow::Borrowed(&event.payload))),
            )
            .chain(after.map(status))
            .zip(first_seq..)
            .map(|((kind, payload), seq)| EventRow {
                task_id: self.task_id(),
                tenant_id: self.tenant,
                seq,
                kind,
                payload,
                created_at: at,
            })
            .collect()
    }

    /// Sends the result of the write to its caller: on success, the events as stored (built
    /// the way [`log`](Self::log) built them for the database, moving the caller's payloads).
    fn answer(self, planned: Result<Plan>, at: DateTime<Utc>) {
        let (before, after) = self.statuses();
        let task_id = self.task_id();
        let result = planned.map(|plan| {
            let status = |payload| (TaskEventKind::Status, payload);
            let events = before
                .map(status)
                .into_iter()
                .chain(
                    self.events
                        .into_iter()
                        .map(|event| (event.kind, event.payload)),
                )
                .chain(after.map(status))
                .zip(plan.first_seq..)
                .map(|((kind, payload), seq)| TaskEvent {
                    task_id,
                    seq,
                    kind,
                    payload,
                    created_at: at,
                })
                .collect();
            (plan.task, events)
        });
        // A caller that stopped waiting does not want the answer.
        match self.reply {
            Reply::Task(reply) => {
                let _ = reply.send(result);
            }
            Reply::Events(reply) => {
                let _ = reply.send(result.map(|(_, events)| events));
            }
        }
    }

    /// The error for this write when its SQL failed with `error`, which means `failure`.
    fn failure(&self, failure: BatchFailure, error: &dyn fmt::Display) -> StoreError {
        match (&self.op, failure) {
            (Op::Create { new }, BatchFailure::MissingAgent) => {
                StoreError::not_found("agent", new.agent_id)
            }
            (Op::Create { new }, BatchFailure::TakenId) => {
                StoreError::already_exists("task", new.id)
            }
            (_, BatchFailure::Database(error)) => error,
            // Only a creation inserts a task row, so this is not expected.
            (_, BatchFailure::MissingAgent | BatchFailure::TakenId) => {
                StoreError::Backend(error.to_string())
            }
        }
    }
}

async fn write_loop<S: TaskBatchSql>(sql: S, mut receiver: mpsc::Receiver<Message>) {
    let mut messages = Vec::with_capacity(MAX_TASK_WRITES_PER_BATCH);
    // Waits only while nothing is queued; then takes whatever is (up to a full batch).
    while receiver
        .recv_many(&mut messages, MAX_TASK_WRITES_PER_BATCH)
        .await
        > 0
    {
        let mut batch = Vec::with_capacity(messages.len());
        let mut groups = Vec::with_capacity(messages.len());
        for message in messages.drain(..) {
            match message {
                Message::Write(pending) => {
                    groups.push(1);
                    batch.push(pending);
                }
                Message::Group(writes) => {
                    groups.push(writes.len());
                    batch.extend(writes);
                }
                // Senders now fail; what is queued still comes out of `recv_many`.
                Message::Close => receiver.close(),
            }
        }
        if !batch.is_empty() {
            run_batch(&sql, batch, &groups).await;
        }
    }
}

/// Commits `batch` in one transaction, or, if that fails, each write in its own (each group of
/// writes, `groups` being the sizes of the batch's consecutive groups).
async fn run_batch<S: TaskBatchSql>(sql: &S, mut batch: Vec<Pending>, groups: &[usize]) {
    let at = now();
    let error = match attempt(sql, &batch, groups, at).await {
        Ok(plans) => return answer_all(batch, plans, at),
        Err(error) => error,
    };
    // Only a constraint violation (a deleted agent, a taken id) belongs to one write, and it
    // fails a statement before anything commits. Anything else (a lost connection, a failed or
    // ambiguous commit) fails the whole batch: retrying writes one by one would stall every
    // write on a database that is down, and could apply a write twice after a commit that did
    // succeed.
    let per_write = sql.classify(&error).belongs_to_one_write();
    if groups.len() == 1 || !per_write {
        for pending in batch.drain(..) {
            let failure = pending.failure(sql.classify(&error), &error);
            pending.answer(Err(failure), at);
        }
        return;
    }
    tracing::debug!(
        writes = batch.len(),
        %error,
        "a batch of task writes failed as a whole; running its writes one by one"
    );
    let mut rest = batch.into_iter();
    for &size in groups {
        let group: Vec<Pending> = rest.by_ref().take(size).collect();
        let at = now();
        match attempt(sql, &group, &[size], at).await {
            Ok(plans) => answer_all(group, plans, at),
            Err(error) => {
                for pending in group {
                    let failure = pending.failure(sql.classify(&error), &error);
                    pending.answer(Err(failure), at);
                }
            }
        }
    }
}

fn answer_all(batch: Vec<Pending>, plans: Vec<Result<Plan>>, at: DateTime<Utc>) {
    for (pending, plan) in batch.into_iter().zip(plans) {
        pending.answer(plan, at);
    }
}

/// One transaction for `batch`: lock the rows it reads, check every write in order, write
/// what was accepted, commit. Returns each write's outcome, in order.
async fn attempt<S: TaskBatchSql>(
    sql: &S,
    batch: &[Pending],
    groups: &[usize],
    at: DateTime<Utc>,
) -> Result<Vec<Result<Plan>>, S::Error> {
    let mut tx = sql.begin().await?;
    let ids = read_set(batch);
    let rows = if ids.is_empty() {
        Vec::new()
    } else {
        sql.lock_tasks(&mut tx, &ids).await?
    };
    let (plans, writes) = plan(batch, groups, rows, at);
    if !writes.is_empty() {
        sql.write(&mut tx, &writes).await?;
    }
    sql.commit(tx).await?;
    Ok(plans)
}

/// The tasks a batch must read: those it transitions or appends to, sorted (so concurrent
/// batches on PostgreSQL lock rows in the same order) and distinct.
fn read_set(batch: &[Pending]) -> Vec<Uuid> {
    // A task the batch creates before it changes it needs no read: the batch has its row. (If
    // that creation fails in the database, the batch is retried write by write, reading it.)
    let mut created = HashSet::new();
    let mut ids: Vec<Uuid> = batch
        .iter()
        .filter(|pending| {
            let id = *pending.task_id().as_uuid();
            match pending.op {
                Op::Create { .. } => {
                    created.insert(id);
                    false
                }
                _ => !created.contains(&id),
            }
        })
        .map(|pending| *pending.task_id().as_uuid())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    ids.sort_unstable();
    ids
}

/// A task as the batch has it so far.
#[derive(Clone)]
struct Slot {
    /// The row, or why it does not decode.
    task: Result<Task, String>,
    last_seq: u64,
    /// Created by this batch (inserted) rather than read (updated).
    created: bool,
    /// Changed by this batch.
    changed: bool,
}

/// Checks the writes of `batch` in order against the rows read and each other; returns each
/// write's outcome and the rows to write for the accepted ones. `groups` are the sizes of the
/// batch's consecutive groups: a group whose writes are not all accepted is refused whole.
fn plan<'a>(
    batch: &'a [Pending],
    groups: &[usize],
    rows: Vec<LockedTaskRow>,
    at: DateTime<Utc>,
) -> (Vec<Result<Plan>>, BatchWrites<'a>) {
    let mut slots: HashMap<Uuid, Slot> = rows
        .into_iter()
        .map(|row| {
            let id = row.task.id;
            let decoded = to_u64(row.last_seq, "tasks.last_seq")
                .and_then(|last_seq| Ok((Task::try_from(row.task)?, last_seq)));
            let (task, last_seq) = match decoded {
                Ok((task, last_seq)) => (Ok(task), last_seq),
                Err(e) => (Err(e.to_string()), 0),
            };
            let slot = Slot {
                task,
                last_seq,
                created: false,
                changed: false,
            };
            (id, slot)
        })
        .collect();
    // Tasks in the order the batch first changed them, so the writes are deterministic.
    let mut changed: Vec<Uuid> = Vec::new();
    let mut events = Vec::new();
    let mut plans = Vec::with_capacity(batch.len());
    let mut rest = batch;
    for &size in groups {
        let (group, after) = rest.split_at(size.min(rest.len()));
        rest = after;
        // What a refused group puts back: the slots it touched, as they were.
        let before = (group.len() > 1).then(|| {
            let touched: Vec<(Uuid, Option<Slot>)> = group
                .iter()
                .map(|pending| {
                    let key = *pending.task_id().as_uuid();
                    (key, slots.get(&key).cloned())
                })
                .collect();
            (touched, changed.len(), events.len(), plans.len())
        });
        for pending in group {
            let planned = plan_one(pending, &mut slots, &mut changed, at);
            if let Ok(plan) = &planned {
                events.extend(pending.log(plan.first_seq, at));
            }
            plans.push(planned);
        }
        if let Some((touched, changed_len, events_len, first_plan)) = before
            && plans[first_plan..].iter().any(Result::is_err)
        {
            for (key, slot) in touched.into_iter().rev() {
                match slot {
                    Some(slot) => slots.insert(key, slot),
                    None => slots.remove(&key),
                };
            }
            changed.truncate(changed_len);
            events.truncate(events_len);
            for planned in &mut plans[first_plan..] {
                if planned.is_ok() {
                    *planned = Err(StoreError::Backend(
                        "not written: another write of its group was refused".into(),
                    ));
                }
            }
        }
    }
    let mut writes = BatchWrites {
        events,
        ..BatchWrites::default()
    };
    for id in changed {
        if let Some(Slot {
            task: Ok(task),
            last_seq,
            created,
            ..
        }) = slots.remove(&id)
        {
            let row = PlannedTask { task, last_seq };
            if created {
                writes.inserts.push(row);
            } else {
                writes.updates.push(row);
            }
        }
    }
    (plans, writes)
}

fn plan_one(
    pending: &Pending,
    slots: &mut HashMap<Uuid, Slot>,
    changed: &mut Vec<Uuid>,
    at: DateTime<Utc>,
) -> Result<Plan> {
    let count = pending.event_count();
    let id = pending.task_id();
    let key = *id.as_uuid();
    if let Op::Create { new } = &pending.op {
        // A task read by this batch or created earlier in it; other existing ids are caught
        // by the primary key (the batch then runs write by write).
        if slots.contains_key(&key) {
            return Err(StoreError::already_exists("task", id));
        }
        let task = Task {
            id,
            tenant_id: pending.tenant,
            agent_id: new.agent_id,
            agent_revision: new.agent_revision,
            context_id: new.context_id.clone(),
            parent_task_id: new.parent_task_id,
            state: if new.start_working {
                TaskState::Working
            } else {
                TaskState::Submitted
            },
            status_message: None,
            started_by: Some(new.started_by.clone()),
            created_at: at,
            updated_at: at,
        };
        slots.insert(
            key,
            Slot {
                task: Ok(task.clone()),
                last_seq: count,
                created: true,
                changed: true,
            },
        );
        changed.push(key);
        return Ok(Plan { task, first_seq: 1 });
    }
    // Another tenant's task is not found, like an absent one.
    let slot = slots
        .get_mut(&key)
        .filter(|slot| {
            slot.task
                .as_ref()
                .map_or(true, |task| task.tenant_id == pending.tenant)
        })
        .ok_or_else(|| StoreError::not_found("task", id))?;
    let task = slot
        .task
        .as_mut()
        .map_err(|corrupt| StoreError::Corrupt(corrupt.clone()))?;
    match &pending.op {
        Op::Transition { to, message, .. } => {
            task.state.transition(*to)?;
            task.state = *to;
            task.status_message = message.clone();
            task.updated_at = at;
        }
        Op::Append { .. } if task.state.is_terminal() => return Err(StoreError::TaskEnded(id)),
        Op::Append { .. } | Op::Create { .. } => {}
    }
    let plan = Plan {
        task: task.clone(),
        first_seq: slot.last_seq + 1,
    };
    slot.last_seq += count;
    if count > 0 && !slot.changed {
        slot.changed = true;
        changed.push(key);
    }
    Ok(plan)
}

#[cfg(test)]
mod tests;
