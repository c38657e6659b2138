//! Helpers: start a devnet, call it, sign transactions for it.

use alloy::{
    consensus::{SignableTransaction, TxEip1559, TxEnvelope},
    eips::Encodable2718 as _,
    primitives::{Address, Bytes, TxKind, U256, hex},
    signers::{SignerSync as _, local::PrivateKeySigner},
};
use ecld_devnet::{DevnetConfig, DevnetHandle};
use serde_json::{Value, json};

/// A devnet on a free loopback port, in memory.
pub(crate) async fn devnet() -> DevnetHandle {
    ecld_devnet::spawn(DevnetConfig::ephemeral()).await.unwrap()
}

/// A JSON-RPC client over HTTP.
#[derive(Clone)]
pub(crate) struct Rpc {
    url: String,
    http: reqwest::Client,
}

impl Rpc {
    pub(crate) fn new(url: String) -> Self {
        Self { url, http: reqwest::Client::new() }
    }

    /// Posts raw bytes; returns the decoded JSON answer.
    pub(crate) async fn raw(&self, body: impl Into<String>) -> Value {
        let resp = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .body(body.into())
            .send()
            .await
            .unwrap();
        resp.json().await.unwrap()
    }

    /// Calls `method`; `Ok(result)` or `Err(error object)`.
    pub(crate) async fn try_call(&self, method: &str, params: Value) -> Result<Value, Value> {
        let v = self
            .raw(json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string())
            .await;
        match v.get("error") {
            Some(e) => Err(e.clone()),
            None => Ok(v["result"].clone()),
        }
    }

    /// Calls `method` and expects success.
    pub(crate) async fn call(&self, method: &str, params: Value) -> Value {
        match self.try_call(method, params.clone()).await {
            Ok(v) => v,
            Err(e) => panic!("{method} {params} failed: {e}"),
        }
    }

    pub(crate) async fn block_number(&self) -> u64 {
        quantity(&self.call("eth_blockNumber", json!([])).await)
    }

    pub(crate) async fn nonce(&self, who: Address) -> u64 {
        quantity(&self.call("eth_getTransactionCount", json!([who, "latest"])).await)
    }

    pub(crate) async fn receipt(&self, hash: &Value) -> Value {
        self.call("eth_getTransactionReceipt", json!([hash])).await
    }
}

/// A hex quantity as u64.
pub(crate) fn quantity(v: &Value) -> u64 {
    let s = v.as_str().unwrap_or_else(|| panic!("not a quantity: {v}"));
    u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap()
}

/// A hex quantity as U256.
pub(crate) fn big(v: &Value) -> U256 {
    v.as_str().unwrap().parse().unwrap()
}

/// Signs an EIP-1559 transaction and returns its raw encoding as 0x-hex.
pub(crate) fn sign_1559(
    signer: &PrivateKeySigner,
    nonce: u64,
    to: TxKind,
    value: U256,
    input: Bytes,
    gas_limit: u64,
) -> String {
    let tx = TxEip1559 {
        chain_id: 31337,
        nonce,
        gas_limit,
        max_fee_per_gas: 10_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to,
        value,
        access_list: Default::default(),
        input,
    };
    let sig = signer.sign_hash_sync(&tx.signature_hash()).unwrap();
    let env: TxEnvelope = tx.into_signed(sig).into();
    hex::encode_prefixed(env.encoded_2718())
}

/// Creation bytecode of a test contract from `testdata/devnet/<name>.json`.
pub(crate) fn bytecode(name: &str) -> Bytes {
    let path = format!("{}/../../testdata/devnet/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let artifact: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    artifact["bytecode"].as_str().unwrap().parse().unwrap()
}

alloy::sol! {
    contract Counter {
        uint256 public count;
        event Incremented(address indexed by, uint256 indexed newCount, uint256 amount);
        error TooBig(uint256 amount);
        function add(uint256 amount) external;
    }
    contract Token {
        mapping(address => uint256) public balanceOf;
        event Transfer(address indexed from, address indexed to, uint256 value);
        function transfer(address to, uint256 value) external returns (bool);
    }
}

/// Deploys `name` from dev account 0 with `eth_sendTransaction`; returns its address.
pub(crate) async fn deploy(rpc: &Rpc, from: Address, code: Bytes) -> Address {
    let hash = rpc.call("eth_sendTransaction", json!([{"from": from, "data": code}])).await;
    let receipt = rpc.receipt(&hash).await;
    assert_eq!(receipt["status"], json!("0x1"), "deployment failed: {receipt}");
    receipt["contractAddress"].as_str().unwrap().parse().unwrap()
}
