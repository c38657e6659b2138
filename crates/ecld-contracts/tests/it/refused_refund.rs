//! A requester who refuses its own refund (an account its token blocks, or a recipient hook
//! that reverts) cannot stop a proof from settling: the node is paid, and the refund waits in
//! the requester's deposit. Played with a token whose owner blocks accounts from receiving.

use alloy::{
    contract::{CallBuilder, CallDecoder},
    network::EthereumWallet,
    primitives::{Address, B256, Bytes, U256, Uint, keccak256},
    providers::{DynProvider, Provider, ProviderBuilder},
    rpc::types::TransactionReceipt,
    signers::{SignerSync, local::PrivateKeySigner},
};
use ecld_contracts::{
    DeployOptions, ImageManifest, ImageRegistry, Marketplace, Proof, TaskSpec, deploy_all,
    result_digest,
};

mod bindings {
    #![allow(clippy::too_many_arguments)]
    alloy::sol!(
        #[sol(rpc)]
        TestBlockingToken,
        "artifacts/TestBlockingToken.json"
    );
}
use bindings::TestBlockingToken;

const KEYS: [&str; 3] = [
    "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
];
const CID: &str = "bafkreidgvpkjawlxz6sffxzwgooowe5yt7i6wsyg236mfoks77nywkptdq";

/// Sends `call` and waits for its receipt.
async fn mined<P: Provider, D: CallDecoder>(call: CallBuilder<P, D>) -> TransactionReceipt {
    call.send().await.unwrap().get_receipt().await.unwrap()
}

fn provider(url: &str, key: &PrivateKeySigner) -> DynProvider {
    ProviderBuilder::new()
        .wallet(EthereumWallet::from(key.clone()))
        .connect_http(url.parse().unwrap())
        .erased()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requester_refusing_its_refund_cannot_stop_the_node_being_paid() {
    let devnet = ecld_devnet::spawn(ecld_devnet::DevnetConfig::ephemeral()).await.unwrap();
    let url = devnet.url();
    let keys: Vec<PrivateKeySigner> = KEYS.iter().map(|k| k.parse().unwrap()).collect();
    let (owner, requester, node) =
        (provider(&url, &keys[0]), provider(&url, &keys[1]), provider(&url, &keys[2]));
    let (req_addr, node_addr) = (keys[1].address(), keys[2].address());
    let token =
        TestBlockingToken::deploy(&owner, vec![req_addr, node_addr], U256::from(1_000_000u64))
            .await
            .unwrap();
    let d = deploy_all(
        &owner,
        &DeployOptions {
            token: Some(*token.address()),
            dev_accounts: vec![],
            mint_each: U256::ZERO,
        },
    )
    .await
    .unwrap();
    let enclave = PrivateKeySigner::from_bytes(&B256::repeat_byte(0x11)).unwrap();
    let registry = ImageRegistry::new(d.registry, &owner);
    let manifest = ImageManifest {
        codeCid: CID.into(),
        measurement: keccak256("m"),
        enclaveKey: B256::repeat_byte(0x22),
        enclaveSigner: enclave.address(),
        casIdentity: Address::repeat_byte(0x33),
        platforms: 7,
        owner: keys[0].address(),
        name: "echo".into(),
        version: "1".into(),
    };
    let image = registry.imageIdOf(manifest.clone()).call().await.unwrap();
    mined(registry.publish(manifest)).await;
    let node_m = Marketplace::new(d.marketplace, &node);
    let req_m = Marketplace::new(d.marketplace, &requester);
    let price = Uint::<96, 2>::from(100u64);
    let max = Uint::<96, 2>::from(300u64);
    let offer = mined(node_m.registerOffer(image, 1, 4, 1024, 600, price))
        .await
        .decoded_log::<Marketplace::OfferRegistered>()
        .unwrap()
        .offerId;
    mined(
        TestBlockingToken::new(*token.address(), &requester)
            .approve(d.marketplace, U256::from(10_000u64)),
    )
    .await;
    let now =
        owner.get_block_by_number(Default::default()).await.unwrap().unwrap().header.timestamp;
    let spec = TaskSpec {
        imageId: image,
        inputHash: keccak256("input"),
        inputCidHash: keccak256(CID),
        memoryMb: 64,
        maxRuntimeS: 10,
        deadline: now + 3600,
    };
    let balance = |who: Address| {
        let t = TestBlockingToken::new(*token.address(), &owner);
        async move { t.balanceOf(who).call().await.unwrap() }
    };

    // Two tasks: one succeeds (refund maxPrice - price), one is a system fault (full refund).
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let r = mined(req_m.submitTask(spec.clone(), CID.into(), max, offer)).await;
        assert!(r.status());
        tasks.push(r.decoded_log::<Marketplace::TaskSubmitted>().unwrap().taskId);
    }
    // The requester's account now refuses tokens.
    mined(TestBlockingToken::new(*token.address(), &owner).setBlocked(req_addr, true)).await;
    let (node_before, req_before) = (balance(node_addr).await, balance(req_addr).await);
    let proof = |task: U256, status: u16| {
        let p = Proof {
            task_id: task.to(),
            spec: spec.clone(),
            code_hash: B256::ZERO,
            result_hash: keccak256("result"),
            result_cid: CID.into(),
            status,
            runtime_ms: 5,
        };
        let sig = enclave.sign_hash_sync(&result_digest(&p, d.chain_id, d.marketplace)).unwrap();
        Marketplace::Proof {
            taskId: task,
            spec: spec.clone(),
            requester: req_addr,
            maxPrice: max,
            price,
            resultCid: CID.into(),
            resultHash: p.result_hash,
            codeHash: B256::ZERO,
            status,
            runtimeMs: 5,
            signature: Bytes::from(sig.as_bytes().to_vec()),
        }
    };
    let r =
        mined(node_m.submitResults(vec![proof(tasks[0], 0), proof(tasks[1], 16)]).gas(2_000_000))
            .await;
    assert!(r.status(), "the batch did not settle: a requester refusing its refunds blocked it");
    assert_eq!(balance(node_addr).await, node_before + U256::from(100u64), "the node is paid");
    assert_eq!(balance(req_addr).await, req_before, "nothing reached the blocked wallet");
    // 200 (300 - 100) and 300 wait in the requester's deposit.
    assert_eq!(req_m.balanceOf(req_addr).call().await.unwrap(), U256::from(500u64));
    let credited: Vec<U256> = r
        .logs()
        .iter()
        .filter_map(|l| l.log_decode::<Marketplace::Deposited>().ok())
        .map(|l| l.inner.data.amount)
        .collect();
    assert_eq!(credited, [U256::from(200u64), U256::from(300u64)]);
    assert_eq!(
        balance(d.marketplace).await,
        U256::from(500u64),
        "the Marketplace holds exactly the deposit it owes"
    );
    // Unblocked, the requester takes it out.
    mined(TestBlockingToken::new(*token.address(), &owner).setBlocked(req_addr, false)).await;
    let r = mined(req_m.withdraw(U256::from(500u64))).await;
    assert!(r.status());
    assert_eq!(balance(req_addr).await, req_before + U256::from(500u64));
    devnet.shutdown().await.unwrap();
}
