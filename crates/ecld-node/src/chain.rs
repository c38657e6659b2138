//! The node's view of the chain: Marketplace and ImageRegistry calls through alloy, events
//! decoded into [`ChainEvent`], transactions handed to the chain one at a time per account
//! (estimates and receipts overlap).

use std::{sync::Arc, time::Duration};

use alloy::{
    contract::{CallBuilder, CallDecoder},
    eips::BlockNumberOrTag,
    network::EthereumWallet,
    primitives::{Address, B256, Bytes, FixedBytes, U256, aliases::U96},
    providers::{DynProvider, Provider, ProviderBuilder},
    rpc::types::{Filter, TransactionReceipt},
    signers::local::PrivateKeySigner,
    sol_types::SolEventInterface,
};
use ecld_contracts::{
    ContractError, ImageRegistry, Marketplace, TaskSpec,
    bindings::Marketplace::{MarketplaceErrors, MarketplaceEvents},
    decode_revert,
};
use ecld_types::{ImageId, OfferId, StatusCode, TaskId};
use reqwest::Url;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::{
    config::{ImageChoice, OfferSpec},
    metrics,
    retry::Retryable,
};

/// Why a chain call failed.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The RPC endpoint could not be reached or answered with a non-revert error.
    #[error(
        "chain RPC call `{what}` failed: {message}; check the chain's RPC URL and that it is running"
    )]
    Transport {
        /// The call.
        what: &'static str,
        /// The error.
        message: String,
    },
    /// The contract refused the call.
    #[error("`{what}` was refused by the contract: {reason}")]
    Reverted {
        /// The call.
        what: &'static str,
        /// Decoded reason.
        reason: Revert,
    },
    /// The transaction was mined but failed (usually a race lost between estimate and mining).
    #[error("transaction {tx} for `{what}` was mined but reverted")]
    Failed {
        /// The call.
        what: &'static str,
        /// Transaction.
        tx: B256,
    },
    /// The transaction was not mined in time.
    #[error("transaction {tx} for `{what}` was not mined within {waited:?}")]
    NotMined {
        /// The call.
        what: &'static str,
        /// Transaction.
        tx: B256,
        /// How long we waited.
        waited: Duration,
    },
    /// The chain answered something that does not fit the contract.
    #[error("unexpected chain data for `{what}`: {message}")]
    Unexpected {
        /// The call.
        what: &'static str,
        /// What was wrong.
        message: String,
    },
}

impl Retryable for ChainError {
    fn is_transient(&self) -> bool {
        matches!(self, Self::Transport { .. } | Self::NotMined { .. })
    }
}

/// A contract refusal the node acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revert {
    /// Another offer holds the task.
    AlreadyClaimed,
    /// The task is settled, reclaimed or unknown.
    NotActive,
    /// The task is open (nobody holds it).
    NotClaimed,
    /// The caller does not hold the task.
    NotHolder,
    /// The deadline passed.
    DeadlinePassed,
    /// The offer has no free slot.
    OfferFull,
    /// Anything else, named.
    Other(String),
}

impl std::fmt::Display for Revert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::AlreadyClaimed => f.write_str("task already claimed"),
            Self::NotActive => f.write_str("task not active"),
            Self::NotClaimed => f.write_str("task not claimed"),
            Self::NotHolder => f.write_str("not the task's holder"),
            Self::DeadlinePassed => f.write_str("deadline passed"),
            Self::OfferFull => f.write_str("offer full"),
            Self::Other(s) => f.write_str(s),
        }
    }
}

fn revert_of(e: &alloy::contract::Error) -> Option<Revert> {
    let data = e.as_revert_data()?;
    Some(match decode_revert(e) {
        Some(ContractError::Marketplace(m)) => match m {
            MarketplaceErrors::TaskAlreadyClaimed(_) => Revert::AlreadyClaimed,
            MarketplaceErrors::TaskNotActive(_) => Revert::NotActive,
            MarketplaceErrors::TaskNotClaimed(_) => Revert::NotClaimed,
            MarketplaceErrors::NotTaskHolder(_) => Revert::NotHolder,
            MarketplaceErrors::DeadlinePassed(_) => Revert::DeadlinePassed,
            MarketplaceErrors::OfferFull(_) => Revert::OfferFull,
            other => Revert::Other(format!("{other:?}")),
        },
        Some(other) => Revert::Other(format!("{other:?}")),
        None => Revert::Other(format!("revert data 0x{}", hex::encode(data))),
    })
}

fn call_err(what: &'static str, e: &alloy::contract::Error) -> ChainError {
    match revert_of(e) {
        Some(reason) => ChainError::Reverted { what, reason },
        None => ChainError::Transport { what, message: e.to_string() },
    }
}

fn rpc_err(what: &'static str, e: impl std::fmt::Display) -> ChainError {
    ChainError::Transport { what, message: e.to_string() }
}

/// A task as submitted (the `TaskSubmitted` event): everything needed to claim, run and prove
/// it. The contract does not store these fields; the node keeps them in its journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskInfo {
    /// Task id.
    pub id: TaskId,
    /// Who pays.
    pub requester: Address,
    /// Image to run.
    pub image: ImageId,
    /// keccak256 of the input ciphertext.
    pub input_hash: B256,
    /// Memory needed, MiB.
    pub memory_mb: u32,
    /// Run time allowed, seconds.
    pub max_runtime_s: u32,
    /// Unix time after which the task can no longer be claimed or proven.
    pub deadline: u64,
    /// The escrow: the requester's max price, held whole until the task ends.
    pub max_price: U256,
    /// The price of the offer holding the task (0 while open): what a paid proof pays.
    pub price: U256,
    /// The offer it was matched to at submission, if any.
    pub offer: Option<OfferId>,
    /// CID of the input ciphertext.
    pub input_cid: String,
}

impl TaskInfo {
    /// The spec the contract wants passed back.
    pub fn spec(&self) -> TaskSpec {
        TaskSpec {
            imageId: self.image.0,
            inputHash: self.input_hash,
            inputCidHash: self.input_cid_hash(),
            memoryMb: self.memory_mb,
            maxRuntimeS: self.max_runtime_s,
            deadline: self.deadline,
        }
    }

    /// keccak256 of the input CID's text, as the spec commits to it.
    pub fn input_cid_hash(&self) -> B256 {
        alloy::primitives::keccak256(self.input_cid.as_bytes())
    }

    /// What the enclave binds its proof to: the spec, and the domain.
    pub fn binding(
        &self,
        chain_id: u64,
        marketplace: Address,
    ) -> ecld_enclave::protocol::TaskBinding {
        ecld_enclave::protocol::TaskBinding {
            task_id: self.id,
            image_id: self.image,
            input_hash: self.input_hash,
            input_cid_hash: self.input_cid_hash(),
            memory_mb: self.memory_mb,
            max_runtime_s: self.max_runtime_s,
            deadline: self.deadline,
            chain_id,
            marketplace,
        }
    }

    /// Whether `offer` (with the image's platform bits) can take this task by its terms.
    pub fn fits(&self, offer: &OfferSpec, image_platforms: u8) -> bool {
        let image_ok = match offer.image {
            ImageChoice::Any => true,
            ImageChoice::Only(id) => id == self.image,
        };
        image_ok
            && offer.memory_mb >= self.memory_mb
            && offer.max_runtime_s >= self.max_runtime_s
            && offer.price <= self.max_price
            && image_platforms & offer.platform.code() != 0
    }
}

/// A Marketplace event the node reacts to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainEvent {
    /// A new task.
    Submitted(TaskInfo),
    /// A task was claimed by `offer`.
    Claimed {
        /// Task.
        task: TaskId,
        /// Offer.
        offer: OfferId,
        /// The offer's price: what a paid proof pays the node.
        price: U256,
    },
    /// A task is open again.
    Released {
        /// Task.
        task: TaskId,
        /// Offer that held it.
        offer: OfferId,
    },
    /// A proof was accepted; the task is gone.
    Settled {
        /// Task.
        task: TaskId,
        /// Offer.
        offer: OfferId,
        /// Status.
        status: u16,
    },
    /// The requester took the escrow back; the task is gone.
    Reclaimed {
        /// Task.
        task: TaskId,
    },
}

/// The stored state of a live task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnChain {
    /// Gone: settled, reclaimed or never submitted.
    Gone,
    /// Open.
    Open,
    /// Held by this offer.
    HeldBy(OfferId),
}

/// What the registry says about an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRecord {
    /// CID of the module.
    pub code_cid: String,
    /// Expected measurement (sha256 of the module).
    pub measurement: B256,
    /// Proof signer.
    pub enclave_signer: Address,
    /// CAS identity pinned by the image.
    pub cas_identity: Address,
    /// Platform bits.
    pub platforms: u8,
    /// Image name.
    pub name: String,
    /// Image version.
    pub version: String,
}

/// One proof to settle: the task as held and what its enclave signed.
#[derive(Debug, Clone)]
pub struct Settlement {
    /// The task, as held by this node.
    pub task: TaskInfo,
    /// Where the result is (empty for no result).
    pub result_cid: String,
    /// keccak256 of the result ciphertext.
    pub result_hash: B256,
    /// keccak256 of the module that ran.
    pub code_hash: B256,
    /// Status code.
    pub status: StatusCode,
    /// Run time.
    pub runtime_ms: u64,
    /// The enclave's signature over the Result.
    pub signature: Bytes,
}

impl Settlement {
    /// The proof as the Marketplace's calls take it; `what` names the call in an error.
    fn to_call(&self, what: &'static str) -> Result<Marketplace::Proof, ChainError> {
        Ok(Marketplace::Proof {
            taskId: U256::from(self.task.id.get()),
            spec: self.task.spec(),
            requester: self.task.requester,
            maxPrice: to_u96(what, self.task.max_price)?,
            price: to_u96(what, self.task.price)?,
            resultCid: self.result_cid.clone(),
            resultHash: self.result_hash,
            codeHash: self.code_hash,
            status: self.status.code(),
            runtimeMs: self.runtime_ms,
            signature: self.signature.clone(),
        })
    }
}

/// A mined transaction of this node.
#[derive(Debug, Clone)]
pub struct Mined {
    /// Hash.
    pub tx: B256,
    /// Receipt.
    pub receipt: TransactionReceipt,
}

/// The chain client of one node.
#[derive(Debug, Clone)]
pub struct Chain {
    provider: DynProvider,
    market: Marketplace::MarketplaceInstance<DynProvider>,
    registry: ImageRegistry::ImageRegistryInstance<DynProvider>,
    address: Address,
    chain_id: u64,
    send_lock: Arc<Mutex<()>>,
    receipt_timeout: Duration,
}

impl Chain {
    /// Connects to `rpc_url` as `signer`, with the contracts at `marketplace` and `registry`.
    pub async fn connect(
        rpc_url: Url,
        signer: PrivateKeySigner,
        marketplace: Address,
        registry: Address,
    ) -> Result<Self, ChainError> {
        let address = signer.address();
        let provider = ProviderBuilder::new()
            .wallet(EthereumWallet::from(signer))
            .connect_http(rpc_url)
            .erased();
        let chain_id = provider.get_chain_id().await.map_err(|e| rpc_err("eth_chainId", e))?;
        Ok(Self {
            market: Marketplace::new(marketplace, provider.clone()),
            registry: ImageRegistry::new(registry, provider.clone()),
            provider,
            address,
            chain_id,
            send_lock: Arc::new(Mutex::new(())),
            receipt_timeout: Duration::from_secs(120),
        })
    }

    /// The node's account.
    pub const fn address(&self) -> Address {
        self.address
    }

    /// EIP-155 chain id.
    pub const fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The Marketplace address.
    pub const fn marketplace(&self) -> Address {
        *self.market.address()
    }

    /// The provider, for callers that need raw access.
    pub const fn provider(&self) -> &DynProvider {
        &self.provider
    }

    /// Latest block number.
    pub async fn head(&self) -> Result<u64, ChainError> {
        self.provider.get_block_number().await.map_err(|e| rpc_err("eth_blockNumber", e))
    }

    /// Hash of block `n`; `None` if the chain has no such block.
    pub async fn block_hash(&self, n: u64) -> Result<Option<B256>, ChainError> {
        let block = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Number(n))
            .await
            .map_err(|e| rpc_err("eth_getBlockByNumber", e))?;
        Ok(block.map(|b| b.header.hash))
    }

    /// Hash and timestamp (unix seconds) of block `n`; `None` if the chain has no such block.
    pub async fn block_stamp(&self, n: u64) -> Result<Option<(B256, u64)>, ChainError> {
        let block = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Number(n))
            .await
            .map_err(|e| rpc_err("eth_getBlockByNumber", e))?;
        Ok(block.map(|b| (b.header.hash, b.header.timestamp)))
    }

    /// Marketplace events in blocks `from..=to`, in chain order, with their block numbers.
    pub async fn events(&self, from: u64, to: u64) -> Result<Vec<(u64, ChainEvent)>, ChainError> {
        let filter = Filter::new().address(self.marketplace()).from_block(from).to_block(to);
        self.decode_logs(&filter).await
    }

    /// The `ResultSubmitted` event of `task`, if any, searched from block `from`.
    pub async fn settlement_of(&self, task: TaskId, from: u64) -> Result<Option<u16>, ChainError> {
        use alloy::sol_types::SolEvent;
        let filter = Filter::new()
            .address(self.marketplace())
            .event_signature(Marketplace::ResultSubmitted::SIGNATURE_HASH)
            .topic1(B256::from(U256::from(task.get())))
            .from_block(from)
            .to_block(BlockNumberOrTag::Latest);
        Ok(self.decode_logs(&filter).await?.into_iter().find_map(|(_, e)| match e {
            ChainEvent::Settled { task: t, status, .. } if t == task => Some(status),
            _ => None,
        }))
    }

    async fn decode_logs(&self, filter: &Filter) -> Result<Vec<(u64, ChainEvent)>, ChainError> {
        let logs = self.provider.get_logs(filter).await.map_err(|e| rpc_err("eth_getLogs", e))?;
        let mut out = Vec::with_capacity(logs.len());
        for log in logs {
            let block = log.block_number.unwrap_or_default();
            // Logs of events this node does not use (offers) or cannot decode are skipped:
            // they cannot change what the node does.
            let Ok(decoded) = MarketplaceEvents::decode_log(&log.inner) else { continue };
            if let Some(ev) = convert(decoded.data) {
                out.push((block, ev));
            }
        }
        Ok(out)
    }

    /// The stored state of `task`.
    pub async fn task_state(&self, task: TaskId) -> Result<OnChain, ChainError> {
        let t = self
            .market
            .getTask(U256::from(task.get()))
            .call()
            .await
            .map_err(|e| call_err("getTask", &e))?;
        Ok(if t.commitment == FixedBytes::<24>::ZERO {
            OnChain::Gone
        } else {
            OfferId::new(t.offerId).map_or(OnChain::Open, OnChain::HeldBy)
        })
    }

    /// The registry record of `image`.
    pub async fn image(&self, image: ImageId) -> Result<ImageRecord, ChainError> {
        let i =
            self.registry.getImage(image.0).call().await.map_err(|e| call_err("getImage", &e))?;
        Ok(ImageRecord {
            code_cid: i.codeCid,
            measurement: i.measurement,
            enclave_signer: i.enclaveSigner,
            cas_identity: i.casIdentity,
            platforms: i.platforms,
            name: i.name,
            version: i.version,
        })
    }

    /// Whether offer `id` is this node's, not withdrawn, and has exactly `spec`'s terms.
    pub async fn offer_matches(&self, id: OfferId, spec: &OfferSpec) -> Result<bool, ChainError> {
        let o =
            self.market.getOffer(id.get()).call().await.map_err(|e| call_err("getOffer", &e))?;
        let (image, platform, slots, memory, runtime, price) = offer_args(spec)?;
        Ok(o.node == self.address
            && !o.withdrawn
            && o.imageId == image
            && o.platform == platform
            && o.slots == slots
            && o.memoryMb == memory
            && o.maxRuntimeS == runtime
            && o.price == price)
    }

    /// Registers `spec`; returns the new offer id.
    pub async fn register_offer(&self, spec: &OfferSpec) -> Result<OfferId, ChainError> {
        let (image, platform, slots, memory, runtime, price) = offer_args(spec)?;
        let call = self.market.registerOffer(image, platform, slots, memory, runtime, price);
        let mined = self.send("registerOffer", call).await?;
        mined
            .receipt
            .inner
            .logs()
            .iter()
            .find_map(|l| match MarketplaceEvents::decode_log(&l.inner).ok()?.data {
                MarketplaceEvents::OfferRegistered(e) => OfferId::new(e.offerId),
                _ => None,
            })
            .ok_or(ChainError::Unexpected {
                what: "registerOffer",
                message: "no OfferRegistered event in the receipt".into(),
            })
    }

    /// Sets offer `id` to `spec`.
    pub async fn update_offer(&self, id: OfferId, spec: &OfferSpec) -> Result<(), ChainError> {
        let (image, platform, slots, memory, runtime, price) = offer_args(spec)?;
        let call =
            self.market.updateOffer(id.get(), image, platform, slots, memory, runtime, price);
        self.send("updateOffer", call).await.map(drop)
    }

    /// `claimTask`.
    pub async fn claim(&self, task: &TaskInfo, offer: OfferId) -> Result<Mined, ChainError> {
        let call = self.market.claimTask(
            U256::from(task.id.get()),
            offer.get(),
            task.spec(),
            task.requester,
            to_u96("claimTask", task.max_price)?,
        );
        self.send("claimTask", call).await
    }

    /// `releaseTask`: the task returns to the market on its original terms.
    pub async fn release(&self, task: &TaskInfo) -> Result<Mined, ChainError> {
        let call = self.market.releaseTask(
            U256::from(task.id.get()),
            task.spec(),
            task.requester,
            to_u96("releaseTask", task.max_price)?,
            to_u96("releaseTask", task.price)?,
        );
        self.send("releaseTask", call).await
    }

    /// `submitResults`: many proofs in one transaction; the node is paid their sum once. One
    /// refused proof reverts them all.
    pub async fn submit_results(&self, proofs: &[Settlement]) -> Result<Mined, ChainError> {
        let proofs = proofs
            .iter()
            .map(|p| p.to_call("submitResults"))
            .collect::<Result<Vec<_>, ChainError>>()?;
        self.send("submitResults", self.market.submitResults(proofs)).await
    }

    /// `submitResult` of one [`Settlement`].
    pub async fn settle(&self, p: &Settlement) -> Result<Mined, ChainError> {
        let p = p.to_call("submitResult")?;
        let call = self.market.submitResult(
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
        );
        self.send("submitResult", call).await
    }

    /// Sends a transaction and waits for its receipt. A reverting estimate fails here with the
    /// reason. The gas estimate and the fees are asked for first, concurrently with other
    /// transactions of this node; only taking the nonce (the one the chain reports as pending)
    /// and handing the signed transaction over happen one at a time per node, so that
    /// concurrent sends get distinct nonces. Receipts are awaited concurrently.
    async fn send<D: CallDecoder>(
        &self,
        what: &'static str,
        call: CallBuilder<&DynProvider, D>,
    ) -> Result<Mined, ChainError> {
        let estimate = call.estimate_gas().await.map_err(|e| call_err(what, &e))?;
        let fees = self
            .provider
            .estimate_eip1559_fees()
            .await
            .map_err(|e| rpc_err("eth_feeHistory", e))?;
        let call = call
            .gas(ecld_contracts::gas_with_headroom(estimate))
            .max_fee_per_gas(fees.max_fee_per_gas)
            .max_priority_fee_per_gas(fees.max_priority_fee_per_gas);
        let tx = {
            let _guard = self.send_lock.lock().await;
            let nonce = self
                .provider
                .get_transaction_count(self.address)
                .pending()
                .await
                .map_err(|e| rpc_err("eth_getTransactionCount", e))?;
            let pending = call.nonce(nonce).send().await.map_err(|e| call_err(what, &e))?;
            *pending.tx_hash()
        };
        let receipt = self.wait_receipt(what, tx).await?;
        let gas = receipt.gas_used;
        metrics::record_gas(what, gas, receipt.effective_gas_price);
        if !receipt.status() {
            return Err(ChainError::Failed { what, tx });
        }
        Ok(Mined { tx, receipt })
    }

    /// Polls for the receipt of `tx` (fast at first: a devnet mines at once).
    pub async fn wait_receipt(
        &self,
        what: &'static str,
        tx: B256,
    ) -> Result<TransactionReceipt, ChainError> {
        let start = tokio::time::Instant::now();
        let mut delay = Duration::from_millis(2);
        loop {
            match self.provider.get_transaction_receipt(tx).await {
                Ok(Some(r)) => return Ok(r),
                Ok(None) => {}
                Err(e) => tracing::debug!(target: "ecld_node", %e, "receipt poll failed"),
            }
            if start.elapsed() > self.receipt_timeout {
                return Err(ChainError::NotMined { what, tx, waited: start.elapsed() });
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(500));
        }
    }
}

type OfferArgs = (B256, u8, u16, u32, u32, U96);

fn offer_args(spec: &OfferSpec) -> Result<OfferArgs, ChainError> {
    let image = match spec.image {
        ImageChoice::Any => B256::ZERO,
        ImageChoice::Only(id) => id.0,
    };
    let slots = u16::try_from(spec.slots).map_err(|_| ChainError::Unexpected {
        what: "registerOffer",
        message: format!("{} slots do not fit the contract's uint16", spec.slots),
    })?;
    let price = to_u96("registerOffer", spec.price)?;
    Ok((image, spec.platform.code(), slots, spec.memory_mb, spec.max_runtime_s, price))
}

fn to_u96(what: &'static str, v: U256) -> Result<U96, ChainError> {
    U96::checked_from_limbs_slice(v.as_limbs()).ok_or(ChainError::Unexpected {
        what,
        message: format!("price {v} does not fit the contract's uint96"),
    })
}

fn u96(v: U96) -> U256 {
    U256::from_limbs_slice(v.as_limbs())
}

fn task_id(v: U256) -> Option<TaskId> {
    TaskId::new(u64::try_from(v).ok()?)
}

fn convert(ev: MarketplaceEvents) -> Option<ChainEvent> {
    Some(match ev {
        MarketplaceEvents::TaskSubmitted(e) => ChainEvent::Submitted(TaskInfo {
            id: task_id(e.taskId)?,
            requester: e.requester,
            image: ImageId(e.imageId),
            input_hash: e.inputHash,
            memory_mb: e.memoryMb,
            max_runtime_s: e.maxRuntimeS,
            deadline: e.deadline,
            max_price: u96(e.maxPrice),
            price: u96(e.price),
            offer: OfferId::new(e.offerId),
            input_cid: e.inputCid,
        }),
        MarketplaceEvents::TaskClaimed(e) => ChainEvent::Claimed {
            task: task_id(e.taskId)?,
            offer: OfferId::new(e.offerId)?,
            price: u96(e.price),
        },
        MarketplaceEvents::TaskReleased(e) => {
            ChainEvent::Released { task: task_id(e.taskId)?, offer: OfferId::new(e.offerId)? }
        }
        MarketplaceEvents::ResultSubmitted(e) => ChainEvent::Settled {
            task: task_id(e.taskId)?,
            offer: OfferId::new(e.offerId)?,
            status: e.status,
        },
        MarketplaceEvents::TaskReclaimed(e) => ChainEvent::Reclaimed { task: task_id(e.taskId)? },
        _ => return None,
    })
}
