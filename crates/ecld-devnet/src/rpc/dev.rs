//! Development controls (`evm_*`) and installed filters (`eth_newFilter` and friends).

use alloy::{primitives::U64, rpc::types::Filter};
use serde_json::{Value, json};

use super::{Params, RpcError, eth};
use crate::node::{FilterKind, InstalledFilter, Node};

/// A number given as a JSON number or a hex quantity (hardhat accepts both).
fn number(p: &Params, i: usize, what: &str) -> Result<u64, RpcError> {
    match p.get::<Value>(i, what)? {
        Value::Number(n) => n.as_u64().ok_or_else(|| {
            RpcError::invalid_params(format!("{what} must be a non-negative integer"))
        }),
        v => serde_json::from_value::<U64>(v)
            .map(|n| n.to::<u64>())
            .map_err(|e| RpcError::invalid_params(format!("parameter {i} ({what}): {e}"))),
    }
}

pub(crate) fn mine(node: &Node, p: &Params) -> Result<Value, RpcError> {
    p.at_most(1)?;
    let timestamp = if p.len() > 0 && p.opt::<Value>(0, "timestamp")?.is_some() {
        Some(number(p, 0, "timestamp")?)
    } else {
        None
    };
    if let Some(t) = timestamp {
        let head = node.lock().chain.head().header.timestamp;
        if t <= head {
            return Err(RpcError::invalid_params(format!(
                "timestamp {t} is not after the latest block's {head}"
            )));
        }
    }
    node.mine(timestamp)?;
    Ok(json!("0x0"))
}

pub(crate) fn increase_time(node: &Node, p: &Params) -> Result<Value, RpcError> {
    p.at_most(1)?;
    let secs = number(p, 0, "seconds")?;
    let secs = i64::try_from(secs).map_err(|_| RpcError::invalid_params("seconds too large"))?;
    let mut s = node.lock();
    s.chain.clock.offset = s.chain.clock.offset.saturating_add(secs);
    Ok(json!(s.chain.clock.offset.to_string()))
}

pub(crate) fn set_next_block_timestamp(node: &Node, p: &Params) -> Result<Value, RpcError> {
    p.at_most(1)?;
    let t = number(p, 0, "timestamp")?;
    let mut s = node.lock();
    let head = s.chain.head().header.timestamp;
    if t <= head {
        return Err(RpcError::invalid_params(format!(
            "timestamp {t} is not after the latest block's {head}: blocks must move forward in time"
        )));
    }
    s.chain.clock.next = Some(t);
    Ok(Value::Null)
}

pub(crate) fn snapshot(node: &Node, p: &Params) -> Result<Value, RpcError> {
    p.at_most(0)?;
    Ok(eth::qty(node.snapshot()))
}

pub(crate) fn revert(node: &Node, p: &Params) -> Result<Value, RpcError> {
    p.at_most(1)?;
    let id = number(p, 0, "snapshot id")?;
    Ok(json!(node.revert(id)?))
}

pub(crate) fn set_automine(node: &Node, p: &Params) -> Result<Value, RpcError> {
    p.at_most(1)?;
    let on: bool = p.get(0, "enabled")?;
    node.lock().automine = on;
    if on {
        // Whatever waited gets mined now, like hardhat.
        if node.lock().chain.pool_len() > 0 {
            node.mine(None)?;
        }
    }
    Ok(Value::Null)
}

fn install(node: &Node, kind: FilterKind) -> Value {
    let mut s = node.lock();
    let id = s.next_filter;
    s.next_filter += 1;
    let next_block = s.chain.head().number() + 1;
    s.filters.insert(id, InstalledFilter { kind, next_block });
    eth::qty(id)
}

pub(crate) fn new_filter(node: &Node, p: &Params) -> Result<Value, RpcError> {
    p.at_most(1)?;
    let filter: Filter = p.get(0, "filter")?;
    Ok(install(node, FilterKind::Logs(Box::new(filter))))
}

pub(crate) fn new_block_filter(node: &Node, p: &Params) -> Result<Value, RpcError> {
    p.at_most(0)?;
    Ok(install(node, FilterKind::Blocks))
}

pub(crate) fn new_pending_transaction_filter(node: &Node, p: &Params) -> Result<Value, RpcError> {
    p.at_most(0)?;
    Ok(install(node, FilterKind::PendingTransactions))
}

fn filter_id(p: &Params) -> Result<u64, RpcError> {
    p.at_most(1)?;
    number(p, 0, "filter id")
}

fn not_found(id: u64) -> RpcError {
    RpcError::new(super::error::SERVER_ERROR, format!("filter {id:#x} not found: install it again"))
}

pub(crate) fn get_filter_changes(node: &Node, p: &Params) -> Result<Value, RpcError> {
    let id = filter_id(p)?;
    let mut s = node.lock();
    let head = s.chain.head().number();
    let f = s.filters.get(&id).cloned().ok_or_else(|| not_found(id))?;
    let out = match &f.kind {
        FilterKind::Blocks => {
            json!(s.chain.blocks_in(f.next_block, head).map(|b| b.hash).collect::<Vec<_>>())
        }
        FilterKind::PendingTransactions => json!([]),
        FilterKind::Logs(filter) => {
            let mut window = (**filter).clone();
            if let alloy::rpc::types::FilterBlockOption::Range { from_block, to_block } =
                &mut window.block_option
            {
                // Only blocks not reported yet, within the filter's own range.
                let start =
                    from_block.map_or(0, |b| eth::tag_number(&s.chain, b)).max(f.next_block);
                let end = to_block.map_or(head, |t| eth::tag_number(&s.chain, t)).min(head);
                *from_block = Some(start.into());
                *to_block = Some(end.into());
                if start > end {
                    json!([])
                } else {
                    json!(eth::logs_matching(&s.chain, &window, f.next_block)?)
                }
            } else {
                json!(eth::logs_matching(&s.chain, &window, f.next_block)?)
            }
        }
    };
    if let Some(f) = s.filters.get_mut(&id) {
        f.next_block = head + 1;
    }
    Ok(out)
}

pub(crate) fn get_filter_logs(node: &Node, p: &Params) -> Result<Value, RpcError> {
    let id = filter_id(p)?;
    let s = node.lock();
    match s.filters.get(&id).map(|f| &f.kind) {
        Some(FilterKind::Logs(filter)) => Ok(json!(eth::logs_matching(&s.chain, filter, 0)?)),
        Some(_) => Ok(json!([])),
        None => Err(not_found(id)),
    }
}

pub(crate) fn uninstall_filter(node: &Node, p: &Params) -> Result<Value, RpcError> {
    let id = filter_id(p)?;
    Ok(json!(node.lock().filters.remove(&id).is_some()))
}
