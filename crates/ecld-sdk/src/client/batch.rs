//! Many tasks in one transaction: `submitTasks`, whose escrows come from the deposit.

use std::collections::HashMap;

use alloy::{
    primitives::{B256, aliases::U96},
    rpc::types::TransactionReceipt,
};
use ecld_contracts::{Marketplace, TaskSpec};
use ecld_types::{OfferId, TaskId, U256, content_hash};

use super::{
    Client,
    deposit::{Funding, Reservation, deposit_drawn},
    tasks::{ChainTime, RACE_RETRIES, Submitted, TaskRequest, pick_offer},
};
use crate::Error;

/// Most tasks [`Client::submit_many`] puts in one `submitTasks` transaction; longer slices go
/// in several. At about 38k gas a task that is some 2.5M gas, far inside a block's limit, and
/// one refused task reverts no more than 64.
pub const MAX_BATCH: usize = 64;

/// One task of a batch as it will be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Planned {
    /// The offer it is matched with in the transaction (`None`: open).
    pub(super) offer: Option<OfferId>,
    /// Its escrow.
    pub(super) escrow: U256,
    /// Run time, whole seconds.
    pub(super) runtime_s: u32,
}

/// Chooses each task's offer as [`Client::submit`] would, counting the slots earlier tasks of
/// the batch take: an offer with `k` free slots takes at most `k` of the batch, and the rest
/// of the tasks that would have gone to it wait open at its price. `platforms`: of each
/// request's image.
pub(super) fn plan(
    reqs: &[TaskRequest],
    platforms: &[u8],
    offers: &[super::Offer],
) -> Result<Vec<Planned>, Error> {
    let mut taken: HashMap<OfferId, u16> = HashMap::new();
    reqs.iter()
        .zip(platforms)
        .map(|(req, &platforms)| {
            let runtime_s =
                u32::try_from(req.max_runtime.as_millis().div_ceil(1000)).unwrap_or(u32::MAX);
            let (offer, escrow) = pick_offer(req, offers, platforms, runtime_s, Some(&taken))?;
            max_price(escrow)?;
            if let Some(o) = offer {
                *taken.entry(o).or_default() += 1;
            }
            Ok(Planned { offer, escrow, runtime_s })
        })
        .collect()
}

fn max_price(escrow: U256) -> Result<U96, Error> {
    u128::try_from(escrow)
        .ok()
        .and_then(|p| U96::try_from(p).ok())
        .ok_or_else(|| Error::Protocol(format!("price {escrow} does not fit in 96 bits")))
}

fn sum(plan: &[Planned]) -> U256 {
    plan.iter().fold(U256::ZERO, |s, p| s.saturating_add(p.escrow))
}

/// How many tasks from the start of `plan` `available` pays for.
fn covered(plan: &[Planned], available: U256) -> usize {
    let mut total = U256::ZERO;
    plan.iter()
        .take_while(|p| {
            total = total.saturating_add(p.escrow);
            total <= available
        })
        .count()
}

impl Client {
    /// Encrypts and uploads every request's input, then submits the tasks in as few
    /// transactions as it can: `submitTasks`, up to [`MAX_BATCH`] tasks each, in order
    /// (consecutive task ids), with the escrows drawn from the account's deposit (see
    /// [`Client::deposit`]). Returns one [`Submitted`] per request, in request order; the tasks
    /// of one transaction share its `tx` and `block`. An empty slice sends nothing.
    ///
    /// Offers are chosen per task as by [`Client::submit`], counting the slots the earlier
    /// tasks take: an offer with `k` free slots takes `k` tasks of the batch, the others wait
    /// open at its price for its node to claim them. When another submission takes a slot
    /// first (`OfferFull`), the batch is sent again once with every task open.
    ///
    /// `submitTasks` has no permit: when the deposit (less what this client's other
    /// submissions in flight count on) does not cover the sum of the escrows, the tasks it
    /// covers, from the first, go in one batch and the rest are submitted one by one as by
    /// [`Client::submit`], each with a permit for what it takes from the wallet (their `tx`
    /// differ, `from_deposit` is false). `ecld deposit` the sum first to send them all in one
    /// transaction.
    ///
    /// # Errors
    /// As [`Client::submit`]. [`Error::InsufficientFunds`] (nothing sent) when the wallet and
    /// the deposit together do not cover the escrows of the next [`MAX_BATCH`] tasks.
    /// [`Error::PartlySubmitted`], holding the tasks submitted, when some were and a later
    /// one failed.
    pub async fn submit_many(&self, reqs: &[TaskRequest]) -> Result<Vec<Submitted>, Error> {
        if reqs.is_empty() {
            return Ok(Vec::new());
        }
        self.require_wallet()?;
        // Every input is in the store before the first transaction: a failure here sends none.
        let mut inputs = Vec::with_capacity(reqs.len());
        for req in reqs {
            let ciphertext = self.encrypt_input(req).await?;
            let cid = self.upload(&ciphertext).await?;
            inputs.push((cid, content_hash(&ciphertext)));
        }
        let mut out = Vec::with_capacity(reqs.len());
        for (reqs_part, inputs_part) in reqs.chunks(MAX_BATCH).zip(inputs.chunks(MAX_BATCH)) {
            if let Err(e) = self.submit_chunk(reqs_part, inputs_part, &mut out).await {
                if out.is_empty() {
                    return Err(e);
                }
                return Err(Error::PartlySubmitted {
                    submitted: out,
                    total: reqs.len(),
                    source: Box::new(e),
                });
            }
        }
        Ok(out)
    }

    /// At most [`MAX_BATCH`] tasks: those the deposit covers in one `submitTasks`, the rest one
    /// by one. Pushes each submitted task to `out` as soon as it is mined.
    async fn submit_chunk(
        &self,
        reqs: &[TaskRequest],
        inputs: &[(String, B256)],
        out: &mut Vec<Submitted>,
    ) -> Result<(), Error> {
        let account = self.require_wallet()?.address();
        let mut platforms = Vec::with_capacity(reqs.len());
        for req in reqs {
            platforms.push(self.cached_image(req.image).await?.platforms);
        }
        let offers = if reqs.iter().all(|r| r.offer == super::OfferChoice::Open) {
            Vec::new()
        } else {
            self.offers().await?
        };
        let mut plan = plan(reqs, &platforms, &offers)?;
        let total = sum(&plan);
        let mut opened = false;
        let mut attempt = 0u32;
        let batched = loop {
            let Some((n, reservation)) = self.reserve_prefix(account, &plan, total).await? else {
                break 0;
            };
            let sent = self.send_batch(&reqs[..n], &inputs[..n], &plan[..n]).await;
            self.release_deposit(reservation).await;
            match sent {
                Ok(receipt) => {
                    out.extend(parse_receipt(
                        &receipt,
                        self.inner.deployment.marketplace,
                        &inputs[..n],
                    )?);
                    break n;
                }
                // Another submission took a slot this batch counted on: everything open, once.
                Err(Error::Reverted { reason, .. }) if !opened && reason.contains("OfferFull") => {
                    opened = true;
                    for p in &mut plan {
                        p.offer = None;
                    }
                }
                // Another process with this key drew the deposit first: count again.
                Err(e) if deposit_drawn(&e) && attempt < RACE_RETRIES => attempt += 1,
                Err(e) => return Err(e),
            }
        };
        for (req, (cid, hash)) in reqs.iter().zip(inputs).skip(batched) {
            out.push(self.submit_uploaded(req, cid, *hash).await?);
        }
        Ok(())
    }

    /// Reserves the deposit for the longest start of `plan` it covers (`total`: the whole
    /// plan's escrows): how many tasks that is and the reservation, or `None` when it covers
    /// not even the first. Refuses, before anything is sent, a plan that the wallet and the
    /// deposit together do not cover.
    async fn reserve_prefix(
        &self,
        account: ecld_types::Address,
        plan: &[Planned],
        total: U256,
    ) -> Result<Option<(usize, Reservation)>, Error> {
        let available = match self.fund_escrow(account, total, true).await? {
            Funding::Deposit(reservation) => return Ok(Some((plan.len(), reservation))),
            Funding::Permit { available } => available,
        };
        let balance = self.token_balance(account).await?;
        if balance.saturating_add(available) < total {
            return Err(Error::InsufficientFunds {
                account,
                balance: balance.saturating_add(available).to_string(),
                price: total.to_string(),
            });
        }
        let n = covered(plan, available);
        if n == 0 {
            return Ok(None);
        }
        Ok(match self.fund_escrow(account, sum(&plan[..n]), true).await? {
            Funding::Deposit(reservation) => Some((n, reservation)),
            Funding::Permit { .. } => None,
        })
    }

    async fn send_batch(
        &self,
        reqs: &[TaskRequest],
        inputs: &[(String, B256)],
        plan: &[Planned],
    ) -> Result<TransactionReceipt, Error> {
        // As in `submit_uploaded`: deadlines count from chain time read just before sending.
        let chain_time: ChainTime = self.chain_time().await?;
        let mut specs = Vec::with_capacity(reqs.len());
        let mut cids = Vec::with_capacity(reqs.len());
        let mut prices = Vec::with_capacity(reqs.len());
        let mut offers = Vec::with_capacity(reqs.len());
        for ((req, (cid, hash)), p) in reqs.iter().zip(inputs).zip(plan) {
            specs.push(TaskSpec {
                imageId: req.image.0,
                inputHash: *hash,
                inputCidHash: alloy::primitives::keccak256(cid.as_bytes()),
                memoryMb: req.memory_mb,
                maxRuntimeS: p.runtime_s.max(1),
                deadline: chain_time.now() + req.deadline.as_secs().max(1),
            });
            cids.push(cid.clone());
            prices.push(max_price(p.escrow)?);
            offers.push(p.offer.map_or(0, OfferId::get));
        }
        let market = self.marketplace();
        self.send("submitTasks", market.submitTasks(specs, cids, prices, offers)).await
    }
}

/// Every TaskSubmitted of a `submitTasks` receipt, in order, one per input.
fn parse_receipt(
    receipt: &TransactionReceipt,
    marketplace: ecld_types::Address,
    inputs: &[(String, B256)],
) -> Result<Vec<Submitted>, Error> {
    let events: Vec<_> = receipt
        .inner
        .logs()
        .iter()
        .filter(|l| l.address() == marketplace)
        .filter_map(|l| l.log_decode::<Marketplace::TaskSubmitted>().ok())
        .map(|l| l.inner.data)
        .collect();
    if events.len() != inputs.len() {
        return Err(Error::Protocol(format!(
            "submitTasks of {} tasks emitted {} TaskSubmitted events (transaction {})",
            inputs.len(),
            events.len(),
            receipt.transaction_hash
        )));
    }
    events
        .into_iter()
        .zip(inputs)
        .map(|(ev, (cid, hash))| {
            if ev.inputHash != *hash || ev.inputCid != *cid {
                return Err(Error::Protocol(format!(
                    "submitTasks emitted task {} for input {}, not {cid}",
                    ev.taskId, ev.inputCid
                )));
            }
            let task = u64::try_from(ev.taskId)
                .ok()
                .and_then(TaskId::new)
                .ok_or_else(|| Error::Protocol("task id out of range".into()))?;
            Ok(Submitted {
                task,
                input_cid: cid.clone(),
                input_hash: *hash,
                price: U256::from(ev.maxPrice),
                offer: OfferId::new(ev.offerId),
                from_deposit: true,
                tx: receipt.transaction_hash,
                block: receipt.block_number.unwrap_or_default(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ecld_types::{Address, ImageId};

    use super::*;
    use crate::{Offer, OfferChoice};

    fn offer(id: u64, price: u64, slots: u16, used: u16) -> Offer {
        Offer {
            id: OfferId::new(id).unwrap(),
            node: Address::repeat_byte(1),
            image: None,
            platform: 1,
            slots,
            used_slots: used,
            memory_mb: 256,
            max_runtime_s: 60,
            price: U256::from(price),
            withdrawn: false,
        }
    }

    fn req(offer: OfferChoice) -> TaskRequest {
        let mut r = TaskRequest::new(ImageId(B256::ZERO), b"x".to_vec());
        r.offer = offer;
        r.max_runtime = Duration::from_millis(1_500);
        r
    }

    #[test]
    fn an_offer_takes_as_many_tasks_of_a_batch_as_it_has_free_slots_and_the_rest_wait_open() {
        // Three free slots at 100; a dearer offer with room is not used (as `submit` would not).
        let offers = [offer(1, 100, 4, 1), offer(2, 300, 8, 0)];
        let reqs = vec![req(OfferChoice::Cheapest); 5];
        let plan = plan(&reqs, &[1; 5], &offers).unwrap();
        let o1 = OfferId::new(1);
        assert_eq!(plan.iter().map(|p| p.offer).collect::<Vec<_>>(), [o1, o1, o1, None, None]);
        assert!(plan.iter().all(|p| p.escrow == U256::from(100) && p.runtime_s == 2));
        assert_eq!(sum(&plan), U256::from(500));
    }

    #[test]
    fn a_named_offer_goes_open_once_the_batch_filled_it_and_open_requests_need_a_price() {
        let offers = [offer(1, 100, 2, 1)];
        let named = req(OfferChoice::Offer(OfferId::new(1).unwrap()));
        let plan = plan(&[named.clone(), named], &[1, 1], &offers).unwrap();
        assert_eq!(plan[0].offer, OfferId::new(1));
        assert_eq!((plan[1].offer, plan[1].escrow), (None, U256::from(100)));
        assert!(super::plan(&[req(OfferChoice::Open)], &[1], &offers).is_err());
    }

    #[test]
    fn the_deposit_covers_the_longest_start_of_the_batch_it_pays_for() {
        let p = |e: u64| Planned { offer: None, escrow: U256::from(e), runtime_s: 1 };
        let plan = [p(100), p(200), p(50)];
        assert_eq!(covered(&plan, U256::from(99)), 0);
        assert_eq!(covered(&plan, U256::from(300)), 2);
        assert_eq!(covered(&plan, U256::from(349)), 2);
        assert_eq!(covered(&plan, U256::from(350)), 3);
    }
}
