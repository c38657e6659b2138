//! Submitting, watching, verifying, fetching and reclaiming tasks.

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use alloy::{primitives::B256, rpc::types::TransactionReceipt};
use ecld_contracts::{Marketplace, TaskSpec};
use ecld_crypto::{Payload, ProofDomain, ResultProof, envelope};
use ecld_store::ContentStore;
use ecld_types::{Address, ImageId, OfferId, StatusCode, TaskId, U256, content_hash};
use serde::{Deserialize, Serialize};

use super::{
    Client, Offer,
    deposit::{Funding, deposit_drawn},
};
use crate::{
    Error, ProgramOutput, Step, TaskState, Timings,
    verify::{self, ProofRecord, Verified},
};

/// Largest result downloaded, bytes.
const MAX_RESULT_BYTES: u64 = 1 << 30;

/// Memory a task asks for when the request does not say, MB.
const DEFAULT_MEMORY_MB: u32 = 64;

/// Which offer a task is matched with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfferChoice {
    /// The cheapest offer that fits, matched in the submit transaction (open if none fits
    /// and a price is given).
    #[default]
    Cheapest,
    /// This offer, matched in the submit transaction.
    Offer(OfferId),
    /// No match now: the task stays open until a node claims it.
    Open,
}

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRequest {
    /// The image.
    pub image: ImageId,
    /// The program's input (its stdin).
    pub input: Vec<u8>,
    /// The user's own code, for runner images.
    pub code: Option<Vec<u8>>,
    /// Matching.
    pub offer: OfferChoice,
    /// The most the user pays (default: the matched offer's price).
    pub price: Option<U256>,
    /// Longest run time (rounded up to whole seconds on chain).
    pub max_runtime: Duration,
    /// Memory the program may use, MB.
    pub memory_mb: u32,
    /// From now until the task can be reclaimed.
    pub deadline: Duration,
}

impl TaskRequest {
    /// A request for `image` with `input`, defaults elsewhere (cheapest offer, 10 s run time,
    /// 64 MB, 10 min deadline).
    pub fn new(image: ImageId, input: impl Into<Vec<u8>>) -> Self {
        Self {
            image,
            input: input.into(),
            code: None,
            offer: OfferChoice::Cheapest,
            price: None,
            max_runtime: Duration::from_secs(10),
            memory_mb: DEFAULT_MEMORY_MB,
            deadline: Duration::from_secs(600),
        }
    }
}

/// A submitted task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submitted {
    /// Its id.
    pub task: TaskId,
    /// CID of the encrypted input.
    pub input_cid: String,
    /// keccak256 of the encrypted input.
    pub input_hash: B256,
    /// The escrow: the most the task can cost, held until it ends (what a paid proof does
    /// not pay the node comes back then).
    pub price: U256,
    /// The offer it was matched with, if any.
    pub offer: Option<OfferId>,
    /// Whether the whole escrow was drawn from the account's deposit (no permit, no token
    /// transfer); else a permit let the Marketplace pull what the deposit did not cover.
    #[serde(default)]
    pub from_deposit: bool,
    /// The submit transaction.
    pub tx: B256,
    /// The block it was mined in.
    pub block: u64,
}

/// A task as the chain knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskInfo {
    /// Its id.
    pub id: TaskId,
    /// Who submitted it.
    pub requester: Address,
    /// The image.
    pub image: ImageId,
    /// keccak256 of the encrypted input.
    pub input_hash: B256,
    /// CID of the encrypted input.
    pub input_cid: String,
    /// The escrow: the requester's maximum price, held whole until the task ends.
    pub price: U256,
    /// The matched offer's price when matched at submission, else 0 (a claim sets it).
    pub matched_price: U256,
    /// Unix time after which the requester may reclaim.
    pub deadline: u64,
    /// Memory asked for, MB.
    pub memory_mb: u32,
    /// Run time allowed, seconds.
    pub max_runtime_s: u32,
    /// Where it stands.
    #[serde(flatten)]
    pub state: TaskState,
    /// Block of submission.
    pub block: u64,
}

impl TaskInfo {
    fn spec(&self) -> TaskSpec {
        TaskSpec {
            imageId: self.image.0,
            inputHash: self.input_hash,
            inputCidHash: alloy::primitives::keccak256(self.input_cid.as_bytes()),
            memoryMb: self.memory_mb,
            maxRuntimeS: self.max_runtime_s,
            deadline: self.deadline,
        }
    }
}

/// A verified result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The status the enclave signed.
    pub status: StatusCode,
    /// The checked proof.
    pub verified: Verified,
    /// The decrypted result (the program's stdout, stderr and exit code), when there is one.
    pub output: Option<ProgramOutput>,
}

/// The outcome of [`Client::run`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskResult {
    /// The task.
    pub task: TaskId,
    /// The status the enclave signed.
    pub status: StatusCode,
    /// CID of the encrypted input.
    pub input_cid: String,
    /// The checked proof.
    pub verified: Verified,
    /// The decrypted result (the program's stdout, stderr and exit code; for failures, what
    /// the enclave reported), when there is one.
    pub output: Option<ProgramOutput>,
    /// Time per step.
    pub timings: Timings,
}

/// The proof must name the code the requester sent (keccak256; zero for none), except for
/// the statuses where the enclave could not read the payload and so signs zero.
fn check_code_hash(task: TaskId, code: Option<&[u8]>, proof: &ResultProof) -> Result<(), Error> {
    let sent = ecld_crypto::payload::code_hash(code);
    let unread = matches!(
        proof.status,
        StatusCode::InputInvalid
            | StatusCode::InputMismatch
            | StatusCode::InputUnavailable
            | StatusCode::EnclaveFailure
    );
    if proof.code_hash == sent || (unread && proof.code_hash.is_zero()) {
        return Ok(());
    }
    Err(crate::VerifyError::CodeHashMismatch { task, sent, proven: proof.code_hash }.into())
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Creation code that returns `block.timestamp` as one word (TIMESTAMP, PUSH1 0, MSTORE,
/// PUSH1 32, PUSH1 0, RETURN): run by `eth_call`, it tells the time of the block the call is
/// executed in, without any deployed contract.
const BLOCK_TIMESTAMP_CODE: [u8; 9] = [0x42, 0x60, 0x00, 0x52, 0x60, 0x20, 0x60, 0x00, 0xf3];

/// The earliest timestamp the next block can carry: after the newest block's `head`, not
/// before the block time a call saw (`probed`), and not before the wall clock.
fn next_block_time(head: Option<u64>, probed: Option<u64>, wall: u64) -> u64 {
    head.map_or(0, |h| h.saturating_add(1)).max(probed.unwrap_or(0)).max(wall)
}

/// Chain now as read at one moment, plus the wall-clock seconds since (as the node counts
/// chain time): a deadline computed a little after the read still counts from the moment the
/// transaction is sent.
#[derive(Debug, Clone, Copy)]
pub(super) struct ChainTime {
    at_read: u64,
    read: Instant,
}

impl ChainTime {
    pub(super) fn now(&self) -> u64 {
        self.at_read.saturating_add(self.read.elapsed().as_secs())
    }
}

/// How `send` reports a transaction that was mined and reverted.
const MINED_REVERT: &str = "reverted when mined";

/// Whether `e` is a transaction that was mined and reverted (it changed nothing).
pub(super) fn mined_revert(e: &Error) -> bool {
    matches!(e, Error::Reverted { reason, .. } if reason.ends_with(MINED_REVERT))
}

/// How often a transaction that lost a race with another sender of the same key (a nonce or
/// a permit nonce taken first) is sent again.
pub(super) const RACE_RETRIES: u32 = 12;

/// Whether `e` is a transaction that lost a race with a concurrent sender of the same key:
/// its nonce was taken (`nonce too low`, `already known`, a replacement underpriced), or its
/// permit's nonce was, so the escrow found no allowance.
pub(super) fn is_race(e: &Error) -> bool {
    let Error::Reverted { reason, .. } = e else { return false };
    let r = reason.to_ascii_lowercase();
    [
        "nonce too low",
        "already known",
        "replacement transaction underpriced",
        "insufficientallowance",
    ]
    .iter()
    .any(|s| r.contains(s))
}

/// 20 ms, doubling, at most 640 ms, with up to half again of jitter (so that racing
/// processes spread out).
pub(super) fn race_backoff(attempt: u32) -> Duration {
    let base = 20u64 << attempt.min(5);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()))
        ^ u64::from(std::process::id()).rotate_left(17);
    Duration::from_millis(base + seed % (base / 2 + 1))
}

/// Whether the offer's terms fit the task (free slots aside).
fn fits(o: &Offer, image: ImageId, platforms: u8, memory_mb: u32, runtime_s: u32) -> bool {
    !o.withdrawn
        && o.memory_mb >= memory_mb
        && o.max_runtime_s >= runtime_s
        && platforms & o.platform != 0
        && o.image.is_none_or(|i| i == image)
}

/// The offer `req` is matched with and its escrow, from `offers` as read from the chain.
/// `taken`: slots of each offer already given to earlier tasks of the same batch; with it an
/// offer whose free slots are all taken leaves the task open at its price, even a named one
/// (a single submission names it anyway and goes open only when the contract says it is full).
pub(super) fn pick_offer(
    req: &TaskRequest,
    offers: &[Offer],
    platforms: u8,
    runtime_s: u32,
    taken: Option<&std::collections::HashMap<OfferId, u16>>,
) -> Result<(Option<OfferId>, U256), Error> {
    let full = |o: &Offer| {
        let batch = taken.and_then(|t| t.get(&o.id)).copied().unwrap_or(0);
        o.used_slots.saturating_add(batch) >= o.slots
    };
    match req.offer {
        OfferChoice::Open => {
            let price = req.price.ok_or_else(|| Error::Reverted {
                call: "submitTask",
                reason: "an open task needs a maximum price: pass a price".into(),
            })?;
            Ok((None, price))
        }
        OfferChoice::Offer(id) => {
            let o = offers.iter().find(|o| o.id == id).ok_or_else(|| Error::Reverted {
                call: "submitTask",
                reason: format!(
                    "offer {id} does not exist or was withdrawn; see `ecld offers list`"
                ),
            })?;
            let price = req.price.unwrap_or(o.price);
            if taken.is_some() && full(o) { Ok((None, price)) } else { Ok((Some(id), price)) }
        }
        OfferChoice::Cheapest => {
            let best = offers
                .iter()
                .filter(|o| fits(o, req.image, platforms, req.memory_mb, runtime_s))
                .filter(|o| req.price.is_none_or(|p| o.price <= p))
                .min_by_key(|o| o.price);
            match (best, req.price) {
                // Every slot of the cheapest offer busy: the task waits open at its price
                // (its node claims it when a slot frees) rather than going to a dearer offer.
                (Some(o), price) if full(o) => Ok((None, price.unwrap_or(o.price))),
                (Some(o), price) => Ok((Some(o.id), price.unwrap_or(o.price))),
                (None, Some(price)) => Ok((None, price)),
                (None, None) => Err(Error::Reverted {
                    call: "submitTask",
                    reason: format!(
                        "no offer with a free slot serves image {} for {runtime_s} s; start a \
                         node (`ecld up` starts one), or pass a price to leave the task open",
                        req.image
                    ),
                }),
            }
        }
    }
}

impl Client {
    /// Encrypts the input to the image's enclave key, uploads it, and submits the task
    /// (matched with an offer at once unless [`OfferChoice::Open`]). The escrow comes from the
    /// account's deposit when it covers it (see [`Client::deposit`]); else an EIP-2612 permit
    /// in the same transaction lets the Marketplace pull the rest from the wallet.
    ///
    /// # Errors
    /// [`Error::NoKey`], [`Error::ImageNotFound`], [`Error::Store`], [`Error::Reverted`]
    /// (with the contract's reason), [`Error::InsufficientFunds`].
    pub async fn submit(&self, req: &TaskRequest) -> Result<Submitted, Error> {
        let ciphertext = self.encrypt_input(req).await?;
        let cid = self.upload(&ciphertext).await?;
        self.submit_uploaded(req, &cid, content_hash(&ciphertext)).await
    }

    /// Step 1: the encrypted payload for `req`.
    ///
    /// # Errors
    /// [`Error::NoKey`], [`Error::ImageNotFound`], [`Error::Crypto`].
    pub async fn encrypt_input(&self, req: &TaskRequest) -> Result<Vec<u8>, Error> {
        let wallet = self.require_wallet()?;
        let identity = self.require_identity()?;
        let image = self.cached_image(req.image).await?;
        let payload = Payload::new(
            wallet.address(),
            &identity.recipient(),
            req.code.clone(),
            req.input.clone(),
        )
        .map_err(|e| Error::Crypto(format!("the input cannot be sent: {e}")))?;
        let recipient = crate::keys::recipient_of(image.enclave_key).map_err(|e| {
            Error::Protocol(format!("image {} has an invalid enclave key: {e}", image.id))
        })?;
        envelope::encrypt_bytes(&[recipient], false, &payload.encode())
            .map_err(|e| Error::Crypto(format!("encrypting the input failed: {e}")))
    }

    /// Step 2a: puts bytes in the store; returns the CID.
    ///
    /// # Errors
    /// [`Error::Store`].
    pub async fn upload(&self, bytes: &[u8]) -> Result<String, Error> {
        let options = ecld_store::AddOptions {
            pin: true,
            progress: self.transfer_progress(),
            total: Some(bytes.len() as u64),
        };
        let data = std::io::Cursor::new(bytes::Bytes::copy_from_slice(bytes));
        self.inner
            .store
            .add(Box::new(data), options)
            .await
            .map(|c| c.to_string())
            .map_err(|e| self.store_err(e))
    }

    /// Has `progress` told the bytes of every later upload and download of this client (and
    /// its clones) as they go, `(done, total)`; `None` stops it. For a progress display.
    pub fn on_transfer(&self, progress: Option<Arc<dyn ecld_store::Progress>>) {
        *self.inner.transfer.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = progress;
    }

    fn transfer_progress(&self) -> Option<Arc<dyn ecld_store::Progress>> {
        self.inner.transfer.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Step 2b: submits a task whose encrypted input is already in the store as `input_cid`
    /// with hash `input_hash`. The enclave checks the fetched bytes against both: bytes that
    /// are what the CID names but hash to something else fail the task as INPUT_MISMATCH,
    /// the requester's fault (the node is paid).
    ///
    /// # Errors
    /// As [`Client::submit`].
    pub async fn submit_uploaded(
        &self,
        req: &TaskRequest,
        input_cid: &str,
        input_hash: B256,
    ) -> Result<Submitted, Error> {
        let wallet = self.require_wallet()?;
        let image = self.cached_image(req.image).await?;
        let runtime_s =
            u32::try_from(req.max_runtime.as_millis().div_ceil(1000)).unwrap_or(u32::MAX);
        let (mut offer, escrow) = self.choose_offer(req, image.platforms, runtime_s).await?;
        let max_price = u128::try_from(escrow)
            .ok()
            .and_then(|p| alloy::primitives::aliases::U96::try_from(p).ok())
            .ok_or_else(|| Error::Protocol(format!("price {escrow} does not fit in 96 bits")))?;
        let account = wallet.address();
        let offer_id = |offer: Option<OfferId>| offer.map_or(0, OfferId::get);
        // Chain time is read last before the transaction is built, and the deadline counts
        // from it: the task gets the time asked for, in the time the contract checks.
        let spec_at = |chain_time: ChainTime| TaskSpec {
            imageId: req.image.0,
            inputHash: input_hash,
            inputCidHash: alloy::primitives::keccak256(input_cid.as_bytes()),
            memoryMb: req.memory_mb,
            maxRuntimeS: runtime_s.max(1),
            deadline: chain_time.now() + req.deadline.as_secs().max(1),
        };
        let market = self.marketplace();
        // A deposit that covers the escrow pays it without a permit; submissions of this
        // client reserve what they count on, so two never count on the same tokens. One that
        // still finds the deposit drawn (by another process with this key) pays with a permit.
        let mut from_deposit = true;
        let mut attempt = 0u32;
        let (receipt, paid_from_deposit) = loop {
            let funding = self.fund_escrow(account, escrow, from_deposit).await?;
            let available = match funding {
                Funding::Deposit(reservation) => {
                    let spec = spec_at(self.chain_time().await?);
                    let call =
                        market.submitTask(spec, input_cid.to_owned(), max_price, offer_id(offer));
                    let sent = self.send("submitTask", call).await;
                    self.release_deposit(reservation).await;
                    match sent {
                        Ok(receipt) => break (receipt, true),
                        Err(Error::Reverted { reason, .. })
                            if offer.is_some() && reason.contains("OfferFull") =>
                        {
                            offer = None;
                        }
                        Err(e) if deposit_drawn(&e) && attempt < RACE_RETRIES => {
                            attempt += 1;
                            from_deposit = false;
                        }
                        Err(e) => return Err(e),
                    }
                    continue;
                }
                Funding::Permit { available } => available,
            };
            let balance = self.token_balance(account).await?;
            if balance.saturating_add(available) < escrow {
                return Err(Error::InsufficientFunds {
                    account,
                    balance: balance.saturating_add(available).to_string(),
                    price: escrow.to_string(),
                });
            }
            // Submissions of this client take turns from the permit nonce to the mined
            // transaction; other processes with the same key race for the same permit nonce,
            // and the loser signs again ([`is_race`]).
            let permit_turn = self.inner.permit_lock.lock().await;
            let chain_time = self.chain_time().await?;
            let permit_deadline = U256::from(chain_time.now() + 3600);
            let permit = self.sign_permit(wallet, escrow, permit_deadline).await?;
            let call = market.submitTaskWithPermit(
                spec_at(chain_time),
                input_cid.to_owned(),
                max_price,
                offer_id(offer),
                permit_deadline,
                permit.v,
                permit.r,
                permit.s,
            );
            let sent = self.send("submitTaskWithPermit", call).await;
            drop(permit_turn);
            match sent {
                Ok(receipt) => break (receipt, false),
                // Another submission took the offer's last slot first: the task waits open,
                // at the same price, for the offer's node to claim it when a slot frees.
                Err(Error::Reverted { reason, .. })
                    if offer.is_some() && reason.contains("OfferFull") =>
                {
                    offer = None;
                }
                // Another process with this key used the permit's nonce between this
                // submission's estimate and its block: nothing happened; sign again.
                Err(e) if (is_race(&e) || mined_revert(&e)) && attempt < RACE_RETRIES => {
                    attempt += 1;
                    tokio::time::sleep(race_backoff(attempt)).await;
                }
                Err(e) => return Err(e),
            }
        };
        let ev = receipt
            .inner
            .logs()
            .iter()
            .find_map(|l| l.log_decode::<Marketplace::TaskSubmitted>().ok())
            .ok_or_else(|| Error::Protocol("submitTask emitted no TaskSubmitted event".into()))?;
        let task = u64::try_from(ev.inner.data.taskId)
            .ok()
            .and_then(TaskId::new)
            .ok_or_else(|| Error::Protocol("task id out of range".into()))?;
        Ok(Submitted {
            task,
            input_cid: input_cid.to_owned(),
            input_hash,
            price: U256::from(ev.inner.data.maxPrice),
            offer,
            from_deposit: paid_from_deposit,
            tx: receipt.transaction_hash,
            block: receipt.block_number.unwrap_or_default(),
        })
    }

    async fn choose_offer(
        &self,
        req: &TaskRequest,
        platforms: u8,
        runtime_s: u32,
    ) -> Result<(Option<OfferId>, U256), Error> {
        let offers = match req.offer {
            OfferChoice::Open => Vec::new(),
            _ => self.offers().await?,
        };
        pick_offer(req, &offers, platforms, runtime_s, None)
    }

    /// An EIP-2612 permit letting the Marketplace take `value` from the user's balance:
    /// one `nonces` read (the token name and chain id are known since connecting).
    pub(super) async fn sign_permit(
        &self,
        wallet: &alloy::signers::local::PrivateKeySigner,
        value: U256,
        deadline: U256,
    ) -> Result<ecld_contracts::PermitSignature, Error> {
        use alloy::signers::Signer;
        let d = &self.inner.deployment;
        let nonce = ecld_contracts::IERC20Permit::new(d.token, &self.inner.provider)
            .nonces(wallet.address())
            .call()
            .await
            .map_err(|e| self.chain_err(e))?;
        let permit = ecld_contracts::permit::Permit {
            owner: wallet.address(),
            spender: d.marketplace,
            value,
            nonce,
            deadline,
        };
        let digest =
            ecld_contracts::permit_digest(&self.inner.token_name, d.chain_id, d.token, &permit);
        let sig = wallet
            .sign_hash(&digest)
            .await
            .map_err(|e| Error::Crypto(format!("signing the permit: {e}")))?;
        Ok(ecld_contracts::PermitSignature {
            value,
            deadline,
            v: 27 + u8::from(sig.v()),
            r: sig.r().into(),
            s: sig.s().into(),
        })
    }

    /// Sends a contract call and waits for its receipt, decoding a revert into the
    /// contract's reason.
    pub(crate) async fn send<C>(
        &self,
        what: &'static str,
        call: alloy::contract::CallBuilder<&alloy::providers::DynProvider, C>,
    ) -> Result<TransactionReceipt, Error>
    where
        C: alloy::contract::CallDecoder,
    {
        let reverted = |e: alloy::contract::Error| Error::Reverted {
            call: what,
            reason: ecld_contracts::decode_revert(&e)
                .map_or_else(|| e.to_string(), |c| format!("{c:?}")),
        };
        let mut attempt = 0u32;
        let pending = loop {
            let estimate = call.estimate_gas().await.map_err(reverted)?;
            // The nonce is taken (the chain's pending count) and the transaction handed over
            // one at a time per client; another process with the same key may still take the
            // same nonce first, and then this one is sent again with the next.
            let mut tx = call.as_ref().clone();
            tx.gas = Some(ecld_contracts::gas_with_headroom(estimate));
            let turn = self.inner.send_lock.lock().await;
            let sent = alloy::providers::Provider::send_transaction(&self.inner.provider, tx).await;
            drop(turn);
            let sent = sent.map_err(|e| Error::Reverted { call: what, reason: e.to_string() });
            match sent {
                Ok(pending) => break pending,
                Err(e) if is_race(&e) && attempt < RACE_RETRIES => {
                    attempt += 1;
                    tokio::time::sleep(race_backoff(attempt)).await;
                }
                Err(e) => return Err(e),
            }
        };
        let receipt = pending.get_receipt().await.map_err(|e| self.chain_err(e))?;
        if !receipt.status() {
            return Err(Error::Reverted {
                call: what,
                reason: format!("transaction {} {MINED_REVERT}", receipt.transaction_hash),
            });
        }
        Ok(receipt)
    }

    /// The task's state.
    ///
    /// # Errors
    /// [`Error::TaskNotFound`], [`Error::Chain`].
    pub async fn task(&self, id: TaskId) -> Result<TaskInfo, Error> {
        self.task_from(id, None).await
    }

    async fn task_from(&self, id: TaskId, from_block: Option<u64>) -> Result<TaskInfo, Error> {
        let topic = B256::from(U256::from(id.get()));
        let submitted = self
            .logs::<Marketplace::TaskSubmitted>(
                self.inner.deployment.marketplace,
                Some(topic),
                from_block,
            )
            .await?;
        let (ev, log) = submitted.into_iter().next().ok_or(Error::TaskNotFound(id))?;
        let block = log.block_number.unwrap_or_default();
        let state = self.state_of(id, block).await?;
        Ok(TaskInfo {
            id,
            requester: ev.requester,
            image: ImageId(ev.imageId),
            input_hash: ev.inputHash,
            input_cid: ev.inputCid,
            price: U256::from(ev.maxPrice),
            matched_price: U256::from(ev.price),
            deadline: ev.deadline,
            memory_mb: ev.memoryMb,
            max_runtime_s: ev.maxRuntimeS,
            state,
            block,
        })
    }

    async fn state_of(&self, id: TaskId, from_block: u64) -> Result<TaskState, Error> {
        let live = self
            .marketplace()
            .getTask(U256::from(id.get()))
            .call()
            .await
            .map_err(|e| self.chain_err(e))?;
        if live.commitment != alloy::primitives::FixedBytes::<24>::ZERO {
            return Ok(match OfferId::new(live.offerId) {
                None => TaskState::Open,
                Some(offer) => {
                    let node = self
                        .marketplace()
                        .getOffer(offer.get())
                        .call()
                        .await
                        .map_err(|e| self.chain_err(e))?
                        .node;
                    TaskState::Matched { offer, node }
                }
            });
        }
        let topic = B256::from(U256::from(id.get()));
        let market = self.inner.deployment.marketplace;
        if let Some((ev, _)) = self
            .logs::<Marketplace::ResultSubmitted>(market, Some(topic), Some(from_block))
            .await?
            .into_iter()
            .next()
        {
            let status =
                StatusCode::try_from(ev.status).map_err(|e| Error::Protocol(e.to_string()))?;
            return Ok(TaskState::Done { status });
        }
        if !self
            .logs::<Marketplace::TaskReclaimed>(market, Some(topic), Some(from_block))
            .await?
            .is_empty()
        {
            return Ok(TaskState::Reclaimed);
        }
        Err(Error::Protocol(format!("task {id} is neither live nor settled")))
    }

    /// Tasks submitted by the user (`mine`) or by anyone, oldest first.
    ///
    /// # Errors
    /// [`Error::Chain`].
    pub async fn tasks(&self, mine: bool) -> Result<Vec<TaskInfo>, Error> {
        let me = if mine { Some(self.require_wallet()?.address()) } else { None };
        let logs = self
            .logs::<Marketplace::TaskSubmitted>(self.inner.deployment.marketplace, None, None)
            .await?;
        let mut out = Vec::new();
        for (ev, _) in logs {
            if me.is_some_and(|m| m != ev.requester) {
                continue;
            }
            let Some(id) = u64::try_from(ev.taskId).ok().and_then(TaskId::new) else { continue };
            out.push(self.task(id).await?);
        }
        Ok(out)
    }

    /// Waits until the task is settled or reclaimed, polling the chain.
    ///
    /// # Errors
    /// [`Error::WaitTimeout`] with the last state seen.
    pub async fn wait(&self, id: TaskId, timeout: Duration) -> Result<TaskInfo, Error> {
        let start = Instant::now();
        let first = self.task(id).await?;
        if first.state.is_final() {
            return Ok(first);
        }
        let market = self.marketplace();
        loop {
            let live =
                market.getTask(U256::from(id.get())).call().await.map_err(|e| self.chain_err(e))?;
            if live.commitment == alloy::primitives::FixedBytes::<24>::ZERO {
                return self.task_from(id, Some(first.block)).await;
            }
            if start.elapsed() >= timeout {
                let state = if live.offerId == 0 {
                    TaskState::Open.to_string()
                } else {
                    format!("running under offer {}", live.offerId)
                };
                return Err(Error::WaitTimeout { task: id, state, waited: start.elapsed() });
            }
            tokio::time::sleep(self.inner.poll).await;
        }
    }

    /// The proof of execution the node relayed.
    ///
    /// # Errors
    /// [`Error::NoResult`] while the task has none.
    pub async fn proof(&self, id: TaskId) -> Result<(TaskInfo, ProofRecord), Error> {
        let info = self.task(id).await?;
        let record = self.proof_record(&info).await?;
        Ok((info, record))
    }

    async fn proof_record(&self, info: &TaskInfo) -> Result<ProofRecord, Error> {
        let topic = B256::from(U256::from(info.id.get()));
        let (ev, _) = self
            .logs::<Marketplace::ResultSubmitted>(
                self.inner.deployment.marketplace,
                Some(topic),
                Some(info.block),
            )
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| Error::NoResult { task: info.id, state: info.state.to_string() })?;
        let status = StatusCode::try_from(ev.status).map_err(|e| Error::Protocol(e.to_string()))?;
        Ok(ProofRecord {
            proof: ResultProof {
                task_id: info.id.get(),
                image_id: info.image.0,
                input_hash: info.input_hash,
                input_cid_hash: info.spec().inputCidHash,
                memory_mb: info.memory_mb,
                max_runtime_s: info.max_runtime_s,
                deadline: info.deadline,
                code_hash: ev.codeHash,
                result_hash: ev.resultHash,
                result_cid_hash: alloy::primitives::keccak256(ev.resultCid.as_bytes()),
                status,
                runtime_ms: ev.runtimeMs,
            },
            signature: ev.signature,
            result_cid: ev.resultCid,
            node: ev.node,
        })
    }

    /// The EIP-712 domain proofs on this chain are signed for.
    pub fn proof_domain(&self) -> ProofDomain {
        ProofDomain {
            chain_id: self.inner.deployment.chain_id,
            verifying_contract: self.inner.deployment.marketplace,
        }
    }

    /// Downloads the encrypted result and checks the proof: signer, input hash, result hash,
    /// chain and contract. Returns the checked proof and the result ciphertext.
    ///
    /// # Errors
    /// [`Error::Verify`] when any check fails; [`Error::NoResult`] without a proof.
    pub async fn verify(&self, id: TaskId) -> Result<(Verified, Vec<u8>), Error> {
        let (info, record) = self.proof(id).await?;
        self.verify_record(&info, &record).await
    }

    /// Downloads the result `record` names and checks `record` as the proof of the task `info`
    /// ([`Client::download_result`], then [`Client::check_record`]).
    ///
    /// # Errors
    /// As [`Client::verify`].
    pub async fn verify_record(
        &self,
        info: &TaskInfo,
        record: &ProofRecord,
    ) -> Result<(Verified, Vec<u8>), Error> {
        let bytes = self.download_result(info, record).await?;
        let verified = self.check_record(info, record, &bytes).await?;
        Ok((verified, bytes))
    }

    /// Fetches the encrypted result a proof names from the store, every block checked against
    /// its CID; empty when the proof names none.
    ///
    /// # Errors
    /// [`Error::Verify`] when the store serves bytes that do not match the CID; a store error
    /// when it cannot be read.
    pub async fn download_result(
        &self,
        info: &TaskInfo,
        record: &ProofRecord,
    ) -> Result<Vec<u8>, Error> {
        if record.result_cid.is_empty() {
            return Ok(Vec::new());
        }
        self.download(&record.result_cid, info.id).await
    }

    /// Checks `record` as the proof of the task `info`, with `result` the bytes downloaded for
    /// it: the image is not revoked (now, whenever the proof settled), the signature recovers
    /// to the image's enclave signer over this chain and Marketplace, the input hash is the
    /// task's, and the result bytes hash to the proven hash.
    ///
    /// # Errors
    /// [`Error::Verify`] when any check fails.
    pub async fn check_record(
        &self,
        info: &TaskInfo,
        record: &ProofRecord,
        result: &[u8],
    ) -> Result<Verified, Error> {
        let image = self.cached_image(info.image).await?;
        // Revocation is the one thing about an image that changes: read it now, not cached.
        let status = self
            .registry()
            .imageStatus(info.image.0)
            .call()
            .await
            .map_err(|e| self.chain_err(e))?;
        if status.revoked {
            return Err(crate::VerifyError::ImageRevoked {
                task: info.id,
                image: info.image,
                signer: image.enclave_signer,
            }
            .into());
        }
        let result = (!record.result_cid.is_empty()).then_some(result);
        Ok(verify::check(
            info.id,
            info.image,
            &self.proof_domain(),
            image.enclave_signer,
            info.input_hash,
            record,
            result,
        )?)
    }

    async fn download(&self, cid: &str, task: TaskId) -> Result<Vec<u8>, Error> {
        let parsed = ecld_store::parse_cid(cid).map_err(|e| {
            Error::Protocol(format!("the result CID of task {task} is not a CID: {e}"))
        })?;
        let mut bytes = Vec::new();
        let options = ecld_store::CatOptions {
            progress: self.transfer_progress(),
            max_bytes: Some(MAX_RESULT_BYTES),
        };
        match self.inner.store.cat(&parsed, &mut bytes, options).await {
            Ok(_) => Ok(bytes),
            Err(ecld_store::StoreError::Tampered { detail, .. }) => {
                Err(crate::VerifyError::ResultTampered { task, cid: cid.to_owned(), detail }.into())
            }
            Err(e) => Err(self.store_err(e)),
        }
    }

    /// Decrypts a result ciphertext with the user's identity and reads the program's
    /// output from it.
    ///
    /// # Errors
    /// [`Error::NotForYou`] when it was encrypted to someone else; [`Error::Protocol`] when
    /// the plaintext is not a result envelope.
    pub fn decrypt(&self, task: TaskId, ciphertext: &[u8]) -> Result<ProgramOutput, Error> {
        let identity = self.require_identity()?;
        let plain = envelope::decrypt_bytes(identity, ciphertext)
            .map_err(|_| Error::NotForYou { task, recipient: identity.recipient().to_string() })?;
        ProgramOutput::decode(&plain).ok_or_else(|| {
            Error::Protocol(format!("the decrypted result of task {task} is not a result envelope"))
        })
    }

    fn decrypt_checked(
        &self,
        verified: &Verified,
        bytes: &[u8],
    ) -> Result<Option<ProgramOutput>, Error> {
        if bytes.is_empty() {
            return Ok(None);
        }
        let out = self.decrypt(verified.task, bytes)?;
        if out.status != verified.record.proof.status.code() {
            return Err(Error::Protocol(format!(
                "task {}: the encrypted result says status {} but the proof says {}",
                verified.task, out.status, verified.record.proof.status
            )));
        }
        Ok(Some(out))
    }

    /// Downloads the result, verifies the proof, then decrypts the result.
    ///
    /// # Errors
    /// As [`Client::verify`] and [`Client::decrypt`].
    pub async fn fetch(&self, id: TaskId) -> Result<Fetched, Error> {
        let (verified, bytes) = self.verify(id).await?;
        let output = self.decrypt_checked(&verified, &bytes)?;
        Ok(Fetched { status: verified.record.proof.status, verified, output })
    }

    /// The whole data flow: encrypt, upload, submit, wait for the settlement, read the proof,
    /// download the result, verify, decrypt (the [`Step`]s, each timed in
    /// [`TaskResult::timings`]). `on_step(step, done)` is called when each step starts and ends.
    ///
    /// # Errors
    /// The first step that fails; [`Error::WaitTimeout`] when no proof came in time.
    pub async fn run(
        &self,
        req: &TaskRequest,
        timeout: Duration,
        mut on_step: impl FnMut(Step, bool),
    ) -> Result<TaskResult, Error> {
        let mut timings = Timings::default();
        macro_rules! step {
            ($step:expr, $body:expr) => {{
                on_step($step, false);
                let t = Instant::now();
                let out = $body;
                timings.set($step, t.elapsed());
                on_step($step, true);
                out
            }};
        }
        let ciphertext = step!(Step::Encrypt, self.encrypt_input(req).await?);
        let cid = step!(Step::Upload, self.upload(&ciphertext).await?);
        let submitted =
            step!(Step::Submit, self.submit_uploaded(req, &cid, content_hash(&ciphertext)).await?);
        let info = step!(Step::Execute, self.wait(submitted.task, timeout).await?);
        if info.state == TaskState::Reclaimed {
            return Err(Error::NoResult { task: info.id, state: info.state.to_string() });
        }
        let record = step!(Step::Proof, self.proof_record(&info).await?);
        let bytes = step!(Step::Download, self.download_result(&info, &record).await?);
        let verified = step!(Step::Verify, {
            let verified = self.check_record(&info, &record, &bytes).await?;
            check_code_hash(info.id, req.code.as_deref(), &verified.record.proof)?;
            verified
        });
        let output = step!(Step::Decrypt, self.decrypt_checked(&verified, &bytes)?);
        Ok(TaskResult {
            task: info.id,
            status: verified.record.proof.status,
            input_cid: submitted.input_cid,
            verified,
            output,
            timings,
        })
    }

    /// Takes back the whole escrow of a task without a result: at any time while no node
    /// holds it (a cancel), at once when its image was revoked, else after the deadline.
    ///
    /// # Errors
    /// [`Error::CannotReclaim`] for a held task before the deadline, or once settled.
    pub async fn reclaim(&self, id: TaskId) -> Result<B256, Error> {
        let info = self.task(id).await?;
        if info.state.is_final() {
            return Err(Error::CannotReclaim {
                task: id,
                reason: format!("it is already {}", info.state),
            });
        }
        let held = matches!(info.state, TaskState::Matched { .. });
        if held && self.chain_time().await?.now() <= info.deadline {
            let status = self
                .registry()
                .imageStatus(info.image.0)
                .call()
                .await
                .map_err(|e| self.chain_err(e))?;
            if !status.revoked {
                return Err(Error::CannotReclaim {
                    task: id,
                    reason: format!(
                        "a node holds it and its deadline (unix time {}) has not passed; try \
                         again later",
                        info.deadline
                    ),
                });
            }
        }
        // The commitment names the holding offer's price: the last claim's, or the one
        // matched at submission; 0 while open.
        let price = if held {
            let topic = B256::from(U256::from(id.get()));
            let claims = self
                .logs::<Marketplace::TaskClaimed>(
                    self.inner.deployment.marketplace,
                    Some(topic),
                    Some(info.block),
                )
                .await?;
            claims.last().map_or_else(
                || alloy::primitives::aliases::U96::saturating_from(info.matched_price),
                |(ev, _)| ev.price,
            )
        } else {
            alloy::primitives::aliases::U96::ZERO
        };
        let max_price = alloy::primitives::aliases::U96::saturating_from(info.price);
        let market = self.marketplace();
        let call = market.reclaim(U256::from(id.get()), info.spec(), max_price, price);
        let receipt = self.send("reclaim", call).await?;
        Ok(receipt.transaction_hash)
    }

    /// Chain now: the earliest time the next block can carry. Deadlines are checked against
    /// block time, which may run ahead of the wall clock: at least one second per block on a
    /// busy chain, and by any offset on a development chain whose clock was moved
    /// (`evm_increaseTime`) while its newest block may be old. Read from the newest block and
    /// from the block time a call sees now (a call runs in the block that would be mined next
    /// on development chains; on others it sees the newest block's time, or the pending one's).
    pub(super) async fn chain_time(&self) -> Result<ChainTime, Error> {
        use alloy::providers::Provider;
        let provider = &self.inner.provider;
        let head = provider.get_block_by_number(alloy::eips::BlockNumberOrTag::Latest);
        let call = alloy::rpc::types::TransactionRequest::default()
            .input(alloy::primitives::Bytes::from_static(&BLOCK_TIMESTAMP_CODE).into());
        let probe = provider.call(call);
        let (head, probe) = tokio::join!(head, probe);
        let head = head.map_err(|e| self.chain_err(e))?;
        // A node that refuses calls without a target only loses this refinement.
        let probed = match probe {
            Ok(out) => U256::try_from_be_slice(&out).and_then(|t| u64::try_from(t).ok()),
            Err(e) => {
                tracing::debug!(target: "ecld_sdk", %e, "block time by call unavailable");
                None
            }
        };
        let at_read = next_block_time(head.map(|b| b.header.timestamp), probed, unix_now());
        Ok(ChainTime { at_read, read: Instant::now() })
    }

    pub(crate) async fn cached_image(&self, id: ImageId) -> Result<super::Image, Error> {
        if let Some(img) = self.inner.images.lock().ok().and_then(|m| m.get(&id).cloned()) {
            return Ok(img);
        }
        let img = self.image(id).await?;
        if let Ok(mut m) = self.inner.images.lock() {
            m.insert(id, img.clone());
        }
        Ok(img)
    }
}

#[cfg(test)]
mod code_hash_tests {
    use super::*;

    fn proof(status: StatusCode, code_hash: B256) -> ResultProof {
        ResultProof {
            task_id: 1,
            image_id: B256::ZERO,
            input_hash: B256::ZERO,
            input_cid_hash: B256::ZERO,
            memory_mb: 1,
            max_runtime_s: 1,
            deadline: 1,
            code_hash,
            result_hash: B256::ZERO,
            result_cid_hash: B256::ZERO,
            status,
            runtime_ms: 0,
        }
    }

    #[test]
    fn proof_must_name_the_code_sent() {
        let task = TaskId::new(1).unwrap();
        let code = b"print(1)".as_slice();
        let good = ecld_types::keccak256(code);
        assert!(check_code_hash(task, Some(code), &proof(StatusCode::Success, good)).is_ok());
        assert!(check_code_hash(task, None, &proof(StatusCode::Success, B256::ZERO)).is_ok());
        let swapped = proof(StatusCode::Success, ecld_types::keccak256(b"print(2)"));
        assert!(matches!(
            check_code_hash(task, Some(code), &swapped),
            Err(Error::Verify(crate::VerifyError::CodeHashMismatch { .. }))
        ));
        // Code sent to an image that ran its own program instead.
        assert!(
            check_code_hash(task, Some(code), &proof(StatusCode::Success, B256::ZERO)).is_err()
        );
        // An enclave that could not read the payload signs zero.
        let unread = proof(StatusCode::InputInvalid, B256::ZERO);
        assert!(check_code_hash(task, Some(code), &unread).is_ok());
    }
}

#[cfg(test)]
mod chain_time_tests {
    use super::*;

    #[test]
    fn the_next_block_is_after_the_head_at_the_probed_time_and_not_before_the_wall_clock() {
        // A chain ahead of the wall clock, with a recent head: one second after it.
        assert_eq!(next_block_time(Some(1_000), Some(1_000), 900), 1_001);
        // A moved clock (the call ran at 1_600) while the newest block is old.
        assert_eq!(next_block_time(Some(1_000), Some(1_600), 990), 1_600);
        // A quiet chain, or a node that refuses the call: the wall clock.
        assert_eq!(next_block_time(Some(900), None, 1_000), 1_000);
        assert_eq!(next_block_time(None, None, 1_000), 1_000);
    }

    #[test]
    fn chain_time_counts_on_from_its_read() {
        let read = Instant::now().checked_sub(Duration::from_secs(3)).unwrap();
        assert_eq!(ChainTime { at_read: 1_000, read }.now(), 1_003);
    }
}
