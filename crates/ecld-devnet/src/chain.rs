//! The chain: world state, mined blocks, the pool of waiting transactions, and the clock.
//!
//! Everything here is synchronous and single-threaded; the RPC layer holds the chain behind a
//! mutex. Execution is in [`exec`], block production in [`mine`].

pub(crate) mod exec;
pub(crate) mod mine;

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use alloy::{
    consensus::{Header, ReceiptEnvelope, Transaction as _, TxEnvelope, transaction::Recovered},
    primitives::{Address, B256, Bytes, U256},
};
use revm::{
    database::{CacheDB, EmptyDB},
    primitives::hardfork::SpecId,
    state::AccountInfo,
};

use crate::DevnetConfig;

/// Hardfork the devnet runs: the same as hardhat 2.29's default, so gas figures agree.
pub(crate) const SPEC: SpecId = SpecId::OSAKA;

/// Coinbase of every block (hardhat's).
pub(crate) const COINBASE: Address =
    alloy::primitives::address!("c014ba5ec014ba5ec014ba5ec014ba5ec014ba5e");

/// Default priority fee a dev-account transaction without fee fields pays (1 gwei, as hardhat).
pub(crate) const DEFAULT_PRIORITY_FEE: u128 = 1_000_000_000;

/// Why the chain refused a transaction or a query. Converted to JSON-RPC errors in one place
/// (`rpc::error`).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ChainError {
    /// The nonce was already used by a mined transaction.
    #[error("nonce too low: address {address} has nonce {expected}, transaction has {got}")]
    NonceTooLow { address: Address, expected: u64, got: u64 },
    /// The transaction is signed for another chain.
    #[error("invalid chain id {got:?}: this chain is {expected}; sign for chain id {expected}")]
    ChainId { expected: u64, got: Option<u64> },
    /// The same transaction is already mined or waiting.
    #[error("transaction {0} is already known")]
    AlreadyKnown(B256),
    /// The EVM refused the transaction before executing it (fees, balance, gas limit...).
    #[error("invalid transaction: {0}")]
    Invalid(String),
    /// Execution reverted (eth_call / eth_estimateGas); `data` is the revert payload.
    #[error("execution reverted{}", reason_suffix(.0))]
    Reverted(Bytes),
    /// Execution halted (out of gas, invalid opcode...).
    #[error("execution halted: {0}")]
    Halted(String),
    /// A block that does not exist was asked for.
    #[error("unknown block {0}")]
    UnknownBlock(String),
    /// State of a past block was asked for; the devnet keeps only the latest state.
    #[error(
        "state of block {0} is not available: this devnet keeps only the latest state; query \
         \"latest\""
    )]
    HistoricalState(u64),
    /// A transaction kind the devnet does not accept.
    #[error("unsupported transaction: {0}")]
    Unsupported(String),
    /// `eth_sendTransaction` from an account whose key the devnet does not have.
    #[error(
        "unknown account {0}: eth_sendTransaction works for dev accounts only; sign it yourself and use eth_sendRawTransaction"
    )]
    UnknownAccount(Address),
    /// The raw transaction bytes do not decode or their signature does not recover.
    #[error("malformed transaction: {0}")]
    Malformed(String),
    /// Writing the journal failed: the chain did not accept the block.
    #[error("cannot persist the block: {0}")]
    Persist(String),
}

fn reason_suffix(data: &Bytes) -> String {
    alloy::sol_types::decode_revert_reason(data).map(|r| format!(": {r}")).unwrap_or_default()
}

/// One mined transaction with everything the RPC returns about it.
#[derive(Debug, Clone)]
pub(crate) struct MinedTx {
    /// The signed transaction and its sender.
    pub(crate) tx: Recovered<TxEnvelope>,
    /// Transaction hash.
    pub(crate) hash: B256,
    /// Consensus receipt (status, cumulative gas, logs, bloom).
    pub(crate) receipt: ReceiptEnvelope,
    /// Gas used by this transaction alone.
    pub(crate) gas_used: u64,
    /// Price per gas actually paid.
    pub(crate) effective_gas_price: u128,
    /// Address of the created contract, for a creation.
    pub(crate) contract_address: Option<Address>,
    /// Block-wide index of this transaction's first log.
    pub(crate) first_log_index: u64,
}

/// One mined block.
#[derive(Debug, Clone)]
pub(crate) struct Block {
    /// Consensus header.
    pub(crate) header: Header,
    /// `keccak256(rlp(header))`.
    pub(crate) hash: B256,
    /// Transactions in order.
    pub(crate) txs: Vec<MinedTx>,
}

impl Block {
    pub(crate) fn number(&self) -> u64 {
        self.header.number
    }
}

/// Which block a query is about, resolved from a JSON-RPC block tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlockRef {
    Latest,
    Pending,
    Earliest,
    Number(u64),
    Hash(B256),
}

/// The clock of the chain: wall time plus an offset that `evm_increaseTime` moves.
#[derive(Debug, Clone, Default)]
pub(crate) struct Clock {
    /// Seconds added to the wall clock.
    pub(crate) offset: i64,
    /// Timestamp forced for the next block (`evm_setNextBlockTimestamp`).
    pub(crate) next: Option<u64>,
}

impl Clock {
    pub(crate) fn now(&self) -> u64 {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        wall.saturating_add_signed(self.offset)
    }
}

/// A transaction waiting in the pool (nonce gap, or interval mining).
#[derive(Debug, Clone)]
pub(crate) struct PoolTx {
    pub(crate) tx: Recovered<TxEnvelope>,
    pub(crate) hash: B256,
}

/// Chain parameters fixed at genesis.
#[derive(Debug, Clone)]
pub(crate) struct Params {
    pub(crate) chain_id: u64,
    pub(crate) gas_limit: u64,
}

/// The whole chain. `Clone` is what `evm_snapshot` stores.
#[derive(Debug, Clone)]
pub(crate) struct Chain {
    pub(crate) params: Params,
    pub(crate) db: CacheDB<EmptyDB>,
    pub(crate) blocks: Vec<Arc<Block>>,
    pub(crate) by_hash: HashMap<B256, u64>,
    pub(crate) tx_index: HashMap<B256, (u64, usize)>,
    /// Waiting transactions by sender, then nonce.
    pub(crate) pool: BTreeMap<Address, BTreeMap<u64, PoolTx>>,
    pub(crate) clock: Clock,
}

impl Chain {
    /// A chain with only the genesis block, at `genesis_timestamp`, funding `accounts`.
    pub(crate) fn genesis(
        config: &DevnetConfig,
        accounts: &[Address],
        genesis_timestamp: u64,
    ) -> Self {
        let mut db = CacheDB::new(EmptyDB::new());
        for address in accounts {
            db.insert_account_info(
                *address,
                AccountInfo { balance: config.balance, ..Default::default() },
            );
        }
        let header = mine::genesis_header(config, genesis_timestamp);
        let hash = header.hash_slow();
        let block = Arc::new(Block { header, hash, txs: Vec::new() });
        Self {
            params: Params { chain_id: config.chain_id, gas_limit: config.gas_limit },
            db,
            blocks: vec![block],
            by_hash: HashMap::from([(hash, 0)]),
            tx_index: HashMap::new(),
            pool: BTreeMap::new(),
            clock: Clock::default(),
        }
    }

    /// The latest mined block.
    pub(crate) fn head(&self) -> &Arc<Block> {
        // The genesis block is inserted at construction and blocks are never all removed.
        &self.blocks[self.blocks.len() - 1]
    }

    /// Resolves a block reference to a mined block (`pending` means latest).
    pub(crate) fn block(&self, r: BlockRef) -> Option<&Arc<Block>> {
        match r {
            BlockRef::Latest | BlockRef::Pending => Some(self.head()),
            BlockRef::Earliest => self.blocks.first(),
            BlockRef::Number(n) => usize::try_from(n).ok().and_then(|n| self.blocks.get(n)),
            BlockRef::Hash(h) => {
                self.by_hash.get(&h).and_then(|n| self.block(BlockRef::Number(*n)))
            }
        }
    }

    /// Checks that `r` names the latest state, the only one kept.
    pub(crate) fn check_state_ref(&self, r: BlockRef) -> Result<(), ChainError> {
        let head = self.head().number();
        match r {
            BlockRef::Latest | BlockRef::Pending => Ok(()),
            BlockRef::Earliest if head == 0 => Ok(()),
            BlockRef::Earliest => Err(ChainError::HistoricalState(0)),
            BlockRef::Number(n) if n == head => Ok(()),
            BlockRef::Number(n) if n > head => Err(ChainError::UnknownBlock(n.to_string())),
            BlockRef::Number(n) => Err(ChainError::HistoricalState(n)),
            BlockRef::Hash(h) => match self.by_hash.get(&h) {
                Some(n) if *n == head => Ok(()),
                Some(n) => Err(ChainError::HistoricalState(*n)),
                None => Err(ChainError::UnknownBlock(h.to_string())),
            },
        }
    }

    /// Account info in the latest state (default for an untouched account).
    pub(crate) fn account(&self, address: Address) -> AccountInfo {
        use revm::DatabaseRef as _;
        self.db.basic_ref(address).ok().flatten().unwrap_or_default()
    }

    /// Nonce of the latest state, or counting waiting transactions for `pending`.
    pub(crate) fn nonce(&self, address: Address, pending: bool) -> u64 {
        let mut nonce = self.account(address).nonce;
        if pending && let Some(waiting) = self.pool.get(&address) {
            while waiting.contains_key(&nonce) {
                nonce += 1;
            }
        }
        nonce
    }

    /// Contract code at `address`.
    pub(crate) fn code(&self, address: Address) -> Bytes {
        use revm::DatabaseRef as _;
        let info = self.account(address);
        match info.code {
            Some(code) => code.original_bytes(),
            None => self
                .db
                .code_by_hash_ref(info.code_hash)
                .map(|c| c.original_bytes())
                .unwrap_or_default(),
        }
    }

    /// Storage slot value.
    pub(crate) fn storage(&self, address: Address, slot: U256) -> U256 {
        use revm::DatabaseRef as _;
        self.db.storage_ref(address, slot).unwrap_or_default()
    }

    /// Where a mined transaction is.
    pub(crate) fn find_tx(&self, hash: B256) -> Option<(&Arc<Block>, &MinedTx)> {
        let (number, index) = self.tx_index.get(&hash)?;
        let block = self.block(BlockRef::Number(*number))?;
        Some((block, block.txs.get(*index)?))
    }

    /// A waiting transaction.
    pub(crate) fn find_pool_tx(&self, hash: B256) -> Option<&PoolTx> {
        self.pool.values().flat_map(BTreeMap::values).find(|p| p.hash == hash)
    }

    /// Base fee the next block will have.
    pub(crate) fn next_base_fee(&self) -> u64 {
        mine::next_base_fee(&self.head().header)
    }

    /// Checks a signed transaction against the chain before it enters the pool.
    pub(crate) fn precheck(
        &self,
        tx: &Recovered<TxEnvelope>,
        hash: B256,
    ) -> Result<(), ChainError> {
        if let TxEnvelope::Eip4844(_) = tx.inner() {
            return Err(ChainError::Unsupported(
                "blob (EIP-4844) transactions are not supported by the devnet".into(),
            ));
        }
        if let Some(id) = tx.chain_id()
            && id != self.params.chain_id
        {
            return Err(ChainError::ChainId { expected: self.params.chain_id, got: Some(id) });
        }
        if self.tx_index.contains_key(&hash) || self.find_pool_tx(hash).is_some() {
            return Err(ChainError::AlreadyKnown(hash));
        }
        let expected = self.account(tx.signer()).nonce;
        if tx.nonce() < expected {
            return Err(ChainError::NonceTooLow {
                address: tx.signer(),
                expected,
                got: tx.nonce(),
            });
        }
        if tx.gas_limit() > self.params.gas_limit {
            return Err(ChainError::Invalid(format!(
                "gas limit {} exceeds the block gas limit {}",
                tx.gas_limit(),
                self.params.gas_limit
            )));
        }
        Ok(())
    }

    /// Number of waiting transactions.
    pub(crate) fn pool_len(&self) -> usize {
        self.pool.values().map(BTreeMap::len).sum()
    }

    /// Mined blocks with numbers in `from..=to`.
    pub(crate) fn blocks_in(&self, from: u64, to: u64) -> impl Iterator<Item = &Arc<Block>> {
        let from = usize::try_from(from).unwrap_or(usize::MAX);
        let to = usize::try_from(to).unwrap_or(usize::MAX).min(self.blocks.len().saturating_sub(1));
        self.blocks.get(from..=to).into_iter().flatten()
    }
}
