//! The account's deposit in the Marketplace: tokens paid in once (with one permit) that
//! later submissions draw their escrow from, without a permit or a token transfer each.

use std::sync::{Arc, Mutex, PoisonError};

use alloy::primitives::B256;
use ecld_types::{Address, U256};

use super::{
    Client,
    tasks::{RACE_RETRIES, is_race, mined_revert, race_backoff},
};
use crate::Error;

/// The part of the deposit one submission in flight counts on; given back when dropped.
#[derive(Debug)]
pub(super) struct Reservation {
    reserved: Arc<Mutex<U256>>,
    amount: U256,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut reserved = self.reserved.lock().unwrap_or_else(PoisonError::into_inner);
        *reserved = reserved.saturating_sub(self.amount);
    }
}

/// How a submission pays its escrow.
#[derive(Debug)]
pub(super) enum Funding {
    /// Wholly from the deposit: `submitTask`, no permit.
    Deposit(Reservation),
    /// With a permit (`submitTaskWithPermit`); the contract still takes what the deposit
    /// holds first. `available` is the deposit not promised to other submissions.
    Permit {
        /// Deposit this client has not promised elsewhere.
        available: U256,
    },
}

impl Client {
    /// The deposit `account` (default: the user's) holds in the Marketplace: tokens its
    /// submissions draw their escrow from before taking any from its wallet.
    ///
    /// # Errors
    /// [`Error::NoKey`] without an account, [`Error::Chain`] when the call fails.
    pub async fn deposit_balance(&self, account: Option<Address>) -> Result<U256, Error> {
        let account = match account {
            Some(a) => a,
            None => self.require_wallet()?.address(),
        };
        self.marketplace().balanceOf(account).call().await.map_err(|e| self.chain_err(e))
    }

    /// Moves `amount` tokens (base units) from the user's wallet into its deposit in the
    /// Marketplace, with an EIP-2612 permit in the same transaction. Later submissions whose
    /// escrow the deposit covers need no permit and cost less gas; [`Client::withdraw`]
    /// takes what is left back.
    ///
    /// # Errors
    /// [`Error::NoKey`], [`Error::InsufficientWallet`] when the wallet holds less than
    /// `amount`, [`Error::Reverted`].
    pub async fn deposit(&self, amount: U256) -> Result<B256, Error> {
        let wallet = self.require_wallet()?;
        let balance = self.token_balance(wallet.address()).await?;
        if balance < amount {
            return Err(Error::InsufficientWallet { account: wallet.address(), balance, amount });
        }
        let mut attempt = 0u32;
        loop {
            // As for submissions: one permit nonce in use at a time per client; another
            // process with this key may take it first, and then this one signs again.
            let permit_turn = self.inner.permit_lock.lock().await;
            let deadline = U256::from(self.chain_time().await?.now() + 3600);
            let permit = self.sign_permit(wallet, amount, deadline).await?;
            let market = self.marketplace();
            let call = market.depositWithPermit(amount, deadline, permit.v, permit.r, permit.s);
            let sent = self.send("depositWithPermit", call).await;
            drop(permit_turn);
            match sent {
                Ok(receipt) => return Ok(receipt.transaction_hash),
                Err(e) if (is_race(&e) || mined_revert(&e)) && attempt < RACE_RETRIES => {
                    attempt += 1;
                    tokio::time::sleep(race_backoff(attempt)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends `amount` tokens (base units) of the user's deposit back to its wallet.
    /// Submissions of this client in flight that counted on those tokens pay with a permit
    /// instead.
    ///
    /// # Errors
    /// [`Error::NoKey`], [`Error::InsufficientDeposit`] (nothing sent) when the deposit holds
    /// less than `amount`, [`Error::Reverted`].
    pub async fn withdraw(&self, amount: U256) -> Result<B256, Error> {
        let account = self.require_wallet()?.address();
        let balance = self.deposit_balance(Some(account)).await?;
        if amount > balance {
            return Err(Error::InsufficientDeposit { account, balance, amount });
        }
        let market = self.marketplace();
        match self.send("withdraw", market.withdraw(amount)).await {
            Ok(receipt) => Ok(receipt.transaction_hash),
            Err(e) => {
                // A submission drew on the deposit between the read and the transaction.
                let drawn = mined_revert(&e)
                    || matches!(&e, Error::Reverted { reason, .. } if reason.contains("InsufficientDeposit"));
                if drawn {
                    let balance = self.deposit_balance(Some(account)).await?;
                    if amount > balance {
                        return Err(Error::InsufficientDeposit { account, balance, amount });
                    }
                }
                Err(e)
            }
        }
    }

    /// Decides how a submission of `account` pays `escrow`: from the deposit when what it
    /// holds beyond this client's other reservations covers it (and `from_deposit`), else with
    /// a permit. Another process with the same key can still draw the deposit first; the
    /// submission then fails and pays with a permit instead.
    pub(super) async fn fund_escrow(
        &self,
        account: Address,
        escrow: U256,
        from_deposit: bool,
    ) -> Result<Funding, Error> {
        let turn = self.inner.deposit_turn.lock().await;
        let deposit = self.deposit_balance(Some(account)).await?;
        let mut reserved =
            self.inner.deposit_reserved.lock().unwrap_or_else(PoisonError::into_inner);
        let available = deposit.saturating_sub(*reserved);
        let funding = if from_deposit && available >= escrow {
            *reserved += escrow;
            Funding::Deposit(Reservation {
                reserved: Arc::clone(&self.inner.deposit_reserved),
                amount: escrow,
            })
        } else {
            Funding::Permit { available }
        };
        drop(reserved);
        drop(turn);
        Ok(funding)
    }

    /// Gives a reservation back once its submission is mined or failed: in turn with the
    /// deposit reads of [`Client::fund_escrow`], so that no read sees the deposit from before
    /// the draw without the reservation that accounts for it.
    pub(super) async fn release_deposit(&self, reservation: Reservation) {
        let turn = self.inner.deposit_turn.lock().await;
        drop(reservation);
        drop(turn);
    }
}

/// Whether `e` is a submission that found too little deposit and no allowance for the rest:
/// another submission with the same key drew the deposit first.
pub(super) fn deposit_drawn(e: &Error) -> bool {
    if mined_revert(e) {
        return true;
    }
    let Error::Reverted { reason, .. } = e else { return false };
    let r = reason.to_ascii_lowercase();
    ["insufficientallowance", "insufficientbalance", "tokentransferfailed"]
        .iter()
        .any(|s| r.contains(s))
}
