//! Block production: automine (one block per transaction), mining the pool, and replaying
//! journaled blocks.

use std::{collections::BTreeMap, sync::Arc};

use alloy::{
    consensus::{
        EMPTY_OMMER_ROOT_HASH, Eip658Value, Header, Receipt, ReceiptEnvelope, ReceiptWithBloom,
        Transaction as _, TxEnvelope,
        constants::EMPTY_WITHDRAWALS,
        proofs::{calculate_receipt_root, calculate_transaction_root},
        transaction::Recovered,
    },
    eips::{eip1559::BaseFeeParams, eip7685::EMPTY_REQUESTS_HASH},
    primitives::{B256, Bloom, U256, keccak256},
};
use revm::{
    Context, ExecuteCommitEvm as _, MainBuilder as _, MainContext as _,
    context::{BlockEnv, result::ExecutionResult},
};

use super::{Block, COINBASE, Chain, ChainError, MinedTx, PoolTx, exec};
use crate::DevnetConfig;

/// Called with each mined block (and the clock offset) before the RPC answers: the journal.
pub(crate) type Sink<'a> = &'a mut dyn FnMut(&Block, i64) -> Result<(), ChainError>;

/// The genesis header for `config`.
pub(crate) fn genesis_header(config: &DevnetConfig, timestamp: u64) -> Header {
    Header {
        beneficiary: COINBASE,
        number: 0,
        gas_limit: config.gas_limit,
        timestamp,
        base_fee_per_gas: Some(config.initial_base_fee),
        mix_hash: prevrandao(0),
        ..empty_header()
    }
}

/// A header with the post-Prague empty values filled in.
fn empty_header() -> Header {
    Header {
        ommers_hash: EMPTY_OMMER_ROOT_HASH,
        transactions_root: alloy::consensus::constants::EMPTY_ROOT_HASH,
        receipts_root: alloy::consensus::constants::EMPTY_ROOT_HASH,
        withdrawals_root: Some(EMPTY_WITHDRAWALS),
        blob_gas_used: Some(0),
        excess_blob_gas: Some(0),
        parent_beacon_block_root: Some(B256::ZERO),
        requests_hash: Some(EMPTY_REQUESTS_HASH),
        ..Header::default()
    }
}

/// Deterministic randomness per block, so a replayed journal yields the same hashes.
fn prevrandao(number: u64) -> B256 {
    keccak256([b"ecld-devnet-prevrandao".as_slice(), &number.to_be_bytes()].concat())
}

/// EIP-1559 base fee of the block after `parent`.
pub(crate) fn next_base_fee(parent: &Header) -> u64 {
    parent.next_block_base_fee(BaseFeeParams::ethereum()).unwrap_or(0)
}

/// Timestamp the next block gets: the forced one, or the clock, but always after its parent.
fn next_timestamp(chain: &Chain) -> u64 {
    chain.clock.next.unwrap_or_else(|| chain.clock.now().max(chain.head().header.timestamp + 1))
}

/// The block environment of the block that would be mined next.
pub(crate) fn next_block_env(chain: &Chain) -> BlockEnv {
    block_env(chain, next_timestamp(chain))
}

fn block_env(chain: &Chain, timestamp: u64) -> BlockEnv {
    let head = &chain.head().header;
    let number = head.number + 1;
    BlockEnv {
        number: U256::from(number),
        beneficiary: COINBASE,
        timestamp: U256::from(timestamp),
        gas_limit: chain.params.gas_limit,
        basefee: next_base_fee(head),
        difficulty: U256::ZERO,
        prevrandao: Some(prevrandao(number)),
        ..BlockEnv::default()
    }
}

impl Chain {
    /// Accepts a signed transaction. With `automine`, a transaction whose nonce is next is
    /// mined at once in its own block (and so are waiting ones it unblocks); one with a nonce
    /// gap, or any with interval mining, waits in the pool. Returns the blocks mined.
    pub(crate) fn submit(
        &mut self,
        tx: Recovered<TxEnvelope>,
        automine: bool,
        sink: Sink<'_>,
    ) -> Result<Vec<Arc<Block>>, ChainError> {
        let hash = *tx.tx_hash();
        self.precheck(&tx, hash)?;
        let sender = tx.signer();
        let ready = tx.nonce() == self.account(sender).nonce;
        if !automine || !ready {
            self.pool.entry(sender).or_default().insert(tx.nonce(), PoolTx { tx, hash });
            return Ok(Vec::new());
        }
        let timestamp = next_timestamp(self);
        let mut mined = vec![self.mine_txs(timestamp, vec![PoolTx { tx, hash }], true, sink)?];
        // Waiting transactions of the same sender that this one unblocked.
        loop {
            let nonce = self.account(sender).nonce;
            let Some(next) = self.pool.get_mut(&sender).and_then(|q| q.remove(&nonce)) else {
                break;
            };
            let timestamp = next_timestamp(self);
            match self.mine_txs(timestamp, vec![next], true, sink) {
                Ok(block) => mined.push(block),
                Err(ChainError::Persist(e)) => return Err(ChainError::Persist(e)),
                Err(e) => {
                    tracing::warn!(target: "ecld_devnet", %e, "dropped a waiting transaction");
                }
            }
        }
        if self.pool.get(&sender).is_some_and(BTreeMap::is_empty) {
            self.pool.remove(&sender);
        }
        Ok(mined)
    }

    /// Mines one block with the ready transactions of the pool (possibly none), at
    /// `timestamp` or the clock. `evm_mine` and interval mining.
    pub(crate) fn mine_pool(
        &mut self,
        timestamp: Option<u64>,
        sink: Sink<'_>,
    ) -> Result<Arc<Block>, ChainError> {
        let timestamp = timestamp.unwrap_or_else(|| next_timestamp(self));
        let base_fee = u128::from(next_base_fee(&self.head().header));
        // Ready queues: for each sender the run of consecutive nonces from the account's.
        let mut queues: Vec<Vec<PoolTx>> = Vec::new();
        let senders: Vec<_> = self.pool.keys().copied().collect();
        for sender in senders {
            let mut nonce = self.account(sender).nonce;
            let Some(waiting) = self.pool.get_mut(&sender) else { continue };
            waiting.retain(|n, _| *n >= nonce);
            let mut queue = Vec::new();
            while let Some(tx) = waiting.remove(&nonce) {
                queue.push(tx);
                nonce += 1;
            }
            if waiting.is_empty() {
                self.pool.remove(&sender);
            }
            if !queue.is_empty() {
                queue.reverse();
                queues.push(queue);
            }
        }
        // Highest tip first, nonce order within a sender, within the block gas limit.
        let mut chosen = Vec::new();
        let mut gas = 0u64;
        loop {
            let best = queues
                .iter()
                .enumerate()
                .filter_map(|(i, q)| {
                    q.last().map(|t| (i, t.tx.effective_tip_per_gas(base_fee as u64)))
                })
                .max_by_key(|(_, tip)| *tip);
            let Some((i, _)) = best else { break };
            let Some(tx) = queues[i].pop() else { break };
            if gas + tx.tx.gas_limit() > self.params.gas_limit {
                // Does not fit: it and the sender's later ones go back to the pool.
                queues[i].push(tx);
                for t in queues.swap_remove(i) {
                    self.pool.entry(t.tx.signer()).or_default().insert(t.tx.nonce(), t);
                }
                continue;
            }
            gas += tx.tx.gas_limit();
            chosen.push(tx);
        }
        self.mine_txs(timestamp, chosen, false, sink)
    }

    /// Replays a journaled block: the same transactions at the same timestamp must all apply.
    pub(crate) fn replay(
        &mut self,
        timestamp: u64,
        txs: Vec<Recovered<TxEnvelope>>,
    ) -> Result<Arc<Block>, ChainError> {
        let txs = txs.into_iter().map(|tx| PoolTx { hash: *tx.tx_hash(), tx }).collect();
        self.mine_txs(timestamp, txs, true, &mut |_, _| Ok(()))
    }

    /// Executes `txs` in a new block on top of the head and appends it. With `strict`, the
    /// first invalid transaction fails the whole call (only sound for one transaction, or a
    /// replay); otherwise invalid ones are dropped.
    fn mine_txs(
        &mut self,
        timestamp: u64,
        txs: Vec<PoolTx>,
        strict: bool,
        sink: Sink<'_>,
    ) -> Result<Arc<Block>, ChainError> {
        let env = block_env(self, timestamp);
        let base_fee = env.basefee;
        let number = self.head().number() + 1;
        let mut mined: Vec<MinedTx> = Vec::with_capacity(txs.len());
        let mut cumulative = 0u64;
        let mut log_index = 0u64;
        {
            let mut evm = Context::mainnet()
                .with_db(&mut self.db)
                .with_cfg(exec::cfg(self.params.chain_id))
                .with_block(env)
                .build_mainnet();
            for PoolTx { tx, hash } in txs {
                let result = match evm.transact_commit(exec::tx_env(&tx)) {
                    Ok(r) => r,
                    Err(e) if strict => return Err(exec::evm_error(e)),
                    Err(e) => {
                        let e = exec::evm_error(e);
                        tracing::warn!(target: "ecld_devnet", %hash, %e, "dropped an invalid transaction");
                        continue;
                    }
                };
                let gas_used = result.tx_gas_used();
                cumulative += gas_used;
                let contract_address = match &result {
                    ExecutionResult::Success { .. } => result.created_address(),
                    _ => None,
                };
                let success = result.is_success();
                let logs = result.into_logs();
                let n_logs = logs.len() as u64;
                let receipt = Receipt {
                    status: Eip658Value::Eip658(success),
                    cumulative_gas_used: cumulative,
                    logs,
                };
                let receipt =
                    ReceiptEnvelope::from_typed(tx.tx_type(), ReceiptWithBloom::from(receipt));
                mined.push(MinedTx {
                    effective_gas_price: tx.effective_gas_price(Some(base_fee)),
                    hash,
                    tx,
                    receipt,
                    gas_used,
                    contract_address,
                    first_log_index: log_index,
                });
                log_index += n_logs;
            }
        }
        let envelopes: Vec<&TxEnvelope> = mined.iter().map(|m| m.tx.inner()).collect();
        let receipts: Vec<&ReceiptEnvelope> = mined.iter().map(|m| &m.receipt).collect();
        let mut logs_bloom = Bloom::ZERO;
        for r in &receipts {
            logs_bloom.accrue_bloom(r.logs_bloom());
        }
        let parent = &self.head().header;
        let header = Header {
            parent_hash: self.head().hash,
            beneficiary: COINBASE,
            transactions_root: calculate_transaction_root(&envelopes),
            receipts_root: calculate_receipt_root(&receipts),
            logs_bloom,
            number,
            gas_limit: self.params.gas_limit,
            gas_used: cumulative,
            timestamp,
            base_fee_per_gas: Some(next_base_fee(parent)),
            mix_hash: prevrandao(number),
            ..empty_header()
        };
        let hash = header.hash_slow();
        let block = Arc::new(Block { header, hash, txs: mined });
        for (i, tx) in block.txs.iter().enumerate() {
            self.tx_index.insert(tx.hash, (number, i));
        }
        self.by_hash.insert(hash, number);
        self.blocks.push(Arc::clone(&block));
        if self.clock.next.take().is_some_and(|t| t > self.clock.now()) {
            // evm_setNextBlockTimestamp moves the clock: later blocks follow from there.
            self.clock.offset += i64::try_from(timestamp).unwrap_or(i64::MAX)
                - i64::try_from(self.clock.now()).unwrap_or(i64::MAX);
        }
        sink(&block, self.clock.offset)?;
        Ok(block)
    }
}
