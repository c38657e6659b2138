//! `eth_getLogs` and installed filters.

use alloy::{
    primitives::{Address, B256, Bytes, U256, keccak256},
    sol_types::{SolCall as _, SolValue as _},
};
use serde_json::{Value, json};

use crate::common::{Rpc, Token, bytecode, deploy, devnet};

fn topic(a: Address) -> B256 {
    B256::left_padding_from(a.as_slice())
}

async fn transfer(rpc: &Rpc, from: Address, token: Address, to: Address, value: u64) -> Value {
    let data = Bytes::from(Token::transferCall { to, value: U256::from(value) }.abi_encode());
    let hash =
        rpc.call("eth_sendTransaction", json!([{"from": from, "to": token, "data": data}])).await;
    rpc.receipt(&hash).await
}

#[tokio::test]
async fn get_logs_filters_by_address_topics_range_and_hash() {
    let d = devnet().await;
    let rpc = Rpc::new(d.url());
    let a = d.accounts()[0].address();
    let b = d.accounts()[1].address();
    let c = d.accounts()[2].address();
    let mut code = bytecode("Token").to_vec();
    code.extend_from_slice(&U256::from(1_000_000u64).abi_encode());
    let token = deploy(&rpc, a, code.into()).await; // block 1: mint log
    let other = deploy(&rpc, a, {
        let mut c = bytecode("Token").to_vec();
        c.extend_from_slice(&U256::from(5u64).abi_encode());
        c.into()
    })
    .await; // block 2
    transfer(&rpc, a, token, b, 10).await; // block 3
    transfer(&rpc, a, token, c, 20).await; // block 4
    let r5 = transfer(&rpc, a, other, b, 1).await; // block 5
    let sig = keccak256("Transfer(address,address,uint256)");

    let all = rpc.call("eth_getLogs", json!([{"fromBlock": "0x0", "toBlock": "latest"}])).await;
    assert_eq!(all.as_array().unwrap().len(), 5);
    let of_token =
        rpc.call("eth_getLogs", json!([{"fromBlock": "earliest", "address": token}])).await;
    assert_eq!(of_token.as_array().unwrap().len(), 3);
    let both =
        rpc.call("eth_getLogs", json!([{"fromBlock": "0x0", "address": [token, other]}])).await;
    assert_eq!(both.as_array().unwrap().len(), 5);
    // Topic position 2 (to) is b OR c, any sender.
    let to_b_or_c = rpc
        .call(
            "eth_getLogs",
            json!([{"fromBlock": "0x0", "topics": [sig, null, [topic(b), topic(c)]]}]),
        )
        .await;
    assert_eq!(to_b_or_c.as_array().unwrap().len(), 3);
    let to_c = rpc
        .call(
            "eth_getLogs",
            json!([{"fromBlock": "0x0", "address": token, "topics": [null, null, topic(c)]}]),
        )
        .await;
    assert_eq!(to_c.as_array().unwrap().len(), 1);
    assert_eq!(to_c[0]["blockNumber"], json!("0x4"));
    let range = rpc.call("eth_getLogs", json!([{"fromBlock": "0x3", "toBlock": "0x4"}])).await;
    assert_eq!(range.as_array().unwrap().len(), 2);
    let at_hash = rpc.call("eth_getLogs", json!([{"blockHash": r5["blockHash"]}])).await;
    assert_eq!(at_hash.as_array().unwrap().len(), 1);
    assert_eq!(at_hash[0]["address"], json!(other));
    let nothing = rpc
        .call("eth_getLogs", json!([{"fromBlock": "0x0", "topics": [keccak256("Nope()")]}]))
        .await;
    assert_eq!(nothing, json!([]));
    // Malformed filters are refused with invalid params.
    let backwards = rpc
        .try_call("eth_getLogs", json!([{"fromBlock": "0x4", "toBlock": "0x2"}]))
        .await
        .unwrap_err();
    assert_eq!(backwards["code"], json!(-32602));
    let five_topics = rpc
        .try_call("eth_getLogs", json!([{"topics": [sig, sig, sig, sig, sig]}]))
        .await
        .unwrap_err();
    assert_eq!(five_topics["code"], json!(-32602));
}

#[tokio::test]
async fn installed_filters_report_only_new_changes() {
    let d = devnet().await;
    let rpc = Rpc::new(d.url());
    let a = d.accounts()[0].address();
    let mut code = bytecode("Token").to_vec();
    code.extend_from_slice(&U256::from(1_000u64).abi_encode());
    let token = deploy(&rpc, a, code.into()).await;
    let logs = rpc.call("eth_newFilter", json!([{"address": token, "fromBlock": "0x0"}])).await;
    let blocks = rpc.call("eth_newBlockFilter", json!([])).await;
    transfer(&rpc, a, token, d.accounts()[1].address(), 1).await;
    transfer(&rpc, a, token, d.accounts()[1].address(), 2).await;
    assert_eq!(rpc.call("eth_getFilterChanges", json!([logs])).await.as_array().unwrap().len(), 2);
    assert_eq!(rpc.call("eth_getFilterChanges", json!([logs])).await, json!([]));
    assert_eq!(
        rpc.call("eth_getFilterChanges", json!([blocks])).await.as_array().unwrap().len(),
        2
    );
    assert_eq!(rpc.call("eth_getFilterLogs", json!([logs])).await.as_array().unwrap().len(), 3);
    assert_eq!(rpc.call("eth_uninstallFilter", json!([logs])).await, json!(true));
    assert_eq!(
        rpc.try_call("eth_getFilterChanges", json!([logs])).await.unwrap_err()["code"],
        json!(-32000)
    );
}

#[tokio::test]
async fn a_filter_whose_range_has_passed_reports_nothing_instead_of_failing() {
    let d = devnet().await;
    let rpc = Rpc::new(d.url());
    let id = rpc.call("eth_newFilter", json!([{"fromBlock": "0x0", "toBlock": "0x1"}])).await;
    for _ in 0..3 {
        rpc.call("evm_mine", json!([])).await;
    }
    assert_eq!(rpc.call("eth_getFilterChanges", json!([id])).await, json!([]));
    rpc.call("evm_mine", json!([])).await;
    assert_eq!(rpc.call("eth_getFilterChanges", json!([id])).await, json!([]));
}
