//! `eth_*` methods: state queries, calls, transactions, blocks, receipts, logs and fees.

use alloy::{
    consensus::{
        SignableTransaction, Signed, TxEip1559, TxEip2930, TxEnvelope, TxLegacy,
        transaction::Recovered,
    },
    eips::{BlockId, BlockNumberOrTag},
    primitives::{Address, B256, Bytes, Signature, TxKind, U256, keccak256},
    rpc::types::{FeeHistory, Filter, FilterBlockOption, Log, TransactionRequest},
};
use alloy_signer::SignerSync as _;
use alloy_signer_local::PrivateKeySigner;
use serde_json::{Value, json};

use super::{Params, RpcError, convert};
use crate::{
    chain::{BlockRef, Chain, ChainError, DEFAULT_PRIORITY_FEE, exec},
    node::Node,
};

/// A quantity as JSON-RPC encodes it.
pub(crate) fn qty(n: impl Into<u128>) -> Value {
    json!(format!("{:#x}", n.into()))
}

/// The block a tag or hash names.
pub(crate) fn block_ref(id: BlockId) -> BlockRef {
    match id {
        BlockId::Hash(h) => BlockRef::Hash(h.block_hash),
        BlockId::Number(n) => tag_ref(n),
    }
}

fn tag_ref(n: BlockNumberOrTag) -> BlockRef {
    match n {
        BlockNumberOrTag::Latest | BlockNumberOrTag::Safe | BlockNumberOrTag::Finalized => {
            BlockRef::Latest
        }
        BlockNumberOrTag::Pending => BlockRef::Pending,
        BlockNumberOrTag::Earliest => BlockRef::Earliest,
        BlockNumberOrTag::Number(n) => BlockRef::Number(n),
    }
}

/// The block number a tag resolves to (`latest` and friends: the head).
pub(crate) fn tag_number(chain: &Chain, n: BlockNumberOrTag) -> u64 {
    match n {
        BlockNumberOrTag::Number(n) => n,
        BlockNumberOrTag::Earliest => 0,
        _ => chain.head().number(),
    }
}

/// The state block parameter at `i` (default `latest`), checked against the kept state.
fn state_ref(chain: &Chain, p: &Params, i: usize) -> Result<BlockRef, RpcError> {
    let r = p.opt::<BlockId>(i, "block")?.map_or(BlockRef::Latest, block_ref);
    chain.check_state_ref(r)?;
    Ok(r)
}

pub(crate) fn sha3(p: &Params) -> Result<Value, RpcError> {
    p.at_most(1)?;
    let data: Bytes = p.get(0, "data")?;
    Ok(json!(keccak256(&data)))
}

pub(crate) fn block_number(node: &Node, p: &Params) -> Result<Value, RpcError> {
    p.at_most(0)?;
    Ok(qty(node.lock().chain.head().number()))
}

pub(crate) fn get_balance(node: &Node, p: &Params) -> Result<Value, RpcError> {
    p.at_most(2)?;
    let address: Address = p.get(0, "address")?;
    let s = node.lock();
    state_ref(&s.chain, p, 1)?;
    Ok(json!(s.chain.account(address).balance))
}

pub(crate) fn get_transaction_count(node: &Node, p: &Params) -> Result<Value, RpcError> {
    p.at_most(2)?;
    let address: Address = p.get(0, "address")?;
    let s = node.lock();
    let r = state_ref(&s.chain, p, 1)?;
    Ok(qty(s.chain.nonce(address, r == BlockRef::Pending)))
}

pub(crate) fn get_code(node: &Node, p: &Params) -> Result<Value, RpcError> {
    p.at_most(2)?;
    let address: Address = p.get(0, "address")?;
    let s = node.lock();
    state_ref(&s.chain, p, 1)?;
    Ok(json!(s.chain.code(address)))
}

pub(crate) fn get_storage_at(node: &Node, p: &Params) -> Result<Value, RpcError> {
    p.at_most(3)?;
    let address: Address = p.get(0, "address")?;
    let slot: U256 = p.get(1, "slot")?;
    let s = node.lock();
    state_ref(&s.chain, p, 2)?;
    Ok(json!(B256::from(s.chain.storage(address, slot))))
}

pub(crate) fn call(node: &Node, p: &Params) -> Result<Value, RpcError> {
    p.at_most(2)?;
    let req: TransactionRequest = p.get(0, "transaction")?;
    let s = node.lock();
    state_ref(&s.chain, p, 1)?;
    let out = exec::into_output(exec::call(&s.chain, &req)?)?;
    Ok(json!(out))
}

pub(crate) fn estimate_gas(node: &Node, p: &Params) -> Result<Value, RpcError> {
    p.at_most(2)?;
    let req: TransactionRequest = p.get(0, "transaction")?;
    let s = node.lock();
    state_ref(&s.chain, p, 1)?;
    Ok(qty(exec::estimate_gas(&s.chain, &req)?))
}

pub(crate) fn send_raw_transaction(node: &Node, p: &Params) -> Result<Value, RpcError> {
    p.at_most(1)?;
    let raw: Bytes = p.get(0, "signed transaction")?;
    Ok(json!(node.send_raw(&raw)?))
}

pub(crate) fn send_transaction(node: &Node, p: &Params) -> Result<Value, RpcError> {
    p.at_most(1)?;
    let req: TransactionRequest = p.get(0, "transaction")?;
    let from = req.from.ok_or_else(|| RpcError::invalid_params("transaction.from is required"))?;
    let account = node
        .accounts
        .iter()
        .find(|a| a.address() == from)
        .ok_or(ChainError::UnknownAccount(from))?;
    let signer = account.signer().clone();
    Ok(json!(node.send_with(|chain| build_dev_tx(chain, &req, &signer))?))
}

fn sign<T: SignableTransaction<Signature>>(
    tx: T,
    signer: &PrivateKeySigner,
) -> Result<Signed<T>, ChainError> {
    let sig = signer
        .sign_hash_sync(&tx.signature_hash())
        .map_err(|e| ChainError::Invalid(format!("cannot sign: {e}")))?;
    Ok(tx.into_signed(sig))
}

/// Fills in what a dev-account request leaves out (nonce, gas, fees) and signs it.
fn build_dev_tx(
    chain: &Chain,
    req: &TransactionRequest,
    signer: &PrivateKeySigner,
) -> Result<Recovered<TxEnvelope>, ChainError> {
    let from = signer.address();
    let nonce = req.nonce.unwrap_or_else(|| chain.nonce(from, true));
    let gas_limit = match req.gas {
        Some(g) => g,
        None => exec::estimate_gas(chain, req)?,
    };
    let to = req.to.unwrap_or(TxKind::Create);
    let value = req.value.unwrap_or_default();
    let input = req.input.input().cloned().unwrap_or_default();
    let chain_id = chain.params.chain_id;
    let envelope: TxEnvelope = match (req.gas_price, &req.access_list) {
        (Some(gas_price), None) => sign(
            TxLegacy { chain_id: Some(chain_id), nonce, gas_price, gas_limit, to, value, input },
            signer,
        )?
        .into(),
        (Some(gas_price), Some(list)) => sign(
            TxEip2930 {
                chain_id,
                nonce,
                gas_price,
                gas_limit,
                to,
                value,
                access_list: list.clone(),
                input,
            },
            signer,
        )?
        .into(),
        (None, list) => {
            let prio = req.max_priority_fee_per_gas.unwrap_or(DEFAULT_PRIORITY_FEE);
            let max = req.max_fee_per_gas.unwrap_or(u128::from(chain.next_base_fee()) * 2 + prio);
            sign(
                TxEip1559 {
                    chain_id,
                    nonce,
                    gas_limit,
                    max_fee_per_gas: max,
                    max_priority_fee_per_gas: prio,
                    to,
                    value,
                    access_list: list.clone().unwrap_or_default(),
                    input,
                },
                signer,
            )?
            .into()
        }
    };
    Ok(Recovered::new_unchecked(envelope, from))
}

pub(crate) fn get_transaction_receipt(node: &Node, p: &Params) -> Result<Value, RpcError> {
    p.at_most(1)?;
    let hash: B256 = p.get(0, "transaction hash")?;
    let s = node.lock();
    Ok(match s.chain.find_tx(hash) {
        Some((block, tx)) => {
            let index = s.chain.tx_index.get(&hash).map_or(0, |(_, i)| *i);
            json!(convert::receipt(block, index, tx))
        }
        None => Value::Null,
    })
}

pub(crate) fn get_transaction_by_hash(node: &Node, p: &Params) -> Result<Value, RpcError> {
    p.at_most(1)?;
    let hash: B256 = p.get(0, "transaction hash")?;
    let s = node.lock();
    if let Some((block, tx)) = s.chain.find_tx(hash) {
        let index = s.chain.tx_index.get(&hash).map_or(0, |(_, i)| *i);
        return Ok(json!(convert::transaction(block, index, tx)));
    }
    Ok(s.chain.find_pool_tx(hash).map_or(Value::Null, |t| json!(convert::pending_transaction(t))))
}

pub(crate) fn get_transaction_by_block_and_index(
    node: &Node,
    p: &Params,
) -> Result<Value, RpcError> {
    p.at_most(2)?;
    let id: BlockId = p.get(0, "block")?;
    let index: alloy::primitives::U64 = p.get(1, "index")?;
    let s = node.lock();
    let Some(block) = s.chain.block(block_ref(id)) else { return Ok(Value::Null) };
    let i = usize::try_from(index.to::<u64>()).unwrap_or(usize::MAX);
    Ok(block.txs.get(i).map_or(Value::Null, |t| json!(convert::transaction(block, i, t))))
}

pub(crate) fn get_block(node: &Node, p: &Params) -> Result<Value, RpcError> {
    p.at_most(2)?;
    let id: BlockId = p.get(0, "block")?;
    let full: bool = p.opt(1, "full transactions")?.unwrap_or(false);
    let s = node.lock();
    Ok(s.chain.block(block_ref(id)).map_or(Value::Null, |b| json!(convert::block(b, full))))
}

pub(crate) fn get_block_transaction_count(node: &Node, p: &Params) -> Result<Value, RpcError> {
    p.at_most(1)?;
    let id: BlockId = p.get(0, "block")?;
    let s = node.lock();
    Ok(s.chain.block(block_ref(id)).map_or(Value::Null, |b| qty(b.txs.len() as u64)))
}

/// The logs of mined blocks that `filter` matches, in chain order.
pub(crate) fn logs_matching(
    chain: &Chain,
    filter: &Filter,
    from_floor: u64,
) -> Result<Vec<Log>, RpcError> {
    let (from, to) = match filter.block_option {
        FilterBlockOption::AtBlockHash(h) => {
            let n = chain
                .block(BlockRef::Hash(h))
                .ok_or_else(|| RpcError::from(ChainError::UnknownBlock(h.to_string())))?
                .number();
            (n, n)
        }
        FilterBlockOption::Range { from_block, to_block } => {
            let from = tag_number(chain, from_block.unwrap_or(BlockNumberOrTag::Latest));
            let to = tag_number(chain, to_block.unwrap_or(BlockNumberOrTag::Latest));
            if from > to {
                return Err(RpcError::invalid_params(format!(
                    "fromBlock {from} is after toBlock {to}"
                )));
            }
            (from, to)
        }
    };
    let mut out = Vec::new();
    for block in chain.blocks_in(from.max(from_floor), to) {
        if !filter.matches_bloom(block.header.logs_bloom) {
            continue;
        }
        for (i, tx) in block.txs.iter().enumerate() {
            out.extend(convert::logs(block, i, tx).into_iter().filter(|l| {
                filter.matches_address(l.address()) && filter.matches_topics(l.topics())
            }));
        }
    }
    Ok(out)
}

pub(crate) fn get_logs(node: &Node, p: &Params) -> Result<Value, RpcError> {
    p.at_most(1)?;
    let filter: Filter = p.get(0, "filter")?;
    let s = node.lock();
    Ok(json!(logs_matching(&s.chain, &filter, 0)?))
}

pub(crate) fn gas_price(node: &Node, p: &Params) -> Result<Value, RpcError> {
    p.at_most(0)?;
    let s = node.lock();
    Ok(qty(u128::from(s.chain.next_base_fee()) + DEFAULT_PRIORITY_FEE))
}

/// Accepts a block count as a JSON number or a hex quantity.
fn block_count(p: &Params) -> Result<u64, RpcError> {
    match p.get::<Value>(0, "block count")? {
        Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| RpcError::invalid_params("block count must be a positive integer")),
        v => serde_json::from_value::<alloy::primitives::U64>(v)
            .map(|n| n.to::<u64>())
            .map_err(|e| RpcError::invalid_params(format!("parameter 0 (block count): {e}"))),
    }
}

pub(crate) fn fee_history(node: &Node, p: &Params) -> Result<Value, RpcError> {
    p.at_most(3)?;
    let count = block_count(p)?.clamp(1, 1024);
    let newest: BlockNumberOrTag = p.get(1, "newest block")?;
    let percentiles: Option<Vec<f64>> = p.opt(2, "reward percentiles")?;
    if let Some(ps) = &percentiles
        && (ps.iter().any(|x| !(0.0..=100.0).contains(x)) || ps.windows(2).any(|w| w[0] > w[1]))
    {
        return Err(RpcError::invalid_params(
            "reward percentiles must rise monotonically within 0..=100",
        ));
    }
    let s = node.lock();
    let chain = &s.chain;
    let newest = tag_number(chain, newest).min(chain.head().number());
    let oldest = (newest + 1).saturating_sub(count);
    let mut history = FeeHistory { oldest_block: oldest, ..FeeHistory::default() };
    let mut rewards = Vec::new();
    for block in chain.blocks_in(oldest, newest) {
        let h = &block.header;
        let base_fee = h.base_fee_per_gas.unwrap_or(0);
        history.base_fee_per_gas.push(u128::from(base_fee));
        history.gas_used_ratio.push(h.gas_used as f64 / h.gas_limit as f64);
        history.base_fee_per_blob_gas.push(1);
        history.blob_gas_used_ratio.push(0.0);
        if let Some(ps) = &percentiles {
            let mut tips: Vec<(u128, u64)> = block
                .txs
                .iter()
                .map(|t| (t.effective_gas_price.saturating_sub(u128::from(base_fee)), t.gas_used))
                .collect();
            tips.sort_unstable();
            let total: u64 = tips.iter().map(|(_, g)| g).sum();
            rewards.push(
                ps.iter()
                    .map(|pct| {
                        let threshold = (total as f64 * pct / 100.0) as u64;
                        let mut acc = 0u64;
                        tips.iter()
                            .find(|(_, g)| {
                                acc += g;
                                acc >= threshold
                            })
                            .or(tips.last())
                            .map_or(0, |(tip, _)| *tip)
                    })
                    .collect::<Vec<u128>>(),
            );
        }
    }
    history.base_fee_per_gas.push(u128::from(crate::chain::mine::next_base_fee(
        &chain.block(BlockRef::Number(newest)).unwrap_or_else(|| chain.head()).header,
    )));
    history.base_fee_per_blob_gas.push(1);
    history.reward = percentiles.map(|_| rewards);
    Ok(json!(history))
}
