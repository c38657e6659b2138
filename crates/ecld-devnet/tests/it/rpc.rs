//! Envelope, identity, accounts and malformed input.

use alloy::primitives::{U256, address};
use serde_json::json;

use crate::common::{Rpc, big, devnet, quantity};

#[tokio::test]
async fn dev_accounts_are_the_well_known_ones_and_funded() {
    let d = devnet().await;
    let rpc = Rpc::new(d.url());
    // Key 0 of the test mnemonic is the one every Ethereum tutorial prints.
    assert_eq!(d.accounts()[0].address(), address!("f39Fd6e51aad88F6F4ce6aB8827279cffFb92266"));
    assert_eq!(
        d.private_keys()[0],
        "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
    );
    assert_eq!(d.accounts()[1].address(), address!("70997970C51812dc3A010C7d01b50e0d17dc79C8"));
    let accounts = rpc.call("eth_accounts", json!([])).await;
    assert_eq!(accounts.as_array().unwrap().len(), 20);
    assert_eq!(accounts[0], json!("0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"));
    let balance = big(&rpc.call("eth_getBalance", json!([accounts[19], "latest"])).await);
    assert_eq!(balance, U256::from(10_000u64) * U256::from(10u64).pow(U256::from(18)));
    assert!(!format!("{:?}", d.accounts()[0]).contains("ac0974"), "Debug must not show the key");
    d.shutdown().await.unwrap();
}

#[tokio::test]
async fn identity_methods_answer_like_hardhat() {
    let d = devnet().await;
    let rpc = Rpc::new(d.url());
    assert_eq!(rpc.call("eth_chainId", json!([])).await, json!("0x7a69"));
    assert_eq!(rpc.call("net_version", json!([])).await, json!("31337"));
    assert_eq!(rpc.block_number().await, 0);
    assert!(
        rpc.call("web3_clientVersion", json!([]))
            .await
            .as_str()
            .unwrap()
            .starts_with("ecld-devnet/")
    );
    let genesis = rpc.call("eth_getBlockByNumber", json!(["0x0", false])).await;
    assert_eq!(genesis["baseFeePerGas"], json!("0x3b9aca00"));
    assert_eq!(genesis["gasLimit"], json!("0x3938700"));
    let by_hash = rpc.call("eth_getBlockByHash", json!([genesis["hash"], true])).await;
    assert_eq!(by_hash["number"], json!("0x0"));
    assert_eq!(rpc.call("eth_getBlockByNumber", json!(["0x5", false])).await, json!(null));
    assert_eq!(rpc.call("eth_maxPriorityFeePerGas", json!([])).await, json!("0x3b9aca00"));
    // Next base fee after an empty genesis block is 7/8 gwei; gas price adds the 1 gwei tip.
    assert_eq!(quantity(&rpc.call("eth_gasPrice", json!([])).await), 875_000_000 + 1_000_000_000);
}

#[tokio::test]
async fn malformed_requests_get_specific_codes_over_http() {
    let d = devnet().await;
    let rpc = Rpc::new(d.url());
    assert_eq!(rpc.raw("{not json").await["error"]["code"], json!(-32700));
    assert_eq!(rpc.raw("[]").await["error"]["code"], json!(-32600));
    assert_eq!(
        rpc.raw(r#"{"jsonrpc":"2.0","id":1,"method":7}"#).await["error"]["code"],
        json!(-32600)
    );
    assert_eq!(rpc.try_call("eth_frobnicate", json!([])).await.unwrap_err()["code"], json!(-32601));
    let bad_address =
        rpc.try_call("eth_getBalance", json!(["0x1234", "latest"])).await.unwrap_err();
    assert_eq!(bad_address["code"], json!(-32602));
    let bad_tag = rpc
        .try_call("eth_getBalance", json!([d.accounts()[0].address(), "lastest"]))
        .await
        .unwrap_err();
    assert_eq!(bad_tag["code"], json!(-32602));
    let too_many = rpc.try_call("eth_blockNumber", json!([1])).await.unwrap_err();
    assert_eq!(too_many["code"], json!(-32602));
    let garbage_tx = rpc.try_call("eth_sendRawTransaction", json!(["0x02f8"])).await.unwrap_err();
    assert_eq!(garbage_tx["code"], json!(-32602));
    let not_hex = rpc.try_call("eth_sendRawTransaction", json!(["hello"])).await.unwrap_err();
    assert_eq!(not_hex["code"], json!(-32602));
    // None of it changed the chain.
    assert_eq!(rpc.block_number().await, 0);
    // A batch mixes answers and errors in order.
    let batch = rpc
        .raw(r#"[{"jsonrpc":"2.0","id":1,"method":"eth_chainId"},{"jsonrpc":"2.0","id":2,"method":"nope"}]"#)
        .await;
    assert_eq!(batch[0]["result"], json!("0x7a69"));
    assert_eq!(batch[1]["error"]["code"], json!(-32601));
}

#[tokio::test]
async fn historical_state_is_refused_not_faked() {
    let d = devnet().await;
    let rpc = Rpc::new(d.url());
    rpc.call("evm_mine", json!([])).await;
    let who = d.accounts()[0].address();
    let err = rpc.try_call("eth_getBalance", json!([who, "0x0"])).await.unwrap_err();
    assert_eq!(err["code"], json!(-32000));
    assert!(rpc.try_call("eth_getBalance", json!([who, "0x1"])).await.is_ok());
    assert!(rpc.try_call("eth_getBalance", json!([who, "pending"])).await.is_ok());
}
