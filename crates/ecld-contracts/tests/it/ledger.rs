//! Token conservation, checked against what the chain holds.
//!
//! The test keeps its own ledger: every Marketplace event of a mined transaction says which
//! tokens should have moved (a deposit from the wallet into the Marketplace, a withdrawal
//! back; the requester's maxPrice escrowed whole at submission, drawn from its deposit first
//! and the rest from its wallet; nothing at a claim or a release, the holding offer's price to
//! the node and the rest back to the requester at settlement, the whole escrow back at a
//! refund or a reclaim). The chain's token balances, the Marketplace's totals, its deposits
//! (`balanceOf`) and its task words must agree with that ledger. None of these checks restates
//! an identity the contract computes: `held` is derived from the other totals, so it is
//! compared with the token balance (less the deposits), never with them.

use std::collections::BTreeMap;

use alloy::{
    primitives::{Address, FixedBytes, Log, Uint, keccak256},
    sol_types::{SolEventInterface as _, SolValue as _},
};
use ecld_contracts::{Marketplace::MarketplaceEvents as Ev, TaskSpec};
use ecld_types::{Settlement, StatusCode};

/// A task the events say is live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LiveTask {
    pub(crate) requester: Address,
    /// The escrow: TaskSubmitted's maxPrice, held whole until the task ends.
    pub(crate) max_price: u128,
    /// The holding offer's price (TaskSubmitted's when matched there, else TaskClaimed's); 0
    /// while the task is open.
    pub(crate) price: u128,
    /// The holding offer; 0 while open.
    pub(crate) offer: u64,
    pub(crate) spec: TaskSpec,
}

/// The token movements the Marketplace's events promise, summed by the test.
#[derive(Debug, Clone)]
pub(crate) struct Ledger {
    market: Address,
    /// Tokens in existence: what the deployment minted.
    supply: u128,
    /// Expected token balance of every account the test tracks, the Marketplace included.
    balances: BTreeMap<Address, u128>,
    escrowed: u128,
    paid: u128,
    refunded: u128,
    /// Each account's deposit in the Marketplace: Deposited adds, Withdrawn and the draw of a
    /// TaskSubmitted take away.
    deposits: BTreeMap<Address, u128>,
    live: BTreeMap<u64, LiveTask>,
    /// Events that contradict the ledger (a settlement of an unknown task, amounts that do not
    /// split the task's escrow as its status class says).
    faults: Vec<String>,
}

/// What the chain says, read after a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Snapshot {
    /// `Marketplace.totals()`.
    pub(crate) escrowed: u128,
    pub(crate) paid: u128,
    pub(crate) refunded: u128,
    pub(crate) held: u128,
    /// `DevToken.totalSupply()`.
    pub(crate) supply: u128,
    /// `DevToken.balanceOf` of every account the ledger tracks.
    pub(crate) balances: BTreeMap<Address, u128>,
    /// `Marketplace.balanceOf` (the deposit) of every account the ledger tracks.
    pub(crate) deposits: BTreeMap<Address, u128>,
    /// `Marketplace.getTask(id).commitment` for every id up to `taskCount`.
    pub(crate) tasks: BTreeMap<u64, FixedBytes<24>>,
}

impl Ledger {
    /// The deployment minted `mint` to each of `holders`; the Marketplace at `market` holds
    /// nothing yet.
    pub(crate) fn new(market: Address, holders: &[Address], mint: u128) -> Self {
        let mut balances: BTreeMap<Address, u128> = holders.iter().map(|a| (*a, mint)).collect();
        balances.insert(market, 0);
        Self {
            market,
            supply: mint * holders.len() as u128,
            balances,
            escrowed: 0,
            paid: 0,
            refunded: 0,
            deposits: BTreeMap::new(),
            live: BTreeMap::new(),
            faults: Vec::new(),
        }
    }

    /// Accounts whose balances the ledger predicts.
    pub(crate) fn accounts(&self) -> impl Iterator<Item = Address> + '_ {
        self.balances.keys().copied()
    }

    /// The deposit the events leave `account` in the Marketplace.
    pub(crate) fn deposit(&self, account: Address) -> u128 {
        self.deposits.get(&account).copied().unwrap_or_default()
    }

    /// A live task as the events describe it (`None` once settled or reclaimed).
    pub(crate) fn task(&self, task: u64) -> Option<&LiveTask> {
        self.live.get(&task)
    }

    fn transfer(&mut self, from: Address, to: Address, amount: u128, why: &str) {
        let balance = self.balances.entry(from).or_default();
        match balance.checked_sub(amount) {
            Some(rest) => *balance = rest,
            None => self.faults.push(format!("{why}: {from} sends {amount} but holds {balance}")),
        }
        *self.balances.entry(to).or_default() += amount;
    }

    /// Books one log of a mined transaction; logs of other contracts are ignored.
    pub(crate) fn apply(&mut self, log: &Log) {
        if log.address != self.market {
            return;
        }
        let Ok(event) = Ev::decode_log(log) else {
            self.faults.push(format!("a Marketplace log that is none of its events: {log:?}"));
            return;
        };
        let market = self.market;
        match event.data {
            Ev::TaskSubmitted(e) => {
                let (max_price, price): (u128, u128) = (e.maxPrice.to(), e.price.to());
                let id = e.taskId;
                if e.offerId == 0 && price != 0 {
                    self.faults.push(format!("open task {id} submitted with price {price}"));
                }
                if price > max_price {
                    self.faults.push(format!("task {id} matched at {price} above {max_price}"));
                }
                // The event carries the input CID; the spec commits to its hash.
                let spec = TaskSpec {
                    imageId: e.imageId,
                    inputHash: e.inputHash,
                    inputCidHash: keccak256(e.inputCid.as_bytes()),
                    memoryMb: e.memoryMb,
                    maxRuntimeS: e.maxRuntimeS,
                    deadline: e.deadline,
                };
                // The escrow comes from the requester's deposit first, the rest from its wallet.
                let deposit = self.deposits.entry(e.requester).or_default();
                let drawn = (*deposit).min(max_price);
                *deposit -= drawn;
                self.transfer(e.requester, market, max_price - drawn, "escrow");
                self.escrowed += max_price;
                let task =
                    LiveTask { requester: e.requester, max_price, price, offer: e.offerId, spec };
                if self.live.insert(id.to(), task).is_some() {
                    self.faults.push(format!("task {id} submitted twice"));
                }
            }
            Ev::TaskClaimed(e) => {
                let price: u128 = e.price.to();
                let Some(task) = self.live.get_mut(&e.taskId.to()) else {
                    self.faults.push(format!("claim of task {}, which is not live", e.taskId));
                    return;
                };
                if task.offer != 0 {
                    self.faults.push(format!(
                        "claim of task {} by offer {}, but offer {} holds it",
                        e.taskId, e.offerId, task.offer
                    ));
                }
                if price > task.max_price {
                    self.faults.push(format!(
                        "claim of task {} at {price}, above its maxPrice {}",
                        e.taskId, task.max_price
                    ));
                }
                // A claim moves no tokens: the whole escrow stays held until the task ends.
                task.offer = e.offerId;
                task.price = price;
            }
            Ev::TaskReleased(e) => {
                let Some(task) = self.live.get_mut(&e.taskId.to()) else {
                    self.faults.push(format!("release of task {}, which is not live", e.taskId));
                    return;
                };
                if task.offer != e.offerId || e.offerId == 0 {
                    self.faults.push(format!(
                        "release of task {} by offer {}, but offer {} holds it",
                        e.taskId, e.offerId, task.offer
                    ));
                }
                // Back on the market on its original terms.
                task.offer = 0;
                task.price = 0;
            }
            Ev::ResultSubmitted(e) => {
                let (paid, refunded): (u128, u128) = (e.paid.to(), e.refunded.to());
                let id = e.taskId;
                let Some(task) = self.live.remove(&id.to()) else {
                    self.faults.push(format!("result of task {id}, which is not live"));
                    return;
                };
                if task.offer == 0 || task.offer != e.offerId {
                    self.faults.push(format!(
                        "result of task {id} through offer {}, but offer {} holds it",
                        e.offerId, task.offer
                    ));
                }
                // How the escrow splits follows the protocol's status classes (ecld-types),
                // not the contract.
                let expected = match StatusCode::try_from(e.status).map(StatusCode::settlement) {
                    Ok(Settlement::PayNode) => (task.price, task.max_price - task.price),
                    Ok(Settlement::RefundRequester) => (0, task.max_price),
                    Err(err) => {
                        self.faults.push(format!("task {id} settled with {err}"));
                        (paid, refunded)
                    }
                };
                if (paid, refunded) != expected {
                    self.faults.push(format!(
                        "result of task {id} (status {}) pays {paid} and refunds {refunded}, but \
                         its escrow {} at price {} splits into {} and {}",
                        e.status, task.max_price, task.price, expected.0, expected.1
                    ));
                }
                self.transfer(market, e.node, paid, "payment");
                self.paid += paid;
                self.transfer(market, task.requester, refunded, "refund");
                self.refunded += refunded;
            }
            Ev::TaskReclaimed(e) => {
                let amount: u128 = e.amount.to();
                let id = e.taskId;
                let Some(task) = self.live.remove(&id.to()) else {
                    self.faults.push(format!("reclaim of task {id}, which is not live"));
                    return;
                };
                if amount != task.max_price {
                    self.faults.push(format!(
                        "reclaim of task {id} moves {amount}, but its escrow is {}",
                        task.max_price
                    ));
                }
                if task.offer != e.offerId {
                    self.faults.push(format!(
                        "reclaim of task {id} names offer {}, but offer {} holds it",
                        e.offerId, task.offer
                    ));
                }
                if task.requester != e.requester {
                    self.faults.push(format!(
                        "task {id} reclaimed by {}, submitted by {}",
                        e.requester, task.requester
                    ));
                }
                self.transfer(market, e.requester, amount, "reclaim");
                self.refunded += amount;
            }
            Ev::Deposited(e) => {
                let amount: u128 = e.amount.to();
                self.transfer(e.account, market, amount, "deposit");
                *self.deposits.entry(e.account).or_default() += amount;
            }
            Ev::Withdrawn(e) => {
                let amount: u128 = e.amount.to();
                let deposit = self.deposits.entry(e.account).or_default();
                match deposit.checked_sub(amount) {
                    Some(rest) => *deposit = rest,
                    None => self.faults.push(format!(
                        "{} withdraws {amount} but its deposit is {deposit}",
                        e.account
                    )),
                }
                self.transfer(market, e.account, amount, "withdrawal");
            }
            _ => {}
        }
    }
}

/// The word the Marketplace stores for a live task: the leading 24 bytes of
/// `keccak256(abi.encode(spec, enclaveSigner, requester, maxPrice, price))`, computed here.
fn commitment(task: &LiveTask, enclave_signer: Address) -> FixedBytes<24> {
    let (max_price, price) = (Uint::<96, 2>::from(task.max_price), Uint::<96, 2>::from(task.price));
    let encoded =
        (task.spec.clone(), enclave_signer, task.requester, max_price, price).abi_encode();
    FixedBytes::from_slice(&keccak256(encoded)[..24])
}

impl Ledger {
    /// Everything in `chain` that disagrees with the ledger; empty when the tokens are where
    /// the events say. Every live task's image has `enclave_signer`.
    pub(crate) fn check(&self, chain: &Snapshot, enclave_signer: Address) -> Vec<String> {
        let mut bad = self.faults.clone();
        let mut expect = |what: &str, on_chain: u128, expected: u128| {
            if on_chain != expected {
                bad.push(format!("{what}: chain has {on_chain}, expected {expected}"));
            }
        };
        let market_balance = chain.balances.get(&self.market).copied().unwrap_or_default();
        let deposited: u128 = chain.deposits.values().sum();
        expect(
            "Marketplace token balance vs totals().held + the deposits",
            market_balance,
            chain.held + deposited,
        );
        let live_escrow: u128 = self.live.values().map(|t| t.max_price).sum();
        expect("totals().held vs the live tasks' escrow", chain.held, live_escrow);
        expect("totals().escrowed vs the escrows of TaskSubmitted", chain.escrowed, self.escrowed);
        expect("totals().paid vs the payments of ResultSubmitted", chain.paid, self.paid);
        expect("totals().refunded vs the refunds of the events", chain.refunded, self.refunded);
        expect("token supply vs what the deployment minted", chain.supply, self.supply);
        for (account, expected) in &self.balances {
            let on_chain = chain.balances.get(account).copied().unwrap_or_default();
            expect(&format!("token balance of {account}"), on_chain, *expected);
        }
        let depositors: std::collections::BTreeSet<Address> =
            self.deposits.keys().chain(chain.deposits.keys()).copied().collect();
        for account in depositors {
            let on_chain = chain.deposits.get(&account).copied().unwrap_or_default();
            expect(&format!("deposit of {account}"), on_chain, self.deposit(account));
        }
        for (id, word) in &chain.tasks {
            match (self.live.get(id), *word == FixedBytes::ZERO) {
                (None, true) => {}
                (None, false) => bad.push(format!("task {id} is live on chain but settled")),
                (Some(_), true) => bad.push(format!("task {id} is gone on chain but not settled")),
                (Some(task), false) => {
                    let expected = commitment(task, enclave_signer);
                    if *word != expected {
                        bad.push(format!(
                            "task {id}: stored word {word} does not commit to requester {}, \
                             maxPrice {}, price {} (expected {expected})",
                            task.requester, task.max_price, task.price
                        ));
                    }
                }
            }
        }
        for id in self.live.keys().filter(|id| !chain.tasks.contains_key(id)) {
            bad.push(format!("task {id} is live but beyond the chain's taskCount"));
        }
        bad
    }
}

/// The checker against doctored chain states: each contract bug it exists to catch makes it
/// fail.
mod tests {
    use std::collections::BTreeMap;

    use alloy::{
        primitives::{Address, B256, FixedBytes, Log, U256, Uint, keccak256},
        sol_types::SolEvent,
    };
    use ecld_contracts::{Marketplace, TaskSpec};

    use super::{Ledger, LiveTask, Snapshot, commitment};

    const MINT: u128 = 1_000_000;
    /// The offers' price.
    const PRICE: u128 = 1_000;
    /// The requester's maxPrice: the escrow.
    const MAX: u128 = 3 * PRICE;
    const OFFER: u64 = 1;
    const MARKET: Address = Address::repeat_byte(0xaa);
    const REQUESTER: Address = Address::repeat_byte(0x01);
    const NODE: Address = Address::repeat_byte(0x02);
    const SIGNER: Address = Address::repeat_byte(0x03);
    const CID: &str = "cid";

    fn spec() -> TaskSpec {
        TaskSpec {
            imageId: B256::repeat_byte(0x10),
            inputHash: B256::repeat_byte(0x20),
            inputCidHash: keccak256(CID),
            memoryMb: 256,
            maxRuntimeS: 60,
            deadline: 2_000_000_000,
        }
    }

    fn live(offer: u64, price: u128) -> LiveTask {
        LiveTask { requester: REQUESTER, max_price: MAX, price, offer, spec: spec() }
    }

    fn log(event: &impl SolEvent) -> Log {
        Log { address: MARKET, data: event.encode_log_data() }
    }

    /// TaskSubmitted at maxPrice MAX, matched to `offer` at `price` (offer 0: open, price 0).
    fn submitted(task: u64, offer: u64, price: u128) -> Log {
        let s = spec();
        log(&Marketplace::TaskSubmitted {
            taskId: U256::from(task),
            requester: REQUESTER,
            imageId: s.imageId,
            inputHash: s.inputHash,
            memoryMb: s.memoryMb,
            maxRuntimeS: s.maxRuntimeS,
            deadline: s.deadline,
            maxPrice: Uint::from(MAX),
            price: Uint::from(price),
            offerId: offer,
            inputCid: CID.into(),
        })
    }

    fn claimed(task: u64, offer: u64, price: u128) -> Log {
        log(&Marketplace::TaskClaimed {
            taskId: U256::from(task),
            offerId: offer,
            node: NODE,
            price: Uint::from(price),
        })
    }

    fn released(task: u64, offer: u64) -> Log {
        log(&Marketplace::TaskReleased { taskId: U256::from(task), offerId: offer, node: NODE })
    }

    fn result(task: u64, status: u16, paid: u128, refunded: u128) -> Log {
        log(&Marketplace::ResultSubmitted {
            taskId: U256::from(task),
            offerId: OFFER,
            node: NODE,
            signer: SIGNER,
            resultHash: B256::ZERO,
            codeHash: B256::ZERO,
            status,
            runtimeMs: 1,
            paid: Uint::from(paid),
            refunded: Uint::from(refunded),
            resultCid: CID.into(),
            signature: vec![0; 65].into(),
        })
    }

    fn reclaimed(task: u64, offer: u64, amount: u128) -> Log {
        log(&Marketplace::TaskReclaimed {
            taskId: U256::from(task),
            requester: REQUESTER,
            offerId: offer,
            amount: Uint::from(amount),
        })
    }

    fn deposited(account: Address, amount: u128) -> Log {
        log(&Marketplace::Deposited { account, amount: U256::from(amount) })
    }

    fn withdrawn(account: Address, amount: u128) -> Log {
        log(&Marketplace::Withdrawn { account, amount: U256::from(amount) })
    }

    fn ledger(logs: &[Log]) -> Ledger {
        let mut ledger = Ledger::new(MARKET, &[REQUESTER, NODE], MINT);
        for l in logs {
            ledger.apply(l);
        }
        ledger
    }

    /// The chain as a correct contract leaves it after `paid + refunded + live` tasks were
    /// submitted at maxPrice MAX and matched to OFFER at PRICE, the first `paid` settled
    /// paying the node, the next `refunded` refunded or reclaimed, the rest still live.
    fn honest(paid: u128, refunded: u128, live_tasks: u128) -> Snapshot {
        let settled = paid + refunded;
        let mut tasks = BTreeMap::new();
        for id in 1..=settled {
            tasks.insert(u64::try_from(id).unwrap(), FixedBytes::ZERO);
        }
        for id in (settled + 1)..=(settled + live_tasks) {
            tasks.insert(u64::try_from(id).unwrap(), commitment(&live(OFFER, PRICE), SIGNER));
        }
        Snapshot {
            escrowed: (settled + live_tasks) * MAX,
            paid: paid * PRICE,
            refunded: paid * (MAX - PRICE) + refunded * MAX,
            held: live_tasks * MAX,
            supply: 2 * MINT,
            balances: BTreeMap::from([
                (REQUESTER, MINT - paid * PRICE - live_tasks * MAX),
                (NODE, MINT + paid * PRICE),
                (MARKET, live_tasks * MAX),
            ]),
            deposits: BTreeMap::new(),
            tasks,
        }
    }

    /// The chain as a correct contract leaves it with `tasks` live (ids from 1) and nothing
    /// settled.
    fn all_live(tasks: &[LiveTask]) -> Snapshot {
        let held: u128 = tasks.iter().map(|t| t.max_price).sum();
        Snapshot {
            escrowed: held,
            paid: 0,
            refunded: 0,
            held,
            supply: 2 * MINT,
            balances: BTreeMap::from([(REQUESTER, MINT - held), (NODE, MINT), (MARKET, held)]),
            deposits: BTreeMap::new(),
            tasks: (1..).zip(tasks.iter().map(|t| commitment(t, SIGNER))).collect(),
        }
    }

    #[test]
    fn honest_chain_passes() {
        // Task 1 paid, task 2 reclaimed, task 3 live.
        let ledger = ledger(&[
            submitted(1, OFFER, PRICE),
            result(1, 0, PRICE, MAX - PRICE),
            submitted(2, OFFER, PRICE),
            reclaimed(2, OFFER, MAX),
            submitted(3, OFFER, PRICE),
        ]);
        assert_eq!(ledger.check(&honest(1, 1, 1), SIGNER), Vec::<String>::new());
    }

    #[test]
    fn refund_recorded_without_moving_tokens_fails() {
        let ledger = ledger(&[submitted(1, OFFER, PRICE), reclaimed(1, OFFER, MAX)]);
        assert!(ledger.check(&honest(0, 1, 0), SIGNER).is_empty());
        // The contract counts the refund and emits TaskReclaimed, but never transfers: the
        // totals are consistent with each other (escrowed = paid + refunded + held), the tokens
        // are still in the Marketplace.
        let mut chain = honest(0, 1, 0);
        chain.balances.insert(REQUESTER, MINT - MAX);
        chain.balances.insert(MARKET, MAX);
        assert_eq!(chain.escrowed, chain.paid + chain.refunded + chain.held);
        let bad = ledger.check(&chain, SIGNER);
        assert_eq!(
            bad,
            [
                format!(
                    "Marketplace token balance vs totals().held + the deposits: chain has {MAX}, \
                     expected 0"
                ),
                format!("token balance of {REQUESTER}: chain has {}, expected {MINT}", MINT - MAX),
                format!("token balance of {MARKET}: chain has {MAX}, expected 0"),
            ]
        );
    }

    #[test]
    fn refund_class_paid_to_node_fails() {
        // Status 16 refunds the requester; a contract paying the node instead, while counting
        // a refund, leaves every total right and the wrong balances.
        let ledger = ledger(&[submitted(1, OFFER, PRICE), result(1, 16, 0, MAX)]);
        let mut chain = honest(0, 1, 0);
        assert!(ledger.check(&chain, SIGNER).is_empty());
        chain.balances.insert(REQUESTER, MINT - MAX);
        chain.balances.insert(NODE, MINT + MAX);
        let bad = ledger.check(&chain, SIGNER);
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert!(bad.iter().all(|b| b.starts_with("token balance of")), "{bad:?}");
    }

    #[test]
    fn totals_that_disagree_with_events_fail() {
        // held is derived (escrowed - paid - refunded); here it matches the balance, but the
        // payment was counted as a refund.
        let ledger = ledger(&[submitted(1, OFFER, PRICE), result(1, 0, PRICE, MAX - PRICE)]);
        let mut chain = honest(1, 0, 0);
        assert!(ledger.check(&chain, SIGNER).is_empty());
        chain.paid = 0;
        chain.refunded = MAX;
        let bad = ledger.check(&chain, SIGNER);
        assert_eq!(
            bad,
            [
                format!(
                    "totals().paid vs the payments of ResultSubmitted: chain has 0, expected {PRICE}"
                ),
                format!(
                    "totals().refunded vs the refunds of the events: chain has {MAX}, expected {}",
                    MAX - PRICE
                ),
            ]
        );
    }

    #[test]
    fn task_words_must_match_the_events() {
        let ledger = ledger(&[
            submitted(1, OFFER, PRICE),
            submitted(2, OFFER, PRICE),
            result(1, 0, PRICE, MAX - PRICE),
        ]);
        let chain = honest(1, 0, 1);
        assert!(ledger.check(&chain, SIGNER).is_empty());
        // Settled task still stored; live task deleted; live task committing to another price;
        // live task committing to another escrow.
        let mut stale = chain.clone();
        stale.tasks.insert(1, FixedBytes::repeat_byte(1));
        let mut gone = chain.clone();
        gone.tasks.insert(2, FixedBytes::ZERO);
        let mut repriced = chain.clone();
        repriced.tasks.insert(2, commitment(&live(OFFER, PRICE - 1), SIGNER));
        let mut shrunk = chain;
        let smaller = LiveTask { max_price: PRICE, ..live(OFFER, PRICE) };
        shrunk.tasks.insert(2, commitment(&smaller, SIGNER));
        for (chain, says) in [
            (stale, "task 1 is live on chain but settled"),
            (gone, "task 2 is gone on chain but not settled"),
            (repriced, "task 2: stored word"),
            (shrunk, "task 2: stored word"),
        ] {
            let bad = ledger.check(&chain, SIGNER);
            assert!(bad.len() == 1 && bad[0].starts_with(says), "{says}: {bad:?}");
        }
    }

    #[test]
    fn settlement_must_split_the_escrow_by_status_class() {
        // The node is paid the whole escrow, not its price: the ledger flags the event itself.
        let whole = ledger(&[submitted(1, OFFER, PRICE), result(1, 0, MAX, 0)]);
        let bad = whole.check(&honest(1, 0, 0), SIGNER);
        assert!(
            bad.contains(&format!(
                "result of task 1 (status 0) pays {MAX} and refunds 0, but its escrow {MAX} at \
                 price {PRICE} splits into {PRICE} and {}",
                MAX - PRICE
            )),
            "{bad:?}"
        );
        // A refund class that still pays the node its price.
        let paying = ledger(&[submitted(1, OFFER, PRICE), result(1, 19, PRICE, MAX - PRICE)]);
        let bad = paying.check(&honest(0, 1, 0), SIGNER);
        assert!(bad.iter().any(|b| b.starts_with("result of task 1 (status 19) pays")), "{bad:?}");
        // Amounts that do not add up to the escrow (tokens left stranded in the Marketplace).
        let short = ledger(&[submitted(1, OFFER, PRICE), result(1, 6, PRICE, 0)]);
        let bad = short.check(&honest(1, 0, 0), SIGNER);
        assert!(bad.iter().any(|b| b.starts_with("result of task 1 (status 6) pays")), "{bad:?}");
    }

    #[test]
    fn a_claim_moves_no_tokens() {
        // An open task claimed at PRICE keeps its whole escrow.
        let ledger = ledger(&[submitted(1, 0, 0), claimed(1, OFFER, PRICE)]);
        let chain = all_live(&[live(OFFER, PRICE)]);
        assert_eq!(ledger.check(&chain, SIGNER), Vec::<String>::new());
        // A contract refunding maxPrice - price at the claim (as one did) leaves the requester
        // richer and the escrow short.
        let mut refunding = chain;
        refunding.balances.insert(REQUESTER, MINT - PRICE);
        refunding.balances.insert(MARKET, PRICE);
        refunding.refunded = MAX - PRICE;
        refunding.held = PRICE;
        let bad = ledger.check(&refunding, SIGNER);
        assert!(bad.contains(&format!(
            "totals().held vs the live tasks' escrow: chain has {PRICE}, expected {MAX}"
        )));
        assert!(bad.iter().any(|b| b.starts_with(&format!("token balance of {REQUESTER}"))));
    }

    #[test]
    fn a_release_restores_the_open_terms() {
        // A 1-wei offer claims and releases: the task is open again at its maxPrice.
        let released_once = ledger(&[submitted(1, 0, 0), claimed(1, 7, 1), released(1, 7)]);
        let chain = all_live(&[live(0, 0)]);
        assert_eq!(released_once.check(&chain, SIGNER), Vec::<String>::new());
        // A contract keeping the 1-wei price in the commitment strands the task.
        let mut stranded = chain;
        stranded.tasks.insert(1, commitment(&live(0, 1), SIGNER));
        let bad = released_once.check(&stranded, SIGNER);
        assert!(bad.len() == 1 && bad[0].starts_with("task 1: stored word"), "{bad:?}");
        // A release by an offer that does not hold the task is an event the ledger refuses.
        let by_another = ledger(&[submitted(1, 0, 0), claimed(1, 7, 1), released(1, 8)]);
        let bad = by_another.check(&all_live(&[live(0, 0)]), SIGNER);
        assert!(bad.iter().any(|b| b.starts_with("release of task 1 by offer 8")), "{bad:?}");
    }

    /// The chain as a correct contract leaves it after REQUESTER deposited `deposit` and then
    /// submitted one task at maxPrice MAX, matched to OFFER at PRICE: the escrow is drawn from
    /// the deposit first, the rest pulled from the wallet.
    fn after_deposit_and_submit(deposit: u128) -> Snapshot {
        let drawn = deposit.min(MAX);
        let mut chain = all_live(&[live(OFFER, PRICE)]);
        chain.balances.insert(REQUESTER, MINT - deposit - (MAX - drawn));
        chain.balances.insert(MARKET, deposit + (MAX - drawn));
        chain.deposits.insert(REQUESTER, deposit - drawn);
        chain
    }

    #[test]
    fn an_escrow_is_drawn_from_the_deposit_first() {
        // Wholly from the deposit, partly, and from an empty one.
        for deposit in [5 * MAX, MAX, MAX / 3, 0] {
            let ledger = ledger(&[deposited(REQUESTER, deposit), submitted(1, OFFER, PRICE)]);
            let chain = after_deposit_and_submit(deposit);
            assert_eq!(ledger.check(&chain, SIGNER), Vec::<String>::new(), "deposit {deposit}");
        }
        // A contract that draws the deposit and pulls the whole escrow from the wallet too.
        let whole = ledger(&[deposited(REQUESTER, 5 * MAX), submitted(1, OFFER, PRICE)]);
        let mut twice = after_deposit_and_submit(5 * MAX);
        twice.balances.insert(REQUESTER, MINT - 6 * MAX);
        twice.balances.insert(MARKET, 6 * MAX);
        let bad = whole.check(&twice, SIGNER);
        assert!(
            bad.contains(&format!(
                "Marketplace token balance vs totals().held + the deposits: chain has {}, \
                 expected {}",
                6 * MAX,
                5 * MAX
            )),
            "{bad:?}"
        );
        assert!(bad.iter().any(|b| b.starts_with(&format!("token balance of {REQUESTER}"))));
        // A contract that pulls from the wallet and leaves the deposit whole.
        let mut untouched = after_deposit_and_submit(5 * MAX);
        untouched.balances.insert(REQUESTER, MINT - 6 * MAX);
        untouched.balances.insert(MARKET, 6 * MAX);
        untouched.deposits.insert(REQUESTER, 5 * MAX);
        let bad = whole.check(&untouched, SIGNER);
        assert!(
            bad.contains(&format!(
                "deposit of {REQUESTER}: chain has {}, expected {}",
                5 * MAX,
                4 * MAX
            )),
            "{bad:?}"
        );
        // A contract that takes a partial deposit but pulls the whole escrow.
        let third = ledger(&[deposited(REQUESTER, MAX / 3), submitted(1, OFFER, PRICE)]);
        let mut partial = after_deposit_and_submit(MAX / 3);
        partial.balances.insert(REQUESTER, MINT - MAX / 3 - MAX);
        partial.balances.insert(MARKET, MAX / 3 + MAX);
        let bad = third.check(&partial, SIGNER);
        assert!(bad.len() == 3, "{bad:?}");
    }

    #[test]
    fn withdrawals_return_deposits_and_no_more() {
        let book = ledger(&[deposited(REQUESTER, 700), withdrawn(REQUESTER, 300)]);
        let mut chain = all_live(&[]);
        chain.balances.insert(REQUESTER, MINT - 400);
        chain.balances.insert(MARKET, 400);
        chain.deposits.insert(REQUESTER, 400);
        assert_eq!(book.check(&chain, SIGNER), Vec::<String>::new());
        // A withdrawal that sends the tokens but leaves the deposit as it was: the
        // Marketplace's balance no longer covers the deposits.
        let mut kept = chain.clone();
        kept.deposits.insert(REQUESTER, 700);
        let bad = book.check(&kept, SIGNER);
        assert_eq!(
            bad,
            [
                "Marketplace token balance vs totals().held + the deposits: chain has 400, \
                 expected 700"
                    .to_owned(),
                format!("deposit of {REQUESTER}: chain has 700, expected 400"),
            ]
        );
        // An event withdrawing more than the deposit is itself a fault.
        let over = ledger(&[deposited(REQUESTER, 100), withdrawn(REQUESTER, 200)]);
        let bad = over.check(&all_live(&[]), SIGNER);
        assert!(
            bad.contains(&format!("{REQUESTER} withdraws 200 but its deposit is 100")),
            "{bad:?}"
        );
    }
}
