//! A deployed stack on a chain, with named accounts, and a transcript of every call.

use alloy::{
    contract::{CallBuilder, CallDecoder},
    network::EthereumWallet,
    primitives::{Address, B256, Bytes, U256, Uint, keccak256},
    providers::{DynProvider, Provider, ProviderBuilder},
    rpc::types::TransactionReceipt,
    signers::{SignerSync, local::PrivateKeySigner},
};
use ecld_contracts::{
    ContractError, DeployOptions, Deployment, DevToken, ImageManifest, ImageRegistry, Marketplace,
    Proof, TaskSpec, decode_revert, deploy_all, result_digest, sign_permit,
};

use crate::ledger::{Ledger, Snapshot};

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
/// The input CID the harness submits tasks with; `spec()` commits to its keccak256.
pub(crate) const INPUT_CID: &str = "bafkreidgvpkjawlxz6sffxzwgooowe5yt7i6wsyg236mfoks77nywkptdq";
/// The result CID the harness's proofs sign.
pub(crate) const RESULT_CID: &str = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";

/// A token amount as the contracts take it.
pub(crate) fn u96(amount: u128) -> Uint<96, 2> {
    Uint::from(amount)
}

/// One account: its key and a provider that signs with it.
#[derive(Clone)]
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

/// Gas limit an expected refusal is sent with: more than any Marketplace call needs, so the
/// transaction is mined and fails by its revert, not by running out of gas.
pub(crate) const REFUSED_GAS_LIMIT: u64 = 1_000_000;

/// What happened to one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// `eth_call` and `eth_estimateGas` succeeded; the transaction, sent with the estimate as
    /// its gas limit, was mined with status 1. `estimate_is_least`: an `eth_call` with one gas
    /// less than the estimate fails.
    Mined { estimate: u64, estimate_is_least: bool, gas_used: u64, logs: Vec<(Vec<B256>, Bytes)> },
    /// `eth_call` and `eth_estimateGas` both reverted with `error`; the transaction, sent
    /// anyway with [`REFUSED_GAS_LIMIT`], was mined with `status` after `gas_used`.
    Reverted { error: String, status: bool, gas_used: u64, send: SendAnswer },
}

/// How the chain answered the sending of a transaction that it mined and that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SendAnswer {
    /// With the transaction hash (geth, ecld-devnet).
    Hash,
    /// With an error naming the mined transaction's hash (hardhat's default
    /// `throwOnTransactionFailures`); the message.
    ErrorWithHash(String),
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
    /// The token movements the Marketplace's events promise, to check the chain against.
    ledger: Ledger,
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
            deploy_all(&deployer.provider, &DeployOptions::dev(holders.clone(), U256::from(MINT)))
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
            ledger: Ledger::new(deployment.marketplace, &holders, MINT),
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

    /// Runs a call the way a careful client does and records every answer: simulates it
    /// (`eth_call`), estimates its gas (`eth_estimateGas`) and sends it with the estimate as
    /// its gas limit, which must suffice. A call the simulation refuses must be refused the
    /// same way by the estimate; it is then sent anyway with [`REFUSED_GAS_LIMIT`], and must
    /// be mined and fail (status 0) without logs. Returns the decoded refusal.
    pub(crate) async fn exec<D: CallDecoder>(
        &mut self,
        label: &str,
        call: CallBuilder<&DynProvider, D>,
    ) -> Result<TransactionReceipt, ContractError> {
        let simulated = call.call_raw().await;
        let estimated = call.estimate_gas().await;
        let refusal = match (simulated, estimated) {
            (Ok(_), Ok(estimate)) => {
                let mut less = call.as_ref().clone();
                less.gas = Some(estimate - 1);
                let least = call.provider.call(less).await.is_err();
                return Ok(self.send(label, call, estimate, least).await);
            }
            (Err(err), Err(est_err)) => {
                let decoded = decode_revert(&err)
                    .unwrap_or_else(|| panic!("{label}: failed without a custom error: {err}"));
                let by_estimate = decode_revert(&est_err).unwrap_or_else(|| {
                    panic!("{label}: eth_estimateGas failed without a custom error: {est_err}")
                });
                assert_eq!(
                    by_estimate, decoded,
                    "{label}: eth_estimateGas and eth_call refuse it differently"
                );
                decoded
            }
            (Ok(_), Err(e)) => panic!("{label}: eth_call succeeds but eth_estimateGas fails: {e}"),
            (Err(e), Ok(g)) => panic!("{label}: eth_call fails ({e}) but eth_estimateGas is {g}"),
        };
        let (receipt, send) = self.send_refused(label, call).await;
        assert!(
            !receipt.status(),
            "{label}: eth_call refused it with {refusal:?}, but transaction {} succeeded",
            receipt.transaction_hash
        );
        assert!(receipt.inner.logs().is_empty(), "{label}: a failed transaction left logs");
        self.transcript.push((
            label.to_owned(),
            Outcome::Reverted {
                error: format!("{refusal:?}"),
                status: receipt.status(),
                gas_used: receipt.gas_used,
                send,
            },
        ));
        Err(refusal)
    }

    /// Sends a call with gas limit `estimate`, which must succeed, records it and books its
    /// events in the ledger.
    async fn send<D: CallDecoder>(
        &mut self,
        label: &str,
        call: CallBuilder<&DynProvider, D>,
        estimate: u64,
        estimate_is_least: bool,
    ) -> TransactionReceipt {
        let pending =
            call.gas(estimate).send().await.unwrap_or_else(|e| panic!("{label}: send: {e}"));
        let receipt = pending.get_receipt().await.expect("receipt");
        assert!(
            receipt.status(),
            "{label}: transaction {} failed on chain with eth_estimateGas's {estimate} gas (used {})",
            receipt.transaction_hash,
            receipt.gas_used
        );
        for log in receipt.inner.logs() {
            self.ledger.apply(&log.inner);
        }
        let logs = receipt
            .inner
            .logs()
            .iter()
            .map(|l| (l.topics().to_vec(), l.data().data.clone()))
            .collect();
        self.transcript.push((
            label.to_owned(),
            Outcome::Mined { estimate, estimate_is_least, gas_used: receipt.gas_used, logs },
        ));
        receipt
    }

    /// Sends a call the chain refuses with [`REFUSED_GAS_LIMIT`]; returns its receipt.
    async fn send_refused<D: CallDecoder>(
        &self,
        label: &str,
        call: CallBuilder<&DynProvider, D>,
    ) -> (TransactionReceipt, SendAnswer) {
        let provider = call.provider.clone();
        let (hash, send) = match call.gas(REFUSED_GAS_LIMIT).send().await {
            Ok(pending) => (*pending.tx_hash(), SendAnswer::Hash),
            Err(err) => {
                let resp = match &err {
                    alloy::contract::Error::TransportError(e) => e.as_error_resp(),
                    _ => None,
                };
                let hash = resp
                    .and_then(|r| r.data.as_ref())
                    .and_then(|d| serde_json::from_str::<serde_json::Value>(d.get()).ok())
                    .and_then(|d| d.get("txHash")?.as_str()?.parse::<B256>().ok())
                    .unwrap_or_else(|| panic!("{label}: send refused, nothing mined: {err}"));
                (
                    hash,
                    SendAnswer::ErrorWithHash(
                        resp.map(|r| r.message.to_string()).unwrap_or_default(),
                    ),
                )
            }
        };
        let receipt = provider
            .get_transaction_receipt(hash)
            .await
            .expect("eth_getTransactionReceipt")
            .unwrap_or_else(|| panic!("{label}: transaction {hash} was not mined"));
        (receipt, send)
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

    /// A live task's maxPrice (its escrow), as the contract's calls take it back (0 once
    /// settled).
    pub(crate) fn max_price(&self, task: u64) -> Uint<96, 2> {
        u96(self.ledger.task(task).map_or(0, |t| t.max_price))
    }

    /// The price of the offer holding a live task (0 while open or once settled).
    pub(crate) fn price(&self, task: u64) -> Uint<96, 2> {
        u96(self.ledger.task(task).map_or(0, |t| t.price))
    }

    /// Who submitted a live task (the default requester for an unknown one).
    pub(crate) fn requester_of(&self, task: u64) -> Address {
        self.ledger.task(task).map_or_else(|| self.requester.address(), |t| t.requester)
    }

    /// A spec for the default image, committing to [`INPUT_CID`].
    pub(crate) fn spec(&self, deadline: u64) -> TaskSpec {
        TaskSpec {
            imageId: self.image_id,
            inputHash: keccak256(b"input ciphertext"),
            inputCidHash: keccak256(INPUT_CID),
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

    /// The requester submits a task with a permit for `max_price`, naming `offer_id` (0 =
    /// open); returns the task id.
    pub(crate) async fn submit(&mut self, spec: &TaskSpec, max_price: u128, offer_id: u64) -> u64 {
        let requester = self.requester.clone();
        self.submit_by(&requester, spec, max_price, offer_id).await
    }

    /// `requester` submits a task with [`INPUT_CID`] and a permit for `max_price`, naming
    /// `offer_id` (0 = open); returns the task id.
    pub(crate) async fn submit_by(
        &mut self,
        requester: &Account,
        spec: &TaskSpec,
        max_price: u128,
        offer_id: u64,
    ) -> u64 {
        let d = self.deployment;
        let permit = sign_permit(
            &requester.provider,
            &requester.key,
            d.token,
            d.marketplace,
            U256::from(max_price),
            U256::from(FAR),
        )
        .await
        .expect("permit");
        let market = requester.market(&d);
        let call = market.submitTaskWithPermit(
            spec.clone(),
            INPUT_CID.into(),
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

    /// What the enclave attests for `task_id` run under `spec`, its result at [`RESULT_CID`].
    pub(crate) fn proof(&self, task_id: u64, spec: &TaskSpec, status: u16) -> Proof {
        Proof {
            task_id,
            spec: spec.clone(),
            code_hash: B256::ZERO,
            result_hash: keccak256(format!("result of {task_id}")),
            result_cid: RESULT_CID.into(),
            status,
            runtime_ms: 1234,
        }
    }

    /// `node` relays `proof`'s fields (its `result_cid` included) with `signature` for
    /// `task_id` under `spec` (either may differ from what was signed), passing back the
    /// task's requester, maxPrice and price as the events gave them.
    pub(crate) async fn result_call(
        &mut self,
        node: u8,
        task_id: u64,
        spec: &TaskSpec,
        proof: &Proof,
        signature: Bytes,
    ) -> Result<TransactionReceipt, ContractError> {
        let terms = (self.requester_of(task_id), self.max_price(task_id), self.price(task_id));
        self.result_call_with(node, task_id, spec, terms, proof, signature).await
    }

    /// `result_call` with the (requester, maxPrice, price) passed back chosen by the caller.
    pub(crate) async fn result_call_with(
        &mut self,
        node: u8,
        task_id: u64,
        spec: &TaskSpec,
        (requester, max_price, price): (Address, Uint<96, 2>, Uint<96, 2>),
        proof: &Proof,
        signature: Bytes,
    ) -> Result<TransactionReceipt, ContractError> {
        let d = self.deployment;
        let market = self.node(node).market(&d);
        let call = market.submitResult(
            U256::from(task_id),
            spec.clone(),
            requester,
            max_price,
            price,
            proof.result_cid.clone(),
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

    /// `who`'s deposit in the Marketplace (its `balanceOf`).
    pub(crate) async fn deposit_of(&self, who: Address) -> u128 {
        let market = self.deployer.market(&self.deployment);
        market.balanceOf(who).call().await.expect("Marketplace.balanceOf").to()
    }

    /// Reads what the checks compare with the ledger: the Marketplace's totals, the token
    /// balances and deposits of every account the ledger tracks, the token supply, and the
    /// stored word of every task ever submitted.
    pub(crate) async fn snapshot(&self) -> Snapshot {
        let d = self.deployment;
        let market = self.deployer.market(&d);
        let token = self.deployer.token(&d);
        let amount = |v: U256| u128::try_from(v).expect("amount fits u128");
        let t = market.totals().call().await.expect("totals");
        let supply = token.totalSupply().call().await.expect("totalSupply");
        let mut balances = std::collections::BTreeMap::new();
        let mut deposits = std::collections::BTreeMap::new();
        for account in self.ledger.accounts() {
            balances.insert(account, self.balance(account).await);
            deposits.insert(account, self.deposit_of(account).await);
        }
        let count = market.taskCount().call().await.expect("taskCount");
        let mut tasks = std::collections::BTreeMap::new();
        for id in 1..=count {
            let task = market.getTask(U256::from(id)).call().await.expect("getTask");
            tasks.insert(id, task.commitment);
        }
        Snapshot {
            escrowed: amount(t.escrowed),
            paid: amount(t.paid),
            refunded: amount(t.refunded),
            held: amount(t.held),
            supply: amount(supply),
            balances,
            deposits,
            tasks,
        }
    }

    /// Asserts that the tokens are where the Marketplace's events say (see [`Ledger::check`]):
    /// each account's balance and deposit, the Marketplace's totals against the events and
    /// its balance, and every task's stored word.
    pub(crate) async fn assert_conservation(&self) {
        let chain = self.snapshot().await;
        let bad = self.ledger.check(&chain, self.enclave.address());
        assert!(bad.is_empty(), "tokens are not where the events say:\n  {}", bad.join("\n  "));
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
