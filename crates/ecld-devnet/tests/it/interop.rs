//! Real clients nobody here wrote drive the devnet: Python `web3` and npm `ethers`
//! (`tools/web3_smoke.py`, `tools/ethers_smoke.mjs`). Each script deploys a contract, sends
//! signed EIP-1559 transactions, waits for receipts and reads logs; the test then checks the
//! chain state the script left with its own JSON-RPC calls.

use std::path::PathBuf;

use alloy::{
    primitives::{Address, Bytes, U256},
    sol_types::SolCall as _,
};
use ecld_testkit::{peers, runs};
use serde_json::{Value, json};

use crate::common::{Counter, Rpc, big, devnet};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Whether `python3` can import `module` (web3.py and eth-account are pip packages).
fn python_imports(module: &str) -> bool {
    runs("python3", &["-c", &format!("import {module}")])
}

/// Runs a peer and returns the JSON of its last line of output.
async fn run_peer(program: &str, args: &[String]) -> Value {
    let out = tokio::process::Command::new(program)
        .args(args)
        .current_dir(root())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().to_string();
    serde_json::from_str(&line).unwrap()
}

#[tokio::test]
async fn python_web3_deploys_calls_and_reads_logs() {
    let test = "ecld-devnet::it interop::python_web3_deploys_calls_and_reads_logs";
    if !peers::WEB3.available_for(test, python_imports("web3"))
        || !peers::ETH_ACCOUNT.available_for(test, python_imports("eth_account"))
    {
        return;
    }
    let d = devnet().await;
    let args = vec![
        "tools/web3_smoke.py".into(),
        d.url(),
        d.private_keys()[0].clone(),
        "testdata/devnet".into(),
    ];
    let report = run_peer("python3", &args).await;
    assert!(report["client"].as_str().unwrap().starts_with("web3.py"));
    let rpc = Rpc::new(d.url());
    let counter: Address = report["counter"].as_str().unwrap().parse().unwrap();
    let count = rpc
        .call(
            "eth_call",
            json!([{"to": counter, "data": Bytes::from(Counter::countCall {}.abi_encode())}]),
        )
        .await;
    assert_eq!(big(&count), U256::from(12));
    assert_eq!(rpc.block_number().await, 4);
    let logs = rpc.call("eth_getLogs", json!([{"fromBlock": "0x0", "address": counter}])).await;
    assert_eq!(logs.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn npm_ethers_deploys_transfers_and_subscribes() {
    let test = "ecld-devnet::it interop::npm_ethers_deploys_transfers_and_subscribes";
    let ethers = root().join("tools/node_modules/ethers/package.json");
    if !peers::NODE.available_for(test, runs("node", &["--version"]))
        || !peers::ETHERS.available_for(test, ethers.is_file())
    {
        return;
    }
    let d = devnet().await;
    let args = vec![
        "tools/ethers_smoke.mjs".into(),
        d.url(),
        d.ws_url(),
        d.private_keys()[1].clone(),
        "testdata/devnet".into(),
    ];
    let report = run_peer("node", &args).await;
    assert!(report["client"].as_str().unwrap().starts_with("ethers 6"));
    let rpc = Rpc::new(d.url());
    let token: Address = report["token"].as_str().unwrap().parse().unwrap();
    let transfers = rpc.call("eth_getLogs", json!([{"fromBlock": "0x0", "address": token}])).await;
    assert_eq!(transfers.as_array().unwrap().len(), 2, "mint and one transfer");
    assert_eq!(rpc.block_number().await, 3);
}
