//! JSON-RPC 2.0: the envelope (single and batch requests), parameter parsing at the edge, and
//! the method table. Methods live in [`eth`] (chain queries and transactions) and [`dev`]
//! (`evm_*` controls and filters).

pub(crate) mod convert;
pub(crate) mod dev;
pub(crate) mod error;
pub(crate) mod eth;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

pub(crate) use error::RpcError;
use error::{INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR};

use crate::node::Node;

/// Most requests one batch may carry.
pub(crate) const MAX_BATCH: usize = 1000;

/// A request that passed envelope checks.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) id: Option<Value>,
    pub(crate) method: String,
    pub(crate) params: Params,
}

/// Positional parameters.
#[derive(Debug, Default)]
pub(crate) struct Params(Vec<Value>);

impl Params {
    /// Parameter `i` (required), as `T`; `what` names it in the error.
    pub(crate) fn get<T: DeserializeOwned>(&self, i: usize, what: &str) -> Result<T, RpcError> {
        match self.0.get(i) {
            None | Some(Value::Null) => {
                Err(RpcError::invalid_params(format!("missing parameter {i} ({what})")))
            }
            Some(v) => serde_json::from_value(v.clone())
                .map_err(|e| RpcError::invalid_params(format!("parameter {i} ({what}): {e}"))),
        }
    }

    /// Parameter `i` if present and not null.
    pub(crate) fn opt<T: DeserializeOwned>(
        &self,
        i: usize,
        what: &str,
    ) -> Result<Option<T>, RpcError> {
        match self.0.get(i) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => self.get(i, what).map(Some),
        }
    }

    /// Fails if more than `n` parameters were given.
    pub(crate) fn at_most(&self, n: usize) -> Result<(), RpcError> {
        if self.0.len() > n {
            return Err(RpcError::invalid_params(format!(
                "expected at most {n} parameters, got {}",
                self.0.len()
            )));
        }
        Ok(())
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

/// The error of a bad envelope: the request's id (if it had one) and the error to answer.
pub(crate) type EnvelopeError = Box<(Option<Value>, RpcError)>;

/// Checks the envelope of one request object.
pub(crate) fn parse_request(v: Value) -> Result<Request, EnvelopeError> {
    let Value::Object(mut obj) = v else {
        return Err(Box::new((
            None,
            RpcError::new(INVALID_REQUEST, "invalid request: expected a JSON object"),
        )));
    };
    let id = obj.remove("id");
    if id
        .as_ref()
        .is_some_and(|id| !matches!(id, Value::Null | Value::Number(_) | Value::String(_)))
    {
        return Err(Box::new((
            None,
            RpcError::new(
                INVALID_REQUEST,
                "invalid request: id must be a number, a string or null",
            ),
        )));
    }
    let fail = |msg: &str| {
        Err(Box::new((
            id.clone(),
            RpcError::new(INVALID_REQUEST, format!("invalid request: {msg}")),
        )))
    };
    if obj.get("jsonrpc") != Some(&Value::String("2.0".into())) {
        return fail("\"jsonrpc\" must be \"2.0\"");
    }
    let Some(Value::String(method)) = obj.remove("method") else {
        return fail("\"method\" must be a string");
    };
    let params = match obj.remove("params") {
        None | Some(Value::Null) => Params::default(),
        Some(Value::Array(a)) => Params(a),
        Some(_) => return fail("\"params\" must be an array"),
    };
    Ok(Request { id, method, params })
}

fn response(id: Option<Value>, result: Result<Value, RpcError>) -> Value {
    let mut obj = Map::new();
    obj.insert("jsonrpc".into(), Value::String("2.0".into()));
    obj.insert("id".into(), id.unwrap_or(Value::Null));
    match result {
        Ok(v) => obj.insert("result".into(), v),
        Err(e) => obj.insert("error".into(), serde_json::to_value(e).unwrap_or(Value::Null)),
    };
    Value::Object(obj)
}

/// Answers one request value; `None` for a notification (no `id`).
pub(crate) fn handle_value(node: &Node, v: Value) -> Option<Value> {
    match parse_request(v) {
        Err(bad) => {
            let (id, e) = *bad;
            Some(response(id, Err(e)))
        }
        Ok(req) => {
            let notification = req.id.is_none();
            let result = dispatch(node, &req.method, &req.params);
            if let Err(e) = &result {
                tracing::debug!(target: "ecld_devnet", method = %req.method, code = e.code, msg = %e.message, "request failed");
            }
            (!notification).then(|| response(req.id, result))
        }
    }
}

/// Answers an HTTP body: a request or a batch. `None` when nothing is to be sent back
/// (notifications only).
pub(crate) fn handle_body(node: &Node, body: &[u8]) -> Option<Value> {
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return Some(response(
                None,
                Err(RpcError::new(PARSE_ERROR, format!("parse error: {e}"))),
            ));
        }
    };
    match v {
        Value::Array(items) if items.is_empty() => Some(response(
            None,
            Err(RpcError::new(INVALID_REQUEST, "invalid request: empty batch")),
        )),
        Value::Array(items) if items.len() > MAX_BATCH => Some(response(
            None,
            Err(RpcError::new(
                INVALID_REQUEST,
                format!("invalid request: batch larger than {MAX_BATCH}"),
            )),
        )),
        Value::Array(items) => {
            let out: Vec<Value> = items.into_iter().filter_map(|v| handle_value(node, v)).collect();
            (!out.is_empty()).then_some(Value::Array(out))
        }
        other => handle_value(node, other),
    }
}

/// The method table.
pub(crate) fn dispatch(node: &Node, method: &str, p: &Params) -> Result<Value, RpcError> {
    match method {
        "web3_clientVersion" => {
            p.at_most(0)?;
            Ok(json!(concat!("ecld-devnet/v", env!("CARGO_PKG_VERSION"))))
        }
        "web3_sha3" => eth::sha3(p),
        "net_version" => {
            p.at_most(0)?;
            Ok(json!(node.lock().chain.params.chain_id.to_string()))
        }
        "net_listening" => Ok(json!(true)),
        "net_peerCount" => Ok(json!("0x0")),
        "eth_chainId" => {
            p.at_most(0)?;
            Ok(json!(format!("{:#x}", node.lock().chain.params.chain_id)))
        }
        "eth_syncing" | "eth_mining" => Ok(json!(false)),
        "eth_hashrate" => Ok(json!("0x0")),
        "eth_coinbase" => Ok(json!(crate::chain::COINBASE)),
        "eth_accounts" => {
            p.at_most(0)?;
            Ok(json!(node.accounts.iter().map(|a| a.address()).collect::<Vec<_>>()))
        }
        "eth_blockNumber" => eth::block_number(node, p),
        "eth_getBalance" => eth::get_balance(node, p),
        "eth_getTransactionCount" => eth::get_transaction_count(node, p),
        "eth_getCode" => eth::get_code(node, p),
        "eth_getStorageAt" => eth::get_storage_at(node, p),
        "eth_call" => eth::call(node, p),
        "eth_estimateGas" => eth::estimate_gas(node, p),
        "eth_sendRawTransaction" => eth::send_raw_transaction(node, p),
        "eth_sendTransaction" => eth::send_transaction(node, p),
        "eth_getTransactionReceipt" => eth::get_transaction_receipt(node, p),
        "eth_getTransactionByHash" => eth::get_transaction_by_hash(node, p),
        "eth_getTransactionByBlockNumberAndIndex" | "eth_getTransactionByBlockHashAndIndex" => {
            eth::get_transaction_by_block_and_index(node, p)
        }
        "eth_getBlockByNumber" | "eth_getBlockByHash" => eth::get_block(node, p),
        "eth_getBlockTransactionCountByNumber" | "eth_getBlockTransactionCountByHash" => {
            eth::get_block_transaction_count(node, p)
        }
        "eth_getUncleCountByBlockNumber" | "eth_getUncleCountByBlockHash" => Ok(json!("0x0")),
        "eth_getLogs" => eth::get_logs(node, p),
        "eth_feeHistory" => eth::fee_history(node, p),
        "eth_gasPrice" => eth::gas_price(node, p),
        "eth_maxPriorityFeePerGas" => {
            Ok(json!(format!("{:#x}", crate::chain::DEFAULT_PRIORITY_FEE)))
        }
        "eth_blobBaseFee" => Ok(json!("0x1")),
        "eth_newFilter" => dev::new_filter(node, p),
        "eth_newBlockFilter" => dev::new_block_filter(node, p),
        "eth_newPendingTransactionFilter" => dev::new_pending_transaction_filter(node, p),
        "eth_getFilterChanges" => dev::get_filter_changes(node, p),
        "eth_getFilterLogs" => dev::get_filter_logs(node, p),
        "eth_uninstallFilter" => dev::uninstall_filter(node, p),
        "evm_mine" => dev::mine(node, p),
        "evm_increaseTime" => dev::increase_time(node, p),
        "evm_setNextBlockTimestamp" => dev::set_next_block_timestamp(node, p),
        "evm_snapshot" => dev::snapshot(node, p),
        "evm_revert" => dev::revert(node, p),
        "evm_setAutomine" => dev::set_automine(node, p),
        "eth_subscribe" | "eth_unsubscribe" => Err(RpcError::new(
            METHOD_NOT_FOUND,
            format!(
                "{method} needs a WebSocket connection: connect to the ws:// URL of the devnet"
            ),
        )),
        _ => Err(RpcError::new(METHOD_NOT_FOUND, format!("method not found: {method}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> Node {
        Node::open(&crate::DevnetConfig::ephemeral()).unwrap()
    }

    fn call(node: &Node, body: &str) -> Value {
        handle_body(node, body.as_bytes()).unwrap()
    }

    #[test]
    fn envelope_errors_have_their_codes() {
        let n = node();
        assert_eq!(call(&n, "{").pointer("/error/code"), Some(&json!(-32700)));
        assert_eq!(call(&n, "[]").pointer("/error/code"), Some(&json!(-32600)));
        assert_eq!(call(&n, "5").pointer("/error/code"), Some(&json!(-32600)));
        assert_eq!(
            call(&n, r#"{"jsonrpc":"1.0","id":1,"method":"eth_chainId"}"#).pointer("/error/code"),
            Some(&json!(-32600))
        );
        assert_eq!(
            call(&n, r#"{"jsonrpc":"2.0","id":1,"method":"eth_nope"}"#).pointer("/error/code"),
            Some(&json!(-32601))
        );
        assert_eq!(
            call(&n, r#"{"jsonrpc":"2.0","id":1,"method":"eth_getBalance","params":["0x12"]}"#)
                .pointer("/error/code"),
            Some(&json!(-32602))
        );
        assert_eq!(
            call(&n, r#"{"jsonrpc":"2.0","id":7,"method":"eth_chainId"}"#),
            json!({"jsonrpc":"2.0","id":7,"result":"0x7a69"})
        );
    }

    #[test]
    fn batches_answer_each_request_and_skip_notifications() {
        let n = node();
        let out = call(
            &n,
            r#"[{"jsonrpc":"2.0","id":1,"method":"eth_chainId"},{"jsonrpc":"2.0","method":"eth_chainId"},{"jsonrpc":"2.0","id":"b","method":"net_version"},{"foo":1}]"#,
        );
        let arr = out.as_array().unwrap();
        assert_eq!(arr.len(), 3);
        assert_eq!(arr[0]["result"], json!("0x7a69"));
        assert_eq!(arr[1]["result"], json!("31337"));
        assert_eq!(arr[1]["id"], json!("b"));
        assert_eq!(arr[2]["error"]["code"], json!(-32600));
        assert!(handle_body(&n, br#"{"jsonrpc":"2.0","method":"eth_chainId"}"#).is_none());
    }
}
