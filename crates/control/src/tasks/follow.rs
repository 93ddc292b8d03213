//! Following a task: its logged events, then live ones as they are committed.

use std::sync::Arc;

use nexus_core::{Caller, TaskEvent, TaskId, TenantId};

use crate::{Action, ControlError, ControlPlane};

/// Events read from the log per query while a follower catches up.
const REPLAY_PAGE: u32 = 500;
/// Events queued for one follower; a slow reader (e.g. a slow network) holds back only itself.
const FOLLOW_BUFFER: usize = 64;

impl ControlPlane {
    /// Follows a task's event log from `after_seq`: what is logged already, then new events as
    /// they are committed, until the task stops running (ends or waits for input). The
    /// receiver yields an error and closes if the log cannot be read; dropping it stops the
    /// follower.
    pub fn follow(
        self: &Arc<Self>,
        caller: &Caller,
        tenant: TenantId,
        task_id: TaskId,
        after_seq: u64,
    ) -> tokio::sync::mpsc::Receiver<Result<TaskEvent, ControlError>> {
        self.follow_as(Some(caller.clone()), tenant, task_id, after_seq)
    }

    /// [`follow`](Self::follow) for the control plane itself (`None`: no authorization).
    pub(crate) fn follow_as(
        self: &Arc<Self>,
        caller: Option<Caller>,
        tenant: TenantId,
        task_id: TaskId,
        after_seq: u64,
    ) -> tokio::sync::mpsc::Receiver<Result<TaskEvent, ControlError>> {
        let (sender, receiver) = tokio::sync::mpsc::channel(FOLLOW_BUFFER);
        let this = self.clone();
        tokio::spawn(async move {
            let followed = async {
                if let Some(caller) = &caller {
                    this.authorize(caller, tenant, Action::TaskRead).await?;
                }
                this.pump(tenant, task_id, after_seq, &sender).await
            };
            if let Err(e) = followed.await {
                let _ = sender.send(Err(e)).await;
            }
        });
        receiver
    }

    async fn pump(
        &self,
        tenant: TenantId,
        task_id: TaskId,
        after_seq: u64,
        out: &tokio::sync::mpsc::Sender<Result<TaskEvent, ControlError>>,
    ) -> Result<(), ControlError> {
        use tokio::sync::broadcast::error::RecvError;
        // Subscribe before reading the log, so nothing falls between the two.
        let mut live = self.live.subscribe(task_id);
        let Some(mut last) = self.replay(tenant, task_id, after_seq, out).await? else {
            return Ok(());
        };
        if live.is_none() {
            // Not running here, or it started while we read the log: look once more.
            live = self.live.subscribe(task_id);
            match self.replay(tenant, task_id, last, out).await? {
                Some(seq) => last = seq,
                None => return Ok(()),
            }
        }
        let Some(mut live) = live else {
            return Ok(());
        };
        loop {
            match live.recv().await {
                Ok(event) if event.seq <= last => {}
                Ok(event) if event.seq == last + 1 => {
                    last = event.seq;
                    if out.send(Ok(event)).await.is_err() {
                        return Ok(());
                    }
                }
                // A gap (published out of order, or this follower lagged): the log has it.
                Ok(_) | Err(RecvError::Lagged(_)) => {
                    match self.replay(tenant, task_id, last, out).await? {
                        Some(seq) => last = seq,
                        None => return Ok(()),
                    }
                }
                Err(RecvError::Closed) => {
                    self.replay(tenant, task_id, last, out).await?;
                    return Ok(());
                }
            }
        }
    }

    /// Sends the logged events after `after_seq`; returns the last sequence number sent, or
    /// `None` when the receiver is gone.
    async fn replay(
        &self,
        tenant: TenantId,
        task_id: TaskId,
        mut after_seq: u64,
        out: &tokio::sync::mpsc::Sender<Result<TaskEvent, ControlError>>,
    ) -> Result<Option<u64>, ControlError> {
        loop {
            let events = self
                .store
                .list_task_events(tenant, task_id, after_seq, REPLAY_PAGE)
                .await?;
            let full_page = events.len() == REPLAY_PAGE as usize;
            for event in events {
                after_seq = event.seq;
                if out.send(Ok(event)).await.is_err() {
                    return Ok(None);
                }
            }
            if !full_page {
                return Ok(Some(after_seq));
            }
        }
    }
}
