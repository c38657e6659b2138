//! The running node: start-up (offers, resume), the scheduling loop, shutdown.

mod batch;
mod clock;
mod follow;
mod heads;
mod worker;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use alloy::primitives::{Address, keccak256};
use ecld_contracts::Deployment;
use ecld_crypto::SignerKey;
use ecld_store::KuboClient;
use ecld_types::{ImageId, OfferId, TaskId};
use tokio::{
    sync::{Notify, mpsc, watch},
    task::JoinHandle,
};
use tracing::Instrument;

use crate::{
    chain::{Chain, ChainError, ImageRecord, Mined, OnChain, Settlement, TaskInfo},
    config::{Contracts, NodeConfig, OfferSpec, SUBSCRIBED_POLL_FLOOR},
    enclave::{Launcher, Pool},
    fetch::Fetcher,
    journal::{Entry, Journal, JournalError},
    metrics,
    refused::{Refusals, RefusedImage},
    retry::{Backoff, retry},
    task::{End, Phase, Step},
};

/// Why the node could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The journal failed.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The key file could not be read.
    #[error("node key {path}: {source}")]
    Key {
        /// File.
        path: PathBuf,
        /// Error.
        source: ecld_crypto::KeyError,
    },
    /// The deployment file could not be read.
    #[error(transparent)]
    Deployment(#[from] ecld_contracts::DeployError),
    /// The chain failed at start-up.
    #[error("chain: {0}")]
    Chain(#[from] ChainError),
    /// The store URL is unusable.
    #[error("store: {0}")]
    Store(#[from] ecld_store::StoreError),
    /// Metrics could not be served.
    #[error(transparent)]
    Metrics(#[from] metrics::MetricsError),
    /// The enclave command could not be determined.
    #[error(
        "cannot find this program's path for the default enclave command ({0}); set enclave.command"
    )]
    Exe(std::io::Error),
}

/// Tunables that are not part of the user's configuration.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// Backoff of store calls.
    pub store_backoff: Backoff,
    /// Backoff of chain calls.
    pub chain_backoff: Backoff,
    /// How long shutdown waits for tasks in flight.
    pub shutdown_grace: Duration,
    /// Blocks scanned back from the journal's cursor at start-up to find open tasks.
    pub scan_lookback: u64,
    /// Open tasks whose deadline is nearer than this plus the run allowance, in chain time,
    /// are not claimed (see [`Tuning::run_allowance_floor`]). It also covers the second a new
    /// block adds to its parent's timestamp.
    pub deadline_margin: Duration,
    /// The least run allowance: a task is claimed only if chain now + `deadline_margin` + the
    /// allowance is before its deadline. The allowance is twice the median claim-to-settlement
    /// time of this node's recent tasks, at least this floor (also before any task finished),
    /// and at most the task's `max_runtime_s` plus this floor.
    pub run_allowance_floor: Duration,
    /// When this node released a task because it could not run it (image or module
    /// unavailable, enclave died at start-up or did not attest, enclave failed twice), it
    /// claims that task again after `release_backoff.delay(n)` following its n-th such
    /// failure (2 s, 4 s, … doubling, capped at `max`, jittered), and after
    /// `release_backoff.attempts` failures it leaves the task for good.
    ///
    /// Why this shape: a transient failure (an enclave that died at start-up once, a module
    /// briefly unavailable) then costs a few seconds, not the task's deadline, even when this
    /// is the only node. A failure that repeats on the same node for the same task is most
    /// likely this node's (its platform is not admitted by the image's policy, its CAS is
    /// unreachable) or the image's, not bad luck: the node stops paying claim and release gas
    /// for it, another node takes it, or the requester reclaims the escrow after the deadline.
    /// The count is kept in memory: a restarted node tries again.
    pub release_backoff: Backoff,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            store_backoff: Backoff::STORE,
            chain_backoff: Backoff::CHAIN,
            shutdown_grace: Duration::from_secs(60),
            scan_lookback: 100_000,
            deadline_margin: Duration::from_secs(5),
            run_allowance_floor: Duration::from_secs(3),
            release_backoff: Backoff {
                initial: Duration::from_secs(2),
                max: Duration::from_secs(60),
                attempts: 3,
            },
        }
    }
}

/// Shared by the loop and the task workers.
#[derive(Debug)]
struct Inner {
    cfg: NodeConfig,
    tuning: Tuning,
    chain: Chain,
    fetcher: Fetcher,
    pool: Pool,
    journal: Mutex<Journal>,
    offers: Vec<(OfferId, OfferSpec)>,
    deploy_block: u64,
    images: Mutex<HashMap<ImageId, ImageRecord>>,
    /// Tasks this node released because it could not run them.
    released: Mutex<Setbacks>,
    /// Images whose module can never pass its checks: their tasks are not claimed.
    refused: Mutex<Refusals>,
    /// Tasks this node ended on chain (settled or released) by a transaction in a block the
    /// follower has not read yet: that block number. The follower checks that the end's event
    /// is there when it reads the block; a block replaced before it was read (a reorganisation
    /// the cursor never saw) would otherwise leave the task held by this node with its journal
    /// saying done.
    unread_ends: Mutex<HashMap<TaskId, u64>>,
    /// Chain time, from the newest block header, and recent task durations.
    clock: clock::ChainClock,
    /// Settles proofs in `submitResults` batches; `None` with a zero `batch_window`.
    batcher: Option<batch::Batcher>,
    stopping: AtomicBool,
}

impl Inner {
    /// Runs `f` on the journal. A poisoned lock means a worker panicked mid-append; the file
    /// is still consistent (each append is one line), so the state is used as is.
    fn journal<T>(&self, f: impl FnOnce(&mut Journal) -> T) -> T {
        let mut guard = self.journal.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }

    fn step(&self, task: TaskId, step: Step) -> Result<(), JournalError> {
        self.journal(|j| j.step(task, step))
    }

    /// Counts a release of `task` (deadline `deadline`, unix seconds) because this node could
    /// not run it; returns the failures so far and when the node may claim it again (`None`:
    /// never, see [`Tuning::release_backoff`]).
    fn released_here(&self, task: TaskId, deadline: u64) -> (u32, Option<Duration>) {
        let mut m = self.released.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        m.record(task, deadline, self.tuning.release_backoff, now_unix(), Instant::now())
    }

    /// Records that this node released `task` for good (its image is refused): it is not
    /// claimed again.
    fn abandoned_here(&self, task: TaskId, deadline: u64) {
        let mut m = self.released.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        m.abandon(task, deadline, now_unix());
    }

    /// Whether this node refuses `image` (registered as `record`) for good.
    fn refuses(&self, image: ImageId, record: &ImageRecord) -> bool {
        self.refused.lock().unwrap_or_else(std::sync::PoisonError::into_inner).refuses(
            image,
            &record.code_cid,
            record.measurement,
        )
    }

    /// Refuses `image` for good because its module failed with `detail` (`reason`: see
    /// [`crate::refused::ModuleVerdict`]); logs it once, with what to do.
    fn refuse(&self, image: ImageId, record: &ImageRecord, reason: &'static str, detail: &str) {
        let mut r = self.refused.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let refusal = RefusedImage {
            image,
            code_cid: record.code_cid.clone(),
            measurement: record.measurement,
            reason: reason.to_owned(),
            detail: detail.to_owned(),
            at: now_unix(),
        };
        let file = r.path().display().to_string();
        let added = match r.add(refusal) {
            Ok(added) => added,
            Err(e) => {
                tracing::error!(target: "ecld_node", %e, "cannot keep the image refusal on disk; it holds until the node restarts");
                true
            }
        };
        ::metrics::gauge!(metrics::IMAGES_REFUSED).set(r.len() as f64);
        if added {
            tracing::error!(
                target: "ecld_node",
                image = %image,
                name = %record.name,
                version = %record.version,
                code_cid = %record.code_cid,
                measurement = %record.measurement,
                %detail,
                file,
                "image {image} refused for good: its module can never match the registered measurement;                  this node releases its tasks and claims none of them again. The image's publisher must                  publish a new image whose measurement is the module's; to make this node try the image                  again, remove it from {file} and restart the node"
            );
        }
    }

    /// Records that this node's transaction ending `task` was mined in block `block`.
    fn ended_in(&self, task: TaskId, block: Option<u64>) {
        if let Some(block) = block {
            self.unread_ends
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(task, block);
        }
    }

    /// The recorded ends in blocks up to `to`, with their blocks.
    fn unread_ends_through(&self, to: u64) -> Vec<(TaskId, u64)> {
        let m = self.unread_ends.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        m.iter().filter(|(_, b)| **b <= to).map(|(t, b)| (*t, *b)).collect()
    }

    /// Forgets recorded ends once their blocks were read (unless recorded again since).
    fn forget_ends(&self, ends: &[(TaskId, u64)]) {
        let mut m = self.unread_ends.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (task, block) in ends {
            if m.get(task) == Some(block) {
                m.remove(task);
            }
        }
    }

    /// Whether this node must not claim `task` now (backing off, or given up).
    fn held_back(&self, task: TaskId) -> bool {
        self.released.lock().is_ok_and(|m| m.held_back(task, Instant::now()))
    }

    /// The next moment a backed-off task may be claimed again.
    fn next_retry(&self) -> Option<Instant> {
        self.released.lock().ok()?.next_retry(Instant::now())
    }

    /// Settles one proof: in the next batch, or alone without a batch window.
    async fn settle(&self, proof: Settlement) -> Result<Mined, ChainError> {
        match &self.batcher {
            Some(b) => b.settle(proof).await,
            None => self.chain.settle(&proof).await,
        }
    }

    fn owns(&self, offer: OfferId) -> bool {
        self.offers.iter().any(|(id, _)| *id == offer)
    }

    async fn image(&self, image: ImageId) -> Result<ImageRecord, ChainError> {
        if let Some(r) = self.images.lock().ok().and_then(|m| m.get(&image).cloned()) {
            return Ok(r);
        }
        let r = retry(self.tuning.chain_backoff, "getImage", || self.chain.image(image)).await?;
        if let Ok(mut m) = self.images.lock() {
            m.insert(image, r.clone());
        }
        Ok(r)
    }
}

/// This node's failed attempts at a task it released because it could not run it.
#[derive(Debug, Clone, Copy)]
struct Setback {
    /// Releases so far.
    failures: u32,
    /// When it may be claimed again; `None`: this node has given up on it.
    retry_at: Option<Instant>,
    /// The task's deadline (unix seconds): the record is dropped after it.
    deadline: u64,
}

/// The [`Setback`]s of the tasks this node released (see [`Tuning::release_backoff`]).
#[derive(Debug, Default)]
struct Setbacks(HashMap<TaskId, Setback>);

impl Setbacks {
    /// Counts a release of `task` at `now` (`unix`: now in unix seconds); returns the failures
    /// so far and how long to wait before claiming it again (`None`: never).
    fn record(
        &mut self,
        task: TaskId,
        deadline: u64,
        policy: Backoff,
        unix: u64,
        now: Instant,
    ) -> (u32, Option<Duration>) {
        self.0.retain(|_, s| s.deadline >= unix);
        let s = self.0.entry(task).or_insert(Setback { failures: 0, retry_at: None, deadline });
        s.failures = s.failures.saturating_add(1);
        let wait = (s.failures < policy.attempts).then(|| policy.delay(s.failures));
        s.retry_at = wait.map(|w| now + w);
        (s.failures, wait)
    }

    /// Records `task` as given up at once (no further attempt).
    fn abandon(&mut self, task: TaskId, deadline: u64, unix: u64) {
        self.0.retain(|_, s| s.deadline >= unix);
        let s = self.0.entry(task).or_insert(Setback { failures: 0, retry_at: None, deadline });
        s.failures = s.failures.saturating_add(1);
        s.retry_at = None;
    }

    fn held_back(&self, task: TaskId, now: Instant) -> bool {
        self.0.get(&task).is_some_and(|s| s.retry_at.is_none_or(|at| at > now))
    }

    fn next_retry(&self, now: Instant) -> Option<Instant> {
        self.0.values().filter_map(|s| s.retry_at).filter(|at| *at > now).min()
    }
}

/// A running node.
#[derive(Debug)]
pub struct NodeHandle {
    /// The node's account.
    pub address: Address,
    /// Its offers, in config order.
    pub offers: Vec<OfferId>,
    /// Where `/metrics` is served.
    pub metrics_addr: Option<SocketAddr>,
    stop: tokio::sync::watch::Sender<bool>,
    task: JoinHandle<Result<(), NodeError>>,
    metrics_task: Option<JoinHandle<()>>,
}

impl NodeHandle {
    /// Stops taking tasks, finishes or releases what the node holds, and returns.
    pub async fn stop(self) -> Result<(), NodeError> {
        let _ = self.stop.send(true);
        self.wait().await
    }

    /// Waits until the node stops (after [`NodeHandle::stop`] or a fatal error).
    pub async fn wait(self) -> Result<(), NodeError> {
        let r = match self.task.await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(target: "ecld_node", %e, "node loop panicked");
                Ok(())
            }
        };
        if let Some(t) = self.metrics_task {
            t.abort();
        }
        r
    }

    /// A sender that asks the node to stop (for signal handlers).
    pub fn stopper(&self) -> tokio::sync::watch::Sender<bool> {
        self.stop.clone()
    }
}

fn now_unix() -> u64 {
    clock::wall_unix()
}

/// Starts a node: opens the journal, registers (or re-uses) the offers, resumes the tasks the
/// journal holds, and follows the chain until stopped.
pub async fn spawn(cfg: NodeConfig) -> Result<NodeHandle, NodeError> {
    spawn_tuned(cfg, Tuning::default()).await
}

/// [`spawn`] with explicit tunables (tests use short backoffs).
pub async fn spawn_tuned(cfg: NodeConfig, tuning: Tuning) -> Result<NodeHandle, NodeError> {
    let journal = Journal::open(&cfg.data_dir)?;
    let key = SignerKey::load(&cfg.key_file)
        .map_err(|source| NodeError::Key { path: cfg.key_file.clone(), source })?;
    let (marketplace, registry, deploy_block) = match &cfg.contracts {
        Contracts::DeploymentFile(path) => {
            let d = Deployment::load(path)?;
            (d.marketplace, d.registry, d.deploy_block)
        }
        Contracts::Addresses { marketplace, registry } => (*marketplace, *registry, 0),
    };
    let chain = retry(tuning.chain_backoff, "connect", || {
        Chain::connect(cfg.rpc_url.clone(), key.signer().clone(), marketplace, registry)
    })
    .await?;
    let store = KuboClient::new(cfg.store_url.as_str())?;
    let store_backoff = match cfg.store_retry_attempts {
        Some(attempts) => Backoff { attempts, ..tuning.store_backoff },
        None => tuning.store_backoff,
    };
    let fetcher = Fetcher::new(store, &cfg.data_dir, store_backoff);
    let command = match &cfg.enclave_command {
        Some(c) => c.clone(),
        None => {
            let exe = std::env::current_exe().map_err(NodeError::Exe)?;
            vec![exe.to_string_lossy().into_owned(), "enclave".into()]
        }
    };
    let pool = Pool::new(
        Launcher {
            command,
            cas_url: cfg.cas_url.clone(),
            platform: cfg.platform,
            startup_timeout: Duration::from_secs(120),
            sim_key: cfg.sim_key_file.clone(),
        },
        cfg.enclave_idle_timeout,
    );
    let refused = match Refusals::open(&cfg.data_dir) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(target: "ecld_node", %e, "ignoring the remembered image refusals");
            Refusals::empty(&cfg.data_dir)
        }
    };
    let metrics_addr = match cfg.metrics_addr {
        Some(addr) => Some(metrics::serve(addr).await?),
        None => {
            metrics::handle();
            None
        }
    };
    ::metrics::gauge!(metrics::IMAGES_REFUSED).set(refused.len() as f64);
    for r in refused.iter() {
        tracing::warn!(target: "ecld_node", image = %r.image, code_cid = %r.code_cid, reason = %r.reason, file = %refused.path().display(), "image refused (remembered): its tasks are not claimed; remove it from the file and restart to try it again");
    }
    let mut inner = Inner {
        cfg,
        tuning,
        chain,
        fetcher,
        pool,
        journal: Mutex::new(journal),
        offers: Vec::new(),
        deploy_block,
        images: Mutex::new(HashMap::new()),
        released: Mutex::new(Setbacks::default()),
        refused: Mutex::new(refused),
        unread_ends: Mutex::new(HashMap::new()),
        clock: clock::ChainClock::default(),
        batcher: None,
        stopping: AtomicBool::new(false),
    };
    if !inner.cfg.batch_window.is_zero() {
        inner.batcher = Some(batch::Batcher::start(
            inner.chain.clone(),
            inner.cfg.batch_window,
            inner.cfg.batch_max,
        ));
    }
    inner.offers = register_offers(&inner).await?;
    let inner = Arc::new(inner);
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let handle = NodeHandle {
        address: inner.chain.address(),
        offers: inner.offers.iter().map(|(id, _)| *id).collect(),
        metrics_addr: metrics_addr.as_ref().map(|(a, _)| *a),
        stop,
        task: tokio::spawn(run(Arc::clone(&inner), stop_rx)),
        metrics_task: metrics_addr.map(|(_, t)| t),
    };
    tracing::info!(target: "ecld_node", address = %handle.address, offers = ?handle.offers, "node started");
    Ok(handle)
}

/// Registers each configured offer, or re-uses (and updates if the terms changed) the one the
/// journal remembers, so restarts do not pile up offers.
async fn register_offers(inner: &Inner) -> Result<Vec<(OfferId, OfferSpec)>, NodeError> {
    let mut out = Vec::new();
    let backoff = inner.tuning.chain_backoff;
    for (index, spec) in inner.cfg.offers.iter().enumerate() {
        let spec_hash = keccak256(serde_json::to_vec(spec).unwrap_or_default());
        let known = inner.journal(|j| j.state().offers.get(&index).copied());
        let id = match known {
            Some((_, id))
                if retry(backoff, "getOffer", || inner.chain.offer_matches(id, spec)).await? =>
            {
                id
            }
            Some((_, id)) => {
                match retry(backoff, "updateOffer", || inner.chain.update_offer(id, spec)).await {
                    Ok(()) => {
                        tracing::info!(target: "ecld_node", offer = %id, "offer terms updated");
                        id
                    }
                    Err(e) => {
                        tracing::warn!(target: "ecld_node", offer = %id, %e, "cannot update the remembered offer; registering a new one");
                        retry(backoff, "registerOffer", || inner.chain.register_offer(spec)).await?
                    }
                }
            }
            None => retry(backoff, "registerOffer", || inner.chain.register_offer(spec)).await?,
        };
        if known != Some((spec_hash, id)) {
            inner.journal(|j| j.append(&Entry::Offer { index, spec_hash, offer: id }))?;
        }
        tracing::info!(target: "ecld_node", offer = %id, slots = spec.slots, "offer on chain");
        out.push((id, spec.clone()));
    }
    Ok(out)
}

/// Messages from workers to the loop.
#[derive(Debug)]
enum Note {
    /// The worker of this task (of this generation) ended.
    Finished(TaskId, u64),
}

/// A task's worker, as the loop tracks it.
#[derive(Debug)]
struct Running {
    /// Distinguishes a worker from the one that replaced it.
    generation: u64,
    handle: JoinHandle<()>,
}

/// The workers in flight.
#[derive(Debug, Default)]
struct Workers {
    running: HashMap<TaskId, Running>,
    next_generation: u64,
}

impl Workers {
    fn contains(&self, task: &TaskId) -> bool {
        self.running.contains_key(task)
    }

    fn len(&self) -> usize {
        self.running.len()
    }

    fn is_empty(&self) -> bool {
        self.running.is_empty()
    }

    /// Forgets the worker of `task` if it is the one that ended.
    fn finished(&mut self, task: TaskId, generation: u64) {
        if self.running.get(&task).is_some_and(|r| r.generation == generation) {
            self.running.remove(&task);
        }
    }
}

/// The scheduling loop: follows the chain (woken by the `newHeads` subscription when there is
/// one, else every `poll_interval`), adopts and claims tasks, and tracks the workers.
async fn run(inner: Arc<Inner>, mut stop: watch::Receiver<bool>) -> Result<(), NodeError> {
    let (note_tx, mut note_rx) = mpsc::unbounded_channel::<Note>();
    let mut workers = Workers::default();
    let mut follower = follow::Follower::new(&inner);
    // Resume every task the journal holds: workers check the chain before acting.
    let resumed: Vec<TaskId> = inner.journal(|j| j.state().active().map(|(t, _)| t).collect());
    for task in resumed {
        tracing::info!(target: "ecld_node", task = %task, "resuming task from the journal");
        spawn_worker(&inner, &note_tx, &mut workers, task, false);
    }
    let wake = Arc::new(Notify::new());
    let (mode_tx, mode) = watch::channel(heads::Mode::Polling);
    ::metrics::gauge!(metrics::SUBSCRIBED).set(0.0);
    let heads = match inner.cfg.ws_url.clone() {
        Some(url) => {
            Some(tokio::spawn(heads::follow(url, Arc::clone(&wake), mode_tx, stop.clone())))
        }
        None => {
            tracing::info!(target: "ecld_node", every = ?inner.cfg.poll_interval, "no chain subscription (chain.ws_url = \"none\"); polling the chain");
            None
        }
    };
    let far = || tokio::time::Instant::now() + Duration::from_secs(86_400);
    let mut next_poll = tokio::time::Instant::now();
    let mut failures = 0u32;
    loop {
        let retry_at = inner.next_retry().map_or_else(far, tokio::time::Instant::from_std);
        let mut due = false;
        tokio::select! {
            _ = stop.changed() => break,
            Some(Note::Finished(task, generation)) = note_rx.recv() => {
                workers.finished(task, generation);
                let lost = inner.journal(|j| {
                    matches!(j.state().tasks.get(&task), Some(Phase::Done { end: End::Lost }))
                });
                if lost {
                    follower.reopen(task);
                }
                // A worker returns once its task is done in the journal; a task active again
                // (journaled while that worker was ending) needs a worker of its own.
                let active = inner.journal(|j| j.state().tasks.get(&task).is_some_and(Phase::is_active));
                if active && !workers.contains(&task) {
                    tracing::info!(target: "ecld_node", task = %task, "task journaled again as its worker ended; resuming it");
                    spawn_worker(&inner, &note_tx, &mut workers, task, false);
                }
            }
            () = tokio::time::sleep_until(next_poll) => due = true,
            // A new head (or a change of subscription): poll now, unless backing off.
            () = wake.notified() => due = failures == 0,
            // A task this node backed off from may be claimed again.
            () = tokio::time::sleep_until(retry_at) => {}
        }
        if due {
            match follower.poll(&inner).await {
                Ok(polled) => {
                    failures = 0;
                    for task in polled.adopted {
                        spawn_worker(&inner, &note_tx, &mut workers, task, false);
                    }
                    if polled.reorg {
                        recheck_held(&inner, &note_tx, &mut workers).await;
                    }
                    let every = if *mode.borrow() == heads::Mode::Subscribed {
                        inner.cfg.poll_interval.max(SUBSCRIBED_POLL_FLOOR)
                    } else {
                        inner.cfg.poll_interval
                    };
                    next_poll = tokio::time::Instant::now()
                        + if polled.caught_up { every } else { Duration::ZERO };
                }
                Err(e) => {
                    failures += 1;
                    let wait = inner.tuning.chain_backoff.delay(failures.min(8));
                    tracing::warn!(target: "ecld_node", %e, failures, retry_in_ms = wait.as_millis() as u64, "following the chain failed; retrying");
                    next_poll = tokio::time::Instant::now() + wait;
                }
            }
            inner.pool.reap();
        }
        claim_free_slots(&inner, &note_tx, &mut workers, &mut follower).await;
        ::metrics::gauge!(metrics::ACTIVE).set(workers.len() as f64);
    }
    if let Some(h) = heads {
        h.abort();
    }
    // Shutdown: no new claims; workers release what they have not started and finish the rest.
    inner.stopping.store(true, Ordering::SeqCst);
    tracing::info!(target: "ecld_node", tasks = workers.len(), "stopping: finishing or releasing held tasks");
    let deadline = tokio::time::Instant::now() + inner.tuning.shutdown_grace;
    while !workers.is_empty() {
        match tokio::time::timeout_at(deadline, note_rx.recv()).await {
            Ok(Some(Note::Finished(task, generation))) => workers.finished(task, generation),
            Ok(None) | Err(_) => break,
        }
    }
    for (task, r) in workers.running {
        tracing::warn!(target: "ecld_node", task = %task, "still in flight at shutdown; the journal resumes it at the next start");
        r.handle.abort();
    }
    inner.pool.clear();
    tracing::info!(target: "ecld_node", "node stopped");
    Ok(())
}

/// After a reorganisation: every task this node journaled as claimed is checked against the
/// new chain. Where the claim is gone, the worker (perhaps waiting for an enclave) is stopped
/// and a new one reconciles from the chain: re-claims the task if it is open again, drops it
/// (`Lost`) if it is gone or someone else holds it. Tasks already proven find out when they
/// submit (the contract refuses a proof for a task not held).
async fn recheck_held(
    inner: &Arc<Inner>,
    notes: &mpsc::UnboundedSender<Note>,
    workers: &mut Workers,
) {
    let held: Vec<(TaskId, OfferId)> = inner.journal(|j| {
        j.state()
            .active()
            .filter_map(|(t, p)| match p {
                Phase::Claimed { offer } => Some((t, *offer)),
                _ => None,
            })
            .collect()
    });
    for (task, offer) in held {
        match inner.chain.task_state(task).await {
            Ok(OnChain::HeldBy(o)) if o == offer => {}
            Ok(state) => {
                tracing::warn!(target: "ecld_node", task = %task, ?state, "this node's claim is gone after the reorganisation; re-checking the task against the chain");
                if let Some(r) = workers.running.remove(&task) {
                    r.handle.abort();
                }
                spawn_worker(inner, notes, workers, task, false);
            }
            Err(e) => {
                tracing::warn!(target: "ecld_node", task = %task, %e, "cannot re-check the task after the reorganisation; its worker finds out at its next chain call");
            }
        }
    }
}

fn spawn_worker(
    inner: &Arc<Inner>,
    notes: &mpsc::UnboundedSender<Note>,
    workers: &mut Workers,
    task: TaskId,
    fresh: bool,
) {
    if workers.contains(&task) {
        return;
    }
    let inner2 = Arc::clone(inner);
    let notes = notes.clone();
    workers.next_generation += 1;
    let generation = workers.next_generation;
    let span = tracing::info_span!(target: "ecld_node", "task", task = %task);
    let handle = tokio::spawn(
        async move {
            worker::drive(&inner2, task, fresh).await;
            let _ = notes.send(Note::Finished(task, generation));
        }
        .instrument(span),
    );
    workers.running.insert(task, Running { generation, handle });
}

/// Claims open tasks that fit an offer with a free slot, oldest first.
async fn claim_free_slots(
    inner: &Arc<Inner>,
    notes: &mpsc::UnboundedSender<Note>,
    workers: &mut Workers,
    follower: &mut follow::Follower,
) {
    if inner.stopping.load(Ordering::SeqCst) {
        return;
    }
    let mut used: BTreeMap<OfferId, u32> = BTreeMap::new();
    inner.journal(|j| {
        for (_, phase) in j.state().active() {
            if let Some(o) = phase.offer() {
                *used.entry(o).or_default() += 1;
            }
        }
    });
    let mut free: Vec<(OfferId, OfferSpec, u32)> = inner
        .offers
        .iter()
        .map(|(id, s)| (*id, s.clone(), s.slots.saturating_sub(used.get(id).copied().unwrap_or(0))))
        .filter(|(_, _, f)| *f > 0)
        .collect();
    if free.is_empty() {
        return;
    }
    // Deadlines are checked against chain time (the contract compares them with
    // `block.timestamp`), with room for the run: see `clock`.
    let chain_now = inner.clock.now();
    let median = inner.clock.median();
    let floor = inner.tuning.run_allowance_floor;
    let mut taken: HashSet<TaskId> = HashSet::new();
    let candidates: Vec<TaskInfo> = follower.open().cloned().collect();
    for info in candidates {
        if free.iter().all(|(_, _, f)| *f == 0) {
            break;
        }
        if workers.contains(&info.id) || inner.held_back(info.id) {
            continue;
        }
        let allowance = clock::run_allowance(info.max_runtime_s, median, floor);
        if !clock::claimable(info.deadline, chain_now, inner.tuning.deadline_margin, allowance) {
            tracing::debug!(target: "ecld_node", task = %info.id, deadline = info.deadline, chain_now, allowance, "not claiming: too near its deadline in chain time");
            continue;
        }
        let Ok(image) = inner.image(info.image).await else { continue };
        if inner.refuses(info.image, &image) {
            tracing::debug!(target: "ecld_node", task = %info.id, image = %info.image, "not claiming: the image is refused");
            continue;
        }
        let Some(slot) = free.iter_mut().find(|(_, s, f)| *f > 0 && info.fits(s, image.platforms))
        else {
            continue;
        };
        let offer = slot.0;
        let wrote = inner.journal(|j| {
            j.append(&Entry::Info { info: info.clone() })?;
            j.step(info.id, Step::Claiming { offer })
        });
        if let Err(e) = wrote {
            tracing::error!(target: "ecld_node", task = %info.id, %e, "cannot journal the claim; not claiming");
            continue;
        }
        slot.2 -= 1;
        taken.insert(info.id);
        spawn_worker(inner, notes, workers, info.id, true);
    }
    follower.forget(&taken);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Backoff {
        Tuning::default().release_backoff
    }

    #[test]
    fn a_released_task_is_retried_after_a_growing_backoff_then_left() {
        let mut s = Setbacks::default();
        let task = TaskId::new(7).unwrap();
        let t0 = Instant::now();
        assert!(!s.held_back(task, t0));
        let (n, wait) = s.record(task, 2_000, policy(), 1_000, t0);
        let wait = wait.unwrap();
        assert_eq!(n, 1);
        assert!(wait >= Duration::from_secs(1) && wait <= Duration::from_secs(2), "{wait:?}");
        assert!(s.held_back(task, t0));
        assert_eq!(s.next_retry(t0), Some(t0 + wait));
        assert!(!s.held_back(task, t0 + wait));
        let (n, wait) = s.record(task, 2_000, policy(), 1_001, t0);
        let wait = wait.unwrap();
        assert_eq!(n, 2);
        assert!(wait >= Duration::from_secs(2) && wait <= Duration::from_secs(4), "{wait:?}");
        // The third failure is the last: held back for good, no timer for it.
        assert_eq!(s.record(task, 2_000, policy(), 1_002, t0), (3, None));
        assert!(s.held_back(task, t0 + Duration::from_secs(3_600)));
        assert_eq!(s.next_retry(t0), None);
        // Past its deadline the record is dropped (at the next release of any task).
        let other = TaskId::new(8).unwrap();
        s.record(other, 9_000, policy(), 2_001, t0);
        assert!(!s.held_back(task, t0));
        assert!(s.held_back(other, t0));
    }

    #[test]
    fn a_task_of_a_refused_image_is_given_up_at_the_first_release() {
        let mut s = Setbacks::default();
        let task = TaskId::new(9).unwrap();
        let t0 = Instant::now();
        s.abandon(task, 2_000, 1_000);
        assert!(s.held_back(task, t0 + Duration::from_secs(3_600)));
        assert_eq!(s.next_retry(t0), None, "no retry is scheduled");
        // A task given up after backoffs stays given up when abandoned as well.
        let other = TaskId::new(10).unwrap();
        assert!(s.record(other, 2_000, policy(), 1_000, t0).1.is_some());
        s.abandon(other, 2_000, 1_000);
        assert!(s.held_back(other, t0 + Duration::from_secs(3_600)));
        assert_eq!(s.next_retry(t0), None);
    }
}
