//! One task from claim to settlement. Every step is journaled before the next; a worker
//! started from the journal (`fresh == false`) asks the chain where the task stands first.

use std::{sync::atomic::Ordering, time::Instant};

use alloy::primitives::{B256, U256};
use ecld_enclave::client::Task as EnclaveTask;
use ecld_types::{OfferId, StatusCode, TaskId, content_hash};

use super::{Inner, clock};
use crate::{
    chain::{ChainError, OnChain, Revert, Settlement, TaskInfo},
    crash_point,
    enclave::{ImageEnclave, session_name},
    fetch::FetchError,
    metrics,
    refused::{self, ModuleVerdict},
    retry::retry,
    task::{End, Outcome, Phase, Step},
};

/// What to do after a step.
enum Next {
    /// Look at the journal again and continue.
    Continue,
    /// Wait, then continue (the chain or store is unreachable for now).
    Later(&'static str),
}

/// Drives `task` until it is done here or the node stops.
pub(super) async fn drive(inner: &Inner, task: TaskId, mut fresh: bool) {
    let mut failures = 0u32;
    // A task claimed now (not resumed or adopted): its claim-to-settlement time feeds the run
    // allowance of later claims.
    let claimed_at = fresh.then(Instant::now);
    loop {
        let (phase, info) = inner.journal(|j| {
            (j.state().tasks.get(&task).cloned(), j.state().infos.get(&task).cloned())
        });
        let (Some(phase), Some(info)) = (phase, info) else {
            tracing::error!(target: "ecld_node", "task has no journal record; dropping the worker");
            return;
        };
        if !phase.is_active() {
            if let (Some(t), Phase::Done { end: End::Settled }) = (claimed_at, &phase) {
                inner.clock.task_took(t.elapsed());
            }
            return;
        }
        let r = if fresh { Ok(Next::Continue) } else { reconcile(inner, &info, &phase).await };
        let r = match r {
            Ok(Next::Continue) if !fresh => {
                fresh = true;
                continue;
            }
            Ok(Next::Continue) => step(inner, &info, &phase).await,
            other => other,
        };
        match r {
            Ok(Next::Continue) => failures = 0,
            Ok(Next::Later(why)) | Err(Failure(why)) => {
                failures += 1;
                // After a failure, the next attempt starts by asking the chain.
                fresh = false;
                let wait = inner.tuning.chain_backoff.delay(failures.min(8));
                tracing::warn!(target: "ecld_node", why, failures, phase = phase.name(), "step failed; retrying");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// A step that could not be completed for now.
struct Failure(&'static str);

fn journal_failed(e: &crate::journal::JournalError) -> Failure {
    tracing::error!(target: "ecld_node", %e, "journal write failed");
    Failure("journal")
}

fn done(
    inner: &Inner,
    task: TaskId,
    end: End,
    status: Option<StatusCode>,
) -> Result<Next, Failure> {
    inner.step(task, Step::Done { end }).map_err(|e| journal_failed(&e))?;
    inner.journal(|j| j.forget_result(task));
    let status = status.map_or_else(|| "none".to_owned(), |s| s.code().to_string());
    let end_name = match end {
        End::Settled => "settled",
        End::Lost => "lost",
        End::Released => "released",
        End::Expired => "expired",
    };
    ::metrics::counter!(metrics::TASKS, "end" => end_name, "status" => status).increment(1);
    Ok(Next::Continue)
}

/// Checks the chain before resuming a journaled phase: no double claim, no proof for a task
/// that is gone.
async fn reconcile(inner: &Inner, info: &TaskInfo, phase: &Phase) -> Result<Next, Failure> {
    let task = info.id;
    let state =
        match retry(inner.tuning.chain_backoff, "getTask", || inner.chain.task_state(task)).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(target: "ecld_node", %e, "cannot read the task's state");
                return Ok(Next::Later("chain unreachable"));
            }
        };
    let mine = phase.offer().is_some_and(|o| state == OnChain::HeldBy(o));
    match (phase, state) {
        // Claimed (or matched at submission) while the claim was not yet journaled.
        (Phase::Claiming { offer }, _) if mine => claimed(inner, info, *offer),
        (_, _) if mine => Ok(Next::Continue),
        // Not sent, or it failed: claiming now is safe (the contract refuses a second claim).
        (Phase::Claiming { .. }, OnChain::Open) => Ok(Next::Continue),
        (Phase::Claiming { .. } | Phase::Claimed { .. }, _) => {
            tracing::info!(target: "ecld_node", ?state, "task is not held by this node");
            done(inner, task, End::Lost, None)
        }
        (Phase::Releasing { .. }, _) => done(inner, task, End::Released, None),
        (
            Phase::Proven { outcome, .. }
            | Phase::Uploaded { outcome, .. }
            | Phase::Submitted { outcome, .. },
            OnChain::Gone,
        ) => settled_or_expired(inner, task, outcome.status).await,
        (_, _) => {
            tracing::warn!(target: "ecld_node", ?state, "a proven task is no longer held by this node");
            done(inner, task, End::Expired, None)
        }
    }
}

/// A task that is gone from the chain: settled by this node's proof, or reclaimed.
async fn settled_or_expired(
    inner: &Inner,
    task: TaskId,
    status: StatusCode,
) -> Result<Next, Failure> {
    let found = retry(inner.tuning.chain_backoff, "getLogs", || {
        inner.chain.settlement_of(task, inner.deploy_block)
    })
    .await;
    match found {
        Ok(Some(_)) => done(inner, task, End::Settled, Some(status)),
        Ok(None) => done(inner, task, End::Expired, None),
        Err(_) => Ok(Next::Later("chain unreachable")),
    }
}

async fn step(inner: &Inner, info: &TaskInfo, phase: &Phase) -> Result<Next, Failure> {
    let stopping = inner.stopping.load(Ordering::SeqCst);
    match phase {
        Phase::Claiming { offer } if stopping => {
            let _ = offer;
            done(inner, info.id, End::Lost, None)
        }
        Phase::Claiming { offer } => claim(inner, info, *offer).await,
        Phase::Claimed { .. } if stopping => release(inner, info, "the node is stopping"),
        Phase::Claimed { .. }
        | Phase::Proven { .. }
        | Phase::Uploaded { .. }
        | Phase::Submitted { .. }
            if clock::past(info.deadline, inner.clock.floor()) =>
        {
            late(inner, info, phase).await
        }
        Phase::Claimed { offer } => execute(inner, info, *offer).await,
        Phase::Proven { outcome, .. } => upload(inner, info.id, outcome).await,
        Phase::Uploaded { outcome, cid, offer } | Phase::Submitted { outcome, cid, offer, .. } => {
            submit(inner, info, *offer, outcome, cid).await
        }
        Phase::Releasing { .. } => send_release(inner, info).await,
        Phase::Done { .. } => Ok(Next::Continue),
    }
}

/// Chain time is already past the task's deadline (the next block is stamped after it, see
/// [`clock::ChainClock::floor`]): the contract would refuse the proof, so no
/// transaction is sent (neither the proof, nor a release that frees nothing: the requester
/// reclaims the escrow). A proof sent before a restart may have made it in time: the chain
/// is asked first.
async fn late(inner: &Inner, info: &TaskInfo, phase: &Phase) -> Result<Next, Failure> {
    if let Phase::Uploaded { outcome, .. } | Phase::Submitted { outcome, .. } = phase {
        let found = retry(inner.tuning.chain_backoff, "getLogs", || {
            inner.chain.settlement_of(info.id, inner.deploy_block)
        })
        .await;
        match found {
            Ok(Some(_)) => return done(inner, info.id, End::Settled, Some(outcome.status)),
            Ok(None) => {}
            Err(_) => return Ok(Next::Later("chain unreachable")),
        }
    }
    tracing::warn!(
        target: "ecld_node",
        deadline = info.deadline,
        next_block_at_least = inner.clock.floor(),
        phase = phase.name(),
        "chain time is past the task's deadline: the contract would refuse the proof; giving the task up without sending a transaction (the requester reclaims the escrow)"
    );
    ::metrics::counter!(metrics::LATE, "phase" => phase.name()).increment(1);
    done(inner, info.id, End::Expired, None)
}

async fn claim(inner: &Inner, info: &TaskInfo, offer: OfferId) -> Result<Next, Failure> {
    let start = Instant::now();
    let r = retry(inner.tuning.chain_backoff, "claimTask", || inner.chain.claim(info, offer)).await;
    metrics::step("claim", start.elapsed());
    match r {
        Ok(_) => {
            tracing::info!(target: "ecld_node", offer = %offer, "claimed");
            claimed(inner, info, offer)
        }
        Err(ChainError::Reverted { reason, .. }) => {
            // Claim races are normal: another node was faster.
            tracing::debug!(target: "ecld_node", %reason, "claim lost");
            done(inner, info.id, End::Lost, None)
        }
        // Mined but reverted, or unknown: the chain decides on the next round.
        Err(e) => {
            tracing::debug!(target: "ecld_node", %e, "claim outcome unknown; checking the chain");
            Err(Failure("claim outcome unknown"))
        }
    }
}

/// Journals that this node holds the task at its offer's price (also for a task matched at
/// submission): releaseTask and submitResult must name it.
fn claimed(inner: &Inner, info: &TaskInfo, offer: OfferId) -> Result<Next, Failure> {
    let price =
        inner.offers.iter().find(|(id, _)| *id == offer).map_or(info.price, |(_, s)| s.price);
    let held = TaskInfo { price, ..info.clone() };
    inner
        .journal(|j| {
            j.append(&crate::journal::Entry::Info { info: held })?;
            j.step(info.id, Step::Claimed { offer })
        })
        .map_err(|e| journal_failed(&e))?;
    crash_point::reached(crash_point::AFTER_CLAIM);
    Ok(Next::Continue)
}

/// Hands the task back. Unless the node is stopping, this counts as a failure of this node at
/// the task: it claims it again after a backoff, or leaves it after a few
/// ([`super::Tuning::release_backoff`]).
fn release(inner: &Inner, info: &TaskInfo, reason: &str) -> Result<Next, Failure> {
    tracing::warn!(target: "ecld_node", reason, "releasing the task");
    inner
        .step(info.id, Step::Releasing { reason: reason.to_owned() })
        .map_err(|e| journal_failed(&e))?;
    if !inner.stopping.load(Ordering::SeqCst) {
        match inner.released_here(info.id, info.deadline) {
            (failures, Some(wait)) => {
                tracing::info!(target: "ecld_node", failures, retry_in_ms = wait.as_millis() as u64, "this node will try the task again after a backoff (another node may take it first)");
            }
            (failures, None) => {
                tracing::warn!(target: "ecld_node", failures, "this node failed the task {failures} times; leaving it to other nodes (or to the requester's reclaim after the deadline)");
            }
        }
    }
    Ok(Next::Continue)
}

/// Hands the task back for good: its image is refused on this node, so the task is not
/// claimed again (other nodes may still take it).
fn release_for_good(inner: &Inner, info: &TaskInfo, reason: &str) -> Result<Next, Failure> {
    tracing::warn!(target: "ecld_node", reason, "releasing the task; this node will not claim it again");
    inner
        .step(info.id, Step::Releasing { reason: reason.to_owned() })
        .map_err(|e| journal_failed(&e))?;
    inner.abandoned_here(info.id, info.deadline);
    Ok(Next::Continue)
}

async fn send_release(inner: &Inner, info: &TaskInfo) -> Result<Next, Failure> {
    let task = info.id;
    let start = Instant::now();
    let r = retry(inner.tuning.chain_backoff, "releaseTask", || inner.chain.release(info)).await;
    metrics::step("release", start.elapsed());
    match r {
        Ok(mined) => {
            inner.ended_in(task, mined.receipt.block_number);
            done(inner, task, End::Released, None)
        }
        Err(ChainError::Reverted { reason, .. }) => {
            tracing::info!(target: "ecld_node", %reason, "release refused: the task is no longer held by this node");
            done(inner, task, End::Released, None)
        }
        Err(_) => Err(Failure("release not confirmed")),
    }
}

/// Fetches, runs and persists the outcome; releases when the image or enclave fails.
async fn execute(inner: &Inner, info: &TaskInfo, offer: OfferId) -> Result<Next, Failure> {
    let _ = offer;
    let image = match inner.image(info.image).await {
        Ok(i) => i,
        Err(ChainError::Reverted { .. }) => {
            return release(inner, info, "image not in the registry");
        }
        Err(_) => return Ok(Next::Later("chain unreachable")),
    };
    if inner.refuses(info.image, &image) {
        return release_for_good(inner, info, "image refused on this node");
    }
    let t = Instant::now();
    let module = match inner.fetcher.module(&image.code_cid, image.measurement).await {
        Ok(p) => p,
        Err(e) => {
            return match refused::classify(&e) {
                ModuleVerdict::Unusable { reason } => {
                    ::metrics::counter!(metrics::MODULE_REJECTIONS, "reason" => reason)
                        .increment(1);
                    inner.refuse(info.image, &image, reason, &e.to_string());
                    release_for_good(inner, info, "image module does not match its registration")
                }
                ModuleVerdict::Transient { reason } => {
                    ::metrics::counter!(metrics::MODULE_REJECTIONS, "reason" => reason)
                        .increment(1);
                    tracing::warn!(target: "ecld_node", %e, "image module unavailable");
                    release(inner, info, "image module unavailable")
                }
            };
        }
    };
    metrics::step("fetch_image", t.elapsed());
    let t = Instant::now();
    let input = match inner.fetcher.input(&info.input_cid, info.input_hash).await {
        Ok(bytes) => bytes,
        // Not the requester's fault and not this node's: the enclave signs status 16 for an
        // empty input and the requester is refunded at once.
        Err(
            e @ (FetchError::Unavailable { .. }
            | FetchError::Mismatch { .. }
            | FetchError::Tampered { .. }
            | FetchError::BadCid { .. }),
        ) => {
            tracing::warn!(target: "ecld_node", %e, "input unavailable; the enclave will sign INPUT_UNAVAILABLE");
            Vec::new()
        }
        Err(e @ FetchError::Cache { .. }) => {
            tracing::error!(target: "ecld_node", %e, "local failure fetching the input");
            return Ok(Next::Later("local fetch failure"));
        }
    };
    metrics::step("fetch_input", t.elapsed());
    let spec = ImageEnclave {
        image: info.image,
        session: session_name(&image.name, &image.version, &image.measurement),
        module,
        cas_identity: image.cas_identity,
        signer: image.enclave_signer,
        measurement: image.measurement,
    };
    // The enclave takes its limits from the spec it signs: nothing here sets them.
    let binding = info.binding(inner.chain.chain_id(), inner.chain.marketplace());
    // A warm enclave may have died since its last task: one retry with a fresh one.
    let mut outcome = None;
    for attempt in 0..2 {
        let t = Instant::now();
        let mut warm = match inner.pool.checkout(&spec).await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(target: "ecld_node", %e, "no enclave for the image");
                return release(inner, info, "enclave did not start or attest");
            }
        };
        let t_run = Instant::now();
        let ran = warm.process.run(EnclaveTask { binding, input: input.clone() }).await;
        match ran {
            Ok(o) => {
                metrics::step("enclave_run", t_run.elapsed());
                inner.pool.checkin(warm);
                outcome = Some(o);
                break;
            }
            Err(e) => {
                tracing::warn!(target: "ecld_node", %e, attempt, took_ms = t.elapsed().as_millis() as u64, "enclave failed the run");
                drop(warm);
            }
        }
    }
    let Some(o) = outcome else {
        return release(inner, info, "enclave failed twice");
    };
    let p = o.proof;
    let result_hash = if o.result.is_empty() { B256::ZERO } else { content_hash(&o.result) };
    let expected_cid = if o.result.is_empty() {
        String::new()
    } else {
        ecld_enclave::enclave::cid_text(&o.result)
    };
    if p.task_id != info.id
        || p.image_id != info.image
        || p.input_hash != info.input_hash
        || p.result_hash != result_hash
        || o.result_cid != expected_cid
    {
        tracing::error!(target: "ecld_node", "the enclave's proof does not match the task or its result");
        return release(inner, info, "enclave proof mismatch");
    }
    let outcome = Outcome {
        status: p.status,
        result_hash,
        runtime_ms: p.runtime_ms,
        code_hash: p.code_hash,
        signature: o.signature.into(),
        result_cid: o.result_cid,
    };
    // The outcome is durable before anything leaves this machine: a restart re-uploads and
    // re-submits exactly these bytes.
    inner
        .journal(|j| {
            if !o.result.is_empty() {
                j.write_result(info.id, &o.result)?;
            }
            j.step(info.id, Step::Proven { outcome: outcome.clone() })
        })
        .map_err(|e| journal_failed(&e))?;
    tracing::info!(target: "ecld_node", status = %p.status, runtime_ms = p.runtime_ms, message = %o.message, "enclave finished");
    crash_point::reached(crash_point::AFTER_RUN);
    Ok(Next::Continue)
}

async fn upload(inner: &Inner, task: TaskId, outcome: &Outcome) -> Result<Next, Failure> {
    let cid = if outcome.result_hash == B256::ZERO {
        String::new()
    } else {
        let bytes = inner.journal(|j| j.read_result(task)).map_err(|e| journal_failed(&e))?;
        if content_hash(&bytes) != outcome.result_hash {
            tracing::error!(target: "ecld_node", "the stored result file does not match its proof; check the data directory's disk");
            return Err(Failure("result file corrupt"));
        }
        let t = Instant::now();
        match inner.fetcher.upload(&bytes).await {
            // The store must name the result as the enclave signed it: a proof naming
            // another CID would not settle.
            Ok(cid) if cid != outcome.result_cid => {
                tracing::error!(target: "ecld_node", cid, signed = %outcome.result_cid, "the store named the result differently from the proof; is it a Kubo with other add options?");
                return Ok(Next::Later("store gave another CID"));
            }
            Ok(cid) => {
                metrics::step("upload", t.elapsed());
                cid
            }
            Err(e) => {
                tracing::warn!(target: "ecld_node", %e, "result upload failed");
                return Ok(Next::Later("store unreachable"));
            }
        }
    };
    inner.step(task, Step::Uploaded { cid }).map_err(|e| journal_failed(&e))?;
    crash_point::reached(crash_point::AFTER_UPLOAD);
    Ok(Next::Continue)
}

async fn submit(
    inner: &Inner,
    info: &TaskInfo,
    offer: OfferId,
    outcome: &Outcome,
    cid: &str,
) -> Result<Next, Failure> {
    let t = Instant::now();
    let proof = Settlement {
        task: info.clone(),
        result_cid: cid.to_owned(),
        result_hash: outcome.result_hash,
        code_hash: outcome.code_hash,
        status: outcome.status,
        runtime_ms: outcome.runtime_ms,
        signature: outcome.signature.clone(),
    };
    let r = retry(inner.tuning.chain_backoff, "submitResult", || inner.settle(proof.clone())).await;
    metrics::step("submit", t.elapsed());
    match r {
        Ok(mined) => {
            inner.ended_in(info.id, mined.receipt.block_number);
            crash_point::reached(crash_point::AFTER_SUBMIT);
            if outcome.status.code() < StatusCode::FIRST_SYSTEM_CODE {
                let price = inner
                    .offers
                    .iter()
                    .find(|(id, _)| *id == offer)
                    .map_or(U256::ZERO, |(_, s)| s.price);
                let earned = (price / U256::from(1_000_000_000u64)).saturating_to::<u64>();
                ::metrics::counter!(metrics::EARNINGS).increment(earned);
            }
            tracing::info!(target: "ecld_node", status = %outcome.status, cid, "result submitted; task settled");
            done(inner, info.id, End::Settled, Some(outcome.status))
        }
        Err(ChainError::Reverted { reason: Revert::NotActive, .. }) => {
            settled_or_expired(inner, info.id, outcome.status).await
        }
        Err(ChainError::Reverted { reason, .. }) => {
            tracing::error!(target: "ecld_node", %reason, "the contract refused the proof");
            done(inner, info.id, End::Expired, None)
        }
        Err(e) => {
            tracing::warn!(target: "ecld_node", %e, "submitResult not confirmed");
            Err(Failure("submit not confirmed"))
        }
    }
}
