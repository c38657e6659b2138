//! Following the chain: eth_getLogs from the journal's cursor, reorg and restart detection, the
//! set of open tasks, and tasks matched to this node's offers.
//!
//! A reorganisation (or a chain restarted to an older head) shows as the last handled block
//! being gone: its number is above the head, or its hash changed. The follower then looks for
//! the newest block it handled that is still on the chain (it remembers the last block and hash
//! of its last `reorg_depth` reads), forgets what it learned since, and re-reads from there
//! (less `scan_lookback`, as at start-up, so that the open-task set is rebuilt). The caller is
//! told, so that it re-checks the tasks this node holds against the new chain.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};

use alloy::primitives::B256;
use ecld_types::{OfferId, TaskId};

use super::Inner;
use crate::{
    chain::{ChainError, ChainEvent, OnChain, TaskInfo},
    journal::Entry,
    metrics,
    task::{Phase, Step},
};

/// Most blocks asked for in one eth_getLogs.
const MAX_RANGE: u64 = 2_000;

/// What one [`Follower::poll`] found.
#[derive(Debug)]
pub(super) struct Polled {
    /// Tasks held by this node's offers that its journal does not have active.
    pub(super) adopted: Vec<TaskId>,
    /// Whether the read reached the chain's head (else poll again at once).
    pub(super) caught_up: bool,
    /// Whether blocks handled earlier were gone (held tasks must be re-checked).
    pub(super) reorg: bool,
}

/// What the node has learned from the chain's events.
#[derive(Debug)]
pub(super) struct Follower {
    /// Last handled block and its hash; `None` before the first poll.
    cursor: Option<(u64, B256)>,
    /// The last block (and hash) of recent reads, oldest first, at most `reorg_depth`.
    history: VecDeque<(u64, B256)>,
    /// Open tasks (nobody holds them), by id.
    open: BTreeMap<TaskId, TaskInfo>,
    /// Tasks held by others, kept in case they are released.
    held: BTreeMap<TaskId, TaskInfo>,
    /// Tasks this node tried to claim whose fate no event has told yet (see [`Self::reopen`]).
    claiming: HashSet<TaskId>,
}

impl Follower {
    /// Starts from the journal's cursor, re-reading `scan_lookback` blocks so that open tasks
    /// submitted before the restart are known again.
    pub(super) fn new(inner: &Inner) -> Self {
        let cursor = inner.journal(|j| j.state().cursor);
        let start = match cursor {
            Some((block, _)) => {
                block.saturating_sub(inner.tuning.scan_lookback).max(inner.deploy_block)
            }
            None => inner.deploy_block,
        };
        // The cursor is "last handled": start one before the first block to read.
        let cursor = start.checked_sub(1).map(|b| (b, B256::ZERO));
        Self {
            cursor,
            history: VecDeque::new(),
            open: BTreeMap::new(),
            held: BTreeMap::new(),
            claiming: HashSet::new(),
        }
    }

    /// Open tasks, oldest first.
    pub(super) fn open(&self) -> impl Iterator<Item = &TaskInfo> {
        self.open.values()
    }

    /// Drops tasks this node just claimed from the open set.
    pub(super) fn forget(&mut self, tasks: &HashSet<TaskId>) {
        for t in tasks {
            if let Some(info) = self.open.remove(t) {
                self.held.insert(*t, info);
                self.claiming.insert(*t);
            }
        }
    }

    /// This node's claim of `task` was refused (say its offer was full on chain, by tasks
    /// matched at submission its journal did not have yet): unless an event has said who
    /// holds it since, the task is open again, for this node to try later.
    pub(super) fn reopen(&mut self, task: TaskId) {
        if self.claiming.remove(&task)
            && let Some(info) = self.held.remove(&task)
        {
            self.open.insert(task, info);
        }
    }

    /// Reads new blocks (at most [`MAX_RANGE`]); says which tasks this node must adopt
    /// (matched or claimed for its offers but unknown to its journal), whether it reached the
    /// head, and whether it saw a reorganisation.
    pub(super) async fn poll(&mut self, inner: &Inner) -> Result<Polled, ChainError> {
        let chain = &inner.chain;
        let head = chain.head().await?;
        let mut reorg = false;
        if let Some((block, hash)) = self.cursor
            && hash != B256::ZERO
            && (block > head || chain.block_hash(block).await? != Some(hash))
        {
            self.rewind(inner, block, head).await?;
            reorg = true;
        }
        let from = self.cursor.map_or(0, |(b, _)| b + 1);
        if from > head {
            return Ok(Polled { adopted: Vec::new(), caught_up: true, reorg });
        }
        let to = head.min(from + MAX_RANGE - 1);
        let events = chain.events(from, to).await?;
        let Some((to_hash, to_time)) = chain.block_stamp(to).await? else {
            return Err(ChainError::Unexpected {
                what: "eth_getBlockByNumber",
                message: format!("block {to} vanished"),
            });
        };
        // This node's own settlements and releases mined in blocks of this read: each must
        // show as its event, else its block was replaced before the follower read it.
        let ends = inner.unread_ends_through(to);
        let ended: HashSet<TaskId> = events
            .iter()
            .filter_map(|(_, e)| match e {
                ChainEvent::Settled { task, .. } | ChainEvent::Released { task, .. } => Some(*task),
                _ => None,
            })
            .collect();
        let vanished: Vec<TaskInfo> = ends
            .iter()
            .filter(|(task, block)| *block >= from && !ended.contains(task))
            .filter_map(|(task, _)| inner.journal(|j| j.state().infos.get(task).cloned()))
            .collect();
        let mut adopt = self.apply(|o| inner.owns(o), events);
        for info in vanished {
            tracing::warn!(target: "ecld_node", task = %info.id, "this node's settlement or release of the task is not in the block it was mined in (a reorganisation replaced it); checking the task on chain");
            if !adopt.iter().any(|a| a.id == info.id) {
                adopt.push(info);
            }
        }
        let mut adopted = Vec::new();
        for info in adopt {
            let task = info.id;
            let mut offer = info.offer;
            let journaled = inner.journal(|j| j.state().tasks.get(&task).cloned());
            match journaled {
                None => {}
                Some(phase) if phase.is_active() => continue,
                // Finished here after the event was sent (say, claimed then released before
                // this read): the event is old news, unless a reorganisation dropped the end
                // (a settlement or release) and the chain shows the task held by this node
                // again.
                Some(_) => match chain.task_state(task).await? {
                    OnChain::HeldBy(o) if inner.owns(o) => {
                        tracing::warn!(target: "ecld_node", task = %task, offer = %o, "a task this node had finished is held by it again on chain (a reorganisation dropped its end); resuming it");
                        offer = Some(o);
                    }
                    _ => continue,
                },
            }
            let r = inner.journal(|j| {
                if j.state().tasks.get(&task).is_some_and(Phase::is_active) {
                    return Ok(false);
                }
                j.append(&Entry::Info { info: info.clone() })?;
                // The worker checks the chain before acting, as after a restart.
                let offer = offer.or_else(|| inner.offers.first().map(|o| o.0));
                match offer {
                    Some(offer) => j.step(task, Step::Claiming { offer }).map(|()| true),
                    None => Ok(false),
                }
            });
            match r {
                Ok(true) => adopted.push(task),
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(target: "ecld_node", task = %task, %e, "cannot journal an adopted task");
                }
            }
        }
        inner.forget_ends(&ends);
        self.cursor = Some((to, to_hash));
        // Chain time for the deadline checks (after a reorganisation the head may be older).
        inner.clock.saw_head(to, to_time, reorg);
        ::metrics::gauge!(metrics::CHAIN_AHEAD)
            .set(to_time as f64 - super::clock::wall_unix() as f64);
        let depth = usize::try_from(inner.cfg.reorg_depth).unwrap_or(usize::MAX);
        if depth > 0 {
            if self.history.len() >= depth {
                self.history.pop_front();
            }
            self.history.push_back((to, to_hash));
        }
        if let Err(e) = inner.journal(|j| j.append(&Entry::Cursor { block: to, hash: to_hash })) {
            tracing::error!(target: "ecld_node", %e, "cannot journal the chain cursor");
        }
        ::metrics::gauge!(metrics::BLOCK).set(to as f64);
        Ok(Polled { adopted, caught_up: to == head, reorg })
    }

    /// The last handled block `block` is gone (chain head `head`): finds the newest remembered
    /// block still on the chain, forgets the open/held sets and re-reads from there (less
    /// `scan_lookback`), or from the deployment block when none is left.
    async fn rewind(&mut self, inner: &Inner, block: u64, head: u64) -> Result<(), ChainError> {
        let mut ancestor = None;
        while let Some((b, h)) = self.history.pop_back() {
            if b < block && b <= head && inner.chain.block_hash(b).await? == Some(h) {
                ancestor = Some(b);
                self.history.push_back((b, h));
                break;
            }
        }
        let from = ancestor
            .map_or(inner.deploy_block, |a| a.saturating_sub(inner.tuning.scan_lookback))
            .max(inner.deploy_block);
        ::metrics::counter!(metrics::REORGS).increment(1);
        tracing::warn!(target: "ecld_node", block, head, ?ancestor, from, "block {block}, already handled, is no longer on the chain (reorganisation or restarted chain); re-reading from block {from} and re-checking held tasks");
        self.cursor = from.checked_sub(1).map(|b| (b, B256::ZERO));
        self.open.clear();
        self.held.clear();
        self.claiming.clear();
        Ok(())
    }

    /// Applies events in order; returns tasks held by this node's offers (`owns`) at the end
    /// of the batch (with the offer filled in).
    ///
    /// Every task held by an offer, this node's included, stays known until it ends: a task
    /// matched to this node at submission and then released by it (its enclave failed, the
    /// node is stopping) is open again, and this node, perhaps the only one, must see it so.
    fn apply(
        &mut self,
        owns: impl Fn(OfferId) -> bool,
        events: Vec<(u64, ChainEvent)>,
    ) -> Vec<TaskInfo> {
        let mut ours: BTreeMap<TaskId, TaskInfo> = BTreeMap::new();
        let mut gone: BTreeSet<TaskId> = BTreeSet::new();
        for (_, ev) in events {
            let task = match &ev {
                ChainEvent::Submitted(info) => info.id,
                ChainEvent::Claimed { task, .. }
                | ChainEvent::Released { task, .. }
                | ChainEvent::Settled { task, .. }
                | ChainEvent::Reclaimed { task } => *task,
            };
            self.claiming.remove(&task);
            match ev {
                ChainEvent::Submitted(info) => {
                    gone.remove(&info.id);
                    match info.offer {
                        None => {
                            self.open.insert(info.id, info);
                        }
                        Some(o) if owns(o) => {
                            ours.insert(info.id, info.clone());
                            self.held.insert(info.id, info);
                        }
                        Some(_) => {
                            self.held.insert(info.id, info);
                        }
                    }
                }
                ChainEvent::Claimed { task, offer, price } => {
                    let info = self.open.remove(&task).or_else(|| self.held.remove(&task));
                    if let Some(mut info) = info {
                        info.price = price;
                        if owns(offer) {
                            info.offer = Some(offer);
                            ours.insert(task, info.clone());
                        }
                        self.held.insert(task, info);
                    }
                }
                ChainEvent::Released { task, .. } => {
                    ours.remove(&task);
                    if let Some(mut info) = self.held.remove(&task) {
                        info.offer = None;
                        info.price = alloy::primitives::U256::ZERO;
                        self.open.insert(task, info);
                    }
                }
                ChainEvent::Settled { task, .. } | ChainEvent::Reclaimed { task } => {
                    ours.remove(&task);
                    self.open.remove(&task);
                    self.held.remove(&task);
                    gone.insert(task);
                }
            }
        }
        ours.into_values().filter(|i| !gone.contains(&i.id)).collect()
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{Address, U256};
    use ecld_types::ImageId;

    use super::*;

    const MINE: OfferId = OfferId::new(1).unwrap();
    const THEIRS: OfferId = OfferId::new(2).unwrap();

    fn tid(n: u64) -> TaskId {
        TaskId::new(n).unwrap()
    }

    fn follower() -> Follower {
        Follower {
            cursor: None,
            history: VecDeque::new(),
            open: BTreeMap::new(),
            held: BTreeMap::new(),
            claiming: HashSet::new(),
        }
    }

    fn task(id: u64, offer: Option<OfferId>) -> TaskInfo {
        TaskInfo {
            id: tid(id),
            requester: Address::repeat_byte(7),
            image: ImageId(B256::repeat_byte(1)),
            input_hash: B256::repeat_byte(2),
            memory_mb: 64,
            max_runtime_s: 10,
            deadline: 4_000_000_000,
            max_price: U256::from(10u64),
            price: U256::from(offer.map_or(0u64, |_| 5)),
            offer,
            input_cid: "bafkreitest".into(),
        }
    }

    fn open_ids(f: &Follower) -> Vec<u64> {
        f.open().map(|i| i.id.get()).collect()
    }

    fn released(id: u64, offer: OfferId) -> (u64, ChainEvent) {
        (2, ChainEvent::Released { task: tid(id), offer })
    }

    #[test]
    fn a_task_matched_to_this_node_and_released_by_it_is_open_again() {
        let mut f = follower();
        let ours = f.apply(|o| o == MINE, vec![(1, ChainEvent::Submitted(task(1, Some(MINE))))]);
        assert_eq!(ours.iter().map(|i| i.id.get()).collect::<Vec<_>>(), [1]);
        assert!(open_ids(&f).is_empty());
        // Its enclave failed: the node released it. Nobody else is there to claim it.
        let ours = f.apply(|o| o == MINE, vec![released(1, MINE)]);
        assert!(ours.is_empty());
        assert_eq!(open_ids(&f), [1], "the released task is claimable again");
        let info = f.open().next().unwrap();
        assert_eq!(info.offer, None);
        assert_eq!(info.price, U256::ZERO);
    }

    #[test]
    fn matched_and_released_in_one_read_is_open_and_not_ours() {
        let mut f = follower();
        let ours = f.apply(
            |o| o == MINE,
            vec![(1, ChainEvent::Submitted(task(1, Some(MINE)))), released(1, MINE)],
        );
        assert!(ours.is_empty());
        assert_eq!(open_ids(&f), [1]);
    }

    #[test]
    fn tasks_of_other_nodes_come_back_when_released_and_go_when_settled() {
        let mut f = follower();
        f.apply(
            |o| o == MINE,
            vec![
                (1, ChainEvent::Submitted(task(1, Some(THEIRS)))),
                (1, ChainEvent::Submitted(task(2, None))),
                (1, ChainEvent::Submitted(task(3, Some(MINE)))),
            ],
        );
        assert_eq!(open_ids(&f), [2]);
        f.apply(|o| o == MINE, vec![released(1, THEIRS)]);
        assert_eq!(open_ids(&f), [1, 2]);
        f.apply(
            |o| o == MINE,
            vec![
                (3, ChainEvent::Claimed { task: tid(1), offer: THEIRS, price: U256::from(5u64) }),
                (3, ChainEvent::Reclaimed { task: tid(2) }),
                (3, ChainEvent::Settled { task: tid(3), offer: MINE, status: 0 }),
            ],
        );
        assert!(open_ids(&f).is_empty());
        assert!(f.held.contains_key(&tid(1)));
        assert!(!f.held.contains_key(&tid(3)), "a settled task is forgotten");
    }

    #[test]
    fn a_refused_claim_puts_the_task_back_unless_an_event_told_who_holds_it() {
        let mut f = follower();
        f.apply(
            |o| o == MINE,
            vec![
                (1, ChainEvent::Submitted(task(1, None))),
                (1, ChainEvent::Submitted(task(2, None))),
            ],
        );
        f.forget(&[tid(1), tid(2)].into_iter().collect());
        assert!(open_ids(&f).is_empty());
        // Task 2 was claimed by another node meanwhile: its event says so.
        f.apply(
            |o| o == MINE,
            vec![(2, ChainEvent::Claimed { task: tid(2), offer: THEIRS, price: U256::from(5u64) })],
        );
        f.reopen(tid(1));
        f.reopen(tid(2));
        assert_eq!(open_ids(&f), [1], "task 1 is open again, task 2 held by the other node");
    }
}
