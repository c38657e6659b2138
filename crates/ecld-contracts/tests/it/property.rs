//! A property test: random sequences of every external call of the Marketplace (and of the
//! ImageRegistry's publish / deprecate / revoke and the token's approve), by three requesters,
//! three nodes and a stranger, on an in-process ecld-devnet, with clock jumps so deadlines
//! pass. An in-test model of every image, offer, task and deposit chooses each next call
//! (mostly valid, sometimes deliberately wrong) and predicts its outcome exactly: the revert
//! with its fields, or the Marketplace's, the registry's and the token's events of the mined
//! transaction. Deposits and withdrawals (over-withdrawals too) come and go, so submissions
//! are funded wholly from a deposit, partly, or from the wallet; `submitResults` settles
//! batches of one to eight proofs, or refuses a whole batch holding one bad proof (or none);
//! `submitTasks` submits batches of one to eight tasks (matched and open, each escrow drawn
//! from the deposit left by the tasks before it), or refuses a whole batch: empty, of arrays
//! of different lengths, or holding one task refused at a random position (an offer filled by
//! the earlier tasks of the batch, an allowance short once they used the deposit up, ...).
//! After every call the chain must conserve tokens (totals, the Marketplace's balance against
//! the live escrows plus every deposit, each deposit against the model, every balance against
//! the supply) and strand nothing (a live task can be cancelled, settled or reclaimed by
//! whoever the protocol says). Each sequence ends by reclaiming every task still live and
//! withdrawing every deposit.
//!
//! `ECLD_PROPERTY_SEED` replays a run (its seed is printed, and named in every failure);
//! `ECLD_PROPERTY_CALLS` sets the number of random calls (default 10,000), split into
//! independent sequences of at most [`PER_SEQUENCE`] calls, each on its own chain.
//!
//! Calls are sent as signed raw transactions with a fixed gas limit, each in one JSON-RPC
//! batch with the reads that check it (other scenarios check gas estimates).

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use alloy::{
    consensus::{SignableTransaction, TxEip1559, TxEnvelope},
    eips::eip2718::Encodable2718,
    network::{EthereumWallet, TxSignerSync},
    primitives::{Address, B256, Bytes, FixedBytes, Signature, TxKind, U256, Uint, keccak256},
    providers::{Provider, ProviderBuilder},
    rpc::types::TransactionReceipt,
    signers::{SignerSync, local::PrivateKeySigner},
    sol_types::{SolCall, SolEventInterface, SolInterface, SolValue},
};
use ecld_contracts::{
    ContractError, DeployOptions, Deployment, DevToken, ImageManifest, ImageRegistry,
    Marketplace::{self, MarketplaceErrors as E, MarketplaceEvents as Ev},
    Proof, TaskSpec, deploy_all,
    permit::{Permit, permit_digest},
    result_digest,
};
use serde_json::{Value, json};

use crate::{
    harness::{REFUSED_GAS_LIMIT, T0},
    ledger::{Ledger, Snapshot},
};

/// Random calls when `ECLD_PROPERTY_CALLS` is unset.
const DEFAULT_CALLS: usize = 10_000;
/// Most calls on one chain; more are split into independent sequences.
const PER_SEQUENCE: usize = 2_500;
/// Gas limit of every transaction: more than any call needs (a batch of [`MAX_BATCH`] proofs
/// takes about 350k).
const GAS: u64 = REFUSED_GAS_LIMIT;
/// Most proofs in one `submitResults` batch.
const MAX_BATCH: usize = 8;
/// Chain time is modelled in cells of this many seconds. Deadlines sit on cell boundaries and
/// a clock jump lands mid-cell, so whether a deadline has passed never depends on how many
/// blocks (one second each at least) or wall-clock seconds went by since the jump.
const CELL: u64 = 100_000;
/// Each token holder's starting balance.
const MINT: u128 = 1_000_000_000_000;
/// The ledger (every account, every task word) is compared with the chain this often.
const LEDGER_EVERY: usize = 500;
/// Every live task is checked for stranding this often (one random live task every call).
const ALL_LIVE_EVERY: usize = 100;
/// The chain clock is checked against the model's cell this often.
const CLOCK_EVERY: usize = 25;
/// Calls shown when a check fails.
const TAIL: usize = 40;
/// Least share of ended tasks that paid a node.
const PAID_FLOOR: f64 = 0.30;

/// Roles, as indexes into the dev accounts: the deployer (owner of every image), requesters,
/// nodes and a stranger.
const DEPLOYER: usize = 0;
const REQUESTERS: [usize; 3] = [1, 2, 3];
const NODES: [usize; 3] = [4, 5, 6];
const STRANGER: usize = 7;
/// The node that, now and then, takes several tasks in a row and relays their proofs in one
/// batch (other batches are of what a node happens to hold).
const BATCHER: usize = NODES[2];
const ACCOUNTS: usize = 8;

/// Status codes of the protocol: 0-6 pay the node, 16-19 refund the requester.
const PAYING: [u16; 7] = [0, 1, 2, 3, 4, 5, 6];
const REFUNDING: [u16; 4] = [16, 17, 18, 19];
const UNKNOWN_STATUSES: [u16; 8] = [7, 9, 12, 15, 20, 64, 1000, u16::MAX];
const RESULT_CID: &str = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";

fn valid_status(s: u16) -> bool {
    s <= 6 || (16..=19).contains(&s)
}

fn u96(v: u128) -> Uint<96, 2> {
    Uint::from(v)
}

fn merr(e: E) -> ContractError {
    ContractError::Marketplace(e)
}

// ------------------------------------------------------------------------------- randomness

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "below(0)");
        usize::try_from(self.next() % n as u64).unwrap()
    }
    /// True with probability `p` percent.
    fn pct(&mut self, p: usize) -> bool {
        self.below(100) < p
    }
    fn pick<T: Clone>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())].clone()
    }
    fn b256(&mut self) -> B256 {
        let mut b = [0u8; 32];
        for chunk in b.chunks_mut(8) {
            chunk.copy_from_slice(&self.next().to_le_bytes());
        }
        B256::from(b)
    }
}

// ------------------------------------------------------------------------------- JSON-RPC

/// A JSON-RPC error answer.
#[derive(Debug)]
struct RpcFail {
    message: String,
    data: Option<Value>,
}

/// Batches of JSON-RPC requests over HTTP: one round trip per call and its checks.
struct Rpc {
    http: reqwest::Client,
    url: String,
}

impl Rpc {
    async fn batch(&self, reqs: &[(&'static str, Value)]) -> Vec<Result<Value, RpcFail>> {
        let mut out: Vec<Option<Result<Value, RpcFail>>> = Vec::new();
        // The devnet takes at most 1000 requests a batch.
        for chunk in reqs.chunks(900) {
            let body: Vec<Value> = chunk
                .iter()
                .enumerate()
                .map(|(i, (m, p))| json!({"jsonrpc": "2.0", "id": i, "method": m, "params": p}))
                .collect();
            let resp = self.http.post(&self.url).json(&body).send().await.expect("rpc batch");
            let answers: Vec<Value> = resp.json().await.expect("rpc batch answer");
            let mut got: Vec<Option<Result<Value, RpcFail>>> =
                (0..chunk.len()).map(|_| None).collect();
            for a in answers {
                let id = a["id"].as_u64().expect("answer id");
                let r = match a.get("error") {
                    Some(e) => Err(RpcFail {
                        message: e["message"].as_str().unwrap_or_default().to_owned(),
                        data: e.get("data").cloned(),
                    }),
                    None => Ok(a["result"].clone()),
                };
                got[usize::try_from(id).unwrap()] = Some(r);
            }
            out.extend(got);
        }
        out.into_iter().map(|r| r.expect("an answer for every request")).collect()
    }

    async fn one(&self, method: &'static str, params: Value) -> Value {
        let mut r = self.batch(&[(method, params)]).await;
        match r.pop().unwrap() {
            Ok(v) => v,
            Err(e) => panic!("{method}: {e:?}"),
        }
    }
}

fn eth_call(from: Address, to: Address, data: &[u8]) -> (&'static str, Value) {
    let gas = format!("{GAS:#x}");
    (
        "eth_call",
        json!([{"from": from, "to": to, "data": Bytes::copy_from_slice(data), "gas": gas}, "latest"]),
    )
}

fn hex_bytes(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string").trim_start_matches("0x")).expect("hex")
}

fn hex_u64(v: &Value) -> u64 {
    u64::from_str_radix(v.as_str().expect("quantity").trim_start_matches("0x"), 16).expect("qty")
}

/// Which contract a call went to, to decode its reverts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Market,
    Registry,
    Token,
}

fn decode_revert(target: Target, fail: &RpcFail) -> Result<ContractError, String> {
    let Some(data) = fail.data.as_ref().and_then(Value::as_str) else {
        return Err(format!("no revert data: {}", fail.message));
    };
    let bytes = hex::decode(data.trim_start_matches("0x")).map_err(|e| e.to_string())?;
    let decoded = match target {
        Target::Registry => {
            ImageRegistry::ImageRegistryErrors::abi_decode(&bytes).ok().map(ContractError::Registry)
        }
        Target::Token => {
            DevToken::DevTokenErrors::abi_decode(&bytes).ok().map(ContractError::Token)
        }
        Target::Market => {
            E::abi_decode(&bytes).ok().map(ContractError::Marketplace).or_else(|| {
                DevToken::DevTokenErrors::abi_decode(&bytes).ok().map(ContractError::Token)
            })
        }
    };
    decoded.ok_or_else(|| format!("undecodable revert data {data} ({})", fail.message))
}

// ------------------------------------------------------------------------------- model

#[derive(Debug, Clone)]
struct ImageM {
    id: B256,
    platforms: u8,
    deprecated: bool,
    revoked: bool,
}

#[derive(Debug, Clone)]
struct OfferM {
    node: usize,
    /// Zero: any image.
    image: B256,
    platform: u8,
    slots: u16,
    used: u16,
    memory: u32,
    runtime: u32,
    price: u128,
    withdrawn: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    Open,
    /// Held by an offer at its price.
    Held(u64, u128),
    Ended,
}

#[derive(Debug, Clone)]
struct TaskM {
    spec: TaskSpec,
    requester: usize,
    max_price: u128,
    st: St,
}

/// One proof as a node relays it: the task, the fields passed back (which may differ from
/// the task's), and the signature.
#[derive(Debug, Clone)]
struct Relayed {
    id: u64,
    /// The relayed spec, result and status.
    proof: Proof,
    requester: Address,
    max: u128,
    price: u128,
    signature: Bytes,
    /// What ecrecover gives for the relayed fields (zero when the signature is malformed).
    recovered: Address,
    malformed: bool,
}

/// One task of a `submitTasks` batch, as passed.
#[derive(Debug, Clone)]
struct BatchTask {
    spec: TaskSpec,
    cid: String,
    max: u128,
    offer: u64,
}

/// What a submission changes in the model, saved to undo a batch the chain refuses whole.
struct Saved {
    tasks: usize,
    live: usize,
    offers: Vec<OfferM>,
    deposits: Vec<u128>,
    allowance: Vec<U256>,
    balances: BTreeMap<Address, u128>,
    escrowed: u128,
    funded: (usize, usize, usize),
}

/// What the model expects of a call.
enum Expect {
    /// Mined with status 1 and exactly these Marketplace, ImageRegistry and token events, each
    /// contract's in order.
    Ok {
        market: Vec<Ev>,
        registry: Vec<ImageRegistry::ImageRegistryEvents>,
        token: Vec<DevToken::DevTokenEvents>,
    },
    /// Refused with this error, by eth_call and by the mined transaction (status 0, no logs).
    Err(ContractError),
}

impl Expect {
    /// Mined, with these Marketplace events and no token movement.
    fn ok(market: Vec<Ev>) -> Self {
        Self::Ok { market, registry: Vec::new(), token: Vec::new() }
    }
    /// Mined, with these Marketplace events and token events.
    fn moving(market: Vec<Ev>, token: Vec<DevToken::DevTokenEvents>) -> Self {
        Self::Ok { market, registry: Vec::new(), token }
    }
}

/// The token's Transfer event of `value` (none for 0: the Marketplace moves no zero amounts).
fn transfer(from: Address, to: Address, value: u128) -> Option<DevToken::DevTokenEvents> {
    (value > 0).then(|| {
        DevToken::DevTokenEvents::Transfer(DevToken::Transfer {
            from,
            to,
            value: U256::from(value),
        })
    })
}

fn approval(owner: Address, spender: Address, value: U256) -> DevToken::DevTokenEvents {
    DevToken::DevTokenEvents::Approval(DevToken::Approval { owner, spender, value })
}

/// A transaction to send: who sends what to which contract, and how the history names it.
struct Tx {
    who: usize,
    target: Target,
    data: Vec<u8>,
    label: &'static str,
    line: String,
}

/// Offer terms: image (zero: any), platform, slots, memory, run time, price.
type Terms = (B256, u8, u16, u32, u32, u128);

/// Reads to take (in the call's batch) beyond the totals and balances.
#[derive(Default)]
struct Touch {
    /// Tasks whose stored word to read (a batch names many).
    tasks: Vec<u64>,
    /// Offers whose stored terms and used slots to read.
    offers: Vec<u64>,
}

/// One read in a call's batch, and what it checks.
enum Check {
    Totals,
    Supply,
    Balance(Address),
    Task(u64),
    Offer(u64),
    /// `Marketplace.balanceOf` of an account: its deposit.
    Deposit(usize),
    /// eth_call of reclaim by the requester must succeed.
    Reclaimable(u64),
    /// eth_call of reclaim by the requester must revert DeadlineNotReached.
    NotYetReclaimable(u64),
    /// eth_call of a correctly signed submitResult by the holder must succeed.
    Settleable(u64),
    Clock,
}

/// Counters over all sequences.
#[derive(Debug, Default, Clone)]
struct Stats {
    calls: usize,
    mined_ok: usize,
    refused: usize,
    paid: usize,
    refunded: usize,
    cancelled: usize,
    reclaimed_held: usize,
    drained: usize,
    strand_checks: usize,
    /// Submissions whose escrow came wholly from a deposit, partly, or from the wallet alone.
    from_deposit: usize,
    part_deposit: usize,
    from_wallet: usize,
    /// Proofs settled by submitResults, and batches mined by size.
    batched: usize,
    batch_sizes: BTreeMap<usize, usize>,
    /// Tasks submitted by submitTasks, and batches mined by size.
    task_batched: usize,
    task_batch_sizes: BTreeMap<usize, usize>,
    withdrawn_at_end: usize,
    by_label: BTreeMap<String, (usize, usize)>,
    reasons: BTreeMap<String, usize>,
}

impl Stats {
    fn ended(&self) -> usize {
        self.paid + self.refunded + self.cancelled + self.reclaimed_held + self.drained
    }
    fn add(&mut self, o: &Self) {
        self.calls += o.calls;
        self.mined_ok += o.mined_ok;
        self.refused += o.refused;
        self.paid += o.paid;
        self.refunded += o.refunded;
        self.cancelled += o.cancelled;
        self.reclaimed_held += o.reclaimed_held;
        self.drained += o.drained;
        self.strand_checks += o.strand_checks;
        self.from_deposit += o.from_deposit;
        self.part_deposit += o.part_deposit;
        self.from_wallet += o.from_wallet;
        self.batched += o.batched;
        self.withdrawn_at_end += o.withdrawn_at_end;
        for (k, n) in &o.batch_sizes {
            *self.batch_sizes.entry(*k).or_default() += n;
        }
        self.task_batched += o.task_batched;
        for (k, n) in &o.task_batch_sizes {
            *self.task_batch_sizes.entry(*k).or_default() += n;
        }
        for (k, n) in &o.reasons {
            *self.reasons.entry(k.clone()).or_default() += n;
        }
        for (k, (a, b)) in &o.by_label {
            let e = self.by_label.entry(k.clone()).or_default();
            e.0 += a;
            e.1 += b;
        }
    }
}

struct Key {
    signer: PrivateKeySigner,
    nonce: u64,
}

/// One sequence: a chain, its accounts, the model and the history of calls.
struct Sim {
    rpc: Rpc,
    d: Deployment,
    keys: Vec<Key>,
    /// The enclave signing key of every image.
    enclave: PrivateKeySigner,
    /// A key no image trusts.
    rogue: PrivateKeySigner,
    token_name: String,
    rng: Rng,
    ledger: Ledger,
    master_seed: u64,
    seed: u64,
    sequence: usize,
    call_no: usize,
    history: VecDeque<String>,
    reported: bool,
    stats: Stats,
    // The model.
    cell: u64,
    images: Vec<ImageM>,
    images_published: usize,
    offers: Vec<OfferM>,
    tasks: Vec<TaskM>,
    live: Vec<u64>,
    balances: BTreeMap<Address, u128>,
    allowance: Vec<U256>,
    permit_nonce: Vec<u64>,
    /// Each account's deposit in the Marketplace (`balanceOf`).
    deposits: Vec<u128>,
    /// The offer the next matched submission names (a batch episode's).
    force_offer: Option<u64>,
    escrowed: u128,
    paid: u128,
    refunded: u128,
}

impl Drop for Sim {
    fn drop(&mut self) {
        if std::thread::panicking() && !self.reported {
            eprintln!("{}", self.context("panicked"));
        }
    }
}

impl Sim {
    fn addr(&self, who: usize) -> Address {
        self.keys[who].signer.address()
    }

    fn context(&self, what: &str) -> String {
        let tail: Vec<&str> = self.history.iter().map(String::as_str).collect();
        format!(
            "property test failed: {what}\n  replay: ECLD_PROPERTY_SEED={} (sequence {} has seed {:#x}), at call {} of the sequence\n  last calls (oldest first):\n    {}",
            self.master_seed,
            self.sequence,
            self.seed,
            self.call_no,
            tail.join("\n    ")
        )
    }

    fn fail(&mut self, what: &str) -> ! {
        self.reported = true;
        panic!("{}", self.context(what));
    }

    fn note(&mut self, line: &str) {
        if self.history.len() == TAIL {
            self.history.pop_front();
        }
        self.history.push_back(format!("#{} {line}", self.call_no));
    }

    fn image(&self, id: B256) -> Option<&ImageM> {
        self.images.iter().find(|i| i.id == id)
    }

    fn offer(&self, id: u64) -> Option<&OfferM> {
        usize::try_from(id).ok().and_then(|i| i.checked_sub(1)).and_then(|i| self.offers.get(i))
    }

    fn offer_mut(&mut self, id: u64) -> &mut OfferM {
        &mut self.offers[usize::try_from(id - 1).unwrap()]
    }

    fn task(&self, id: u64) -> Option<&TaskM> {
        usize::try_from(id).ok().and_then(|i| i.checked_sub(1)).and_then(|i| self.tasks.get(i))
    }

    fn task_mut(&mut self, id: u64) -> &mut TaskM {
        &mut self.tasks[usize::try_from(id - 1).unwrap()]
    }

    fn live_task(&self, id: u64) -> Option<&TaskM> {
        self.task(id).filter(|t| t.st != St::Ended)
    }

    /// Whether the chain's clock is past `deadline` (a cell boundary).
    fn passed(&self, deadline: u64) -> bool {
        assert_eq!(deadline % CELL, 0, "deadlines sit on cell boundaries");
        deadline / CELL <= self.cell
    }

    fn revoked(&self, image: B256) -> bool {
        self.image(image).is_some_and(|i| i.revoked)
    }

    fn live_images(&self) -> Vec<B256> {
        self.images.iter().filter(|i| !i.deprecated).map(|i| i.id).collect()
    }

    fn dead_images(&self) -> Vec<B256> {
        self.images.iter().filter(|i| i.deprecated).map(|i| i.id).collect()
    }

    fn live_where(&self, f: impl Fn(&TaskM) -> bool) -> Vec<u64> {
        self.live.iter().copied().filter(|id| f(self.live_task(*id).unwrap())).collect()
    }

    fn end_task(&mut self, id: u64) {
        self.task_mut(id).st = St::Ended;
        let pos = self.live.iter().position(|t| *t == id).unwrap();
        self.live.swap_remove(pos);
    }

    fn commitment(&self, t: &TaskM) -> FixedBytes<24> {
        let price = match t.st {
            St::Held(_, p) => p,
            _ => 0,
        };
        let encoded = (
            t.spec.clone(),
            self.enclave.address(),
            self.addr(t.requester),
            u96(t.max_price),
            u96(price),
        )
            .abi_encode();
        FixedBytes::from_slice(&keccak256(encoded)[..24])
    }

    fn credit(&mut self, who: Address, amount: u128) {
        *self.balances.entry(who).or_default() += amount;
    }

    fn debit(&mut self, who: Address, amount: u128) {
        let b = self.balances.entry(who).or_default();
        *b = b.checked_sub(amount).expect("model balance");
    }

    // --------------------------------------------------------------- predictions (the contract's order)

    /// Marketplace._take: the offer's price, or why it does not fit.
    fn take(
        &self,
        id: u64,
        o: &OfferM,
        spec: &TaskSpec,
        platforms: u8,
        max: u128,
    ) -> Result<u128, E> {
        if o.withdrawn {
            return Err(E::OfferIsWithdrawn(Marketplace::OfferIsWithdrawn { offerId: id }));
        }
        if o.used >= o.slots {
            return Err(E::OfferFull(Marketplace::OfferFull { offerId: id, slots: o.slots }));
        }
        if o.memory < spec.memoryMb {
            return Err(E::MemoryTooSmall(Marketplace::MemoryTooSmall {
                offerId: id,
                offered: o.memory,
                needed: spec.memoryMb,
            }));
        }
        if o.runtime < spec.maxRuntimeS {
            return Err(E::RuntimeTooShort(Marketplace::RuntimeTooShort {
                offerId: id,
                offered: o.runtime,
                needed: spec.maxRuntimeS,
            }));
        }
        if o.price > max {
            return Err(E::PriceTooHigh(Marketplace::PriceTooHigh {
                offerId: id,
                price: u96(o.price),
                maxPrice: u96(max),
            }));
        }
        if platforms & o.platform == 0 {
            return Err(E::PlatformNotAllowed(Marketplace::PlatformNotAllowed {
                imageId: spec.imageId,
                platform: o.platform,
                allowed: platforms,
            }));
        }
        if o.image != B256::ZERO && o.image != spec.imageId {
            return Err(E::ImageMismatch(Marketplace::ImageMismatch {
                offerId: id,
                offerImage: o.image,
                taskImage: spec.imageId,
            }));
        }
        Ok(o.price)
    }

    fn predict_submit(
        &self,
        r: usize,
        spec: &TaskSpec,
        cid: &str,
        max: u128,
        offer_id: u64,
        permit_ok: bool,
    ) -> Result<u128, ContractError> {
        let Some(img) = self.image(spec.imageId) else {
            return Err(merr(E::UnknownImage(Marketplace::UnknownImage { imageId: spec.imageId })));
        };
        if img.deprecated {
            return Err(merr(E::ImageDeprecated(Marketplace::ImageDeprecated {
                imageId: spec.imageId,
            })));
        }
        let cid_hash = keccak256(cid.as_bytes());
        if cid_hash != spec.inputCidHash {
            return Err(merr(E::InputCidMismatch(Marketplace::InputCidMismatch {
                expected: spec.inputCidHash,
                actual: cid_hash,
            })));
        }
        let task_id = U256::from(self.tasks.len() + 1);
        if self.passed(spec.deadline) {
            return Err(merr(E::DeadlinePassed(Marketplace::DeadlinePassed {
                taskId: task_id,
                deadline: spec.deadline,
            })));
        }
        let mut price = 0;
        if offer_id != 0 {
            let Some(o) = self.offer(offer_id) else {
                return Err(merr(E::UnknownOffer(Marketplace::UnknownOffer { offerId: offer_id })));
            };
            price = self.take(offer_id, o, spec, img.platforms, max).map_err(merr)?;
        }
        // The escrow is drawn from the deposit first; only the rest is pulled, and a permit
        // (for the whole maxPrice) is the allowance for it.
        let permitted = permit_ok.then_some(U256::from(max));
        self.predict_pull(r, max - self.deposits[r].min(max), permitted)?;
        Ok(price)
    }

    /// Marketplace._receive of `amount` from `who`'s wallet: the token's transferFrom, with
    /// `permitted` the allowance a permit applied first set (else the standing one).
    fn predict_pull(
        &self,
        who: usize,
        amount: u128,
        permitted: Option<U256>,
    ) -> Result<(), ContractError> {
        if amount == 0 {
            return Ok(());
        }
        let allowed = permitted.unwrap_or(self.allowance[who]);
        if allowed != U256::MAX && allowed < U256::from(amount) {
            return Err(ContractError::Token(DevToken::DevTokenErrors::InsufficientAllowance(
                DevToken::InsufficientAllowance {
                    owner: self.addr(who),
                    spender: self.d.marketplace,
                    allowance: allowed,
                    needed: U256::from(amount),
                },
            )));
        }
        let balance = self.balances[&self.addr(who)];
        if balance < amount {
            return Err(ContractError::Token(DevToken::DevTokenErrors::InsufficientBalance(
                DevToken::InsufficientBalance {
                    from: self.addr(who),
                    balance: U256::from(balance),
                    needed: U256::from(amount),
                },
            )));
        }
        Ok(())
    }

    /// The model's side of a pull of `amount` from `who` that succeeded: the tokens move, the
    /// allowance (after a permit for `permitted`, if one applied) shrinks.
    fn pulled(&mut self, who: usize, amount: u128, permitted: Option<U256>) {
        if let Some(value) = permitted {
            self.permit_nonce[who] += 1;
            self.allowance[who] = value;
        }
        if amount > 0 && self.allowance[who] != U256::MAX {
            self.allowance[who] -= U256::from(amount);
        }
        let (from, market) = (self.addr(who), self.d.marketplace);
        self.debit(from, amount);
        self.credit(market, amount);
    }

    /// The commitment check of claim/release/submitResult/reclaim: do the passed fields name
    /// the task as stored?
    fn matches(
        &self,
        t: &TaskM,
        spec: &TaskSpec,
        requester: Address,
        max: u128,
        price: u128,
    ) -> bool {
        let stored_price = match t.st {
            St::Held(_, p) => p,
            _ => 0,
        };
        *spec == t.spec
            && requester == self.addr(t.requester)
            && max == t.max_price
            && price == stored_price
    }

    fn predict_claim(
        &self,
        node: usize,
        id: u64,
        offer_id: u64,
        spec: &TaskSpec,
        requester: Address,
        max: u128,
    ) -> Result<u128, E> {
        let task_id = U256::from(id);
        let Some(t) = self.live_task(id) else {
            return Err(E::TaskNotActive(Marketplace::TaskNotActive { taskId: task_id }));
        };
        if let St::Held(o, _) = t.st {
            return Err(E::TaskAlreadyClaimed(Marketplace::TaskAlreadyClaimed {
                taskId: task_id,
                offerId: o,
            }));
        }
        if self.passed(spec.deadline) {
            return Err(E::DeadlinePassed(Marketplace::DeadlinePassed {
                taskId: task_id,
                deadline: spec.deadline,
            }));
        }
        if !self.matches(t, spec, requester, max, 0) {
            return Err(E::SpecMismatch(Marketplace::SpecMismatch { taskId: task_id }));
        }
        let img = self.image(spec.imageId).expect("a task's image exists");
        if img.revoked {
            return Err(E::ImageRevoked(Marketplace::ImageRevoked { imageId: spec.imageId }));
        }
        let Some(o) = self.offer(offer_id) else {
            return Err(E::UnknownOffer(Marketplace::UnknownOffer { offerId: offer_id }));
        };
        if o.node != node {
            return Err(E::NotOfferNode(Marketplace::NotOfferNode {
                offerId: offer_id,
                caller: self.addr(node),
                node: self.addr(o.node),
            }));
        }
        self.take(offer_id, o, spec, img.platforms, max)
    }

    fn holder_check(&self, id: u64, sender: usize) -> Result<(u64, u128), E> {
        let task_id = U256::from(id);
        let Some(t) = self.live_task(id) else {
            return Err(E::TaskNotActive(Marketplace::TaskNotActive { taskId: task_id }));
        };
        let St::Held(offer, price) = t.st else {
            return Err(E::TaskNotClaimed(Marketplace::TaskNotClaimed { taskId: task_id }));
        };
        let node = self.offer(offer).unwrap().node;
        if node != sender {
            return Err(E::NotTaskHolder(Marketplace::NotTaskHolder {
                taskId: task_id,
                caller: self.addr(sender),
                holder: self.addr(node),
            }));
        }
        Ok((offer, price))
    }

    fn predict_release(
        &self,
        sender: usize,
        id: u64,
        spec: &TaskSpec,
        requester: Address,
        max: u128,
        price: u128,
    ) -> Result<u64, E> {
        let (offer, _) = self.holder_check(id, sender)?;
        let t = self.live_task(id).unwrap();
        if !self.matches(t, spec, requester, max, price) {
            return Err(E::SpecMismatch(Marketplace::SpecMismatch { taskId: U256::from(id) }));
        }
        Ok(offer)
    }

    fn predict_reclaim(
        &self,
        sender: usize,
        id: u64,
        spec: &TaskSpec,
        max: u128,
        price: u128,
    ) -> Result<(), E> {
        let task_id = U256::from(id);
        let Some(t) = self.live_task(id) else {
            return Err(E::TaskNotActive(Marketplace::TaskNotActive { taskId: task_id }));
        };
        if !self.matches(t, spec, self.addr(sender), max, price) {
            return Err(E::SpecMismatchOrNotRequester(Marketplace::SpecMismatchOrNotRequester {
                taskId: task_id,
                caller: self.addr(sender),
            }));
        }
        if matches!(t.st, St::Held(..))
            && !self.revoked(spec.imageId)
            && !self.passed(spec.deadline)
        {
            return Err(E::DeadlineNotReached(Marketplace::DeadlineNotReached {
                taskId: task_id,
                deadline: spec.deadline,
            }));
        }
        Ok(())
    }

    fn predict_terms(&self, image: B256, platform: u8, slots: u16) -> Result<(), E> {
        if platform != 1 && platform != 2 && platform != 4 {
            return Err(E::InvalidOffer(Marketplace::InvalidOffer {
                reason: "platform must be 1, 2 or 4".into(),
            }));
        }
        if slots == 0 {
            return Err(E::InvalidOffer(Marketplace::InvalidOffer {
                reason: "slots must be at least 1".into(),
            }));
        }
        if image != B256::ZERO {
            let Some(img) = self.image(image) else {
                return Err(E::UnknownImage(Marketplace::UnknownImage { imageId: image }));
            };
            if img.deprecated {
                return Err(E::ImageDeprecated(Marketplace::ImageDeprecated { imageId: image }));
            }
            if img.platforms & platform == 0 {
                return Err(E::PlatformNotAllowed(Marketplace::PlatformNotAllowed {
                    imageId: image,
                    platform,
                    allowed: img.platforms,
                }));
            }
        }
        Ok(())
    }

    fn predict_own_offer(&self, sender: usize, id: u64) -> Result<(), E> {
        let Some(o) = self.offer(id) else {
            return Err(E::UnknownOffer(Marketplace::UnknownOffer { offerId: id }));
        };
        if o.node != sender {
            return Err(E::NotOfferNode(Marketplace::NotOfferNode {
                offerId: id,
                caller: self.addr(sender),
                node: self.addr(o.node),
            }));
        }
        if o.withdrawn {
            return Err(E::OfferIsWithdrawn(Marketplace::OfferIsWithdrawn { offerId: id }));
        }
        Ok(())
    }

    // --------------------------------------------------------------- signing

    fn raw_tx(&self, who: usize, to: Address, input: Bytes) -> (Bytes, B256) {
        let key = &self.keys[who];
        let mut tx = TxEip1559 {
            chain_id: self.d.chain_id,
            nonce: key.nonce,
            gas_limit: GAS,
            max_fee_per_gas: 10_000_000_000,
            max_priority_fee_per_gas: 0,
            to: TxKind::Call(to),
            value: U256::ZERO,
            access_list: Default::default(),
            input,
        };
        let sig = key.signer.sign_transaction_sync(&mut tx).expect("sign tx");
        let signed = tx.into_signed(sig);
        let hash = *signed.hash();
        let envelope = TxEnvelope::from(signed);
        (envelope.encoded_2718().into(), hash)
    }

    fn permit(&self, r: usize, value: u128, nonce: u64, deadline: U256) -> (u8, B256, B256) {
        let permit = Permit {
            owner: self.addr(r),
            spender: self.d.marketplace,
            value: U256::from(value),
            nonce: U256::from(nonce),
            deadline,
        };
        let digest = permit_digest(&self.token_name, self.d.chain_id, self.d.token, &permit);
        let sig = self.keys[r].signer.sign_hash_sync(&digest).expect("sign permit");
        (27 + u8::from(sig.v()), sig.r().into(), sig.s().into())
    }

    /// A permit by `who` for the Marketplace to take `value`: mostly valid, sometimes
    /// expired, for a used nonce or signed for another value (the contract ignores a permit
    /// that fails). Returns what it is, its deadline and signature.
    fn random_permit(&mut self, who: usize, value: u128) -> (&'static str, U256, u8, B256, B256) {
        let nonce = self.permit_nonce[who];
        let far = U256::from(u64::MAX);
        let (variant, value, nonce, deadline) = match self.rng.below(100) {
            0..=4 => ("expired permit", value, nonce, U256::from(self.cell * CELL)),
            5..=9 => ("stale permit", value, nonce.wrapping_sub(1), far),
            10..=13 => ("permit for another value", value + 1, nonce, far),
            _ => ("permit", value, nonce, far),
        };
        let (v, r, s) = self.permit(who, value, nonce, deadline);
        (variant, deadline, v, r, s)
    }

    fn proof(&self, id: u64, spec: &TaskSpec, status: u16) -> Proof {
        Proof {
            task_id: id,
            spec: spec.clone(),
            code_hash: keccak256(format!("code {id}")),
            result_hash: keccak256(format!("result of {id}")),
            result_cid: RESULT_CID.into(),
            status,
            runtime_ms: 1000 + id,
        }
    }

    fn sign_proof(&self, key: &PrivateKeySigner, proof: &Proof) -> Bytes {
        let digest = result_digest(proof, self.d.chain_id, self.d.marketplace);
        Bytes::from(key.sign_hash_sync(&digest).expect("sign proof").as_bytes().to_vec())
    }

    fn result_call(
        &self,
        id: u64,
        proof: &Proof,
        requester: Address,
        max: u128,
        price: u128,
        signature: Bytes,
    ) -> Vec<u8> {
        Marketplace::submitResultCall {
            taskId: U256::from(id),
            spec: proof.spec.clone(),
            requester,
            maxPrice: u96(max),
            price: u96(price),
            resultCid: proof.result_cid.clone(),
            resultHash: proof.result_hash,
            codeHash: proof.code_hash,
            status: proof.status,
            runtimeMs: proof.runtime_ms,
            signature,
        }
        .abi_encode()
    }

    fn reclaim_call(&self, id: u64, spec: &TaskSpec, max: u128, price: u128) -> Vec<u8> {
        Marketplace::reclaimCall {
            taskId: U256::from(id),
            spec: spec.clone(),
            maxPrice: u96(max),
            price: u96(price),
        }
        .abi_encode()
    }

    // --------------------------------------------------------------- running a call and its checks

    /// The strand checks of live task `id`: its requester can cancel it if open; if held,
    /// it can be reclaimed once its deadline passed or its image was revoked, and before that
    /// its holder can settle it (and the requester cannot take it back yet).
    fn strand_checks(
        &mut self,
        id: u64,
        items: &mut Vec<(&'static str, Value)>,
        kinds: &mut Vec<Check>,
    ) {
        let t = self.live_task(id).unwrap().clone();
        let requester = self.addr(t.requester);
        let market = self.d.marketplace;
        self.stats.strand_checks += 1;
        match t.st {
            St::Ended => unreachable!(),
            St::Open => {
                items.push(eth_call(
                    requester,
                    market,
                    &self.reclaim_call(id, &t.spec, t.max_price, 0),
                ));
                kinds.push(Check::Reclaimable(id));
            }
            St::Held(offer, price) => {
                let call = self.reclaim_call(id, &t.spec, t.max_price, price);
                items.push(eth_call(requester, market, &call));
                if self.revoked(t.spec.imageId) || self.passed(t.spec.deadline) {
                    kinds.push(Check::Reclaimable(id));
                } else {
                    kinds.push(Check::NotYetReclaimable(id));
                    let status = if self.rng.pct(50) {
                        self.rng.pick(&PAYING)
                    } else {
                        self.rng.pick(&REFUNDING)
                    };
                    let proof = self.proof(id, &t.spec, status);
                    let sig = self.sign_proof(&self.enclave, &proof);
                    let data = self.result_call(id, &proof, requester, t.max_price, price, sig);
                    let node = self.addr(self.offer(offer).unwrap().node);
                    items.push(eth_call(node, market, &data));
                    kinds.push(Check::Settleable(id));
                }
            }
        }
    }

    fn check_items(&mut self, touch: &Touch) -> (Vec<(&'static str, Value)>, Vec<Check>) {
        let d = self.d;
        let reader = self.addr(DEPLOYER);
        let mut items = Vec::new();
        let mut kinds = Vec::new();
        items.push(eth_call(reader, d.marketplace, &Marketplace::totalsCall {}.abi_encode()));
        kinds.push(Check::Totals);
        items.push(eth_call(reader, d.token, &DevToken::totalSupplyCall {}.abi_encode()));
        kinds.push(Check::Supply);
        let accounts: Vec<Address> = self.balances.keys().copied().collect();
        for a in accounts {
            items.push(eth_call(reader, d.token, &DevToken::balanceOfCall::new((a,)).abi_encode()));
            kinds.push(Check::Balance(a));
        }
        for &id in &touch.tasks {
            let data = Marketplace::getTaskCall { taskId: U256::from(id) }.abi_encode();
            items.push(eth_call(reader, d.marketplace, &data));
            kinds.push(Check::Task(id));
        }
        for who in 1..ACCOUNTS {
            let a = self.addr(who);
            let data = Marketplace::balanceOfCall::new((a,)).abi_encode();
            items.push(eth_call(reader, d.marketplace, &data));
            kinds.push(Check::Deposit(who));
        }
        for &id in touch.offers.iter().filter(|id| self.offer(**id).is_some()) {
            items.push(eth_call(
                reader,
                d.marketplace,
                &Marketplace::getOfferCall { offerId: id }.abi_encode(),
            ));
            kinds.push(Check::Offer(id));
        }
        let strand: Vec<u64> = if self.call_no.is_multiple_of(ALL_LIVE_EVERY) {
            self.live.clone()
        } else {
            let mut s: Vec<u64> = Vec::new();
            for &id in &touch.tasks {
                if self.live_task(id).is_some() && !s.contains(&id) {
                    s.push(id);
                }
            }
            if !self.live.is_empty() {
                let id = self.rng.pick(&self.live);
                if !s.contains(&id) {
                    s.push(id);
                }
            }
            s
        };
        for id in strand {
            self.strand_checks(id, &mut items, &mut kinds);
        }
        if self.call_no.is_multiple_of(CLOCK_EVERY) {
            items.push(("eth_getBlockByNumber", json!(["latest", false])));
            kinds.push(Check::Clock);
        }
        (items, kinds)
    }

    fn verify_checks(&mut self, kinds: &[Check], answers: Vec<Result<Value, RpcFail>>) {
        let mut totals = None;
        let mut supply = None;
        let mut balances = BTreeMap::new();
        let mut deposits = vec![0u128; ACCOUNTS];
        for (kind, answer) in kinds.iter().zip(answers) {
            let value = match (kind, answer) {
                (Check::NotYetReclaimable(id), Err(fail)) => {
                    let t = self.live_task(*id).unwrap();
                    let want = merr(E::DeadlineNotReached(Marketplace::DeadlineNotReached {
                        taskId: U256::from(*id),
                        deadline: t.spec.deadline,
                    }));
                    match decode_revert(Target::Market, &fail) {
                        Ok(got) if got == want => continue,
                        got => self.fail(&format!(
                            "reclaim of held task {id} before its deadline: expected {want:?}, got {got:?}"
                        )),
                    }
                }
                (Check::NotYetReclaimable(id), Ok(_)) => self.fail(&format!(
                    "task {id}: held, before its deadline, image not revoked, yet its requester could reclaim it"
                )),
                (Check::Reclaimable(id), Err(fail)) => {
                    let got = decode_revert(Target::Market, &fail);
                    let t = self.live_task(*id).unwrap().clone();
                    self.fail(&format!(
                        "task {id} is stranded: {t:?} should be reclaimable by its requester, reclaim reverts {got:?}"
                    ))
                }
                (Check::Settleable(id), Err(fail)) => {
                    let got = decode_revert(Target::Market, &fail);
                    let t = self.live_task(*id).unwrap().clone();
                    self.fail(&format!(
                        "task {id} is stranded: {t:?} held before its deadline, but its holder cannot settle it: {got:?}"
                    ))
                }
                (Check::Reclaimable(_) | Check::Settleable(_), Ok(_)) => continue,
                (_, Err(fail)) => self.fail(&format!("a read failed: {fail:?}")),
                (_, Ok(v)) => v,
            };
            match kind {
                Check::Totals => {
                    let t =
                        Marketplace::totalsCall::abi_decode_returns(&hex_bytes(&value)).unwrap();
                    totals = Some(t);
                }
                Check::Supply => {
                    let s =
                        DevToken::totalSupplyCall::abi_decode_returns(&hex_bytes(&value)).unwrap();
                    supply = Some(u128::try_from(s).unwrap());
                }
                Check::Balance(a) => {
                    let b =
                        DevToken::balanceOfCall::abi_decode_returns(&hex_bytes(&value)).unwrap();
                    balances.insert(*a, u128::try_from(b).unwrap());
                }
                Check::Task(id) => {
                    let word =
                        Marketplace::getTaskCall::abi_decode_returns(&hex_bytes(&value)).unwrap();
                    let (commitment, offer) = match self.task(*id) {
                        Some(t) if t.st != St::Ended => {
                            let offer = match t.st {
                                St::Held(o, _) => o,
                                _ => 0,
                            };
                            (self.commitment(t), offer)
                        }
                        _ => (FixedBytes::ZERO, 0),
                    };
                    if word.commitment != commitment || word.offerId != offer {
                        self.fail(&format!(
                            "task {id}: stored ({}, offer {}), model says ({commitment}, offer {offer}) for {:?}",
                            word.commitment,
                            word.offerId,
                            self.task(*id)
                        ));
                    }
                }
                Check::Offer(id) => {
                    let o =
                        Marketplace::getOfferCall::abi_decode_returns(&hex_bytes(&value)).unwrap();
                    let m = self.offer(*id).unwrap();
                    let chain = (
                        o.node,
                        o.imageId,
                        o.platform,
                        o.slots,
                        o.usedSlots,
                        o.memoryMb,
                        o.maxRuntimeS,
                        u128::try_from(o.price).unwrap(),
                        o.withdrawn,
                    );
                    let model = (
                        self.addr(m.node),
                        m.image,
                        m.platform,
                        m.slots,
                        m.used,
                        m.memory,
                        m.runtime,
                        m.price,
                        m.withdrawn,
                    );
                    if chain != model {
                        self.fail(&format!("offer {id}: chain {chain:?}, model {model:?}"));
                    }
                }
                Check::Deposit(who) => {
                    let raw = hex_bytes(&value);
                    let d = Marketplace::balanceOfCall::abi_decode_returns(&raw).unwrap();
                    deposits[*who] = u128::try_from(d).unwrap();
                }
                Check::Clock => {
                    let ts = hex_u64(&value["timestamp"]);
                    let lo = self.cell * CELL + CELL / 2;
                    let hi = (self.cell + 1) * CELL - CELL / 10;
                    if ts < lo || ts >= hi {
                        self.fail(&format!(
                            "chain time {ts} left the model's cell [{lo}, {hi}): deadlines would be mispredicted"
                        ));
                    }
                }
                Check::Reclaimable(_) | Check::NotYetReclaimable(_) | Check::Settleable(_) => {}
            }
        }
        // Conservation, from the chain.
        let t = totals.unwrap();
        let amount = |v: U256| u128::try_from(v).unwrap();
        let (escrowed, paid, refunded, held) =
            (amount(t.escrowed), amount(t.paid), amount(t.refunded), amount(t.held));
        if escrowed != paid + refunded + held {
            self.fail(&format!(
                "totals(): escrowed {escrowed} != paid {paid} + refunded {refunded} + held {held}"
            ));
        }
        let owed: u128 = self.live.iter().map(|id| self.task(*id).unwrap().max_price).sum();
        let market_balance = balances[&self.d.marketplace];
        let deposited: u128 = deposits.iter().sum();
        let modelled: u128 = self.deposits.iter().sum();
        if market_balance != held + deposited || held != owed || deposited != modelled {
            self.fail(&format!(
                "Marketplace holds {market_balance} tokens, totals().held is {held}, the deposits (balanceOf) sum to {deposited}; the model has live tasks' maxPrice summing to {owed} and deposits to {modelled}"
            ));
        }
        if deposits != self.deposits {
            let diff: Vec<String> = (1..ACCOUNTS)
                .filter(|w| deposits[*w] != self.deposits[*w])
                .map(|w| format!("#{w}: chain {}, model {}", deposits[w], self.deposits[w]))
                .collect();
            self.fail(&format!("deposits differ from the model: {}", diff.join("; ")));
        }
        if (escrowed, paid, refunded) != (self.escrowed, self.paid, self.refunded) {
            self.fail(&format!(
                "totals() (escrowed, paid, refunded) = {:?}, model {:?}",
                (escrowed, paid, refunded),
                (self.escrowed, self.paid, self.refunded)
            ));
        }
        let supply = supply.unwrap();
        let sum: u128 = balances.values().sum();
        if sum != supply {
            self.fail(&format!(
                "balances sum to {sum}, total supply is {supply}: tokens created or lost"
            ));
        }
        if balances != self.balances {
            let diff: Vec<String> = balances
                .iter()
                .filter(|(a, b)| self.balances.get(*a) != Some(*b))
                .map(|(a, b)| format!("{a}: chain {b}, model {:?}", self.balances.get(a)))
                .collect();
            self.fail(&format!("token balances differ from the model: {}", diff.join("; ")));
        }
    }

    /// Sends `data` from `who` to `to` (checked against `expect`), with the checks after it,
    /// in one batch. The model must already hold the call's predicted effects.
    async fn exec(&mut self, tx: Tx, expect: Expect, touch: Touch) {
        let Tx { who, target, data, label, line } = tx;
        let to = match target {
            Target::Market => self.d.marketplace,
            Target::Registry => self.d.registry,
            Target::Token => self.d.token,
        };
        let outcome = match &expect {
            Expect::Ok { .. } => "ok".to_owned(),
            Expect::Err(e) => format!("reverts {e:?}"),
        };
        self.note(&format!("{label} by #{who}: {} -> expect {outcome}", line.trim_end()));
        let from = self.addr(who);
        let (raw, hash) = self.raw_tx(who, to, Bytes::from(data.clone()));
        let mut items = Vec::new();
        if matches!(expect, Expect::Err(_)) {
            items.push(eth_call(from, to, &data));
        }
        items.push(("eth_sendRawTransaction", json!([raw])));
        items.push(("eth_getTransactionReceipt", json!([hash])));
        let first_check = items.len();
        let (checks, kinds) = self.check_items(&touch);
        items.extend(checks);
        let mut answers = self.rpc.batch(&items).await;
        let check_answers = answers.split_off(first_check);
        let mut answers = answers.into_iter();
        self.keys[who].nonce += 1;
        let entry = self.stats.by_label.entry(label.to_owned()).or_default();
        if let Expect::Err(want) = &expect {
            entry.1 += 1;
            let reason = format!("{want:?}");
            let reason = reason.split('(').nth(1).unwrap_or(&reason).to_owned();
            *self.stats.reasons.entry(format!("{label}: {reason}")).or_default() += 1;
            self.stats.refused += 1;
            match answers.next().unwrap() {
                Ok(v) => {
                    self.fail(&format!("{label}: expected {want:?}, but eth_call succeeded ({v})"))
                }
                Err(fail) => match decode_revert(target, &fail) {
                    Ok(got) if got == *want => {}
                    got => {
                        self.fail(&format!("{label}: expected {want:?}, eth_call reverted {got:?}"))
                    }
                },
            }
        } else {
            entry.0 += 1;
            self.stats.mined_ok += 1;
        }
        self.stats.calls += 1;
        if let Err(e) = answers.next().unwrap() {
            self.fail(&format!("{label}: eth_sendRawTransaction failed: {e:?}"));
        }
        let receipt = match answers.next().unwrap() {
            Ok(v) if !v.is_null() => {
                serde_json::from_value::<TransactionReceipt>(v).expect("receipt")
            }
            other => self.fail(&format!("{label}: no receipt for {hash}: {other:?}")),
        };
        for log in receipt.inner.logs() {
            self.ledger.apply(&log.inner);
        }
        match expect {
            Expect::Err(_) => {
                if receipt.status() || !receipt.inner.logs().is_empty() {
                    self.fail(&format!(
                        "{label}: refused by eth_call, but the transaction was mined with status {} and {} logs",
                        receipt.status(),
                        receipt.inner.logs().len()
                    ));
                }
            }
            Expect::Ok { market, registry, token } => {
                if !receipt.status() {
                    // Same state as before the transaction: ask why.
                    let why = self.rpc.batch(&[eth_call(from, to, &data)]).await.pop().unwrap();
                    let why = why.map_err(|f| decode_revert(target, &f));
                    self.fail(&format!(
                        "{label}: expected success, the transaction failed: {why:?}"
                    ));
                }
                let mut got_market = Vec::new();
                let mut got_registry = Vec::new();
                let mut got_token = Vec::new();
                for log in receipt.inner.logs() {
                    if log.address() == self.d.token {
                        got_token.push(
                            DevToken::DevTokenEvents::decode_log(&log.inner)
                                .expect("DevToken event")
                                .data,
                        );
                    } else if log.address() == self.d.marketplace {
                        got_market
                            .push(Ev::decode_log(&log.inner).expect("Marketplace event").data);
                    } else if log.address() == self.d.registry {
                        got_registry.push(
                            ImageRegistry::ImageRegistryEvents::decode_log(&log.inner)
                                .expect("ImageRegistry event")
                                .data,
                        );
                    }
                }
                if got_market != market || got_registry != registry {
                    self.fail(&format!(
                        "{label}: events differ\n  got      {got_market:?} {got_registry:?}\n  expected {market:?} {registry:?}"
                    ));
                }
                if got_token != token {
                    self.fail(&format!(
                        "{label}: token events differ\n  got      {got_token:?}\n  expected {token:?}"
                    ));
                }
            }
        }
        self.verify_checks(&kinds, check_answers);
    }

    /// Jumps the clock `cells` cells ahead (mid-cell), with the checks after it.
    async fn jump(&mut self, cells: u64) {
        self.cell += cells;
        let t = self.cell * CELL + CELL / 2;
        self.note(&format!("clock jump +{cells} cells to {t} (cell {})", self.cell));
        let mut items = vec![("evm_setNextBlockTimestamp", json!([t])), ("evm_mine", json!([]))];
        let (checks, kinds) = self.check_items(&Touch::default());
        items.extend(checks);
        let mut answers = self.rpc.batch(&items).await;
        let check_answers = answers.split_off(2);
        for a in answers {
            if let Err(e) = a {
                self.fail(&format!("clock jump failed: {e:?}"));
            }
        }
        self.verify_checks(&kinds, check_answers);
    }

    /// Compares the whole ledger (every account, every task word) with the chain.
    async fn ledger_check(&mut self) {
        let d = self.d;
        let reader = self.addr(DEPLOYER);
        let accounts: Vec<Address> = self.ledger.accounts().collect();
        let mut items = vec![
            eth_call(reader, d.marketplace, &Marketplace::totalsCall {}.abi_encode()),
            eth_call(reader, d.token, &DevToken::totalSupplyCall {}.abi_encode()),
        ];
        for a in &accounts {
            items.push(eth_call(
                reader,
                d.token,
                &DevToken::balanceOfCall::new((*a,)).abi_encode(),
            ));
        }
        for a in &accounts {
            items.push(eth_call(
                reader,
                d.marketplace,
                &Marketplace::balanceOfCall::new((*a,)).abi_encode(),
            ));
        }
        let count = self.tasks.len() as u64;
        for id in 1..=count {
            items.push(eth_call(
                reader,
                d.marketplace,
                &Marketplace::getTaskCall { taskId: U256::from(id) }.abi_encode(),
            ));
        }
        let answers: Vec<Vec<u8>> = self
            .rpc
            .batch(&items)
            .await
            .into_iter()
            .map(|a| hex_bytes(&a.expect("ledger read")))
            .collect();
        let amount = |v: U256| u128::try_from(v).unwrap();
        let t = Marketplace::totalsCall::abi_decode_returns(&answers[0]).unwrap();
        let supply = DevToken::totalSupplyCall::abi_decode_returns(&answers[1]).unwrap();
        let mut balances = BTreeMap::new();
        for (a, raw) in accounts.iter().zip(&answers[2..]) {
            balances.insert(*a, amount(DevToken::balanceOfCall::abi_decode_returns(raw).unwrap()));
        }
        let mut deposits = BTreeMap::new();
        for (a, raw) in accounts.iter().zip(&answers[2 + accounts.len()..]) {
            let d = Marketplace::balanceOfCall::abi_decode_returns(raw).unwrap();
            deposits.insert(*a, amount(d));
        }
        let mut tasks = BTreeMap::new();
        for (id, raw) in (1..=count).zip(&answers[2 + 2 * accounts.len()..]) {
            tasks.insert(id, Marketplace::getTaskCall::abi_decode_returns(raw).unwrap().commitment);
        }
        let chain = Snapshot {
            escrowed: amount(t.escrowed),
            paid: amount(t.paid),
            refunded: amount(t.refunded),
            held: amount(t.held),
            supply: amount(supply),
            balances,
            deposits,
            tasks,
        };
        let bad = self.ledger.check(&chain, self.enclave.address());
        if !bad.is_empty() {
            self.fail(&format!("tokens are not where the events say:\n  {}", bad.join("\n  ")));
        }
        // Every task word against the model too.
        for id in 1..=count {
            let t = self.task(id).unwrap();
            let want = if t.st == St::Ended { FixedBytes::ZERO } else { self.commitment(t) };
            if chain.tasks[&id] != want {
                self.fail(&format!("task {id}: stored word {}, model {want}", chain.tasks[&id]));
            }
        }
    }

    // --------------------------------------------------------------- random calls

    fn spec_for(
        &mut self,
        image: B256,
        cid: &str,
        memory: u32,
        runtime: u32,
        deadline: u64,
    ) -> TaskSpec {
        TaskSpec {
            imageId: image,
            inputHash: self.rng.b256(),
            inputCidHash: keccak256(cid.as_bytes()),
            memoryMb: memory,
            maxRuntimeS: runtime,
            deadline,
        }
    }

    fn future_deadline(&mut self) -> u64 {
        (self.cell + 1 + self.rng.below(3) as u64) * CELL
    }

    /// Terms of a task that fit offer `offer_id`: its image (else one it can run, else
    /// `image`), memory and run time within its limits, and a maxPrice at least its price.
    fn terms_for(&mut self, offer_id: u64, image: B256) -> (B256, u32, u32, u128) {
        let o = self.offer(offer_id).unwrap().clone();
        let image = if o.image != B256::ZERO {
            o.image
        } else {
            let fit: Vec<B256> = self
                .images
                .iter()
                .filter(|i| !i.deprecated && i.platforms & o.platform != 0)
                .map(|i| i.id)
                .collect();
            if fit.is_empty() { image } else { self.rng.pick(&fit) }
        };
        let mems: Vec<u32> = [128, 256, 512, 1024].into_iter().filter(|m| *m <= o.memory).collect();
        let memory = if mems.is_empty() { o.memory } else { self.rng.pick(&mems) };
        let rts: Vec<u32> = [30, 60, 300, 600].into_iter().filter(|t| *t <= o.runtime).collect();
        let runtime = if rts.is_empty() { o.runtime } else { self.rng.pick(&rts) };
        let max = o.price + self.rng.pick(&[0, 0, 1, 10, 500, 2000]);
        (image, memory, runtime, max)
    }

    /// submitTask or submitTaskWithPermit, open or matched at submission.
    async fn submit(&mut self, matched: bool) {
        let r = self.rng.pick(&REQUESTERS);
        let n = self.tasks.len() + 1;
        let cid = format!("bafkreiinput{}x{n}", self.sequence);
        let live_images = self.live_images();
        let mut image = self.rng.pick(&live_images);
        let mut memory = self.rng.pick(&[128, 256, 512, 1024]);
        let mut runtime = self.rng.pick(&[30, 60, 300, 600]);
        let mut max = self.rng.pick(&[1, 2, 40, 400, 1000, 1000, 2500, 10_000]);
        if self.rng.pct(1) {
            max = 0;
        }
        let mut offer_id = 0;
        if matched {
            let open: Vec<u64> = (1..=self.offers.len() as u64)
                .filter(|id| {
                    let o = self.offer(*id).unwrap();
                    !o.withdrawn
                        && o.used < o.slots
                        && self.images.iter().any(|i| {
                            !i.deprecated
                                && i.platforms & o.platform != 0
                                && (o.image == B256::ZERO || o.image == i.id)
                        })
                })
                .collect();
            let forced = self.force_offer.take().filter(|o| open.contains(o));
            if let Some(o) = forced {
                offer_id = o;
            } else if !open.is_empty() && self.rng.pct(88) {
                offer_id = self.rng.pick(&open);
            }
            if offer_id != 0 {
                (image, memory, runtime, max) = self.terms_for(offer_id, image);
            } else {
                offer_id = 1 + self.rng.below(self.offers.len() + 2) as u64;
            }
        }
        let mut passed_cid = cid.clone();
        let mut deadline = self.future_deadline();
        let mut wrong = String::new();
        match self.rng.below(100) {
            0..=1 if !self.dead_images().is_empty() => {
                let dead = self.dead_images();
                image = self.rng.pick(&dead);
                wrong = "deprecated image".into();
            }
            2 => {
                image = self.rng.b256();
                wrong = "unknown image".into();
            }
            3..=4 => {
                passed_cid = format!("{cid}-other");
                wrong = "input CID not the spec's".into();
            }
            5..=6 => {
                deadline = self.cell * CELL;
                wrong = "deadline passed".into();
            }
            _ => {}
        }
        let spec = self.spec_for(image, &cid, memory, runtime, deadline);
        let permit_path = self.rng.pct(60);
        let allowed = self.allowance[r];
        let pull = max - self.deposits[r].min(max);
        if !permit_path && allowed != U256::MAX && allowed < U256::from(pull) && self.rng.pct(85) {
            // A client without allowance approves first.
            return self.approve(Some(r)).await;
        }
        let (data, permit_ok, how) = if permit_path {
            let (variant, pdeadline, v, pr, ps) = self.random_permit(r, max);
            let data = Marketplace::submitTaskWithPermitCall {
                spec: spec.clone(),
                inputCid: passed_cid.clone(),
                maxPrice: u96(max),
                offerId: offer_id,
                permitDeadline: pdeadline,
                v,
                r: pr,
                s: ps,
            }
            .abi_encode();
            (data, variant == "permit", variant)
        } else {
            let data = Marketplace::submitTaskCall {
                spec: spec.clone(),
                inputCid: passed_cid.clone(),
                maxPrice: u96(max),
                offerId: offer_id,
            }
            .abi_encode();
            (data, false, "allowance")
        };
        let label = if permit_path { "submitTaskWithPermit" } else { "submitTask" };
        let line = format!(
            "image {:.10} mem {memory} rt {runtime} deadline cell {} max {max} offer {offer_id} ({how}, deposit {}) {wrong}",
            image.to_string(),
            deadline / CELL,
            self.deposits[r]
        );
        let prediction = self.predict_submit(r, &spec, &passed_cid, max, offer_id, permit_ok);
        let expect = match prediction {
            Err(e) => Expect::Err(e),
            Ok(price) => {
                let permitted = permit_ok.then_some(U256::from(max));
                let (event, token) =
                    self.submitted(r, &spec, &passed_cid, max, offer_id, price, permitted);
                Expect::moving(vec![event], token)
            }
        };
        let touch = Touch { tasks: vec![self.tasks.len() as u64], offers: vec![offer_id] };
        self.exec(Tx { who: r, target: Target::Market, data, label, line }, expect, touch).await;
    }

    /// The model's side of a submission `predict_submit` accepted (at `price`): the task is
    /// stored (held by `offer_id` if not 0), its escrow drawn from the deposit first and the
    /// rest pulled (after a permit for `permitted`, if one applied). Returns its TaskSubmitted
    /// and token events.
    #[allow(clippy::too_many_arguments)]
    fn submitted(
        &mut self,
        r: usize,
        spec: &TaskSpec,
        cid: &str,
        max: u128,
        offer_id: u64,
        price: u128,
        permitted: Option<U256>,
    ) -> (Ev, Vec<DevToken::DevTokenEvents>) {
        let id = self.tasks.len() as u64 + 1;
        let ra = self.addr(r);
        self.tasks.push(TaskM {
            spec: spec.clone(),
            requester: r,
            max_price: max,
            st: if offer_id == 0 { St::Open } else { St::Held(offer_id, price) },
        });
        self.live.push(id);
        if offer_id != 0 {
            self.offer_mut(offer_id).used += 1;
        }
        let market = self.d.marketplace;
        let drawn = self.deposits[r].min(max);
        self.deposits[r] -= drawn;
        self.pulled(r, max - drawn, permitted);
        self.escrowed += max;
        match (drawn, max) {
            (_, 0) => {}
            (d, m) if d == m => self.stats.from_deposit += 1,
            (0, _) => self.stats.from_wallet += 1,
            _ => self.stats.part_deposit += 1,
        }
        let token = permitted
            .map(|v| approval(ra, market, v))
            .into_iter()
            .chain(transfer(ra, market, max - drawn))
            .collect();
        let event = Ev::TaskSubmitted(Marketplace::TaskSubmitted {
            taskId: U256::from(id),
            requester: ra,
            imageId: spec.imageId,
            inputHash: spec.inputHash,
            memoryMb: spec.memoryMb,
            maxRuntimeS: spec.maxRuntimeS,
            deadline: spec.deadline,
            maxPrice: u96(max),
            price: u96(price),
            offerId: offer_id,
            inputCid: cid.to_owned(),
        });
        (event, token)
    }

    /// Offers a matched task could name now, once `taken` more slots of them are used (by
    /// earlier tasks of the same batch): not withdrawn, a slot free, some live image fits.
    fn open_offers(&self, taken: &BTreeMap<u64, u16>) -> Vec<u64> {
        (1..=self.offers.len() as u64)
            .filter(|id| {
                let o = self.offer(*id).unwrap();
                !o.withdrawn
                    && o.used + taken.get(id).copied().unwrap_or_default() < o.slots
                    && self.images.iter().any(|i| {
                        !i.deprecated
                            && i.platforms & o.platform != 0
                            && (o.image == B256::ZERO || o.image == i.id)
                    })
            })
            .collect()
    }

    /// A valid task for position `id` of a batch: matched to `offer` (when not 0), else
    /// open.
    fn batch_task(&mut self, id: usize, offer: u64) -> BatchTask {
        let cid = format!("bafkreiinput{}x{id}", self.sequence);
        let live = self.live_images();
        let mut image = self.rng.pick(&live);
        let mut memory = self.rng.pick(&[128, 256, 512, 1024]);
        let mut runtime = self.rng.pick(&[30, 60, 300, 600]);
        let mut max = self.rng.pick(&[1, 40, 400, 1000, 2500, 10_000]);
        if offer != 0 {
            (image, memory, runtime, max) = self.terms_for(offer, image);
        }
        let deadline = self.future_deadline();
        let spec = self.spec_for(image, &cid, memory, runtime, deadline);
        BatchTask { spec, cid, max, offer }
    }

    fn save(&self) -> Saved {
        Saved {
            tasks: self.tasks.len(),
            live: self.live.len(),
            offers: self.offers.clone(),
            deposits: self.deposits.clone(),
            allowance: self.allowance.clone(),
            balances: self.balances.clone(),
            escrowed: self.escrowed,
            funded: (self.stats.from_deposit, self.stats.part_deposit, self.stats.from_wallet),
        }
    }

    /// Undoes the submissions since `saved` (a refused batch changes nothing).
    fn restore(&mut self, saved: Saved) {
        self.tasks.truncate(saved.tasks);
        self.live.truncate(saved.live);
        self.offers = saved.offers;
        self.deposits = saved.deposits;
        self.allowance = saved.allowance;
        self.balances = saved.balances;
        self.escrowed = saved.escrowed;
        (self.stats.from_deposit, self.stats.part_deposit, self.stats.from_wallet) = saved.funded;
    }

    /// What each task of `batch` pulls from `r`'s wallet, its deposit drawn first, in order.
    fn batch_pulls(&self, r: usize, batch: &[BatchTask]) -> Vec<u128> {
        let mut deposit = self.deposits[r];
        batch
            .iter()
            .map(|t| {
                let drawn = deposit.min(t.max);
                deposit -= drawn;
                t.max - drawn
            })
            .collect()
    }

    /// submitTasks: a requester (now and then the stranger, which has no allowance) submits
    /// 1 to 8 tasks in one transaction, matched and open mixed, their escrows drawn from its
    /// deposit while it lasts and the rest pulled against its allowance. Sometimes a bad
    /// batch: empty, arrays of different lengths, or one task refused at a random position
    /// (input CID not the spec's, deadline passed, unknown or deprecated image, an offer the
    /// earlier tasks of the batch filled, maxPrice below the offer's price, an allowance
    /// short of what the wallet must pay once earlier tasks used the deposit up).
    async fn submit_tasks(&mut self) {
        let r = if self.rng.pct(6) {
            STRANGER
        } else {
            let with: Vec<usize> =
                REQUESTERS.iter().copied().filter(|r| self.deposits[*r] > 0).collect();
            if !with.is_empty() && self.rng.pct(50) {
                self.rng.pick(&with)
            } else {
                self.rng.pick(&REQUESTERS)
            }
        };
        let mut n = 1 + self.rng.below(MAX_BATCH);
        let first = self.tasks.len() + 1;
        let roll = self.rng.below(100);
        let bad_at = self.rng.below(n);
        let mut what = String::new();
        // An offer the batch overfills: its free slots and one more task name it.
        let mut overfill: Vec<usize> = Vec::new();
        let mut full_offer = 0;
        if (18..=23).contains(&roll) {
            let empty = BTreeMap::new();
            let open: Vec<u64> = self
                .open_offers(&empty)
                .into_iter()
                .filter(|id| {
                    let o = self.offer(*id).unwrap();
                    usize::from(o.slots - o.used) < MAX_BATCH
                })
                .collect();
            if !open.is_empty() {
                full_offer = self.rng.pick(&open);
                let (used, slots) = self.offer(full_offer).map(|o| (o.used, o.slots)).unwrap();
                let k = usize::from(slots - used) + 1;
                n = n.max(k);
                let mut positions: Vec<usize> = (0..n).collect();
                for i in (1..n).rev() {
                    let j = self.rng.below(i + 1);
                    positions.swap(i, j);
                }
                positions.truncate(k);
                positions.sort_unstable();
                what = format!(
                    "offer {full_offer} ({used} of {slots} slots used) named by tasks {positions:?}"
                );
                overfill = positions;
            }
        }
        let mut taken: BTreeMap<u64, u16> = BTreeMap::new();
        let mut batch = Vec::new();
        for i in 0..n {
            let offer = if overfill.contains(&i) {
                full_offer
            } else if self.rng.pct(55) {
                let open: Vec<u64> =
                    self.open_offers(&taken).into_iter().filter(|o| *o != full_offer).collect();
                if open.is_empty() { 0 } else { self.rng.pick(&open) }
            } else {
                0
            };
            if offer != 0 {
                *taken.entry(offer).or_default() += 1;
            }
            let mut t = self.batch_task(first + i, offer);
            if i == bad_at {
                match roll {
                    7..=9 => {
                        t.cid = format!("{}-other", t.cid);
                        what = format!("task #{i}: input CID not the spec's");
                    }
                    10..=12 => {
                        t.spec.deadline = self.cell * CELL;
                        what = format!("task #{i}: deadline passed");
                    }
                    13..=14 => {
                        t.spec.imageId = self.rng.b256();
                        what = format!("task #{i}: unknown image");
                    }
                    15..=17 if !self.dead_images().is_empty() => {
                        let dead = self.dead_images();
                        t.spec.imageId = self.rng.pick(&dead);
                        what = format!("task #{i}: deprecated image");
                    }
                    24..=26 => {
                        let open: Vec<u64> = self.open_offers(&taken);
                        if !open.is_empty() {
                            let o = self.rng.pick(&open);
                            let price = self.offer(o).unwrap().price;
                            let keep = t.cid.clone();
                            t = self.batch_task(first + i, o);
                            t.cid = keep;
                            t.max = price - 1;
                            what = format!("task #{i}: maxPrice below offer {o}'s price");
                        }
                    }
                    _ => {}
                }
            }
            batch.push(t);
        }
        let pulls = self.batch_pulls(r, &batch);
        let short: Vec<usize> = (0..n).filter(|i| pulls[*i] > 0).collect();
        let allowed = self.allowance[r];
        let needed: u128 = pulls.iter().sum();
        if (27..=31).contains(&roll) && r != STRANGER && !short.is_empty() {
            // An allowance that covers the pulls before task k and all of k's but one.
            let k = self.rng.pick(&short);
            let value = pulls[..k].iter().sum::<u128>() + pulls[k] - 1;
            what = format!("task #{k}: allowance {value} one short of the wallet's part");
            self.approve_to(r, U256::from(value)).await;
            self.call_no += 1;
        } else if r != STRANGER
            && allowed != U256::MAX
            && allowed < U256::from(needed)
            && self.rng.pct(85)
        {
            // A client without allowance enough approves first.
            self.approve_to(r, U256::MAX).await;
            self.call_no += 1;
        }
        let mut specs: Vec<TaskSpec> = batch.iter().map(|t| t.spec.clone()).collect();
        let mut cids: Vec<String> = batch.iter().map(|t| t.cid.clone()).collect();
        let mut maxes: Vec<Uint<96, 2>> = batch.iter().map(|t| u96(t.max)).collect();
        let mut offers: Vec<u64> = batch.iter().map(|t| t.offer).collect();
        match roll {
            0..=2 => {
                // Empty; now and then only the specs are.
                specs.clear();
                if self.rng.pct(70) {
                    cids.clear();
                    maxes.clear();
                    offers.clear();
                }
                what = "empty batch".into();
            }
            3..=6 => {
                // One array one longer or one shorter than the others.
                let longer = self.rng.pct(50);
                let which = self.rng.below(4);
                let j = self.rng.below(n);
                match (which, longer) {
                    (0, true) => specs.push(specs[j].clone()),
                    (0, false) => specs.truncate(n - 1),
                    (1, true) => cids.push(cids[j].clone()),
                    (1, false) => cids.truncate(n - 1),
                    (2, true) => maxes.push(maxes[j]),
                    (2, false) => maxes.truncate(n - 1),
                    (_, true) => offers.push(offers[j]),
                    (_, false) => offers.truncate(n - 1),
                }
                let name = ["specs", "inputCids", "maxPrices", "offerIds"][which];
                what = format!("{name} one {}", if longer { "longer" } else { "shorter" });
            }
            _ => {}
        }
        let m = specs.len();
        let data = Marketplace::submitTasksCall {
            specs: specs.clone(),
            inputCids: cids.clone(),
            maxPrices: maxes.clone(),
            offerIds: offers.clone(),
        }
        .abi_encode();
        let line = format!(
            "{m} tasks (max, offer) {:?}, deposit {}, allowance {}: {}",
            batch.iter().map(|t| (t.max, t.offer)).collect::<Vec<_>>(),
            self.deposits[r],
            if self.allowance[r] == U256::MAX {
                "max".into()
            } else {
                self.allowance[r].to_string()
            },
            if what.is_empty() { "valid" } else { &what }
        );
        // Each task as submitTask would take it, against what the earlier ones left; the
        // first refusal refuses the whole batch.
        let saved = self.save();
        let mut refusal = None;
        let mut events = Vec::new();
        let mut token = Vec::new();
        if m == 0 {
            refusal = Some(merr(E::EmptyBatch(Marketplace::EmptyBatch {})));
        } else if cids.len() != m || maxes.len() != m || offers.len() != m {
            refusal = Some(merr(E::BatchLengthMismatch(Marketplace::BatchLengthMismatch {})));
        } else {
            for i in 0..m {
                let max = u128::try_from(maxes[i]).unwrap();
                match self.predict_submit(r, &specs[i], &cids[i], max, offers[i], false) {
                    Err(e) => {
                        refusal = Some(e);
                        break;
                    }
                    Ok(price) => {
                        let (event, moved) =
                            self.submitted(r, &specs[i], &cids[i], max, offers[i], price, None);
                        events.push(event);
                        token.extend(moved);
                    }
                }
            }
        }
        let expect = match refusal {
            Some(e) => {
                self.restore(saved);
                Expect::Err(e)
            }
            None => {
                self.stats.task_batched += m;
                *self.stats.task_batch_sizes.entry(m).or_default() += 1;
                Expect::moving(events, token)
            }
        };
        let mut touched: Vec<u64> = Vec::new();
        for o in &offers {
            if *o != 0 && !touched.contains(o) {
                touched.push(*o);
            }
        }
        let touch =
            Touch { tasks: (first..first + m).map(|id| id as u64).collect(), offers: touched };
        self.exec(
            Tx { who: r, target: Target::Market, data, label: "submitTasks", line },
            expect,
            touch,
        )
        .await;
    }

    /// A task id for a call meant for `candidates`: mostly one of them, sometimes any live
    /// task, any task or one never submitted. `None` (mostly) when there is no candidate: the
    /// caller does something else.
    fn pick_task(&mut self, candidates: &[u64], valid_pct: usize) -> Option<u64> {
        if candidates.is_empty() {
            if !self.rng.pct(8) {
                return None;
            }
        } else if self.rng.pct(valid_pct) {
            return Some(self.rng.pick(candidates));
        }
        Some(match self.rng.below(3) {
            0 if !self.live.is_empty() => self.rng.pick(&self.live),
            1 if !self.tasks.is_empty() => 1 + self.rng.below(self.tasks.len()) as u64,
            _ => self.tasks.len() as u64 + 1 + self.rng.below(3) as u64,
        })
    }

    /// Open tasks a node could claim now.
    fn claimable(&self) -> Vec<u64> {
        self.live_where(|t| {
            t.st == St::Open && !self.passed(t.spec.deadline) && !self.revoked(t.spec.imageId)
        })
    }

    /// Held tasks their holder can settle now.
    fn settleable(&self) -> Vec<u64> {
        self.live_where(|t| {
            matches!(t.st, St::Held(..))
                && !self.passed(t.spec.deadline)
                && !self.revoked(t.spec.imageId)
        })
    }

    /// The fields a caller passes back for task `id` (as the events gave them); for an unknown
    /// id, made-up ones.
    fn passed_fields(&mut self, id: u64) -> (TaskSpec, Address, u128, u128) {
        match self.task(id).cloned() {
            Some(t) => {
                let price = match t.st {
                    St::Held(_, p) => p,
                    _ => 0,
                };
                (t.spec, self.addr(t.requester), t.max_price, price)
            }
            None => {
                let spec =
                    self.spec_for(self.images[0].id, "none", 128, 30, (self.cell + 1) * CELL);
                (spec, self.addr(REQUESTERS[0]), 1000, 0)
            }
        }
    }

    /// Makes one of the passed fields wrong, sometimes; names what it changed.
    fn maybe_wrong(
        &mut self,
        pct: usize,
        spec: &mut TaskSpec,
        requester: Option<&mut Address>,
        max: &mut u128,
        price: Option<&mut u128>,
    ) -> &'static str {
        if !self.rng.pct(pct) {
            return "";
        }
        match self.rng.below(6) {
            0 => {
                spec.inputHash = self.rng.b256();
                "wrong inputHash"
            }
            1 => {
                spec.memoryMb += 1;
                "wrong memoryMb"
            }
            2 => {
                spec.deadline += CELL;
                "later deadline"
            }
            3 => {
                *max += 1;
                "wrong maxPrice"
            }
            4 => match price {
                Some(p) => {
                    *p += 1;
                    "wrong price"
                }
                None => {
                    spec.maxRuntimeS += 1;
                    "wrong maxRuntimeS"
                }
            },
            _ => match requester {
                Some(r) => {
                    *r = self.addr(STRANGER);
                    "wrong requester"
                }
                None => {
                    spec.imageId =
                        self.rng.pick(&self.images.iter().map(|i| i.id).collect::<Vec<_>>());
                    "maybe another image"
                }
            },
        }
    }

    /// The (node, offer) pairs that can claim task `id` now.
    fn fitting(&self, id: u64) -> Vec<(usize, u64)> {
        let Some(t) = self.live_task(id) else { return Vec::new() };
        let (spec, requester, max) = (&t.spec, self.addr(t.requester), t.max_price);
        (1..=self.offers.len() as u64)
            .map(|o| (self.offer(o).unwrap().node, o))
            .filter(|(n, o)| self.predict_claim(*n, id, *o, spec, requester, max).is_ok())
            .collect()
    }

    async fn claim(&mut self) -> bool {
        let candidates: Vec<u64> =
            self.claimable().into_iter().filter(|id| !self.fitting(*id).is_empty()).collect();
        let Some(id) = self.pick_task(&candidates, 90) else { return false };
        let (mut spec, mut requester, mut max, _) = self.passed_fields(id);
        let fitting = self.fitting(id);
        let (node, offer) = if !fitting.is_empty() && self.rng.pct(85) {
            self.rng.pick(&fitting)
        } else {
            let node = self.rng.pick(&NODES);
            let own: Vec<u64> = (1..=self.offers.len() as u64)
                .filter(|o| self.offer(*o).unwrap().node == node)
                .collect();
            let offer = match self.rng.below(10) {
                0 => self.offers.len() as u64 + 1,
                1..=2 if !self.offers.is_empty() => 1 + self.rng.below(self.offers.len()) as u64,
                _ if !own.is_empty() => self.rng.pick(&own),
                _ => self.offers.len() as u64 + 1,
            };
            (node, offer)
        };
        let wrong = self.maybe_wrong(5, &mut spec, Some(&mut requester), &mut max, None);
        let data = Marketplace::claimTaskCall {
            taskId: U256::from(id),
            offerId: offer,
            spec: spec.clone(),
            requester,
            maxPrice: u96(max),
        }
        .abi_encode();
        let expect = match self.predict_claim(node, id, offer, &spec, requester, max) {
            Err(e) => Expect::Err(merr(e)),
            Ok(price) => {
                self.task_mut(id).st = St::Held(offer, price);
                self.offer_mut(offer).used += 1;
                Expect::ok(vec![Ev::TaskClaimed(Marketplace::TaskClaimed {
                    taskId: U256::from(id),
                    offerId: offer,
                    node: self.addr(node),
                    price: u96(price),
                })])
            }
        };
        let line = format!("task {id} offer {offer} {wrong}");
        let touch = Touch { tasks: vec![id], offers: vec![offer] };
        self.exec(
            Tx { who: node, target: Target::Market, data, label: "claimTask", line },
            expect,
            touch,
        )
        .await;
        true
    }

    fn holder_or_other(&mut self, id: u64, pct: usize) -> usize {
        let holder = match self.live_task(id).map(|t| t.st) {
            Some(St::Held(o, _)) => Some(self.offer(o).unwrap().node),
            _ => None,
        };
        match holder {
            Some(h) if self.rng.pct(pct) => h,
            _ => self.rng.pick(&[NODES[0], NODES[1], NODES[2], STRANGER]),
        }
    }

    async fn submit_result(&mut self) -> bool {
        let candidates = self.settleable();
        let Some(id) = self.pick_task(&candidates, 90) else { return false };
        let sender = self.holder_or_other(id, 93);
        let (mut spec, mut requester, mut max, mut price) = self.passed_fields(id);
        let mut status =
            if self.rng.pct(72) { self.rng.pick(&PAYING) } else { self.rng.pick(&REFUNDING) };
        let mut what = String::new();
        if self.rng.pct(3) {
            status = self.rng.pick(&UNKNOWN_STATUSES);
            what.push_str("unknown status ");
        }
        let signed_spec = spec.clone();
        let mut signed_status = status;
        let mut key = self.enclave.clone();
        let mut mangle = 0;
        let mut sign_relayed_spec = false;
        match self.rng.below(100) {
            0..=2 => {
                key = self.rogue.clone();
                what.push_str("signed by a key no image trusts");
            }
            3..=4 => {
                // Signed over a wrong spec, relayed with it.
                let w = self.maybe_wrong(100, &mut spec, None, &mut max, None);
                what.push_str(w);
                what.push_str(" (signed over it)");
                sign_relayed_spec = true;
            }
            5..=6 => {
                // The signature is over the spec; a wrong field is relayed.
                let w = self.maybe_wrong(
                    100,
                    &mut spec,
                    Some(&mut requester),
                    &mut max,
                    Some(&mut price),
                );
                what.push_str(w);
                what.push_str(" (signature over the right fields)");
            }
            7 => {
                signed_status = if status == 0 { 1 } else { 0 };
                what.push_str("status not the one signed");
            }
            8 => {
                mangle = 1;
                what.push_str("64-byte signature");
            }
            9 => {
                mangle = 2;
                what.push_str("v = 29");
            }
            10..=14 => {
                mangle = 3;
                what.push_str("v as 0/1");
            }
            _ => {}
        }
        let spec_for_sig = if sign_relayed_spec { spec.clone() } else { signed_spec };
        let signed = self.proof(id, &spec_for_sig, signed_status);
        let mut signature = self.sign_proof(&key, &signed).to_vec();
        match mangle {
            1 => signature.truncate(64),
            2 => signature[64] = 29,
            3 => signature[64] -= 27,
            _ => {}
        }
        let relayed = Proof { spec: spec.clone(), status, ..signed.clone() };
        let data =
            self.result_call(id, &relayed, requester, max, price, Bytes::from(signature.clone()));
        // What ecrecover gives for the relayed fields (the contract's `signer`).
        let malformed = mangle == 1 || mangle == 2;
        let recovered = if malformed {
            Address::ZERO
        } else {
            let sig = Signature::from_raw(&signature).expect("signature");
            let digest = result_digest(&relayed, self.d.chain_id, self.d.marketplace);
            sig.recover_address_from_prehash(&digest).expect("recover")
        };
        let relayed = Relayed {
            id,
            proof: relayed,
            requester,
            max,
            price,
            signature: Bytes::from(signature),
            recovered,
            malformed,
        };
        let held_by = match self.live_task(id).map(|t| t.st) {
            Some(St::Held(o, _)) => Some(o),
            _ => None,
        };
        let expect = match self.predict_result(sender, &relayed, &[]) {
            Err(e) => Expect::Err(merr(e)),
            Ok(offer) => {
                let (event, refund, paid) = self.settle(&relayed, offer);
                let (node, market) = (self.addr(sender), self.d.marketplace);
                self.debit(market, paid);
                self.credit(node, paid);
                let token = refund.into_iter().chain(transfer(market, node, paid)).collect();
                Expect::moving(vec![event], token)
            }
        };
        let offer = held_by;
        let line = format!("task {id} status {status} {what}");
        let touch = Touch { tasks: vec![id], offers: offer.into_iter().collect() };
        self.exec(
            Tx { who: sender, target: Target::Market, data, label: "submitResult", line },
            expect,
            touch,
        )
        .await;
        true
    }

    /// Marketplace._settle's checks of one relayed proof from `sender`, in the contract's
    /// order; `settled` are the tasks earlier proofs of the same batch settle (gone by then).
    /// The holding offer, or why the proof is refused.
    fn predict_result(&self, sender: usize, r: &Relayed, settled: &[u64]) -> Result<u64, E> {
        let (id, spec, status) = (r.id, &r.proof.spec, r.proof.status);
        let task_id = U256::from(id);
        if !valid_status(status) {
            return Err(E::UnknownStatus(Marketplace::UnknownStatus { status }));
        }
        if settled.contains(&id) {
            return Err(E::TaskNotActive(Marketplace::TaskNotActive { taskId: task_id }));
        }
        let (offer, _) = self.holder_check(id, sender)?;
        if self.passed(spec.deadline) {
            return Err(E::DeadlinePassed(Marketplace::DeadlinePassed {
                taskId: task_id,
                deadline: spec.deadline,
            }));
        }
        if r.malformed {
            return Err(E::MalformedSignature(Marketplace::MalformedSignature {}));
        }
        let t = self.live_task(id).unwrap();
        if r.recovered != self.enclave.address()
            || !self.matches(t, spec, r.requester, r.max, r.price)
        {
            let expected =
                self.image(spec.imageId).map_or(Address::ZERO, |_| self.enclave.address());
            if expected != Address::ZERO && r.recovered != expected {
                return Err(E::WrongSigner(Marketplace::WrongSigner {
                    taskId: task_id,
                    recovered: r.recovered,
                    expected,
                }));
            }
            return Err(E::SpecMismatch(Marketplace::SpecMismatch { taskId: task_id }));
        }
        if self.revoked(spec.imageId) {
            return Err(E::ImageRevoked(Marketplace::ImageRevoked { imageId: spec.imageId }));
        }
        Ok(offer)
    }

    /// The model's side of an accepted proof for a task `offer` holds: the task ends, the
    /// requester gets its refund at once. Returns the ResultSubmitted event, the refund's
    /// Transfer, and what the holding node is owed (paid by the caller: once per call).
    fn settle(&mut self, r: &Relayed, offer: u64) -> (Ev, Option<DevToken::DevTokenEvents>, u128) {
        let status = r.proof.status;
        let paid = if status < 16 { r.price } else { 0 };
        let refunded = r.max - paid;
        let node = self.addr(self.offer(offer).unwrap().node);
        let market = self.d.marketplace;
        self.end_task(r.id);
        self.offer_mut(offer).used -= 1;
        self.debit(market, refunded);
        self.credit(r.requester, refunded);
        self.paid += paid;
        self.refunded += refunded;
        if status < 16 {
            self.stats.paid += 1;
        } else {
            self.stats.refunded += 1;
        }
        let event = Ev::ResultSubmitted(Marketplace::ResultSubmitted {
            taskId: U256::from(r.id),
            offerId: offer,
            node,
            signer: r.recovered,
            resultHash: r.proof.result_hash,
            codeHash: r.proof.code_hash,
            status,
            runtimeMs: r.proof.runtime_ms,
            paid: u96(paid),
            refunded: u96(refunded),
            resultCid: r.proof.result_cid.clone(),
            signature: r.signature.clone(),
        });
        (event, transfer(market, r.requester, refunded), paid)
    }

    /// deposit or depositWithPermit, mostly by a requester: mostly an amount the wallet
    /// holds, sometimes zero or more than it holds; without allowance a client mostly
    /// approves first.
    async fn deposit(&mut self) {
        let who = if self.rng.pct(85) {
            self.rng.pick(&REQUESTERS)
        } else {
            self.rng.pick(&[NODES[0], NODES[1], NODES[2], STRANGER])
        };
        let balance = self.balances[&self.addr(who)];
        let amount = match self.rng.below(100) {
            0..=2 => 0,
            3..=5 => balance + 1 + self.rng.below(1000) as u128,
            _ => self.rng.pick(&[100, 1000, 2500, 5000, 20_000, 100_000]),
        };
        let permit_path = self.rng.pct(40);
        let allowed = self.allowance[who];
        if !permit_path && allowed != U256::MAX && allowed < U256::from(amount) && self.rng.pct(75)
        {
            return self.approve(Some(who)).await;
        }
        let (data, permitted, how) = if permit_path {
            let (variant, deadline, v, r, s) = self.random_permit(who, amount);
            let data = Marketplace::depositWithPermitCall {
                amount: U256::from(amount),
                permitDeadline: deadline,
                v,
                r,
                s,
            }
            .abi_encode();
            (data, (variant == "permit").then_some(U256::from(amount)), variant)
        } else {
            (
                Marketplace::depositCall { amount: U256::from(amount) }.abi_encode(),
                None,
                "allowance",
            )
        };
        let label = if permit_path { "depositWithPermit" } else { "deposit" };
        let line = format!("{amount} ({how}) onto {}", self.deposits[who]);
        let expect = match self.predict_pull(who, amount, permitted) {
            Err(e) => Expect::Err(e),
            Ok(()) => {
                let (account, market) = (self.addr(who), self.d.marketplace);
                self.pulled(who, amount, permitted);
                self.deposits[who] += amount;
                let token = permitted
                    .map(|v| approval(account, market, v))
                    .into_iter()
                    .chain(transfer(account, market, amount))
                    .collect();
                Expect::moving(
                    vec![Ev::Deposited(Marketplace::Deposited {
                        account,
                        amount: U256::from(amount),
                    })],
                    token,
                )
            }
        };
        let touch = Touch::default();
        self.exec(Tx { who, target: Target::Market, data, label, line }, expect, touch).await;
    }

    /// withdraw: mostly part or all of a deposit, sometimes more than it (or from none).
    async fn withdraw(&mut self) {
        let holders: Vec<usize> = (1..ACCOUNTS).filter(|w| self.deposits[*w] > 0).collect();
        let who = if !holders.is_empty() && self.rng.pct(85) {
            self.rng.pick(&holders)
        } else {
            1 + self.rng.below(ACCOUNTS - 1)
        };
        let deposit = self.deposits[who];
        let (amount, what) = match self.rng.below(100) {
            0..=19 => (deposit + 1 + self.rng.below(5000) as u128, "more than the deposit"),
            20..=44 => (deposit, "all"),
            45..=47 => (0, "nothing"),
            _ => (self.rng.next() as u128 % (deposit + 1), "part"),
        };
        let data = Marketplace::withdrawCall { amount: U256::from(amount) }.abi_encode();
        let line = format!("{amount} of {deposit} ({what})");
        let expect = if amount > deposit {
            Expect::Err(merr(E::InsufficientDeposit(Marketplace::InsufficientDeposit {
                balance: U256::from(deposit),
                amount: U256::from(amount),
            })))
        } else {
            let (account, market) = (self.addr(who), self.d.marketplace);
            self.deposits[who] -= amount;
            self.debit(market, amount);
            self.credit(account, amount);
            Expect::moving(
                vec![Ev::Withdrawn(Marketplace::Withdrawn { account, amount: U256::from(amount) })],
                transfer(market, account, amount).into_iter().collect(),
            )
        };
        self.exec(
            Tx { who, target: Target::Market, data, label: "withdraw", line },
            expect,
            Touch::default(),
        )
        .await;
    }

    /// The batching node takes tasks until it holds two to eight (requesters submit them
    /// matched to its offers; some submissions fail) and relays their proofs in one batch
    /// (sometimes with a bad one among them).
    async fn batch_episode(&mut self) -> bool {
        let size = 2 + self.rng.below(MAX_BATCH - 1);
        for _ in 0..2 * size {
            let held = self.live_where(|t| {
                matches!(t.st, St::Held(o, _) if self.offer(o).unwrap().node == BATCHER)
                    && !self.passed(t.spec.deadline)
                    && !self.revoked(t.spec.imageId)
            });
            if held.len() >= size {
                break;
            }
            let free: Vec<u64> = (1..=self.offers.len() as u64)
                .filter(|id| {
                    let o = self.offer(*id).unwrap();
                    o.node == BATCHER && !o.withdrawn && o.used < o.slots
                })
                .collect();
            if free.is_empty() {
                break;
            }
            self.force_offer = Some(self.rng.pick(&free));
            self.submit(true).await;
            self.force_offer = None;
            self.call_no += 1;
        }
        self.submit_results(Some(size)).await
    }

    /// A correctly signed proof for task `id` with a random status, passing back the fields
    /// the events gave (made-up ones for a task that never was), signed by `key`.
    fn batch_proof(&mut self, id: u64, key: &PrivateKeySigner) -> Relayed {
        let (spec, requester, max, price) = self.passed_fields(id);
        let status =
            if self.rng.pct(72) { self.rng.pick(&PAYING) } else { self.rng.pick(&REFUNDING) };
        let proof = self.proof(id, &spec, status);
        let signature = self.sign_proof(key, &proof);
        Relayed {
            id,
            proof,
            requester,
            max,
            price,
            signature,
            recovered: key.address(),
            malformed: false,
        }
    }

    /// submitResults: a node relays 1 to 8 proofs of tasks it holds at once; sometimes one
    /// of them is bad (signed by a key no image trusts, for a task that is not live, the same
    /// task twice, another node's or an open task), or the batch is empty.
    async fn submit_results(&mut self, forced: Option<usize>) -> bool {
        let mut by_node: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
        for id in self.settleable() {
            if let Some(St::Held(o, _)) = self.live_task(id).map(|t| t.st) {
                by_node.entry(self.offer(o).unwrap().node).or_default().push(id);
            }
        }
        let mut roll = self.rng.below(100);
        if forced.is_some() && roll < 4 {
            roll += 4;
        }
        if by_node.is_empty() && roll >= 4 {
            return false;
        }
        let nodes: Vec<usize> = by_node.keys().copied().collect();
        let sender = if forced.is_some() || by_node.contains_key(&BATCHER) && self.rng.pct(50) {
            BATCHER
        } else if !nodes.is_empty() {
            self.rng.pick(&nodes)
        } else {
            self.rng.pick(&NODES)
        };
        let mut ids = by_node.get(&sender).cloned().unwrap_or_default();
        // Shuffle, then take 1..=MAX_BATCH of them (one less when a bad proof joins); a node
        // holding fewer than it would relay mostly waits for more.
        for i in (1..ids.len()).rev() {
            let j = self.rng.below(i + 1);
            ids.swap(i, j);
        }
        let room = if roll < 24 { MAX_BATCH - 1 } else { MAX_BATCH };
        let size = forced.unwrap_or_else(|| 1 + self.rng.below(room)).min(room);
        if ids.len() < size && roll >= 4 && forced.is_none() && self.rng.pct(60) {
            return false;
        }
        ids.truncate(size);
        if ids.is_empty() && roll >= 4 {
            // The batching node's episode left it nothing to settle (every submission failed).
            return false;
        }
        let enclave = self.enclave.clone();
        let mut proofs: Vec<Relayed> =
            ids.iter().map(|id| self.batch_proof(*id, &enclave)).collect();
        let mut what = format!("{} proofs", proofs.len());
        match roll {
            0..=3 => {
                proofs.clear();
                what = "empty batch".into();
            }
            4..=8 => {
                // One proof signed by a key no image trusts.
                let i = self.rng.below(proofs.len());
                let rogue = self.rogue.clone();
                proofs[i] = self.batch_proof(proofs[i].id, &rogue);
                what.push_str(&format!(", #{i} signed by a rogue key"));
            }
            9..=13 => {
                // A task that is not live: settled or reclaimed, or never submitted.
                let ended: Vec<u64> = (1..=self.tasks.len() as u64)
                    .filter(|id| self.live_task(*id).is_none())
                    .collect();
                let id = if !ended.is_empty() && self.rng.pct(60) {
                    self.rng.pick(&ended)
                } else {
                    self.tasks.len() as u64 + 1 + self.rng.below(3) as u64
                };
                let i = self.rng.below(proofs.len() + 1);
                let p = self.batch_proof(id, &enclave);
                proofs.insert(i, p);
                what.push_str(&format!(", #{i} for task {id}, not live"));
            }
            14..=18 => {
                // The same task twice (the same proof, or another status for it).
                let j = self.rng.below(proofs.len());
                let p = if self.rng.pct(50) {
                    proofs[j].clone()
                } else {
                    self.batch_proof(proofs[j].id, &enclave)
                };
                let i = self.rng.below(proofs.len() + 1);
                what.push_str(&format!(", task {} again at #{i}", p.id));
                proofs.insert(i, p);
            }
            19..=23 => {
                // Another node's task, or one nobody holds.
                let others: Vec<u64> = self.live_where(|t| match t.st {
                    St::Held(o, _) => self.offer(o).unwrap().node != sender,
                    St::Open => true,
                    St::Ended => false,
                });
                let Some(id) = (!others.is_empty()).then(|| self.rng.pick(&others)) else {
                    return false;
                };
                let i = self.rng.below(proofs.len() + 1);
                let p = self.batch_proof(id, &enclave);
                proofs.insert(i, p);
                what.push_str(&format!(", #{i} for task {id}, not this node's"));
            }
            _ => {}
        }
        let data = Marketplace::submitResultsCall {
            proofs: proofs
                .iter()
                .map(|r| Marketplace::Proof {
                    taskId: U256::from(r.id),
                    spec: r.proof.spec.clone(),
                    requester: r.requester,
                    maxPrice: u96(r.max),
                    price: u96(r.price),
                    resultCid: r.proof.result_cid.clone(),
                    resultHash: r.proof.result_hash,
                    codeHash: r.proof.code_hash,
                    status: r.proof.status,
                    runtimeMs: r.proof.runtime_ms,
                    signature: r.signature.clone(),
                })
                .collect(),
        }
        .abi_encode();
        // Each proof as submitResult would check it, against the tasks the earlier ones
        // settle; the first refusal refuses the whole batch.
        let mut accepted = Vec::new();
        let mut refusal = proofs.is_empty().then_some(E::EmptyBatch(Marketplace::EmptyBatch {}));
        for r in &proofs {
            if refusal.is_some() {
                break;
            }
            match self.predict_result(
                sender,
                r,
                &accepted.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            ) {
                Ok(offer) => accepted.push((r.id, offer)),
                Err(e) => refusal = Some(e),
            }
        }
        let mut touched: Vec<u64> = Vec::new();
        for r in &proofs {
            if !touched.contains(&r.id) && self.task(r.id).is_some() {
                touched.push(r.id);
            }
        }
        let expect = match refusal {
            Some(e) => Expect::Err(merr(e)),
            None => {
                let mut events = Vec::new();
                let mut token = Vec::new();
                let mut owed = 0;
                for (r, (_, offer)) in proofs.iter().zip(&accepted) {
                    let (event, refund, paid) = self.settle(r, *offer);
                    events.push(event);
                    token.extend(refund);
                    owed += paid;
                }
                // The node is paid once, for the whole batch, after every refund.
                let (node, market) = (self.addr(sender), self.d.marketplace);
                self.debit(market, owed);
                self.credit(node, owed);
                token.extend(transfer(market, node, owed));
                self.stats.batched += proofs.len();
                *self.stats.batch_sizes.entry(proofs.len()).or_default() += 1;
                Expect::moving(events, token)
            }
        };
        let line = format!("{what}: tasks {:?}", proofs.iter().map(|r| r.id).collect::<Vec<_>>());
        let touch = Touch { tasks: touched, offers: Vec::new() };
        self.exec(
            Tx { who: sender, target: Target::Market, data, label: "submitResults", line },
            expect,
            touch,
        )
        .await;
        true
    }

    async fn release(&mut self) -> bool {
        let candidates = self.live_where(|t| matches!(t.st, St::Held(..)));
        let Some(id) = self.pick_task(&candidates, 88) else { return false };
        let sender = self.holder_or_other(id, 88);
        let (mut spec, mut requester, mut max, mut price) = self.passed_fields(id);
        let wrong =
            self.maybe_wrong(6, &mut spec, Some(&mut requester), &mut max, Some(&mut price));
        let data = Marketplace::releaseTaskCall {
            taskId: U256::from(id),
            spec: spec.clone(),
            requester,
            maxPrice: u96(max),
            price: u96(price),
        }
        .abi_encode();
        let mut offer_touched = None;
        let expect = match self.predict_release(sender, id, &spec, requester, max, price) {
            Err(e) => Expect::Err(merr(e)),
            Ok(offer) => {
                offer_touched = Some(offer);
                self.task_mut(id).st = St::Open;
                self.offer_mut(offer).used -= 1;
                Expect::ok(vec![Ev::TaskReleased(Marketplace::TaskReleased {
                    taskId: U256::from(id),
                    offerId: offer,
                    node: self.addr(sender),
                })])
            }
        };
        let line = format!("task {id} {wrong}");
        let touch = Touch { tasks: vec![id], offers: offer_touched.into_iter().collect() };
        self.exec(
            Tx { who: sender, target: Target::Market, data, label: "releaseTask", line },
            expect,
            touch,
        )
        .await;
        true
    }

    async fn reclaim(&mut self) -> bool {
        let reclaimable = |s: &Self, t: &TaskM| {
            matches!(t.st, St::Held(..)) && (s.revoked(t.spec.imageId) || s.passed(t.spec.deadline))
        };
        let held_due = self.live_where(|t| reclaimable(self, t));
        let held_early = self.live_where(|t| matches!(t.st, St::Held(..)) && !reclaimable(self, t));
        let stale = self.live_where(|t| {
            t.st == St::Open && (self.passed(t.spec.deadline) || self.revoked(t.spec.imageId))
        });
        let open = self.live_where(|t| t.st == St::Open);
        let roll = self.rng.below(100);
        let id = if roll < 45 && !held_due.is_empty() {
            self.rng.pick(&held_due)
        } else if roll < 55 && !held_early.is_empty() {
            self.rng.pick(&held_early)
        } else if roll < 80 && !stale.is_empty() {
            self.rng.pick(&stale)
        } else if roll < 92 && !open.is_empty() {
            self.rng.pick(&open)
        } else {
            let live = self.live.clone();
            let Some(id) = self.pick_task(&live, 50) else { return false };
            id
        };
        let (mut spec, requester, mut max, mut price) = self.passed_fields(id);
        let owner = REQUESTERS.iter().copied().find(|r| self.addr(*r) == requester);
        let sender = match owner {
            Some(r) if self.rng.pct(92) => r,
            _ => self.rng.pick(&[REQUESTERS[0], REQUESTERS[1], REQUESTERS[2], NODES[0], STRANGER]),
        };
        let wrong = self.maybe_wrong(4, &mut spec, None, &mut max, Some(&mut price));
        let data = self.reclaim_call(id, &spec, max, price);
        let mut offer_touched = None;
        let expect = match self.predict_reclaim(sender, id, &spec, max, price) {
            Err(e) => Expect::Err(merr(e)),
            Ok(()) => {
                let offer = match self.task(id).unwrap().st {
                    St::Held(o, _) => {
                        self.offer_mut(o).used -= 1;
                        self.stats.reclaimed_held += 1;
                        offer_touched = Some(o);
                        o
                    }
                    _ => {
                        self.stats.cancelled += 1;
                        0
                    }
                };
                let ra = self.addr(sender);
                let market = self.d.marketplace;
                self.end_task(id);
                self.debit(market, max);
                self.credit(ra, max);
                self.refunded += max;
                Expect::moving(
                    vec![Ev::TaskReclaimed(Marketplace::TaskReclaimed {
                        taskId: U256::from(id),
                        requester: ra,
                        offerId: offer,
                        amount: u96(max),
                    })],
                    transfer(market, ra, max).into_iter().collect(),
                )
            }
        };
        let line = format!("task {id} {wrong}");
        let touch = Touch { tasks: vec![id], offers: offer_touched.into_iter().collect() };
        self.exec(
            Tx { who: sender, target: Target::Market, data, label: "reclaim", line },
            expect,
            touch,
        )
        .await;
        true
    }

    /// Random offer terms: mostly valid, sometimes not.
    fn offer_terms(&mut self) -> Terms {
        let live = self.live_images();
        let dead = self.dead_images();
        let image = match self.rng.below(100) {
            0..=44 => self.rng.pick(&live),
            45..=89 => B256::ZERO,
            90..=95 if !dead.is_empty() => self.rng.pick(&dead),
            96..=97 => self.rng.b256(),
            _ => self.rng.pick(&live),
        };
        let platforms = self.image(image).map_or(7, |i| i.platforms);
        let allowed: Vec<u8> = [1, 2, 4].into_iter().filter(|p| platforms & p != 0).collect();
        let refused: Vec<u8> = [1, 2, 4].into_iter().filter(|p| platforms & p == 0).collect();
        let platform = match self.rng.below(100) {
            0..=3 => self.rng.pick(&[0, 3, 8, 5]),
            4..=9 if !refused.is_empty() => self.rng.pick(&refused),
            _ => self.rng.pick(&allowed),
        };
        let slots = if self.rng.pct(3) { 0 } else { 1 + self.rng.below(4) as u16 };
        let memory = self.rng.pick(&[256, 512, 1024, 4096]);
        let runtime = self.rng.pick(&[60, 300, 600, 3600]);
        let price = if self.rng.pct(20) { 1 } else { self.rng.pick(&[10, 100, 400, 1000, 3000]) };
        (image, platform, slots, memory, runtime, price)
    }

    async fn register_offer(&mut self, terms: Option<(usize, Terms)>) {
        let (node, (image, platform, slots, memory, runtime, price)) = match terms {
            Some(t) => t,
            None => (self.rng.pick(&NODES), self.offer_terms()),
        };
        let data = Marketplace::registerOfferCall {
            imageId: image,
            platform,
            slots,
            memoryMb: memory,
            maxRuntimeS: runtime,
            price: u96(price),
        }
        .abi_encode();
        let mut touched = None;
        let expect = match self.predict_terms(image, platform, slots) {
            Err(e) => Expect::Err(merr(e)),
            Ok(()) => {
                self.offers.push(OfferM {
                    node,
                    image,
                    platform,
                    slots,
                    used: 0,
                    memory,
                    runtime,
                    price,
                    withdrawn: false,
                });
                let id = self.offers.len() as u64;
                touched = Some(id);
                Expect::ok(vec![Ev::OfferRegistered(Marketplace::OfferRegistered {
                    offerId: id,
                    node: self.addr(node),
                    imageId: image,
                    platform,
                    slots,
                    memoryMb: memory,
                    maxRuntimeS: runtime,
                    price: u96(price),
                })])
            }
        };
        let line = format!(
            "image {:.10} platform {platform} slots {slots} mem {memory} rt {runtime} price {price}",
            image.to_string()
        );
        let touch = Touch { tasks: Vec::new(), offers: touched.into_iter().collect() };
        self.exec(
            Tx { who: node, target: Target::Market, data, label: "registerOffer", line },
            expect,
            touch,
        )
        .await;
    }

    fn pick_offer(&mut self) -> (u64, usize) {
        let active: Vec<u64> = (1..=self.offers.len() as u64)
            .filter(|id| !self.offer(*id).unwrap().withdrawn)
            .collect();
        let id = if self.offers.is_empty() || self.rng.pct(4) {
            self.offers.len() as u64 + 1
        } else if !active.is_empty() && self.rng.pct(85) {
            self.rng.pick(&active)
        } else {
            1 + self.rng.below(self.offers.len()) as u64
        };
        let owner = self.offer(id).map(|o| o.node);
        let sender = match owner {
            Some(node) if self.rng.pct(88) => node,
            _ => self.rng.pick(&NODES),
        };
        (id, sender)
    }

    async fn update_offer(&mut self) {
        let (id, sender) = self.pick_offer();
        let (image, platform, slots, memory, runtime, price) = self.offer_terms();
        let data = Marketplace::updateOfferCall {
            offerId: id,
            imageId: image,
            platform,
            slots,
            memoryMb: memory,
            maxRuntimeS: runtime,
            price: u96(price),
        }
        .abi_encode();
        let prediction = self
            .predict_own_offer(sender, id)
            .and_then(|()| self.predict_terms(image, platform, slots));
        let expect = match prediction {
            Err(e) => Expect::Err(merr(e)),
            Ok(()) => {
                let node = self.addr(sender);
                let o = self.offer_mut(id);
                (o.image, o.platform, o.slots, o.memory, o.runtime, o.price) =
                    (image, platform, slots, memory, runtime, price);
                Expect::ok(vec![Ev::OfferUpdated(Marketplace::OfferUpdated {
                    offerId: id,
                    node,
                    imageId: image,
                    platform,
                    slots,
                    memoryMb: memory,
                    maxRuntimeS: runtime,
                    price: u96(price),
                })])
            }
        };
        let line = format!(
            "offer {id} image {:.10} platform {platform} slots {slots} mem {memory} rt {runtime} price {price}",
            image.to_string()
        );
        let touch = Touch { tasks: Vec::new(), offers: vec![id] };
        self.exec(
            Tx { who: sender, target: Target::Market, data, label: "updateOffer", line },
            expect,
            touch,
        )
        .await;
    }

    async fn withdraw_offer(&mut self) {
        let (id, sender) = self.pick_offer();
        let data = Marketplace::withdrawOfferCall { offerId: id }.abi_encode();
        let expect = match self.predict_own_offer(sender, id) {
            Err(e) => Expect::Err(merr(e)),
            Ok(()) => {
                self.offer_mut(id).withdrawn = true;
                Expect::ok(vec![Ev::OfferWithdrawn(Marketplace::OfferWithdrawn {
                    offerId: id,
                    node: self.addr(sender),
                })])
            }
        };
        let touch = Touch { tasks: Vec::new(), offers: vec![id] };
        self.exec(
            Tx {
                who: sender,
                target: Target::Market,
                data,
                label: "withdrawOffer",
                line: format!("offer {id}"),
            },
            expect,
            touch,
        )
        .await;
    }

    fn manifest(&self, name: &str, platforms: u8) -> ImageManifest {
        ImageManifest {
            codeCid: "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy".into(),
            measurement: keccak256(name.as_bytes()),
            enclaveKey: B256::repeat_byte(0x22),
            enclaveSigner: self.enclave.address(),
            casIdentity: Address::repeat_byte(0x33),
            platforms,
            owner: self.addr(DEPLOYER),
            name: name.into(),
            version: "1.0.0".into(),
        }
    }

    async fn publish(&mut self, platforms: u8) {
        self.images_published += 1;
        let name = format!("image-{}-{}", self.sequence, self.images_published);
        let m = self.manifest(&name, platforms);
        let id = keccak256(m.abi_encode());
        let data = ImageRegistry::publishCall { m: m.clone() }.abi_encode();
        self.images.push(ImageM { id, platforms, deprecated: false, revoked: false });
        let event =
            ImageRegistry::ImageRegistryEvents::ImagePublished(ImageRegistry::ImagePublished {
                imageId: id,
                owner: m.owner,
                enclaveSigner: m.enclaveSigner,
                measurement: m.measurement,
                enclaveKey: m.enclaveKey,
                casIdentity: m.casIdentity,
                platforms,
                codeCid: m.codeCid,
                name: m.name,
                version: m.version,
            });
        let expect = Expect::Ok { market: Vec::new(), registry: vec![event], token: Vec::new() };
        let line = format!("{name} platforms {platforms} -> {id:.10}");
        self.exec(
            Tx { who: DEPLOYER, target: Target::Registry, data, label: "publish", line },
            expect,
            Touch::default(),
        )
        .await;
    }

    /// The image's owner revokes or deprecates one, or a stranger tries to; or, when fewer
    /// than three images take tasks, a new one is published.
    async fn image_admin(&mut self) {
        if self.live_images().len() < 3 {
            let platforms = self.rng.pick(&[7, 1, 3, 6, 5, 2]);
            return self.publish(platforms).await;
        }
        let all: Vec<B256> = self.images.iter().map(|i| i.id).collect();
        let live = self.live_images();
        let roll = self.rng.below(100);
        let (sender, image, deprecate) = match roll {
            0..=49 => (DEPLOYER, self.rng.pick(&live), false),
            50..=59 => (DEPLOYER, self.rng.pick(&all), false),
            60..=79 => (
                self.rng.pick(&[REQUESTERS[0], NODES[1], STRANGER]),
                self.rng.pick(&all),
                self.rng.pct(30),
            ),
            80..=94 => (DEPLOYER, self.rng.pick(&live), true),
            _ => (DEPLOYER, self.rng.b256(), self.rng.pct(50)),
        };
        let data = if deprecate {
            ImageRegistry::deprecateCall { imageId: image }.abi_encode()
        } else {
            ImageRegistry::revokeCall { imageId: image }.abi_encode()
        };
        let enclave = self.enclave.address();
        let expect = match self.images.iter().position(|i| i.id == image) {
            None => Expect::Err(ContractError::Registry(
                ImageRegistry::ImageRegistryErrors::UnknownImage(ImageRegistry::UnknownImage {
                    imageId: image,
                }),
            )),
            Some(_) if sender != DEPLOYER => Expect::Err(ContractError::Registry(
                ImageRegistry::ImageRegistryErrors::NotImageOwner(ImageRegistry::NotImageOwner {
                    imageId: image,
                    caller: self.addr(sender),
                    owner: self.addr(DEPLOYER),
                }),
            )),
            Some(i) => {
                let img = &mut self.images[i];
                let events = if deprecate {
                    img.deprecated = true;
                    vec![ImageRegistry::ImageRegistryEvents::ImageDeprecated(
                        ImageRegistry::ImageDeprecated { imageId: image },
                    )]
                } else if img.revoked {
                    Vec::new()
                } else {
                    img.deprecated = true;
                    img.revoked = true;
                    vec![ImageRegistry::ImageRegistryEvents::ImageRevoked(
                        ImageRegistry::ImageRevoked { imageId: image, enclaveSigner: enclave },
                    )]
                };
                Expect::Ok { market: Vec::new(), registry: events, token: Vec::new() }
            }
        };
        let label = if deprecate { "deprecate" } else { "revoke" };
        let line = format!("image {:.10}", image.to_string());
        self.exec(
            Tx { who: sender, target: Target::Registry, data, label, line },
            expect,
            Touch::default(),
        )
        .await;
    }

    async fn approve(&mut self, r: Option<usize>) {
        let r = r.unwrap_or_else(|| self.rng.pick(&REQUESTERS));
        let value = match self.rng.below(10) {
            0..=5 => U256::MAX,
            6..=8 => U256::from(self.rng.below(20_000)),
            _ => U256::ZERO,
        };
        self.approve_to(r, value).await;
    }

    /// `r` approves the Marketplace for `value`.
    async fn approve_to(&mut self, r: usize, value: U256) {
        self.allowance[r] = value;
        let data = DevToken::approveCall { spender: self.d.marketplace, value }.abi_encode();
        let line = if value == U256::MAX { "max".to_owned() } else { value.to_string() };
        let event = approval(self.addr(r), self.d.marketplace, value);
        self.exec(
            Tx { who: r, target: Target::Token, data, label: "approve", line },
            Expect::moving(Vec::new(), vec![event]),
            Touch::default(),
        )
        .await;
    }

    /// One random call.
    async fn step(&mut self) {
        self.call_no += 1;
        // Calls on tasks need a task in the right state; without one, a task is submitted.
        let done = match self.rng.below(100) {
            0..=8 => {
                self.submit(false).await;
                true
            }
            9 => self.batch_episode().await,
            10..=18 => {
                self.submit(true).await;
                true
            }
            19..=22 => {
                self.submit_tasks().await;
                true
            }
            23..=39 => self.claim().await,
            40..=55 => self.submit_result().await,
            56..=63 => self.submit_results(None).await,
            64..=67 => self.release().await,
            68..=74 => self.reclaim().await,
            75..=78 => {
                self.register_offer(None).await;
                true
            }
            79..=81 => {
                self.update_offer().await;
                true
            }
            82..=83 => {
                self.withdraw_offer().await;
                true
            }
            84..=85 => {
                self.image_admin().await;
                true
            }
            86..=87 => {
                self.approve(None).await;
                true
            }
            88..=91 => {
                self.deposit().await;
                true
            }
            92..=94 => {
                self.withdraw().await;
                true
            }
            _ => {
                let cells = if self.rng.pct(85) { 1 } else { 2 };
                self.stats.calls += 1;
                self.jump(cells).await;
                true
            }
        };
        // Nothing to settle or release: claim; nothing to claim: submit.
        if !done && !self.claim().await {
            let matched = self.rng.pct(45);
            self.submit(matched).await;
        }
        if self.call_no.is_multiple_of(LEDGER_EVERY) {
            self.ledger_check().await;
        }
    }

    /// Past every deadline, every requester takes back what is still live; the Marketplace is
    /// left holding nothing.
    async fn drain(&mut self) {
        let last = self.live.iter().map(|id| self.task(*id).unwrap().spec.deadline / CELL).max();
        if let Some(last) = last
            && last >= self.cell
        {
            self.jump(last + 1 - self.cell).await;
        }
        let mut live = self.live.clone();
        live.sort_unstable();
        for id in live {
            self.call_no += 1;
            let t = self.task(id).unwrap().clone();
            let price = match t.st {
                St::Held(o, p) => {
                    self.offer_mut(o).used -= 1;
                    p
                }
                _ => 0,
            };
            if let Err(e) = self.predict_reclaim(t.requester, id, &t.spec, t.max_price, price) {
                self.fail(&format!("drain: task {id} cannot be reclaimed: {e:?}"));
            }
            let ra = self.addr(t.requester);
            let market = self.d.marketplace;
            let offer = match t.st {
                St::Held(o, _) => o,
                _ => 0,
            };
            self.end_task(id);
            self.debit(market, t.max_price);
            self.credit(ra, t.max_price);
            self.refunded += t.max_price;
            self.stats.drained += 1;
            let expect = Expect::moving(
                vec![Ev::TaskReclaimed(Marketplace::TaskReclaimed {
                    taskId: U256::from(id),
                    requester: ra,
                    offerId: offer,
                    amount: u96(t.max_price),
                })],
                transfer(market, ra, t.max_price).into_iter().collect(),
            );
            let data = self.reclaim_call(id, &t.spec, t.max_price, price);
            let touch = Touch {
                tasks: vec![id],
                offers: (offer != 0).then_some(offer).into_iter().collect(),
            };
            self.exec(
                Tx {
                    who: t.requester,
                    target: Target::Market,
                    data,
                    label: "reclaim (drain)",
                    line: format!("task {id}"),
                },
                expect,
                touch,
            )
            .await;
        }
        // Every depositor takes its deposit back.
        for who in 1..ACCOUNTS {
            let amount = self.deposits[who];
            if amount == 0 {
                continue;
            }
            self.call_no += 1;
            let (account, market) = (self.addr(who), self.d.marketplace);
            self.deposits[who] = 0;
            self.debit(market, amount);
            self.credit(account, amount);
            self.stats.withdrawn_at_end += 1;
            let expect = Expect::moving(
                vec![Ev::Withdrawn(Marketplace::Withdrawn { account, amount: U256::from(amount) })],
                transfer(market, account, amount).into_iter().collect(),
            );
            let data = Marketplace::withdrawCall { amount: U256::from(amount) }.abi_encode();
            self.exec(
                Tx {
                    who,
                    target: Target::Market,
                    data,
                    label: "withdraw (drain)",
                    line: format!("{amount}"),
                },
                expect,
                Touch::default(),
            )
            .await;
        }
        if self.balances[&self.d.marketplace] != 0 {
            self.fail("the Marketplace holds tokens after every task ended and every deposit left");
        }
        self.ledger_check().await;
    }
}

/// Starts a devnet, deploys, publishes images, registers offers (a 1-wei any-image one and a
/// eight-slot one of the batching node among them) and approves; returns the sequence ready for random calls.
async fn setup(master_seed: u64, sequence: usize) -> (ecld_devnet::DevnetHandle, Sim) {
    let seed = {
        let mut r = Rng(master_seed ^ (sequence as u64).wrapping_mul(0xa076_1d64_78bd_642f));
        r.next()
    };
    let devnet = ecld_devnet::spawn(ecld_devnet::DevnetConfig::ephemeral()).await.expect("devnet");
    let url = devnet.url();
    let keys: Vec<PrivateKeySigner> =
        devnet.private_keys()[..ACCOUNTS].iter().map(|k| k.parse().expect("dev key")).collect();
    let rpc = Rpc { http: reqwest::Client::new(), url: url.clone() };
    let start_cell = T0 / CELL;
    rpc.one("evm_setNextBlockTimestamp", json!([start_cell * CELL + CELL / 2])).await;
    rpc.one("evm_mine", json!([])).await;
    let deployer = ProviderBuilder::new()
        .wallet(EthereumWallet::from(keys[DEPLOYER].clone()))
        .connect_http(url.parse().expect("url"));
    let holders: Vec<Address> = (1..ACCOUNTS).map(|i| keys[i].address()).collect();
    let d = deploy_all(&deployer, &DeployOptions::dev(holders.clone(), U256::from(MINT)))
        .await
        .expect("deploy");
    let mut nonces = Vec::new();
    for k in &keys {
        nonces.push(deployer.get_transaction_count(k.address()).await.expect("nonce"));
    }
    let name = rpc
        .one("eth_call", json!([{"to": d.token, "data": Bytes::from(DevToken::nameCall {}.abi_encode())}, "latest"]))
        .await;
    let token_name = DevToken::nameCall::abi_decode_returns(&hex_bytes(&name)).expect("name");
    let mut balances: BTreeMap<Address, u128> = holders.iter().map(|a| (*a, MINT)).collect();
    balances.insert(d.marketplace, 0);
    let mut sim = Sim {
        rpc,
        d,
        keys: keys.into_iter().zip(nonces).map(|(signer, nonce)| Key { signer, nonce }).collect(),
        enclave: PrivateKeySigner::from_bytes(&B256::repeat_byte(0x11)).expect("key"),
        rogue: PrivateKeySigner::from_bytes(&B256::repeat_byte(0x12)).expect("key"),
        token_name,
        rng: Rng(seed),
        ledger: Ledger::new(d.marketplace, &holders, MINT),
        master_seed,
        seed,
        sequence,
        call_no: 0,
        history: VecDeque::new(),
        reported: false,
        stats: Stats::default(),
        cell: start_cell,
        images: Vec::new(),
        images_published: 0,
        offers: Vec::new(),
        tasks: Vec::new(),
        live: Vec::new(),
        balances,
        allowance: vec![U256::ZERO; ACCOUNTS],
        permit_nonce: vec![0; ACCOUNTS],
        deposits: vec![0; ACCOUNTS],
        force_offer: None,
        escrowed: 0,
        paid: 0,
        refunded: 0,
    };
    // The image id the test computes is the registry's.
    let m = sim.manifest("probe", 7);
    let data = ImageRegistry::imageIdOfCall { m: m.clone() }.abi_encode();
    let probe = sim
        .rpc
        .one("eth_call", json!([{"to": d.registry, "data": Bytes::from(data)}, "latest"]))
        .await;
    assert_eq!(B256::from_slice(&hex_bytes(&probe)), keccak256(m.abi_encode()), "imageIdOf");
    for platforms in [7, 1, 6, 3] {
        sim.publish(platforms).await;
    }
    let any = B256::ZERO;
    let first = sim.images[0].id;
    // The 1-wei any-image offer, and one fitting offer per node.
    sim.register_offer(Some((NODES[0], (any, 1, 3, 4096, 3600, 1)))).await;
    sim.register_offer(Some((NODES[1], (first, 2, 2, 1024, 600, 400)))).await;
    sim.register_offer(Some((NODES[2], (any, 4, 4, 2048, 3600, 1000)))).await;
    sim.register_offer(Some((NODES[1], (any, 1, 2, 4096, 3600, 100)))).await;
    // Room for the batcher's tasks to pile up.
    sim.register_offer(Some((BATCHER, (any, 1, 8, 4096, 3600, 250)))).await;
    for r in REQUESTERS {
        sim.allowance[r] = U256::MAX;
        let data = DevToken::approveCall { spender: d.marketplace, value: U256::MAX }.abi_encode();
        let event = approval(sim.addr(r), d.marketplace, U256::MAX);
        sim.exec(
            Tx { who: r, target: Target::Token, data, label: "approve", line: "max".into() },
            Expect::moving(Vec::new(), vec![event]),
            Touch::default(),
        )
        .await;
    }
    sim.stats = Stats::default();
    (devnet, sim)
}

fn env_number(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    let parsed = match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => v.parse(),
    };
    Some(parsed.unwrap_or_else(|e| panic!("{name}={v}: {e}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_calls_by_many_parties_conserve_tokens_and_strand_nothing() {
    // The model's status classes are the protocol's.
    for s in 0..=64u16 {
        assert_eq!(valid_status(s), ecld_types::StatusCode::try_from(s).is_ok(), "status {s}");
    }
    let master_seed = env_number("ECLD_PROPERTY_SEED").unwrap_or_else(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
        u64::try_from(now.as_nanos() % u128::from(u64::MAX)).unwrap()
    });
    let calls =
        env_number("ECLD_PROPERTY_CALLS").map_or(DEFAULT_CALLS, |c| usize::try_from(c).unwrap());
    let sequences = calls.div_ceil(PER_SEQUENCE).max(1);
    eprintln!(
        "property: seed {master_seed} (replay with ECLD_PROPERTY_SEED={master_seed}), {calls} calls in {sequences} sequences"
    );
    let started = Instant::now();
    let mut total = Stats::default();
    for sequence in 0..sequences {
        let n = calls / sequences + usize::from(sequence < calls % sequences);
        let (devnet, mut sim) = setup(master_seed, sequence).await;
        while sim.call_no < n {
            sim.step().await;
        }
        sim.drain().await;
        total.add(&sim.stats);
        drop(sim);
        devnet.shutdown().await.expect("shutdown");
    }
    let ended = total.ended();
    let share = total.paid as f64 / ended.max(1) as f64;
    eprintln!(
        "property: {} calls ({} mined ok, {} refused as predicted) in {:.1?}; {} tasks ended: {} paid a node ({:.0}%), {} refunded by status, {} cancelled open, {} reclaimed held, {} reclaimed at the end; {} strand checks",
        total.calls,
        total.mined_ok,
        total.refused,
        started.elapsed(),
        ended,
        total.paid,
        share * 100.0,
        total.refunded,
        total.cancelled,
        total.reclaimed_held,
        total.drained,
        total.strand_checks,
    );
    eprintln!(
        "property: escrows from a deposit {}, partly from a deposit {}, from the wallet {}; {} tasks submitted in batches {:?}; {} proofs settled in batches {:?} (size: batches); {} deposits withdrawn at the end",
        total.from_deposit,
        total.part_deposit,
        total.from_wallet,
        total.task_batched,
        total.task_batch_sizes,
        total.batched,
        total.batch_sizes,
        total.withdrawn_at_end,
    );
    for (label, (ok, refused)) in &total.by_label {
        eprintln!("property:   {label}: {ok} ok, {refused} refused");
    }
    for (reason, n) in &total.reasons {
        eprintln!("property:     {n:5} {reason}");
    }
    assert!(
        share >= PAID_FLOOR,
        "seed {master_seed}: only {:.0}% of {ended} ended tasks paid a node (floor {:.0}%)",
        share * 100.0,
        PAID_FLOOR * 100.0
    );
}
