//! Mined blocks, transactions and receipts in their JSON-RPC shapes (alloy's RPC types, so the
//! field names and encodings are those every client expects).

use alloy::{
    consensus::{ReceiptEnvelope, Transaction as _},
    eips::eip4895::Withdrawals,
    network::primitives::BlockTransactions,
    primitives::U256,
    rpc::types::{self as rpc},
};

use crate::chain::{Block, MinedTx, PoolTx};

/// A mined transaction as `eth_getTransactionByHash` returns it.
pub(crate) fn transaction(block: &Block, index: usize, tx: &MinedTx) -> rpc::Transaction {
    rpc::Transaction {
        inner: tx.tx.clone(),
        block_hash: Some(block.hash),
        block_number: Some(block.number()),
        transaction_index: Some(index as u64),
        effective_gas_price: Some(tx.effective_gas_price),
        block_timestamp: Some(block.header.timestamp),
    }
}

/// A waiting transaction (no block yet).
pub(crate) fn pending_transaction(tx: &PoolTx) -> rpc::Transaction {
    rpc::Transaction {
        inner: tx.tx.clone(),
        block_hash: None,
        block_number: None,
        transaction_index: None,
        effective_gas_price: None,
        block_timestamp: None,
    }
}

/// The logs of one mined transaction, with their positions.
pub(crate) fn logs(block: &Block, index: usize, tx: &MinedTx) -> Vec<rpc::Log> {
    tx.receipt
        .logs()
        .iter()
        .enumerate()
        .map(|(i, log)| rpc::Log {
            inner: log.clone(),
            block_hash: Some(block.hash),
            block_number: Some(block.number()),
            block_timestamp: Some(block.header.timestamp),
            transaction_hash: Some(tx.hash),
            transaction_index: Some(index as u64),
            log_index: Some(tx.first_log_index + i as u64),
            removed: false,
        })
        .collect()
}

/// The receipt of a mined transaction.
pub(crate) fn receipt(block: &Block, index: usize, tx: &MinedTx) -> rpc::TransactionReceipt {
    let rpc_logs = logs(block, index, tx);
    let inner: ReceiptEnvelope<rpc::Log> = {
        let mut it = rpc_logs.into_iter();
        tx.receipt.clone().map_logs(|_| it.next().unwrap_or_default())
    };
    rpc::TransactionReceipt {
        inner,
        transaction_hash: tx.hash,
        transaction_index: Some(index as u64),
        block_hash: Some(block.hash),
        block_number: Some(block.number()),
        gas_used: tx.gas_used,
        effective_gas_price: tx.effective_gas_price,
        blob_gas_used: None,
        blob_gas_price: None,
        from: tx.tx.signer(),
        to: tx.tx.to(),
        contract_address: tx.contract_address,
    }
}

/// A block, with full transactions or their hashes.
pub(crate) fn block(block: &Block, full: bool) -> rpc::Block {
    let transactions = if full {
        BlockTransactions::Full(
            block.txs.iter().enumerate().map(|(i, t)| transaction(block, i, t)).collect(),
        )
    } else {
        BlockTransactions::Hashes(block.txs.iter().map(|t| t.hash).collect())
    };
    let size = alloy::rlp::Encodable::length(&block.header)
        + block
            .txs
            .iter()
            .map(|t| alloy::eips::Encodable2718::encode_2718_len(t.tx.inner()))
            .sum::<usize>();
    rpc::Block {
        header: rpc::Header {
            hash: block.hash,
            inner: block.header.clone(),
            total_difficulty: Some(U256::ZERO),
            size: Some(U256::from(size)),
        },
        uncles: Vec::new(),
        transactions,
        withdrawals: Some(Withdrawals::default()),
    }
}

/// The header as `newHeads` subscriptions deliver it.
pub(crate) fn header(block: &Block) -> rpc::Header {
    rpc::Header {
        hash: block.hash,
        inner: block.header.clone(),
        total_difficulty: Some(U256::ZERO),
        size: None,
    }
}
