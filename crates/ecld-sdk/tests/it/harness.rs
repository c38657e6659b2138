//! A chain, a store, the contracts, one published image and one node offer.

use std::{path::PathBuf, time::Duration};

use alloy::{
    providers::{DynProvider, Provider, ProviderBuilder},
    signers::local::PrivateKeySigner,
};
use ecld_contracts::{Deployment, ImageManifest, ImageRegistry, Marketplace, TaskSpec};
use ecld_crypto::{AgeIdentity, Payload, ProofDomain, ResultProof, SignerKey, envelope};
use ecld_sdk::{Client, ClientConfig};
use ecld_store::ContentStore;
use ecld_types::{Address, B256, ImageId, StatusCode, U256, content_hash};

pub(crate) const OFFER_PRICE: u64 = 1_000;

pub(crate) struct Env {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) devnet: ecld_devnet::DevnetHandle,
    pub(crate) store: ecld_store::StoreHandle,
    pub(crate) deployment: Deployment,
    pub(crate) image: ImageId,
    pub(crate) enclave_identity: AgeIdentity,
    pub(crate) enclave_signer: SignerKey,
    pub(crate) node: DynProvider,
    pub(crate) node_account: Address,
    pub(crate) config: ClientConfig,
}

fn provider(url: &str, key: &PrivateKeySigner) -> DynProvider {
    ProviderBuilder::new()
        .disable_recommended_fillers()
        .with_gas_estimation()
        .with_simple_nonce_management()
        .fetch_chain_id()
        .wallet(key.clone())
        .connect_http(url.parse().unwrap())
        .erased()
}

impl Env {
    pub(crate) async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let devnet = ecld_devnet::spawn(ecld_devnet::DevnetConfig::ephemeral()).await.unwrap();
        let url = devnet.url();
        let accounts = devnet.accounts().to_vec();
        let deployer = provider(&url, accounts[0].signer());
        let holders = accounts.iter().map(ecld_devnet::DevAccount::address).collect();
        let deployment = ecld_contracts::deploy_all(
            &deployer,
            &ecld_contracts::DeployOptions::dev(holders, U256::from(10u64).pow(U256::from(24))),
        )
        .await
        .unwrap();
        let store = ecld_store::spawn(ecld_store::StoreConfig::ephemeral(dir.path().join("store")))
            .await
            .unwrap();

        // The image: keys as a CAS would generate them.
        let enclave_identity = AgeIdentity::generate();
        let enclave_signer = SignerKey::generate();
        let manifest = ImageManifest {
            codeCid: "bafkreiexample".into(),
            measurement: B256::repeat_byte(0x11),
            enclaveKey: ecld_sdk::keys::key_of(&enclave_identity.recipient().to_string()).unwrap(),
            enclaveSigner: enclave_signer.address(),
            casIdentity: Address::repeat_byte(0xca),
            platforms: 1,
            owner: accounts[0].address(),
            name: "upper".into(),
            version: "1".into(),
        };
        let registry = ImageRegistry::new(deployment.registry, &deployer);
        let id = registry.imageIdOf(manifest.clone()).call().await.unwrap();
        registry.publish(manifest).send().await.unwrap().get_receipt().await.unwrap();

        // The node's offer.
        let node = provider(&url, accounts[2].signer());
        Marketplace::new(deployment.marketplace, &node)
            .registerOffer(id, 1, 4, 256, 60, alloy::primitives::aliases::U96::from(OFFER_PRICE))
            .send()
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap();

        // The user's files, as `ecld up` writes them.
        let key = dir.path().join("user.key");
        std::fs::write(&key, accounts[1].private_key_hex()).unwrap();
        let identity = dir.path().join("user.age-key");
        AgeIdentity::generate().save(&identity).unwrap();
        let deployment_file = dir.path().join("deployment.json");
        deployment.save(&deployment_file).unwrap();
        let config = ClientConfig {
            rpc: url,
            store: store.url(),
            cas: None,
            cas_token: None,
            deployment: deployment_file,
            key: Some(key),
            identity: Some(identity),
            sim_platform_keys: Vec::new(),
        };
        Self {
            dir,
            devnet,
            store,
            deployment,
            image: ImageId(id),
            enclave_identity,
            enclave_signer,
            node,
            node_account: accounts[2].address(),
            config,
        }
    }

    /// The image's owner revokes it.
    pub(crate) async fn revoke_image(&self) {
        let owner = provider(&self.devnet.url(), self.devnet.accounts()[0].signer());
        ImageRegistry::new(self.deployment.registry, &owner)
            .revoke(self.image.0)
            .send()
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap();
    }

    pub(crate) async fn client(&self) -> Client {
        Client::connect(&self.config).await.unwrap()
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Plays node and enclave for task `id`: fetch and decrypt the input, upper-case it,
    /// encrypt the result to the payload's recipient, sign the proof with `signer`, submit.
    pub(crate) async fn execute(&self, id: u64, status: StatusCode, signer: &SignerKey) {
        self.try_execute(id, status, signer).await.unwrap();
    }

    /// [`Env::execute`], returning the Marketplace's refusal instead of panicking.
    pub(crate) async fn try_execute(
        &self,
        id: u64,
        status: StatusCode,
        signer: &SignerKey,
    ) -> Result<(), String> {
        self.settle(id, status, signer, true).await
    }

    /// [`Env::execute`] by a node whose result is gone from the store (unpinned and collected)
    /// before it submits the proof: the proof names a CID the store does not have.
    pub(crate) async fn execute_without_result(
        &self,
        id: u64,
        status: StatusCode,
        signer: &SignerKey,
    ) {
        self.settle(id, status, signer, false).await.unwrap();
    }

    async fn settle(
        &self,
        id: u64,
        status: StatusCode,
        signer: &SignerKey,
        keep_result: bool,
    ) -> Result<(), String> {
        let market = Marketplace::new(self.deployment.marketplace, &self.node);
        let topic = B256::from(U256::from(id));
        let logs = self
            .node
            .get_logs(
                &alloy::rpc::types::Filter::new()
                    .address(self.deployment.marketplace)
                    .event_signature(
                        <Marketplace::TaskSubmitted as alloy::sol_types::SolEvent>::SIGNATURE_HASH,
                    )
                    .topic1(topic)
                    .from_block(0),
            )
            .await
            .unwrap();
        let ev = logs[0].log_decode::<Marketplace::TaskSubmitted>().unwrap().inner.data;
        // A task claimed after submission holds at the claiming offer's price.
        let claims = self
            .node
            .get_logs(
                &alloy::rpc::types::Filter::new()
                    .address(self.deployment.marketplace)
                    .event_signature(
                        <Marketplace::TaskClaimed as alloy::sol_types::SolEvent>::SIGNATURE_HASH,
                    )
                    .topic1(topic)
                    .from_block(0),
            )
            .await
            .unwrap();
        let price = claims.last().map_or(ev.price, |l| {
            l.log_decode::<Marketplace::TaskClaimed>().unwrap().inner.data.price
        });
        let kubo = ecld_store::KuboClient::new(&self.store.url()).unwrap();
        let input =
            kubo.cat_bytes(&ecld_store::parse_cid(&ev.inputCid).unwrap(), 1 << 20).await.unwrap();
        assert_eq!(content_hash(&input), ev.inputHash);
        let plain = envelope::decrypt_bytes(&self.enclave_identity, &input).unwrap();
        let payload = Payload::decode(&plain).unwrap();
        let output = ecld_sdk::ProgramOutput {
            status: status.code(),
            exit_code: 0,
            stdout: String::from_utf8_lossy(&payload.input).to_uppercase().into_bytes(),
            stderr: Vec::new(),
        }
        .encode();
        let result =
            envelope::encrypt_bytes(&[payload.recipient().unwrap()], false, &output).unwrap();
        let cid = kubo.add_bytes(result.clone().into()).await.unwrap();
        if !keep_result {
            kubo.unpin(&cid).await.unwrap();
            kubo.repo_gc().await.unwrap();
        }
        let input_cid_hash = alloy::primitives::keccak256(ev.inputCid.as_bytes());
        let proof = ResultProof {
            task_id: id,
            image_id: ev.imageId,
            input_hash: ev.inputHash,
            input_cid_hash,
            memory_mb: ev.memoryMb,
            max_runtime_s: ev.maxRuntimeS,
            deadline: ev.deadline,
            code_hash: B256::ZERO,
            result_hash: content_hash(&result),
            result_cid_hash: alloy::primitives::keccak256(cid.to_string().as_bytes()),
            status,
            runtime_ms: 3,
        };
        let domain = ProofDomain {
            chain_id: self.deployment.chain_id,
            verifying_contract: self.deployment.marketplace,
        };
        let sig = proof.sign(signer, &domain).unwrap();
        let spec = TaskSpec {
            imageId: ev.imageId,
            inputHash: ev.inputHash,
            inputCidHash: input_cid_hash,
            memoryMb: ev.memoryMb,
            maxRuntimeS: ev.maxRuntimeS,
            deadline: ev.deadline,
        };
        market
            .submitResult(
                U256::from(id),
                spec,
                ev.requester,
                ev.maxPrice,
                price,
                cid.to_string(),
                proof.result_hash,
                B256::ZERO,
                status.code(),
                3,
                sig.as_bytes().to_vec().into(),
            )
            .send()
            .await
            .map_err(|e| e.to_string())?
            .get_receipt()
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// The node claims open task `id` for its offer (1).
    pub(crate) async fn claim(&self, id: u64) {
        let topic = B256::from(U256::from(id));
        let logs = self
            .node
            .get_logs(
                &alloy::rpc::types::Filter::new()
                    .address(self.deployment.marketplace)
                    .event_signature(
                        <Marketplace::TaskSubmitted as alloy::sol_types::SolEvent>::SIGNATURE_HASH,
                    )
                    .topic1(topic)
                    .from_block(0),
            )
            .await
            .unwrap();
        let ev = logs[0].log_decode::<Marketplace::TaskSubmitted>().unwrap().inner.data;
        let spec = TaskSpec {
            imageId: ev.imageId,
            inputHash: ev.inputHash,
            inputCidHash: alloy::primitives::keccak256(ev.inputCid.as_bytes()),
            memoryMb: ev.memoryMb,
            maxRuntimeS: ev.maxRuntimeS,
            deadline: ev.deadline,
        };
        Marketplace::new(self.deployment.marketplace, &self.node)
            .claimTask(U256::from(id), 1, spec, ev.requester, ev.maxPrice)
            .send()
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap();
    }

    pub(crate) async fn stop(self) {
        let _ = self.store.shutdown().await;
        let _ = self.devnet.shutdown().await;
    }
}

/// Waits until task `id` exists on chain.
pub(crate) async fn wait_submitted(client: &Client, id: u64) {
    for _ in 0..500 {
        if client.task(ecld_types::TaskId::new(id).unwrap()).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("task {id} was never submitted");
}
