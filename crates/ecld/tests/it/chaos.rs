//! Fault injection: tasks flow from several requesters while the chain (`ecld devnet`), the
//! store, the CAS and the node — four OS processes of their own on fixed loopback ports — are
//! killed with SIGKILL and started again on their data directories at seeded random moments,
//! the node is paused (SIGSTOP/SIGCONT) and enclave processes are killed. Clients retry what
//! failed because a service was down. At the end every task on chain must be final (settled,
//! or reclaimed by its requester after its deadline), submitted exactly once, and nearly every
//! task with a long deadline settled by the node ([`LIVENESS_FLOOR_PERCENT`]); the
//! Marketplace's books and the token balances must balance to the unit, every settled result
//! must download, verify and decrypt to the expected output, no service may have exited on
//! its own or left a process behind, and the services' logs must hold no secret of the stack
//! (`e2e_stack::log_scan`).
//!
//! Environment: `ECLD_CHAOS_TASKS` (default 24), `ECLD_CHAOS_CLIENTS` (4), `ECLD_CHAOS_SEED`
//! (printed; reproduces the fault schedule and the task plan), `ECLD_CHAOS_GAP_MS` (`300,1200`:
//! time between faults), `ECLD_CHAOS_DOWN_MS` (`100,1500`: downtime of a killed service or
//! pause of the node), `ECLD_CHAOS_MIN_FAULT_S` (25: faults go on at least this long, and
//! until every task is submitted), `ECLD_CHAOS_RECOVERY_S` (30: quiet time for tasks in flight
//! after the last fault), `ECLD_CHAOS_LOG` (`RUST_LOG` of the services, default `warn`; logs go to
//! `<data dir>/logs`), `ECLD_CHAOS_REPORT` (write the figures there as JSON),
//! `ECLD_CHAOS_KEEP` (keep the data directory). `scripts/chaos` runs it at 1,000 tasks.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers fail loudly on purpose.

pub(crate) mod services;

use std::{
    collections::{BTreeMap, HashMap},
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use alloy::{
    primitives::{Address, B256, U256, keccak256},
    providers::Provider,
    signers::local::PrivateKeySigner,
    sol_types::SolEvent,
};
use ecld_contracts::{Deployment, Marketplace};
use ecld_sdk::{Client, ClientConfig, Error, OfferChoice, TaskRequest, TaskState};
use ecld_types::{ImageId, StatusCode, TaskId, content_hash};
use serde_json::json;

use self::services::{Fault, Ports, Rng, Schedule, Services, Supervisor};
use crate::e2e_stack::log_scan::{self, Secret};

/// Longest a client keeps retrying one call through an outage.
const OUTAGE: Duration = Duration::from_secs(180);
/// Maximum price of the open tasks (above the stack node's offer price, 1e15).
const MAX_PRICE: u64 = 2_000_000_000_000_000;
/// Dev accounts 0–2 are the stack's (deployer, demo user, node); requesters start here.
const FIRST_REQUESTER: usize = 3;
/// Deadline of three tasks in four: far beyond any run, so only a node that stopped serving
/// leaves one of them to its requester's reclaim.
const LONG_DEADLINE: Duration = Duration::from_secs(6 * 3600);
/// Liveness floor: at least this share (percent) of the tasks with [`LONG_DEADLINE`] must end
/// with a node's proof rather than a reclaim. Books that balance prove nothing about service:
/// a node that settles nothing, its tasks all reclaimed once the harness moves the clock, keeps
/// them balanced too. The tasks with a 4–24 s deadline are left out on purpose: they exist to
/// exercise the reclaim path and by design many of them are reclaimed.
const LIVENESS_FLOOR_PERCENT: usize = 95;

struct Options {
    tasks: usize,
    clients: usize,
    seed: u64,
    gap_ms: (u64, u64),
    down_ms: (u64, u64),
    min_faults: Duration,
    recovery: Duration,
    rust_log: String,
}

fn env_pair(name: &str, default: (u64, u64)) -> (u64, u64) {
    std::env::var(name)
        .ok()
        .and_then(|v| {
            let (a, b) = v.split_once(',')?;
            Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
        })
        .filter(|(a, b)| a <= b)
        .unwrap_or(default)
}

fn env_num<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

impl Options {
    fn from_env() -> Self {
        Self {
            tasks: env_num("ECLD_CHAOS_TASKS").unwrap_or(24),
            clients: env_num::<usize>("ECLD_CHAOS_CLIENTS").unwrap_or(4).clamp(1, 16),
            seed: env_num("ECLD_CHAOS_SEED").unwrap_or_else(|| {
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64);
                (t ^ u64::from(std::process::id())) % 1_000_000_007
            }),
            gap_ms: env_pair("ECLD_CHAOS_GAP_MS", (300, 1200)),
            down_ms: env_pair("ECLD_CHAOS_DOWN_MS", (100, 1500)),
            min_faults: Duration::from_secs(env_num("ECLD_CHAOS_MIN_FAULT_S").unwrap_or(25)),
            recovery: Duration::from_secs(env_num("ECLD_CHAOS_RECOVERY_S").unwrap_or(30)),
            rust_log: std::env::var("ECLD_CHAOS_LOG").unwrap_or_else(|_| "warn".to_owned()),
        }
    }
}

/// What the clients saw.
#[derive(Default)]
struct Counters {
    /// Tasks on chain so far.
    submitted: AtomicU64,
    /// Calls retried because the chain or the store did not answer.
    retries: AtomicU64,
    /// Submissions that failed at the client.
    submit_failures: AtomicU64,
    /// ... of which had reached the chain (found by the input's hash).
    submit_landed: AtomicU64,
    /// Submissions given up after every attempt.
    abandoned: AtomicU64,
    /// Reclaims sent by requesters whose task's deadline passed during the run.
    reclaims: AtomicU64,
}

fn transient(e: &Error) -> bool {
    matches!(e, Error::Chain { .. } | Error::Store { .. })
}

fn chain_err(c: &Client, e: impl std::fmt::Display) -> Error {
    Error::Chain { url: c.rpc_url().to_owned(), reason: e.to_string() }
}

/// Runs `f` until it succeeds, retrying errors that mean "the chain or store is down".
async fn patiently<T, Fut>(what: &str, k: &Counters, mut f: impl FnMut() -> Fut) -> T
where
    Fut: Future<Output = Result<T, Error>>,
{
    let start = Instant::now();
    let mut delay = Duration::from_millis(100);
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) if transient(&e) && start.elapsed() < OUTAGE => {
                k.retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(e) => panic!("{what} failed after {:?}: {e}", start.elapsed()),
        }
    }
}

async fn head_time(c: &Client) -> Result<u64, Error> {
    let block = c
        .provider()
        .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
        .await
        .map_err(|e| chain_err(c, e))?;
    Ok(block.map_or(0, |b| b.header.timestamp))
}

async fn block_number(c: &Client) -> Result<u64, Error> {
    c.provider().get_block_number().await.map_err(|e| chain_err(c, e))
}

/// Whether the Marketplace still holds the task (not settled, not reclaimed).
async fn is_live(c: &Client, id: TaskId) -> Result<bool, Error> {
    let t = Marketplace::new(c.deployment().marketplace, c.provider())
        .getTask(U256::from(id.get()))
        .call()
        .await
        .map_err(|e| chain_err(c, e))?;
    Ok(t.commitment != alloy::primitives::FixedBytes::<24>::ZERO)
}

/// `TaskSubmitted` events from `from` on, of `requester` if given.
async fn submitted(
    c: &Client,
    requester: Option<Address>,
    from: u64,
) -> Result<Vec<Marketplace::TaskSubmitted>, Error> {
    let mut filter = alloy::rpc::types::Filter::new()
        .address(c.deployment().marketplace)
        .event_signature(Marketplace::TaskSubmitted::SIGNATURE_HASH)
        .from_block(from);
    if let Some(r) = requester {
        filter = filter.topic2(r.into_word());
    }
    let logs = c.provider().get_logs(&filter).await.map_err(|e| chain_err(c, e))?;
    Ok(logs
        .into_iter()
        .map(|l| l.log_decode::<Marketplace::TaskSubmitted>().unwrap().inner.data)
        .collect())
}

/// How many `E` events the Marketplace emitted from `from` on.
async fn count_events<E: SolEvent>(c: &Client, from: u64) -> Result<usize, Error> {
    let filter = alloy::rpc::types::Filter::new()
        .address(c.deployment().marketplace)
        .event_signature(E::SIGNATURE_HASH)
        .from_block(from);
    Ok(c.provider().get_logs(&filter).await.map_err(|e| chain_err(c, e))?.len())
}

fn task_id(raw: U256) -> TaskId {
    TaskId::new(u64::try_from(raw).unwrap()).unwrap()
}

/// One requester: its own account and age identity.
struct Requester {
    client: Client,
    account: Address,
}

/// A task the harness means to run.
struct Plan {
    input: Vec<u8>,
    deadline: Duration,
}

/// How many tasks of one kind there were, and how many of them ended with a node's proof.
#[derive(Default)]
struct Served {
    tasks: usize,
    proved: usize,
}

impl Served {
    fn add(&mut self, proved: bool) {
        self.tasks += 1;
        self.proved += usize::from(proved);
    }
}

/// A submitted task, as its requester tracks it.
struct Sent {
    id: TaskId,
    /// Its deadline (chain time): reclaimable after it.
    deadline: u64,
}

/// Submits one task, surviving outages: the ciphertext is made once, so a submission that
/// failed at the client but reached the chain is recognised by its input hash.
async fn submit_one(
    r: &Requester,
    image: ImageId,
    plan: &Plan,
    k: &Counters,
) -> Option<(TaskId, B256)> {
    let c = &r.client;
    let mut req = TaskRequest::new(image, plan.input.clone());
    req.offer = OfferChoice::Open;
    req.price = Some(U256::from(MAX_PRICE));
    req.deadline = plan.deadline;
    let ct = patiently("encrypt", k, || c.encrypt_input(&req)).await;
    let hash = content_hash(&ct);
    let mut delay = Duration::from_millis(200);
    for _ in 0..40 {
        let cid = patiently("upload", k, || c.upload(&ct)).await;
        let from = patiently("block number", k, || block_number(c)).await;
        match c.submit_uploaded(&req, &cid, hash).await {
            Ok(s) => return Some((s.task, hash)),
            Err(e) => {
                k.submit_failures.fetch_add(1, Ordering::Relaxed);
                let landed = patiently("find the submission", k, || {
                    submitted(c, Some(r.account), from.saturating_sub(1))
                })
                .await
                .into_iter()
                .find(|ev| ev.inputHash == hash);
                if let Some(ev) = landed {
                    k.submit_landed.fetch_add(1, Ordering::Relaxed);
                    return Some((task_id(ev.taskId), hash));
                }
                if !transient(&e) && !matches!(e, Error::Reverted { .. }) {
                    panic!("submit failed: {e}");
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
    k.abandoned.fetch_add(1, Ordering::Relaxed);
    None
}

/// The requester's round: which of its tasks are final, and a reclaim for each whose
/// deadline has passed. Returns the tasks still pending.
async fn sweep(r: &Requester, pending: Vec<Sent>, k: &Counters) -> Vec<Sent> {
    let c = &r.client;
    let now = patiently("head", k, || head_time(c)).await;
    let mut left = Vec::new();
    for s in pending {
        if !patiently("getTask", k, || is_live(c, s.id)).await {
            continue;
        }
        if now > s.deadline {
            // Refused when a node settled it in between, or the chain went away: the next
            // round looks again.
            if c.reclaim(s.id).await.is_ok() {
                k.reclaims.fetch_add(1, Ordering::Relaxed);
            }
        }
        left.push(s);
    }
    left
}

/// One requester's run: submits its plans in order, `pace` apart, sweeping now and then, then
/// sweeps until every task is final or `give_up` is set. Returns its plans by ciphertext hash.
async fn drive(
    r: Arc<Requester>,
    image: ImageId,
    plans: Vec<Plan>,
    pace: Duration,
    k: Arc<Counters>,
    submitting: Arc<AtomicUsize>,
    give_up: Arc<AtomicBool>,
) -> HashMap<B256, Plan> {
    let mut sent = HashMap::new();
    let mut pending = Vec::new();
    let mut last_sweep = Instant::now();
    for plan in plans {
        if let Some((id, hash)) = submit_one(&r, image, &plan, &k).await {
            let deadline = patiently("task", &k, || r.client.task(id)).await.deadline;
            pending.push(Sent { id, deadline });
            k.submitted.fetch_add(1, Ordering::Relaxed);
            sent.insert(hash, plan);
        }
        if last_sweep.elapsed() > Duration::from_secs(2) {
            pending = sweep(&r, pending, &k).await;
            last_sweep = Instant::now();
        }
        tokio::time::sleep(pace).await;
    }
    submitting.fetch_sub(1, Ordering::SeqCst);
    while !pending.is_empty() && !give_up.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        pending = sweep(&r, pending, &k).await;
    }
    sent
}

/// The seeded plan: random inputs (the `hash` program's output is checkable), and a quarter
/// of the tasks with a deadline short enough to pass while the node is down or busy.
fn plans(opts: &Options) -> Vec<Vec<Plan>> {
    let mut rng = Rng::new(opts.seed ^ 0x5eed_7a5c);
    let mut out: Vec<Vec<Plan>> = (0..opts.clients).map(|_| Vec::new()).collect();
    for i in 0..opts.tasks {
        let len = 1 + usize::try_from(rng.below(4096)).unwrap();
        let input: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let deadline =
            if rng.below(4) == 0 { Duration::from_secs(4 + rng.below(21)) } else { LONG_DEADLINE };
        out[i % opts.clients].push(Plan { input, deadline });
    }
    out
}

/// Keys of the devnet's dev accounts (derived from the public test mnemonic).
async fn dev_keys() -> Vec<String> {
    let devnet = ecld_devnet::spawn(ecld_devnet::DevnetConfig::ephemeral()).await.unwrap();
    let keys = devnet.private_keys();
    devnet.shutdown().await.unwrap();
    keys
}

/// Token balances of `accounts`, summed.
async fn total_balance(c: &Client, accounts: &[Address], k: &Counters) -> U256 {
    let mut sum = U256::ZERO;
    for a in accounts {
        sum += patiently("balance", k, || c.balance(Some(*a))).await;
    }
    sum
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_end_final_and_books_balance_while_every_service_is_killed_and_restarted() {
    let opts = Options::from_env();
    let started = Instant::now();
    eprintln!(
        "chaos: {} tasks, {} clients, seed {} (reproduce with ECLD_CHAOS_SEED={})",
        opts.tasks, opts.clients, opts.seed, opts.seed
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().canonicalize().unwrap();

    // The deployment, the image and the node's offers, once, by `ecld up` on fixed ports.
    let ports = Ports::pick(&mut Rng::new(opts.seed ^ u64::from(std::process::id())));
    let programs = dir.join("programs");
    std::fs::create_dir_all(&programs).unwrap();
    std::fs::copy(crate::e2e_stack::programs_dir().join("hash.wasm"), programs.join("hash.wasm"))
        .unwrap();
    let info = services::set_up(&dir, ports, &programs);
    let node_account: Address = info["node"]["account"].as_str().unwrap().parse().unwrap();
    let services = Services::start(&dir, ports, &opts.rust_log);

    // Requesters: dev accounts 3.. (funded with tokens at deployment), each its own identity.
    let deployment_file = dir.join("deployment.json");
    let deployment = Deployment::load(&deployment_file).unwrap();
    let config = ClientConfig {
        rpc: format!("http://127.0.0.1:{}", ports.rpc),
        store: format!("http://127.0.0.1:{}", ports.store),
        cas: None,
        cas_token: None,
        deployment: deployment_file,
        key: None,
        identity: None,
        sim_platform_keys: Vec::new(),
    };
    let keys = dev_keys().await;
    let mut requesters = Vec::new();
    for key in &keys[FIRST_REQUESTER..FIRST_REQUESTER + opts.clients] {
        let wallet: PrivateKeySigner = key.parse().unwrap();
        let account = wallet.address();
        let identity = ecld_crypto::AgeIdentity::generate();
        let client =
            Client::with_parts(&config, deployment, Some(wallet), Some(identity)).await.unwrap();
        requesters.push(Arc::new(Requester { client, account }));
    }
    let c = requesters[0].client.clone();
    let k = Arc::new(Counters::default());
    let image = c.resolve_image("hash").await.unwrap();
    let offer_price = c
        .offers()
        .await
        .unwrap()
        .into_iter()
        .find(|o| o.image == Some(image.id) && o.node == node_account)
        .expect("the node's offer for the hash image")
        .price;
    let mut holders: Vec<Address> = requesters.iter().map(|r| r.account).collect();
    holders.push(node_account);
    holders.push(deployment.marketplace);
    let tokens_before = total_balance(&c, &holders, &k).await;
    let node_before = c.balance(Some(node_account)).await.unwrap();
    let ledger_before = c.ledger().await.unwrap();

    // Faults from now on.
    let supervisor = Supervisor::spawn(
        services,
        Schedule { seed: opts.seed, gap_ms: opts.gap_ms, downtime_ms: opts.down_ms },
    );
    let faults_started = Instant::now();
    let submitting = Arc::new(AtomicUsize::new(opts.clients));
    let give_up = Arc::new(AtomicBool::new(false));
    let mut drivers = Vec::new();
    // Submissions spread over the minimum fault time, so that faults hit tasks in flight.
    let per_client = u32::try_from(opts.tasks.div_ceil(opts.clients).max(1)).unwrap();
    let pace = opts.min_faults / per_client;
    for (r, p) in requesters.iter().zip(plans(&opts)) {
        drivers.push(tokio::spawn(drive(
            r.clone(),
            image.id,
            p,
            pace,
            k.clone(),
            submitting.clone(),
            give_up.clone(),
        )));
    }
    // Faults go on while tasks are submitted, and until every kind has hit at least once.
    let mut progress = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let counts = supervisor.counts();
        let every_kind = Fault::ALL.iter().all(|f| counts.get(f).copied().unwrap_or(0) > 0);
        if submitting.load(Ordering::SeqCst) == 0
            && every_kind
            && faults_started.elapsed() >= opts.min_faults
        {
            break;
        }
        if progress.elapsed() > Duration::from_secs(30) {
            progress = Instant::now();
            eprintln!(
                "chaos: {:.0}s: {} of {} tasks submitted, {} faults, {} client retries",
                started.elapsed().as_secs_f64(),
                k.submitted.load(Ordering::Relaxed),
                opts.tasks,
                counts.values().sum::<u32>(),
                k.retries.load(Ordering::Relaxed)
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(3600 + opts.tasks as u64 * 10),
            "the run does not end: faults so far {counts:?}"
        );
    }
    supervisor.calm();
    let chaos_took = faults_started.elapsed();
    eprintln!(
        "chaos: faults stop after {:.1}s: {:?}",
        chaos_took.as_secs_f64(),
        supervisor.counts()
    );

    // Quiet time: tasks in flight settle; requesters reclaim what passed its deadline.
    let quiet_until = Instant::now() + opts.recovery;
    while Instant::now() < quiet_until && drivers.iter().any(|d| !d.is_finished()) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    give_up.store(true, Ordering::SeqCst);
    let mut sent: Vec<HashMap<B256, Plan>> = Vec::new();
    for d in drivers {
        sent.push(d.await.unwrap());
    }

    // Every task on chain, whoever's it is.
    let on_chain = patiently("tasks", &k, || submitted(&c, None, deployment.deploy_block)).await;
    let mut failures: Vec<String> = Vec::new();
    let by_account: HashMap<Address, usize> =
        requesters.iter().enumerate().map(|(i, r)| (r.account, i)).collect();

    // Tasks still live now wait for a node that will not come in time (the node does not
    // claim a task it released for 5 minutes): the requester takes the escrow back after the
    // deadline, which the harness brings forward by advancing the chain's clock.
    let mut live = Vec::new();
    for ev in &on_chain {
        let id = task_id(ev.taskId);
        if patiently("getTask", &k, || is_live(&c, id)).await {
            live.push((id, ev.requester, ev.deadline));
        }
    }
    let mut reclaimed_after_advance = 0usize;
    if !live.is_empty() {
        // `evm_increaseTime` adds to the wall clock (the next block is stamped wall clock +
        // offset, at least its parent + 1), and the chain may run ahead of the wall clock: step
        // from the earlier of the two so the next block is past every deadline either way.
        let head = patiently("head", &k, || head_time(&c)).await;
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let latest = live.iter().map(|(_, _, d)| *d).max().unwrap();
        let step = latest.saturating_sub(head.min(wall)) + 2;
        c.provider()
            .raw_request::<_, serde_json::Value>("evm_increaseTime".into(), (step,))
            .await
            .unwrap();
        c.provider()
            .raw_request::<_, serde_json::Value>("evm_mine".into(), json!([]))
            .await
            .unwrap();
        for (id, requester, _) in &live {
            let r = &requesters[by_account[requester]];
            let reclaim = r.client.reclaim(*id).await;
            if reclaim.is_ok() {
                reclaimed_after_advance += 1;
            } else if patiently("getTask", &k, || is_live(&c, *id)).await {
                failures.push(format!(
                    "task {id} cannot be reclaimed after its deadline: {:?}",
                    reclaim.err()
                ));
            }
        }
    }

    // Final states, and every result verified and decrypted.
    let mut states: BTreeMap<String, usize> = BTreeMap::new();
    let (mut verified, mut paid_tasks, mut not_final) = (0usize, 0u64, 0usize);
    let (mut long, mut short) = (Served::default(), Served::default());
    let mut results = Vec::new();
    for ev in &on_chain {
        let id = task_id(ev.taskId);
        let Some(&who) = by_account.get(&ev.requester) else {
            failures.push(format!("task {id} was submitted by an unknown account"));
            continue;
        };
        let r = &requesters[who];
        let plan = sent[who].get(&ev.inputHash);
        let served = match plan {
            Some(p) if p.deadline == LONG_DEADLINE => Some(&mut long),
            Some(_) => Some(&mut short),
            None => None,
        };
        let info = patiently("task", &k, || r.client.task(id)).await;
        let key = match info.state {
            TaskState::Done { status } => {
                if status.code() < StatusCode::FIRST_SYSTEM_CODE {
                    paid_tasks += 1;
                }
                if let Some(s) = served {
                    s.add(true);
                }
                match check_result(&r.client, id, plan.map(|p| &p.input), &k).await {
                    Ok(stdout) => {
                        verified += 1;
                        results.push(Secret::bytes(format!("the result of task {id}"), stdout));
                    }
                    Err(e) => failures.push(format!("task {id}: {e}")),
                }
                format!("settled: {status}")
            }
            TaskState::Reclaimed => {
                if let Some(s) = served {
                    s.add(false);
                }
                "reclaimed".to_owned()
            }
            other => {
                if let Some(s) = served {
                    s.add(false);
                }
                not_final += 1;
                failures.push(format!("task {id} is not final: {other}"));
                other.to_string()
            }
        };
        *states.entry(key).or_default() += 1;
    }
    if long.tasks == 0 {
        failures
            .push("no task had a long deadline: the liveness floor measured nothing".to_owned());
    } else if long.proved * 100 < LIVENESS_FLOOR_PERCENT * long.tasks {
        failures.push(format!(
            "liveness: {} of {} tasks with a {} s deadline ended with a node's proof, below the \
             floor of {LIVENESS_FLOOR_PERCENT}% (the other {} were reclaimed or are not final; \
             {reclaimed_after_advance} reclaimed only after the harness advanced chain time)",
            long.proved,
            long.tasks,
            LONG_DEADLINE.as_secs(),
            long.tasks - long.proved,
        ));
    }
    // Each plan is encrypted once and its submission looked up by input hash before it is sent
    // again, so the same (requester, input hash) twice on chain is a task submitted twice.
    let mut copies: HashMap<(Address, B256), usize> = HashMap::new();
    for ev in &on_chain {
        *copies.entry((ev.requester, ev.inputHash)).or_default() += 1;
    }
    let duplicates: usize = copies.values().map(|n| n - 1).sum();
    if duplicates > 0 {
        failures.push(format!("{duplicates} submissions on chain repeat an earlier one"));
    }

    let from = deployment.deploy_block;
    let claims =
        patiently("claims", &k, || count_events::<Marketplace::TaskClaimed>(&c, from)).await;
    let releases =
        patiently("releases", &k, || count_events::<Marketplace::TaskReleased>(&c, from)).await;

    // Tokens: the Marketplace's books, and every token between requesters, node and escrow.
    let ledger = patiently("ledger", &k, || c.ledger()).await;
    let tokens_after = total_balance(&c, &holders, &k).await;
    let node_gain = patiently("balance", &k, || c.balance(Some(node_account))).await - node_before;
    let escrowed = ledger.escrowed - ledger_before.escrowed;
    let paid = ledger.paid - ledger_before.paid;
    let refunded = ledger.refunded - ledger_before.refunded;
    let diff = |a: U256, b: U256| if a > b { a - b } else { b - a };
    let unaccounted = diff(ledger.escrowed, ledger.paid + ledger.refunded + ledger.held)
        + diff(ledger.held, ledger.balance)
        + diff(tokens_before, tokens_after)
        + diff(node_gain, paid)
        + diff(paid, offer_price * U256::from(paid_tasks));
    if !ledger.held.is_zero() {
        failures
            .push(format!("the Marketplace still holds {} after every task ended", ledger.held));
    }
    if !unaccounted.is_zero() {
        failures.push(format!(
            "{unaccounted} tokens unaccounted: {ledger:?}, tokens {tokens_before} → {tokens_after}, node +{node_gain}, {paid_tasks} paid tasks at {offer_price}"
        ));
    }

    // The services: none exited on its own, each stops on SIGTERM, nothing is left running.
    let faults = supervisor.counts();
    let services = supervisor.join();
    let starts = services.starts();
    let unplanned = services.unplanned.clone();
    let data_dir = services.dir().to_owned();
    // The secret scan every end-to-end stack goes through: the services' logs must hold no key
    // of the stack and no input or result of its tasks (the results are named here: they are
    // encrypted to the requesters' identities, which only this process holds).
    let mut logs = crate::e2e_stack::files_under(&data_dir.join("logs"));
    logs.push(data_dir.join("up.log"));
    let mut stopped = Vec::new();
    let secret_scan = log_scan::scan_stack(&data_dir, &info, Ok(config), 8, &logs, results, || {
        stopped = services.stop();
    });
    match &secret_scan {
        Ok(summary) => eprintln!("chaos: {summary}"),
        Err(e) => failures.push(e.clone()),
    }
    std::thread::sleep(Duration::from_millis(500));
    let strays = services::strays(&data_dir);
    for (pid, cmd) in &strays {
        services::signal("KILL", *pid);
        failures.push(format!("process {pid} still running after the stack stopped: {cmd}"));
    }
    for u in &unplanned {
        failures
            .push(format!("{} exited on its own ({}) after {:?}", u.service, u.status, u.after));
    }
    for (name, status) in &stopped {
        if !status.is_some_and(|s| s.success()) {
            failures.push(format!("{name} did not stop cleanly on SIGTERM: {status:?}"));
        }
    }
    for f in Fault::ALL {
        if faults.get(&f).copied().unwrap_or(0) == 0 {
            failures.push(format!("no fault of kind {}", f.name()));
        }
    }
    let abandoned = k.abandoned.load(Ordering::Relaxed);
    if abandoned > 0 {
        failures.push(format!("{abandoned} submissions abandoned"));
    }
    if on_chain.len() != opts.tasks {
        failures.push(format!("{} tasks planned, {} on chain", opts.tasks, on_chain.len()));
    }

    let wall = started.elapsed();
    let report = json!({
        "seed": opts.seed,
        "tasks_planned": opts.tasks,
        "tasks_on_chain": on_chain.len(),
        "clients": opts.clients,
        "final_states": states,
        "liveness": {
            "floor_percent": LIVENESS_FLOOR_PERCENT,
            "long_deadline_s": LONG_DEADLINE.as_secs(),
            "long_deadline_tasks": long.tasks,
            "long_deadline_tasks_proved": long.proved,
            "short_deadline_tasks": short.tasks,
            "short_deadline_tasks_proved": short.proved,
        },
        "duplicate_submissions": duplicates,
        "claims": claims,
        "releases_by_the_node": releases,
        "reclaimed_during_run": k.reclaims.load(Ordering::Relaxed),
        "reclaimed_after_advancing_chain_time": reclaimed_after_advance,
        "results_verified_and_decrypted": verified,
        "tasks_lost": not_final,
        "faults": faults.iter().map(|(f, n)| (f.name(), *n)).collect::<BTreeMap<_, _>>(),
        "faults_total": faults.values().sum::<u32>(),
        "service_starts": starts,
        "unplanned_exits": unplanned.len(),
        "stray_processes": strays.len(),
        "client_retries": k.retries.load(Ordering::Relaxed),
        "submit_failures": k.submit_failures.load(Ordering::Relaxed),
        "submit_failures_that_had_landed": k.submit_landed.load(Ordering::Relaxed),
        "submissions_abandoned": abandoned,
        "tokens": {
            "escrowed": escrowed.to_string(),
            "paid": paid.to_string(),
            "refunded": refunded.to_string(),
            "held": ledger.held.to_string(),
            "node_gain": node_gain.to_string(),
            "unaccounted": unaccounted.to_string(),
        },
        "fault_phase_s": (chaos_took.as_secs_f64() * 10.0).round() / 10.0,
        "wall_s": (wall.as_secs_f64() * 10.0).round() / 10.0,
        "secret_scan": secret_scan.as_ref().unwrap_or_else(|e| e),
        "failures": failures,
    });
    eprintln!("chaos: figures {}", serde_json::to_string_pretty(&report).unwrap());
    if let Ok(path) = std::env::var("ECLD_CHAOS_REPORT") {
        std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    }
    if !failures.is_empty() || std::env::var_os("ECLD_CHAOS_KEEP").is_some() {
        eprintln!("chaos: data directory kept at {}", tmp.keep().display());
    }
    assert!(failures.is_empty(), "seed {}: {failures:#?}", opts.seed);
}

/// Downloads, verifies and decrypts a settled task's result; a successful run must be the
/// `hash` program's answer for the input the requester sent. Returns the program's stdout.
async fn check_result(
    c: &Client,
    id: TaskId,
    input: Option<&Vec<u8>>,
    k: &Counters,
) -> Result<Vec<u8>, String> {
    let mut attempts = 0;
    let fetched = loop {
        attempts += 1;
        match c.fetch(id).await {
            Ok(f) => break f,
            Err(e) if transient(&e) && attempts < 100 => {
                k.retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(format!("the result does not verify: {e}")),
        }
    };
    if fetched.status != StatusCode::Success {
        return Ok(fetched.output.map(|o| o.stdout).unwrap_or_default());
    }
    let input = input.ok_or("a task the harness did not submit")?;
    let out = fetched.output.ok_or("a successful task without a result")?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("the program's output is not JSON ({e})"))?;
    let hash: Option<B256> = v["keccak256"].as_str().and_then(|s| s.parse().ok());
    if v["length"].as_u64() != Some(input.len() as u64) || hash != Some(keccak256(input)) {
        return Err(format!("wrong output {v} for an input of {} bytes", input.len()));
    }
    Ok(out.stdout)
}
