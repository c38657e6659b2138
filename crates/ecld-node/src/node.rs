//! The running node: start-up (offers, resume), the scheduling loop, shutdown.

mod follow;
mod worker;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use alloy::primitives::{Address, keccak256};
use ecld_contracts::Deployment;
use ecld_crypto::SignerKey;
use ecld_store::KuboClient;
use ecld_types::{ImageId, OfferId, TaskId};
use tokio::{sync::mpsc, task::JoinHandle};
use tracing::Instrument;

use crate::{
    chain::{Chain, ChainError, ImageRecord, TaskInfo},
    config::{Contracts, NodeConfig, OfferSpec},
    enclave::{Launcher, Pool},
    fetch::Fetcher,
    journal::{Entry, Journal, JournalError},
    metrics,
    retry::{Backoff, retry},
    task::Step,
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
    /// Open tasks whose deadline is nearer than this are not claimed.
    pub deadline_margin: Duration,
    /// A task this node released because it could not run it (image or enclave failure) is
    /// not claimed again by this node for this long, so that another node gets it and a
    /// broken image does not turn into an endless claim/release loop paying gas.
    pub release_cooldown: Duration,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            store_backoff: Backoff::STORE,
            chain_backoff: Backoff::CHAIN,
            shutdown_grace: Duration::from_secs(60),
            scan_lookback: 100_000,
            deadline_margin: Duration::from_secs(5),
            release_cooldown: Duration::from_secs(300),
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
    /// Tasks this node released because it could not run them, and when.
    released: Mutex<HashMap<TaskId, Instant>>,
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

    /// Remembers that this node released `task` because it could not run it.
    fn released_here(&self, task: TaskId) {
        if let Ok(mut m) = self.released.lock() {
            let cooldown = self.tuning.release_cooldown;
            m.retain(|_, at| at.elapsed() < cooldown);
            m.insert(task, Instant::now());
        }
    }

    /// Whether this node released `task` within the cooldown.
    fn recently_released(&self, task: TaskId) -> bool {
        self.released.lock().is_ok_and(|m| {
            m.get(&task).is_some_and(|at| at.elapsed() < self.tuning.release_cooldown)
        })
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
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
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
    let metrics_addr = match cfg.metrics_addr {
        Some(addr) => Some(metrics::serve(addr).await?),
        None => {
            metrics::handle();
            None
        }
    };
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
        released: Mutex::new(HashMap::new()),
        stopping: AtomicBool::new(false),
    };
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
    /// The worker of this task ended.
    Finished(TaskId),
}

/// The scheduling loop.
async fn run(
    inner: Arc<Inner>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), NodeError> {
    let (note_tx, mut note_rx) = mpsc::unbounded_channel::<Note>();
    let mut running: HashMap<TaskId, JoinHandle<()>> = HashMap::new();
    let mut follower = follow::Follower::new(&inner);
    // Resume every task the journal holds: workers check the chain before acting.
    let resumed: Vec<TaskId> = inner.journal(|j| j.state().active().map(|(t, _)| t).collect());
    for task in resumed {
        tracing::info!(target: "ecld_node", task = %task, "resuming task from the journal");
        spawn_worker(&inner, &note_tx, &mut running, task, false);
    }
    let mut tick = tokio::time::interval(inner.cfg.poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failures = 0u32;
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            Some(Note::Finished(task)) = note_rx.recv() => {
                running.remove(&task);
            }
            _ = tick.tick() => {
                match follower.poll(&inner).await {
                    Ok(adopt) => {
                        failures = 0;
                        for task in adopt {
                            spawn_worker(&inner, &note_tx, &mut running, task, false);
                        }
                    }
                    Err(e) => {
                        failures += 1;
                        let wait = inner.tuning.chain_backoff.delay(failures.min(8));
                        tracing::warn!(target: "ecld_node", %e, failures, "following the chain failed; retrying");
                        tokio::time::sleep(wait).await;
                    }
                }
                inner.pool.reap();
            }
        }
        claim_free_slots(&inner, &note_tx, &mut running, &mut follower).await;
        ::metrics::gauge!(metrics::ACTIVE).set(running.len() as f64);
    }
    // Shutdown: no new claims; workers release what they have not started and finish the rest.
    inner.stopping.store(true, Ordering::SeqCst);
    tracing::info!(target: "ecld_node", tasks = running.len(), "stopping: finishing or releasing held tasks");
    let deadline = tokio::time::Instant::now() + inner.tuning.shutdown_grace;
    while !running.is_empty() {
        match tokio::time::timeout_at(deadline, note_rx.recv()).await {
            Ok(Some(Note::Finished(task))) => {
                running.remove(&task);
            }
            Ok(None) | Err(_) => break,
        }
    }
    for (task, h) in running {
        tracing::warn!(target: "ecld_node", task = %task, "still in flight at shutdown; the journal resumes it at the next start");
        h.abort();
    }
    inner.pool.clear();
    tracing::info!(target: "ecld_node", "node stopped");
    Ok(())
}

fn spawn_worker(
    inner: &Arc<Inner>,
    notes: &mpsc::UnboundedSender<Note>,
    running: &mut HashMap<TaskId, JoinHandle<()>>,
    task: TaskId,
    fresh: bool,
) {
    if running.contains_key(&task) {
        return;
    }
    let inner2 = Arc::clone(inner);
    let notes = notes.clone();
    let span = tracing::info_span!(target: "ecld_node", "task", task = %task);
    let h = tokio::spawn(
        async move {
            worker::drive(&inner2, task, fresh).await;
            let _ = notes.send(Note::Finished(task));
        }
        .instrument(span),
    );
    running.insert(task, h);
}

/// Claims open tasks that fit an offer with a free slot, oldest first.
async fn claim_free_slots(
    inner: &Arc<Inner>,
    notes: &mpsc::UnboundedSender<Note>,
    running: &mut HashMap<TaskId, JoinHandle<()>>,
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
    let horizon = now_unix() + inner.tuning.deadline_margin.as_secs();
    let mut taken: HashSet<TaskId> = HashSet::new();
    let candidates: Vec<TaskInfo> = follower.open().cloned().collect();
    for info in candidates {
        if free.iter().all(|(_, _, f)| *f == 0) {
            break;
        }
        if info.deadline < horizon
            || running.contains_key(&info.id)
            || inner.recently_released(info.id)
        {
            continue;
        }
        let Ok(image) = inner.image(info.image).await else { continue };
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
        spawn_worker(inner, notes, running, info.id, true);
    }
    follower.forget(&taken);
}
