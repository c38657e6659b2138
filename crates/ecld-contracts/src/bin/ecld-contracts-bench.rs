//! Gas used by each Marketplace call and by a whole task lifecycle, on ecld-devnet and (where
//! Node.js is present) on `hardhat node`. Prints a table and replaces the `## Chain gas`
//! section of docs/BENCHMARKS.md.
//!
//! `cargo run -p ecld-contracts --features bench --bin ecld-contracts-bench`

use std::{
    fmt::Write as _,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use alloy::{
    network::EthereumWallet,
    primitives::{Address, B256, Bytes, U256, keccak256},
    providers::{DynProvider, Provider, ProviderBuilder},
    rpc::types::TransactionReceipt,
    signers::{SignerSync, local::PrivateKeySigner},
};
use anyhow::{Context, Result, bail};
use ecld_contracts::{
    DeployOptions, ImageManifest, ImageRegistry, Marketplace, Proof, TaskSpec, deploy_all,
    result_digest, sign_permit,
};

const KEYS: [&str; 4] = [
    "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
];
/// A realistic CIDv1 (base32, raw, sha2-256) as the store produces.
const CID: &str = "bafkreidgvpkjawlxz6sffxzwgooowe5yt7i6wsyg236mfoks77nywkptdq";
const PRICE: u64 = 1_000_000_000_000_000; // 0.001 token

/// Proofs per submitResults measured.
const BATCHES: [u64; 3] = [1, 8, 32];
/// Their rows.
const BATCH_LABELS: [&str; 3] =
    ["submitResults (1 proof)", "submitResults (8 proofs)", "submitResults (32 proofs)"];

/// Rows of submitTasks at each of [`BATCHES`].
const SUBMIT_LABELS: [&str; 3] =
    ["submitTasks (1 task)", "submitTasks (8 tasks)", "submitTasks (32 tasks)"];

/// Gas of each measured call, in the order measured.
type Figures = Vec<(&'static str, u64)>;

fn provider(url: &str, key: &PrivateKeySigner) -> Result<DynProvider> {
    Ok(ProviderBuilder::new()
        .wallet(EthereumWallet::from(key.clone()))
        .connect_http(url.parse().context("rpc url")?)
        .erased())
}

async fn mined(
    label: &'static str,
    pending: Result<
        alloy::providers::PendingTransactionBuilder<alloy::network::Ethereum>,
        alloy::contract::Error,
    >,
) -> Result<TransactionReceipt> {
    let receipt = pending.with_context(|| format!("{label}: send"))?.get_receipt().await?;
    if !receipt.status() {
        bail!("{label} reverted");
    }
    Ok(receipt)
}

/// Runs the measured sequence on a chain at `url`; returns gas per call.
async fn measure(url: &str) -> Result<Figures> {
    let keys: Vec<PrivateKeySigner> = KEYS.iter().map(|k| k.parse()).collect::<Result<_, _>>()?;
    let (deployer, requester, node) =
        (provider(url, &keys[0])?, provider(url, &keys[1])?, provider(url, &keys[2])?);
    let enclave = PrivateKeySigner::from_bytes(&B256::repeat_byte(0x11))?;
    let d = deploy_all(
        &deployer,
        &DeployOptions::dev(
            keys.iter().map(PrivateKeySigner::address).collect(),
            U256::from(1_000u64) * U256::from(10u64).pow(U256::from(18u64)),
        ),
    )
    .await?;
    let mut fig = Figures::new();
    let registry = ImageRegistry::new(d.registry, &deployer);
    let manifest = ImageManifest {
        codeCid: CID.into(),
        measurement: keccak256("measurement"),
        enclaveKey: B256::repeat_byte(0x22),
        enclaveSigner: enclave.address(),
        casIdentity: Address::repeat_byte(0x33),
        platforms: 7,
        owner: keys[0].address(),
        name: "echo".into(),
        version: "1.0.0".into(),
    };
    let image = registry.imageIdOf(manifest.clone()).call().await?;
    let r = mined("publish", registry.publish(manifest).send().await).await?;
    fig.push(("ImageRegistry.publish", r.gas_used));

    let node_m = Marketplace::new(d.marketplace, &node);
    let req_m = Marketplace::new(d.marketplace, &requester);
    let price = alloy::primitives::Uint::<96, 2>::from(PRICE);
    let r =
        mined("registerOffer", node_m.registerOffer(image, 1, 8, 1024, 600, price).send().await)
            .await?;
    fig.push(("registerOffer", r.gas_used));
    let offer = r.decoded_log::<Marketplace::OfferRegistered>().context("log")?.offerId;
    let r =
        mined("updateOffer", node_m.updateOffer(offer, image, 1, 8, 2048, 600, price).send().await)
            .await?;
    fig.push(("updateOffer", r.gas_used));

    let now =
        deployer.get_block_by_number(Default::default()).await?.context("block")?.header.timestamp;
    let spec = TaskSpec {
        imageId: image,
        inputHash: keccak256("input"),
        inputCidHash: keccak256(CID),
        memoryMb: 256,
        maxRuntimeS: 60,
        deadline: now + 86_400,
    };
    let chain_id = d.chain_id;
    let submit_permit = |max: u64, offer_id: u64| {
        let (requester, req_m, key, spec) = (&requester, &req_m, &keys[1], spec.clone());
        async move {
            let p = sign_permit(
                requester,
                key,
                d.token,
                d.marketplace,
                U256::from(max),
                U256::from(now + 3600),
            )
            .await?;
            let r = mined(
                "submitTaskWithPermit",
                req_m
                    .submitTaskWithPermit(
                        spec,
                        CID.into(),
                        alloy::primitives::Uint::from(max),
                        offer_id,
                        p.deadline,
                        p.v,
                        p.r,
                        p.s,
                    )
                    .send()
                    .await,
            )
            .await?;
            let id: u64 = r.decoded_log::<Marketplace::TaskSubmitted>().context("log")?.taskId.to();
            anyhow::Ok((id, r.gas_used))
        }
    };
    let me = keys[1].address();
    // A proof of `task` with `status`, signed by the image's enclave, for an escrow of `max`.
    let proof_of = |task: u64, status: u16, max: u64| -> Result<Marketplace::Proof> {
        let proof = Proof {
            task_id: task,
            spec: spec.clone(),
            code_hash: B256::ZERO,
            result_hash: keccak256(format!("result {task}")),
            result_cid: CID.into(),
            status,
            runtime_ms: 1500,
        };
        let sig = enclave.sign_hash_sync(&result_digest(&proof, chain_id, d.marketplace))?;
        Ok(Marketplace::Proof {
            taskId: U256::from(task),
            spec: spec.clone(),
            requester: me,
            maxPrice: alloy::primitives::Uint::from(max),
            price,
            resultCid: CID.into(),
            resultHash: proof.result_hash,
            codeHash: proof.code_hash,
            status,
            runtimeMs: proof.runtime_ms,
            signature: Bytes::from(sig.as_bytes().to_vec()),
        })
    };
    let result = |task: u64, status: u16, max: u64| {
        let (node_m, proof_of) = (&node_m, &proof_of);
        async move {
            let p = proof_of(task, status, max)?;
            let r = mined(
                "submitResult",
                node_m
                    .submitResult(
                        p.taskId,
                        p.spec,
                        p.requester,
                        p.maxPrice,
                        p.price,
                        p.resultCid,
                        p.resultHash,
                        p.codeHash,
                        p.status,
                        p.runtimeMs,
                        p.signature,
                    )
                    .send()
                    .await,
            )
            .await?;
            anyhow::Ok(r.gas_used)
        }
    };

    // The first task of a requester and a node pays one-off costs (first permit nonce, the
    // node's first token balance); the steady state is what every later task costs.
    let (t, first_submit) = submit_permit(PRICE, offer).await?;
    let first_result = result(t, 0, PRICE).await?;
    fig.push(("first task: submitTaskWithPermit (matched)", first_submit));
    fig.push(("first task: submitResult (pay node)", first_result));
    let (t, submit) = submit_permit(PRICE, offer).await?;
    let paid = result(t, 0, PRICE).await?;
    fig.push(("submitTaskWithPermit (matched)", submit));
    fig.push(("submitResult (status 0, pay node)", paid));
    let (t, _) = submit_permit(PRICE, offer).await?;
    fig.push(("submitResult (status 16, refund)", result(t, 16, PRICE).await?));
    let (t, open) = submit_permit(2 * PRICE, 0).await?;
    fig.push(("submitTaskWithPermit (open)", open));
    let r = mined(
        "claimTask",
        node_m
            .claimTask(
                U256::from(t),
                offer,
                spec.clone(),
                me,
                alloy::primitives::Uint::from(2 * PRICE),
            )
            .send()
            .await,
    )
    .await?;
    fig.push(("claimTask", r.gas_used));
    let max = alloy::primitives::Uint::from(2 * PRICE);
    let r = mined(
        "releaseTask",
        node_m.releaseTask(U256::from(t), spec.clone(), me, max, price).send().await,
    )
    .await?;
    fig.push(("releaseTask", r.gas_used));
    let r = mined(
        "claimTask",
        node_m.claimTask(U256::from(t), offer, spec.clone(), me, max).send().await,
    )
    .await?;
    fig.push(("claimTask (after a release)", r.gas_used));
    fig.push(("submitResult (pay node, refund maxPrice - price)", result(t, 0, 2 * PRICE).await?));

    // Deposits and batches: a requester deposits once (with a permit) and each task draws its
    // escrow from the deposit; the node settles B proofs in one submitResults and is paid once.
    mined(
        "updateOffer",
        node_m.updateOffer(offer, image, 1, BATCHES[2] as u16, 2048, 600, price).send().await,
    )
    .await?;
    let p = sign_permit(
        &requester,
        &keys[1],
        d.token,
        d.marketplace,
        U256::from(1_000 * PRICE),
        U256::from(now + 3600),
    )
    .await?;
    let r = mined(
        "depositWithPermit",
        req_m.depositWithPermit(U256::from(1_000 * PRICE), p.deadline, p.v, p.r, p.s).send().await,
    )
    .await?;
    fig.push(("depositWithPermit (first deposit)", r.gas_used));
    let submit_drawn = || {
        let (req_m, spec) = (&req_m, spec.clone());
        async move {
            let r =
                mined("submitTask", req_m.submitTask(spec, CID.into(), price, offer).send().await)
                    .await?;
            let id: u64 = r.decoded_log::<Marketplace::TaskSubmitted>().context("log")?.taskId.to();
            anyhow::Ok((id, r.gas_used))
        }
    };
    let mut drawn = 0;
    for (batch, label) in BATCHES.iter().zip(BATCH_LABELS) {
        let mut proofs = Vec::new();
        for _ in 0..*batch {
            let (id, gas) = submit_drawn().await?;
            drawn = drawn.max(gas);
            proofs.push(proof_of(id, 0, PRICE)?);
        }
        let r = mined("submitResults", node_m.submitResults(proofs).send().await).await?;
        fig.push((label, r.gas_used));
    }
    fig.push(("submitTask (matched, escrow drawn from the deposit)", drawn));
    // A requester with many tasks at once sends them in one submitTasks.
    for (batch, label) in BATCHES.iter().zip(SUBMIT_LABELS) {
        let n = usize::try_from(*batch)?;
        let r = mined(
            "submitTasks",
            req_m
                .submitTasks(
                    vec![spec.clone(); n],
                    vec![CID.to_owned(); n],
                    vec![price; n],
                    vec![offer; n],
                )
                .send()
                .await,
        )
        .await?;
        fig.push((label, r.gas_used));
        let proofs = r
            .logs()
            .iter()
            .filter_map(|l| l.log_decode::<Marketplace::TaskSubmitted>().ok())
            .map(|l| proof_of(l.inner.data.taskId.to(), 0, PRICE))
            .collect::<Result<Vec<_>>>()?;
        anyhow::ensure!(proofs.len() == n, "submitTasks made {} tasks of {n}", proofs.len());
        mined("submitResults", node_m.submitResults(proofs).send().await).await?;
    }
    let (t, _) = submit_permit(PRICE, 0).await?;
    let r = mined(
        "reclaim",
        req_m
            .reclaim(
                U256::from(t),
                spec.clone(),
                alloy::primitives::Uint::from(PRICE),
                Default::default(),
            )
            .send()
            .await,
    )
    .await?;
    fig.push(("reclaim (open task: a cancel)", r.gas_used));
    let (t, _) = submit_permit(PRICE, offer).await?;
    let _: serde_json::Value =
        deployer.raw_request("evm_setNextBlockTimestamp".into(), (spec.deadline + 1,)).await?;
    let _: serde_json::Value =
        deployer.raw_request("evm_mine".into(), serde_json::json!([])).await?;
    let r = mined("reclaim", req_m.reclaim(U256::from(t), spec.clone(), price, price).send().await)
        .await?;
    fig.push(("reclaim (held task, after the deadline)", r.gas_used));
    let r = mined("withdrawOffer", node_m.withdrawOffer(offer).send().await).await?;
    fig.push(("withdrawOffer", r.gas_used));
    fig.push(("lifecycle: submitTaskWithPermit + submitResult", submit + paid));
    Ok(fig)
}

struct Hardhat(Child);
impl Drop for Hardhat {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn hardhat(root: &Path) -> Result<Option<(Hardhat, String)>> {
    let bin = root.join("tools/node_modules/hardhat/internal/cli/bootstrap.js");
    if Command::new("node").arg("--version").output().is_err() || !bin.exists() {
        eprintln!("hardhat: node or tools/node_modules missing; measuring ecld-devnet only");
        return Ok(None);
    }
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = Command::new("node")
        .arg(&bin)
        .args(["node", "--hostname", "127.0.0.1", "--port", &port.to_string()])
        .current_dir(root.join("tools"))
        .env("HARDHAT_DISABLE_TELEMETRY_PROMPT", "true")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let hh = Hardhat(child);
    let url = format!("http://127.0.0.1:{port}");
    let p = ProviderBuilder::new().connect_http(url.parse()?);
    let start = Instant::now();
    while p.get_chain_id().await.is_err() {
        if start.elapsed() > Duration::from_secs(90) {
            bail!("hardhat node did not start in 90 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(Some((hh, url)))
}

fn section(devnet: &Figures, hardhat: Option<&Figures>) -> String {
    let machine = ecld_benchkit::Machine::detect();
    let mut s = String::from("## Chain gas\n\n");
    let _ = writeln!(
        s,
        "Gas used (receipt `gasUsed`, Osaka rules, including the 21 000 base and calldata) by each\n\
         contract call, measured on ecld-devnet and on `hardhat node` {} in the same run.\n\
         Machine: {}; {}. Reproduce: `cargo run -p ecld-contracts --features bench --bin ecld-contracts-bench`.\n",
        if hardhat.is_some() { "(hardhat 2.29.1)" } else { "(not present on this run)" },
        format_args!("{} × {}", machine.cores, machine.cpu),
        machine.date
    );
    s.push_str("| call | ecld-devnet | hardhat |\n| --- | ---: | ---: |\n");
    for (i, (label, gas)) in devnet.iter().enumerate() {
        let hh = hardhat.and_then(|h| h.get(i)).map_or("–".to_owned(), |(_, g)| g.to_string());
        let _ = writeln!(s, "| {label} | {gas} | {hh} |");
    }
    let gas_of =
        |f: &Figures, label: &str| f.iter().find(|(l, _)| *l == label).map_or(0, |(_, g)| *g);
    // Per task, both sides: one submitTask drawn from the deposit plus a share of a batch.
    let per_task = |f: &Figures| -> Vec<u64> {
        BATCHES
            .iter()
            .zip(BATCH_LABELS)
            .map(|(b, label)| {
                gas_of(f, "submitTask (matched, escrow drawn from the deposit)")
                    + gas_of(f, label).div_ceil(*b)
            })
            .collect()
    };
    let ours = per_task(devnet);
    let theirs = hardhat.map(per_task);
    s.push_str(
        "\nA whole task lifecycle, requester and node together, in steady state: the requester's\n\
         `submitTask` (matched to an offer in the same transaction, its escrow drawn from a\n\
         deposit made once) and its share of the node's `submitResults`, which settles B proofs\n\
         and pays the node once (the batch window is the node operator's `[chain]\n\
         batch_window_ms`; a proof waits at most that long for others).\n\n\
         | proofs per submitResults (B) | per task on ecld-devnet | per task on hardhat |\n\
         | ---: | ---: | ---: |\n",
    );
    for (i, b) in BATCHES.iter().enumerate() {
        let hh = theirs.as_ref().map_or("–".to_owned(), |t| t[i].to_string());
        let _ = writeln!(s, "| {b} | {} | {hh} |", ours[i]);
    }
    // A requester with B tasks at once: submitTasks and submitResults both of B.
    let both = |f: &Figures| -> Vec<u64> {
        BATCHES
            .iter()
            .zip(BATCH_LABELS.iter().zip(SUBMIT_LABELS))
            .map(|(b, (settle, submit))| {
                gas_of(f, submit).div_ceil(*b) + gas_of(f, settle).div_ceil(*b)
            })
            .collect()
    };
    let ours_both = both(devnet);
    let theirs_both = hardhat.map(both);
    s.push_str(
        "\nA requester with many tasks at once (a script, a dApp's backend) sends B of them in\n\
         one `submitTasks` (escrows drawn from its deposit), and the node settles them in one\n\
         `submitResults`:\n\n\
         | tasks per submitTasks and per submitResults (B) | per task on ecld-devnet | per task on hardhat |\n\
         | ---: | ---: | ---: |\n",
    );
    for (i, b) in BATCHES.iter().enumerate() {
        let hh = theirs_both.as_ref().map_or("–".to_owned(), |t| t[i].to_string());
        let _ = writeln!(s, "| {b} | {} | {hh} |", ours_both[i]);
    }
    let single = gas_of(devnet, "lifecycle: submitTaskWithPermit + submitResult");
    let steady = ours[2];
    let first = gas_of(devnet, "first task: submitTaskWithPermit (matched)")
        + gas_of(devnet, "submitResults (32 proofs)").div_ceil(32);
    let _ = writeln!(
        s,
        "\nWithout a deposit or a batch (a permit and a token transfer in per task, one\n\
         `submitResult` per proof) a task takes {single} gas in 2 transactions. A new requester's\n\
         first task, with a permit instead of a deposit (first permit nonce, fresh storage) and\n\
         settled in a batch of 32, takes {first} gas.\n"
    );
    s.push_str(&ecld_benchkit::goals_table(&[
        ecld_benchkit::Goal::at_most(
            "gas per task, requester and node together, steady state (B = 32)",
            steady as f64,
            100_000.0,
            "gas",
        ),
        ecld_benchkit::Goal::at_most(
            "gas per task, requester and node together, both batched (B = 32)",
            ours_both[2] as f64,
            100_000.0,
            "gas",
        ),
        ecld_benchkit::Goal::at_most(
            "gas of a new requester's first task (permit, B = 32)",
            first as f64,
            200_000.0,
            "gas",
        ),
    ]));
    let life = steady;
    s.push_str(&peers(life));
    s
}

/// A peer's gas per task: not measured here (see [`peers`]).
struct Peer {
    name: &'static str,
    /// The calls of one task, by whom.
    calls: &'static str,
    transactions: &'static str,
    gas: u64,
    /// The public code the calls are in.
    contracts: &'static str,
}

/// Figures this repository has carried since its gas benchmark was written (commit a53b257,
/// "per task as published"), without a record of where they were published or measured.
const PEERS: [Peer; 3] = [
    Peer {
        name: "Ethernity Cloud (PoX)",
        calls: "`_addDORequest` (requester), `_addDPRequest` (node), `_placeOrder` (node), \
                `_approveOrder` (requester), `_addProcessorToOrder` (node), `_addResultToOrder` \
                (node)",
        transactions: "6",
        gas: 1_600_000,
        contracts: "`Ethernity.sol` of the public repository ethernity-cloud/pox-smart-contract",
    },
    Peer {
        name: "iExec (PoCo Boost)",
        calls: "`matchOrdersBoost` (app, dataset, workerpool and request orders matched into a \
                deal, the requester debited), `pushResultBoost` (the worker's result with the \
                scheduler's authorization and the enclave's signature)",
        transactions: "2",
        gas: 680_000,
        contracts: "`IexecPocoBoostFacet` (earlier `IexecPocoBoostDelegate`) of the public \
                    repository iExecBlockchainComputing/PoCo",
    },
    Peer {
        name: "Marlin Oyster (serverless)",
        calls: "a job created by its owner, then the executor's enclave-signed output \
                submitted (serverless-v2 `Jobs`: `createJob`, `submitOutput`)",
        transactions: "2 or more (one output per selected executor)",
        gas: 390_000,
        contracts: "`contracts/contracts/contracts/serverless-v2/Jobs.sol` of the public \
                    repository marlinprotocol/oyster-monorepo",
    },
];

/// The peers' gas per task beside ours, with what each figure covers and where it comes from.
fn peers(life: u64) -> String {
    let mut s = String::from(
        "Peers, gas per task. These figures are **not measured by this bench**: they are \
         constants in `crates/ecld-contracts/src/bin/ecld-contracts-bench.rs`, carried since the \
         gas benchmark was written (commit a53b257, which called them \"per task as published\" \
         without naming the publication or the measurement; none has been found since). Each \
         row names the calls a task makes and the public contracts they are in, which is where \
         a measurement would start.\n\n\
         | peer | one task's calls | transactions | gas per task | peer / ours | contracts |\n\
         | --- | --- | --- | ---: | ---: | --- |\n",
    );
    for p in &PEERS {
        let _ = writeln!(
            s,
            "| {} | {} | {} | ~{} | {:.1}× | {} |",
            p.name,
            p.calls,
            p.transactions,
            approx(p.gas),
            p.gas as f64 / life as f64,
            p.contracts
        );
    }
    s
}

/// `1.6 M`, `680 k`.
fn approx(gas: u64) -> String {
    if gas >= 1_000_000 {
        format!("{:.1} M", gas as f64 / 1e6)
    } else {
        format!("{} k", gas / 1000)
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let devnet = ecld_devnet::spawn(ecld_devnet::DevnetConfig::ephemeral()).await?;
    let on_devnet = measure(&devnet.url()).await?;
    devnet.shutdown().await?;
    let on_hardhat = match hardhat(&root).await? {
        Some((_hh, url)) => Some(measure(&url).await?),
        None => None,
    };
    let body = section(&on_devnet, on_hardhat.as_ref());
    print!("{body}");
    let out = ecld_benchkit::benchmarks_file(&root);
    ecld_benchkit::write_section(&out, "## Chain gas", &body)?;
    eprintln!("wrote the Chain gas section of {}", out.display());
    Ok(())
}
