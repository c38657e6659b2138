//! `devnet-bench`: ecld-devnet against `hardhat node` (npm hardhat 2.29.1) on the same
//! transaction mix, side by side in one run; writes the `## Devnet` section of
//! docs/BENCHMARKS.md.
//!
//! Workload per run: `senders` dev accounts, each sending `txs / senders` pre-signed EIP-1559
//! transactions in turn (alternately a plain ether transfer and an ERC-20-like token
//! transfer), each followed by `eth_getTransactionReceipt` and an `eth_call` of
//! `balanceOf`. Senders run concurrently. Throughput = transactions / wall time.
//!
//! Usage: `cargo run -p ecld-devnet --bin devnet-bench -- [TXS] [RUNS] [SENDERS]`
//! (defaults 400, 5, 4), from the repository root (needs `tools/node_modules`).

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use alloy::{
    consensus::{SignableTransaction as _, TxEip1559, TxEnvelope},
    eips::Encodable2718 as _,
    primitives::{Address, Bytes, TxKind, U256, hex},
    signers::{SignerSync as _, local::PrivateKeySigner},
    sol_types::{SolCall as _, SolValue as _},
};
use anyhow::{Context as _, bail};
use serde_json::{Value, json};

alloy::sol! {
    function transfer(address to, uint256 value) external returns (bool);
    function balanceOf(address who) external view returns (uint256);
}

/// A JSON-RPC endpoint under test.
struct Target {
    name: &'static str,
    url: String,
    http: reqwest::Client,
}

impl Target {
    async fn call(&self, method: &str, params: Value) -> anyhow::Result<Value> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let v: Value = self.http.post(&self.url).json(&body).send().await?.json().await?;
        if let Some(e) = v.get("error") {
            bail!("{} {method}: {e}", self.name);
        }
        Ok(v["result"].clone())
    }

    async fn nonce(&self, who: Address) -> anyhow::Result<u64> {
        let v = self.call("eth_getTransactionCount", json!([who, "latest"])).await?;
        Ok(u64::from_str_radix(v.as_str().unwrap_or("0x0").trim_start_matches("0x"), 16)?)
    }

    /// Sends a raw transaction and waits for its receipt; returns gas used.
    async fn send_and_wait(&self, raw: &str) -> anyhow::Result<u64> {
        let hash = self.call("eth_sendRawTransaction", json!([raw])).await?;
        loop {
            let r = self.call("eth_getTransactionReceipt", json!([hash])).await?;
            if !r.is_null() {
                if r["status"] != json!("0x1") {
                    bail!("{}: transaction failed: {r}", self.name);
                }
                let g = r["gasUsed"].as_str().unwrap_or("0x0").trim_start_matches("0x");
                return Ok(u64::from_str_radix(g, 16)?);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

fn sign(
    signer: &PrivateKeySigner,
    nonce: u64,
    to: Address,
    value: U256,
    input: Vec<u8>,
    gas: u64,
) -> String {
    let tx = TxEip1559 {
        chain_id: 31337,
        nonce,
        gas_limit: gas,
        max_fee_per_gas: 20_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to: TxKind::Call(to),
        value,
        access_list: Default::default(),
        input: input.into(),
    };
    // Signing with a valid in-memory key over a 32-byte hash cannot fail.
    let sig = signer.sign_hash_sync(&tx.signature_hash()).unwrap_or_else(|e| panic!("sign: {e}"));
    let env: TxEnvelope = tx.into_signed(sig).into();
    hex::encode_prefixed(env.encoded_2718())
}

/// Deploys the token from account 0 and gives every sender some; returns its address.
async fn setup(t: &Target, signers: &[PrivateKeySigner], code: &Bytes) -> anyhow::Result<Address> {
    let deployer = &signers[0];
    let mut data = code.to_vec();
    data.extend_from_slice(&U256::from(10u64).pow(U256::from(30)).abi_encode());
    let hash = t
        .call(
            "eth_sendTransaction",
            json!([{"from": deployer.address(), "data": Bytes::from(data), "gas": "0x200000"}]),
        )
        .await?;
    let receipt = t.call("eth_getTransactionReceipt", json!([hash])).await?;
    let token: Address =
        receipt["contractAddress"].as_str().context("no contract address")?.parse()?;
    for s in &signers[1..] {
        let data = transferCall { to: s.address(), value: U256::from(10u64).pow(U256::from(24)) }
            .abi_encode();
        let nonce = t.nonce(deployer.address()).await?;
        t.send_and_wait(&sign(deployer, nonce, token, U256::ZERO, data, 100_000)).await?;
    }
    Ok(token)
}

/// One timed run; returns (transactions per second, total gas used).
async fn run(
    t: &Target,
    signers: &[PrivateKeySigner],
    token: Address,
    txs: usize,
) -> anyhow::Result<(f64, u64)> {
    let per_sender = txs / signers.len();
    let sink = Address::with_last_byte(0x99);
    let mut batches = Vec::new();
    for s in signers {
        let start = t.nonce(s.address()).await?;
        let raws: Vec<String> = (0..per_sender as u64)
            .map(|i| {
                if i % 2 == 0 {
                    sign(s, start + i, sink, U256::from(1000 + i), Vec::new(), 21_000)
                } else {
                    let data = transferCall { to: sink, value: U256::from(i) }.abi_encode();
                    sign(s, start + i, token, U256::ZERO, data, 100_000)
                }
            })
            .collect();
        batches.push(raws);
    }
    let begin = Instant::now();
    let works = batches.into_iter().map(|raws| async move {
        let mut gas = 0;
        for raw in raws {
            gas += t.send_and_wait(&raw).await?;
            let data = Bytes::from(balanceOfCall { who: sink }.abi_encode());
            t.call("eth_call", json!([{"to": token, "data": data}, "latest"])).await?;
        }
        anyhow::Ok(gas)
    });
    let gas: u64 = futures::future::try_join_all(works).await?.into_iter().sum();
    let secs = begin.elapsed().as_secs_f64();
    Ok(((per_sender * signers.len()) as f64 / secs, gas))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn start_hardhat(root: &Path) -> anyhow::Result<(tokio::process::Child, String)> {
    let port = free_port()?;
    let tools = root.join("tools");
    let bin = tools.join("node_modules/.bin/hardhat");
    if !bin.exists() {
        bail!("{} is missing: run scripts/setup (npm ci in tools/)", bin.display());
    }
    let child = tokio::process::Command::new(bin)
        .args(["node", "--hostname", "127.0.0.1", "--port", &port.to_string()])
        .current_dir(&tools)
        .env("HARDHAT_DISABLE_TELEMETRY_PROMPT", "true")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("start hardhat node")?;
    let url = format!("http://127.0.0.1:{port}");
    let t = Target { name: "hardhat", url: url.clone(), http: reqwest::Client::new() };
    for _ in 0..300 {
        if t.call("eth_chainId", json!([])).await.is_ok() {
            return Ok((child, url));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("hardhat node did not answer on {url} within 30 s")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse()).collect::<Result<_, _>>()?;
    let txs = args.first().copied().unwrap_or(400);
    let runs = args.get(1).copied().unwrap_or(5).max(1);
    let senders = args.get(2).copied().unwrap_or(4).clamp(1, 19);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let artifact: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("testdata/devnet/Token.json"))?)?;
    let code: Bytes = artifact["bytecode"].as_str().context("bytecode")?.parse()?;

    let devnet = ecld_devnet::spawn(ecld_devnet::DevnetConfig::ephemeral()).await?;
    let signers: Vec<PrivateKeySigner> =
        devnet.accounts()[..senders].iter().map(|a| a.signer().clone()).collect();
    let (_hardhat, hardhat_url) = start_hardhat(&root).await?;
    let targets = [
        Target { name: "ecld-devnet", url: devnet.url(), http: reqwest::Client::new() },
        Target { name: "hardhat node 2.29.1", url: hardhat_url, http: reqwest::Client::new() },
    ];
    let mut tokens = Vec::new();
    for t in &targets {
        tokens.push(setup(t, &signers, &code).await?);
    }
    let mut rates = [Vec::new(), Vec::new()];
    let mut gas = [0u64; 2];
    for r in 0..runs {
        for (i, t) in targets.iter().enumerate() {
            let (rate, g) = run(t, &signers, tokens[i], txs).await?;
            eprintln!("run {}/{runs} {}: {rate:.0} tx/s, gas {g}", r + 1, t.name);
            rates[i].push(rate);
            gas[i] = g;
        }
    }
    let (ours, theirs) = (median(rates[0].clone()), median(rates[1].clone()));
    let ratio = ours / theirs;
    let machine = ecld_benchkit::Machine::detect();
    let table = format!(
        "| chain | tx/s (median of {runs}) | runs | gas used per run |\n| --- | ---: | --- | ---: |\n| ecld-devnet | {ours:.0} | {} | {} |\n| hardhat node 2.29.1 | {theirs:.0} | {} | {} |\n",
        rates[0].iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(", "),
        gas[0],
        rates[1].iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(", "),
        gas[1],
    );
    println!(
        "{table}\nratio ecld-devnet / hardhat: {ratio:.1}x; gas used identical: {}",
        gas[0] == gas[1]
    );
    let section = format!(
        "## Devnet\n\nMachine: {}; {}; dev profile (hot dependencies at opt-level 2, the rest at 1). Reproduce: \
         `cargo run -p ecld-devnet --bin devnet-bench -- {txs} {runs} {senders}`.\n\n\
         Throughput of the same transaction mix on ecld-devnet (in the bench process) and on \
         `hardhat node` (npm hardhat 2.29.1, Osaka, automine, own process), side by side in one \
         run: {senders} dev accounts concurrently send {txs} pre-signed EIP-1559 transactions in \
         all (alternately an ether transfer and an ERC-20-like token transfer), each followed by \
         `eth_getTransactionReceipt` and an `eth_call` of `balanceOf`, over HTTP on loopback. \
         Runs alternate between the two chains.\n\n{table}\nRatio (ecld-devnet / hardhat): \
         **{ratio:.1}×**. Gas used by the same transactions: {}.\n\n{}",
        machine.cores_and_cpu(),
        machine.date,
        if gas[0] == gas[1] {
            "identical on both chains".to_string()
        } else {
            format!("differs ({} vs {})", gas[0], gas[1])
        },
        ecld_benchkit::goals_table(&[ecld_benchkit::Goal::at_least(
            "throughput, ecld-devnet / hardhat node, same mix, same run",
            ratio,
            3.0,
            "×",
        )]),
    );
    ecld_benchkit::write_section(&ecld_benchkit::benchmarks_file(&root), "## Devnet", &section)?;
    devnet.shutdown().await?;
    Ok(())
}
