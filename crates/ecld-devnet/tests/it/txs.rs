//! Transactions: deployment, the three signed types, receipts, reverts, nonces, gas, fees.

use alloy::{
    consensus::{SignableTransaction, TxEip2930, TxEnvelope, TxLegacy},
    eips::{Encodable2718 as _, eip1559::BaseFeeParams},
    primitives::{Bytes, TxKind, U256, hex},
    signers::SignerSync as _,
    sol_types::{SolCall as _, SolError as _},
};
use serde_json::json;

use crate::common::{Counter, Rpc, big, bytecode, deploy, devnet, quantity, sign_1559};

#[tokio::test]
async fn deploy_call_and_receipt_with_logs() {
    let d = devnet().await;
    let rpc = Rpc::new(d.url());
    let me = d.accounts()[0].address();
    let counter = deploy(&rpc, me, bytecode("Counter")).await;
    assert!(rpc.call("eth_getCode", json!([counter, "latest"])).await.as_str().unwrap().len() > 10);
    let add = Bytes::from(Counter::addCall { amount: U256::from(5) }.abi_encode());
    let nonce = rpc.nonce(me).await;
    let raw =
        sign_1559(d.accounts()[0].signer(), nonce, TxKind::Call(counter), U256::ZERO, add, 100_000);
    let hash = rpc.call("eth_sendRawTransaction", json!([raw])).await;
    let r = rpc.receipt(&hash).await;
    assert_eq!(r["status"], json!("0x1"));
    assert_eq!(r["type"], json!("0x2"));
    assert_eq!(r["from"], json!(me));
    assert_eq!(r["to"], json!(counter));
    assert_eq!(r["blockNumber"], json!("0x2"));
    let log = &r["logs"][0];
    assert_eq!(log["address"], json!(counter));
    assert_eq!(
        log["topics"][0],
        json!(alloy::primitives::keccak256("Incremented(address,uint256,uint256)"))
    );
    assert_eq!(log["topics"][2], json!(format!("0x{:064x}", 5)));
    assert_eq!(log["logIndex"], json!("0x0"));
    assert_eq!(log["transactionHash"], hash);
    // The bloom holds the address, and the block's bloom holds it too.
    let bloom: alloy::primitives::Bloom = r["logsBloom"].as_str().unwrap().parse().unwrap();
    assert!(bloom.contains_input(alloy::primitives::BloomInput::Raw(counter.as_slice())));
    let block = rpc.call("eth_getBlockByNumber", json!(["0x2", true])).await;
    assert_eq!(block["logsBloom"], r["logsBloom"]);
    assert_eq!(block["transactions"][0]["hash"], hash);
    assert_eq!(block["transactions"][0]["from"], json!(me));
    let tx = rpc.call("eth_getTransactionByHash", json!([hash])).await;
    assert_eq!(tx["blockHash"], block["hash"]);
    assert_eq!(tx["input"].as_str().unwrap().len(), 2 + 2 * 36);
    // Reading it back.
    let count = rpc.call("eth_call", json!([{"to": counter, "data": Bytes::from(Counter::countCall {}.abi_encode())}, "latest"])).await;
    assert_eq!(big(&count), U256::from(5));
    let slot0 = rpc.call("eth_getStorageAt", json!([counter, "0x0", "latest"])).await;
    assert_eq!(big(&slot0), U256::from(5));
}

#[tokio::test]
async fn reverts_carry_code_3_and_the_revert_data() {
    let d = devnet().await;
    let rpc = Rpc::new(d.url());
    let me = d.accounts()[0].address();
    let counter = deploy(&rpc, me, bytecode("Counter")).await;
    let too_big = Bytes::from(Counter::addCall { amount: U256::from(101) }.abi_encode());
    let err = rpc
        .try_call("eth_call", json!([{"from": me, "to": counter, "data": too_big}]))
        .await
        .unwrap_err();
    assert_eq!(err["code"], json!(3));
    let expected = hex::encode_prefixed(Counter::TooBig { amount: U256::from(101) }.abi_encode());
    assert_eq!(err["data"], json!(expected));
    let zero = Bytes::from(Counter::addCall { amount: U256::ZERO }.abi_encode());
    let err = rpc
        .try_call("eth_estimateGas", json!([{"from": me, "to": counter, "data": zero}]))
        .await
        .unwrap_err();
    assert_eq!(err["code"], json!(3));
    assert!(err["message"].as_str().unwrap().contains("zero amount"), "{err}");
    // Mined anyway when sent with a gas limit: status 0, nonce used.
    let before = rpc.nonce(me).await;
    let hash = rpc
        .call(
            "eth_sendTransaction",
            json!([{"from": me, "to": counter, "data": zero, "gas": "0x20000"}]),
        )
        .await;
    assert_eq!(rpc.receipt(&hash).await["status"], json!("0x0"));
    assert_eq!(rpc.nonce(me).await, before + 1);
}

#[tokio::test]
async fn legacy_2930_and_1559_transfers_cost_21000_gas() {
    let d = devnet().await;
    let rpc = Rpc::new(d.url());
    let signer = d.accounts()[2].signer();
    let to = d.accounts()[3].address();
    let value = U256::from(123_456_789u64);
    let legacy = TxLegacy {
        chain_id: Some(31337),
        nonce: 0,
        gas_price: 3_000_000_000,
        gas_limit: 21_000,
        to: TxKind::Call(to),
        value,
        input: Bytes::new(),
    };
    let sig = signer.sign_hash_sync(&legacy.signature_hash()).unwrap();
    let legacy: TxEnvelope = legacy.into_signed(sig).into();
    let al = TxEip2930 {
        chain_id: 31337,
        nonce: 1,
        gas_price: 3_000_000_000,
        gas_limit: 21_000,
        to: TxKind::Call(to),
        value,
        access_list: Default::default(),
        input: Bytes::new(),
    };
    let sig = signer.sign_hash_sync(&al.signature_hash()).unwrap();
    let al: TxEnvelope = al.into_signed(sig).into();
    let raws = [
        hex::encode_prefixed(legacy.encoded_2718()),
        hex::encode_prefixed(al.encoded_2718()),
        sign_1559(signer, 2, TxKind::Call(to), value, Bytes::new(), 21_000),
    ];
    for (i, raw) in raws.iter().enumerate() {
        let hash = rpc.call("eth_sendRawTransaction", json!([raw])).await;
        let r = rpc.receipt(&hash).await;
        assert_eq!(r["type"], json!(format!("0x{i}")));
        assert_eq!(r["gasUsed"], json!("0x5208"));
        assert_eq!(r["status"], json!("0x1"));
    }
    let balance = big(&rpc.call("eth_getBalance", json!([to, "latest"])).await);
    assert_eq!(
        balance,
        U256::from(10_000u64) * U256::from(10u64).pow(U256::from(18)) + value * U256::from(3)
    );
}

#[tokio::test]
async fn base_fee_follows_eip1559_and_fees_are_charged() {
    let d = devnet().await;
    let rpc = Rpc::new(d.url());
    let from = d.accounts()[4].address();
    let before = big(&rpc.call("eth_getBalance", json!([from, "latest"])).await);
    let hash = rpc
        .call(
            "eth_sendTransaction",
            json!([{"from": from, "to": d.accounts()[5].address(), "value": "0x1"}]),
        )
        .await;
    let r = rpc.receipt(&hash).await;
    let b1 = rpc.call("eth_getBlockByNumber", json!(["0x1", false])).await;
    let base1 = quantity(&b1["baseFeePerGas"]);
    assert_eq!(base1, BaseFeeParams::ethereum().next_block_base_fee(0, 60_000_000, 1_000_000_000));
    assert_eq!(quantity(&r["effectiveGasPrice"]), base1 + 1_000_000_000);
    let after = big(&rpc.call("eth_getBalance", json!([from, "latest"])).await);
    assert_eq!(before - after, U256::from(1 + 21_000 * (base1 + 1_000_000_000)));
    rpc.call("evm_mine", json!([])).await;
    let b2 = rpc.call("eth_getBlockByNumber", json!(["0x2", false])).await;
    assert_eq!(
        quantity(&b2["baseFeePerGas"]),
        BaseFeeParams::ethereum().next_block_base_fee(21_000, 60_000_000, base1)
    );
    let history = rpc.call("eth_feeHistory", json!(["0x2", "latest", [50.0]])).await;
    assert_eq!(history["oldestBlock"], json!("0x1"));
    assert_eq!(history["baseFeePerGas"].as_array().unwrap().len(), 3);
    assert_eq!(history["reward"][0][0], json!("0x3b9aca00"));
}

#[tokio::test]
async fn nonce_errors_and_duplicates_are_refused_and_change_nothing() {
    let d = devnet().await;
    let rpc = Rpc::new(d.url());
    let signer = d.accounts()[6].signer();
    let to = TxKind::Call(d.accounts()[7].address());
    let raw = sign_1559(signer, 0, to, U256::from(1), Bytes::new(), 21_000);
    rpc.call("eth_sendRawTransaction", json!([raw])).await;
    let again = rpc.try_call("eth_sendRawTransaction", json!([raw])).await.unwrap_err();
    assert_eq!(again["code"], json!(-32000));
    let stale = sign_1559(signer, 0, to, U256::from(2), Bytes::new(), 21_000);
    let err = rpc.try_call("eth_sendRawTransaction", json!([stale])).await.unwrap_err();
    assert_eq!(err["code"], json!(-32000));
    assert!(err["message"].as_str().unwrap().contains("nonce too low"), "{err}");
    let low_gas = sign_1559(signer, 1, to, U256::from(2), Bytes::new(), 20_000);
    assert_eq!(
        rpc.try_call("eth_sendRawTransaction", json!([low_gas])).await.unwrap_err()["code"],
        json!(-32000)
    );
    assert_eq!(rpc.block_number().await, 1);
    assert_eq!(rpc.nonce(signer.address()).await, 1);
}

#[tokio::test]
async fn a_nonce_gap_waits_until_it_closes() {
    let d = devnet().await;
    let rpc = Rpc::new(d.url());
    let signer = d.accounts()[8].signer();
    let to = TxKind::Call(d.accounts()[9].address());
    let later = rpc
        .call(
            "eth_sendRawTransaction",
            json!([sign_1559(signer, 1, to, U256::from(1), Bytes::new(), 21_000)]),
        )
        .await;
    assert_eq!(rpc.receipt(&later).await, json!(null));
    assert_eq!(rpc.block_number().await, 0);
    let pending_tx = rpc.call("eth_getTransactionByHash", json!([later])).await;
    assert_eq!(pending_tx["blockHash"], json!(null));
    let first = rpc
        .call(
            "eth_sendRawTransaction",
            json!([sign_1559(signer, 0, to, U256::from(1), Bytes::new(), 21_000)]),
        )
        .await;
    assert_eq!(rpc.receipt(&first).await["blockNumber"], json!("0x1"));
    assert_eq!(rpc.receipt(&later).await["blockNumber"], json!("0x2"));
}

#[tokio::test]
async fn estimate_gas_is_the_least_limit_that_works() {
    let d = devnet().await;
    let rpc = Rpc::new(d.url());
    let me = d.accounts()[0].address();
    let counter = deploy(&rpc, me, bytecode("Counter")).await;
    let add = Bytes::from(Counter::addCall { amount: U256::from(7) }.abi_encode());
    let est = quantity(
        &rpc.call("eth_estimateGas", json!([{"from": me, "to": counter, "data": add}])).await,
    );
    assert!(est > 21_000 && est < 100_000, "{est}");
    let snapshot = rpc.call("evm_snapshot", json!([])).await;
    let low = rpc
        .call(
            "eth_sendTransaction",
            json!([{"from": me, "to": counter, "data": add, "gas": format!("{:#x}", est - 1)}]),
        )
        .await;
    assert_eq!(rpc.receipt(&low).await["status"], json!("0x0"));
    assert_eq!(rpc.call("evm_revert", json!([snapshot])).await, json!(true));
    let ok = rpc
        .call(
            "eth_sendTransaction",
            json!([{"from": me, "to": counter, "data": add, "gas": format!("{:#x}", est)}]),
        )
        .await;
    assert_eq!(rpc.receipt(&ok).await["status"], json!("0x1"));
}

#[tokio::test]
async fn concurrent_sends_from_one_account_get_distinct_nonces() {
    let d = devnet().await;
    let rpc = Rpc::new(d.url());
    let me = d.accounts()[10].address();
    let to = d.accounts()[11].address();
    let sends = (0..16).map(|_| {
        let rpc = rpc.clone();
        async move {
            rpc.call("eth_sendTransaction", json!([{"from": me, "to": to, "value": "0x1"}])).await
        }
    });
    let hashes = futures::future::join_all(sends).await;
    for h in &hashes {
        assert_eq!(rpc.receipt(h).await["status"], json!("0x1"));
    }
    assert_eq!(rpc.nonce(me).await, 16);
    assert_eq!(rpc.block_number().await, 16);
}

#[tokio::test]
async fn send_transaction_from_an_unknown_account_is_refused() {
    let d = devnet().await;
    let rpc = Rpc::new(d.url());
    let err = rpc
        .try_call("eth_sendTransaction", json!([{"from": "0x000000000000000000000000000000000000dEaD", "to": d.accounts()[0].address()}]))
        .await
        .unwrap_err();
    assert_eq!(err["code"], json!(-32000));
    assert!(err["message"].as_str().unwrap().contains("unknown account"));
}
