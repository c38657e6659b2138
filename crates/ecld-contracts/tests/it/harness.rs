//! A deployed stack on a chain, with named accounts, and a transcript of every call.

use alloy::{
    contract::{CallBuilder, CallDecoder},
    network::EthereumWallet,
    primitives::{Address, B256, Bytes, U256, keccak256},
    providers::{DynProvider, Provider, ProviderBuilder},
    rpc::types::TransactionReceipt,
    signers::{SignerSync, local::PrivateKeySigner},
};
use ecld_contracts::{
    ContractError, DeployOptions, Deployment, DevToken, ImageManifest, ImageRegistry, Marketplace,
    Proof, TaskSpec, decode_revert, deploy_all, result_digest, sign_permit,
};

/// The first dev keys of the test mnemonic (`test test … junk`), as hardhat and ecld-devnet
/// derive them.
const DEV_KEYS: [&str; 5] = [
    "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
];

/// Chain time the sequence starts at, fixed so that deadlines (which appear in logs) are
/// the same on every chain.
pub(crate) const T0: u64 = 1_900_000_000;
/// A deadline no scenario reaches.
pub(crate) const FAR: u64 = T0 + 10 * 365 * 86_400;
/// Each dev account's starting token balance.
pub(crate) const MINT: u128 = 1_000_000;
/// Price of the default offer, and the requester's default maxPrice.
pub(crate) const PRICE: u128 = 1_000;

/// One account: its key and a provider that signs with it.
pub(crate) struct Account {
    pub(crate) key: PrivateKeySigner,
    pub(crate) provider: DynProvider,
}

impl Account {
    pub(crate) fn address(&self) -> Address {
        self.key.address()
    }
    pub(crate) fn market(&self, d: &Deployment) -> Marketplace::MarketplaceInstance<DynProvider> {
        Marketplace::new(d.marketplace, self.provider.clone())
    }
    pub(crate) fn token(&self, d: &Deployment) -> DevToken::DevTokenInstance<DynProvider> {
        DevToken::new(d.token, self.provider.clone())
    }
}

/// What happened to one call: its receipt's status, gas and logs, or the decoded revert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Mined { status: bool, gas_used: u64, logs: Vec<(Vec<B256>, Bytes)> },
    Reverted(String),
}

/// The deployed stack and the roles' accounts.
pub(crate) struct Env {
    pub(crate) deployment: Deployment,
    pub(crate) deployer: Account,
    pub(crate) requester: Account,
    pub(crate) node1: Account,
    pub(crate) node2: Account,
    pub(crate) other: Account,
    /// The image's enclave signing key.
    pub(crate) enclave: PrivateKeySigner,
    pub(crate) image_id: B256,
    /// Every call, in order: (label, outcome).
    pub(crate) transcript: Vec<(String, Outcome)>,
    /// Each live task's escrow, from TaskSubmitted and TaskClaimed.
    escrow: std::collections::HashMap<u64, u128>,
}

fn account(url: &str, key: &str) -> Account {
    let key: PrivateKeySigner = key.parse().expect("dev key");
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(key.clone()))
        .connect_http(url.parse().expect("url"))
        .erased();
    Account { key, provider }
}

impl Env {
    /// Sets the chain clock to T0, deploys the contracts and publishes one image.
    pub(crate) async fn new(url: &str) -> Self {
        let [k0, k1, k2, k3, k4] = DEV_KEYS;
        let deployer = account(url, k0);
        set_time(&deployer.provider, T0).await;
        let (requester, node1, node2, other) =
            (account(url, k1), account(url, k2), account(url, k3), account(url, k4));
        let holders = vec![requester.address(), node1.address(), node2.address(), other.address()];
        let deployment =
            deploy_all(&deployer.provider, &DeployOptions::dev(holders, U256::from(MINT)))
                .await
                .expect("deploy");
        let enclave = PrivateKeySigner::from_bytes(&B256::repeat_byte(0x11)).expect("key");
        let mut env = Self {
            deployment,
            deployer,
            requester,
            node1,
            node2,
            other,
            enclave,
            image_id: B256::ZERO,
            transcript: Vec::new(),
            escrow: std::collections::HashMap::new(),
        };
        env.image_id = env.publish_image("echo", 1 | 2 | 4).await;
        env
    }

    pub(crate) fn manifest(&self, name: &str, platforms: u8) -> ImageManifest {
        ImageManifest {
            codeCid: "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy".into(),
            measurement: keccak256(name.as_bytes()),
            enclaveKey: B256::repeat_byte(0x22),
            enclaveSigner: self.enclave.address(),
            casIdentity: Address::repeat_byte(0x33),
            platforms,
            owner: self.deployer.address(),
            name: name.into(),
            version: "1.0.0".into(),
        }
    }

    /// Publishes an image with this enclave signer; returns its id.
    pub(crate) async fn publish_image(&mut self, name: &str, platforms: u8) -> B256 {
        let m = self.manifest(name, platforms);
        let registry = ImageRegistry::new(self.deployment.registry, self.deployer.provider.clone());
        let id = registry.imageIdOf(m.clone()).call().await.expect("imageIdOf");
        let call = registry.publish(m);
        self.ok("publish", call).await;
        id
    }

    /// Sends a call, waits for the receipt and records it; a revert is decoded and recorded.
    pub(crate) async fn exec<D: CallDecoder>(
        &mut self,
        label: &str,
        call: CallBuilder<&DynProvider, D>,
    ) -> Result<TransactionReceipt, ContractError> {
        // Simulate first: a refusal is decoded from the eth_call, and nothing is mined.
        if let Err(err) = call.call_raw().await {
            let decoded = decode_revert(&err)
                .unwrap_or_else(|| panic!("{label}: failed without a custom error: {err}"));
            self.transcript.push((label.to_owned(), Outcome::Reverted(format!("{decoded:?}"))));
            return Err(decoded);
        }
        let pending =
            call.gas(5_000_000).send().await.unwrap_or_else(|e| panic!("{label}: send: {e}"));
        let receipt = pending.get_receipt().await.expect("receipt");
        assert!(
            receipt.status(),
            "{label}: transaction {} reverted on chain",
            receipt.transaction_hash
        );
        let logs = receipt
            .inner
            .logs()
            .iter()
            .map(|l| (l.topics().to_vec(), l.data().data.clone()))
            .collect();
        self.transcript.push((
            label.to_owned(),
            Outcome::Mined { status: true, gas_used: receipt.gas_used, logs },
        ));
        if let Some(ev) = receipt.decoded_log::<Marketplace::TaskSubmitted>() {
            self.escrow.insert(ev.taskId.to(), ev.price.to());
        }
        if let Some(ev) = receipt.decoded_log::<Marketplace::TaskClaimed>() {
            self.escrow.insert(ev.taskId.to(), ev.price.to());
        }
        Ok(receipt)
    }

    /// Like `exec`, panicking on a revert.
    pub(crate) async fn ok<D: CallDecoder>(
        &mut self,
        label: &str,
        call: CallBuilder<&DynProvider, D>,
    ) -> TransactionReceipt {
        match self.exec(label, call).await {
            Ok(r) => r,
            Err(e) => panic!("{label} reverted: {e:?}"),
        }
    }

    /// Like `exec`, returning the Marketplace error it must revert with.
    pub(crate) async fn refused<D: CallDecoder>(
        &mut self,
        label: &str,
        call: CallBuilder<&DynProvider, D>,
    ) -> Marketplace::MarketplaceErrors {
        match self.exec(label, call).await {
            Ok(_) => panic!("{label}: expected a revert, but it was mined"),
            Err(ContractError::Marketplace(e)) => e,
            Err(e) => panic!("{label}: expected a Marketplace error, got {e:?}"),
        }
    }

    /// A task's current escrow, as the contract's calls take it back.
    pub(crate) fn esc(&self, task: u64) -> alloy::primitives::Uint<96, 2> {
        alloy::primitives::Uint::from(self.escrow.get(&task).copied().unwrap_or_default())
    }

    pub(crate) fn spec(&self, deadline: u64) -> TaskSpec {
        TaskSpec {
            imageId: self.image_id,
            inputHash: keccak256(b"input ciphertext"),
            memoryMb: 256,
            maxRuntimeS: 60,
            deadline,
        }
    }

    /// Registers an offer for `node` (1 or 2) serving the default image.
    pub(crate) async fn offer(&mut self, node: u8, slots: u16, price: u128) -> u64 {
        let d = self.deployment;
        let image = self.image_id;
        let market = self.node(node).market(&d);
        let call = market.registerOffer(image, 1, slots, 1024, 600, price.try_into().expect("u96"));
        let receipt = self.ok("registerOffer", call).await;
        let log = receipt.decoded_log::<Marketplace::OfferRegistered>().expect("OfferRegistered");
        log.offerId
    }

    pub(crate) fn node(&self, n: u8) -> &Account {
        if n == 1 { &self.node1 } else { &self.node2 }
    }

    /// The requester approves the Marketplace for everything (the no-permit path).
    pub(crate) async fn approve_all(&mut self) {
        let d = self.deployment;
        let provider = self.requester.provider.clone();
        let token = DevToken::new(d.token, provider);
        self.ok("approve", token.approve(d.marketplace, U256::MAX)).await;
    }

    /// Submits a task with a permit for `max_price`, naming `offer_id` (0 = open); returns
    /// the task id.
    pub(crate) async fn submit(&mut self, spec: &TaskSpec, max_price: u128, offer_id: u64) -> u64 {
        let d = self.deployment;
        let permit = sign_permit(
            &self.requester.provider,
            &self.requester.key,
            d.token,
            d.marketplace,
            U256::from(max_price),
            U256::from(FAR),
        )
        .await
        .expect("permit");
        let provider = self.requester.provider.clone();
        let market = Marketplace::new(d.marketplace, provider);
        let call = market.submitTaskWithPermit(
            spec.clone(),
            "bafkreidgvpkjawlxz6sffxzwgooowe5yt7i6wsyg236mfoks77nywkptdq".into(),
            max_price.try_into().expect("u96"),
            offer_id,
            permit.deadline,
            permit.v,
            permit.r,
            permit.s,
        );
        let receipt = self.ok("submitTaskWithPermit", call).await;
        receipt.decoded_log::<Marketplace::TaskSubmitted>().expect("TaskSubmitted").taskId.to()
    }

    /// The enclave's signature over a proof, for this deployment.
    pub(crate) fn sign_proof(
        &self,
        key: &PrivateKeySigner,
        proof: &Proof,
        chain_id: u64,
        market: Address,
    ) -> Bytes {
        let digest = result_digest(proof, chain_id, market);
        Bytes::from(key.sign_hash_sync(&digest).expect("sign").as_bytes().to_vec())
    }

    pub(crate) fn proof(&self, task_id: u64, spec: &TaskSpec, status: u16) -> Proof {
        Proof {
            task_id,
            image_id: spec.imageId,
            input_hash: spec.inputHash,
            code_hash: B256::ZERO,
            result_hash: keccak256(format!("result of {task_id}")),
            status,
            runtime_ms: 1234,
        }
    }

    /// `node` relays a proof signed by `key` (for `signed`, which may differ from the task).
    pub(crate) async fn result_call(
        &mut self,
        node: u8,
        task_id: u64,
        spec: &TaskSpec,
        proof: &Proof,
        signature: Bytes,
    ) -> Result<TransactionReceipt, ContractError> {
        let d = self.deployment;
        let provider = self.node(node).provider.clone();
        let market = Marketplace::new(d.marketplace, provider);
        let call = market.submitResult(
            U256::from(task_id),
            spec.clone(),
            self.requester.address(),
            self.esc(task_id),
            "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku".into(),
            proof.result_hash,
            proof.code_hash,
            proof.status,
            proof.runtime_ms,
            signature,
        );
        self.exec("submitResult", call).await
    }

    /// Relays a correctly signed proof with `status`; panics on a revert.
    pub(crate) async fn result(
        &mut self,
        node: u8,
        task_id: u64,
        spec: &TaskSpec,
        status: u16,
    ) -> TransactionReceipt {
        let proof = self.proof(task_id, spec, status);
        let d = self.deployment;
        let sig = self.sign_proof(&self.enclave, &proof, d.chain_id, d.marketplace);
        match self.result_call(node, task_id, spec, &proof, sig).await {
            Ok(r) => r,
            Err(e) => panic!("submitResult reverted: {e:?}"),
        }
    }

    pub(crate) async fn balance(&self, who: Address) -> u128 {
        let b = self.deployer.token(&self.deployment).balanceOf(who).call().await.expect("balance");
        b.to()
    }

    /// Asserts escrowed == paid + refunded + held, that held is the Marketplace's balance,
    /// and that no tokens were created or lost among the dev accounts and the Marketplace.
    pub(crate) async fn assert_conservation(&self) {
        let d = self.deployment;
        let t = self.deployer.market(&d).totals().call().await.expect("totals");
        assert_eq!(t.escrowed, t.paid + t.refunded + t.held, "escrowed = paid + refunded + held");
        let held = self.balance(d.marketplace).await;
        assert_eq!(U256::from(held), t.held, "held equals the Marketplace's token balance");
        let mut sum = held;
        for a in [&self.requester, &self.node1, &self.node2, &self.other] {
            sum += self.balance(a.address()).await;
        }
        assert_eq!(sum, 4 * MINT, "tokens neither created nor lost");
    }

    /// Jumps the chain clock to `t` and mines a block.
    pub(crate) async fn set_time(&self, t: u64) {
        set_time(&self.deployer.provider, t).await;
    }
}

async fn set_time(provider: &DynProvider, t: u64) {
    let _: serde_json::Value = provider
        .raw_request("evm_setNextBlockTimestamp".into(), (t,))
        .await
        .expect("evm_setNextBlockTimestamp");
    let _: serde_json::Value =
        provider.raw_request("evm_mine".into(), serde_json::json!([])).await.expect("evm_mine");
}
