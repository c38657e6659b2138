//! The running node: the chain behind a lock, its journal, snapshots, installed filters, and
//! the broadcast of new blocks to subscribers.

use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use alloy::{
    consensus::{TxEnvelope, transaction::Recovered, transaction::SignerRecoverable as _},
    eips::{Decodable2718 as _, Encodable2718 as _},
    primitives::B256,
    rpc::types::Filter,
};
use tokio::sync::broadcast;

use crate::{
    DevnetConfig, DevnetError,
    accounts::{self, DevAccount},
    chain::{Block, Chain, ChainError},
    persist::{Journal, Record},
};

/// A filter installed with `eth_newFilter`, `eth_newBlockFilter` or
/// `eth_newPendingTransactionFilter`, with the first block it has not reported yet.
#[derive(Debug, Clone)]
pub(crate) struct InstalledFilter {
    pub(crate) kind: FilterKind,
    pub(crate) next_block: u64,
}

/// What an installed filter watches.
#[derive(Debug, Clone)]
pub(crate) enum FilterKind {
    Logs(Box<Filter>),
    Blocks,
    PendingTransactions,
}

/// Everything behind the node's lock.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) chain: Chain,
    journal: Option<Journal>,
    snapshots: BTreeMap<u64, Chain>,
    next_snapshot: u64,
    pub(crate) automine: bool,
    pub(crate) filters: HashMap<u64, InstalledFilter>,
    pub(crate) next_filter: u64,
}

/// The node shared by the HTTP and WebSocket handlers and the interval miner.
#[derive(Debug)]
pub(crate) struct Node {
    state: Mutex<State>,
    pub(crate) accounts: Vec<DevAccount>,
    pub(crate) events: broadcast::Sender<Arc<Block>>,
}

fn block_record(block: &Block, time_offset: i64) -> Record {
    Record::Block {
        number: block.number(),
        timestamp: block.header.timestamp,
        time_offset,
        txs: block.txs.iter().map(|t| t.tx.inner().encoded_2718().into()).collect(),
    }
}

impl Node {
    /// Creates the node: a fresh chain, or the one journaled in `config.state_dir`.
    pub(crate) fn open(config: &DevnetConfig) -> Result<Self, DevnetError> {
        let accounts = accounts::derive(config.accounts)?;
        let addresses: Vec<_> = accounts.iter().map(DevAccount::address).collect();
        let now = crate::chain::Clock::default().now();
        let (chain, journal) = match &config.state_dir {
            None => (Chain::genesis(config, &addresses, now), None),
            Some(dir) => {
                let (mut journal, records) = Journal::open(dir)?;
                let chain = if records.is_empty() {
                    journal.append(&genesis_record(config, now))?;
                    Chain::genesis(config, &addresses, now)
                } else {
                    restore(dir, config, &addresses, records)?
                };
                (chain, Some(journal))
            }
        };
        let (events, _) = broadcast::channel(1024);
        Ok(Self {
            state: Mutex::new(State {
                chain,
                journal,
                snapshots: BTreeMap::new(),
                next_snapshot: 1,
                automine: config.block_time.is_none(),
                filters: HashMap::new(),
                next_filter: 1,
            }),
            accounts,
            events,
        })
    }

    /// Locks the state. A panic while the lock was held leaves the chain as it was after the
    /// last complete step, so a poisoned lock is taken over rather than propagated.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn publish(&self, blocks: &[Arc<Block>]) {
        for b in blocks {
            // No receiver is fine: nobody subscribed.
            let _ = self.events.send(Arc::clone(b));
        }
    }

    /// Accepts a signed transaction (mined now under automine); returns its hash.
    pub(crate) fn send(&self, tx: Recovered<TxEnvelope>) -> Result<B256, ChainError> {
        self.send_with(|_| Ok(tx))
    }

    /// Builds a transaction from the current chain (nonce, gas, fees) and accepts it, under one
    /// lock so that concurrent requests from one account get distinct nonces.
    pub(crate) fn send_with(
        &self,
        build: impl FnOnce(&Chain) -> Result<Recovered<TxEnvelope>, ChainError>,
    ) -> Result<B256, ChainError> {
        let (hash, blocks) = {
            let mut guard = self.lock();
            let State { chain, journal, automine, .. } = &mut *guard;
            let tx = build(chain)?;
            let hash = *tx.tx_hash();
            (hash, chain.submit(tx, *automine, &mut |b, off| persist(journal, b, off))?)
        };
        self.publish(&blocks);
        Ok(hash)
    }

    /// Decodes, recovers and accepts a raw EIP-2718 transaction.
    pub(crate) fn send_raw(&self, raw: &[u8]) -> Result<B256, ChainError> {
        let envelope = TxEnvelope::decode_2718(&mut &raw[..]).map_err(|e| {
            ChainError::Malformed(format!("cannot decode the signed transaction: {e}"))
        })?;
        let tx = envelope.try_into_recovered().map_err(|e| {
            ChainError::Malformed(format!("cannot recover the sender from the signature: {e}"))
        })?;
        self.send(tx)
    }

    /// Mines one block with the pool's ready transactions (`evm_mine`, interval mining).
    pub(crate) fn mine(&self, timestamp: Option<u64>) -> Result<Arc<Block>, ChainError> {
        let block = {
            let mut guard = self.lock();
            let State { chain, journal, .. } = &mut *guard;
            chain.mine_pool(timestamp, &mut |b, off| persist(journal, b, off))?
        };
        self.publish(std::slice::from_ref(&block));
        Ok(block)
    }

    /// `evm_snapshot`: remembers the whole chain; returns the id to revert to.
    pub(crate) fn snapshot(&self) -> u64 {
        let mut s = self.lock();
        let id = s.next_snapshot;
        s.next_snapshot += 1;
        let copy = s.chain.clone();
        s.snapshots.insert(id, copy);
        id
    }

    /// `evm_revert`: restores snapshot `id` (dropping it and later ones). False if unknown.
    pub(crate) fn revert(&self, id: u64) -> Result<bool, ChainError> {
        let mut guard = self.lock();
        let State { chain, journal, snapshots, .. } = &mut *guard;
        let Some(saved) = snapshots.remove(&id) else { return Ok(false) };
        snapshots.split_off(&id);
        let to = saved.head().number();
        *chain = saved;
        if let Some(j) = journal {
            j.append(&Record::Revert { to }).map_err(|e| ChainError::Persist(e.to_string()))?;
        }
        Ok(true)
    }
}

fn persist(
    journal: &mut Option<Journal>,
    block: &Block,
    time_offset: i64,
) -> Result<(), ChainError> {
    match journal {
        Some(j) => j
            .append(&block_record(block, time_offset))
            .map_err(|e| ChainError::Persist(e.to_string())),
        None => Ok(()),
    }
}

fn genesis_record(config: &DevnetConfig, timestamp: u64) -> Record {
    Record::Genesis {
        chain_id: config.chain_id,
        accounts: config.accounts,
        balance: config.balance,
        gas_limit: config.gas_limit,
        initial_base_fee: config.initial_base_fee,
        timestamp,
    }
}

/// Rebuilds the chain from journal records.
fn restore(
    dir: &Path,
    config: &DevnetConfig,
    addresses: &[alloy::primitives::Address],
    records: Vec<Record>,
) -> Result<Chain, DevnetError> {
    let mut records = records.into_iter();
    let Some(first @ Record::Genesis { timestamp, .. }) = records.next() else {
        return Err(DevnetError::Replay {
            path: dir.to_path_buf(),
            number: 0,
            reason: "the journal does not start with a genesis record".into(),
        });
    };
    let expected = genesis_record(config, timestamp);
    if first != expected {
        return Err(DevnetError::ConfigMismatch {
            path: dir.to_path_buf(),
            what: format!("{first:?} where this configuration makes {expected:?}"),
        });
    }
    // Blocks that survive reverts, in order.
    let mut blocks: Vec<(u64, u64, i64, Vec<alloy::primitives::Bytes>)> = Vec::new();
    for record in records {
        match record {
            Record::Block { number, timestamp, time_offset, txs } => {
                blocks.push((number, timestamp, time_offset, txs));
            }
            Record::Revert { to } => blocks.retain(|(n, ..)| *n <= to),
            Record::Genesis { .. } => {
                return Err(DevnetError::Replay {
                    path: dir.to_path_buf(),
                    number: 0,
                    reason: "a second genesis record".into(),
                });
            }
        }
    }
    let mut chain = Chain::genesis(config, addresses, timestamp);
    for (number, timestamp, offset, txs) in blocks {
        let fail = |reason: String| DevnetError::Replay { path: dir.to_path_buf(), number, reason };
        if number != chain.head().number() + 1 {
            return Err(fail(format!("expected block {}", chain.head().number() + 1)));
        }
        let txs = txs
            .iter()
            .map(|raw| {
                TxEnvelope::decode_2718(&mut &raw[..])
                    .map_err(|e| e.to_string())
                    .and_then(|e| e.try_into_recovered().map_err(|e| e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(fail)?;
        chain.replay(timestamp, txs).map_err(|e| fail(e.to_string()))?;
        chain.clock.offset = offset;
    }
    Ok(chain)
}
