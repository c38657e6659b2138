//! Running transactions in the EVM: the translation to revm's `TxEnv`, `eth_call` and
//! `eth_estimateGas`.

use alloy::{
    consensus::{Transaction as _, TxEnvelope, transaction::Recovered},
    primitives::{TxKind, U256},
    rpc::types::TransactionRequest,
};
use revm::{
    Context, ExecuteEvm as _, MainBuilder as _, MainContext as _,
    context::{
        BlockEnv, CfgEnv, TxEnv,
        result::{EVMError, ExecutionResult, InvalidTransaction},
    },
};

use super::{Chain, ChainError, SPEC};

/// Largest gas limit one transaction may have under Osaka (EIP-7825).
pub(crate) const TX_GAS_LIMIT_CAP: u64 = 1 << 24;

/// EVM configuration for this chain.
pub(crate) fn cfg(chain_id: u64) -> CfgEnv {
    let mut cfg = CfgEnv::new().with_spec_and_mainnet_gas_params(SPEC);
    cfg.chain_id = chain_id;
    cfg
}

/// revm's view of a signed transaction.
pub(crate) fn tx_env(tx: &Recovered<TxEnvelope>) -> TxEnv {
    let inner = tx.inner();
    let mut env = TxEnv {
        tx_type: inner.tx_type() as u8,
        caller: tx.signer(),
        gas_limit: inner.gas_limit(),
        gas_price: inner.max_fee_per_gas(),
        kind: inner.kind(),
        value: inner.value(),
        data: inner.input().clone(),
        nonce: inner.nonce(),
        chain_id: inner.chain_id(),
        access_list: inner.access_list().cloned().unwrap_or_default(),
        gas_priority_fee: inner.max_priority_fee_per_gas(),
        ..TxEnv::default()
    };
    if let Some(list) = inner.authorization_list() {
        env.set_signed_authorization(list.to_vec());
    }
    env
}

/// Maps an EVM refusal to a chain error.
pub(crate) fn evm_error<E: std::fmt::Display>(err: EVMError<E>) -> ChainError {
    match err {
        EVMError::Transaction(InvalidTransaction::NonceTooLow { tx, state }) => {
            ChainError::Invalid(format!("nonce too low: transaction has {tx}, account has {state}"))
        }
        EVMError::Transaction(e) => ChainError::Invalid(e.to_string()),
        other => ChainError::Invalid(other.to_string()),
    }
}

/// What a call request runs as, against the block that would be mined next.
fn call_env(
    chain: &Chain,
    req: &TransactionRequest,
    gas: u64,
) -> Result<(TxEnv, CfgEnv), ChainError> {
    let mut cfg = cfg(chain.params.chain_id);
    cfg.disable_nonce_check = true;
    let caller = req.from.unwrap_or_default();
    let (gas_price, priority) =
        match (req.gas_price, req.max_fee_per_gas, req.max_priority_fee_per_gas) {
            (Some(price), None, None) => (price, None),
            (None, None, None) => {
                // No fee fields: the call is free, like geth and hardhat do it.
                cfg.disable_base_fee = true;
                (0, None)
            }
            (None, max, prio) => {
                let max = max.unwrap_or(u128::from(chain.next_base_fee()) * 2 + prio.unwrap_or(0));
                (max, Some(prio.unwrap_or(0)))
            }
            (Some(_), _, _) => {
                return Err(ChainError::Invalid(
                "both gasPrice and maxFeePerGas/maxPriorityFeePerGas are set: use one fee model"
                    .into(),
            ));
            }
        };
    let tx_type = if priority.is_some() {
        2
    } else if req.access_list.is_some() {
        1
    } else {
        0
    };
    let mut env = TxEnv {
        tx_type,
        caller,
        gas_limit: gas,
        gas_price,
        gas_priority_fee: priority,
        kind: req.to.unwrap_or(TxKind::Create),
        value: req.value.unwrap_or(U256::ZERO),
        data: req.input.input().cloned().unwrap_or_default(),
        nonce: chain.nonce(caller, false),
        chain_id: Some(chain.params.chain_id),
        access_list: req.access_list.clone().unwrap_or_default(),
        ..TxEnv::default()
    };
    if let Some(list) = &req.authorization_list {
        env.tx_type = 4;
        env.set_signed_authorization(list.clone());
    }
    Ok((env, cfg))
}

/// Runs `env` on top of the latest state without changing it.
fn run(
    chain: &Chain,
    env: TxEnv,
    cfg: CfgEnv,
    block: BlockEnv,
) -> Result<ExecutionResult, ChainError> {
    let mut evm =
        Context::mainnet().with_ref_db(&chain.db).with_cfg(cfg).with_block(block).build_mainnet();
    evm.transact(env).map(|r| r.result).map_err(evm_error)
}

/// Default gas for calls that name none: the most one transaction may use.
fn call_gas_cap(chain: &Chain) -> u64 {
    chain.params.gas_limit.min(TX_GAS_LIMIT_CAP)
}

/// `eth_call`: the result of running `req` on the latest state.
pub(crate) fn call(chain: &Chain, req: &TransactionRequest) -> Result<ExecutionResult, ChainError> {
    let gas = req.gas.unwrap_or_else(|| call_gas_cap(chain));
    let (env, cfg) = call_env(chain, req, gas)?;
    run(chain, env, cfg, super::mine::next_block_env(chain))
}

/// Converts an execution result into output bytes or the error the RPC reports.
pub(crate) fn into_output(result: ExecutionResult) -> Result<alloy::primitives::Bytes, ChainError> {
    match result {
        ExecutionResult::Success { output, .. } => Ok(output.into_data()),
        ExecutionResult::Revert { output, .. } => Err(ChainError::Reverted(output)),
        ExecutionResult::Halt { reason, .. } => Err(ChainError::Halted(format!("{reason:?}"))),
    }
}

/// `eth_estimateGas`: the least gas limit with which `req` succeeds (binary search, like
/// hardhat and geth).
///
/// Every try runs the whole transaction under the chain's lock, so the search starts where the
/// answer usually is: the gas spent before refunds (a limit below it runs out of gas), then
/// windows above it that widen fourfold (a call keeps 1/64 of the gas back, a value transfer
/// needs its stipend), and bisects only the window that holds the answer.
pub(crate) fn estimate_gas(chain: &Chain, req: &TransactionRequest) -> Result<u64, ChainError> {
    let block = super::mine::next_block_env(chain);
    let try_gas = |gas: u64| -> Result<ExecutionResult, ChainError> {
        let (env, cfg) = call_env(chain, req, gas)?;
        run(chain, env, cfg, block.clone())
    };
    let succeeds = |gas: u64| -> Result<bool, ChainError> {
        match try_gas(gas) {
            Ok(r) => Ok(r.is_success()),
            Err(ChainError::Invalid(_)) => Ok(false),
            Err(e) => Err(e),
        }
    };
    let mut hi = req.gas.unwrap_or_else(|| call_gas_cap(chain));
    let first = try_gas(hi)?;
    // The gas the execution consumed before refunds, or the calldata floor (EIP-7623) where it
    // is higher: no smaller limit can work. Most transactions succeed with exactly that.
    let least = first.gas().total_gas_spent().max(first.tx_gas_used());
    into_output(first)?;
    if least >= hi || succeeds(least)? {
        return Ok(least.min(hi));
    }
    // `lo` always fails, `hi` always succeeds.
    let mut lo = least;
    let mut step = 64u64;
    loop {
        let probe = least.saturating_add(step);
        if probe >= hi {
            break;
        }
        if succeeds(probe)? {
            hi = probe;
            break;
        }
        lo = probe;
        step = step.saturating_mul(4);
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if succeeds(mid)? {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(hi)
}
