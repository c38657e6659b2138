//! Settling proofs in batches. A worker with a proof hands it to the [`Batcher`] and waits;
//! the batcher waits up to the operator's window (`[chain] batch_window_ms`) for more, then
//! sends them all in one `submitResults` (at most `batch_max`), so that the transaction's base
//! cost and the node's payment are paid once per batch instead of once per task. Each worker
//! hears the same receipt. When the batch fails (one proof refused reverts them all, or the
//! transaction is not confirmed), each proof is sent again alone with `submitResult`, so that
//! each worker hears its own answer and no good proof waits on a bad one.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::{
    chain::{Chain, ChainError, Mined, Settlement},
    metrics,
};

/// A proof waiting to be settled and where its answer goes.
struct Job {
    proof: Settlement,
    reply: oneshot::Sender<Result<Mined, ChainError>>,
}

/// Collects proofs into `submitResults` batches (see the module docs).
#[derive(Debug, Clone)]
pub(super) struct Batcher {
    jobs: mpsc::UnboundedSender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("task", &self.proof.task.id).finish_non_exhaustive()
    }
}

impl Batcher {
    /// Starts the collector: a batch closes `window` after its first proof, or at `max` proofs.
    pub(super) fn start(chain: Chain, window: Duration, max: usize) -> Self {
        let (jobs, rx) = mpsc::unbounded_channel();
        tokio::spawn(collect(chain, window, max.max(1), rx));
        Self { jobs }
    }

    /// Settles `proof` in the next batch; the receipt of the transaction that settled it.
    pub(super) async fn settle(&self, proof: Settlement) -> Result<Mined, ChainError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || ChainError::Unexpected {
            what: "submitResults",
            message: "the node's batcher has stopped".into(),
        };
        self.jobs.send(Job { proof, reply }).map_err(|_| stopped())?;
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }
}

async fn collect(chain: Chain, window: Duration, max: usize, mut rx: mpsc::UnboundedReceiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        let close = tokio::time::Instant::now() + window;
        while jobs.len() < max {
            match tokio::time::timeout_at(close, rx.recv()).await {
                Ok(Some(job)) => jobs.push(job),
                Ok(None) | Err(_) => break,
            }
        }
        // The next batch collects while this one is mined.
        tokio::spawn(send(chain.clone(), jobs));
    }
}

async fn send(chain: Chain, mut jobs: Vec<Job>) {
    // A task twice in one batch would revert it: keep the newest proof of each.
    let mut seen = std::collections::HashSet::new();
    jobs.reverse();
    jobs.retain(|j| seen.insert(j.proof.task.id));
    jobs.reverse();
    ::metrics::histogram!(metrics::BATCH).record(jobs.len() as f64);
    if jobs.len() > 1 {
        let proofs: Vec<Settlement> = jobs.iter().map(|j| j.proof.clone()).collect();
        match chain.submit_results(&proofs).await {
            Ok(mined) => {
                tracing::info!(target: "ecld_node", proofs = jobs.len(), tx = %mined.tx, gas = mined.receipt.gas_used, "batch of proofs settled in one transaction");
                for job in jobs {
                    let _ = job.reply.send(Ok(mined.clone()));
                }
                return;
            }
            Err(e) => {
                tracing::warn!(target: "ecld_node", proofs = jobs.len(), %e, "the batch did not settle; sending each proof alone");
            }
        }
    }
    let alone = jobs.into_iter().map(|job| {
        let chain = &chain;
        async move {
            let r = chain.settle(&job.proof).await;
            let _ = job.reply.send(r);
        }
    });
    futures::future::join_all(alone).await;
}
