//! Group commit for inbound result messages.
//!
//! An analyzer waits for each acknowledgement before it sends the next message, and the
//! acknowledgement may only leave once the message is durable, so every connection's rate
//! is bounded by the time of one commit (an fsync). While one commit runs, the messages that
//! arrive on the other connections queue here; the next writer takes them all and commits
//! them in one transaction (the first writer in the queue leads; the others find their
//! outcome ready when their turn comes). Each message still gets its own log entry, its own
//! acknowledgement and all-or-nothing results: when anything in a group fails, the group is
//! rolled back and each message is written again on its own, so one message's conflict never
//! costs another its place.

use std::sync::Mutex;

use cuvette_store::Quarantine;
use tokio::sync::oneshot;

use crate::results::ResultWrite;
use crate::{Actor, AppError, AppResult, Lab};

use super::MessageRecord;

/// The most messages committed together: enough to absorb every connection of a busy lab,
/// small enough that one transaction stays short.
const GROUP_MAX: usize = 64;

/// One message's writes, ready to commit.
pub(crate) struct CommitJob {
    /// Who entered the results (the instrument).
    pub actor: Option<Actor>,
    /// The result versions to write (none when the message is quarantined).
    pub writes: Vec<ResultWrite>,
    /// Its message log entry, acknowledgement included.
    pub record: MessageRecord,
    /// Serum indices measured on its specimens, by specimen id.
    pub indices: Vec<(i64, cuvette_domain::autoverify::SerumIndices)>,
}

/// What became of a job.
pub(crate) enum Committed {
    /// Committed under this message log id.
    Logged(i64),
    /// The same sender's control id was logged meanwhile by another connection: nothing was
    /// written; answer with what that one stored.
    AlreadyLogged,
}

type Queued = (CommitJob, oneshot::Sender<AppResult<Committed>>);

/// The queue of jobs waiting for the next commit, and the turn to lead one.
#[derive(Default)]
pub(crate) struct GroupCommit {
    queue: Mutex<Vec<Queued>>,
    turn: tokio::sync::Mutex<()>,
}

impl Lab {
    /// Commits a message's results and log entry, grouped with whatever else is waiting.
    pub(crate) async fn commit_grouped(&self, job: CommitJob) -> AppResult<Committed> {
        let (done, mut outcome) = oneshot::channel();
        self.group.queue.lock().expect("queue lock").push((job, done));
        let _turn = self.group.turn.lock().await;
        loop {
            match outcome.try_recv() {
                Ok(result) => return result,
                Err(oneshot::error::TryRecvError::Closed) => {
                    // A writer took the job and was cancelled before committing it.
                    return Err(AppError::Conflict(
                        "the message was not stored: send it again".into(),
                    ));
                }
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
            let group: Vec<Queued> = {
                let mut queue = self.group.queue.lock().expect("queue lock");
                let n = queue.len().min(GROUP_MAX);
                queue.drain(..n).collect()
            };
            if group.is_empty() {
                // Unreachable while jobs are only taken under the turn; never wait forever.
                return Err(AppError::Conflict("the message was not stored: send it again".into()));
            }
            self.commit_group(group).await;
        }
    }

    async fn commit_group(&self, group: Vec<Queued>) {
        let (jobs, senders): (Vec<CommitJob>, Vec<_>) = group.into_iter().unzip();
        if jobs.len() > 1 {
            match self.write_jobs(&jobs).await {
                Ok(outcomes) => {
                    for (sender, outcome) in senders.into_iter().zip(outcomes) {
                        let _ = sender.send(Ok(outcome)); // the sender's connection may be gone
                    }
                    return;
                }
                Err(e) => {
                    tracing::debug!(error = %e, n = jobs.len(), "group commit failed; writing each message on its own")
                }
            }
        }
        for (job, sender) in jobs.iter().zip(senders) {
            let outcome = self.write_jobs(std::slice::from_ref(job)).await.map(|mut o| o.remove(0));
            let _ = sender.send(outcome);
        }
    }

    /// Writes the jobs in one transaction. A job whose message was logged meanwhile fails
    /// the whole group, and is reported as [`Committed::AlreadyLogged`] when alone.
    async fn write_jobs(&self, jobs: &[CommitJob]) -> AppResult<Vec<Committed>> {
        let mut tx = self.store.begin().await?;
        let mut outcomes = Vec::with_capacity(jobs.len());
        for job in jobs {
            if let Some(actor) = &job.actor {
                self.write_results(&mut tx, actor, &job.writes).await?;
            }
            for (specimen_id, i) in &job.indices {
                tx.set_specimen_indices(
                    *specimen_id,
                    i.hemolysis.map(i64::from),
                    i.icterus.map(i64::from),
                    i.lipemia.map(i64::from),
                )
                .await?;
            }
            let Some(id) = self.log_message(&mut tx, &job.record).await? else {
                if jobs.len() > 1 {
                    return Err(AppError::Conflict(
                        "a message in the group was logged meanwhile".into(),
                    ));
                }
                return Ok(vec![Committed::AlreadyLogged]);
            };
            if let Some(original) = job.record.replay_of {
                tx.set_quarantine(original, Quarantine::Replayed).await?;
            }
            outcomes.push(Committed::Logged(id));
        }
        tx.commit().await?;
        Ok(outcomes)
    }
}
