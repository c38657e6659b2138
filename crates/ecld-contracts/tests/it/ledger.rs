//! Token conservation, checked against what the chain holds.
//!
//! The test keeps its own ledger: every Marketplace event of a mined transaction says which
//! tokens should have moved (an escrow taken, a claim's refund, a payment, a refund). The
//! chain's token balances, the Marketplace's totals and its task words must agree with that
//! ledger. None of these checks restates an identity the contract computes: `held` is
//! derived from the other totals, so it is compared with the token balance, never with them.

use std::collections::BTreeMap;

use alloy::{
    primitives::{Address, FixedBytes, Log, U256, Uint, keccak256},
    sol_types::{SolEventInterface as _, SolValue as _},
};
use ecld_contracts::{Marketplace::MarketplaceEvents as Ev, TaskSpec};
use ecld_types::{Settlement, StatusCode};

/// A task the events say is live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LiveTask {
    pub(crate) requester: Address,
    /// The escrow: TaskSubmitted's price, or TaskClaimed's after a claim.
    pub(crate) escrow: u128,
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
    live: BTreeMap<u64, LiveTask>,
    /// Events that contradict the ledger (a settlement of an unknown task, an amount that is
    /// not the task's escrow).
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
            live: BTreeMap::new(),
            faults: Vec::new(),
        }
    }

    /// Accounts whose balances the ledger predicts.
    pub(crate) fn accounts(&self) -> impl Iterator<Item = Address> + '_ {
        self.balances.keys().copied()
    }

    /// The escrow the ledger holds for a live task (0 for an unknown one).
    pub(crate) fn escrow(&self, task: u64) -> u128 {
        self.live.get(&task).map_or(0, |t| t.escrow)
    }

    fn transfer(&mut self, from: Address, to: Address, amount: u128, why: &str) {
        let balance = self.balances.entry(from).or_default();
        match balance.checked_sub(amount) {
            Some(rest) => *balance = rest,
            None => self.faults.push(format!("{why}: {from} sends {amount} but holds {balance}")),
        }
        *self.balances.entry(to).or_default() += amount;
    }

    fn settle(&mut self, id: U256, amount: u128, what: &str) -> Option<LiveTask> {
        let task = self.live.remove(&id.to());
        match &task {
            None => self.faults.push(format!("{what} of task {id}, which is not live")),
            Some(t) if t.escrow != amount => self.faults.push(format!(
                "{what} of task {id} moves {amount}, but its escrow is {}",
                t.escrow
            )),
            Some(_) => {}
        }
        task
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
                let escrow: u128 = e.price.to();
                let spec = TaskSpec {
                    imageId: e.imageId,
                    inputHash: e.inputHash,
                    memoryMb: e.memoryMb,
                    maxRuntimeS: e.maxRuntimeS,
                    deadline: e.deadline,
                };
                self.transfer(e.requester, market, escrow, "escrow");
                self.escrowed += escrow;
                let task = LiveTask { requester: e.requester, escrow, spec };
                if self.live.insert(e.taskId.to(), task).is_some() {
                    self.faults.push(format!("task {} submitted twice", e.taskId));
                }
            }
            Ev::TaskClaimed(e) => {
                let (price, refund): (u128, u128) = (e.price.to(), e.refund.to());
                let Some(task) = self.live.get_mut(&e.taskId.to()) else {
                    self.faults.push(format!("claim of task {}, which is not live", e.taskId));
                    return;
                };
                if task.escrow != price + refund {
                    let escrow = task.escrow;
                    self.faults.push(format!(
                        "claim of task {} keeps {price} and refunds {refund}, but its escrow is \
                         {escrow}",
                        e.taskId
                    ));
                }
                task.escrow = price;
                let requester = task.requester;
                self.transfer(market, requester, refund, "claim refund");
                self.refunded += refund;
            }
            Ev::ResultSubmitted(e) => {
                let amount: u128 = e.amount.to();
                let Some(task) = self.settle(e.taskId, amount, "result") else { return };
                // Who is paid follows the protocol's status classes (ecld-types), not the
                // contract.
                match StatusCode::try_from(e.status).map(StatusCode::settlement) {
                    Ok(Settlement::PayNode) => {
                        self.transfer(market, e.node, amount, "payment");
                        self.paid += amount;
                    }
                    Ok(Settlement::RefundRequester) => {
                        self.transfer(market, task.requester, amount, "refund");
                        self.refunded += amount;
                    }
                    Err(err) => {
                        self.faults.push(format!("task {} settled with {err}", e.taskId));
                    }
                }
            }
            Ev::TaskReclaimed(e) => {
                let amount: u128 = e.amount.to();
                if let Some(task) = self.settle(e.taskId, amount, "reclaim") {
                    if task.requester != e.requester {
                        self.faults.push(format!(
                            "task {} reclaimed by {}, submitted by {}",
                            e.taskId, e.requester, task.requester
                        ));
                    }
                    self.transfer(market, e.requester, amount, "reclaim");
                    self.refunded += amount;
                }
            }
            _ => {}
        }
    }
}

/// The word the Marketplace stores for a live task: the leading 24 bytes of
/// `keccak256(abi.encode(spec, enclaveSigner, requester, price))`, computed here.
fn commitment(task: &LiveTask, enclave_signer: Address) -> FixedBytes<24> {
    let price = Uint::<96, 2>::from(task.escrow);
    let encoded = (task.spec.clone(), enclave_signer, task.requester, price).abi_encode();
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
        expect("Marketplace token balance vs totals().held", market_balance, chain.held);
        let live_escrow: u128 = self.live.values().map(|t| t.escrow).sum();
        expect("totals().held vs the live tasks' escrow", chain.held, live_escrow);
        expect("totals().escrowed vs the escrows of TaskSubmitted", chain.escrowed, self.escrowed);
        expect("totals().paid vs the payments of ResultSubmitted", chain.paid, self.paid);
        expect("totals().refunded vs the refunds of the events", chain.refunded, self.refunded);
        expect("token supply vs what the deployment minted", chain.supply, self.supply);
        for (account, expected) in &self.balances {
            let on_chain = chain.balances.get(account).copied().unwrap_or_default();
            expect(&format!("token balance of {account}"), on_chain, *expected);
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
                             escrow {} (expected {expected})",
                            task.requester, task.escrow
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
        primitives::{Address, B256, FixedBytes, Log, U256, Uint},
        sol_types::SolEvent,
    };
    use ecld_contracts::{Marketplace, TaskSpec};

    use super::{Ledger, LiveTask, Snapshot, commitment};

    const MINT: u128 = 1_000_000;
    const PRICE: u128 = 1_000;
    const MARKET: Address = Address::repeat_byte(0xaa);
    const REQUESTER: Address = Address::repeat_byte(0x01);
    const NODE: Address = Address::repeat_byte(0x02);
    const SIGNER: Address = Address::repeat_byte(0x03);

    fn spec() -> TaskSpec {
        TaskSpec {
            imageId: B256::repeat_byte(0x10),
            inputHash: B256::repeat_byte(0x20),
            memoryMb: 256,
            maxRuntimeS: 60,
            deadline: 2_000_000_000,
        }
    }

    fn log(event: &impl SolEvent) -> Log {
        Log { address: MARKET, data: event.encode_log_data() }
    }

    fn submitted(task: u64, price: u128) -> Log {
        let s = spec();
        log(&Marketplace::TaskSubmitted {
            taskId: U256::from(task),
            requester: REQUESTER,
            imageId: s.imageId,
            inputHash: s.inputHash,
            memoryMb: s.memoryMb,
            maxRuntimeS: s.maxRuntimeS,
            deadline: s.deadline,
            price: Uint::from(price),
            offerId: 0,
            inputCid: "cid".into(),
        })
    }

    fn result(task: u64, status: u16, amount: u128) -> Log {
        log(&Marketplace::ResultSubmitted {
            taskId: U256::from(task),
            offerId: 1,
            node: NODE,
            signer: SIGNER,
            resultHash: B256::ZERO,
            codeHash: B256::ZERO,
            status,
            runtimeMs: 1,
            amount: Uint::from(amount),
            resultCid: "cid".into(),
            signature: vec![0; 65].into(),
        })
    }

    fn reclaimed(task: u64, amount: u128) -> Log {
        log(&Marketplace::TaskReclaimed {
            taskId: U256::from(task),
            requester: REQUESTER,
            offerId: 0,
            amount: Uint::from(amount),
        })
    }

    fn ledger(logs: &[Log]) -> Ledger {
        let mut ledger = Ledger::new(MARKET, &[REQUESTER, NODE], MINT);
        for l in logs {
            ledger.apply(l);
        }
        ledger
    }

    /// The chain as a correct contract leaves it after `paid + refunded + live` tasks were
    /// submitted at PRICE, the first `paid + refunded` settled, the rest still live.
    fn honest(paid: u128, refunded: u128, live: u128) -> Snapshot {
        let escrowed = (paid + refunded + live) * PRICE;
        let mut tasks = BTreeMap::new();
        for id in 1..=(paid + refunded) {
            tasks.insert(u64::try_from(id).unwrap(), FixedBytes::ZERO);
        }
        for id in (paid + refunded + 1)..=(paid + refunded + live) {
            let task = LiveTask { requester: REQUESTER, escrow: PRICE, spec: spec() };
            tasks.insert(u64::try_from(id).unwrap(), commitment(&task, SIGNER));
        }
        Snapshot {
            escrowed,
            paid: paid * PRICE,
            refunded: refunded * PRICE,
            held: live * PRICE,
            supply: 2 * MINT,
            balances: BTreeMap::from([
                (REQUESTER, MINT - (paid + live) * PRICE),
                (NODE, MINT + paid * PRICE),
                (MARKET, live * PRICE),
            ]),
            tasks,
        }
    }

    #[test]
    fn honest_chain_passes() {
        // Task 1 paid, task 2 reclaimed, task 3 live.
        let ledger = ledger(&[
            submitted(1, PRICE),
            result(1, 0, PRICE),
            submitted(2, PRICE),
            reclaimed(2, PRICE),
            submitted(3, PRICE),
        ]);
        assert_eq!(ledger.check(&honest(1, 1, 1), SIGNER), Vec::<String>::new());
    }

    #[test]
    fn refund_recorded_without_moving_tokens_fails() {
        let ledger = ledger(&[submitted(1, PRICE), reclaimed(1, PRICE)]);
        assert!(ledger.check(&honest(0, 1, 0), SIGNER).is_empty());
        // The contract counts the refund and emits TaskReclaimed, but never transfers: the
        // totals are consistent with each other (escrowed = paid + refunded + held), the tokens
        // are still in the Marketplace.
        let mut chain = honest(0, 1, 0);
        chain.balances.insert(REQUESTER, MINT - PRICE);
        chain.balances.insert(MARKET, PRICE);
        assert_eq!(chain.escrowed, chain.paid + chain.refunded + chain.held);
        let bad = ledger.check(&chain, SIGNER);
        assert_eq!(
            bad,
            [
                format!(
                    "Marketplace token balance vs totals().held: chain has {PRICE}, expected 0"
                ),
                format!(
                    "token balance of {REQUESTER}: chain has {}, expected {MINT}",
                    MINT - PRICE
                ),
                format!("token balance of {MARKET}: chain has {PRICE}, expected 0"),
            ]
        );
    }

    #[test]
    fn refund_class_paid_to_node_fails() {
        // Status 16 refunds the requester; a contract paying the node instead, while counting
        // a refund, leaves every total right and the wrong balances.
        let ledger = ledger(&[submitted(1, PRICE), result(1, 16, PRICE)]);
        let mut chain = honest(0, 1, 0);
        assert!(ledger.check(&chain, SIGNER).is_empty());
        chain.balances.insert(REQUESTER, MINT - PRICE);
        chain.balances.insert(NODE, MINT + PRICE);
        let bad = ledger.check(&chain, SIGNER);
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert!(bad.iter().all(|b| b.starts_with("token balance of")), "{bad:?}");
    }

    #[test]
    fn totals_that_disagree_with_events_fail() {
        // held is derived (escrowed - paid - refunded); here it matches the balance, but a
        // payment was counted as a refund.
        let ledger = ledger(&[submitted(1, PRICE), result(1, 0, PRICE)]);
        let mut chain = honest(1, 0, 0);
        assert!(ledger.check(&chain, SIGNER).is_empty());
        chain.paid = 0;
        chain.refunded = PRICE;
        let bad = ledger.check(&chain, SIGNER);
        assert_eq!(
            bad,
            [
                format!(
                    "totals().paid vs the payments of ResultSubmitted: chain has 0, expected {PRICE}"
                ),
                format!(
                    "totals().refunded vs the refunds of the events: chain has {PRICE}, expected 0"
                ),
            ]
        );
    }

    #[test]
    fn task_words_must_match_the_events() {
        let ledger = ledger(&[submitted(1, PRICE), submitted(2, PRICE), result(1, 0, PRICE)]);
        let chain = honest(1, 0, 1);
        assert!(ledger.check(&chain, SIGNER).is_empty());
        // Settled task still stored; live task deleted; live task committing to another price.
        let mut stale = chain.clone();
        stale.tasks.insert(1, FixedBytes::repeat_byte(1));
        let mut gone = chain.clone();
        gone.tasks.insert(2, FixedBytes::ZERO);
        let mut repriced = chain;
        let cheaper = LiveTask { requester: REQUESTER, escrow: PRICE - 1, spec: spec() };
        repriced.tasks.insert(2, commitment(&cheaper, SIGNER));
        for (chain, says) in [
            (stale, "task 1 is live on chain but settled"),
            (gone, "task 2 is gone on chain but not settled"),
            (repriced, "task 2: stored word"),
        ] {
            let bad = ledger.check(&chain, SIGNER);
            assert!(bad.len() == 1 && bad[0].starts_with(says), "{says}: {bad:?}");
        }
    }

    #[test]
    fn settlement_of_another_amount_fails() {
        // The event pays more than was escrowed: the ledger flags the event itself.
        let ledger = ledger(&[submitted(1, PRICE), result(1, 0, PRICE + 1)]);
        let bad = ledger.check(&honest(1, 0, 0), SIGNER);
        assert!(
            bad.iter().any(|b| b
                == &format!("result of task 1 moves {}, but its escrow is {PRICE}", PRICE + 1)),
            "{bad:?}"
        );
    }
}
